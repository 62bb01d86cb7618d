#include "support/nats_server.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <nats/nats.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
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

// Ports are free when chosen, but another test's server may take one before ours binds it:
// a server that exits at once is started again on fresh ports, up to three times.
constexpr int launch_attempts = 3;

std::optional<std::vector<NatsServer>> NatsServer::start_cluster(int size) {
  if (!installed()) return std::nullopt;
  for (int attempt = 0; attempt < launch_attempts; ++attempt) {
    if (auto cluster = try_cluster(size)) return cluster;
  }
  return std::nullopt;
}

std::optional<std::vector<NatsServer>> NatsServer::try_cluster(int size) {
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

bool NatsServer::installed() { return std::filesystem::exists(server_path); }

std::optional<NatsServer> NatsServer::start() {
  if (!installed()) return std::nullopt;
  for (int attempt = 0; attempt < launch_attempts; ++attempt) {
    NatsServer server{free_port(), free_port(), std::make_unique<TemporaryDirectory>()};
    if (server.launch()) return server;
  }
  return std::nullopt;
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
    // Gone already: it could not bind its ports (or start at all).
    if (::waitpid(pid_, nullptr, WNOHANG) == pid_) {
      pid_ = -1;
      return false;
    }
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

std::string servers_url(const std::vector<NatsServer>& cluster) {
  std::string servers = "nats://";
  for (const auto& server : cluster) {
    if (servers.size() > std::string_view{"nats://"}.size()) servers += ',';
    servers += server.url().substr(std::string_view{"nats://"}.size());
  }
  return servers;
}

std::string kill_leader(std::vector<NatsServer>& cluster, const std::string& stream, const std::string& consumer) {
  // Asked in a child: the client library is not fork-safe, and tests fork on.
  Pipe answer;
  auto asker = ChildProcess::spawn([&] {
    natsConnection* connection = nullptr;
    jsCtx* jetstream = nullptr;
    const std::string servers = servers_url(cluster);
    if (natsConnection_ConnectTo(&connection, servers.c_str()) != NATS_OK) return 1;
    jsOptions options;
    jsOptions_Init(&options);
    options.Wait = 1000;  // each question; the whole search stops within the parent's wait
    if (natsConnection_JetStream(&jetstream, connection, &options) != NATS_OK) return 2;
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds{25};
    // A group is whole when it has a leader and every other member is online and
    // caught up: one failure at a time, which is what replicas 3 are for.
    auto whole = [](const jsClusterInfo* group) {
      if (group == nullptr || group->Leader == nullptr) return false;
      return std::all_of(group->Replicas, group->Replicas + group->ReplicasLen,
                         [](const jsPeerInfo* peer) { return peer->Current && !peer->Offline; });
    };
    while (std::chrono::steady_clock::now() < give_up) {
      jsStreamInfo* stream_info = nullptr;
      jsConsumerInfo* consumer_info = nullptr;
      std::string leader;
      if (js_GetStreamInfo(&stream_info, jetstream, stream.c_str(), nullptr, nullptr) == NATS_OK &&
          whole(stream_info->Cluster) &&
          js_GetConsumerInfo(&consumer_info, jetstream, stream.c_str(), consumer.empty() ? "receivers" : consumer.c_str(),
                             nullptr, nullptr) == NATS_OK &&
          whole(consumer_info->Cluster)) {
        leader = consumer.empty() ? stream_info->Cluster->Leader : consumer_info->Cluster->Leader;
      }
      jsStreamInfo_Destroy(stream_info);
      jsConsumerInfo_Destroy(consumer_info);
      if (!leader.empty()) return answer.send(leader), 0;
      std::this_thread::sleep_for(std::chrono::milliseconds{100});
    }
    return 3;
  });
  const auto leader = answer.receive(std::chrono::seconds{30});
  if (!asker.wait(std::chrono::seconds{30}).exited_with(0) || !leader) return "";
  const auto victim = std::find_if(cluster.begin(), cluster.end(), [&](const auto& server) { return server.name() == *leader; });
  if (victim == cluster.end()) return "";
  victim->kill();
  std::this_thread::sleep_for(std::chrono::seconds{1});
  return victim->restart() ? *leader : "";
}

}  // namespace shmbox::test
