// How long a call may wait (Deadline), and how it waits (WaitPolicy).
//
//   mailbox.send(bytes);                        // blocks until done
//   mailbox.send(bytes, shmbox::no_wait);       // Errc::would_block at once if it cannot complete
//   mailbox.send(bytes, 250ms);                 // Errc::timeout after 250 ms
//   mailbox.send(bytes, steady_clock::now() + 1s);
//
// Deadlines are on std::chrono::steady_clock (CLOCK_MONOTONIC): changing the wall
// clock neither stretches nor cuts a wait.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>

namespace shmbox {

class Deadline {
 public:
  using clock = std::chrono::steady_clock;

  // Waits at most `timeout` from now (zero or negative: do not wait).
  // Timeouts beyond a century (milliseconds::max() among them) mean forever, rather
  // than overflowing the clock's arithmetic.
  template <class Rep, class Period>
  Deadline(std::chrono::duration<Rep, Period> timeout) noexcept  // NOLINT: implicit on purpose
      : kind_(timeout <= timeout.zero()                                         ? Kind::none
              : std::chrono::duration<double>(timeout).count() > century_seconds ? Kind::forever
                                                                                 : Kind::until),
        until_(kind_ == Kind::until ? clock::now() + std::chrono::ceil<clock::duration>(
                                                         std::chrono::duration<double>(timeout))
                                    : clock::time_point{}) {}
  constexpr Deadline(clock::time_point until) noexcept : kind_(Kind::until), until_(until) {}  // NOLINT

  static constexpr Deadline forever() noexcept { return Deadline{Kind::forever}; }
  static constexpr Deadline none() noexcept { return Deadline{Kind::none}; }

  constexpr bool is_forever() const noexcept { return kind_ == Kind::forever; }
  constexpr bool is_none() const noexcept { return kind_ == Kind::none; }
  // The point in time it expires; meaningful unless is_forever() or is_none().
  constexpr clock::time_point until() const noexcept { return until_; }
  bool expired() const noexcept {
    return kind_ == Kind::none || (kind_ == Kind::until && clock::now() >= until_);
  }

 private:
  static constexpr double century_seconds = 100.0 * 365 * 24 * 3600;
  enum class Kind : std::uint8_t { forever, none, until };
  constexpr explicit Deadline(Kind kind) noexcept : kind_(kind) {}
  Kind kind_;
  clock::time_point until_{};
};

inline constexpr Deadline forever = Deadline::forever();
inline constexpr Deadline no_wait = Deadline::none();

// The earlier of two deadlines (no_wait counts as the earliest).
[[nodiscard]] constexpr Deadline earlier(Deadline one, Deadline other) noexcept {
  if (one.is_none() || other.is_forever()) return one;
  if (other.is_none() || one.is_forever()) return other;
  return one.until() < other.until() ? one : other;
}

// A kernel wake-up costs tens of microseconds; a waiter that expects its peer to
// answer sooner than that does better to spin first.
enum class WaitMode : std::uint8_t {
  busy_poll,  // spin until done or the deadline; lowest latency, burns a CPU while waiting
  adaptive,   // spin for `spin`, then sleep in the kernel (the default)
  sleep,      // sleep in the kernel at once; no CPU while waiting
};

struct WaitPolicy {
  WaitMode mode = WaitMode::adaptive;
  // adaptive: how long to spin for a message of no bytes. A peer busy copying a large
  // message in or out is worth waiting for by spinning too: see spin_for.
  std::chrono::microseconds spin{20};

  // The spin budget while messages of `message_size` bytes pass (a handle goes by the last
  // one it sent or received): `spin` plus a quarter of a nanosecond a byte, about five
  // times what copying such a message in and out costs, so that a waiter whose peer is
  // still copying spins on rather than paying a kernel wake-up. 20 us grows to 36 us at
  // 64 KiB and 282 us at 1 MiB.
  constexpr std::chrono::nanoseconds spin_for(std::size_t message_size) const noexcept {
    return spin + std::chrono::nanoseconds{static_cast<std::int64_t>(message_size / 4)};
  }
};

}  // namespace shmbox
