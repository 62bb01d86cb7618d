#include <sys/stat.h>

#include <string>
#include <thread>

#include "mailbox/mailbox_state.hpp"
#include "remote/nats_mailbox.hpp"
#include "segment_factory.hpp"
#include "shmbox/bridge.hpp"

namespace shmbox {
namespace {

using namespace std::chrono_literals;

// How long one attempt to hand a message on may take before the bridge reports the
// failure and tries again (and, for a remote source, before the message goes back).
constexpr auto attempt_time = 1s;
// Between receives the bridge looks at `stop` this often.
constexpr auto idle_check = 100ms;

bool transient(const Error& error) { return error.errc() == Errc::timeout || error.errc() == Errc::would_block; }

// One attempt to hand `message` to `to`; `id` (empty: none) lets a remote mailbox store
// a message sent twice once.
Result<void> send_once(Mailbox& to, std::span<const std::byte> message, const std::string& id) {
  if (to.remote() && !id.empty()) return to.remote_mailbox().send(message, attempt_time, id);
  return to.send(message, attempt_time);
}

// Sends until `to` accepts: the message is held meanwhile, so nothing may give up on it.
void send_until_accepted(Mailbox& to, std::span<const std::byte> message, const std::string& id,
                         const ForwardOptions& options) {
  for (;;) {
    auto sent = send_once(to, message, id);
    if (sent) return;
    if (!transient(sent.error())) {
      if (options.on_retry) options.on_retry(sent.error());
      std::this_thread::sleep_for(idle_check);  // a closed or unreachable mailbox answers at once
    }
  }
}

// What tells this mailbox from an earlier or later one of the same name: its file.
std::string instance_of(const Mailbox& box) {
  struct stat st {};
  if (::fstat(detail::SegmentFactory::descriptor(*box.state().mapping), &st) != 0) return {};
  return std::to_string(st.st_dev) + "-" + std::to_string(st.st_ino);
}

Result<std::uint64_t> forward_local(Mailbox& from, Mailbox& to, const std::atomic<bool>& stop,
                                    const ForwardOptions& options) {
  const std::string instance = from.name() + "-" + instance_of(from) + "-";
  std::uint64_t forwarded = 0;
  while (!stop.load(std::memory_order_relaxed)) {
    // Read in place: the slot stays ours, and the message in the mailbox, until released.
    auto message = from.receive_in_place(idle_check);
    if (!message) {
      if (message.error().errc() == Errc::timeout) continue;
      if (message.error().errc() == Errc::closed) break;
      return std::unexpected(message.error());
    }
    send_until_accepted(to, message->data(), instance + std::to_string(message->sequence()), options);
    message->release();
    ++forwarded;
    if (options.on_forwarded) options.on_forwarded(forwarded);
  }
  return forwarded;
}

Result<std::uint64_t> forward_remote(Mailbox& from, Mailbox& to, const std::atomic<bool>& stop,
                                     const ForwardOptions& options) {
  std::uint64_t forwarded = 0;
  while (!stop.load(std::memory_order_relaxed)) {
    // Acknowledged only if the send succeeds; a failed one hands the message back at once
    // (within the consumer's ack wait), to come round again.
    auto got = from.remote_mailbox().receive_to(
        [&](std::span<const std::byte> message, const std::string& id) -> Result<std::size_t> {
          auto sent = send_once(to, message, id);
          if (!sent) return std::unexpected(sent.error());
          return message.size();
        },
        idle_check);
    if (got) {
      ++forwarded;
      if (options.on_forwarded) options.on_forwarded(forwarded);
      continue;
    }
    const Error& error = got.error();
    if (error.errc() == Errc::closed) break;
    if (transient(error)) continue;
    // The server restarting, or `to` refusing: both pass, and the message waits in `from`.
    if (options.on_retry) options.on_retry(error);
    std::this_thread::sleep_for(idle_check);
  }
  return forwarded;
}

}  // namespace

Result<std::uint64_t> forward(Mailbox& from, Mailbox& to, const std::atomic<bool>& stop,
                              const ForwardOptions& options) {
  if (to.max_message_size() < from.max_message_size()) {
    return std::unexpected(Error{Errc::invalid_argument, "mailbox '" + to.name() + "'",
                                 "holds messages of up to " + std::to_string(to.max_message_size()) +
                                     " bytes; mailbox '" + from.name() + "' carries up to " +
                                     std::to_string(from.max_message_size())});
  }
  return from.remote() ? forward_remote(from, to, stop, options) : forward_local(from, to, stop, options);
}

}  // namespace shmbox
