// The public topic handles, over the state a mapping's handles share (topic/local_topic).
#include "shmbox/topic.hpp"

#include <atomic>
#include <utility>

#include "base/seqlock_copy.hpp"
#include "platform/process.hpp"
#include "platform/shm.hpp"
#include "topic/local_topic.hpp"

namespace shmbox {

namespace {

Error moved_from(const char* what) { return Error{Errc::invalid_argument, what, "is empty (moved from)"}; }

// A publisher or subscriber holds a slot for its process: a forked child's copy is not
// that process, and may not act on the slot (it makes its own).
Error made_by_parent(const std::string& object, const char* what) {
  return Error{Errc::invalid_argument, object,
               std::string{"this "} + what + " was made by the parent process; make another in this one"};
}

}  // namespace

// ---- Topic ----

Result<Topic> Topic::create(std::string_view name, const TopicOptions& options) {
  auto state = detail::LocalTopics::create(name, options);
  if (!state) return std::unexpected(state.error());
  Topic topic;
  topic.state_ = std::move(*state);
  return topic;
}

Result<Topic> Topic::open(std::string_view name, const WaitPolicy& wait) {
  auto state = detail::LocalTopics::open(name, wait);
  if (!state) return std::unexpected(state.error());
  Topic topic;
  topic.state_ = std::move(*state);
  return topic;
}

Result<void> Topic::remove(std::string_view name) { return detail::LocalTopics::remove(name); }

Result<TopicStatus> Topic::stat(std::string_view name) { return detail::LocalTopics::stat(name); }

std::vector<std::string> Topic::list() { return platform::list_shm_names(detail::topic_file_prefix); }

Result<Publisher> Topic::publisher() const {
  if (!state_) return std::unexpected(moved_from("topic"));
  if (state_->ring.removed()) return std::unexpected(Error{Errc::closed, state_->names.object, "was removed"});
  auto slot = state_->ring.join_publisher();
  if (!slot) return std::unexpected(slot.error());
  Publisher publisher;
  publisher.state_ = state_;
  publisher.slot_ = *slot;
  publisher.fork_generation_ = platform::fork_generation();
  return publisher;
}

Result<Subscriber> Topic::subscribe(std::uint32_t history) const {
  if (!state_) return std::unexpected(moved_from("topic"));
  if (state_->ring.removed()) return std::unexpected(Error{Errc::closed, state_->names.object, "was removed"});
  auto slot = state_->ring.join_subscriber(history);
  if (!slot) return std::unexpected(slot.error());
  {
    const std::scoped_lock guard{state_->mutex};
    state_->subscribers[*slot] = {};
  }
  Subscriber subscriber;
  subscriber.state_ = state_;
  subscriber.slot_ = *slot;
  subscriber.fork_generation_ = platform::fork_generation();
  return subscriber;
}

const std::string& Topic::name() const noexcept {
  static const std::string none;
  return state_ ? state_->names.name : none;
}

std::size_t Topic::max_message_size() const noexcept {
  return state_ ? state_->ring.record().max_message_size : 0;
}

// ---- Publisher ----

Publisher& Publisher::operator=(Publisher&& other) noexcept {
  if (this != &other) {
    leave();
    state_ = std::move(other.state_);
    slot_ = other.slot_;
    fork_generation_ = other.fork_generation_;
  }
  return *this;
}

Publisher::~Publisher() { leave(); }

// A forked child's copy holds nothing of its own: the slot is its parent's.
void Publisher::leave() noexcept {
  if (state_ && fork_generation_ == platform::fork_generation()) state_->ring.leave_publisher(slot_);
  state_.reset();
}

Result<std::uint64_t> Publisher::publish(std::span<const std::byte> message, Deadline deadline) {
  auto loaned = loan(message.size());
  if (!loaned) return std::unexpected(loaned.error());
  // As a board's writer copies: a reader may be copying the chunk's last message still.
  detail::copy_in(message, loaned->data().data());
  return publish(std::move(*loaned), deadline);
}

Result<TopicLoan> Publisher::loan(std::size_t size) {
  if (!state_) return std::unexpected(moved_from("publisher"));
  detail::TopicRing& ring = state_->ring;
  if (ring.removed()) return std::unexpected(Error{Errc::closed, ring.object(), "was removed"});
  if (size > ring.record().max_message_size) {
    return std::unexpected(Error{Errc::too_large, ring.object(),
                                 "a message of " + std::to_string(size) + " bytes is over its maximum of " +
                                     std::to_string(ring.record().max_message_size)});
  }
  if (fork_generation_ != platform::fork_generation()) return std::unexpected(made_by_parent(ring.object(), "publisher"));
  if (ring.record().publishers[slot_].chunk.load(std::memory_order_relaxed) != detail::topic_no_chunk) {
    return std::unexpected(Error{Errc::invalid_argument, ring.object(), "this publisher holds a loan already"});
  }
  auto chunk = ring.take_chunk(slot_);
  if (!chunk) return std::unexpected(chunk.error());
  TopicLoan loan;
  loan.state_ = state_;
  loan.slot_ = slot_;
  loan.chunk_ = *chunk;
  loan.data_ = {ring.record().chunk_bytes(*chunk), size};
  loan.fork_generation_ = fork_generation_;
  return loan;
}

Result<std::uint64_t> Publisher::publish(TopicLoan&& loan, Deadline deadline) {
  if (!state_) return std::unexpected(moved_from("publisher"));
  if (loan.state_ != state_ || loan.slot_ != slot_) {
    return std::unexpected(Error{Errc::invalid_argument, state_->ring.object(), "the loan is not this publisher's"});
  }
  if (fork_generation_ != platform::fork_generation()) {
    return std::unexpected(made_by_parent(state_->ring.object(), "publisher"));
  }
  TopicLoan taken = std::move(loan);
  auto committed = state_->ring.commit(slot_, taken.chunk_, taken.data_.size(), deadline);
  if (committed) taken.state_.reset();  // published: nothing to give back
  return committed;
}

// ---- TopicLoan ----

TopicLoan& TopicLoan::operator=(TopicLoan&& other) noexcept {
  if (this != &other) {
    give_back();
    state_ = std::move(other.state_);
    slot_ = other.slot_;
    chunk_ = other.chunk_;
    data_ = other.data_;
    fork_generation_ = other.fork_generation_;
  }
  return *this;
}

void TopicLoan::give_back() noexcept {
  if (state_ && fork_generation_ == platform::fork_generation()) state_->ring.give_back(slot_, chunk_);
  state_.reset();
}

// ---- Subscriber ----

Subscriber& Subscriber::operator=(Subscriber&& other) noexcept {
  if (this != &other) {
    leave();
    state_ = std::move(other.state_);
    slot_ = other.slot_;
    fork_generation_ = other.fork_generation_;
  }
  return *this;
}

Subscriber::~Subscriber() { leave(); }

void Subscriber::leave() noexcept {
  if (state_ && fork_generation_ == platform::fork_generation()) {
    try {
      state_->release_subscriber_use(slot_, true, false);
    } catch (...) {  // the map's node for the slot exists; only a failed lock could throw
    }
  }
  state_.reset();
}

Result<Delivered> Subscriber::receive(std::vector<std::byte>& message, Deadline deadline) {
  if (!state_) return std::unexpected(moved_from("subscriber"));
  if (fork_generation_ != platform::fork_generation()) {
    return std::unexpected(made_by_parent(state_->ring.object(), "subscriber"));
  }
  auto delivered = state_->ring.receive_copy(slot_, message, deadline);
  if (!delivered) return std::unexpected(delivered.error());
  return Delivered{.size = delivered->size, .sequence = delivered->sequence, .lost = delivered->lost};
}

Result<TopicMessage> Subscriber::receive_in_place(Deadline deadline) {
  if (!state_) return std::unexpected(moved_from("subscriber"));
  detail::TopicRing& ring = state_->ring;
  if (fork_generation_ != platform::fork_generation()) return std::unexpected(made_by_parent(ring.object(), "subscriber"));
  {
    const std::scoped_lock guard{state_->mutex};
    auto& use = state_->subscribers[slot_];
    if (use.held >= ring.record().held_per_subscriber) {
      return std::unexpected(Error{Errc::invalid_argument, ring.object(),
                                   "this subscriber holds " + std::to_string(use.held) +
                                       " messages in place already, its most"});
    }
    ++use.held;  // before the pin: a release may come from another thread at once
  }
  auto delivered = ring.receive_pinned(slot_, deadline);
  if (!delivered) {
    state_->release_subscriber_use(slot_, false, true);
    return std::unexpected(delivered.error());
  }
  TopicMessage message;
  message.state_ = state_;
  message.slot_ = slot_;
  message.chunk_ = delivered->chunk;
  message.data_ = {ring.record().chunk_bytes(delivered->chunk), delivered->size};
  message.info_ = Delivered{.size = delivered->size, .sequence = delivered->sequence, .lost = delivered->lost};
  message.fork_generation_ = fork_generation_;
  return message;
}

std::uint64_t Subscriber::lost() const noexcept {
  return state_ ? state_->ring.record().subscribers[slot_].lost.load(std::memory_order_relaxed) : 0;
}

// ---- TopicMessage ----

TopicMessage& TopicMessage::operator=(TopicMessage&& other) noexcept {
  if (this != &other) {
    release();
    state_ = std::move(other.state_);
    slot_ = other.slot_;
    chunk_ = other.chunk_;
    data_ = other.data_;
    info_ = other.info_;
    fork_generation_ = other.fork_generation_;
  }
  return *this;
}

void TopicMessage::release() noexcept {
  if (!state_) return;
  // A forked child's copy pins nothing of its own.
  if (fork_generation_ != platform::fork_generation()) {
    state_.reset();
    data_ = {};
    return;
  }
  state_->ring.unpin(slot_, chunk_);
  try {
    state_->release_subscriber_use(slot_, false, true);
  } catch (...) {  // only a failed lock could throw
  }
  state_.reset();
  data_ = {};
}

}  // namespace shmbox
