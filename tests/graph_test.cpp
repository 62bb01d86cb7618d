// Task graphs across real processes: results equal the sequential computation through
// fan-out and a join; a failing task fails its key only; a fast stage cannot flood a slow
// one; workers killed at random leave every result exact; nothing is left behind.
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <random>
#include <set>
#include <stdexcept>
#include <stop_token>
#include <thread>

#include "shmbox/graph.hpp"
#include "shmbox/mailbox.hpp"
#include "support/build.hpp"
#include "support/chaos.hpp"
#include "support/process.hpp"

namespace shmbox {
namespace {

using namespace std::chrono_literals;
using test::ChildProcess;

std::vector<std::byte> bytes_of(std::uint64_t value) {
  const auto bytes = std::as_bytes(std::span{&value, 1});
  return {bytes.begin(), bytes.end()};
}

std::uint64_t value_of(std::span<const std::byte> bytes) {
  std::uint64_t value = 0;
  if (bytes.size() != sizeof value) throw std::runtime_error("not a number: " + std::to_string(bytes.size()) + " bytes");
  std::memcpy(&value, bytes.data(), sizeof value);
  return value;
}

// A stage function from a function of one number.
TaskFunction numeric(std::uint64_t (*function)(std::uint64_t)) {
  return [function](std::span<const std::byte> task) { return bytes_of(function(value_of(task))); };
}

std::uint64_t square(std::uint64_t n) { return n * n; }
std::uint64_t plus_one(std::uint64_t n) { return n + 1; }
std::uint64_t doubled(std::uint64_t n) { return 2 * n; }
std::uint64_t digits(std::uint64_t n) { return std::to_string(n).size(); }

std::vector<std::vector<std::byte>> numbers(std::uint64_t count) {
  std::vector<std::vector<std::byte>> inputs;
  for (std::uint64_t i = 0; i < count; ++i) inputs.push_back(bytes_of(i));
  return inputs;
}

// Memory this process and its forks share, for what the stages see.
template <class T>
T& shared_memory() {
  void* memory = ::mmap(nullptr, sizeof(T), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (memory == MAP_FAILED) throw std::runtime_error("mmap");
  return *new (memory) T{};
}

// Its living children: a killed one stays listed, as a zombie, until it is waited for.
std::vector<pid_t> children_of(pid_t parent) {
  std::ifstream children{"/proc/" + std::to_string(parent) + "/task/" + std::to_string(parent) + "/children"};
  std::vector<pid_t> found;
  for (pid_t child = 0; children >> child;) {
    std::ifstream stat{"/proc/" + std::to_string(child) + "/stat"};
    std::string pid;
    std::string command;
    char state = 'Z';
    stat >> pid >> command >> state;
    if (state != 'Z') found.push_back(child);
  }
  return found;
}

std::vector<std::string> pool_mailboxes() {
  std::vector<std::string> found;
  for (const auto& name : Mailbox::list()) {
    if (name.starts_with("pool-" + std::to_string(::getpid()) + "-")) found.push_back(name);
  }
  return found;
}

// square -> (plus_one, doubled) -> join: n*n + 1 + 2*n*n; and square -> digits.
Graph fan_out_and_join(std::uint32_t workers, std::uint32_t attempts = 3) {
  Graph graph;
  const StageOptions options{.workers = workers, .attempts = attempts};
  const auto squares = graph.source("square", numeric(square), options).value();
  const auto plus = graph.then(squares, "plus one", numeric(plus_one), options).value();
  const auto twice = graph.then(squares, "doubled", numeric(doubled), options).value();
  (void)graph
      .join({plus, twice}, "sum",
            [](std::span<const std::span<const std::byte>> parts) {
              if (parts.size() != 2) throw std::runtime_error("a join of " + std::to_string(parts.size()));
              return bytes_of(value_of(parts[0]) + value_of(parts[1]));
            },
            options)
      .value();
  (void)graph.then(squares, "digits", numeric(digits), options).value();
  return graph;
}

void expect_exact(const std::vector<GraphOutcome>& outcomes, std::uint64_t count) {
  ASSERT_EQ(outcomes.size(), count);
  for (std::uint64_t n = 0; n < count; ++n) {
    const GraphOutcome& outcome = outcomes[n];
    ASSERT_EQ(outcome.key, n);
    ASSERT_TRUE(outcome.ok) << "input " << n << ": " << outcome.stage << ": " << outcome.error;
    ASSERT_EQ(outcome.results.size(), 2u);  // the join, then digits: the final stages in order
    ASSERT_EQ(value_of(outcome.results[0]), 3 * n * n + 1) << "input " << n;
    ASSERT_EQ(value_of(outcome.results[1]), digits(n * n)) << "input " << n;
  }
}

TEST(GraphTest, FanOutAndAJoinGiveTheSequentialResultForEveryInputInOrder) {
  const Graph graph = fan_out_and_join(2);
  std::vector<GraphProgress> progress;
  auto outcomes = graph.run(numbers(2000), {.on_progress = [&](const GraphProgress& now) { progress.push_back(now); }});
  ASSERT_TRUE(outcomes.has_value()) << outcomes.error().message();
  expect_exact(*outcomes, 2000);
  ASSERT_EQ(progress.size(), 2000u);
  EXPECT_EQ(progress.back().done, 2000u);
  EXPECT_EQ(progress.back().total, 2000u);
  EXPECT_EQ(progress.back().failed, 0u);
  // The graph can run again, with other inputs.
  auto again = graph.run(numbers(10));
  ASSERT_TRUE(again.has_value()) << again.error().message();
  expect_exact(*again, 10);
}

TEST(GraphTest, ATaskThatFailsEveryTimeFailsItsInputOnlyAndNamesItsStage) {
  struct Seen {
    std::atomic<std::uint64_t> joins_of_seven;
    std::atomic<std::uint64_t> tries_of_seven;
  };
  Seen& seen = shared_memory<Seen>();
  Graph graph;
  const auto first = graph.source("first", numeric(plus_one)).value();
  const auto fragile = graph
                           .then(first, "fragile",
                                 [&](std::span<const std::byte> task) {
                                   const std::uint64_t n = value_of(task);
                                   if (n == 8) {
                                     seen.tries_of_seven.fetch_add(1);
                                     throw std::runtime_error("eight is poison");
                                   }
                                   return bytes_of(n);
                                 },
                                 {.workers = 2, .attempts = 2})
                           .value();
  const auto other = graph.then(first, "other", numeric(doubled)).value();
  (void)graph
      .join({fragile, other}, "both",
            [&](std::span<const std::span<const std::byte>> parts) {
              if (value_of(parts[0]) == 8) seen.joins_of_seven.fetch_add(1);
              return bytes_of(value_of(parts[0]) + value_of(parts[1]));
            })
      .value();
  auto outcomes = graph.run(numbers(50));
  ASSERT_TRUE(outcomes.has_value()) << outcomes.error().message();
  for (std::uint64_t n = 0; n < 50; ++n) {
    const GraphOutcome& outcome = (*outcomes)[n];
    if (n == 7) continue;
    ASSERT_TRUE(outcome.ok) << n << ": " << outcome.error;
    EXPECT_EQ(value_of(outcome.results.at(0)), 3 * (n + 1));
  }
  const GraphOutcome& failed = (*outcomes)[7];
  EXPECT_FALSE(failed.ok);
  EXPECT_TRUE(failed.results.empty());
  EXPECT_EQ(failed.stage, "fragile");
  EXPECT_EQ(failed.error, "failed after 2 attempts: eight is poison");
  EXPECT_EQ(seen.tries_of_seven.load(), 2u);
  EXPECT_EQ(seen.joins_of_seven.load(), 0u);  // nothing after the failed stage ran for it
  const Error error = Graph::failure(failed);
  EXPECT_EQ(error, Errc::task_failed);
  EXPECT_EQ(error.message(), "graph stage 'fragile': input 7 failed after 2 attempts: eight is poison");
}

TEST(GraphTest, AFastStageCannotFloodASlowOne) {
  struct Flow {
    std::atomic<std::uint64_t> started;
    std::atomic<std::uint64_t> finished;
    std::atomic<std::uint64_t> widest_gap;
  };
  Flow& flow = shared_memory<Flow>();
  Graph graph;
  const auto fast = graph
                        .source("fast",
                                [&](std::span<const std::byte> task) {
                                  const std::uint64_t gap = flow.started.fetch_add(1) + 1 - flow.finished.load();
                                  std::uint64_t widest = flow.widest_gap.load();
                                  while (gap > widest && !flow.widest_gap.compare_exchange_weak(widest, gap)) {
                                  }
                                  return std::vector<std::byte>(task.begin(), task.end());
                                },
                                {.workers = 2})
                        .value();
  (void)graph
      .then(fast, "slow",
            [&](std::span<const std::byte> task) {
              std::this_thread::sleep_for(1ms);
              flow.finished.fetch_add(1);
              return std::vector<std::byte>(task.begin(), task.end());
            })
      .value();
  constexpr std::uint32_t in_flight = 6;
  auto outcomes = graph.run(numbers(300), {.max_in_flight = in_flight});
  ASSERT_TRUE(outcomes.has_value()) << outcomes.error().message();
  for (std::uint64_t n = 0; n < 300; ++n) ASSERT_EQ(value_of((*outcomes)[n].results.at(0)), n);
  EXPECT_EQ(flow.finished.load(), 300u);
  // However fast the first stage, it is never more than the inputs in flight ahead.
  EXPECT_LE(flow.widest_gap.load(), in_flight);
  EXPECT_GE(flow.widest_gap.load(), 2u);
}

TEST(GraphChaos, WorkersKilledAtRandomLeaveEveryResultExact) {
  struct Shared {
    std::atomic<std::uint64_t> kills;
  };
  Shared& shared = shared_memory<Shared>();
  const std::uint64_t target_kills = test::sanitized_build ? 50 : 100;
  const std::uint64_t count = test::sanitized_build ? 5'000 : 20'000;
  const pid_t graph_process = ::getpid();
  ChildProcess killer = ChildProcess::spawn([&] {
    std::mt19937 random{std::random_device{}()};
    // A killed process is listed as running until its exit is done, which under a sanitizer
    // (a large address space to unmap) takes a while: each is counted once.
    std::set<pid_t> killed;
    while (shared.kills.load() < target_kills) {
      std::this_thread::sleep_for(std::chrono::microseconds{2000 + random() % 4000});
      std::vector<pid_t> workers = children_of(graph_process);
      std::erase(workers, ::getpid());
      std::erase_if(workers, [&](pid_t worker) { return killed.contains(worker); });
      if (workers.empty()) continue;
      const pid_t victim = workers[random() % workers.size()];
      if (::kill(victim, SIGKILL) == 0 && killed.insert(victim).second) shared.kills.fetch_add(1);
    }
    return 0;
  });
  // square -> (plus_one, doubled) -> join, and square -> digits, as fan_out_and_join; the
  // second half of the inputs is held in the first stage until every kill is done, so that
  // the kills fall while the graph runs.
  Graph graph;
  const StageOptions options{.workers = 2, .attempts = 100};
  const auto squares = graph
                           .source("square",
                                   [&](std::span<const std::byte> task) {
                                     const std::uint64_t n = value_of(task);
                                     while (n >= count / 2 && shared.kills.load() < target_kills) {
                                       std::this_thread::sleep_for(1ms);
                                     }
                                     return bytes_of(square(n));
                                   },
                                   options)
                           .value();
  const auto plus = graph.then(squares, "plus one", numeric(plus_one), options).value();
  const auto twice = graph.then(squares, "doubled", numeric(doubled), options).value();
  (void)graph
      .join({plus, twice}, "sum",
            [](std::span<const std::span<const std::byte>> parts) {
              return bytes_of(value_of(parts[0]) + value_of(parts[1]));
            },
            options)
      .value();
  (void)graph.then(squares, "digits", numeric(digits), options).value();
  GraphProgress last;
  auto outcomes = graph.run(numbers(count), {.on_progress = [&](const GraphProgress& now) { last = now; }});
  EXPECT_TRUE(killer.wait(30s).exited_with(0));
  ASSERT_TRUE(outcomes.has_value()) << outcomes.error().message();
  expect_exact(*outcomes, count);
  EXPECT_EQ(shared.kills.load(), target_kills);
  EXPECT_GE(last.workers_replaced, target_kills / 2);  // a kill may fall on a worker not yet counted
  std::printf("graph chaos: %llu kills, %llu workers replaced, %llu inputs through 5 stages with a join, "
              "each result exact\n",
              static_cast<unsigned long long>(shared.kills.load()),
              static_cast<unsigned long long>(last.workers_replaced), static_cast<unsigned long long>(count));
}

TEST(GraphTest, ARunLeavesNoProcessOrMailboxBehind) {
  const Graph graph = fan_out_and_join(2);
  auto outcomes = graph.run(numbers(100));
  ASSERT_TRUE(outcomes.has_value()) << outcomes.error().message();
  EXPECT_TRUE(children_of(::getpid()).empty());
  EXPECT_TRUE(pool_mailboxes().empty());
  auto none = graph.run(std::span<const std::vector<std::byte>>{});
  ASSERT_TRUE(none.has_value());
  EXPECT_TRUE(none->empty());
}

// A stop requested from the progress callback, or from another thread while every worker
// is deep in a long task: the run ends at once, with no process or mailbox left behind.
TEST(GraphTest, AStoppedRunEndsAndLeavesNoProcessOrMailboxBehind) {
  const Graph graph = fan_out_and_join(2);
  std::stop_source stop;
  auto stopped = graph.run(numbers(1000), {.on_progress = [&](const GraphProgress& progress) {
                                             if (progress.done == 50) stop.request_stop();
                                           },
                                           .stop = stop.get_token()});
  ASSERT_FALSE(stopped.has_value());
  EXPECT_EQ(stopped.error(), Errc::closed);
  // The outcomes already in when the stop was asked for are counted too (one turn of the
  // router), and no more than that.
  unsigned long done = 0;
  ASSERT_EQ(std::sscanf(stopped.error().message().c_str(), "graph: was cancelled after %lu of 1000 inputs", &done), 1)
      << stopped.error().message();
  EXPECT_GE(done, 50u);
  EXPECT_LT(done, 1000u);
  EXPECT_TRUE(children_of(::getpid()).empty());
  EXPECT_TRUE(pool_mailboxes().empty());

  Graph slow;
  (void)slow.source("sleep", [](std::span<const std::byte> task) {
    std::this_thread::sleep_for(60s);
    return std::vector<std::byte>(task.begin(), task.end());
  }, {.workers = 2}).value();
  std::stop_source from_elsewhere;
  std::jthread stopper{[&] {
    std::this_thread::sleep_for(300ms);
    from_elsewhere.request_stop();
  }};
  const auto start = std::chrono::steady_clock::now();
  auto cut = slow.run(numbers(10), {.stop = from_elsewhere.get_token()});
  ASSERT_FALSE(cut.has_value());
  EXPECT_EQ(cut.error().message(), "graph: was cancelled after 0 of 10 inputs");
  EXPECT_LT(std::chrono::steady_clock::now() - start, 30s);  // not the tasks' minute
  EXPECT_TRUE(children_of(::getpid()).empty());
  EXPECT_TRUE(pool_mailboxes().empty());
}

TEST(GraphTest, DefinitionErrorsNameTheStageAndTheCause) {
  Graph graph;
  const auto expect_refused = [](const Result<Graph::Stage>& stage, const std::string& message) {
    ASSERT_FALSE(stage.has_value());
    EXPECT_EQ(stage.error(), Errc::invalid_argument);
    EXPECT_EQ(stage.error().message(), message);
  };
  auto empty = graph.run(numbers(1));
  ASSERT_FALSE(empty.has_value());
  EXPECT_EQ(empty.error().message(), "graph: has no stage");
  const auto first = graph.source("first", numeric(square)).value();
  expect_refused(graph.source("", numeric(square)), "graph stage '': a stage's name must be 1 to 64 characters");
  expect_refused(graph.source("first", numeric(square)), "graph stage 'first': the graph has a stage of that name already");
  expect_refused(graph.then(7, "later", numeric(square)), "graph stage 'later': comes after stage 7, which the graph has not");
  expect_refused(graph.then(first, "nothing", TaskFunction{}), "graph stage 'nothing': needs a function");
  expect_refused(graph.then(first, "eager", numeric(square), {.attempts = 0}),
                 "graph stage 'eager': attempts must be 1 to 100, not 0");
  const JoinFunction concatenate = [](std::span<const std::span<const std::byte>>) { return std::vector<std::byte>{}; };
  expect_refused(graph.join({first}, "alone", concatenate), "graph stage 'alone': a join takes two stages or more");
  expect_refused(graph.join({first, first}, "twice", concatenate), "graph stage 'twice': joins stage 'first' twice");
  EXPECT_EQ(graph.stages().size(), 1u);  // nothing refused was added
}

}  // namespace
}  // namespace shmbox
