// The unbounded mailbox's ring: its slots lie in chunks that are backed by memory only
// while in use. A sender backs a chunk before anyone touches its slots; the receiver
// that consumes a chunk's last slot gives its memory back. docs/design.md ("Buffering",
// Unbounded) gives the algorithm; ChunkWord (layout.hpp) the chunk table's word.
#pragma once

#include <cstddef>
#include <cstdint>

#include "mailbox/mailbox_state.hpp"
#include "mailbox/ring.hpp"

namespace shmbox::detail {

// try_claim_send and try_claim_receive (ring.hpp) of an unbounded mailbox.
Attempt try_claim_send_unbounded(MailboxState& state, SendClaim& claim);
Attempt try_claim_receive_unbounded(MailboxState& state, std::size_t size_limit, ReceiveClaim& claim);

// Punches (or zeroes) a fully received chunk and makes it ready for lap + 1. Called by
// its releaser, or by recovery when the releaser died midway.
void give_back_chunk(MailboxState& state, ChunkEntry& chunk, std::uint64_t lap, std::uint64_t any_position) noexcept;

}  // namespace shmbox::detail
