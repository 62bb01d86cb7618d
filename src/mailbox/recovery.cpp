#include "mailbox/recovery.hpp"

#include <algorithm>
#include <vector>

#include "platform/process.hpp"

namespace shmbox::detail {
namespace {

AttachEntry* attach_table(const MailboxState& state) {
  return reinterpret_cast<AttachEntry*>(reinterpret_cast<std::byte*>(state.header) + state.geometry.attach_offset);
}

bool is_dead(const std::vector<std::uint16_t>& dead, std::uint16_t owner) {
  return std::find(dead.begin(), dead.end(), owner) != dead.end();
}

// A dead sender's claimed, unpublished position: cancel it, unless a live sender may
// be the one that claimed it (its intent names the same position).
void cancel_orphaned_claim(MailboxState& state, std::uint64_t intent, const std::vector<std::uint64_t>& live_intents) {
  const std::uint64_t position = intent - 1;
  const std::uint64_t tail = state.header->tail.load(std::memory_order_acquire) & ~closed_bit;
  // tail <= position: the dead sender's claim never happened. A live intent for the
  // same position: that sender may hold it. (Once tail has passed the position nobody
  // can claim it any more, so checking the live intents after tail is enough.)
  if (tail <= position || std::find(live_intents.begin(), live_intents.end(), intent) != live_intents.end()) return;
  SlotHeader& slot = state.slot(position);
  if (state.unbounded()) {
    ActiveGuard inside{state, position};
    if (!chunk_readable(state.chunk_of(position).word.load(std::memory_order_acquire), state.lap_of(position),
                        state.geometry.chunks.slots)) {
      return;
    }
    std::uint64_t expected = 0;
    slot.state.compare_exchange_strong(expected, SlotState::pack(position, Phase::cancelled, 0),
                                       std::memory_order_acq_rel);
  } else {
    std::uint64_t expected = SlotState::pack(position, Phase::free, 0);
    slot.state.compare_exchange_strong(expected, SlotState::pack(position, Phase::cancelled, 0),
                                       std::memory_order_acq_rel);
  }
  wake_receivers(state, true);
}

// Chunks a dead sender was backing go back to "ready" for the same lap.
void release_orphaned_backing(MailboxState& state, const std::vector<std::uint16_t>& dead) {
  auto* table = reinterpret_cast<ChunkEntry*>(reinterpret_cast<std::byte*>(state.header) +
                                              state.geometry.chunks.table_offset);
  for (std::uint32_t c = 0; c < state.geometry.chunks.count; ++c) {
    std::uint64_t word = table[c].word.load(std::memory_order_acquire);
    if ((word & (chunk_backing_bit | chunk_released_bit)) != chunk_backing_bit) continue;
    if (!is_dead(dead, static_cast<std::uint16_t>(word & 0xffff))) continue;
    table[c].word.compare_exchange_strong(word, chunk_ready_for((word >> 32) - 1), std::memory_order_acq_rel);
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
    if (adopt != nullptr && !adopted && state.self != 0 && size <= state.geometry.max_message_size &&
        slot.state.compare_exchange_strong(word, SlotState::pack(position, Phase::reading, state.self),
                                           std::memory_order_acq_rel)) {
      *adopt = ReceiveClaim{position, &slot, size};
      adopted = true;
      continue;
    }
    still_held[static_cast<std::size_t>(std::find(dead.begin(), dead.end(), current.owner) - dead.begin())] = true;
  }
}

}  // namespace

bool recover(MailboxState& state, ReceiveClaim* adopt) {
  AttachEntry* table = attach_table(state);
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

  for (const std::uint16_t owner : dead) {
    AttachEntry& entry = table[owner - 1];
    if (const std::uint64_t intent = entry.send_intent.load(std::memory_order_acquire); intent != 0) {
      cancel_orphaned_claim(state, intent, live_intents);
      entry.send_intent.store(0, std::memory_order_release);
    }
    entry.active.store(0, std::memory_order_release);
  }
  if (state.unbounded()) release_orphaned_backing(state, dead);

  // Messages dead receivers claimed and never released lie behind head.
  const std::uint64_t head = state.header->head.load(std::memory_order_acquire);
  const std::uint64_t n = state.geometry.slot_count;
  bool adopted = false;
  std::vector<bool> still_held(dead.size(), false);
  if (state.unbounded()) {
    // Only chunks with unreceived slots can hold one; look at those (a few at most).
    auto* chunks = reinterpret_cast<ChunkEntry*>(reinterpret_cast<std::byte*>(state.header) +
                                                 state.geometry.chunks.table_offset);
    const std::uint64_t k = state.geometry.chunks.slots;
    for (std::uint64_t c = 0; c < state.geometry.chunks.count; ++c) {
      const std::uint64_t word = chunks[c].word.load(std::memory_order_acquire);
      if ((word & (chunk_released_bit | chunk_backing_bit)) != 0 || word == 0) continue;
      const std::uint64_t first = ((word >> 32) - 1) * n + c * k;
      if (first >= head) continue;
      ActiveGuard inside{state, first};
      if (!chunk_readable(chunks[c].word.load(std::memory_order_acquire), (word >> 32) - 1, k)) continue;
      adopt_orphaned_messages(state, first, std::min(first + k, head), dead, adopt, adopted, still_held);
    }
  } else {
    adopt_orphaned_messages(state, head > n ? head - n : 0, head, dead, adopt, adopted, still_held);
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
