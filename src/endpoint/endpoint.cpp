// Endpoint: a process's name that others send to directly (docs/design.md, "Endpoints").
#include "shmbox/endpoint.hpp"

#include <thread>

#include "endpoint/endpoint_files.hpp"
#include "endpoint/lanes.hpp"
#include "local/local_mailbox.hpp"
#include "platform/exit_hooks.hpp"
#include "platform/process.hpp"

namespace shmbox {

Endpoint::Endpoint(std::unique_ptr<detail::JoinedEndpoint> joined) noexcept : joined_(std::move(joined)) {}
Endpoint::Endpoint(Endpoint&& other) noexcept = default;
Endpoint& Endpoint::operator=(Endpoint&& other) noexcept {
  if (this != &other) joined_ = std::move(other.joined_);  // leaves the endpoint this one held
  return *this;
}
Endpoint::~Endpoint() = default;

Error Endpoint::moved_from() {
  return Error{Errc::invalid_argument, "endpoint", "this handle was moved from: it has joined as no name"};
}

Result<Endpoint> Endpoint::join(std::string_view name, const EndpointOptions& options, const WaitPolicy& wait) {
  auto names = detail::endpoint_file(name);
  if (!names) return std::unexpected(names.error());
  if (options.max_peers == 0 || options.max_peers > max_peers_limit) {
    return std::unexpected(Error{Errc::invalid_argument, names->object,
                                 "max_peers is " + std::to_string(options.max_peers) + "; it must be 1 to " +
                                     std::to_string(max_peers_limit)});
  }
  const MailboxOptions lane{.buffering = options.buffering,
                            .capacity = options.capacity,
                            .max_message_size = options.max_message_size,
                            .mode = options.mode};
  if (auto valid = detail::plan_geometry(lane, names->object); !valid) return std::unexpected(valid.error());
  auto view = detail::create_endpoint(std::move(*names), options);
  if (!view) return std::unexpected(view.error());
  auto joined = std::make_unique<detail::JoinedEndpoint>(*view, wait);
  detail::run_at_exit(view->names.file_name, joined->me, [endpoint = *view] {
    (void)detail::retire_endpoint(endpoint, detail::Retirer::owner);
  });
  return Endpoint{std::move(joined)};
}

const std::string& Endpoint::name() const noexcept {
  static const std::string none;
  return joined_ ? joined_->self.names.name : none;
}

Result<void> Endpoint::send(std::string_view to, std::span<const std::byte> message, Deadline deadline) {
  if (!joined_) return std::unexpected(moved_from());
  detail::JoinedEndpoint& joined = *joined_;
  auto link = joined.link_to(to);
  // Every lane is taken: the receiver was asked to give back those of dead senders.
  // Waiting for one is rare, so it polls rather than sleeping on the peer's doorbell.
  while (!link && link.error() == Errc::no_space && !deadline.is_none() && !deadline.expired()) {
    std::this_thread::sleep_for(std::chrono::milliseconds{2});
    link = joined.link_to(to);
  }
  if (!link) {
    if (link.error() == Errc::no_space && !deadline.is_none()) {
      return std::unexpected(Error{Errc::timeout, link.error().object(), "timed out waiting for a free lane"});
    }
    return std::unexpected(link.error());
  }
  auto sent = (*link)->lane->send(message, deadline, {});
  if (sent || sent.error() != Errc::closed) return sent;
  // Our lane was closed: the peer left (then this is the answer), or it is a new
  // process under the same name, which a fresh link reaches.
  auto again = joined.link_to(to);
  if (!again) return again.error() == Errc::not_found ? sent : std::unexpected(again.error());
  return (*again)->lane->send(message, deadline, {});
}

Result<std::size_t> Endpoint::receive_from(std::string_view from, std::span<std::byte> buffer, Deadline deadline) {
  if (!joined_) return std::unexpected(moved_from());
  if (auto valid = detail::endpoint_file(from); !valid) return std::unexpected(valid.error());
  std::size_t size = 0;
  auto sender = joined_->receive(from, deadline, [&](detail::LocalMailbox& lane) -> Result<void> {
    auto got = lane.receive(buffer, no_wait);
    if (!got) return std::unexpected(got.error());
    size = *got;
    return {};
  });
  if (!sender) return std::unexpected(sender.error());
  return size;
}

Result<void> Endpoint::receive_from(std::string_view from, std::vector<std::byte>& message, Deadline deadline) {
  if (!joined_) return std::unexpected(moved_from());
  if (auto valid = detail::endpoint_file(from); !valid) return std::unexpected(valid.error());
  auto sender = joined_->receive(from, deadline, [&](detail::LocalMailbox& lane) { return lane.receive(message, no_wait); });
  if (!sender) return std::unexpected(sender.error());
  return {};
}

Result<Received> Endpoint::receive(std::span<std::byte> buffer, Deadline deadline) {
  if (!joined_) return std::unexpected(moved_from());
  std::size_t size = 0;
  auto sender = joined_->receive(std::nullopt, deadline, [&](detail::LocalMailbox& lane) -> Result<void> {
    auto got = lane.receive(buffer, no_wait);
    if (!got) return std::unexpected(got.error());
    size = *got;
    return {};
  });
  if (!sender) return std::unexpected(sender.error());
  return Received{std::move(*sender), size};
}

Result<std::string> Endpoint::receive(std::vector<std::byte>& message, Deadline deadline) {
  if (!joined_) return std::unexpected(moved_from());
  return joined_->receive(std::nullopt, deadline, [&](detail::LocalMailbox& lane) { return lane.receive(message, no_wait); });
}

}  // namespace shmbox
