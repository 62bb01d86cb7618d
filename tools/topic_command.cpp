// shmbox topic: create, publish to, subscribe to and remove topics (every subscriber gets
// every message).
#include <fmt/core.h>
#include <sysexits.h>

#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cli_support.hpp"
#include "commands.hpp"
#include "message_io.hpp"
#include "output.hpp"
#include "shmbox/topic.hpp"

namespace shmbox::cli {
namespace {

struct TopicArgs {
  std::string name;
  // create
  std::string capacity = "64";
  std::string history_kept = "0";
  std::optional<std::string> overflow;  // block locally, overwrite on nats://
  std::string max_size = "4KiB";
  std::string max_subscribers = "16";
  std::optional<std::string> max_publishers;
  std::optional<std::string> mode;
  // pub
  std::vector<std::string> messages;
  std::string file;
  bool null = false;
  bool nonblock = false;
  std::optional<std::string> timeout;
  // sub
  std::optional<std::string> history;  // "all" when given bare
  std::optional<std::string> count;
  bool json = false;
  bool raw = false;
};

Error usage_error(std::string what) { return Error{Errc::invalid_argument, "usage", std::move(what)}; }

std::string topic_object(const std::string& name) { return fmt::format("topic '{}'", name); }

Result<Deadline> deadline_of(const TopicArgs& args) {
  if (args.nonblock) return no_wait;
  if (args.timeout) return parse_duration("--timeout", *args.timeout);
  return forever;
}

Result<std::uint32_t> parse_u32(const std::string& option, const std::string& text, std::uint32_t minimum,
                                std::uint32_t maximum) {
  auto value = parse_count(option, text, minimum, maximum);
  if (!value) return std::unexpected(value.error());
  return static_cast<std::uint32_t>(*value);
}

int create(const TopicArgs& args) {
  // A topic made from the command line outlives the command: the system owns it.
  TopicOptions options{.ownership = Ownership::system};
  auto capacity = parse_u32("--capacity", args.capacity, 1, max_topic_capacity);
  if (!capacity) return fail(capacity.error());
  auto history = parse_u32("--history", args.history_kept, 0, *capacity);
  if (!history) return fail(history.error());
  auto max_size = parse_size("--max-size", args.max_size, max_topic_message_size);
  if (!max_size) return fail(max_size.error());
  auto subscribers = parse_u32("--max-subscribers", args.max_subscribers, 1, max_topic_subscribers);
  if (!subscribers) return fail(subscribers.error());
  const bool remote = is_remote(args.name);
  const std::string overflow = args.overflow.value_or(remote ? "overwrite" : "block");
  if (overflow != "block" && overflow != "overwrite") return fail(bad_value("--overflow", overflow, "block or overwrite"));
  if (remote) {
    if (args.mode) {
      return fail(Error{Errc::invalid_argument, "--mode",
                        "a nats:// topic has no permission bits: the server's accounts decide who may use it"});
    }
    if (args.max_publishers) {
      return fail(Error{Errc::invalid_argument, "--max-publishers", "a nats:// topic takes any number of publishers"});
    }
  } else {
    auto publishers = parse_u32("--max-publishers", args.max_publishers.value_or("8"), 1, max_topic_publishers);
    if (!publishers) return fail(publishers.error());
    auto mode = parse_mode("--mode", args.mode.value_or("600"));
    if (!mode) return fail(mode.error());
    options.max_publishers = *publishers;
    options.mode = *mode;
  }
  options.capacity = *capacity;
  options.history = *history;
  options.max_message_size = static_cast<std::uint32_t>(*max_size);
  options.max_subscribers = *subscribers;
  options.overflow = overflow == "block" ? Overflow::block : Overflow::overwrite;
  auto topic = Topic::create(args.name, options);
  return topic ? EX_OK : fail(topic.error());
}

int publish(const TopicArgs& args) {
  if (!args.file.empty() && !args.messages.empty()) return fail(usage_error("topic pub takes MESSAGEs or --file, not both"));
  if (args.null && (!args.file.empty() || !args.messages.empty())) {
    return fail(usage_error("topic pub --null splits standard input; it takes no MESSAGE or --file"));
  }
  auto deadline = deadline_of(args);
  if (!deadline) return fail(deadline.error());
  auto topic = Topic::open(args.name);
  if (!topic) return fail(topic.error());
  auto publisher = topic->publisher();
  if (!publisher) return fail(publisher.error());
  MessageSource source{args.messages, args.file, args.null, topic->max_message_size()};
  return send_all(source, topic_object(args.name), [&](std::span<const std::byte> message) -> Result<void> {
    auto published = publisher->publish(message, *deadline);
    if (!published) return std::unexpected(published.error());
    return {};
  });
}

Result<std::uint32_t> history_of(const TopicArgs& args) {
  if (!args.history) return 0;
  if (*args.history == "all") return std::numeric_limits<std::uint32_t>::max();  // as much as the topic keeps
  auto history = parse_count("--history", *args.history, 0, max_topic_capacity);
  if (!history) return std::unexpected(bad_value("--history", *args.history, "a number of messages, or all"));
  return static_cast<std::uint32_t>(*history);
}

// Without --count, the subscription ends at the timeout (or, --nonblock, once no message
// waits) with success: that is what was asked for. With --count, ending short is the
// timeout's (or would-block's) failure, saying how many were written.
int subscribe(const TopicArgs& args) {
  if (args.null + args.json + args.raw > 1) return fail(usage_error("topic sub takes one of --null, --json and --raw"));
  auto deadline = deadline_of(args);
  if (!deadline) return fail(deadline.error());
  std::optional<std::uint64_t> count;
  if (args.count) {
    auto parsed = parse_count("--count", *args.count, 1, std::numeric_limits<std::uint64_t>::max());
    if (!parsed) return fail(parsed.error());
    count = *parsed;
  }
  if (args.raw) {
    if (count && *count != 1) return fail(usage_error("topic sub --raw writes exactly one message; it takes no --count"));
    count = 1;
  }
  auto history = history_of(args);
  if (!history) return fail(history.error());
  auto topic = Topic::open(args.name);
  if (!topic) return fail(topic.error());
  auto subscriber = topic->subscribe(*history);
  if (!subscriber) return fail(subscriber.error());
  const Framing framing = args.raw ? Framing::raw : args.json ? Framing::json : args.null ? Framing::nul : Framing::lines;
  const std::string object = topic_object(args.name);
  auto output = Output::standard_output();
  std::vector<std::byte> message;
  for (std::uint64_t written = 0; !count || written < *count; ++written) {
    auto got = subscriber->receive(message, *deadline);
    if (!got) {
      const Error& cause = got.error();
      const bool ended = cause.errc() == Errc::would_block || cause.errc() == Errc::timeout;
      if (ended && !count) return EX_OK;
      const std::string detail = cause.errc() == Errc::would_block ? "has no message waiting" : cause.detail();
      return fail(Error{cause.errc(), object, detail + written_so_far(written, count)});
    }
    if (got->lost != 0 && framing != Framing::json) {
      // Not an error: an overwriting topic's slow subscriber is told, and goes on.
      fmt::print(stderr, "shmbox: {}: {} lost before message {} (overwritten before they were read)\n", object,
                 plural(got->lost, "message"), got->sequence);
    }
    const Metadata metadata{.kind = "topic", .at = args.name, .sequence = got->sequence, .lost = got->lost};
    if (auto done = output.write(record_of(message, metadata, framing)); !done) {
      return fail_io(Error{Errc::system, "stdout",
                           fmt::format("{}{}; message {} was received and not written", done.error().detail(),
                                       written_so_far(written, count), got->sequence)});
    }
  }
  return EX_OK;
}

int remove(const TopicArgs& args) {
  auto removed = Topic::remove(args.name);
  return removed ? EX_OK : fail(removed.error());
}

}  // namespace

void add_topic_command(CLI::App& app, int& exit_status) {
  auto args = std::make_shared<TopicArgs>();
  auto* topic_cmd = app.add_subcommand("topic", "Topics: every subscriber gets every message");
  topic_cmd->require_subcommand(1);

  auto* create_cmd = topic_cmd->add_subcommand(
      "create", "Create a topic (mode 0600 unless --mode; owned by the system, until topic rm)");
  create_cmd->add_option("name", args->name, "Topic name, or nats://host:port/NAME")->required();
  create_cmd->add_option("--capacity", args->capacity, "Messages the topic keeps, 1 to 16384 (default 64)");
  create_cmd->add_option("--history", args->history_kept,
                         "The most a late subscriber may ask for, up to the capacity (default 0)");
  create_cmd->add_option("--overflow", args->overflow,
                         "block: publishers wait for the slowest live subscriber (default); overwrite: slow "
                         "subscribers lose the oldest messages and are told (the default and only choice on nats://)");
  create_cmd->add_option("--max-size", args->max_size, "Largest message: 4096, 64KiB, 1MiB (default 4KiB)");
  create_cmd->add_option("--max-subscribers", args->max_subscribers, "Subscribers at once, 1 to 128 (default 16)");
  create_cmd->add_option("--max-publishers", args->max_publishers, "Publishers at once, 1 to 256 (default 8; local only)");
  create_cmd->add_option("--mode", args->mode, "Permission bits in octal (default 600; local only)");
  create_cmd->callback([args, &exit_status] { exit_status = create(*args); });

  auto* pub_cmd = topic_cmd->add_subcommand(
      "pub", "Publish each MESSAGE, or the --file, or each line (--null: NUL-ended record) of stdin");
  pub_cmd->add_option("name", args->name, "Topic name, or nats://host:port/NAME")->required();
  pub_cmd->add_option("message", args->messages, "Messages to publish");
  pub_cmd->add_option("--file", args->file, "Publish this file's bytes as one message");
  pub_cmd->add_flag("--null", args->null, "Split stdin on NUL bytes instead of newlines");
  auto* pub_nonblock = pub_cmd->add_flag("--nonblock", args->nonblock,
                                         "Fail at once (exit 75) when a blocking topic is full");
  pub_cmd->add_option("--timeout", args->timeout, "Wait at most this long for room (exit 75)")->excludes(pub_nonblock);
  pub_cmd->callback([args, &exit_status] { exit_status = publish(*args); });

  auto* sub_cmd = topic_cmd->add_subcommand(
      "sub", "Print each message published from now on, each on its own line (losses, if any, on stderr)");
  sub_cmd->add_option("name", args->name, "Topic name, or nats://host:port/NAME")->required();
  sub_cmd->add_option("--history", args->history,
                      "Also the last H messages the topic keeps (bare: all it lets a late subscriber have)")
      ->expected(0, 1)
      ->default_str("all");
  sub_cmd->add_option("--count", args->count, "Stop after this many messages (default: no limit)");
  auto* sub_nonblock = sub_cmd->add_flag(
      "--nonblock", args->nonblock, "Stop when no message waits (with --count, short of it: exit 75)");
  sub_cmd->add_option("--timeout", args->timeout, "Stop after this long in all (with --count, short of it: exit 75)")
      ->excludes(sub_nonblock);
  sub_cmd->add_flag("--null", args->null, "End each message with a NUL byte instead of a newline");
  sub_cmd->add_flag("--json", args->json, "One JSON object per line: topic, sequence, lost, size, data (base64)");
  sub_cmd->add_flag("--raw", args->raw, "Exactly one message's bytes, nothing added");
  sub_cmd->callback([args, &exit_status] { exit_status = subscribe(*args); });

  auto* rm_cmd = topic_cmd->add_subcommand("rm", "Remove a topic: its subscribers stop (exit 69, closed)");
  rm_cmd->add_option("name", args->name, "Topic name, or nats://host:port/NAME")->required();
  rm_cmd->callback([args, &exit_status] { exit_status = remove(*args); });
}

}  // namespace shmbox::cli
