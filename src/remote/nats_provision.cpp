// Making a remote mailbox's stream and its receivers' consumer, opening one, and closing it.
#include "remote/nats_mailbox.hpp"

#include <nats/nats.h>

#include <string>

#include "remote/lease.hpp"
#include "remote/nats_handles.hpp"
#include "remote/nats_stream_facts.hpp"
#include "remote/nats_streams.hpp"

namespace shmbox::detail {
namespace {

// How long the server remembers a message id: a retried publish within it is stored once.
constexpr std::int64_t duplicate_window_ns = std::int64_t{120} * 1'000'000'000;

}  // namespace

// Named as a user would: "mailbox 'nats://host:port/NAME'" in errors, NAME as name().
NatsMailbox::NatsMailbox(RemoteName name, std::unique_ptr<NatsConnection> connection, Buffering buffering,
                         std::uint32_t capacity, std::size_t max_message_size)
    : BackendWithoutLoans(MailboxFacts{name.name, name.object, buffering, capacity, max_message_size}),
      name_(std::move(name)),
      connection_(std::move(connection)) {}

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
  auto mailbox = std::unique_ptr<NatsMailbox>(
      new NatsMailbox(name, std::move(*connection), options.buffering,
                      options.buffering == Buffering::bounded ? options.capacity : 0, options.max_message_size));
  mailbox->created_ = created;
  mailbox->owner_ = owner;
  return mailbox;
}

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
  auto mailbox = std::unique_ptr<NatsMailbox>(
      new NatsMailbox(name, std::move(*connection), facts->buffering, facts->capacity, facts->max_message_size));
  mailbox->closed_ = facts->closed;
  mailbox->created_ = facts->created;
  mailbox->owner_ = facts->owner;
  return mailbox;
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

}  // namespace shmbox::detail
