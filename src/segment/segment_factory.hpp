// The segment operations on a file name that has been validated already, with the
// object description errors should carry. Segment's public calls and the objects
// built on segments (mailboxes) share them, so every shared-memory object is
// created, opened and removed the one way.
#pragma once

#include <chrono>
#include <string>
#include <string_view>

#include "shmbox/segment.hpp"
#include "base/trust_check.hpp"

namespace shmbox::detail {

// What an empty (0-byte) file under an object's name means. A plain segment may be any
// program's, created in place and sized after (shm_open, then ftruncate): not ready yet,
// however long that takes. Mailboxes and endpoints are only named once sized (built
// unnamed, then linked), so an empty one was truncated or made in place by another
// program: garbage once it has been left so for `unsized_grace` (design.md, Mailboxes:
// Files and names).
enum class Unsized { not_ready, garbage_after_grace };
inline constexpr std::chrono::seconds unsized_grace{2};

struct SegmentFactory {
  // `reserved` bytes from the start are reserved; the rest of `size` is left sparse
  // (reserved == size for an ordinary segment).
  static Result<Segment> create(const std::string& file_name, const std::string& object, std::size_t size,
                                const SegmentOptions& options, std::size_t reserved);
  static Result<Segment> open(const std::string& file_name, const std::string& object, Access access,
                              OwnerCheck check = OwnerCheck::any_owner, Unsized unsized = Unsized::not_ready);
  static Result<void> remove(const std::string& file_name, const std::string& object);
  // Removes the file if it is garbage by Unsized::garbage_after_grace; whether it did.
  static bool remove_if_left_unsized(const std::string& file_name);
  static Result<SegmentInfo> stat(const std::string& file_name, const std::string& object);
  static int descriptor(const Segment& segment) noexcept { return segment.fd_; }
};

}  // namespace shmbox::detail
