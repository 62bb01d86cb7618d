#include "shmbox/selector.hpp"

#include <algorithm>
#include <array>
#include <thread>

#include "mailbox/mailbox_state.hpp"
#include "mailbox/ring.hpp"
#include "platform/barrier.hpp"
#include "platform/futex.hpp"
#include "mailbox/waiting.hpp"

namespace shmbox {
namespace {

bool ready(detail::MailboxState& state, Interest interest) noexcept {
  return interest == Interest::receive ? detail::ready_to_receive(state) : detail::ready_to_send(state);
}

}  // namespace

Result<std::size_t> Selector::add(Mailbox& mailbox, Interest interest) {
  if (watched_.size() >= max_mailboxes) {
    return std::unexpected(Error{Errc::invalid_argument, "selector",
                                 "watches " + std::to_string(max_mailboxes) + " mailboxes already, its limit"});
  }
  watched_.push_back({&mailbox, interest});
  return watched_.size() - 1;
}

std::size_t Selector::first_ready() const noexcept {
  for (std::size_t i = 0; i < watched_.size(); ++i) {
    const std::size_t index = (next_ + i) % watched_.size();
    if (ready(watched_[index].mailbox->state(), watched_[index].interest)) return index;
  }
  return watched_.size();
}

Result<std::size_t> Selector::wait(Deadline deadline) {
  if (watched_.empty()) return std::unexpected(Error{Errc::invalid_argument, "selector", "watches no mailbox"});
  using Clock = Deadline::clock;
  auto found = [&](std::size_t index) -> Result<std::size_t> {
    next_ = (index + 1) % watched_.size();
    return index;
  };
  if (const auto index = first_ready(); index < watched_.size()) return found(index);
  if (deadline.is_none()) return std::unexpected(Error{Errc::would_block, {}, {}});
  auto timed_out = [] { return std::unexpected(Error{Errc::timeout, "selector", "no mailbox became ready in time"}); };

  if (wait_.mode != WaitMode::sleep) {
    const auto spin_until = Clock::now() + wait_.spin;
    for (std::uint32_t round = 1;; ++round) {
      platform::cpu_relax();
      if (const auto index = first_ready(); index < watched_.size()) return found(index);
      if (round % 16 == 0) {
        const auto now = Clock::now();
        for (const auto& watched : watched_) detail::watch_owner(watched.mailbox->state(), now);
        if (!deadline.is_forever() && now >= deadline.until()) return timed_out();
        if (wait_.mode == WaitMode::adaptive && now >= spin_until) break;
        if (round % 512 == 0) platform::yield_cpu();
      }
    }
  }

  // Sleep on every mailbox's futex at once. Registering as a selector makes wakers
  // wake everyone on that word, so no wake-up meant for us goes to a lone receiver.
  auto counter = [](detail::Header& header, Interest interest) -> std::atomic<std::uint32_t>& {
    return interest == Interest::receive ? header.receive_selectors_sleeping : header.send_selectors_sleeping;
  };
  auto epoch_word = [](detail::Header& header, Interest interest) -> std::atomic<std::uint32_t>& {
    return interest == Interest::receive ? header.data_epoch : header.space_epoch;
  };
  std::array<platform::FutexWaitTarget, max_mailboxes> targets{};
  const std::optional<platform::MonotonicTime> until =
      deadline.is_forever() ? std::nullopt : std::optional{deadline.until()};
  for (;;) {
    for (const auto& watched : watched_) {
      counter(*watched.mailbox->state().header, watched.interest).fetch_add(1, std::memory_order_seq_cst);
    }
    // As in a mailbox wait: the heavy barrier pairs with the wakers' compiler barrier.
    const bool barrier_issued = platform::heavy_barrier();
    for (std::size_t i = 0; i < watched_.size(); ++i) {
      auto& word = epoch_word(*watched_[i].mailbox->state().header, watched_[i].interest);
      targets[i] = {&word, word.load(std::memory_order_acquire)};
    }
    const std::size_t index = first_ready();
    const bool expired = deadline.expired();
    if (index == watched_.size() && !expired) {
      const bool owned = std::any_of(watched_.begin(), watched_.end(),
                                     [](const Watched& watched) { return watched.mailbox->state().owner != 0; });
      const auto nap_until = detail::nap_deadline(until, barrier_issued, owned);
      if (platform::futex_wait_any({targets.data(), watched_.size()}, nap_until) == platform::FutexWait::unsupported) {
        // No futex_waitv (Linux before 5.16): nap briefly and look again.
        std::this_thread::sleep_until(std::min(*nap_until, Clock::now() + std::chrono::milliseconds{1}));
      }
    }
    for (const auto& watched : watched_) {
      counter(*watched.mailbox->state().header, watched.interest).fetch_sub(1, std::memory_order_relaxed);
      detail::watch_owner(watched.mailbox->state(), Clock::now());
    }
    if (index < watched_.size()) return found(index);
    if (expired) return timed_out();
  }
}

}  // namespace shmbox
