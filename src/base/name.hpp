#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "shmbox/error.hpp"

namespace shmbox::detail {

inline constexpr std::size_t max_name_length = 255;  // NAME_MAX of tmpfs

// "segment 'orders'"; control and non-ASCII bytes in a name are shown escaped so that
// an error message about a hostile name stays one printable line.
std::string describe(std::string_view kind, std::string_view name);

// Checks a user's name and returns it without the optional leading '/'.
Result<std::string> validate_name(std::string_view kind, std::string_view name);

}  // namespace shmbox::detail
