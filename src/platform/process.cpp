#include "platform/process.hpp"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
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

enum class StatRead { ok, no_such_process, unreadable };

// Reads /proc/<pid>/stat. "No such process" only when the kernel says so (ENOENT,
// ESRCH): any other failure (out of descriptors, a signal) must not pass a live
// process off as dead.
StatRead read_stat(pid_t pid, StatFields& fields) noexcept {
  const std::string path = "/proc/" + std::to_string(pid) + "/stat";
  UniqueFd fd;
  for (;;) {
    fd.reset(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (fd || errno != EINTR) break;
  }
  if (!fd) return errno == ENOENT || errno == ESRCH ? StatRead::no_such_process : StatRead::unreadable;
  std::array<char, 1024> buffer{};
  ssize_t got = 0;
  do {
    got = ::read(fd.get(), buffer.data(), buffer.size() - 1);
  } while (got < 0 && errno == EINTR);
  if (got < 0) return errno == ESRCH ? StatRead::no_such_process : StatRead::unreadable;
  if (got == 0) return StatRead::no_such_process;  // the process went while we read
  std::string_view stat{buffer.data(), static_cast<std::size_t>(got)};
  // Field 2 (comm) may hold spaces and parentheses: the fields after it follow the last ')'.
  const auto close = stat.rfind(')');
  if (close == std::string_view::npos || close + 2 >= stat.size()) return StatRead::unreadable;
  stat.remove_prefix(close + 2);  // now at field 3, the state
  const char state = stat.front();
  for (int field = 3; field < 22; ++field) {
    const auto space = stat.find(' ');
    if (space == std::string_view::npos) return StatRead::unreadable;
    stat.remove_prefix(space + 1);
  }
  std::uint64_t start = 0;
  if (std::from_chars(stat.data(), stat.data() + stat.size(), start).ec != std::errc{}) return StatRead::unreadable;
  fields = StatFields{state, start};
  return StatRead::ok;
}

}  // namespace

std::optional<std::uint64_t> process_start_time(pid_t pid) noexcept {
  StatFields fields{};
  if (read_stat(pid, fields) != StatRead::ok) return std::nullopt;
  return fields.start_time;
}

namespace {

ProcessIdentity read_current_process() noexcept {
  const pid_t pid = ::getpid();
  // Our own stat is always there; retry a transient failure rather than record a start
  // time of 0, which would make us look dead to everyone.
  for (int attempt = 0; attempt < 100; ++attempt) {
    if (const auto start = process_start_time(pid)) return {pid, *start};
  }
  return {pid, 0};
}

}  // namespace

// Read once per process (a fork's child reads its own): a read of /proc costs more than
// passing a message, and calls that stamp what they send with their process make it often.
ProcessIdentity current_process() noexcept {
  static std::atomic<std::uint64_t> cached_generation{~std::uint64_t{0}};
  static std::atomic<pid_t> cached_pid{0};
  static std::atomic<std::uint64_t> cached_start{0};
  const std::uint64_t generation = fork_generation();
  if (cached_generation.load(std::memory_order_acquire) == generation) {
    return {cached_pid.load(std::memory_order_relaxed), cached_start.load(std::memory_order_relaxed)};
  }
  const ProcessIdentity identity = read_current_process();
  if (identity.start_time != 0) {
    // Threads that race here store the same values.
    cached_pid.store(identity.pid, std::memory_order_relaxed);
    cached_start.store(identity.start_time, std::memory_order_relaxed);
    cached_generation.store(generation, std::memory_order_release);
  }
  return identity;
}

std::uint64_t fork_generation() noexcept {
  static std::atomic<std::uint64_t> generation{0};
  // pthread_atfork cannot fail but for memory; then children are not told apart, as before.
  [[maybe_unused]] static const int registered =
      ::pthread_atfork(nullptr, nullptr, [] { generation.fetch_add(1, std::memory_order_relaxed); });
  return generation.load(std::memory_order_relaxed);
}

Liveness liveness(std::uint64_t packed) noexcept {
  const ProcessIdentity identity = ProcessIdentity::unpack(packed);
  if (identity.pid <= 0) return Liveness::dead;
  StatFields fields{};
  switch (read_stat(identity.pid, fields)) {
    case StatRead::no_such_process: return Liveness::dead;
    case StatRead::unreadable: return Liveness::alive;  // cannot tell: never rob the living
    case StatRead::ok: break;
  }
  // A zombie has finished running: whatever it held, it will never release.
  if (fields.state == 'Z' || fields.state == 'X') return Liveness::dead;
  return (fields.start_time & 0xffffffffu) == identity.start_time ? Liveness::alive : Liveness::dead;
}

bool stopped(std::uint64_t packed) noexcept {
  const ProcessIdentity identity = ProcessIdentity::unpack(packed);
  StatFields fields{};
  if (identity.pid <= 0 || read_stat(identity.pid, fields) != StatRead::ok) return false;
  return (fields.state == 'T' || fields.state == 't') && (fields.start_time & 0xffffffffu) == identity.start_time;
}

namespace {

// The first line of a small /proc file, or "" if it cannot be read.
std::string read_proc_line(const std::string& path) {
  const UniqueFd fd{::open(path.c_str(), O_RDONLY | O_CLOEXEC)};
  if (!fd) return {};
  std::array<char, 64> buffer{};
  const ssize_t got = ::read(fd.get(), buffer.data(), buffer.size());
  if (got <= 0) return {};
  std::string line{buffer.data(), static_cast<std::size_t>(got)};
  line.resize(std::min(line.find('\n'), line.size()));
  return line;
}

}  // namespace

pid_t max_pid() {
  constexpr pid_t limit = (1 << 22) - 1;  // PID_MAX_LIMIT - 1 on 64-bit kernels
  const std::string line = read_proc_line("/proc/sys/kernel/pid_max");
  long pid_max = 0;
  if (std::from_chars(line.data(), line.data() + line.size(), pid_max).ec != std::errc{} || pid_max < 2 ||
      pid_max > limit + 1) {
    return limit;
  }
  return static_cast<pid_t>(pid_max - 1);
}

std::string process_name(std::uint64_t packed) {
  if (liveness(packed) == Liveness::dead) return {};
  return read_proc_line("/proc/" + std::to_string(ProcessIdentity::unpack(packed).pid) + "/comm");
}

std::string boot_id() {
  static const std::string id = read_proc_line("/proc/sys/kernel/random/boot_id");
  return id;
}

ProcessWatch::ProcessWatch(std::uint64_t packed) noexcept : packed_(packed) {
  const pid_t pid = ProcessIdentity::unpack(packed).pid;
  if (pid <= 0) {
    exited_ = true;
    return;
  }
  const long fd = ::syscall(SYS_pidfd_open, pid, 0);
  if (fd < 0) {
    exited_ = errno == ESRCH;
    return;
  }
  pidfd_.reset(static_cast<int>(fd));
  // Opened after a check of the start time could be a recycled pid's: check after.
  exited_ = liveness(packed) == Liveness::dead;
}

bool ProcessWatch::exited() noexcept {
  if (exited_) return true;
  if (pidfd_) {
    pollfd poller{.fd = pidfd_.get(), .events = POLLIN, .revents = 0};
    exited_ = ::poll(&poller, 1, 0) > 0;  // a pidfd is readable once its process has exited
  } else {
    exited_ = liveness(packed_) == Liveness::dead;
  }
  return exited_;
}

std::optional<std::string> implausible_process(std::uint64_t packed) {
  const ProcessIdentity identity = ProcessIdentity::unpack(packed);
  if (const pid_t max = max_pid(); identity.pid <= 0 || identity.pid > max) {
    return "pid " + std::to_string(identity.pid) + " is not a process ID (1 to " + std::to_string(max) + ")";
  }
  if (identity.start_time == 0) return "process " + std::to_string(identity.pid) + " has no start time";
  return std::nullopt;
}

}  // namespace shmbox::platform
