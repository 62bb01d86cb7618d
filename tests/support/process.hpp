// Multi-process test support: run a function or a program in a child process,
// collect its exit status within a deadline, kill it on timeout or on demand.
//
// The child of spawn() runs in a forked copy of the test binary. It must report
// through its return value (or a Pipe), never through gtest assertions, which
// would be recorded only in the child.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace shmbox::test {

using namespace std::chrono_literals;

struct ExitStatus {
  enum class Kind { exited, signaled, timed_out };
  Kind kind = Kind::exited;
  int code = 0;    // exit code, when exited
  int signal = 0;  // terminating signal, when signaled

  bool exited_with(int expected) const { return kind == Kind::exited && code == expected; }
  bool killed_by(int expected) const { return kind == Kind::signaled && signal == expected; }
  std::string describe() const;
};

class ChildProcess {
 public:
  // Forks; the child runs `body` and exits with its result (125 if it throws).
  static ChildProcess spawn(std::function<int()> body);

  ChildProcess(ChildProcess&& other) noexcept;
  ChildProcess& operator=(ChildProcess&& other) noexcept;
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;
  // Kills (SIGKILL) and reaps a child that is still running.
  ~ChildProcess();

  pid_t pid() const { return pid_; }
  // The pidfd: readable once the child has ended, immune to pid reuse.
  int pidfd() const { return pidfd_; }

  // Waits up to `timeout`; on expiry kills the child and reports timed_out.
  ExitStatus wait(std::chrono::milliseconds timeout = 30s);
  // The exit status if the child has ended, without waiting and without killing it.
  std::optional<ExitStatus> try_wait();
  // Sends `signal` now (SIGKILL by default): the way to kill a peer mid-operation.
  void kill(int signal = 9);
  bool running() const { return pid_ > 0 && !status_; }

 private:
  ChildProcess(pid_t pid, int pidfd) : pid_(pid), pidfd_(pidfd) {}
  void reset() noexcept;
  pid_t pid_ = -1;
  int pidfd_ = -1;
  std::optional<ExitStatus> status_;
};

// A one-way channel for a child to tell its parent "I got this far" (and a value).
class Pipe {
 public:
  Pipe();
  Pipe(const Pipe&) = delete;
  Pipe& operator=(const Pipe&) = delete;
  ~Pipe();
  void send(const std::string& line);  // from either side
  // The next line, or nullopt after `timeout` or end of file.
  std::optional<std::string> receive(std::chrono::milliseconds timeout = 30s);

 private:
  int read_fd_ = -1;
  int write_fd_ = -1;
  std::string buffer_;
};

struct CommandResult {
  ExitStatus status;
  std::string out;
  std::string err;
};

// Runs a program with `args` (argv[0] first), feeding it `input` on stdin.
CommandResult run_command(const std::vector<std::string>& args, const std::string& input = {},
                          std::chrono::milliseconds timeout = 30s);

// A directory removed with its contents when the object goes.
class TemporaryDirectory {
 public:
  explicit TemporaryDirectory(unsigned mode = 0700);
  TemporaryDirectory(const TemporaryDirectory&) = delete;
  TemporaryDirectory& operator=(const TemporaryDirectory&) = delete;
  ~TemporaryDirectory();
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// Gives this (child) process its own /dev/shm: a fresh tmpfs of `size` (mount's
// syntax, "8m") in a private mount namespace, so that a test can fill it. False when
// that is not allowed (not root, or no CAP_SYS_ADMIN).
bool private_dev_shm(const char* size);

// Switches this (child) process to uid/gid 65534 ("nobody"). False when not root.
bool drop_privileges();
// Switches this (child) process to `uid`, primary group `gid` and the supplementary
// `groups`. False when not root.
bool switch_user(uid_t uid, gid_t gid, const std::vector<gid_t>& groups = {});
// Drops CAP_CHOWN from this (child) process: root that may not give files away.
bool drop_chown_capability();
bool running_as_root();

// A name no other test (or test run) uses: "shmbox-test-<pid>-<tag>-<n>".
std::string unique_name(const std::string& tag);

}  // namespace shmbox::test
