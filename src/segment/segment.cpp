#include "shmbox/segment.hpp"

#include <algorithm>
#include <array>
#include <string_view>
#include <utility>

#include "base/name.hpp"
#include "platform/directory_watch.hpp"
#include "platform/mapping.hpp"
#include "platform/shm.hpp"
#include "segment/segment_factory.hpp"

namespace shmbox {
namespace {

constexpr std::string_view kind = "segment";

Result<void> check_size(std::size_t size, const std::string& object) {
  if (size == 0) return std::unexpected(Error{Errc::invalid_argument, object, "size must be at least 1 byte"});
  return {};
}

Result<void> check_mode(mode_t mode, const std::string& object) {
  if ((mode & ~mode_t{0777}) != 0) {
    return std::unexpected(Error{Errc::invalid_argument, object, "mode must be permission bits within 0777"});
  }
  return {};
}

Error not_sized_yet(const std::string& object) {
  return Error{Errc::not_ready, object, "is empty: its creator has not sized it yet"};
}

// An empty file that no creator can still be at work on: unchanged for longer than the
// grace, and nobody holds a record lock on it (an in-place creator may take one to say
// it is slow, not gone).
bool left_unsized(int fd, const platform::FileStatus& status) {
  return status.size == 0 && std::chrono::system_clock::now() - status.changed > detail::unsized_grace &&
         !platform::record_locked(fd);
}

}  // namespace

Segment::Segment(std::string name, int fd, std::byte* base, std::size_t size, Access access) noexcept
    : name_(std::move(name)), fd_(fd), base_(base), size_(size), access_(access) {}

Segment::Segment(Segment&& other) noexcept
    : name_(std::exchange(other.name_, {})),
      fd_(std::exchange(other.fd_, -1)),
      base_(std::exchange(other.base_, nullptr)),
      size_(std::exchange(other.size_, 0)),
      access_(other.access_) {}

Segment& Segment::operator=(Segment&& other) noexcept {
  if (this != &other) {
    release();
    name_ = std::exchange(other.name_, {});
    fd_ = std::exchange(other.fd_, -1);
    base_ = std::exchange(other.base_, nullptr);
    size_ = std::exchange(other.size_, 0);
    access_ = other.access_;
  }
  return *this;
}

Segment::~Segment() { release(); }

void Segment::release() noexcept {
  platform::unmap({base_, size_});
  platform::UniqueFd{fd_};
  base_ = nullptr;
  size_ = 0;
  fd_ = -1;
}

Result<Segment> Segment::create(std::string_view name, std::size_t size, const SegmentOptions& options) {
  auto valid = detail::validate_name(kind, name);
  if (!valid) return std::unexpected(valid.error());
  return detail::SegmentFactory::create(*valid, detail::describe(kind, *valid), size, options, size);
}

Result<Segment> detail::SegmentFactory::create(const std::string& file_name, const std::string& object,
                                               std::size_t size, const SegmentOptions& options, std::size_t reserved) {
  if (auto ok = check_size(size, object); !ok) return std::unexpected(ok.error());
  if (auto ok = check_mode(options.mode, object); !ok) return std::unexpected(ok.error());

  // Built unnamed and linked in last: nobody can open it before it is sized and
  // initialized, and a crash before the link leaves nothing behind in /dev/shm.
  auto fd = platform::create_unnamed_shm_file(options.mode, object);
  if (!fd) return std::unexpected(fd.error());
  if (reserved < size) {
    if (auto ok = platform::set_sparse_size(fd->get(), size, object); !ok) return std::unexpected(ok.error());
    if (auto ok = platform::reserve_range(fd->get(), 0, reserved, object); !ok) return std::unexpected(ok.error());
  } else if (auto ok = platform::reserve_size(fd->get(), 0, size, object); !ok) {
    return std::unexpected(ok.error());
  }
  auto region = platform::map_shared(fd->get(), size, true, object);
  if (!region) return std::unexpected(region.error());
  Segment segment{file_name, fd->release(), region->base, region->size, Access::read_write};
  if (options.initialize) options.initialize(std::span<std::byte>{segment.base_, segment.size_});
  if (auto ok = platform::link_shm_file(segment.fd_, file_name, object); !ok) return std::unexpected(ok.error());
  return segment;
}

Result<Segment> Segment::open_or_create(std::string_view name, std::size_t size, const SegmentOptions& options) {
  auto valid = detail::validate_name(kind, name);
  if (!valid) return std::unexpected(valid.error());
  const std::string object = detail::describe(kind, *valid);
  if (auto ok = check_size(size, object); !ok) return std::unexpected(ok.error());
  if (auto ok = check_mode(options.mode, object); !ok) return std::unexpected(ok.error());
  // Each round either opens what exists or creates; losing a create race to
  // another process sends us back to open what it made.
  for (;;) {
    auto fd = platform::open_shm_file(*valid, true, object);
    if (fd) {
      auto status = platform::file_status(fd->get(), object);
      if (!status) return std::unexpected(status.error());
      if (auto trusted = detail::check_trusted_owner(status->uid, object); !trusted) {
        return std::unexpected(trusted.error());
      }
      // Growing a textbook creator's segment before it sized it would race with its
      // ftruncate, which could then shrink the file under our mapping.
      if (status->size == 0) return std::unexpected(not_sized_yet(object));
      // Reserving what is already reserved costs little, and makes a segment some
      // other program created without reserving as safe as one of ours.
      const std::size_t mapped_size = std::max(size, status->size);
      if (auto ok = platform::reserve_size(fd->get(), status->size, mapped_size, object); !ok) {
        return std::unexpected(ok.error());
      }
      auto region = platform::map_shared(fd->get(), mapped_size, true, object);
      if (!region) return std::unexpected(region.error());
      return Segment{*valid, fd->release(), region->base, region->size, Access::read_write};
    }
    if (fd.error() != Errc::not_found) return std::unexpected(fd.error());
    auto created = create(*valid, size, options);
    if (created || created.error() != Errc::already_exists) return created;
  }
}

Result<Segment> Segment::open(std::string_view name, Access access) {
  auto valid = detail::validate_name(kind, name);
  if (!valid) return std::unexpected(valid.error());
  return detail::SegmentFactory::open(*valid, detail::describe(kind, *valid), access, detail::OwnerCheck::trusted_owner);
}

Result<Segment> detail::SegmentFactory::open(const std::string& file_name, const std::string& object,
                                             Access access, OwnerCheck check, Unsized unsized) {
  const bool writable = access == Access::read_write;
  auto fd = platform::open_shm_file(file_name, writable, object);
  if (!fd) return std::unexpected(fd.error());
  auto status = platform::file_status(fd->get(), object);
  if (!status) return std::unexpected(status.error());
  // Before anything of it is read: it may be a squatter's.
  if (check == OwnerCheck::trusted_owner) {
    if (auto trusted = check_trusted_owner(status->uid, object); !trusted) return std::unexpected(trusted.error());
  }
  if (unsized == Unsized::garbage_after_grace && left_unsized(fd->get(), *status)) {
    return std::unexpected(Error{Errc::corrupt, object,
                                 "is empty (0 bytes) and has been for over " + std::to_string(unsized_grace.count()) +
                                     " s: it was truncated, or its creator is gone"});
  }
  if (status->size == 0) return std::unexpected(not_sized_yet(object));
  auto region = platform::map_shared(fd->get(), status->size, writable, object);
  if (!region) return std::unexpected(region.error());
  return Segment{file_name, fd->release(), region->base, region->size, access};
}

Result<Segment> Segment::open_wait(std::string_view name, Access access, Deadline deadline) {
  auto valid = detail::validate_name(kind, name);
  if (!valid) return std::unexpected(valid.error());
  const std::string object = detail::describe(kind, *valid);
  // Watch before the first attempt so that a creation between the attempt and the
  // sleep still wakes us.
  auto watch = platform::DirectoryWatch::watch_shm_directory(object);
  if (!watch) return std::unexpected(watch.error());
  for (;;) {
    auto segment = detail::SegmentFactory::open(*valid, object, access, detail::OwnerCheck::trusted_owner);
    if (segment || (segment.error() != Errc::not_found && segment.error() != Errc::not_ready)) return segment;
    if (deadline.expired()) {
      return std::unexpected(Error{Errc::timeout, object, "did not appear in time (" + segment.error().detail() + ")"});
    }
    // The cap bounds the cost of a missed event (another filesystem view of /dev/shm).
    auto nap = std::chrono::milliseconds{100};
    if (!deadline.is_forever()) {
      nap = std::min(nap, std::chrono::ceil<std::chrono::milliseconds>(deadline.until() - Deadline::clock::now()));
    }
    watch->wait(std::max(nap, std::chrono::milliseconds{0}));
  }
}

Result<void> Segment::remove(std::string_view name) {
  auto valid = detail::validate_name(kind, name);
  if (!valid) return std::unexpected(valid.error());
  return detail::SegmentFactory::remove(*valid, detail::describe(kind, *valid));
}

Result<void> detail::SegmentFactory::remove(const std::string& file_name, const std::string& object) {
  return platform::unlink_shm_file(file_name, object);
}

std::vector<std::string> Segment::list() {
  // Spelled out rather than taken from the mailbox and endpoint code: segments sit below them.
  constexpr std::array<std::string_view, 7> not_segments{"shmbox.mb.", "shmbox.ep.", "shmbox.ln.", "shmbox.lk.",
                                                         "shmbox.bd.", "shmbox.tp.", "sem."};
  auto names = platform::list_shm_names("");
  std::erase_if(names, [&](const std::string& name) {
    return std::ranges::any_of(not_segments, [&](std::string_view prefix) { return name.starts_with(prefix); });
  });
  return names;
}

bool detail::SegmentFactory::remove_if_left_unsized(const std::string& file_name) {
  // Read-only: looking needs no more, and the unlink is the kernel's to allow.
  auto fd = platform::open_shm_file(file_name, false, {});
  if (!fd) return false;
  auto status = platform::file_status(fd->get(), {});
  if (!status || !left_unsized(fd->get(), *status)) return false;
  auto unlinked = platform::unlink_shm_file_if_same(file_name, fd->get(), {});
  return unlinked && *unlinked;
}

Result<SegmentInfo> Segment::stat(std::string_view name) {
  auto valid = detail::validate_name(kind, name);
  if (!valid) return std::unexpected(valid.error());
  return detail::SegmentFactory::stat(*valid, detail::describe(kind, *valid));
}

Result<SegmentInfo> detail::SegmentFactory::stat(const std::string& file_name, const std::string& object) {
  auto status = platform::stat_shm_file(file_name, object);
  if (!status) return std::unexpected(status.error());
  return SegmentInfo{status->size, status->allocated, status->mode, status->uid, status->gid};
}

std::span<const std::byte> Segment::bytes() const noexcept { return {base_, size_}; }

Error Segment::moved_from() {
  return Error{Errc::invalid_argument, "segment", "this handle was moved from: it maps nothing"};
}

Result<std::span<std::byte>> Segment::writable_bytes() noexcept {
  if (fd_ < 0) return std::unexpected(moved_from());
  if (access_ != Access::read_write) {
    return std::unexpected(Error{Errc::permission_denied, detail::describe(kind, name_), "was opened read-only"});
  }
  return std::span<std::byte>{base_, size_};
}

Result<void> Segment::resize(std::size_t new_size) {
  if (fd_ < 0) return std::unexpected(moved_from());
  const std::string object = detail::describe(kind, name_);
  if (access_ != Access::read_write) {
    return std::unexpected(Error{Errc::permission_denied, object, "was opened read-only and cannot be resized"});
  }
  if (auto ok = check_size(new_size, object); !ok) return std::unexpected(ok.error());
  auto status = platform::file_status(fd_, object);
  if (!status) return std::unexpected(status.error());
  if (auto ok = platform::reserve_size(fd_, status->size, new_size, object); !ok) return std::unexpected(ok.error());
  auto region = platform::remap({base_, size_}, new_size, object);
  if (!region) return std::unexpected(region.error());
  base_ = region->base;
  size_ = region->size;
  return {};
}

Result<void> Segment::refresh() {
  if (fd_ < 0) return std::unexpected(moved_from());
  const std::string object = detail::describe(kind, name_);
  auto status = platform::file_status(fd_, object);
  if (!status) return std::unexpected(status.error());
  if (status->size == size_) return {};
  if (status->size == 0) return std::unexpected(Error{Errc::not_ready, object, "was truncated to 0 bytes"});
  auto region = platform::remap({base_, size_}, status->size, object);
  if (!region) return std::unexpected(region.error());
  base_ = region->base;
  size_ = region->size;
  return {};
}

}  // namespace shmbox
