#include "cli_support.hpp"

#include <fmt/core.h>

#include <charconv>
#include <chrono>

#include "exit_codes.hpp"

namespace shmbox::cli {

int fail(const Error& error) {
  fmt::print(stderr, "shmbox: {}\n", error.message());
  return exit_code(error.errc());
}

Result<mode_t> parse_mode(const std::string& text) {
  unsigned value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value, 8);
  if (text.empty() || ec != std::errc{} || end != text.data() + text.size() || value > 0777) {
    return std::unexpected(Error{Errc::invalid_argument, "--mode '" + text + "'",
                                 "must be octal permission bits such as 600 or 0640"});
  }
  return static_cast<mode_t>(value);
}

Result<Deadline> parse_timeout(const std::string& text) {
  double amount = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), amount);
  const std::string_view unit{end, static_cast<std::size_t>(text.data() + text.size() - end)};
  double seconds_per_unit = 0;
  if (unit == "us") seconds_per_unit = 1e-6;
  else if (unit == "ms") seconds_per_unit = 1e-3;
  else if (unit == "s") seconds_per_unit = 1;
  else if (unit == "m") seconds_per_unit = 60;
  else if (unit == "h") seconds_per_unit = 3600;
  if (text.empty() || ec != std::errc{} || seconds_per_unit == 0 || amount < 0) {
    return std::unexpected(Error{Errc::invalid_argument, "--timeout '" + text + "'",
                                 "must be a duration with a unit: us, ms, s, m or h (250ms, 2s)"});
  }
  return Deadline{std::chrono::duration<double>(amount * seconds_per_unit)};
}

}  // namespace shmbox::cli
