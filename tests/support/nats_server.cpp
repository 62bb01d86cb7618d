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

NatsServer::NatsServer(int port, int monitor_port, std::unique_ptr<TemporaryDirectory> store, std::string name,
                       std::vector<std::string> extra)
    : port_(port), monitor_port_(monitor_port), name_(std::move(name)), extra_(std::move(extra)), store_(std::move(store)) {}

NatsServer::NatsServer(NatsServer&& other) noexcept
    : port_(other.port_), monitor_port_(other.monitor_port_), name_(std::move(other.name_)),
      extra_(std::move(other.extra_)), store_(std::move(other.store_)), pid_(std::exchange(other.pid_, -1)) {}

std::optional<std::vector<NatsServer>> NatsServer::start_cluster(int size) {
  if (!std::filesystem::exists(server_path)) return std::nullopt;
  std::vector<int> cluster_ports;
  for (int i = 0; i < size; ++i) cluster_ports.push_back(free_port());
  std::string routes;
  for (const int port : cluster_ports) {
    if (!routes.empty()) routes += ',';
    routes += "nats://127.0.0.1:";
    routes += std::to_string(port);
  }
  // Built with append: GCC 12 at -O3 warns falsely (-Wrestrict) on "literal" + string.
  auto joined = [](std::string head, const std::string& tail) { return head.append(tail); };
  std::vector<NatsServer> servers;
  for (int i = 0; i < size; ++i) {
    const std::string cluster = joined("nats://127.0.0.1:", std::to_string(cluster_ports[static_cast<std::size_t>(i)]));
    servers.push_back(NatsServer{free_port(), free_port(), std::make_unique<TemporaryDirectory>(),
                                 joined("n", std::to_string(i)),
                                 {"--cluster_name", "shmbox", "--cluster", cluster, "--routes", routes}});
  }
  // All started before any is waited for: a lone member does not become healthy.
  for (auto& server : servers) {
    if (!server.launch(false)) return std::nullopt;
  }
  for (auto& server : servers) {
    if (!server.wait_until_healthy()) return std::nullopt;
  }
  return servers;
}

std::optional<NatsServer> NatsServer::start() {
  if (!std::filesystem::exists(server_path)) return std::nullopt;
  NatsServer server{free_port(), free_port(), std::make_unique<TemporaryDirectory>()};
  if (!server.launch()) return std::nullopt;
  return server;
}

bool NatsServer::launch(bool wait_until_ready) {
  pid_ = ::fork();
  if (pid_ == 0) {
    // Its log goes beside its store, not into the test's output.
    const std::string log = store_->path() + "/server.log";
    const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
    ::dup2(fd, STDOUT_FILENO);
    ::dup2(fd, STDERR_FILENO);
    const std::string port = std::to_string(port_), monitor = std::to_string(monitor_port_);
    std::vector<std::string> args{server_path, "-a", "127.0.0.1", "-p", port, "-m", monitor, "-n", name_, "-js", "-sd",
                                  store_->path()};
    args.insert(args.end(), extra_.begin(), extra_.end());
    std::vector<char*> argv;
    for (auto& arg : args) argv.push_back(arg.data());
    argv.push_back(nullptr);
    ::execv(server_path, argv.data());
    ::_exit(127);
  }
  return !wait_until_ready || wait_until_healthy();
}

bool NatsServer::wait_until_healthy() {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds{30};
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
