// What the chaos tests share: how long a soak runs, and the record of what went wrong,
// kept in memory every forked worker shares.
#pragma once

#include <sys/mman.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <new>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "support/process.hpp"

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

// A `T` in memory that the test process and every worker it forks share (never unmapped:
// the test's process ends soon after).
template <class T>
T& shared_with_workers() {
  void* mapped = ::mmap(nullptr, sizeof(T), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (mapped == MAP_FAILED) std::abort();
  return *new (mapped) T{};
}

// Workers 0 to count - 1, each started by `start(w)`.
inline std::vector<ChildProcess> start_workers(int count, const std::function<ChildProcess(int)>& start) {
  std::vector<ChildProcess> running;
  for (int w = 0; w < count; ++w) running.push_back(start(w));
  return running;
}

// The supervisor's side: workers 0 to `inside_workers - 1` record their pid in
// `inside[w]` while inside the operation under test (0 outside). Kills one worker at a time
// with SIGKILL and starts it again with `start(w)`: `one_in_any - 1` kills in `one_in_any`
// wait (up to 100 ms) for a worker inside the operation, the rest go to any worker. Stops at
// `target_kills` kills with `target_inside` of them inside (or at the soak's end, or at the
// first violation); `pause` (random, up to it) between kills lets the workers move on.
struct KillTally {
  int kills = 0;
  int inside = 0;
  bool all_killed_by_sigkill = true;
};

inline KillTally kill_and_restart(std::vector<ChildProcess>& running, int inside_workers,
                                  std::atomic<std::int64_t>* inside, const std::function<ChildProcess(int)>& start,
                                  const Violations& violations, int target_kills, int target_inside, int one_in_any,
                                  std::chrono::microseconds pause = {}) {
  using namespace std::chrono_literals;
  const auto soak_for = chaos_soak_duration();
  std::mt19937 random{std::random_device{}()};
  const auto started = std::chrono::steady_clock::now();
  const auto workers = running.size();
  KillTally tally;
  while ((tally.kills < target_kills || tally.inside < target_inside) && tally.kills < 10 * target_kills &&
         violations.count.load() == 0 &&
         (soak_for.count() == 0 || std::chrono::steady_clock::now() - started < soak_for)) {
    auto victim = static_cast<std::size_t>(random() % workers);
    if (random() % static_cast<unsigned>(one_in_any) != 0) {
      const auto give_up = std::chrono::steady_clock::now() + 100ms;
      for (bool found = false; !found && std::chrono::steady_clock::now() < give_up;) {
        const auto w = static_cast<std::size_t>(random() % static_cast<unsigned>(inside_workers));
        if (inside[w] == running[w].pid()) victim = w, found = true;
        if (!found) std::this_thread::sleep_for(20us);
      }
    }
    const bool was_inside = victim < static_cast<std::size_t>(inside_workers) && inside[victim] == running[victim].pid();
    running[victim].kill();
    if (!running[victim].wait(10s).killed_by(9)) tally.all_killed_by_sigkill = false;
    if (was_inside) ++tally.inside;
    if (victim < static_cast<std::size_t>(inside_workers)) inside[victim] = 0;
    running[victim] = start(static_cast<int>(victim));
    ++tally.kills;
    if (pause.count() > 0) std::this_thread::sleep_for(std::chrono::microseconds{static_cast<std::int64_t>(random() % static_cast<std::uint64_t>(pause.count()))});
  }
  return tally;
}

}  // namespace shmbox::test
