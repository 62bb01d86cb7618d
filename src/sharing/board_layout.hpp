// A local board's shared-memory layout: plain data, every offset fixed and checked at
// compile time. docs/design.md ("Boards") draws it and gives the algorithm.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "sharing/lock_layout.hpp"

namespace shmbox::detail {

// A board's file in /dev/shm is this prefix and its name.
inline constexpr std::string_view board_file_prefix = "shmbox.bd.";

inline constexpr std::uint64_t board_magic = 0x44424f42424d4853ull;  // "SHMBBOBD" little-endian
inline constexpr std::uint32_t board_layout_version = 1;
inline constexpr std::size_t board_line = 64;
// Writers take the board's writer lock through a slot each (one per handle that has
// written, kept until the handle goes).
inline constexpr std::uint32_t board_writer_slots = 256;

// Line 0: written once by the creator before anyone can see the board.
struct BoardIdentity {
  std::uint64_t magic;
  std::uint32_t layout_version;
  std::uint32_t buffer_count;  // view_slots + 2: a writer always finds a buffer to write
  std::uint64_t max_size;
  std::uint64_t stride;        // bytes from one buffer's data to the next (whole lines)
  std::uint32_t view_slots;
  std::uint32_t writer_slots;
  std::uint64_t owner;         // ProcessIdentity::packed() of the owning process; 0: the system
  std::uint64_t creator;       // the process that made it
};
static_assert(sizeof(BoardIdentity) <= board_line);

// The latest complete value: version << 8 | the buffer that holds it.
struct LatestWord {
  static constexpr std::uint64_t make(std::uint64_t version, std::uint32_t buffer) noexcept {
    return version << 8 | buffer;
  }
  static constexpr std::uint64_t version(std::uint64_t word) noexcept { return word >> 8; }
  static constexpr std::uint32_t buffer(std::uint64_t word) noexcept { return word & 0xff; }
};

// Futex of the watchers: the low 31 bits of the latest version, and bit 31 while a
// watcher sleeps (a writer wakes only then, and clears it).
struct ChangedWord {
  static constexpr std::uint32_t sleeping = std::uint32_t{1} << 31;
  static constexpr std::uint32_t of(std::uint64_t version) noexcept { return version & 0x7fffffffu; }
};

struct alignas(board_line) BoardHeader {
  BoardIdentity identity;
  // Line 1: what every get, put and watch reads.
  alignas(board_line) std::atomic<std::uint64_t> latest;
  std::atomic<std::uint32_t> changed;
  std::atomic<std::uint32_t> removed;  // 1 once removed: every handle's call fails, watchers wake
  // Line 2 on: the writers' lock (lock_bytes(writer_slots)).
};
static_assert(sizeof(BoardHeader) == 2 * board_line);
static_assert(offsetof(BoardHeader, latest) == 64 && offsetof(BoardHeader, changed) == 72 &&
              offsetof(BoardHeader, removed) == 76);

// One line per buffer, so that a writer stamping one does not disturb readers of another.
// stamp: the version the buffer holds, or being_written while a writer fills it. length:
// that version's bytes.
struct alignas(board_line) BufferDescriptor {
  static constexpr std::uint64_t being_written = ~std::uint64_t{0};
  std::atomic<std::uint64_t> stamp;
  std::atomic<std::uint64_t> length;
};
static_assert(sizeof(BufferDescriptor) == board_line);

// One per view held. owner: ProcessIdentity::packed() of its process (0: free). pin: 1 +
// the buffer it reads (0: none); writers pass over pinned buffers.
struct ViewSlot {
  std::atomic<std::uint64_t> owner;
  std::atomic<std::uint64_t> pin;
};
static_assert(sizeof(ViewSlot) == 16);

constexpr std::size_t round_to_line(std::size_t bytes) noexcept {
  return (bytes + board_line - 1) / board_line * board_line;
}

// Where each part starts, from the counts in the identity.
struct BoardGeometry {
  std::uint32_t buffer_count;
  std::uint32_t view_slots;
  std::uint32_t writer_slots;
  std::uint64_t stride;

  constexpr std::size_t lock_offset() const noexcept { return sizeof(BoardHeader); }
  constexpr std::size_t descriptors_offset() const noexcept {
    return round_to_line(lock_offset() + lock_bytes(writer_slots));
  }
  constexpr std::size_t view_slots_offset() const noexcept {
    return descriptors_offset() + std::size_t{buffer_count} * sizeof(BufferDescriptor);
  }
  constexpr std::size_t data_offset() const noexcept {
    return round_to_line(view_slots_offset() + std::size_t{view_slots} * sizeof(ViewSlot));
  }
  constexpr std::size_t file_size() const noexcept { return data_offset() + buffer_count * stride; }
};

}  // namespace shmbox::detail
