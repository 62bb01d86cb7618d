// shmbox lock: runs a command holding a lock, in the manner of flock(1); or removes a lock.
#include <fmt/core.h>
#include <spawn.h>
#include <sys/wait.h>
#include <sysexits.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "cli_support.hpp"
#include "commands.hpp"
#include "shmbox/lock.hpp"

extern char** environ;

namespace shmbox::cli {
namespace {

struct LockArgs {
  std::string name;
  std::vector<std::string> command;
  bool shared = false;
  bool nonblock = false;
  std::string timeout;
  std::string mode = "600";
  bool remove = false;
};

// The shells' codes for a command that could not be run.
constexpr int command_not_found = 127;
constexpr int command_not_executable = 126;

// Runs `command` with `extra_environment` added, and returns its exit status as a shell
// would (128 + the signal for a command killed by one).
int run(const std::vector<std::string>& command, const std::vector<std::string>& extra_environment) {
  std::vector<char*> argv = argv_of(command);
  std::vector<char*> environment;
  for (char** entry = environ; *entry != nullptr; ++entry) environment.push_back(*entry);
  for (const auto& entry : extra_environment) environment.push_back(const_cast<char*>(entry.c_str()));
  environment.push_back(nullptr);
  pid_t child = 0;
  const int error = ::posix_spawnp(&child, argv[0], nullptr, nullptr, argv.data(), environment.data());
  if (error != 0) {
    fmt::print(stderr, "shmbox: command '{}': {}\n", command.front(), std::strerror(error));
    return error == ENOENT ? command_not_found : command_not_executable;
  }
  int status = 0;
  while (::waitpid(child, &status, 0) < 0) {
    if (errno != EINTR) {
      fmt::print(stderr, "shmbox: command '{}': waiting for it failed: {}\n", command.front(), std::strerror(errno));
      return EX_OSERR;
    }
  }
  return WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status);
}

int lock_and_run(const LockArgs& args) {
  auto mode = parse_mode("--mode", args.mode);
  if (!mode) return fail(mode.error());
  Deadline deadline = args.nonblock ? no_wait : forever;
  if (!args.timeout.empty()) {
    auto timeout = parse_duration("--timeout", args.timeout);
    if (!timeout) return fail(timeout.error());
    deadline = *timeout;
  }
  auto lock = Lock::open_or_create(args.name, {.mode = *mode});
  if (!lock) return fail(lock.error());
  auto held = lock->lock(args.shared ? LockMode::shared : LockMode::exclusive, deadline);
  if (!held) return fail(held.error());
  const bool owner_died = held->owner_died();
  const int status = run(args.command, owner_died ? std::vector<std::string>{"SHMBOX_LOCK_OWNER_DIED=1"}
                                                  : std::vector<std::string>{});
  // Repaired only if the command says so by succeeding; otherwise releasing without it
  // makes the lock not recoverable, which is the point.
  if (owner_died && status == EX_OK) {
    if (auto marked = held->mark_consistent(); !marked) return fail(marked.error());
  }
  return status;
}

int remove(const LockArgs& args) {
  if (!args.command.empty()) {
    return fail(Error{Errc::invalid_argument, "usage", "--rm takes a lock name and no command"});
  }
  auto removed = Lock::remove(args.name);
  return removed ? EX_OK : fail(removed.error());
}

}  // namespace

void add_lock_command(CLI::App& app, int& exit_status) {
  auto args = std::make_shared<LockArgs>();
  auto* lock_cmd = app.add_subcommand(
      "lock", "Run COMMAND holding the lock NAME (created on first use), as flock(1) does; exit with its status");
  lock_cmd->add_option("name", args->name, "Lock name")->required();
  lock_cmd->add_option("command", args->command, "The command and its arguments, after --");
  lock_cmd->add_flag("--shared", args->shared, "Hold it shared with other --shared holders (readers)");
  auto* nonblock = lock_cmd->add_flag("--nonblock", args->nonblock, "Fail (exit 75) at once if it is held");
  lock_cmd->add_option("--timeout", args->timeout, "Fail (exit 75) after waiting this long, e.g. 500ms, 2s")
      ->excludes(nonblock);
  lock_cmd->add_option("--mode", args->mode, "Permission bits if it is created (octal)");
  lock_cmd->add_flag("--rm", args->remove, "Remove the lock NAME instead");
  lock_cmd->footer(
      "If the previous holder died holding the lock, COMMAND runs with SHMBOX_LOCK_OWNER_DIED=1 in its\n"
      "environment; the lock counts as repaired once COMMAND exits 0, and if it does not, every later\n"
      "taker fails (exit 65) until the lock is removed (--rm) and made again.");
  lock_cmd->callback([args, &exit_status] {
    if (args->remove) {
      exit_status = remove(*args);
    } else if (args->command.empty()) {
      exit_status = fail(Error{Errc::invalid_argument, "usage", "lock NAME needs a command to run: lock NAME -- COMMAND"});
    } else {
      exit_status = lock_and_run(*args);
    }
  });
}

}  // namespace shmbox::cli
