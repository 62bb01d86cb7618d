// Process identity that survives pid reuse: a pid together with the process's
// start time (clock ticks since boot, /proc/<pid>/stat field 22). A recycled pid
// has a later start time, so it never passes for the process it replaced.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>

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
};

// This process (re-read after fork: the child has its own pid and start time).
ProcessIdentity current_process() noexcept;

// The start time of `pid`, or nullopt if no such process exists.
std::optional<std::uint64_t> process_start_time(pid_t pid) noexcept;

enum class Liveness { alive, dead };

// Whether the process `packed` describes still runs (same pid, same start time).
Liveness liveness(std::uint64_t packed) noexcept;

}  // namespace shmbox::platform
