#pragma once

#include <sys/types.h>

#include <string>

#include "shmbox/error.hpp"

namespace shmbox::detail {

// Errc::permission_denied unless objects of `owner` are trusted (shmbox/trust.hpp).
Result<void> check_trusted_owner(uid_t owner, const std::string& object);

// Whether an open is to communicate through the object (and so must pass the check) or
// only to look at it or remove it.
enum class OwnerCheck : bool { any_owner, trusted_owner };

}  // namespace shmbox::detail
