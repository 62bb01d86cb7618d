// Work a process owes the world when it exits normally: retiring what it owns (its
// process-owned mailboxes and endpoints, its remote mailboxes' leases). Killed processes
// run none of it; others notice their death instead (design.md, Ownership).
#pragma once

#include <cstdint>
#include <functional>
#include <string>

namespace shmbox::detail {

// Runs `work` at a normal exit of `owner` (ProcessIdentity::packed(); not at the exit of
// a forked child, which inherits the list but owns nothing on it), unless
// forget_at_exit(key) ran first. Keys name what is owned: a file name, a remote name.
void run_at_exit(std::string key, std::uint64_t owner, std::function<void()> work);
void forget_at_exit(const std::string& key) noexcept;

}  // namespace shmbox::detail
