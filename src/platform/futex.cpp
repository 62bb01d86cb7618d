#include "platform/futex.hpp"

#include <linux/futex.h>
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <ctime>
#include <array>

namespace shmbox::platform {
namespace {

static_assert(sizeof(std::atomic<std::uint32_t>) == sizeof(std::uint32_t));
static_assert(std::atomic<std::uint32_t>::is_always_lock_free);

timespec to_timespec(MonotonicTime time) noexcept {
  const auto since_epoch = time.time_since_epoch();
  const auto seconds = std::chrono::duration_cast<std::chrono::seconds>(since_epoch);
  const auto nanoseconds = std::chrono::duration_cast<std::chrono::nanoseconds>(since_epoch - seconds);
  if (since_epoch.count() < 0) return timespec{0, 0};
  return timespec{static_cast<time_t>(seconds.count()), static_cast<long>(nanoseconds.count())};
}

FutexWait classify(long result) noexcept {
  if (result == 0) return FutexWait::woken;
  switch (errno) {
    case EAGAIN: return FutexWait::value_changed;
    case ETIMEDOUT: return FutexWait::timed_out;
    case ENOSYS: return FutexWait::unsupported;
    default: return FutexWait::interrupted;  // EINTR; callers re-check and retry
  }
}

std::uint32_t* address(const std::atomic<std::uint32_t>& word) noexcept {
  return const_cast<std::uint32_t*>(reinterpret_cast<const std::uint32_t*>(&word));
}

}  // namespace

FutexWait futex_wait(const std::atomic<std::uint32_t>& word, std::uint32_t expected,
                     std::optional<MonotonicTime> deadline) noexcept {
  // FUTEX_WAIT_BITSET takes an absolute deadline on CLOCK_MONOTONIC (no
  // FUTEX_CLOCK_REALTIME), so wall-clock jumps never stretch or cut a wait.
  timespec absolute{};
  if (deadline) absolute = to_timespec(*deadline);
  const long result = ::syscall(SYS_futex, address(word), FUTEX_WAIT_BITSET, expected,
                                deadline ? &absolute : nullptr, nullptr, FUTEX_BITSET_MATCH_ANY);
  return classify(result);
}

void futex_wake(const std::atomic<std::uint32_t>& word, int count) noexcept {
  ::syscall(SYS_futex, address(word), FUTEX_WAKE, count, nullptr, nullptr, 0);
}

FutexWait futex_wait_any(std::span<const FutexWaitTarget> targets, std::optional<MonotonicTime> deadline) noexcept {
  std::array<futex_waitv, FUTEX_WAITV_MAX> waiters{};
  if (targets.empty() || targets.size() > waiters.size()) return FutexWait::interrupted;
  for (std::size_t i = 0; i < targets.size(); ++i) {
    waiters[i].val = targets[i].expected;
    waiters[i].uaddr = reinterpret_cast<std::uintptr_t>(address(*targets[i].word));
    waiters[i].flags = FUTEX_32;  // shared: no FUTEX_PRIVATE_FLAG
  }
  timespec absolute{};
  if (deadline) absolute = to_timespec(*deadline);
  const long result = ::syscall(SYS_futex_waitv, waiters.data(), targets.size(), 0,
                                deadline ? &absolute : nullptr, CLOCK_MONOTONIC);
  return result >= 0 ? FutexWait::woken : classify(result);
}

void yield_cpu() noexcept { ::sched_yield(); }

}  // namespace shmbox::platform
