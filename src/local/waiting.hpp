// How a mailbox call waits between attempts: spin, then sleep on the header's
// futex, as the handle's WaitPolicy says. design.md ("Waiting and waking") gives
// the protocol that keeps wake-ups from being lost.
#pragma once

#include <atomic>
#include <optional>

#include "local/mailbox_state.hpp"
#include "local/ownership.hpp"
#include "local/ring.hpp"
#include "platform/barrier.hpp"
#include "platform/futex.hpp"

namespace shmbox::detail {

enum class Side { receive, send };

struct WaitWords {
  std::atomic<std::uint32_t>& sleeping;
  std::atomic<std::uint32_t>& epoch;
};

inline WaitWords wait_words(MailboxState& state, Side side) noexcept {
  Header& header = *state.header;
  if (side == Side::receive) return {header.receivers_sleeping, header.data_epoch};
  return {header.senders_sleeping, header.space_epoch};
}

inline Error would_block_error() { return Error{Errc::would_block, {}, {}}; }  // allocation-free
inline Error timeout_error(const MailboxState& state) { return Error{Errc::timeout, state.object, "timed out"}; }

// Counts a receiver inside a receive that waits (zero-capacity senders look at it).
class PresenceGuard {
 public:
  // Only zero-capacity senders read the count: other mailboxes skip the shared write.
  PresenceGuard(MailboxState& state, Side side) noexcept
      : counter_(side == Side::receive && state.geometry.buffering == Buffering::zero
                     ? &state.header->receivers_present
                     : nullptr) {
    if (counter_ != nullptr) {
      counter_->fetch_add(1, std::memory_order_seq_cst);
      wake_senders(state, true);  // a selector waiting to send here may go now
    }
  }
  ~PresenceGuard() {
    if (counter_ != nullptr) counter_->fetch_sub(1, std::memory_order_relaxed);
  }
  PresenceGuard(const PresenceGuard&) = delete;
  PresenceGuard& operator=(const PresenceGuard&) = delete;

 private:
  std::atomic<std::uint32_t>* counter_;
};

// How long one sleep may last. Never more than 100 ms: a sleeper re-checks at least
// that often, so that a wake-up lost to a peer that died or scribbled over the
// counters makes it late, not stuck. A process-owned mailbox's owner is looked at
// every owner_check_interval: its exit wakes nobody. Without membarrier a waker with
// light checks could miss us altogether: then 2 ms.
inline std::optional<platform::MonotonicTime> nap_deadline(std::optional<platform::MonotonicTime> until,
                                                           bool barrier_issued, bool owned) {
  const std::chrono::milliseconds longest = !barrier_issued ? std::chrono::milliseconds{2}
                                            : owned         ? owner_check_interval
                                                            : std::chrono::milliseconds{100};
  const auto cap = Deadline::clock::now() + longest;
  return until && *until < cap ? until : std::optional{cap};
}

enum class Waited : std::uint8_t {
  done,     // the attempt claimed what it wanted
  failed,   // it failed: the error is in state.failure
  expired,  // the deadline passed first (at once for no_wait)
};

// Repeats `attempt` (returning Attempt) until it claims or fails, or the deadline
// passes. Spins, then sleeps, as the handle's WaitPolicy says.
// `may_be_ready` is a cheap hint read while spinning (ring.hpp); a full attempt runs
// when it says so, and every 64 rounds regardless (that is how a spinner sees close).
template <class AttemptFn>
Waited wait_for(MailboxState& state, Side side, Deadline deadline, AttemptFn&& attempt) {
  const auto may_be_ready = side == Side::receive ? receive_may_be_ready : send_may_be_ready;
  using Clock = Deadline::clock;
  auto outcome = [](Attempt attempt_result) { return attempt_result == Attempt::claimed ? Waited::done : Waited::failed; };
  if (const Attempt first = attempt(); first != Attempt::not_yet) return outcome(first);
  if (deadline.is_none()) return Waited::expired;

  const PresenceGuard present{state, side};
  const WaitPolicy& policy = state.wait;
  // A waiter asks for recovery every so often: what it waits for may be held by a
  // process that died (design.md, Crash recovery).
  constexpr auto recovery_interval = std::chrono::milliseconds{50};
  auto next_recovery = Clock::now() + recovery_interval;
  if (policy.mode != WaitMode::sleep) {
    const auto spin_until = Clock::now() + policy.spin;
    for (std::uint32_t round = 1;; ++round) {
      platform::cpu_relax();
      if (round % 64 == 0 || may_be_ready(state)) {
        if (const Attempt result = attempt(); result != Attempt::not_yet) return outcome(result);
      }
      if (round % 16 == 0) {
        const auto now = Clock::now();
        if (!deadline.is_forever() && now >= deadline.until()) return Waited::expired;
        if (policy.mode == WaitMode::adaptive && now >= spin_until) break;
        if (now >= next_recovery) {
          state.recovery_requested = true;
          next_recovery = now + recovery_interval;
        }
        watch_owner(state, now);
        // On an overcommitted machine the peer we wait for may need this CPU.
        if (round % 512 == 0) platform::yield_cpu();
      }
    }
  }

  const WaitWords words = wait_words(state, side);
  const std::optional<platform::MonotonicTime> until =
      deadline.is_forever() ? std::nullopt : std::optional{deadline.until()};
  for (;;) {
    // Count ourselves, make that visible to every waker (the heavy barrier pairs with
    // their compiler barrier), read the epoch, then re-check (design.md, Waiting).
    words.sleeping.fetch_add(1, std::memory_order_seq_cst);
    const bool barrier_issued = platform::heavy_barrier();
    const std::uint32_t epoch = words.epoch.load(std::memory_order_acquire);
    const Attempt result = attempt();
    if (result != Attempt::not_yet || deadline.expired()) {
      words.sleeping.fetch_sub(1, std::memory_order_relaxed);
      return result != Attempt::not_yet ? outcome(result) : Waited::expired;
    }
    platform::futex_wait(words.epoch, epoch, nap_deadline(until, barrier_issued, state.owner != 0));
    words.sleeping.fetch_sub(1, std::memory_order_relaxed);
    const auto now = Clock::now();
    if (now >= next_recovery) {
      state.recovery_requested = true;
      next_recovery = now + recovery_interval;
    }
    watch_owner(state, now);
  }
}

}  // namespace shmbox::detail
