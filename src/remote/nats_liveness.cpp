// Whether a handle's mailbox still lives: closed, removed, its owner gone (lease.hpp), or
// a cluster electing a leader, to be waited out.
#include "remote/nats_mailbox.hpp"

#include <nats/nats.h>

#include <chrono>
#include <thread>

#include "remote/lease.hpp"
#include "remote/nats_handles.hpp"
#include "remote/nats_streams.hpp"

namespace shmbox::detail {

// Closed: the stream says so, or the meta leader says it does not exist. Not hearing
// back (a cluster electing a leader, a reconnect) is no proof of either.
std::optional<Error> NatsMailbox::closed_state() {
  if (auto gone = owner_gone()) return gone;
  OwnedStreamInfo info;
  jsErrCode code = static_cast<jsErrCode>(0);
  const natsStatus status = js_GetStreamInfo(out(info), connection_->jetstream.get(), stream_of(name_).c_str(), nullptr, &code);
  if (status == NATS_OK && marked(info->Config->Description, closed_mark)) {
    closed_ = true;
    return Error{Errc::closed, name_.object, "is closed"};
  }
  if (stream_removed(status, code, connection_->jetstream.get(), stream_of(name_))) {
    closed_ = true;
    return removed_error(name_);
  }
  return std::nullopt;
}

// A request about the receivers' consumer that got no answer, "not found" or a plain
// error, while the deadline lasts: a cluster electing a leader (seconds; pull requests
// pending at the old leader come back as errors), or a mailbox removed, which only the
// meta leader can tell (asked at most once a second: each look costs round trips, and a
// non-blocking call pays at most one). Any of these that lasts 30 s under a listed stream
// is no election: the consumer was deleted, or its servers lost their quorum. A server
// away (timeouts, a reconnecting connection) is waited out. The error to return, or none
// after a pause: ask again.
std::optional<Error> NatsMailbox::wait_out(natsStatus status, jsErrCode code, Deadline deadline, const std::string& doing) {
  const char* detail = nats_GetLastError(nullptr);  // before other calls replace it
  const std::string reason = status == NATS_ERR && detail != nullptr ? detail : natsStatus_GetText(status);
  const auto now = Deadline::clock::now();
  if (now >= next_closed_check_) {
    next_closed_check_ = now + std::chrono::seconds{1};
    if (auto ended = closed_state()) return ended;
  }
  const bool consumer_missing = code == JSConsumerNotFoundErr;
  if (status == NATS_ERR || status == NATS_NO_RESPONDERS || consumer_missing) {
    if (!failing_since_) failing_since_ = now;
    if (now - *failing_since_ > std::chrono::seconds{30}) {
      if (consumer_missing) return Error{Errc::closed, name_.object, "is closed: its receivers' consumer was removed"};
      return Error{Errc::system, name_.object, doing + " for 30 s: " + reason};
    }
  } else if (!transient(status, code)) {
    return Error{Errc::system, name_.object, doing + ": " + reason};
  }
  if (deadline.is_none()) return Error{Errc::would_block, {}, {}};
  if (deadline.expired()) return Error{Errc::timeout, name_.object, "timed out: " + doing + ": " + reason};
  std::this_thread::sleep_for(std::chrono::milliseconds{50});
  return std::nullopt;
}

// At most once a second, and not by the owner itself: a lapsed lease means the owner
// has gone, and whoever sees it first removes the mailbox.
std::optional<Error> NatsMailbox::owner_gone() {
  if (owner_.owner.empty() || closed_) return std::nullopt;
  const auto now = Deadline::clock::now();
  if (now < next_owner_check_) return std::nullopt;
  next_owner_check_ = now + std::chrono::seconds{1};
  // Two looks at least 2.5 s apart (lease.hpp), without waiting in between: a
  // non-blocking call must not sleep.
  if (keeps_lease(name_, owner_) || lease_state(*connection_, name_, owner_) != LeaseState::lapsed) {
    lapsed_since_.reset();
    return std::nullopt;
  }
  if (!lapsed_since_) lapsed_since_ = now;
  if (now - *lapsed_since_ < heartbeat_interval + std::chrono::milliseconds{500}) return std::nullopt;
  (void)delete_mailbox_stream(*connection_, name_, owner_);
  closed_ = true;
  return Error{Errc::closed, name_.object, "is closed: its owner, " + describe_owner(owner_) + ", has gone"};
}

}  // namespace shmbox::detail
