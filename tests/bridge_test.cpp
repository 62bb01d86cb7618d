// Bridges (shmbox bridge, shmbox::forward) between local mailboxes and a real
// nats-server. Two "machines" are two process trees, each with its own /dev/shm, that
// share only the server: a sender on one, a receiver on the other, each bridged.
// As in remote_mailbox_test, the NATS client is used only in child processes.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sysexits.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <thread>

#include "shmbox/bridge.hpp"
#include "shmbox/mailbox.hpp"
#include "shmbox/segment.hpp"
#include "support/nats_test.hpp"
#include "support/process.hpp"
#include "support/text.hpp"

namespace shmbox {
namespace {

using namespace std::chrono_literals;
using test::ChildProcess;
using test::text_of;

// Processes of a "machine" go when the machine's first process does.
void die_with_parent() { ::prctl(PR_SET_PDEATHSIG, SIGKILL); }

// `shmbox bridge ARGS...` in a child process, its standard output into `output` and its
// errors thrown away.
ChildProcess start_bridge(std::vector<std::string> args, const std::string& output = "/dev/null") {
  return ChildProcess::spawn([args = std::move(args), output]() mutable {
    die_with_parent();
    const int null = ::open("/dev/null", O_WRONLY);
    const int out = ::open(output.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ::dup2(out, STDOUT_FILENO);
    ::dup2(null, STDERR_FILENO);
    args.insert(args.begin(), {SHMBOX_CLI_PATH, "bridge"});
    std::vector<char*> argv;
    for (auto& arg : args) argv.push_back(arg.data());
    argv.push_back(nullptr);
    ::execv(argv[0], argv.data());
    return 127;
  });
}

class Bridge : public ::testing::Test {
 protected:
  void SetUp() override {
    test::start_nats_or_skip(server);
    if (server) remote = test::remote_name(*server, "wire");
  }
  struct Tally;
  // What befalls the server(s) mid-stream.
  enum class Disruption { none, server_crash, leader_kills };
  Tally run_two_machines(int kills_each, Disruption disruption);
  void create_bounded_remote() {
    EXPECT_TRUE(test::run_command({SHMBOX_CLI_PATH, "create", remote, "--capacity", "100", "--max-size", "64"})
                    .status.exited_with(EX_OK));
  }
  std::optional<test::NatsServer> server;
  std::optional<std::vector<test::NatsServer>> cluster;  // for Disruption::leader_kills
  std::string remote;
  std::string remote_stream;  // its stream's name, on a cluster
};

struct Bridge::Tally {
  std::uint32_t lost = 0, duplicated = 0;
  std::uint32_t most_copies = 0;  // of any one message
};

// Machine A: sender -> out -> bridge -> NATS; machine B: NATS -> bridge --reverse -> in
// -> receiver, 3000 messages, through `remote` (made by the caller). Each bridge is
// killed (SIGKILL) `kills_each` times and restarted mid-stream; then the server is
// killed and restarted (the remote mailbox is file-backed), or the cluster's servers
// leading the remote mailbox's consumer and then its stream are, one after the other.
Bridge::Tally Bridge::run_two_machines(int kills_each, Disruption disruption) {
  constexpr std::uint32_t count = 3000;
  const std::string ledger_name = test::unique_name("bridge-ledger");
  auto ledger = Segment::create(ledger_name, count * sizeof(std::uint32_t));
  EXPECT_TRUE(ledger);
  if (!ledger) return {count, 0};
  auto* seen = reinterpret_cast<std::atomic<std::uint32_t>*>(ledger->writable_bytes()->data());
  // Two failovers take seconds: the sender goes slower to be mid-stream for both.
  const std::uint32_t pause_every = disruption == Disruption::leader_kills ? 4 : 16;
  test::Pipe progress, done_sending, done_receiving;
  // One machine: its own /dev/shm with a system-owned mailbox, a local program, and a
  // bridge that is killed and restarted, then left to run until the test is done.
  auto machine = [&](bool sending) {
    return ChildProcess::spawn([&, sending] {
      if (!test::private_dev_shm("64m")) return 10;
      const char* local = sending ? "out" : "in";
      if (!Mailbox::create(local, {.capacity = 32, .max_message_size = 64, .ownership = Ownership::system})) return 11;
      auto program = ChildProcess::spawn([&] {
        die_with_parent();
        auto box = Mailbox::open(local);
        if (!box) return 1;
        if (sending) {
          for (std::uint32_t i = 0; i < count; ++i) {
            if (!box->send_value(i, 60s)) return 2;
            if (i % pause_every == 0) std::this_thread::sleep_for(2ms);  // spread over the restarts
          }
          return 0;
        }
        for (std::uint32_t received = 0;; ++received) {
          auto value = box->receive_value<std::uint32_t>(60s);
          if (!value || *value >= count) return 3;
          seen[*value].fetch_add(1);
          progress.send(std::to_string(received + 1));
        }
      });
      std::vector<std::string> args{local, remote};
      if (!sending) args.push_back("--reverse");
      std::mt19937 random{sending ? 1u : 2u};
      for (int kill = 0; kill < kills_each; ++kill) {
        auto bridge = start_bridge(args);
        std::this_thread::sleep_for(std::chrono::milliseconds{200 + random() % 400});
        bridge.kill();
        (void)bridge.wait();
      }
      auto bridge = start_bridge(args);
      if (sending) {
        if (!program.wait(120s).exited_with(0)) return 12;
        progress.send("sent");
      }
      (void)(sending ? done_sending : done_receiving).receive(180s);
      return 0;  // the bridge and program go with this process
    });
  };
  auto receiving = machine(false);
  auto sending = machine(true);
  // How many distinct messages machine B has.
  auto received = [&] {
    std::uint32_t distinct = 0;
    for (std::uint32_t i = 0; i < count; ++i) distinct += seen[i].load() > 0 ? 1u : 0u;
    return distinct;
  };
  std::string killed;
  if (disruption == Disruption::server_crash) {
    std::this_thread::sleep_for(700ms);
    server->kill();
    std::this_thread::sleep_for(300ms);
    EXPECT_TRUE(server->restart());
    killed = "the server killed and restarted";
  } else if (disruption == Disruption::leader_kills) {
    // Each when machine B has a third more of the stream, so that both are mid-stream.
    auto wait_for = [&](std::uint32_t share) {
      const auto give_up = std::chrono::steady_clock::now() + 60s;
      while (received() < share && std::chrono::steady_clock::now() < give_up) std::this_thread::sleep_for(5ms);
      return std::to_string(received());
    };
    const std::string first_at = wait_for(count / 3);
    const std::string consumer_leader = test::kill_leader(*cluster, remote_stream, "receivers");
    const std::string second_at = wait_for(2 * count / 3);
    const std::string stream_leader = test::kill_leader(*cluster, remote_stream);
    EXPECT_FALSE(consumer_leader.empty() || stream_leader.empty());
    killed = "consumer leader " + consumer_leader + " killed at " + first_at + " received, stream leader " + stream_leader +
             " at " + second_at + ", each restarted";
  } else {
    killed = "the server up";
  }
  // Until machine B has every message, or nothing more comes for 30 s.
  for (auto line = progress.receive(30s); line; line = progress.receive(30s)) {
    if (received() == count) break;
  }
  std::this_thread::sleep_for(3s);  // a redelivery after the ack wait would come now
  done_sending.send("done");
  done_receiving.send("done");
  EXPECT_TRUE(sending.wait(30s).exited_with(0));
  EXPECT_TRUE(receiving.wait(30s).exited_with(0));
  Tally tally;
  for (std::uint32_t i = 0; i < count; ++i) {
    if (seen[i].load() == 0) ++tally.lost;
    if (seen[i].load() > 1) tally.duplicated += seen[i].load() - 1;
    tally.most_copies = std::max(tally.most_copies, seen[i].load());
  }
  std::printf("[ bridge ] %u sent, %u lost, %u duplicated; %d kills of each bridge, %s\n", count, tally.lost,
              tally.duplicated, kills_each, killed.c_str());
  (void)Segment::remove(ledger_name);
  return tally;
}

// Duplicates only from the reverse bridge's kills (killed between the local send and the
// server's ack: at most one each); none from the forward one, thanks to message ids.
TEST_F(Bridge, TwoMachinesLoseNothingAcrossBridgeRestarts) {
  create_bounded_remote();
  constexpr int kills_each = 3;
  const Tally tally = run_two_machines(kills_each, Disruption::none);
  EXPECT_EQ(tally.lost, 0u);
  EXPECT_LE(tally.duplicated, static_cast<std::uint32_t>(kills_each));  // one per reverse bridge killed
  EXPECT_LE(tally.most_copies, 2u);
}

// A server killed mid-stream loses nothing it acknowledged (file storage); acks it had
// not yet written come round again: at least once. (Bridges killed too, within the ack
// wait of the server's crash, is a double failure that nats-server 2.9 does not always
// survive: docs/design.md, "Bridges".)
TEST_F(Bridge, TwoMachinesLoseNothingAcrossAServerCrash) {
  create_bounded_remote();
  const Tally tally = run_two_machines(0, Disruption::server_crash);
  EXPECT_EQ(tally.lost, 0u);
  EXPECT_LE(tally.most_copies, 2u);  // an unwritten ack brings a message round once
}

// Through a three-server cluster and a replicated (unbounded) remote mailbox, with the
// leaders of its consumer and its stream killed in turn. A redelivery after a failover
// that reaches the restarted reverse bridge rather than the one that took it first is a
// duplicate: at least once.
TEST_F(Bridge, TwoMachinesLoseNothingThroughAClustersFailovers) {
  test::start_cluster_or_skip(cluster, 3);
  if (!cluster) return;
  const auto replicated = test::create_replicated_mailbox(*cluster, "wire", 64);
  ASSERT_TRUE(replicated);
  remote = replicated->name;
  remote_stream = replicated->stream;
  const Tally tally = run_two_machines(0, Disruption::leader_kills);
  EXPECT_EQ(tally.lost, 0u);
  EXPECT_LE(tally.most_copies, 2u);  // each failover brings a message round at most once
}


TEST_F(Bridge, RefusesADestinationThatCannotHoldTheSourcesMessages) {
  ASSERT_TRUE(test::run_command({SHMBOX_CLI_PATH, "create", remote, "--max-size", "64"}).status.exited_with(EX_OK));
  const std::string local = test::unique_name("bridge-big");
  ASSERT_TRUE(test::run_command({SHMBOX_CLI_PATH, "create", local, "--max-size", "100"}).status.exited_with(EX_OK));
  auto result = test::run_command({SHMBOX_CLI_PATH, "bridge", local, remote});
  EXPECT_TRUE(result.status.exited_with(EX_USAGE)) << result.status.describe();
  EXPECT_NE(result.err.find("holds messages of up to 64 bytes; mailbox '" + local + "' carries up to 100"),
            std::string::npos)
      << result.err;
  // The other way the sizes fit.
  auto reverse = start_bridge({local, remote, "--reverse"});
  std::this_thread::sleep_for(500ms);
  EXPECT_TRUE(reverse.running());
  (void)Mailbox::remove(local);
}

// A bridge started while its server is away waits for it, as it does for one that goes
// away later, rather than exiting: it runs as a service.
TEST_F(Bridge, ABridgeStartedWhileItsServerIsAwayWaitsForIt) {
  create_bounded_remote();  // system-owned: file storage, kept across the restart
  const std::string local = test::unique_name("bridge-early");
  ASSERT_TRUE(test::run_command({SHMBOX_CLI_PATH, "create", local, "--max-size", "64"}).status.exited_with(EX_OK));
  ASSERT_TRUE(test::run_command({SHMBOX_CLI_PATH, "send", local, "one", "two", "three"}).status.exited_with(EX_OK));
  server->kill();
  auto bridge = start_bridge({local, remote});
  std::this_thread::sleep_for(1500ms);
  EXPECT_TRUE(bridge.running());
  ASSERT_TRUE(server->restart());
  auto received = test::run_command({SHMBOX_CLI_PATH, "recv", remote, "--count", "3", "--timeout", "30s"});
  EXPECT_TRUE(received.status.exited_with(EX_OK)) << received.err;
  EXPECT_EQ(received.out, "one\ntwo\nthree\n");
  (void)Mailbox::remove(local);
}

TEST_F(Bridge, NamesWhatIsMissing) {
  auto no_local = test::run_command({SHMBOX_CLI_PATH, "bridge", "no-such-local", remote});
  EXPECT_TRUE(no_local.status.exited_with(EX_NOINPUT)) << no_local.status.describe();
  EXPECT_EQ(no_local.err, "shmbox: mailbox 'no-such-local': cannot open: does not exist (No such file or directory)\n");
  const std::string local = test::unique_name("bridge-local");
  ASSERT_TRUE(test::run_command({SHMBOX_CLI_PATH, "create", local}).status.exited_with(EX_OK));
  auto no_remote = test::run_command({SHMBOX_CLI_PATH, "bridge", local, remote});
  EXPECT_EQ(no_remote.err, "shmbox: mailbox '" + remote + "': does not exist on " + server->url() + "\n");
  (void)Mailbox::remove(local);
}

// The library call stops between messages when asked, and when its source is closed.
TEST_F(Bridge, ForwardStopsWhenAskedAndWhenTheSourceCloses) {
  const std::string from = test::unique_name("bridge-from"), to = test::unique_name("bridge-to");
  auto child = ChildProcess::spawn([&] {
    auto source = Mailbox::create(from, {.capacity = 8, .max_message_size = 32});
    auto sink = Mailbox::create(to, {.capacity = 8, .max_message_size = 32});
    if (!source || !sink) return 1;
    for (const char* text : {"a", "b", "c"}) {
      if (!source->send(as_bytes(text))) return 2;
    }
    std::atomic<bool> stop{false};
    std::thread stopper{[&] {
      std::this_thread::sleep_for(300ms);
      stop = true;
    }};
    auto forwarded = forward(*source, *sink, stop);
    stopper.join();
    if (!forwarded || *forwarded != 3 || sink->queued() != 3 || source->queued() != 0) return 3;
    if (!source->send(as_bytes("d")) || !source->close()) return 4;
    stop = false;
    forwarded = forward(*source, *sink, stop);  // drains "d", then sees it closed
    return forwarded && *forwarded == 1 && sink->queued() == 4 ? 0 : 5;
  });
  const auto status = child.wait(30s);
  EXPECT_TRUE(status.exited_with(0)) << status.describe();
}

// A full destination: the held message waits, each failed attempt is reported, and it
// goes on as soon as there is room.
TEST(BridgeLocal, AFullDestinationIsRetriedAndReportedWhileTheMessageWaits) {
  const std::string from = test::unique_name("bridge-full-from"), to = test::unique_name("bridge-full-to");
  auto child = ChildProcess::spawn([&] {
    auto source = Mailbox::create(from, {.capacity = 4, .max_message_size = 32});
    auto sink = Mailbox::create(to, {.capacity = 1, .max_message_size = 32});
    auto drain = Mailbox::open(to);
    if (!source || !sink || !drain) return 1;
    if (!source->send(as_bytes("a")) || !source->send(as_bytes("b"))) return 2;
    std::atomic<bool> stop{false};
    std::vector<Errc> failures;
    std::vector<std::byte> message;
    ForwardOptions options{
        .on_retry =
            [&](const Error& error) {
              failures.push_back(error.errc());
              (void)drain->receive(message, no_wait);  // make room for "b"
            },
        .on_forwarded = [&](std::uint64_t forwarded) { stop = forwarded == 2; }};
    auto forwarded = forward(*source, *sink, stop, options);
    if (!forwarded || *forwarded != 2 || text_of(message) != "a") return 3;
    if (failures.size() != 1 || failures[0] != Errc::timeout) return 4;
    return drain->receive(message, no_wait) && text_of(message) == "b" && source->queued() == 0 ? 0 : 5;
  });
  const auto status = child.wait(30s);
  EXPECT_TRUE(status.exited_with(0)) << status.describe();
}

// A destination that refuses (closed) is no reason to stop or to drop: the message
// stays in the remote source, unacknowledged, for the next attempt.
TEST_F(Bridge, ARefusingDestinationLeavesTheRemoteMessageWhereItWas) {
  const std::string local = test::unique_name("bridge-closed");
  auto child = ChildProcess::spawn([&] {
    auto source = Mailbox::create(remote, {.capacity = 4, .max_message_size = 32, .ownership = Ownership::system});
    auto sink = Mailbox::create(local, {.capacity = 4, .max_message_size = 32});
    if (!source || !sink || !source->send(as_bytes("kept")) || !sink->close()) return 1;
    std::atomic<bool> stop{false};
    std::vector<std::string> failures;
    ForwardOptions options{.on_retry = [&](const Error& error) {
      failures.push_back(error.message());
      stop = failures.size() == 2;
    }};
    auto forwarded = forward(*source, *sink, stop, options);
    if (!forwarded || *forwarded != 0) return 2;
    if (failures.size() != 2 || failures[0] != "mailbox '" + local + "': is closed") {
      return std::fprintf(stderr, "%s\n", failures.empty() ? "none" : failures[0].c_str()), 3;
    }
    std::vector<std::byte> message;
    return source->receive(message, 10s) && text_of(message) == "kept" ? 0 : 4;
  });
  const auto status = child.wait(30s);
  EXPECT_TRUE(status.exited_with(0)) << status.describe();
}

// The tool: SIGTERM stops it between messages, and it says how many it forwarded.
TEST(BridgeLocal, TheToolForwardsUntilTerminatedAndSaysHowMany) {
  const std::string from = test::unique_name("bridge-cli-from"), to = test::unique_name("bridge-cli-to");
  for (const auto& name : {from, to}) {
    ASSERT_TRUE(test::run_command({SHMBOX_CLI_PATH, "create", name}).status.exited_with(EX_OK));
  }
  ASSERT_TRUE(test::run_command({SHMBOX_CLI_PATH, "send", from, "one", "two", "three"}).status.exited_with(EX_OK));
  test::TemporaryDirectory directory;
  const std::string output = directory.path() + "/out";
  auto bridge = start_bridge({from, to}, output);
  auto received = test::run_command({SHMBOX_CLI_PATH, "recv", to, "--count", "3", "--timeout", "10s"});
  EXPECT_EQ(received.out, "one\ntwo\nthree\n");
  bridge.kill(SIGTERM);
  EXPECT_TRUE(bridge.wait(10s).exited_with(EX_OK));
  std::ifstream printed{output};
  EXPECT_EQ(std::string(std::istreambuf_iterator<char>{printed}, {}), "forwarded 3 messages\n");
  for (const auto& name : {from, to}) (void)Mailbox::remove(name);
}

}  // namespace
}  // namespace shmbox
