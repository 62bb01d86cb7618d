// The segment operations on a file name that has been validated already, with the
// object description errors should carry. Segment's public calls and the objects
// built on segments (mailboxes) share them, so every shared-memory object is
// created, opened and removed the one way.
#pragma once

#include <string>
#include <string_view>

#include "shmbox/segment.hpp"
#include "trust_check.hpp"

namespace shmbox::detail {

struct SegmentFactory {
  // `reserved` bytes from the start are reserved; the rest of `size` is left sparse
  // (reserved == size for an ordinary segment).
  static Result<Segment> create(const std::string& file_name, const std::string& object, std::size_t size,
                                const SegmentOptions& options, std::size_t reserved);
  static Result<Segment> open(const std::string& file_name, const std::string& object, Access access,
                              OwnerCheck check = OwnerCheck::any_owner);
  static Result<void> remove(const std::string& file_name, const std::string& object);
  static Result<SegmentInfo> stat(const std::string& file_name, const std::string& object);
  static int descriptor(const Segment& segment) noexcept { return segment.fd_; }
};

}  // namespace shmbox::detail
