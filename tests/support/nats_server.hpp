// A NATS server with JetStream for one test: started on free loopback ports with its
// store in a temporary directory, stopped (SIGKILL, or restarted) by the test.
#pragma once

#include <sys/types.h>

#include <memory>
#include <optional>
#include <string>

#include "support/process.hpp"

namespace shmbox::test {

class NatsServer {
 public:
  // nullopt when nats-server is not installed (the test then skips).
  static std::optional<NatsServer> start();
  NatsServer(NatsServer&& other) noexcept;
  NatsServer& operator=(NatsServer&&) = delete;
  ~NatsServer();

  std::string url() const;  // "nats://127.0.0.1:PORT"
  void kill();              // SIGKILL, as a crash
  bool restart();           // the same port and store

 private:
  NatsServer(int port, int monitor_port, std::unique_ptr<TemporaryDirectory> store);
  bool launch();
  int port_, monitor_port_;
  std::unique_ptr<TemporaryDirectory> store_;
  pid_t pid_ = -1;
};

}  // namespace shmbox::test
