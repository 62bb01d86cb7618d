// Bridges: forward every message of one mailbox to another, typically a local mailbox
// to a remote one (nats://) and back, so that a program that only knows local
// mailboxes joins a system of several machines unchanged.
//
//   auto local = shmbox::Mailbox::open("orders").value();
//   auto remote = shmbox::Mailbox::open("nats://hub:4222/orders").value();
//   std::atomic<bool> stop{false};
//   shmbox::forward(local, remote, stop);   // until stop, or `local` is closed
//
// Guarantees:
//   - A message leaves `from` only once `to` has it (Mailbox::receive_with): from a local
//     mailbox it is read in place and released after the send to `to` returned; from a
//     remote one it is acknowledged after that send. A send that fails puts the message
//     back, to be received next (by this bridge or another receiver of `from`). A bridge
//     killed at any point loses nothing: a local message it held is recovered and
//     received again, a remote one is redelivered after the server's ack wait.
//   - Local to remote is exactly once across bridge restarts: each message is sent with
//     an id made of its mailbox's file (on this boot of this machine) and its place in
//     it, which it keeps when it is redelivered, and the server stores one message per id
//     (within its two-minute window). Remote to remote likewise, by the stream's
//     sequence. Into a zero-capacity remote mailbox (which keeps no ids) or a local one it
//     is at least once: a bridge killed between the send and its release or ack, or an
//     ack the server never confirmed, sends that message again.
//   - Failures of `to` (a server restarting, a full mailbox, a closed one) are retried,
//     never dropped; each attempt that fails is reported through on_retry. A bridge whose
//     destination is gone for good is stopped with `stop`.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>

#include "shmbox/error.hpp"
#include "shmbox/mailbox.hpp"

namespace shmbox {

struct ForwardOptions {
  // Called for each failure of a send to `to` that is being retried.
  std::function<void(const Error&)> on_retry;
  // Called after each message forwarded (for progress reports).
  std::function<void(std::uint64_t forwarded)> on_forwarded;
};

// Forwards messages from `from` to `to` until `stop` is set (looked at between attempts,
// and every 100 ms while idle) or `from` is closed and drained; returns how many it
// forwarded. Fails at once with Errc::invalid_argument if `to` cannot hold messages as
// large as `from` may carry, and with `from`'s error if receiving from it fails for a
// cause that does not pass (a server away or restarting, System or Unreachable, is
// waited out).
[[nodiscard]] Result<std::uint64_t> forward(Mailbox& from, Mailbox& to, const std::atomic<bool>& stop,
                                            const ForwardOptions& options = {});

}  // namespace shmbox
