// The mailbox ring: claiming, publishing and releasing slots. One attempt per
// call, never waiting; mailbox/waiting.hpp decides how to wait between attempts.
// docs/design.md ("Send", "Receive", "Memory orders") gives the algorithm and the
// reason for every memory order used here.
#pragma once

#include <cstdint>
#include <optional>

#include <algorithm>
#include <climits>
#include <utility>

#include "local/mapped_mailbox.hpp"
#include "platform/futex.hpp"

namespace shmbox::detail {

struct SendClaim {
  std::uint64_t position;
  SlotHeader* slot;
};

struct ReceiveClaim {
  std::uint64_t position;
  SlotHeader* slot;
  std::uint32_t size;
};

// What one attempt came to. On `failed` the error is in mailbox.failure; it is built
// only then, so that the hot path moves one byte, not an Error.
enum class Attempt : std::uint8_t { claimed, not_yet, failed };

// Claims a slot for us to write; not_yet when every slot is taken (full).
// Fails with: closed, corrupt.
Attempt try_claim_send(MappedMailbox& mailbox, SendClaim& claim);

// Bounded mailboxes, for batches: claims the run of free slots from tail, up to `wanted`
// (at most the capacity), with one CAS of tail; `count` gets its length. A run of one is
// try_claim_send's claim. Publish each with make_visible, then end_claim once.
Attempt try_claim_send_run(MappedMailbox& mailbox, std::uint64_t wanted, SendClaim& first, std::uint64_t& count);

// Bounded mailboxes, for batches: claims the message at `position`, the one after a
// message we claimed, if it is published and fits `size_limit`; head is not moved (the
// batch moves it past its whole run with advance_head before freeing any of it). False
// for anything else, which the next receive meets at head.
bool try_claim_next(MappedMailbox& mailbox, std::uint64_t position, std::size_t size_limit, ReceiveClaim& claim) noexcept;

// Moves head to `to` unless it is there already: every position before `to` is claimed.
void advance_head(MappedMailbox& mailbox, std::uint64_t to) noexcept;

// Moves head past `head` if nobody has yet: its slot is claimed (or put back, or being
// freed), so anyone may.
inline void help_head(Header& header, std::uint64_t head) noexcept {
  std::uint64_t expected = head;
  header.head.compare_exchange_strong(expected, head + 1, std::memory_order_acq_rel, std::memory_order_acquire);
}


// Gives up a claimed, unpublished slot (an abandoned loan): receivers skip it.
void abandon(MappedMailbox& mailbox, const SendClaim& claim) noexcept;

// Zero capacity: takes a published message back unless a receiver has claimed it.
// True if taken back (it will never be received).
bool take_back(MappedMailbox& mailbox, const SendClaim& claim) noexcept;

// Whether a published message is still waiting for a receiver.
bool still_published(const MappedMailbox& mailbox, const SendClaim& claim) noexcept;

// Claims the next message for us; not_yet when there is none ready.
// A message larger than `size_limit` stays queued: Errc::too_large.
// Fails with: closed (and empty), corrupt, too_large.
Attempt try_claim_receive(MappedMailbox& mailbox, std::size_t size_limit, ReceiveClaim& claim);

// Unbounded mailboxes: counts the slot consumed, and gives its chunk back when full
// (chunks.cpp).
void release_unbounded(MappedMailbox& mailbox, const ReceiveClaim& claim) noexcept;

// Puts a claimed message back unread (RETURNED): the next receive takes it, before the
// messages at head. It keeps its position, so its sequence too.
void put_back(MappedMailbox& mailbox, const ReceiveClaim& claim) noexcept;

bool is_closed(const MappedMailbox& mailbox) noexcept;

// For spinning: whether the slot a receive (send) waits on has changed, read from
// that slot and the caller's own index only. Spinning on these instead of a full
// attempt keeps the waiter off the other side's index line, which that side is
// about to write.
bool receive_may_be_ready(const MappedMailbox& mailbox) noexcept;
bool send_may_be_ready(const MappedMailbox& mailbox) noexcept;

// Cheap readiness hints for selectors: a receive (send) would not have to wait.
// Closed counts as ready, so that the caller's next call reports it.
bool ready_to_receive(const MappedMailbox& mailbox) noexcept;
bool ready_to_send(const MappedMailbox& mailbox) noexcept;

// Messages a receive can still get (a snapshot): published ones at or past head, put-back
// ones, and ones a dead receiver held (recovery hands them on). Not positions a sender
// took back, abandoned or died before publishing (CANCELLED, SKIPPING, or FREE with a
// claim). Reads every slot that may hold one: not for hot paths.
std::uint64_t queued(const MappedMailbox& mailbox) noexcept;

// Whether the attach entry with index + 1 `owner` is held by a handle of a live process:
// not free, not held by a recovery (whose holder died), its process running. For counts
// that must stay true after a kill; a /proc read: not for hot paths.
bool held_by_live_handle(const MappedMailbox& mailbox, std::uint16_t owner) noexcept;

// Calls visit(first, last) for each range of positions in [from, to) whose slots are
// backed, with their memory safe to read during the call: all of it in a ring of n slots
// (the caller keeps to - from <= n + 1); in an unbounded mailbox, the part in each chunk
// still backed with slots not yet received (inside an ActiveGuard). Stops when visit
// returns false.
template <class Visit>
void for_each_readable_range(const MappedMailbox& mailbox, std::uint64_t from, std::uint64_t to, Visit&& visit);

// for_each_readable_range over the positions behind head, head included, whose slots may
// hold a claimed or returned message: the last n positions. (A receiver may die between
// its claim and moving head: hence head itself.)
template <class Visit>
void for_each_range_behind_head(const MappedMailbox& mailbox, std::uint64_t head, Visit&& visit) {
  const std::uint64_t n = mailbox.geometry.slot_count;
  for_each_readable_range(mailbox, head > n ? head - n : 0, head + 1, std::forward<Visit>(visit));
}

// Unbounded mailboxes: announces that this handle may read slot memory at `position`
// until the guard ends. Pairs with the releaser's heavy barrier and scan in
// release_unbounded: either the releaser sees us here and does not punch the chunk, or
// our read of the chunk word (after this store) sees it fully consumed and we keep out.
class ActiveGuard {
 public:
  // A handle not attached (self == 0, while it attaches) has no entry to announce in.
  ActiveGuard(const MappedMailbox& mailbox, std::uint64_t position) noexcept : entry_(mailbox.entry) {
    if (entry_ == nullptr) return;
    entry_->active.store(position + 1, std::memory_order_relaxed);
    std::atomic_signal_fence(std::memory_order_seq_cst);
  }
  ~ActiveGuard() {
    if (entry_ != nullptr) entry_->active.store(0, std::memory_order_release);
  }
  ActiveGuard(const ActiveGuard&) = delete;
  ActiveGuard& operator=(const ActiveGuard&) = delete;

 private:
  AttachEntry* entry_;
};

template <class Visit>
void for_each_readable_range(const MappedMailbox& mailbox, std::uint64_t from, std::uint64_t to, Visit&& visit) {
  if (from >= to) return;
  if (!mailbox.unbounded()) {
    (void)visit(from, to);
    return;
  }
  // Only chunks backed with unreceived slots hold anything.
  const std::uint64_t n = mailbox.geometry.slot_count;
  const auto* chunks = mailbox.chunk_table();
  const std::uint64_t k = mailbox.geometry.chunks.slots;
  for (std::uint64_t c = 0; c < mailbox.geometry.chunks.count; ++c) {
    const ChunkWord word = chunks[c].word.load(std::memory_order_acquire);
    if (!word.is_backed()) continue;
    const std::uint64_t first = word.lap() * n + c * k;
    if (first >= to || first + k <= from) continue;
    const ActiveGuard inside{mailbox, first};
    if (!chunks[c].word.load(std::memory_order_acquire).is_readable(word.lap(), k)) continue;
    if (!visit(std::max(first, from), std::min(first + k, to))) return;
  }
}

// The per-message steps below are inline: they run on every send and receive.

// Whether anyone sleeps on this side, read so that no wake-up is lost: either we see
// the sleeper's increment, or the sleeper's re-check sees what we did before calling.
// With membarrier the sleeper pays for the full barrier and we need only a compiler
// barrier; without it, a seq_cst read-modify-write on the counter orders us with the
// sleeper's seq_cst increment (design.md, Waiting and waking).
inline bool anyone_sleeping(const MappedMailbox& mailbox, std::atomic<std::uint32_t>& sleeping,
                     std::atomic<std::uint32_t>& selectors) noexcept {
  if (mailbox.light_wake_checks) {
    std::atomic_signal_fence(std::memory_order_seq_cst);
    return sleeping.load(std::memory_order_relaxed) != 0 || selectors.load(std::memory_order_relaxed) != 0;
  }
  return sleeping.fetch_add(0, std::memory_order_seq_cst) != 0 || selectors.fetch_add(0, std::memory_order_seq_cst) != 0;
}

inline void wake(std::atomic<std::uint32_t>& epoch, std::atomic<std::uint32_t>& selectors, bool all) noexcept {
  // Release: a sleeper that reads the new epoch (acquire) also sees what we did.
  epoch.fetch_add(1, std::memory_order_release);
  platform::futex_wake(epoch, all || selectors.load(std::memory_order_relaxed) != 0 ? INT_MAX : 1);
}

inline void wake_receivers(MappedMailbox& mailbox, bool all) noexcept {
  Header& header = *mailbox.header;
  if (anyone_sleeping(mailbox, header.receivers_sleeping, header.receive_selectors_sleeping)) {
    wake(header.data_epoch, header.receive_selectors_sleeping, all);
  }
}

inline void wake_senders(MappedMailbox& mailbox, bool all) noexcept {
  Header& header = *mailbox.header;
  if (anyone_sleeping(mailbox, header.senders_sleeping, header.send_selectors_sleeping)) {
    wake(header.space_epoch, header.send_selectors_sleeping, all);
  }
}

// Closes the mailbox for everyone and wakes every waiter on either side (rare: no
// check for sleepers first).
inline void close_mailbox(Header& header) noexcept {
  header.tail.fetch_or(closed_bit, std::memory_order_acq_rel);
  wake(header.data_epoch, header.receive_selectors_sleeping, true);
  wake(header.space_epoch, header.send_selectors_sleeping, true);
}

// Makes a claimed slot's first `size` bytes visible to receivers.
inline void make_visible(MappedMailbox& mailbox, const SendClaim& claim, std::uint32_t size) noexcept {
  claim.slot->size.store(size, std::memory_order_relaxed);
  // Release: the size and payload written before are visible to the receiver whose
  // acquire load sees FULL.
  claim.slot->state.store(SlotState::pack(claim.position, Phase::full, mailbox.self), std::memory_order_release);
  // Most likely the next slot we claim: take ownership of it now, while the receiver
  // works, rather than on the critical path of the next send.
  __builtin_prefetch(&mailbox.slot(claim.position + 1), 1, 3);
}

// After the last message of a claim (one, or a run) is visible: forgets the intent and
// wakes a receiver (every one for a run).
inline void end_claim(MappedMailbox& mailbox, bool run) noexcept {
  // Release: a recovery that reads the cleared intent must also see FULL (recovery.cpp).
  mailbox.entry->send_intent.store(0, std::memory_order_release);
  wake_receivers(mailbox, run);
}

// Makes a claimed slot's first `size` bytes visible to receivers and wakes one.
inline void publish(MappedMailbox& mailbox, const SendClaim& claim, std::uint32_t size) noexcept {
  make_visible(mailbox, claim, size);
  end_claim(mailbox, false);
}

// Bounded mailboxes: frees a received slot for the next lap, waking nobody (release does).
inline void free_slot(MappedMailbox& mailbox, const ReceiveClaim& claim) noexcept {
  // Release: our reads of the payload happen before the next lap's sender, whose
  // acquire load sees FREE, overwrites it.
  claim.slot->state.store(SlotState::pack(claim.position + mailbox.geometry.slot_count, Phase::free, 0),
                          std::memory_order_release);
}

// Frees a received slot for the next lap and wakes a sender.
inline void release(MappedMailbox& mailbox, const ReceiveClaim& claim) noexcept {
  if (mailbox.unbounded()) return release_unbounded(mailbox, claim);
  free_slot(mailbox, claim);
  wake_senders(mailbox, false);
}

}  // namespace shmbox::detail
