// The lock algorithm on a validated lock record: fast paths on one word, a first-come
// first-served queue (Lamport's bakery over fetch-and-add tickets) when anyone waits, and
// the reclaim of what dead participants held. docs/design.md ("Locks") has the proof
// sketch and what a kill at each point leaves.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "sharing/lock_layout.hpp"
#include "shmbox/lock.hpp"
#include "shmbox/segment.hpp"
#include "shmbox/wait.hpp"

namespace shmbox::detail {

enum class Granted : std::uint8_t {
  yes,
  owner_died,       // granted; the previous holder died holding it (died_holding says who)
  not_recoverable,  // not granted: a death was never repaired
  expired,          // not granted: the deadline passed
};

struct Grant {
  Granted outcome;
  pid_t died_holding = 0;
};

// Checks what is at `offset` of `mapping` against the lock layout: the slot count (the
// only one used afterwards), or why it is not a lock this build can use.
Result<std::uint32_t> validate_lock_record(const Segment& mapping, std::size_t offset, const std::string& object);

class RobustLock {
 public:
  // `record` points at a lock whose identity has been validated for `slot_count` slots.
  RobustLock(std::byte* record, std::uint32_t slot_count) noexcept;

  // Writes a new lock into `record` (lock_bytes(slot_count) bytes, nobody using it).
  static void initialize(std::byte* record, std::uint32_t slot_count) noexcept;

  // Takes a free slot for `process` (reclaiming dead ones if none is free): the slot, or
  // nullopt when every slot belongs to a live process.
  std::optional<std::uint32_t> claim_slot(std::uint64_t process) noexcept;
  // Gives a slot back; its owner holds nothing through it.
  void free_slot(std::uint32_t slot) noexcept;

  Grant acquire(std::uint32_t slot, LockMode mode, Deadline deadline) noexcept;
  void release(std::uint32_t slot, LockMode mode) noexcept;
  // Whether `slot` was repairing (and now the lock is consistent).
  bool mark_consistent(std::uint32_t slot) noexcept;

  struct Snapshot {
    LockConsistency consistency;
    pid_t died_holding;
    std::vector<LockParticipant> holders;
    std::vector<LockParticipant> waiters;
  };
  Snapshot snapshot() const;
  std::uint32_t slot_count() const noexcept { return slot_count_; }

 private:
  enum class Turn : std::uint8_t { mine, not_yet, someone_choosing };
  Turn queue_turn(std::uint32_t slot, std::uint64_t number, bool exclusive) const noexcept;
  bool try_take(std::uint32_t slot, LockMode mode) noexcept;
  bool readers_present() const noexcept;
  void withdraw_share(std::uint32_t slot) noexcept;
  void leave_queue(std::uint32_t slot) noexcept;
  // Wait for the reader shares to go, holding the writer's place.
  bool drain_readers(std::uint32_t slot, Deadline deadline) noexcept;
  // The writer is in: its death from now on may leave the data half-written.
  bool mark_entered() noexcept;
  Grant check_consistency(std::uint32_t slot, LockMode mode) noexcept;
  // Reclaims every participant that blocks `slot` and whose process is dead.
  void reclaim_dead_blockers(std::uint32_t slot) noexcept;
  void reclaim_if_dead(std::uint32_t slot) noexcept;
  void wake_all() noexcept;
  // Sleeps until the wake word moves from `seen`, the deadline, or the next look at
  // the holders' liveness is due; whether the deadline has passed.
  bool nap(std::uint32_t seen, Deadline deadline, Deadline::clock::time_point& next_check,
           std::uint32_t slot) noexcept;

  std::atomic<std::uint64_t>& reader_word(std::uint32_t slot) const noexcept { return readers_[slot / 64]; }
  static std::uint64_t reader_bit(std::uint32_t slot) noexcept { return std::uint64_t{1} << (slot % 64); }

  LockHeader* header_;
  std::atomic<std::uint64_t>* readers_;
  LockSlot* slots_;
  std::uint32_t slot_count_;
};

}  // namespace shmbox::detail
