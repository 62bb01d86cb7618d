// The mailbox's shared-memory layout: plain data only, every offset fixed and
// checked at compile time. docs/design.md ("Mailboxes: Layout") draws it.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace shmbox::detail {

// Fixed, not std::hardware_destructive_interference_size: two binaries built with
// different flags must agree on this layout.
inline constexpr std::size_t cache_line = 64;

inline constexpr std::uint64_t mailbox_magic = 0x424d584f424d4853ull;  // "SHMBOXMB" little-endian
inline constexpr std::uint32_t mailbox_layout_version = 5;

enum class BufferingCode : std::uint32_t { zero = 0, bounded = 1, unbounded = 2 };

// The sizes a mailbox is laid out by, and where its parts start: recorded in its
// identity line, and, once validated, copied into each handle's Geometry.
struct Dimensions {
  std::uint32_t capacity;
  std::uint32_t max_message_size;
  std::uint32_t slot_stride;
  std::uint32_t slot_count;
  std::uint32_t attach_capacity;
};
struct Placement {
  std::uint64_t attach_offset;
  std::uint64_t slots_offset;
  std::uint64_t file_size;
};

// Line 0: written once by the creator before the mailbox gets its name; never again.
struct Identity {
  std::uint64_t magic;
  std::uint32_t layout_version;
  std::uint32_t header_size;
  std::uint32_t buffering;
  Dimensions dimensions;
  Placement placement;
};
static_assert(sizeof(Identity) == cache_line);
static_assert(offsetof(Identity, dimensions) == 20 && offsetof(Identity, placement) == 40);

struct ChunkGeometry {
  std::uint64_t table_offset;  // chunk table: chunk_count ChunkEntry words
  std::uint32_t count;
  std::uint32_t slots;  // slots per chunk, a power of two
};

struct alignas(cache_line) Header {
  Identity identity;

  // Senders' line. Bit 63: closed.
  alignas(cache_line) std::atomic<std::uint64_t> tail;
  // Receivers' line.
  alignas(cache_line) std::atomic<std::uint64_t> head;
  // Non-zero: a receiver may have put a message back (RETURNED, behind head), so
  // receivers look behind head first. A hint, not a count: bumped after each put-back,
  // cleared by a receiver whose look found none (design.md, Putting a message back).
  std::atomic<std::uint32_t> returned;

  alignas(cache_line) std::atomic<std::uint32_t> receivers_sleeping;
  std::atomic<std::uint32_t> data_epoch;  // futex: bumped when a message is published or on close
  std::atomic<std::uint32_t> receivers_present;  // inside a receive call that had to wait
  std::atomic<std::uint32_t> receive_selectors_sleeping;

  alignas(cache_line) std::atomic<std::uint32_t> senders_sleeping;
  std::atomic<std::uint32_t> space_epoch;  // futex: bumped when a slot is freed or taken, or on close
  std::atomic<std::uint32_t> send_selectors_sleeping;

  // Written once by the creator, like the identity.
  alignas(cache_line) ChunkGeometry chunks;  // unbounded mailboxes only; zero otherwise
  std::uint64_t creator;                     // ProcessIdentity::packed(); the owner if a process owns it
  // The owning process (ProcessIdentity::packed()); 0: owned by the system. When the
  // owner is gone the mailbox is closed and removed (design.md, Ownership).
  std::uint64_t owner;
};

inline constexpr std::uint64_t closed_bit = std::uint64_t{1} << 63;
inline constexpr std::uint64_t header_bytes = 512;

static_assert(sizeof(Header) <= header_bytes);
static_assert(offsetof(Header, tail) == 64);
static_assert(offsetof(Header, head) == 128);
static_assert(offsetof(Header, returned) == 136);
static_assert(offsetof(Header, receivers_sleeping) == 192);
static_assert(offsetof(Header, data_epoch) == 196);
static_assert(offsetof(Header, receivers_present) == 200);
static_assert(offsetof(Header, receive_selectors_sleeping) == 204);
static_assert(offsetof(Header, senders_sleeping) == 256);
static_assert(offsetof(Header, send_selectors_sleeping) == 264);
static_assert(offsetof(Header, chunks) == 320);
static_assert(offsetof(Header, creator) == 336);
static_assert(offsetof(Header, owner) == 344);
static_assert(offsetof(Header, space_epoch) == 260);
static_assert(std::atomic<std::uint64_t>::is_always_lock_free);
static_assert(std::atomic<std::uint32_t>::is_always_lock_free);

// One per attached handle, a cache line each (handles in different processes
// write their own entry on every send). identity: ProcessIdentity::packed() of the
// holder, 0 = free; while a recovery reads and clears a dead holder's intent, the
// recoverer's identity | ProcessIdentity::recovering_bit (see recovery.cpp). send_intent
// records, before each claim of a position through tail, the position about to be
// claimed (+1; 0 = none), so that survivors can tell which unpublished position a
// sender that died held; a batch that claims a run of positions also records, in
// send_intent_end, the position after its run (stored before send_intent). (A
// receiver's claim is on the slot itself, whose state names the reader.)
struct alignas(cache_line) AttachEntry {
  std::atomic<std::uint64_t> identity;
  std::atomic<std::uint64_t> send_intent;
  // Unbounded mailboxes: the position (+1; 0 = none) whose slot this handle may be
  // reading right now. A chunk is not punched while a handle is inside it.
  std::atomic<std::uint64_t> active;
  // Counts the handles that have held this entry: chunk work is tagged with it as well
  // as with the index, so that a recovery cannot mistake a new holder's work for the
  // work of the dead one it replaced.
  std::atomic<std::uint64_t> generation;
  // What the holder has done through this handle (role_sender, role_receiver), for
  // status reports only: written once per role per handle, never on the hot path.
  std::atomic<std::uint64_t> roles;
  // With send_intent p + 1: the run claimed is [p, send_intent_end) when that lies past p
  // by less than the capacity, else the one position. Written by batches before their
  // intent; cleared with the intent when the claim fails. Recovery may read a run wider
  // than the claim (a later run's end, or one left by a finished run): safe, see
  // design.md, Batches.
  std::atomic<std::uint64_t> send_intent_end;
};
inline constexpr std::uint64_t role_sender = 1;
inline constexpr std::uint64_t role_receiver = 2;
static_assert(sizeof(AttachEntry) == cache_line);

// Unbounded mailboxes: the word of one chunk of slots (design.md, Buffering). The high
// half is 1 + the lap the chunk is (or was last) backed for; the low half counts its
// slots received, or holds the flags below and the tag of the handle working on it:
//   backed for L, c received          (L + 1) << 32 | c
//   being backed for L                (L + 1) << 32 | backing | tag
//   being given back after L          (L + 1) << 32 | releasing | tag
//   ready to be backed for L          L << 32 | released [| holds memory]; 0 for L = 0
//   its kept memory being punched     L << 32 | released | backing | tag
struct ChunkWord {
  std::uint64_t bits;

  static constexpr std::uint64_t released_bit = std::uint64_t{1} << 31;
  // Being backed for the lap in the high half: one sender reserves its memory, others wait.
  static constexpr std::uint64_t backing_bit = std::uint64_t{1} << 30;
  // With "ready": the chunk was given back while someone might still read in it, so its
  // memory was kept (zeroed); it is punched later when nobody is inside.
  static constexpr std::uint64_t holds_memory_bit = std::uint64_t{1} << 29;
  // Backed for the lap in the high half, every slot received, being given back by the
  // handle tagged in the low bits. (Its "consumed" reads as more than
  // any chunk's slot count, so nobody reads in it.)
  static constexpr std::uint64_t releasing_bit = std::uint64_t{1} << 28;
  // Chunk work in progress (backing, releasing, reclaiming) carries its worker's tag in
  // the low 28 bits: the attach generation (12 bits) << 16 | the attach index.
  static constexpr std::uint64_t tag_mask = 0x0fffffff;
  static constexpr std::uint64_t worker_tag(std::uint64_t generation, std::uint16_t index) noexcept {
    return (generation & 0xfff) << 16 | index;
  }

  // Backed for `lap`, with `consumed` of its slots received.
  static constexpr ChunkWord backed(std::uint64_t lap, std::uint64_t consumed) noexcept {
    return {(lap + 1) << 32 | consumed};
  }
  static constexpr ChunkWord being_backed(std::uint64_t lap, std::uint64_t tag) noexcept {
    return {(lap + 1) << 32 | backing_bit | tag};
  }
  static constexpr ChunkWord being_released(std::uint64_t lap, std::uint64_t tag) noexcept {
    return {(lap + 1) << 32 | releasing_bit | tag};
  }
  // Unbacked and ready to be backed for `lap`: given back after lap - 1 (0 for lap 0,
  // which is how the table starts). Carrying the lap makes a stale backer's CAS fail.
  static constexpr ChunkWord ready_for(std::uint64_t lap) noexcept {
    return {lap == 0 ? 0 : lap << 32 | released_bit};
  }

  // The lap it is (or was last) backed for: in a "ready" word, the lap before the one
  // it is ready for.
  constexpr std::uint64_t lap() const noexcept { return (bits >> 32) - 1; }
  constexpr std::uint64_t consumed() const noexcept { return bits & 0xffffffffu; }
  constexpr std::uint64_t worker() const noexcept { return bits & tag_mask; }
  constexpr std::uint16_t worker_index() const noexcept { return static_cast<std::uint16_t>(bits & 0xffff); }

  // Backed for some lap, maybe with every slot received or being given back.
  constexpr bool is_backed() const noexcept { return (bits & (released_bit | backing_bit)) == 0 && bits != 0; }
  // Backed for `lap` (neither being backed nor given back).
  constexpr bool is_backed_for(std::uint64_t lap) const noexcept {
    return bits >> 32 == lap + 1 && (bits & (released_bit | backing_bit)) == 0;
  }
  // Backed for `lap` with slots not yet received: the only state in which anyone may
  // touch its slots' memory (a fully consumed chunk may be punched at any moment).
  constexpr bool is_readable(std::uint64_t lap, std::uint64_t chunk_slots) const noexcept {
    return is_backed_for(lap) && consumed() < chunk_slots;
  }
  // Ready for `lap`, whether or not it holds kept memory.
  constexpr bool is_ready_for(std::uint64_t lap) const noexcept {
    return (bits & ~holds_memory_bit) == ready_for(lap).bits;
  }
  constexpr bool is_being_backed() const noexcept { return (bits & (backing_bit | released_bit)) == backing_bit; }
  constexpr bool is_being_released() const noexcept {
    return (bits & (releasing_bit | backing_bit | released_bit)) == releasing_bit;
  }
  // Ready, and its kept memory being punched.
  constexpr bool is_being_reclaimed() const noexcept {
    return (bits & (released_bit | backing_bit)) == (released_bit | backing_bit);
  }
  // Ready, with memory kept that is to be punched.
  constexpr bool holds_kept_memory() const noexcept {
    return (bits & (released_bit | holds_memory_bit)) == (released_bit | holds_memory_bit);
  }

  constexpr ChunkWord with_one_more_consumed() const noexcept { return {bits + 1}; }
  constexpr ChunkWord with_worker(std::uint64_t tag) const noexcept { return {(bits & ~tag_mask) | tag}; }
  constexpr ChunkWord with_memory_kept() const noexcept { return {bits | holds_memory_bit}; }
  constexpr ChunkWord without_memory_kept() const noexcept { return {bits & ~holds_memory_bit}; }
  // A ready word holding kept memory, taken by `tag` to punch that memory.
  constexpr ChunkWord being_reclaimed_by(std::uint64_t tag) const noexcept {
    return {(bits & ~holds_memory_bit) | backing_bit | tag};
  }
  // The word a reclaim started from: ready, holding its kept memory.
  constexpr ChunkWord reclaim_undone() const noexcept { return {(bits & ~(backing_bit | tag_mask)) | holds_memory_bit}; }

  friend constexpr bool operator==(ChunkWord, ChunkWord) noexcept = default;
};
static_assert(sizeof(ChunkWord) == 8);

// One per chunk of an unbounded mailbox's slots, in the chunk table.
struct ChunkEntry {
  std::atomic<ChunkWord> word;
};
static_assert(sizeof(ChunkEntry) == 8);
static_assert(std::atomic<ChunkWord>::is_always_lock_free);

struct SlotHeader {
  std::atomic<std::uint64_t> state;
  // Atomic (relaxed) because a receiver a lap behind may read it while the next
  // lap's sender writes it; the claim CAS then fails and the value is discarded.
  std::atomic<std::uint32_t> size;
  std::uint32_t reserved;
};
static_assert(sizeof(SlotHeader) == 16);
inline constexpr std::size_t slot_header_bytes = sizeof(SlotHeader);

// Slot state word: position (40 bits) | phase (8 bits) | owner (16 bits).
// A slot claimed by a sender (through tail) stays FREE until it is published.
// READING: claimed by the receiver it names, which releases it (or puts it back); a
// zero-capacity sender's take-back races with that claim on this word.
// SKIPPING: a CANCELLED position claimed (like a message, so that head passes it before
// it is freed) by the handle that frees it. It holds no message: if that handle dies,
// recovery finishes freeing it rather than adopting it as one.
// RETURNED: a message its receiver claimed and put back unread (behind head, owner 0):
// any receiver may claim it again, before the messages at head.
enum class Phase : std::uint8_t { free = 0, full = 1, reading = 2, cancelled = 3, skipping = 4, returned = 5 };

inline constexpr std::uint64_t position_bits = 40;
inline constexpr std::uint64_t position_mask = (std::uint64_t{1} << position_bits) - 1;

struct SlotState {
  std::uint64_t position;  // low 40 bits only
  std::uint8_t phase;
  std::uint16_t owner;

  static constexpr std::uint64_t pack(std::uint64_t position, Phase phase, std::uint16_t owner) noexcept {
    return (position & position_mask) << 24 | std::uint64_t{static_cast<std::uint8_t>(phase)} << 16 | owner;
  }
  static constexpr SlotState unpack(std::uint64_t word) noexcept {
    return {word >> 24, static_cast<std::uint8_t>(word >> 16), static_cast<std::uint16_t>(word)};
  }
};

// (a - b) for 40-bit positions, as a signed distance.
constexpr std::int64_t position_distance(std::uint64_t a, std::uint64_t b) noexcept {
  const std::uint64_t diff = (a - b) & position_mask;
  return diff >= (std::uint64_t{1} << (position_bits - 1)) ? static_cast<std::int64_t>(diff) -
                                                                   static_cast<std::int64_t>(position_mask + 1)
                                                             : static_cast<std::int64_t>(diff);
}
static_assert(position_distance(5, 3) == 2);
static_assert(position_distance(3, 5) == -2);
static_assert(position_distance(1, position_mask) == 2);

constexpr std::uint64_t round_up(std::uint64_t value, std::uint64_t multiple) noexcept {
  return (value + multiple - 1) / multiple * multiple;
}

}  // namespace shmbox::detail
