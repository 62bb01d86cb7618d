// The topic algorithm on a validated record: publishers claim a free chunk, fill it and
// commit it under the next sequence number; every subscriber reads every committed message
// from the ring, copying it (a seqlock) or in place (a pin, one bit per subscriber). A
// publisher's work does not depend on how many subscribers there are. docs/design.md
// ("Topics") has the protocol, its memory orders and what a kill at each step leaves.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
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

// How many chunks the publisher of a topic with one publisher slot marks at once.
inline constexpr std::uint32_t topic_run = 16;

class TopicRing {
 public:
  TopicRing(const TopicRecord& record, std::string object, const WaitPolicy& wait)
      : record_(record),
        object_(std::move(object)),
        wait_(wait),
        hints_(record.geometry.subscriber_slots, topic_no_chunk),
        publisher_terms_(std::make_unique<std::atomic<std::uint64_t>[]>(record.geometry.publisher_slots)) {}

  const TopicRecord& record() const noexcept { return record_; }
  const std::string& object() const noexcept { return object_; }

  // A publisher slot for this process; slots of dead publishers are recovered first.
  Result<std::uint32_t> join_publisher();
  void leave_publisher(std::uint32_t slot) noexcept;
  // A chunk nobody reads or writes, now the slot's to fill.
  Result<std::uint32_t> take_chunk(std::uint32_t slot);
  // Gives back a chunk taken and not committed, unless the publisher that took it (in
  // `term`) has left meanwhile: leaving gave it back.
  void give_back(std::uint32_t slot, std::uint32_t chunk, std::uint64_t term) noexcept;
  // The slot's publisher term in this process: moved on each time its publisher leaves,
  // so that a loan that outlives its publisher gives nothing back (another publisher may
  // hold the slot, and chunks marked with it, by then).
  std::uint64_t publisher_term(std::uint32_t slot) const noexcept {
    return publisher_terms_[slot].load(std::memory_order_acquire);
  }
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

  // A topic with one publisher slot has one writer of head, the ring entries and the chunks
  // it marks while its publisher lives: it stores where others compare and swap
  // (design.md, "One publisher slot").
  bool sole() const noexcept { return record_.geometry.publisher_slots == 1; }

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
  // Waits for the next commit after `seen` (an event word value), or until the deadline;
  // true if it did not sleep because a commit came first (look at the entry, not a hint).
  Result<bool> wait_for_commit(std::uint32_t seen, std::uint64_t sequence, Deadline deadline);
  // What a receive took from a chunk: its size, and the chunk named for the next message.
  struct Taken {
    std::size_t size;
    std::uint32_t next;
  };
  template <class Take>
  Result<TopicDelivery> receive_with(std::uint32_t slot, Deadline deadline, Take&& take);
  // Where the subscriber at `cursor` finds its next message: by its hint (sole()), else by
  // the ring entry, which it reads anyway when `entry_due` or the hint is no longer marked.
  Look look_for(std::uint32_t slot, std::uint64_t cursor, bool entry_due) const noexcept;
  Error too_large(std::uint64_t sequence, std::uint64_t size) const;
  Error no_free_chunk() const;
  template <class OwnerOf, class Recover>
  std::optional<std::uint32_t> take_slot(std::uint32_t count, OwnerOf&& owner_of, Recover&& recover);
  Result<std::uint64_t> claim_sequence(std::uint32_t slot, Deadline deadline);
  // A blocking topic hands out `next` only once every live subscriber has read the message
  // it replaces in the ring (next - capacity): whether the gate (a lower bound of their
  // cursors) says so without looking at them.
  bool room_at_a_glance(std::uint64_t next) const noexcept {
    return record_.overflow != TopicOverflow::block || next <= record_.geometry.capacity ||
           next - record_.geometry.capacity < record_.header->gate.load(std::memory_order_acquire);
  }
  // Whether a blocking topic has room for message `next`: true at once, or false after
  // waiting a round (the caller reads head again).
  template <class Spinner>
  Result<bool> room_for(std::uint64_t next, Spinner& spin, Deadline deadline);
  // The sole publisher's steps (sole()).
  Result<std::uint32_t> take_from_run(std::uint32_t slot);
  void mark_run(std::uint32_t slot);
  void free_run(std::uint32_t slot) noexcept;
  Result<std::uint64_t> commit_sole(std::uint32_t slot, std::uint32_t chunk, std::size_t size, Deadline deadline);
  // Frees `chunk` if it is marked as being written by `slot` (a CAS: a recoverer or a
  // reader's put-back may have changed it).
  void unmark(std::uint32_t slot, std::uint32_t chunk) noexcept;
  // Gives back every chunk marked as being written by `slot`: its publisher has gone.
  void free_marked_chunks(std::uint32_t slot) noexcept;
  // After the sole publisher's death: its last message, if it got as far as numbering its
  // chunk (or the entry), put in the ring and head moved past it.
  void recover_sole_commit() noexcept;
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
  // The sole publisher's marked chunks not used yet, in the order it takes them. Only the
  // holder of the one slot touches it, one thread at a time (the Publisher contract).
  struct Run {
    std::array<std::uint32_t, topic_run> chunks{};
    std::uint32_t next = 0;
    std::uint32_t count = 0;
  };
  Run run_;
  // This process takes part in heavy barriers (platform/barrier.hpp; registered as each
  // publisher and subscriber joins): the side that is about to sleep issues one, so that
  // the frequent side needs no fence of its own (a sole publisher's check for sleepers in
  // commit_sole, a subscriber's cursor store in advance()).
  std::atomic<bool> in_heavy_barriers_{false};
  // Each subscriber slot's hint (sole()): the chunk its last message named for the next,
  // or topic_no_chunk. Process-local; each element used by its slot's subscriber only.
  std::vector<std::uint32_t> hints_;
  std::unique_ptr<std::atomic<std::uint64_t>[]> publisher_terms_;
};

}  // namespace shmbox::detail
