// Messages as text, for assertions.
#pragma once

#include <cstddef>
#include <span>
#include <string>

namespace shmbox::test {

inline std::string text_of(std::span<const std::byte> bytes) {
  return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
}

}  // namespace shmbox::test
