// Remote mailboxes (nats://host:port/NAME) against a real nats-server with JetStream,
// started by each test on loopback. Every use of the NATS client is in a child process:
// the client is not fork-safe, so the test process itself never starts it.
#include <gtest/gtest.h>
#include <nats/nats.h>
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <functional>
#include <thread>

#include "shmbox/mailbox.hpp"
#include "shmbox/segment.hpp"
#include "support/nats_server.hpp"
#include "support/process.hpp"
#include "support/text.hpp"

namespace shmbox {
namespace {

using namespace std::chrono_literals;
using test::ChildProcess;

using test::text_of;

class RemoteMailbox : public ::testing::Test {
 protected:
  void SetUp() override {
    server.emplace(test::NatsServer::start());
    if (!*server) GTEST_SKIP() << "nats-server is not installed (Debian: nats-server)";
    name = (**server).url() + "/" + test::unique_name("remote").substr(std::string{"shmbox-test-"}.size());
  }
  // Runs `body` in a child process and expects it to return 0; a failure says where.
  void in_child(const std::function<int()>& body) {
    auto child = ChildProcess::spawn(body);
    const auto status = child.wait(60s);
    EXPECT_TRUE(status.exited_with(0)) << status.describe();
  }
  // The server as an optional inside an optional: start() says whether there is one.
  std::optional<std::optional<test::NatsServer>> server;
  std::string name;
};

TEST_F(RemoteMailbox, CreateSendReceiveAndRemove) {
  in_child([&] {
    auto box = Mailbox::create(name, {.capacity = 8, .max_message_size = 64});
    if (!box) return std::fprintf(stderr, "%s\n", box.error().message().c_str()), 1;
    for (const char* text : {"one", "two", "three"}) {
      if (!box->send(as_bytes(text))) return 2;
    }
    return box->buffering() == Buffering::bounded && box->capacity() == 8 && box->max_message_size() == 64 ? 0 : 3;
  });
  in_child([&] {
    auto box = Mailbox::open(name);
    if (!box) return 1;
    std::vector<std::byte> message;
    for (const char* text : {"one", "two", "three"}) {
      auto got = box->receive(message, 10s);
      if (!got) std::fprintf(stderr, "receive: %s\n", got.error().message().c_str());
      if (!got || text_of(message) != text) return 2;
    }
    auto empty = box->receive(message, no_wait);
    return !empty && empty.error().errc() == Errc::would_block ? 0 : 3;
  });
  in_child([&] {
    if (!Mailbox::remove(name)) return 1;
    auto gone = Mailbox::open(name);
    if (gone || gone.error().errc() != Errc::not_found) return 2;
    return gone.error().message() == "mailbox '" + name + "': does not exist on " + (**server).url() ? 0 : 3;
  });
}

TEST_F(RemoteMailbox, CompetingReceiversTakeEachMessageOnceInSenderOrder) {
  constexpr std::uint32_t count = 300;
  const std::string ledger_name = test::unique_name("remote-ledger");
  auto ledger = Segment::create(ledger_name, count * sizeof(std::uint32_t));
  ASSERT_TRUE(ledger);
  auto* seen = reinterpret_cast<std::atomic<std::uint32_t>*>(ledger->writable_bytes()->data());
  in_child([&] { return Mailbox::create(name, {.capacity = 16, .max_message_size = 16}) ? 0 : 1; });
  std::vector<ChildProcess> receivers;
  for (int r = 0; r < 2; ++r) {
    receivers.push_back(ChildProcess::spawn([&] {
      auto box = Mailbox::open(name);
      if (!box) return 1;
      std::int64_t last = -1;
      for (;;) {
        auto value = box->receive_value<std::uint32_t>(2s);
        if (!value) return value.error().errc() == Errc::timeout ? 0 : 2;  // all taken
        if (*value >= count || static_cast<std::int64_t>(*value) <= last) return 3;
        last = *value;
        seen[*value].fetch_add(1);
      }
    }));
  }
  in_child([&] {
    auto box = Mailbox::open(name);
    if (!box) return 1;
    for (std::uint32_t i = 0; i < count; ++i) {
      if (!box->send_value(i, 10s)) return 2;  // bounded: waits while 16 are queued
    }
    return 0;
  });
  for (auto& receiver : receivers) EXPECT_TRUE(receiver.wait(60s).exited_with(0));
  for (std::uint32_t i = 0; i < count; ++i) EXPECT_EQ(seen[i].load(), 1u) << "message " << i;
  (void)Segment::remove(ledger_name);
}

TEST_F(RemoteMailbox, FullBoundedMailboxWouldBlockOrTimesOutThenTakesMore) {
  in_child([&] {
    auto box = Mailbox::create(name, {.capacity = 2, .max_message_size = 16});
    if (!box || !box->send(as_bytes("a")) || !box->send(as_bytes("b"))) return 1;
    auto full = box->send(as_bytes("c"), no_wait);
    if (full || full.error().errc() != Errc::would_block) return 2;
    auto late = box->send(as_bytes("c"), 100ms);
    if (late || late.error().errc() != Errc::timeout) return 3;
    if (late.error().message() != "mailbox '" + name + "': timed out") return 4;
    std::vector<std::byte> message;
    if (!box->receive(message, 10s) || text_of(message) != "a") return 5;
    return box->send(as_bytes("c"), 10s) ? 0 : 6;
  });
}

TEST_F(RemoteMailbox, TimedAndNonBlockingReceiveOnAnEmptyMailbox) {
  in_child([&] {
    auto box = Mailbox::create(name, {.buffering = Buffering::unbounded, .max_message_size = 16});
    if (!box) return 1;
    std::vector<std::byte> message;
    auto empty = box->receive(message, no_wait);
    if (empty || empty.error().errc() != Errc::would_block) return 2;
    const auto start = std::chrono::steady_clock::now();
    auto late = box->receive(message, 100ms);
    if (late || late.error().errc() != Errc::timeout) return 3;
    return std::chrono::steady_clock::now() - start >= 100ms ? 0 : 4;
  });
}

TEST_F(RemoteMailbox, UnboundedTakesEverythingWithoutWaiting) {
  in_child([&] {
    auto box = Mailbox::create(name, {.buffering = Buffering::unbounded, .max_message_size = 16});
    if (!box) return 1;
    for (std::uint32_t i = 0; i < 1000; ++i) {
      auto sent = box->send_value(i, no_wait);
      if (!sent) return std::fprintf(stderr, "send %u: %s\n", i, sent.error().message().c_str()), 2;
    }
    for (std::uint32_t i = 0; i < 1000; ++i) {
      auto value = box->receive_value<std::uint32_t>(10s);
      if (!value || *value != i) return 3;
    }
    return 0;
  });
}

TEST_F(RemoteMailbox, ErrorsNameTheMailboxAndTheCause) {
  in_child([&] {
    if (!Mailbox::create(name, {.max_message_size = 8})) return 1;
    auto twice = Mailbox::create(name);
    if (twice || twice.error().errc() != Errc::already_exists) return 2;
    if (twice.error().message() != "mailbox '" + name + "': already exists on " + (**server).url()) return 3;
    auto box = Mailbox::open(name);
    auto big = box->send(as_bytes("nine bytes"));
    if (big || big.error().message() != "mailbox '" + name + "': message of 10 bytes is over the mailbox's maximum of 8") {
      return 4;
    }
    auto huge = Mailbox::create(name + "-huge", {.max_message_size = 64u << 20});
    if (huge || huge.error().errc() != Errc::too_large) return 6;
    auto loan = box->loan(4);
    if (loan || loan.error().errc() != Errc::invalid_argument) return 7;
    for (const char* bad : {"nats://", "nats://host", "nats://host/", "nats://host/a.b", "nats://host/a b", "nats://a@b/x"}) {
      auto opened = Mailbox::open(bad);
      if (opened || opened.error().errc() != Errc::invalid_name) return 8;
    }
    return 0;
  });
}

TEST_F(RemoteMailbox, AnUnreachableServerIsAClearErrorNotAHang) {
  const std::string url = (**server).url();
  (**server).kill();
  in_child([&] {
    const auto start = std::chrono::steady_clock::now();
    auto opened = Mailbox::open(name);
    if (opened || opened.error().errc() != Errc::unreachable) return 1;
    if (opened.error().message().find("cannot reach the NATS server " + url) == std::string::npos) return 2;
    return std::chrono::steady_clock::now() - start < 10s ? 0 : 3;
  });
}

TEST_F(RemoteMailbox, ASystemOwnedMailboxKeepsWhatWasSentAcrossAServerRestart) {
  in_child([&] {
    auto box = Mailbox::create(name, {.capacity = 8, .max_message_size = 16, .ownership = Ownership::system});
    return box && box->send(as_bytes("kept")) ? 0 : 1;
  });
  ASSERT_TRUE((**server).restart());
  in_child([&] {
    auto box = Mailbox::open(name);
    if (!box) return 1;
    std::vector<std::byte> message;
    return box->receive(message, 10s) && text_of(message) == "kept" ? 0 : 2;
  });
}

TEST_F(RemoteMailbox, ZeroCapacityIsARendezvous) {
  in_child([&] { return Mailbox::create(name, {.buffering = Buffering::zero, .max_message_size = 16}) ? 0 : 1; });
  in_child([&] {
    auto box = Mailbox::open(name);
    if (!box || box->buffering() != Buffering::zero) return 1;
    auto nobody = box->send(as_bytes("x"), no_wait);  // no receiver is waiting
    if (nobody || nobody.error().errc() != Errc::would_block) return 2;
    std::vector<std::byte> message;
    auto empty = box->receive(message, 50ms);
    return !empty && empty.error().errc() == Errc::timeout ? 0 : 3;
  });
  test::Pipe progress;
  auto receiver = ChildProcess::spawn([&] {
    auto box = Mailbox::open(name);
    if (!box) return 1;
    progress.send("receiving");
    std::this_thread::sleep_for(100ms);  // the sender is already waiting for us
    std::vector<std::byte> message;
    return box->receive(message, 10s) && text_of(message) == "met" ? 0 : 2;
  });
  ASSERT_EQ(progress.receive(), "receiving");
  in_child([&] {
    auto box = Mailbox::open(name);
    const auto start = std::chrono::steady_clock::now();
    if (!box || !box->send(as_bytes("met"), 10s)) return 1;
    // It returned once the receiver took the message, which it did after 100 ms.
    return std::chrono::steady_clock::now() - start >= 50ms ? 0 : 2;
  });
  EXPECT_TRUE(receiver.wait(30s).exited_with(0));
}

TEST_F(RemoteMailbox, AReceiverKilledBeforeItsAcknowledgementDoesNotSwallowTheMessage) {
  in_child([&] {
    auto box = Mailbox::create(name, {.capacity = 4, .max_message_size = 16});
    return box && box->send(as_bytes("survives")) ? 0 : 1;
  });
  // A receiver that has the message delivered and dies before acknowledging it: the
  // client library used directly, as shmbox's receive would, stopping short of the ack.
  const std::string mailbox = name.substr(name.rfind('/') + 1);
  auto victim = ChildProcess::spawn([&] {
    natsConnection* connection = nullptr;
    jsCtx* jetstream = nullptr;
    natsSubscription* subscription = nullptr;
    if (natsConnection_ConnectTo(&connection, (**server).url().c_str()) != NATS_OK) return 1;
    if (natsConnection_JetStream(&jetstream, connection, nullptr) != NATS_OK) return 2;
    if (js_PullSubscribe(&subscription, jetstream, ("shmbox.mb." + mailbox).c_str(), "receivers", nullptr, nullptr,
                         nullptr) != NATS_OK) {
      return 3;
    }
    natsMsgList list{};
    if (natsSubscription_Fetch(&list, subscription, 1, 5000, nullptr) != NATS_OK || list.Count != 1) return 4;
    ::raise(SIGKILL);
    return 5;
  });
  EXPECT_TRUE(victim.wait(30s).killed_by(SIGKILL));
  in_child([&] {
    auto box = Mailbox::open(name);
    std::vector<std::byte> message;
    const auto start = std::chrono::steady_clock::now();
    auto got = box->receive(message, 20s);
    if (!got || text_of(message) != "survives") return 1;
    std::fprintf(stderr, "[ redelivered ] after %lld ms\n",
                 static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                            std::chrono::steady_clock::now() - start)
                                            .count()));
    return 0;
  });
}

TEST_F(RemoteMailbox, TheToolCreatesSendsReceivesAndRemovesRemoteMailboxes) {
  auto cli = [](std::vector<std::string> args, const std::string& input = {}) {
    args.insert(args.begin(), SHMBOX_CLI_PATH);
    return test::run_command(args, input);
  };
  ASSERT_TRUE(cli({"create", name, "--capacity", "4", "--max-size", "32"}).status.exited_with(0));
  ASSERT_TRUE(cli({"send", name, "one", "two"}).status.exited_with(0));
  auto received = cli({"recv", name, "--count", "2", "--timeout", "10s"});
  EXPECT_TRUE(received.status.exited_with(0)) << received.err;
  EXPECT_EQ(received.out, "one\ntwo\n");
  auto empty = cli({"recv", name, "--nonblock"});
  EXPECT_TRUE(empty.status.exited_with(75)) << empty.err;
  EXPECT_TRUE(cli({"rm", name}).status.exited_with(0));
  auto gone = cli({"send", name, "x"});
  EXPECT_TRUE(gone.status.exited_with(66));
  EXPECT_EQ(gone.err, "shmbox: mailbox '" + name + "': does not exist on " + (**server).url() + "\n");
}

// A three-server JetStream cluster and a mailbox kept on all three (replicas 3): the
// server leading its stream is killed with SIGKILL in the middle of the stream, and
// still every message whose send returned success is received, and none twice.
TEST(RemoteCluster, AReplicatedMailboxLosesNothingWhenItsLeaderIsKilled) {
  auto cluster = test::NatsServer::start_cluster(3);
  if (!cluster) GTEST_SKIP() << "cannot start a nats-server cluster here";
  std::string servers;
  for (const auto& server : *cluster) {
    if (!servers.empty()) servers += ',';
    servers += server.url().substr(std::string{"nats://"}.size());
  }
  const std::string tag = test::unique_name("r3").substr(std::string{"shmbox-test-"}.size());
  const std::string name = "nats://" + servers + "/" + tag;
  constexpr std::uint32_t count = 3000;
  struct Ledger {
    std::atomic<std::uint8_t> sent[count];
    std::atomic<std::uint8_t> received[count];
  };
  const std::string ledger_name = test::unique_name("r3-ledger");
  auto ledger_segment = Segment::create(ledger_name, sizeof(Ledger));
  ASSERT_TRUE(ledger_segment);
  auto* ledger = new (ledger_segment->writable_bytes()->data()) Ledger{};
  auto run = [](const std::function<int()>& body) { return ChildProcess::spawn(body).wait(120s); };

  // A new cluster elects its JetStream leader first: creating may be refused meanwhile.
  ASSERT_TRUE(run([&] {
                for (int attempt = 0; attempt < 300; ++attempt) {
                  if (Mailbox::create(name, {.buffering = Buffering::unbounded, .max_message_size = 16,
                                             .ownership = Ownership::system, .replicas = 3})) {
                    return 0;
                  }
                  std::this_thread::sleep_for(100ms);
                }
                return 1;
              }).exited_with(0));

  test::Pipe progress;
  auto sender = ChildProcess::spawn([&] {
    auto box = Mailbox::open(name);
    if (!box) return 1;
    for (std::uint32_t i = 0; i < count; ++i) {
      auto sent = box->send_value(i, 30s);
      if (sent) ledger->sent[i].store(1);
      if (i == count / 3) progress.send("a third");
    }
    return 0;
  });
  ASSERT_EQ(progress.receive(60s), "a third");
  // Which server leads the stream now: asked of the cluster, in a child (the client
  // library is not fork-safe), and killed.
  test::Pipe answer;
  auto asker = ChildProcess::spawn([&] {
    natsConnection* connection = nullptr;
    jsCtx* jetstream = nullptr;
    jsStreamInfo* info = nullptr;
    if (natsConnection_ConnectTo(&connection, (*cluster)[0].url().c_str()) != NATS_OK) return 1;
    if (natsConnection_JetStream(&jetstream, connection, nullptr) != NATS_OK) return 2;
    if (js_GetStreamInfo(&info, jetstream, ("SHMBOX_" + tag).c_str(), nullptr, nullptr) != NATS_OK) return 3;
    answer.send(info->Cluster != nullptr && info->Cluster->Leader != nullptr ? info->Cluster->Leader : "");
    return 0;
  });
  const auto leader = answer.receive(30s);
  ASSERT_TRUE(asker.wait(30s).exited_with(0));
  ASSERT_TRUE(leader && !leader->empty());
  const auto victim = std::find_if(cluster->begin(), cluster->end(), [&](const auto& server) { return server.name() == *leader; });
  ASSERT_NE(victim, cluster->end());
  victim->kill();
  EXPECT_TRUE(sender.wait(120s).exited_with(0));

  // The sender is done: take everything it was promised, however long the new leader
  // takes to serve (a message received twice would show in the ledger).
  std::uint32_t sent_ok = 0;
  for (std::uint32_t i = 0; i < count; ++i) sent_ok += ledger->sent[i].load();
  auto receiver = ChildProcess::spawn([&] {
    auto box = Mailbox::open(name);
    if (!box) return std::fprintf(stderr, "open: %s\n", box.error().message().c_str()), 1;
    for (std::uint32_t got = 0; got < sent_ok; ++got) {
      auto value = box->receive_value<std::uint32_t>(60s);
      if (!value) return std::fprintf(stderr, "receive: %s\n", value.error().message().c_str()), 2;
      if (*value < count) ledger->received[*value].fetch_add(1);
    }
    // Anything more would be a duplicate: look briefly.
    auto extra = box->receive_value<std::uint32_t>(1s);
    if (extra && *extra < count) ledger->received[*extra].fetch_add(1);
    return 0;
  });
  EXPECT_TRUE(receiver.wait(120s).exited_with(0));
  std::uint32_t promised = 0, lost = 0, twice = 0;
  for (std::uint32_t i = 0; i < count; ++i) {
    if (ledger->sent[i].load() != 0) {
      ++promised;
      if (ledger->received[i].load() == 0) ++lost;
    }
    if (ledger->received[i].load() > 1) ++twice;
  }
  std::printf("[ R3 failover ] leader %s killed: %u sends returned success, %u lost, %u received twice\n",
              leader->c_str(), promised, lost, twice);
  EXPECT_GT(promised, count / 3);
  EXPECT_EQ(lost, 0u);
  EXPECT_EQ(twice, 0u);
  (void)Segment::remove(ledger_name);
}

}  // namespace
}  // namespace shmbox
