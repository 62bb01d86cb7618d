#include "support/process.hpp"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <thread>

namespace shmbox::test {
namespace {

TEST(ChildProcess, ReportsExitCode) {
  auto child = ChildProcess::spawn([] { return 42; });
  const auto status = child.wait();
  EXPECT_TRUE(status.exited_with(42)) << status.describe();
  EXPECT_FALSE(child.running());
}

TEST(ChildProcess, RunsInAnotherProcess) {
  const pid_t parent = ::getpid();
  auto child = ChildProcess::spawn([parent] { return ::getpid() != parent && ::getppid() == parent ? 0 : 1; });
  EXPECT_TRUE(child.wait().exited_with(0));
}

TEST(ChildProcess, ReportsTheKillingSignal) {
  auto child = ChildProcess::spawn([] {
    std::raise(SIGABRT);
    return 0;
  });
  const auto status = child.wait();
  EXPECT_TRUE(status.killed_by(SIGABRT)) << status.describe();
  EXPECT_EQ(status.describe(), "killed by signal ABRT");
}

TEST(ChildProcess, KillsAChildThatOverrunsItsTimeout) {
  auto child = ChildProcess::spawn([] {
    ::pause();
    return 0;
  });
  const auto start = std::chrono::steady_clock::now();
  const auto status = child.wait(200ms);
  EXPECT_EQ(status.kind, ExitStatus::Kind::timed_out);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 10s);
  EXPECT_FALSE(child.running());
}

TEST(ChildProcess, CanBeKilledMidOperation) {
  Pipe progress;
  auto child = ChildProcess::spawn([&]() -> int {
    progress.send("working");
    for (;;) ::pause();
  });
  ASSERT_EQ(progress.receive(), "working");
  child.kill(SIGKILL);
  EXPECT_TRUE(child.wait().killed_by(SIGKILL));
}

TEST(ChildProcess, ThrowingBodyExitsWith125) {
  auto child = ChildProcess::spawn([]() -> int { throw 1; });
  EXPECT_TRUE(child.wait().exited_with(125));
}

TEST(ChildProcess, DestructorKillsAndReapsARunningChild) {
  int pidfd = -1;
  {
    auto child = ChildProcess::spawn([] {
      ::pause();
      return 0;
    });
    pidfd = ::dup(child.pidfd());  // a pidfd names this child only, whatever reuses its pid
  }
  siginfo_t info{};
  // Reaped: waitid on the pidfd finds no such child any more.
  EXPECT_EQ(::waitid(static_cast<idtype_t>(P_PIDFD), static_cast<id_t>(pidfd), &info, WEXITED | WNOHANG), -1);
  EXPECT_EQ(errno, ECHILD);
  ::close(pidfd);
}

TEST(Pipe, CarriesLinesFromChildToParent) {
  Pipe pipe;
  auto child = ChildProcess::spawn([&] {
    pipe.send("one");
    pipe.send("two");
    return 0;
  });
  EXPECT_EQ(pipe.receive(), "one");
  EXPECT_EQ(pipe.receive(), "two");
  EXPECT_EQ(pipe.receive(50ms), std::nullopt);
  EXPECT_TRUE(child.wait().exited_with(0));
}

TEST(RunCommand, CapturesOutputAndStatus) {
  auto result = run_command({"/bin/sh", "-c", "cat; echo oops >&2; exit 3"}, "input\n");
  EXPECT_TRUE(result.status.exited_with(3));
  EXPECT_EQ(result.out, "input\n");
  EXPECT_EQ(result.err, "oops\n");
}

}  // namespace
}  // namespace shmbox::test
