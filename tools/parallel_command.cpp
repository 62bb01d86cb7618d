// shmbox parallel: each record of standard input is a task for COMMAND, run by a pool of
// worker processes; COMMAND's output for each task is printed in input order (or as the
// tasks finish). A worker killed mid-task loses nothing: the task runs again elsewhere.
#include <fcntl.h>
#include <fmt/core.h>
#include <poll.h>
#include <spawn.h>
#include <sys/wait.h>
#include <sysexits.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "cli_support.hpp"
#include "commands.hpp"
#include "input.hpp"
#include "output.hpp"
#include "shmbox/pool.hpp"

extern char** environ;

namespace shmbox::cli {
namespace {

struct ParallelArgs {
  std::vector<std::string> command;
  std::string workers;
  std::string attempts = "3";
  std::string max_size = "1MiB";
  bool unordered = false;
  bool null = false;
  bool persistent = false;
};

// Largest task or output a task may have.
constexpr std::uint64_t max_record_size = std::uint64_t{64} << 20;

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

// done/submitted, rate, ETA once the input has ended, failures: on stderr, when a terminal.
class ProgressLine {
 public:
  ProgressLine() : shown_(::isatty(STDERR_FILENO) == 1), start_(std::chrono::steady_clock::now()) {}
  void show(const PoolProgress& progress, bool input_ended) {
    if (!shown_) return;
    const auto now = std::chrono::steady_clock::now();
    if (progress.done != progress.submitted && now - last_ < std::chrono::milliseconds{100}) return;
    last_ = now;
    const double seconds = std::chrono::duration<double>(now - start_).count();
    const double rate = seconds > 0 ? static_cast<double>(progress.done) / seconds : 0;
    std::string eta = "?";
    if (input_ended && rate > 0) eta = fmt::format("{:.0f}s", static_cast<double>(progress.submitted - progress.done) / rate);
    fmt::print(stderr, "\r\033[K{}/{}{} done, {:.0f}/s, ETA {}, {} failed", progress.done, progress.submitted,
               input_ended ? "" : "+", rate, eta, progress.failed);
    std::fflush(stderr);
  }
  void clear() {
    if (shown_) fmt::print(stderr, "\r\033[K");
  }

 private:
  bool shown_;
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point last_{};
};

int run_parallel(const ParallelArgs& args) {
  if (args.command.empty()) {
    return fail(Error{Errc::invalid_argument, "usage", "parallel needs a command to run: parallel -- COMMAND"});
  }
  PoolOptions options;
  if (!args.workers.empty()) {
    auto workers = parse_count("--workers", args.workers, 1, 1024);
    if (!workers) return fail(workers.error());
    options.workers = static_cast<std::uint32_t>(*workers);
  }
  auto attempts = parse_count("--attempts", args.attempts, 1, 100);
  if (!attempts) return fail(attempts.error());
  options.attempts = static_cast<std::uint32_t>(*attempts);
  auto max_size = parse_size("--max-size", args.max_size, max_record_size);
  if (!max_size) return fail(max_size.error());
  options.max_task_size = *max_size;
  options.max_result_size = *max_size;
  const char delimiter = args.null ? '\0' : '\n';
  auto output = Output::standard_output();

  TaskFunction function;
  if (args.persistent) {
    // One per worker process: each fork gets its own copy, started on its first task.
    auto coprocess = std::make_shared<Coprocess>(args.command, delimiter, *max_size);
    function = [coprocess](std::span<const std::byte> task) { return coprocess->ask(task); };
  } else {
    function = [command = args.command, limit = *max_size, delimiter](std::span<const std::byte> task) {
      return run_once(command, with_delimiter(task, delimiter), limit);
    };
  }
  auto pool = Pool::fork(std::move(function), options);
  if (!pool) return fail(pool.error());

  const std::string record_kind = args.null ? "record" : "line";
  ProgressLine progress;
  std::map<std::uint64_t, TaskOutcome> waiting;  // finished before their turn
  std::uint64_t next_to_print = 0;
  std::uint64_t written = 0;
  std::uint64_t failed = 0;
  bool input_ended = false;
  // Prints (or, failed, reports) one outcome; false once the output is gone.
  std::optional<Error> output_error;
  const auto print = [&](const TaskOutcome& outcome) {
    if (outcome.ok) {
      if (auto wrote = output.write(outcome.result); !wrote) {
        output_error = wrote.error();
        return;
      }
      ++written;
    } else {
      ++failed;
      progress.clear();
      fmt::print(stderr, "shmbox: task {} ({} {} of the input): failed after {} attempt{}: {}\n", outcome.task,
                 record_kind, outcome.task + 1, outcome.attempts, outcome.attempts == 1 ? "" : "s", outcome.error);
    }
  };
  const auto take = [&](TaskOutcome outcome) {
    if (args.unordered) {
      print(outcome);
    } else {
      waiting.emplace(outcome.task, std::move(outcome));
      for (auto next = waiting.find(next_to_print); next != waiting.end() && !output_error;
           next = waiting.find(next_to_print)) {
        print(next->second);
        waiting.erase(next);
        ++next_to_print;
      }
    }
    progress.show(pool->progress(), input_ended);
  };
  const auto drain = [&](Deadline deadline) -> Result<bool> {
    auto outcome = pool->next_finished(deadline);
    if (!outcome) {
      if (outcome.error() == Errc::not_found || outcome.error() == Errc::would_block) return false;
      return std::unexpected(outcome.error());
    }
    take(std::move(*outcome));
    return true;
  };

  RecordReader reader{STDIN_FILENO, "standard input", delimiter, *max_size};
  std::optional<Error> input_error;
  while (!output_error) {
    auto record = reader.next();
    if (!record) {
      input_error = record.error();
      break;
    }
    if (!*record) break;
    if (auto submitted = pool->submit(**record); !submitted) return fail(submitted.error());
    for (;;) {
      auto more = drain(no_wait);
      if (!more) return fail(more.error());
      if (!*more) break;
    }
  }
  input_ended = true;
  while (!output_error) {
    auto more = drain(forever);
    if (!more) return fail(more.error());
    if (!*more) break;
  }
  progress.clear();
  const std::uint64_t submitted = pool->progress().submitted;
  if (output_error) {
    pool->cancel();
    return fail_io(Error{output_error->errc(), output_error->object(),
                         output_error->detail() + "; " + std::to_string(written) + " of " + std::to_string(submitted) +
                             " outputs written, the rest dropped"});
  }
  if (input_error) {
    return fail(Error{input_error->errc(), input_error->object(),
                      input_error->detail() + "; the " + std::to_string(submitted) + " " + record_kind +
                          (submitted == 1 ? "" : "s") + " before it ran (" + std::to_string(failed) + " failed)"});
  }
  if (failed > 0) {
    return fail(Error{Errc::task_failed, "parallel",
                      std::to_string(failed) + " of " + std::to_string(submitted) + " tasks failed"});
  }
  return EX_OK;
}

}  // namespace

void add_parallel_command(CLI::App& app, int& exit_status) {
  auto args = std::make_shared<ParallelArgs>();
  auto* cmd = app.add_subcommand(
      "parallel", "Run COMMAND once per line (or NUL record) of standard input on worker processes; print the outputs");
  cmd->add_option("command", args->command, "The command and its arguments, after --");
  cmd->add_option("--workers", args->workers, "Worker processes (default: one per CPU)");
  cmd->add_option("--attempts", args->attempts, "Tries per task before it is reported failed, 1 to 100 (default 3)");
  cmd->add_option("--max-size", args->max_size, "Largest task and output, e.g. 64KiB (default 1MiB)");
  cmd->add_flag("--unordered", args->unordered, "Print outputs as tasks finish, not in input order");
  cmd->add_flag("--null", args->null, "Tasks end with NUL instead of newline (and so do --persistent answers)");
  cmd->add_flag("--persistent", args->persistent,
                "Start COMMAND once per worker; it answers each line of input with one line of output");
  cmd->footer(
      "Each task runs COMMAND with the task on its standard input; its standard output is the task's\n"
      "output. A task fails when COMMAND exits non-zero or is killed; after --attempts failures it is\n"
      "listed on stderr and the others go on; the exit status is then 65. Workers are child processes\n"
      "of this one; a worker killed mid-task loses nothing.");
  cmd->callback([args, &exit_status] { exit_status = run_parallel(*args); });
}

}  // namespace shmbox::cli
