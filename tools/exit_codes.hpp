// sysexits.h codes for every shmbox error, so that scripts can branch on the cause.
#pragma once

#include <sysexits.h>

#include "shmbox/error.hpp"

namespace shmbox::cli {

constexpr int exit_code(Errc code) noexcept {
  switch (code) {
    case Errc::invalid_name:
    case Errc::invalid_argument: return EX_USAGE;
    case Errc::too_large:
    case Errc::corrupt:
    case Errc::version_mismatch: return EX_DATAERR;
    case Errc::not_found: return EX_NOINPUT;
    case Errc::closed:
    case Errc::unreachable: return EX_UNAVAILABLE;
    case Errc::already_exists: return EX_CANTCREAT;
    case Errc::not_ready:
    case Errc::would_block:
    case Errc::timeout: return EX_TEMPFAIL;
    case Errc::permission_denied: return EX_NOPERM;
    case Errc::no_space:
    case Errc::out_of_memory:
    case Errc::system: return EX_OSERR;
  }
  return EX_SOFTWARE;
}

}  // namespace shmbox::cli
