// Waiting on several mailboxes, topic subscribers and endpoints at once, so that one
// process serves many links.
//
//   shmbox::Selector selector;
//   const auto orders = selector.add(orders_box);                        // receive interest
//   const auto replies = selector.add(reply_box, shmbox::Interest::send);
//   for (;;) {
//     auto ready = selector.wait(1s);           // index of a ready mailbox, or timeout
//     if (!ready) ...;
//     if (*ready == orders) orders_box.receive(buffer, shmbox::no_wait);
//   }
//
// A mailbox is ready to receive from when a message is waiting at its head or it is
// closed (a receive then says Closed), and ready to send to when a slot is free or it
// is closed. A subscriber is ready when a message (or news of lost ones) waits for it,
// or its topic was removed. An endpoint is ready when a message waits in one of its lanes
// (from any sender; senders that join later count too). Readiness is a hint: another process may take the message first, so
// follow a wait with a non-blocking call. wait() checks from the mailbox after the
// one it reported last, so that a busy mailbox cannot starve the others.
//
// Sleeping uses futex_waitv (Linux 5.16+) over every mailbox's and topic's futex word:
// no polling, and no CPU while idle after the spin budget.
//
// Thread contract: one thread uses a Selector at a time; the mailboxes and subscribers
// must outlive it.
// It watches a mailbox handle's mapping, not the Mailbox object: a watched Mailbox may be
// moved (into another object, which must then outlive the selector).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "shmbox/endpoint.hpp"
#include "shmbox/error.hpp"
#include "shmbox/mailbox.hpp"
#include "shmbox/topic.hpp"
#include "shmbox/wait.hpp"

namespace shmbox {

namespace detail {
struct MappedMailbox;
struct TopicState;
struct JoinedEndpoint;
}

enum class Interest : std::uint8_t { receive, send };

class Selector {
 public:
  static constexpr std::size_t max_mailboxes = 128;  // futex_waitv's limit

  explicit Selector(const WaitPolicy& wait = {}) : wait_(wait) {}
  // A moved-from Selector watches nothing (size() 0, wait() fails with
  // Errc::invalid_argument) and may be added to again.
  Selector(Selector&& other) noexcept;
  Selector& operator=(Selector&& other) noexcept;
  Selector(const Selector&) = delete;
  Selector& operator=(const Selector&) = delete;
  ~Selector() = default;

  // Watches `mailbox`; returns the index wait() reports it by.
  // Errc::invalid_argument past max_mailboxes, or for a remote or moved-from mailbox.
  [[nodiscard]] Result<std::size_t> add(Mailbox& mailbox, Interest interest = Interest::receive);
  // Watches `subscriber` for messages to receive. Errc::invalid_argument past
  // max_mailboxes, or for a moved-from subscriber or one made by the parent process.
  [[nodiscard]] Result<std::size_t> add(Subscriber& subscriber);
  // Watches `endpoint` for messages to receive (Endpoint::receive then takes one).
  // Errc::invalid_argument past max_mailboxes, or for a moved-from endpoint.
  [[nodiscard]] Result<std::size_t> add(Endpoint& endpoint);

  // The index of a ready mailbox. Errc::would_block (no_wait) or Errc::timeout when
  // none became ready; Errc::invalid_argument when nothing is watched.
  [[nodiscard]] Result<std::size_t> wait(Deadline deadline = forever);

  std::size_t size() const noexcept { return watched_.size(); }

 private:
  // A mailbox's mapping, a subscriber's topic and slot, or an endpoint's lanes.
  struct Watched {
    detail::MappedMailbox* mailbox = nullptr;
    Interest interest = Interest::receive;
    std::shared_ptr<detail::TopicState> topic;
    std::uint32_t slot = 0;
    detail::JoinedEndpoint* endpoint = nullptr;
  };
  bool ready(const Watched& watched) const noexcept;
  Result<void> room_for_one_more() const;
  std::size_t first_ready() const noexcept;  // size() if none

  WaitPolicy wait_;
  std::vector<Watched> watched_;
  std::size_t next_ = 0;
};

}  // namespace shmbox
