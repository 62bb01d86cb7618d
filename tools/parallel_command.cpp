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
#include "command_tasks.hpp"
#include "commands.hpp"
#include "input.hpp"
#include "output.hpp"
#include "shmbox/pool.hpp"

extern char** environ;

namespace shmbox::cli {
namespace {

// A NATS server takes messages of up to 1MiB unless told otherwise: a task and its report
// must fit with their headers.
std::string default_max_size(const std::string& pool) { return is_remote(pool) ? "512KiB" : "1MiB"; }

struct ParallelArgs {
  std::vector<std::string> command;
  std::string name;
  std::string workers;
  std::string attempts = "3";
  std::optional<std::string> max_size;  // default_max_size when not given
  bool unordered = false;
  bool null = false;
  bool persistent = false;
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
  PoolOptions options{.name = args.name};
  // With a name, workers may all come from elsewhere (shmbox worker NAME).
  bool own_workers = true;
  if (!args.workers.empty()) {
    auto workers = parse_count("--workers", args.workers, args.name.empty() ? 1 : 0, 1024);
    if (!workers) return fail(workers.error());
    options.workers = static_cast<std::uint32_t>(*workers);
    own_workers = *workers != 0;
  }
  if (own_workers && args.command.empty()) {
    return fail(Error{Errc::invalid_argument, "usage", "parallel needs a command to run: parallel -- COMMAND"});
  }
  if (!own_workers && !args.command.empty()) {
    return fail(Error{Errc::invalid_argument, "usage",
                      "parallel --workers 0 runs no command here: the workers that join bring theirs"});
  }
  auto attempts = parse_count("--attempts", args.attempts, 1, 100);
  if (!attempts) return fail(attempts.error());
  options.attempts = static_cast<std::uint32_t>(*attempts);
  auto max_size = parse_size("--max-size", args.max_size.value_or(default_max_size(args.name)),
                             max_record_size);
  if (!max_size) return fail(max_size.error());
  options.max_task_size = *max_size;
  options.max_result_size = *max_size;
  const char delimiter = args.null ? '\0' : '\n';
  auto output = Output::standard_output();

  auto pool = own_workers ? Pool::fork(command_task(args.command, args.persistent, delimiter, *max_size), options)
                          : Pool::create(options);
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
  cmd->add_option("--name", args->name, "Name the pool, so that `shmbox worker NAME -- COMMAND` processes can join it");
  cmd->add_option("--workers", args->workers, "Worker processes (default: one per CPU; 0 with --name: only those that join)");
  cmd->add_option("--attempts", args->attempts, "Tries per task before it is reported failed, 1 to 100 (default 3)");
  cmd->add_option("--max-size", args->max_size, "Largest task and output, e.g. 64KiB (default 1MiB; 512KiB on nats://)");
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

namespace {

struct WorkerArgs {
  std::string name;
  std::vector<std::string> command;
  std::optional<std::string> max_size;  // default_max_size when not given
  bool null = false;
  bool persistent = false;
};

int run_worker(const WorkerArgs& args) {
  if (args.command.empty()) {
    return fail(Error{Errc::invalid_argument, "usage", "worker needs a pool and a command: worker NAME -- COMMAND"});
  }
  std::string name = args.name;
  if (name == "-") {
    const auto started_by = pool_to_serve();
    if (!started_by) {
      return fail(Error{Errc::invalid_argument, "usage", "worker -: no pool started this process (SHMBOX_POOL is unset)"});
    }
    name = *started_by;
  }
  auto max_size =
      parse_size("--max-size", args.max_size.value_or(default_max_size(name)), max_record_size);
  if (!max_size) return fail(max_size.error());
  auto served = serve_pool(name, command_task(args.command, args.persistent, args.null ? '\0' : '\n', *max_size));
  if (!served) return fail(served.error());
  return EX_OK;
}

}  // namespace

void add_worker_command(CLI::App& app, int& exit_status) {
  auto args = std::make_shared<WorkerArgs>();
  auto* cmd = app.add_subcommand("worker", "Serve the pool NAME: run COMMAND on each of its tasks until the pool ends");
  cmd->add_option("name", args->name, "The pool (shmbox parallel --name NAME); - for the pool that started this process")
      ->required();
  cmd->add_option("command", args->command, "The command and its arguments, after --");
  cmd->add_option("--max-size", args->max_size, "Largest output of a task, e.g. 64KiB (default 1MiB; 512KiB on nats://)");
  cmd->add_flag("--null", args->null, "Tasks end with NUL instead of newline (and so do --persistent answers)");
  cmd->add_flag("--persistent", args->persistent,
                "Start COMMAND once; it answers each line of input with one line of output");
  cmd->footer(
      "Each task runs COMMAND with the task on its standard input; its standard output is the task's\n"
      "output, sent back to the pool. A worker killed mid-task loses nothing: the task runs again\n"
      "elsewhere. Exits 0 when the pool ends.");
  cmd->callback([args, &exit_status] { exit_status = run_worker(*args); });
}

}  // namespace shmbox::cli
