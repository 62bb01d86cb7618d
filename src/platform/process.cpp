#include "platform/process.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <array>
#include <charconv>
#include <string>
#include <string_view>

#include "platform/unique_fd.hpp"

namespace shmbox::platform {
namespace {

struct StatFields {
  char state;
  std::uint64_t start_time;
};

std::optional<StatFields> read_stat(pid_t pid) noexcept {
  const std::string path = "/proc/" + std::to_string(pid) + "/stat";
  const UniqueFd fd{::open(path.c_str(), O_RDONLY | O_CLOEXEC)};
  if (!fd) return std::nullopt;
  std::array<char, 1024> buffer{};
  const ssize_t got = ::read(fd.get(), buffer.data(), buffer.size() - 1);
  if (got <= 0) return std::nullopt;
  std::string_view stat{buffer.data(), static_cast<std::size_t>(got)};
  // Field 2 (comm) may hold spaces and parentheses: the fields after it follow the last ')'.
  const auto close = stat.rfind(')');
  if (close == std::string_view::npos || close + 2 >= stat.size()) return std::nullopt;
  stat.remove_prefix(close + 2);  // now at field 3, the state
  const char state = stat.front();
  for (int field = 3; field < 22; ++field) {
    const auto space = stat.find(' ');
    if (space == std::string_view::npos) return std::nullopt;
    stat.remove_prefix(space + 1);
  }
  std::uint64_t start = 0;
  if (std::from_chars(stat.data(), stat.data() + stat.size(), start).ec != std::errc{}) return std::nullopt;
  return StatFields{state, start};
}

}  // namespace

std::optional<std::uint64_t> process_start_time(pid_t pid) noexcept {
  const auto fields = read_stat(pid);
  if (!fields) return std::nullopt;
  return fields->start_time;
}

ProcessIdentity current_process() noexcept {
  const pid_t pid = ::getpid();
  return {pid, process_start_time(pid).value_or(0)};
}

Liveness liveness(std::uint64_t packed) noexcept {
  const ProcessIdentity identity = ProcessIdentity::unpack(packed);
  if (identity.pid <= 0) return Liveness::dead;
  const auto fields = read_stat(identity.pid);
  // A zombie has finished running: whatever it held, it will never release.
  if (!fields || fields->state == 'Z' || fields->state == 'X') return Liveness::dead;
  return (fields->start_time & 0xffffffffu) == identity.start_time ? Liveness::alive : Liveness::dead;
}

}  // namespace shmbox::platform
