#include "platform/directory_watch.hpp"

#include <poll.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <array>
#include <cerrno>

#include "platform/shm.hpp"
#include "platform/system_error.hpp"

namespace shmbox::platform {

Result<DirectoryWatch> DirectoryWatch::watch_shm_directory(const std::string& object) {
  UniqueFd fd{::inotify_init1(IN_NONBLOCK | IN_CLOEXEC)};
  if (!fd) return std::unexpected(system_error(errno, object, "cannot watch /dev/shm"));
  const std::string dir{shm_directory};
  if (::inotify_add_watch(fd.get(), dir.c_str(), IN_CREATE | IN_MOVED_TO | IN_MODIFY | IN_ATTRIB) < 0) {
    return std::unexpected(system_error(errno, object, "cannot watch /dev/shm"));
  }
  return DirectoryWatch{std::move(fd)};
}

void DirectoryWatch::wait(std::chrono::milliseconds at_most) const noexcept {
  pollfd pfd{fd_.get(), POLLIN, 0};
  if (::poll(&pfd, 1, static_cast<int>(at_most.count())) > 0) {
    alignas(inotify_event) std::array<char, 4096> events{};
    while (::read(fd_.get(), events.data(), events.size()) > 0) {
    }
  }
}

}  // namespace shmbox::platform
