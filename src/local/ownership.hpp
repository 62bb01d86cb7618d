// Process-owned mailboxes: when the owning process exits, however it exits, the
// mailbox is closed and removed by whoever notices first. design.md ("Ownership").
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "platform/exit_hooks.hpp"
#include "segment/garbage.hpp"
#include "local/mapped_mailbox.hpp"

namespace shmbox::detail {

// How often a waiter looks at the owner, and the longest it sleeps between looks:
// together they bound how late a blocked call learns that the owner is gone.
inline constexpr std::chrono::milliseconds owner_check_interval{20};

// Removes the mailbox's name if it still belongs to this file, then closes it for
// everyone and wakes every waiter. Returns false, having changed nothing, if this
// process may not remove the name.
bool retire(MappedMailbox& mailbox) noexcept;

// For a mailbox whose owner is gone or leaving: removes its name if this process may,
// and closes it for everyone either way. Whether the name was removed (or already gone).
bool close_for_good(MappedMailbox& mailbox) noexcept;

// If the owner has exited: closes the mailbox (whether or not this process may remove
// its name: it is gone for everyone) and removes its name if it may; returns whether
// the owner had exited. One poll().
bool retire_if_orphaned(MappedMailbox& mailbox) noexcept;

// For waiters: looks at the owner at most once per owner_check_interval.
inline void watch_owner(MappedMailbox& mailbox, std::chrono::steady_clock::time_point now) noexcept {
  if (mailbox.owner == 0 || now < mailbox.next_owner_check) return;
  mailbox.next_owner_check = now + owner_check_interval;
  (void)retire_if_orphaned(mailbox);
}

// A process-owned mailbox this process created: removed when the process exits
// normally (at exit), unless removed before.
void remove_at_exit(const MappedMailbox& mailbox);

// Why a mailbox's owner record (0: the system) cannot be one its creator wrote, or
// nullopt if it can. A mailbox file belongs to the process it was created for (its
// creator, or MailboxOptions::owner_pid) or the system; a lane
// (another prefix) is made by its sender for the endpoint's process.
std::optional<std::string> owner_record_fault(std::string_view file_name, std::uint64_t owner, std::uint64_t creator);

// Removes the mailbox file `names` if it is garbage: its owner has exited (it is
// retired), or it was left empty (segment_factory.hpp, Unsized); and says why. nullopt
// if it is owned by a live process or the system, or cannot be opened read-write,
// validated or removed by this process (then it is left alone).
std::optional<Garbage> remove_mailbox_if_garbage(const MailboxFile& names);

}  // namespace shmbox::detail
