// Named shared-memory segments: the classic shm_open / ftruncate / mmap
// producer-consumer, made safe.
//
//   auto seg = shmbox::Segment::create("frames", 1 << 20).value();   // exclusive, 0600
//   auto mem = seg.writable_bytes().value();                          // std::span<std::byte>
//   ...
//   auto view = shmbox::Segment::open("frames", shmbox::Access::read_only).value();
//   use(view.bytes());                                                // mapped PROT_READ
//   shmbox::Segment::remove("frames");
//
// Names: one path component of 1 to 255 characters from [A-Za-z0-9._-], not "." or
// "..". A single leading '/' (the POSIX spelling, "/frames") is accepted and ignored.
// The segment lives at /dev/shm/<name>, so textbook shm_open("/<name>") code interoperates.
//
// Guarantees:
//   - A created segment appears under its name only once it is fully sized and, if
//     SegmentOptions::initialize is given, initialized: no process ever opens it half-made.
//   - Its pages are reserved at creation and on every resize, so a full /dev/shm is an
//     Errc::no_space error there, never a SIGBUS on a later write.
//   - A Segment is move-only; destroying it unmaps and closes, it never removes the name.
//
// Thread contract: a Segment object is not synchronised; give each thread its own, or
// guard it. The memory it maps is shared and synchronising access to it is the caller's job.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "shmbox/error.hpp"
#include "shmbox/wait.hpp"

namespace shmbox {

namespace detail {
struct SegmentFactory;
}

enum class Access { read_only, read_write };

struct SegmentOptions {
  // Permission bits, applied exactly (the process umask does not narrow them).
  mode_t mode = 0600;
  // Runs on the new mapping before the segment becomes visible under its name.
  std::function<void(std::span<std::byte>)> initialize;
};

struct SegmentInfo {
  std::size_t size = 0;
  std::size_t allocated = 0;  // bytes of memory it holds now (less than size if sparse)
  mode_t mode = 0;
  uid_t owner_uid = 0;
  gid_t owner_gid = 0;
};

class Segment {
 public:
  // Creates a new segment of `size` bytes; Errc::already_exists if the name is taken.
  [[nodiscard]] static Result<Segment> create(std::string_view name, std::size_t size, const SegmentOptions& options = {});

  // Opens the segment if it exists (growing it to `size` if it is smaller, never
  // shrinking it), otherwise creates it as create() does. Always read-write.
  [[nodiscard]] static Result<Segment> open_or_create(std::string_view name, std::size_t size,
                                        const SegmentOptions& options = {});

  // Opens an existing segment and maps all of it with the access asked for.
  [[nodiscard]] static Result<Segment> open(std::string_view name, Access access = Access::read_write);

  // As open(), but if the segment does not exist yet (or is still empty), sleeps until
  // it appears or the deadline passes (Errc::timeout). Sleeps on inotify; never spins.
  // Any other error (permission denied, ...) is returned at once.
  [[nodiscard]] static Result<Segment> open_wait(std::string_view name, Access access, Deadline deadline);

  // Unlinks the name. Processes that have it mapped keep their mapping.
  [[nodiscard]] static Result<void> remove(std::string_view name);

  [[nodiscard]] static Result<SegmentInfo> stat(std::string_view name);
  // Names in /dev/shm that a segment may have: every shared-memory object except the
  // files of mailboxes, endpoints and their lanes, and POSIX semaphores ("sem.").
  [[nodiscard]] static std::vector<std::string> list();

  // A moved-from Segment maps nothing: it may be destroyed or assigned to; name() is
  // "", size() 0, bytes() empty, and writable_bytes(), resize() and refresh() fail with
  // Errc::invalid_argument.
  Segment(Segment&& other) noexcept;
  Segment& operator=(Segment&& other) noexcept;
  Segment(const Segment&) = delete;
  Segment& operator=(const Segment&) = delete;
  ~Segment();

  const std::string& name() const noexcept { return name_; }
  std::size_t size() const noexcept { return size_; }
  Access access() const noexcept { return access_; }

  [[nodiscard]] std::span<const std::byte> bytes() const noexcept;
  // Errc::permission_denied on a segment opened read-only.
  [[nodiscard]] Result<std::span<std::byte>> writable_bytes() noexcept;

  // Changes the segment's size and remaps it here; spans taken before are invalid.
  // Growing reserves the new pages first. Other processes see the new size after
  // their own refresh(); shrinking under a process that still maps the old size makes
  // its accesses past the new end fault, so shrink only what others no longer use.
  [[nodiscard]] Result<void> resize(std::size_t new_size);

  // Remaps to the size the segment has now (after another process resized it).
  [[nodiscard]] Result<void> refresh();

 private:
  friend struct detail::SegmentFactory;
  Segment(std::string name, int fd, std::byte* base, std::size_t size, Access access) noexcept;
  void release() noexcept;
  static Error moved_from();

  std::string name_;
  int fd_ = -1;
  std::byte* base_ = nullptr;
  std::size_t size_ = 0;
  Access access_ = Access::read_only;
};

}  // namespace shmbox
