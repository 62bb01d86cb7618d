// The unbounded mailbox's ring: its slots lie in chunks that are backed by memory only
// while in use. A sender backs a chunk before anyone touches its slots; the receiver
// that consumes a chunk's last slot gives its memory back. docs/design.md ("Buffering",
// Unbounded) gives the algorithm; ChunkWord (layout.hpp) the chunk table's word.
#pragma once

#include <cstddef>
#include <cstdint>

#include "local/mapped_mailbox.hpp"
#include "local/ring.hpp"

namespace shmbox::detail {

// try_claim_send and try_claim_receive (ring.hpp) of an unbounded mailbox.
Attempt try_claim_send_unbounded(MappedMailbox& mailbox, SendClaim& claim);
Attempt try_claim_receive_unbounded(MappedMailbox& mailbox, std::size_t size_limit, ReceiveClaim& claim);

// Chunk work a dead handle left half done: backing (the chunk goes back to "ready"
// for the same lap), giving back (finished here), punching kept memory (the chunk goes
// back to "ready, holds memory"). The worker is identified by its tag, checked just
// before the CAS that takes the work over, so a live worker is never robbed.
// Run by recover() (recovery.hpp) over the attach table `attach`.
void finish_orphaned_chunk_work(MappedMailbox& mailbox, const AttachEntry* attach);

}  // namespace shmbox::detail
