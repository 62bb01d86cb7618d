#include "harness.hpp"

#include <fmt/core.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <exception>
#include <fstream>
#include <new>
#include <sstream>
#include <thread>

namespace bench {

SharedMemory::SharedMemory(std::size_t bytes) : size_(bytes) {
  base_ = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (base_ == MAP_FAILED) throw std::bad_alloc{};
}

SharedMemory::~SharedMemory() { ::munmap(base_, size_); }

void pin_to_cpu(unsigned cpu) {
  const unsigned cpus = std::max(1u, std::thread::hardware_concurrency());
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu % cpus, &set);
  ::sched_setaffinity(0, sizeof set, &set);
}

std::string run_processes(const std::vector<std::function<int()>>& bodies, bool pin, std::chrono::seconds limit,
                          const std::function<bool()>& finished) {
  std::vector<pid_t> running;
  std::fflush(nullptr);
  for (std::size_t i = 0; i < bodies.size(); ++i) {
    const pid_t pid = ::fork();
    if (pid < 0) return "fork failed";
    if (pid == 0) {
      if (pin) pin_to_cpu(static_cast<unsigned>(i));
      int status = 1;
      try {
        status = bodies[i]();
      } catch (const std::exception& error) {
        std::fprintf(stderr, "  process %zu: %s\n", i, error.what());
      }
      std::fflush(nullptr);
      ::_exit(status);
    }
    running.push_back(pid);
  }
  std::string failure;
  const auto deadline = Clock::now() + limit;
  auto kill_all = [&] {
    for (const pid_t pid : running) ::kill(pid, SIGKILL);
    for (const pid_t pid : running) ::waitpid(pid, nullptr, 0);
    running.clear();
  };
  while (!running.empty()) {
    for (auto it = running.begin(); it != running.end();) {
      int status = 0;
      const pid_t ended = ::waitpid(*it, &status, WNOHANG);
      if (ended == 0) {
        ++it;
        continue;
      }
      if (failure.empty() && !(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
        failure = WIFSIGNALED(status) ? fmt::format("a process was killed by signal {}", WTERMSIG(status))
                                      : fmt::format("a process exited with {}", WEXITSTATUS(status));
      }
      it = running.erase(it);
    }
    if (running.empty()) break;
    if (finished && finished()) {
      kill_all();
      break;
    }
    if (Clock::now() >= deadline) {
      kill_all();
      if (failure.empty()) failure = fmt::format("did not finish within {} s (messages lost?)", limit.count());
      break;
    }
    std::this_thread::sleep_for(std::chrono::microseconds{500});
  }
  return failure;
}

std::int64_t cpu_time_ns() {
  rusage usage{};
  ::getrusage(RUSAGE_SELF, &usage);
  return (usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) * 1'000'000'000L +
         (usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) * 1'000L;
}

Percentiles percentiles(std::vector<double> samples) {
  if (samples.empty()) return {};
  std::sort(samples.begin(), samples.end());
  auto at = [&](double q) { return samples[static_cast<std::size_t>(q * static_cast<double>(samples.size() - 1))]; };
  return {at(0.5), at(0.99), at(0.999), samples.back()};
}

Summary summarise(std::vector<double> values) {
  if (values.empty()) return {};
  std::sort(values.begin(), values.end());
  return {values[values.size() / 2], values.front(), values.back()};
}

std::string machine_description() {
  std::string model = "unknown CPU";
  std::ifstream cpuinfo("/proc/cpuinfo");
  for (std::string line; std::getline(cpuinfo, line);) {
    if (line.starts_with("model name")) {
      model = line.substr(line.find(':') + 2);
      break;
    }
  }
  utsname uts{};
  ::uname(&uts);
  return fmt::format("{}, {} CPUs, Linux {}", model, std::thread::hardware_concurrency(), uts.release);
}

namespace {

// All CPUs' busy and total ticks since boot (/proc/stat's first line).
std::pair<std::uint64_t, std::uint64_t> cpu_ticks() {
  std::ifstream stat("/proc/stat");
  std::string cpu;
  std::uint64_t user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0;
  stat >> cpu >> user >> nice >> system >> idle >> iowait >> irq >> softirq >> steal;
  const std::uint64_t busy = user + nice + system + irq + softirq + steal;
  return {busy, busy + idle + iowait};
}

std::int64_t own_and_children_cpu_ns() {
  rusage self{}, children{};
  ::getrusage(RUSAGE_SELF, &self);
  ::getrusage(RUSAGE_CHILDREN, &children);
  auto ns = [](const rusage& usage) {
    return (usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) * 1'000'000'000L +
           (usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) * 1'000L;
  };
  return ns(self) + ns(children);
}

}  // namespace

LoadWatch::LoadWatch() {
  std::tie(busy_ticks_, total_ticks_) = cpu_ticks();
  own_cpu_ns_ = own_and_children_cpu_ns();
}

double LoadWatch::busy_elsewhere() const {
  const auto [busy, total] = cpu_ticks();
  if (total <= total_ticks_) return 0;
  const double tick_ns = 1e9 / static_cast<double>(::sysconf(_SC_CLK_TCK));
  const double busy_ns = static_cast<double>(busy - busy_ticks_) * tick_ns;
  const double total_ns = static_cast<double>(total - total_ticks_) * tick_ns;
  const double ours = static_cast<double>(own_and_children_cpu_ns() - own_cpu_ns_);
  return std::max(0.0, (busy_ns - ours) / total_ns);
}

}  // namespace bench
