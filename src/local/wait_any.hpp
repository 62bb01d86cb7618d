// Waiting on several futex words at once: a Selector's mailboxes, an endpoint's lanes
// and its doorbell. The waiting itself is waiting.hpp's (futex_waitv on every word).
#pragma once

#include <algorithm>
#include <optional>
#include <span>

#include "local/mapped_mailbox.hpp"
#include "local/ownership.hpp"
#include "local/waiting.hpp"
#include "platform/barrier.hpp"
#include "platform/futex.hpp"

namespace shmbox::detail {

// Calls `find_ready` (returning std::optional<std::size_t>) until it finds something or
// the deadline passes (nullopt), sleeping on every word at once (wait_until_done).
template <class FindReady>
std::optional<std::size_t> wait_any(const WaitPolicy& policy, Deadline deadline, std::span<const WatchedWord> words,
                                    FindReady&& find_ready) {
  if (auto index = find_ready()) return index;
  if (deadline.is_none()) return std::nullopt;
  const bool owned = std::any_of(words.begin(), words.end(), [](const WatchedWord& word) {
    return word.mailbox != nullptr && word.mailbox->owner != 0;
  });
  return wait_until_done(
      policy, 0, deadline, words, owned, find_ready, [] { return true; },
      [&](Deadline::clock::time_point now) {
        for (const WatchedWord& word : words) {
          if (word.mailbox != nullptr) watch_owner(*word.mailbox, now);
        }
      });
}

}  // namespace shmbox::detail
