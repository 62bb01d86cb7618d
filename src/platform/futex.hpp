// Shared (inter-process) futexes. Never FUTEX_PRIVATE_FLAG: the words live in
// memory mapped by several processes.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <optional>
#include <span>

namespace shmbox::platform {

using MonotonicTime = std::chrono::steady_clock::time_point;  // CLOCK_MONOTONIC on Linux

enum class FutexWait { woken, value_changed, timed_out, interrupted, unsupported };

// Sleeps while *word == expected, until woken or `deadline` (nullopt: no deadline).
FutexWait futex_wait(const std::atomic<std::uint32_t>& word, std::uint32_t expected,
                     std::optional<MonotonicTime> deadline) noexcept;

// Wakes up to `count` sleepers on `word`.
void futex_wake(const std::atomic<std::uint32_t>& word, int count) noexcept;

struct FutexWaitTarget {
  const std::atomic<std::uint32_t>* word;
  std::uint32_t expected;
};

// Sleeps until any of `targets` (at most 128) is woken or differs from its expected value.
FutexWait futex_wait_any(std::span<const FutexWaitTarget> targets, std::optional<MonotonicTime> deadline) noexcept;

// A hint to the CPU that this is a spin-wait loop.
inline void cpu_relax() noexcept { __builtin_ia32_pause(); }

void yield_cpu() noexcept;

}  // namespace shmbox::platform
