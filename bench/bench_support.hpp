// What the process benchmarks (lock_bench, board_bench) share: pinning, timing in batches,
// percentiles and the "median (min-max)" summary of repetitions, forking a measuring child
// and a watchdog that fails a run that hangs.
#pragma once

#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <fstream>
#include <string>
#include <fmt/core.h>
#include <mutex>
#include <span>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <thread>
#include <vector>

namespace bench {

using Clock = std::chrono::steady_clock;

// Ends a benchmark that failed: says why on stderr after what it printed so far, removes its
// named objects (`cleanup`), and exits 1 without running destructors, which another thread
// (a watchdog's) may be using.
[[noreturn]] inline void fail_run(const char* program, const std::string& message, void (*cleanup)()) {
  std::fflush(stdout);
  fmt::print(stderr, "{}: {}\n", program, message);
  cleanup();
  std::fflush(nullptr);
  ::_exit(1);
}

[[noreturn]] inline void throw_error(const char* call, int error) {
  throw std::runtime_error(fmt::format("{}: {}", call, std::strerror(error)));
}

inline void pin(unsigned cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  ::sched_setaffinity(0, sizeof set, &set);
}

inline std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch()).count();
}

// Zeroed memory that a forked child shares with its parent.
inline void* map_shared(std::size_t bytes) {
  void* memory = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (memory == MAP_FAILED) throw_error("mmap", errno);
  return memory;
}

// The baseline users reach for: a pthread mutex that works across processes and survives
// its holder's death.
inline void init_robust_mutex(pthread_mutex_t& mutex) {
  pthread_mutexattr_t attributes;
  ::pthread_mutexattr_init(&attributes);
  ::pthread_mutexattr_setpshared(&attributes, PTHREAD_PROCESS_SHARED);
  ::pthread_mutexattr_setrobust(&attributes, PTHREAD_MUTEX_ROBUST);
  const int error = ::pthread_mutex_init(&mutex, &attributes);
  ::pthread_mutexattr_destroy(&attributes);
  if (error != 0) throw_error("pthread_mutex_init", error);
}

// Times batches of `batch` calls of op (a clock read costs about as much as the cheapest
// ops measured); each sample is a batch's ns per call. Fills every sample, or stops at the
// first batch that ends after `until`; returns the batches done.
template <class Op>
std::size_t time_batches(std::span<double> ns_per_op, std::size_t batch, Op&& op,
                         Clock::time_point until = Clock::time_point::max()) {
  std::size_t done = 0;
  for (double& sample : ns_per_op) {
    const auto start = Clock::now();
    for (std::size_t i = 0; i < batch; ++i) op();
    const auto end = Clock::now();
    sample = std::chrono::duration<double, std::nano>(end - start).count() / static_cast<double>(batch);
    ++done;
    if (end >= until) break;
  }
  return done;
}

struct Percentiles {
  double median, p99;
};

inline Percentiles percentiles(std::vector<double> samples) {
  std::sort(samples.begin(), samples.end());
  auto at = [&](double q) { return samples[static_cast<std::size_t>(q * static_cast<double>(samples.size() - 1))]; };
  return {at(0.5), at(0.99)};
}

// Of the repetitions of one figure.
struct Summary {
  double median, min, max;
};

inline Summary summarise(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return {values[values.size() / 2], values.front(), values.back()};
}

// "median (min-max)", for a column of its own width.
inline std::string spread(const Summary& summary, int decimals, const char* unit = "", double scale = 1) {
  return fmt::format("{:.{}f}{} ({:.{}f}-{:.{}f}{})", summary.median / scale, decimals, unit, summary.min / scale,
                     decimals, summary.max / scale, decimals, unit);
}

// Kills `child` (if any) and calls `fail` when a measurement does not end within
// `stuck_after`: a lock that loses a wake-up would otherwise hang the benchmark, and the CI
// job that runs it, without a word.
class Watchdog {
 public:
  using Fail = void (*)(const std::string&);
  Watchdog(std::string what, pid_t child, std::chrono::seconds stuck_after, Fail fail)
      : thread_{[what = std::move(what), child, stuck_after, fail](std::stop_token stop) {
          std::mutex mutex;
          std::condition_variable_any stopped;
          std::unique_lock hold{mutex};
          if (stopped.wait_for(hold, stop, stuck_after, [&] { return stop.stop_requested(); })) return;
          if (child > 0) ::kill(child, SIGKILL);
          fail(fmt::format("{}: still running after {} s (stuck?)", what, stuck_after.count()));
        }} {}

 private:
  std::jthread thread_;
};

// Forks a child pinned to `cpu` that runs body() and exits 0, or exits 1 with what body
// threw written to `error` (shared memory the parent reads after reap()).
template <class Body>
pid_t fork_pinned(unsigned cpu, std::span<char> error, Body&& body) {
  error[0] = '\0';
  std::fflush(nullptr);  // else the child's exit could write the parent's buffered output again
  const pid_t child = ::fork();
  if (child < 0) throw_error("fork", errno);
  if (child > 0) return child;
  pin(cpu);
  int status = 0;
  try {
    body();
  } catch (const std::exception& thrown) {
    std::snprintf(error.data(), error.size(), "%s", thrown.what());
    status = 1;
  }
  ::_exit(status);
}

// For a parent that failed while its child runs: the child goes too.
inline void kill_child(pid_t child) {
  ::kill(child, SIGKILL);
  ::waitpid(child, nullptr, 0);
}

// Waits for a child of fork_pinned: "" if it succeeded, else what went wrong.
inline std::string reap(pid_t child, std::span<const char> error) {
  int status = 0;
  ::waitpid(child, &status, 0);
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return {};
  return error[0] != '\0' ? std::string{error.data()} : fmt::format("status {:#x}", status);
}

// Draws `script` (a gnuplot script that writes `file`) with gnuplot; empty, or what went wrong.
inline std::string draw_with_gnuplot(const std::string& file, const std::string& script) {
  const std::string script_file = file + ".gp";
  std::ofstream(script_file) << script;
  const int status = std::system(("gnuplot '" + script_file + "'").c_str());
  std::remove(script_file.c_str());
  if (status != 0) return "gnuplot failed (is it installed? Debian: gnuplot-nox)";
  return {};
}

}  // namespace bench
