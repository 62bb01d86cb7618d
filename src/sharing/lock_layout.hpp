// A lock's shared-memory layout: plain data, every offset fixed and checked at compile
// time. docs/design.md ("Locks") draws it and gives the algorithm.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace shmbox::detail {

// A standalone lock's file in /dev/shm is this prefix and its name.
inline constexpr std::string_view lock_file_prefix = "shmbox.lk.";

inline constexpr std::uint64_t lock_magic = 0x4b4c584f424d4853ull;  // "SHMBOXLK" little-endian
inline constexpr std::uint32_t lock_layout_version = 1;
inline constexpr std::uint32_t max_lock_slots = 4096;
inline constexpr std::size_t lock_line = 64;

// Line 0: written once by the creator before anyone can see the lock.
struct LockIdentity {
  std::uint64_t magic;
  std::uint32_t layout_version;
  std::uint32_t slot_count;  // 1..max_lock_slots
};

// The holder/waiter word and the fast paths' one word. Bits 0-12: 1 + the slot of the
// exclusive holder (0: none). Bit 32: someone waits in the queue (fast paths are off, so
// that newcomers queue behind them). Bit 33: the writer has seen the readers leave and is
// in (only then can its death have left the data half-written).
struct LockState {
  static constexpr std::uint64_t writer_mask = 0x1fff;
  static constexpr std::uint64_t queued_bit = std::uint64_t{1} << 32;
  static constexpr std::uint64_t entered_bit = std::uint64_t{1} << 33;
  static constexpr std::uint64_t writer_bits = writer_mask | entered_bit;
  static constexpr std::uint64_t writer(std::uint64_t word) noexcept { return word & writer_mask; }
};

// What the guarded data is known to be, and who died: kind (low 8 bits) | slot + 1 of the
// taker repairing it (bits 8-23) | pid of the holder that died (high 32 bits).
struct ConsistencyWord {
  enum Kind : std::uint64_t { consistent = 0, owner_died = 1, repairing = 2, not_recoverable = 3 };
  static constexpr std::uint64_t make(Kind kind, std::uint32_t repairer, std::uint32_t dead_pid) noexcept {
    return std::uint64_t{dead_pid} << 32 | std::uint64_t{repairer & 0xffff} << 8 | kind;
  }
  static constexpr Kind kind(std::uint64_t word) noexcept { return static_cast<Kind>(word & 0xff); }
  static constexpr std::uint32_t repairer(std::uint64_t word) noexcept { return (word >> 8) & 0xffff; }
  static constexpr std::uint32_t dead_pid(std::uint64_t word) noexcept { return static_cast<std::uint32_t>(word >> 32); }
};

struct alignas(lock_line) LockHeader {
  LockIdentity identity;
  // Line 1: what every lock and unlock touches.
  alignas(lock_line) std::atomic<std::uint64_t> state;
  std::atomic<std::uint64_t> consistency;
  // Futex: bumped whenever the lock may have become free for someone.
  std::atomic<std::uint32_t> wake;
  // Line 2: tickets for the queue (first come, first served).
  alignas(lock_line) std::atomic<std::uint64_t> next_ticket;
};
static_assert(sizeof(LockHeader) == 3 * lock_line);
static_assert(offsetof(LockHeader, state) == 64 && offsetof(LockHeader, consistency) == 72 &&
              offsetof(LockHeader, wake) == 80 && offsetof(LockHeader, next_ticket) == 128);

// One per handle that has taken part. owner: ProcessIdentity::packed() of its process (0:
// free); while a reclaim clears a dead owner's traces, the reclaimer's identity |
// ProcessIdentity::recovering_bit. ticket: the queue entry (0: not queued), written only by
// the owner.
struct LockSlot {
  std::atomic<std::uint64_t> owner;
  std::atomic<std::uint64_t> ticket;
};
static_assert(sizeof(LockSlot) == 16);

// A queue entry: ticket number << 3 | flags. A slot is "choosing" between announcing
// itself and publishing its number (Lamport's bakery): others wait for it to finish.
struct TicketWord {
  static constexpr std::uint64_t choosing = 1;
  static constexpr std::uint64_t exclusive = 2;
  static constexpr std::uint64_t waiting = 4;
  static constexpr std::uint64_t make(std::uint64_t number, bool exclusive_mode) noexcept {
    return number << 3 | waiting | (exclusive_mode ? exclusive : 0);
  }
  static constexpr std::uint64_t number(std::uint64_t word) noexcept { return word >> 3; }
  // Numbers as stored (61 bits): a waiter compares its own in the same domain.
  static constexpr std::uint64_t stored(std::uint64_t number) noexcept { return number << 3 >> 3; }
};

// After the header: one bit per slot of the readers holding a share (64 per word, in
// whole lines), then the slots.
constexpr std::size_t reader_words(std::uint32_t slots) noexcept { return (slots + 63) / 64; }
constexpr std::size_t readers_offset() noexcept { return sizeof(LockHeader); }
constexpr std::size_t slots_offset(std::uint32_t slots) noexcept {
  return readers_offset() + (reader_words(slots) * 8 + lock_line - 1) / lock_line * lock_line;
}
constexpr std::size_t lock_bytes(std::uint32_t slots) noexcept { return slots_offset(slots) + slots * sizeof(LockSlot); }
static_assert(lock_bytes(64) == 3 * 64 + 64 + 64 * 16);
static_assert(LockState::writer_mask >= max_lock_slots);

}  // namespace shmbox::detail
