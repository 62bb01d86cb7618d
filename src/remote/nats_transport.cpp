// nats:// names as a transport (mailbox/backend.hpp): the static operations resolved
// from a name, and what a remote handle cannot do.
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

Error needs_local(const std::string& object, const char* what) {
  return Error{Errc::invalid_argument, object, std::string{what} + " needs a local mailbox"};
}

Result<std::unique_ptr<MailboxBackend>> create_remote(std::string_view name, const MailboxOptions& options,
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

Result<std::unique_ptr<MailboxBackend>> open_remote(std::string_view name, const WaitPolicy&) {
  auto remote = parse_remote_name(name);
  if (!remote) return std::unexpected(remote.error());
  auto opened = NatsMailbox::open(*remote);
  if (!opened) return std::unexpected(opened.error());
  return std::move(*opened);
}

// The server has no news of creations to give: open_wait asks again after each nap.
Result<std::function<void(std::chrono::milliseconds)>> remote_appearance_waiter(std::string_view) {
  return [](std::chrono::milliseconds nap) { std::this_thread::sleep_for(nap); };
}

Result<void> remove_remote(std::string_view name) {
  auto remote = parse_remote_name(name);
  if (!remote) return std::unexpected(remote.error());
  return NatsMailbox::remove(*remote);
}

Result<MailboxStatus> stat_remote(std::string_view name) {
  auto remote = parse_remote_name(name);
  if (!remote) return std::unexpected(remote.error());
  return NatsMailbox::stat(*remote);
}

Result<std::vector<std::string>> list_remote(std::string_view server) {
  auto remote = parse_remote_server(server);
  if (!remote) return std::unexpected(remote.error());
  return NatsMailbox::list(*remote);
}

Result<std::vector<RemovedObject>> collect_remote_garbage(std::string_view server) {
  auto remote = parse_remote_server(server);
  if (!remote) return std::unexpected(remote.error());
  return NatsMailbox::collect_garbage(*remote);
}

}  // namespace

const Transport remote_transport{
    .claims = is_remote_name,
    .create = create_remote,
    .open = open_remote,
    .appearance_waiter = remote_appearance_waiter,
    .remove = remove_remote,
    .stat = stat_remote,
    .list = list_remote,
    .collect_garbage = collect_remote_garbage,
};

std::uint64_t NatsMailbox::queued() const noexcept {
  try {
    auto facts = read_stream(name_, connection_->jetstream.get(), connection_->connection.get());
    return facts ? facts->queued : 0;
  } catch (const std::bad_alloc&) {
    return 0;
  }
}

Result<Lent> NatsMailbox::loan(std::size_t, Deadline) { return std::unexpected(needs_local(name_.object, "a zero-copy loan")); }
Result<Lent> NatsMailbox::receive_in_place(Deadline) {
  return std::unexpected(needs_local(name_.object, "a zero-copy receive"));
}
// Never called: nothing is ever lent.
Result<void> NatsMailbox::commit_loan(const Lent&, std::size_t, Deadline) {
  return std::unexpected(needs_local(name_.object, "a zero-copy loan"));
}
void NatsMailbox::abandon_loan(const Lent&) noexcept {}
void NatsMailbox::hand_back(const Lent&, bool) noexcept {}

}  // namespace shmbox::detail
