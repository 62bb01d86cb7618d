#include "shmbox/selector.hpp"

#include <algorithm>
#include <array>
#include <utility>

#include "api/mailbox_access.hpp"
#include "endpoint/lanes.hpp"
#include "local/mapped_mailbox.hpp"
#include "local/ring.hpp"
#include "local/wait_any.hpp"
#include "topic/local_topic.hpp"
#include "topic/topic_backend.hpp"

namespace shmbox {

bool Selector::ready(const Watched& watched) const noexcept {
  if (watched.topic) return watched.topic->ring.ready_to_receive(watched.slot);
  if (watched.endpoint != nullptr) return watched.endpoint->may_receive();
  return watched.interest == Interest::receive ? detail::ready_to_receive(*watched.mailbox)
                                               : detail::ready_to_send(*watched.mailbox);
}

Result<void> Selector::room_for_one_more() const {
  if (watched_.size() < max_mailboxes) return {};
  return std::unexpected(Error{Errc::invalid_argument, "selector",
                               "watches " + std::to_string(max_mailboxes) +
                                   " mailboxes, subscribers and endpoints already, its limit"});
}

Selector::Selector(Selector&& other) noexcept
    : wait_(other.wait_), watched_(std::exchange(other.watched_, {})), next_(std::exchange(other.next_, 0)) {}

Selector& Selector::operator=(Selector&& other) noexcept {
  if (this != &other) {
    wait_ = other.wait_;
    watched_ = std::exchange(other.watched_, {});
    next_ = std::exchange(other.next_, 0);
  }
  return *this;
}

Result<std::size_t> Selector::add(Mailbox& mailbox, Interest interest) {
  detail::MailboxBackend* backend = detail::MailboxAccess::backend(mailbox);
  if (backend == nullptr) {
    return std::unexpected(Error{Errc::invalid_argument, "selector", "a moved-from mailbox cannot be watched"});
  }
  detail::MappedMailbox* mapped = backend->shared_memory();
  if (mapped == nullptr) {
    return std::unexpected(Error{Errc::invalid_argument, "selector", "a remote mailbox cannot be watched; use a local one"});
  }
  if (auto room = room_for_one_more(); !room) return std::unexpected(room.error());
  watched_.push_back({.mailbox = mapped, .interest = interest});
  return watched_.size() - 1;
}

Result<std::size_t> Selector::add(Subscriber& subscriber) {
  if (!subscriber.backend_) {
    return std::unexpected(Error{Errc::invalid_argument, "selector", "a moved-from subscriber cannot be watched"});
  }
  auto watch = subscriber.backend_->watch();
  if (!watch) return std::unexpected(watch.error());
  if (auto room = room_for_one_more(); !room) return std::unexpected(room.error());
  watched_.push_back({.topic = std::move(watch->topic), .slot = watch->slot});
  return watched_.size() - 1;
}

Result<std::size_t> Selector::add(Endpoint& endpoint) {
  if (!endpoint.joined_) {
    return std::unexpected(Error{Errc::invalid_argument, "selector", "a moved-from endpoint cannot be watched"});
  }
  if (auto room = room_for_one_more(); !room) return std::unexpected(room.error());
  watched_.push_back({.endpoint = endpoint.joined_.get()});
  return watched_.size() - 1;
}

std::size_t Selector::first_ready() const noexcept {
  for (std::size_t i = 0; i < watched_.size(); ++i) {
    const std::size_t index = (next_ + i) % watched_.size();
    if (ready(watched_[index])) return index;
  }
  return watched_.size();
}

Result<std::size_t> Selector::wait(Deadline deadline) {
  if (watched_.empty()) {
    return std::unexpected(Error{Errc::invalid_argument, "selector", "watches no mailbox, subscriber or endpoint"});
  }
  bool endpoints = false;
  for (;;) {
    // Registering as a selector makes wakers wake everyone on the word, so that no
    // wake-up meant for us goes to a lone receiver.
    std::vector<detail::WatchedWord> words;
    words.reserve(watched_.size() + 1);
    for (std::size_t i = 0; i < watched_.size(); ++i) {
      const Watched& watched = watched_[i];
      if (watched.topic) {
        words.push_back({&watched.topic->ring.published_word(), nullptr, nullptr, detail::EventWord::sleeping});
      } else if (watched.endpoint != nullptr) {
        // Lanes come and go here, outside the wait: inside it they are only read.
        endpoints = true;
        if (!watched.endpoint->prepare_for_selector()) {
          next_ = (i + 1) % watched_.size();
          return i;
        }
        watched.endpoint->add_words(words);
      } else {
        detail::MappedMailbox& mapped = *watched.mailbox;
        detail::Header& header = *mapped.header;
        words.push_back(watched.interest == Interest::receive
                            ? detail::WatchedWord{&header.data_epoch, &header.receive_selectors_sleeping, &mapped}
                            : detail::WatchedWord{&header.space_epoch, &header.send_selectors_sleeping, &mapped});
      }
    }
    // An endpoint's lanes come and go, and a dead sender's lane is closed by a sweep: the
    // words are looked at again at least every second. More words than futex_waitv takes
    // are watched in part, looked at every 10 ms.
    Deadline until = deadline;
    const bool partial = words.size() > detail::max_watched_words;
    if (partial) words.resize(detail::max_watched_words);
    if (endpoints || partial) {
      const Deadline nap{Deadline::clock::now() + (partial ? std::chrono::milliseconds{10} : std::chrono::milliseconds{1000})};
      if (!deadline.is_none() && (deadline.is_forever() || nap.until() < deadline.until())) until = nap;
    }
    // An endpoint whose doorbell moved has lanes to bring up to date: out of the wait first
    // (reported as size(), which no watched index is), then the words are made again.
    const auto index = detail::wait_any(wait_, until, std::span{words}, [&]() -> std::optional<std::size_t> {
      const std::size_t ready = first_ready();
      if (ready < watched_.size()) return ready;
      const bool moved = std::ranges::any_of(
          watched_, [](const Watched& one) { return one.endpoint != nullptr && one.endpoint->doorbell_moved(); });
      return moved ? std::optional{watched_.size()} : std::nullopt;
    });
    if (index && *index < watched_.size()) {
      next_ = (*index + 1) % watched_.size();
      return *index;
    }
    // Nothing ready, or a doorbell moved: another round while the deadline allows.
    if (deadline.is_none()) return std::unexpected(Error{Errc::would_block, {}, {}});
    if (!deadline.is_forever() && deadline.expired()) {
      return std::unexpected(Error{Errc::timeout, "selector", "nothing it watches became ready in time"});
    }
  }
}

}  // namespace shmbox
