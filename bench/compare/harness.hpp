// The measuring side of shmbox-bench: processes pinned to CPUs, memory they share,
// statistics, and what else ran on the machine meanwhile.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace bench {

using Clock = std::chrono::steady_clock;

// Memory shared with the processes forked after it (MAP_SHARED | MAP_ANONYMOUS).
class SharedMemory {
 public:
  explicit SharedMemory(std::size_t bytes);
  SharedMemory(const SharedMemory&) = delete;
  SharedMemory& operator=(const SharedMemory&) = delete;
  ~SharedMemory();
  template <class T>
  T* as() const noexcept { return static_cast<T*>(base_); }

 private:
  void* base_;
  std::size_t size_;
};

// Runs each body in its own forked process (body i pinned to CPU i % CPUs when `pin`),
// and waits for all. A body returns 0 on success; an exception or another value makes
// run_processes return the first failure's description ("" when all succeeded). Once
// `finished()` says so, processes still running are killed (receivers blocked for
// messages that will not come); after `limit` everything is killed and it fails.
std::string run_processes(const std::vector<std::function<int()>>& bodies, bool pin, std::chrono::seconds limit,
                          const std::function<bool()>& finished = {});

void pin_to_cpu(unsigned cpu);
std::int64_t cpu_time_ns();  // this process's user + system time

struct Percentiles {
  double median = 0, p99 = 0, p999 = 0, max = 0;
};
Percentiles percentiles(std::vector<double> samples);

struct Summary {
  double median = 0, min = 0, max = 0;
};
Summary summarise(std::vector<double> values);

// CPU, kernel, cores, as one line.
std::string machine_description();

// Measures how busy the machine's CPUs were, apart from us and our children, between
// construction and busy_elsewhere(): a fraction of all CPUs' time.
class LoadWatch {
 public:
  LoadWatch();
  double busy_elsewhere() const;

 private:
  std::uint64_t busy_ticks_, total_ticks_;
  std::int64_t own_cpu_ns_;
};

}  // namespace bench
