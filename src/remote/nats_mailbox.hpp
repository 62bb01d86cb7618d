// Mailboxes held by a NATS server or cluster: a name "nats://host:port/NAME" selects
// one. Each is a JetStream stream with work-queue retention, and one durable pull
// consumer that every receiver binds to, so that each message goes to one receiver.
// docs/design.md ("Remote mailboxes") gives the mapping and where it differs.
#pragma once

#include <nats/nats.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "mailbox/backend.hpp"
#include "remote/handed_over.hpp"
#include "remote/remote_name.hpp"
#include "shmbox/cleanup.hpp"
#include "shmbox/error.hpp"
#include "shmbox/mailbox_types.hpp"
#include "shmbox/wait.hpp"

namespace shmbox::detail {

struct NatsConnection;

// What a process-owned remote mailbox's description records of its owner (lease.hpp).
struct OwnerMark {
  std::string owner;  // "PID COMMAND@HOST"; empty: system-owned
  std::string nonce;  // this mailbox's, among the mailboxes ever made under its name
  pid_t pid = 0;
};

class NatsMailbox final : public BackendWithoutLoans {
 public:
  static Result<std::unique_ptr<NatsMailbox>> create(const RemoteName& name, const MailboxOptions& options);
  static Result<std::unique_ptr<NatsMailbox>> open(const RemoteName& name);
  static Result<void> remove(const RemoteName& name);
  static Result<MailboxStatus> stat(const RemoteName& name);
  // The mailboxes on `server` (its name part is ignored), as full remote names.
  static Result<std::vector<std::string>> list(const RemoteName& server);
  // Removes the process-owned mailboxes on `server` whose owners' leases have lapsed.
  static Result<std::vector<RemovedObject>> collect_garbage(const RemoteName& server);
  ~NatsMailbox() override;

  // As last heard from the server (at open, or by a call that found it closed).
  bool closed() const noexcept override { return closed_; }
  // The stream's count, asked of the server (0 if it cannot be reached).
  std::uint64_t queued() const noexcept override;
  Result<void> close() override;

  // Without an id, each message gets one of its own, kept across the retries of its
  // publish. The server stores one message per id within its two-minute duplicate
  // window (zero capacity keeps no ids: a rendezvous stores nothing).
  Result<void> send(std::span<const std::byte> message, Deadline deadline, std::string_view id) override;
  Result<std::size_t> receive(std::span<std::byte> buffer, Deadline deadline) override;
  Result<void> receive(std::vector<std::byte>& message, Deadline deadline) override;
  // The message is acknowledged only if `take` succeeds, and handed back at once
  // otherwise. Its id: the mailbox's name, the stream's creation time (to tell it from an
  // earlier mailbox of the same name) and the stream sequence.
  Result<void> receive_with(const DeliveryTaker& take, Deadline deadline) override;

 private:
  NatsMailbox(RemoteName name, std::unique_ptr<NatsConnection> connection, Buffering buffering,
              std::uint32_t capacity, std::size_t max_message_size);
  // Takes the next message and hands it to `take` (bytes, sequence, id), which returns
  // its size or an error; the message is acknowledged only if `take` succeeded, and
  // handed back otherwise.
  template <class Take>
  Result<std::size_t> take_next(Deadline deadline, Take&& take);
  template <class Take>
  Result<std::size_t> receive_rendezvous(Deadline deadline, Take&& take);
  Result<void> send_rendezvous(std::span<const std::byte> message, Deadline deadline);
  // The Errc::closed to report if the server says the mailbox is closed or removed.
  std::optional<Error> closed_state();
  // The Errc::closed to report if a process-owned mailbox's owner has gone (lease.hpp).
  std::optional<Error> owner_gone();
  std::optional<Error> wait_out(natsStatus status, jsErrCode code, Deadline deadline, const std::string& doing);

  RemoteName name_;
  std::unique_ptr<NatsConnection> connection_;
  std::uint64_t next_id_ = 0;
  std::int64_t created_ = 0;  // the stream's creation time, ns since the epoch
  bool closed_ = false;
  OwnerMark owner_;  // process-owned; empty: system-owned
  Deadline::clock::time_point next_owner_check_{};
  std::optional<Deadline::clock::time_point> lapsed_since_;  // first seen lapsed
  HandedOver handed_over_;
  Deadline::clock::time_point next_closed_check_{};  // by wait_out
  std::optional<Deadline::clock::time_point> failing_since_;  // errors that may be an election's
};

// nats:// names (remote/nats_transport.cpp; transport_for, api/mailbox.cpp, lists it).
extern const Transport remote_transport;

}  // namespace shmbox::detail
