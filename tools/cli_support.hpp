// What every verb of the tool shares: reporting an error, and parsing the
// argument forms that CLI11 has no validator for.
#pragma once

#include <sys/types.h>

#include <string>

#include "shmbox/error.hpp"
#include "shmbox/wait.hpp"

namespace shmbox::cli {

// Prints "shmbox: <object>: <cause>" on stderr and returns the sysexits code.
int fail(const Error& error);

// An octal permission string ("600", "0640"); invalid_argument naming --mode otherwise.
Result<mode_t> parse_mode(const std::string& text);

// "250ms", "2s", "1.5s", "1m", "100us": invalid_argument naming --timeout otherwise.
Result<Deadline> parse_timeout(const std::string& text);

}  // namespace shmbox::cli
