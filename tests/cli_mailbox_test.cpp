// The mailbox verbs of the shmbox tool: each verb's work and each error's exit code
// (sysexits.h) and one-line message.
#include <gtest/gtest.h>
#include <sysexits.h>
#include <unistd.h>

#include <signal.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <thread>

#include "shmbox/mailbox.hpp"
#include "shmbox/segment.hpp"
#include "support/cli.hpp"
#include "support/process.hpp"

namespace shmbox {
namespace {

using test::shmbox_cli;

class MailboxCliTest : public ::testing::Test {
 protected:
  void TearDown() override { (void)Mailbox::remove(name); }
  std::string name = test::unique_name("clibox");
  std::string object() const { return "shmbox: mailbox '" + name + "': "; }
};

TEST_F(MailboxCliTest, CreateSendReceiveStatRemove) {
  ASSERT_TRUE(shmbox_cli({"create", name, "--capacity", "8", "--max-size", "32", "--mode", "640"}).status.exited_with(EX_OK));
  ASSERT_TRUE(shmbox_cli({"send", name, "one", "two"}).status.exited_with(EX_OK));
  ASSERT_TRUE(shmbox_cli({"send", name}, "three\nfour\n").status.exited_with(EX_OK));
  auto stat = shmbox_cli({"stat", name, "--json"});
  ASSERT_TRUE(stat.status.exited_with(EX_OK));
  for (const char* field : {"\"capacity\":8", "\"max_message_size\":32", "\"queued\":4", "\"mode\":\"0640\"",
                            "\"buffering\":\"bounded\"", "\"closed\":false", "\"owner\":null"}) {
    EXPECT_NE(stat.out.find(field), std::string::npos) << field << " in " << stat.out;
  }
  auto received = shmbox_cli({"recv", name, "--count", "4"});
  EXPECT_TRUE(received.status.exited_with(EX_OK));
  EXPECT_EQ(received.out, "one\ntwo\nthree\nfour\n");
  auto list = shmbox_cli({"ls"});
  EXPECT_TRUE(list.status.exited_with(EX_OK));
  EXPECT_NE(list.out.find(name), std::string::npos);
  auto json = shmbox_cli({"ls", "--json"});
  EXPECT_NE(json.out.find("\"name\":\"" + name + "\""), std::string::npos) << json.out;
  EXPECT_TRUE(shmbox_cli({"rm", name}).status.exited_with(EX_OK));
  EXPECT_EQ(Mailbox::open(name).error().errc(), Errc::not_found);
}

TEST_F(MailboxCliTest, CapacityZeroCreatesARendezvousMailbox) {
  ASSERT_TRUE(shmbox_cli({"create", name, "--capacity", "0"}).status.exited_with(EX_OK));
  EXPECT_EQ(Mailbox::stat(name)->buffering, Buffering::zero);
  auto nobody = shmbox_cli({"send", name, "x", "--nonblock"});
  EXPECT_TRUE(nobody.status.exited_with(EX_TEMPFAIL));
  EXPECT_EQ(nobody.err, object() + "has no receiver waiting; nothing was sent\n");
}

TEST_F(MailboxCliTest, StatCountsStayTrueAfterAReceiverIsKilledAndSendsTimeOut) {
  ASSERT_TRUE(shmbox_cli({"create", name, "--capacity", "0"}).status.exited_with(EX_OK));
  test::Pipe progress;
  auto receiver = test::ChildProcess::spawn([&]() -> int {
    progress.send("starting");
    ::execl(SHMBOX_CLI_PATH, SHMBOX_CLI_PATH, "recv", name.c_str(), static_cast<char*>(nullptr));
    return 127;
  });
  ASSERT_EQ(progress.receive(), "starting");
  for (int i = 0; i < 100 && Mailbox::stat(name)->local()->receivers == 0; ++i) ::usleep(10'000);
  ASSERT_EQ(Mailbox::stat(name)->local()->receivers, 1u) << "the receiver never got into its receive";
  receiver.kill();
  ASSERT_TRUE(receiver.wait().killed_by(SIGKILL));
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(shmbox_cli({"send", name, "x", "--timeout", "5ms"}).status.exited_with(EX_TEMPFAIL));
  auto stat = shmbox_cli({"stat", name, "--json"});
  ASSERT_TRUE(stat.status.exited_with(EX_OK));
  for (const char* field : {"\"queued\":0", "\"attached\":0", "\"senders\":0", "\"receivers\":0"}) {
    EXPECT_NE(stat.out.find(field), std::string::npos) << field << " in " << stat.out;
  }
}

TEST_F(MailboxCliTest, ExistingNameExits73) {
  ASSERT_TRUE(Mailbox::create(name));
  auto result = shmbox_cli({"create", name});
  EXPECT_TRUE(result.status.exited_with(EX_CANTCREAT));
  EXPECT_EQ(result.err, object() + "cannot create: already exists (File exists)\n");
}

TEST_F(MailboxCliTest, MissingMailboxExits66ForEveryVerb) {
  for (std::vector<std::string> args : {std::vector<std::string>{"send", name, "x"}, {"recv", name}, {"stat", name},
                                        {"rm", name}}) {
    auto result = shmbox_cli(args);
    EXPECT_TRUE(result.status.exited_with(EX_NOINPUT)) << args[0];
    EXPECT_EQ(result.err.rfind(object(), 0), 0u) << result.err;
    EXPECT_NE(result.err.find("does not exist"), std::string::npos) << result.err;
  }
}

TEST_F(MailboxCliTest, BadArgumentsExit64) {
  auto bad_name = shmbox_cli({"create", "no/slash"});
  EXPECT_TRUE(bad_name.status.exited_with(EX_USAGE));
  EXPECT_EQ(bad_name.err,
            "shmbox: mailbox 'no/slash': name must be one path component (no '/' after the first character)\n");
  auto bad_mode = shmbox_cli({"create", name, "--mode", "8"});
  EXPECT_TRUE(bad_mode.status.exited_with(EX_USAGE));
  EXPECT_EQ(bad_mode.err, "shmbox: --mode '8': must be octal permission bits such as 600 or 0640\n");
  auto bad_timeout = shmbox_cli({"recv", name, "--timeout", "soon"});
  EXPECT_TRUE(bad_timeout.status.exited_with(EX_USAGE));
  EXPECT_EQ(bad_timeout.err, "shmbox: --timeout 'soon': must be a duration: a number and one of us, ms, s, m, h (250ms, 2s, 1.5m), at most 1000000h\n");
  EXPECT_TRUE(shmbox_cli({"create", name, "--capacity", "-1"}).status.exited_with(EX_USAGE));
  EXPECT_TRUE(shmbox_cli({"create", name, "--capacity", "2", "--unbounded"}).status.exited_with(EX_USAGE));
  EXPECT_TRUE(shmbox_cli({"recv", name, "--nonblock", "--timeout", "1s"}).status.exited_with(EX_USAGE));
  EXPECT_TRUE(shmbox_cli({"recv", name, "--count", "0"}).status.exited_with(EX_USAGE));
  EXPECT_TRUE(shmbox_cli({"create", name, "--max-size", "2000000000"}).status.exited_with(EX_USAGE));
}

TEST_F(MailboxCliTest, InvalidNameExits64ForEveryVerb) {
  for (std::vector<std::string> args : {std::vector<std::string>{"send", "a b", "x"}, {"recv", "a b"}, {"stat", "a b"},
                                        {"rm", "a b"}, {"create", "a b"}}) {
    auto result = shmbox_cli(args);
    EXPECT_TRUE(result.status.exited_with(EX_USAGE)) << args[0];
    EXPECT_EQ(result.err, "shmbox: mailbox 'a b': name may contain only letters, digits, '.', '_' and '-'\n") << args[0];
  }
}

TEST_F(MailboxCliTest, OversizedMessageExits65) {
  ASSERT_TRUE(Mailbox::create(name, {.max_message_size = 4}));
  auto result = shmbox_cli({"send", name, "12345"});
  EXPECT_TRUE(result.status.exited_with(EX_DATAERR));
  EXPECT_EQ(result.err, object() + "message of 5 bytes is over the mailbox's maximum of 4\n");
}

TEST_F(MailboxCliTest, ClosedMailboxExits69) {
  auto box = Mailbox::create(name);
  ASSERT_TRUE(box);
  ASSERT_TRUE(box->close());
  auto result = shmbox_cli({"send", name, "x"});
  EXPECT_TRUE(result.status.exited_with(EX_UNAVAILABLE));
  EXPECT_EQ(result.err, object() + "is closed\n");
  EXPECT_TRUE(shmbox_cli({"recv", name}).status.exited_with(EX_UNAVAILABLE));
}

TEST_F(MailboxCliTest, WouldBlockAndTimeoutExit75) {
  ASSERT_TRUE(Mailbox::create(name, {.capacity = 1}));
  auto empty = shmbox_cli({"recv", name, "--nonblock"});
  EXPECT_TRUE(empty.status.exited_with(EX_TEMPFAIL));
  EXPECT_EQ(empty.err, object() + "is empty\n");
  auto late = shmbox_cli({"recv", name, "--timeout", "50ms"});
  EXPECT_TRUE(late.status.exited_with(EX_TEMPFAIL));
  EXPECT_EQ(late.err, object() + "timed out\n");
  ASSERT_TRUE(shmbox_cli({"send", name, "fill"}).status.exited_with(EX_OK));
  auto full = shmbox_cli({"send", name, "more", "--timeout", "50ms"});
  EXPECT_TRUE(full.status.exited_with(EX_TEMPFAIL));
  EXPECT_EQ(full.err, object() + "timed out\n");
}

TEST_F(MailboxCliTest, StatOfACorruptMailboxSaysSoAndExits65) {
  ASSERT_TRUE(Mailbox::create(name));
  auto raw = Segment::open("shmbox.mb." + name, Access::read_write);
  ASSERT_TRUE(raw);
  std::memset(raw->writable_bytes()->data(), 0xff, 64);
  auto result = shmbox_cli({"stat", name});
  EXPECT_TRUE(result.status.exited_with(EX_DATAERR));
  EXPECT_EQ(result.err, object() + "is not a mailbox (bad magic number)\n");
  auto list = shmbox_cli({"ls"});
  EXPECT_TRUE(list.status.exited_with(EX_OK));
  EXPECT_NE(list.out.find("is not a mailbox (bad magic number)"), std::string::npos) << list.out;
}

TEST_F(MailboxCliTest, WrongLayoutVersionExits65ForEveryVerb) {
  ASSERT_TRUE(Mailbox::create(name));
  auto raw = Segment::open("shmbox.mb." + name, Access::read_write);
  ASSERT_TRUE(raw);
  const std::uint32_t version = 7;
  std::memcpy(raw->writable_bytes()->data() + 8, &version, sizeof version);
  for (std::vector<std::string> args : {std::vector<std::string>{"send", name, "x"}, {"recv", name, "--nonblock"},
                                        {"stat", name}}) {
    auto result = shmbox_cli(args);
    EXPECT_TRUE(result.status.exited_with(EX_DATAERR)) << args[0];
    EXPECT_EQ(result.err, object() + "has layout version 7; this build reads version 5\n") << args[0];
  }
  EXPECT_TRUE(shmbox_cli({"rm", name}).status.exited_with(EX_OK));  // it can still be removed
}

TEST_F(MailboxCliTest, AGarbageOwnerRecordExits65AndTheMailboxKeepsItsMessages) {
  ASSERT_TRUE(shmbox_cli({"create", name}).status.exited_with(EX_OK));
  ASSERT_TRUE(shmbox_cli({"send", name, "kept"}).status.exited_with(EX_OK));
  auto raw = Segment::open("shmbox.mb." + name, Access::read_write);
  ASSERT_TRUE(raw);
  const std::uint64_t garbage = 4321;  // Header::owner, offset 344: a pid with no start time
  std::memcpy(raw->writable_bytes()->data() + 344, &garbage, sizeof garbage);
  for (std::vector<std::string> args : {std::vector<std::string>{"send", name, "x"}, {"recv", name, "--nonblock"},
                                        {"stat", name}}) {
    auto result = shmbox_cli(args);
    EXPECT_TRUE(result.status.exited_with(EX_DATAERR)) << args[0];
    EXPECT_EQ(result.err, object() + "has a corrupt owner record: process 4321 has no start time\n") << args[0];
  }
  const std::uint64_t system = 0;
  std::memcpy(raw->writable_bytes()->data() + 344, &system, sizeof system);
  auto received = shmbox_cli({"recv", name, "--nonblock"});
  EXPECT_TRUE(received.status.exited_with(EX_OK)) << received.err;
  EXPECT_EQ(received.out, "kept\n");
}

TEST_F(MailboxCliTest, LsShowsOwnersAndGcRemovesWhatKilledOwnersLeft) {
  if (!test::running_as_root()) GTEST_SKIP() << "needs root for a private /dev/shm";
  // In a private /dev/shm: gc must not reach other tests' leftovers.
  auto child = test::ChildProcess::spawn([&]() -> int {
    if (!test::private_dev_shm("16m")) return 10;
    if (!shmbox_cli({"create", name + "-system"}).status.exited_with(EX_OK)) return 1;
    test::Pipe progress;
    auto owner = test::ChildProcess::spawn([&]() -> int {
      auto box = Mailbox::create(name);
      progress.send(box ? "created" : "failed");
      for (;;) ::pause();
    });
    if (progress.receive() != "created") return 2;
    const std::string alive = std::to_string(owner.pid()) + " (shmbox_tests)";
    auto listed = shmbox_cli({"ls"});
    if (listed.out.find(alive) == std::string::npos || listed.out.find("system") == std::string::npos) {
      std::fprintf(stderr, "%s", listed.out.c_str());
      return 3;
    }
    owner.kill();
    if (!owner.wait().killed_by(SIGKILL)) return 4;
    listed = shmbox_cli({"ls"});
    if (listed.out.find(std::to_string(owner.pid()) + " (exited)") == std::string::npos) return 5;
    auto collected = shmbox_cli({"gc"});
    if (!collected.status.exited_with(EX_OK)) return 6;
    const std::string expected =
        "removed mailbox '" + name + "': its owner, process " + std::to_string(owner.pid()) + ", had exited\n";
    if (collected.out != expected) {
      std::fprintf(stderr, "%s", collected.out.c_str());
      return 7;
    }
    if (shmbox_cli({"gc"}).out != "nothing to remove\n") return 8;
    return shmbox_cli({"stat", name + "-system"}).status.exited_with(EX_OK) ? 0 : 9;
  });
  const auto status = child.wait();
  if (status.exited_with(10)) GTEST_SKIP() << "cannot mount a private /dev/shm here";
  EXPECT_TRUE(status.exited_with(0)) << status.describe();
}

TEST_F(MailboxCliTest, AMailboxFileLeftEmptyExits75ThenExits65AndGcRemovesIt) {
  if (!test::running_as_root()) GTEST_SKIP() << "needs root for a private /dev/shm";
  // In a private /dev/shm: gc must not reach other tests' leftovers.
  auto child = test::ChildProcess::spawn([&]() -> int {
    if (!test::private_dev_shm("16m")) return 10;
    if (!shmbox_cli({"create", name}).status.exited_with(EX_OK)) return 1;
    if (::truncate(("/dev/shm/shmbox.mb." + name).c_str(), 0) != 0) return 2;
    auto young = shmbox_cli({"stat", name});
    if (!young.status.exited_with(EX_TEMPFAIL) || young.err != object() + "is empty: its creator has not sized it yet\n") {
      std::fprintf(stderr, "%s", young.err.c_str());
      return 3;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds{2200});
    for (std::vector<std::string> args : {std::vector<std::string>{"send", name, "x"}, {"recv", name, "--nonblock"},
                                          {"stat", name}}) {
      auto result = shmbox_cli(args);
      if (!result.status.exited_with(EX_DATAERR) ||
          result.err != object() + "is empty (0 bytes) and has been for over 2 s: it was truncated, or its creator is gone\n") {
        std::fprintf(stderr, "%s: %s", args[0].c_str(), result.err.c_str());
        return 4;
      }
    }
    auto collected = shmbox_cli({"gc"});
    if (!collected.status.exited_with(EX_OK) || collected.out.rfind("removed mailbox '" + name + "'", 0) != 0) {
      std::fprintf(stderr, "%s", collected.out.c_str());
      return 5;
    }
    if (std::filesystem::exists("/dev/shm/shmbox.mb." + name)) return 6;
    return shmbox_cli({"gc"}).out == "nothing to remove\n" ? 0 : 7;
  });
  const auto status = child.wait();
  if (status.exited_with(10)) GTEST_SKIP() << "cannot mount a private /dev/shm here";
  EXPECT_TRUE(status.exited_with(0)) << status.describe();
}

TEST_F(MailboxCliTest, AnotherUserExits77) {
  if (!test::running_as_root()) GTEST_SKIP() << "needs root to switch to another uid";
  ASSERT_TRUE(Mailbox::create(name));
  const test::TemporaryDirectory public_dir{0755};
  const std::string cli = public_dir.path() + "/shmbox";
  std::filesystem::copy_file(SHMBOX_CLI_PATH, cli);
  auto child = test::ChildProcess::spawn([&] {
    if (!test::drop_privileges()) return 10;
    for (const char* verb : {"send", "recv", "stat", "rm"}) {
      auto result = test::run_command({cli, verb, name, "--nonblock"});
      if (std::string{verb} == "stat" || std::string{verb} == "rm") result = test::run_command({cli, verb, name});
      if (!result.status.exited_with(EX_NOPERM)) return 1;
      if (result.err.find(object()) != 0 || result.err.find("permission denied") == std::string::npos) return 2;
    }
    return 0;
  });
  const auto status = child.wait();
  if (status.exited_with(10)) GTEST_SKIP() << "cannot switch to uid 65534 here";
  EXPECT_TRUE(status.exited_with(0)) << status.describe();
}

TEST_F(MailboxCliTest, AnotherUsersRefusedRmLeavesTheMailboxOpenWithItsMessages) {
  if (!test::running_as_root()) GTEST_SKIP() << "needs root to switch to another uid";
  ASSERT_TRUE(shmbox_cli({"create", name, "--mode", "666"}).status.exited_with(EX_OK));
  ASSERT_TRUE(shmbox_cli({"send", name, "kept"}).status.exited_with(EX_OK));
  const test::TemporaryDirectory public_dir{0755};
  const std::string cli = public_dir.path() + "/shmbox";
  std::filesystem::copy_file(SHMBOX_CLI_PATH, cli);
  auto child = test::ChildProcess::spawn([&] {
    if (!test::drop_privileges()) return 10;
    auto refused = test::run_command({cli, "rm", name});
    if (!refused.status.exited_with(EX_NOPERM)) return 1;
    if (refused.err != object() + "cannot remove: permission denied (Operation not permitted)\n") return 2;
    // The mode lets it send: the mailbox is still open.
    return test::run_command({cli, "send", name, "after"}).status.exited_with(EX_OK) ? 0 : 3;
  });
  const auto status = child.wait();
  if (status.exited_with(10)) GTEST_SKIP() << "cannot switch to uid 65534 here";
  ASSERT_TRUE(status.exited_with(0)) << status.describe();
  auto received = shmbox_cli({"recv", name, "--count", "2"});
  EXPECT_TRUE(received.status.exited_with(EX_OK)) << received.err;
  EXPECT_EQ(received.out, "kept\nafter\n");
}

}  // namespace
}  // namespace shmbox
