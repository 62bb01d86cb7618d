#include "remote/nats_mailbox.hpp"

#include <nats/nats.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <thread>

#include "garbage.hpp"
#include "name.hpp"
#include "platform/process.hpp"
#include "remote/lease.hpp"
#include "remote/nats_handles.hpp"
#include "remote/nats_streams.hpp"

namespace shmbox::detail {
namespace {

constexpr const char* durable_consumer = "receivers";
// A non-blocking receive still asks the server: one round trip, at most this long
// (cnats refuses a fetch without any wait).
constexpr std::int64_t no_wait_fetch_ms = 10;
// How long the server remembers a message id: a retried publish within it is stored once.
constexpr std::int64_t duplicate_window_ns = std::int64_t{120} * 1'000'000'000;
// The server's size limit counts headers too, and every message carries its id in one.
constexpr std::int32_t header_allowance = 256;

constexpr std::int64_t forever_ms = std::int64_t{24} * 3600 * 1000;
// A rendezvous receiver's answer when it could not take the message (an empty one: taken).
constexpr std::string_view refused_reply = "refused";

// Milliseconds left until `deadline`, at least 1 (cnats takes no zero wait).
std::int64_t wait_ms(Deadline deadline, std::int64_t longest) {
  if (deadline.is_none()) return no_wait_fetch_ms;
  if (deadline.is_forever()) return longest;
  const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline.until() - Deadline::clock::now()).count();
  return std::clamp<std::int64_t>(left, 1, longest);
}

// What names a stored message for good: its mailbox, that stream's creation (a later
// mailbox of the same name starts its sequence again) and its place in the stream.
std::string id_of(std::uint64_t sequence, const std::string& mailbox, std::int64_t created) {
  if (sequence == 0) return {};
  return mailbox + "-" + std::to_string(created) + "-" + std::to_string(sequence);
}

HandedOver::Stored stored_as(natsMsg* message) {
  OwnedMsgMetaData meta;
  if (natsMsg_GetMetaData(out(meta), message) != NATS_OK) return {};
  return {meta->Sequence.Stream, meta->Timestamp};
}

// An ack that finds the consumer between leaders is asked again, for up to about the time
// an election takes when the caller may wait (each try that times out has waited 2 s); a
// non-blocking receive tries once. An ack that never got through comes round again as a
// redelivery, which HandedOver passes over.
void acknowledge(natsMsg* message, bool may_wait) {
  const auto give_up = Deadline::clock::now() + std::chrono::seconds{6};
  for (;;) {
    const natsStatus status = natsMsg_AckSync(message, nullptr, nullptr);
    if (status == NATS_OK || (status != NATS_NO_RESPONDERS && status != NATS_TIMEOUT)) return;
    if (!may_wait || Deadline::clock::now() >= give_up) return;
    if (status == NATS_NO_RESPONDERS) std::this_thread::sleep_for(std::chrono::milliseconds{50});
  }
}

}  // namespace

bool HandedOver::contains(const Stored& message) const {
  // Deliveries come in stream order but for redeliveries: only those need a search.
  if (message.sequence == 0 || message.sequence > highest_) return false;
  return std::any_of(recent_.begin(), recent_.end(), [&](const auto& entry) { return entry.first == message; });
}

void HandedOver::add(const Stored& message) {
  constexpr auto kept_for = std::chrono::seconds{30};
  constexpr std::size_t most_kept = 65536;
  if (message.sequence == 0) return;
  const auto now = Deadline::clock::now();
  while (!recent_.empty() && (now - recent_.front().second > kept_for || recent_.size() >= most_kept)) recent_.pop_front();
  recent_.emplace_back(message, now);
  highest_ = std::max(highest_, message.sequence);
}

NatsMailbox::NatsMailbox(RemoteName name, std::unique_ptr<NatsConnection> connection) noexcept
    : name_(std::move(name)), connection_(std::move(connection)) {}

NatsMailbox::~NatsMailbox() = default;

Result<std::unique_ptr<NatsMailbox>> NatsMailbox::create(const RemoteName& name, const MailboxOptions& options) {
  if (options.buffering == Buffering::bounded && options.capacity == 0) {
    return std::unexpected(Error{Errc::invalid_argument, name.object, "capacity must be at least 1"});
  }
  // nats-server 2.9 lets each copy of a replicated stream enforce its limit alone: a copy
  // that refuses a message its leader took falls a sequence out of step, and the next
  // failover loses acknowledged messages (docs/design.md, "Replicas and bounded mailboxes").
  if (options.buffering == Buffering::bounded && options.replicas > 1) {
    return std::unexpected(Error{Errc::invalid_argument, name.object,
                                 "a bounded mailbox cannot have replicas: the copies of a full stream drift apart on "
                                 "nats-server 2.9 and a failover loses messages; use unbounded buffering"});
  }
  auto connection = NatsConnection::open(name);
  if (!connection) return std::unexpected(connection.error());
  const std::int64_t max_payload = natsConnection_GetMaxPayload((*connection)->connection.get());
  if (static_cast<std::int64_t>(options.max_message_size) + header_allowance > max_payload) {
    return std::unexpected(Error{Errc::too_large, name.object,
                                 "max_message_size " + std::to_string(options.max_message_size) +
                                     " (and a message id) is over the server's maximum payload of " +
                                     std::to_string(max_payload) + " bytes"});
  }
  const std::string stream = stream_of(name), subject = subject_of(name);
  jsErrCode code = static_cast<jsErrCode>(0);
  // AddStream accepts a stream that exists with the same configuration: look first, so
  // that create is exclusive as it is for local mailboxes.
  // A process-owned one whose owner has gone is removed, as a local one would be.
  OwnedStreamInfo existing;
  if (js_GetStreamInfo(out(existing), (*connection)->jetstream.get(), stream.c_str(), nullptr, &code) == NATS_OK) {
    const OwnerMark previous = owner_mark_in(existing->Config->Description);
    if (previous.owner.empty() || !owner_has_gone(**connection, name, previous)) {
      return std::unexpected(Error{Errc::already_exists, name.object, "already exists on " + name.server});
    }
    (void)delete_mailbox_stream(**connection, name, previous);
  }
  // Process-owned: the lease first, so that the mailbox is never seen without one.
  const bool owned = options.ownership == Ownership::process;
  const OwnerMark owner = owned ? new_owner_mark() : OwnerMark{};
  if (owned) {
    if (auto leased = start_lease(**connection, name, owner, options.replicas); !leased) return std::unexpected(leased.error());
  }
  std::string description = owned ? describe(owner) : std::string{};
  if (options.buffering == Buffering::zero) description += (owned ? "; " : "") + std::string{zero_capacity_mark};
  jsStreamConfig config;
  jsStreamConfig_Init(&config);
  const char* subjects[] = {subject.c_str()};
  config.Name = stream.c_str();
  config.Subjects = subjects;
  config.SubjectsLen = 1;
  config.Retention = js_WorkQueuePolicy;
  config.MaxMsgs = options.buffering == Buffering::bounded ? std::int64_t{options.capacity} : -1;
  config.MaxMsgSize = static_cast<std::int32_t>(options.max_message_size) + header_allowance;
  config.Discard = js_DiscardNew;  // a full bounded mailbox refuses, the sender waits
  // A system-owned mailbox survives server restarts; a process-owned one need not.
  config.Storage = options.ownership == Ownership::system ? js_FileStorage : js_MemoryStorage;
  config.Duplicates = duplicate_window_ns;
  config.Replicas = options.replicas;
  if (!description.empty()) config.Description = description.c_str();
  OwnedStreamInfo info;
  natsStatus status = js_AddStream(out(info), (*connection)->jetstream.get(), &config, nullptr, &code);
  const std::int64_t created = status == NATS_OK ? info->Created : 0;
  if (status != NATS_OK) {
    // The lease stream stays either way: another creator may use it (our subject ages out).
    if (code == JSStreamNameExistErr) return std::unexpected(Error{Errc::already_exists, name.object, "already exists on " + name.server});
    return std::unexpected(nats_error(Errc::system, name, "cannot create its stream", status));
  }
  jsConsumerConfig consumer;
  jsConsumerConfig_Init(&consumer);
  consumer.Durable = durable_consumer;
  consumer.AckPolicy = js_AckExplicit;
  consumer.FilterSubject = subject.c_str();
  // A receive acknowledges as soon as the bytes are the caller's, so the wait only has
  // to outlast a copy: a receiver that died holding a message has it redelivered this soon.
  consumer.AckWait = std::int64_t{2} * 1'000'000'000;
  OwnedConsumerInfo consumer_info;
  status = js_AddConsumer(out(consumer_info), (*connection)->jetstream.get(), stream.c_str(), &consumer, nullptr, &code);
  if (status != NATS_OK) {
    if (owned) {
      (void)delete_mailbox_stream(**connection, name, owner);
    } else {
      (void)js_DeleteStream((*connection)->jetstream.get(), stream.c_str(), nullptr, nullptr);
    }
    return std::unexpected(nats_error(Errc::system, name, "cannot create its receivers' consumer", status));
  }
  if (owned) keep_lease(name, owner, options.replicas);
  auto mailbox = std::unique_ptr<NatsMailbox>(new NatsMailbox(name, std::move(*connection)));
  mailbox->buffering_ = options.buffering;
  mailbox->capacity_ = options.buffering == Buffering::bounded ? options.capacity : 0;
  mailbox->max_message_size_ = options.max_message_size;
  mailbox->created_ = created;
  mailbox->owner_ = owner;
  return mailbox;
}

namespace {

// What a mailbox's stream says of it. Untrusted like shared memory: a stream someone
// else made may hold anything, so every field is read within bounds.
struct StreamFacts {
  Buffering buffering = Buffering::bounded;
  std::uint32_t capacity = 0;
  std::size_t max_message_size = 0;
  bool closed = false;
  std::int64_t created = 0;
  std::uint64_t queued = 0;
  std::uint64_t stored_bytes = 0;
  bool file_storage = false;
  std::uint32_t replicas = 1;
  OwnerMark owner;  // process-owned; empty: system-owned
};

// "process 1234 (server@host)" from "1234 server@host".
std::string describe_owner(const OwnerMark& mark) {
  const auto space = mark.owner.find(' ');
  if (space == std::string::npos) return "process " + mark.owner;
  return "process " + mark.owner.substr(0, space) + " (" + mark.owner.substr(space + 1) + ")";
}

StreamFacts facts_of(const jsStreamInfo& info, natsConnection* connection) {
  const jsStreamConfig& config = *info.Config;
  StreamFacts facts;
  facts.buffering = config.MaxMsgs > 0 ? Buffering::bounded : Buffering::unbounded;
  facts.capacity = config.MaxMsgs > 0 ? static_cast<std::uint32_t>(std::min<std::int64_t>(config.MaxMsgs, UINT32_MAX)) : 0;
  if (marked(config.Description, zero_capacity_mark)) {
    facts.buffering = Buffering::zero;
    facts.capacity = 0;
  }
  const std::int64_t limit = config.MaxMsgSize > 0 ? config.MaxMsgSize : natsConnection_GetMaxPayload(connection);
  facts.max_message_size = static_cast<std::size_t>(std::max<std::int64_t>(limit - header_allowance, 0));
  facts.closed = marked(config.Description, closed_mark);
  facts.created = info.Created;
  facts.queued = info.State.Msgs;
  facts.stored_bytes = info.State.Bytes;
  facts.file_storage = config.Storage == js_FileStorage;
  facts.owner = owner_mark_in(config.Description);
  facts.replicas = static_cast<std::uint32_t>(std::clamp<std::int64_t>(config.Replicas, 1, 5));
  return facts;
}

// The stream's facts, asking again for up to 30 s while a cluster elects a leader (it
// answers nothing meanwhile: seconds, more on a loaded machine). "Not found" is an
// answer once the meta leader agrees.
Result<StreamFacts> read_stream(const RemoteName& name, jsCtx* jetstream, natsConnection* connection) {
  OwnedStreamInfo info;
  jsErrCode code = static_cast<jsErrCode>(0);
  natsStatus status = NATS_OK;
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds{30};
  for (;;) {
    code = static_cast<jsErrCode>(0);
    status = js_GetStreamInfo(out(info), jetstream, stream_of(name).c_str(), nullptr, &code);
    if (status == NATS_OK || stream_removed(status, code, jetstream, stream_of(name))) break;
    if (std::chrono::steady_clock::now() >= give_up) break;
    std::this_thread::sleep_for(std::chrono::milliseconds{100});
  }
  if (status != NATS_OK) {
    if (missing(status, code)) return std::unexpected(not_found_error(name));
    return std::unexpected(nats_error(Errc::system, name, "cannot read its stream", status));
  }
  return facts_of(*info, connection);
}

}  // namespace

Result<std::unique_ptr<NatsMailbox>> NatsMailbox::open(const RemoteName& name) {
  auto connection = NatsConnection::open(name);
  if (!connection) return std::unexpected(connection.error());
  auto facts = read_stream(name, (*connection)->jetstream.get(), (*connection)->connection.get());
  if (!facts) return std::unexpected(facts.error());
  if (!facts->owner.owner.empty() && owner_has_gone(**connection, name, facts->owner)) {
    (void)delete_mailbox_stream(**connection, name, facts->owner);
    return std::unexpected(Error{Errc::not_found, name.object,
                                 "does not exist on " + name.server + ": its owner, " + describe_owner(facts->owner) +
                                     ", has gone"});
  }
  auto mailbox = std::unique_ptr<NatsMailbox>(new NatsMailbox(name, std::move(*connection)));
  mailbox->buffering_ = facts->buffering;
  mailbox->capacity_ = facts->capacity;
  mailbox->max_message_size_ = facts->max_message_size;
  mailbox->closed_ = facts->closed;
  mailbox->created_ = facts->created;
  mailbox->owner_ = facts->owner;
  return mailbox;
}

Result<MailboxStatus> NatsMailbox::stat(const RemoteName& name) {
  auto connection = NatsConnection::open(name);
  if (!connection) return std::unexpected(connection.error());
  auto facts = read_stream(name, (*connection)->jetstream.get(), (*connection)->connection.get());
  if (!facts) return std::unexpected(facts.error());
  MailboxStatus status{
      .name = name.server + "/" + name.name,
      .buffering = facts->buffering,
      .capacity = facts->capacity,
      .max_message_size = static_cast<std::uint32_t>(std::min<std::size_t>(facts->max_message_size, UINT32_MAX)),
      .queued = facts->queued,
      .closed = facts->closed,
      .memory_bytes = facts->stored_bytes,
      .ownership = facts->owner.owner.empty() ? Ownership::system : Ownership::process,
      .remote = true,
      .replicas = facts->replicas,
  };
  if (const OwnerMark& owner = facts->owner; !owner.owner.empty()) {
    const auto space = owner.owner.find(' ');
    status.owner_pid = owner.pid;
    status.owner_name = space == std::string::npos ? std::string{} : owner.owner.substr(space + 1);
    status.owner_alive = keeps_lease(name, owner) || lease_state(**connection, name, owner) != LeaseState::lapsed;
  }
  // Receivers: pull requests waiting at the consumer now, and messages handed out but
  // not yet acknowledged (being received).
  OwnedConsumerInfo consumer;
  jsErrCode code = static_cast<jsErrCode>(0);
  if (js_GetConsumerInfo(out(consumer), (*connection)->jetstream.get(), stream_of(name).c_str(), durable_consumer,
                         nullptr, &code) == NATS_OK) {
    status.receivers = static_cast<std::uint32_t>(std::max<std::int64_t>(consumer->NumWaiting, 0));
    status.in_flight = static_cast<std::uint64_t>(std::max<std::int64_t>(consumer->NumAckPending, 0));
  }
  return status;
}

namespace {

// The full names of the mailboxes on the server `connection` reaches.
Result<std::vector<std::string>> mailbox_names(NatsConnection& connection, const RemoteName& server) {
  const auto streams = stream_names(connection.jetstream.get());
  if (!streams) return std::unexpected(nats_error(Errc::system, server, "cannot list its streams", streams.error()));
  std::vector<std::string> names;
  for (const std::string_view stream : *streams) {
    if (stream.starts_with(stream_prefix)) names.push_back(server.server + "/" + std::string{stream.substr(stream_prefix.size())});
  }
  std::sort(names.begin(), names.end());
  return names;
}

}  // namespace

Result<std::vector<std::string>> NatsMailbox::list(const RemoteName& server) {
  auto connection = NatsConnection::open(server);
  if (!connection) return std::unexpected(connection.error());
  return mailbox_names(**connection, server);
}

Result<std::vector<RemovedObject>> NatsMailbox::collect_garbage(const RemoteName& server) {
  auto connection = NatsConnection::open(server);
  if (!connection) return std::unexpected(connection.error());
  auto names = mailbox_names(**connection, server);
  if (!names) return std::unexpected(names.error());
  // One look at every lease, then, if any has lapsed, one wait and a second look
  // (lease.hpp: one empty look is no proof).
  std::vector<std::pair<RemoteName, OwnerMark>> lapsed;
  for (const std::string& full_name : *names) {
    auto name = parse_remote_name(full_name);
    if (!name) continue;
    OwnedStreamInfo info;
    if (js_GetStreamInfo(out(info), (*connection)->jetstream.get(), stream_of(*name).c_str(), nullptr, nullptr) != NATS_OK) {
      continue;
    }
    OwnerMark owner = owner_mark_in(info->Config->Description);
    if (owner.owner.empty() || keeps_lease(*name, owner)) continue;
    if (lease_state(**connection, *name, owner) == LeaseState::lapsed) lapsed.emplace_back(std::move(*name), std::move(owner));
  }
  if (!lapsed.empty()) std::this_thread::sleep_for(heartbeat_interval + std::chrono::milliseconds{500});
  std::vector<RemovedObject> removed;
  for (const auto& [name, owner] : lapsed) {
    if (lease_state(**connection, name, owner) != LeaseState::lapsed) continue;
    if (delete_mailbox_stream(**connection, name, owner)) {
      removed.push_back({"mailbox", name.server + "/" + name.name, owner.pid, Garbage::owner_exited(owner.pid).cause});
    }
  }
  return removed;
}

Result<void> NatsMailbox::remove(const RemoteName& name) {
  auto connection = NatsConnection::open(name);
  if (!connection) return std::unexpected(connection.error());
  jsErrCode code = static_cast<jsErrCode>(0);
  const natsStatus status = js_DeleteStream((*connection)->jetstream.get(), stream_of(name).c_str(), nullptr, &code);
  if (status == NATS_OK) {
    (void)js_DeleteStream((*connection)->jetstream.get(), lease_stream_of(name).c_str(), nullptr, nullptr);
    drop_lease(name);  // whichever mailbox of this name this process kept
    return {};
  }
  if (missing(status, code)) return std::unexpected(not_found_error(name));
  return std::unexpected(nats_error(Errc::system, name, "cannot remove its stream", status));
}

Result<void> NatsMailbox::send(std::span<const std::byte> message, Deadline deadline) {
  // One id per message, kept across retries: a publish stored but unacknowledged and
  // then retried is stored once (within the duplicate window).
  return send(message, deadline,
              std::to_string(platform::current_process().packed()) + "-" +
                  std::to_string(reinterpret_cast<std::uintptr_t>(this)) + "-" + std::to_string(++next_id_));
}

Result<void> NatsMailbox::send(std::span<const std::byte> message, Deadline deadline, const std::string& id) {
  if (message.size() > max_message_size_) {
    return std::unexpected(Error{Errc::too_large, name_.object,
                                 "message of " + std::to_string(message.size()) + " bytes is over the mailbox's maximum of " +
                                     std::to_string(max_message_size_)});
  }
  if (auto gone = owner_gone()) return std::unexpected(*gone);
  if (buffering_ == Buffering::zero) return send_rendezvous(message, deadline);
  const std::string subject = subject_of(name_);
  auto backoff = std::chrono::milliseconds{1};
  for (;;) {
    jsPubOptions options;
    jsPubOptions_Init(&options);
    options.MsgId = id.c_str();
    // The acknowledgement is a round trip whatever the deadline: the deadline bounds the
    // wait for room, but every attempt waits to hear whether it was stored (a full
    // stream answers at once), so that an expired deadline never leaves the outcome open.
    options.MaxWait = 2000;
    OwnedPubAck ack;
    jsErrCode code = static_cast<jsErrCode>(0);
    const natsStatus status = js_Publish(out(ack), connection_->jetstream.get(), subject.c_str(), message.data(),
                                         static_cast<int>(message.size()), &options, &code);
    if (status == NATS_OK) return {};
    if (status == NATS_NO_RESPONDERS || code == JSStreamNotFoundErr) {
      // Closed, removed, or a cluster between stream leaders (nobody answers for a moment).
      if (auto ended = closed_state()) return std::unexpected(*ended);
      if (deadline.is_none()) return std::unexpected(Error{Errc::would_block, {}, {}});
      if (deadline.expired()) return std::unexpected(Error{Errc::timeout, name_.object, "timed out: the stream has no leader"});
      std::this_thread::sleep_for(std::chrono::milliseconds{50});
      continue;
    }
    const bool full = code == JSStreamStoreFailedErr;  // DiscardNew refused it: the mailbox is full
    if (code == JSStreamMessageExceedsMaximumErr) {
      return std::unexpected(Error{Errc::too_large, name_.object, "the server refused the message as too large"});
    }
    if (!full && status != NATS_TIMEOUT) return std::unexpected(nats_error(Errc::system, name_, "cannot send", status));
    if (deadline.is_none() && full) return std::unexpected(Error{Errc::would_block, {}, {}});
    if (deadline.expired()) {
      return std::unexpected(Error{Errc::timeout, name_.object,
                                   full ? std::string{"timed out"}
                                        : "timed out waiting for the server to acknowledge (it may have stored the message)"});
    }
    if (full) {
      if (auto gone = owner_gone()) return std::unexpected(*gone);
      std::this_thread::sleep_for(std::min<Deadline::clock::duration>(backoff, deadline.is_forever()
                                                                                   ? Deadline::clock::duration::max()
                                                                                   : deadline.until() - Deadline::clock::now()));
      backoff = std::min(backoff * 2, std::chrono::milliseconds{20});
    }
  }
}

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

// The stream moves to another subject, so sends find no stream, and its description
// says why; what is queued stays for receivers to drain.
Result<void> NatsMailbox::close() {
  OwnedStreamInfo info;
  jsErrCode code = static_cast<jsErrCode>(0);
  natsStatus status = js_GetStreamInfo(out(info), connection_->jetstream.get(), stream_of(name_).c_str(), nullptr, &code);
  if (status != NATS_OK) {
    if (missing(status, code)) return std::unexpected(not_found_error(name_));
    return std::unexpected(nats_error(Errc::system, name_, "cannot read its stream", status));
  }
  jsStreamConfig& config = *info->Config;
  if (marked(config.Description, closed_mark)) {
    closed_ = true;
    return {};
  }
  const std::string description =
      std::string{closed_mark} + (config.Description != nullptr ? "; " + std::string{config.Description} : "");
  const std::string subject = closed_subject_of(name_);
  const char* subjects[] = {subject.c_str()};
  // Borrowed into the server's copy of the configuration, and given back before it is freed.
  const char* own_description = config.Description;
  const char** own_subjects = config.Subjects;
  const int own_subjects_len = config.SubjectsLen;
  config.Description = description.c_str();
  config.Subjects = subjects;
  config.SubjectsLen = 1;
  OwnedStreamInfo updated;
  status = js_UpdateStream(out(updated), connection_->jetstream.get(), &config, nullptr, &code);
  config.Description = own_description;
  config.Subjects = own_subjects;
  config.SubjectsLen = own_subjects_len;
  if (status != NATS_OK) return std::unexpected(nats_error(Errc::system, name_, "cannot close its stream", status));
  closed_ = true;
  return {};
}

// A request to the receivers' queue group: it returns when one of them has replied,
// that is, has taken the message. No responders means no receiver is waiting: nothing
// was delivered, so waiting and asking again is safe. A request that times out with a
// receiver present has an unknown outcome (the receiver may have taken it).
Result<void> NatsMailbox::send_rendezvous(std::span<const std::byte> message, Deadline deadline) {
  const std::string subject = rendezvous_of(name_);
  // No receiver is in the group yet: in a ping-pong one is usually about to join.
  std::chrono::microseconds backoff{100};
  auto next_check = Deadline::clock::now() + std::chrono::seconds{1};
  for (;;) {
    OwnedMsg reply;
    const std::int64_t wait = deadline.is_none() ? 2000 : deadline.is_forever() ? forever_ms : wait_ms(deadline, forever_ms);
    natsStatus status = natsConnection_Request(out(reply), connection_->connection.get(), subject.c_str(), message.data(),
                                               static_cast<int>(message.size()), wait);
    const bool refused =
        status == NATS_OK && natsMsg_GetDataLength(reply.get()) > 0 &&
        std::string_view{natsMsg_GetData(reply.get()), static_cast<std::size_t>(natsMsg_GetDataLength(reply.get()))} ==
            refused_reply;
    if (refused) status = NATS_NO_RESPONDERS;  // the receiver did not take it: as if nobody waited
    if (status == NATS_OK) return {};
    if (status == NATS_TIMEOUT) {
      return std::unexpected(Error{Errc::timeout, name_.object,
                                   "timed out waiting for the receiver's reply (it may have taken the message)"});
    }
    if (status != NATS_NO_RESPONDERS) return std::unexpected(nats_error(Errc::system, name_, "cannot send", status));
    // Nobody to take it: a closed mailbox says so rather than "try again".
    if (deadline.is_none() || deadline.expired()) {
      if (auto ended = closed_state()) return std::unexpected(*ended);
      if (deadline.is_none()) return std::unexpected(Error{Errc::would_block, {}, {}});
      return std::unexpected(Error{Errc::timeout, name_.object, "timed out"});
    }
    if (const auto now = Deadline::clock::now(); now >= next_check) {
      next_check = now + std::chrono::seconds{1};
      if (auto ended = closed_state()) return std::unexpected(*ended);
    }
    std::this_thread::sleep_for(backoff);
    backoff = std::min<std::chrono::microseconds>(backoff * 2, std::chrono::milliseconds{20});
  }
}

// Present in the receivers' queue group only while receiving: a message sent while no
// receive is in progress gets "no responders" rather than waiting in a receiver's queue.
template <class Take>
Result<std::size_t> NatsMailbox::receive_rendezvous(Deadline deadline, Take&& take) {
  // A closed one takes nothing more: look before joining (a round trip, as the join is).
  if (auto ended = closed_state()) return std::unexpected(*ended);
  OwnedSubscription subscription;
  natsStatus status = natsConnection_QueueSubscribeSync(out(subscription), connection_->connection.get(),
                                                         rendezvous_of(name_).c_str(), durable_consumer);
  // One message at most: the server stops routing to us after it, so no second sender's
  // request waits in our queue for a reply that never comes.
  if (status == NATS_OK) status = natsSubscription_AutoUnsubscribe(subscription.get(), 1);
  if (status == NATS_OK) status = natsConnection_Flush(connection_->connection.get());  // the server knows we wait
  if (status != NATS_OK) return std::unexpected(nats_error(Errc::system, name_, "cannot wait for a sender", status));
  OwnedMsg message;
  auto next_check = Deadline::clock::now() + std::chrono::seconds{1};
  for (;;) {
    status = natsSubscription_NextMsg(out(message), subscription.get(), wait_ms(deadline, 1000));
    if (status == NATS_OK) break;
    if (status != NATS_TIMEOUT) break;
    if (deadline.is_none() || deadline.expired()) break;
    if (const auto now = Deadline::clock::now(); now >= next_check) {
      next_check = now + std::chrono::seconds{1};
      if (closed_state()) break;
    }
  }
  if (message == nullptr) {
    // Leave by draining, then take what was routed to us before the server saw us
    // leave: a sender waits for its reply, so nothing that reached us may be dropped.
    if (natsSubscription_Drain(subscription.get()) == NATS_OK) {
      (void)natsSubscription_NextMsg(out(message), subscription.get(), 200);
    }
  }
  subscription.reset();  // out of the queue group before taking (destroying unsubscribes if need be)
  if (message == nullptr) {
    if (auto ended = closed_state()) return std::unexpected(*ended);
    if (deadline.is_none()) return std::unexpected(Error{Errc::would_block, {}, {}});
    return std::unexpected(Error{Errc::timeout, name_.object, "timed out"});
  }
  const auto* data = reinterpret_cast<const std::byte*>(natsMsg_GetData(message.get()));
  auto taken = take(std::span{data, static_cast<std::size_t>(natsMsg_GetDataLength(message.get()))}, 0, std::string{});
  // Reply once it is ours; if `take` refused it (too large for the buffer, or a bridge's
  // destination refusing), say so, and its sender offers it again as if nobody waited.
  if (natsMsg_GetReply(message.get()) != nullptr) {
    const char* reply = taken ? "" : refused_reply.data();
    (void)natsConnection_Publish(connection_->connection.get(), natsMsg_GetReply(message.get()), reply,
                                 static_cast<int>(std::strlen(reply)));
    (void)natsConnection_Flush(connection_->connection.get());
  }
  return taken;
}

template <class Take>
Result<std::size_t> NatsMailbox::receive_with(Deadline deadline, Take&& take) {
  if (auto gone = owner_gone()) return std::unexpected(*gone);
  if (buffering_ == Buffering::zero) return receive_rendezvous(deadline, take);
  jsErrCode code = static_cast<jsErrCode>(0);
  const std::string stream = stream_of(name_);
  while (connection_->receivers == nullptr) {
    // Bound by the stream's name, not looked up by subject: a closed stream has moved.
    jsSubOptions bind;
    jsSubOptions_Init(&bind);
    bind.Stream = stream.c_str();
    bind.Consumer = durable_consumer;
    const natsStatus status = js_PullSubscribe(out(connection_->receivers), connection_->jetstream.get(),
                                               subject_of(name_).c_str(), durable_consumer, nullptr, &bind, &code);
    if (status == NATS_OK) break;
    connection_->receivers.reset();
    if (auto failed = wait_out(status, code, deadline, "cannot bind to its receivers' consumer")) {
      return std::unexpected(*failed);
    }
  }
  for (;;) {
    natsMsgList list{};
    const OwnedMsgListContents fetched{&list};
    // Once it is known closed, nothing more can come: a drained mailbox answers at once.
    const natsStatus status = natsSubscription_Fetch(&list, connection_->receivers.get(), 1,
                                                     wait_ms(closed_ ? no_wait : deadline, 1000), &code);
    if (status == NATS_OK || status == NATS_TIMEOUT) failing_since_.reset();
    if (status == NATS_OK && list.Count > 0) {
      natsMsg* message = list.Msgs[0];
      const HandedOver::Stored stored = stored_as(message);
      if (handed_over_.contains(stored)) {
        acknowledge(message, !deadline.is_none());  // the caller has it already
        continue;
      }
      const auto* data = reinterpret_cast<const std::byte*>(natsMsg_GetData(message));
      const auto size = static_cast<std::size_t>(natsMsg_GetDataLength(message));
      Result<std::size_t> taken;
      try {
        taken = take(std::span{data, size}, stored.sequence, id_of(stored.sequence, name_.name, created_));
      } catch (...) {
        (void)natsMsg_Nak(message, nullptr);  // the caller could not take it: deliver it again now
        throw;
      }
      if (taken) {
        // Only now that the bytes are the caller's: a receiver that dies before this has
        // its message redelivered (after the consumer's AckWait).
        handed_over_.add(stored);
        acknowledge(message, !deadline.is_none());
      } else {
        (void)natsMsg_Nak(message, nullptr);  // not taken (too large, the taker failed): it stays queued
      }
      return taken;
    }
    if (status != NATS_OK && status != NATS_TIMEOUT) {
      // No consumer answered the request: a removed mailbox has none, and a cluster
      // electing the consumer's leader has none for a moment.
      if (auto failed = wait_out(status, code, deadline, "cannot receive")) return std::unexpected(*failed);
      continue;
    }
    // Empty: a closed mailbox says so now that it is drained (a round trip, only when empty).
    if (auto ended = closed_state()) return std::unexpected(*ended);
    if (deadline.is_none()) return std::unexpected(Error{Errc::would_block, {}, {}});
    if (deadline.expired()) return std::unexpected(Error{Errc::timeout, name_.object, "timed out"});
  }
}

Result<std::size_t> NatsMailbox::receive_to(const Taker& take, Deadline deadline) { return receive_with(deadline, take); }

Result<std::size_t> NatsMailbox::receive(std::span<std::byte> buffer, Deadline deadline) {
  return receive_with(deadline, [&](std::span<const std::byte> message, std::uint64_t, const std::string&) -> Result<std::size_t> {
    if (message.size() > buffer.size()) {
      return std::unexpected(Error{Errc::too_large, name_.object,
                                   "next message is " + std::to_string(message.size()) + " bytes; the buffer holds " +
                                       std::to_string(buffer.size())});
    }
    std::memcpy(buffer.data(), message.data(), message.size());
    return message.size();
  });
}

Result<void> NatsMailbox::receive(std::vector<std::byte>& message, Deadline deadline) {
  auto got = receive_with(deadline, [&](std::span<const std::byte> bytes, std::uint64_t, const std::string&) -> Result<std::size_t> {
    message.assign(bytes.begin(), bytes.end());
    return bytes.size();
  });
  if (!got) return std::unexpected(got.error());
  return {};
}

}  // namespace shmbox::detail
