// Whose objects this process opens. An object in /dev/shm belongs to the user who created
// it, and anyone may create any free name. So a user who creates a name first, with a mode
// that lets others in, could pose as the peer a process expects to find there. To rule
// that out, opening an object to communicate through it (Segment::open, Mailbox::open,
// Endpoint::send's lookup of the peer) accepts by default only objects that belong to this
// process's effective user or to root; anything else fails with Errc::permission_denied
// naming the owner's uid. Processes of different users that mean to talk say whom they
// trust. Looking (stat, ls), removing and gc are not affected.
//
//   shmbox::trust_user(1001);   // also open objects that uid 1001 created
#pragma once

#include <sys/types.h>

namespace shmbox {

// Also accept objects created by `uid`. Process-wide, thread-safe, never undone.
void trust_user(uid_t uid);

// Accept objects of any user: the object's mode alone decides (the kernel's check).
void trust_all_users();

// Whether objects that belong to `uid` are accepted.
[[nodiscard]] bool trusts_user(uid_t uid) noexcept;

}  // namespace shmbox
