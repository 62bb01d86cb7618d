// Pools on a NATS server (nats://host:port/NAME): workers join from other processes, as
// they would from other machines, and one lost mid-task has its task done again. The pool
// runs in a child process and the workers are `shmbox worker` programs: the NATS client is
// not fork-safe, so the test process itself never starts it.
#include <gtest/gtest.h>
#include <signal.h>
#include <sysexits.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>
#include <thread>

#include "shmbox/pool.hpp"
#include "support/cli.hpp"
#include "support/nats_test.hpp"
#include "support/process.hpp"

namespace shmbox {
namespace {

using namespace std::chrono_literals;
using test::ChildProcess;

class RemotePool : public ::testing::Test {
 protected:
  void SetUp() override {
    test::start_nats_or_skip(server);
    if (server) name = test::remote_name(*server, "pool");
  }

  // `shmbox worker NAME -- COMMAND` as a process of its own (exec'd: its pid is the worker's).
  ChildProcess start_worker(const std::string& command) {
    return ChildProcess::spawn([this, command] {
      ::execl(SHMBOX_CLI_PATH, SHMBOX_CLI_PATH, "worker", name.c_str(), "--", "sh", "-c", command.c_str(), nullptr);
      return 127;
    });
  }

  // Until the pool's task mailbox exists (asked through the CLI: not from this process).
  bool wait_for_pool() {
    for (int tries = 0; tries < 300; ++tries) {
      if (test::shmbox_cli({"stat", name + "-tasks"}).status.exited_with(EX_OK)) return true;
      std::this_thread::sleep_for(100ms);
    }
    return false;
  }

  std::optional<test::NatsServer> server;
  std::string name;
};

// Enough tasks that the queue is still full, and a submit waiting for room, when the lost
// worker's lease runs out (after 5 s): the task sent again must not take a submitted
// task's place.
TEST_F(RemotePool, WorkersJoinANatsPoolAndOneLostMidTaskHasItsTaskDoneAgain) {
  constexpr int count = 150;
  ChildProcess pool_process = ChildProcess::spawn([this] {
    auto pool = Pool::create({.name = name, .workers = 2, .attempts = 3});
    if (!pool) {
      std::fprintf(stderr, "%s\n", pool.error().message().c_str());
      return 1;
    }
    std::vector<std::vector<std::byte>> inputs;
    for (int n = 0; n < count; ++n) {
      const std::string line = std::to_string(n);
      const auto bytes = as_bytes(line);
      inputs.emplace_back(bytes.begin(), bytes.end());
    }
    auto outcomes = pool->map(inputs);
    if (!outcomes) {
      std::fprintf(stderr, "%s\n", outcomes.error().message().c_str());
      return 2;
    }
    std::uint32_t most_attempts = 0;
    for (int n = 0; n < count; ++n) {
      const TaskOutcome& outcome = (*outcomes)[static_cast<std::size_t>(n)];
      const std::string result(reinterpret_cast<const char*>(outcome.result.data()), outcome.result.size());
      if (!outcome.ok || result != std::to_string(n * n) + "\n") {
        std::fprintf(stderr, "task %d: %s%s\n", n, outcome.error.c_str(), result.c_str());
        return 3;
      }
      most_attempts = std::max(most_attempts, outcome.attempts);
    }
    std::printf("remote pool: %d tasks exact, the most attempts %u\n", count, most_attempts);
    return most_attempts >= 2 ? 0 : 4;  // the lost worker's task was taken twice
  });
  ASSERT_TRUE(wait_for_pool());
  // The victim marks that it holds a task and then never finishes it; killed once marked,
  // it is certainly mid-task (a slow start under a sanitizer made a fixed wait miss).
  test::TemporaryDirectory directory;
  const std::string mark = directory.path() + "/taken";
  ChildProcess victim = start_worker("read n; : > " + mark + "; sleep 60");
  for (int tries = 0; tries < 600 && ::access(mark.c_str(), F_OK) != 0; ++tries) std::this_thread::sleep_for(50ms);
  ASSERT_EQ(::access(mark.c_str(), F_OK), 0) << "the victim took no task in 30 s";
  ChildProcess survivor = start_worker("read n; sleep 0.05; echo $((n * n))");
  victim.kill();  // its machine is gone: it says nothing more
  const auto status = pool_process.wait(90s);
  EXPECT_TRUE(status.exited_with(0)) << status.describe();
  EXPECT_TRUE(survivor.wait(30s).exited_with(0));
}

// The tool's default size on nats:// (512KiB) fits the server's 1MiB messages with room for
// every report: a task of exactly that size is taken (its took report carries it whole,
// with the worker's name); an output over the pool's size that the transport still
// carries is refused by the pool, named exactly.
TEST_F(RemotePool, TheToolsDefaultSizeFitsTheServerAndTheResultSizeIsKept) {
  const std::string at_the_size(512 * 1024 - 1, 'x');  // and its newline
  test::TemporaryDirectory directory;  // the input is over what a pipe holds
  const std::string input = directory.path() + "/tasks";
  std::ofstream{input} << at_the_size << "\n" << at_the_size << "\n" << "z\n";
  auto run = test::shell("$SHMBOX parallel --name " + name + " --workers 0 --attempts 1 < " + input + " & pool=$!; "
                         "until $SHMBOX stat " + name + "-tasks > /dev/null 2>&1; do sleep 0.1; done; "
                         "$SHMBOX worker " + name + " --max-size 1MiB -- sh -c "
                         "'n=$(wc -c); if [ $n = 2 ]; then yes | head -c 524300; else echo $n; fi' & "
                         "wait $pool");
  EXPECT_TRUE(run.status.exited_with(EX_DATAERR)) << run.err;
  EXPECT_EQ(run.out, "524288\n524288\n");
  EXPECT_EQ(run.err,
            "shmbox: task 2 (line 3 of the input): failed after 1 attempt: returned 524300 bytes, over the pool's "
            "max_result_size of 524288\n"
            "shmbox: parallel: 1 of 3 tasks failed\n");
}

TEST_F(RemotePool, ForkedWorkersAreRefusedOnNats) {
  test::expect_child_succeeds([this] {
    auto forked = Pool::fork([](std::span<const std::byte> task) { return std::vector<std::byte>(task.begin(), task.end()); },
                             {.name = name, .workers = 1});
    if (forked) return 1;
    const std::string expected =
        "pool '" + name + "': cannot fork workers that use NATS (its client does not survive a fork): start them "
        "with Pool::exec, or let workers join (serve_pool, shmbox worker)";
    if (forked.error().message() != expected) {
      std::fprintf(stderr, "%s\n", forked.error().message().c_str());
      return 2;
    }
    return 0;
  });
}

}  // namespace
}  // namespace shmbox
