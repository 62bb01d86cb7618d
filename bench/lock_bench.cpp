// Lock benchmark: shmbox::Lock against the process-shared locks users would pick instead
// (a robust pthread mutex, the baseline; Boost.Interprocess's mutex; flock(2)), taken
// uncontended in one process, and handed between two processes pinned to CPU 0 and CPU 1.
//
//   lock_bench [--quick] [--repeat N]
//
// Every figure is repeated; the report gives the median of the repetitions with their
// min-max. Each repetition measures the pthread baseline right before the lock it compares,
// so that the ratio compares figures taken in the same state of a shared, noisy machine;
// the reported ratio is the median of the per-repetition ratios.
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <fmt/core.h>
#include <functional>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#ifdef SHMBOX_BENCH_BOOST
#include <boost/interprocess/sync/interprocess_mutex.hpp>
#include <boost/interprocess/sync/scoped_lock.hpp>
#endif

#include "bench_support.hpp"
#include "shmbox/lock.hpp"

namespace {

using namespace bench;
using namespace std::chrono_literals;

struct Config {
  bool quick = false;
  int repeat = 5;
  std::size_t uncontended_pairs = 2'000'000;  // per run
  std::size_t handoff_rounds = 1'000'000;     // per process and run
};

// flock(2) does this many times fewer: two syscalls a pair take microseconds.
constexpr std::size_t flock_fewer = 20;

// Acquisitions are timed in batches: a clock read costs about as much as an uncontended lock.
constexpr std::size_t batch = 64;
// Longer than any measurement takes, shorter than the CI test's timeout.
constexpr auto stuck_after = 60s;

// This run's named objects, unique to the process; removed on every way out.
struct Objects {
  std::string lock_name;
  std::string flock_path;
} objects;

void remove_objects() {
  if (!objects.lock_name.empty()) (void)shmbox::Lock::remove(objects.lock_name);
  if (!objects.flock_path.empty()) ::unlink(objects.flock_path.c_str());
}

// Callable from any thread of the parent (the watchdog's among them); never from a child,
// which leaves the objects to the parent.
[[noreturn]] void fail(const std::string& message) { fail_run("lock_bench", message, remove_objects); }

// What both processes of a measurement use, in an anonymous MAP_SHARED mapping made before
// any fork: the baselines' mutexes, the data the locks guard, and the start handshake. The
// child's batch timings follow the struct in the same mapping.
struct Shared {
  pthread_mutex_t pthread_mutex;
#ifdef SHMBOX_BENCH_BOOST
  alignas(64) boost::interprocess::interprocess_mutex boost_mutex;
#endif
  // The guarded data, updated with plain loads and stores rather than atomic
  // read-modify-writes: a lock that lets two holders in loses increments.
  alignas(64) std::atomic<std::uint64_t> counter;
  std::atomic<int> last_holder;
  std::atomic<std::uint64_t> handoffs;  // acquisitions by another process than the last one
  alignas(64) std::atomic<bool> child_ready;
  std::atomic<bool> go;
  std::atomic<std::int64_t> child_start_ns;
  std::atomic<std::int64_t> child_end_ns;
  char child_error[256];

  std::span<double> child_batches(std::size_t count) { return {reinterpret_cast<double*>(this + 1), count}; }

  void reset() {
    counter = 0;
    last_holder = -1;
    handoffs = 0;
    child_ready = false;
    go = false;
    child_start_ns = 0;
    child_end_ns = 0;
    child_error[0] = '\0';
  }
};

// The critical section every lock protects.
void update(Shared& shared, int holder) {
  shared.counter.store(shared.counter.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  if (shared.last_holder.load(std::memory_order_relaxed) != holder) {
    shared.last_holder.store(holder, std::memory_order_relaxed);
    shared.handoffs.store(shared.handoffs.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  }
}

Shared& map_shared_state(std::size_t max_child_batches) {
  auto* shared = new (map_shared(sizeof(Shared) + max_child_batches * sizeof(double))) Shared{};
  init_robust_mutex(shared->pthread_mutex);
  return *shared;
}

// ---- the locks -------------------------------------------------------------------------
//
// A locker is one process's handle on a lock, made in the process that uses it (a flock
// open file description or a shmbox handle is not to be shared across fork); locked(f)
// runs f under the lock, each the way its users would write it. Failures throw.

class PthreadRobustLocker {
 public:
  explicit PthreadRobustLocker(Shared& shared) : mutex_(shared.pthread_mutex) {}
  template <class F>
  void locked(F&& critical) {
    // EOWNERDEAD is a failure too: nobody dies here.
    if (const int error = ::pthread_mutex_lock(&mutex_); error != 0) throw_error("pthread_mutex_lock", error);
    critical();
    if (const int error = ::pthread_mutex_unlock(&mutex_); error != 0) throw_error("pthread_mutex_unlock", error);
  }

 private:
  pthread_mutex_t& mutex_;
};

class ShmboxLocker {
 public:
  explicit ShmboxLocker(shmbox::LockMode mode) : lock_(open_lock()), mode_(mode) {}
  template <class F>
  void locked(F&& critical) {
    auto held = lock_.lock(mode_);
    if (!held) throw std::runtime_error(held.error().message());
    critical();
  }  // released by the HeldLock, as users release it

 private:
  static shmbox::Lock open_lock() {
    auto lock = shmbox::Lock::open(objects.lock_name);
    if (!lock) throw std::runtime_error(lock.error().message());
    return std::move(*lock);
  }
  shmbox::Lock lock_;
  shmbox::LockMode mode_;
};

#ifdef SHMBOX_BENCH_BOOST
class BoostLocker {
 public:
  explicit BoostLocker(Shared& shared) : mutex_(shared.boost_mutex) {}
  template <class F>
  void locked(F&& critical) {
    boost::interprocess::scoped_lock<boost::interprocess::interprocess_mutex> hold{mutex_};
    critical();
  }

 private:
  boost::interprocess::interprocess_mutex& mutex_;
};
#endif

class FlockLocker {
 public:
  FlockLocker() : fd_(::open(objects.flock_path.c_str(), O_RDWR | O_CLOEXEC)) {
    if (fd_ < 0) throw_error("open", errno);
  }
  FlockLocker(const FlockLocker&) = delete;
  FlockLocker& operator=(const FlockLocker&) = delete;
  ~FlockLocker() { ::close(fd_); }
  template <class F>
  void locked(F&& critical) {
    if (::flock(fd_, LOCK_EX) != 0) throw_error("flock(LOCK_EX)", errno);
    critical();
    if (::flock(fd_, LOCK_UN) != 0) throw_error("flock(LOCK_UN)", errno);
  }

 private:
  int fd_;
};

// ---- measurements ------------------------------------------------------------------------

// A measurement that does not end fails the run (a lock that loses a wake-up hangs).
Watchdog watchdog(std::string what, pid_t child) { return Watchdog{std::move(what), child, stuck_after, fail}; }

// Runs `ns_per_acquire.size()` batches of acquire + update + release; each sample is a
// batch's ns per acquisition.
template <class Locker>
void run_batches(Locker& locker, Shared& shared, int holder, std::span<double> ns_per_acquire) {
  time_batches(ns_per_acquire, batch, [&] { locker.locked([&] { update(shared, holder); }); });
}

// ns per acquire + release pair, one process, nobody else in the way.
template <class MakeLocker>
Percentiles uncontended(const std::string& label, Shared& shared, std::size_t pairs, MakeLocker make_locker) {
  const Watchdog stuck = watchdog(label, 0);
  auto locker = make_locker();
  std::vector<double> samples(std::max<std::size_t>(pairs / batch, 1));
  // Warm-up: the first acquisitions fault pages in and claim the shmbox handle's slot.
  run_batches(locker, shared, 0, std::span{samples}.first(samples.size() / 10));
  shared.reset();
  run_batches(locker, shared, 0, samples);
  if (shared.counter.load() != samples.size() * batch) {
    fail(fmt::format("{}: counter is {}, expected {}", label, shared.counter.load(), samples.size() * batch));
  }
  return percentiles(std::move(samples));
}

struct Handoff {
  double acquires_per_second;
  double handoffs_per_second;
  double ns_per_acquire;
  double p99_ns_per_acquire;  // of the batches of both processes
};

// Two processes, on CPU 0 and CPU 1, each `rounds` times { lock; update; unlock }.
template <class MakeLocker>
Handoff handed(const std::string& label, Shared& shared, std::size_t rounds, MakeLocker make_locker) {
  const std::size_t batches = std::max<std::size_t>(rounds / batch, 1);
  shared.reset();
  const pid_t child = fork_pinned(1, shared.child_error, [&] {
    auto locker = make_locker();
    shared.child_ready.store(true);
    // The two CPUs of a VM are not always both running: the child can see `go` a
    // millisecond late, which is why the parent waits for its start.
    while (!shared.go.load()) std::this_thread::yield();
    shared.child_start_ns.store(now_ns());
    run_batches(locker, shared, 1, shared.child_batches(batches));
    shared.child_end_ns.store(now_ns());
  });
  std::vector<double> samples(batches);
  std::int64_t start = 0, parent_end = 0;
  {
    const Watchdog stuck = watchdog(label, child);
    try {
      auto locker = make_locker();
      while (!shared.child_ready.load()) std::this_thread::yield();
      shared.go.store(true);
      // Starting before the child has would time this process alone.
      while (shared.child_start_ns.load() == 0) std::this_thread::yield();
      start = now_ns();
      run_batches(locker, shared, 0, samples);
      parent_end = now_ns();
    } catch (const std::exception& error) {
      kill_child(child);
      fail(fmt::format("{}: {}", label, error.what()));
    }
    if (const std::string problem = reap(child, shared.child_error); !problem.empty()) {
      fail(fmt::format("{}: the child process failed: {}", label, problem));
    }
  }
  const std::uint64_t acquires = 2 * batches * batch;
  if (shared.counter.load() != acquires) {
    fail(fmt::format("{}: counter is {}, expected {}: two holders were in at once", label, shared.counter.load(),
                     acquires));
  }
  const auto child_batches = shared.child_batches(batches);
  samples.insert(samples.end(), child_batches.begin(), child_batches.end());
  const std::int64_t first_start = std::min(start, shared.child_start_ns.load());
  const double seconds = static_cast<double>(std::max(parent_end, shared.child_end_ns.load()) - first_start) / 1e9;
  const double rate = static_cast<double>(acquires) / seconds;
  return {rate, static_cast<double>(shared.handoffs.load()) / seconds, 1e9 / rate, percentiles(std::move(samples)).p99};
}

// ---- report ------------------------------------------------------------------------------

void print_uncontended(const std::string& label, const Config& config, const std::function<Percentiles()>& baseline,
                       const std::function<Percentiles()>& measure) {
  std::vector<double> medians, p99s, ratios;
  for (int i = 0; i < config.repeat; ++i) {
    const Percentiles base = baseline();
    const Percentiles run = measure();
    medians.push_back(run.median);
    p99s.push_back(run.p99);
    ratios.push_back(run.median / base.median);
  }
  fmt::print("| {:<34} | {:>24} | {:>7.1f} | {:>22} |\n", label, spread(summarise(medians), 1),
             summarise(p99s).median, spread(summarise(ratios), 2, "x"));
  std::fflush(stdout);
}

void print_handoff(const std::string& label, const Config& config, const std::function<Handoff()>& baseline,
                   const std::function<Handoff()>& measure) {
  std::vector<double> rates, handoff_rates, ns, p99s, ratios;
  for (int i = 0; i < config.repeat; ++i) {
    const Handoff base = baseline();
    const Handoff run = measure();
    rates.push_back(run.acquires_per_second);
    handoff_rates.push_back(run.handoffs_per_second);
    ns.push_back(run.ns_per_acquire);
    p99s.push_back(run.p99_ns_per_acquire);
    ratios.push_back(run.ns_per_acquire / base.ns_per_acquire);
  }
  fmt::print("| {:<34} | {:>22} | {:>22} | {:>6.0f} | {:>7.0f} | {:>22} |\n", label, spread(summarise(rates), 2, "M", 1e6),
             spread(summarise(handoff_rates), 3, "M", 1e6), summarise(ns).median, summarise(p99s).median,
             spread(summarise(ratios), 2, "x"));
  std::fflush(stdout);
}

void run(const Config& config) {
  objects.lock_name = fmt::format("lock-bench-{}", ::getpid());
  objects.flock_path = fmt::format("/dev/shm/lock-bench-{}.flock", ::getpid());
  if (auto created = shmbox::Lock::create(objects.lock_name); !created) fail(created.error().message());
  if (const int fd = ::open(objects.flock_path.c_str(), O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600); fd >= 0) {
    ::close(fd);
  } else {
    fail(fmt::format("{}: {}", objects.flock_path, std::strerror(errno)));
  }
  Shared& shared = map_shared_state(config.handoff_rounds / batch + 1);  // the most batches a child times
  pin(0);

  const auto pthread_robust = [&] { return PthreadRobustLocker{shared}; };
  const auto shmbox_exclusive = [] { return ShmboxLocker{shmbox::LockMode::exclusive}; };
  const auto shmbox_shared = [] { return ShmboxLocker{shmbox::LockMode::shared}; };
  const auto flock_file = [] { return FlockLocker{}; };
  const char* const boost_label = "boost interprocess_mutex";

  const std::size_t pairs = config.uncontended_pairs;
  fmt::print("## Uncontended acquire + release, one process on CPU 0, {} pairs a run (flock(2): {})\n"
             "## (ns per pair: median of {} runs (min-max) of each run's median over batches of {} pairs,\n"
             "## then the median of the runs' p99; ratio to the pthread robust mutex measured just before each run)\n\n",
             pairs / batch * batch, pairs / flock_fewer / batch * batch, config.repeat, batch);
  fmt::print("| {:<34} | {:>24} | {:>7} | {:>22} |\n", "lock", "ns/pair", "p99", "/ pthread robust");
  fmt::print("|{:-<36}|{:-<26}|{:-<9}|{:-<24}|\n", "", "", "", "");
  const std::function<Percentiles()> pthread_alone = [&] {
    return uncontended("pthread robust mutex", shared, pairs, pthread_robust);
  };
  print_uncontended("pthread robust mutex (baseline)", config, pthread_alone, pthread_alone);
  print_uncontended("shmbox Lock, exclusive", config, pthread_alone,
                    [&] { return uncontended("shmbox Lock, exclusive", shared, pairs, shmbox_exclusive); });
  print_uncontended("shmbox Lock, shared", config, pthread_alone,
                    [&] { return uncontended("shmbox Lock, shared", shared, pairs, shmbox_shared); });
#ifdef SHMBOX_BENCH_BOOST
  print_uncontended(boost_label, config, pthread_alone,
                    [&] { return uncontended(boost_label, shared, pairs, [&] { return BoostLocker{shared}; }); });
#else
  fmt::print("| {:<34} | not built: Boost not found |\n", boost_label);
#endif
  print_uncontended("flock(2), file in /dev/shm", config, pthread_alone,
                    [&] { return uncontended("flock(2)", shared, pairs / flock_fewer, flock_file); });

  const std::size_t rounds = config.handoff_rounds;
  fmt::print("\n## Handed between two processes on CPU 0 and CPU 1, each {} times {{ lock; update; unlock }}\n"
             "## (flock(2): {}) (median of {} runs (min-max); acquires/s and handoffs/s (the lock changed\n"
             "## process) of both together; ns per acquire, then the median of the runs' p99 over batches of\n"
             "## {} acquires; ratio of ns per acquire to the pthread robust mutex's measured just before each run)\n\n",
             rounds / batch * batch, rounds / flock_fewer / batch * batch, config.repeat, batch);
  fmt::print("| {:<34} | {:>22} | {:>22} | {:>6} | {:>7} | {:>22} |\n", "lock", "acquires/s", "handoffs/s", "ns/acq",
             "p99", "/ pthread robust");
  fmt::print("|{:-<36}|{:-<24}|{:-<24}|{:-<8}|{:-<9}|{:-<24}|\n", "", "", "", "", "", "");
  const std::function<Handoff()> pthread_handed = [&] {
    return handed("pthread robust mutex, handed", shared, rounds, pthread_robust);
  };
  print_handoff("pthread robust mutex (baseline)", config, pthread_handed, pthread_handed);
  print_handoff("shmbox Lock, exclusive", config, pthread_handed,
                [&] { return handed("shmbox Lock, handed", shared, rounds, shmbox_exclusive); });
#ifdef SHMBOX_BENCH_BOOST
  print_handoff(boost_label, config, pthread_handed,
                [&] { return handed(boost_label, shared, rounds, [&] { return BoostLocker{shared}; }); });
#else
  fmt::print("| {:<34} | not built: Boost not found |\n", boost_label);
#endif
  print_handoff("flock(2), file in /dev/shm", config, pthread_handed,
                [&] { return handed("flock(2), handed", shared, rounds / flock_fewer, flock_file); });
  remove_objects();
}

}  // namespace

int main(int argc, char** argv) {
  Config config;
  std::optional<int> repeat;  // --repeat wins over --quick's default, in either order
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--quick") {
      config.quick = true;
      config.uncontended_pairs = 200'000;
      config.handoff_rounds = 100'000;
    } else if (arg == "--repeat" && i + 1 < argc && std::atoi(argv[i + 1]) > 0) {
      repeat = std::atoi(argv[++i]);
    } else {
      fmt::print(stderr, "usage: lock_bench [--quick] [--repeat N]  (N >= 1)\n");
      return 64;
    }
  }
  config.repeat = repeat.value_or(config.quick ? 3 : 5);
  try {
    run(config);
  } catch (const std::exception& error) {
    fail(error.what());
  }
  return 0;
}
