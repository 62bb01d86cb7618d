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

// What an object kept in a file of /dev/shm is called: its name, its file's name (the
// kind's prefix and the name) and how errors name it.
struct FileNames {
  std::string name;
  std::string file_name;
  std::string object;
};
Result<FileNames> file_names(std::string_view kind, std::string_view file_prefix, std::string_view name);

// open(), else create(), else open() again when another process created it between.
template <class Open, class Create>
auto open_or_create(Open&& open, Create&& create) -> decltype(open()) {
  for (;;) {
    auto opened = open();
    if (opened || opened.error() != Errc::not_found) return opened;
    auto created = create();
    if (created || created.error() != Errc::already_exists) return created;
  }
}

}  // namespace shmbox::detail
