// Waiting on several futex words at once: a Selector's mailboxes, an endpoint's lanes
// and its doorbell. Spins, then sleeps in futex_waitv on every word (Linux 5.16+).
#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <optional>
#include <span>
#include <thread>

#include "local/mailbox_state.hpp"
#include "local/ownership.hpp"
#include "local/waiting.hpp"
#include "platform/barrier.hpp"
#include "platform/futex.hpp"

namespace shmbox::detail {

inline constexpr std::size_t max_watched_words = 128;  // futex_waitv's limit

struct WatchedWord {
  std::atomic<std::uint32_t>* epoch;     // bumped by whoever makes the thing ready
  std::atomic<std::uint32_t>* sleepers;  // counts us while we sleep: wakers then wake all
  MailboxState* mailbox;                 // whose owner to watch; null for none
};

// Calls `find_ready` (returning std::optional<std::size_t>) until it finds something or
// the deadline passes (nullopt). A wake-up cannot be lost: we count ourselves on every
// word, issue the heavy barrier, read every epoch, and only then look once more before
// sleeping (design.md, Waiting and waking).
template <class FindReady>
std::optional<std::size_t> wait_any(const WaitPolicy& policy, Deadline deadline, std::span<const WatchedWord> words,
                                    FindReady&& find_ready) {
  using Clock = Deadline::clock;
  if (auto index = find_ready()) return index;
  if (deadline.is_none()) return std::nullopt;
  auto watch_owners = [&](Clock::time_point now) {
    for (const WatchedWord& word : words) {
      if (word.mailbox != nullptr) watch_owner(*word.mailbox, now);
    }
  };
  if (policy.mode != WaitMode::sleep) {
    const auto spin_until = Clock::now() + policy.spin;
    for (std::uint32_t round = 1;; ++round) {
      platform::cpu_relax();
      if (auto index = find_ready()) return index;
      if (round % 16 == 0) {
        const auto now = Clock::now();
        watch_owners(now);
        if (!deadline.is_forever() && now >= deadline.until()) return std::nullopt;
        if (policy.mode == WaitMode::adaptive && now >= spin_until) break;
        if (round % 512 == 0) platform::yield_cpu();
      }
    }
  }
  const bool owned = std::any_of(words.begin(), words.end(), [](const WatchedWord& word) {
    return word.mailbox != nullptr && word.mailbox->owner != 0;
  });
  std::array<platform::FutexWaitTarget, max_watched_words> targets{};
  const std::size_t count = std::min(words.size(), max_watched_words);
  const std::optional<platform::MonotonicTime> until =
      deadline.is_forever() ? std::nullopt : std::optional{deadline.until()};
  for (;;) {
    for (std::size_t i = 0; i < count; ++i) words[i].sleepers->fetch_add(1, std::memory_order_seq_cst);
    const bool barrier_issued = platform::heavy_barrier();
    for (std::size_t i = 0; i < count; ++i) targets[i] = {words[i].epoch, words[i].epoch->load(std::memory_order_acquire)};
    const auto index = find_ready();
    const bool expired = deadline.expired();
    if (!index && !expired) {
      const auto nap_until = nap_deadline(until, barrier_issued, owned);
      if (platform::futex_wait_any({targets.data(), count}, nap_until) == platform::FutexWait::unsupported) {
        // No futex_waitv (Linux before 5.16): nap briefly and look again.
        std::this_thread::sleep_until(std::min(*nap_until, Clock::now() + std::chrono::milliseconds{1}));
      }
    }
    for (std::size_t i = 0; i < count; ++i) words[i].sleepers->fetch_sub(1, std::memory_order_relaxed);
    watch_owners(Clock::now());
    if (index) return index;
    if (expired) return std::nullopt;
  }
}

}  // namespace shmbox::detail
