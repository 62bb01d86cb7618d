#include "support/nats_server.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <thread>
#include <utility>

namespace shmbox::test {
namespace {

constexpr const char* server_path = "/usr/sbin/nats-server";

int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address);
  socklen_t length = sizeof address;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  ::close(fd);
  return ntohs(address.sin_port);
}

// GET /healthz?js-enabled-only=true on the monitoring port: "ok" once JetStream is up.
bool healthy(int monitor_port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<std::uint16_t>(monitor_port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bool ok = false;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0) {
    const std::string request = "GET /healthz?js-enabled-only=true HTTP/1.0\r\n\r\n";
    if (::write(fd, request.data(), request.size()) == static_cast<ssize_t>(request.size())) {
      std::string reply(4096, '\0');
      const ssize_t got = ::read(fd, reply.data(), reply.size());
      ok = got > 0 && reply.substr(0, static_cast<std::size_t>(got)).find("\"ok\"") != std::string::npos;
    }
  }
  ::close(fd);
  return ok;
}

}  // namespace

NatsServer::NatsServer(int port, int monitor_port, std::unique_ptr<TemporaryDirectory> store)
    : port_(port), monitor_port_(monitor_port), store_(std::move(store)) {}

NatsServer::NatsServer(NatsServer&& other) noexcept
    : port_(other.port_), monitor_port_(other.monitor_port_), store_(std::move(other.store_)),
      pid_(std::exchange(other.pid_, -1)) {}

std::optional<NatsServer> NatsServer::start() {
  if (!std::filesystem::exists(server_path)) return std::nullopt;
  NatsServer server{free_port(), free_port(), std::make_unique<TemporaryDirectory>()};
  if (!server.launch()) return std::nullopt;
  return server;
}

bool NatsServer::launch() {
  pid_ = ::fork();
  if (pid_ == 0) {
    // Its log goes beside its store, not into the test's output.
    const std::string log = store_->path() + "/server.log";
    const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
    ::dup2(fd, STDOUT_FILENO);
    ::dup2(fd, STDERR_FILENO);
    const std::string port = std::to_string(port_), monitor = std::to_string(monitor_port_);
    ::execl(server_path, server_path, "-a", "127.0.0.1", "-p", port.c_str(), "-m", monitor.c_str(), "-js", "-sd",
            store_->path().c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds{15};
  while (std::chrono::steady_clock::now() < deadline) {
    if (healthy(monitor_port_)) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds{20});
  }
  return false;
}

NatsServer::~NatsServer() { kill(); }

std::string NatsServer::url() const { return "nats://127.0.0.1:" + std::to_string(port_); }

void NatsServer::kill() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  ::waitpid(pid_, nullptr, 0);
  pid_ = -1;
}

bool NatsServer::restart() {
  kill();
  return launch();
}

}  // namespace shmbox::test
