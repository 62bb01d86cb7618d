// Process identity that survives pid reuse: a pid together with the process's
// start time (clock ticks since boot, /proc/<pid>/stat field 22). A recycled pid
// has a later start time, so it never passes for the process it replaced.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>

#include "platform/unique_fd.hpp"

namespace shmbox::platform {

struct ProcessIdentity {
  pid_t pid = 0;
  std::uint64_t start_time = 0;

  // Packed into one word so that it can be claimed with a single CAS:
  // start time (low 32 bits) << 32 | pid. Never 0 for a real process.
  std::uint64_t packed() const noexcept {
    return (start_time & 0xffffffffu) << 32 | static_cast<std::uint32_t>(pid);
  }
  static ProcessIdentity unpack(std::uint64_t word) noexcept {
    return {static_cast<pid_t>(word & 0xffffffffu), word >> 32};
  }
  // The top of the pid field (pids stay below 2^22). Owner records set it beside the
  // identity of a process that recovers a dead holder's record under that identity, so
  // that others tell a recovery from a holder and wait for it.
  static constexpr std::uint64_t recovering_bit = std::uint64_t{1} << 31;
  static constexpr std::uint64_t without_recovering_bit(std::uint64_t word) noexcept { return word & ~recovering_bit; }
};

// This process (re-read after fork: the child has its own pid and start time).
ProcessIdentity current_process() noexcept;

// Counts the forks between the first call and now in this process's line: a handle that
// took something in shared memory for its process compares it, so that a forked child
// (which inherits the handle but is another process) takes its own rather than use its
// parent's. One atomic load.
std::uint64_t fork_generation() noexcept;

// The start time of `pid`, or nullopt if no such process exists.
std::optional<std::uint64_t> process_start_time(pid_t pid) noexcept;

// Why `packed` cannot be a process's identity as its creator recorded it
// (ProcessIdentity::packed()), or nullopt if it can: a pid outside the kernel's range,
// or no start time. For owner records, which must never pass garbage off as a dead
// owner (design.md, Ownership).
std::optional<std::string> implausible_process(std::uint64_t packed);

// The largest pid the kernel may hand out now: /proc/sys/kernel/pid_max less one (read
// on every call: it can be raised while we run), or the kernel's own limit, 2^22 - 1,
// if that cannot be read.
pid_t max_pid();

enum class Liveness { alive, dead };

// Whether the process `packed` describes still runs (same pid, same start time).
Liveness liveness(std::uint64_t packed) noexcept;
// Whether the process `packed` describes is stopped (SIGSTOP, a debugger): alive, but it
// will not move until something else lets it.
bool stopped(std::uint64_t packed) noexcept;

// The command name of the process `packed` describes (/proc/<pid>/comm), or "" if it
// is not running.
std::string process_name(std::uint64_t packed);

// The kernel's random id of this boot (a UUID), or "" if /proc cannot tell: with a
// file's device and inode it names one file among every machine's and boot's.
std::string boot_id();

// Watches one process for its exit. A check is one poll() on a pidfd (no /proc read),
// cheap enough for a waiter to make every few milliseconds. The pidfd is opened by pid
// and then the start time is checked, so a recycled pid is seen as the exit it is.
class ProcessWatch {
 public:
  ProcessWatch() noexcept = default;
  explicit ProcessWatch(std::uint64_t packed) noexcept;

  bool exited() noexcept;

 private:
  std::uint64_t packed_ = 0;
  UniqueFd pidfd_;  // invalid: no pidfd support, fall back to liveness()
  bool exited_ = false;
};

}  // namespace shmbox::platform
