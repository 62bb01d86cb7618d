// A NATS server with JetStream for one test: started on free loopback ports with its
// store in a temporary directory, stopped (SIGKILL, or restarted) by the test.
#pragma once

#include <sys/types.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "support/process.hpp"

namespace shmbox::test {

class NatsServer {
 public:
  // nullopt when nats-server is not installed (the test then skips).
  // Whether nats-server is installed at all (its absence is the one reason to skip).
  static bool installed();
  static std::optional<NatsServer> start();
  // `size` servers forming one JetStream cluster on loopback, named n0, n1, ...
  static std::optional<std::vector<NatsServer>> start_cluster(int size);
  NatsServer(NatsServer&& other) noexcept;
  NatsServer& operator=(NatsServer&&) = delete;
  ~NatsServer();

  std::string url() const;  // "nats://127.0.0.1:PORT"
  const std::string& name() const { return name_; }
  void kill();              // SIGKILL, as a crash
  bool restart();           // the same port and store

 private:
  NatsServer(int port, int monitor_port, std::unique_ptr<TemporaryDirectory> store, std::string name = "n0",
             std::vector<std::string> extra = {});
  static std::optional<std::vector<NatsServer>> try_cluster(int size);  // one attempt of start_cluster
  bool launch(bool wait_until_ready = true);
  bool wait_until_healthy();  // false if it exits first
  int port_, monitor_port_;
  std::string name_;
  std::vector<std::string> extra_;  // cluster options
  std::unique_ptr<TemporaryDirectory> store_;
  pid_t pid_ = -1;
};

// The cluster's servers as a remote name's server part: "nats://HOST:PORT,HOST:PORT,...".
std::string servers_url(const std::vector<NatsServer>& cluster);
// Kills (SIGKILL) the server that leads the stream `stream`, or its consumer `consumer`,
// once the stream and its consumer ("receivers" if none is named) are whole again (a
// leader, and every other member online and caught up), and restarts it a second later.
// Its name; empty if they were not whole within 25 s or the restart failed.
std::string kill_leader(std::vector<NatsServer>& cluster, const std::string& stream, const std::string& consumer = "");

}  // namespace shmbox::test
