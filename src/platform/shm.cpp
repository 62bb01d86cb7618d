#include "platform/shm.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/statvfs.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <limits>

#include "platform/system_error.hpp"

namespace shmbox::platform {

std::string shm_path(std::string_view name) {
  std::string path{shm_directory};
  path += '/';
  path += name;
  return path;
}

Result<UniqueFd> create_unnamed_shm_file(mode_t mode, const std::string& object) {
  const std::string dir{shm_directory};
  UniqueFd fd{::open(dir.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, mode)};
  if (!fd) return std::unexpected(system_error(errno, object, "cannot create in /dev/shm"));
  // open() applied the umask; the caller's mode is meant literally.
  if (::fchmod(fd.get(), mode) != 0) return std::unexpected(system_error(errno, object, "cannot set mode"));
  return fd;
}

Result<void> link_shm_file(int fd, std::string_view name, const std::string& object) {
  const std::string target = shm_path(name);
  // Linking an O_TMPFILE through /proc needs no privilege, unlike AT_EMPTY_PATH.
  const std::string proc_path = "/proc/self/fd/" + std::to_string(fd);
  if (::linkat(AT_FDCWD, proc_path.c_str(), AT_FDCWD, target.c_str(), AT_SYMLINK_FOLLOW) == 0) return {};
  int err = errno;
  if (err == ENOENT) {
    // No /proc: AT_EMPTY_PATH works without it, but needs CAP_DAC_READ_SEARCH.
    if (::linkat(fd, "", AT_FDCWD, target.c_str(), AT_EMPTY_PATH) == 0) return {};
    err = errno;
    if (err == ENOENT) return std::unexpected(system_error(err, object, "cannot create: /proc is not mounted"));
  }
  return std::unexpected(system_error(err, object, "cannot create"));
}

Result<UniqueFd> open_shm_file(std::string_view name, bool writable, const std::string& object) {
  const std::string path = shm_path(name);
  const int flags = (writable ? O_RDWR : O_RDONLY) | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK;
  UniqueFd fd{::open(path.c_str(), flags)};
  if (!fd) {
    if (errno == ELOOP) {
      return std::unexpected(Error{Errc::permission_denied, object, "is a symbolic link, refused"});
    }
    return std::unexpected(system_error(errno, object, "cannot open"));
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return std::unexpected(system_error(errno, object, "cannot stat"));
  if (!S_ISREG(st.st_mode)) {
    return std::unexpected(Error{Errc::corrupt, object, "is not a shared-memory file"});
  }
  // O_NONBLOCK only guarded the open itself.
  const int status_flags = ::fcntl(fd.get(), F_GETFL);
  if (status_flags < 0 || ::fcntl(fd.get(), F_SETFL, status_flags & ~O_NONBLOCK) != 0) {
    return std::unexpected(system_error(errno, object, "cannot set file flags"));
  }
  return fd;
}

namespace {

FileStatus status_of(const struct stat& st) {
  const auto changed = std::chrono::seconds{st.st_ctim.tv_sec} + std::chrono::nanoseconds{st.st_ctim.tv_nsec};
  return FileStatus{static_cast<std::size_t>(st.st_size),
                    st.st_mode & 07777,
                    st.st_uid,
                    st.st_gid,
                    static_cast<std::size_t>(st.st_blocks) * 512,
                    std::chrono::system_clock::time_point{
                        std::chrono::duration_cast<std::chrono::system_clock::duration>(changed)}};
}

}  // namespace

Result<FileStatus> stat_shm_file(std::string_view name, const std::string& object) {
  const std::string path = shm_path(name);
  struct stat st {};
  // lstat: metadata needs no permission on the file itself (ls shows it to anyone),
  // and a symlink planted under the name is reported, not followed.
  if (::lstat(path.c_str(), &st) != 0) return std::unexpected(system_error(errno, object, "cannot stat"));
  if (!S_ISREG(st.st_mode)) return std::unexpected(Error{Errc::corrupt, object, "is not a shared-memory file"});
  return status_of(st);
}

Result<void> unlink_shm_file(std::string_view name, const std::string& object) {
  const std::string path = shm_path(name);
  if (::unlink(path.c_str()) != 0) return std::unexpected(system_error(errno, object, "cannot remove"));
  return {};
}

std::vector<std::string> list_shm_names(std::string_view prefix) {
  std::vector<std::string> names;
  const std::string directory{shm_directory};
  DIR* stream = ::opendir(directory.c_str());
  if (stream == nullptr) return names;
  while (const dirent* entry = ::readdir(stream)) {
    const std::string_view file{entry->d_name};
    if (file.starts_with(prefix)) names.emplace_back(file.substr(prefix.size()));
  }
  ::closedir(stream);
  std::sort(names.begin(), names.end());
  return names;
}

Result<bool> unlink_shm_file_if_same(std::string_view name, int fd, const std::string& object) {
  const std::string path = shm_path(name);
  struct stat ours {};
  struct stat named {};
  if (::fstat(fd, &ours) != 0 || ::lstat(path.c_str(), &named) != 0) {
    return std::unexpected(system_error(errno, object, "cannot remove"));
  }
  if (ours.st_dev != named.st_dev || ours.st_ino != named.st_ino) return false;
  if (::unlink(path.c_str()) != 0) return std::unexpected(system_error(errno, object, "cannot remove"));
  return true;
}

Result<FileStatus> file_status(int fd, const std::string& object) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) return std::unexpected(system_error(errno, object, "cannot stat"));
  return status_of(st);
}

bool record_locked(int fd) noexcept {
  struct flock lock {};
  lock.l_type = F_WRLCK;  // conflicts with every lock, read or write
  lock.l_whence = SEEK_SET;
  lock.l_start = 0;
  lock.l_len = 0;  // to the end of the file, however long it grows
  return ::fcntl(fd, F_OFD_GETLK, &lock) == 0 && lock.l_type != F_UNLCK;
}

bool change_owner(int fd, uid_t uid, gid_t gid) noexcept { return ::fchown(fd, uid, gid) == 0; }

Result<void> reserve_size(int fd, std::size_t current_size, std::size_t size, const std::string& object) {
  if (size > static_cast<std::size_t>(std::numeric_limits<off_t>::max())) {
    return std::unexpected(Error{Errc::too_large, object, "size " + std::to_string(size) + " is beyond the file size limit"});
  }
  if (size >= current_size) {
    // posix_fallocate returns the error rather than setting errno. On tmpfs a
    // failure leaves the file as it was; pages already reserved cost nothing.
    const int err = ::posix_fallocate(fd, 0, static_cast<off_t>(size));
    if (err != 0) {
      return std::unexpected(system_error(err, object, "cannot reserve " + std::to_string(size) + " bytes"));
    }
  } else {
    if (::ftruncate(fd, static_cast<off_t>(size)) != 0) {
      return std::unexpected(system_error(errno, object, "cannot shrink to " + std::to_string(size) + " bytes"));
    }
  }
  return {};
}


Result<void> set_sparse_size(int fd, std::size_t size, const std::string& object) {
  if (size > static_cast<std::size_t>(std::numeric_limits<off_t>::max())) {
    return std::unexpected(Error{Errc::too_large, object, "size " + std::to_string(size) + " is beyond the file size limit"});
  }
  if (::ftruncate(fd, static_cast<off_t>(size)) != 0) {
    return std::unexpected(system_error(errno, object, "cannot size to " + std::to_string(size) + " bytes"));
  }
  return {};
}

Result<void> reserve_range(int fd, std::size_t offset, std::size_t length, const std::string& object) {
  // FALLOC_FL_KEEP_SIZE: reserving never changes the (sparse) size.
  if (::fallocate(fd, FALLOC_FL_KEEP_SIZE, static_cast<off_t>(offset), static_cast<off_t>(length)) != 0) {
    return std::unexpected(system_error(errno, object, "cannot reserve " + std::to_string(length) + " more bytes"));
  }
  return {};
}

bool release_range(int fd, std::size_t offset, std::size_t length) noexcept {
  return ::fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(offset), static_cast<off_t>(length)) == 0;
}

std::size_t shm_capacity() noexcept {
  struct statvfs fs {};
  const std::string dir{shm_directory};
  if (::statvfs(dir.c_str(), &fs) != 0) return 0;
  return static_cast<std::size_t>(fs.f_blocks) * fs.f_frsize;
}

}  // namespace shmbox::platform
