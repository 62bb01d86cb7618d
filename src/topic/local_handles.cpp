// A local topic's publishers and subscribers: slots in the topic's file, used through its
// TopicRing (topic/topic_ring).
#include "topic/local_handles.hpp"

#include <atomic>
#include <utility>

#include "base/seqlock_copy.hpp"
#include "platform/process.hpp"

namespace shmbox::detail {

LocalTopic::LocalTopic(std::shared_ptr<TopicState> state)
    : TopicBackend(state->names.name, state->names.object, state->ring.record().max_message_size),
      state_(std::move(state)) {}

Result<std::unique_ptr<PublisherBackend>> LocalTopic::publisher() {
  if (state_->ring.removed()) return std::unexpected(topic_removed(object()));
  auto slot = state_->ring.join_publisher();
  if (!slot) return std::unexpected(slot.error());
  return std::make_unique<LocalPublisher>(SlotHold{state_, *slot, platform::fork_generation()});
}

Result<std::unique_ptr<SubscriberBackend>> LocalTopic::subscribe(std::uint32_t history) {
  if (state_->ring.removed()) return std::unexpected(topic_removed(object()));
  auto slot = state_->ring.join_subscriber(history);
  if (!slot) return std::unexpected(slot.error());
  {
    const std::scoped_lock guard{state_->mutex};
    state_->subscribers[*slot] = {};
  }
  return std::make_unique<LocalSubscriber>(SlotHold{state_, *slot, platform::fork_generation()});
}

bool SlotHold::ours() const noexcept { return fork_generation == platform::fork_generation(); }

Result<void> SlotHold::check_ours(const char* what) const {
  if (ours()) return {};
  return std::unexpected(Error{Errc::invalid_argument, state->ring.object(),
                               std::string{"this "} + what + " was made by the parent process; make another in this one"});
}

// ---- LocalPublisher ----

LocalPublisher::~LocalPublisher() {
  if (hold_.ours()) hold_.state->ring.leave_publisher(hold_.slot);
}

// A copying publish takes and commits a chunk without a TopicLoan: a loan holds the
// topic's state (a shared_ptr), whose count's locked add and subtract would each wait for
// the last message's stores to leave this core.
Result<std::uint64_t> LocalPublisher::publish(std::span<const std::byte> message, Deadline deadline) {
  auto chunk = take_chunk(message.size());
  if (!chunk) return std::unexpected(chunk.error());
  TopicRing& ring = hold_.state->ring;
  // As a board's writer copies: a reader may be copying the chunk's last message still.
  copy_in(message, ring.record().chunk_bytes(*chunk));
  auto committed = ring.commit(hold_.slot, *chunk, message.size(), deadline);
  if (!committed) ring.give_back(hold_.slot, *chunk, ring.publisher_term(hold_.slot));
  return committed;
}

Result<std::uint32_t> LocalPublisher::take_chunk(std::size_t size) {
  TopicRing& ring = hold_.state->ring;
  if (ring.removed()) return std::unexpected(topic_removed(ring.object()));
  if (size > ring.record().max_message_size) {
    return std::unexpected(topic_too_large(ring.object(), size, ring.record().max_message_size));
  }
  if (auto ours = hold_.check_ours("publisher"); !ours) return std::unexpected(ours.error());
  if (ring.record().publishers[hold_.slot].chunk.load(std::memory_order_relaxed) != topic_no_chunk) {
    return std::unexpected(Error{Errc::invalid_argument, ring.object(), "this publisher holds a loan already"});
  }
  return ring.take_chunk(hold_.slot);
}

Result<TopicLoan> LocalPublisher::loan(std::size_t size) {
  auto chunk = take_chunk(size);
  if (!chunk) return std::unexpected(chunk.error());
  TopicRing& ring = hold_.state->ring;
  TopicLoan loan;
  loan.state_ = hold_.state;
  loan.slot_ = hold_.slot;
  loan.chunk_ = *chunk;
  loan.data_ = {ring.record().chunk_bytes(*chunk), size};
  loan.fork_generation_ = hold_.fork_generation;
  loan.term_ = ring.publisher_term(hold_.slot);
  return loan;
}

Result<std::uint64_t> LocalPublisher::publish(TopicLoan&& loan, Deadline deadline) {
  if (loan.state_ != hold_.state || loan.slot_ != hold_.slot || loan.term_ != hold_.state->ring.publisher_term(hold_.slot)) {
    return std::unexpected(Error{Errc::invalid_argument, hold_.state->ring.object(), "the loan is not this publisher's"});
  }
  if (auto ours = hold_.check_ours("publisher"); !ours) return std::unexpected(ours.error());
  TopicLoan taken = std::move(loan);
  auto committed = hold_.state->ring.commit(hold_.slot, taken.chunk_, taken.data_.size(), deadline);
  if (committed) taken.state_.reset();  // published: nothing to give back
  return committed;
}

// ---- LocalSubscriber ----

LocalSubscriber::~LocalSubscriber() {
  if (!hold_.ours()) return;
  try {
    hold_.state->release_subscriber_use(hold_.slot, true, false);
  } catch (...) {  // the map's node for the slot exists; only a failed lock could throw
  }
}

Result<Delivered> LocalSubscriber::receive(std::vector<std::byte>& message, Deadline deadline) {
  if (auto ours = hold_.check_ours("subscriber"); !ours) return std::unexpected(ours.error());
  auto delivered = hold_.state->ring.receive_copy(hold_.slot, message, deadline);
  if (!delivered) return std::unexpected(delivered.error());
  return Delivered{.size = delivered->size, .sequence = delivered->sequence, .lost = delivered->lost};
}

Result<TopicMessage> LocalSubscriber::receive_in_place(Deadline deadline) {
  TopicState& state = *hold_.state;
  TopicRing& ring = state.ring;
  if (auto ours = hold_.check_ours("subscriber"); !ours) return std::unexpected(ours.error());
  {
    const std::scoped_lock guard{state.mutex};
    auto& use = state.subscribers[hold_.slot];
    if (use.held >= ring.record().held_per_subscriber) {
      return std::unexpected(Error{Errc::invalid_argument, ring.object(),
                                   "this subscriber holds " + std::to_string(use.held) +
                                       " messages in place already, its most"});
    }
    ++use.held;  // before the pin: a release may come from another thread at once
  }
  auto delivered = ring.receive_pinned(hold_.slot, deadline);
  if (!delivered) {
    state.release_subscriber_use(hold_.slot, false, true);
    return std::unexpected(delivered.error());
  }
  TopicMessage message;
  message.state_ = hold_.state;
  message.slot_ = hold_.slot;
  message.chunk_ = delivered->chunk;
  message.data_ = {ring.record().chunk_bytes(delivered->chunk), delivered->size};
  message.info_ = Delivered{.size = delivered->size, .sequence = delivered->sequence, .lost = delivered->lost};
  message.fork_generation_ = hold_.fork_generation;
  return message;
}

std::uint64_t LocalSubscriber::lost() const noexcept {
  return hold_.state->ring.record().subscribers[hold_.slot].lost.load(std::memory_order_relaxed);
}

Result<TopicWatch> LocalSubscriber::watch() const {
  if (!hold_.ours()) {
    return std::unexpected(Error{Errc::invalid_argument, "selector",
                                 "this subscriber was made by the parent process; make another in this one"});
  }
  return TopicWatch{hold_.state, hold_.slot};
}

}  // namespace shmbox::detail
