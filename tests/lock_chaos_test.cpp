// Chaos: writers and readers of a counter guarded by a lock inside its segment, killed
// with SIGKILL at random moments (in the critical section and everywhere else) and
// restarted. Every update goes through a journal, so that a taker told of a death can undo
// the half-done one. Checked throughout: nobody ever finds a half-done update without
// having been told; each death is told to one taker only, and only deaths are told. At the
// end the counter equals the updates that completed.
//
// SHMBOX_CHAOS_SECONDS=N turns it into a soak of N seconds (default: 600 kills, at least 500
// of them inside the critical section).
#include <gtest/gtest.h>
#include <sys/mman.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <random>
#include <set>
#include <thread>

#include "shmbox/lock.hpp"
#include "shmbox/segment.hpp"
#include "support/chaos.hpp"
#include "support/process.hpp"

namespace shmbox {
namespace {

using namespace std::chrono_literals;
using test::ChildProcess;

constexpr int writers = 3;
constexpr int readers = 2;
constexpr int workers = writers + readers;
constexpr std::size_t max_reports = 1 << 16;

// The guarded data, in the segment before the lock. Not atomic: the lock is what orders it.
struct Guarded {
  std::uint64_t counter;
  std::uint64_t committed[workers];  // updates each worker completed
  // The journal of the update in progress.
  std::uint64_t in_progress;  // 0, or 1 + the worker
  std::uint64_t old_counter;
  std::uint64_t old_committed;
  std::int64_t holder;  // pid of the process inside, 0 between holders
};
constexpr std::size_t lock_offset = 256;
static_assert(sizeof(Guarded) <= lock_offset);

// The test's own records, shared by the supervisor and every worker.
struct Ledger {
  std::atomic<bool> stop;
  test::Violations violations;
  std::atomic<std::uint64_t> repairs;
  std::atomic<std::uint64_t> report_count;
  std::atomic<std::int64_t> reports[max_reports];  // died_holding() of each owner_died grant
  std::atomic<std::uint64_t> kill_count;
  std::atomic<std::int64_t> killed[max_reports];  // written by the supervisor before each kill

  bool was_killed(std::int64_t pid) const {
    const auto count = std::min<std::uint64_t>(kill_count.load(), max_reports);
    for (std::uint64_t i = 0; i < count; ++i) {
      if (killed[i].load() == pid) return true;
    }
    return false;
  }
};

// A grant told of a death: undo the update the dead holder left half-done.
void repair(Guarded& data, Ledger& ledger, HeldLock& held) {
  const auto index = ledger.report_count.fetch_add(1);
  if (index < max_reports) ledger.reports[index] = held.died_holding();
  // The holder named is the one told of, unless a taker told of its death was killed in
  // turn before it could take its place: that taker's death is told, and the first holder
  // was killed too.
  if (data.holder != 0 && data.holder != held.died_holding() && !ledger.was_killed(data.holder)) {
    ledger.violations.record("told that " + std::to_string(held.died_holding()) + " died, but " +
                                 std::to_string(data.holder) + " was inside");
  }
  data.holder = ::getpid();  // the repair is this taker's update now: its death is told next
  if (data.in_progress != 0) {
    data.counter = data.old_counter;
    data.committed[data.in_progress - 1] = data.old_committed;
    data.in_progress = 0;
    ledger.repairs.fetch_add(1);
  }
  data.holder = 0;
  if (!held.mark_consistent()) ledger.violations.record("mark_consistent failed");
}

std::uint64_t sum_committed(const Guarded& data) {
  std::uint64_t sum = 0;
  for (const auto value : data.committed) sum += value;
  return sum;
}

void hold_for(std::chrono::microseconds time) {
  const auto until = std::chrono::steady_clock::now() + time;
  while (std::chrono::steady_clock::now() < until) {
  }
}

int run_worker(const std::string& segment_name, Ledger& ledger, int worker) {
  auto segment = Segment::open(segment_name);
  auto lock = Lock::open_in(segment_name, lock_offset);
  if (!segment || !lock) return 1;
  auto& data = *reinterpret_cast<Guarded*>(segment->writable_bytes()->data());
  const bool writer = worker < writers;
  while (!ledger.stop.load()) {
    auto held = lock->lock(writer ? LockMode::exclusive : LockMode::shared, 10s);
    if (!held) {
      ledger.violations.record("lock() failed: " + held.error().message());
      return 2;
    }
    if (held->owner_died()) {
      repair(data, ledger, *held);
    } else if (data.in_progress != 0 || data.holder != 0) {
      ledger.violations.record("granted without being told, and an update was half-done (holder " +
                                   std::to_string(data.holder) + ")");
    }
    if (!writer) {
      if (data.counter != sum_committed(data)) ledger.violations.record("a reader saw a torn counter");
      hold_for(50us);
      continue;
    }
    data.holder = ::getpid();
    data.old_counter = data.counter;
    data.old_committed = data.committed[worker];
    data.in_progress = static_cast<std::uint64_t>(worker) + 1;
    data.counter = data.counter + 1;
    hold_for(500us);  // a long critical section, for the kills to land in
    data.committed[worker] = data.committed[worker] + 1;
    data.in_progress = 0;
    data.holder = 0;
  }
  return 0;
}

TEST(LockChaos, KilledHoldersAreToldToOneTakerEachAndTheCounterStaysExact) {
  const auto soak_for = test::chaos_soak_duration();
  // At least this many kills, of which this many inside the critical section.
  const int target_kills = soak_for.count() > 0 ? 1 << 26 : 600;
  const int target_inside = soak_for.count() > 0 ? 0 : 500;
  const std::string name = test::unique_name("lock-chaos");
  ASSERT_TRUE(Segment::create(name, lock_offset + Lock::footprint(64)).has_value());
  ASSERT_TRUE(Lock::create_in(name, lock_offset).has_value());
  void* mapped = ::mmap(nullptr, sizeof(Ledger), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(mapped, MAP_FAILED);
  auto& ledger = *new (mapped) Ledger{};

  auto segment = Segment::open(name);
  ASSERT_TRUE(segment.has_value());
  auto& data = *reinterpret_cast<Guarded*>(segment->writable_bytes()->data());
  std::vector<ChildProcess> running;
  for (int w = 0; w < workers; ++w) {
    running.push_back(ChildProcess::spawn([&, w] { return run_worker(name, ledger, w); }));
  }
  std::set<pid_t> killed;
  std::mt19937 random{std::random_device{}()};
  const auto started = std::chrono::steady_clock::now();
  int kills = 0;
  int died_inside = 0;
  while ((kills < target_kills || died_inside < target_inside) && kills < 10 * target_kills &&
         ledger.violations.count.load() == 0 &&
         (soak_for.count() == 0 || std::chrono::steady_clock::now() - started < soak_for)) {
    // Three kills in four go to a writer inside the critical section (waiting up to 100 ms
    // for one to be there), the rest anywhere.
    auto victim = random() % workers;
    if (random() % 4 != 0) {
      const auto give_up = std::chrono::steady_clock::now() + 100ms;
      for (bool found = false; !found && std::chrono::steady_clock::now() < give_up;) {
        const std::int64_t inside = data.holder;
        for (std::size_t w = 0; w < running.size(); ++w) {
          if (running[w].pid() == inside) victim = w, found = true;
        }
        if (!found) std::this_thread::sleep_for(50us);
      }
    }
    killed.insert(running[victim].pid());
    if (const auto index = ledger.kill_count.load(); index < max_reports) {
      ledger.killed[index] = running[victim].pid();
      ledger.kill_count = index + 1;
    }
    running[victim].kill();
    const auto status = running[victim].wait(10s);
    if (data.holder == running[victim].pid()) ++died_inside;
    ASSERT_TRUE(status.killed_by(9)) << "worker " << victim << ": " << status.describe();
    running[victim] = ChildProcess::spawn([&, victim] { return run_worker(name, ledger, static_cast<int>(victim)); });
    ++kills;
  }
  ledger.stop = true;
  for (auto& child : running) EXPECT_TRUE(child.wait(30s).exited_with(0));

  EXPECT_EQ(ledger.violations.count.load(), 0u) << ledger.violations.first;
  auto lock = Lock::open_in(name, lock_offset);
  ASSERT_TRUE(lock.has_value());
  {
    auto held = lock->lock(LockMode::exclusive, 5s);
    ASSERT_TRUE(held.has_value()) << held.error().message();
    if (held->owner_died()) repair(data, ledger, *held);
    EXPECT_EQ(data.in_progress, 0u);
    EXPECT_EQ(data.counter, sum_committed(data));
  }
  // Each report names a process that was killed, and none is told twice. A slot left 0 was
  // claimed by a taker killed before it wrote the pid down: its own death is told instead.
  const auto claimed = std::min<std::uint64_t>(ledger.report_count.load(), max_reports);
  std::uint64_t count = 0;
  std::set<pid_t> told;
  for (std::uint64_t i = 0; i < claimed; ++i) {
    const auto pid = static_cast<pid_t>(ledger.reports[i].load());
    if (pid == 0) continue;
    ++count;
    EXPECT_TRUE(killed.contains(pid)) << "told of the death of " << pid << ", which was not killed";
    EXPECT_TRUE(told.insert(pid).second) << "the death of " << pid << " was told twice";
  }
  std::printf("lock chaos: %d kills (%d inside the critical section), %llu deaths told (%llu half-done updates "
              "undone), counter %llu\n",
              kills, died_inside, static_cast<unsigned long long>(count),
              static_cast<unsigned long long>(ledger.repairs.load()), static_cast<unsigned long long>(data.counter));
  EXPECT_GE(kills, soak_for.count() > 0 ? 1 : target_kills);
  // A death inside is told unless its taker is killed in turn before it writes the report
  // down (its own death is then told instead): rare.
  EXPECT_GE(count * 10, static_cast<std::uint64_t>(died_inside) * 9);
  EXPECT_GE(died_inside, target_inside);
  (void)Segment::remove(name);
}

}  // namespace
}  // namespace shmbox
