// The life of a mailbox from the shell: create, wait (for one to exist), close, rm, and
// gc for what exited processes left behind.
#include <fmt/core.h>
#include <sysexits.h>
#include <unistd.h>

#include <limits>
#include <memory>
#include <optional>
#include <nlohmann/json.hpp>
#include <string>

#include "cli_support.hpp"
#include "commands.hpp"
#include "output.hpp"
#include "shmbox/cleanup.hpp"
#include "shmbox/endpoint.hpp"
#include "shmbox/service.hpp"
#include "shmbox/mailbox.hpp"

namespace shmbox::cli {
namespace {

struct LifeArgs {
  std::string name;
  std::string capacity = "64";
  bool unbounded = false;
  std::string max_size = "4096";
  std::string mode = "600";
  bool mode_given = false;
  std::string owner_pid;
  bool owned_by_caller = false;
  std::string replicas;
  std::optional<std::string> timeout;
  bool json = false;
  bool endpoint = false;
  bool service = false;
};

Result<MailboxOptions> options_of(const LifeArgs& args) {
  auto max_size = parse_size("--max-size", args.max_size, std::numeric_limits<std::uint32_t>::max());
  if (!max_size) return std::unexpected(max_size.error());
  auto mode = parse_mode("--mode", args.mode);
  if (!mode) return std::unexpected(mode.error());
  // A mailbox made from the command line outlives the command: the system owns it,
  // unless a running process is named as its owner.
  MailboxOptions options{.max_message_size = static_cast<std::uint32_t>(*max_size), .mode = *mode,
                         .ownership = Ownership::system};
  if (args.unbounded) {
    options.buffering = Buffering::unbounded;
  } else {
    auto capacity = parse_count("--capacity", args.capacity, 0, std::numeric_limits<std::uint32_t>::max());
    if (!capacity) return std::unexpected(capacity.error());
    if (*capacity == 0) options.buffering = Buffering::zero;
    options.capacity = static_cast<std::uint32_t>(*capacity);
  }
  if (args.owned_by_caller || !args.owner_pid.empty()) {
    auto pid = args.owned_by_caller ? Result<std::uint64_t>{static_cast<std::uint64_t>(::getppid())}
                                    : parse_count("--owner-pid", args.owner_pid, 1, std::numeric_limits<pid_t>::max());
    if (!pid) return std::unexpected(pid.error());
    options.ownership = Ownership::process;
    options.owner_pid = static_cast<pid_t>(*pid);
  }
  if (is_remote(args.name) && args.mode_given) {
    return std::unexpected(Error{Errc::invalid_argument, "--mode", "a nats:// mailbox has no permission bits: "
                                                                   "the server's accounts decide who may use it"});
  }
  if (!args.replicas.empty()) {
    if (!is_remote(args.name)) {
      return std::unexpected(Error{Errc::invalid_argument, "--replicas", "only a nats:// mailbox is kept in copies"});
    }
    auto replicas = parse_count("--replicas", args.replicas, 1, 5);
    if (!replicas) return std::unexpected(replicas.error());
    options.replicas = static_cast<std::uint8_t>(*replicas);
  }
  return options;
}

int create(const LifeArgs& args) {
  auto options = options_of(args);
  if (!options) return fail(options.error());
  auto box = Mailbox::create(args.name, *options);
  return box ? EX_OK : fail(box.error());
}

int close(const LifeArgs& args) {
  auto box = Mailbox::open(args.name);
  if (!box) return fail(box.error());
  auto closed = box->close();
  return closed ? EX_OK : fail(closed.error());
}

int wait(const LifeArgs& args) {
  auto deadline = args.timeout ? parse_duration("--timeout", *args.timeout) : Result<Deadline>{forever};
  if (!deadline) return fail(deadline.error());
  auto box = Mailbox::open_wait(args.name, *deadline);
  return box ? EX_OK : fail(box.error());
}

int remove(const LifeArgs& args) {
  if (args.endpoint && args.service) {
    return fail(Error{Errc::invalid_argument, "usage", "rm takes one of --endpoint and --service"});
  }
  auto removed = args.endpoint  ? Endpoint::remove(args.name)
                 : args.service ? Server::remove(args.name)
                                : Mailbox::remove(args.name);
  return removed ? EX_OK : fail(removed.error());
}

int collect(const LifeArgs& args) {
  // gc nats://host:port: that server's mailboxes whose owners have gone.
  auto collected = args.name.empty() ? Result<std::vector<RemovedObject>>{collect_garbage()} : collect_garbage(args.name);
  if (!collected) return fail(collected.error());
  std::string report;
  if (args.json) {
    nlohmann::json rows = nlohmann::json::array();
    for (const auto& object : *collected) {
      rows.push_back({{"kind", object.kind},
                      {"name", object.name},
                      {"owner_pid", object.owner_pid == 0 ? nlohmann::json() : nlohmann::json(object.owner_pid)},
                      {"cause", object.cause}});
    }
    report = rows.dump() + "\n";
  } else {
    for (const auto& object : *collected) {
      report += fmt::format("removed {} '{}': {}\n", object.kind, object.name, object.cause);
    }
    if (collected->empty()) report = "nothing to remove\n";
  }
  auto written = Output::standard_output().write(report);
  return written ? EX_OK : fail_io(written.error());
}

}  // namespace

void add_mailbox_commands(CLI::App& app, int& exit_status) {
  auto args = std::make_shared<LifeArgs>();

  auto* create_cmd = app.add_subcommand("create", "Create a mailbox (mode 0600 unless --mode; owned by the system "
                                                  "unless --owner-pid or --process)");
  create_cmd->add_option("name", args->name, "Mailbox name, or nats://host:port/NAME")->required();
  auto* capacity = create_cmd->add_option("--capacity", args->capacity, "Messages queued at most; 0: rendezvous");
  create_cmd->add_flag("--unbounded", args->unbounded, "Never make a sender wait")->excludes(capacity);
  create_cmd->add_option("--max-size", args->max_size, "Largest message: 4096, 64KiB, 1MiB");
  create_cmd->add_option("--mode", args->mode, "Permission bits in octal")->each([args](const std::string&) {
    args->mode_given = true;
  });
  auto* owner = create_cmd->add_option("--owner-pid", args->owner_pid,
                                       "Owned by this running process: removed when it exits");
  create_cmd->add_flag("--process", args->owned_by_caller,
                       "Owned by the process that ran shmbox (e.g. the script): removed when it exits")
      ->excludes(owner);
  create_cmd->add_option("--replicas", args->replicas, "nats:// only: copies the cluster keeps (1, 3 or 5)");
  create_cmd->callback([args, &exit_status] { exit_status = create(*args); });

  auto* close_cmd = app.add_subcommand("close", "Close a mailbox to senders; receivers still take what is queued");
  close_cmd->add_option("name", args->name, "Mailbox name")->required();
  close_cmd->callback([args, &exit_status] { exit_status = close(*args); });

  auto* wait_cmd = app.add_subcommand("wait", "Wait until a mailbox exists (exit 75 when --timeout passes first)");
  wait_cmd->add_option("name", args->name, "Mailbox name")->required();
  wait_cmd->add_option("--timeout", args->timeout, "Wait at most this long: 250ms, 2s, 1.5m");
  wait_cmd->callback([args, &exit_status] { exit_status = wait(*args); });

  auto* rm_cmd = app.add_subcommand("rm", "Close a mailbox and remove it (or an endpoint whose process has gone)");
  rm_cmd->add_option("name", args->name, "Mailbox name (or endpoint name, with --endpoint)")->required();
  rm_cmd->add_flag("--endpoint", args->endpoint,
                   "NAME is an endpoint: removed with its lanes once its process has gone (75 while it lives)");
  rm_cmd->add_flag("--service", args->service,
                   "NAME is a service (local or nats://): its servers and waiting calls end (a local one is also a "
                   "mailbox)");
  rm_cmd->callback([args, &exit_status] { exit_status = remove(*args); });

  auto* gc_cmd = app.add_subcommand("gc", "Remove what processes that exited left behind, and say what");
  gc_cmd->add_option("server", args->name, "Collect on this NATS server instead, e.g. nats://host:4222");
  gc_cmd->add_flag("--json", args->json, "Print JSON");
  gc_cmd->callback([args, &exit_status] { exit_status = collect(*args); });
}

}  // namespace shmbox::cli
