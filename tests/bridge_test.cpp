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

// Processes of a "machine" go when the machine's first process does.
void die_with_parent() { ::prctl(PR_SET_PDEATHSIG, SIGKILL); }

// `shmbox bridge ARGS...` in a child process, its output thrown away.
ChildProcess start_bridge(std::vector<std::string> args) {
  return ChildProcess::spawn([args = std::move(args)]() mutable {
    die_with_parent();
    const int null = ::open("/dev/null", O_WRONLY);
    ::dup2(null, STDOUT_FILENO);
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
  std::optional<test::NatsServer> server;
  std::string remote;
};

// Machine A: sender -> out -> bridge -> NATS; machine B: NATS -> bridge --reverse -> in
// -> receiver. Both bridges are killed (SIGKILL) and restarted mid-stream, and the
// server too (the remote mailbox is file-backed): every message sent is received;
// duplicates only from the reverse bridge's kills (killed between the local send and
// the server's ack: at most one each), none from the forward one (message ids).
TEST_F(Bridge, TwoMachinesLoseNothingAcrossBridgeAndServerRestarts) {
  constexpr std::uint32_t count = 3000;
  constexpr int kills_each = 3;
  const std::string ledger_name = test::unique_name("bridge-ledger");
  auto ledger = Segment::create(ledger_name, count * sizeof(std::uint32_t));
  ASSERT_TRUE(ledger);
  auto* seen = reinterpret_cast<std::atomic<std::uint32_t>*>(ledger->writable_bytes()->data());
  ASSERT_TRUE(test::run_command({SHMBOX_CLI_PATH, "create", remote, "--capacity", "100", "--max-size", "64"})
                  .status.exited_with(EX_OK));
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
            if (i % 16 == 0) std::this_thread::sleep_for(2ms);  // spread over the restarts
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
  std::this_thread::sleep_for(700ms);
  server->kill();
  std::this_thread::sleep_for(300ms);
  ASSERT_TRUE(server->restart());
  // Until machine B has every message, or nothing more comes for 30 s.
  for (auto line = progress.receive(30s); line; line = progress.receive(30s)) {
    std::uint32_t distinct = 0;
    for (std::uint32_t i = 0; i < count; ++i) distinct += seen[i].load() > 0 ? 1u : 0u;
    if (distinct == count) break;
  }
  std::this_thread::sleep_for(3s);  // a redelivery after the ack wait would come now
  done_sending.send("done");
  done_receiving.send("done");
  EXPECT_TRUE(sending.wait(30s).exited_with(0));
  EXPECT_TRUE(receiving.wait(30s).exited_with(0));
  std::uint32_t lost = 0, duplicated = 0;
  for (std::uint32_t i = 0; i < count; ++i) {
    if (seen[i].load() == 0) ++lost;
    if (seen[i].load() > 1) duplicated += seen[i].load() - 1;
  }
  std::printf("bridge: %u sent, %u lost, %u duplicated, %d kills of each bridge, 1 server restart\n", count, lost,
              duplicated, kills_each);
  EXPECT_EQ(lost, 0u);
  EXPECT_LE(duplicated, static_cast<std::uint32_t>(kills_each));
  (void)Segment::remove(ledger_name);
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

}  // namespace
}  // namespace shmbox
