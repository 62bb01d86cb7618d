// serve and call: request/response from the shell. `serve` keeps N server processes
// answering each request with COMMAND's output (a killed one is replaced; its request
// goes to another); `call` sends one request and prints its answer.
#include <fmt/core.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <sysexits.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "cli_support.hpp"
#include "command_tasks.hpp"
#include "commands.hpp"
#include "input.hpp"
#include "output.hpp"
#include "shmbox/service.hpp"

namespace shmbox::cli {
namespace {

constexpr const char* server_process_name = "shmbox server";

struct ServiceArgs {
  std::string name;
  std::vector<std::string> command;  // serve: after --; call: [MESSAGE]
  std::string workers;
  std::string max_size = "64KiB";
  std::string attempts = "3";
  bool persistent = false;
  bool null = false;
  std::string file;
  std::optional<std::string> timeout;
};

// One server process's life: answer requests with the command until the service goes.
// It only opens the service (`serve` made it): one removed while a server was restarted
// stays removed.
[[noreturn]] void run_server(const std::string& name, const ServiceOptions& options, const TaskFunction& answer,
                             pid_t parent) {
  ::prctl(PR_SET_NAME, server_process_name);
  ::prctl(PR_SET_PDEATHSIG, SIGTERM);  // a `serve` that is killed takes its servers along
  if (::getppid() != parent) ::_exit(EX_OK);  // it died before the line above
  auto server = Server::open(name, options);
  if (!server) {
    if (server.error() == Errc::not_found) ::_exit(EX_OK);
    ::_exit(fail(server.error()));
  }
  for (;;) {
    auto request = server->next();
    if (!request) {
      if (request.error() == Errc::closed || request.error() == Errc::not_found) ::_exit(EX_OK);
      ::_exit(fail(request.error()));
    }
    try {
      (void)request->answer(answer(request->data()));
    } catch (const std::exception& error) {
      (void)request->fail(error.what());
    }
  }
}

// Joins the service once, making it if need be; its exit code. A nats:// service is joined
// in a child process: the NATS client does not survive the forks that start the servers.
int join_first(const std::string& name, const ServiceOptions& options) {
  if (!is_remote(name)) {
    auto joined = Server::join(name, options);
    return joined ? EX_OK : fail(joined.error());
  }
  const pid_t child = ::fork();
  if (child < 0) return fail(Error{Errc::system, "serve", fmt::format("cannot fork: {}", std::strerror(errno))});
  if (child == 0) {
    auto joined = Server::join(name, options);
    ::_exit(joined ? EX_OK : fail(joined.error()));
  }
  int status = 0;
  while (::waitpid(child, &status, 0) < 0 && errno == EINTR) {
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : EX_SOFTWARE;
}

int serve(const ServiceArgs& args) {
  if (args.command.empty()) return fail(Error{Errc::invalid_argument, "usage", "serve needs a command: serve NAME -- COMMAND"});
  auto max_size = parse_size("--max-size", args.max_size, max_record_size);
  if (!max_size) return fail(max_size.error());
  auto attempts = parse_count("--attempts", args.attempts, 1, 100);
  if (!attempts) return fail(attempts.error());
  std::uint64_t workers = std::max(1u, std::thread::hardware_concurrency());
  if (!args.workers.empty()) {
    auto parsed = parse_count("--workers", args.workers, 1, 1024);
    if (!parsed) return fail(parsed.error());
    workers = *parsed;
  }
  const ServiceOptions options{.max_request_size = static_cast<std::uint32_t>(*max_size),
                               .attempts = static_cast<std::uint32_t>(*attempts)};
  // Joined here first: a refusal (a bad name, a mailbox of another kind) is one error, not N.
  if (const int joined = join_first(args.name, options); joined != EX_OK) return joined;
  // A request is given exactly; a --persistent command reads records, so each is ended.
  const std::optional<char> delimiter =
      args.persistent ? std::optional{args.null ? '\0' : '\n'} : std::nullopt;
  const TaskFunction answer = command_task(args.command, args.persistent, delimiter, *max_size);
  // SIGINT and SIGTERM end serving (the servers are told to stop too), and SIGCHLD says a
  // server ended: all three are taken with sigtimedwait, never lost between two looks.
  sigset_t signals;
  sigemptyset(&signals);
  for (const int signal : {SIGINT, SIGTERM, SIGCHLD}) sigaddset(&signals, signal);
  sigset_t before;
  ::sigprocmask(SIG_BLOCK, &signals, &before);
  const pid_t me = ::getpid();
  std::map<pid_t, int> servers;  // pid -> its number, for the messages
  const auto start = [&](int number) -> bool {
    const pid_t pid = ::fork();
    if (pid < 0) return false;
    if (pid == 0) {
      ::sigprocmask(SIG_SETMASK, &before, nullptr);
      run_server(args.name, options, answer, me);
    }
    servers[pid] = number;
    return true;
  };
  bool stop_requested = false;
  for (std::uint64_t n = 0; n < workers; ++n) {
    if (!start(static_cast<int>(n))) {
      for (const auto& [pid, number] : servers) ::kill(pid, SIGTERM);
      return fail(Error{Errc::system, "serve", fmt::format("cannot start a server process: {}", std::strerror(errno))});
    }
  }
  int status_out = EX_OK;
  while (!servers.empty()) {
    int status = 0;
    const pid_t pid = ::waitpid(-1, &status, WNOHANG);
    if (pid <= 0) {
      if (pid < 0 && errno != EINTR) break;
      const timespec nap{0, 100'000'000};
      const int signal = ::sigtimedwait(&signals, nullptr, &nap);
      if ((signal == SIGINT || signal == SIGTERM) && !stop_requested) {
        stop_requested = true;
        for (const auto& [server, number] : servers) ::kill(server, SIGTERM);
      }
      continue;
    }
    const auto found = servers.find(pid);
    if (found == servers.end()) continue;
    const int number = found->second;
    servers.erase(found);
    if (stop_requested) continue;
    if (WIFEXITED(status) && WEXITSTATUS(status) == EX_OK) continue;  // the service was removed
    if (WIFEXITED(status)) {
      // It could not go on (its error is on stderr already): neither could another.
      status_out = WEXITSTATUS(status);
      for (const auto& [server, other] : servers) ::kill(server, SIGTERM);
      continue;
    }
    // Killed: what it held goes to another server; a new one takes its place.
    fmt::print(stderr, "shmbox: service '{}': server {} was killed by signal {}; starting another\n", args.name, pid,
               WTERMSIG(status));
    if (!start(number)) status_out = EX_OSERR;
  }
  return status_out;
}

// The request: MESSAGE, the --file, or all of standard input; never more than the
// service takes (a longer one is refused before the rest of it is read).
Result<std::vector<std::byte>> request_of(const ServiceArgs& args, std::size_t max_size) {
  if (!args.command.empty()) {
    const auto bytes = as_bytes(args.command.front());
    return std::vector<std::byte>{bytes.begin(), bytes.end()};
  }
  if (!args.file.empty()) return read_whole_file(args.file, max_size);
  return read_at_most(STDIN_FILENO, "standard input", max_size);
}

int call(const ServiceArgs& args) {
  if (args.command.size() > 1) {
    return fail(Error{Errc::invalid_argument, "usage", "call takes one MESSAGE (quote it), or --file, or standard input"});
  }
  if (!args.command.empty() && !args.file.empty()) {
    return fail(Error{Errc::invalid_argument, "usage", "call takes a MESSAGE or --file, not both"});
  }
  Deadline deadline = forever;
  if (args.timeout) {
    auto parsed = parse_duration("--timeout", *args.timeout);
    if (!parsed) return fail(parsed.error());
    deadline = *parsed;
  }
  auto client = Client::connect(args.name);
  if (!client) return fail(client.error());
  auto request = request_of(args, client->max_request_size());
  if (!request) {
    return fail_input(request.error(), fmt::format("service '{}'", args.name), "the request",
                      client->max_request_size(), "nothing was sent");
  }
  auto sent = client->send(*request, deadline);
  if (!sent) return fail(sent.error());
  auto output = Output::standard_output();
  for (;;) {
    auto part = sent->next_part(deadline);
    if (!part) return fail(part.error());
    if (!*part) return EX_OK;
    if (auto written = output.write(**part); !written) return fail_io(written.error());
  }
}

}  // namespace

void add_service_commands(CLI::App& app, int& exit_status) {
  auto args = std::make_shared<ServiceArgs>();

  auto* serve_cmd = app.add_subcommand(
      "serve", "Answer each request to the service NAME with COMMAND's output (the request on its stdin)");
  serve_cmd->add_option("name", args->name, "The service's name, or nats://host:port/NAME")->required();
  serve_cmd->add_option("command", args->command, "The command and its arguments, after --");
  serve_cmd->add_option("--workers", args->workers, "Server processes (default: one per CPU)");
  serve_cmd->add_option("--max-size", args->max_size,
                        "Largest request, if this makes the service (default 64KiB), and largest output");
  serve_cmd->add_option("--attempts", args->attempts,
                        "Servers a request may see die before it fails, 1 to 100 (default 3)");
  serve_cmd->add_flag("--persistent", args->persistent,
                      "Start COMMAND once per server; it answers each line of input with one line of output");
  serve_cmd->add_flag("--null", args->null, "With --persistent: records end with NUL instead of newline");
  serve_cmd->footer(
      "A request that COMMAND fails (exits non-zero, is killed, or writes more than --max-size) fails the\n"
      "caller's call with COMMAND's fate. A server process killed while it holds a request is replaced,\n"
      "and the request goes to another. serve ends when the service is removed (shmbox rm NAME), or on\n"
      "SIGINT/SIGTERM.");
  serve_cmd->callback([args, &exit_status] { exit_status = serve(*args); });

  auto* call_cmd = app.add_subcommand(
      "call", "Send MESSAGE (or the --file, or all of stdin) to the service NAME and print its answer exactly");
  call_cmd->add_option("name", args->name, "The service's name, or nats://host:port/NAME")->required();
  call_cmd->add_option("message", args->command, "The request (its bytes exactly)");
  call_cmd->add_option("--file", args->file, "Send this file's bytes as the request");
  call_cmd->add_option("--timeout", args->timeout, "Wait at most this long for the answer (exit 75)");
  call_cmd->callback([args, &exit_status] { exit_status = call(*args); });
}

}  // namespace shmbox::cli
