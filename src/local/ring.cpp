#include "local/ring.hpp"

#include <algorithm>
#include <optional>

#include "local/chunks.hpp"
#include "local/ring_steps.hpp"
#include "platform/process.hpp"

namespace shmbox::detail {

std::optional<Attempt> take_returned(MappedMailbox& mailbox, std::size_t size_limit, ReceiveClaim& claim) {
  Header& header = *mailbox.header;
  // Acquire: pairs with the put-back's release bump, so the scan sees its RETURNED store.
  std::uint32_t hint = header.returned.load(std::memory_order_acquire);
  std::optional<Attempt> taken;
  for_each_range_behind_head(mailbox, header.head.load(std::memory_order_acquire),
                             [&](std::uint64_t first, std::uint64_t last) {
    for (std::uint64_t position = first; position < last && !taken; ++position) {
      SlotHeader& slot = mailbox.slot(position);
      std::uint64_t word = slot.state.load(std::memory_order_acquire);
      if (word != SlotState::pack(position, Phase::returned, 0)) continue;
      const std::uint32_t size = slot.size.load(std::memory_order_relaxed);
      if (size > mailbox.geometry.max_message_size) {
        taken = fail_slot(mailbox, position, "holds a size over the mailbox's maximum");
      } else if (size > size_limit) {
        taken = fail_too_large(mailbox, size, size_limit);
      } else if (slot.state.compare_exchange_strong(word, SlotState::pack(position, Phase::reading, mailbox.self),
                                                    std::memory_order_acq_rel, std::memory_order_acquire)) {
        claim = ReceiveClaim{position, &slot, size};
        taken = Attempt::claimed;
        // Head is past it, but for a slot put back at head by a recovery that has not
        // moved head yet: our release must not free a slot at head.
        help_head(header, position);
      }
    }
    return !taken;
  });
  if (!taken) header.returned.compare_exchange_strong(hint, 0, std::memory_order_relaxed);
  return taken;
}

void put_back(MappedMailbox& mailbox, const ReceiveClaim& claim) noexcept {
  // The slot is ours alone (READING names us): a plain store hands it back. Release:
  // pairs with a taker's acquire load of the state.
  claim.slot->state.store(SlotState::pack(claim.position, Phase::returned, 0), std::memory_order_release);
  // After the store: a receiver that reads the bump finds the slot (take_returned). Dying
  // between the two leaves it to recovery, which adopts RETURNED slots.
  mailbox.header->returned.fetch_add(1, std::memory_order_release);
  wake_receivers(mailbox, false);
}

bool is_closed(const MappedMailbox& mailbox) noexcept {
  return (mailbox.header->tail.load(std::memory_order_acquire) & closed_bit) != 0;
}

bool receive_may_be_ready(const MappedMailbox& mailbox) noexcept {
  if (mailbox.unbounded() || mailbox.header->returned.load(std::memory_order_relaxed) != 0) return true;
  const std::uint64_t head = mailbox.header->head.load(std::memory_order_relaxed);
  return mailbox.slot(head).state.load(std::memory_order_relaxed) != SlotState::pack(head, Phase::free, 0);
}

bool send_may_be_ready(const MappedMailbox& mailbox) noexcept {
  if (mailbox.unbounded() || zero_capacity(mailbox)) return true;
  const std::uint64_t tail = mailbox.header->tail.load(std::memory_order_relaxed);
  return mailbox.slot(tail).state.load(std::memory_order_relaxed) == SlotState::pack(tail, Phase::free, 0);
}

bool ready_to_receive(const MappedMailbox& mailbox) noexcept {
  const std::uint64_t head = mailbox.header->head.load(std::memory_order_acquire);
  const std::uint64_t tail = mailbox.header->tail.load(std::memory_order_acquire);
  if ((tail & closed_bit) != 0 || mailbox.header->returned.load(std::memory_order_acquire) != 0) return true;
  if (head == tail) return false;
  // Unbounded: a chunk not readable at head's lap means nothing is at head yet, or head
  // is stale; either way ready only if head moved, which the caller's receive sorts out.
  std::optional<ActiveGuard> inside;
  if (mailbox.unbounded()) {
    inside.emplace(mailbox, head);
    if (!mailbox.chunk_of(head).word.load(std::memory_order_acquire).is_readable(mailbox.lap_of(head),
                                                                                mailbox.geometry.chunks.slots)) {
      return mailbox.header->head.load(std::memory_order_acquire) != head;
    }
  }
  const SlotState current = SlotState::unpack(mailbox.slot(head).state.load(std::memory_order_acquire));
  // CANCELLED or READING at head is ready too: the caller's receive skips it (or moves
  // head past it) and may find a message behind it, whose wake-up has already passed.
  return current.position == (head & position_mask) && current.phase != static_cast<std::uint8_t>(Phase::free);
}

bool ready_to_send(const MappedMailbox& mailbox) noexcept {
  const std::uint64_t tail = mailbox.header->tail.load(std::memory_order_acquire);
  if ((tail & closed_bit) != 0 || mailbox.unbounded()) return true;
  // A rendezvous needs a receiver: a sender always finds a slot.
  if (zero_capacity(mailbox)) return mailbox.header->receivers_present.load(std::memory_order_acquire) != 0;
  const SlotState current = SlotState::unpack(mailbox.slot(tail).state.load(std::memory_order_acquire));
  return current.position == (tail & position_mask) && current.phase == static_cast<std::uint8_t>(Phase::free);
}

bool held_by_live_handle(const MappedMailbox& mailbox, std::uint16_t owner) noexcept {
  if (owner == 0 || owner > mailbox.geometry.attach_capacity) return false;
  const std::uint64_t holder = mailbox.attach_entries()[owner - 1].identity.load(std::memory_order_acquire);
  return holder != 0 && (holder & platform::ProcessIdentity::recovering_bit) == 0 &&
         platform::liveness(holder) == platform::Liveness::alive;
}

std::uint64_t queued(const MappedMailbox& mailbox) noexcept {
  const std::uint64_t head = mailbox.header->head.load(std::memory_order_acquire);
  const std::uint64_t tail = mailbox.header->tail.load(std::memory_order_acquire) & ~closed_bit;
  std::uint64_t count = 0;
  // Past head, only published messages: a taken-back, abandoned or dead sender's
  // position is skipped by receivers, and one still being written is not sent yet.
  if (tail - head <= mailbox.geometry.slot_count) {
    for_each_readable_range(mailbox, head, tail, [&](std::uint64_t first, std::uint64_t last) {
      for (std::uint64_t position = first; position < last; ++position) {
        const SlotState current = SlotState::unpack(mailbox.slot(position).state.load(std::memory_order_relaxed));
        count += current.position == (position & position_mask) &&
                 current.phase == static_cast<std::uint8_t>(Phase::full);
      }
      return true;
    });
  }
  // Behind head: put back, or held by a receiver that died (recovery hands it on).
  for_each_range_behind_head(mailbox, head, [&](std::uint64_t first, std::uint64_t last) {
    for (std::uint64_t position = first; position < last; ++position) {
      const std::uint64_t word = mailbox.slot(position).state.load(std::memory_order_relaxed);
      const SlotState current = SlotState::unpack(word);
      if (current.position != (position & position_mask)) continue;
      count += word == SlotState::pack(position, Phase::returned, 0) ||
               (current.phase == static_cast<std::uint8_t>(Phase::reading) &&
                !held_by_live_handle(mailbox, current.owner));
    }
    return true;
  });
  return count;
}


Attempt try_claim_send(MappedMailbox& mailbox, SendClaim& claim) {
  if (mailbox.unbounded()) return try_claim_send_unbounded(mailbox, claim);
  Header& header = *mailbox.header;
  const auto n = static_cast<std::int64_t>(mailbox.geometry.slot_count);
  for (;;) {
    const std::uint64_t tail = header.tail.load(std::memory_order_acquire);
    if ((tail & closed_bit) != 0) return fail_closed(mailbox);
    SlotHeader& slot = mailbox.slot(tail);
    // We will write this line: fetch it for ownership in one transfer, not a shared
    // copy now and an upgrade at the first store.
    __builtin_prefetch(&slot, 1, 3);
    // Acquire: pairs with the release store that freed the slot, so the previous
    // receiver's reads of the payload are done before we overwrite it.
    const SlotState current = SlotState::unpack(slot.state.load(std::memory_order_acquire));
    const std::int64_t distance = position_distance(current.position, tail);
    if (distance == 0 && current.phase == static_cast<std::uint8_t>(Phase::free)) {
      if (current.owner != 0) return fail_slot(mailbox, tail, "is free but has an owner");
      if (claim_tail(mailbox, tail)) {
        claim = SendClaim{tail, &slot};
        return Attempt::claimed;
      }
      continue;
    }
    if (distance == -n) {
      // The previous lap's message still holds the slot: full, unless tail moved.
      if (header.tail.load(std::memory_order_acquire) != tail) continue;
      // A taken-back or abandoned message at head is nobody's: free it rather than
      // wait for a receiver to pass (a zero-capacity mailbox may have none).
      if (current.phase == static_cast<std::uint8_t>(Phase::cancelled) &&
          header.head.load(std::memory_order_acquire) == tail - static_cast<std::uint64_t>(n)) {
        const std::uint64_t position = tail - static_cast<std::uint64_t>(n);
        if (claim_for_receive(mailbox, slot, SlotState::pack(position, Phase::cancelled, current.owner), position,
                              Phase::skipping)) {
          release(mailbox, ReceiveClaim{position, &slot, 0});
        }
        continue;
      }
      return send_not_yet(mailbox);
    }
    // Anything else is a position some other sender already published: our tail is
    // stale, or the slot is corrupt if tail has not moved.
    if (header.tail.load(std::memory_order_acquire) != tail) continue;
    return fail_slot(mailbox, tail, "holds a position that does not fit the ring");
  }
}

Attempt try_claim_send_run(MappedMailbox& mailbox, std::uint64_t wanted, SendClaim& first, std::uint64_t& count) {
  Header& header = *mailbox.header;
  wanted = std::min<std::uint64_t>(wanted, mailbox.geometry.slot_count);
  for (;;) {
    const std::uint64_t tail = header.tail.load(std::memory_order_acquire);
    if ((tail & closed_bit) != 0) return fail_closed(mailbox);
    // Acquire, as a single claim's: the previous lap's reads of each slot are done.
    std::uint64_t free = 0;
    while (free < wanted && mailbox.slot(tail + free).state.load(std::memory_order_acquire) ==
                                SlotState::pack(tail + free, Phase::free, 0)) {
      ++free;
    }
    // One slot or none: the single claim, which also tells a full ring from a corrupt one.
    if (free <= 1) {
      count = 1;
      return try_claim_send(mailbox, first);
    }
    // Visible with the intent (claim_tail's release store), so that a recovery that reads
    // the intent knows the whole run.
    mailbox.entry->send_intent_end.store(tail + free, std::memory_order_relaxed);
    if (claim_tail(mailbox, tail, free)) {
      first = SendClaim{tail, &mailbox.slot(tail)};
      count = free;
      return Attempt::claimed;
    }
  }
}

bool try_claim_next(MappedMailbox& mailbox, std::uint64_t position, std::size_t size_limit,
                    ReceiveClaim& claim) noexcept {
  // A message put back comes before what is at head: the next receive takes it.
  if (mailbox.header->returned.load(std::memory_order_relaxed) != 0) return false;
  SlotHeader& slot = mailbox.slot(position);
  // Acquire: pairs with the sender's release store of FULL.
  std::uint64_t word = slot.state.load(std::memory_order_acquire);
  const SlotState current = SlotState::unpack(word);
  if (current.position != (position & position_mask) || current.phase != static_cast<std::uint8_t>(Phase::full)) {
    return false;
  }
  const std::uint32_t size = slot.size.load(std::memory_order_relaxed);
  if (size > mailbox.geometry.max_message_size || size > size_limit) return false;
  if (!slot.state.compare_exchange_strong(word, SlotState::pack(position, Phase::reading, mailbox.self),
                                          std::memory_order_acq_rel, std::memory_order_acquire)) {
    return false;
  }
  claim = ReceiveClaim{position, &slot, size};
  return true;
}

void advance_head(MappedMailbox& mailbox, std::uint64_t to) noexcept {
  std::uint64_t head = mailbox.header->head.load(std::memory_order_acquire);
  while (head < to &&
         !mailbox.header->head.compare_exchange_weak(head, to, std::memory_order_acq_rel, std::memory_order_acquire)) {
  }
}

void abandon(MappedMailbox& mailbox, const SendClaim& claim) noexcept {
  claim.slot->state.store(SlotState::pack(claim.position, Phase::cancelled, mailbox.self), std::memory_order_release);
  mailbox.entry->send_intent.store(0, std::memory_order_release);  // after CANCELLED, for recovery
  wake_receivers(mailbox, true);  // a receiver waiting for this position moves past it
}

bool take_back(MappedMailbox& mailbox, const SendClaim& claim) noexcept {
  std::uint64_t expected = SlotState::pack(claim.position, Phase::full, mailbox.self);
  const bool taken_back = claim.slot->state.compare_exchange_strong(
      expected, SlotState::pack(claim.position, Phase::cancelled, mailbox.self), std::memory_order_acq_rel,
      std::memory_order_acquire);
  if (taken_back) wake_receivers(mailbox, true);
  return taken_back;
}

bool still_published(const MappedMailbox& mailbox, const SendClaim& claim) noexcept {
  return claim.slot->state.load(std::memory_order_acquire) ==
         SlotState::pack(claim.position, Phase::full, mailbox.self);
}

Attempt try_claim_receive(MappedMailbox& mailbox, std::size_t size_limit, ReceiveClaim& claim) {
  Header& header = *mailbox.header;
  // On head's line, so one more load of a line we read anyway.
  if (header.returned.load(std::memory_order_relaxed) != 0) [[unlikely]] {
    if (const auto taken = take_returned(mailbox, size_limit, claim)) return *taken;
  }
  if (mailbox.unbounded()) return try_claim_receive_unbounded(mailbox, size_limit, claim);
  const std::uint64_t n = mailbox.geometry.slot_count;
  for (;;) {
    const std::uint64_t head = header.head.load(std::memory_order_acquire);
    SlotHeader& slot = mailbox.slot(head);
    // Acquire: pairs with the sender's release store of FULL.
    const std::uint64_t word = slot.state.load(std::memory_order_acquire);
    const SlotState current = SlotState::unpack(word);
    const std::int64_t distance = position_distance(current.position, head);
    if (distance == 0) {
      switch (static_cast<Phase>(current.phase)) {
        case Phase::full:
          if (const auto taken = take_published(mailbox, slot, word, head, size_limit, claim)) return *taken;
          continue;
        case Phase::cancelled:
          // Claimed and freed like a message, so that FREE is stored only after head passed.
          if (claim_for_receive(mailbox, slot, word, head, Phase::skipping)) release(mailbox, ReceiveClaim{head, &slot, 0});
          continue;
        case Phase::reading:
        case Phase::skipping:
        case Phase::returned:  // put back after its claim moved head: our head is stale
          // Another receiver claimed the slot and has not moved head yet.
          help_head(header, head);
          continue;
        case Phase::free: {
          // Not published yet. Only now is tail needed: its line is the senders'.
          const std::uint64_t tail_word = header.tail.load(std::memory_order_acquire);
          const std::uint64_t tail = tail_word & ~closed_bit;
          if (head == tail) {
            if ((tail_word & closed_bit) != 0) return closed_and_drained(mailbox, size_limit, claim);
            return receive_not_yet(mailbox, size_limit, claim);
          }
          if (tail - head > n) {
            if (header.head.load(std::memory_order_acquire) != head) continue;  // stale head
            return fail_apart(mailbox, head, tail);
          }
          return receive_not_yet(mailbox, size_limit, claim);  // claimed by a sender that is still writing it
        }
      }
      return fail_slot(mailbox, head, "has an invalid phase");
    }
    if (distance == -static_cast<std::int64_t>(n)) {
      // The previous lap's message is still being read: nothing at head yet (no
      // sender can claim head before that slot is free).
      const std::uint64_t tail_word = header.tail.load(std::memory_order_acquire);
      const std::uint64_t tail = tail_word & ~closed_bit;
      if (tail - head > n) {
        if (header.head.load(std::memory_order_acquire) != head) continue;  // stale head
        return fail_apart(mailbox, head, tail);
      }
      if (tail == head && (tail_word & closed_bit) != 0) return closed_and_drained(mailbox, size_limit, claim);
      return receive_not_yet(mailbox, size_limit, claim);
    }
    if (header.head.load(std::memory_order_acquire) != head) continue;  // stale head
    return fail_slot(mailbox, head, "holds a position that does not fit the ring");
  }
}

}  // namespace shmbox::detail
