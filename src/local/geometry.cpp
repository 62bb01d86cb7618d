#include <algorithm>
#include <bit>

#include "local/mapped_mailbox.hpp"
#include "platform/shm.hpp"

namespace shmbox::detail {
namespace {

constexpr std::uint64_t page = 4096;

std::uint32_t stride_for(std::uint32_t max_message_size) noexcept {
  return static_cast<std::uint32_t>(round_up(slot_header_bytes + std::uint64_t{max_message_size}, cache_line));
}

std::uint64_t slots_offset_for(std::uint32_t attach_capacity) noexcept {
  return round_up(header_bytes + std::uint64_t{attach_capacity} * sizeof(AttachEntry), page);
}

// An unbounded mailbox is a ring over a sparse virtual range twice the size of
// /dev/shm (at least 4 chunks, at most 1 TiB): memory runs out before the ring
// fills. Slots come in chunks of at least 1 MiB and 64 slots, backed and given back
// whole; at most 16384 chunks keep the chunk table (reserved at creation) at 128 KiB.
Result<Geometry> plan_unbounded(Geometry geometry, std::uint64_t shm_bytes, const std::string& object) {
  constexpr std::uint64_t max_chunks = 16384;
  const std::uint64_t stride = geometry.slot_stride;
  std::uint64_t chunk_slots = std::max<std::uint64_t>(64, std::bit_ceil(((std::uint64_t{1} << 20) + stride - 1) / stride));
  const std::uint64_t virtual_bytes = std::min(std::max(2 * shm_bytes, 4 * chunk_slots * stride), max_mailbox_bytes);
  // Positions index slots with 32-bit counts: at most 2^31 slots.
  const std::uint64_t slot_count = std::bit_floor(std::min<std::uint64_t>(virtual_bytes / stride, std::uint64_t{1} << 31));
  chunk_slots = std::max(chunk_slots, slot_count / max_chunks);
  if (slot_count < 2 * chunk_slots || slot_count > 0xffffffffu) {
    return std::unexpected(Error{Errc::too_large, object,
                                 "max message size " + std::to_string(geometry.max_message_size) +
                                     " is too large for an unbounded mailbox"});
  }
  geometry.capacity = 0;
  geometry.slot_count = static_cast<std::uint32_t>(slot_count);
  geometry.chunks.slots = static_cast<std::uint32_t>(chunk_slots);
  geometry.chunks.count = static_cast<std::uint32_t>(slot_count / chunk_slots);
  geometry.chunks.table_offset = geometry.slots_offset;  // after the attach table
  geometry.slots_offset =
      round_up(geometry.chunks.table_offset + std::uint64_t{geometry.chunks.count} * sizeof(ChunkEntry), page);
  geometry.reserved_size = geometry.slots_offset;
  geometry.file_size = geometry.slots_offset + slot_count * stride;
  return geometry;
}

}  // namespace

Result<Geometry> plan_geometry(const MailboxOptions& options, const std::string& object) {
  auto invalid = [&](std::string detail) { return std::unexpected(Error{Errc::invalid_argument, object, std::move(detail)}); };
  if (options.max_message_size > max_message_size_limit) {
    return invalid("max message size " + std::to_string(options.max_message_size) + " is over the limit of " +
                   std::to_string(max_message_size_limit) + " bytes");
  }
  if (options.max_attached == 0 || options.max_attached > max_attach_capacity) {
    return invalid("max attached must be from 1 to " + std::to_string(max_attach_capacity));
  }
  if ((options.mode & ~mode_t{0777}) != 0) return invalid("mode must be permission bits within 0777");
  Geometry geometry{};
  geometry.buffering = options.buffering;
  geometry.max_message_size = options.max_message_size;
  geometry.slot_stride = stride_for(options.max_message_size);
  geometry.attach_capacity = options.max_attached;
  geometry.attach_offset = header_bytes;
  geometry.slots_offset = slots_offset_for(options.max_attached);
  switch (options.buffering) {
    case Buffering::bounded:
      if (options.capacity == 0) return invalid("a bounded mailbox needs a capacity of at least 1 (or zero buffering)");
      geometry.capacity = options.capacity;
      geometry.slot_count = options.capacity;
      break;
    case Buffering::zero:
      // One pending message per attached handle: a sender waits for its pick-up.
      geometry.capacity = 0;
      geometry.slot_count = options.max_attached;
      break;
    case Buffering::unbounded:
      return plan_unbounded(geometry, platform::shm_capacity(), object);
  }
  const std::uint64_t slot_bytes = std::uint64_t{geometry.slot_count} * geometry.slot_stride;
  if (slot_bytes > max_mailbox_bytes) {
    return std::unexpected(Error{Errc::too_large, object,
                                 "capacity x slot size is " + std::to_string(slot_bytes) + " bytes, over the limit of " +
                                     std::to_string(max_mailbox_bytes)});
  }
  geometry.file_size = geometry.slots_offset + slot_bytes;
  geometry.reserved_size = geometry.file_size;
  return geometry;
}

Result<Geometry> validate_identity(const Identity& identity, const ChunkGeometry& chunks, std::uint64_t mapped_size,
                                   const std::string& object) {
  auto corrupt = [&](std::string detail) { return std::unexpected(Error{Errc::corrupt, object, std::move(detail)}); };
  if (mapped_size < header_bytes) return corrupt("is smaller than a mailbox header");
  if (identity.magic != mailbox_magic) return corrupt("is not a mailbox (bad magic number)");
  if (identity.layout_version != mailbox_layout_version) {
    return std::unexpected(Error{Errc::version_mismatch, object,
                                 "has layout version " + std::to_string(identity.layout_version) +
                                     "; this build reads version " + std::to_string(mailbox_layout_version)});
  }
  if (identity.header_size != header_bytes) return corrupt("header size field is wrong");
  if (identity.buffering > static_cast<std::uint32_t>(BufferingCode::unbounded)) return corrupt("buffering field is invalid");
  Geometry geometry{};
  geometry.buffering = static_cast<Buffering>(identity.buffering);
  static_cast<Dimensions&>(geometry) = identity.dimensions;
  static_cast<Placement&>(geometry) = identity.placement;
  if (geometry.max_message_size > max_message_size_limit) return corrupt("max message size field is out of range");
  if (geometry.slot_stride != stride_for(geometry.max_message_size)) return corrupt("slot stride field is inconsistent");
  if (geometry.attach_capacity == 0 || geometry.attach_capacity > max_attach_capacity) {
    return corrupt("attach capacity field is out of range");
  }
  if (geometry.attach_offset != header_bytes) return corrupt("attach table offset is inconsistent");
  if (geometry.slot_count == 0) return corrupt("slot count is zero");
  const std::uint64_t after_attach = slots_offset_for(geometry.attach_capacity);
  if (geometry.buffering == Buffering::unbounded) {
    geometry.chunks = chunks;
    const bool chunks_fit = chunks.slots >= 64 && std::has_single_bit(chunks.slots) &&
                            std::has_single_bit(geometry.slot_count) && chunks.count >= 2 &&
                            std::uint64_t{chunks.count} * chunks.slots == geometry.slot_count;
    if (!chunks_fit || chunks.table_offset != after_attach || geometry.capacity != 0) {
      return corrupt("unbounded geometry is inconsistent");
    }
    if (geometry.slots_offset != round_up(chunks.table_offset + std::uint64_t{chunks.count} * sizeof(ChunkEntry), page)) {
      return corrupt("slots offset is inconsistent");
    }
    geometry.reserved_size = geometry.slots_offset;
  } else {
    if (geometry.slots_offset != after_attach) return corrupt("slots offset is inconsistent");
  }
  switch (geometry.buffering) {
    case Buffering::bounded:
      if (geometry.capacity != geometry.slot_count) return corrupt("capacity and slot count disagree");
      break;
    case Buffering::zero:
      if (geometry.capacity != 0 || geometry.slot_count != geometry.attach_capacity) {
        return corrupt("zero-capacity geometry is inconsistent");
      }
      break;
    case Buffering::unbounded:
      break;
  }
  const std::uint64_t slot_bytes = std::uint64_t{geometry.slot_count} * geometry.slot_stride;
  if (slot_bytes > max_mailbox_bytes || geometry.file_size != geometry.slots_offset + slot_bytes) {
    return corrupt("file size field is inconsistent");
  }
  if (geometry.buffering != Buffering::unbounded) geometry.reserved_size = geometry.file_size;
  if (geometry.file_size > mapped_size) {
    return corrupt("is " + std::to_string(mapped_size) + " bytes, shorter than its header says (" +
                   std::to_string(geometry.file_size) + ")");
  }
  return geometry;
}

}  // namespace shmbox::detail
