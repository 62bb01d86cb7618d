#include "output.hpp"

#include <openssl/evp.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>

namespace shmbox::cli {
namespace {

Error write_error(int error) {
  return Error{Errc::system, "stdout", error == EPIPE ? "closed by its reader" : std::strerror(error)};
}

}  // namespace

Output Output::standard_output() {
  std::signal(SIGPIPE, SIG_IGN);
  struct stat status {};
  const bool pipe = ::fstat(STDOUT_FILENO, &status) == 0 && S_ISFIFO(status.st_mode);
  return Output{STDOUT_FILENO, pipe};
}

Result<void> Output::write(std::string_view text) { return write(std::as_bytes(std::span{text})); }

Result<void> Output::write(std::span<const std::byte> bytes) {
  while (!bytes.empty()) {
    const ssize_t written = ::write(fd_, bytes.data(), bytes.size());
    if (written < 0) {
      if (errno == EINTR) continue;
      return std::unexpected(write_error(errno));
    }
    bytes = bytes.subspan(static_cast<std::size_t>(written));
  }
  return pipe_ ? wait_until_read() : Result<void>{};
}

// A pipe gives no event for "empty": poll for the reader's departure (POLLERR on the
// write end) with a short timeout, and look at what is left unread (FIONREAD) between.
Result<void> Output::wait_until_read() {
  for (int naps = 0;; ++naps) {
    int unread = 0;
    if (::ioctl(fd_, FIONREAD, &unread) != 0) return {};  // cannot tell: write(2) succeeded
    if (unread == 0) return {};
    pollfd watch{fd_, 0, 0};
    if (::poll(&watch, 1, naps < 10 ? 0 : 1) > 0 && (watch.revents & (POLLERR | POLLHUP)) != 0) {
      // The reader may have read it all and then gone: the pipe keeps what is unread.
      if (::ioctl(fd_, FIONREAD, &unread) == 0 && unread == 0) return {};
      return std::unexpected(write_error(EPIPE));
    }
  }
}

std::string base64(std::span<const std::byte> bytes) {
  std::string encoded(4 * ((bytes.size() + 2) / 3), '\0');
  const int length = ::EVP_EncodeBlock(reinterpret_cast<unsigned char*>(encoded.data()),
                                       reinterpret_cast<const unsigned char*>(bytes.data()), static_cast<int>(bytes.size()));
  encoded.resize(static_cast<std::size_t>(length));
  return encoded;
}

}  // namespace shmbox::cli
