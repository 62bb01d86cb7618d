// pool_bench: what a task costs on shmbox's pool against what users pick instead, and the
// speedup that two workers give on two cores.
//
// 1. Per-task overhead of an empty task, two workers: shmbox::Pool (map, and one task at a
//    time), `shmbox parallel` (a process per task, and --persistent), Python's
//    multiprocessing.Pool.imap (chunksize 1) and concurrent.futures.ProcessPoolExecutor,
//    xargs -P 2 and GNU parallel -j 2. Wall time of the whole run over the task count.
// 2. Speedup of 2 workers over 1 for tasks of 1 us to 10 ms of CPU work, with two threads
//    in one process as the upper bound.
//
// Usage: pool_bench [--quick] [--repeat N] [--shmbox PATH] [--plot FILE.svg]
// --plot draws both tables' medians with gnuplot.
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <fmt/core.h>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "bench_support.hpp"
#include "shmbox/pool.hpp"

extern char** environ;

namespace {

using bench::Clock;

struct Settings {
  bool quick = false;
  int repeat = 5;
  std::string shmbox = SHMBOX_CLI_PATH;
  std::string plot_file;
};

double seconds_since(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

// Runs `script` under sh and returns its wall time in seconds, or nullopt if it failed
// (a peer that is not installed).
std::optional<double> time_shell(const std::string& script) {
  const char* argv[] = {"sh", "-c", script.c_str(), nullptr};
  const auto start = Clock::now();
  pid_t child = 0;
  if (::posix_spawn(&child, "/bin/sh", nullptr, nullptr, const_cast<char**>(argv), environ) != 0) return std::nullopt;
  int status = 0;
  while (::waitpid(child, &status, 0) < 0) {
  }
  const double elapsed = seconds_since(start);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) return std::nullopt;
  return elapsed;
}

bool installed(const std::string& program) { return time_shell("command -v " + program + " > /dev/null").has_value(); }

// CPU work of about `nanoseconds`, not optimised away.
std::uint64_t spin_work(std::uint64_t iterations) {
  std::uint64_t x = iterations;
  for (std::uint64_t i = 0; i < iterations; ++i) x = x * 6364136223846793005ull + 1442695040888963407ull;
  return x;
}

std::uint64_t iterations_per_microsecond() {
  const std::uint64_t probe = 20'000'000;
  const auto start = Clock::now();
  volatile std::uint64_t sink = spin_work(probe);
  (void)sink;
  return static_cast<std::uint64_t>(static_cast<double>(probe) / (seconds_since(start) * 1e6));
}

std::vector<std::byte> bytes_of(std::uint64_t value) {
  std::vector<std::byte> bytes(sizeof value);
  std::memcpy(bytes.data(), &value, sizeof value);
  return bytes;
}

std::uint64_t value_of(std::span<const std::byte> bytes) {
  std::uint64_t value = 0;
  std::memcpy(&value, bytes.data(), std::min(bytes.size(), sizeof value));
  return value;
}

// Median and the spread of repetitions, as every table here shows them.
struct Runs {
  std::vector<double> values;
  double median() const {
    auto sorted = values;
    std::sort(sorted.begin(), sorted.end());
    return sorted[sorted.size() / 2];
  }
  double min() const { return *std::min_element(values.begin(), values.end()); }
  double max() const { return *std::max_element(values.begin(), values.end()); }
};

struct OverheadRow {
  std::string name;
  std::uint64_t tasks;
  Runs per_task_us;
};

// ---- 1. per-task overhead ------------------------------------------------------------

double pool_map_us(std::uint64_t tasks) {
  auto pool = shmbox::Pool::fork([](std::span<const std::byte> task) { return std::vector<std::byte>(task.begin(), task.end()); },
                                 {.workers = 2});
  if (!pool) throw std::runtime_error(pool.error().message());
  const auto start = Clock::now();
  auto outcomes = pool->map(tasks, [](std::size_t i) {
    static std::vector<std::byte> task;
    task = bytes_of(i);
    return std::span<const std::byte>{task};
  });
  const double elapsed = seconds_since(start);
  if (!outcomes || outcomes->size() != tasks) throw std::runtime_error("pool map failed");
  for (std::uint64_t i = 0; i < tasks; ++i) {
    if (value_of((*outcomes)[i].result) != i) throw std::runtime_error("pool map: wrong result");
  }
  return elapsed * 1e6 / static_cast<double>(tasks);
}

// One task at a time: submit, wait for its outcome. Also the per-task latencies, for p99.
double pool_one_at_a_time_us(std::uint64_t tasks, std::vector<double>& latencies_us) {
  auto pool = shmbox::Pool::fork([](std::span<const std::byte> task) { return std::vector<std::byte>(task.begin(), task.end()); },
                                 {.workers = 2});
  if (!pool) throw std::runtime_error(pool.error().message());
  const auto start = Clock::now();
  for (std::uint64_t i = 0; i < tasks; ++i) {
    const auto one = Clock::now();
    auto id = pool->submit(bytes_of(i));
    auto outcome = id ? pool->result(*id) : std::unexpected(id.error());
    if (!outcome || value_of(outcome->result) != i) throw std::runtime_error("pool: wrong result");
    latencies_us.push_back(seconds_since(one) * 1e6);
  }
  return seconds_since(start) * 1e6 / static_cast<double>(tasks);
}

std::optional<double> shell_per_task_us(const std::string& script, std::uint64_t tasks) {
  auto elapsed = time_shell(script);
  if (!elapsed) return std::nullopt;
  return *elapsed * 1e6 / static_cast<double>(tasks);
}

const char* python_pool = R"(
import multiprocessing, sys, time
def f(x):
    return x
if __name__ == '__main__':
    n = int(sys.argv[1])
    with multiprocessing.Pool(2) as pool:
        results = list(pool.imap(f, range(n), chunksize=1))
    assert results == list(range(n))
)";

const char* python_executor = R"(
import concurrent.futures, sys
def f(x):
    return x
if __name__ == '__main__':
    n = int(sys.argv[1])
    with concurrent.futures.ProcessPoolExecutor(2) as pool:
        results = list(pool.map(f, range(n)))
    assert results == list(range(n))
)";

std::string python_script(const char* body) {
  std::string quoted;
  for (const char c : std::string{body}) {
    if (c == '\'') {
      quoted += "'\\''";
    } else {
      quoted += c;
    }
  }
  return "'" + quoted + "'";
}

std::vector<OverheadRow> measure_overhead(const Settings& settings, std::vector<double>& latencies_us) {
  const std::uint64_t scale = settings.quick ? 10 : 1;
  std::vector<OverheadRow> rows;
  const auto add = [&](const std::string& name, std::uint64_t tasks, auto measure) {
    OverheadRow row{name, tasks, {}};
    for (int run = 0; run < settings.repeat; ++run) {
      std::optional<double> value = measure(tasks);
      if (!value) {
        fmt::print(stderr, "pool_bench: {}: not measured (not installed, or it failed)\n", name);
        return;
      }
      row.per_task_us.values.push_back(*value);
    }
    rows.push_back(std::move(row));
  };
  add("shmbox Pool, map", 100000 / scale, [](std::uint64_t n) { return std::optional{pool_map_us(n)}; });
  add("shmbox Pool, one task at a time", 20000 / scale,
      [&](std::uint64_t n) { return std::optional{pool_one_at_a_time_us(n, latencies_us)}; });
  const std::string python = "/usr/bin/python3";
  if (installed(python)) {
    add("multiprocessing.Pool.imap, chunksize 1", 20000 / scale, [&](std::uint64_t n) {
      return shell_per_task_us(python + " -c " + python_script(python_pool) + " " + std::to_string(n), n);
    });
    add("concurrent.futures.ProcessPoolExecutor", 5000 / scale, [&](std::uint64_t n) {
      return shell_per_task_us(python + " -c " + python_script(python_executor) + " " + std::to_string(n), n);
    });
  }
  add("shmbox parallel --persistent (cat)", 20000 / scale, [&](std::uint64_t n) {
    return shell_per_task_us(fmt::format("seq {} | {} parallel --workers 2 --persistent -- cat > /dev/null", n,
                                         settings.shmbox),
                             n);
  });
  add("shmbox parallel (true, a process per task)", 1000 / scale, [&](std::uint64_t n) {
    return shell_per_task_us(fmt::format("seq {} | {} parallel --workers 2 -- true > /dev/null", n, settings.shmbox), n);
  });
  add("xargs -P 2 -n 1 true", 1000 / scale, [&](std::uint64_t n) {
    return shell_per_task_us(fmt::format("seq {} | xargs -P 2 -n 1 true", n), n);
  });
  if (installed("parallel")) {
    add("GNU parallel -j 2 true", 300 / scale, [&](std::uint64_t n) {
      return shell_per_task_us(fmt::format("seq {} | parallel -j 2 true", n), n);
    });
  }
  return rows;
}

// ---- 2. speedup ----------------------------------------------------------------------

struct SpeedupRow {
  double task_us;
  std::uint64_t tasks;
  Runs sequential_s, one_worker_s, two_workers_s, two_threads_s;
};

double pool_seconds(std::uint32_t workers, std::uint64_t tasks, std::uint64_t iterations) {
  auto pool = shmbox::Pool::fork(
      [](std::span<const std::byte> task) { return bytes_of(spin_work(value_of(task))); }, {.workers = workers});
  if (!pool) throw std::runtime_error(pool.error().message());
  const auto task = bytes_of(iterations);
  const auto start = Clock::now();
  auto outcomes = pool->map(tasks, [&](std::size_t) { return std::span<const std::byte>{task}; });
  const double elapsed = seconds_since(start);
  const std::uint64_t expected = spin_work(iterations);
  if (!outcomes) throw std::runtime_error(outcomes.error().message());
  for (const auto& outcome : *outcomes) {
    if (!outcome.ok || value_of(outcome.result) != expected) throw std::runtime_error("speedup: wrong result");
  }
  return elapsed;
}

// The same work on `count` threads of this process: the upper bound (1: the sequential run).
double threads_seconds(int count, std::uint64_t tasks, std::uint64_t iterations) {
  std::atomic<std::uint64_t> next{0};
  std::atomic<std::uint64_t> sum{0};
  const auto start = Clock::now();
  {
    std::vector<std::jthread> threads;
    for (int t = 0; t < count; ++t) {
      threads.emplace_back([&] {
        while (next.fetch_add(1) < tasks) sum.fetch_add(spin_work(iterations), std::memory_order_relaxed);
      });
    }
  }
  return seconds_since(start);
}

std::vector<SpeedupRow> measure_speedup(const Settings& settings) {
  const std::uint64_t per_us = iterations_per_microsecond();
  const double work_seconds = settings.quick ? 0.04 : 0.4;  // CPU time per run, all tasks together
  std::vector<SpeedupRow> rows;
  for (const double task_us : {1.0, 10.0, 100.0, 1000.0, 10000.0}) {
    const auto tasks = static_cast<std::uint64_t>(work_seconds * 1e6 / task_us);
    const auto iterations = static_cast<std::uint64_t>(task_us * static_cast<double>(per_us));
    SpeedupRow row{task_us, tasks, {}, {}, {}, {}};
    for (int run = 0; run < settings.repeat; ++run) {
      row.sequential_s.values.push_back(threads_seconds(1, tasks, iterations));
      row.one_worker_s.values.push_back(pool_seconds(1, tasks, iterations));
      row.two_workers_s.values.push_back(pool_seconds(2, tasks, iterations));
      row.two_threads_s.values.push_back(threads_seconds(2, tasks, iterations));
    }
    rows.push_back(std::move(row));
  }
  return rows;
}

std::string task_size(double us) { return us >= 1000 ? fmt::format("{:g} ms", us / 1000) : fmt::format("{:g} us", us); }

// Two panels drawn by gnuplot: each way's cost of an empty task (us, log scale), and the
// speedups by task size. An empty string, or what went wrong.
std::string write_plot(const std::string& file, const std::vector<OverheadRow>& overhead,
                       const std::vector<SpeedupRow>& speedup) {
  std::string script = fmt::format(
      "set terminal svg size 1400,520 font ',11'\nset output '{}'\nset termoption noenhanced\n"
      "set multiplot layout 1,2\nset grid ytics\n",
      file);
  script += "$overhead << EOD\n";
  for (const auto& row : overhead) script += fmt::format("\"{}\" {:.6g}\n", row.name, row.per_task_us.median());
  script += "EOD\n$speedup << EOD\n";
  for (const auto& row : speedup) {
    const double two = row.two_workers_s.median();
    const double sequential = row.sequential_s.median();
    script += fmt::format("{:g} {:.4f} {:.4f} {:.4f}\n", row.task_us, row.one_worker_s.median() / two, sequential / two,
                          sequential / row.two_threads_s.median());
  }
  script += "EOD\n";
  script +=
      "set title 'an empty task, 2 workers: us per task, median (lower is better)'\n"
      "set style data histogram\nset style fill solid 0.85 border -1\nset logscale y\nset yrange [0.5:*]\n"
      "set xtics rotate by -35 font ',9'\nset bmargin 11\nunset key\n"
      "plot $overhead using 2:xtic(1) lc rgb '#4878a8'\n";
  script +=
      "set title 'speedup on 2 cores by task size (higher is better)'\n"
      "unset logscale y\nset logscale x\nset xtics norotate font ',11'\nset bmargin 4\nset yrange [0:2.2]\n"
      "set xlabel 'task (us of CPU work)'\nset key bottom right\nset style data linespoints\n"
      "plot $speedup using 1:2 title '2 workers / 1 worker' lw 2, '' using 1:3 title '2 workers / sequential' lw 2, "
      "'' using 1:4 title '2 threads / sequential (the bound)' lw 2 dt 2\n";
  script += "unset multiplot\n";
  return bench::draw_with_gnuplot(file, script);
}

}  // namespace

int main(int argc, char** argv) {
  Settings settings;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--quick") {
      settings.quick = true;
    } else if (arg == "--repeat" && i + 1 < argc) {
      settings.repeat = std::max(1, std::atoi(argv[++i]));
    } else if (arg == "--shmbox" && i + 1 < argc) {
      settings.shmbox = argv[++i];
    } else if (arg == "--plot" && i + 1 < argc) {
      settings.plot_file = argv[++i];
    } else {
      fmt::print(stderr, "usage: pool_bench [--quick] [--repeat N] [--shmbox PATH] [--plot FILE.svg]\n");
      return 64;
    }
  }
  try {
    std::vector<double> latencies_us;
    const auto overhead = measure_overhead(settings, latencies_us);
    std::sort(latencies_us.begin(), latencies_us.end());
    const double p50 = latencies_us[latencies_us.size() / 2];
    const double p99 = latencies_us[latencies_us.size() * 99 / 100];
    double baseline = 0;
    for (const auto& row : overhead) {
      if (row.name.starts_with("multiprocessing")) baseline = row.per_task_us.median();
    }
    fmt::print("## Per-task overhead of an empty task, 2 workers (wall time / tasks, us: median of {} runs (min-max))\n",
               settings.repeat);
    fmt::print("## shmbox Pool one at a time, each task's round trip: median {:.1f} us, p99 {:.1f} us\n\n", p50, p99);
    fmt::print("| {:<44} | {:>7} | {:>24} | {:>22} |\n", "how", "tasks", "us per task", "/ multiprocessing.Pool");
    fmt::print("|{:-<46}|{:-<9}|{:-<26}|{:-<24}|\n", "", "", "", "");
    for (const auto& row : overhead) {
      const auto& runs = row.per_task_us;
      fmt::print("| {:<44} | {:>7} | {:>24} | {:>22} |\n", row.name, row.tasks,
                 fmt::format("{:.2f} ({:.2f}-{:.2f})", runs.median(), runs.min(), runs.max()),
                 baseline > 0 ? fmt::format("{:.3f}x", runs.median() / baseline) : "-");
    }
    const auto speedup = measure_speedup(settings);
    fmt::print("\n## Speedup on 2 cores: seconds (median of {} runs) for the same CPU work split into tasks; speedup\n"
               "## of 2 workers over 1, and over the sequential run; 2 threads in one process are the upper bound\n\n",
               settings.repeat);
    fmt::print("| {:>6} | {:>6} | {:>10} | {:>10} | {:>11} | {:>11} | {:>13} | {:>14} | {:>15} |\n", "task", "tasks",
               "sequential", "1 worker", "2 workers", "2 threads", "2 / 1 workers", "2 workers / seq", "2 threads / seq");
    fmt::print("|{:-<8}|{:-<8}|{:-<12}|{:-<12}|{:-<13}|{:-<13}|{:-<15}|{:-<16}|{:-<17}|\n", "", "", "", "", "", "", "",
               "", "");
    for (const auto& row : speedup) {
      const double sequential = row.sequential_s.median();
      const double two = row.two_workers_s.median();
      fmt::print("| {:>6} | {:>6} | {:>10.3f} | {:>10.3f} | {:>11.3f} | {:>11.3f} | {:>13} | {:>15} | {:>15} |\n",
                 task_size(row.task_us), row.tasks, sequential, row.one_worker_s.median(), two,
                 row.two_threads_s.median(), fmt::format("{:.2f}x", row.one_worker_s.median() / two),
                 fmt::format("{:.2f}x", sequential / two), fmt::format("{:.2f}x", sequential / row.two_threads_s.median()));
    }
    if (!settings.plot_file.empty()) {
      if (const std::string problem = write_plot(settings.plot_file, overhead, speedup); !problem.empty()) {
        fmt::print(stderr, "pool_bench: {}\n", problem);
        return 1;
      }
      fmt::print("\nplot: {}\n", settings.plot_file);
    }
  } catch (const std::exception& error) {
    fmt::print(stderr, "pool_bench: {}\n", error.what());
    return 1;
  }
  return 0;
}
