// Pools on a NATS server (nats://host:port/NAME). The pool runs in a child process: the
// NATS client is not fork-safe, so the test process itself never starts it.
#include <gtest/gtest.h>

#include <cstdio>
#include <string>

#include "shmbox/pool.hpp"
#include "support/nats_test.hpp"
#include "support/process.hpp"

namespace shmbox {
namespace {

class RemotePool : public ::testing::Test {
 protected:
  void SetUp() override {
    test::start_nats_or_skip(server);
    if (server) name = test::remote_name(*server, "pool");
  }

  std::optional<test::NatsServer> server;
  std::string name;
};

TEST_F(RemotePool, ForkedWorkersAreRefusedOnNats) {
  test::expect_child_succeeds([this] {
    auto forked = Pool::fork([](std::span<const std::byte> task) { return std::vector<std::byte>(task.begin(), task.end()); },
                             {.name = name, .workers = 1});
    if (forked) return 1;
    const std::string expected =
        "pool '" + name + "': cannot fork workers that use NATS (its client does not survive a fork): start them "
        "with Pool::exec, or let workers join (serve_pool, shmbox worker)";
    if (forked.error().message() != expected) {
      std::fprintf(stderr, "%s\n", forked.error().message().c_str());
      return 2;
    }
    return 0;
  });
}

}  // namespace
}  // namespace shmbox
