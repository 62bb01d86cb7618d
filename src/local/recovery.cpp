#include "local/recovery.hpp"

#include <algorithm>
#include <optional>
#include <vector>

#include "local/chunks.hpp"
#include "platform/process.hpp"

namespace shmbox::detail {
namespace {

// A handle found dead by this recovery, and its identity then. Identities are unique
// and the dead never return, so while the entry still holds `was` it is that handle's:
// nobody has freed it or attached to it since.
struct Orphan {
  std::uint16_t owner;
  std::uint64_t was;
  bool still_held = false;  // an unsettled intent or a READING or SKIPPING slot names it
};

Orphan* find_orphan(std::vector<Orphan>& orphans, std::uint16_t owner) {
  const auto found = std::find_if(orphans.begin(), orphans.end(), [&](const Orphan& o) { return o.owner == owner; });
  return found == orphans.end() ? nullptr : &*found;
}

// The end (exclusive) of the run of positions an entry whose intent is `intent` (not 0)
// may hold: a batch's run, or the one position. Read after the intent (acquire), so at
// least the end stored with it; a later one only widens the run, which makes a recovery
// wait longer, never cancel a live claim.
// Only bounded mailboxes claim runs, of at most their capacity: an end past that was
// scribbled over, and the run is taken as the one position.
std::uint64_t intent_end(const MappedMailbox& mailbox, const AttachEntry& entry, std::uint64_t intent) {
  if (mailbox.unbounded()) return intent;
  const std::uint64_t end = entry.send_intent_end.load(std::memory_order_relaxed);
  return end > intent && end - intent < mailbox.geometry.slot_count ? end : intent;
}

// Whether a handle other than `owner` may hold `position`: its intent's run covers it,
// and it is attached and not known dead (a dead one's claim would be cancelled all the
// same). Called after tail was seen past the position: a claimer stores its intent
// before it moves tail (release), so that intent is visible now, or what it stored after
// publishing (release stores too: then our CAS finds the slot published). A live
// claimer's entry is neither free nor held by a recovery.
bool claimed_elsewhere(const MappedMailbox& mailbox, std::uint16_t owner, std::uint64_t position,
                       const std::vector<Orphan>& orphans) {
  const AttachEntry* table = mailbox.attach_entries();
  for (std::uint32_t i = 0; i < mailbox.geometry.attach_capacity; ++i) {
    if (i + 1 == owner) continue;
    const std::uint64_t intent = table[i].send_intent.load(std::memory_order_acquire);
    if (intent == 0 || position < intent - 1 || position >= intent_end(mailbox, table[i], intent)) continue;
    const std::uint64_t holder = table[i].identity.load(std::memory_order_acquire);
    if (holder == 0 || (holder & platform::ProcessIdentity::recovering_bit) != 0) continue;
    if (std::none_of(orphans.begin(), orphans.end(), [&](const Orphan& o) { return o.was == holder; })) return true;
  }
  return false;
}

// A dead sender's claimed, unpublished position: cancel it, unless a live sender may
// be the one that claimed it (its intent covers the same position). Returns whether the
// position is settled: the claim never happened, the position was published or
// cancelled, or we cancelled it now.
bool cancel_orphaned_position(MappedMailbox& mailbox, std::uint16_t owner, std::uint64_t position,
                              const std::vector<Orphan>& orphans) {
  const std::uint64_t tail = mailbox.header->tail.load(std::memory_order_acquire) & ~closed_bit;
  // tail <= position: the dead sender's claim never happened, and now never will.
  if (tail <= position) return true;
  // Another handle's intent for the same position: that sender may hold it; look again
  // later. Read only now, after tail: once tail has passed the position nobody can claim
  // it any more. (Intents read before tail could miss a sender that claimed it since.)
  if (claimed_elsewhere(mailbox, owner, position, orphans)) return false;
  SlotHeader& slot = mailbox.slot(position);
  const std::uint64_t free_word = mailbox.unbounded() ? 0 : SlotState::pack(position, Phase::free, 0);
  std::optional<ActiveGuard> inside;
  if (mailbox.unbounded()) {
    inside.emplace(mailbox, position);
    const ChunkWord word = mailbox.chunk_of(position).word.load(std::memory_order_acquire);
    // Not readable for its lap: every slot of the chunk was received, this one included
    // (so it was published), or the position's lap is long gone.
    if (!word.is_readable(mailbox.lap_of(position), mailbox.geometry.chunks.slots)) return true;
  }
  std::uint64_t expected = free_word;
  if (slot.state.compare_exchange_strong(expected, SlotState::pack(position, Phase::cancelled, 0),
                                         std::memory_order_acq_rel)) {
    wake_receivers(mailbox, true);
  }
  return true;  // cancelled now, or it held something else already: published or cancelled
}

// Every position of a dead sender's intent (its run, or the one position). Returns
// whether the intent is settled and may be forgotten: every position is. (Forgetting an
// unsettled intent would leave its position held for ever; a later look at a settled
// one finds it published or cancelled and changes nothing.)
bool cancel_orphaned_claim(MappedMailbox& mailbox, std::uint16_t owner, const AttachEntry& entry, std::uint64_t intent,
                           const std::vector<Orphan>& orphans) {
  bool settled = true;
  for (std::uint64_t position = intent - 1, end = intent_end(mailbox, entry, intent); position < end; ++position) {
    settled = cancel_orphaned_position(mailbox, owner, position, orphans) && settled;
  }
  return settled;
}

// What a recovery may hand its caller: one message, of at most `size_limit` bytes.
struct Adoption {
  ReceiveClaim* claim;  // null: adopt nothing
  std::size_t size_limit;
  bool adopted = false;
  bool put_back = false;  // a message is RETURNED that receivers must be told of
};

// Positions [first, last) that a dead receiver holds (READING): adopt one; one too large
// for the caller is put back (RETURNED), for a receive with room for it (or a TooLarge);
// mark each orphan that still names a slot as still held. Cancelled positions a dead
// handle was freeing (SKIPPING) are taken over into `skipped`, to be freed by the caller.
void adopt_orphaned_messages(MappedMailbox& mailbox, std::uint64_t first, std::uint64_t last,
                             std::vector<Orphan>& orphans, Adoption& adoption, std::vector<ReceiveClaim>& skipped) {
  for (std::uint64_t position = first; position < last; ++position) {
    SlotHeader& slot = mailbox.slot(position);
    std::uint64_t word = slot.state.load(std::memory_order_acquire);
    const SlotState current = SlotState::unpack(word);
    const bool skipping = current.phase == static_cast<std::uint8_t>(Phase::skipping);
    if (word == SlotState::pack(position, Phase::returned, 0)) {
      // Put back by a receiver that may have died before bumping the hint, so that no
      // receiver looks for it: take it here.
      const std::uint32_t size = slot.size.load(std::memory_order_relaxed);
      if (adoption.claim != nullptr && !adoption.adopted && mailbox.self != 0 &&
          size <= std::min<std::size_t>(mailbox.geometry.max_message_size, adoption.size_limit) &&
          slot.state.compare_exchange_strong(word, SlotState::pack(position, Phase::reading, mailbox.self),
                                             std::memory_order_acq_rel)) {
        *adoption.claim = ReceiveClaim{position, &slot, size};
        adoption.adopted = true;
        help_head(*mailbox.header, position);  // put back at head by a recovery not yet past it
      } else {
        adoption.put_back = true;
      }
      continue;
    }
    if (current.position != (position & position_mask) ||
        (current.phase != static_cast<std::uint8_t>(Phase::reading) && !skipping)) {
      continue;
    }
    Orphan* reader = find_orphan(orphans, current.owner);
    if (reader == nullptr) continue;
    const std::uint32_t size = slot.size.load(std::memory_order_relaxed);
    // Re-check the reader just before taking its message: if its entry no longer holds
    // the dead identity, the index may have passed to a live process (freed once nothing
    // named it), whose claim this is. If it does, the slot is the dead one's: an entry
    // is freed only once no slot names it, and this CAS fails if the slot changed.
    if (mailbox.attach_entries()[current.owner - 1].identity.load(std::memory_order_acquire) != reader->was) {
      reader->still_held = true;
      continue;
    }
    if (skipping) {
      // No message in it: it is freed, never delivered.
      if (mailbox.self != 0 &&
          slot.state.compare_exchange_strong(word, SlotState::pack(position, Phase::skipping, mailbox.self),
                                             std::memory_order_acq_rel)) {
        help_head(*mailbox.header, position);  // it may have died before moving head past it
        skipped.push_back(ReceiveClaim{position, &slot, 0});
      } else {
        reader->still_held = true;
      }
      continue;
    }
    if (adoption.claim != nullptr && !adoption.adopted && mailbox.self != 0 &&
        size <= mailbox.geometry.max_message_size) {
      // Too large for our caller's buffer: put back, for a receive that has room.
      const bool fits = size <= adoption.size_limit;
      // It may have died before moving head past its claim. A slot put back must be past
      // head before it is RETURNED: taken and freed at head, it would read as corrupt. (A
      // READING slot at head may be passed by anyone; one we adopt is ours.)
      if (!fits) help_head(*mailbox.header, position);
      const std::uint64_t as = fits ? SlotState::pack(position, Phase::reading, mailbox.self)
                                    : SlotState::pack(position, Phase::returned, 0);
      if (slot.state.compare_exchange_strong(word, as, std::memory_order_acq_rel)) {
        if (fits) {
          *adoption.claim = ReceiveClaim{position, &slot, size};
          adoption.adopted = true;
          help_head(*mailbox.header, position);
        } else {
          adoption.put_back = true;
        }
        continue;
      }
    }
    reader->still_held = true;
  }
}

// A receive batch claims the slots after its first before it moves head past them
// (local_mailbox.cpp): a dead batch's READING slots ahead of head are still its own.
// Its entry stays held until receivers have helped head past them and a later recovery,
// looking behind head, hands them on.
void mark_held_ahead_of_head(const MappedMailbox& mailbox, std::uint64_t head, std::vector<Orphan>& orphans) {
  if (mailbox.unbounded()) return;  // its receives claim one position at a time
  const std::uint64_t tail = mailbox.header->tail.load(std::memory_order_acquire) & ~closed_bit;
  const std::uint64_t end = std::min(tail, head + mailbox.geometry.slot_count);
  for (std::uint64_t position = head + 1; position < end; ++position) {
    const SlotState current = SlotState::unpack(mailbox.slot(position).state.load(std::memory_order_acquire));
    if (current.position != (position & position_mask) || current.phase != static_cast<std::uint8_t>(Phase::reading)) {
      continue;
    }
    if (Orphan* reader = find_orphan(orphans, current.owner)) reader->still_held = true;
  }
}

}  // namespace

bool recover(MappedMailbox& mailbox, ReceiveClaim* adopt, std::size_t size_limit) {
  if (mailbox.process == 0) return false;  // not attached: we could not hold entries (below)
  AttachEntry* table = mailbox.attach_entries();
  std::vector<Orphan> orphans;
  for (std::uint32_t i = 0; i < mailbox.geometry.attach_capacity; ++i) {
    const std::uint64_t holder = table[i].identity.load(std::memory_order_acquire);
    const auto owner = static_cast<std::uint16_t>(i + 1);
    if (holder == 0 || owner == mailbox.self) continue;
    // Held by a recovery (see below) that died too: as dead as its holder.
    if (platform::liveness(platform::ProcessIdentity::without_recovering_bit(holder)) == platform::Liveness::dead) {
      orphans.push_back(Orphan{owner, holder});
    }
  }
  if (orphans.empty()) return false;

  // Our list goes stale as soon as another recovery frees an entry and a new process
  // attaches to it: the intent and `active` there are then the new holder's, which
  // must be neither cancelled nor cleared. So each entry is held while we read and
  // clear them: its identity goes from the dead one's to ours | the recovering bit and
  // back, a CAS each way. An entry we cannot hold was freed (or is held by another
  // recovery): we leave it alone.
  const std::uint64_t mine = mailbox.process | platform::ProcessIdentity::recovering_bit;
  for (Orphan& orphan : orphans) {
    AttachEntry& entry = table[orphan.owner - 1];
    std::uint64_t expected = orphan.was;
    if (!entry.identity.compare_exchange_strong(expected, mine, std::memory_order_acq_rel)) {
      orphan.owner = 0;  // dropped below
      continue;
    }
    if (const std::uint64_t intent = entry.send_intent.load(std::memory_order_acquire); intent != 0) {
      if (cancel_orphaned_claim(mailbox, orphan.owner, entry, intent, orphans)) {
        entry.send_intent.store(0, std::memory_order_release);
      } else {
        orphan.still_held = true;
      }
    }
    entry.active.store(0, std::memory_order_release);
    expected = mine;
    entry.identity.compare_exchange_strong(expected, orphan.was, std::memory_order_acq_rel);
  }
  std::erase_if(orphans, [](const Orphan& orphan) { return orphan.owner == 0; });
  if (orphans.empty()) return false;
  if (mailbox.unbounded()) finish_orphaned_chunk_work(mailbox, table);

  // Messages dead receivers claimed and never released lie behind head (or at it), and
  // a dead receive batch's ahead of it.
  const std::uint64_t head = mailbox.header->head.load(std::memory_order_acquire);
  Adoption adoption{adopt, size_limit};
  std::vector<ReceiveClaim> skipped;
  for_each_range_behind_head(mailbox, head, [&](std::uint64_t first, std::uint64_t last) {
    adopt_orphaned_messages(mailbox, first, last, orphans, adoption, skipped);
    return true;
  });
  mark_held_ahead_of_head(mailbox, head, orphans);
  // Outside the chunk guard above: the last count of a chunk gives it back.
  for (const ReceiveClaim& claim : skipped) release(mailbox, claim);
  // After the RETURNED stores (release): a receiver that reads the bump finds them.
  if (adoption.put_back) {
    mailbox.header->returned.fetch_add(1, std::memory_order_release);
    wake_receivers(mailbox, true);
  }

  // A dead entry is freed once nothing names it: its index may then pass to a new
  // process. A CAS from the identity we found dead, so that an entry freed and taken
  // since (possibly by a process that died in turn) is not freed unexamined.
  for (const Orphan& orphan : orphans) {
    if (orphan.still_held) continue;
    std::uint64_t expected = orphan.was;
    table[orphan.owner - 1].identity.compare_exchange_strong(expected, 0, std::memory_order_acq_rel);
  }
  return adoption.adopted;
}

}  // namespace shmbox::detail
