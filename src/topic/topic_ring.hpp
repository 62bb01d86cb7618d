// The topic algorithm on a validated record: publishers claim a free chunk, fill it and
// commit it under the next sequence number; every subscriber reads every committed message
// from the ring, copying it (a seqlock) or in place (a pin, one bit per subscriber). A
// publisher's work does not depend on how many subscribers there are. docs/design.md
// ("Topics") has the protocol, its memory orders and what a kill at each step leaves.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "shmbox/error.hpp"
#include "shmbox/wait.hpp"
#include "topic/topic_layout.hpp"

namespace shmbox::detail {

// A validated topic: where its parts are. Everything else read from it is checked where
// it is used.
struct TopicRecord {
  TopicHeader* header = nullptr;
  std::atomic<std::uint64_t>* entries = nullptr;
  SubscriberSlot* subscribers = nullptr;
  PublisherSlot* publishers = nullptr;
  std::byte* chunks = nullptr;
  TopicGeometry geometry{};
  std::uint32_t history = 0;
  std::uint32_t max_message_size = 0;
  std::uint32_t held_per_subscriber = 0;
  TopicOverflow overflow = TopicOverflow::block;
  std::uint64_t owner = 0;

  ChunkHeader& chunk(std::uint32_t index) const noexcept {
    return *reinterpret_cast<ChunkHeader*>(chunks + std::size_t{index} * geometry.stride);
  }
  std::byte* chunk_bytes(std::uint32_t index) const noexcept {
    return chunks + std::size_t{index} * geometry.stride + sizeof(ChunkHeader);
  }
};

// A message a subscriber got: its sequence number, the messages it lost just before it
// (overwritten before it read them), and where its bytes are.
struct TopicDelivery {
  std::uint64_t sequence = 0;
  std::uint64_t lost = 0;
  std::uint32_t chunk = topic_no_chunk;
  std::size_t size = 0;
};

class TopicRing {
 public:
  TopicRing(const TopicRecord& record, std::string object, const WaitPolicy& wait) noexcept
      : record_(record), object_(std::move(object)), wait_(wait) {}

  const TopicRecord& record() const noexcept { return record_; }
  const std::string& object() const noexcept { return object_; }

  // A publisher slot for this process; slots of dead publishers are recovered first.
  Result<std::uint32_t> join_publisher();
  void leave_publisher(std::uint32_t slot) noexcept;
  // A chunk nobody reads or writes, now the slot's to fill.
  Result<std::uint32_t> take_chunk(std::uint32_t slot);
  // Gives back a chunk taken and not committed.
  void give_back(std::uint32_t slot, std::uint32_t chunk) noexcept;
  // Commits the slot's chunk holding `size` bytes as the next message; its sequence
  // number. A blocking topic waits while the ring is full of messages a live subscriber
  // has not read.
  Result<std::uint64_t> commit(std::uint32_t slot, std::uint32_t chunk, std::size_t size, Deadline deadline);

  // A subscriber slot for this process, its cursor `history` messages back (at most the
  // topic's history, and only as far as the ring still holds).
  Result<std::uint32_t> join_subscriber(std::uint32_t history);
  void leave_subscriber(std::uint32_t slot) noexcept;
  // The next message, copied into `bytes`.
  Result<TopicDelivery> receive_copy(std::uint32_t slot, std::vector<std::byte>& bytes, Deadline deadline);
  // The next message, pinned in place until unpin().
  Result<TopicDelivery> receive_pinned(std::uint32_t slot, Deadline deadline);
  void unpin(std::uint32_t slot, std::uint32_t chunk) noexcept;

  // Whether a receive would find something now: a message (or a loss) at the subscriber's
  // cursor, or the topic removed. For selectors: a hint, cheap enough to spin on. A number
  // claimed by a publisher that died is recovered here when due, as a receive would.
  bool ready_to_receive(std::uint32_t slot) noexcept;
  std::atomic<std::uint32_t>& published_word() const noexcept { return record_.header->published; }

  // Recovers the slots of dead publishers and subscribers (what they claimed, pinned or
  // held back); how many.
  std::uint32_t recover_dead();

  bool removed() const noexcept { return record_.header->removed.load(std::memory_order_acquire) != 0; }

 private:
  enum class Found { message, not_yet, overwritten, abandoned };
  struct Look {
    Found found;
    std::uint64_t entry;
  };
  Look look(std::uint64_t sequence) const noexcept;
  // Moves the subscriber past what was overwritten; how many it skipped.
  std::uint64_t skip_overwritten(std::uint64_t& cursor) const noexcept;
  void advance(std::uint32_t slot, std::uint64_t cursor, std::uint64_t lost) noexcept;
  // Waits for the next commit after `seen` (an event word value), or until the deadline.
  Result<void> wait_for_commit(std::uint32_t seen, std::uint64_t sequence, Deadline deadline);
  template <class Take>
  Result<TopicDelivery> receive_with(std::uint32_t slot, Deadline deadline, Take&& take);
  Error too_large(std::uint64_t sequence, std::uint64_t size) const;
  template <class OwnerOf, class Recover>
  std::optional<std::uint32_t> take_slot(std::uint32_t count, OwnerOf&& owner_of, Recover&& recover);
  Result<std::uint64_t> claim_sequence(std::uint32_t slot, Deadline deadline);
  std::uint64_t lowest_cursor() noexcept;
  bool recover_publisher(std::uint32_t slot, std::uint64_t dead_owner);
  // Whether this process should look for the dead now: at most once per liveness interval,
  // counted across calls (a caller that never waits long still gets there).
  bool recovery_due() noexcept;
  bool recovery_may_be_due() const noexcept;  // recovery_due without taking the turn
  // Whether a subscriber waiting at `cursor` should look for a dead publisher now: a look
  // is due and a publisher has claimed the number (recovery_due: takes the turn).
  bool dead_publisher_may_hold(std::uint64_t cursor) noexcept;
  bool recover_subscriber(std::uint32_t slot, std::uint64_t dead_owner);
  void clear_holder_bit(std::uint32_t slot) noexcept;
  Error removed_error() const { return Error{Errc::closed, object_, "was removed"}; }

  TopicRecord record_;
  std::string object_;
  WaitPolicy wait_;
  // The last message size published or received through this ring: what its waits expect
  // the peer to be copying (WaitPolicy::spin_for). Relaxed: a hint shared by the handles.
  std::atomic<std::size_t> recent_message_size_{0};
  std::atomic<std::int64_t> last_recovery_{0};
};

}  // namespace shmbox::detail
