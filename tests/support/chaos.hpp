// What the chaos tests share: how long a soak runs, and the record of what went wrong,
// kept in memory every forked worker shares.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>

namespace shmbox::test {

// SHMBOX_CHAOS_SECONDS=N turns a chaos test into a soak of N seconds; 0 when unset.
inline std::chrono::seconds chaos_soak_duration() {
  const char* soak = std::getenv("SHMBOX_CHAOS_SECONDS");
  return std::chrono::seconds{soak != nullptr ? std::atoi(soak) : 0};
}

// How many violations the workers found, and the first one in words.
struct Violations {
  std::atomic<std::uint64_t> count;
  char first[256];

  void record(const std::string& what) {
    if (count.fetch_add(1) == 0) std::strncpy(first, what.c_str(), sizeof first - 1);
  }
};

}  // namespace shmbox::test
