#pragma once

#include <cstddef>
#include <string>

#include "shmbox/error.hpp"

namespace shmbox::platform {

struct MappedRegion {
  std::byte* base;
  std::size_t size;
};

// Maps `size` bytes of `fd` MAP_SHARED; PROT_READ only unless `writable`.
Result<MappedRegion> map_shared(int fd, std::size_t size, bool writable, const std::string& object);

// Moves or resizes a mapping made by map_shared.
Result<MappedRegion> remap(MappedRegion region, std::size_t new_size, const std::string& object);

void unmap(MappedRegion region) noexcept;

}  // namespace shmbox::platform
