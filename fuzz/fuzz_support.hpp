// What the fuzz targets share: names no other run uses, and the input read as
// patches that overwrite chosen regions of a live object's file, as another process
// scribbling on shared memory could.
#pragma once

#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "endpoint/layout.hpp"
#include "local/mapped_mailbox.hpp"
#include "shmbox/segment.hpp"

namespace shmbox::fuzz {

// Unique per process and run: fuzzers may run side by side (-jobs) and a crashed
// run may leave files behind.
inline std::string unique_name(std::string_view what) {
  static std::uint64_t runs = 0;
  return "fuzz-" + std::string{what} + "-" + std::to_string(::getpid()) + "-" + std::to_string(runs++);
}

// Reads the input front to back; past its end every read gives zeros.
class Input {
 public:
  Input(const std::uint8_t* data, std::size_t size) noexcept : data_(data), size_(size) {}
  bool empty() const noexcept { return at_ >= size_; }
  std::uint8_t byte() noexcept { return at_ < size_ ? data_[at_++] : 0; }
  std::uint32_t u16() noexcept { return byte() | std::uint32_t{byte()} << 8; }
  std::uint32_t u32() noexcept { return u16() | u16() << 16; }
  std::span<const std::uint8_t> take(std::size_t count) noexcept {
    count = std::min(count, size_ - std::min(at_, size_));
    const std::span<const std::uint8_t> taken{data_ + std::min(at_, size_), count};
    at_ += count;
    return taken;
  }
  std::span<const std::uint8_t> rest() noexcept { return take(size_); }

 private:
  const std::uint8_t* data_;
  std::size_t size_;
  std::size_t at_ = 0;
};

// Bytes of a file that patches may overwrite.
using Region = std::span<std::byte>;

// `length` bytes of `file` from `offset`, cut to the file.
inline Region region_of(std::span<std::byte> file, std::uint64_t offset, std::uint64_t length) {
  if (offset >= file.size()) return {};
  return file.subspan(offset, std::min<std::uint64_t>(length, file.size() - offset));
}

// Applies the rest of the input as patches, each: a region (a byte, modulo the count),
// an offset into it (two bytes, modulo its size), a length (a byte) and that many
// bytes, cut at the region's end. Writes nowhere else.
inline void apply_patches(Input& input, const std::vector<Region>& regions) {
  while (!input.empty() && !regions.empty()) {
    const Region region = regions[input.byte() % regions.size()];
    const std::uint32_t offset = input.u16();
    const std::uint8_t length = input.byte();
    if (region.empty()) continue;
    const Region target = region.subspan(offset % region.size());
    const auto bytes = input.take(std::min<std::size_t>(length, target.size()));
    std::memcpy(target.data(), bytes.data(), bytes.size());
  }
}

// A field of a file, read as the library lays it out (little-endian, unaligned-safe).
template <class T>
T read_field(std::span<const std::byte> file, std::size_t offset) {
  T value{};
  if (offset + sizeof value <= file.size()) std::memcpy(&value, file.data() + offset, sizeof value);
  return value;
}

// An endpoint header may ask for lanes as large as the options allow (up to 1 TiB, or
// all of /dev/shm), and a sender makes its lane as asked: garbage that looks legitimate
// is treated as such (design.md, "Trust"), and costs only the time and memory to make
// the file, seconds per gigabyte under the sanitizers. So lane options in range are cut
// to at most 256 slots of at most 64 KiB, keeping a run far from the timeout and from
// filling /dev/shm; those out of range are left for the endpoint's checks to reject.
inline void bound_lane_options(std::span<std::byte> endpoint_file) {
  detail::EndpointIdentity identity;
  if (endpoint_file.size() < sizeof identity) return;
  std::memcpy(&identity, endpoint_file.data(), sizeof identity);
  if (identity.lane_max_message_size <= detail::max_message_size_limit) identity.lane_max_message_size %= 65537;
  if (identity.lane_capacity > 256) identity.lane_capacity = 1 + identity.lane_capacity % 256;
  std::memcpy(endpoint_file.data(), &identity, sizeof identity);
}

// Removes a file this run may have left, whatever state it is in.
inline void remove_file(const std::string& file_name) { (void)Segment::remove(file_name); }

}  // namespace shmbox::fuzz
