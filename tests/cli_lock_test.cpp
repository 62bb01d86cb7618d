// shmbox lock: a command run holding a lock (as flock(1) runs one), what it is told when
// the previous holder died, the exit codes, --rm, and what ls and stat show.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sysexits.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "shmbox/lock.hpp"
#include "support/cli.hpp"
#include "support/process.hpp"

namespace shmbox {
namespace {

using namespace std::chrono_literals;
using test::shell;
using test::shmbox_cli;

class LockCliTest : public ::testing::Test {
 protected:
  void TearDown() override { (void)Lock::remove(name); }
  std::string name = test::unique_name("clilock");
};

TEST_F(LockCliTest, RunsTheCommandHoldingTheLockAndExitsWithItsStatus) {
  auto ran = shmbox_cli({"lock", name, "--", "sh", "-c", "echo inside; exit 3"});
  EXPECT_TRUE(ran.status.exited_with(3)) << ran.err;
  EXPECT_EQ(ran.out, "inside\n");
  EXPECT_EQ(ran.err, "");
  auto status = Lock::stat(name);
  ASSERT_TRUE(status.has_value());  // created on first use
  EXPECT_EQ(status->mode, 0600u);
  EXPECT_TRUE(status->holders.empty());
}

TEST_F(LockCliTest, SerialisesCommandsThatWouldInterleave) {
  // Four writers append "start end" pairs to one file; holding the lock, pairs never mix.
  test::TemporaryDirectory directory;
  const std::string file = directory.path() + "/log";
  auto ran = shell("for i in 1 2 3 4; do $SHMBOX lock " + name + " -- sh -c 'echo start >> " + file +
                   "; sleep 0.05; echo end >> " + file + "' & done; wait");
  ASSERT_TRUE(ran.status.exited_with(0)) << ran.err;
  auto log = test::run_command({"/bin/cat", file});
  EXPECT_EQ(log.out, "start\nend\nstart\nend\nstart\nend\nstart\nend\n");
}

TEST_F(LockCliTest, AHeldLockIsRefusedWith75UnderNonblockAndTimeout) {
  ASSERT_TRUE(Lock::create(name).has_value());
  auto lock = Lock::open(name);
  ASSERT_TRUE(lock.has_value());
  auto held = lock->lock();
  ASSERT_TRUE(held.has_value());
  auto refused = shmbox_cli({"lock", "--nonblock", name, "--", "echo", "ran"});
  EXPECT_TRUE(refused.status.exited_with(EX_TEMPFAIL));
  EXPECT_EQ(refused.out, "");
  EXPECT_EQ(refused.err, "shmbox: lock '" + name + "': is held\n");
  const auto before = std::chrono::steady_clock::now();
  auto timed = shmbox_cli({"lock", "--timeout", "200ms", "--shared", name, "--", "echo", "ran"});
  EXPECT_TRUE(timed.status.exited_with(EX_TEMPFAIL));
  EXPECT_GE(std::chrono::steady_clock::now() - before, 200ms);
  EXPECT_EQ(timed.err, "shmbox: lock '" + name + "': timed out waiting for it\n");
}

TEST_F(LockCliTest, AfterAHolderDiedTheCommandIsToldAndItsSuccessRepairsTheLock) {
  // The holder (the shmbox process) is killed by its own command.
  auto killed = shmbox_cli({"lock", name, "--", "sh", "-c", "kill -9 $PPID"});
  EXPECT_TRUE(killed.status.killed_by(9)) << killed.status.describe();
  auto told = shmbox_cli({"lock", name, "--", "sh", "-c", "echo died=$SHMBOX_LOCK_OWNER_DIED"});
  EXPECT_TRUE(told.status.exited_with(0)) << told.err;
  EXPECT_EQ(told.out, "died=1\n");
  auto after = shmbox_cli({"lock", name, "--", "sh", "-c", "echo died=$SHMBOX_LOCK_OWNER_DIED"});
  EXPECT_TRUE(after.status.exited_with(0));
  EXPECT_EQ(after.out, "died=\n");  // repaired: nobody else is told
}

TEST_F(LockCliTest, ACommandThatFailsToRepairLeavesTheLockNotRecoverable) {
  auto killed = shmbox_cli({"lock", name, "--", "sh", "-c", "kill -9 $PPID"});
  EXPECT_TRUE(killed.status.killed_by(9));
  auto failed = shmbox_cli({"lock", name, "--", "sh", "-c", "exit 1"});
  EXPECT_TRUE(failed.status.exited_with(1));
  auto refused = shmbox_cli({"lock", name, "--", "echo", "ran"});
  EXPECT_TRUE(refused.status.exited_with(EX_DATAERR));
  EXPECT_EQ(refused.out, "");
  EXPECT_EQ(refused.err, "shmbox: lock '" + name +
                             "': a holder died holding it and the data it guards was never marked consistent "
                             "(remove the lock and create it again)\n");
  auto stat = shmbox_cli({"stat", "--lock", name, "--json"});
  ASSERT_TRUE(stat.status.exited_with(0)) << stat.err;
  EXPECT_EQ(nlohmann::json::parse(stat.out)["consistency"], "not_recoverable");
  auto removed = shmbox_cli({"lock", "--rm", name});
  EXPECT_TRUE(removed.status.exited_with(0)) << removed.err;
  auto fresh = shmbox_cli({"lock", name, "--", "echo", "ran"});
  EXPECT_TRUE(fresh.status.exited_with(0));
  EXPECT_EQ(fresh.out, "ran\n");
}

TEST_F(LockCliTest, LsAndStatShowHoldersAndWaiters) {
  // Held until the test has looked (however slow the machine), then let go.
  test::TemporaryDirectory directory;
  const std::string done = directory.path() + "/done";
  auto holder = test::ChildProcess::spawn([&] {
    return test::shmbox_cli({"lock", "--mode", "640", name, "--", "sh", "-c",
                             "until [ -e " + done + " ]; do sleep 0.02; done"})
                   .status.exited_with(0)
               ? 0
               : 1;
  });
  for (int i = 0; i < 200; ++i) {
    auto status = Lock::stat(name);
    if (status && !status->holders.empty()) break;
    std::this_thread::sleep_for(5ms);
  }
  auto waiter = test::ChildProcess::spawn([&] {
    return test::shmbox_cli({"lock", "--shared", name, "--", "true"}).status.exited_with(0) ? 0 : 1;
  });
  nlohmann::json row;
  for (int i = 0; i < 200; ++i) {
    auto listed = shmbox_cli({"ls", "--json"});
    ASSERT_TRUE(listed.status.exited_with(0)) << listed.err;
    for (const auto& entry : nlohmann::json::parse(listed.out)) {
      if (entry["kind"] == "lock" && entry["name"] == name) row = entry;
    }
    if (!row.is_null() && row["waiters"].size() == 1) break;
    std::this_thread::sleep_for(5ms);
  }
  ASSERT_FALSE(row.is_null());
  EXPECT_EQ(row["mode"], "0640");
  ASSERT_EQ(row["holders"].size(), 1u);
  EXPECT_EQ(row["holders"][0]["mode"], "exclusive");
  EXPECT_TRUE(row["holders"][0]["alive"].get<bool>());
  ASSERT_EQ(row["waiters"].size(), 1u);
  EXPECT_EQ(row["waiters"][0]["mode"], "shared");
  EXPECT_EQ(row["queued"], 1);
  auto text = shmbox_cli({"stat", "--lock", name});
  ASSERT_TRUE(text.status.exited_with(0)) << text.err;
  EXPECT_NE(text.out.find("  waiters       " + std::to_string(row["waiters"][0]["pid"].get<int>()) + " shared\n"),
            std::string::npos)
      << text.out;
  std::ofstream{done} << "done\n";
  EXPECT_TRUE(holder.wait().exited_with(0));
  EXPECT_TRUE(waiter.wait().exited_with(0));
}

TEST_F(LockCliTest, UsageAndCommandErrorsHaveTheirOwnCodes) {
  auto no_command = shmbox_cli({"lock", name});
  EXPECT_TRUE(no_command.status.exited_with(EX_USAGE));
  EXPECT_EQ(no_command.err, "shmbox: usage: lock NAME needs a command to run: lock NAME -- COMMAND\n");
  auto both = shmbox_cli({"lock", "--nonblock", "--timeout", "1s", name, "--", "true"});
  EXPECT_TRUE(both.status.exited_with(EX_USAGE));
  auto bad_timeout = shmbox_cli({"lock", "--timeout", "soon", name, "--", "true"});
  EXPECT_TRUE(bad_timeout.status.exited_with(EX_USAGE));
  EXPECT_EQ(bad_timeout.err.rfind("shmbox: --timeout 'soon': must be a duration", 0), 0u) << bad_timeout.err;
  auto rm_with_command = shmbox_cli({"lock", "--rm", name, "--", "true"});
  EXPECT_TRUE(rm_with_command.status.exited_with(EX_USAGE));
  auto missing = shmbox_cli({"lock", name, "--", "/nonexistent/command"});
  EXPECT_TRUE(missing.status.exited_with(127));
  EXPECT_EQ(missing.err, "shmbox: command '/nonexistent/command': No such file or directory\n");
  auto rm_missing = shmbox_cli({"lock", "--rm", name + "-never"});
  EXPECT_TRUE(rm_missing.status.exited_with(EX_NOINPUT));
  EXPECT_EQ(rm_missing.err,
            "shmbox: lock '" + name + "-never': cannot remove: does not exist (No such file or directory)\n");
  auto bad_name = shmbox_cli({"lock", "a/b", "--", "true"});
  EXPECT_TRUE(bad_name.status.exited_with(EX_USAGE));
}

}  // namespace
}  // namespace shmbox
