#include "mailbox/ring.hpp"

#include <climits>
#include <optional>

#include "platform/barrier.hpp"
#include "platform/futex.hpp"
#include "mailbox/recovery.hpp"
#include "platform/shm.hpp"
#include "segment_factory.hpp"

namespace shmbox::detail {
namespace {

// Failures build their Error out of line: keeping string code out of the claim
// loops keeps those loops small (fewer saved registers, less code in the cache).
[[gnu::cold, gnu::noinline]] Attempt fail_slot(MailboxState& state, std::uint64_t position, const char* what) {
  return state.fail(state.corrupt("slot for position " + std::to_string(position) + " " + what), Attempt::failed);
}

[[gnu::cold, gnu::noinline]] Attempt fail_closed(MailboxState& state) {
  return state.fail(state.closed_error(), Attempt::failed);
}

[[gnu::cold, gnu::noinline]] Attempt fail_too_large(MailboxState& state, std::uint32_t size, std::size_t limit) {
  // We may have been woken for this message: pass the wake-up on to a receiver that
  // can take it, or it would sleep past a message it could have had.
  wake_receivers(state, false);
  return state.fail(Error{Errc::too_large, state.object,
                          "next message is " + std::to_string(size) + " bytes, the buffer holds " + std::to_string(limit)},
                    Attempt::failed);
}

[[gnu::cold, gnu::noinline]] Attempt fail_apart(MailboxState& state, std::uint64_t head, std::uint64_t tail) {
  return state.fail(state.corrupt("head " + std::to_string(head) + " and tail " + std::to_string(tail) +
                                  " are further apart than the capacity"),
                    Attempt::failed);
}

bool zero_capacity(const MailboxState& state) noexcept { return state.geometry.buffering == Buffering::zero; }

// Whether any handle may be reading a slot in [first, first + count) (see ActiveGuard).
bool chunk_in_use(const MailboxState& state, std::uint64_t first, std::uint64_t count) noexcept {
  if (!platform::heavy_barrier()) return true;  // cannot tell: assume so
  const auto* table = state.attach_entries();
  for (std::uint32_t i = 0; i < state.geometry.attach_capacity; ++i) {
    if (&table[i] == state.entry) continue;  // the releaser reads nothing while it releases
    const std::uint64_t active = table[i].active.load(std::memory_order_acquire);
    if (active != 0 && active - 1 >= first && active - 1 < first + count) return true;
  }
  return false;
}

// Moves head past `head` if nobody has yet; the claim was made on the slot.
void help_head(Header& header, std::uint64_t head) noexcept {
  std::uint64_t expected = head;
  header.head.compare_exchange_strong(expected, head + 1, std::memory_order_acq_rel, std::memory_order_acquire);
}

// Claims `position` for a receiver: moves its slot FULL -> READING with one CAS, then
// advances head (anyone who finds READING at head advances it too). Claiming on the
// slot's own word fetches its line exclusively once: the copy reads it and the release
// writes it without another transfer. It is also the one word a zero-capacity sender's
// take-back CAS races with, so exactly one of them wins. The state then names the
// reader, for recovery if it dies. Returns false if another receiver (or a take-back) won.
// A CANCELLED slot is claimed `as` SKIPPING: recovery must never deliver it.
bool claim_for_receive(MailboxState& state, SlotHeader& slot, std::uint64_t word, std::uint64_t position,
                       Phase as = Phase::reading) noexcept {
  // acq_rel: pairs with the sender's release store of FULL (and its take-back CAS).
  if (!slot.state.compare_exchange_strong(word, SlotState::pack(position, as, state.self),
                                          std::memory_order_acq_rel, std::memory_order_acquire)) {
    return false;
  }
  help_head(*state.header, position);
  if (zero_capacity(state)) wake_senders(state, true);  // the sender waits for this pick-up
  return true;
}

// Punches chunks that were given back while someone was inside them and so kept
// their memory, now that nobody is. Each is held in a "being worked on" state while
// it is punched, so that no sender backs it meanwhile. Returns whether any memory was
// given back.
bool reclaim_idle_chunks(MailboxState& state) noexcept {
  const auto& chunks = state.geometry.chunks;
  const std::uint64_t chunk_bytes = std::uint64_t{chunks.slots} * state.geometry.slot_stride;
  auto* table = state.chunk_table();
  bool reclaimed = false;
  for (std::uint64_t c = 0; c < chunks.count; ++c) {
    ChunkWord word = table[c].word.load(std::memory_order_acquire);
    if (!word.holds_kept_memory()) continue;
    const ChunkWord working = word.being_reclaimed_by(state.chunk_tag);
    if (!table[c].word.compare_exchange_strong(word, working, std::memory_order_acq_rel)) continue;
    // Released after lap L - 1: its readers, if any, are at positions of that lap.
    const std::uint64_t lap = word.lap();
    const std::uint64_t first = lap * state.geometry.slot_count + c * chunks.slots;
    const bool punched = !chunk_in_use(state, first, chunks.slots) &&
                         platform::release_range(SegmentFactory::descriptor(*state.mapping),
                                                 state.geometry.slots_offset + c * chunk_bytes, chunk_bytes);
    table[c].word.store(punched ? word.without_memory_kept() : word, std::memory_order_release);
    reclaimed = reclaimed || punched;
  }
  return reclaimed;
}

// An attempt that cannot proceed. If its waiter has waited a while, it first looks for
// a dead process holding what it waits for (recovery.hpp); a receiver may come back
// with a message a dead receiver held.
Attempt receive_not_yet(MailboxState& state, ReceiveClaim& claim) {
  if (!state.recovery_requested) return Attempt::not_yet;
  state.recovery_requested = false;
  return recover(state, &claim) ? Attempt::claimed : Attempt::not_yet;
}

// Closed and nothing at head: but a message a dead receiver held is queued too, and
// receivers drain everything queued before they get Closed.
Attempt closed_and_drained(MailboxState& state, ReceiveClaim& claim) {
  if (recover(state, &claim)) return Attempt::claimed;
  return fail_closed(state);
}

Attempt send_not_yet(MailboxState& state) {
  if (state.recovery_requested) {
    state.recovery_requested = false;
    (void)recover(state, nullptr);
  }
  return Attempt::not_yet;
}

// A sender's claim of position `tail`: records the intent, then CASes tail (release:
// the intent is visible before tail moves). False if another sender took the
// position first, or if close set bit 63. Every intent store is a release, so that a
// recovery that reads it also sees our earlier publishes (recovery.cpp).
bool claim_tail(MailboxState& state, std::uint64_t tail) noexcept {
  state.entry->send_intent.store(tail + 1, std::memory_order_release);
  std::uint64_t expected = tail;
  return state.header->tail.compare_exchange_strong(expected, tail + 1, std::memory_order_acq_rel,
                                                    std::memory_order_acquire);
}

// A receiver found `head` published (FULL) in `slot`: checks the size, then claims it.
// nullopt when another receiver (or a take-back) won the slot: look again.
std::optional<Attempt> take_published(MailboxState& state, SlotHeader& slot, std::uint64_t word, std::uint64_t head,
                                      std::size_t size_limit, ReceiveClaim& claim) {
  // Written by the sender before its release store of FULL; the claim CAS confirms
  // the slot did not change since.
  const std::uint32_t size = slot.size.load(std::memory_order_relaxed);
  if (size > state.geometry.max_message_size) return fail_slot(state, head, "holds a size over the mailbox's maximum");
  if (size > size_limit) return fail_too_large(state, size, size_limit);
  // Our release will write this line: start taking ownership as soon as the message
  // is seen (never while polling, which would pull the line away from the sender).
  __builtin_prefetch(&slot, 1, 3);
  if (!claim_for_receive(state, slot, word, head)) return std::nullopt;
  claim = ReceiveClaim{head, &slot, size};
  return Attempt::claimed;
}

// Claims a message put back (RETURNED) behind head, the oldest first. nullopt when there
// is none; the hint is then cleared, unless a put-back bumped it since we read it (its
// RETURNED store came before its bump, so a scan after reading the bump sees it).
[[gnu::noinline]] std::optional<Attempt> take_returned(MailboxState& state, std::size_t size_limit,
                                                      ReceiveClaim& claim) {
  Header& header = *state.header;
  // Acquire: pairs with the put-back's release bump, so the scan sees its RETURNED store.
  std::uint32_t hint = header.returned.load(std::memory_order_acquire);
  std::optional<Attempt> taken;
  for_each_range_behind_head(state, header.head.load(std::memory_order_acquire),
                             [&](std::uint64_t first, std::uint64_t last) {
    for (std::uint64_t position = first; position < last && !taken; ++position) {
      SlotHeader& slot = state.slot(position);
      std::uint64_t word = slot.state.load(std::memory_order_acquire);
      if (word != SlotState::pack(position, Phase::returned, 0)) continue;
      const std::uint32_t size = slot.size.load(std::memory_order_relaxed);
      if (size > state.geometry.max_message_size) {
        taken = fail_slot(state, position, "holds a size over the mailbox's maximum");
      } else if (size > size_limit) {
        taken = fail_too_large(state, size, size_limit);
      } else if (slot.state.compare_exchange_strong(word, SlotState::pack(position, Phase::reading, state.self),
                                                    std::memory_order_acq_rel, std::memory_order_acquire)) {
        claim = ReceiveClaim{position, &slot, size};
        taken = Attempt::claimed;
      }
    }
    return !taken;
  });
  if (!taken) header.returned.compare_exchange_strong(hint, 0, std::memory_order_relaxed);
  return taken;
}

}  // namespace

void put_back(MailboxState& state, const ReceiveClaim& claim) noexcept {
  // The slot is ours alone (READING names us): a plain store hands it back. Release:
  // pairs with a taker's acquire load of the state.
  claim.slot->state.store(SlotState::pack(claim.position, Phase::returned, 0), std::memory_order_release);
  // After the store: a receiver that reads the bump finds the slot (take_returned). Dying
  // between the two leaves it to recovery, which adopts RETURNED slots.
  state.header->returned.fetch_add(1, std::memory_order_release);
  wake_receivers(state, false);
}

bool is_closed(const MailboxState& state) noexcept {
  return (state.header->tail.load(std::memory_order_acquire) & closed_bit) != 0;
}

bool receive_may_be_ready(const MailboxState& state) noexcept {
  if (state.unbounded() || state.header->returned.load(std::memory_order_relaxed) != 0) return true;
  const std::uint64_t head = state.header->head.load(std::memory_order_relaxed);
  return state.slot(head).state.load(std::memory_order_relaxed) != SlotState::pack(head, Phase::free, 0);
}

bool send_may_be_ready(const MailboxState& state) noexcept {
  if (state.unbounded() || zero_capacity(state)) return true;
  const std::uint64_t tail = state.header->tail.load(std::memory_order_relaxed);
  return state.slot(tail).state.load(std::memory_order_relaxed) == SlotState::pack(tail, Phase::free, 0);
}

bool ready_to_receive(const MailboxState& state) noexcept {
  const std::uint64_t head = state.header->head.load(std::memory_order_acquire);
  const std::uint64_t tail = state.header->tail.load(std::memory_order_acquire);
  if ((tail & closed_bit) != 0 || state.header->returned.load(std::memory_order_acquire) != 0) return true;
  if (head == tail) return false;
  // Unbounded: a chunk not readable at head's lap means nothing is at head yet, or head
  // is stale; either way ready only if head moved, which the caller's receive sorts out.
  std::optional<ActiveGuard> inside;
  if (state.unbounded()) {
    inside.emplace(state, head);
    if (!state.chunk_of(head).word.load(std::memory_order_acquire).is_readable(state.lap_of(head),
                                                                                state.geometry.chunks.slots)) {
      return state.header->head.load(std::memory_order_acquire) != head;
    }
  }
  const SlotState current = SlotState::unpack(state.slot(head).state.load(std::memory_order_acquire));
  // CANCELLED or READING at head is ready too: the caller's receive skips it (or moves
  // head past it) and may find a message behind it, whose wake-up has already passed.
  return current.position == (head & position_mask) && current.phase != static_cast<std::uint8_t>(Phase::free);
}

bool ready_to_send(const MailboxState& state) noexcept {
  const std::uint64_t tail = state.header->tail.load(std::memory_order_acquire);
  if ((tail & closed_bit) != 0 || state.unbounded()) return true;
  // A rendezvous needs a receiver: a sender always finds a slot.
  if (zero_capacity(state)) return state.header->receivers_present.load(std::memory_order_acquire) != 0;
  const SlotState current = SlotState::unpack(state.slot(tail).state.load(std::memory_order_acquire));
  return current.position == (tail & position_mask) && current.phase == static_cast<std::uint8_t>(Phase::free);
}

bool held_by_live_handle(const MailboxState& state, std::uint16_t owner) noexcept {
  if (owner == 0 || owner > state.geometry.attach_capacity) return false;
  const std::uint64_t holder = state.attach_entries()[owner - 1].identity.load(std::memory_order_acquire);
  return holder != 0 && (holder & attach_recovering_bit) == 0 && platform::liveness(holder) == platform::Liveness::alive;
}

std::uint64_t queued(const MailboxState& state) noexcept {
  const std::uint64_t head = state.header->head.load(std::memory_order_acquire);
  const std::uint64_t tail = state.header->tail.load(std::memory_order_acquire) & ~closed_bit;
  std::uint64_t count = 0;
  // Past head, only published messages: a taken-back, abandoned or dead sender's
  // position is skipped by receivers, and one still being written is not sent yet.
  if (tail - head <= state.geometry.slot_count) {
    for_each_readable_range(state, head, tail, [&](std::uint64_t first, std::uint64_t last) {
      for (std::uint64_t position = first; position < last; ++position) {
        const SlotState current = SlotState::unpack(state.slot(position).state.load(std::memory_order_relaxed));
        count += current.position == (position & position_mask) &&
                 current.phase == static_cast<std::uint8_t>(Phase::full);
      }
      return true;
    });
  }
  // Behind head: put back, or held by a receiver that died (recovery hands it on).
  for_each_range_behind_head(state, head, [&](std::uint64_t first, std::uint64_t last) {
    for (std::uint64_t position = first; position < last; ++position) {
      const std::uint64_t word = state.slot(position).state.load(std::memory_order_relaxed);
      const SlotState current = SlotState::unpack(word);
      if (current.position != (position & position_mask)) continue;
      count += word == SlotState::pack(position, Phase::returned, 0) ||
               (current.phase == static_cast<std::uint8_t>(Phase::reading) &&
                !held_by_live_handle(state, current.owner));
    }
    return true;
  });
  return count;
}

namespace {

Attempt try_claim_send_unbounded(MailboxState& state, SendClaim& claim);
Attempt try_claim_receive_unbounded(MailboxState& state, std::size_t size_limit, ReceiveClaim& claim);

}  // namespace

Attempt try_claim_send(MailboxState& state, SendClaim& claim) {
  if (state.unbounded()) return try_claim_send_unbounded(state, claim);
  Header& header = *state.header;
  const auto n = static_cast<std::int64_t>(state.geometry.slot_count);
  for (;;) {
    const std::uint64_t tail = header.tail.load(std::memory_order_acquire);
    if ((tail & closed_bit) != 0) return fail_closed(state);
    SlotHeader& slot = state.slot(tail);
    // We will write this line: fetch it for ownership in one transfer, not a shared
    // copy now and an upgrade at the first store.
    __builtin_prefetch(&slot, 1, 3);
    // Acquire: pairs with the release store that freed the slot, so the previous
    // receiver's reads of the payload are done before we overwrite it.
    const SlotState current = SlotState::unpack(slot.state.load(std::memory_order_acquire));
    const std::int64_t distance = position_distance(current.position, tail);
    if (distance == 0 && current.phase == static_cast<std::uint8_t>(Phase::free)) {
      if (current.owner != 0) return fail_slot(state, tail, "is free but has an owner");
      if (claim_tail(state, tail)) {
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
        if (claim_for_receive(state, slot, SlotState::pack(position, Phase::cancelled, current.owner), position,
                              Phase::skipping)) {
          release(state, ReceiveClaim{position, &slot, 0});
        }
        continue;
      }
      return send_not_yet(state);
    }
    // Anything else is a position some other sender already published: our tail is
    // stale, or the slot is corrupt if tail has not moved.
    if (header.tail.load(std::memory_order_acquire) != tail) continue;
    return fail_slot(state, tail, "holds a position that does not fit the ring");
  }
}

void abandon(MailboxState& state, const SendClaim& claim) noexcept {
  claim.slot->state.store(SlotState::pack(claim.position, Phase::cancelled, state.self), std::memory_order_release);
  state.entry->send_intent.store(0, std::memory_order_release);  // after CANCELLED, for recovery
  wake_receivers(state, true);  // a receiver waiting for this position moves past it
}

bool take_back(MailboxState& state, const SendClaim& claim) noexcept {
  std::uint64_t expected = SlotState::pack(claim.position, Phase::full, state.self);
  const bool taken_back = claim.slot->state.compare_exchange_strong(
      expected, SlotState::pack(claim.position, Phase::cancelled, state.self), std::memory_order_acq_rel,
      std::memory_order_acquire);
  if (taken_back) wake_receivers(state, true);
  return taken_back;
}

bool still_published(const MailboxState& state, const SendClaim& claim) noexcept {
  return claim.slot->state.load(std::memory_order_acquire) ==
         SlotState::pack(claim.position, Phase::full, state.self);
}

Attempt try_claim_receive(MailboxState& state, std::size_t size_limit, ReceiveClaim& claim) {
  Header& header = *state.header;
  // On head's line, so one more load of a line we read anyway.
  if (header.returned.load(std::memory_order_relaxed) != 0) [[unlikely]] {
    if (const auto taken = take_returned(state, size_limit, claim)) return *taken;
  }
  if (state.unbounded()) return try_claim_receive_unbounded(state, size_limit, claim);
  const std::uint64_t n = state.geometry.slot_count;
  for (;;) {
    const std::uint64_t head = header.head.load(std::memory_order_acquire);
    SlotHeader& slot = state.slot(head);
    // Acquire: pairs with the sender's release store of FULL.
    const std::uint64_t word = slot.state.load(std::memory_order_acquire);
    const SlotState current = SlotState::unpack(word);
    const std::int64_t distance = position_distance(current.position, head);
    if (distance == 0) {
      switch (static_cast<Phase>(current.phase)) {
        case Phase::full:
          if (const auto taken = take_published(state, slot, word, head, size_limit, claim)) return *taken;
          continue;
        case Phase::cancelled:
          // Claimed and freed like a message, so that FREE is stored only after head passed.
          if (claim_for_receive(state, slot, word, head, Phase::skipping)) release(state, ReceiveClaim{head, &slot, 0});
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
            if ((tail_word & closed_bit) != 0) return closed_and_drained(state, claim);
            return receive_not_yet(state, claim);
          }
          if (tail - head > n) {
            if (header.head.load(std::memory_order_acquire) != head) continue;  // stale head
            return fail_apart(state, head, tail);
          }
          return receive_not_yet(state, claim);  // claimed by a sender that is still writing it
        }
      }
      return fail_slot(state, head, "has an invalid phase");
    }
    if (distance == -static_cast<std::int64_t>(n)) {
      // The previous lap's message is still being read: nothing at head yet (no
      // sender can claim head before that slot is free).
      const std::uint64_t tail_word = header.tail.load(std::memory_order_acquire);
      const std::uint64_t tail = tail_word & ~closed_bit;
      if (tail - head > n) {
        if (header.head.load(std::memory_order_acquire) != head) continue;  // stale head
        return fail_apart(state, head, tail);
      }
      if (tail == head && (tail_word & closed_bit) != 0) return closed_and_drained(state, claim);
      return receive_not_yet(state, claim);
    }
    if (header.head.load(std::memory_order_acquire) != head) continue;  // stale head
    return fail_slot(state, head, "holds a position that does not fit the ring");
  }
}

void release_unbounded(MailboxState& state, const ReceiveClaim& claim) noexcept {
  // Slots of an unbounded mailbox are not reused one by one: the receiver that
  // consumes the last slot of a chunk gives the whole chunk's memory back. That last
  // count moves the chunk to RELEASING with the releaser's index, so that if it dies
  // midway a survivor can finish (recovery.hpp).
  // First mark the slot consumed, as a bounded release does: it must stop naming us as
  // its reader, or recovery would take it for a message we died holding.
  claim.slot->state.store(SlotState::pack(claim.position + state.geometry.slot_count, Phase::free, 0),
                          std::memory_order_release);
  ChunkEntry& chunk = state.chunk_of(claim.position);
  const std::uint64_t chunk_slots = state.geometry.chunks.slots;
  ChunkWord word = chunk.word.load(std::memory_order_acquire);
  for (;;) {
    const bool last = word.consumed() + 1 >= chunk_slots;
    const ChunkWord next = last ? ChunkWord::being_released(word.lap(), state.chunk_tag) : word.with_one_more_consumed();
    if (chunk.word.compare_exchange_weak(word, next, std::memory_order_acq_rel, std::memory_order_acquire)) {
      if (last) give_back_chunk(state, chunk, state.lap_of(claim.position), claim.position);
      return;
    }
  }
}

void give_back_chunk(MailboxState& state, ChunkEntry& chunk, std::uint64_t lap, std::uint64_t any_position) noexcept {
  const std::uint64_t chunk_slots = state.geometry.chunks.slots;
  const std::uint64_t chunk_bytes = chunk_slots * state.geometry.slot_stride;
  const std::uint64_t offset =
      state.geometry.slots_offset + (any_position & state.index_mask) / chunk_slots * chunk_bytes;
  // Punch the chunk out, unless some handle may still be reading in it (a read of a
  // punched page would allocate it again, and fault if /dev/shm is full) or punching
  // is refused: then its memory stays, to be given back a lap later, and its slot
  // states are zeroed, which is what the next lap needs.
  const std::uint64_t first = any_position - (any_position & state.index_mask) % chunk_slots;
  ChunkWord next = ChunkWord::ready_for(lap + 1);
  if (chunk_in_use(state, first, chunk_slots) ||
      !platform::release_range(SegmentFactory::descriptor(*state.mapping), offset, chunk_bytes)) {
    for (std::uint64_t i = 0; i < chunk_slots; ++i) state.slot(first + i).state.store(0, std::memory_order_relaxed);
    next = next.with_memory_kept();  // punched later (reclaim_idle_chunks)
  }
  // Release: the punched (zeroed) memory is in place before anyone backs it again. A
  // CAS from our RELEASING word, so that a release taken over from us cannot land twice.
  ChunkWord ours = ChunkWord::being_released(lap, state.chunk_tag);
  chunk.word.compare_exchange_strong(ours, next, std::memory_order_acq_rel);
  wake_senders(state, true);
}

}  // namespace shmbox::detail

namespace shmbox::detail {
namespace {

// design.md, Buffering: "Unbounded". A chunk must be backed for the lap of a
// position before anyone touches that position's slot; a free slot reads as zero.
Attempt try_claim_send_unbounded(MailboxState& state, SendClaim& claim) {
  Header& header = *state.header;
  const std::uint64_t chunk_slots = state.geometry.chunks.slots;
  for (;;) {
    const std::uint64_t tail = header.tail.load(std::memory_order_acquire);
    if ((tail & closed_bit) != 0) return fail_closed(state);
    const ActiveGuard inside{state, tail};
    const std::uint64_t lap = state.lap_of(tail);
    ChunkEntry& chunk = state.chunk_of(tail);
    ChunkWord word = chunk.word.load(std::memory_order_acquire);
    if (word.is_ready_for(lap)) {
      // Back the chunk before claiming anything in it, so that a full /dev/shm fails
      // this send cleanly instead of faulting on a write. One sender backs it (the
      // CAS to BACKING names it); a stale sender's expected value names an older lap.
      if (!chunk.word.compare_exchange_strong(word, ChunkWord::being_backed(lap, state.chunk_tag),
                                              std::memory_order_acq_rel, std::memory_order_acquire)) {
        continue;
      }
      const std::uint64_t chunk_bytes = chunk_slots * state.geometry.slot_stride;
      const std::uint64_t offset = state.geometry.slots_offset + (tail & state.index_mask) / chunk_slots * chunk_bytes;
      auto reserved = platform::reserve_range(SegmentFactory::descriptor(*state.mapping), offset, chunk_bytes, state.object);
      if (!reserved && reclaim_idle_chunks(state)) {
        reserved = platform::reserve_range(SegmentFactory::descriptor(*state.mapping), offset, chunk_bytes, state.object);
      }
      // Our BACKING word may have been taken from us meanwhile (recovery judged us gone):
      // then the chunk is someone else's now, and our store must not land.
      ChunkWord ours = ChunkWord::being_backed(lap, state.chunk_tag);
      if (!reserved) {
        chunk.word.compare_exchange_strong(ours, ChunkWord::ready_for(lap), std::memory_order_acq_rel);
        return state.fail(Error{Errc::out_of_memory, state.object,
                                "cannot grow by " + std::to_string(chunk_bytes) + " bytes: /dev/shm has no room; " +
                                    "nothing queued was lost",
                                reserved.error().system_errno()},
                          Attempt::failed);
      }
      // Release: the reservation (and the zeroed slots) before anyone uses the chunk.
      chunk.word.compare_exchange_strong(ours, ChunkWord::backed(lap, 0), std::memory_order_acq_rel);
      continue;
    }
    if (!word.is_backed_for(lap)) {
      if (header.tail.load(std::memory_order_acquire) != tail) continue;  // stale tail
      if (word.lap() == lap && (word.bits & ChunkWord::backing_bit) != 0) return send_not_yet(state);  // being backed
      if (word.is_being_reclaimed()) {
        return send_not_yet(state);  // its kept memory is being punched (reclaim_idle_chunks)
      }
      if (lap > 0 && word.is_backed_for(lap - 1)) {
        // Still backed for the previous lap: being given back this instant, or the
        // virtual range is full of unreceived messages.
        if (word.consumed() >= chunk_slots) return send_not_yet(state);
        return state.fail(Error{Errc::out_of_memory, state.object,
                                "holds as many messages as its address range allows (" +
                                    std::to_string(state.geometry.slot_count) + "); nothing queued was lost"},
                          Attempt::failed);
      }
      return state.fail(state.corrupt("chunk table entry for position " + std::to_string(tail) + " is inconsistent"),
                        Attempt::failed);
    }
    if (word.consumed() >= chunk_slots) {
      // Every slot of tail's chunk received, tail's own among them: tail is stale.
      if (header.tail.load(std::memory_order_acquire) != tail) continue;
      return state.fail(state.corrupt("chunk table entry for position " + std::to_string(tail) + " is inconsistent"),
                        Attempt::failed);
    }
    SlotHeader& slot = state.slot(tail);
    if (slot.state.load(std::memory_order_acquire) == 0) {
      if (claim_tail(state, tail)) {
        claim = SendClaim{tail, &slot};
        return Attempt::claimed;
      }
      continue;
    }
    if (header.tail.load(std::memory_order_acquire) != tail) continue;  // published by another sender
    return fail_slot(state, tail, "is in use although tail has not passed it");
  }
}

Attempt try_claim_receive_unbounded(MailboxState& state, std::size_t size_limit, ReceiveClaim& claim) {
  Header& header = *state.header;
  const std::uint64_t n = state.geometry.slot_count;
  for (;;) {
    const std::uint64_t head = header.head.load(std::memory_order_acquire);
    const ActiveGuard inside{state, head};
    const ChunkWord word = state.chunk_of(head).word.load(std::memory_order_acquire);
    const bool backed = word.is_readable(state.lap_of(head), state.geometry.chunks.slots);
    // The slot's memory may be read only once its chunk is backed for this lap.
    SlotHeader* slot = backed ? &state.slot(head) : nullptr;
    const std::uint64_t slot_word = backed ? slot->state.load(std::memory_order_acquire) : 0;
    const SlotState current = SlotState::unpack(slot_word);
    if (slot_word != 0 && position_distance(current.position, head) == 0) {
      if (current.phase == static_cast<std::uint8_t>(Phase::full)) {
        if (const auto taken = take_published(state, *slot, slot_word, head, size_limit, claim)) return *taken;
        continue;
      }
      if (current.phase == static_cast<std::uint8_t>(Phase::cancelled)) {
        if (claim_for_receive(state, *slot, slot_word, head, Phase::skipping)) {
          release(state, ReceiveClaim{head, slot, 0});
        }
        continue;
      }
      if (current.phase == static_cast<std::uint8_t>(Phase::reading) ||
          current.phase == static_cast<std::uint8_t>(Phase::skipping) ||
          current.phase == static_cast<std::uint8_t>(Phase::returned)) {
        help_head(header, head);
        continue;
      }
    }
    if (slot_word == 0) {
      // Nothing published at head (or its chunk not backed yet): empty, or a sender
      // is still backing or writing it, or head is stale (its chunk was drained and
      // given back meanwhile). Only an unchanged head and chunk word after reading tail
      // make "not yet" true; otherwise a message behind head could be slept past.
      const std::uint64_t tail_word = header.tail.load(std::memory_order_acquire);
      if (header.head.load(std::memory_order_acquire) != head ||
          state.chunk_of(head).word.load(std::memory_order_acquire) != word) {
        continue;
      }
      const std::uint64_t tail = tail_word & ~closed_bit;
      if (head == tail) {
        if ((tail_word & closed_bit) != 0) return closed_and_drained(state, claim);
        return receive_not_yet(state, claim);
      }
      if (tail - head > n) {
        if (header.head.load(std::memory_order_acquire) != head) continue;
        return fail_apart(state, head, tail);
      }
      return receive_not_yet(state, claim);
    }
    if (header.head.load(std::memory_order_acquire) != head) continue;  // stale head
    return fail_slot(state, head, "holds a state that does not fit the ring");
  }
}

}  // namespace
}  // namespace shmbox::detail
