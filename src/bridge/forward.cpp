#include <optional>
#include <string>
#include <thread>

#include "shmbox/bridge.hpp"

namespace shmbox {
namespace {

using namespace std::chrono_literals;

// How long one attempt to hand a message on may take before the bridge reports the
// failure and tries again (and, for a remote source, before the message goes back).
constexpr auto attempt_time = 1s;
// While idle the bridge looks at `stop` this often.
constexpr auto idle_check = 100ms;

}  // namespace

Result<std::uint64_t> forward(Mailbox& from, Mailbox& to, const std::atomic<bool>& stop,
                              const ForwardOptions& options) {
  if (to.max_message_size() < from.max_message_size()) {
    return std::unexpected(Error{Errc::invalid_argument, "mailbox '" + to.name() + "'",
                                 "holds messages of up to " + std::to_string(to.max_message_size()) +
                                     " bytes; mailbox '" + from.name() + "' carries up to " +
                                     std::to_string(from.max_message_size())});
  }
  std::uint64_t forwarded = 0;
  while (!stop.load(std::memory_order_relaxed)) {
    // The message leaves `from` only once `to` has it; refused, it goes back to be
    // received again (before the messages queued after it). Its id lets a mailbox that
    // de-duplicates store it once however often it comes round.
    std::optional<Error> refused;  // by `to`: not to be taken for the source's own error
    auto got = from.receive_with(
        [&](const Delivery& message) -> Result<void> {
          auto sent = to.send(message.bytes, attempt_time, message.id);
          if (!sent) refused = sent.error();
          return sent;
        },
        idle_check);
    if (got) {
      ++forwarded;
      if (options.on_forwarded) options.on_forwarded(forwarded);
      continue;
    }
    if (refused) {
      if (options.on_retry) options.on_retry(*refused);
      // A timed-out attempt has waited already; a closed or unreachable mailbox answers at once.
      if (refused->errc() != Errc::timeout) std::this_thread::sleep_for(idle_check);
      continue;
    }
    const Error& error = got.error();
    if (error.errc() == Errc::closed) break;
    if (error.errc() == Errc::timeout || error.errc() == Errc::would_block) continue;  // idle
    // A remote source's server away or restarting: the message waits in `from`. Causes
    // that do not pass (a corrupt mailbox) end the bridge.
    if (error.errc() != Errc::system && error.errc() != Errc::unreachable) return std::unexpected(error);
    if (options.on_retry) options.on_retry(error);
    std::this_thread::sleep_for(idle_check);
  }
  return forwarded;
}

}  // namespace shmbox
