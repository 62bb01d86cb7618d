#include "mailbox/recovery.hpp"

#include <algorithm>
#include <optional>
#include <vector>

#include "platform/process.hpp"

namespace shmbox::detail {
namespace {

bool is_dead(const std::vector<std::uint16_t>& dead, std::uint16_t owner) {
  return std::find(dead.begin(), dead.end(), owner) != dead.end();
}

// A dead sender's claimed, unpublished position: cancel it, unless a live sender may
// be the one that claimed it (its intent names the same position). Returns whether the
// intent is settled and may be forgotten: the claim never happened, the position was
// published or cancelled, or we cancelled it now. (Forgetting an unsettled intent would
// leave its position held for ever.)
bool cancel_orphaned_claim(MailboxState& state, std::uint64_t intent, const std::vector<std::uint64_t>& live_intents) {
  const std::uint64_t position = intent - 1;
  const std::uint64_t tail = state.header->tail.load(std::memory_order_acquire) & ~closed_bit;
  // tail <= position: the dead sender's claim never happened, and now never will.
  if (tail <= position) return true;
  // A live intent for the same position: that sender may hold it; look again later.
  // (Once tail has passed the position nobody can claim it any more, so checking the
  // live intents after tail is enough.)
  if (std::find(live_intents.begin(), live_intents.end(), intent) != live_intents.end()) return false;
  SlotHeader& slot = state.slot(position);
  const std::uint64_t free_word = state.unbounded() ? 0 : SlotState::pack(position, Phase::free, 0);
  std::optional<ActiveGuard> inside;
  if (state.unbounded()) {
    inside.emplace(state, position);
    const std::uint64_t word = state.chunk_of(position).word.load(std::memory_order_acquire);
    // Not readable for its lap: every slot of the chunk was received, this one included
    // (so it was published), or the position's lap is long gone.
    if (!chunk_readable(word, state.lap_of(position), state.geometry.chunks.slots)) return true;
  }
  std::uint64_t expected = free_word;
  if (slot.state.compare_exchange_strong(expected, SlotState::pack(position, Phase::cancelled, 0),
                                         std::memory_order_acq_rel)) {
    wake_receivers(state, true);
  }
  return true;  // cancelled now, or it held something else already: published or cancelled
}

// Whether the chunk work tagged `tag` was left by a handle that is gone: its entry now
// has another generation (it was freed and taken again), or its holder is dead.
bool worker_gone(const AttachEntry* table, const MailboxState& state, std::uint64_t tag) {
  const auto index = static_cast<std::uint16_t>(tag & 0xffff);
  if (index == 0 || index > state.geometry.attach_capacity) return false;  // garbage: leave it
  const AttachEntry& entry = table[index - 1];
  if ((entry.generation.load(std::memory_order_acquire) & 0xfff) != ((tag >> 16) & 0xfff)) return true;
  const std::uint64_t holder = entry.identity.load(std::memory_order_acquire);
  return holder == 0 || platform::liveness(holder) == platform::Liveness::dead;
}

// Chunk work a dead handle left half done: backing (the chunk goes back to "ready"
// for the same lap), giving back (finished here), punching kept memory (the chunk goes
// back to "ready, holds memory"). The worker is identified by its tag, checked just
// before the CAS that takes the work over, so a live worker is never robbed.
void finish_orphaned_chunk_work(MailboxState& state, const AttachEntry* attach) {
  auto* table = state.chunk_table();
  const std::uint64_t k = state.geometry.chunks.slots;
  for (std::uint32_t c = 0; c < state.geometry.chunks.count; ++c) {
    std::uint64_t word = table[c].word.load(std::memory_order_acquire);
    const bool backing = (word & (chunk_backing_bit | chunk_released_bit)) == chunk_backing_bit;
    const bool reclaiming = (word & (chunk_backing_bit | chunk_released_bit)) == (chunk_backing_bit | chunk_released_bit);
    const bool releasing = (word & (chunk_releasing_bit | chunk_backing_bit | chunk_released_bit)) == chunk_releasing_bit;
    if (!(backing || reclaiming || releasing) || !worker_gone(attach, state, word & chunk_tag_mask)) continue;
    if (backing) {
      table[c].word.compare_exchange_strong(word, chunk_ready_for((word >> 32) - 1), std::memory_order_acq_rel);
    } else if (reclaiming) {
      const std::uint64_t ready = (word & ~(chunk_backing_bit | chunk_tag_mask)) | chunk_holds_memory_bit;
      table[c].word.compare_exchange_strong(word, ready, std::memory_order_acq_rel);
    } else if (state.self != 0) {
      // Take the release over (our tag in place of the dead one), then finish it.
      const std::uint64_t mine = (word & ~chunk_tag_mask) | state.chunk_tag;
      if (table[c].word.compare_exchange_strong(word, mine, std::memory_order_acq_rel)) {
        const std::uint64_t lap = (word >> 32) - 1;
        give_back_chunk(state, table[c], lap, lap * state.geometry.slot_count + c * k);
      }
    }
  }
  wake_senders(state, true);
}

// Positions [first, last) that a dead receiver holds (READING): adopt one; mark in
// `still_held` (parallel to `dead`) each dead owner that still names a slot.
void adopt_orphaned_messages(MailboxState& state, std::uint64_t first, std::uint64_t last,
                             const std::vector<std::uint16_t>& dead, ReceiveClaim* adopt, bool& adopted,
                             std::vector<bool>& still_held) {
  for (std::uint64_t position = first; position < last; ++position) {
    SlotHeader& slot = state.slot(position);
    std::uint64_t word = slot.state.load(std::memory_order_acquire);
    const SlotState current = SlotState::unpack(word);
    if (current.position != (position & position_mask) || current.phase != static_cast<std::uint8_t>(Phase::reading) ||
        !is_dead(dead, current.owner)) {
      continue;
    }
    const std::uint32_t size = slot.size.load(std::memory_order_relaxed);
    // Re-check the reader just before taking its message: our list of the dead may be
    // stale, and a live process must never be robbed. (An entry is freed only once no
    // slot names it, so the index cannot have passed to a new holder meanwhile.)
    const std::uint64_t holder = state.attach_entries()[current.owner - 1].identity.load(std::memory_order_acquire);
    if (holder != 0 && platform::liveness(holder) == platform::Liveness::alive) continue;
    if (adopt != nullptr && !adopted && state.self != 0 && size <= state.geometry.max_message_size &&
        slot.state.compare_exchange_strong(word, SlotState::pack(position, Phase::reading, state.self),
                                           std::memory_order_acq_rel)) {
      *adopt = ReceiveClaim{position, &slot, size};
      adopted = true;
      // It may have died before moving head past its claim.
      std::uint64_t expected = position;
      state.header->head.compare_exchange_strong(expected, position + 1, std::memory_order_acq_rel);
      continue;
    }
    still_held[static_cast<std::size_t>(std::find(dead.begin(), dead.end(), current.owner) - dead.begin())] = true;
  }
}

}  // namespace

bool recover(MailboxState& state, ReceiveClaim* adopt) {
  AttachEntry* table = state.attach_entries();
  std::vector<std::uint16_t> dead;
  std::vector<std::uint64_t> live_intents;
  for (std::uint32_t i = 0; i < state.geometry.attach_capacity; ++i) {
    const std::uint64_t holder = table[i].identity.load(std::memory_order_acquire);
    if (holder == 0) continue;
    const auto owner = static_cast<std::uint16_t>(i + 1);
    if (owner != state.self && platform::liveness(holder) == platform::Liveness::dead) {
      dead.push_back(owner);
    } else if (const std::uint64_t intent = table[i].send_intent.load(std::memory_order_acquire); intent != 0) {
      live_intents.push_back(intent);
    }
  }
  if (dead.empty()) return false;

  std::vector<bool> still_held(dead.size(), false);
  for (std::size_t i = 0; i < dead.size(); ++i) {
    AttachEntry& entry = table[dead[i] - 1];
    if (const std::uint64_t intent = entry.send_intent.load(std::memory_order_acquire); intent != 0) {
      if (cancel_orphaned_claim(state, intent, live_intents)) {
        entry.send_intent.store(0, std::memory_order_release);
      } else {
        still_held[i] = true;
      }
    }
    entry.active.store(0, std::memory_order_release);
  }
  if (state.unbounded()) finish_orphaned_chunk_work(state, table);

  // Messages dead receivers claimed and never released lie behind head (or at it).
  const std::uint64_t head = state.header->head.load(std::memory_order_acquire);
  const std::uint64_t n = state.geometry.slot_count;
  bool adopted = false;
  if (state.unbounded()) {
    // Only chunks with unreceived slots can hold one; look at those (a few at most).
    auto* chunks = state.chunk_table();
    const std::uint64_t k = state.geometry.chunks.slots;
    for (std::uint64_t c = 0; c < state.geometry.chunks.count; ++c) {
      const std::uint64_t word = chunks[c].word.load(std::memory_order_acquire);
      if ((word & (chunk_released_bit | chunk_backing_bit)) != 0 || word == 0) continue;
      const std::uint64_t first = ((word >> 32) - 1) * n + c * k;
      if (first > head) continue;
      ActiveGuard inside{state, first};
      if (!chunk_readable(chunks[c].word.load(std::memory_order_acquire), (word >> 32) - 1, k)) continue;
      adopt_orphaned_messages(state, first, std::min(first + k, head + 1), dead, adopt, adopted, still_held);
    }
  } else {
    // Up to head itself: a receiver may have died between its claim and moving head.
    adopt_orphaned_messages(state, head > n ? head - n : 0, head + 1, dead, adopt, adopted, still_held);
  }

  // A dead entry is freed once no slot names it: its index may then be reused.
  for (std::size_t i = 0; i < dead.size(); ++i) {
    if (still_held[i]) continue;
    std::uint64_t holder = table[dead[i] - 1].identity.load(std::memory_order_acquire);
    if (holder != 0 && platform::liveness(holder) == platform::Liveness::dead) {
      table[dead[i] - 1].identity.compare_exchange_strong(holder, 0, std::memory_order_acq_rel);
    }
  }
  return adopted;
}

}  // namespace shmbox::detail
