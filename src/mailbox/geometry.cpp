#include "mailbox/mailbox_state.hpp"

namespace shmbox::detail {
namespace {

constexpr std::uint64_t page = 4096;

std::uint32_t stride_for(std::uint32_t max_message_size) noexcept {
  return static_cast<std::uint32_t>(round_up(slot_header_bytes + std::uint64_t{max_message_size}, cache_line));
}

std::uint64_t slots_offset_for(std::uint32_t attach_capacity) noexcept {
  return round_up(header_bytes + std::uint64_t{attach_capacity} * sizeof(AttachEntry), page);
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
      return invalid("unbounded buffering is not available in this build");
  }
  const std::uint64_t slot_bytes = std::uint64_t{geometry.slot_count} * geometry.slot_stride;
  if (slot_bytes > max_mailbox_bytes) {
    return std::unexpected(Error{Errc::too_large, object,
                                 "capacity x slot size is " + std::to_string(slot_bytes) + " bytes, over the limit of " +
                                     std::to_string(max_mailbox_bytes)});
  }
  geometry.file_size = geometry.slots_offset + slot_bytes;
  return geometry;
}

Result<Geometry> validate_identity(const Identity& identity, std::uint64_t mapped_size, const std::string& object) {
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
  geometry.capacity = identity.capacity;
  geometry.max_message_size = identity.max_message_size;
  geometry.slot_stride = identity.slot_stride;
  geometry.slot_count = identity.slot_count;
  geometry.attach_capacity = identity.attach_capacity;
  geometry.attach_offset = identity.attach_offset;
  geometry.slots_offset = identity.slots_offset;
  geometry.file_size = identity.file_size;
  if (geometry.max_message_size > max_message_size_limit) return corrupt("max message size field is out of range");
  if (geometry.slot_stride != stride_for(geometry.max_message_size)) return corrupt("slot stride field is inconsistent");
  if (geometry.attach_capacity == 0 || geometry.attach_capacity > max_attach_capacity) {
    return corrupt("attach capacity field is out of range");
  }
  if (geometry.attach_offset != header_bytes) return corrupt("attach table offset is inconsistent");
  if (geometry.slots_offset != slots_offset_for(geometry.attach_capacity)) return corrupt("slots offset is inconsistent");
  if (geometry.slot_count == 0) return corrupt("slot count is zero");
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
      return corrupt("unbounded mailboxes are not supported by this build");
  }
  const std::uint64_t slot_bytes = std::uint64_t{geometry.slot_count} * geometry.slot_stride;
  if (slot_bytes > max_mailbox_bytes || geometry.file_size != geometry.slots_offset + slot_bytes) {
    return corrupt("file size field is inconsistent");
  }
  if (geometry.file_size > mapped_size) {
    return corrupt("is " + std::to_string(mapped_size) + " bytes, shorter than its header says (" +
                   std::to_string(geometry.file_size) + ")");
  }
  return geometry;
}

}  // namespace shmbox::detail
