// The mailbox ring: claiming, publishing and releasing slots. One attempt per
// call, never waiting; mailbox/waiting.hpp decides how to wait between attempts.
// docs/design.md ("Send", "Receive", "Memory orders") gives the algorithm and the
// reason for every memory order used here.
#pragma once

#include <cstdint>
#include <optional>

#include "mailbox/mailbox_state.hpp"

namespace shmbox::detail {

struct SendClaim {
  std::uint64_t position;
  SlotHeader* slot;
};

struct ReceiveClaim {
  std::uint64_t position;
  SlotHeader* slot;
  std::uint32_t size;
};

// What one attempt came to. On `failed` the error is in state.failure; it is built
// only then, so that the hot path moves one byte, not an Error.
enum class Attempt : std::uint8_t { claimed, not_yet, failed };

// Claims a slot for us to write; not_yet when every slot is taken (full).
// Fails with: closed, corrupt.
Attempt try_claim_send(MailboxState& state, SendClaim& claim);

// Makes a claimed slot's first `size` bytes visible to receivers and wakes one.
void publish(MailboxState& state, const SendClaim& claim, std::uint32_t size) noexcept;

// Gives up a claimed, unpublished slot (an abandoned loan): receivers skip it.
void abandon(MailboxState& state, const SendClaim& claim) noexcept;

// Zero capacity: takes a published message back unless a receiver has claimed it.
// True if taken back (it will never be received).
bool take_back(MailboxState& state, const SendClaim& claim) noexcept;

// Whether a published message is still waiting for a receiver.
bool still_published(const MailboxState& state, const SendClaim& claim) noexcept;

// Claims the next message for us; not_yet when there is none ready.
// A message larger than `size_limit` stays queued: Errc::too_large.
// Fails with: closed (and empty), corrupt, too_large.
Attempt try_claim_receive(MailboxState& state, std::size_t size_limit, ReceiveClaim& claim);

// Frees a received slot for the next lap and wakes a sender.
void release(MailboxState& state, const ReceiveClaim& claim) noexcept;

bool is_closed(const MailboxState& state) noexcept;

// For spinning: whether the slot a receive (send) waits on has changed, read from
// that slot and the caller's own index only. Spinning on these instead of a full
// attempt keeps the waiter off the other side's index line, which that side is
// about to write.
bool receive_may_be_ready(const MailboxState& state) noexcept;
bool send_may_be_ready(const MailboxState& state) noexcept;

// Cheap readiness hints for selectors: a receive (send) would not have to wait.
// Closed counts as ready, so that the caller's next call reports it.
bool ready_to_receive(const MailboxState& state) noexcept;
bool ready_to_send(const MailboxState& state) noexcept;
std::uint64_t queued(const MailboxState& state) noexcept;

void wake_receivers(MailboxState& state, bool all) noexcept;
void wake_senders(MailboxState& state, bool all) noexcept;

}  // namespace shmbox::detail
