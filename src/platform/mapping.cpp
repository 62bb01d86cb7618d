#include "platform/mapping.hpp"

#include <sys/mman.h>

#include <cerrno>

#include "platform/system_error.hpp"

namespace shmbox::platform {

Result<MappedRegion> map_shared(int fd, std::size_t size, bool writable, const std::string& object) {
  const int protection = writable ? PROT_READ | PROT_WRITE : PROT_READ;
  void* base = ::mmap(nullptr, size, protection, MAP_SHARED, fd, 0);
  if (base == MAP_FAILED) return std::unexpected(system_error(errno, object, "cannot map"));
  return MappedRegion{static_cast<std::byte*>(base), size};
}

Result<MappedRegion> remap(MappedRegion region, std::size_t new_size, const std::string& object) {
  void* base = ::mremap(region.base, region.size, new_size, MREMAP_MAYMOVE);
  if (base == MAP_FAILED) return std::unexpected(system_error(errno, object, "cannot remap"));
  return MappedRegion{static_cast<std::byte*>(base), new_size};
}

void unmap(MappedRegion region) noexcept {
  if (region.base != nullptr) ::munmap(region.base, region.size);
}

}  // namespace shmbox::platform
