// One exit code per cause (sysexits.h), the same for every command, so that scripts can
// branch on the cause.
#pragma once

#include <sysexits.h>

#include <array>
#include <utility>

#include "shmbox/error.hpp"

namespace shmbox::cli {

namespace exit_codes {
// Writing the output or reading the input (stdout, --file, stdin) failed.
inline constexpr int io_error = EX_IOERR;

inline constexpr std::array<std::pair<int, const char*>, 11> table{{
    {EX_OK, "success"},
    {EX_USAGE, "usage: unknown command or option, malformed value or name"},
    {EX_DATAERR, "data: message or board value too large, object corrupt or of another layout version, a lock's data left unrepaired, or tasks or requests that failed (parallel, call)"},
    {EX_NOINPUT, "not found: no such mailbox, endpoint, segment, board, topic, service or input file"},
    {EX_UNAVAILABLE, "unavailable: the mailbox is closed, the board or topic was removed (board watch, topic sub), or its NATS server cannot be reached"},
    {EX_OSERR, "system: out of memory or space (/dev/shm full), or another system call failed"},
    {EX_CANTCREAT, "exists: the name is taken"},
    {EX_IOERR, "output or input: writing stdout or reading the input failed (what was not written stays queued)"},
    {EX_TEMPFAIL, "try again: would block (--nonblock), full (topic pub), timed out, not ready yet, in use by a live process (rm --endpoint), or another writer got there first (board put --if-version)"},
    {EX_NOPERM, "permission denied"},
    {EX_SOFTWARE, "internal error (a bug)"},
}};
}  // namespace exit_codes

constexpr int exit_code(Errc code) noexcept {
  switch (code) {
    case Errc::invalid_name:
    case Errc::invalid_argument: return EX_USAGE;
    case Errc::too_large:
    case Errc::task_failed:
    case Errc::corrupt:
    case Errc::version_mismatch:
    case Errc::not_recoverable: return EX_DATAERR;
    case Errc::not_found: return EX_NOINPUT;
    case Errc::closed:
    case Errc::unreachable: return EX_UNAVAILABLE;
    case Errc::already_exists: return EX_CANTCREAT;
    case Errc::not_ready:
    case Errc::would_block:
    case Errc::timeout:
    case Errc::in_use:
    case Errc::conflict: return EX_TEMPFAIL;
    case Errc::permission_denied: return EX_NOPERM;
    case Errc::no_space:
    case Errc::out_of_memory:
    case Errc::system: return EX_OSERR;
  }
  return EX_SOFTWARE;
}

}  // namespace shmbox::cli
