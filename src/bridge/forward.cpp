#include <sys/stat.h>

#include <cerrno>
#include <optional>
#include <string>
#include <thread>

#include "mailbox/mailbox_state.hpp"
#include "platform/process.hpp"
#include "remote/nats_mailbox.hpp"
#include "segment_factory.hpp"
#include "shmbox/bridge.hpp"

namespace shmbox {
namespace {

using namespace std::chrono_literals;

// How long one attempt to hand a message on may take before the bridge reports the
// failure and tries again (and, for a remote source, before the message goes back).
constexpr auto attempt_time = 1s;
// While idle the bridge looks at `stop` this often.
constexpr auto idle_check = 100ms;

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
    if (options.on_retry) options.on_retry(sent.error());
    // A timed-out attempt has waited already; a closed or unreachable mailbox answers at once.
    if (sent.error().errc() != Errc::timeout) std::this_thread::sleep_for(idle_check);
  }
}

// What tells this mailbox from every other, of any name, on any machine, before or
// after: its file (device and inode) on this boot of this machine.
Result<std::string> instance_of(const Mailbox& box) {
  struct stat st {};
  const std::string boot = platform::boot_id();
  if (boot.empty() || ::fstat(detail::SegmentFactory::descriptor(*box.state().mapping), &st) != 0) {
    return std::unexpected(Error{Errc::system, "mailbox '" + box.name() + "'",
                                 "cannot tell this mailbox's file from others (no boot id, or fstat failed)", errno});
  }
  return boot + "-" + std::to_string(st.st_dev) + "-" + std::to_string(st.st_ino);
}

Result<std::uint64_t> forward_local(Mailbox& from, Mailbox& to, const std::atomic<bool>& stop,
                                    const ForwardOptions& options) {
  const auto instance = instance_of(from);
  if (!instance) return std::unexpected(instance.error());
  const std::string id_prefix = from.name() + "-" + *instance + "-";
  std::uint64_t forwarded = 0;
  while (!stop.load(std::memory_order_relaxed)) {
    // Read in place: the slot stays ours, and the message in the mailbox, until released.
    auto message = from.receive_in_place(idle_check);
    if (!message) {
      if (message.error().errc() == Errc::timeout) continue;
      if (message.error().errc() == Errc::closed) break;
      return std::unexpected(message.error());
    }
    send_until_accepted(to, message->data(), id_prefix + std::to_string(message->sequence()), options);
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
    std::optional<Error> refused;  // by `to`: not to be taken for the source's own error
    auto got = from.remote_mailbox().receive_to(
        [&](std::span<const std::byte> message, std::uint64_t, const std::string& id) -> Result<std::size_t> {
          auto sent = send_once(to, message, id);
          if (!sent) {
            refused = sent.error();
            return std::unexpected(sent.error());
          }
          return message.size();
        },
        idle_check);
    if (got) {
      ++forwarded;
      if (options.on_forwarded) options.on_forwarded(forwarded);
      continue;
    }
    if (refused) {
      if (options.on_retry) options.on_retry(*refused);
      if (refused->errc() != Errc::timeout) std::this_thread::sleep_for(idle_check);
      continue;
    }
    const Error& error = got.error();
    if (error.errc() == Errc::closed) break;
    if (error.errc() == Errc::timeout || error.errc() == Errc::would_block) continue;  // idle
    // The server restarting: the message waits in `from`.
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
