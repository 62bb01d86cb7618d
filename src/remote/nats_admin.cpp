// What is done to remote mailboxes by name, without a handle: stat, list, collect garbage, remove.
#include "remote/nats_mailbox.hpp"

#include <nats/nats.h>

#include <algorithm>
#include <chrono>
#include <thread>

#include "segment/garbage.hpp"
#include "remote/lease.hpp"
#include "remote/nats_handles.hpp"
#include "remote/nats_stream_facts.hpp"
#include "remote/nats_streams.hpp"

namespace shmbox::detail {

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
      .ownership = facts->owner.owner.empty() ? Ownership::system : Ownership::process,
  };
  RemoteMailboxStatus& remote = status.transport.emplace<RemoteMailboxStatus>(
      RemoteMailboxStatus{.server = name.server, .replicas = facts->replicas, .stored_bytes = facts->stored_bytes});
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
    remote.waiting_receivers = static_cast<std::uint32_t>(std::max<std::int64_t>(consumer->NumWaiting, 0));
    remote.in_flight = static_cast<std::uint64_t>(std::max<std::int64_t>(consumer->NumAckPending, 0));
  }
  return status;
}

Result<std::vector<std::string>> NatsMailbox::list(const RemoteName& server) {
  auto connection = NatsConnection::open(server);
  if (!connection) return std::unexpected(connection.error());
  return names_on(**connection, server, stream_prefix);
}

Result<std::vector<RemovedObject>> NatsMailbox::collect_garbage(const RemoteName& server) {
  auto connection = NatsConnection::open(server);
  if (!connection) return std::unexpected(connection.error());
  auto names = names_on(**connection, server, stream_prefix);
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

}  // namespace shmbox::detail
