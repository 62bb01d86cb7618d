// Robust process-shared locks: exclusive (writer) and shared (reader) access to data that
// several processes use, which survives a holder killed at any instruction.
//
//   auto lock = shmbox::Lock::open_or_create("orders").value();   // standalone, 0600
//   {
//     auto held = lock.lock().value();                  // exclusive, waits as long as it takes
//     if (held.owner_died()) { repair(); (void)held.mark_consistent(); }
//     update();
//   }                                                   // released here
//   auto reading = lock.lock(shmbox::LockMode::shared, 250ms);   // Errc::timeout after 250 ms
//
// A lock lives alone under a name (/dev/shm/shmbox.lk.<name>) or inside a segment, at an
// offset the segment's users agree on (create_in / open_in), beside the data it guards.
//
// Guarantees (docs/design.md, "Locks"):
//   - A holder that dies, however it dies, stops holding within lock_liveness_interval of
//     the moment someone waits for the lock: waiters look at the holders' liveness (pid and
//     start time, so a recycled pid is not taken for the dead holder).
//   - After an exclusive holder died, the next taker (exactly one) gets a held lock whose
//     owner_died() is true: the guarded data may be half-written. It repairs the data and
//     calls mark_consistent(); if it releases without doing so, every later lock() fails
//     with Errc::not_recoverable until the lock is removed and made again, as with robust
//     POSIX mutexes. A shared holder that dies wrote nothing: its share is just reclaimed.
//   - First come, first served: a request waits only for those that came before it and
//     conflict with it. A writer that waits holds back every reader that comes after it,
//     so a stream of readers cannot starve it; readers that come in turn share the lock.
//
// Thread contract: a Lock is one participant. It holds the lock at most once at a time (a
// second lock() on a handle that holds it fails with Errc::invalid_argument rather than
// deadlocking); threads that each take the lock use a handle each. A HeldLock may outlive
// its Lock (the handle stays until the hold goes); a Lock and its HeldLock are used by one
// thread at a time.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "shmbox/error.hpp"
#include "shmbox/wait.hpp"

namespace shmbox {

namespace detail {
struct LockHandle;
struct LockFactory;
}

enum class LockMode : std::uint8_t { exclusive, shared };

// How long a dead holder can keep waiters waiting: they look at the holders this often.
inline constexpr std::chrono::milliseconds lock_liveness_interval{20};

struct LockOptions {
  // Permission bits of a standalone lock, applied exactly (umask does not narrow them).
  mode_t mode = 0600;
  // Handles that may hold or wait for the lock at once (each takes a slot on its first
  // lock() and keeps it until it is destroyed); 1 to 4096.
  std::uint32_t max_handles = 64;
};

// What the guarded data is known to be.
enum class LockConsistency : std::uint8_t {
  consistent,       // every holder released normally, or the last death was repaired
  owner_died,       // a holder died holding it; the next taker will be told
  repairing,        // the taker that was told holds it and has not marked it consistent
  not_recoverable,  // a taker that was told released without repairing: lock() fails
};

struct LockParticipant {
  pid_t pid = 0;
  LockMode mode = LockMode::exclusive;
  bool alive = false;  // false: dead, its place not yet reclaimed (the next waiter will)
};

struct LockStatus {
  std::string name;  // standalone: the name; inside a segment: "segment@offset"
  std::uint32_t max_handles = 0;
  LockConsistency consistency = LockConsistency::consistent;
  pid_t died_holding = 0;  // while owner_died or repairing: the holder that died
  std::vector<LockParticipant> holders;
  std::vector<LockParticipant> waiters;  // in the order they will be served
  mode_t mode = 0;       // standalone locks: the file's permission bits
  uid_t owner_uid = 0;   // standalone locks: the file's owner
};

class Lock;

// The lock held by one Lock handle; released when destroyed (or by unlock()).
class [[nodiscard]] HeldLock {
 public:
  HeldLock(HeldLock&& other) noexcept;
  HeldLock& operator=(HeldLock&& other) noexcept;
  HeldLock(const HeldLock&) = delete;
  HeldLock& operator=(const HeldLock&) = delete;
  ~HeldLock();

  LockMode mode() const noexcept { return mode_; }
  // The previous holder died holding the lock: what it guards may be half-written.
  bool owner_died() const noexcept { return died_holding_ != 0; }
  // That holder's pid (0 unless owner_died()).
  pid_t died_holding() const noexcept { return died_holding_; }
  // Declares the guarded data repaired. Errc::invalid_argument unless owner_died().
  [[nodiscard]] Result<void> mark_consistent();
  // Releases now; a second call, or a call on a moved-from HeldLock, does nothing.
  void unlock() noexcept;

 private:
  friend class Lock;
  HeldLock(detail::LockHandle* handle, LockMode mode, pid_t died_holding, std::uint64_t fork_generation) noexcept
      : handle_(handle), mode_(mode), died_holding_(died_holding), fork_generation_(fork_generation) {}
  // Whether this is the hold itself, not a forked child's copy of it (which holds nothing).
  bool ours() const noexcept;
  // The Lock's handle. Not shared ownership: its reference count would cost two atomic
  // operations per lock and unlock; the handle counts its holds instead and outlives the
  // Lock while one is out (detail::LockHandle).
  detail::LockHandle* handle_ = nullptr;
  LockMode mode_ = LockMode::exclusive;
  pid_t died_holding_ = 0;
  std::uint64_t fork_generation_ = 0;
};

class Lock {
 public:
  // A standalone lock under `name` (segment naming rules). create: Errc::already_exists
  // if taken. open_or_create: the lock if it exists (options then ignored), else a new one.
  [[nodiscard]] static Result<Lock> create(std::string_view name, const LockOptions& options = {});
  [[nodiscard]] static Result<Lock> open(std::string_view name);
  [[nodiscard]] static Result<Lock> open_or_create(std::string_view name, const LockOptions& options = {});
  // Unlinks the name. Handles open on it keep working with each other.
  [[nodiscard]] static Result<void> remove(std::string_view name);
  [[nodiscard]] static Result<LockStatus> stat(std::string_view name);
  // Names of the standalone locks.
  [[nodiscard]] static std::vector<std::string> list();

  // A lock inside the segment `segment_name`, at `offset` (a multiple of 64) and
  // footprint(max_handles) bytes long; the handle maps the segment itself. create_in
  // writes a new lock there (nobody may use that lock meanwhile); open_in checks that a
  // lock is there. Shrinking the segment below the lock while it is used is the caller's
  // error, as for any data in it.
  [[nodiscard]] static Result<Lock> create_in(std::string_view segment_name, std::size_t offset,
                                              const LockOptions& options = {});
  [[nodiscard]] static Result<Lock> open_in(std::string_view segment_name, std::size_t offset);
  [[nodiscard]] static Result<LockStatus> stat_in(std::string_view segment_name, std::size_t offset);
  // Bytes a lock for `max_handles` handles takes in a segment.
  [[nodiscard]] static std::size_t footprint(std::uint32_t max_handles) noexcept;

  // Takes the lock in `mode`, waiting until `deadline` (Errc::would_block for no_wait,
  // Errc::timeout after a timed wait). Errc::not_recoverable after an unrepaired death,
  // Errc::no_space when max_handles handles already hold slots, Errc::corrupt when the
  // lock's memory fails validation.
  [[nodiscard]] Result<HeldLock> lock(LockMode mode = LockMode::exclusive, Deadline deadline = forever);
  [[nodiscard]] Result<HeldLock> try_lock(LockMode mode = LockMode::exclusive) { return lock(mode, no_wait); }

  [[nodiscard]] Result<LockStatus> status() const;
  // The name (standalone) or "segment@offset"; "" when moved from.
  const std::string& name() const noexcept;

  // A moved-from Lock holds nothing: lock() fails with Errc::invalid_argument.
  Lock(Lock&& other) noexcept;
  Lock& operator=(Lock&& other) noexcept;
  Lock(const Lock&) = delete;
  Lock& operator=(const Lock&) = delete;
  ~Lock();

 private:
  friend struct detail::LockFactory;
  explicit Lock(std::shared_ptr<detail::LockHandle> handle) noexcept : handle_(std::move(handle)) {}
  static Error moved_from();
  std::shared_ptr<detail::LockHandle> handle_;
};

}  // namespace shmbox
