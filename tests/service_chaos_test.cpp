// Chaos: servers of a service killed with SIGKILL at random moments (most of them while
// they hold a request, between its answers) and restarted, beside clients that call it
// (killed and restarted too). Each answer is a stream of three parts computed from the
// request; checked throughout: every call a client completes gets exactly its answer, each
// part once and in order, and no call fails or times out. At the end the service still
// answers.
//
// SHMBOX_CHAOS_SECONDS=N turns it into a soak of N seconds (default: 300 kills, at least
// 150 of them of a server holding a request).
#include <gtest/gtest.h>
#include <atomic>
#include <random>
#include <thread>

#include "shmbox/service.hpp"
#include "support/chaos.hpp"
#include "support/process.hpp"

namespace shmbox {
namespace {

using namespace std::chrono_literals;
using test::ChildProcess;

constexpr int servers = 3;
constexpr int clients = 3;
constexpr int workers = servers + clients;

struct Ledger {
  std::atomic<bool> stop_calling;  // first the clients stop, then (their calls answered) the servers
  std::atomic<bool> stop;
  test::Violations violations;
  std::atomic<std::uint64_t> calls;
  std::atomic<std::uint64_t> answered;  // requests a server finished answering
  std::atomic<std::int64_t> holding[servers];  // pid of the server holding a request, 0 otherwise
};

std::string part_of(const std::string& request, int part) { return "<" + request + "#" + std::to_string(part) + ">"; }

std::string text_of(std::span<const std::byte> bytes) { return {reinterpret_cast<const char*>(bytes.data()), bytes.size()}; }

int run_server(const std::string& name, Ledger& ledger, int index) {
  auto server = Server::join(name, {.attempts = 100});
  if (!server) return ledger.violations.record("join failed: " + server.error().message()), 1;
  while (!ledger.stop.load()) {
    auto request = server->next(200ms);
    if (!request) {
      if (request.error() == Errc::timeout) continue;
      return ledger.violations.record("next failed: " + request.error().message()), 2;
    }
    ledger.holding[index] = ::getpid();
    const std::string text = text_of(request->data());
    for (int part = 0; part < 3; ++part) {
      // A client killed meanwhile: its mailbox is gone, and that is no fault.
      if (!request->answer_part(as_bytes(part_of(text, part)))) break;
      std::this_thread::sleep_for(20us);  // for kills to land between the parts
    }
    (void)request->end();
    ledger.holding[index] = 0;
    ledger.answered.fetch_add(1, std::memory_order_relaxed);
  }
  return 0;
}

int run_client(const std::string& name, Ledger& ledger, int index) {
  auto client = Client::connect(name);
  if (!client) return ledger.violations.record("connect failed: " + client.error().message()), 1;
  std::mt19937_64 random{std::random_device{}()};
  while (!ledger.stop_calling.load()) {
    const std::string request = std::to_string(index) + ":" + std::to_string(random());
    auto answer = client->call(as_bytes(request), 20s);
    if (!answer) return ledger.violations.record("call failed: " + answer.error().message()), 2;
    const std::string expected = part_of(request, 0) + part_of(request, 1) + part_of(request, 2);
    if (text_of(*answer) != expected) {
      ledger.violations.record("the answer to " + request + " was " + text_of(*answer));
    }
    ledger.calls.fetch_add(1, std::memory_order_relaxed);
  }
  return 0;
}

int run_worker(const std::string& name, Ledger& ledger, int worker) {
  return worker < servers ? run_server(name, ledger, worker) : run_client(name, ledger, worker - servers);
}

TEST(ServiceChaos, KilledServersAndClientsNeverLoseRepeatOrMixUpAnAnswer) {
  const auto soak_for = test::chaos_soak_duration();
  const int target_kills = soak_for.count() > 0 ? 1 << 26 : 300;
  const int target_inside = soak_for.count() > 0 ? 0 : 150;
  const std::string name = test::unique_name("service-chaos");
  ASSERT_TRUE(Server::join(name, {.attempts = 100}).has_value());
  auto& ledger = test::shared_with_workers<Ledger>();

  const auto start = [&](int w) { return ChildProcess::spawn([&, w] { return run_worker(name, ledger, w); }); };
  auto running = test::start_workers(workers, start);
  // Two kills in three go to a server holding a request, the rest to any worker, clients
  // waiting for answers among them.
  const auto tally = test::kill_and_restart(
      running, servers, ledger.holding,
      start, ledger.violations,
      target_kills, target_inside, 3, 2ms);
  ledger.stop_calling = true;
  for (int w = servers; w < workers; ++w) EXPECT_TRUE(running[static_cast<std::size_t>(w)].wait(60s).exited_with(0));
  ledger.stop = true;
  for (int w = 0; w < servers; ++w) EXPECT_TRUE(running[static_cast<std::size_t>(w)].wait(60s).exited_with(0));
  EXPECT_EQ(ledger.violations.count.load(), 0u) << ledger.violations.first;
  EXPECT_TRUE(tally.all_killed_by_sigkill);

  // After it all the service still answers.
  auto server = ChildProcess::spawn([&] {
    auto joined = Server::join(name);
    auto request = joined ? joined->next(10s) : Result<Request>{std::unexpected(joined.error())};
    return request && request->answer(as_bytes("still here")) ? 0 : 1;
  });
  auto client = Client::connect(name);
  ASSERT_TRUE(client.has_value()) << client.error().message();
  auto answer = client->call(as_bytes("after"), 10s);
  ASSERT_TRUE(answer.has_value()) << answer.error().message();
  EXPECT_EQ(text_of(*answer), "still here");
  EXPECT_TRUE(server.wait().exited_with(0));

  std::printf("service chaos: %d kills (%d of a server holding a request), %llu calls answered exactly, %llu answers "
              "finished by servers\n",
              tally.kills, tally.inside, static_cast<unsigned long long>(ledger.calls.load()),
              static_cast<unsigned long long>(ledger.answered.load()));
  EXPECT_GE(tally.kills, soak_for.count() > 0 ? 1 : target_kills);
  EXPECT_GE(tally.inside, target_inside);
  EXPECT_GT(ledger.calls.load(), 0u);
  (void)Server::remove(name);
}

}  // namespace
}  // namespace shmbox
