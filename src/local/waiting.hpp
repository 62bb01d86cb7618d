// How a mailbox call waits between attempts: spin, then sleep on the header's
// futex, as the handle's WaitPolicy says. design.md ("Waiting and waking") gives
// the protocol that keeps wake-ups from being lost.
#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <optional>
#include <span>
#include <thread>

#include "local/mapped_mailbox.hpp"
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

inline WaitWords wait_words(MappedMailbox& mailbox, Side side) noexcept {
  Header& header = *mailbox.header;
  if (side == Side::receive) return {header.receivers_sleeping, header.data_epoch};
  return {header.senders_sleeping, header.space_epoch};
}

inline Error would_block_error() { return Error{Errc::would_block, {}, {}}; }  // allocation-free
inline Error timeout_error(const MappedMailbox& mailbox) { return Error{Errc::timeout, mailbox.object, "timed out"}; }

// A receiver inside a receive that waits, counted on each zero-capacity mailbox it waits
// on: their senders look at the count (a non-blocking rendezvous send goes ahead only
// while a receiver is there), and a selector waiting to send may go now. Other mailboxes
// are left alone: they skip the shared write.
class ReceiverPresence {
 public:
  explicit ReceiverPresence(std::span<MappedMailbox* const> mailboxes) noexcept : mailboxes_(mailboxes) {
    for (MappedMailbox* mailbox : mailboxes_) {
      if (!counted(*mailbox)) continue;
      mailbox->header->receivers_present.fetch_add(1, std::memory_order_seq_cst);
      wake_senders(*mailbox, true);
    }
  }
  ~ReceiverPresence() {
    for (MappedMailbox* mailbox : mailboxes_) {
      if (counted(*mailbox)) mailbox->header->receivers_present.fetch_sub(1, std::memory_order_relaxed);
    }
  }
  ReceiverPresence(const ReceiverPresence&) = delete;
  ReceiverPresence& operator=(const ReceiverPresence&) = delete;

 private:
  static bool counted(const MappedMailbox& mailbox) noexcept { return mailbox.geometry.buffering == Buffering::zero; }
  std::span<MappedMailbox* const> mailboxes_;
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

// A futex word to sleep on, and how its wakers learn that someone sleeps: a count of
// the sleepers (they wake everyone while it is not zero) or, for a topic's event words,
// a bit of the word itself (set by each sleeper; the waker that moves the word on clears
// it and wakes everyone). And the mailbox whose owner to watch meanwhile.
struct WatchedWord {
  std::atomic<std::uint32_t>* epoch;     // moved on by whoever makes the thing ready
  std::atomic<std::uint32_t>* sleepers;  // counts us while we sleep; null: sleeping_bit instead
  MappedMailbox* mailbox;                 // whose owner to watch; null for none
  std::uint32_t sleeping_bit = 0;        // with no sleepers count: the bit of epoch that says so
};

inline constexpr std::size_t max_watched_words = 128;  // futex_waitv's limit

// The one way to wait, for a single mailbox and for many, once a first attempt has found
// that the caller must wait: `attempt` (returning an optional: empty while it cannot
// proceed) runs again as, by the policy, we spin,
// running it whenever `may_be_ready` (a cheap hint) says so and every 64 rounds regardless
// (that is how a spinner sees close); then we sleep on `words`. A wake-up cannot be lost:
// we count ourselves on every word, issue the heavy barrier, read every epoch, and only
// then attempt once more before sleeping (design.md, Waiting and waking). `tick(now)` runs
// every 16 spins and after every sleep (owner checks, recovery requests). Empty once the
// deadline passed (at once for no_wait). `message_size` scales the spin (WaitPolicy::spin_for).
template <class AttemptFn, class HintFn, class TickFn>
auto wait_until_done(const WaitPolicy& policy, std::size_t message_size, Deadline deadline,
                     std::span<const WatchedWord> words, bool owned, AttemptFn&& attempt, HintFn&& may_be_ready,
                     TickFn&& tick) -> decltype(attempt()) {
  using Clock = Deadline::clock;
  if (policy.mode != WaitMode::sleep) {
    const auto spin_until = Clock::now() + policy.spin_for(message_size);
    for (std::uint32_t round = 1;; ++round) {
      platform::cpu_relax();
      if (round % 64 == 0 || may_be_ready()) {
        if (auto done = attempt()) return done;
      }
      if (round % 16 == 0) {
        const auto now = Clock::now();
        if (!deadline.is_forever() && now >= deadline.until()) return std::nullopt;
        if (policy.mode == WaitMode::adaptive && now >= spin_until) break;
        tick(now);
        // On an overcommitted machine the peer we wait for may need this CPU.
        if (round % 512 == 0) platform::yield_cpu();
      }
    }
  }
  const std::size_t count = std::min(words.size(), max_watched_words);
  // Not zeroed: a wait on one mailbox would clear 2 KiB each time it goes to sleep; the first
  // `count` entries are written before every use.
  std::array<platform::FutexWaitTarget, max_watched_words> targets;
  const std::optional<platform::MonotonicTime> until =
      deadline.is_forever() ? std::nullopt : std::optional{deadline.until()};
  for (;;) {
    for (std::size_t i = 0; i < count; ++i) {
      if (words[i].sleepers != nullptr) {
        words[i].sleepers->fetch_add(1, std::memory_order_seq_cst);
      } else {
        words[i].epoch->fetch_or(words[i].sleeping_bit, std::memory_order_seq_cst);
      }
    }
    const bool barrier_issued = platform::heavy_barrier();
    for (std::size_t i = 0; i < count; ++i) targets[i] = {words[i].epoch, words[i].epoch->load(std::memory_order_acquire)};
    auto done = attempt();
    const bool expired = !done && deadline.expired();
    if (!done && !expired) {
      const auto nap_until = nap_deadline(until, barrier_issued, owned);
      if (count == 1) {
        platform::futex_wait(*targets[0].word, targets[0].expected, nap_until);
      } else if (platform::futex_wait_any({targets.data(), count}, nap_until) == platform::FutexWait::unsupported) {
        // No futex_waitv (Linux before 5.16): nap briefly and look again.
        std::this_thread::sleep_until(std::min(*nap_until, Clock::now() + std::chrono::milliseconds{1}));
      }
    }
    // A sleeping bit stays set: the next waker clears it (and makes one needless wake call).
    for (std::size_t i = 0; i < count; ++i) {
      if (words[i].sleepers != nullptr) words[i].sleepers->fetch_sub(1, std::memory_order_relaxed);
    }
    if (done || expired) return done;
    tick(Clock::now());
  }
}

enum class Waited : std::uint8_t {
  done,     // the attempt claimed what it wanted
  failed,   // it failed: the error is in mailbox.failure
  expired,  // the deadline passed first (at once for no_wait)
};

// Repeats `attempt` (returning Attempt) until it claims or fails, or the deadline
// passes, on one mailbox's side (wait_until_done). `may_be_ready` is ring.hpp's cheap hint.
template <class AttemptFn>
Waited wait_for(MappedMailbox& mailbox, Side side, Deadline deadline, AttemptFn&& attempt) {
  const auto may_be_ready = side == Side::receive ? receive_may_be_ready : send_may_be_ready;
  if (const Attempt first = attempt(); first != Attempt::not_yet) {
    return first == Attempt::claimed ? Waited::done : Waited::failed;
  }
  if (deadline.is_none()) return Waited::expired;
  MappedMailbox* const receiving[] = {&mailbox};
  const ReceiverPresence present{std::span{receiving, side == Side::receive ? 1u : 0u}};
  // A waiter asks for recovery every so often: what it waits for may be held by a
  // process that died (design.md, Crash recovery).
  constexpr auto recovery_interval = std::chrono::milliseconds{50};
  auto next_recovery = Deadline::clock::now() + recovery_interval;
  const WaitWords sides = wait_words(mailbox, side);
  const WatchedWord word{&sides.epoch, &sides.sleeping, &mailbox};
  const auto outcome = wait_until_done(
      mailbox.wait, mailbox.recent_message_size, deadline, std::span{&word, 1}, mailbox.owner != 0,
      [&]() -> std::optional<Waited> {
        const Attempt result = attempt();
        if (result == Attempt::not_yet) return std::nullopt;
        return result == Attempt::claimed ? Waited::done : Waited::failed;
      },
      [&] { return may_be_ready(mailbox); },
      [&](Deadline::clock::time_point now) {
        if (now >= next_recovery) {
          mailbox.recovery_requested = true;
          next_recovery = now + recovery_interval;
        }
        watch_owner(mailbox, now);
      });
  return outcome.value_or(Waited::expired);
}

}  // namespace shmbox::detail
