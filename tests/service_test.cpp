// Request/response across processes: answers reach their own client only, servers share
// the requests, streams arrive in order and once, a server killed holding a request loses
// nothing, a request that kills every server fails after its attempts, deadlines and dead
// clients are honoured, and every refusal is named exactly.
#include "shmbox/service.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <thread>

#include "shmbox/cleanup.hpp"
#include "support/process.hpp"

namespace shmbox {
namespace {

using namespace std::chrono_literals;
using test::ChildProcess;

std::string text_of(std::span<const std::byte> bytes) { return {reinterpret_cast<const char*>(bytes.data()), bytes.size()}; }

class ServiceTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(Server::join(name, {.attempts = 2})); }
  void TearDown() override { (void)Server::remove(name); }

  // A server process that answers each request with `answer(request)`, `count` times.
  ChildProcess serve(int count, std::function<std::string(const std::string&)> answer) {
    return ChildProcess::spawn([this, count, answer] {
      auto server = Server::join(name);
      if (!server) return 1;
      for (int n = 0; n < count; ++n) {
        auto request = server->next(30s);
        if (!request) return 2;
        if (!request->answer(as_bytes(answer(text_of(request->data()))))) return 3;
      }
      return 0;
    });
  }

  std::string name = test::unique_name("service");
};

TEST_F(ServiceTest, ACallGetsItsAnswerFromAServerInAnotherProcess) {
  auto server = serve(2, [](const std::string& request) { return "hello, " + request; });
  auto client = Client::connect(name).value();
  EXPECT_EQ(text_of(client.call(as_bytes("world"), 10s).value()), "hello, world");
  EXPECT_EQ(text_of(client.call(as_bytes(""), 10s).value()), "hello, ");
  EXPECT_TRUE(server.wait().exited_with(0));
}

// Each request goes to exactly one server; every client gets its own answers only. Each
// server exits with the number of requests it answered: together, every one, and each
// some (a server holds each request a while, so that two clients' calls overlap).
TEST_F(ServiceTest, ServersShareTheRequestsAndEachClientGetsItsOwnAnswers) {
  constexpr int per_client = 40;
  std::vector<ChildProcess> servers;
  for (int i = 0; i < 2; ++i) {
    servers.push_back(ChildProcess::spawn([this] {
      auto server = Server::join(name);
      if (!server) return 201;
      for (int answered = 0;; ++answered) {
        auto request = server->next();
        if (!request) return request.error() == Errc::closed ? answered : 202;
        std::this_thread::sleep_for(2ms);
        (void)request->answer(as_bytes(text_of(request->data()) + " by " + std::to_string(::getpid())));
      }
    }));
  }
  std::vector<ChildProcess> clients;
  for (int c = 0; c < 2; ++c) {
    clients.push_back(ChildProcess::spawn([this, c] {
      auto client = Client::connect(name);
      if (!client) return 1;
      for (int n = 0; n < per_client; ++n) {
        const std::string request = std::to_string(c) + "/" + std::to_string(n);
        auto answer = client->call(as_bytes(request), 20s);
        if (!answer) return 2;
        if (!text_of(*answer).starts_with(request + " by ")) return 3;
      }
      return 0;
    }));
  }
  for (auto& client : clients) EXPECT_TRUE(client.wait(60s).exited_with(0));
  ASSERT_TRUE(Server::remove(name));
  int answered = 0;
  for (auto& server : servers) {
    const auto status = server.wait(10s);
    ASSERT_EQ(status.kind, test::ExitStatus::Kind::exited) << status.describe();
    EXPECT_GT(status.code, 0) << "a server answered nothing";
    answered += status.code;
  }
  EXPECT_EQ(answered, 2 * per_client);
}

TEST_F(ServiceTest, AStreamOfAnswersArrivesInOrderAndEnds) {
  auto server = ChildProcess::spawn([this] {
    auto request = Server::join(name).value().next(30s);
    if (!request) return 1;
    for (int part = 0; part < 5; ++part) {
      if (!request->answer_part(as_bytes("part " + std::to_string(part) + ";"))) return 2;
    }
    return request->end() ? 0 : 3;
  });
  auto client = Client::connect(name).value();
  auto call = client.send(as_bytes("count to 5")).value();
  auto first = call.next_part(10s);
  ASSERT_TRUE(first && *first);
  EXPECT_EQ(text_of(**first), "part 0;");
  EXPECT_EQ(text_of(call.answer(10s).value()), "part 1;part 2;part 3;part 4;");
  EXPECT_TRUE(call.ended());
  EXPECT_FALSE(call.next_part(no_wait).value().has_value());
  EXPECT_TRUE(server.wait().exited_with(0));
}

// Calls outstanding at once: answers that come for another call wait for it.
TEST_F(ServiceTest, CallsSentWithoutWaitingAreAnsweredInAnyOrder) {
  auto server = ChildProcess::spawn([this] {
    auto server_handle = Server::join(name).value();
    auto first = server_handle.next(30s);
    auto second = server_handle.next(30s);
    if (!first || !second) return 1;
    return second->answer(as_bytes("second")) && first->answer(as_bytes("first")) ? 0 : 2;
  });
  auto client = Client::connect(name).value();
  auto one = client.send(as_bytes("1"), no_wait).value();
  auto two = client.send(as_bytes("2"), no_wait).value();
  EXPECT_EQ(one.id() + 1, two.id());
  EXPECT_EQ(text_of(one.answer(10s).value()), "first");
  EXPECT_EQ(text_of(two.answer(10s).value()), "second");
  EXPECT_TRUE(server.wait().exited_with(0));
}

// A server killed holding a request, mid-stream: another server takes it afresh, and the
// client gets each part once.
TEST_F(ServiceTest, AServerKilledHoldingARequestLosesNothingAndRepeatsNothing) {
  test::TemporaryDirectory directory;
  const std::string mark = directory.path() + "/sent";
  auto victim = ChildProcess::spawn([this, mark] {
    auto request = Server::join(name).value().next(30s);
    if (!request) return 1;
    if (!request->answer_part(as_bytes("a")) || !request->answer_part(as_bytes("b"))) return 2;
    std::fclose(std::fopen(mark.c_str(), "w"));
    std::this_thread::sleep_for(60s);  // killed here, the request held
    return 3;
  });
  auto client = Client::connect(name).value();
  auto call = client.send(as_bytes("abcd")).value();
  EXPECT_EQ(text_of(call.next_part(10s).value().value()), "a");
  for (int tries = 0; tries < 600 && ::access(mark.c_str(), F_OK) != 0; ++tries) std::this_thread::sleep_for(10ms);
  victim.kill();
  (void)victim.wait();
  auto survivor = ChildProcess::spawn([this] {
    auto request = Server::join(name).value().next(30s);
    if (!request || request->takes() != 2) return 1;
    for (const char* part : {"a", "b", "c", "d"}) {
      if (!request->answer_part(as_bytes(part))) return 2;
    }
    return request->end() ? 0 : 3;
  });
  EXPECT_EQ(text_of(call.answer(10s).value()), "bcd");
  EXPECT_TRUE(survivor.wait().exited_with(0));
}

TEST_F(ServiceTest, ARequestWhoseServersAllDieFailsAfterItsAttempts) {
  auto client = Client::connect(name).value();
  auto call = client.send(as_bytes("poison")).value();
  for (int attempt = 0; attempt < 2; ++attempt) {
    auto dying = ChildProcess::spawn([this, attempt] {
      auto request = Server::join(name).value().next(30s);
      // The first sends a part of its answer: the failure that ends the call comes after it.
      if (request && attempt == 0) (void)request->answer_part(as_bytes("half"));
      ::_exit(request ? 9 : 1);  // dies holding it
      return 0;
    });
    EXPECT_TRUE(dying.wait().exited_with(9));
  }
  auto last = ChildProcess::spawn([this] {
    auto server = Server::join(name, {.attempts = 2}).value();
    auto request = server.next(500ms);  // the poison is answered on the way, with its failure
    return !request && request.error() == Errc::timeout ? 0 : 1;
  });
  auto answer = call.answer(10s);
  ASSERT_FALSE(answer);
  EXPECT_EQ(answer.error().errc(), Errc::task_failed);
  EXPECT_EQ(answer.error().message(),
            "service '" + name + "': request 1 failed: its server died during each of its 2 attempts");
  EXPECT_TRUE(last.wait().exited_with(0));
}

// No server: the client's deadline ends the wait, naming the request; a server that comes
// later does not take up a request whose deadline has passed.
TEST_F(ServiceTest, AClientWaitsUntilItsDeadlineAndALateServerSkipsTheExpiredRequest) {
  auto client = Client::connect(name).value();
  auto late = client.call(as_bytes("too late"), 100ms);
  ASSERT_FALSE(late);
  EXPECT_EQ(late.error().errc(), Errc::timeout);
  EXPECT_EQ(late.error().message(), "service '" + name + "': no answer to request 1 in time");
  auto server = serve(1, [](const std::string& request) { return request; });
  EXPECT_EQ(text_of(client.call(as_bytes("in time"), 10s).value()), "in time");
  EXPECT_TRUE(server.wait().exited_with(0));
}

// A client that died is not answered: its request is dropped, and its answer mailbox goes.
TEST_F(ServiceTest, ADeadClientsRequestIsDroppedAndItsMailboxReclaimed) {
  test::TemporaryDirectory directory;
  const std::string mailbox_file = directory.path() + "/answers";
  auto doomed = ChildProcess::spawn([this] {
    auto client = Client::connect(name).value();
    (void)client.send(as_bytes("from the dead")).value();
    ::kill(::getpid(), SIGKILL);
    return 1;
  });
  EXPECT_TRUE(doomed.wait().killed_by(SIGKILL));
  auto server = ChildProcess::spawn([this] {
    auto server_handle = Server::join(name).value();
    auto request = server_handle.next(10s);
    return request && text_of(request->data()) == "alive" ? 0 : 1;
  });
  auto client = Client::connect(name).value();
  auto call = client.send(as_bytes("alive")).value();
  EXPECT_TRUE(server.wait().exited_with(0));
  (void)collect_garbage();
  // Only the live client's answer mailbox is left.
  int answer_boxes = 0;
  for (const auto& mailbox : Mailbox::list()) answer_boxes += mailbox.starts_with(name + ".answers-") ? 1 : 0;
  EXPECT_EQ(answer_boxes, 1);
}

// Removing a service fails the calls waiting on it, within about 100 ms, instead of leaving
// them waiting for answers that no server will send.
TEST_F(ServiceTest, RemovingTheServiceFailsTheCallsWaitingOnIt) {
  auto client = Client::connect(name).value();
  auto remover = ChildProcess::spawn([this] {
    std::this_thread::sleep_for(100ms);
    return Server::remove(name) ? 0 : 1;
  });
  auto call = client.call(as_bytes("anyone?"), 10s);
  ASSERT_FALSE(call);
  EXPECT_EQ(call.error().errc(), Errc::closed);
  EXPECT_EQ(call.error().message(), "service '" + name + "': was removed; request 1 has no answer");
  EXPECT_TRUE(remover.wait().exited_with(0));
  auto gone = Server::open(name);
  ASSERT_FALSE(gone);
  EXPECT_EQ(gone.error().message(), "service '" + name + "': does not exist (no server has joined it)");
}

TEST_F(ServiceTest, RefusalsAreNamedExactly) {
  auto missing = Client::connect(name + "-missing");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().message(), "service '" + name + "-missing': does not exist (no server has joined it)");
  auto client = Client::connect(name, {.max_answer_size = 4}).value();
  EXPECT_EQ(client.max_request_size(), 65536u);
  const std::vector<std::byte> huge(65537);
  auto too_large = client.send(huge);
  ASSERT_FALSE(too_large);
  EXPECT_EQ(too_large.error().message(),
            "service '" + name + "': a request of 65537 bytes is over its maximum of 65536");
  auto server = ChildProcess::spawn([this] {
    auto server_handle = Server::join(name).value();
    auto first = server_handle.next(30s);
    if (!first) return 1;
    auto refused = first->answer(as_bytes("too long"));
    if (refused || refused.error().errc() != Errc::too_large) return 2;
    if (first->answer(as_bytes("x")).error().errc() != Errc::invalid_argument) return 3;
    auto second = server_handle.next(30s);
    return second ? 0 : 4;  // destroyed unanswered
  });
  auto over = client.call(as_bytes("1"), 10s);
  ASSERT_FALSE(over);
  EXPECT_EQ(over.error().errc(), Errc::task_failed);
  EXPECT_EQ(over.error().message(),
            "service '" + name + "': request 1 failed: its answer of 8 bytes is over the client's maximum of 4");
  auto dropped = client.call(as_bytes("2"), 10s);
  ASSERT_FALSE(dropped);
  EXPECT_EQ(dropped.error().message(), "service '" + name + "': request 2 failed: the server dropped it unanswered");
  EXPECT_TRUE(server.wait().exited_with(0));
  auto full = Server::join(name, {.attempts = 0});
  ASSERT_FALSE(full);
  EXPECT_EQ(full.error().message(), "service '" + name + "': attempts must be 1 to 100, not 0");
  // No more calls open than answers the client's mailbox holds.
  auto few = Client::connect(name, {.capacity = 2}).value();
  auto first = few.send(as_bytes("a"), no_wait);
  auto second = few.send(as_bytes("b"), no_wait);
  ASSERT_TRUE(first && second);
  auto third = few.send(as_bytes("c"), no_wait);
  ASSERT_FALSE(third);
  EXPECT_EQ(third.error().message(), "service '" + name +
                                         "': 2 calls of this client are open, as many as its answer mailbox holds: "
                                         "take their answers first");
}

}  // namespace
}  // namespace shmbox
