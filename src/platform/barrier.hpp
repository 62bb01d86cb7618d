// Asymmetric memory barriers across processes (membarrier(2)).
//
// A protocol where one side runs often (a sender checking for sleepers) and the
// other rarely (a receiver about to sleep) can put the whole cost of a full barrier
// on the rare side: the frequent side needs only a compiler barrier, and the rare
// side issues MEMBARRIER_CMD_GLOBAL_EXPEDITED, which acts as a full barrier on every
// CPU running a process that registered for it.
#pragma once

namespace shmbox::platform {

// Registers this process as a fast side. False if the kernel (or a seccomp filter)
// refuses, in which case the frequent side must use real barriers.
bool register_for_heavy_barriers() noexcept;

// The rare side's barrier. False if it could not be issued.
bool heavy_barrier() noexcept;

}  // namespace shmbox::platform
