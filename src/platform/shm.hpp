// The Linux shared-memory file layer: files in /dev/shm (tmpfs), the same files
// that POSIX shm_open names. Everything here is a thin wrapper over system calls;
// policy (names, sizes, what an error means to the user) lives above it.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "platform/unique_fd.hpp"
#include "shmbox/error.hpp"

namespace shmbox::platform {

inline constexpr std::string_view shm_directory = "/dev/shm";

std::string shm_path(std::string_view name);

// An unnamed file in /dev/shm (O_TMPFILE) with exactly `mode`; invisible to other
// processes until link_shm_file() gives it a name, and freed if we die before that.
Result<UniqueFd> create_unnamed_shm_file(mode_t mode, const std::string& object);

// Gives an unnamed file its name; Errc::already_exists if the name is taken.
Result<void> link_shm_file(int fd, std::string_view name, const std::string& object);

// Opens an existing file read-only or read-write. Refuses symlinks and anything
// that is not a regular file (a FIFO planted under the name must not block us).
Result<UniqueFd> open_shm_file(std::string_view name, bool writable, const std::string& object);

Result<void> unlink_shm_file(std::string_view name, const std::string& object);

// Unlinks `name` only if it still names the file open as `fd`: true if it did, false
// if the name now names another file (left alone: a process removing an object must
// not remove a new object created under the same name). Errors: not_found when the
// name names nothing, and the unlink's own (permission_denied: in the sticky /dev/shm
// only the file's owner or root may remove it). The check and the unlink are two
// calls; design.md, Close and remove, bounds the race.
Result<bool> unlink_shm_file_if_same(std::string_view name, int fd, const std::string& object);

struct FileStatus {
  std::size_t size;
  mode_t mode;
  uid_t uid;
  gid_t gid;
  std::size_t allocated;  // bytes of memory the file holds (a sparse file holds less than its size)
  // The last change to its contents or metadata (ctime: no user can set it back).
  std::chrono::system_clock::time_point changed;
};
Result<FileStatus> file_status(int fd, const std::string& object);

// Whether any process holds a POSIX or open-file-description record lock on any part of
// the file (flock(2) locks are not seen). One fcntl(F_OFD_GETLK); false if it fails.
bool record_locked(int fd) noexcept;

// Gives the file to `uid` and `gid` (-1: unchanged), as far as this process may: false
// if refused (only root may change the user; others may change the group to one of
// their own).
bool change_owner(int fd, uid_t uid, gid_t gid) noexcept;

// Sets the size to `size` without reserving memory: a sparse file whose pages are
// reserved piecewise with reserve_range (a write to an unreserved page of a full
// /dev/shm would fault, so callers reserve before they write).
Result<void> set_sparse_size(int fd, std::size_t size, const std::string& object);

// Reserves, or gives back, the memory of [offset, offset + length).
Result<void> reserve_range(int fd, std::size_t offset, std::size_t length, const std::string& object);
// False if the memory could not be given back (the range is then left as it was).
bool release_range(int fd, std::size_t offset, std::size_t length) noexcept;

// The names in /dev/shm that start with `prefix`, with the prefix cut off, sorted.
std::vector<std::string> list_shm_names(std::string_view prefix);

// Total bytes of the filesystem under /dev/shm, or 0 if it cannot be read.
std::size_t shm_capacity() noexcept;

// The status of the file under `name`, without opening it.
Result<FileStatus> stat_shm_file(std::string_view name, const std::string& object);

// Makes the file exactly `size` bytes with every page reserved, so that a write
// anywhere inside can never fault for lack of memory in /dev/shm.
Result<void> reserve_size(int fd, std::size_t current_size, std::size_t size, const std::string& object);

}  // namespace shmbox::platform
