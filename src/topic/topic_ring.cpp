// The topic algorithm. docs/design.md ("Topics") gives the protocol; the comments here say
// which access pairs with which.
#include "topic/topic_ring.hpp"

#include <algorithm>
#include <climits>
#include <thread>

#include "base/seqlock_copy.hpp"
#include "platform/barrier.hpp"
#include "platform/futex.hpp"
#include "platform/process.hpp"

namespace shmbox::detail {
namespace {

using namespace std::chrono_literals;

// How long a waiter sleeps at most before it looks for dead processes to recover (and
// for the topic's owner): a dead peer never makes anyone wait longer than this.
constexpr auto liveness_interval = 100ms;
// How long a reader waits for a publisher that has a chunk it pinned marked as being
// written (a publisher that saw the pin puts the mark back at once).
constexpr int being_written_spins = 1 << 16;
// How long a subscriber sleeps at most when it could not issue a heavy barrier: a sole
// publisher that checks for sleepers without a fence may miss it (wait_for_commit).
constexpr auto unbarriered_nap = 2ms;

// The sole publisher marks a run of chunks, then reads their pins once: one full fence for
// the run (Dekker with receive_pinned) where the shared path makes a CAS per chunk.
// ThreadSanitizer models no fences: there each mark is a seq_cst store instead.
#if defined(__SANITIZE_THREAD__)
constexpr std::memory_order run_mark_order = std::memory_order_seq_cst;
void fence_after_run_marks() noexcept {}
#else
constexpr std::memory_order run_mark_order = std::memory_order_relaxed;
void fence_after_run_marks() noexcept { std::atomic_thread_fence(std::memory_order_seq_cst); }
#endif

// Where `entry_sequence` (48 bits) stands against `sequence`: -1 older, 0 the same, 1 newer.
int compare_sequence(std::uint64_t entry_sequence, std::uint64_t sequence) noexcept {
  const std::uint64_t difference = (entry_sequence - sequence) & topic_sequence_mask;
  if (difference == 0) return 0;
  return difference <= (topic_sequence_mask >> 1) ? 1 : -1;
}

using platform::ProcessIdentity;

std::uint64_t this_process() noexcept { return platform::current_process().packed(); }

bool is_dead(std::uint64_t owner) noexcept {
  return owner != 0 && platform::liveness(ProcessIdentity::without_recovering_bit(owner)) == platform::Liveness::dead;
}

std::uint64_t holder_bit(std::uint32_t slot) noexcept { return std::uint64_t{1} << (slot % 64); }

// Wakes the sleepers of an event word, if its sleeping bit says there are any: moves the
// word on (a count, so that no value comes back soon), clearing the bit, and wakes them all.
// Called after the seq_cst write that made the event (Dekker with a sleeper, which sets the
// bit and then reads what we wrote). An event nobody sleeps on costs one load.
void announce(std::atomic<std::uint32_t>& word) noexcept {
  std::uint32_t before = word.load(std::memory_order_seq_cst);
  if ((before & EventWord::sleeping) == 0) return;
  while (!word.compare_exchange_weak(before, EventWord::next(before), std::memory_order_seq_cst)) {
  }
  platform::futex_wake(word, INT_MAX);
}

// Sets the sleeping bit of `word` if it still reads `seen`; false if it moved on.
bool mark_sleeping(std::atomic<std::uint32_t>& word, std::uint32_t seen) noexcept {
  if ((seen & EventWord::sleeping) != 0) return true;
  return word.compare_exchange_strong(seen, seen | EventWord::sleeping, std::memory_order_seq_cst);
}

std::optional<platform::MonotonicTime> nap_until(Deadline deadline,
                                                 std::chrono::nanoseconds longest = liveness_interval) {
  const auto cap = Deadline::clock::now() + longest;
  if (deadline.is_forever()) return cap;
  return std::min(deadline.until(), cap);
}

// A waiter's spinning before it sleeps, as its WaitPolicy says. The clock is read every
// 64th round only, from the 64th: a read costs as much as passing a message, and a wait
// that ends within a few rounds (a subscriber that keeps up with its publisher, on every
// message) reads it never. The budget counts from the first read.
class Spin {
 public:
  Spin(const WaitPolicy& wait, std::size_t message_size) noexcept
      : wait_(wait), budget_(wait.spin_for(message_size)) {}

  // The rounds on which to read the clock (deadlines, recovery) besides the spin budget:
  // every one once the waiter sleeps between them.
  bool looking_around() const noexcept { return spent_ || wait_.mode == WaitMode::sleep || rounds_ % 64 == 63; }

  // Counts a round: whether to spin once more (after a pause) or to sleep now.
  bool again() noexcept {
    const bool look = looking_around();
    ++rounds_;
    switch (wait_.mode) {
      case WaitMode::busy_poll: break;
      case WaitMode::sleep: return false;
      case WaitMode::adaptive:
        if (look) {
          const auto now = Deadline::clock::now();
          if (rounds_ == 64) started_ = now;
          else if (now - started_ >= budget_) spent_ = true;
        }
        if (spent_) return false;
        break;
    }
    platform::cpu_relax();
    return true;
  }

 private:
  const WaitPolicy& wait_;
  std::chrono::nanoseconds budget_;
  std::uint64_t rounds_ = 0;
  Deadline::clock::time_point started_{};
  bool spent_ = false;
};

}  // namespace

TopicRing::Look TopicRing::look(std::uint64_t sequence) const noexcept {
  const std::uint64_t entry = record_.entries[sequence % record_.geometry.capacity].load(std::memory_order_seq_cst);
  const int order = compare_sequence(RingEntry::sequence(entry), sequence);
  if (order < 0) return {Found::not_yet, entry};
  if (order > 0) return {Found::overwritten, entry};
  return {RingEntry::chunk(entry) == topic_no_chunk ? Found::abandoned : Found::message, entry};
}

// ---- publishers ----

// Takes a slot among `count` for this process: a free one, else one whose holder is dead
// (`recover(i, owner)` frees it). While the slots change hands it looks again, for at most
// the liveness interval: a process recovering a slot holds it under its own identity
// (with ProcessIdentity::recovering_bit), and a dead publisher's claim waits for a live
// one that names it too.
template <class OwnerOf, class Recover>
std::optional<std::uint32_t> TopicRing::take_slot(std::uint32_t count, OwnerOf&& owner_of, Recover&& recover) {
  const std::uint64_t me = this_process();
  const auto started = Deadline::clock::now();
  std::vector<std::uint64_t> seen(count, 0);
  // Once a slot was seen dead, changing hands or being recovered, look again until the
  // liveness interval: a recovery may hold a slot for more than a round.
  bool changing = false;
  for (int round = 0;; ++round) {
    for (std::uint32_t i = 0; i < count; ++i) {
      std::atomic<std::uint64_t>& owner_word = owner_of(i);
      std::uint64_t owner = owner_word.load(std::memory_order_acquire);
      if ((round > 0 && owner != seen[i]) || (owner & ProcessIdentity::recovering_bit) != 0) changing = true;
      if (round > 0 && is_dead(owner)) {
        if (recover(i, owner)) owner = 0;
        else changing = true;
      }
      seen[i] = owner;
      if (owner != 0) continue;
      if (owner_word.compare_exchange_strong(owner, me, std::memory_order_acq_rel)) return i;
      changing = true;
    }
    if (round > 0 && (!changing || Deadline::clock::now() - started >= liveness_interval)) return std::nullopt;
    if (round > 0) platform::yield_cpu();
  }
}

Result<std::uint32_t> TopicRing::join_publisher() {
  const auto taken = take_slot(
      record_.geometry.publisher_slots, [&](std::uint32_t i) -> auto& { return record_.publishers[i].owner; },
      [&](std::uint32_t i, std::uint64_t owner) { return recover_publisher(i, owner); });
  if (!taken) {
    return std::unexpected(Error{Errc::in_use, object_,
                                 "has no publisher slot free: all " + std::to_string(record_.geometry.publisher_slots) +
                                     " are held by live processes"});
  }
  PublisherSlot& slot = record_.publishers[*taken];
  slot.claiming.store(0, std::memory_order_relaxed);
  slot.chunk.store(topic_no_chunk, std::memory_order_relaxed);
  slot.published.store(0, std::memory_order_relaxed);
  if (sole()) {
    run_ = {};
    in_heavy_barriers_ = platform::register_for_heavy_barriers();
  }
  return *taken;
}

void TopicRing::leave_publisher(std::uint32_t slot) noexcept {
  PublisherSlot& publisher = record_.publishers[slot];
  if (sole()) free_run(slot);
  // A loan still out is given back now; the term tells it so (give_back).
  if (const std::uint32_t loaned = publisher.chunk.load(std::memory_order_relaxed); loaned < record_.geometry.chunk_count) {
    unmark(slot, loaned);
  }
  publisher_terms_[slot].fetch_add(1, std::memory_order_acq_rel);
  publisher.claiming.store(0, std::memory_order_relaxed);
  publisher.chunk.store(topic_no_chunk, std::memory_order_relaxed);
  publisher.owner.store(0, std::memory_order_release);
}

Result<std::uint32_t> TopicRing::take_chunk(std::uint32_t slot) {
  if (sole()) return take_from_run(slot);
  PublisherSlot& publisher = record_.publishers[slot];
  const std::uint32_t count = record_.geometry.chunk_count;
  std::uint64_t last_head = 0;
  int idle_looks = 0;
  for (;;) {
    // A chunk whose message has left the ring: its sequence number is older than any the
    // ring still holds (head - capacity), or it was never used or given back (0).
    const std::uint64_t head = record_.header->head.load(std::memory_order_acquire);
    if (head != last_head) {
      idle_looks = 0;  // other publishers take chunks ahead of a slow look: look again
    } else if (++idle_looks > 3 && recover_dead() == 0) {
      // Nobody publishes and a few looks found nothing (a pin or loan let go meanwhile
      // would have shown). There are chunks for every message the ring holds, every pin
      // and every publisher: only the dead can hold the rest, and there are none.
      break;
    }
    last_head = head;
    const std::uint64_t window_start = head > record_.geometry.capacity ? head - record_.geometry.capacity : 0;
    // A hint only (publishers that read the same one collide on a chunk's CAS): no locked add.
    const std::uint32_t start = record_.header->next_chunk.load(std::memory_order_relaxed) % count;
    for (std::uint32_t n = 0; n < count; ++n) {
      const std::uint32_t index = (start + n) % count;
      ChunkHeader& chunk = record_.chunk(index);
      std::uint64_t sequence = chunk.sequence.load(std::memory_order_acquire);
      if (ChunkHeader::is_being_written(sequence) || (sequence != 0 && sequence >= window_start)) continue;
      if ((chunk.holders[0].load(std::memory_order_relaxed) | chunk.holders[1].load(std::memory_order_relaxed)) != 0) {
        continue;
      }
      // Named before it is taken: whoever finds this process dead gives it back (the CAS
      // below publishes it).
      publisher.chunk.store(index, std::memory_order_relaxed);
      if (!chunk.sequence.compare_exchange_strong(sequence, ChunkHeader::being_written(slot),
                                                  std::memory_order_seq_cst)) {
        continue;
      }
      // Dekker with a reader's pin (receive_pinned): it sets its bit, then reads the
      // sequence number; we set the sequence number, then read the bits. One of us sees
      // the other: a pinned chunk is put back as it was.
      if ((chunk.holders[0].load(std::memory_order_seq_cst) | chunk.holders[1].load(std::memory_order_seq_cst)) != 0) {
        chunk.sequence.store(sequence, std::memory_order_seq_cst);
        continue;
      }
      record_.header->next_chunk.store(index + 1, std::memory_order_relaxed);
      // The seqlock writer's fence: no byte written into the chunk is seen before the mark.
      fence_before_copy_in();
      return index;
    }
    publisher.chunk.store(topic_no_chunk, std::memory_order_relaxed);
  }
  return std::unexpected(no_free_chunk());
}

Error TopicRing::no_free_chunk() const {
  return Error{Errc::corrupt, object_,
               "has no free chunk among " + std::to_string(record_.geometry.chunk_count) +
                   ", which its live publishers and subscribers cannot all hold"};
}

Result<std::uint32_t> TopicRing::take_from_run(std::uint32_t slot) {
  for (int looks = 0; run_.next == run_.count; ++looks) {
    // As in take_chunk: there are chunks for every message the ring holds, every pin and
    // the publisher; only the dead can hold the rest. A pin let go shows on the next look.
    if (looks > 3 && recover_dead() == 0) return std::unexpected(no_free_chunk());
    if (looks > 0) platform::yield_cpu();
    mark_run(slot);
  }
  const std::uint32_t index = run_.chunks[run_.next++];
  record_.publishers[slot].chunk.store(index, std::memory_order_relaxed);
  return index;
}

void TopicRing::mark_run(std::uint32_t slot) {
  TopicHeader& header = *record_.header;
  const std::uint32_t count = record_.geometry.chunk_count;
  // Ours while we hold the slot; the acquire sees what the slot's last holder left.
  const std::uint64_t head = header.head.load(std::memory_order_acquire);
  const std::uint64_t window_start = head > record_.geometry.capacity ? head - record_.geometry.capacity : 0;
  const std::uint32_t start = header.next_chunk.load(std::memory_order_relaxed) % count;
  std::array<std::uint64_t, topic_run> before{};
  run_ = {};
  std::uint32_t looked = 0;
  // Free as take_chunk judges, and stays so: the window only moves on.
  for (; looked < count && run_.count < topic_run; ++looked) {
    const std::uint32_t index = (start + looked) % count;
    ChunkHeader& chunk = record_.chunk(index);
    const std::uint64_t sequence = chunk.sequence.load(std::memory_order_acquire);
    if (ChunkHeader::is_being_written(sequence) || (sequence != 0 && sequence >= window_start)) continue;
    if ((chunk.holders[0].load(std::memory_order_relaxed) | chunk.holders[1].load(std::memory_order_relaxed)) != 0) {
      continue;
    }
    chunk.sequence.store(ChunkHeader::being_written(slot), run_mark_order);
    before[run_.count] = sequence;
    run_.chunks[run_.count++] = index;
  }
  header.next_chunk.store((start + looked) % count, std::memory_order_relaxed);
  // Dekker with a reader's pin (receive_pinned), once for the run: the marks, then the
  // bits. A pinned chunk is put back as it was.
  fence_after_run_marks();
  std::uint32_t kept = 0;
  for (std::uint32_t i = 0; i < run_.count; ++i) {
    ChunkHeader& chunk = record_.chunk(run_.chunks[i]);
    if ((chunk.holders[0].load(std::memory_order_seq_cst) | chunk.holders[1].load(std::memory_order_seq_cst)) != 0) {
      chunk.sequence.store(before[i], std::memory_order_seq_cst);
      continue;
    }
    run_.chunks[kept++] = run_.chunks[i];
  }
  run_.count = kept;
  // The seqlock writer's fence: no byte written into these chunks is seen before the marks.
  fence_before_copy_in();
}

void TopicRing::unmark(std::uint32_t slot, std::uint32_t chunk) noexcept {
  std::uint64_t ours = ChunkHeader::being_written(slot);
  (void)record_.chunk(chunk).sequence.compare_exchange_strong(ours, 0, std::memory_order_acq_rel);
}

void TopicRing::free_run(std::uint32_t slot) noexcept {
  for (std::uint32_t i = run_.next; i < run_.count; ++i) unmark(slot, run_.chunks[i]);
  run_ = {};
}

void TopicRing::free_marked_chunks(std::uint32_t slot) noexcept {
  for (std::uint32_t i = 0; i < record_.geometry.chunk_count; ++i) unmark(slot, i);
}

void TopicRing::give_back(std::uint32_t slot, std::uint32_t chunk, std::uint64_t term) noexcept {
  if (term != publisher_term(slot)) return;
  unmark(slot, chunk);
  // Unless its publisher has left meanwhile and the slot is another's.
  std::uint32_t named = chunk;
  record_.publishers[slot].chunk.compare_exchange_strong(named, topic_no_chunk, std::memory_order_acq_rel);
}

std::uint64_t TopicRing::lowest_cursor() noexcept {
  std::uint64_t lowest = record_.header->head.load(std::memory_order_seq_cst);
  for (std::uint32_t i = 0; i < record_.geometry.subscriber_slots; ++i) {
    const SubscriberSlot& subscriber = record_.subscribers[i];
    if (subscriber.owner.load(std::memory_order_seq_cst) == 0) continue;
    if (subscriber.evicted.load(std::memory_order_relaxed) != 0) continue;
    lowest = std::min(lowest, subscriber.cursor.load(std::memory_order_seq_cst));
  }
  return lowest;
}

template <class Spinner>
Result<bool> TopicRing::room_for(std::uint64_t next, Spinner& spin, Deadline deadline) {
  TopicHeader& header = *record_.header;
  const std::uint64_t capacity = record_.geometry.capacity;
  if (room_at_a_glance(next)) return true;
  const std::uint32_t seen = header.consumed.load(std::memory_order_seq_cst);
  std::uint64_t lowest = lowest_cursor();
  std::uint64_t gate = header.gate.load(std::memory_order_relaxed);
  while (gate < lowest && !header.gate.compare_exchange_weak(gate, lowest, std::memory_order_acq_rel)) {
  }
  if (next - capacity < lowest) return true;
  if (removed()) return std::unexpected(removed_error());
  if (deadline.is_none()) {
    return std::unexpected(Error{Errc::would_block, object_, "is full: a subscriber has not read the oldest message"});
  }
  if (spin.looking_around() && deadline.expired()) {
    return std::unexpected(Error{Errc::timeout, object_, "timed out waiting for a subscriber to read"});
  }
  if (spin.looking_around() && recovery_due()) {
    // The dead (subscribers, and publishers the slowest may wait on) are recovered;
    // the slowest that is stopped is passed over until it reads again.
    (void)recover_dead();
    for (std::uint32_t i = 0; i < record_.geometry.subscriber_slots; ++i) {
      SubscriberSlot& subscriber = record_.subscribers[i];
      const std::uint64_t owner = subscriber.owner.load(std::memory_order_acquire);
      if (owner == 0 || subscriber.cursor.load(std::memory_order_acquire) != lowest) continue;
      if (platform::stopped(ProcessIdentity::without_recovering_bit(owner)) &&
          subscriber.owner.load(std::memory_order_acquire) == owner) {
        subscriber.evicted.store(1, std::memory_order_seq_cst);
      }
    }
    (void)spin.again();
    return false;
  }
  if (spin.again()) return false;
  // Dekker with advance(): we set the sleeping bit, then read the cursors; a subscriber
  // stores its cursor, then reads the bit, with only a compiler barrier between when its
  // process takes part in heavy barriers: ours makes up for it, or the nap stays short.
  if (!mark_sleeping(header.consumed, seen)) return false;
  const bool ordered = platform::heavy_barrier();
  if (next - capacity < lowest_cursor()) return false;
  (void)platform::futex_wait(header.consumed, seen | EventWord::sleeping,
                             nap_until(deadline, ordered ? liveness_interval : unbarriered_nap));
  return false;
}

Result<std::uint64_t> TopicRing::claim_sequence(std::uint32_t slot, Deadline deadline) {
  TopicHeader& header = *record_.header;
  PublisherSlot& publisher = record_.publishers[slot];
  Spin spin{wait_, recent_message_size_.load(std::memory_order_relaxed)};
  for (;;) {
    std::uint64_t next = header.head.load(std::memory_order_acquire);
    const auto room = room_for(next, spin, deadline);
    if (!room) return std::unexpected(room.error());
    if (!*room) continue;
    // Named before it is claimed: whoever finds this process dead abandons it. Cleared
    // when the claim fails, so that a live slot names only what it may yet commit. No
    // fence of its own: the CAS of head publishes it to whoever reads head past `next`.
    publisher.claiming.store(next, std::memory_order_relaxed);
    if (header.head.compare_exchange_weak(next, next + 1, std::memory_order_seq_cst)) return next;
    publisher.claiming.store(0, std::memory_order_relaxed);
  }
}

// The sole publisher commits with stores: nobody else writes head, the entries or its
// chunks while it lives. In the order a reader and a recoverer need: the chunk's number
// (with its bytes), then the entry, then head (design.md, "One publisher slot").
Result<std::uint64_t> TopicRing::commit_sole(std::uint32_t slot, std::uint32_t index, std::size_t size,
                                             Deadline deadline) {
  TopicHeader& header = *record_.header;
  const std::uint64_t sequence = header.head.load(std::memory_order_relaxed);
  if (!room_at_a_glance(sequence)) {
    Spin spin{wait_, size};
    for (;;) {
      const auto room = room_for(sequence, spin, deadline);
      if (!room) return std::unexpected(room.error());
      if (*room) break;
    }
  }
  // The chunk the next message goes in, for subscribers to watch (its loan pops it).
  if (run_.next == run_.count) mark_run(slot);
  ChunkHeader& chunk = record_.chunk(index);
  chunk.size.store(size, length_store_order);
  chunk.next.store(run_.next < run_.count ? run_.chunks[run_.next] : topic_no_chunk, std::memory_order_relaxed);
  // From here the message is published: a subscriber following the last hint may take it
  // now, and recovery finishes the steps below if this process dies.
  chunk.sequence.store(sequence, std::memory_order_release);
  // Release: a subscriber that reads the entry finds the chunk numbered and filled.
  // Without heavy barriers, seq_cst: the Dekker with a sleeping subscriber (below).
  // (Two stores, not one with a chosen order: a compiler makes any order not known at
  // compile time seq_cst.)
  std::atomic<std::uint64_t>& entry = record_.entries[sequence % record_.geometry.capacity];
  if (in_heavy_barriers_) {
    entry.store(RingEntry::make(sequence, index), std::memory_order_release);
  } else {
    entry.store(RingEntry::make(sequence, index), std::memory_order_seq_cst);
  }
  header.head.store(sequence + 1, std::memory_order_release);
  PublisherSlot& publisher = record_.publishers[slot];
  publisher.chunk.store(topic_no_chunk, std::memory_order_relaxed);
  publisher.published.store(publisher.published.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  // Dekker with a sleeping subscriber: the entry, then the word. With heavy barriers the
  // subscriber issues one between its bit and its look at the entry, and this side only
  // keeps the compiler from reordering (wait_for_commit).
  std::atomic_signal_fence(std::memory_order_seq_cst);
  announce(header.published);
  return sequence;
}

Result<std::uint64_t> TopicRing::commit(std::uint32_t slot, std::uint32_t index, std::size_t size, Deadline deadline) {
  if (removed()) return std::unexpected(removed_error());
  recent_message_size_.store(size, std::memory_order_relaxed);
  if (sole()) return commit_sole(slot, index, size, deadline);
  auto claimed = claim_sequence(slot, deadline);
  if (!claimed) return claimed;
  const std::uint64_t sequence = *claimed;
  ChunkHeader& chunk = record_.chunk(index);
  chunk.size.store(size, length_store_order);
  chunk.next.store(topic_no_chunk, std::memory_order_relaxed);
  // Pairs with a reader's acquire of the sequence number: the bytes come with it.
  chunk.sequence.store(sequence, std::memory_order_release);
  std::atomic<std::uint64_t>& entry = record_.entries[sequence % record_.geometry.capacity];
  std::uint64_t current = entry.load(std::memory_order_acquire);
  for (;;) {
    // Overwritten before it was in (an overwriting topic whose later publisher was
    // quicker): published and at once lost, as if read by nobody in time.
    if (compare_sequence(RingEntry::sequence(current), sequence) >= 0) {
      // Freed unless another publisher has taken it meanwhile (it is out of the window).
      std::uint64_t ours = sequence;
      chunk.sequence.compare_exchange_strong(ours, 0, std::memory_order_acq_rel);
      break;
    }
    if (entry.compare_exchange_weak(current, RingEntry::make(sequence, index), std::memory_order_seq_cst)) break;
  }
  PublisherSlot& publisher = record_.publishers[slot];
  publisher.claiming.store(0, std::memory_order_release);
  publisher.chunk.store(topic_no_chunk, std::memory_order_release);
  // Only this publisher writes its count: no locked instruction needed.
  publisher.published.store(publisher.published.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  // Dekker with a sleeping subscriber: the entry above, then the word (seq_cst both).
  announce(record_.header->published);
  return sequence;
}

bool TopicRing::recover_publisher(std::uint32_t slot, std::uint64_t dead_owner) {
  PublisherSlot& publisher = record_.publishers[slot];
  // Ours while we recover it, marked as a recovery: if we die too, our identity is dead and
  // the next one redoes it; no new publisher takes the slot (and its chunk mark)
  // meanwhile, and one looking for a slot waits for it.
  const std::uint64_t me = this_process() | ProcessIdentity::recovering_bit;
  if (!publisher.owner.compare_exchange_strong(dead_owner, me, std::memory_order_acq_rel)) return false;
  const std::uint64_t claiming = publisher.claiming.load(std::memory_order_acquire);
  // A sequence number it claimed and never committed: nobody will, so readers pass it.
  // Only if it was handed out (head is past it). A live slot naming it too is between its
  // own store and its CAS (which will fail, as head is past it): look again later.
  if (claiming != 0 && record_.header->head.load(std::memory_order_seq_cst) > claiming) {
    for (std::uint32_t i = 0; i < record_.geometry.publisher_slots; ++i) {
      if (i == slot || record_.publishers[i].claiming.load(std::memory_order_seq_cst) != claiming) continue;
      const std::uint64_t owner = record_.publishers[i].owner.load(std::memory_order_acquire);
      if (owner != 0 && !is_dead(owner)) {
        publisher.owner.store(dead_owner, std::memory_order_release);
        return false;
      }
    }
    std::atomic<std::uint64_t>& entry = record_.entries[claiming % record_.geometry.capacity];
    std::uint64_t current = entry.load(std::memory_order_acquire);
    while (compare_sequence(RingEntry::sequence(current), claiming) < 0 &&
           !entry.compare_exchange_weak(current, RingEntry::make(claiming, topic_no_chunk), std::memory_order_seq_cst)) {
    }
    announce(record_.header->published);
  }
  if (sole()) recover_sole_commit();
  // The chunks it was writing or had marked: marked with its slot, so exactly those.
  free_marked_chunks(slot);
  publisher.claiming.store(0, std::memory_order_relaxed);
  publisher.chunk.store(topic_no_chunk, std::memory_order_relaxed);
  publisher.owner.store(0, std::memory_order_release);
  return true;
}

void TopicRing::recover_sole_commit() noexcept {
  TopicHeader& header = *record_.header;
  std::uint64_t head = header.head.load(std::memory_order_seq_cst);
  std::atomic<std::uint64_t>& entry = record_.entries[head % record_.geometry.capacity];
  std::uint64_t current = entry.load(std::memory_order_seq_cst);
  // Its last message, if it got as far as numbering its chunk, is published: a subscriber
  // following its hint may have read it. Put in the ring if it is not, head moved past it
  // (else the next publisher would number another message the same).
  bool published = compare_sequence(RingEntry::sequence(current), head) == 0;
  for (std::uint32_t i = 0; i < record_.geometry.chunk_count && !published; ++i) {
    if (record_.chunk(i).sequence.load(std::memory_order_acquire) != head) continue;
    while (compare_sequence(RingEntry::sequence(current), head) < 0 &&
           !entry.compare_exchange_weak(current, RingEntry::make(head, i), std::memory_order_seq_cst)) {
    }
    published = true;
  }
  if (!published) return;
  header.head.compare_exchange_strong(head, head + 1, std::memory_order_seq_cst);
  announce(header.published);
}

bool TopicRing::recovery_due() noexcept {
  const std::int64_t now = Deadline::clock::now().time_since_epoch().count();
  std::int64_t last = last_recovery_.load(std::memory_order_relaxed);
  const std::int64_t interval = std::chrono::duration_cast<Deadline::clock::duration>(liveness_interval).count();
  return now - last >= interval && last_recovery_.compare_exchange_strong(last, now, std::memory_order_relaxed);
}

bool TopicRing::recovery_may_be_due() const noexcept {
  const std::int64_t now = Deadline::clock::now().time_since_epoch().count();
  const std::int64_t interval = std::chrono::duration_cast<Deadline::clock::duration>(liveness_interval).count();
  return now - last_recovery_.load(std::memory_order_relaxed) >= interval;
}

bool TopicRing::dead_publisher_may_hold(std::uint64_t cursor) noexcept {
  // head first only once a look is due: head's line is the publishers', and a subscriber
  // that read it on every wait would pull it away from them on every message. A sole
  // publisher claims nothing: its message at head may be numbered in a chunk (published,
  // read by subscribers that follow its hint) with head not moved, so its death is what
  // to look for.
  if (!recovery_may_be_due()) return false;
  const bool waits_on_the_dead = record_.header->head.load(std::memory_order_acquire) > cursor ||
                                 (sole() && is_dead(record_.publishers[0].owner.load(std::memory_order_acquire)));
  return waits_on_the_dead && recovery_due();
}

// ---- subscribers ----

void TopicRing::clear_holder_bit(std::uint32_t slot) noexcept {
  const std::uint64_t bit = holder_bit(slot);
  for (std::uint32_t i = 0; i < record_.geometry.chunk_count; ++i) {
    std::atomic<std::uint64_t>& holders = record_.chunk(i).holders[slot / 64];
    if ((holders.load(std::memory_order_relaxed) & bit) != 0) holders.fetch_and(~bit, std::memory_order_release);
  }
}

Result<std::uint32_t> TopicRing::join_subscriber(std::uint32_t history) {
  const auto taken = take_slot(
      record_.geometry.subscriber_slots, [&](std::uint32_t i) -> auto& { return record_.subscribers[i].owner; },
      [&](std::uint32_t i, std::uint64_t owner) { return recover_subscriber(i, owner); });
  if (!taken) {
    return std::unexpected(Error{Errc::in_use, object_,
                                 "has no subscriber slot free: all " +
                                     std::to_string(record_.geometry.subscriber_slots) + " are held by live processes"});
  }
  SubscriberSlot& slot = record_.subscribers[*taken];
  in_heavy_barriers_ = platform::register_for_heavy_barriers();
  clear_holder_bit(*taken);  // none should be left; a slot is never trusted to be clean
  slot.lost.store(0, std::memory_order_relaxed);
  slot.received.store(0, std::memory_order_relaxed);
  slot.evicted.store(0, std::memory_order_relaxed);
  hints_[*taken] = topic_no_chunk;
  TopicHeader& header = *record_.header;
  const std::uint64_t head = header.head.load(std::memory_order_seq_cst);
  const std::uint64_t wanted = std::min(history, record_.history);
  const std::uint64_t oldest = head > record_.geometry.capacity ? head - record_.geometry.capacity : 1;
  const std::uint64_t start = std::max(head > wanted ? head - wanted : 1, oldest);
  slot.cursor.store(start, std::memory_order_seq_cst);
  // Publishers judge by the gate first: it must not be above a cursor.
  std::uint64_t gate = header.gate.load(std::memory_order_acquire);
  while (gate > start && !header.gate.compare_exchange_weak(gate, start, std::memory_order_acq_rel)) {
  }
  return *taken;
}

void TopicRing::leave_subscriber(std::uint32_t slot) noexcept {
  clear_holder_bit(slot);
  record_.subscribers[slot].owner.store(0, std::memory_order_seq_cst);
  // A blocked publisher may go now.
  announce(record_.header->consumed);
}

bool TopicRing::recover_subscriber(std::uint32_t slot, std::uint64_t dead_owner) {
  SubscriberSlot& subscriber = record_.subscribers[slot];
  if (!subscriber.owner.compare_exchange_strong(dead_owner, this_process() | ProcessIdentity::recovering_bit,
                                               std::memory_order_acq_rel)) {
    return false;
  }
  leave_subscriber(slot);
  return true;
}

std::uint32_t TopicRing::recover_dead() {
  std::uint32_t recovered = 0;
  for (std::uint32_t i = 0; i < record_.geometry.publisher_slots; ++i) {
    const std::uint64_t owner = record_.publishers[i].owner.load(std::memory_order_acquire);
    if (is_dead(owner) && recover_publisher(i, owner)) ++recovered;
  }
  for (std::uint32_t i = 0; i < record_.geometry.subscriber_slots; ++i) {
    const std::uint64_t owner = record_.subscribers[i].owner.load(std::memory_order_acquire);
    if (is_dead(owner) && recover_subscriber(i, owner)) ++recovered;
  }
  return recovered;
}

std::uint64_t TopicRing::skip_overwritten(std::uint64_t& cursor) const noexcept {
  const std::uint64_t head = record_.header->head.load(std::memory_order_acquire);
  const std::uint64_t oldest = head > record_.geometry.capacity ? head - record_.geometry.capacity : 1;
  const std::uint64_t next = std::max(cursor + 1, oldest);
  const std::uint64_t skipped = next - cursor;
  cursor = next;
  return skipped;
}

void TopicRing::advance(std::uint32_t slot, std::uint64_t cursor, std::uint64_t lost) noexcept {
  SubscriberSlot& subscriber = record_.subscribers[slot];
  if (lost != 0) subscriber.lost.fetch_add(lost, std::memory_order_relaxed);
  // Dekker with a publisher waiting for room (room_for): the cursor, then the bit. The
  // publisher issues a heavy barrier before it reads the cursors, so a process that takes
  // part in them needs no fence here, only the compiler's order (a seq_cst store is a
  // locked instruction on every message).
  if (in_heavy_barriers_) {
    subscriber.cursor.store(cursor, std::memory_order_release);
    std::atomic_signal_fence(std::memory_order_seq_cst);
  } else {
    subscriber.cursor.store(cursor, std::memory_order_seq_cst);
  }
  if (subscriber.evicted.load(std::memory_order_relaxed) != 0) {
    // Running again: publishers wait for it from here on (the gate comes down to it).
    subscriber.evicted.store(0, std::memory_order_seq_cst);
    std::uint64_t gate = record_.header->gate.load(std::memory_order_acquire);
    while (gate > cursor && !record_.header->gate.compare_exchange_weak(gate, cursor, std::memory_order_acq_rel)) {
    }
  }
  if (record_.overflow == TopicOverflow::block) announce(record_.header->consumed);
}

Result<bool> TopicRing::wait_for_commit(std::uint32_t seen, std::uint64_t sequence, Deadline deadline) {
  if (removed()) return std::unexpected(removed_error());
  if (deadline.is_none() || deadline.expired()) {
    // The entry, before failing: the caller's look may have been by a hint only.
    if (look(sequence).found != Found::not_yet) return true;
    if (deadline.is_none()) return std::unexpected(Error{Errc::would_block, {}, {}});
    return std::unexpected(Error{Errc::timeout, object_, "timed out"});
  }
  // Dekker with commit(): the sleeping bit, then the entry; it does the entry, then the word.
  if (!mark_sleeping(record_.header->published, seen)) return true;  // a commit came meanwhile
  // A sole publisher reads the word with no fence after its entry store (commit_sole): a
  // heavy barrier orders the two for it, or the nap stays short.
  const bool ordered = !sole() || platform::heavy_barrier();
  if (look(sequence).found != Found::not_yet) return true;
  (void)platform::futex_wait(record_.header->published, seen | EventWord::sleeping,
                             nap_until(deadline, ordered ? liveness_interval : unbarriered_nap));
  return false;
}

Error TopicRing::too_large(std::uint64_t sequence, std::uint64_t size) const {
  return Error{Errc::corrupt, object_,
               "holds message " + std::to_string(sequence) + " of " + std::to_string(size) +
                   " bytes, over its maximum of " + std::to_string(record_.max_message_size)};
}

TopicRing::Look TopicRing::look_for(std::uint32_t slot, std::uint64_t cursor, bool entry_due) const noexcept {
  const std::uint32_t hint = sole() ? hints_[slot] : topic_no_chunk;
  if (hint >= record_.geometry.chunk_count) return look(cursor);
  // In a topic with one publisher slot a chunk numbered `cursor` holds that message,
  // entry or not (topic_layout.hpp, ChunkHeader).
  const std::uint64_t at_hint = record_.chunk(hint).sequence.load(std::memory_order_acquire);
  if (at_hint == cursor) return {Found::message, RingEntry::make(cursor, hint)};
  // Still marked: the publisher has not got there yet. Anything else breaks the promise
  // (the publisher gave the chunk back, left or died): the entry is the authority, and it
  // is read now and then anyway in case a new publisher marked the chunk again.
  if (ChunkHeader::is_being_written(at_hint) && !entry_due) return {Found::not_yet, 0};
  return look(cursor);
}

// The loop both receives share: what is at the cursor, and waiting for it. `take` gets a
// message's chunk and sequence number and answers its size and the chunk it names for the
// next message, nullopt when it found the message overwritten meanwhile, or an error.
template <class Take>
Result<TopicDelivery> TopicRing::receive_with(std::uint32_t slot, Deadline deadline, Take&& take) {
  std::uint64_t cursor = record_.subscribers[slot].cursor.load(std::memory_order_relaxed);
  std::uint64_t lost = 0;
  Spin spin{wait_, recent_message_size_.load(std::memory_order_relaxed)};
  // The entry is read every 64th round of a wait, and after a wait that found it written:
  // a hint to a chunk marked again by a new publisher, or one whose message went to another
  // chunk, would else keep the subscriber waiting for the 64th.
  bool entry_due = false;
  for (std::uint64_t round = 1;; ++round) {
    const std::uint32_t seen = record_.header->published.load(std::memory_order_seq_cst);
    const Look found = look_for(slot, cursor, entry_due || round % 64 == 0);
    entry_due = false;
    switch (found.found) {
      case Found::message: {
        const std::uint32_t index = RingEntry::chunk(found.entry);
        if (index >= record_.geometry.chunk_count) {
          return std::unexpected(Error{Errc::corrupt, object_,
                                       "has a ring entry naming chunk " + std::to_string(index) + " of " +
                                           std::to_string(record_.geometry.chunk_count)});
        }
        Result<std::optional<Taken>> taken = take(index, cursor);
        if (!taken) return std::unexpected(taken.error());
        if (!*taken) {
          hints_[slot] = topic_no_chunk;
          lost += skip_overwritten(cursor);
          continue;
        }
        hints_[slot] = (*taken)->next;
        // Only this subscriber writes its count: no locked instruction needed.
        std::atomic<std::uint64_t>& received = record_.subscribers[slot].received;
        received.store(received.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
        advance(slot, cursor + 1, lost);
        recent_message_size_.store((*taken)->size, std::memory_order_relaxed);
        return TopicDelivery{.sequence = cursor, .lost = lost, .chunk = index, .size = (*taken)->size};
      }
      case Found::abandoned:
        hints_[slot] = topic_no_chunk;
        advance(slot, ++cursor, 0);
        continue;
      case Found::overwritten:
        hints_[slot] = topic_no_chunk;
        lost += skip_overwritten(cursor);
        continue;
      case Found::not_yet: break;
    }
    if (!deadline.is_none() && spin.looking_around()) {
      // While spinning too (busy_poll spins for ever): the topic removed, the deadline.
      if (removed()) return std::unexpected(removed_error());
      if (deadline.expired()) {
        // wait_for_commit looks at the entry (this look may have been by a hint only), then fails.
        auto waited = wait_for_commit(seen, cursor, deadline);
        if (!waited) return std::unexpected(waited.error());
        entry_due = *waited;
        continue;
      }
      // A publisher that claimed this number and died never commits it.
      if (dead_publisher_may_hold(cursor) && recover_dead() > 0) continue;
    }
    if (!deadline.is_none() && spin.again()) continue;
    auto waited = wait_for_commit(seen, cursor, deadline);
    if (!waited) return std::unexpected(waited.error());
    entry_due = *waited;
  }
}

bool TopicRing::ready_to_receive(std::uint32_t slot) noexcept {
  if (removed()) return true;
  const std::uint64_t cursor = record_.subscribers[slot].cursor.load(std::memory_order_relaxed);
  if (look(cursor).found != Found::not_yet) return true;
  if (dead_publisher_may_hold(cursor) && recover_dead() > 0) return look(cursor).found != Found::not_yet;
  return false;
}

Result<TopicDelivery> TopicRing::receive_copy(std::uint32_t slot, std::vector<std::byte>& bytes, Deadline deadline) {
  return receive_with(slot, deadline, [&](std::uint32_t index, std::uint64_t sequence) -> Result<std::optional<Taken>> {
    const ChunkHeader& chunk = record_.chunk(index);
    // Seqlock read: the sequence number before and after the copy.
    if (chunk.sequence.load(std::memory_order_acquire) != sequence) return std::nullopt;
    const std::uint64_t size = chunk.size.load(length_load_order);
    const std::uint32_t next = chunk.next.load(length_load_order);
    const std::size_t copied = static_cast<std::size_t>(std::min<std::uint64_t>(size, record_.max_message_size));
    bytes.resize(copied);
    copy_out(record_.chunk_bytes(index), bytes.data(), copied);
    fence_after_copy_out();
    if (chunk.sequence.load(std::memory_order_relaxed) != sequence) return std::nullopt;
    if (size > record_.max_message_size) return std::unexpected(too_large(sequence, size));
    return Taken{copied, next};
  });
}

Result<TopicDelivery> TopicRing::receive_pinned(std::uint32_t slot, Deadline deadline) {
  const std::uint64_t bit = holder_bit(slot);
  return receive_with(slot, deadline, [&](std::uint32_t index, std::uint64_t sequence) -> Result<std::optional<Taken>> {
    ChunkHeader& chunk = record_.chunk(index);
    // Dekker with take_chunk(): the pin, then the sequence number.
    chunk.holders[slot / 64].fetch_or(bit, std::memory_order_seq_cst);
    std::uint64_t found = chunk.sequence.load(std::memory_order_seq_cst);
    for (int spin = 0; ChunkHeader::is_being_written(found) && spin < being_written_spins; ++spin) {
      // A sole publisher's run keeps its marks until it uses them: the message has left
      // the ring then, which the entry shows.
      if (spin % 64 == 63 && look(sequence).found == Found::overwritten) break;
      platform::cpu_relax();
      found = chunk.sequence.load(std::memory_order_seq_cst);
    }
    const std::uint64_t size = chunk.size.load(std::memory_order_relaxed);
    if (found != sequence || size > record_.max_message_size) {
      chunk.holders[slot / 64].fetch_and(~bit, std::memory_order_release);
      if (found != sequence) return std::nullopt;
      return std::unexpected(too_large(sequence, size));
    }
    return Taken{static_cast<std::size_t>(size), chunk.next.load(std::memory_order_relaxed)};
  });
}

void TopicRing::unpin(std::uint32_t slot, std::uint32_t chunk) noexcept {
  // Release: our reads of the bytes come before a publisher's reuse of the chunk.
  record_.chunk(chunk).holders[slot / 64].fetch_and(~holder_bit(slot), std::memory_order_release);
}

}  // namespace shmbox::detail
