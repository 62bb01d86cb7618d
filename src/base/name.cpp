#include "base/name.hpp"

#include <array>

namespace shmbox::detail {
namespace {

bool allowed(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
         c == '-';
}

}  // namespace

std::string describe(std::string_view kind, std::string_view name) {
  constexpr std::array<char, 16> hex{'0', '1', '2', '3', '4', '5', '6', '7', '8', '9', 'a', 'b', 'c', 'd', 'e', 'f'};
  constexpr std::size_t shown = 80;
  std::string text{kind};
  text += " '";
  for (std::size_t i = 0; i < name.size() && i < shown; ++i) {
    const auto byte = static_cast<unsigned char>(name[i]);
    if (byte >= 0x20 && byte < 0x7f && byte != '\\' && byte != '\'') {
      text += static_cast<char>(byte);
    } else {
      text += "\\x";
      text += hex[byte >> 4];
      text += hex[byte & 0xf];
    }
  }
  if (name.size() > shown) text += "...";
  text += '\'';
  return text;
}

Result<std::string> validate_name(std::string_view kind, std::string_view name) {
  auto invalid = [&](std::string detail) {
    return std::unexpected(Error{Errc::invalid_name, describe(kind, name), std::move(detail)});
  };
  std::string_view bare = name;
  if (bare.starts_with('/')) bare.remove_prefix(1);
  if (bare.empty()) return invalid("name is empty");
  if (bare.size() > max_name_length) {
    return invalid("name is " + std::to_string(bare.size()) + " characters long, the limit is " +
                   std::to_string(max_name_length));
  }
  if (bare == "." || bare == "..") return invalid("name may not be '.' or '..'");
  for (const char c : bare) {
    if (c == '/') return invalid("name must be one path component (no '/' after the first character)");
    if (!allowed(c)) return invalid("name may contain only letters, digits, '.', '_' and '-'");
  }
  return std::string{bare};
}

Result<FileNames> file_names(std::string_view kind, std::string_view file_prefix, std::string_view name) {
  auto valid = validate_name(kind, name);
  if (!valid) return std::unexpected(valid.error());
  return FileNames{*valid, std::string{file_prefix} + *valid, describe(kind, *valid)};
}

}  // namespace shmbox::detail
