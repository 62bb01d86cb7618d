#pragma once

#include <string>
#include <string_view>

#include "shmbox/error.hpp"

namespace shmbox::platform {

// Maps an errno from a failed system call to shmbox's error, keeping the errno.
// `object` names what the call was about ("segment 'orders'"); `action` says what
// was being done ("cannot open"), and becomes the start of the detail.
Error system_error(int err, std::string object, std::string_view action);

}  // namespace shmbox::platform
