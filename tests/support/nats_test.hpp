// What the tests of remote mailboxes share: a server per test (the test is skipped
// where nats-server is not installed), names on it, and child processes to run the
// NATS client in (it is not fork-safe, so the test process never starts it).
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <functional>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "shmbox/mailbox.hpp"
#include "support/nats_server.hpp"
#include "support/process.hpp"

namespace shmbox::test {

// Starts a server, or marks the calling test skipped (nats-server is not installed) or
// failed (it is, and would not start), and leaves `server` empty.
inline void start_nats_or_skip(std::optional<NatsServer>& server) {
  if (!NatsServer::installed()) GTEST_SKIP() << "nats-server is not installed (Debian: nats-server)";
  if (auto started = NatsServer::start()) {
    server.emplace(std::move(*started));
    return;
  }
  FAIL() << "nats-server is installed but did not start (or did not become healthy within 30 s)";
}

// The same for a cluster of `size` servers.
inline void start_cluster_or_skip(std::optional<std::vector<NatsServer>>& cluster, int size) {
  if (!NatsServer::installed()) GTEST_SKIP() << "nats-server is not installed (Debian: nats-server)";
  cluster = NatsServer::start_cluster(size);
  if (!cluster) FAIL() << "nats-server is installed but a cluster of " << size << " did not start";
}

// A unique mailbox name part for `tag`, without unique_name's "shmbox-test-" prefix.
inline std::string remote_tag(const std::string& tag) {
  return unique_name(tag).substr(std::string{"shmbox-test-"}.size());
}

// "nats://127.0.0.1:PORT/<unique name>".
inline std::string remote_name(const NatsServer& server, const std::string& tag) {
  return server.url() + "/" + remote_tag(tag);
}

// Runs `body` in a child process and expects it to return 0.
inline void expect_child_succeeds(const std::function<int()>& body) {
  auto child = ChildProcess::spawn(body);
  const auto status = child.wait(std::chrono::seconds{60});
  EXPECT_TRUE(status.exited_with(0)) << status.describe();
}

// An unbounded, system-owned mailbox kept by all three servers of `cluster` (replicas 3),
// made in a child process.
struct ReplicatedMailbox {
  std::string name;    // "nats://HOST:PORT,.../TAG"
  std::string stream;  // its stream's name, to ask the cluster about its leaders
};
// nullopt if it could not be made within 30 s (a new cluster elects its JetStream leader
// first, and refuses creates meanwhile).
inline std::optional<ReplicatedMailbox> create_replicated_mailbox(const std::vector<NatsServer>& cluster,
                                                                  const std::string& tag, std::uint32_t max_message_size) {
  const std::string unique = remote_tag(tag);
  ReplicatedMailbox made{servers_url(cluster) + "/" + unique, "SHMBOX_" + unique};
  const auto created = ChildProcess::spawn([&] {
    for (int attempt = 0; attempt < 300; ++attempt) {
      if (Mailbox::create(made.name, {.buffering = Buffering::unbounded, .max_message_size = max_message_size,
                                      .ownership = Ownership::system, .replicas = 3})) {
        return 0;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds{100});
    }
    return 1;
  }).wait(std::chrono::seconds{60});
  if (!created.exited_with(0)) return std::nullopt;
  return made;
}

// For checks in a child process, where a gtest assertion would not reach the test: true if
// `result` failed with `errc` and exactly `message`; else says on stderr what it got.
template <class T>
bool fails_with(const Result<T>& result, Errc errc, const std::string& message) {
  if (result) {
    std::fprintf(stderr, "succeeded; expected: %s\n", message.c_str());
    return false;
  }
  if (result.error().errc() == errc && result.error().message() == message) return true;
  std::fprintf(stderr, "got:      %s\nexpected: %s\n", result.error().message().c_str(), message.c_str());
  return false;
}

// A child's exit `code`, with `error` said on stderr.
inline int failed(int code, const Error& error) {
  std::fprintf(stderr, "%s\n", error.message().c_str());
  return code;
}

}  // namespace shmbox::test
