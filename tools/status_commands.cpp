// ls and stat: what mailboxes and endpoints hold, as text or as JSON. Both verbs and
// both transports report an object with the same fields (docs/cli.md: JSON schema);
// a field that does not apply to an object is null.
#include <fmt/core.h>
#include <sysexits.h>

#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "cli_support.hpp"
#include "commands.hpp"
#include "exit_codes.hpp"
#include "output.hpp"
#include "shmbox/board.hpp"
#include "shmbox/endpoint.hpp"
#include "shmbox/lock.hpp"
#include "shmbox/mailbox.hpp"
#include "shmbox/topic.hpp"

namespace shmbox::cli {
namespace {

struct StatusArgs {
  std::string name;
  bool endpoint = false;
  bool lock = false;
  bool board = false;
  bool topic = false;
  bool json = false;
};

nlohmann::json owner_json(pid_t pid, bool alive, const std::string& name) {
  return {{"pid", pid}, {"name", alive ? nlohmann::json(name) : nlohmann::json()}, {"alive", alive}};
}

// "system", or the owner's pid and name ("1234 (server)"; "1234 (exited)").
std::string owner_text(pid_t pid, bool alive, const std::string& name) {
  return fmt::format("{} ({})", pid, alive ? name : "exited");
}
std::string owner_text(const MailboxStatus& status) {
  if (status.ownership == Ownership::system) return "system";
  return owner_text(status.owner_pid, status.owner_alive, status.owner_name);
}

// The one schema: every key in every object.
nlohmann::json to_json(const MailboxStatus& status) {
  const nlohmann::json null;
  const LocalMailboxStatus* local = status.local();
  const RemoteMailboxStatus* remote = status.remote();
  return {{"kind", "mailbox"},
          {"name", status.name},
          {"transport", local ? "local" : "nats"},
          {"owner", status.ownership == Ownership::system
                        ? null
                        : owner_json(status.owner_pid, status.owner_alive, status.owner_name)},
          {"buffering", buffering_name(status.buffering)},
          {"capacity", status.capacity},
          {"max_message_size", status.max_message_size},
          {"queued", status.queued},
          {"in_flight", remote ? nlohmann::json(remote->in_flight) : null},
          {"closed", status.closed},
          {"mode", local ? nlohmann::json(fmt::format("{:04o}", local->mode)) : null},
          {"uid", local ? nlohmann::json(local->owner_uid) : null},
          {"attached", local ? nlohmann::json(local->attached) : null},
          {"senders", local ? nlohmann::json(local->senders) : null},
          {"receivers", local ? local->receivers : remote->waiting_receivers},
          {"memory_bytes", local ? local->memory_bytes : remote->stored_bytes},
          {"replicas", remote ? nlohmann::json(remote->replicas) : null},
          {"peers", null},
          {"max_peers", null},
          {"holders", null},
          {"waiters", null},
          {"consistency", null},
          {"version", null},
          {"value_size", null},
          {"views", null}};
}

// An endpoint: one receiver (its process, while it lives), a lane per sender.
nlohmann::json to_json(const EndpointStatus& status) {
  const nlohmann::json null;
  return {{"kind", "endpoint"},
          {"name", status.name},
          {"transport", "local"},
          {"owner", owner_json(status.owner_pid, status.owner_alive, status.owner_name)},
          {"buffering", buffering_name(status.buffering)},
          {"capacity", status.capacity},
          {"max_message_size", status.max_message_size},
          {"queued", status.queued},
          {"in_flight", null},
          {"closed", !status.owner_alive},
          {"mode", fmt::format("{:04o}", status.mode)},
          {"uid", status.owner_uid},
          {"attached", status.senders.size() + (status.owner_alive ? 1 : 0)},
          {"senders", status.senders.size()},
          {"receivers", status.owner_alive ? 1 : 0},
          {"memory_bytes", null},
          {"replicas", null},
          {"peers", status.senders},
          {"max_peers", status.max_peers},
          {"holders", null},
          {"waiters", null},
          {"consistency", null},
          {"version", null},
          {"value_size", null},
          {"views", null}};
}

const char* mode_name(LockMode mode) { return mode == LockMode::exclusive ? "exclusive" : "shared"; }

const char* consistency_name(LockConsistency consistency) {
  switch (consistency) {
    case LockConsistency::consistent: return "consistent";
    case LockConsistency::owner_died: return "owner_died";
    case LockConsistency::repairing: return "repairing";
    case LockConsistency::not_recoverable: return "not_recoverable";
  }
  return "?";
}

nlohmann::json to_json(const std::vector<LockParticipant>& participants) {
  nlohmann::json list = nlohmann::json::array();
  for (const auto& one : participants) {
    list.push_back({{"pid", one.pid}, {"mode", mode_name(one.mode)}, {"alive", one.alive}});
  }
  return list;
}

// A lock: its holders and waiters (pids); capacity is the handles it has room for.
nlohmann::json to_json(const LockStatus& status) {
  const nlohmann::json null;
  return {{"kind", "lock"},
          {"name", status.name},
          {"transport", "local"},
          {"owner", null},
          {"buffering", null},
          {"capacity", status.max_handles},
          {"max_message_size", null},
          {"queued", status.waiters.size()},
          {"in_flight", null},
          {"closed", false},
          {"mode", fmt::format("{:04o}", status.mode)},
          {"uid", status.owner_uid},
          {"attached", null},
          {"senders", null},
          {"receivers", null},
          {"memory_bytes", null},
          {"replicas", null},
          {"peers", null},
          {"max_peers", null},
          {"holders", to_json(status.holders)},
          {"waiters", to_json(status.waiters)},
          {"consistency", consistency_name(status.consistency)},
          {"version", null},
          {"value_size", null},
          {"views", null}};
}

// A board: its latest version and value's size; its writer (local) as a lock holder.
nlohmann::json to_json(const BoardStatus& status) {
  const nlohmann::json null;
  const bool local = status.server.empty();
  nlohmann::json holders = local ? nlohmann::json::array() : null;
  if (status.writer_pid != 0) holders.push_back({{"pid", status.writer_pid}, {"mode", "exclusive"}, {"alive", true}});
  return {{"kind", "board"},
          {"name", status.name},
          {"transport", local ? "local" : "nats"},
          {"owner", status.ownership == Ownership::system ? null : owner_json(status.owner_pid, status.owner_alive, "")},
          {"buffering", null},
          {"capacity", null},
          {"max_message_size", status.max_size},
          {"queued", null},
          {"in_flight", null},
          {"closed", false},
          {"mode", local ? nlohmann::json(fmt::format("{:04o}", status.mode)) : null},
          {"uid", local ? nlohmann::json(status.owner_uid) : null},
          {"attached", null},
          {"senders", null},
          {"receivers", null},
          {"memory_bytes", null},
          {"replicas", null},
          {"peers", null},
          {"max_peers", null},
          {"holders", holders},
          {"waiters", null},
          {"consistency", null},
          {"version", status.version},
          {"value_size", status.size},
          {"views", local ? nlohmann::json{{"held", status.views_held}, {"max", status.max_views}} : null}};
}

std::string board_owner_text(const BoardStatus& status) {
  if (status.ownership == Ownership::system) return "system";
  return fmt::format("{} ({})", status.owner_pid, status.owner_alive ? "alive" : "exited");
}

std::string text_of(const BoardStatus& status) {
  std::string text = fmt::format("board {}\n  owner         {}\n  version       {}\n  value         {} bytes (at most {})\n",
                                 status.name, board_owner_text(status), status.version, status.size, status.max_size);
  if (!status.server.empty()) return text + fmt::format("  server        {}\n", status.server);
  return text + fmt::format(
                    "  writer        {}\n  views         {} held (at most {})\n  mode          {:04o}\n  owner uid     {}\n",
                    status.writer_pid == 0 ? "none" : std::to_string(status.writer_pid), status.views_held,
                    status.max_views, status.mode, status.owner_uid);
}

// "1234 exclusive, 5678 shared (exited)", or "none".
std::string participants_text(const std::vector<LockParticipant>& participants) {
  std::string text;
  for (const auto& one : participants) {
    text += fmt::format("{}{} {}{}", text.empty() ? "" : ", ", one.pid, mode_name(one.mode), one.alive ? "" : " (exited)");
  }
  return text.empty() ? "none" : text;
}

std::string consistency_text(const LockStatus& status) {
  switch (status.consistency) {
    case LockConsistency::consistent: return "consistent";
    case LockConsistency::owner_died: return fmt::format("owner died (process {}), not yet told", status.died_holding);
    case LockConsistency::repairing: return fmt::format("being repaired (process {} died holding it)", status.died_holding);
    case LockConsistency::not_recoverable:
      return fmt::format("not recoverable (process {} died holding it; never repaired)", status.died_holding);
  }
  return "?";
}

std::string text_of(const LockStatus& status) {
  return fmt::format(
      "lock {}\n  owner         system\n  state         {}\n  holders       {}\n  waiters       {}\n"
      "  mode          {:04o}\n  owner uid     {}\n  handles       at most {}\n",
      status.name, consistency_text(status), participants_text(status.holders), participants_text(status.waiters),
      status.mode, status.owner_uid, status.max_handles);
}

// The one schema's keys (docs/cli.md): every object has each, null where it does not apply.
constexpr const char* schema_keys[] = {
    "kind",     "name",      "transport",   "owner",     "buffering",   "capacity",   "max_message_size",
    "queued",   "in_flight", "closed",      "mode",      "uid",         "attached",   "senders",
    "receivers", "memory_bytes", "replicas", "peers",    "max_peers",   "holders",    "waiters",
    "consistency", "version", "value_size", "views",     "overflow",    "history",    "published",
    "publishers", "subscribers"};

const char* overflow_name(Overflow overflow) { return overflow == Overflow::block ? "block" : "overwrite"; }

nlohmann::json to_json(const TopicStatus& status) {
  const nlohmann::json null;
  const bool local = status.server.empty();
  nlohmann::json subscribers = nlohmann::json::array();
  for (const auto& one : status.subscribers) {
    subscribers.push_back({{"pid", local ? nlohmann::json(one.pid) : null},
                           {"alive", one.alive},
                           {"passed_over", one.passed_over},
                           {"lag", one.lag},
                           {"received", one.received},
                           {"lost", local ? nlohmann::json(one.lost) : null}});
  }
  nlohmann::json publishers = local ? nlohmann::json::array() : null;
  for (const auto& one : status.publishers) {
    publishers.push_back({{"pid", one.pid}, {"alive", one.alive}, {"published", one.published}});
  }
  return {{"kind", "topic"},
          {"name", status.name},
          {"transport", local ? "local" : "nats"},
          {"owner", status.ownership == Ownership::system ? null
                                                          : owner_json(status.owner_pid, status.owner_alive, "")},
          {"capacity", status.capacity},
          {"max_message_size", status.max_message_size},
          {"closed", false},
          {"mode", local ? nlohmann::json(fmt::format("{:04o}", status.mode)) : null},
          {"uid", local ? nlohmann::json(status.owner_uid) : null},
          {"memory_bytes", status.memory_bytes},
          {"overflow", overflow_name(status.overflow)},
          {"history", status.history},
          {"published", status.published},
          {"publishers", publishers},
          {"subscribers", subscribers}};
}

// Every key of the one schema (docs/cli.md) in `object`: those it lacks as null.
nlohmann::json with_every_key(nlohmann::json object) {
  for (const char* key : schema_keys) {
    if (!object.contains(key)) object[key] = nullptr;
  }
  return object;
}

std::string subscribers_text(const TopicStatus& status) {
  std::string text;
  for (const auto& one : status.subscribers) {
    if (!status.server.empty()) {  // a server's consumer: no pid, and its losses its own
      text += fmt::format("    remote   lag {}, received {}\n", one.lag, one.received);
      continue;
    }
    text += fmt::format("    {:<8} lag {}, received {}, lost {}{}\n", one.pid, one.lag, one.received, one.lost,
                        !one.alive          ? " (dead, not yet recovered)"
                        : one.passed_over ? " (stopped: publishers do not wait for it)"
                                          : "");
  }
  return text;
}

std::string publishers_text(const TopicStatus& status) {
  std::string text;
  for (const auto& one : status.publishers) {
    text += fmt::format("{}{} ({} published{})", text.empty() ? ": " : ", ", one.pid, one.published,
                        one.alive ? "" : ", dead");
  }
  return text;
}

std::string text_of(const TopicStatus& status) {
  std::string text = fmt::format(
      "topic {}\n  owner         {}\n  overflow      {}\n  capacity      {} (history {})\n  max size      {} bytes\n"
      "  published     {}\n",
      status.name,
      status.ownership == Ownership::system ? "system" : owner_text(status.owner_pid, status.owner_alive, "alive"),
      overflow_name(status.overflow), status.capacity, status.history, status.max_message_size, status.published);
  if (!status.server.empty()) {
    return text + fmt::format("  server        {}\n  stored        {} bytes\n  subscribers   {} of at most {}\n{}",
                              status.server, status.memory_bytes, status.subscribers.size(), status.max_subscribers,
                              subscribers_text(status));
  }
  return text + fmt::format(
                    "  mode          {:04o}\n  owner uid     {}\n  memory        {} bytes\n"
                    "  publishers    {} of at most {}{}\n  subscribers   {} of at most {}\n{}",
                    status.mode, status.owner_uid, status.memory_bytes, status.publishers.size(), status.max_publishers,
                    publishers_text(status), status.subscribers.size(), status.max_subscribers, subscribers_text(status));
}

std::uint64_t largest_lag(const TopicStatus& status) {
  std::uint64_t lag = 0;
  for (const auto& one : status.subscribers) lag = std::max(lag, one.lag);
  return lag;
}

nlohmann::json error_json(const char* kind, const std::string& name, const Error& error) {
  return {{"kind", kind}, {"name", name}, {"error", error.message()}, {"exit_code", exit_code(error.errc())}};
}

std::string text_of(const MailboxStatus& status) {
  if (const RemoteMailboxStatus* remote = status.remote()) {
    return fmt::format(
        "mailbox {}\n  owner         {}\n  buffering     {}\n  capacity      {}\n  max size      {} bytes\n"
        "  queued        {} ({} being received)\n  state         {}\n  receivers     {} waiting\n"
        "  stored        {} bytes, {} {}\n",
        status.name, owner_text(status), buffering_name(status.buffering), status.capacity, status.max_message_size,
        status.queued, remote->in_flight, status.closed ? "closed" : "open", remote->waiting_receivers,
        remote->stored_bytes, remote->replicas, remote->replicas == 1 ? "copy" : "copies");
  }
  const LocalMailboxStatus& local = *status.local();
  return fmt::format(
      "mailbox {}\n  owner         {}\n  buffering     {}\n  capacity      {}\n  max size      {} bytes\n"
      "  queued        {}\n  state         {}\n  mode          {:04o}\n  owner uid     {}\n"
      "  attached      {} ({} sending, {} receiving)\n  memory        {} bytes\n",
      status.name, owner_text(status), buffering_name(status.buffering), status.capacity, status.max_message_size,
      status.queued, status.closed ? "closed" : "open", local.mode, local.owner_uid, local.attached, local.senders,
      local.receivers, local.memory_bytes);
}

std::string text_of(const EndpointStatus& status) {
  std::string peers;
  for (const auto& peer : status.senders) peers += (peers.empty() ? "" : ", ") + peer;
  return fmt::format(
      "endpoint {}\n  owner         {}\n  buffering     {}\n  capacity      {} per sender\n  max size      {} bytes\n"
      "  queued        {}\n  state         {}\n  mode          {:04o}\n  owner uid     {}\n"
      "  senders       {} of at most {}{}{}\n",
      status.name, owner_text(status.owner_pid, status.owner_alive, status.owner_name),
      buffering_name(status.buffering), status.capacity, status.max_message_size, status.queued,
      status.owner_alive ? "open" : "orphaned", status.mode, status.owner_uid, status.senders.size(), status.max_peers,
      peers.empty() ? "" : ": ", peers);
}

// Writes the report; a failed write is EX_IOERR, naming stdout.
int print(Output& output, const std::string& text) {
  auto written = output.write(text);
  return written ? EX_OK : fail_io(written.error());
}

template <class Status>
int stat_report(const Result<Status>& status, bool json) {
  if (!status) return fail(status.error());
  auto output = Output::standard_output();
  return print(output, json ? with_every_key(to_json(*status)).dump() + "\n" : text_of(*status));
}

int stat(const StatusArgs& args) {
  if (args.endpoint + args.lock + args.board + args.topic > 1) {
    return fail(Error{Errc::invalid_argument, "usage", "--endpoint, --lock, --board and --topic exclude each other"});
  }
  if (args.board) return stat_report(Board::stat(args.name), args.json);
  if (args.topic) return stat_report(Topic::stat(args.name), args.json);
  if (args.endpoint) return stat_report(Endpoint::stat(args.name), args.json);
  if (args.lock) return stat_report(Lock::stat(args.name), args.json);
  return stat_report(Mailbox::stat(args.name), args.json);
}

constexpr const char* list_row = "{:<8} {:<24} {:<22} {:<9} {:>8} {:>9} {:>7} {:>7} {:>9} {:>5}  {}\n";

std::string list_row_of(const MailboxStatus& status) {
  const LocalMailboxStatus* local = status.local();
  return fmt::format(fmt::runtime(list_row), "mailbox", status.name, owner_text(status),
                     buffering_name(status.buffering), status.capacity, status.max_message_size, status.queued,
                     local ? std::to_string(local->senders) : "-",
                     local ? local->receivers : status.remote()->waiting_receivers,
                     local ? fmt::format("{:o}", local->mode) : "-", status.closed ? "closed" : "open");
}

std::string list_row_of(const EndpointStatus& status) {
  return fmt::format(fmt::runtime(list_row), "endpoint", status.name,
                     owner_text(status.owner_pid, status.owner_alive, status.owner_name),
                     buffering_name(status.buffering), status.capacity, status.max_message_size, status.queued,
                     status.senders.size(), status.owner_alive ? 1 : 0, fmt::format("{:o}", status.mode),
                     status.owner_alive ? "open" : "orphaned");
}

std::string list_row_of(const BoardStatus& status) {
  return fmt::format(fmt::runtime(list_row), "board", status.name, board_owner_text(status), "-",
                     "-", status.max_size, "-", "-", "-",
                     status.server.empty() ? fmt::format("{:o}", status.mode) : "-",
                     fmt::format("version {}, {} bytes{}", status.version, status.size,
                                 status.writer_pid == 0 ? "" : fmt::format(", written by {}", status.writer_pid)));
}

std::string list_row_of(const LockStatus& status) {
  std::string state = status.holders.empty() ? "free" : "held by " + participants_text(status.holders);
  if (status.consistency != LockConsistency::consistent) state += "; " + consistency_text(status);
  return fmt::format(fmt::runtime(list_row), "lock", status.name, "system", "-", status.max_handles, "-",
                     status.waiters.size(), "-", "-", fmt::format("{:o}", status.mode), state);
}

std::string list_row_of(const TopicStatus& status) {
  return fmt::format(fmt::runtime(list_row), "topic", status.name,
                     status.ownership == Ownership::system ? "system"
                                                           : owner_text(status.owner_pid, status.owner_alive, "alive"),
                     overflow_name(status.overflow), status.capacity, status.max_message_size, "-",
                     status.publishers.size(), status.subscribers.size(), fmt::format("{:o}", status.mode),
                     fmt::format("published {}, the slowest {} behind", status.published, largest_lag(status)));
}

// The rows of ls, as text or as one JSON array. An object that cannot be read is
// listed with its error (and the listing goes on).
class Listing {
 public:
  explicit Listing(bool json) : json_(json) {
    if (!json_) {
      text_ = fmt::format(fmt::runtime(list_row), "KIND", "NAME", "OWNER", "BUFFERING", "CAPACITY", "MAX-SIZE",
                          "QUEUED", "SENDERS", "RECEIVERS", "MODE", "STATE");
    }
  }
  template <class Status>
  void add(const char* kind, const std::string& name, const Result<Status>& status) {
    if (json_) {
      rows_.push_back(status ? with_every_key(to_json(*status)) : error_json(kind, name, status.error()));
    } else {
      text_ += status ? list_row_of(*status) : fmt::format("{:<8} {:<24} {}\n", kind, name, status.error().message());
    }
  }
  int print() {
    auto output = Output::standard_output();
    return cli::print(output, json_ ? rows_.dump() + "\n" : text_);
  }

 private:
  bool json_;
  nlohmann::json rows_ = nlohmann::json::array();
  std::string text_;
};

int list(const StatusArgs& args) {
  Listing listing{args.json};
  if (!args.name.empty()) {  // ls nats://host:port: the mailboxes and topics that server holds
    auto names = Mailbox::list(args.name);
    if (!names) return fail(names.error());
    auto topics = Topic::list(args.name);
    if (!topics) return fail(topics.error());
    for (const auto& name : *names) listing.add("mailbox", name, Mailbox::stat(name));
    for (const auto& name : *topics) listing.add("topic", name, Topic::stat(name));
    return listing.print();
  }
  for (const auto& name : Mailbox::list()) listing.add("mailbox", name, Mailbox::stat(name));
  for (const auto& name : Endpoint::list()) listing.add("endpoint", name, Endpoint::stat(name));
  for (const auto& name : Lock::list()) listing.add("lock", name, Lock::stat(name));
  for (const auto& name : Board::list()) listing.add("board", name, Board::stat(name));
  for (const auto& name : Topic::list()) listing.add("topic", name, Topic::stat(name));
  return listing.print();
}

}  // namespace

void add_status_commands(CLI::App& app, int& exit_status) {
  auto args = std::make_shared<StatusArgs>();

  auto* ls_cmd = app.add_subcommand("ls", "List local mailboxes, endpoints, locks, boards and topics, or a NATS server's mailboxes");
  ls_cmd->add_option("server", args->name, "List the mailboxes and topics of this server instead, e.g. nats://host:4222");
  ls_cmd->add_flag("--json", args->json, "Print one JSON array (schema: docs/cli.md)");
  ls_cmd->callback([args, &exit_status] { exit_status = list(*args); });

  auto* stat_cmd = app.add_subcommand("stat", "Show a mailbox's (an endpoint's, a lock's, a board's, a topic's) limits, contents and state");
  stat_cmd->add_option("name", args->name, "Mailbox name (or endpoint, lock, board or topic name, with --endpoint, --lock, --board or --topic)")->required();
  stat_cmd->add_flag("--endpoint", args->endpoint, "NAME is an endpoint");
  stat_cmd->add_flag("--lock", args->lock, "NAME is a lock (holders, waiters, and whether a holder died)");
  stat_cmd->add_flag("--board", args->board, "NAME is a board (version, value size, writer, views)");
  stat_cmd->add_flag("--topic", args->topic, "NAME is a topic (publishers, and each subscriber's lag and losses)");
  stat_cmd->add_flag("--json", args->json, "Print one JSON object (schema: docs/cli.md)");
  stat_cmd->callback([args, &exit_status] { exit_status = stat(*args); });
}

}  // namespace shmbox::cli
