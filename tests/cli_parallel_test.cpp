// shmbox parallel: outputs in input order (or as they finish), NUL records, coprocesses,
// failing tasks listed with the exit status that says so, workers killed mid-run losing
// nothing, and every error as one line with its exit code.
#include <gtest/gtest.h>
#include <sysexits.h>

#include <algorithm>
#include <csignal>
#include <fstream>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include "support/cli.hpp"
#include "support/process.hpp"

namespace shmbox {
namespace {

using namespace std::chrono_literals;
using test::shmbox_cli;

std::string numbers(int count) {
  std::string text;
  for (int i = 1; i <= count; ++i) text += std::to_string(i) + "\n";
  return text;
}

std::string squares(int count) {
  std::string text;
  for (int i = 1; i <= count; ++i) text += std::to_string(i * i) + "\n";
  return text;
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream stream{text};
  for (std::string line; std::getline(stream, line);) lines.push_back(line);
  return lines;
}

const std::vector<std::string> square = {"--", "sh", "-c", "read n; echo $((n * n))"};

std::vector<std::string> parallel(std::vector<std::string> options, const std::vector<std::string>& command = square) {
  options.insert(options.begin(), "parallel");
  options.insert(options.end(), command.begin(), command.end());
  return options;
}

TEST(ParallelCli, OutputsComeInInputOrder) {
  auto run = shmbox_cli(parallel({"--workers", "3"}), numbers(200));
  EXPECT_TRUE(run.status.exited_with(EX_OK)) << run.err;
  EXPECT_EQ(run.out, squares(200));
  EXPECT_EQ(run.err, "");
}

TEST(ParallelCli, UnorderedOutputsAreTheSameOnesAsTheyFinish) {
  auto run = shmbox_cli(parallel({"--unordered", "--workers", "2"}), numbers(100));
  EXPECT_TRUE(run.status.exited_with(EX_OK)) << run.err;
  auto got = lines_of(run.out);
  auto expected = lines_of(squares(100));
  std::sort(got.begin(), got.end());
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(got, expected);
}

TEST(ParallelCli, NulRecordsKeepTheirNewlines) {
  const std::string input{"one\ntwo\0three\0", 14};
  auto run = shmbox_cli({"parallel", "--null", "--workers", "2", "--", "wc", "-c"}, input);
  EXPECT_TRUE(run.status.exited_with(EX_OK)) << run.err;
  EXPECT_EQ(run.out, "8\n6\n");  // each record with its NUL
}

TEST(ParallelCli, APersistentCommandAnswersEachLine) {
  auto run = shmbox_cli(parallel({"--persistent", "--workers", "2"},
                                 {"--", "sh", "-c", "while read n; do echo \"$$ $((n + 1))\"; done"}),
                        numbers(50));
  EXPECT_TRUE(run.status.exited_with(EX_OK)) << run.err;
  const auto lines = lines_of(run.out);
  ASSERT_EQ(lines.size(), 50u);
  std::set<std::string> coprocesses;
  for (std::size_t i = 0; i < lines.size(); ++i) {
    const auto space = lines[i].find(' ');
    coprocesses.insert(lines[i].substr(0, space));
    EXPECT_EQ(lines[i].substr(space + 1), std::to_string(i + 2));
  }
  EXPECT_LE(coprocesses.size(), 2u);  // started once per worker, not per task
}

TEST(ParallelCli, FailedTasksAreListedAndTheRestIsPrinted) {
  auto run = shmbox_cli(parallel({"--workers", "2", "--attempts", "2"},
                                 {"--", "sh", "-c", "read x; [ \"$x\" != bad ] || exit 3; echo ok $x"}),
                        "a\nbad\nb\n");
  EXPECT_TRUE(run.status.exited_with(EX_DATAERR));
  EXPECT_EQ(run.out, "ok a\nok b\n");
  EXPECT_EQ(run.err,
            "shmbox: task 1 (line 2 of the input): failed after 2 attempts: sh exited with status 3\n"
            "shmbox: parallel: 1 of 3 tasks failed\n");
  auto missing = shmbox_cli({"parallel", "--attempts", "1", "--", "/nonexistent/command"}, "x\n");
  EXPECT_TRUE(missing.status.exited_with(EX_DATAERR));
  EXPECT_EQ(missing.err,
            "shmbox: task 0 (line 1 of the input): failed after 1 attempt: cannot run '/nonexistent/command': "
            "No such file or directory\n"
            "shmbox: parallel: 1 of 1 tasks failed\n");
}

// The tool's workers are its children: killed while they run tasks, they are replaced and
// the tasks they held run again.
TEST(ParallelCli, WorkersKilledMidRunLoseNothing) {
  test::TemporaryDirectory directory;
  const std::string pid_file = directory.path() + "/pid";
  const std::string kills_file = directory.path() + "/kills";
  test::ChildProcess killer = test::ChildProcess::spawn([&]() -> int {
    int kills = 0;
    std::mt19937 random{std::random_device{}()};
    for (;;) {
      std::this_thread::sleep_for(std::chrono::milliseconds{50 + random() % 100});
      std::ifstream pid_stream{pid_file};
      pid_t tool = 0;
      if (!(pid_stream >> tool)) continue;
      std::ifstream children{"/proc/" + std::to_string(tool) + "/task/" + std::to_string(tool) + "/children"};
      // By name: the tool has other children (a sanitizer's leak check runs in one at exit).
      std::vector<pid_t> workers;
      for (pid_t child = 0; children >> child;) {
        std::string name;
        std::getline(std::ifstream{"/proc/" + std::to_string(child) + "/comm"}, name);
        if (name == "shmbox worker") workers.push_back(child);
      }
      if (!workers.empty() && ::kill(workers[random() % workers.size()], SIGKILL) == 0) {
        std::ofstream{kills_file} << ++kills;
      }
    }
  });
  // Standard input through fd 3: a background command's own is /dev/null.
  auto run = test::shell("exec 3<&0; $SHMBOX parallel --workers 3 --attempts 20 -- "
                         "sh -c 'read n; sleep 0.01; echo $((n * n))' <&3 & echo $! > " + pid_file + "; wait $!",
                         numbers(300));
  killer.kill();
  EXPECT_TRUE(run.status.exited_with(EX_OK)) << run.err;
  EXPECT_EQ(run.out, squares(300));
  int kills = 0;
  std::ifstream{kills_file} >> kills;
  EXPECT_GE(kills, 5);
}

TEST(ParallelCli, BadInputAndOptionsSayWhatIsWrong) {
  auto no_command = shmbox_cli({"parallel"});
  EXPECT_TRUE(no_command.status.exited_with(EX_USAGE));
  EXPECT_EQ(no_command.err, "shmbox: usage: parallel needs a command to run: parallel -- COMMAND\n");
  auto attempts = shmbox_cli(parallel({"--attempts", "0"}), "1\n");
  EXPECT_TRUE(attempts.status.exited_with(EX_USAGE));
  EXPECT_EQ(attempts.err.rfind("shmbox: --attempts '0': ", 0), 0u) << attempts.err;
  auto too_long = shmbox_cli(parallel({"--max-size", "8", "--workers", "1"}), "1\n2\n123456789\n3\n");
  EXPECT_TRUE(too_long.status.exited_with(EX_DATAERR));
  EXPECT_EQ(too_long.out, "1\n4\n");
  EXPECT_EQ(too_long.err,
            "shmbox: standard input: holds a message longer than the maximum of 8 bytes; the 2 lines before it ran "
            "(0 failed)\n");
}

}  // namespace
TEST(ParallelCli, WorkersFromOtherProcessesServeANamedRun) {
  const std::string name = test::unique_name("joined");
  // Standard input through fd 3: a background command's own is /dev/null. Each worker
  // tries until the pool exists, then serves it until it ends.
  auto run = test::shell("exec 3<&0; $SHMBOX parallel --name " + name + " --workers 0 <&3 > out.$$ & p=$!; "
                         "for w in 1 2; do (for t in $(seq 200); do $SHMBOX worker " + name +
                             " -- sh -c 'read n; echo $((n * n))' 2>/dev/null && exit 0; sleep 0.05; done; exit 1) & "
                             "done; wait $p; echo \"parallel $?\"; wait; cat out.$$; rm -f out.$$",
                         numbers(200));
  EXPECT_TRUE(run.status.exited_with(EX_OK)) << run.err;
  EXPECT_EQ(run.out, "parallel 0\n" + squares(200));
}

TEST(ParallelCli, AWorkerSaysWhatIsWrong) {
  auto missing = shmbox_cli({"worker", "no-such-pool", "--", "cat"});
  EXPECT_TRUE(missing.status.exited_with(EX_NOINPUT));
  EXPECT_EQ(missing.err, "shmbox: pool 'no-such-pool': does not exist (no mailbox 'no-such-pool-tasks')\n");
  auto no_command = shmbox_cli({"worker", "some-pool"});
  EXPECT_TRUE(no_command.status.exited_with(EX_USAGE));
  EXPECT_EQ(no_command.err, "shmbox: usage: worker needs a pool and a command: worker NAME -- COMMAND\n");
  auto not_started = shmbox_cli({"worker", "-", "--", "cat"});
  EXPECT_TRUE(not_started.status.exited_with(EX_USAGE));
  EXPECT_EQ(not_started.err, "shmbox: usage: worker -: no pool started this process (SHMBOX_POOL is unset)\n");
  auto nothing_here = shmbox_cli({"parallel", "--name", "x", "--workers", "0", "--", "cat"}, "1\n");
  EXPECT_TRUE(nothing_here.status.exited_with(EX_USAGE));
  EXPECT_EQ(nothing_here.err,
            "shmbox: usage: parallel --workers 0 runs no command here: the workers that join bring theirs\n");
  auto unnamed = shmbox_cli({"parallel", "--workers", "0", "--", "cat"}, "1\n");
  EXPECT_TRUE(unnamed.status.exited_with(EX_USAGE));
  EXPECT_EQ(unnamed.err.rfind("shmbox: --workers '0': ", 0), 0u) << unnamed.err;
}

}  // namespace shmbox
