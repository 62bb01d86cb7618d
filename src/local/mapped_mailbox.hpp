// A process's view of one mailbox: the mapping, and local copies of every
// immutable field, validated once at attach. After that, operations index the
// mapping only through these copies, so whatever another process writes into the
// header can never move an access outside the mapping.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "local/layout.hpp"
#include "platform/process.hpp"
#include "shmbox/mailbox_types.hpp"
#include "shmbox/segment.hpp"
#include "shmbox/wait.hpp"
#include "base/trust_check.hpp"

namespace shmbox::detail {

inline constexpr std::string_view mailbox_file_prefix = "shmbox.mb.";
inline constexpr std::uint32_t max_message_size_limit = 1u << 30;
inline constexpr std::uint32_t max_attach_capacity = 0xfffe;  // owner field is 16 bits, 0 = none
inline constexpr std::uint64_t max_mailbox_bytes = std::uint64_t{1} << 40;

// A mailbox's names: the user's, the file's in /dev/shm, and the one errors show.
struct MailboxFile {
  std::string name;
  std::string file_name;
  std::string object;
};

// A handle's validated copy of the identity, with what follows from it.
struct Geometry : Dimensions, Placement {
  Buffering buffering;
  std::uint64_t reserved_size;  // bytes reserved at creation: all but an unbounded mailbox's slots
  ChunkGeometry chunks;          // unbounded only
};

// The geometry a set of options gives, or invalid_argument naming the bad option.
Result<Geometry> plan_geometry(const MailboxOptions& options, const std::string& object);

// Checks an identity read from shared memory against itself and the file's size.
Result<Geometry> validate_identity(const Identity& identity, const ChunkGeometry& chunks, std::uint64_t mapped_size,
                                   const std::string& object);

struct MappedMailbox {
  std::string name;    // the user's name
  std::string object;  // "mailbox 'name'" for errors
  std::string file_name;  // in /dev/shm
  // Shared by every handle on the same mailbox file in this process: one mapping per
  // process, so threads of one process touch the same addresses (which is also what
  // lets ThreadSanitizer check the ring), and a 1 TiB unbounded range is mapped once.
  std::shared_ptr<const Segment> mapping;
  Geometry geometry;
  WaitPolicy wait;
  Header* header;
  std::byte* slots;
  std::uint16_t self = 0;  // attach index + 1; 0 when read-only (stat)
  AttachEntry* entry = nullptr;  // our attach entry, where our intents go
  std::uint64_t chunk_tag = 0;   // ChunkWord::worker_tag of our entry (layout.hpp)
  std::uint64_t process = 0;     // ProcessIdentity::packed() of this process, from attach
  // This process is registered for membarrier: its wake checks need no barrier of
  // their own, because sleepers issue a heavy one (design.md, Waiting and waking).
  bool light_wake_checks = false;
  // Set by a waiter that has waited a while: its next attempt that cannot proceed
  // looks for handles of dead processes holding what it waits for (recovery.hpp).
  bool recovery_requested = false;
  // The size of the last message this handle sent or received: what its waits expect
  // the peer to be copying (WaitPolicy::spin_for).
  std::uint32_t recent_message_size = 0;
  // A receiver that never has to wait still looks for dead receivers' messages now
  // and then: every 1024 receives, if a second has passed since it last did.
  std::uint32_t receives_until_check = 1024;
  std::chrono::steady_clock::time_point next_periodic_recovery{};
  // The error of the last attempt that failed (see ring.hpp, Attempt).
  std::optional<Error> failure;
  // The owning process as the header said at attach (0: system-owned), and a watch on
  // it that waiters check (ownership.hpp).
  std::uint64_t owner = 0;
  platform::ProcessWatch owner_watch;
  std::chrono::steady_clock::time_point next_owner_check{};
  // Senders that never wait look at the owner now and then: every 1024 sends.
  std::uint32_t sends_until_check = 1024;
  // The roles already recorded in our attach entry (role_sender, role_receiver).
  std::uint64_t roles_recorded = 0;

  // slot_count - 1 when it is a power of two: a mask instead of a 64-bit division,
  // which costs tens of cycles on every operation.
  std::uint64_t index_mask = 0;

  SlotHeader& slot(std::uint64_t position) const noexcept {
    const std::uint64_t index = index_mask != 0 || geometry.slot_count == 1 ? position & index_mask
                                                                             : position % geometry.slot_count;
    return *reinterpret_cast<SlotHeader*>(slots + index * geometry.slot_stride);
  }
  std::byte* payload(SlotHeader& slot) const noexcept { return reinterpret_cast<std::byte*>(&slot) + slot_header_bytes; }

  bool unbounded() const noexcept { return geometry.buffering == Buffering::unbounded; }
  // The attach table (attach_capacity entries) and, unbounded only, the chunk table
  // (chunks.count entries), at the offsets validated at attach.
  AttachEntry* attach_entries() const noexcept {
    return reinterpret_cast<AttachEntry*>(reinterpret_cast<std::byte*>(header) + geometry.attach_offset);
  }
  ChunkEntry* chunk_table() const noexcept {
    return reinterpret_cast<ChunkEntry*>(reinterpret_cast<std::byte*>(header) + geometry.chunks.table_offset);
  }
  ChunkEntry& chunk_of(std::uint64_t position) const noexcept {
    return chunk_table()[(position & index_mask) / geometry.chunks.slots];
  }
  std::uint64_t lap_of(std::uint64_t position) const noexcept { return position / geometry.slot_count; }

  Error corrupt(std::string detail) const { return Error{Errc::corrupt, object, std::move(detail)}; }
  Error closed_error() const { return Error{Errc::closed, object, "is closed"}; }
  // Marks this handle as a sender or receiver in its attach entry, once.
  void record_role(std::uint64_t role) noexcept {
    if ((roles_recorded & role) != 0 || entry == nullptr) return;
    roles_recorded |= role;
    entry->roles.fetch_or(role, std::memory_order_relaxed);
  }
  // Records `error` as the outcome of the current attempt.
  template <class Outcome>
  Outcome fail(Error error, Outcome failed) {
    failure = std::move(error);
    return failed;
  }
};

}  // namespace shmbox::detail
