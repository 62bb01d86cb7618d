#include "segment/owned_file.hpp"

#include "platform/exit_hooks.hpp"
#include "platform/process.hpp"
#include "platform/shm.hpp"
#include "segment/segment_factory.hpp"

namespace shmbox::detail {

Result<void> OwnedFile::retire(const Segment& mapping) const {
  auto unlinked = platform::unlink_shm_file_if_same(file_name, SegmentFactory::descriptor(mapping), object);
  if (!unlinked && unlinked.error() != Errc::not_found) return std::unexpected(unlinked.error());
  mark_removed(mapping);
  forget_at_exit(file_name);
  return {};
}

Result<void> OwnedFile::remove() const {
  auto mapping = SegmentFactory::open(file_name, object, Access::read_write);
  if (!mapping) {
    if (mapping.error() == Errc::not_found || mapping.error() == Errc::permission_denied) {
      return std::unexpected(mapping.error());
    }
    forget_at_exit(file_name);
    return SegmentFactory::remove(file_name, object);
  }
  if (!owner_of(*mapping)) {
    forget_at_exit(file_name);
    return SegmentFactory::remove(file_name, object);
  }
  return retire(*mapping);
}

std::optional<Error> OwnedFile::retire_if_owner_exited(const Segment& mapping, std::uint64_t owner) const {
  if (owner == 0 || platform::liveness(owner) != platform::Liveness::dead) return std::nullopt;
  (void)retire(mapping);
  return Error{Errc::not_found, object,
               "its owner, process " + std::to_string(platform::ProcessIdentity::unpack(owner).pid) +
                   ", had exited: it was removed"};
}

std::optional<Garbage> OwnedFile::remove_if_garbage() const {
  if (SegmentFactory::remove_if_left_unsized(file_name)) return Garbage::left_unsized();
  auto mapping = SegmentFactory::open(file_name, object, Access::read_write);
  if (!mapping) return std::nullopt;
  auto owner = owner_of(*mapping);
  if (!owner || *owner == 0 || platform::liveness(*owner) != platform::Liveness::dead) return std::nullopt;
  if (!retire(*mapping)) return std::nullopt;
  return Garbage::owner_exited(platform::ProcessIdentity::unpack(*owner).pid);
}

std::optional<Error> implausible_owner(std::uint64_t owner, std::uint64_t creator, const std::string& object,
                                       const std::string& kind) {
  if (owner == 0) return std::nullopt;
  if (auto fault = platform::implausible_process(owner)) {
    return Error{Errc::corrupt, object, "has an owner record that makes no sense: " + *fault};
  }
  if (owner != creator) {
    return Error{Errc::corrupt, object,
                 "has an owner record that makes no sense: it names another process than the " + kind +
                     "'s creator, and a " + kind + " belongs to its creator or the system"};
  }
  return std::nullopt;
}

}  // namespace shmbox::detail
