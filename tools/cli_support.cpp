#include "cli_support.hpp"

#include <fmt/core.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <chrono>
#include <cmath>
#include <string_view>

#include "exit_codes.hpp"

namespace shmbox::cli {
namespace {

struct Unit {
  std::string_view suffix;
  double scale;
};

// Splits "12.5ms" into 12.5 and "ms". Decimal digits with at most one point: no sign,
// exponent, inf or nan, which from_chars would take.
bool split_number(std::string_view text, double& amount, std::string_view& unit) {
  const auto number_end = std::find_if(text.begin(), text.end(), [](char c) { return !(c >= '0' && c <= '9') && c != '.'; });
  const std::string_view number{text.begin(), number_end};
  if (number.empty() || number.front() == '.' || number.back() == '.' || std::ranges::count(number, '.') > 1) {
    return false;
  }
  const auto [end, ec] = std::from_chars(number.data(), number.data() + number.size(), amount);
  unit = std::string_view{number_end, text.end()};
  return ec == std::errc{} && end == number.data() + number.size() && std::isfinite(amount);
}

}  // namespace

int fail(const Error& error) {
  fmt::print(stderr, "shmbox: {}\n", error.message());
  return exit_code(error.errc());
}

int fail_io(const Error& error) {
  fmt::print(stderr, "shmbox: {}\n", error.message());
  return exit_codes::io_error;
}

Error bad_value(const std::string& option, const std::string& value, const std::string& form) {
  return Error{Errc::invalid_argument, option + " '" + value + "'", "must be " + form};
}

Result<mode_t> parse_mode(const std::string& option, const std::string& text) {
  unsigned value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value, 8);
  if (text.empty() || ec != std::errc{} || end != text.data() + text.size() || value > 0777) {
    return std::unexpected(bad_value(option, text, "octal permission bits such as 600 or 0640"));
  }
  return static_cast<mode_t>(value);
}

Result<Deadline> parse_duration(const std::string& option, const std::string& text) {
  static constexpr std::array units{Unit{"us", 1e-6}, Unit{"ms", 1e-3}, Unit{"s", 1}, Unit{"m", 60}, Unit{"h", 3600}};
  constexpr double max_seconds = 1e6 * 3600;
  double amount = 0;
  std::string_view unit;
  const bool parsed = split_number(text, amount, unit);
  const auto found = std::ranges::find(units, unit, &Unit::suffix);
  if (!parsed || found == units.end() || amount * found->scale > max_seconds) {
    return std::unexpected(bad_value(option, text,
                                     "a duration: a number and one of us, ms, s, m, h (250ms, 2s, 1.5m), "
                                     "at most 1000000h"));
  }
  return Deadline{std::chrono::duration<double>(amount * found->scale)};
}

Result<std::uint64_t> parse_size(const std::string& option, const std::string& text, std::uint64_t limit) {
  static constexpr std::array units{Unit{"", 1}, Unit{"B", 1}, Unit{"KiB", 1024.0}, Unit{"MiB", 1024.0 * 1024},
                                    Unit{"GiB", 1024.0 * 1024 * 1024}};
  double amount = 0;
  std::string_view unit;
  const bool parsed = split_number(text, amount, unit);
  const auto found = std::ranges::find(units, unit, &Unit::suffix);
  const double bytes = parsed && found != units.end() ? amount * found->scale : -1;
  if (bytes < 0 || bytes > static_cast<double>(limit) || bytes != std::floor(bytes)) {
    return std::unexpected(bad_value(option, text,
                                     fmt::format("a whole number of bytes with an optional unit B, KiB, MiB or GiB "
                                                 "(4096, 64KiB, 1MiB), at most {}",
                                                 limit)));
  }
  return static_cast<std::uint64_t>(bytes);
}

Result<std::uint64_t> parse_count(const std::string& option, const std::string& text, std::uint64_t minimum,
                                  std::uint64_t maximum) {
  std::uint64_t value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  const bool digits_only = !text.empty() && std::ranges::all_of(text, [](char c) { return c >= '0' && c <= '9'; });
  if (!digits_only || ec != std::errc{} || end != text.data() + text.size() || value < minimum || value > maximum) {
    return std::unexpected(bad_value(option, text, fmt::format("a whole number from {} to {}", minimum, maximum)));
  }
  return value;
}

std::string mailbox_object(const std::string& name) { return "mailbox '" + name + "'"; }
std::string endpoint_object(const std::string& name) { return "endpoint '" + name + "'"; }

std::string exit_code_table() {
  std::string table;
  for (const auto& [code, meaning] : exit_codes::table) table += fmt::format("  {:>3}  {}\n", code, meaning);
  return table;
}

}  // namespace shmbox::cli
