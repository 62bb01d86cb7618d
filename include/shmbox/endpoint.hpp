// Endpoints: direct communication between named processes.
//
//   auto server = shmbox::Endpoint::join("server").value();
//   std::vector<std::byte> request;
//   auto client_name = server.receive(request).value();      // from anyone: says who sent it
//   server.send(client_name, shmbox::as_bytes("reply"));
//   ...
//   auto client = shmbox::Endpoint::join("client").value();   // in another process
//   client.send("server", shmbox::as_bytes("hello"));
//   client.receive_from("server", reply);                     // only what "server" sent
//
// Semantics:
//   - A process joins under a name and so gets an inbox; the name is its own while the
//     endpoint lives. Two live endpoints cannot share a name (Errc::already_exists,
//     naming the holder); the name of one whose process died can be taken again.
//   - send(P, m) delivers m to the process that joined as P. Each sender has its own
//     lane into P's inbox, created on its first send, with the buffering P chose:
//     bounded (the sender waits while `capacity` of *its* messages are queued), zero
//     (a rendezvous) or unbounded. So one peer's traffic never holds up another's:
//     a flood from R fills R's lane only.
//   - receive_from(Q) takes the next message Q sent, and nothing else. receive() takes
//     the next message from anyone and says who sent it; it serves the lanes in turn,
//     so a flooding peer cannot starve a quiet one. A receiver sees each sender's
//     messages in the order they were sent.
//   - Every call takes a Deadline: forever (default), no_wait or a timeout.
//   - An endpoint belongs to its process. When the Endpoint is destroyed, or the process
//     exits or is killed, the endpoint goes: senders blocked on it wake with
//     Errc::closed, later sends fail with Errc::not_found. Messages already queued from
//     a sender that died are still delivered.
//   - The sender's name that receive() reports is the name the sender joined under.
//     Anyone who may write to the endpoint (its mode) can claim any name: the name is
//     a routing label, not a proof of identity.
//
// Thread contract: one thread uses an Endpoint at a time.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "shmbox/error.hpp"
#include "shmbox/mailbox_types.hpp"
#include "shmbox/wait.hpp"

namespace shmbox {

struct EndpointOptions {
  Buffering buffering = Buffering::bounded;  // of each sender's lane
  std::uint32_t capacity = 64;               // bounded only: messages queued per sender
  std::uint32_t max_message_size = 4096;     // bytes
  mode_t mode = 0600;                        // applied exactly; who may send to it (as for mailboxes)
  std::uint32_t max_peers = 32;              // senders with a lane at once, at most 126
};

struct EndpointStatus {
  std::string name;
  pid_t owner_pid = 0;
  std::string owner_name;  // the owner's command name; empty once it has exited
  bool owner_alive = false;
  Buffering buffering = Buffering::bounded;
  std::uint32_t capacity = 0;
  std::uint32_t max_message_size = 0;
  std::uint32_t max_peers = 0;
  mode_t mode = 0;
  uid_t owner_uid = 0;
  std::vector<std::string> senders;  // peers with a lane into it
  std::uint64_t queued = 0;          // messages queued in all lanes
};

// The sender and size of a message received from anyone.
struct Received {
  std::string from;
  std::size_t size = 0;
};

namespace detail {
struct JoinedEndpoint;
}

class Endpoint {
 public:
  static constexpr std::uint32_t max_peers_limit = 126;  // lanes and the doorbell fit one futex_waitv
  static constexpr std::size_t max_name_length = 200;

  // Joins under `name`. Errc::already_exists if a live process holds it.
  [[nodiscard]] static Result<Endpoint> join(std::string_view name, const EndpointOptions& options = {},
                                             const WaitPolicy& wait = {});
  [[nodiscard]] static Result<EndpointStatus> stat(std::string_view name);
  // Removes the endpoint `name` whose process has gone, with its lanes and what they
  // hold (as gc would). Errc::in_use while its process lives: an endpoint is its
  // process's name, and goes when that process leaves. A file that is not a readable
  // endpoint (left empty, corrupt) is removed all the same.
  [[nodiscard]] static Result<void> remove(std::string_view name);
  // Names of the endpoints in /dev/shm.
  [[nodiscard]] static std::vector<std::string> list();

  // Moving hands the endpoint over; assigning to an Endpoint that holds one leaves
  // that one first. A moved-from Endpoint holds none: it may be destroyed or assigned
  // to, name() is "", and send and receive fail with Errc::invalid_argument.
  Endpoint(Endpoint&& other) noexcept;
  Endpoint& operator=(Endpoint&& other) noexcept;
  Endpoint(const Endpoint&) = delete;
  Endpoint& operator=(const Endpoint&) = delete;
  ~Endpoint();  // leaves: the endpoint and its lanes are closed and removed

  const std::string& name() const noexcept;

  // Errc::not_found if nobody has joined as `to`; Errc::closed if it left while we
  // waited; Errc::too_large over its max_message_size; Errc::permission_denied if its
  // mode shuts us out, or if its process could not read the lane we would send through
  // (another user's endpoint, which only root, or a member of its group with a group
  // mode, can hand a lane to): a message is never left where it cannot be received.
  // The first send to a peer takes a lane; while all its lanes are taken it waits for
  // one to be given back, as the deadline allows (no_wait: Errc::no_space; a timeout:
  // Errc::timeout).
  [[nodiscard]] Result<void> send(std::string_view to, std::span<const std::byte> message,
                                  Deadline deadline = forever);

  // The next message from `from` only. A message larger than the buffer stays queued
  // and the call fails with Errc::too_large.
  [[nodiscard]] Result<std::size_t> receive_from(std::string_view from, std::span<std::byte> buffer,
                                                 Deadline deadline = forever);
  [[nodiscard]] Result<void> receive_from(std::string_view from, std::vector<std::byte>& message,
                                          Deadline deadline = forever);

  // The next message from anyone, and who sent it.
  [[nodiscard]] Result<Received> receive(std::span<std::byte> buffer, Deadline deadline = forever);
  [[nodiscard]] Result<std::string> receive(std::vector<std::byte>& message, Deadline deadline = forever);

 private:
  friend class Selector;  // watches its lanes
  explicit Endpoint(std::unique_ptr<detail::JoinedEndpoint> joined) noexcept;
  static Error moved_from();
  std::unique_ptr<detail::JoinedEndpoint> joined_;
};

}  // namespace shmbox
