// The terms every transport of mailboxes shares: what a mailbox is made with
// (MailboxOptions), what stat() tells of one (MailboxStatus), and what a receive_with
// taker is handed (Delivery). Mailbox itself: shmbox/mailbox.hpp.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <variant>

#include "shmbox/error.hpp"

namespace shmbox {

enum class Buffering : std::uint8_t { zero, bounded, unbounded };

// The name the tool and the Python package show a buffering by ("?" for no valid value).
constexpr const char* buffering_name(Buffering buffering) noexcept {
  switch (buffering) {
    case Buffering::zero: return "zero";
    case Buffering::bounded: return "bounded";
    case Buffering::unbounded: return "unbounded";
  }
  return "?";
}

// Who a mailbox belongs to. A process-owned mailbox lives as long as the process that
// created it: when that process removes it, exits or is killed, the mailbox is closed
// (blocked calls wake with Errc::closed within 100 ms), later opens fail with
// Errc::not_found, and its memory is freed. A system-owned mailbox belongs to no
// process and stays until it is removed.
enum class Ownership : std::uint8_t { process, system };

struct MailboxOptions {
  Buffering buffering = Buffering::bounded;
  std::uint32_t capacity = 64;             // bounded only: messages queued at most
  std::uint32_t max_message_size = 4096;   // bytes
  mode_t mode = 0600;                      // applied exactly
  std::uint32_t max_attached = 64;         // handles (processes) attached at once
  Ownership ownership = Ownership::process;
  // Process-owned local mailboxes: the running process that owns it (gone when that
  // process exits); 0 = the calling process.
  pid_t owner_pid = 0;
  // nats:// mailboxes only: copies a NATS cluster keeps (1, 3 or 5), so that the loss of
  // a server loses nothing. Unbounded and zero-capacity buffering only (a bounded one is
  // InvalidArgument: see docs/design.md). Local mailboxes ignore it.
  std::uint8_t replicas = 1;
};

// What stat() tells of a local mailbox (a file in /dev/shm) besides the common fields.
struct LocalMailboxStatus {
  mode_t mode = 0;
  uid_t owner_uid = 0;
  std::uint32_t attached = 0;    // handles of live processes (a killed one's is not counted)
  std::uint32_t senders = 0;     // attached handles that have sent
  std::uint32_t receivers = 0;   // attached handles that have received
  std::size_t memory_bytes = 0;  // memory the mailbox holds in /dev/shm now
};

// What stat() tells of a nats:// mailbox besides the common fields.
struct RemoteMailboxStatus {
  std::string server;                   // "nats://host:port" (several: a cluster)
  std::uint32_t replicas = 0;           // copies the cluster keeps
  std::uint64_t in_flight = 0;          // handed to a receiver, not yet acknowledged
  std::uint32_t waiting_receivers = 0;  // receives waiting at the server now
  std::size_t stored_bytes = 0;         // what the server stores for it
};

// The fields mean the same for every transport; `transport` holds the facts of one.
struct MailboxStatus {
  std::string name;  // as given to stat(): a remote one's in full
  Buffering buffering = Buffering::bounded;
  std::uint32_t capacity = 0;
  std::uint32_t max_message_size = 0;
  // Messages a receive can still get: not positions a sender took back or abandoned,
  // and including a message a killed receiver held (it is received again). Remote: the
  // stream's count, which includes messages being received (in_flight).
  std::uint64_t queued = 0;
  bool closed = false;
  Ownership ownership = Ownership::process;
  pid_t owner_pid = 0;         // process-owned only
  std::string owner_name;      // the owner's command name (remote: COMMAND@HOST); empty once it has exited
  bool owner_alive = false;    // process-owned only
  std::variant<LocalMailboxStatus, RemoteMailboxStatus> transport;

  const LocalMailboxStatus* local() const noexcept { return std::get_if<LocalMailboxStatus>(&transport); }
  const RemoteMailboxStatus* remote() const noexcept { return std::get_if<RemoteMailboxStatus>(&transport); }
};

// A message handed to Mailbox::receive_with's taker, valid during the call.
struct Delivery {
  std::span<const std::byte> bytes;
  // Its place in the mailbox: a local one's sequence (ReceivedMessage::sequence), a
  // remote one's stream sequence (0 for zero capacity).
  std::uint64_t sequence = 0;
  // Names this message for good, among every message of every mailbox on any machine,
  // and stays the same when the message is delivered again after a receiver died. A
  // forwarder sends it on with Mailbox::send(bytes, deadline, id), so that a transport
  // that de-duplicates stores a message forwarded twice once. Empty for a remote
  // zero-capacity mailbox (a rendezvous stores nothing to name).
  std::string_view id;
};
using DeliveryTaker = std::function<Result<void>(const Delivery& message)>;

// The bytes of a string, for sending text.
inline std::span<const std::byte> as_bytes(std::string_view text) noexcept {
  return std::as_bytes(std::span{text.data(), text.size()});
}

}  // namespace shmbox
