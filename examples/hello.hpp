// The textbook producer/consumer over shared memory, on shmbox::Segment.
// The producer writes "Hello" then "World!"; the consumer prints "HelloWorld!" and
// removes the segment.
#pragma once

#include <chrono>
#include <cstdio>
#include <cstring>
#include <string_view>

#include "shmbox/segment.hpp"

namespace hello {

inline constexpr std::string_view default_name = "shmbox-hello";
inline constexpr std::size_t segment_size = 4096;

inline int produce(std::string_view name) {
  // The text is written before the segment gets its name, so a consumer that
  // is already waiting can never read it half-written.
  auto segment = shmbox::Segment::create(name, segment_size, {.initialize = [](std::span<std::byte> memory) {
    auto* text = reinterpret_cast<char*>(memory.data());
    const int first = std::snprintf(text, memory.size(), "%s", "Hello");
    std::snprintf(text + first, memory.size() - static_cast<std::size_t>(first), "%s", "World!");
  }});
  if (!segment) {
    std::fprintf(stderr, "producer: %s\n", segment.error().message().c_str());
    return 1;
  }
  return 0;
}

inline int consume(std::string_view name, shmbox::Deadline wait_until) {
  auto segment = shmbox::Segment::open_wait(name, shmbox::Access::read_only, wait_until);
  if (!segment) {
    std::fprintf(stderr, "consumer: %s\n", segment.error().message().c_str());
    return 1;
  }
  // Shared memory is untrusted: never read past the mapping looking for a NUL.
  const auto bytes = segment->bytes();
  const auto* text = reinterpret_cast<const char*>(bytes.data());
  std::printf("%.*s\n", static_cast<int>(strnlen(text, bytes.size())), text);
  std::fflush(stdout);  // a forked consumer leaves with _exit, which does not flush
  if (auto removed = shmbox::Segment::remove(name); !removed) {
    std::fprintf(stderr, "consumer: %s\n", removed.error().message().c_str());
    return 1;
  }
  return 0;
}

}  // namespace hello
