// Recovery from processes that died mid-operation. docs/design.md ("Crash recovery")
// says what is recovered and when.
#pragma once

#include <cstddef>

#include "local/mapped_mailbox.hpp"
#include "local/ring.hpp"

namespace shmbox::detail {

// Frees what handles of dead processes hold in this mailbox: a position a dead sender
// claimed but never published is cancelled (receivers skip it); a chunk a dead sender
// was backing is made ready again; a message a dead receiver had claimed but not
// released is adopted for the caller when `adopt` is given (one per call, of at most
// `size_limit` bytes; a larger one is put back, first in line), or left for the next
// receiver that recovers. An entry whose holder is dead is freed once nothing names it
// any more. Returns true if a message was adopted into *adopt.
// Costs a /proc read per attached handle: call it only from slow paths.
bool recover(MappedMailbox& mailbox, ReceiveClaim* adopt, std::size_t size_limit);

}  // namespace shmbox::detail
