// An endpoint's lanes as its process sees them: the lanes into its own endpoint that it
// receives from, and its links (its lanes into other endpoints) that it sends through.
// docs/design.md, "Endpoints".
#pragma once

#include <algorithm>
#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "endpoint/endpoint_files.hpp"
#include "endpoint/layout.hpp"
#include "local/local_mailbox.hpp"
#include "local/ring.hpp"
#include "local/wait_any.hpp"
#include "platform/process.hpp"

namespace shmbox::detail {

/// A sender's lane that the receiver watches.
struct Lane {
  std::uint32_t index;
  std::uint64_t sender;
  std::string from;
  std::unique_ptr<LocalMailbox> box;
};

// Our lane into a peer's endpoint.
struct Link {
  EndpointView peer;
  std::unique_ptr<LocalMailbox> lane;
};

struct JoinedEndpoint {
  JoinedEndpoint(EndpointView view, const WaitPolicy& policy) : self(std::move(view)), wait(policy) {}
  JoinedEndpoint(const JoinedEndpoint&) = delete;
  JoinedEndpoint& operator=(const JoinedEndpoint&) = delete;

  EndpointView self;
  WaitPolicy wait;
  std::uint64_t me = platform::current_process().packed();
  // Receiving: the lanes into our endpoint, in table order.
  std::vector<Lane> lanes;
  std::optional<std::uint32_t> seen_doorbell;
  std::size_t next = 0;  // receive() starts here: lanes take turns
  std::chrono::steady_clock::time_point next_sweep{};
  std::chrono::steady_clock::time_point last_sweep{};
  // Sending: our lanes into peers' endpoints, by peer name.
  std::map<std::string, Link, std::less<>> links;

  ~JoinedEndpoint();

  // Brings `lanes` up to date with the table when the doorbell rang (or `force`).
  void refresh(bool force);

  // Once a second: a lane whose sender died has the position it may have claimed and
  // not published cancelled (we never wait inside a lane, where that would happen), and
  // is closed, so that it drains and is then given back (receive() retires a lane that
  // says Closed).
  void sweep();

  // A lane that is closed and drained (or refused): remove its file, then free its
  // entry, in that order, so that an entry is never free while its file exists.
  void retire_lane(std::size_t position);
  void give_back(std::uint32_t index, std::uint64_t sender);

  // For a selector, before it waits: the lanes brought up to date (and swept). False if
  // that failed: a receive meets the failure, and says what it is.
  bool prepare_for_selector() noexcept;
  // For a selector while it waits, reading only (a lane is never unmapped under it): true
  // if a receive may find something now (a message, a lane to retire).
  bool may_receive() const noexcept;
  // True if the doorbell moved since prepare_for_selector(): a lane came or went.
  bool doorbell_moved() const noexcept;
  // The words a selector sleeps on for this endpoint: each lane's and the doorbell.
  void add_words(std::vector<WatchedWord>& words);

  Result<Link*> link_to(std::string_view to);
  Result<Link*> make_lane(EndpointView peer, std::uint32_t index);

  // Receives from the lanes `from` selects (all when empty), taking turns, with
  // `take(LocalMailbox&)` doing the non-blocking receive. Returns the lane's sender.
  template <class Take>
  Result<std::string> receive(std::optional<std::string_view> from, Deadline deadline, Take&& take);
};

template <class Take>
Result<std::string> JoinedEndpoint::receive(std::optional<std::string_view> from, Deadline deadline, Take&& take) {
  const Deadline::clock::duration sweep_interval = std::chrono::seconds{1};
  std::vector<Lane*> watched;
  for (;;) {
    sweep();
    refresh(false);
    watched.clear();
    const std::size_t count = lanes.size();
    bool retired = false;
    for (std::size_t k = 0; k < count && !retired; ++k) {
      const std::size_t i = (next + k) % count;
      Lane& lane = lanes[i];
      if (from && lane.from != *from) continue;
      auto got = take(*lane.box);
      if (got) {
        next = (i + 1) % count;
        return lane.from;
      }
      if (got.error() == Errc::would_block) {
        watched.push_back(&lane);
      } else if (got.error() == Errc::too_large) {
        return std::unexpected(got.error());  // the caller's buffer: the message stays queued
      } else {
        // Closed: drained, and its sender is gone. Anything else (Corrupt): a lane that
        // would fail every receive, which must not stall the other senders'.
        retire_lane(i);
        retired = true;
      }
    }
    if (retired) continue;
    if (deadline.is_none()) return std::unexpected(Error{Errc::would_block, {}, {}});
    if (deadline.expired()) return std::unexpected(Error{Errc::timeout, self.names.object, "timed out"});
    // Sleep on the watched lanes and the doorbell (a new lane may be the one we want),
    // waking at least once a second to sweep.
    std::vector<WatchedWord> words;
    words.reserve(watched.size() + 1);
    for (Lane* lane : watched) {
      Header& header = *lane->box->mapped().header;
      words.push_back({&header.data_epoch, &header.receive_selectors_sleeping, nullptr});
    }
    words.push_back({&self.header->doorbell, &self.header->doorbell_sleepers, nullptr});
    const std::uint32_t bell = *seen_doorbell;
    std::vector<MappedMailbox*> receiving;
    for (Lane* lane : watched) receiving.push_back(&lane->box->mapped());
    const ReceiverPresence present{receiving};
    const auto nap_end = Deadline::clock::now() + sweep_interval;
    (void)wait_any(wait, deadline.is_forever() || nap_end < deadline.until() ? Deadline{nap_end} : deadline, words,
                   [&]() -> std::optional<std::size_t> {
                     if (self.header->doorbell.load(std::memory_order_acquire) != bell) return watched.size();
                     for (std::size_t i = 0; i < watched.size(); ++i) {
                       if (ready_to_receive(watched[i]->box->mapped())) return i;
                     }
                     return std::nullopt;
                   });
  }
}

}  // namespace shmbox::detail
