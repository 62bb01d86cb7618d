// shmbox topic: create (options and their refusals), pub (arguments, stdin lines, NUL
// records, partial success), sub (history, --count, framings, losses told on stderr, a
// topic removed under it, an output that fails), rm; and what stat and ls show.
#include <gtest/gtest.h>
#include <sysexits.h>

#include <unistd.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <sstream>

#include "shmbox/topic.hpp"
#include "support/cli.hpp"
#include "support/nats_test.hpp"
#include "support/process.hpp"

namespace shmbox {
namespace {

using test::shell;
using test::shmbox_cli;

class TopicCliTest : public ::testing::Test {
 protected:
  void TearDown() override { (void)Topic::remove(name); }
  std::string name = test::unique_name("clitopic");
  std::string object() const { return "topic '" + name + "'"; }
  // A shell line that waits until the topic has `count` subscribers.
  std::string until_subscribers(int count) const {
    return "until [ \"$($SHMBOX stat --topic " + name + " --json | grep -o '\"lag\"' | wc -l)\" -ge " +
           std::to_string(count) + " ]; do sleep 0.02; done; ";
  }
};

TEST_F(TopicCliTest, EverySubscriberGetsEveryMessageInOrder) {
  ASSERT_TRUE(shmbox_cli({"topic", "create", name}).status.exited_with(EX_OK));
  auto run = shell("$SHMBOX topic sub " + name + " --count 4 > one & a=$!; "
                   "$SHMBOX topic sub " + name + " --count 4 > two & b=$!; " + until_subscribers(2) +
                   "$SHMBOX topic pub " + name + " first second && printf 'third\\nfourth\\n' | $SHMBOX topic pub " +
                   name + " && wait $a && wait $b && cat one two && rm one two");
  EXPECT_TRUE(run.status.exited_with(EX_OK)) << run.err;
  EXPECT_EQ(run.out, "first\nsecond\nthird\nfourth\nfirst\nsecond\nthird\nfourth\n");
  EXPECT_EQ(run.err, "");
}

TEST_F(TopicCliTest, HistoryIsWhatALateSubscriberAsksForUpToWhatTheTopicKeeps) {
  ASSERT_TRUE(shmbox_cli({"topic", "create", name, "--capacity", "8", "--history", "3"}).status.exited_with(EX_OK));
  ASSERT_TRUE(shmbox_cli({"topic", "pub", name, "1", "2", "3", "4", "5"}).status.exited_with(EX_OK));
  auto all = shmbox_cli({"topic", "sub", name, "--history", "--nonblock"});
  EXPECT_TRUE(all.status.exited_with(EX_OK)) << all.err;
  EXPECT_EQ(all.out, "3\n4\n5\n");
  EXPECT_EQ(shmbox_cli({"topic", "sub", name, "--history", "2", "--nonblock"}).out, "4\n5\n");
  // Without --history a subscriber gets what is published from now on: none yet.
  auto none = shmbox_cli({"topic", "sub", name, "--nonblock"});
  EXPECT_TRUE(none.status.exited_with(EX_OK));
  EXPECT_EQ(none.out, "");
  // With --count, ending short is a failure that says how far it got.
  auto short_of = shmbox_cli({"topic", "sub", name, "--history", "--count", "5", "--nonblock"});
  EXPECT_TRUE(short_of.status.exited_with(EX_TEMPFAIL));
  EXPECT_EQ(short_of.out, "3\n4\n5\n");
  EXPECT_EQ(short_of.err, "shmbox: " + object() + ": has no message waiting; 3 of 5 written\n");
  auto timed = shmbox_cli({"topic", "sub", name, "--count", "1", "--timeout", "100ms"});
  EXPECT_TRUE(timed.status.exited_with(EX_TEMPFAIL));
  EXPECT_EQ(timed.err, "shmbox: " + object() + ": timed out; 0 of 1 written\n");
  // Without --count, the timeout ends the subscription as asked.
  auto window = shmbox_cli({"topic", "sub", name, "--history", "1", "--timeout", "100ms"});
  EXPECT_TRUE(window.status.exited_with(EX_OK)) << window.err;
  EXPECT_EQ(window.out, "5\n");
}

TEST_F(TopicCliTest, FramingsAreThoseOfRecv) {
  ASSERT_TRUE(shmbox_cli({"topic", "create", name, "--history", "4"}).status.exited_with(EX_OK));
  const std::string records{"one\0two words\0", 14};
  ASSERT_TRUE(shmbox_cli({"topic", "pub", name, "--null"}, records).status.exited_with(EX_OK));
  EXPECT_EQ(shmbox_cli({"topic", "sub", name, "--history", "--nonblock", "--null"}).out, records);
  EXPECT_EQ(shmbox_cli({"topic", "sub", name, "--history", "1", "--raw", "--nonblock"}).out, "two words");
  std::istringstream lines{shmbox_cli({"topic", "sub", name, "--history", "--nonblock", "--json"}).out};
  std::string line;
  std::vector<nlohmann::json> got;
  while (std::getline(lines, line)) got.push_back(nlohmann::json::parse(line));
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[1]["topic"], name);
  EXPECT_EQ(got[1]["sequence"], 2);
  EXPECT_EQ(got[1]["lost"], 0);
  EXPECT_EQ(got[1]["size"], 9);
  EXPECT_EQ(got[1]["data"], "dHdvIHdvcmRz");
  auto both = shmbox_cli({"topic", "sub", name, "--raw", "--json"});
  EXPECT_TRUE(both.status.exited_with(EX_USAGE));
  EXPECT_EQ(both.err, "shmbox: usage: topic sub takes one of --null, --json and --raw\n");
  auto raw_count = shmbox_cli({"topic", "sub", name, "--raw", "--count", "2"});
  EXPECT_TRUE(raw_count.status.exited_with(EX_USAGE));
  EXPECT_EQ(raw_count.err, "shmbox: usage: topic sub --raw writes exactly one message; it takes no --count\n");
}

// A subscriber stopped while an overwriting topic moves on by more than it keeps loses the
// oldest, is told how many on stderr when it runs again, and goes on.
TEST_F(TopicCliTest, ASlowSubscriberOfAnOverwritingTopicIsToldWhatItLost) {
  ASSERT_TRUE(shmbox_cli({"topic", "create", name, "--capacity", "4", "--overflow", "overwrite"}).status.exited_with(EX_OK));
  auto run = shell("$SHMBOX topic sub " + name + " --count 3 & sub=$!; " + until_subscribers(1) +
                   "kill -STOP $sub; $SHMBOX topic pub " + name + " 1 2 3 4 5 6 7 8 9 10; kill -CONT $sub; wait $sub");
  EXPECT_TRUE(run.status.exited_with(EX_OK)) << run.err;
  EXPECT_EQ(run.out, "7\n8\n9\n");
  EXPECT_EQ(run.err, "shmbox: " + object() + ": 6 messages lost before message 7 (overwritten before they were read)\n");
}

// A blocking topic that is full for a live subscriber refuses a --nonblock publish and says
// exactly which messages went.
TEST_F(TopicCliTest, AFullBlockingTopicRefusesANonblockingPublishSayingWhatWent) {
  ASSERT_TRUE(shmbox_cli({"topic", "create", name, "--capacity", "2"}).status.exited_with(EX_OK));
  auto subscriber = Topic::open(name).value().subscribe().value();  // never reads
  auto full = shmbox_cli({"topic", "pub", name, "--nonblock", "a", "b", "c"});
  EXPECT_TRUE(full.status.exited_with(EX_TEMPFAIL));
  EXPECT_EQ(full.err, "shmbox: " + object() +
                          ": is full: a subscriber has not read the oldest message; 2 of 3 were sent, message 3 and "
                          "those after it were not\n");
  auto timed = shmbox_cli({"topic", "pub", name, "--timeout", "50ms", "d"});
  EXPECT_TRUE(timed.status.exited_with(EX_TEMPFAIL));
  EXPECT_EQ(timed.err, "shmbox: " + object() + ": timed out waiting for a subscriber to read\n");
  std::vector<std::byte> message;
  EXPECT_EQ(subscriber.receive(message, no_wait).value().sequence, 1u);
  EXPECT_TRUE(shmbox_cli({"topic", "pub", name, "--nonblock", "c"}).status.exited_with(EX_OK));
}

TEST_F(TopicCliTest, RefusedOptionsAndMessagesChangeNothing) {
  auto overflow = shmbox_cli({"topic", "create", name, "--overflow", "drop"});
  EXPECT_TRUE(overflow.status.exited_with(EX_USAGE));
  EXPECT_EQ(overflow.err, "shmbox: --overflow 'drop': must be block or overwrite\n");
  auto history = shmbox_cli({"topic", "create", name, "--capacity", "4", "--history", "5"});
  EXPECT_TRUE(history.status.exited_with(EX_USAGE));
  EXPECT_EQ(history.err, "shmbox: --history '5': must be a whole number from 0 to 4\n");
  const auto topics = Topic::list();
  EXPECT_EQ(std::find(topics.begin(), topics.end(), name), topics.end());
  auto missing = shmbox_cli({"topic", "pub", name, "x"});
  EXPECT_TRUE(missing.status.exited_with(EX_NOINPUT));
  EXPECT_EQ(missing.err, "shmbox: " + object() + ": cannot open: does not exist (No such file or directory)\n");
  EXPECT_TRUE(shmbox_cli({"topic", "sub", name}).status.exited_with(EX_NOINPUT));
  ASSERT_TRUE(shmbox_cli({"topic", "create", name, "--max-size", "4", "--history", "8"}).status.exited_with(EX_OK));
  auto again = shmbox_cli({"topic", "create", name});
  EXPECT_TRUE(again.status.exited_with(EX_CANTCREAT));
  auto large = shmbox_cli({"topic", "pub", name}, "ok\ntoo long\nnever\n");
  EXPECT_TRUE(large.status.exited_with(EX_DATAERR));
  EXPECT_EQ(large.err, "shmbox: standard input: holds a message longer than the maximum of 4 bytes; 1 message "
                       "sent, message 2 and the rest of standard input were not\n");
  EXPECT_EQ(shmbox_cli({"topic", "sub", name, "--history", "--nonblock"}).out, "ok\n");
  auto bad_history = shmbox_cli({"topic", "sub", name, "--history", "many"});
  EXPECT_TRUE(bad_history.status.exited_with(EX_USAGE));
  EXPECT_EQ(bad_history.err, "shmbox: --history 'many': must be a number of messages, or all\n");
}

TEST_F(TopicCliTest, RemovingATopicStopsItsSubscribersWith69SayingWhatTheyWrote) {
  ASSERT_TRUE(shmbox_cli({"topic", "create", name}).status.exited_with(EX_OK));
  auto run = shell("$SHMBOX topic sub " + name + " & sub=$!; " + until_subscribers(1) + "$SHMBOX topic pub " + name +
                   " only; $SHMBOX topic rm " + name + "; wait $sub; echo \"exit $?\"");
  EXPECT_EQ(run.out, "only\nexit 69\n");
  EXPECT_EQ(run.err, "shmbox: " + object() + ": was removed; 1 written\n");
  auto gone = shmbox_cli({"topic", "rm", name});
  EXPECT_TRUE(gone.status.exited_with(EX_NOINPUT));
}

// A message a subscriber could not write out is named (it is not taken from anyone else:
// the other subscribers still get it).
TEST_F(TopicCliTest, AnOutputThatFailsIsReportedWithTheMessageNotWritten) {
  ASSERT_TRUE(shmbox_cli({"topic", "create", name, "--history", "4"}).status.exited_with(EX_OK));
  ASSERT_TRUE(shmbox_cli({"topic", "pub", name, "a", "b"}).status.exited_with(EX_OK));
  auto run = shell("$SHMBOX topic sub " + name + " --history --count 2 | true");
  EXPECT_EQ(run.err, "shmbox: stdout: closed by its reader; 0 of 2 written; message 1 was received and not written\n");
  EXPECT_EQ(shmbox_cli({"topic", "sub", name, "--history", "--nonblock"}).out, "a\nb\n");
}

TEST_F(TopicCliTest, StatAndLsShowPublishersAndEachSubscribersLagAndLosses) {
  ASSERT_TRUE(shmbox_cli({"topic", "create", name, "--capacity", "4", "--overflow", "overwrite", "--history", "2",
                          "--max-size", "1KiB", "--mode", "640"})
                  .status.exited_with(EX_OK));
  auto topic = Topic::open(name).value();
  auto behind = topic.subscribe().value();
  auto caught_up = topic.subscribe().value();
  auto publisher = topic.publisher().value();
  for (int n = 0; n < 6; ++n) ASSERT_TRUE(publisher.publish(as_bytes("m")));
  std::vector<std::byte> message;
  for (int n = 0; n < 4; ++n) ASSERT_TRUE(caught_up.receive(message, no_wait));  // loses 2 on the way
  const auto stat = nlohmann::json::parse(shmbox_cli({"stat", "--topic", name, "--json"}).out);
  EXPECT_EQ(stat["kind"], "topic");
  EXPECT_EQ(stat["overflow"], "overwrite");
  EXPECT_EQ(stat["capacity"], 4);
  EXPECT_EQ(stat["history"], 2);
  EXPECT_EQ(stat["max_message_size"], 1024);
  EXPECT_EQ(stat["mode"], "0640");
  EXPECT_EQ(stat["published"], 6);
  EXPECT_TRUE(stat["owner"].is_null());
  EXPECT_TRUE(stat["buffering"].is_null());
  ASSERT_EQ(stat["publishers"].size(), 1u);
  EXPECT_EQ(stat["publishers"][0]["pid"], ::getpid());
  EXPECT_EQ(stat["publishers"][0]["published"], 6);
  ASSERT_EQ(stat["subscribers"].size(), 2u);
  EXPECT_EQ(stat["subscribers"][0]["lag"], 6);
  EXPECT_EQ(stat["subscribers"][0]["received"], 0);
  EXPECT_EQ(stat["subscribers"][1]["lag"], 0);
  EXPECT_EQ(stat["subscribers"][1]["received"], 4);
  EXPECT_EQ(stat["subscribers"][1]["lost"], 2);
  EXPECT_EQ(stat["subscribers"][1]["passed_over"], false);
  const auto text = shmbox_cli({"stat", "--topic", name}).out;
  EXPECT_NE(text.find("  overflow      overwrite\n  capacity      4 (history 2)\n"), std::string::npos) << text;
  EXPECT_NE(text.find("  subscribers   2 of at most 16\n"), std::string::npos) << text;
  EXPECT_NE(text.find("lag 0, received 4, lost 2\n"), std::string::npos) << text;
  const auto list = nlohmann::json::parse(shmbox_cli({"ls", "--json"}).out);
  const auto row = std::find_if(list.begin(), list.end(), [&](const auto& one) { return one["name"] == name; });
  ASSERT_NE(row, list.end());
  EXPECT_EQ((*row)["kind"], "topic");
  EXPECT_EQ(shmbox_cli({"ls"}).out.find("topic    " + name) != std::string::npos, true);
  auto missing = shmbox_cli({"stat", "--topic", name + "-missing"});
  EXPECT_TRUE(missing.status.exited_with(EX_NOINPUT));
  EXPECT_EQ(missing.err, "shmbox: topic '" + name + "-missing': cannot open: does not exist (No such file or directory)\n");
}

TEST(TopicCliRemoteTest, TheSameCommandsWorkOnANatsTopic) {
  std::optional<test::NatsServer> server;
  test::start_nats_or_skip(server);
  if (!server) return;
  const std::string name = test::remote_name(*server, "clitopic");
  const std::string object = "topic '" + name + "'";
  auto with_mode = shmbox_cli({"topic", "create", name, "--mode", "644"});
  EXPECT_TRUE(with_mode.status.exited_with(EX_USAGE));
  EXPECT_EQ(with_mode.err,
            "shmbox: --mode: a nats:// topic has no permission bits: the server's accounts decide who may use it\n");
  auto with_publishers = shmbox_cli({"topic", "create", name, "--max-publishers", "2"});
  EXPECT_TRUE(with_publishers.status.exited_with(EX_USAGE));
  EXPECT_EQ(with_publishers.err, "shmbox: --max-publishers: a nats:// topic takes any number of publishers\n");
  auto blocking = shmbox_cli({"topic", "create", name, "--overflow", "block"});
  EXPECT_TRUE(blocking.status.exited_with(EX_USAGE));
  EXPECT_EQ(blocking.err, "shmbox: " + object +
                              ": a nats:// topic overwrites (its server does not wait for subscribers): create it "
                              "with Overflow::overwrite\n");
  EXPECT_TRUE(shmbox_cli({"topic", "pub", name, "x"}).status.exited_with(EX_NOINPUT));

  ASSERT_TRUE(shmbox_cli({"topic", "create", name, "--capacity", "4", "--history", "2"}).status.exited_with(EX_OK));
  EXPECT_TRUE(shmbox_cli({"topic", "pub", name}, "one\ntwo\nthree\n").status.exited_with(EX_OK));
  auto history = shmbox_cli({"topic", "sub", name, "--history", "all", "--count", "2", "--json"});
  EXPECT_TRUE(history.status.exited_with(EX_OK)) << history.err;
  std::istringstream lines{history.out};
  std::string line;
  std::vector<nlohmann::json> got;
  while (std::getline(lines, line)) got.push_back(nlohmann::json::parse(line));
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0]["sequence"], 2);
  EXPECT_EQ(got[1]["sequence"], 3);
  auto live = shell("$SHMBOX topic sub " + name + " --count 3 > live & sub=$!; sleep 0.5; "
                    "$SHMBOX topic pub " + name + " 4 5 6; wait $sub; echo \"sub $?\"; cat live; rm -f live");
  EXPECT_EQ(live.out, "sub 0\n4\n5\n6\n") << live.err;
  auto stat = nlohmann::json::parse(shmbox_cli({"stat", "--topic", name, "--json"}).out);
  EXPECT_EQ(stat["kind"], "topic");
  EXPECT_EQ(stat["transport"], "nats");
  EXPECT_EQ(stat["overflow"], "overwrite");
  EXPECT_EQ(stat["published"], 6);
  EXPECT_TRUE(stat["mode"].is_null());
  EXPECT_TRUE(stat["publishers"].is_null());
  auto listed = nlohmann::json::parse(shmbox_cli({"ls", server->url(), "--json"}).out);
  ASSERT_EQ(listed.size(), 1u) << listed.dump();
  EXPECT_EQ(listed[0]["kind"], "topic");
  EXPECT_EQ(listed[0]["name"], name);
  EXPECT_TRUE(shmbox_cli({"topic", "rm", name}).status.exited_with(EX_OK));
  EXPECT_EQ(shmbox_cli({"ls", server->url(), "--json"}).out, "[]\n");
  auto gone = shmbox_cli({"topic", "sub", name});
  EXPECT_TRUE(gone.status.exited_with(EX_NOINPUT));
  EXPECT_EQ(gone.err, "shmbox: " + object + ": does not exist on " + server->url() + "\n");
}

}  // namespace
}  // namespace shmbox
