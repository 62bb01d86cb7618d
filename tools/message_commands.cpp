// send and recv: messages between the shell and a mailbox or an endpoint. A message
// leaves its mailbox only once it has been written out (a failed write puts it back);
// input is read in bounded memory; a partial success says exactly what was done.
#include <fmt/core.h>
#include <sysexits.h>
#include <unistd.h>

#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "cli_support.hpp"
#include "commands.hpp"
#include "exit_codes.hpp"
#include "input.hpp"
#include "message_io.hpp"
#include "output.hpp"
#include "shmbox/endpoint.hpp"
#include "shmbox/mailbox.hpp"

namespace shmbox::cli {
namespace {

struct MessageArgs {
  std::string name;
  std::vector<std::string> messages;
  std::string file;
  bool null = false;  // records end with NUL instead of a newline
  bool json = false;
  bool raw = false;
  bool nonblock = false;
  std::optional<std::string> timeout;
  std::string count = "1";
  // Endpoints: send --to P, recv --from Q, both as the endpoint --as.
  std::string to;
  std::string from;
  std::string as;
  std::string mode = "600";
};

Result<Deadline> deadline_of(const MessageArgs& args) {
  if (args.nonblock) return no_wait;
  if (args.timeout) return parse_duration("--timeout", *args.timeout);
  return forever;
}

int usage_error(const std::string& what) { return fail(Error{Errc::invalid_argument, "usage", what}); }

// An endpoint to send or receive through: --as NAME, or one named after this process.
Result<Endpoint> join_as(const MessageArgs& args) {
  auto mode = parse_mode("--mode", args.mode);
  if (!mode) return std::unexpected(mode.error());
  return Endpoint::join(args.as.empty() ? "shmbox-cli-" + std::to_string(::getpid()) : args.as,
                        EndpointOptions{.mode = *mode});
}

// --- send -----------------------------------------------------------------------------

MessageSource source_of(const MessageArgs& args, std::size_t max_size) {
  return MessageSource{args.messages, args.file, args.null, max_size};
}

std::size_t endpoint_max_size(const std::string& to) {
  auto status = Endpoint::stat(to);
  // A missing endpoint: the send itself says so, after at most one record is read.
  return status ? status->max_message_size : EndpointOptions{}.max_message_size;
}

int send(MessageArgs args) {
  if (!args.to.empty() && !args.name.empty()) {
    // With --to there is no mailbox name: the first word is the first message.
    args.messages.insert(args.messages.begin(), std::move(args.name));
    args.name.clear();
  }
  if (args.name.empty() == args.to.empty()) return usage_error("send takes a mailbox name or --to ENDPOINT");
  if (!args.file.empty() && !args.messages.empty()) return usage_error("send takes MESSAGEs or --file, not both");
  if (args.null && (!args.file.empty() || !args.messages.empty())) {
    return usage_error("send --null splits standard input; it takes no MESSAGE or --file");
  }
  auto deadline = deadline_of(args);
  if (!deadline) return fail(deadline.error());
  if (!args.to.empty()) {
    auto me = join_as(args);
    if (!me) return fail(me.error());
    auto source = source_of(args, endpoint_max_size(args.to));
    return send_all(source, endpoint_object(args.to), [&](std::span<const std::byte> message) -> Result<void> {
      auto sent = me->send(args.to, message, *deadline);
      if (!sent && sent.error().errc() == Errc::would_block) {
        return std::unexpected(Error{Errc::would_block, {}, "cannot take it now"});
      }
      return sent;
    });
  }
  auto box = Mailbox::open(args.name);
  if (!box) return fail(box.error());
  auto source = source_of(args, box->max_message_size());
  return send_all(source, mailbox_object(args.name), [&](std::span<const std::byte> message) -> Result<void> {
    auto sent = box->send(message, *deadline);
    if (!sent && sent.error().errc() == Errc::would_block) {
      return std::unexpected(Error{Errc::would_block, {},
                                   box->buffering() == Buffering::zero ? "has no receiver waiting" : "is full"});
    }
    return sent;
  });
}

// --- recv -----------------------------------------------------------------------------

// A receive that ended early: what came out, and why no more did.
Error stopped_after(const Error& cause, std::uint64_t written, std::uint64_t count) {
  if (count == 1 || cause.errc() == Errc::would_block) return cause;
  return Error{cause.errc(), std::string{cause.object()},
               fmt::format("{}; {} of {} written", cause.detail(), written, plural(count, "message"))};
}

int receive_from_mailbox(const MessageArgs& args, Deadline deadline, Framing framing, std::uint64_t count) {
  auto box = Mailbox::open(args.name);
  if (!box) return fail(box.error());
  auto output = Output::standard_output();
  for (std::uint64_t written = 0; written < count; ++written) {
    std::optional<Error> output_failed;
    auto got = box->receive_with(
        [&](const Delivery& message) -> Result<void> {
          auto done = output.write(record_of(message.bytes, {"mailbox", args.name, message.sequence}, framing));
          if (!done) output_failed = done.error();
          return done;
        },
        deadline);
    if (got) continue;
    if (output_failed) {
      return fail_io(Error{Errc::system, "stdout",
                           fmt::format("{}; {} of {} written, {} in {}", output_failed->detail(), written,
                                       plural(count, "message"),
                                       count - written == 1 ? "the message not written stays queued"
                                                            : "the messages not written stay queued",
                                       mailbox_object(args.name))});
    }
    const Error cause = got.error().errc() == Errc::would_block
                            ? Error{Errc::would_block, mailbox_object(args.name),
                                    written == 0 ? "is empty" : fmt::format("is empty; {} of {} received", written, count)}
                            : got.error();
    return fail(stopped_after(cause, written, count));
  }
  return EX_OK;
}

// recv --as P [--from Q]: messages sent to endpoint P (by Q only, with --from; else by
// anyone, each shown as "sender: message"). An endpoint cannot take a message back: one
// that cannot be written is reported as lost, by sender and size.
int receive_at_endpoint(const MessageArgs& args, Deadline deadline, Framing framing, std::uint64_t count) {
  auto me = join_as(args);
  if (!me) return fail(me.error());
  auto output = Output::standard_output();
  std::vector<std::byte> message;
  for (std::uint64_t written = 0; written < count; ++written) {
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
      const Error cause = got.error().errc() == Errc::would_block
                              ? Error{Errc::would_block, endpoint_object(me->name()),
                                      written == 0 ? "is empty" : fmt::format("is empty; {} of {} received", written, count)}
                              : got.error();
      return fail(stopped_after(cause, written, count));
    }
    const Metadata metadata{"endpoint", me->name(), std::nullopt, args.from.empty() ? &sender : nullptr};
    if (auto done = output.write(record_of(message, metadata, framing)); !done) {
      return fail_io(Error{Errc::system, "stdout",
                           fmt::format("{}; {} of {} written; message {} (from '{}', {} bytes) was received "
                                       "from {} and is lost",
                                       done.error().detail(), written, plural(count, "message"), written + 1, sender,
                                       message.size(), endpoint_object(me->name()))});
    }
  }
  return EX_OK;
}

int receive(const MessageArgs& args) {
  const bool at_endpoint = !args.as.empty();
  if (!args.from.empty() && !at_endpoint) return usage_error("recv --from needs --as ENDPOINT, the endpoint to receive at");
  if (!args.name.empty() == at_endpoint) return usage_error("recv takes a mailbox name or --as ENDPOINT");
  if (args.null + args.json + args.raw > 1) return usage_error("recv takes one of --null, --json and --raw");
  auto count = parse_count("--count", args.count, 1, std::uint64_t{1} << 62);
  if (!count) return fail(count.error());
  if (args.raw && *count != 1) return usage_error("recv --raw writes exactly one message; it takes no --count");
  auto deadline = deadline_of(args);
  if (!deadline) return fail(deadline.error());
  const Framing framing = args.raw ? Framing::raw : args.json ? Framing::json : args.null ? Framing::nul : Framing::lines;
  return at_endpoint ? receive_at_endpoint(args, *deadline, framing, *count)
                     : receive_from_mailbox(args, *deadline, framing, *count);
}

void add_wait_options(CLI::App* command, MessageArgs& args) {
  auto* nonblock = command->add_flag("--nonblock", args.nonblock, "Fail at once (exit 75) instead of waiting");
  command->add_option("--timeout", args.timeout, "Wait at most this long: 250ms, 2s, 1.5m (exit 75)")->excludes(nonblock);
}

}  // namespace

void add_message_commands(CLI::App& app, int& exit_status) {
  auto args = std::make_shared<MessageArgs>();

  auto* send_cmd = app.add_subcommand(
      "send", "Send each MESSAGE, or the --file, or each line (--null: NUL-ended record) of stdin, to a mailbox "
              "or an endpoint");
  send_cmd->add_option("name", args->name, "Mailbox name (or --to)");
  send_cmd->add_option("message", args->messages, "Messages to send");
  send_cmd->add_option("--file", args->file, "Send this file's bytes as one message");
  send_cmd->add_flag("--null", args->null, "Split stdin on NUL bytes instead of newlines");
  send_cmd->add_option("--to", args->to, "Send to this endpoint (a process joined under the name) instead");
  send_cmd->add_option("--as", args->as, "With --to: the endpoint name to send as (default shmbox-cli-PID)");
  send_cmd->add_option("--mode", args->mode, "With --to: permission bits of the endpoint joined (--as), in octal");
  add_wait_options(send_cmd, *args);
  send_cmd->callback([args, &exit_status] { exit_status = send(*args); });

  auto* recv_cmd = app.add_subcommand(
      "recv", "Receive messages, each written on its own line; a message leaves the mailbox only once written");
  recv_cmd->add_option("name", args->name, "Mailbox name (or --as)");
  recv_cmd->add_option("--as", args->as, "Receive at this endpoint instead, joining under its name; "
                                         "each message is shown as 'sender: message'");
  recv_cmd->add_option("--from", args->from, "With --as: only messages from this endpoint, shown bare");
  recv_cmd->add_option("--mode", args->mode, "With --as: permission bits of the endpoint joined, in octal");
  recv_cmd->add_option("--count", args->count, "How many messages to receive (default 1)");
  recv_cmd->add_flag("--null", args->null, "End each message with a NUL byte instead of a newline");
  recv_cmd->add_flag("--json", args->json,
                     "One JSON object per line: the bytes base64-encoded (data), size, sequence or sender");
  recv_cmd->add_flag("--raw", args->raw, "Exactly one message's bytes, nothing added");
  add_wait_options(recv_cmd, *args);
  recv_cmd->callback([args, &exit_status] { exit_status = receive(*args); });
}

}  // namespace shmbox::cli
