// Remote services (nats://host:port/NAME) against a real nats-server, started by each test
// on loopback: answers across processes, servers sharing requests, streams taken once and
// in order, a server killed holding a request replaced with nothing lost, a request that
// kills every server failing after its attempts, and every error. Every use of the NATS
// client is in a child process: the client is not fork-safe.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <functional>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "shmbox/service.hpp"
#include "support/nats_test.hpp"
#include "support/process.hpp"
#include "support/text.hpp"

namespace shmbox {
namespace {

using namespace std::chrono_literals;
using test::ChildProcess;
using test::failed;
using test::fails_with;
using test::Pipe;
using test::text_of;

class RemoteService : public ::testing::Test {
 protected:
  void SetUp() override {
    test::start_nats_or_skip(server);
    if (server) name = test::remote_name(*server, "service");
  }
  void in_child(const std::function<int()>& body) { test::expect_child_succeeds(body); }
  // A server process that answers each request with its text after `prefix`, `count` times.
  ChildProcess serve(int count, const std::string& prefix, const ServiceOptions& options = {}) {
    return ChildProcess::spawn([this, count, prefix, options] {
      auto joined = Server::join(name, options);
      if (!joined) return failed(1, joined.error());
      for (int n = 0; n < count; ++n) {
        auto request = joined->next(30s);
        if (!request) return failed(2, request.error());
        if (auto answered = request->answer(as_bytes(prefix + text_of(request->data()))); !answered) {
          return failed(3, answered.error());
        }
      }
      return 0;
    });
  }
  // Waits until the service exists (its first server has joined).
  void wait_for_service() {
    in_child([&] {
      for (int i = 0; i < 300; ++i) {
        if (Client::connect(name)) return 0;
        std::this_thread::sleep_for(20ms);
      }
      return 1;
    });
  }
  std::string object() const { return "service '" + name + "'"; }
  std::optional<test::NatsServer> server;
  std::string name;
};

TEST_F(RemoteService, ACallGetsItsAnswerFromAServerInAnotherProcess) {
  auto served = serve(2, "answer to ");
  wait_for_service();
  in_child([&] {
    auto client = Client::connect(name);
    if (!client) return failed(1, client.error());
    if (client->name() != name || client->max_request_size() != 65536) return 2;
    auto first = client->call(as_bytes("one"), 10s);
    if (!first) return failed(3, first.error());
    auto later = client->send(as_bytes("two"), 10s);
    if (!later) return failed(4, later.error());
    auto second = later->answer();
    if (!second) return failed(5, second.error());
    return text_of(*first) == "answer to one" && text_of(*second) == "answer to two" && later->ended() ? 0 : 6;
  });
  EXPECT_TRUE(served.wait(30s).exited_with(0));
}

TEST_F(RemoteService, ServersShareTheRequestsAndEachIsAnsweredOnce) {
  constexpr int calls = 40;
  Pipe counts;
  std::vector<ChildProcess> servers;
  for (const char* tag : {"a:", "b:"}) {
    servers.push_back(ChildProcess::spawn([&, tag] {
      auto joined = Server::join(name);
      if (!joined) return failed(1, joined.error());
      int answered = 0;
      for (;;) {
        auto request = joined->next(3s);
        if (!request) break;
        if (!request->answer(as_bytes(tag + text_of(request->data())))) return 2;
        ++answered;
      }
      counts.send(std::to_string(answered));
      return 0;
    }));
  }
  wait_for_service();
  std::this_thread::sleep_for(300ms);  // both in the group
  in_child([&] {
    auto client = Client::connect(name);
    if (!client) return failed(1, client.error());
    for (int i = 0; i < calls; ++i) {
      auto answer = client->call(as_bytes(std::to_string(i)), 10s);
      if (!answer) return failed(2, answer.error());
      const std::string text = text_of(*answer);
      if (text != "a:" + std::to_string(i) && text != "b:" + std::to_string(i)) return 3;
    }
    return 0;
  });
  int total = 0;
  for (int i = 0; i < 2; ++i) {
    auto count = counts.receive(30s);
    ASSERT_TRUE(count);
    EXPECT_GT(std::stoi(*count), 0) << "a server answered nothing";
    total += std::stoi(*count);
  }
  EXPECT_EQ(total, calls);
  for (auto& one : servers) EXPECT_TRUE(one.wait(30s).exited_with(0));
}

TEST_F(RemoteService, AServerKilledHoldingARequestLeavesItToAnotherAndEachPartArrivesOnce) {
  Pipe holding;
  auto first = ChildProcess::spawn([&] {
    auto joined = Server::join(name);
    if (!joined) return failed(1, joined.error());
    auto request = joined->next(30s);
    if (!request || request->takes() != 1) return 2;
    if (!request->answer_part(as_bytes("part 0"))) return 3;
    holding.send("holding");
    std::this_thread::sleep_for(60s);  // killed here
    return 4;
  });
  wait_for_service();
  Pipe answered;
  auto client = ChildProcess::spawn([&] {
    auto connected = Client::connect(name);
    if (!connected) return failed(1, connected.error());
    auto call = connected->send(as_bytes("stream"), 30s);
    if (!call) return failed(2, call.error());
    std::vector<std::string> parts;
    for (;;) {
      auto part = call->next_part();
      if (!part) return failed(3, part.error());
      if (!*part) break;
      parts.push_back(text_of(**part));
    }
    const bool once = parts == std::vector<std::string>{"part 0", "part 1", "part 2"};
    if (!once) {
      for (const auto& one : parts) std::fprintf(stderr, "got '%s'\n", one.c_str());
    }
    return once ? 0 : 4;
  });
  ASSERT_TRUE(holding.receive(30s));
  // The second server joins only now: the request went to the first.
  auto second = ChildProcess::spawn([&] {
    auto joined = Server::join(name);
    if (!joined) return failed(1, joined.error());
    auto request = joined->next(30s);
    if (!request) return failed(2, request.error());
    if (request->takes() != 2) return 3;
    for (const char* part : {"part 0", "part 1", "part 2"}) {
      if (!request->answer_part(as_bytes(part))) return 4;
    }
    return request->end() ? 0 : 5;
  });
  std::this_thread::sleep_for(200ms);
  first.kill(SIGKILL);
  EXPECT_TRUE(client.wait(30s).exited_with(0));
  EXPECT_TRUE(second.wait(30s).exited_with(0));
}

// A request queued behind a long one at a busy server is that server's (it says `working`
// for it from its arrival): its client does not send it again, and it is run once.
TEST_F(RemoteService, ARequestQueuedBehindALongOneIsRunOnce) {
  Pipe counted;
  auto slow = ChildProcess::spawn([&] {
    auto joined = Server::join(name);
    if (!joined) return failed(1, joined.error());
    int taken = 0;
    for (;;) {
      auto request = joined->next(4s);
      if (!request) break;
      ++taken;
      std::this_thread::sleep_for(1500ms);  // longer than a client's lease
      if (!request->answer(request->data())) return 2;
    }
    counted.send(std::to_string(taken));
    return 0;
  });
  wait_for_service();
  in_child([&] {
    auto client = Client::connect(name);
    if (!client) return failed(1, client.error());
    auto first = client->send(as_bytes("first"), 30s);
    auto second = client->send(as_bytes("second"), 30s);
    if (!first || !second) return 2;
    auto one = first->answer();
    auto two = second->answer();
    if (!one || !two) return failed(3, !one ? one.error() : two.error());
    return text_of(*one) == "first" && text_of(*two) == "second" ? 0 : 4;
  });
  EXPECT_EQ(counted.receive(30s), "2");
  EXPECT_TRUE(slow.wait(30s).exited_with(0));
}

TEST_F(RemoteService, ARequestWhoseServersAllDieFailsAfterItsAttempts) {
  // Each server dies as it takes the request; the supervisor starts another.
  std::atomic<bool> done{false};
  std::thread supervisor{[&] {
    while (!done) {
      auto dying = ChildProcess::spawn([&] {
        auto joined = Server::join(name, {.attempts = 2});
        if (!joined) return failed(1, joined.error());
        auto request = joined->next(10s);
        if (request) ::raise(SIGKILL);
        return 0;
      });
      (void)dying.wait(20s);
    }
  }};
  wait_for_service();
  in_child([&] {
    auto client = Client::connect(name);
    if (!client) return failed(1, client.error());
    return fails_with(client->call(as_bytes("poison"), 30s), Errc::task_failed,
                      object() + ": request 1 failed: its server died during each of its 2 attempts")
               ? 0
               : 2;
  });
  done = true;
  in_child([&] { return Server::remove(name) ? 0 : 1; });
  supervisor.join();
}

TEST_F(RemoteService, RefusalsTimeoutsAndRemovalSayWhy) {
  in_child([&] {
    if (!fails_with(Client::connect(name), Errc::not_found, object() + ": does not exist (no server has joined it)")) {
      return 1;
    }
    if (!fails_with(Server::open(name), Errc::not_found, object() + ": does not exist (no server has joined it)")) {
      return 2;
    }
    if (!fails_with(Server::remove(name), Errc::not_found, object() + ": does not exist (no server has joined it)")) {
      return 3;
    }
    if (!fails_with(Server::join(name, {.max_request_size = 2 << 20}), Errc::too_large,
                    object() + ": max_request_size 2097184 (and its headers) is over the server's maximum payload of "
                               "1048576 bytes")) {
      return 4;
    }
    auto joined = Server::join(name, {.max_request_size = 8});
    if (!joined) return failed(5, joined.error());
    auto client = Client::connect(name);
    if (!client) return failed(6, client.error());
    if (client->max_request_size() != 8) return 7;
    if (!fails_with(client->call(as_bytes("123456789"), 1s), Errc::too_large,
                    object() + ": a request of 9 bytes is over its maximum of 8")) {
      return 8;
    }
    // Nobody serves it here: the call waits for its deadline.
    if (!fails_with(client->call(as_bytes("nobody"), 300ms), Errc::timeout,
                    object() + ": no answer to request 1 in time")) {
      return 9;
    }
    if (!fails_with(joined->next(no_wait), Errc::would_block, "would block")) return 10;
    return 0;
  });
  // A server holding a request and waiting for the next, and the request's client: the
  // removal reaches both.
  Pipe serving_pipe;
  Pipe released;
  auto serving = ChildProcess::spawn([&] {
    auto joined = Server::open(name);
    if (!joined) return failed(1, joined.error());
    serving_pipe.send("serving");
    auto held = joined->next(30s);
    if (!held) return failed(2, held.error());
    serving_pipe.send("holding");
    if (!fails_with(joined->next(), Errc::closed, object() + ": was removed")) return 3;
    // Holds the request until its client has seen the removal: dropped, it would fail the call.
    return released.receive(30s) ? 0 : 4;
  });
  ASSERT_TRUE(serving_pipe.receive(30s));
  auto client = ChildProcess::spawn([&] {
    auto connected = Client::connect(name);
    if (!connected) return failed(1, connected.error());
    auto call = connected->send(as_bytes("wait"));
    if (!call) return failed(2, call.error());
    return fails_with(call->answer(), Errc::closed, object() + ": was removed; request 1 has no answer") ? 0 : 3;
  });
  ASSERT_TRUE(serving_pipe.receive(30s));
  in_child([&] {
    auto removed = Server::remove(name);
    return removed ? 0 : failed(1, removed.error());
  });
  EXPECT_TRUE(client.wait(30s).exited_with(0));
  released.send("released");
  EXPECT_TRUE(serving.wait(30s).exited_with(0));
}

}  // namespace
}  // namespace shmbox
