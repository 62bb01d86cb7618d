// Finding what killed processes left behind. A process-owned object whose owner has
// exited is closed and removed by the first process that notices: a waiter on it, an
// open of it, a create under its name. collect_garbage() looks at every object at once
// (the CLI's `shmbox gc`); no daemon is needed.
#pragma once

#include <sys/types.h>

#include <string>
#include <string_view>
#include <vector>

#include "shmbox/error.hpp"

namespace shmbox {

struct RemovedObject {
  std::string kind;  // "mailbox", "endpoint", "lane", "lock", "board", "topic"
  std::string name;
  pid_t owner_pid = 0;  // the owner that had exited; 0 if it was removed for another cause
  // Why it was garbage, in words: "its owner, process 123, had exited", or "it had been
  // empty (0 bytes) for over 2 s".
  std::string cause;
};

// Removes every object in /dev/shm whose owning process has exited, and every mailbox,
// lane, endpoint or lock file left empty (0 bytes: truncated, or never sized by a creator that
// is gone) for over 2 s, and says what it removed. Objects the caller may not remove,
// and corrupt ones, are left alone.
[[nodiscard]] std::vector<RemovedObject> collect_garbage();

// The same on a NATS server ("nats://host:port"): removes its process-owned mailboxes
// whose owners' leases have lapsed (names in RemovedObject are full remote names).
[[nodiscard]] Result<std::vector<RemovedObject>> collect_garbage(std::string_view server);

}  // namespace shmbox
