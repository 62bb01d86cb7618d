// What a script relies on from the tool: a message leaves its mailbox only once written
// out; a partial send says what went; malformed values are one-line usage errors;
// input is read in bounded memory; binary data survives; close, wait, owned mailboxes.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <signal.h>
#include <sysexits.h>
#include <unistd.h>

#include <fstream>
#include <set>
#include <thread>

#include "shmbox/endpoint.hpp"
#include "shmbox/board.hpp"
#include "shmbox/lock.hpp"
#include "shmbox/mailbox.hpp"
#include "shmbox/topic.hpp"
#include "shmbox/segment.hpp"
#include "support/cli.hpp"
#include "support/process.hpp"
#include "support/text.hpp"

namespace shmbox {
namespace {

using namespace std::chrono_literals;
using test::shell;
using test::shmbox_cli;

class CliScriptTest : public ::testing::Test {
 protected:
  void TearDown() override { (void)Mailbox::remove(name); }
  void create(std::vector<std::string> options = {}) {
    options.insert(options.begin(), {"create", name});
    auto made = shmbox_cli(options);
    ASSERT_TRUE(made.status.exited_with(EX_OK)) << made.err;
  }
  std::uint64_t queued() { return Mailbox::stat(name)->queued; }
  std::string object() const { return "shmbox: mailbox '" + name + "': "; }

  std::string name = test::unique_name("cliscript");
};

TEST_F(CliScriptTest, AMessageWhoseWriteFailsStaysQueued) {
  create();
  ASSERT_TRUE(shmbox_cli({"send", name, "hello", "world"}).status.exited_with(EX_OK));
  auto full = shell("$SHMBOX recv " + name + " > /dev/full");
  EXPECT_TRUE(full.status.exited_with(EX_IOERR)) << full.status.describe();
  EXPECT_EQ(full.err, "shmbox: stdout: No space left on device; 0 of 1 message written, the message not written "
                      "stays queued in mailbox '" + name + "'\n");
  EXPECT_EQ(queued(), 2u);
  auto both = shmbox_cli({"recv", name, "--count", "2"});
  EXPECT_EQ(both.out, "hello\nworld\n");  // in order: the one put back came first
}

TEST_F(CliScriptTest, EveryCommandThatPrintsFailsWith74OnAFullDisk) {
  create();
  auto segment = Segment::create(name, 64);
  ASSERT_TRUE(segment);
  for (const std::string& command : std::vector<std::string>{"stat " + name, "stat --json " + name, "ls", "ls --json", "gc",
                                    "segment read " + name, "segment stat " + name, "segment ls"}) {
    auto result = shell("$SHMBOX " + command + " > /dev/full");
    EXPECT_TRUE(result.status.exited_with(EX_IOERR)) << command << ": " << result.status.describe();
    EXPECT_EQ(result.err, "shmbox: stdout: No space left on device\n") << command;
  }
  EXPECT_TRUE(Segment::remove(name));
}

TEST_F(CliScriptTest, ReceivingIntoAPipeThatClosesTakesOnlyWhatWasRead) {
  create();
  for (int i = 0; i < 50; ++i) ASSERT_TRUE(shmbox_cli({"send", name, std::to_string(i)}).status.exited_with(EX_OK));
  auto first = shell("$SHMBOX recv " + name + " --count 50 | head -1");
  EXPECT_EQ(first.out, "0\n");
  EXPECT_EQ(queued(), 49u);
  auto two = shell("$SHMBOX recv " + name + " --count 3 | head -2");
  EXPECT_EQ(two.out, "1\n2\n");
  EXPECT_EQ(queued(), 47u);
}

TEST_F(CliScriptTest, ThePipeReadersExitIsReportedWithHowManyWereWritten) {
  create();
  ASSERT_TRUE(shmbox_cli({"send", name, "a", "b", "c"}).status.exited_with(EX_OK));
  auto result = shell("$SHMBOX recv " + name + " --count 3 2>/tmp/err.$$ | head -1 >/dev/null; "
                      "cat /tmp/err.$$ >&2; rm -f /tmp/err.$$");
  EXPECT_EQ(result.err, "shmbox: stdout: closed by its reader; 1 of 3 messages written, the messages not written "
                        "stay queued in mailbox '" + name + "'\n");
  EXPECT_EQ(queued(), 2u);
}

TEST_F(CliScriptTest, APartialSendSaysHowManyWentAndWhichWasFirstToFail) {
  create({"--capacity", "2"});
  auto from_stdin = shmbox_cli({"send", name, "--nonblock"}, "a\nb\nc\nd\n");
  EXPECT_TRUE(from_stdin.status.exited_with(EX_TEMPFAIL));
  EXPECT_EQ(from_stdin.err, object() + "is full; 2 messages sent, message 3 and the rest of standard input were not\n");
  EXPECT_EQ(shmbox_cli({"recv", name, "--count", "2"}).out, "a\nb\n");
  ASSERT_TRUE(shmbox_cli({"send", name, "x"}).status.exited_with(EX_OK));
  auto from_arguments = shmbox_cli({"send", name, "--nonblock", "y", "z", "w"});
  EXPECT_TRUE(from_arguments.status.exited_with(EX_TEMPFAIL));
  EXPECT_EQ(from_arguments.err, object() + "is full; 1 of 3 were sent, message 2 and those after it were not\n");
  auto nothing = shmbox_cli({"send", name, "--nonblock"}, "q\n");
  EXPECT_EQ(nothing.err, object() + "is full; nothing was sent\n");
  EXPECT_EQ(queued(), 2u);
}

TEST_F(CliScriptTest, MalformedDurationsSizesAndCountsAreUsageErrors) {
  create();
  const std::string duration_form =
      "must be a duration: a number and one of us, ms, s, m, h (250ms, 2s, 1.5m), at most 1000000h\n";
  for (const std::string bad : {"", "infs", "1e300s", "nanms", "-1s", "5", "1.s", "2000000h", "0x10s"}) {
    auto result = shmbox_cli({"recv", name, "--timeout", bad});
    EXPECT_TRUE(result.status.exited_with(EX_USAGE)) << bad << ": " << result.status.describe();
    EXPECT_EQ(result.err, "shmbox: --timeout '" + bad + "': " + duration_form) << bad;
  }
  const std::string size_form = "must be a whole number of bytes with an optional unit B, KiB, MiB or GiB "
                                "(4096, 64KiB, 1MiB), at most 4294967295\n";
  for (const std::string bad : {"", "12XB", "-1", "1.5B", "4GiB", "1e3", "64kib"}) {
    auto result = shmbox_cli({"create", name + "-x", "--max-size", bad});
    EXPECT_TRUE(result.status.exited_with(EX_USAGE)) << bad;
    EXPECT_EQ(result.err, "shmbox: --max-size '" + bad + "': " + size_form) << bad;
  }
  for (const std::string bad : {"0", "abc", "-3", "+3", "1.0", "99999999999999999999"}) {
    auto result = shmbox_cli({"recv", name, "--count", bad});
    EXPECT_TRUE(result.status.exited_with(EX_USAGE)) << bad;
    EXPECT_EQ(result.err, "shmbox: --count '" + bad + "': must be a whole number from 1 to 4611686018427387904\n");
  }
  auto capacity = shmbox_cli({"create", name + "-x", "--capacity", "4294967296"});
  EXPECT_EQ(capacity.err, "shmbox: --capacity '4294967296': must be a whole number from 0 to 4294967295\n");
  EXPECT_EQ(Mailbox::open(name + "-x").error().errc(), Errc::not_found);  // nothing was created
}

TEST_F(CliScriptTest, SizesTakeUnitsAndTimeoutsTakeFractions) {
  ASSERT_TRUE(shmbox_cli({"create", name, "--max-size", "64KiB"}).status.exited_with(EX_OK));
  EXPECT_EQ(Mailbox::stat(name)->max_message_size, 64u * 1024);
  auto waited = shmbox_cli({"recv", name, "--timeout", "0.25s"});
  EXPECT_TRUE(waited.status.exited_with(EX_TEMPFAIL));
  EXPECT_EQ(waited.err, object() + "timed out\n");
}

TEST_F(CliScriptTest, ParseErrorsAreOneLineAndExit64) {
  for (const std::vector<std::string>& args : std::vector<std::vector<std::string>>{std::vector<std::string>{}, {"recv", name, "--bogus"}, {"frobnicate"},
                                              {"create"}, {"send", name, "--timeout"}}) {
    auto result = shmbox_cli(args);
    EXPECT_TRUE(result.status.exited_with(EX_USAGE)) << result.err;
    EXPECT_EQ(result.err.rfind("shmbox: usage: ", 0), 0u) << result.err;
    EXPECT_EQ(std::count(result.err.begin(), result.err.end(), '\n'), 1) << result.err;
  }
  auto help = shmbox_cli({"--help"});
  EXPECT_TRUE(help.status.exited_with(EX_OK));
  for (const char* line : {"   64  usage:", "   65  data:", "   74  output or input:", "   75  try again:"}) {
    EXPECT_NE(help.out.find(line), std::string::npos) << line;
  }
}

// A line longer than the mailbox's maximum is refused once it passes it: the tool reads
// a bounded amount, however much the writer offers.
TEST_F(CliScriptTest, AnOverlongLineIsRefusedAfterABoundedRead) {
  create({"--max-size", "4KiB"});
  test::Pipe unused;  // keep descriptor numbers apart from the pipe below
  int input[2];
  ASSERT_EQ(::pipe(input), 0);
  auto sender = test::ChildProcess::spawn([&] {
    ::dup2(input[0], STDIN_FILENO);
    ::close(input[1]);
    ::execl(SHMBOX_CLI_PATH, SHMBOX_CLI_PATH, "send", name.c_str(), nullptr);
    return 127;
  });
  ::close(input[0]);
  const auto previous = ::signal(SIGPIPE, SIG_IGN);
  const std::string chunk(64 * 1024, 'a');
  std::uint64_t offered = 0;
  while (offered < 300'000'000) {
    const ssize_t written = ::write(input[1], chunk.data(), chunk.size());
    if (written <= 0) break;
    offered += static_cast<std::uint64_t>(written);
  }
  ::close(input[1]);
  ::signal(SIGPIPE, previous);
  EXPECT_TRUE(sender.wait().exited_with(EX_DATAERR));
  EXPECT_LT(offered, 1'000'000u);  // the reader's buffer and the pipe's, not 300 MB
  EXPECT_EQ(queued(), 0u);
}

TEST_F(CliScriptTest, BinaryMessagesSurviveFileNulJsonAndRaw) {
  create({"--max-size", "1KiB"});
  test::TemporaryDirectory directory;
  const std::string path = directory.path() + "/blob";
  const std::string blob{"\0\x01\xff\nline\0end", 12};
  std::ofstream{path, std::ios::binary} << blob;
  ASSERT_TRUE(shmbox_cli({"send", name, "--file", path}).status.exited_with(EX_OK));
  auto raw = shmbox_cli({"recv", name, "--raw"});
  EXPECT_EQ(raw.out, blob);

  ASSERT_TRUE(shmbox_cli({"send", name, "--null"}, std::string{"one\ntwo\0three\0", 14}).status.exited_with(EX_OK));
  EXPECT_EQ(queued(), 2u);
  EXPECT_EQ(shmbox_cli({"recv", name, "--null", "--count", "2"}).out, std::string("one\ntwo\0three\0", 14));

  ASSERT_TRUE(shmbox_cli({"send", name, "--file", path}).status.exited_with(EX_OK));
  auto json = shmbox_cli({"recv", name, "--json"});
  EXPECT_EQ(json.out, "{\"data\":\"AAH/CmxpbmUAZW5k\",\"mailbox\":\"" + name + "\",\"sequence\":3,\"size\":12}\n");

  auto missing = shmbox_cli({"send", name, "--file", directory.path() + "/none"});
  EXPECT_TRUE(missing.status.exited_with(EX_NOINPUT));
  EXPECT_EQ(missing.err, "shmbox: file '" + directory.path() + "/none': cannot read: No such file or directory\n");
  auto raw_many = shmbox_cli({"recv", name, "--raw", "--count", "2"});
  EXPECT_TRUE(raw_many.status.exited_with(EX_USAGE));
  EXPECT_EQ(raw_many.err, "shmbox: usage: recv --raw writes exactly one message; it takes no --count\n");
}

TEST_F(CliScriptTest, AFileOverTheMaximumIsRefusedAndNothingIsSent) {
  create({"--max-size", "8"});
  test::TemporaryDirectory directory;
  const std::string path = directory.path() + "/big";
  std::ofstream{path} << std::string(9, 'x');
  auto result = shmbox_cli({"send", name, "--file", path});
  EXPECT_TRUE(result.status.exited_with(EX_DATAERR));
  EXPECT_EQ(result.err, "shmbox: file '" + path + "': holds a message longer than the maximum of 8 bytes\n");
  EXPECT_EQ(queued(), 0u);
}

TEST_F(CliScriptTest, CloseLetsReceiversDrainAndRefusesSenders) {
  create();
  ASSERT_TRUE(shmbox_cli({"send", name, "last"}).status.exited_with(EX_OK));
  ASSERT_TRUE(shmbox_cli({"close", name}).status.exited_with(EX_OK));
  auto refused = shmbox_cli({"send", name, "more"});
  EXPECT_TRUE(refused.status.exited_with(EX_UNAVAILABLE));
  EXPECT_EQ(refused.err, object() + "is closed\n");
  EXPECT_EQ(shmbox_cli({"recv", name}).out, "last\n");
  auto drained = shmbox_cli({"recv", name});
  EXPECT_TRUE(drained.status.exited_with(EX_UNAVAILABLE));
  EXPECT_EQ(drained.err, object() + "is closed\n");
}

TEST_F(CliScriptTest, WaitReturnsOnceTheMailboxExistsOrTimesOut) {
  auto late = shmbox_cli({"wait", name, "--timeout", "100ms"});
  EXPECT_TRUE(late.status.exited_with(EX_TEMPFAIL));
  EXPECT_EQ(late.err, object() + "did not appear in time (cannot open: does not exist)\n");
  auto waiter = test::ChildProcess::spawn([&] {
    auto waited = shmbox_cli({"wait", name, "--timeout", "10s"});
    return waited.status.exited_with(EX_OK) ? 0 : 1;
  });
  std::this_thread::sleep_for(200ms);
  create();
  EXPECT_TRUE(waiter.wait(10s).exited_with(0));
}

TEST_F(CliScriptTest, AMailboxOwnedByAProcessGoesWithIt) {
  auto owner = test::ChildProcess::spawn([] {
    ::pause();
    return 0;
  });
  create({"--owner-pid", std::to_string(owner.pid())});
  auto status = Mailbox::stat(name);
  ASSERT_TRUE(status);
  EXPECT_EQ(status->ownership, Ownership::process);
  EXPECT_EQ(status->owner_pid, owner.pid());
  owner.kill();
  (void)owner.wait();
  auto gone = shmbox_cli({"send", name, "x"});
  EXPECT_TRUE(gone.status.exited_with(EX_NOINPUT));

  // --process: the shell that ran it.
  auto scripted = shell("$SHMBOX create --process " + name + " && $SHMBOX stat --json " + name);
  EXPECT_NE(scripted.out.find("\"owner\":{\"alive\":true"), std::string::npos) << scripted.out;
  EXPECT_EQ(Mailbox::open(name).error().errc(), Errc::not_found);  // the shell has exited

  auto nobody = shmbox_cli({"create", name, "--owner-pid", "999999999"});
  EXPECT_TRUE(nobody.status.exited_with(EX_USAGE));
  EXPECT_EQ(nobody.err, object() + "its owner, process 999999999, is not running\n");
}

TEST_F(CliScriptTest, SegmentsAreListedAndEndpointsStated) {
  auto segment = Segment::create(name, 4096);
  ASSERT_TRUE(segment);
  auto listed = shmbox_cli({"segment", "ls", "--json"});
  EXPECT_NE(listed.out.find("{\"gid\":0,\"kind\":\"segment\",\"mode\":\"0600\",\"name\":\"" + name + "\",\"size\":4096"),
            std::string::npos)
      << listed.out;
  create();
  EXPECT_EQ(shmbox_cli({"segment", "ls"}).out.find(" " + name + "\n"), std::string::npos);  // a mailbox is not one
  EXPECT_TRUE(Segment::remove(name));

  auto endpoint = Endpoint::join(name + "-ep");
  ASSERT_TRUE(endpoint);
  auto stat = shmbox_cli({"stat", "--endpoint", name + "-ep", "--json"});
  EXPECT_TRUE(stat.status.exited_with(EX_OK)) << stat.err;
  EXPECT_NE(stat.out.find("\"kind\":\"endpoint\""), std::string::npos) << stat.out;
  EXPECT_NE(stat.out.find("\"receivers\":1"), std::string::npos) << stat.out;
}

// docs/cli.md, JSON schema: every object has every key, ls and stat give the same object
// for the same mailbox or endpoint, and a key that does not apply is null.
TEST_F(CliScriptTest, LsAndStatShareOneJsonSchema) {
  const std::set<std::string> keys{"kind",     "name",      "transport", "owner",    "buffering", "capacity",
                                   "max_message_size", "queued", "in_flight", "closed", "mode",   "uid",
                                   "attached", "senders",   "receivers", "memory_bytes", "replicas", "peers",
                                   "max_peers", "holders", "waiters", "consistency", "version", "value_size", "views",
                                   "overflow", "history", "published", "publishers", "subscribers"};
  const auto keys_of = [](const nlohmann::json& object) {
    std::set<std::string> found;
    for (const auto& [key, value] : object.items()) found.insert(key);
    return found;
  };
  const auto listed_as = [](const std::string& kind, const std::string& object_name) {
    auto listing = nlohmann::json::parse(shmbox_cli({"ls", "--json"}).out);
    for (const auto& object : listing) {
      if (object["kind"] == kind && object["name"] == object_name) return object;
    }
    return nlohmann::json{};
  };
  create({"--capacity", "8", "--max-size", "1KiB"});
  ASSERT_TRUE(shmbox_cli({"send", name, "one", "two"}).status.exited_with(EX_OK));
  const auto stat = nlohmann::json::parse(shmbox_cli({"stat", name, "--json"}).out);
  EXPECT_EQ(keys_of(stat), keys);
  EXPECT_EQ(listed_as("mailbox", name), stat);
  EXPECT_EQ(stat["transport"], "local");
  EXPECT_EQ(stat["queued"], 2);
  EXPECT_EQ(stat["max_message_size"], 1024);
  EXPECT_TRUE(stat["replicas"].is_null());
  EXPECT_TRUE(stat["peers"].is_null());

  const std::string endpoint_name = name + "-ep";
  auto endpoint = Endpoint::join(endpoint_name);
  ASSERT_TRUE(endpoint);
  const auto endpoint_stat = nlohmann::json::parse(shmbox_cli({"stat", "--endpoint", endpoint_name, "--json"}).out);
  EXPECT_EQ(keys_of(endpoint_stat), keys);
  EXPECT_EQ(listed_as("endpoint", endpoint_name), endpoint_stat);
  EXPECT_EQ(endpoint_stat["owner"]["pid"], ::getpid());
  EXPECT_TRUE(endpoint_stat["peers"].is_array());

  const std::string lock_name = name + "-lock";
  ASSERT_TRUE(Lock::create(lock_name).has_value());
  const auto lock_stat = nlohmann::json::parse(shmbox_cli({"stat", "--lock", lock_name, "--json"}).out);
  EXPECT_EQ(keys_of(lock_stat), keys);
  EXPECT_EQ(listed_as("lock", lock_name), lock_stat);
  EXPECT_TRUE(lock_stat["holders"].is_array());
  EXPECT_EQ(lock_stat["consistency"], "consistent");
  (void)Lock::remove(lock_name);

  const std::string board_name = name + "-board";
  ASSERT_TRUE(Board::create(board_name).has_value());
  const auto board_stat = nlohmann::json::parse(shmbox_cli({"stat", "--board", board_name, "--json"}).out);
  EXPECT_EQ(keys_of(board_stat), keys);
  EXPECT_EQ(listed_as("board", board_name), board_stat);
  EXPECT_EQ(board_stat["version"], 0);
  EXPECT_EQ(board_stat["owner"]["pid"], ::getpid());
  EXPECT_TRUE(board_stat["subscribers"].is_null());
  (void)Board::remove(board_name);

  const std::string topic_name = name + "-topic";
  ASSERT_TRUE(Topic::create(topic_name, {.ownership = Ownership::system}).has_value());
  const auto topic_stat = nlohmann::json::parse(shmbox_cli({"stat", "--topic", topic_name, "--json"}).out);
  EXPECT_EQ(keys_of(topic_stat), keys);
  EXPECT_EQ(listed_as("topic", topic_name), topic_stat);
  EXPECT_TRUE(topic_stat["subscribers"].is_array());
  EXPECT_TRUE(topic_stat["queued"].is_null());
  (void)Topic::remove(topic_name);
}

}  // namespace
}  // namespace shmbox
