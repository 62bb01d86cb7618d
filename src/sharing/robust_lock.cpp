#include "sharing/robust_lock.hpp"

#include <algorithm>
#include <climits>
#include <new>

#include "platform/futex.hpp"
#include "platform/process.hpp"

namespace shmbox::detail {
namespace {

// Every access here is seq_cst: the algorithm is a Dekker-style handshake (a reader sets
// its bit and then reads the state word; a writer sets the state word and then reads the
// bits) plus the bakery's choosing protocol, and both need a single total order of those
// stores and loads. The fast paths are one RMW and one or two loads either way on x86.
constexpr auto order = std::memory_order_seq_cst;

// How long a waiter spins before it sleeps: a lock handed between two processes is usually
// free again within a few microseconds, sooner than a futex wake-up.
constexpr auto spin_time = std::chrono::microseconds{20};

LockMode mode_of(std::uint64_t ticket) noexcept {
  return (ticket & TicketWord::exclusive) != 0 ? LockMode::exclusive : LockMode::shared;
}

pid_t pid_of(std::uint64_t owner) noexcept {
  return platform::ProcessIdentity::unpack(platform::ProcessIdentity::without_recovering_bit(owner)).pid;
}

}  // namespace

RobustLock::RobustLock(std::byte* record, std::uint32_t slot_count) noexcept
    : header_(reinterpret_cast<LockHeader*>(record)),
      readers_(reinterpret_cast<std::atomic<std::uint64_t>*>(record + readers_offset())),
      slots_(reinterpret_cast<LockSlot*>(record + slots_offset(slot_count))),
      slot_count_(slot_count) {}

void RobustLock::initialize(std::byte* record, std::uint32_t slot_count) noexcept {
  auto* header = new (record) LockHeader{};
  header->identity = LockIdentity{.magic = lock_magic, .layout_version = lock_layout_version, .slot_count = slot_count};
  for (std::size_t i = 0; i < reader_words(slot_count); ++i) {
    new (record + readers_offset() + i * 8) std::atomic<std::uint64_t>{0};
  }
  for (std::uint32_t i = 0; i < slot_count; ++i) {
    new (record + slots_offset(slot_count) + i * sizeof(LockSlot)) LockSlot{};
  }
}

std::optional<std::uint32_t> RobustLock::claim_slot(std::uint64_t process) noexcept {
  for (int pass = 0; pass < 2; ++pass) {
    for (std::uint32_t i = 0; i < slot_count_; ++i) {
      if (pass == 1) reclaim_if_dead(i);
      std::uint64_t free = 0;
      if (slots_[i].owner.compare_exchange_strong(free, process, order)) {
        slots_[i].ticket.store(0, order);
        reader_word(i).fetch_and(~reader_bit(i), order);  // garbage a free slot may carry
        return i;
      }
    }
  }
  return std::nullopt;
}

void RobustLock::free_slot(std::uint32_t slot) noexcept {
  slots_[slot].ticket.store(0, order);
  slots_[slot].owner.store(0, order);
}

void RobustLock::wake_all() noexcept {
  header_->wake.fetch_add(1, order);
  platform::futex_wake(header_->wake, INT_MAX);
}

bool RobustLock::readers_present() const noexcept {
  const std::size_t words = reader_words(slot_count_);
  for (std::size_t i = 0; i < words; ++i) {
    std::uint64_t bits = readers_[i].load(order);
    // Bits past the last slot belong to nobody: garbage, never waited for.
    if (i + 1 == words && slot_count_ % 64 != 0) bits &= (std::uint64_t{1} << (slot_count_ % 64)) - 1;
    if (bits != 0) return true;
  }
  return false;
}

void RobustLock::withdraw_share(std::uint32_t slot) noexcept {
  reader_word(slot).fetch_and(~reader_bit(slot), order);
  // A writer that saw our bit waits for it to go.
  if (header_->state.load(order) != 0) wake_all();
}

// A reader takes a share when no writer holds the lock; a writer takes the writer's place
// when nobody holds it (readers already in are drained after).
bool RobustLock::try_take(std::uint32_t slot, LockMode mode) noexcept {
  std::uint64_t state = header_->state.load(order);
  if (mode == LockMode::exclusive) {
    while (LockState::writer(state) == 0) {
      if (header_->state.compare_exchange_weak(state, state | (slot + 1), order)) return true;
    }
    return false;
  }
  if (LockState::writer(state) != 0) return false;
  reader_word(slot).fetch_or(reader_bit(slot), order);
  if (LockState::writer(header_->state.load(order)) == 0) return true;
  withdraw_share(slot);
  return false;
}

// Lamport's bakery: wait for every slot still choosing its number, and go only when no
// earlier ticket conflicts (an exclusive request conflicts with every other, a shared one
// with exclusive ones only).
RobustLock::Turn RobustLock::queue_turn(std::uint32_t slot, std::uint64_t number, bool exclusive) const noexcept {
  for (std::uint32_t j = 0; j < slot_count_; ++j) {
    if (j == slot) continue;
    std::uint64_t ticket = slots_[j].ticket.load(order);
    for (int spins = 0; (ticket & TicketWord::choosing) != 0 && spins < 1000; ++spins) {
      platform::cpu_relax();
      ticket = slots_[j].ticket.load(order);
    }
    if ((ticket & TicketWord::choosing) != 0) return Turn::someone_choosing;  // a dead chooser is reclaimed
    if ((ticket & TicketWord::waiting) == 0) continue;
    if (TicketWord::number(ticket) < TicketWord::stored(number) &&
        (exclusive || (ticket & TicketWord::exclusive) != 0)) {
      return Turn::not_yet;
    }
  }
  return Turn::mine;
}

void RobustLock::leave_queue(std::uint32_t slot) noexcept {
  slots_[slot].ticket.store(0, order);
  const auto anyone_queued = [&] {
    for (std::uint32_t j = 0; j < slot_count_; ++j) {
      if (slots_[j].ticket.load(order) != 0) return true;
    }
    return false;
  };
  if (anyone_queued()) return;
  header_->state.fetch_and(~LockState::queued_bit, order);
  // One who queued after our look set the bit before we cleared it: set it again. (Its
  // ticket was stored before its bit, so this second look sees it.)
  if (anyone_queued()) header_->state.fetch_or(LockState::queued_bit, order);
}

bool RobustLock::nap(std::uint32_t seen, Deadline deadline, Deadline::clock::time_point& next_check,
                     std::uint32_t slot) noexcept {
  const auto now = Deadline::clock::now();
  if (!deadline.is_forever() && now >= deadline.until()) return true;
  if (now >= next_check) {
    reclaim_dead_blockers(slot);
    next_check = now + lock_liveness_interval;
    return false;
  }
  const auto until = deadline.is_forever() ? next_check : std::min(next_check, deadline.until());
  platform::futex_wait(header_->wake, seen, until);
  return false;
}

bool RobustLock::drain_readers(std::uint32_t slot, Deadline deadline) noexcept {
  if (!readers_present()) return mark_entered();
  const auto spin_until = Deadline::clock::now() + spin_time;
  while (readers_present() && Deadline::clock::now() < spin_until) platform::cpu_relax();
  auto next_check = Deadline::clock::now() + lock_liveness_interval;
  for (;;) {
    const std::uint32_t seen = header_->wake.load(order);
    if (!readers_present()) return mark_entered();
    if (deadline.is_none() || nap(seen, deadline, next_check, slot)) {
      // Give the writer's place up: readers held back by it may go.
      std::uint64_t state = header_->state.load(order);
      while (LockState::writer(state) == slot + 1 &&
             !header_->state.compare_exchange_weak(state, state & ~LockState::writer_bits, order)) {
      }
      wake_all();
      return false;
    }
  }
}

// Only this writer or the reclaim of its dead process touches the writer's bits now.
bool RobustLock::mark_entered() noexcept {
  header_->state.fetch_or(LockState::entered_bit, order);
  return true;
}

Grant RobustLock::acquire(std::uint32_t slot, LockMode mode, Deadline deadline) noexcept {
  const bool exclusive = mode == LockMode::exclusive;
  for (;;) {
    // Fast paths: nobody queued, nobody in the way.
    bool taken = false;
    if (exclusive) {
      std::uint64_t idle = 0;
      taken = header_->state.compare_exchange_strong(idle, slot + 1, order);
    } else {
      reader_word(slot).fetch_or(reader_bit(slot), order);
      taken = header_->state.load(order) == 0;
      if (!taken) withdraw_share(slot);
    }
    if (!taken) {
      // The queue: announce, draw a number, publish it, and say that someone waits.
      slots_[slot].ticket.store(TicketWord::choosing | (exclusive ? TicketWord::exclusive : 0), order);
      const std::uint64_t number = header_->next_ticket.fetch_add(1, order) + 1;
      slots_[slot].ticket.store(TicketWord::make(number, exclusive), order);
      header_->state.fetch_or(LockState::queued_bit, order);
      const auto spin_until = Deadline::clock::now() + spin_time;
      auto next_check = spin_until + lock_liveness_interval;
      for (std::uint32_t round = 1;; ++round) {
        const std::uint32_t seen = header_->wake.load(order);
        const Turn turn = queue_turn(slot, number, exclusive);
        if (turn == Turn::mine && try_take(slot, mode)) break;
        // A waiter that was served may have cleared the bit as we drew our number.
        if ((header_->state.load(order) & LockState::queued_bit) == 0 &&
            (header_->state.fetch_or(LockState::queued_bit, order) & LockState::queued_bit) == 0) {
          continue;
        }
        // One choosing its number publishes it without waking anyone: do not sleep on it.
        if (turn == Turn::someone_choosing && !deadline.expired() && Deadline::clock::now() < next_check) {
          platform::yield_cpu();
          continue;
        }
        if (!deadline.is_none() && (round % 16 != 0 || Deadline::clock::now() < spin_until)) {
          platform::cpu_relax();
          continue;
        }
        if (deadline.is_none() || nap(seen, deadline, next_check, slot)) {
          leave_queue(slot);
          wake_all();  // our leaving may be someone's turn
          return {Granted::expired};
        }
      }
      leave_queue(slot);
    }
    if (exclusive && !drain_readers(slot, deadline)) return {Granted::expired};
    const Grant grant = check_consistency(slot, mode);
    if (grant.outcome != Granted::expired) return grant;
    // Another taker is repairing what a dead holder left: wait for it, then start over.
    if (deadline.expired()) return grant;
    const std::uint32_t seen = header_->wake.load(order);
    auto next_check = Deadline::clock::now() + lock_liveness_interval;
    if (nap(seen, deadline, next_check, slot)) return grant;
  }
}

// Expired: another taker repairs, and what we took has been given back.
Grant RobustLock::check_consistency(std::uint32_t slot, LockMode mode) noexcept {
  std::uint64_t word = header_->consistency.load(order);
  for (;;) {
    switch (ConsistencyWord::kind(word)) {
      case ConsistencyWord::consistent: return {Granted::yes};
      case ConsistencyWord::owner_died: {
        const auto died = ConsistencyWord::dead_pid(word);
        if (header_->consistency.compare_exchange_weak(
                word, ConsistencyWord::make(ConsistencyWord::repairing, slot + 1, died), order)) {
          return {Granted::owner_died, static_cast<pid_t>(died)};
        }
        continue;
      }
      case ConsistencyWord::repairing:
        if (ConsistencyWord::repairer(word) == slot + 1) {
          return {Granted::owner_died, static_cast<pid_t>(ConsistencyWord::dead_pid(word))};
        }
        release(slot, mode);
        return {Granted::expired};
      default:
        release(slot, mode);
        return {Granted::not_recoverable};
    }
  }
}

void RobustLock::release(std::uint32_t slot, LockMode mode) noexcept {
  std::uint64_t word = header_->consistency.load(order);
  const bool repairing =
      ConsistencyWord::kind(word) == ConsistencyWord::repairing && ConsistencyWord::repairer(word) == slot + 1;
  if (repairing) {
    // Told of a death and released without repairing: nobody can trust the data now.
    (void)header_->consistency.compare_exchange_strong(
        word, ConsistencyWord::make(ConsistencyWord::not_recoverable, 0, ConsistencyWord::dead_pid(word)), order);
  }
  if (mode == LockMode::shared) {
    withdraw_share(slot);
  } else {
    std::uint64_t state = header_->state.load(order);
    const bool alone = state == ((slot + 1) | LockState::entered_bit) || state == slot + 1;
    if (alone && header_->state.compare_exchange_strong(state, 0, order)) return;  // nobody waits
    while (LockState::writer(state) == slot + 1 &&
           !header_->state.compare_exchange_weak(state, state & ~LockState::writer_bits, order)) {
    }
  }
  // Those waiting for a repair to end are not in the state word: wake them too.
  if (repairing || mode == LockMode::exclusive) wake_all();
}

bool RobustLock::mark_consistent(std::uint32_t slot) noexcept {
  std::uint64_t word = header_->consistency.load(order);
  if (ConsistencyWord::kind(word) != ConsistencyWord::repairing || ConsistencyWord::repairer(word) != slot + 1) {
    return false;
  }
  if (!header_->consistency.compare_exchange_strong(word, ConsistencyWord::make(ConsistencyWord::consistent, 0, 0),
                                                    order)) {
    return false;
  }
  wake_all();  // readers waiting for the repair to end
  return true;
}

void RobustLock::reclaim_dead_blockers(std::uint32_t slot) noexcept {
  std::uint64_t state = header_->state.load(order);
  // A writer field naming no slot is garbage some process wrote: nobody will clear it.
  while (LockState::writer(state) > slot_count_ &&
         !header_->state.compare_exchange_weak(state, state & ~LockState::writer_bits, order)) {
  }
  const std::uint64_t writer = LockState::writer(state);
  if (writer != 0 && writer <= slot_count_) reclaim_if_dead(static_cast<std::uint32_t>(writer - 1));
  for (std::uint32_t j = 0; j < slot_count_; ++j) {
    if (j == slot) continue;
    const bool reading = (reader_word(j).load(order) & reader_bit(j)) != 0;
    if (reading || slots_[j].ticket.load(order) != 0) reclaim_if_dead(j);
  }
  std::uint64_t word = header_->consistency.load(order);
  const std::uint64_t repairer = ConsistencyWord::repairer(word);
  if (ConsistencyWord::kind(word) == ConsistencyWord::repairing && (repairer == 0 || repairer > slot_count_)) {
    // A repair by nobody: garbage. Whoever comes next is told, which is the safe side.
    (void)header_->consistency.compare_exchange_strong(
        word, ConsistencyWord::make(ConsistencyWord::owner_died, 0, ConsistencyWord::dead_pid(word)), order);
  } else if (repairer != 0 && repairer <= slot_count_) {
    reclaim_if_dead(static_cast<std::uint32_t>(repairer - 1));
  }
}

// Clears what a dead participant held, in an order that a reclaimer killed at any point
// leaves for the next one to finish: the slot is marked with the reclaimer's identity
// first (and so cannot be taken again meanwhile), and every step is idempotent.
void RobustLock::reclaim_if_dead(std::uint32_t dead) noexcept {
  LockSlot& entry = slots_[dead];
  std::uint64_t owner = entry.owner.load(order);
  // A free slot holds nothing, unless garbage was written into it: cleared the same way.
  if (owner != 0 &&
      platform::liveness(platform::ProcessIdentity::without_recovering_bit(owner)) == platform::Liveness::alive) {
    return;
  }
  const std::uint64_t me = platform::current_process().packed() | platform::ProcessIdentity::recovering_bit;
  if (!entry.owner.compare_exchange_strong(owner, me, order)) return;
  const auto died = static_cast<std::uint32_t>(pid_of(owner));
  // A taker that was told of a death and died repairing: the next is told in its turn.
  std::uint64_t word = header_->consistency.load(order);
  if (ConsistencyWord::kind(word) == ConsistencyWord::repairing && ConsistencyWord::repairer(word) == dead + 1) {
    (void)header_->consistency.compare_exchange_strong(
        word, ConsistencyWord::make(ConsistencyWord::owner_died, 0, died), order);
  }
  // An exclusive holder that was in (not one still waiting for readers to leave): the data
  // may be half-written. Say so before letting anyone in; an earlier death not yet told
  // stays the one told.
  std::uint64_t state = header_->state.load(order);
  if (LockState::writer(state) == dead + 1) {
    if ((state & LockState::entered_bit) != 0 && owner != 0) {
      word = header_->consistency.load(order);
      if (ConsistencyWord::kind(word) == ConsistencyWord::consistent) {
        (void)header_->consistency.compare_exchange_strong(
            word, ConsistencyWord::make(ConsistencyWord::owner_died, 0, died), order);
      }
    }
    while (LockState::writer(state) == dead + 1 &&
           !header_->state.compare_exchange_weak(state, state & ~LockState::writer_bits, order)) {
    }
  }
  reader_word(dead).fetch_and(~reader_bit(dead), order);
  entry.ticket.store(0, order);
  std::uint64_t mine = me;
  (void)entry.owner.compare_exchange_strong(mine, 0, order);  // not if a later reclaim took it over
  wake_all();
}

RobustLock::Snapshot RobustLock::snapshot() const {
  Snapshot snapshot{};
  const std::uint64_t word = header_->consistency.load(order);
  switch (ConsistencyWord::kind(word)) {
    case ConsistencyWord::consistent: snapshot.consistency = LockConsistency::consistent; break;
    case ConsistencyWord::owner_died: snapshot.consistency = LockConsistency::owner_died; break;
    case ConsistencyWord::repairing: snapshot.consistency = LockConsistency::repairing; break;
    default: snapshot.consistency = LockConsistency::not_recoverable; break;
  }
  if (snapshot.consistency != LockConsistency::consistent) {
    snapshot.died_holding = static_cast<pid_t>(ConsistencyWord::dead_pid(word));
  }
  const auto participant = [&](std::uint32_t j, LockMode mode) {
    const std::uint64_t owner = slots_[j].owner.load(order);
    return LockParticipant{.pid = pid_of(owner),
                           .mode = mode,
                           .alive = owner != 0 && (owner & platform::ProcessIdentity::recovering_bit) == 0 &&
                                    platform::liveness(owner) == platform::Liveness::alive};
  };
  std::vector<std::pair<std::uint64_t, LockParticipant>> queued;
  for (std::uint32_t j = 0; j < slot_count_; ++j) {
    if ((reader_word(j).load(order) & reader_bit(j)) != 0 && slots_[j].ticket.load(order) == 0) {
      snapshot.holders.push_back(participant(j, LockMode::shared));
    }
    const std::uint64_t ticket = slots_[j].ticket.load(order);
    if ((ticket & TicketWord::waiting) != 0) queued.emplace_back(TicketWord::number(ticket), participant(j, mode_of(ticket)));
  }
  // A writer in the writer's place while readers are still in waits for them to leave:
  // the first waiter, not a holder.
  const std::uint64_t writer = LockState::writer(header_->state.load(order));
  if (writer != 0 && writer <= slot_count_) {
    const LockParticipant holder = participant(static_cast<std::uint32_t>(writer - 1), LockMode::exclusive);
    if (snapshot.holders.empty()) {
      snapshot.holders.push_back(holder);
    } else {
      snapshot.waiters.push_back(holder);
    }
  }
  std::ranges::sort(queued, {}, &std::pair<std::uint64_t, LockParticipant>::first);
  for (auto& [number, waiter] : queued) snapshot.waiters.push_back(waiter);
  return snapshot;
}

}  // namespace shmbox::detail
