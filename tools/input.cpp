#include "input.hpp"

#include <fcntl.h>
#include <fmt/core.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "cli_support.hpp"

namespace shmbox::cli {
namespace {

constexpr std::size_t read_chunk = 64 * 1024;

Error read_error(const std::string& object, int error) {
  const Errc errc = error == ENOENT ? Errc::not_found : error == EACCES ? Errc::permission_denied : Errc::system;
  return Error{errc, object, std::string{"cannot read: "} + std::strerror(error)};
}

Error too_long(const std::string& object, std::size_t max_size) {
  return Error{Errc::too_large, object, "holds a message longer than the maximum of " + std::to_string(max_size) + " bytes"};
}

}  // namespace

RecordReader::RecordReader(int fd, std::string object, char delimiter, std::size_t max_size)
    : fd_(fd), object_(std::move(object)), delimiter_(delimiter), max_size_(max_size),
      buffer_(max_size + 1 + read_chunk) {}

Result<bool> RecordReader::fill() {
  // Keep the unfinished record; room for a read after it always remains, because a
  // record is refused once it holds more than max_size bytes.
  std::copy(buffer_.begin() + static_cast<std::ptrdiff_t>(begin_), buffer_.begin() + static_cast<std::ptrdiff_t>(end_),
            buffer_.begin());
  end_ -= begin_;
  begin_ = 0;
  for (;;) {
    const ssize_t got = ::read(fd_, buffer_.data() + end_, buffer_.size() - end_);
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) return std::unexpected(read_error(object_, errno));
    end_ += static_cast<std::size_t>(got);
    return got > 0;
  }
}

Result<std::optional<std::span<const std::byte>>> RecordReader::next() {
  for (std::size_t scanned = begin_;;) {
    const auto* first = buffer_.data() + scanned;
    const auto* last = buffer_.data() + end_;
    const auto* found = std::find(first, last, static_cast<std::byte>(delimiter_));
    if (found != last || (at_end_ && begin_ < end_)) {
      const std::span record{buffer_.data() + begin_, static_cast<std::size_t>(found - (buffer_.data() + begin_))};
      if (record.size() > max_size_) return std::unexpected(too_long(object_, max_size_));
      begin_ += record.size() + (found != last ? 1 : 0);
      return record;
    }
    if (at_end_) return std::nullopt;
    if (end_ - begin_ > max_size_) return std::unexpected(too_long(object_, max_size_));
    scanned = end_ - begin_;  // where the search goes on after the move
    auto more = fill();
    if (!more) return std::unexpected(more.error());
    at_end_ = !*more;
  }
}

Result<std::vector<std::byte>> read_at_most(int fd, const std::string& object, std::size_t max_size) {
  std::vector<std::byte> data(std::min(max_size + 1, read_chunk));
  std::size_t size = 0;
  for (;;) {
    if (size == data.size()) data.resize(std::min(max_size + 1, 2 * data.size()));
    const ssize_t got = ::read(fd, data.data() + size, data.size() - size);
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) return std::unexpected(read_error(object, errno));
    size += static_cast<std::size_t>(got);
    if (size > max_size) return std::unexpected(too_long(object, max_size));
    if (got == 0) {
      data.resize(size);
      return data;
    }
  }
}

Result<std::vector<std::byte>> read_whole_file(const std::string& path, std::size_t max_size) {
  const std::string object = "file '" + path + "'";
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::unexpected(read_error(object, errno));
  auto data = read_at_most(fd, object, max_size);
  ::close(fd);
  return data;
}

int fail_input(const Error& error, const std::string& object, const char* what, std::size_t max_size,
               const char* nothing_done) {
  if (error == Errc::system) return fail_io(error);
  if (error != Errc::too_large) return fail(error);
  return fail(Error{Errc::too_large, object,
                    fmt::format("{} from {} is over its maximum of {} bytes; {}", what, error.object(), max_size,
                                nothing_done)});
}

}  // namespace shmbox::cli
