// Pools across real processes: outcomes equal the sequential computation, in input order;
// failing tasks are reported after their attempts while the rest completes; workers killed
// at random lose nothing; cancelling (or the caller's death) leaves no process or mailbox.
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <csignal>
#include <fstream>
#include <cstring>
#include <random>
#include <set>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "shmbox/mailbox.hpp"
#include "shmbox/pool.hpp"
#include "shmbox/segment.hpp"
#include "support/chaos.hpp"
#include "support/cli.hpp"
#include "support/process.hpp"

namespace shmbox {
namespace {

using namespace std::chrono_literals;
using test::ChildProcess;
using test::Pipe;

std::vector<std::byte> bytes_of(std::uint64_t value) {
  std::vector<std::byte> bytes(sizeof value);
  std::memcpy(bytes.data(), &value, sizeof value);
  return bytes;
}

std::uint64_t value_of(std::span<const std::byte> bytes) {
  std::uint64_t value = 0;
  if (bytes.size() != sizeof value) throw std::runtime_error("not a number: " + std::to_string(bytes.size()) + " bytes");
  std::memcpy(&value, bytes.data(), sizeof value);
  return value;
}

std::string text_of(std::span<const std::byte> bytes) {
  return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
}

// Some work that takes a few microseconds and whose answer is easy to check.
std::uint64_t collatz_steps(std::uint64_t n) {
  std::uint64_t steps = 0;
  for (n = n + 1; n != 1; ++steps) n = n % 2 == 0 ? n / 2 : 3 * n + 1;
  return steps;
}

std::vector<std::byte> collatz_task(std::span<const std::byte> task) { return bytes_of(collatz_steps(value_of(task))); }

bool alive(pid_t pid) { return ::kill(pid, 0) == 0 || errno != ESRCH; }

std::vector<std::string> mailboxes_of(const Pool& pool) {
  std::vector<std::string> found;
  for (const auto& name : Mailbox::list()) {
    if (name.starts_with(pool.name() + "-")) found.push_back(name);
  }
  return found;
}

TEST(PoolTest, MapGivesEveryOutcomeInInputOrderEqualToTheSequentialOne) {
  auto pool = Pool::fork(collatz_task, {.workers = 3});
  ASSERT_TRUE(pool.has_value()) << pool.error().message();
  const auto workers = pool->worker_pids();
  ASSERT_EQ(workers.size(), 3u);
  for (const pid_t worker : workers) EXPECT_NE(worker, ::getpid());
  std::vector<std::vector<std::byte>> inputs;
  for (std::uint64_t i = 0; i < 5000; ++i) inputs.push_back(bytes_of(i));
  auto outcomes = pool->map(inputs);
  ASSERT_TRUE(outcomes.has_value()) << outcomes.error().message();
  ASSERT_EQ(outcomes->size(), inputs.size());
  for (std::uint64_t i = 0; i < inputs.size(); ++i) {
    const TaskOutcome& outcome = (*outcomes)[i];
    ASSERT_TRUE(outcome.ok) << outcome.error;
    EXPECT_EQ(outcome.task, i);
    EXPECT_EQ(outcome.attempts, 1u);
    ASSERT_EQ(value_of(outcome.result), collatz_steps(i)) << "task " << i;
  }
  const PoolProgress progress = pool->progress();
  EXPECT_EQ(progress.done, 5000u);
  EXPECT_EQ(progress.failed, 0u);
  EXPECT_EQ(progress.workers_replaced, 0u);
  // Named for ps, top and pkill -x (by now each has served: the name is set).
  for (const pid_t worker : workers) {
    std::string name;
    std::getline(std::ifstream{"/proc/" + std::to_string(worker) + "/comm"}, name);
    EXPECT_EQ(name, "shmbox worker");
  }
}

TEST(PoolTest, OutcomesAreHandedOutOnceByIdOrAsTheyFinish) {
  std::uint64_t reported = 0;
  auto pool = Pool::fork(collatz_task, {.workers = 2, .on_progress = [&](const PoolProgress& progress) {
                                          reported = progress.done;
                                        }});
  ASSERT_TRUE(pool.has_value());
  for (std::uint64_t i = 0; i < 10; ++i) ASSERT_EQ(pool->submit(bytes_of(i)).value(), i);
  auto fifth = pool->result(5);
  ASSERT_TRUE(fifth.has_value());
  EXPECT_EQ(value_of(fifth->result), collatz_steps(5));
  std::set<std::uint64_t> seen{5};
  for (int i = 0; i < 9; ++i) {
    auto next = pool->next_finished(10s);
    ASSERT_TRUE(next.has_value()) << next.error().message();
    EXPECT_TRUE(seen.insert(next->task).second) << "task " << next->task << " twice";
    EXPECT_EQ(value_of(next->result), collatz_steps(next->task));
  }
  EXPECT_EQ(reported, 10u);
  auto none = pool->next_finished();
  ASSERT_FALSE(none.has_value());
  EXPECT_EQ(none.error().message(), "pool '" + pool->name() + "': has no task running");
  auto again = pool->result(5);
  ASSERT_FALSE(again.has_value());
  EXPECT_EQ(again.error(), Errc::not_found);
  EXPECT_EQ(again.error().message(), "pool '" + pool->name() + "': has no task 5 to wait for");
}

TEST(PoolTest, ATaskThatThrowsFailsAfterItsAttemptsAndTheRestComplete) {
  auto pool = Pool::fork(
      [](std::span<const std::byte> task) -> std::vector<std::byte> {
        if (text_of(task) == "poison") throw std::runtime_error("poisoned input");
        return {task.begin(), task.end()};
      },
      {.workers = 2});
  ASSERT_TRUE(pool.has_value());
  std::vector<std::vector<std::byte>> inputs;
  for (const char* text : {"a", "poison", "b", "c"}) {
    const auto bytes = as_bytes(text);
    inputs.emplace_back(bytes.begin(), bytes.end());
  }
  auto outcomes = pool->map(inputs);
  ASSERT_TRUE(outcomes.has_value()) << outcomes.error().message();
  EXPECT_TRUE((*outcomes)[0].ok && (*outcomes)[2].ok && (*outcomes)[3].ok);
  EXPECT_EQ(text_of((*outcomes)[3].result), "c");
  const TaskOutcome& poisoned = (*outcomes)[1];
  EXPECT_FALSE(poisoned.ok);
  EXPECT_EQ(poisoned.task, 1u);
  EXPECT_EQ(poisoned.error, "poisoned input");
  EXPECT_EQ(poisoned.attempts, 3u);
  EXPECT_EQ(pool->progress().failed, 1u);
}

TEST(PoolTest, ATaskThatKillsItsWorkerIsReportedAfterItsAttempts) {
  auto pool = Pool::fork(
      [](std::span<const std::byte> task) -> std::vector<std::byte> {
        if (text_of(task) == "deadly") ::raise(SIGKILL);
        return {task.begin(), task.end()};
      },
      {.workers = 2, .attempts = 2});
  ASSERT_TRUE(pool.has_value());
  std::vector<std::vector<std::byte>> inputs;
  for (const char* text : {"x", "deadly", "y"}) {
    const auto bytes = as_bytes(text);
    inputs.emplace_back(bytes.begin(), bytes.end());
  }
  auto outcomes = pool->map(inputs);
  ASSERT_TRUE(outcomes.has_value()) << outcomes.error().message();
  EXPECT_TRUE((*outcomes)[0].ok && (*outcomes)[2].ok);
  const TaskOutcome& deadly = (*outcomes)[1];
  EXPECT_FALSE(deadly.ok);
  EXPECT_EQ(deadly.error, "its worker died during each of its 2 attempts");
  EXPECT_EQ(deadly.attempts, 2u);
  // The second death may not have been looked at yet (every 20 ms while the pool waits).
  EXPECT_GE(pool->progress().workers_replaced, 1u);
  EXPECT_LE(pool->progress().workers_replaced, 2u);
  EXPECT_EQ(pool->worker_pids().size(), 2u);
}

TEST(PoolTest, ValuesGoInAndComeOutTyped) {
  struct Point {
    double x, y;
  };
  auto pool = Pool::fork_values<Point, double>([](const Point& p) { return p.x * p.y; }, {.workers = 2});
  ASSERT_TRUE(pool.has_value()) << pool.error().message();
  std::vector<Point> points;
  for (int i = 0; i < 100; ++i) points.push_back({static_cast<double>(i), 0.5});
  auto products = pool->map_values<double>(std::span<const Point>{points});
  ASSERT_TRUE(products.has_value()) << products.error().message();
  for (int i = 0; i < 100; ++i) EXPECT_EQ((*products)[static_cast<std::size_t>(i)], i * 0.5);

  auto failing = Pool::fork_values<int, int>(
      [](const int& n) {
        if (n == 7) throw std::runtime_error("seven");
        return n;
      },
      {.workers = 1, .attempts = 1});
  ASSERT_TRUE(failing.has_value());
  const std::vector<int> numbers{1, 7, 9};
  auto refused = failing->map_values<int>(std::span<const int>{numbers});
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error(), Errc::task_failed);
  EXPECT_EQ(refused.error().message(), "pool '" + failing->name() + "': task 1 failed after 1 attempt: seven");
}

// A word belongs to the chunk it starts in: a chunk skips the end of a word that began
// before it and reads past its end to finish its last word.
std::uint64_t words_starting_in(const Chunk& chunk) {
  const auto is_space = [&](std::size_t i) { return static_cast<char>(chunk.data[i]) == ' '; };
  std::uint64_t words = 0;
  for (std::size_t i = chunk.offset; i < chunk.offset + chunk.length; ++i) {
    if (!is_space(i) && (i == 0 || is_space(i - 1))) ++words;
  }
  return words;
}

TEST(PoolTest, MapChunksSplitsASegmentWithoutCopyingIt) {
  const std::string name = test::unique_name("corpus");
  std::string text;
  std::mt19937 random{42};
  std::uint64_t expected = 0;
  while (text.size() < 200000) {
    text += std::string(1 + random() % 12, 'w');
    ++expected;
    text += std::string(1 + random() % 3, ' ');
  }
  {
    auto corpus = Segment::create(name, text.size());
    ASSERT_TRUE(corpus.has_value());
    std::memcpy(corpus->writable_bytes()->data(), text.data(), text.size());
  }
  auto words = map_chunks(name, 4096, std::function<std::uint64_t(const Chunk&)>{words_starting_in}, std::uint64_t{0},
                          [](std::uint64_t sum, const std::uint64_t& part) { return sum + part; }, {.workers = 2});
  ASSERT_TRUE(words.has_value()) << words.error().message();
  EXPECT_EQ(*words, expected);
  auto outcomes = map_chunks(name, 65536, [](const Chunk& chunk) {
    return std::vector<std::byte>{chunk.data.begin() + static_cast<std::ptrdiff_t>(chunk.offset),
                                  chunk.data.begin() + static_cast<std::ptrdiff_t>(chunk.offset + chunk.length)};
  });
  ASSERT_TRUE(outcomes.has_value()) << outcomes.error().message();
  std::string joined;
  for (const auto& outcome : *outcomes) joined += text_of(outcome.result);
  EXPECT_EQ(joined, text);
  EXPECT_EQ(outcomes->size(), (text.size() + 65535) / 65536);

  auto failed = map_chunks(
      name, 100000,
      std::function<std::uint64_t(const Chunk&)>{[](const Chunk& chunk) -> std::uint64_t {
        if (chunk.offset > 0) throw std::runtime_error("not this one");
        return 1;
      }},
      std::uint64_t{0}, [](std::uint64_t sum, const std::uint64_t& part) { return sum + part; },
      {.workers = 1, .attempts = 2});
  ASSERT_FALSE(failed.has_value());
  EXPECT_EQ(failed.error().message(), "segment '" + name + "': chunk 1 failed after 2 attempts: not this one");
  auto missing = map_chunks(name + "-missing", 10, [](const Chunk&) { return std::vector<std::byte>{}; });
  ASSERT_FALSE(missing.has_value());
  EXPECT_EQ(missing.error(), Errc::not_found);
  auto zero = map_chunks(name, 0, [](const Chunk&) { return std::vector<std::byte>{}; });
  ASSERT_FALSE(zero.has_value());
  EXPECT_EQ(zero.error().message(), "segment '" + name + "': chunks must be at least 1 byte");
  (void)Segment::remove(name);
}

// Workers killed at random moments, by another process, while tasks stream through: every
// outcome is still the sequential one, each counted once, and nothing hangs.
TEST(PoolChaos, WorkersKilledAtRandomLoseNothing) {
  struct Shared {
    std::atomic<pid_t> workers[4];
    std::atomic<std::uint64_t> kills;
    std::atomic<bool> stop;
  };
  auto& shared = *new (::mmap(nullptr, sizeof(Shared), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0))
      Shared{};
  const std::uint64_t target_kills = 200 + static_cast<std::uint64_t>(test::chaos_soak_duration().count()) * 100;
  auto pool = Pool::fork(collatz_task, {.workers = 4, .attempts = 100, .queue_capacity = 32});
  ASSERT_TRUE(pool.has_value()) << pool.error().message();
  const auto publish_workers = [&] {
    const auto pids = pool->worker_pids();
    for (std::size_t i = 0; i < 4; ++i) shared.workers[i].store(pids[i]);
  };
  publish_workers();
  ChildProcess killer = ChildProcess::spawn([&] {
    std::mt19937 random{std::random_device{}()};
    std::set<pid_t> killed;  // a killed worker stays listed until the pool replaces it
    while (!shared.stop.load()) {
      std::this_thread::sleep_for(std::chrono::microseconds{500 + random() % 3000});
      const pid_t victim = shared.workers[random() % 4].load();
      if (victim > 0 && killed.insert(victim).second && ::kill(victim, SIGKILL) == 0) shared.kills.fetch_add(1);
    }
    return 0;
  });
  std::uint64_t submitted = 0;
  std::uint64_t finished = 0;
  std::vector<std::uint8_t> seen;
  std::uint32_t most_attempts = 0;
  const auto take = [&](TaskOutcome outcome) {
    most_attempts = std::max(most_attempts, outcome.attempts);
    ASSERT_TRUE(outcome.ok) << "task " << outcome.task << ": " << outcome.error;
    ASSERT_EQ(value_of(outcome.result), collatz_steps(outcome.task)) << "task " << outcome.task;
    ASSERT_EQ(seen[outcome.task]++, 0) << "task " << outcome.task << " counted twice";
    ++finished;
  };
  const auto give_up = std::chrono::steady_clock::now() + 60s + test::chaos_soak_duration();
  // Until the pool has seen that many of its workers die.
  while (pool->progress().workers_replaced < target_kills && std::chrono::steady_clock::now() < give_up) {
    auto id = pool->submit(bytes_of(submitted), 10s);
    ASSERT_TRUE(id.has_value()) << id.error().message();
    ASSERT_EQ(*id, submitted);
    ++submitted;
    seen.push_back(0);
    while (true) {
      auto outcome = pool->next_finished(no_wait);
      if (!outcome) break;
      take(std::move(*outcome));
    }
    publish_workers();
  }
  shared.stop.store(true);
  EXPECT_TRUE(killer.wait().exited_with(0));
  while (finished < submitted) {
    auto outcome = pool->next_finished(30s);
    ASSERT_TRUE(outcome.has_value()) << outcome.error().message() << " with " << finished << " of " << submitted;
    take(std::move(*outcome));
  }
  EXPECT_GE(pool->progress().workers_replaced, target_kills);
  std::printf("pool chaos: %llu kills, %llu workers replaced, %llu tasks, each outcome exact and counted once, "
              "the most attempts %u\n",
              static_cast<unsigned long long>(shared.kills.load()),
              static_cast<unsigned long long>(pool->progress().workers_replaced),
              static_cast<unsigned long long>(submitted), most_attempts);
}

TEST(PoolTest, CancellingLeavesNoProcessOrMailboxBehind) {
  auto pool = Pool::fork(
      [](std::span<const std::byte> task) -> std::vector<std::byte> {
        std::this_thread::sleep_for(20s);
        return {task.begin(), task.end()};
      },
      {.workers = 2});
  ASSERT_TRUE(pool.has_value());
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(pool->submit(bytes_of(1)).has_value());
  const auto workers = pool->worker_pids();
  EXPECT_EQ(mailboxes_of(*pool).size(), 2u);
  const auto start = std::chrono::steady_clock::now();
  pool->cancel();
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
  for (const pid_t worker : workers) EXPECT_FALSE(alive(worker)) << "worker " << worker;
  EXPECT_TRUE(mailboxes_of(*pool).empty());
  auto refused = pool->submit(bytes_of(1));
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error(), Errc::closed);
  EXPECT_EQ(refused.error().message(), "pool '" + pool->name() + "': was cancelled");
}

TEST(PoolTest, WorkersDieWithTheProcessThatMadeThePool) {
  Pipe told;
  ChildProcess owner = ChildProcess::spawn([&] {
    auto pool = Pool::fork(collatz_task, {.workers = 2});
    if (!pool) return 1;
    std::string pids;
    for (const pid_t worker : pool->worker_pids()) pids += std::to_string(worker) + " ";
    told.send(pids);
    ::pause();
    return 0;
  });
  auto pids = told.receive(10s);
  ASSERT_TRUE(pids.has_value());
  owner.kill();
  (void)owner.wait();
  std::istringstream words{*pids};
  pid_t worker = 0;
  int checked = 0;
  while (words >> worker) {
    const auto give_up = std::chrono::steady_clock::now() + 5s;
    while (alive(worker) && std::chrono::steady_clock::now() < give_up) std::this_thread::sleep_for(10ms);
    EXPECT_FALSE(alive(worker)) << "worker " << worker;
    ++checked;
  }
  EXPECT_EQ(checked, 2);
}

TEST(PoolTest, ErrorsNameThePoolAndTheCause) {
  auto no_attempts = Pool::fork(collatz_task, {.attempts = 0});
  ASSERT_FALSE(no_attempts.has_value());
  EXPECT_EQ(no_attempts.error(), Errc::invalid_argument);
  EXPECT_EQ(no_attempts.error().message(), "pool: attempts must be 1 to 100, not 0");
  auto no_function = Pool::fork(TaskFunction{});
  ASSERT_FALSE(no_function.has_value());
  EXPECT_EQ(no_function.error().message(), "pool: needs a function");

  auto pool = Pool::fork(
      [](std::span<const std::byte> task) { return std::vector<std::byte>(value_of(task)); },
      {.workers = 1, .max_task_size = 8, .max_result_size = 100, .queue_capacity = 1});
  ASSERT_TRUE(pool.has_value());
  const std::string object = "pool '" + pool->name() + "'";
  auto too_large = pool->submit(std::vector<std::byte>(9));
  ASSERT_FALSE(too_large.has_value());
  EXPECT_EQ(too_large.error(), Errc::too_large);
  EXPECT_EQ(too_large.error().message(), object + ": a task of 9 bytes is over its max_task_size of 8");
  auto big = pool->submit(bytes_of(101));
  ASSERT_TRUE(big.has_value());
  auto outcome = pool->result(*big, 10s);
  ASSERT_TRUE(outcome.has_value());
  EXPECT_FALSE(outcome->ok);
  EXPECT_EQ(outcome->error, "returned 101 bytes, over the pool's max_result_size of 100");
  EXPECT_EQ(outcome->attempts, 3u);
  auto unknown = pool->result(999);
  ASSERT_FALSE(unknown.has_value());
  EXPECT_EQ(unknown.error().message(), object + ": has no task 999 to wait for");
}

TEST(PoolTest, AFullQueueRefusesANonBlockingSubmit) {
  auto pool = Pool::fork(
      [](std::span<const std::byte> task) -> std::vector<std::byte> {
        std::this_thread::sleep_for(300ms);
        return {task.begin(), task.end()};
      },
      {.workers = 1, .queue_capacity = 1});
  ASSERT_TRUE(pool.has_value());
  std::optional<Error> refused;
  for (int i = 0; i < 4 && !refused; ++i) {
    auto id = pool->submit(bytes_of(1), no_wait);
    if (!id) refused = id.error();
  }
  ASSERT_TRUE(refused.has_value());
  EXPECT_EQ(*refused, Errc::would_block);
  EXPECT_EQ(refused->message(), "pool '" + pool->name() + "': has a full task queue");
  auto timed = pool->submit(bytes_of(1), 50ms);
  ASSERT_FALSE(timed.has_value());
  EXPECT_EQ(timed.error().message(), "pool '" + pool->name() + "': timed out waiting for room in its task queue");
}

// Workers that are not the pool's children: processes that join it by name.
TEST(PoolTest, ProcessesStartedElsewhereServeANamedPool) {
  const std::string name = test::unique_name("served");
  auto pool = Pool::create({.name = name, .workers = 2});
  ASSERT_TRUE(pool.has_value()) << pool.error().message();
  EXPECT_EQ(pool->name(), name);
  EXPECT_TRUE(pool->worker_pids().empty());
  std::vector<ChildProcess> servers;
  for (int i = 0; i < 2; ++i) {
    servers.push_back(ChildProcess::spawn([&] {
      auto served = serve_pool(name, collatz_task);
      if (!served) std::fprintf(stderr, "%s\n", served.error().message().c_str());
      return served ? 0 : 1;
    }));
  }
  std::vector<std::vector<std::byte>> inputs;
  for (std::uint64_t i = 0; i < 2000; ++i) inputs.push_back(bytes_of(i));
  auto outcomes = pool->map(inputs);
  ASSERT_TRUE(outcomes.has_value()) << outcomes.error().message();
  for (std::uint64_t i = 0; i < inputs.size(); ++i) {
    ASSERT_TRUE((*outcomes)[i].ok) << (*outcomes)[i].error;
    ASSERT_EQ(value_of((*outcomes)[i].result), collatz_steps(i));
  }
  // The pool's end is the servers' end.
  pool->cancel();
  for (auto& server : servers) EXPECT_TRUE(server.wait(10s).exited_with(0));
  auto gone = serve_pool(name, collatz_task);
  ASSERT_FALSE(gone.has_value());
  EXPECT_EQ(gone.error(), Errc::not_found);
  EXPECT_EQ(gone.error().message(), "pool '" + name + "': does not exist (no mailbox '" + name + "-tasks')");
}

TEST(PoolTest, AServerKilledMidTaskLosesNothingAndItsTaskCountsTheAttempt) {
  const std::string name = test::unique_name("served");
  auto pool = Pool::create({.name = name, .workers = 2, .attempts = 2});
  ASSERT_TRUE(pool.has_value()) << pool.error().message();
  auto& started = *new (::mmap(nullptr, sizeof(std::atomic<int>), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                               -1, 0)) std::atomic<int>{0};
  const auto slow = [&](std::span<const std::byte> task) {
    started.fetch_add(1);
    std::this_thread::sleep_for(30ms);
    return collatz_task(task);
  };
  ChildProcess victim = ChildProcess::spawn([&] { return serve_pool(name, slow) ? 0 : 1; });
  std::vector<std::uint64_t> ids;
  for (std::uint64_t i = 0; i < 6; ++i) ids.push_back(pool->submit(bytes_of(i)).value());
  while (started.load() == 0) std::this_thread::sleep_for(1ms);  // the victim holds task 0
  victim.kill();
  ChildProcess survivor = ChildProcess::spawn([&] { return serve_pool(name, slow) ? 0 : 1; });
  bool some_task_took_two = false;
  for (const std::uint64_t id : ids) {
    auto outcome = pool->result(id, 30s);
    ASSERT_TRUE(outcome.has_value()) << outcome.error().message();
    ASSERT_TRUE(outcome->ok) << outcome->error;
    EXPECT_EQ(value_of(outcome->result), collatz_steps(id));
    some_task_took_two = some_task_took_two || outcome->attempts == 2;
  }
  EXPECT_TRUE(some_task_took_two);  // the task the victim held was taken again
  pool->cancel();
  EXPECT_TRUE(survivor.wait(10s).exited_with(0));
}

TEST(PoolTest, ExecStartsAProgramThatServesThePool) {
  auto pool = Pool::exec({SHMBOX_CLI_PATH, "worker", "-", "--", "sh", "-c", "read n; echo $((n * n))"}, {.workers = 2});
  ASSERT_TRUE(pool.has_value()) << pool.error().message();
  ASSERT_EQ(pool->worker_pids().size(), 2u);
  std::vector<std::vector<std::byte>> inputs;
  for (int i = 0; i < 40; ++i) {
    const std::string line = std::to_string(i);
    inputs.emplace_back(reinterpret_cast<const std::byte*>(line.data()),
                        reinterpret_cast<const std::byte*>(line.data()) + line.size());
  }
  auto outcomes = pool->map(inputs);
  ASSERT_TRUE(outcomes.has_value()) << outcomes.error().message();
  for (int i = 0; i < 40; ++i) {
    ASSERT_TRUE((*outcomes)[static_cast<std::size_t>(i)].ok) << (*outcomes)[static_cast<std::size_t>(i)].error;
    EXPECT_EQ(text_of((*outcomes)[static_cast<std::size_t>(i)].result), std::to_string(i * i) + "\n");
  }
  const auto workers = pool->worker_pids();
  pool->cancel();
  for (const pid_t worker : workers) EXPECT_FALSE(alive(worker));
}

TEST(PoolTest, AProgramThatCannotServeFailsThePoolInsteadOfStartingAgainForEver) {
  auto missing = Pool::exec({"/nonexistent/program"}, {.workers = 1});
  ASSERT_TRUE(missing.has_value()) << missing.error().message();
  auto outcome = missing->map(std::vector<std::vector<std::byte>>{bytes_of(1)});
  ASSERT_FALSE(outcome.has_value());
  EXPECT_EQ(outcome.error(), Errc::system);
  EXPECT_EQ(outcome.error().message(),
            "pool '" + missing->name() + "': a worker failed: it exited with status 71 (its error is on stderr)");
  auto no_program = Pool::exec({});
  ASSERT_FALSE(no_program.has_value());
  EXPECT_EQ(no_program.error().message(), "pool: needs a program to run");
  auto no_name = Pool::create({});
  ASSERT_FALSE(no_name.has_value());
  EXPECT_EQ(no_name.error().message(), "pool: needs a name, for its workers to join it by");
  auto no_function = serve_pool("anything", TaskFunction{});
  ASSERT_FALSE(no_function.has_value());
  EXPECT_EQ(no_function.error().message(), "pool 'anything': needs a function to serve it with");
}

}  // namespace
}  // namespace shmbox
