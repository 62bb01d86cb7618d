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

// A slot claimed for us to write, or nullopt when every slot is taken (full).
// Errors: closed, corrupt.
Result<std::optional<SendClaim>> try_claim_send(MailboxState& state) noexcept;

// Makes a claimed slot's first `size` bytes visible to receivers and wakes one.
void publish(MailboxState& state, const SendClaim& claim, std::uint32_t size) noexcept;

// Gives up a claimed, unpublished slot (an abandoned loan): receivers skip it.
void abandon(MailboxState& state, const SendClaim& claim) noexcept;

// Zero capacity: takes a published message back unless a receiver has claimed it.
// True if taken back (it will never be received).
bool take_back(MailboxState& state, const SendClaim& claim) noexcept;

// Whether a published message is still waiting for a receiver.
bool still_published(const MailboxState& state, const SendClaim& claim) noexcept;

// The next message, claimed for us, or nullopt when there is none ready.
// A message larger than `size_limit` stays queued: Errc::too_large.
// Errors: closed (and empty), corrupt, too_large.
Result<std::optional<ReceiveClaim>> try_claim_receive(MailboxState& state, std::size_t size_limit) noexcept;

// Frees a received slot for the next lap and wakes a sender.
void release(MailboxState& state, const ReceiveClaim& claim) noexcept;

bool is_closed(const MailboxState& state) noexcept;
std::uint64_t queued(const MailboxState& state) noexcept;

void wake_receivers(MailboxState& state, bool all) noexcept;
void wake_senders(MailboxState& state, bool all) noexcept;

}  // namespace shmbox::detail
