// Tasks run by a command: once per task, or as a coprocess that answers one record per
// record (--persistent).
#include "command_tasks.hpp"

#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <memory>
#include <optional>
#include <stdexcept>
#include <utility>

#include "cli_support.hpp"

extern char** environ;

namespace shmbox::cli {
namespace {

// A pipe's two ends, closed when it goes.
struct PipeEnds {
  int read = -1;
  int write = -1;
  PipeEnds() {
    int ends[2];
    if (::pipe2(ends, O_CLOEXEC) != 0) throw std::runtime_error(std::string{"cannot make a pipe: "} + std::strerror(errno));
    read = ends[0];
    write = ends[1];
  }
  PipeEnds(const PipeEnds&) = delete;
  PipeEnds& operator=(const PipeEnds&) = delete;
  ~PipeEnds() {
    close_read();
    close_write();
  }
  void close_read() {
    if (read >= 0) ::close(std::exchange(read, -1));
  }
  void close_write() {
    if (write >= 0) ::close(std::exchange(write, -1));
  }
};

// COMMAND started with its standard input and output on pipes, SIGPIPE as a shell would
// leave it (this process ignores it); standard error is ours.
pid_t spawn_with_pipes(const std::vector<std::string>& command, PipeEnds& input, PipeEnds& output) {
  std::vector<char*> argv = argv_of(command);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, input.read, STDIN_FILENO);
  posix_spawn_file_actions_adddup2(&actions, output.write, STDOUT_FILENO);
  posix_spawnattr_t attributes;
  posix_spawnattr_init(&attributes);
  sigset_t defaults;
  sigemptyset(&defaults);
  sigaddset(&defaults, SIGPIPE);
  posix_spawnattr_setsigdefault(&attributes, &defaults);
  posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETSIGDEF);
  pid_t child = 0;
  const int error = ::posix_spawnp(&child, argv[0], &actions, &attributes, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attributes);
  if (error != 0) throw std::runtime_error("cannot run '" + command.front() + "': " + std::strerror(error));
  input.close_read();
  output.close_write();
  return child;
}

std::string how_it_ended(int status) {
  if (WIFSIGNALED(status)) return "was killed by signal " + std::to_string(WTERMSIG(status));
  return "exited with status " + std::to_string(WEXITSTATUS(status));
}

int wait_for(pid_t child) {
  int status = 0;
  while (::waitpid(child, &status, 0) < 0 && errno == EINTR) {
  }
  return status;
}

// A task as it was in the input: its bytes and the delimiter that ended them.
std::vector<std::byte> with_delimiter(std::span<const std::byte> task, char delimiter) {
  std::vector<std::byte> record{task.begin(), task.end()};
  record.push_back(static_cast<std::byte>(delimiter));
  return record;
}

// Feeds `task` to COMMAND's standard input while reading its output (either may fill a
// pipe first), until the output ends; more than max_size bytes of it fail the attempt.
std::vector<std::byte> run_once(const std::vector<std::string>& command, std::span<const std::byte> task,
                                std::size_t max_size) {
  PipeEnds input;
  PipeEnds output;
  const pid_t child = spawn_with_pipes(command, input, output);
  std::vector<std::byte> result;
  std::optional<std::string> failure;
  std::size_t fed = 0;
  if (task.empty()) input.close_write();
  while (output.read >= 0) {
    pollfd watch[2] = {{output.read, POLLIN, 0}, {input.write, POLLOUT, 0}};
    if (::poll(watch, input.write >= 0 ? 2 : 1, -1) < 0) {
      if (errno == EINTR) continue;
      failure = std::string{"poll failed: "} + std::strerror(errno);
      break;
    }
    if (input.write >= 0 && watch[1].revents != 0) {
      const ssize_t written = ::write(input.write, task.data() + fed, task.size() - fed);
      // A command that stops reading early is its own business: its output still counts.
      if (written < 0 && errno != EINTR && errno != EAGAIN) input.close_write();
      if (written > 0 && (fed += static_cast<std::size_t>(written)) == task.size()) input.close_write();
    }
    if (watch[0].revents != 0) {
      std::byte chunk[65536];
      const ssize_t got = ::read(output.read, chunk, sizeof chunk);
      if (got < 0 && errno == EINTR) continue;
      if (got <= 0) break;
      if (result.size() + static_cast<std::size_t>(got) > max_size) {
        failure = "wrote more than " + std::to_string(max_size) + " bytes of output";
        break;
      }
      result.insert(result.end(), chunk, chunk + got);
    }
  }
  output.close_read();
  input.close_write();
  if (failure) ::kill(child, SIGKILL);
  const int status = wait_for(child);
  if (failure) throw std::runtime_error(*failure);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) throw std::runtime_error(command.front() + " " + how_it_ended(status));
  return result;
}

// --persistent: one COMMAND per worker, fed one record and answering one record (a
// coprocess); started again after it ends, and that task's attempt fails.
class Coprocess {
 public:
  Coprocess(std::vector<std::string> command, char delimiter, std::size_t max_size)
      : command_(std::move(command)), delimiter_(delimiter), max_size_(max_size) {}

  std::vector<std::byte> ask(std::span<const std::byte> task) {
    if (child_ < 0) start();
    const std::vector<std::byte> record = with_delimiter(task, delimiter_);
    for (std::size_t fed = 0; fed < record.size();) {
      const ssize_t written = ::write(input_->write, record.data() + fed, record.size() - fed);
      if (written < 0 && errno == EINTR) continue;
      if (written < 0) ended("stopped reading its input");
      fed += static_cast<std::size_t>(written);
    }
    std::vector<std::byte> answer;
    for (;;) {
      for (; scanned_ < buffered_.size(); ++scanned_) {
        if (buffered_[scanned_] == static_cast<std::byte>(delimiter_)) {
          answer.assign(buffered_.begin(), buffered_.begin() + static_cast<std::ptrdiff_t>(scanned_ + 1));
          buffered_.erase(buffered_.begin(), buffered_.begin() + static_cast<std::ptrdiff_t>(scanned_ + 1));
          scanned_ = 0;
          return answer;
        }
      }
      if (buffered_.size() > max_size_) ended("answered with more than " + std::to_string(max_size_) + " bytes");
      std::byte chunk[65536];
      const ssize_t got = ::read(output_->read, chunk, sizeof chunk);
      if (got < 0 && errno == EINTR) continue;
      if (got <= 0) ended("ended without answering");
      buffered_.insert(buffered_.end(), chunk, chunk + got);
    }
  }

 private:
  void start() {
    input_ = std::make_unique<PipeEnds>();
    output_ = std::make_unique<PipeEnds>();
    child_ = spawn_with_pipes(command_, *input_, *output_);
  }
  [[noreturn]] void ended(const std::string& what) {
    input_.reset();
    output_.reset();
    ::kill(child_, SIGKILL);
    const int status = wait_for(std::exchange(child_, -1));
    buffered_.clear();
    scanned_ = 0;
    throw std::runtime_error(command_.front() + " " + what + " (it " + how_it_ended(status) + ")");
  }

  std::vector<std::string> command_;
  char delimiter_;
  std::size_t max_size_;
  pid_t child_ = -1;
  std::unique_ptr<PipeEnds> input_;
  std::unique_ptr<PipeEnds> output_;
  std::vector<std::byte> buffered_;
  std::size_t scanned_ = 0;
};

}  // namespace

TaskFunction command_task(const std::vector<std::string>& command, bool persistent, std::optional<char> delimiter,
                          std::size_t max_size) {
  // A command that exits before reading its whole task closes the pipe under our write:
  // that is EPIPE to handle, not a SIGPIPE that kills the worker.
  std::signal(SIGPIPE, SIG_IGN);
  if (persistent) {
    // One per worker process: each fork gets its own copy, started on its first task.
    auto coprocess = std::make_shared<Coprocess>(command, delimiter.value_or('\n'), max_size);
    return [coprocess](std::span<const std::byte> task) { return coprocess->ask(task); };
  }
  return [command, max_size, delimiter](std::span<const std::byte> task) {
    if (!delimiter) return run_once(command, {task.begin(), task.end()}, max_size);
    return run_once(command, with_delimiter(task, *delimiter), max_size);
  };
}

}  // namespace shmbox::cli
