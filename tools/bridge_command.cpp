// shmbox bridge LOCAL REMOTE: forwards a mailbox to another (and back with --reverse),
// so that an unchanged local program reaches mailboxes on other machines.
#include <fmt/core.h>
#include <signal.h>
#include <sysexits.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>

#include "cli_support.hpp"
#include "commands.hpp"
#include "output.hpp"
#include "shmbox/bridge.hpp"
#include "shmbox/mailbox.hpp"

namespace shmbox::cli {
namespace {

struct BridgeArgs {
  std::string local;
  std::string remote;
  bool reverse = false;
};

std::atomic<bool> stop_requested{false};

// The first SIGINT or SIGTERM stops the bridge between messages; a second one kills it
// (a message it held is then recovered, not lost).
extern "C" void request_stop(int signal) {
  stop_requested.store(true, std::memory_order_relaxed);
  ::signal(signal, SIG_DFL);
}

int bridge(const BridgeArgs& args) {
  auto local = Mailbox::open(args.local);
  if (!local) return fail(local.error());
  ::signal(SIGINT, request_stop);
  ::signal(SIGTERM, request_stop);
  // One line per kind of failure while it lasts, and again every 10 s: an outage of
  // the server would otherwise print ten lines a second.
  std::string last_failure;
  auto next_report = std::chrono::steady_clock::now();
  ForwardOptions options{.on_retry = [&](const Error& error) {
    const auto now = std::chrono::steady_clock::now();
    if (error.message() == last_failure && now < next_report) return;
    last_failure = error.message();
    next_report = now + std::chrono::seconds{10};
    fmt::print(stderr, "shmbox: bridge: retrying: {}\n", last_failure);
  }};
  // A bridge runs as a service: a server away (restarting) when it starts is waited
  // for, as one that goes away later is. Anything else about the mailbox is final.
  auto remote = Mailbox::open(args.remote);
  while (!remote && remote.error().errc() == Errc::unreachable && !stop_requested.load(std::memory_order_relaxed)) {
    options.on_retry(remote.error());
    std::this_thread::sleep_for(std::chrono::milliseconds{250});
    remote = Mailbox::open(args.remote);
  }
  if (!remote) return fail(remote.error());
  Mailbox& from = args.reverse ? *remote : *local;
  Mailbox& to = args.reverse ? *local : *remote;
  fmt::print(stderr, "shmbox: bridge: forwarding {} to {}\n", from.name(), to.name());
  auto forwarded = forward(from, to, stop_requested, options);
  if (!forwarded) return fail(forwarded.error());
  auto written = Output::standard_output().write(fmt::format("forwarded {} messages\n", *forwarded));
  return written ? EX_OK : fail_io(written.error());
}

}  // namespace

void add_bridge_command(CLI::App& app, int& exit_status) {
  auto args = std::make_shared<BridgeArgs>();
  auto* command = app.add_subcommand(
      "bridge", "Forward every message of LOCAL to REMOTE (with --reverse, of REMOTE to LOCAL) until "
                "stopped (SIGINT, SIGTERM) or the source is closed; a message leaves its source only "
                "once the other side has it");
  command->add_option("local", args->local, "The local mailbox")->required();
  command->add_option("remote", args->remote, "The other mailbox, e.g. nats://host:4222/NAME")->required();
  command->add_flag("--reverse", args->reverse, "Forward REMOTE to LOCAL instead");
  command->callback([args, &exit_status] { exit_status = bridge(*args); });
}

}  // namespace shmbox::cli
