#include <fmt/core.h>
#include <sysexits.h>

#include <cstdio>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cli_support.hpp"
#include "commands.hpp"
#include "shmbox/cleanup.hpp"
#include "shmbox/endpoint.hpp"
#include "shmbox/mailbox.hpp"

namespace shmbox::cli {
namespace {

struct MailboxArgs {
  std::string name;
  std::int64_t capacity = 64;
  bool unbounded = false;
  std::uint32_t max_size = 4096;
  std::string mode = "600";
  std::vector<std::string> messages;
  bool nonblock = false;
  std::string timeout;
  std::uint64_t count = 1;
  bool json = false;
  // Endpoints: send --to P, recv --from Q, both as the endpoint --as.
  std::string to;
  std::string from;
  std::string as;
};

const char* buffering_name(Buffering buffering) {
  switch (buffering) {
    case Buffering::zero: return "zero";
    case Buffering::bounded: return "bounded";
    case Buffering::unbounded: return "unbounded";
  }
  return "?";
}

Result<Deadline> deadline_of(const MailboxArgs& args) {
  if (args.nonblock) return no_wait;
  if (!args.timeout.empty()) return parse_timeout(args.timeout);
  return forever;
}

int create(const MailboxArgs& args) {
  auto mode = parse_mode(args.mode);
  if (!mode) return fail(mode.error());
  // A mailbox made from the command line outlives the command: the system owns it.
  MailboxOptions options{.max_message_size = args.max_size, .mode = *mode, .ownership = Ownership::system};
  if (args.unbounded) {
    options.buffering = Buffering::unbounded;
  } else if (args.capacity == 0) {
    options.buffering = Buffering::zero;
  } else {
    options.capacity = static_cast<std::uint32_t>(args.capacity);
  }
  auto box = Mailbox::create(args.name, options);
  return box ? EX_OK : fail(box.error());
}

int usage_error(const char* what) {
  return fail(Error{Errc::invalid_argument, {}, what});
}

// An endpoint to send or receive through: --as NAME, or one named after this process.
Result<Endpoint> join_as(const MailboxArgs& args) {
  auto mode = parse_mode(args.mode);
  if (!mode) return std::unexpected(mode.error());
  return Endpoint::join(args.as.empty() ? "shmbox-cli-" + std::to_string(::getpid()) : args.as, {.mode = *mode});
}

// Sends each message given, or else each line of stdin, with `send_one`.
template <class SendOne>
int send_each(const MailboxArgs& args, SendOne&& send_one) {
  if (!args.messages.empty()) {
    for (const auto& message : args.messages) {
      if (const int status = send_one(message); status != EX_OK) return status;
    }
    return EX_OK;
  }
  for (std::string line; std::getline(std::cin, line);) {
    if (const int status = send_one(line); status != EX_OK) return status;
  }
  return EX_OK;
}

int send(MailboxArgs args) {
  if (!args.to.empty() && !args.name.empty()) {
    // With --to there is no mailbox name: the first word is the first message.
    args.messages.insert(args.messages.begin(), std::move(args.name));
    args.name.clear();
  }
  if (args.name.empty() == args.to.empty()) return usage_error("send takes a mailbox name or --to ENDPOINT");
  auto deadline = deadline_of(args);
  if (!deadline) return fail(deadline.error());
  if (!args.to.empty()) {
    auto me = join_as(args);
    if (!me) return fail(me.error());
    return send_each(args, [&](const std::string& text) -> int {
      auto sent = me->send(args.to, as_bytes(text), *deadline);
      if (sent) return EX_OK;
      if (sent.error().errc() == Errc::would_block) {
        return fail(Error{Errc::would_block, "endpoint '" + args.to + "'", "cannot take it now; nothing was sent"});
      }
      return fail(sent.error());
    });
  }
  auto box = Mailbox::open(args.name);
  if (!box) return fail(box.error());
  return send_each(args, [&](const std::string& text) -> int {
    auto sent = box->send(as_bytes(text), *deadline);
    if (!sent) {
      // would_block carries no object (it is allocation-free); name it here.
      if (sent.error().errc() == Errc::would_block) {
        const char* cause = box->buffering() == Buffering::zero ? "has no receiver waiting; nothing was sent"
                                                                 : "is full; nothing was sent";
        return fail(Error{Errc::would_block, "mailbox '" + box->name() + "'", cause});
      }
      return fail(sent.error());
    }
    return EX_OK;
  });
}

// recv --as P [--from Q]: messages sent to endpoint P (by Q only, with --from; else
// by anyone, each shown as "sender: message").
int receive_at_endpoint(const MailboxArgs& args, Deadline deadline) {
  auto me = join_as(args);
  if (!me) return fail(me.error());
  std::vector<std::byte> message;
  for (std::uint64_t i = 0; i < args.count; ++i) {
    std::string sender = args.from;
    Result<void> got;
    if (args.from.empty()) {
      auto from = me->receive(message, deadline);
      if (from) sender = std::move(*from);
      else got = std::unexpected(from.error());
    } else {
      got = me->receive_from(args.from, message, deadline);
    }
    if (!got) {
      if (got.error().errc() == Errc::would_block) return fail(Error{Errc::would_block, "endpoint '" + me->name() + "'", "is empty"});
      return fail(got.error());
    }
    if (args.from.empty()) fmt::print("{}: ", sender);
    std::fwrite(message.data(), 1, message.size(), stdout);
    std::fputc('\n', stdout);
    std::fflush(stdout);
  }
  return EX_OK;
}

int receive(const MailboxArgs& args) {
  const bool at_endpoint = !args.as.empty();
  if (!args.from.empty() && !at_endpoint) return usage_error("recv --from needs --as ENDPOINT, the endpoint to receive at");
  if (!args.name.empty() == at_endpoint) return usage_error("recv takes a mailbox name or --as ENDPOINT");
  auto deadline = deadline_of(args);
  if (!deadline) return fail(deadline.error());
  if (at_endpoint) return receive_at_endpoint(args, *deadline);
  auto box = Mailbox::open(args.name);
  if (!box) return fail(box.error());
  std::vector<std::byte> message;
  for (std::uint64_t i = 0; i < args.count; ++i) {
    auto got = box->receive(message, *deadline);
    if (!got) {
      if (got.error().errc() == Errc::would_block) {
        return fail(Error{Errc::would_block, "mailbox '" + box->name() + "'", "is empty"});
      }
      return fail(got.error());
    }
    std::fwrite(message.data(), 1, message.size(), stdout);
    std::fputc('\n', stdout);
    std::fflush(stdout);  // a message received is a message shown, even if a later one fails
  }
  return EX_OK;
}

// "system", or the owner's pid and name ("1234 (server)"; "1234 (exited)").
std::string owner_text(pid_t pid, bool alive, const std::string& name) {
  return fmt::format("{} ({})", pid, alive ? name : "exited");
}
std::string owner_text(const MailboxStatus& status) {
  if (status.ownership == Ownership::system) return "system";
  return owner_text(status.owner_pid, status.owner_alive, status.owner_name);
}

nlohmann::json to_json(const MailboxStatus& status) {
  if (status.remote) {
    return {{"kind", "mailbox"},
            {"name", status.name},
            {"owner", owner_text(status)},
            {"buffering", buffering_name(status.buffering)},
            {"capacity", status.capacity},
            {"max_message_size", status.max_message_size},
            {"queued", status.queued},
            {"in_flight", status.in_flight},
            {"closed", status.closed},
            {"receivers", status.receivers},
            {"stored_bytes", status.memory_bytes},
            {"replicas", status.replicas}};
  }
  nlohmann::json owner = status.ownership == Ownership::system
                             ? nlohmann::json("system")
                             : nlohmann::json{{"pid", status.owner_pid},
                                              {"name", status.owner_name},
                                              {"alive", status.owner_alive}};
  return {{"kind", "mailbox"},
          {"name", status.name},
          {"owner", owner},
          {"buffering", buffering_name(status.buffering)},
          {"capacity", status.capacity},
          {"max_message_size", status.max_message_size},
          {"queued", status.queued},
          {"closed", status.closed},
          {"mode", fmt::format("{:04o}", status.mode)},
          {"uid", status.owner_uid},
          {"attached", status.attached},
          {"senders", status.senders},
          {"receivers", status.receivers},
          {"memory_bytes", status.memory_bytes}};
}

nlohmann::json to_json(const EndpointStatus& status) {
  return {{"kind", "endpoint"},
          {"name", status.name},
          {"owner", {{"pid", status.owner_pid}, {"name", status.owner_name}, {"alive", status.owner_alive}}},
          {"buffering", buffering_name(status.buffering)},
          {"capacity", status.capacity},
          {"max_message_size", status.max_message_size},
          {"max_peers", status.max_peers},
          {"queued", status.queued},
          {"mode", fmt::format("{:04o}", status.mode)},
          {"uid", status.owner_uid},
          {"senders", status.senders}};
}

int stat(const MailboxArgs& args) {
  auto status = Mailbox::stat(args.name);
  if (!status) return fail(status.error());
  if (args.json) {
    fmt::print("{}\n", to_json(*status).dump());
    return EX_OK;
  }
  if (status->remote) {
    fmt::print(
        "mailbox {}\n  owner         {}\n  buffering     {}\n  capacity      {}\n  max size      {} bytes\n"
        "  queued        {} ({} being received)\n  state         {}\n  receivers     {} waiting\n"
        "  stored        {} bytes, {} {}\n",
        status->name, owner_text(*status), buffering_name(status->buffering), status->capacity,
        status->max_message_size, status->queued, status->in_flight, status->closed ? "closed" : "open",
        status->receivers, status->memory_bytes, status->replicas, status->replicas == 1 ? "copy" : "copies");
    return EX_OK;
  }
  fmt::print(
      "mailbox {}\n  owner         {}\n  buffering     {}\n  capacity      {}\n  max size      {} bytes\n"
      "  queued        {}\n  state         {}\n  mode          {:04o}\n  owner uid     {}\n"
      "  attached      {} ({} sending, {} receiving)\n  memory        {} bytes\n",
      status->name, owner_text(*status), buffering_name(status->buffering), status->capacity,
      status->max_message_size, status->queued, status->closed ? "closed" : "open", status->mode, status->owner_uid,
      status->attached, status->senders, status->receivers, status->memory_bytes);
  return EX_OK;
}

constexpr const char* list_row = "{:<8} {:<24} {:<22} {:<9} {:>8} {:>9} {:>7} {:>7} {:>9} {:>5}  {}\n";

void print_list_header() {
  fmt::print(fmt::runtime(list_row), "KIND", "NAME", "OWNER", "BUFFERING", "CAPACITY", "MAX-SIZE", "QUEUED", "SENDERS",
             "RECEIVERS", "MODE", "STATE");
}

// One mailbox's row (or JSON object), or the error that kept it from being read. A NATS
// server knows no senders and no mode: "-".
void add_mailbox_row(const std::string& name, const Result<MailboxStatus>& status, bool json, nlohmann::json& rows) {
  if (json) {
    rows.push_back(status ? to_json(*status) : nlohmann::json{{"name", name}, {"error", status.error().message()}});
    return;
  }
  if (!status) {
    fmt::print("{:<8} {:<24} {}\n", "mailbox", name, status.error().message());
    return;
  }
  fmt::print(fmt::runtime(list_row), "mailbox", name, owner_text(*status), buffering_name(status->buffering),
             status->capacity, status->max_message_size, status->queued,
             status->remote ? "-" : std::to_string(status->senders), status->receivers,
             status->remote ? "-" : fmt::format("{:o}", status->mode), status->closed ? "closed" : "open");
}

// ls nats://host:port: the mailboxes that server holds.
int list_remote(const MailboxArgs& args) {
  auto names = Mailbox::list(args.name);
  if (!names) return fail(names.error());
  nlohmann::json rows = nlohmann::json::array();
  if (!args.json) print_list_header();
  for (const auto& name : *names) add_mailbox_row(name, Mailbox::stat(name), args.json, rows);
  if (args.json) fmt::print("{}\n", rows.dump());
  return EX_OK;
}

int list(const MailboxArgs& args) {
  if (!args.name.empty()) return list_remote(args);
  nlohmann::json rows = nlohmann::json::array();
  if (!args.json) print_list_header();
  for (const auto& name : Mailbox::list()) add_mailbox_row(name, Mailbox::stat(name), args.json, rows);
  // An endpoint has one receiver, its process, and a lane per sender.
  for (const auto& name : Endpoint::list()) {
    auto status = Endpoint::stat(name);
    if (args.json) {
      rows.push_back(status ? to_json(*status)
                            : nlohmann::json{{"kind", "endpoint"}, {"name", name}, {"error", status.error().message()}});
      continue;
    }
    if (!status) {
      fmt::print("{:<8} {:<24} {}\n", "endpoint", name, status.error().message());
      continue;
    }
    fmt::print(fmt::runtime(list_row), "endpoint", name,
               owner_text(status->owner_pid, status->owner_alive, status->owner_name),
               buffering_name(status->buffering), status->capacity, status->max_message_size, status->queued,
               status->senders.size(), status->owner_alive ? 1 : 0, fmt::format("{:o}", status->mode),
               status->owner_alive ? "open" : "orphaned");
  }
  if (args.json) fmt::print("{}\n", rows.dump());
  return EX_OK;
}

int remove(const MailboxArgs& args) {
  auto removed = Mailbox::remove(args.name);
  return removed ? EX_OK : fail(removed.error());
}

int collect(const MailboxArgs& args) {
  // gc nats://host:port: that server's mailboxes whose owners have gone.
  auto collected = args.name.empty() ? Result<std::vector<RemovedObject>>{collect_garbage()} : collect_garbage(args.name);
  if (!collected) return fail(collected.error());
  const auto& removed = *collected;
  if (args.json) {
    nlohmann::json rows = nlohmann::json::array();
    for (const auto& object : removed) {
      rows.push_back({{"kind", object.kind}, {"name", object.name}, {"owner_pid", object.owner_pid}});
    }
    fmt::print("{}\n", rows.dump());
    return EX_OK;
  }
  for (const auto& object : removed) {
    fmt::print("removed {} '{}': its owner, process {}, had exited\n", object.kind, object.name, object.owner_pid);
  }
  if (removed.empty()) fmt::print("nothing to remove\n");
  return EX_OK;
}

void add_wait_options(CLI::App* command, MailboxArgs& args) {
  auto* nonblock = command->add_flag("--nonblock", args.nonblock, "Fail at once (exit 75) instead of waiting");
  command->add_option("--timeout", args.timeout, "Wait at most this long, e.g. 250ms or 2s (exit 75)")
      ->excludes(nonblock);
}

}  // namespace

void add_mailbox_commands(CLI::App& app, int& exit_status) {
  auto args = std::make_shared<MailboxArgs>();

  auto* create_cmd = app.add_subcommand("create", "Create a mailbox (mode 0600 unless --mode)");
  create_cmd->add_option("name", args->name, "Mailbox name")->required();
  auto* capacity = create_cmd->add_option("--capacity", args->capacity, "Messages queued at most; 0: rendezvous")
                       ->check(CLI::Range(std::int64_t{0}, std::int64_t{0xffffffff}));
  create_cmd->add_flag("--unbounded", args->unbounded, "Never make a sender wait")->excludes(capacity);
  create_cmd->add_option("--max-size", args->max_size, "Largest message in bytes")->check(CLI::NonNegativeNumber);
  create_cmd->add_option("--mode", args->mode, "Permission bits in octal");
  create_cmd->callback([args, &exit_status] { exit_status = create(*args); });

  auto* send_cmd = app.add_subcommand("send", "Send each MESSAGE, or each line of stdin, to a mailbox or an endpoint");
  send_cmd->add_option("name", args->name, "Mailbox name (or --to)");
  send_cmd->add_option("message", args->messages, "Messages to send");
  send_cmd->add_option("--to", args->to, "Send to this endpoint (a process joined under the name) instead");
  send_cmd->add_option("--as", args->as, "With --to: the endpoint name to send as (default shmbox-cli-PID)");
  send_cmd->add_option("--mode", args->mode, "With --to: permission bits in octal of the endpoint sent as (600)");
  add_wait_options(send_cmd, *args);
  send_cmd->callback([args, &exit_status] { exit_status = send(*args); });

  auto* recv_cmd = app.add_subcommand("recv", "Receive messages, each printed on its own line");
  recv_cmd->add_option("name", args->name, "Mailbox name (or --as)");
  recv_cmd->add_option("--as", args->as, "Receive at this endpoint instead, joining under its name; "
                                         "each message is shown as 'sender: message'");
  recv_cmd->add_option("--from", args->from, "With --as: only messages from this endpoint, shown bare");
  recv_cmd->add_option("--mode", args->mode, "With --as: permission bits in octal: who may send to it (600)");
  recv_cmd->add_option("--count", args->count, "How many messages to receive")->check(CLI::PositiveNumber);
  add_wait_options(recv_cmd, *args);
  recv_cmd->callback([args, &exit_status] { exit_status = receive(*args); });

  auto* ls_cmd = app.add_subcommand("ls", "List local mailboxes and endpoints, or a NATS server's mailboxes");
  ls_cmd->add_option("server", args->name, "List the mailboxes of this server instead, e.g. nats://host:4222");
  ls_cmd->add_flag("--json", args->json, "Print JSON");
  ls_cmd->callback([args, &exit_status] { exit_status = list(*args); });

  auto* stat_cmd = app.add_subcommand("stat", "Show a mailbox's limits, contents and state");
  stat_cmd->add_option("name", args->name, "Mailbox name")->required();
  stat_cmd->add_flag("--json", args->json, "Print JSON");
  stat_cmd->callback([args, &exit_status] { exit_status = stat(*args); });

  auto* rm_cmd = app.add_subcommand("rm", "Close a mailbox and remove it");
  rm_cmd->add_option("name", args->name, "Mailbox name")->required();
  rm_cmd->callback([args, &exit_status] { exit_status = remove(*args); });

  auto* gc_cmd = app.add_subcommand("gc", "Remove what processes that exited left behind, and say what");
  gc_cmd->add_option("server", args->name, "Collect on this NATS server instead, e.g. nats://host:4222");
  gc_cmd->add_flag("--json", args->json, "Print JSON");
  gc_cmd->callback([args, &exit_status] { exit_status = collect(*args); });
}

}  // namespace shmbox::cli
