#include "local/chunks.hpp"

#include "local/ring_steps.hpp"
#include "platform/barrier.hpp"
#include "platform/process.hpp"
#include "platform/shm.hpp"
#include "segment/segment_factory.hpp"

namespace shmbox::detail {
namespace {

// Whether any handle may be reading a slot in [first, first + count) (see ActiveGuard).
bool chunk_in_use(const MappedMailbox& mailbox, std::uint64_t first, std::uint64_t count) noexcept {
  if (!platform::heavy_barrier()) return true;  // cannot tell: assume so
  const auto* table = mailbox.attach_entries();
  for (std::uint32_t i = 0; i < mailbox.geometry.attach_capacity; ++i) {
    if (&table[i] == mailbox.entry) continue;  // the releaser reads nothing while it releases
    const std::uint64_t active = table[i].active.load(std::memory_order_acquire);
    if (active != 0 && active - 1 >= first && active - 1 < first + count) return true;
  }
  return false;
}

// Punches chunks that were given back while someone was inside them and so kept
// their memory, now that nobody is. Each is held in a "being worked on" state while
// it is punched, so that no sender backs it meanwhile. Returns whether any memory was
// given back.
bool reclaim_idle_chunks(MappedMailbox& mailbox) noexcept {
  const auto& chunks = mailbox.geometry.chunks;
  const std::uint64_t chunk_bytes = std::uint64_t{chunks.slots} * mailbox.geometry.slot_stride;
  auto* table = mailbox.chunk_table();
  bool reclaimed = false;
  for (std::uint64_t c = 0; c < chunks.count; ++c) {
    ChunkWord word = table[c].word.load(std::memory_order_acquire);
    if (!word.holds_kept_memory()) continue;
    const ChunkWord working = word.being_reclaimed_by(mailbox.chunk_tag);
    if (!table[c].word.compare_exchange_strong(word, working, std::memory_order_acq_rel)) continue;
    // Released after lap L - 1: its readers, if any, are at positions of that lap.
    const std::uint64_t lap = word.lap();
    const std::uint64_t first = lap * mailbox.geometry.slot_count + c * chunks.slots;
    const bool punched = !chunk_in_use(mailbox, first, chunks.slots) &&
                         platform::release_range(SegmentFactory::descriptor(*mailbox.mapping),
                                                 mailbox.geometry.slots_offset + c * chunk_bytes, chunk_bytes);
    table[c].word.store(punched ? word.without_memory_kept() : word, std::memory_order_release);
    reclaimed = reclaimed || punched;
  }
  return reclaimed;
}

// Punches (or zeroes) a fully received chunk and makes it ready for lap + 1. Called by
// its releaser, or by recovery when the releaser died midway.
void give_back_chunk(MappedMailbox& mailbox, ChunkEntry& chunk, std::uint64_t lap, std::uint64_t any_position) noexcept {
  const std::uint64_t chunk_slots = mailbox.geometry.chunks.slots;
  const std::uint64_t chunk_bytes = chunk_slots * mailbox.geometry.slot_stride;
  const std::uint64_t offset =
      mailbox.geometry.slots_offset + (any_position & mailbox.index_mask) / chunk_slots * chunk_bytes;
  // Punch the chunk out, unless some handle may still be reading in it (a read of a
  // punched page would allocate it again, and fault if /dev/shm is full) or punching
  // is refused: then its memory stays, to be given back a lap later, and its slot
  // states are zeroed, which is what the next lap needs.
  const std::uint64_t first = any_position - (any_position & mailbox.index_mask) % chunk_slots;
  ChunkWord next = ChunkWord::ready_for(lap + 1);
  if (chunk_in_use(mailbox, first, chunk_slots) ||
      !platform::release_range(SegmentFactory::descriptor(*mailbox.mapping), offset, chunk_bytes)) {
    for (std::uint64_t i = 0; i < chunk_slots; ++i) mailbox.slot(first + i).state.store(0, std::memory_order_relaxed);
    next = next.with_memory_kept();  // punched later (reclaim_idle_chunks)
  }
  // Release: the punched (zeroed) memory is in place before anyone backs it again. A
  // CAS from our RELEASING word, so that a release taken over from us cannot land twice.
  ChunkWord ours = ChunkWord::being_released(lap, mailbox.chunk_tag);
  chunk.word.compare_exchange_strong(ours, next, std::memory_order_acq_rel);
  wake_senders(mailbox, true);
}

// Whether the chunk work tagged in `word` was left by a handle that is gone: its entry
// now has another generation (it was freed and taken again), or its holder is dead.
bool worker_gone(const AttachEntry* table, const MappedMailbox& mailbox, ChunkWord word) {
  const std::uint16_t index = word.worker_index();
  if (index == 0 || index > mailbox.geometry.attach_capacity) return false;  // garbage: leave it
  const AttachEntry& entry = table[index - 1];
  if (ChunkWord::worker_tag(entry.generation.load(std::memory_order_acquire), index) != word.worker()) return true;
  const std::uint64_t holder = entry.identity.load(std::memory_order_acquire);
  // Held by a recovery: its holder died.
  return holder == 0 || (holder & platform::ProcessIdentity::recovering_bit) != 0 ||
         platform::liveness(holder) == platform::Liveness::dead;
}

}  // namespace

void release_unbounded(MappedMailbox& mailbox, const ReceiveClaim& claim) noexcept {
  // Slots of an unbounded mailbox are not reused one by one: the receiver that
  // consumes the last slot of a chunk gives the whole chunk's memory back. That last
  // count moves the chunk to RELEASING with the releaser's index, so that if it dies
  // midway a survivor can finish (recovery.hpp).
  // First mark the slot consumed, as a bounded release does: it must stop naming us as
  // its reader, or recovery would take it for a message we died holding.
  claim.slot->state.store(SlotState::pack(claim.position + mailbox.geometry.slot_count, Phase::free, 0),
                          std::memory_order_release);
  ChunkEntry& chunk = mailbox.chunk_of(claim.position);
  const std::uint64_t chunk_slots = mailbox.geometry.chunks.slots;
  ChunkWord word = chunk.word.load(std::memory_order_acquire);
  for (;;) {
    const bool last = word.consumed() + 1 >= chunk_slots;
    const ChunkWord next =
        last ? ChunkWord::being_released(word.lap(), mailbox.chunk_tag) : word.with_one_more_consumed();
    if (chunk.word.compare_exchange_weak(word, next, std::memory_order_acq_rel, std::memory_order_acquire)) {
      if (last) give_back_chunk(mailbox, chunk, mailbox.lap_of(claim.position), claim.position);
      return;
    }
  }
}

// design.md, Buffering: "Unbounded". A chunk must be backed for the lap of a
// position before anyone touches that position's slot; a free slot reads as zero.
Attempt try_claim_send_unbounded(MappedMailbox& mailbox, SendClaim& claim) {
  Header& header = *mailbox.header;
  const std::uint64_t chunk_slots = mailbox.geometry.chunks.slots;
  for (;;) {
    const std::uint64_t tail = header.tail.load(std::memory_order_acquire);
    if ((tail & closed_bit) != 0) return fail_closed(mailbox);
    const ActiveGuard inside{mailbox, tail};
    const std::uint64_t lap = mailbox.lap_of(tail);
    ChunkEntry& chunk = mailbox.chunk_of(tail);
    ChunkWord word = chunk.word.load(std::memory_order_acquire);
    if (word.is_ready_for(lap)) {
      // Back the chunk before claiming anything in it, so that a full /dev/shm fails
      // this send cleanly instead of faulting on a write. One sender backs it (the
      // CAS to BACKING names it); a stale sender's expected value names an older lap.
      if (!chunk.word.compare_exchange_strong(word, ChunkWord::being_backed(lap, mailbox.chunk_tag),
                                              std::memory_order_acq_rel, std::memory_order_acquire)) {
        continue;
      }
      const std::uint64_t chunk_bytes = chunk_slots * mailbox.geometry.slot_stride;
      const std::uint64_t offset = mailbox.geometry.slots_offset + (tail & mailbox.index_mask) / chunk_slots * chunk_bytes;
      auto reserved = platform::reserve_range(SegmentFactory::descriptor(*mailbox.mapping), offset, chunk_bytes, mailbox.object);
      if (!reserved && reclaim_idle_chunks(mailbox)) {
        reserved = platform::reserve_range(SegmentFactory::descriptor(*mailbox.mapping), offset, chunk_bytes, mailbox.object);
      }
      // Our BACKING word may have been taken from us meanwhile (recovery judged us gone):
      // then the chunk is someone else's now, and our store must not land.
      ChunkWord ours = ChunkWord::being_backed(lap, mailbox.chunk_tag);
      if (!reserved) {
        chunk.word.compare_exchange_strong(ours, ChunkWord::ready_for(lap), std::memory_order_acq_rel);
        return mailbox.fail(Error{Errc::out_of_memory, mailbox.object,
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
      if (word.lap() == lap && (word.bits & ChunkWord::backing_bit) != 0) return send_not_yet(mailbox);  // being backed
      if (word.is_being_reclaimed()) {
        return send_not_yet(mailbox);  // its kept memory is being punched (reclaim_idle_chunks)
      }
      if (lap > 0 && word.is_backed_for(lap - 1)) {
        // Still backed for the previous lap: being given back this instant, or the
        // virtual range is full of unreceived messages.
        if (word.consumed() >= chunk_slots) return send_not_yet(mailbox);
        return mailbox.fail(Error{Errc::out_of_memory, mailbox.object,
                                "holds as many messages as its address range allows (" +
                                    std::to_string(mailbox.geometry.slot_count) + "); nothing queued was lost"},
                          Attempt::failed);
      }
      return mailbox.fail(mailbox.corrupt("chunk table entry for position " + std::to_string(tail) + " is inconsistent"),
                        Attempt::failed);
    }
    if (word.consumed() >= chunk_slots) {
      // Every slot of tail's chunk received, tail's own among them: tail is stale.
      if (header.tail.load(std::memory_order_acquire) != tail) continue;
      return mailbox.fail(mailbox.corrupt("chunk table entry for position " + std::to_string(tail) + " is inconsistent"),
                        Attempt::failed);
    }
    SlotHeader& slot = mailbox.slot(tail);
    if (slot.state.load(std::memory_order_acquire) == 0) {
      if (claim_tail(mailbox, tail)) {
        claim = SendClaim{tail, &slot};
        return Attempt::claimed;
      }
      continue;
    }
    if (header.tail.load(std::memory_order_acquire) != tail) continue;  // published by another sender
    return fail_slot(mailbox, tail, "is in use although tail has not passed it");
  }
}

Attempt try_claim_receive_unbounded(MappedMailbox& mailbox, std::size_t size_limit, ReceiveClaim& claim) {
  Header& header = *mailbox.header;
  const std::uint64_t n = mailbox.geometry.slot_count;
  for (;;) {
    const std::uint64_t head = header.head.load(std::memory_order_acquire);
    const ActiveGuard inside{mailbox, head};
    const ChunkWord word = mailbox.chunk_of(head).word.load(std::memory_order_acquire);
    const bool backed = word.is_readable(mailbox.lap_of(head), mailbox.geometry.chunks.slots);
    // The slot's memory may be read only once its chunk is backed for this lap.
    SlotHeader* slot = backed ? &mailbox.slot(head) : nullptr;
    const std::uint64_t slot_word = backed ? slot->state.load(std::memory_order_acquire) : 0;
    const SlotState current = SlotState::unpack(slot_word);
    if (slot_word != 0 && position_distance(current.position, head) == 0) {
      if (current.phase == static_cast<std::uint8_t>(Phase::full)) {
        if (const auto taken = take_published(mailbox, *slot, slot_word, head, size_limit, claim)) return *taken;
        continue;
      }
      if (current.phase == static_cast<std::uint8_t>(Phase::cancelled)) {
        if (claim_for_receive(mailbox, *slot, slot_word, head, Phase::skipping)) {
          release(mailbox, ReceiveClaim{head, slot, 0});
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
          mailbox.chunk_of(head).word.load(std::memory_order_acquire) != word) {
        continue;
      }
      const std::uint64_t tail = tail_word & ~closed_bit;
      if (head == tail) {
        if ((tail_word & closed_bit) != 0) return closed_and_drained(mailbox, size_limit, claim);
        return receive_not_yet(mailbox, size_limit, claim);
      }
      if (tail - head > n) {
        if (header.head.load(std::memory_order_acquire) != head) continue;
        return fail_apart(mailbox, head, tail);
      }
      return receive_not_yet(mailbox, size_limit, claim);
    }
    if (header.head.load(std::memory_order_acquire) != head) continue;  // stale head
    return fail_slot(mailbox, head, "holds a state that does not fit the ring");
  }
}

void finish_orphaned_chunk_work(MappedMailbox& mailbox, const AttachEntry* attach) {
  auto* table = mailbox.chunk_table();
  const std::uint64_t k = mailbox.geometry.chunks.slots;
  for (std::uint32_t c = 0; c < mailbox.geometry.chunks.count; ++c) {
    ChunkWord word = table[c].word.load(std::memory_order_acquire);
    const bool backing = word.is_being_backed();
    const bool reclaiming = word.is_being_reclaimed();
    const bool releasing = word.is_being_released();
    if (!(backing || reclaiming || releasing) || !worker_gone(attach, mailbox, word)) continue;
    if (backing) {
      table[c].word.compare_exchange_strong(word, ChunkWord::ready_for(word.lap()), std::memory_order_acq_rel);
    } else if (reclaiming) {
      table[c].word.compare_exchange_strong(word, word.reclaim_undone(), std::memory_order_acq_rel);
    } else if (mailbox.self != 0) {
      // Take the release over (our tag in place of the dead one), then finish it.
      const ChunkWord mine = word.with_worker(mailbox.chunk_tag);
      if (table[c].word.compare_exchange_strong(word, mine, std::memory_order_acq_rel)) {
        const std::uint64_t lap = word.lap();
        give_back_chunk(mailbox, table[c], lap, lap * mailbox.geometry.slot_count + c * k);
      }
    }
  }
  wake_senders(mailbox, true);
}

}  // namespace shmbox::detail
