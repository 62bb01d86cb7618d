// Remote mailboxes (nats://host:port/NAME) against a real nats-server with JetStream,
// started by each test on loopback: what only they have (the semantics they share with
// local mailboxes are in mailbox_contract_test). Every use of the NATS client is in a child process:
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
#include "support/nats_test.hpp"
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
    test::start_nats_or_skip(server);
    if (server) name = test::remote_name(*server, "remote");
  }
  void in_child(const std::function<int()>& body) { test::expect_child_succeeds(body); }
  std::optional<test::NatsServer> server;
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
    return gone.error().message() == "mailbox '" + name + "': does not exist on " + server->url() ? 0 : 3;
  });
}

TEST_F(RemoteMailbox, ClosingARemovedMailboxIsNotFound) {
  in_child([&] {
    auto box = Mailbox::create(name, {.capacity = 8, .max_message_size = 16});
    if (!box || !Mailbox::remove(name)) return 1;
    auto closed = box->close();
    if (closed || closed.error().errc() != Errc::not_found) return 2;
    return closed.error().message() == "mailbox '" + name + "': does not exist on " + server->url() ? 0 : 3;
  });
}

TEST_F(RemoteMailbox, ErrorsNameTheMailboxAndTheCause) {
  in_child([&] {
    if (!Mailbox::create(name, {.max_message_size = 8})) return 1;
    auto twice = Mailbox::create(name);
    if (twice || twice.error().errc() != Errc::already_exists) return 2;
    if (twice.error().message() != "mailbox '" + name + "': already exists on " + server->url()) return 3;
    auto box = Mailbox::open(name);
    auto big = box->send(as_bytes("nine bytes"));
    if (big || big.error().message() != "mailbox '" + name + "': message of 10 bytes is over the mailbox's maximum of 8") {
      return 4;
    }
    auto huge = Mailbox::create(name + "-huge", {.max_message_size = 64u << 20});
    if (huge || huge.error().errc() != Errc::too_large) return 6;
    auto loan = box->loan(4);
    if (loan || loan.error().errc() != Errc::invalid_argument) return 7;
    auto replicated = Mailbox::create(name + "-r3", {.capacity = 8, .replicas = 3});
    if (replicated || replicated.error().errc() != Errc::invalid_argument ||
        replicated.error().message() != "mailbox '" + name + "-r3': a bounded mailbox cannot have replicas: the copies of a "
                                        "full stream drift apart on nats-server 2.9 and a failover loses messages; use "
                                        "unbounded buffering") {
      return 9;
    }
    for (const char* bad : {"nats://", "nats://host", "nats://host/", "nats://host/a.b", "nats://host/a b", "nats://a@b/x"}) {
      auto opened = Mailbox::open(bad);
      if (opened || opened.error().errc() != Errc::invalid_name) return 8;
    }
    return 0;
  });
}

// A handle remembers what it handed over, to pass over redeliveries after a failover; a
// mailbox removed and made again under its name reuses stream sequences, and its
// messages must not be taken for those. Each is received once, by the old handle or a
// new one.
TEST_F(RemoteMailbox, AMailboxMadeAgainUnderItsNameLosesNothingToAnOldHandle) {
  in_child([&] {
    if (!Mailbox::create(name, {.max_message_size = 8})) return 1;
    auto old_handle = Mailbox::open(name);
    if (!old_handle) return 2;
    for (std::uint32_t value = 0; value < 3; ++value) {
      if (!old_handle->send_value(value)) return 3;
    }
    for (std::uint32_t value = 0; value < 3; ++value) {
      auto got = old_handle->receive_value<std::uint32_t>(5s);
      if (!got || *got != value) return 4;
    }
    if (!Mailbox::remove(name) || !Mailbox::create(name, {.max_message_size = 8})) return 5;
    auto sender = Mailbox::open(name);
    for (std::uint32_t value = 100; value < 103; ++value) {
      if (!sender || !sender->send_value(value)) return 6;
    }
    std::vector<std::uint32_t> received;
    for (auto got = old_handle->receive_value<std::uint32_t>(2s); got; got = old_handle->receive_value<std::uint32_t>(2s)) {
      received.push_back(*got);
    }
    auto new_handle = Mailbox::open(name);
    if (!new_handle) return 7;
    for (auto got = new_handle->receive_value<std::uint32_t>(2s); got; got = new_handle->receive_value<std::uint32_t>(2s)) {
      received.push_back(*got);
    }
    std::sort(received.begin(), received.end());
    if (received != std::vector<std::uint32_t>{100, 101, 102}) {
      std::fprintf(stderr, "received %zu messages\n", received.size());
      return 8;
    }
    return 0;
  });
}

TEST_F(RemoteMailbox, AnUnreachableServerIsAClearErrorNotAHang) {
  const std::string url = server->url();
  server->kill();
  in_child([&] {
    const auto start = std::chrono::steady_clock::now();
    auto opened = Mailbox::open(name);
    if (opened || opened.error().errc() != Errc::unreachable) return 1;
    if (opened.error().message().find("cannot reach the NATS server " + url) == std::string::npos) return 2;
    auto listed = Mailbox::list(url);
    if (listed || listed.error().errc() != Errc::unreachable) return 4;
    return std::chrono::steady_clock::now() - start < 10s ? 0 : 3;
  });
}

TEST_F(RemoteMailbox, ASystemOwnedMailboxKeepsWhatWasSentAcrossAServerRestart) {
  in_child([&] {
    auto box = Mailbox::create(name, {.capacity = 8, .max_message_size = 16, .ownership = Ownership::system});
    return box && box->send(as_bytes("kept")) ? 0 : 1;
  });
  ASSERT_TRUE(server->restart());
  in_child([&] {
    auto box = Mailbox::open(name);
    if (!box) return 1;
    std::vector<std::byte> message;
    return box->receive(message, 10s) && text_of(message) == "kept" ? 0 : 2;
  });
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
    if (natsConnection_ConnectTo(&connection, server->url().c_str()) != NATS_OK) return 1;
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

// The server cannot see a process die: the owner renews a lease (every 2 s, kept 6 s),
// and whoever finds it lapsed removes the mailbox.
TEST_F(RemoteMailbox, AProcessOwnedMailboxLivesWhileItsOwnerDoesAndGoesWhenItIsKilled) {
  test::Pipe progress;
  auto owner = ChildProcess::spawn([&] {
    auto box = Mailbox::create(name, {.capacity = 8, .max_message_size = 16});  // process-owned
    if (!box || !box->send(as_bytes("one"))) return 1;
    progress.send("created");
    for (;;) std::this_thread::sleep_for(1s);
  });
  ASSERT_EQ(progress.receive(), "created");
  const auto owner_pid = std::to_string(owner.pid());
  auto receiver = ChildProcess::spawn([&] {
    std::this_thread::sleep_for(8s);  // longer than a lease: the owner's renewals keep it
    auto box = Mailbox::open(name);
    if (!box) return 1;
    std::vector<std::byte> message;
    if (!box->receive(message, 10s) || text_of(message) != "one") return 2;
    progress.send("received");
    auto got = box->receive(message);  // blocks until the owner has gone
    if (got || got.error().errc() != Errc::closed) return 3;
    const std::string expected = "mailbox '" + name + "': is closed: its owner, process " + owner_pid + " (";
    if (got.error().message().rfind(expected, 0) != 0) return std::fprintf(stderr, "%s\n", got.error().message().c_str()), 4;
    return 0;
  });
  ASSERT_EQ(progress.receive(), "received");
  const auto killed = std::chrono::steady_clock::now();
  owner.kill();
  EXPECT_TRUE(receiver.wait(30s).exited_with(0));
  const auto delay = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - killed);
  std::printf("[ lease ] owner killed: its blocked receiver got Closed after %lld ms\n",
              static_cast<long long>(delay.count()));
  EXPECT_LT(delay, 20s);  // lease_time (6 s), two looks 2.5 s apart, with room for a loaded machine
  in_child([&] {
    auto gone = Mailbox::open(name);
    return !gone && gone.error().errc() == Errc::not_found ? 0 : 1;
  });
}

TEST_F(RemoteMailbox, AnOwnerThatExitsOrRemovesItsMailboxTakesItAlongAtOnce) {
  auto owner = ChildProcess::spawn([&] {
    if (!Mailbox::create(name, {.capacity = 8, .max_message_size = 16})) return 1;
    std::exit(0);  // a normal exit, with its handlers
  });
  ASSERT_TRUE(owner.wait(30s).exited_with(0));
  in_child([&] {
    auto gone = Mailbox::open(name);
    if (gone || gone.error().errc() != Errc::not_found) return 1;
    // The name is free again; this owner removes it itself, and nothing is left.
    if (!Mailbox::create(name, {.capacity = 8, .max_message_size = 16}) || !Mailbox::remove(name)) return 2;
    auto removed = Mailbox::open(name);
    return !removed && removed.error().errc() == Errc::not_found ? 0 : 3;
  });
}

TEST_F(RemoteMailbox, AKilledOwnersMailboxIsRemovedByAnOpenACreateOrGc) {
  const std::string other = name + "-gc";
  auto owner = ChildProcess::spawn([&] {
    if (!Mailbox::create(name, {.capacity = 8, .max_message_size = 16})) return 1;
    if (!Mailbox::create(other, {.capacity = 8, .max_message_size = 16})) return 2;
    for (;;) std::this_thread::sleep_for(1s);
  });
  std::this_thread::sleep_for(500ms);
  in_child([&] {
    auto taken = Mailbox::create(name);
    return !taken && taken.error().errc() == Errc::already_exists ? 0 : 1;
  });
  const std::string owner_pid = std::to_string(owner.pid());
  auto cli = [](std::vector<std::string> args) {
    args.insert(args.begin(), SHMBOX_CLI_PATH);
    return test::run_command(args);
  };
  EXPECT_EQ(cli({"gc", server->url()}).out, "nothing to remove\n");  // the owner lives
  owner.kill();
  std::this_thread::sleep_for(7s);  // the lease lapses
  in_child([&] {
    auto shown = Mailbox::stat(name);
    if (!shown || shown->ownership != Ownership::process || shown->owner_alive) return 1;
    auto gone = Mailbox::open(name);
    if (gone || gone.error().errc() != Errc::not_found) return 2;
    if (gone.error().message().find("its owner, process " + owner_pid + " (") == std::string::npos) return 3;
    return Mailbox::create(name, {.ownership = Ownership::system}) ? 0 : 4;
  });
  auto collected = cli({"gc", server->url()});
  EXPECT_EQ(collected.out, "removed mailbox '" + other + "': its owner, process " + owner_pid + ", had exited\n");
  auto bad = cli({"gc", "nats://a b"});
  EXPECT_EQ(bad.err, "shmbox: server 'nats://a b': a server is nats://host[:port][,host[:port]...]\n");
  EXPECT_EQ(cli({"ls", server->url()}).out.find(other), std::string::npos);
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
  EXPECT_EQ(gone.err, "shmbox: mailbox '" + name + "': does not exist on " + server->url() + "\n");
}

TEST_F(RemoteMailbox, TheToolShowsAndListsWhatTheServerKnows) {
  auto cli = [](std::vector<std::string> args) {
    args.insert(args.begin(), SHMBOX_CLI_PATH);
    return test::run_command(args);
  };
  ASSERT_TRUE(cli({"create", name, "--capacity", "8", "--max-size", "64"}).status.exited_with(0));
  ASSERT_TRUE(cli({"send", name, "one", "two", "three"}).status.exited_with(0));
  auto shown = cli({"stat", name});
  EXPECT_TRUE(shown.status.exited_with(0)) << shown.err;
  EXPECT_NE(shown.out.find("mailbox " + name + "\n  owner         system\n  buffering     bounded\n"
                           "  capacity      8\n  max size      64 bytes\n  queued        3 (0 being received)\n"
                           "  state         open\n"),
            std::string::npos)
      << shown.out;
  auto json = cli({"stat", name, "--json"});
  EXPECT_NE(json.out.find(R"("queued":3)"), std::string::npos) << json.out;
  EXPECT_NE(json.out.find(R"("replicas":1)"), std::string::npos) << json.out;
  auto listed = cli({"ls", server->url()});
  EXPECT_TRUE(listed.status.exited_with(0)) << listed.err;
  EXPECT_NE(listed.out.find(name), std::string::npos) << listed.out;
  auto bad_server = cli({"ls", "nats://a@b"});
  EXPECT_TRUE(bad_server.status.exited_with(64)) << bad_server.status.describe();
  EXPECT_EQ(bad_server.err, "shmbox: server 'nats://a@b': a server is nats://host[:port][,host[:port]...]\n");
  ASSERT_TRUE(cli({"rm", name}).status.exited_with(0));
  auto missing = cli({"stat", name});
  EXPECT_TRUE(missing.status.exited_with(66));
  EXPECT_EQ(missing.err, "shmbox: mailbox '" + name + "': does not exist on " + server->url() + "\n");
  EXPECT_EQ(cli({"ls", server->url()}).out.find(name), std::string::npos);
}

// What the tool promises for a local mailbox it keeps for a remote one: wait, a message
// that could not be written out stays queued, --json, close, and a clear refusal of what a
// NATS server cannot do.
TEST_F(RemoteMailbox, TheToolKeepsItsPromisesForRemoteMailboxesToo) {
  auto cli = [](std::vector<std::string> args) {
    args.insert(args.begin(), SHMBOX_CLI_PATH);
    return test::run_command(args);
  };
  auto shell = [](const std::string& script) {
    return test::run_command({"/bin/sh", "-c", "SHMBOX=" SHMBOX_CLI_PATH "; " + script});
  };
  auto creator = ChildProcess::spawn([&] {
    std::this_thread::sleep_for(300ms);
    return cli({"create", name, "--capacity", "4", "--max-size", "32"}).status.exited_with(0) ? 0 : 1;
  });
  auto waited = cli({"wait", name, "--timeout", "20s"});
  EXPECT_TRUE(waited.status.exited_with(0)) << waited.err;
  ASSERT_TRUE(creator.wait().exited_with(0));

  ASSERT_TRUE(cli({"send", name, "hello", "world"}).status.exited_with(0));
  auto full = shell("$SHMBOX recv " + name + " > /dev/full");
  EXPECT_TRUE(full.status.exited_with(74)) << full.status.describe();
  EXPECT_EQ(full.err, "shmbox: stdout: No space left on device; 0 of 1 message written, the message not written "
                      "stays queued in mailbox '" + name + "'\n");
  auto stat = cli({"stat", name, "--json"});
  EXPECT_NE(stat.out.find(R"("transport":"nats")"), std::string::npos) << stat.out;
  EXPECT_NE(stat.out.find(R"("mode":null)"), std::string::npos) << stat.out;

  auto json = cli({"recv", name, "--json", "--timeout", "10s"});
  EXPECT_TRUE(json.status.exited_with(0)) << json.err;
  EXPECT_NE(json.out.find(R"("data":"aGVsbG8=")"), std::string::npos) << json.out;  // "hello", first as sent
  EXPECT_NE(json.out.find(R"("size":5)"), std::string::npos) << json.out;
  EXPECT_NE(json.out.find(R"("mailbox":")" + name + '"'), std::string::npos) << json.out;  // named in full

  auto mode = cli({"create", test::remote_name(*server, "moded"), "--mode", "0644"});
  EXPECT_TRUE(mode.status.exited_with(64)) << mode.status.describe();
  EXPECT_EQ(mode.err, "shmbox: --mode: a nats:// mailbox has no permission bits: the server's accounts decide who "
                      "may use it\n");

  ASSERT_TRUE(cli({"close", name}).status.exited_with(0));
  auto refused = cli({"send", name, "late"});
  EXPECT_TRUE(refused.status.exited_with(69)) << refused.status.describe() << refused.err;
  auto rest = cli({"recv", name, "--timeout", "10s"});
  EXPECT_EQ(rest.out, "world\n") << rest.err;
  EXPECT_TRUE(cli({"rm", name}).status.exited_with(0));
}

// A three-server JetStream cluster and an unbounded mailbox kept on all three (replicas 3): while a
// sender and a receiver run, the server leading the receivers' consumer is killed with
// SIGKILL and restarted, then the one leading the stream. Every message whose send
// returned success is received, and none twice: a message in flight when a leader dies
// (published, or delivered and not yet acknowledged) comes out once.
TEST(RemoteCluster, AReplicatedMailboxLosesNothingWhenItsLeadersAreKilled) {
  std::optional<std::vector<test::NatsServer>> cluster;
  test::start_cluster_or_skip(cluster, 3);
  if (!cluster) return;
  const auto replicated = test::create_replicated_mailbox(*cluster, "r3", 16);
  ASSERT_TRUE(replicated);
  const std::string& name = replicated->name;
  constexpr std::uint32_t count = 3000;
  struct Ledger {
    std::atomic<std::uint8_t> sent[count];
    std::atomic<std::uint8_t> received[count];
    std::atomic<bool> sender_done;
    std::atomic<bool> kills_done;
  };
  const std::string ledger_name = test::unique_name("r3-ledger");
  auto ledger_segment = Segment::create(ledger_name, sizeof(Ledger));
  ASSERT_TRUE(ledger_segment);
  auto* ledger = new (ledger_segment->writable_bytes()->data()) Ledger{};

  test::Pipe progress;
  auto sender = ChildProcess::spawn([&] {
    auto box = Mailbox::open(name);
    if (!box) return 1;
    for (std::uint32_t i = 0; i < count; ++i) {
      auto sent = box->send_value(i, 30s);
      if (sent) ledger->sent[i].store(1);
      if (!sent) std::fprintf(stderr, "send %u: %s\n", i, sent.error().message().c_str());
      if (i == count / 3) progress.send("a third");
      if (i == 2 * count / 3) progress.send("two thirds");
      // Still sending when the second leader is killed, however long the cluster takes to
      // be whole again after the first.
      if (i > 2 * count / 3 && !ledger->kills_done.load()) std::this_thread::sleep_for(5ms);
    }
    ledger->sender_done.store(true);
    return 0;
  });
  // Until the sender is done and everything it was promised is in, however long the new
  // leader takes to serve; any error but a timeout fails the test.
  auto receiver = ChildProcess::spawn([&] {
    auto box = Mailbox::open(name);
    if (!box) return std::fprintf(stderr, "open: %s\n", box.error().message().c_str()), 1;
    const auto give_up = std::chrono::steady_clock::now() + 100s;
    for (;;) {
      auto message = box->receive_value<std::uint32_t>(2s);
      if (message) {
        if (*message < count) ledger->received[*message].fetch_add(1);
        continue;
      }
      if (message.error().errc() != Errc::timeout) {
        return std::fprintf(stderr, "receive: %s\n", message.error().message().c_str()), 2;
      }
      if (ledger->sender_done.load() && ledger->kills_done.load()) {
        std::uint32_t missing = 0;
        for (std::uint32_t i = 0; i < count; ++i) missing += ledger->sent[i].load() != 0 && ledger->received[i].load() == 0;
        if (missing == 0) return 0;
      }
      if (std::chrono::steady_clock::now() > give_up) return 3;
    }
  });
  auto received = [&] {
    std::uint32_t distinct = 0;
    for (std::uint32_t i = 0; i < count; ++i) distinct += ledger->received[i].load() > 0 ? 1u : 0u;
    return distinct;
  };
  ASSERT_EQ(progress.receive(60s), "a third");
  const std::uint32_t first_at = received();
  const std::string consumer_leader = test::kill_leader(*cluster, replicated->stream, "receivers");
  ASSERT_FALSE(consumer_leader.empty());
  ASSERT_EQ(progress.receive(60s), "two thirds");
  const std::uint32_t second_at = received();
  const std::string stream_leader = test::kill_leader(*cluster, replicated->stream);
  ledger->kills_done.store(true);
  ASSERT_FALSE(stream_leader.empty());
  EXPECT_TRUE(sender.wait(120s).exited_with(0));
  EXPECT_TRUE(receiver.wait(120s).exited_with(0));

  std::uint32_t promised = 0, lost = 0, twice = 0;
  std::string lost_values;
  for (std::uint32_t i = 0; i < count; ++i) {
    if (ledger->sent[i].load() != 0) {
      ++promised;
      if (ledger->received[i].load() == 0) {
        ++lost;
        lost_values += ' ';
        lost_values += std::to_string(i);
      }
    }
    if (ledger->received[i].load() > 1) ++twice;
  }
  std::printf("[ R3 failover ] consumer leader %s killed at %u received, stream leader %s at %u: %u sends returned "
              "success, %u lost [%s ], %u received twice\n",
              consumer_leader.c_str(), first_at, stream_leader.c_str(), second_at, promised, lost, lost_values.c_str(), twice);
  EXPECT_GT(promised, count / 3);
  EXPECT_EQ(lost, 0u);
  EXPECT_EQ(twice, 0u);
  (void)Segment::remove(ledger_name);
}

}  // namespace
}  // namespace shmbox
