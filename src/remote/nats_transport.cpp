// nats:// names as a transport (mailbox/backend.hpp): the operations resolved from a
// name, and a handle's count of what is queued (a question to the server).
#include <unistd.h>

#include <new>
#include <thread>

#include "base/name.hpp"
#include "remote/nats_mailbox.hpp"
#include "remote/nats_handles.hpp"
#include "remote/nats_stream_facts.hpp"
#include "remote/nats_streams.hpp"

namespace shmbox::detail {
namespace {

// nats:// names: a mailbox held by a NATS server or cluster.
struct RemoteNames {
  static bool claims(std::string_view name) noexcept { return is_remote_name(name); }
  static Result<std::unique_ptr<MailboxBackend>> create(std::string_view name, const MailboxOptions& options,
                                                        const WaitPolicy& wait);
  static Result<std::unique_ptr<MailboxBackend>> open(std::string_view name, const WaitPolicy& wait);
  static Result<std::function<void(std::chrono::milliseconds)>> appearance_waiter(std::string_view name);
  static Result<void> remove(std::string_view name);
  static Result<MailboxStatus> stat(std::string_view name);
  static Result<std::vector<std::string>> list(std::string_view server);
  static Result<std::vector<RemovedObject>> collect_garbage(std::string_view server);
};

Result<std::unique_ptr<MailboxBackend>> RemoteNames::create(std::string_view name, const MailboxOptions& options,
                                                      const WaitPolicy&) {
  if (options.owner_pid != 0 && options.owner_pid != ::getpid()) {
    return std::unexpected(Error{Errc::invalid_argument, describe("mailbox", name),
                                 "a nats:// mailbox can be owned only by the process that creates it "
                                 "(it renews the owner's lease)"});
  }
  auto remote = parse_remote_name(name);
  if (!remote) return std::unexpected(remote.error());
  auto made = NatsMailbox::create(*remote, options);
  if (!made) return std::unexpected(made.error());
  return std::move(*made);
}

Result<std::unique_ptr<MailboxBackend>> RemoteNames::open(std::string_view name, const WaitPolicy&) {
  auto remote = parse_remote_name(name);
  if (!remote) return std::unexpected(remote.error());
  auto opened = NatsMailbox::open(*remote);
  if (!opened) return std::unexpected(opened.error());
  return std::move(*opened);
}

// The server has no news of creations to give: open_wait asks again after each nap.
Result<std::function<void(std::chrono::milliseconds)>> RemoteNames::appearance_waiter(std::string_view) {
  return [](std::chrono::milliseconds nap) { std::this_thread::sleep_for(nap); };
}

Result<void> RemoteNames::remove(std::string_view name) {
  auto remote = parse_remote_name(name);
  if (!remote) return std::unexpected(remote.error());
  return NatsMailbox::remove(*remote);
}

Result<MailboxStatus> RemoteNames::stat(std::string_view name) {
  auto remote = parse_remote_name(name);
  if (!remote) return std::unexpected(remote.error());
  return NatsMailbox::stat(*remote);
}

Result<std::vector<std::string>> RemoteNames::list(std::string_view server) {
  auto remote = parse_remote_server(server);
  if (!remote) return std::unexpected(remote.error());
  return NatsMailbox::list(*remote);
}

Result<std::vector<RemovedObject>> RemoteNames::collect_garbage(std::string_view server) {
  auto remote = parse_remote_server(server);
  if (!remote) return std::unexpected(remote.error());
  return NatsMailbox::collect_garbage(*remote);
}

}  // namespace

const Transport remote_transport = transport_of<RemoteNames>();

std::uint64_t NatsMailbox::queued() const noexcept {
  try {
    auto facts = read_stream(name_, connection_->jetstream.get(), connection_->connection.get());
    return facts ? facts->queued : 0;
  } catch (const std::bad_alloc&) {
    return 0;
  }
}

}  // namespace shmbox::detail
