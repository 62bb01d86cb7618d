// Steps of one ring attempt that the bounded and zero-capacity ring (ring.cpp) and the
// unbounded one (chunks.cpp) share: for those two files only. Inline, so that each file
// keeps them inside its claim loops, as when the two were one.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "local/recovery.hpp"
#include "local/ring.hpp"

namespace shmbox::detail {

// Failures build their Error out of line: keeping string code out of the claim
// loops keeps those loops small (fewer saved registers, less code in the cache).
[[gnu::cold, gnu::noinline]] inline Attempt fail_slot(MappedMailbox& mailbox, std::uint64_t position, const char* what) {
  return mailbox.fail(mailbox.corrupt("slot for position " + std::to_string(position) + " " + what), Attempt::failed);
}

[[gnu::cold, gnu::noinline]] inline Attempt fail_closed(MappedMailbox& mailbox) {
  return mailbox.fail(mailbox.closed_error(), Attempt::failed);
}

[[gnu::cold, gnu::noinline]] inline Attempt fail_too_large(MappedMailbox& mailbox, std::uint32_t size, std::size_t limit) {
  // We may have been woken for this message: pass the wake-up on to a receiver that
  // can take it, or it would sleep past a message it could have had.
  wake_receivers(mailbox, false);
  return mailbox.fail(Error{Errc::too_large, mailbox.object,
                          "next message is " + std::to_string(size) + " bytes, the buffer holds " + std::to_string(limit)},
                    Attempt::failed);
}

[[gnu::cold, gnu::noinline]] inline Attempt fail_apart(MappedMailbox& mailbox, std::uint64_t head, std::uint64_t tail) {
  return mailbox.fail(mailbox.corrupt("head " + std::to_string(head) + " and tail " + std::to_string(tail) +
                                  " are further apart than the capacity"),
                    Attempt::failed);
}

// Claims a message put back (RETURNED) behind head (or at it), the oldest first. nullopt
// when there is none; the hint is then cleared, unless a put-back bumped it since we read
// it (its RETURNED store came before its bump, so a scan after reading the bump sees it).
[[gnu::noinline]] std::optional<Attempt> take_returned(MappedMailbox& mailbox, std::size_t size_limit,
                                                      ReceiveClaim& claim);

inline bool zero_capacity(const MappedMailbox& mailbox) noexcept { return mailbox.geometry.buffering == Buffering::zero; }

// Claims `position` for a receiver: moves its slot FULL -> READING with one CAS, then
// advances head (anyone who finds READING at head advances it too). Claiming on the
// slot's own word fetches its line exclusively once: the copy reads it and the release
// writes it without another transfer. It is also the one word a zero-capacity sender's
// take-back CAS races with, so exactly one of them wins. The state then names the
// reader, for recovery if it dies. Returns false if another receiver (or a take-back) won.
// A CANCELLED slot is claimed `as` SKIPPING: recovery must never deliver it.
inline bool claim_for_receive(MappedMailbox& mailbox, SlotHeader& slot, std::uint64_t word, std::uint64_t position,
                              Phase as = Phase::reading) noexcept {
  // acq_rel: pairs with the sender's release store of FULL (and its take-back CAS).
  if (!slot.state.compare_exchange_strong(word, SlotState::pack(position, as, mailbox.self),
                                          std::memory_order_acq_rel, std::memory_order_acquire)) {
    return false;
  }
  help_head(*mailbox.header, position);
  if (zero_capacity(mailbox)) wake_senders(mailbox, true);  // the sender waits for this pick-up
  return true;
}

// An attempt that cannot proceed. If its waiter has waited a while, it first looks for
// a dead process holding what it waits for (recovery.hpp); a receiver may come back
// with a message a dead receiver held.
inline Attempt receive_not_yet(MappedMailbox& mailbox, std::size_t size_limit, ReceiveClaim& claim) {
  if (!mailbox.recovery_requested) return Attempt::not_yet;
  mailbox.recovery_requested = false;
  return recover(mailbox, &claim, size_limit) ? Attempt::claimed : Attempt::not_yet;
}

// Closed and nothing at head: but a message a dead receiver held is queued too, and
// receivers drain everything queued before they get Closed.
inline Attempt closed_and_drained(MappedMailbox& mailbox, std::size_t size_limit, ReceiveClaim& claim) {
  if (recover(mailbox, &claim, size_limit)) return Attempt::claimed;
  // It may have put back one too large for us: that is TooLarge, not Closed.
  if (mailbox.header->returned.load(std::memory_order_acquire) != 0) {
    if (const auto taken = take_returned(mailbox, size_limit, claim)) return *taken;
  }
  return fail_closed(mailbox);
}

inline Attempt send_not_yet(MappedMailbox& mailbox) {
  if (mailbox.recovery_requested) {
    mailbox.recovery_requested = false;
    (void)recover(mailbox, nullptr, 0);
  }
  return Attempt::not_yet;
}

// A sender's claim of the `count` positions from `tail`: records the intent, then CASes
// tail (release: the intent is visible before tail moves; a run's end, stored before the
// intent, with it). False if another sender took the position first, or if close set bit
// 63. Every intent store is a release, so that a recovery that reads it also sees our
// earlier publishes (recovery.cpp).
inline bool claim_tail(MappedMailbox& mailbox, std::uint64_t tail, std::uint64_t count = 1) noexcept {
  mailbox.entry->send_intent.store(tail + 1, std::memory_order_release);
  std::uint64_t expected = tail;
  if (mailbox.header->tail.compare_exchange_strong(expected, tail + count, std::memory_order_acq_rel,
                                                   std::memory_order_acquire)) {
    return true;
  }
  // Not ours: an intent left standing would make recoveries wait for whoever did claim
  // those positions, for as long as we wait (a full ring) if that claimer died.
  mailbox.entry->send_intent.store(0, std::memory_order_release);
  mailbox.entry->send_intent_end.store(0, std::memory_order_relaxed);
  return false;
}

// A receiver found `head` published (FULL) in `slot`: checks the size, then claims it.
// nullopt when another receiver (or a take-back) won the slot: look again.
inline std::optional<Attempt> take_published(MappedMailbox& mailbox, SlotHeader& slot, std::uint64_t word,
                                             std::uint64_t head, std::size_t size_limit, ReceiveClaim& claim) {
  // Written by the sender before its release store of FULL; the claim CAS confirms
  // the slot did not change since.
  const std::uint32_t size = slot.size.load(std::memory_order_relaxed);
  if (size > mailbox.geometry.max_message_size) return fail_slot(mailbox, head, "holds a size over the mailbox's maximum");
  if (size > size_limit) return fail_too_large(mailbox, size, size_limit);
  // Our release will write this line: start taking ownership as soon as the message
  // is seen (never while polling, which would pull the line away from the sender).
  __builtin_prefetch(&slot, 1, 3);
  if (!claim_for_receive(mailbox, slot, word, head)) return std::nullopt;
  claim = ReceiveClaim{head, &slot, size};
  return Attempt::claimed;
}

}  // namespace shmbox::detail
