#include "process.hpp"

#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <sched.h>
#include <sys/mount.h>
#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <filesystem>
#include <sys/stat.h>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <utility>

namespace shmbox::test {
namespace {

[[noreturn]] void fail(const char* what) {
  throw std::runtime_error(std::string{what} + ": " + std::strerror(errno));
}

// glibc 2.36's <sys/pidfd.h> lacks extern "C", so call the kernel directly.
int pidfd_open(pid_t pid) { return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)); }
int pidfd_send_signal(int pidfd, int signal) {
  return static_cast<int>(::syscall(SYS_pidfd_send_signal, pidfd, signal, nullptr, 0));
}

ExitStatus decode(int status) {
  if (WIFSIGNALED(status)) return {ExitStatus::Kind::signaled, 0, WTERMSIG(status)};
  return {ExitStatus::Kind::exited, WEXITSTATUS(status), 0};
}

// poll() with a deadline, resumed across EINTR.
bool wait_readable(int fd, std::chrono::steady_clock::time_point deadline) {
  for (;;) {
    // Look at least once, however late we are: on a loaded machine the deadline may
    // have passed before the first look (try_wait's wait(0ms) relies on it).
    const auto left = std::max(std::chrono::milliseconds{0}, std::chrono::ceil<std::chrono::milliseconds>(
                                                                 deadline - std::chrono::steady_clock::now()));
    pollfd pfd{fd, POLLIN, 0};
    const int ready = ::poll(&pfd, 1, static_cast<int>(left.count()));
    if (ready > 0) return true;
    if (ready == 0) return false;
    if (errno != EINTR) fail("poll");
  }
}

}  // namespace

std::string ExitStatus::describe() const {
  switch (kind) {
    case Kind::exited: return "exited with " + std::to_string(code);
    case Kind::signaled: return std::string{"killed by signal "} + sigabbrev_np(signal);
    case Kind::timed_out: return "timed out (killed)";
  }
  return "?";
}

ChildProcess ChildProcess::spawn(std::function<int()> body) {
  std::fflush(nullptr);  // the child must not flush the parent's buffered output again
  const pid_t pid = ::fork();
  if (pid < 0) fail("fork");
  if (pid == 0) {
    int code = 125;
    try {
      code = body();
    } catch (...) {
    }
    std::fflush(nullptr);
    ::_exit(code);
  }
  const int pidfd = pidfd_open(pid);
  if (pidfd < 0) {
    ::kill(pid, SIGKILL);
    fail("pidfd_open");
  }
  return ChildProcess{pid, pidfd};
}

ChildProcess::ChildProcess(ChildProcess&& other) noexcept
    : pid_(std::exchange(other.pid_, -1)), pidfd_(std::exchange(other.pidfd_, -1)), status_(other.status_) {}

ChildProcess& ChildProcess::operator=(ChildProcess&& other) noexcept {
  if (this != &other) {
    reset();
    pid_ = std::exchange(other.pid_, -1);
    pidfd_ = std::exchange(other.pidfd_, -1);
    status_ = other.status_;
  }
  return *this;
}

ChildProcess::~ChildProcess() { reset(); }

void ChildProcess::reset() noexcept {
  if (running()) {
    kill(SIGKILL);
    int status = 0;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
  }
  if (pidfd_ >= 0) ::close(pidfd_);
  pid_ = -1;
  pidfd_ = -1;
  status_.reset();
}

void ChildProcess::kill(int signal) {
  if (running()) pidfd_send_signal(pidfd_, signal);
}

ExitStatus ChildProcess::wait(std::chrono::milliseconds timeout) {
  if (status_) return *status_;
  const bool finished = wait_readable(pidfd_, std::chrono::steady_clock::now() + timeout);
  if (!finished) kill(SIGKILL);
  int status = 0;
  while (::waitpid(pid_, &status, 0) < 0) {
    if (errno != EINTR) fail("waitpid");
  }
  status_ = finished ? decode(status) : ExitStatus{ExitStatus::Kind::timed_out, 0, SIGKILL};
  return *status_;
}

std::optional<ExitStatus> ChildProcess::try_wait() {
  if (status_) return status_;
  pollfd pfd{pidfd_, POLLIN, 0};
  if (::poll(&pfd, 1, 0) <= 0) return std::nullopt;
  return wait(0ms);  // it has ended: reaps it
}

Pipe::Pipe() {
  std::array<int, 2> fds{};
  if (::pipe2(fds.data(), O_CLOEXEC) != 0) fail("pipe2");
  read_fd_ = fds[0];
  write_fd_ = fds[1];
}

Pipe::~Pipe() {
  ::close(read_fd_);
  ::close(write_fd_);
}

void Pipe::send(const std::string& line) {
  const std::string data = line + "\n";
  if (::write(write_fd_, data.data(), data.size()) != static_cast<ssize_t>(data.size())) fail("write");
}

std::optional<std::string> Pipe::receive(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (const auto end = buffer_.find('\n'); end != std::string::npos) {
      std::string line = buffer_.substr(0, end);
      buffer_.erase(0, end + 1);
      return line;
    }
    if (!wait_readable(read_fd_, deadline)) return std::nullopt;
    std::array<char, 512> chunk{};
    const ssize_t got = ::read(read_fd_, chunk.data(), chunk.size());
    if (got <= 0) return std::nullopt;
    buffer_.append(chunk.data(), static_cast<std::size_t>(got));
  }
}

CommandResult run_command(const std::vector<std::string>& args, const std::string& input,
                          std::chrono::milliseconds timeout) {
  std::array<int, 2> in{}, out{}, err{};
  if (::pipe2(in.data(), O_CLOEXEC) != 0 || ::pipe2(out.data(), O_CLOEXEC) != 0 ||
      ::pipe2(err.data(), O_CLOEXEC) != 0) {
    fail("pipe2");
  }
  ChildProcess child = ChildProcess::spawn([&]() -> int {
    ::dup2(in[0], STDIN_FILENO);
    ::dup2(out[1], STDOUT_FILENO);
    ::dup2(err[1], STDERR_FILENO);
    std::vector<char*> argv;
    for (const auto& arg : args) argv.push_back(const_cast<char*>(arg.c_str()));
    argv.push_back(nullptr);
    ::execv(argv[0], argv.data());
    return 127;
  });
  ::close(in[0]);
  ::close(out[1]);
  ::close(err[1]);
  // Small inputs only: the child may not read stdin at all, so do not block on it.
  ::fcntl(in[1], F_SETFL, O_NONBLOCK);
  if (!input.empty()) (void)!::write(in[1], input.data(), input.size());
  ::close(in[1]);

  CommandResult result;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::array<pollfd, 2> fds{pollfd{out[0], POLLIN, 0}, pollfd{err[0], POLLIN, 0}};
  int open_streams = 2;
  while (open_streams > 0) {
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0 || ::poll(fds.data(), fds.size(), static_cast<int>(left.count())) <= 0) break;
    for (std::size_t i = 0; i < fds.size(); ++i) {
      if (fds[i].fd < 0 || fds[i].revents == 0) continue;
      std::array<char, 4096> chunk{};
      const ssize_t got = ::read(fds[i].fd, chunk.data(), chunk.size());
      if (got <= 0) {
        ::close(fds[i].fd);
        fds[i].fd = -1;
        --open_streams;
      } else {
        (i == 0 ? result.out : result.err).append(chunk.data(), static_cast<std::size_t>(got));
      }
    }
  }
  for (const auto& fd : fds) {
    if (fd.fd >= 0) ::close(fd.fd);
  }
  const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
  result.status = child.wait(std::max(left, std::chrono::milliseconds{0}));
  return result;
}

TemporaryDirectory::TemporaryDirectory(unsigned mode) {
  std::string pattern = "/tmp/shmbox-test-XXXXXX";
  if (::mkdtemp(pattern.data()) == nullptr) fail("mkdtemp");
  path_ = pattern;
  if (::chmod(path_.c_str(), mode) != 0) fail("chmod");
}

TemporaryDirectory::~TemporaryDirectory() {
  std::error_code ignored;
  std::filesystem::remove_all(path_, ignored);
}

bool running_as_root() { return ::geteuid() == 0; }

bool private_dev_shm(const char* size) {
  const std::string options = std::string{"size="} + size;
  return ::unshare(CLONE_NEWNS) == 0 && ::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) == 0 &&
         ::mount("tmpfs", "/dev/shm", "tmpfs", 0, options.c_str()) == 0;
}

bool drop_privileges() {
  constexpr uid_t nobody = 65534;
  return switch_user(nobody, nobody);
}

bool switch_user(uid_t uid, gid_t gid, const std::vector<gid_t>& groups) {
  if (!running_as_root()) return false;
  return ::setgroups(groups.size(), groups.data()) == 0 && ::setgid(gid) == 0 && ::setuid(uid) == 0;
}

bool drop_chown_capability() {
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  std::array<__user_cap_data_struct, _LINUX_CAPABILITY_U32S_3> data{};
  if (::syscall(SYS_capget, &header, data.data()) != 0) return false;
  data[0].effective &= ~(1u << CAP_CHOWN);
  data[0].permitted &= ~(1u << CAP_CHOWN);
  return ::syscall(SYS_capset, &header, data.data()) == 0;
}

std::string unique_name(const std::string& tag) {
  static std::atomic<int> counter{0};
  return "shmbox-test-" + std::to_string(::getpid()) + "-" + tag + "-" + std::to_string(counter++);
}

}  // namespace shmbox::test
