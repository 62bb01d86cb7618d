// Remote shmbox mailboxes: the same Mailbox calls as the local rows, on names
// nats://127.0.0.1:PORT/NAME, held by a NATS JetStream server on loopback. Each
// measurement gets a server of its own, started here (about 15 ms) and stopped after it:
// no figure inherits another's streams, and the server's CPU time is reaped with it, so
// the load watch counts it as the benchmark's own rather than as load from elsewhere.
//
// cnats, the NATS client, is not fork-safe, and the harness forks its processes from this
// one: this process never uses it. The mailboxes are created by an owner process, and each
// measuring process connects after its fork.
#include <arpa/inet.h>
#include <fcntl.h>
#include <fmt/core.h>
#include <nats/nats.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <cstring>
#include <fstream>
#include <functional>
#include <stdexcept>
#include <thread>
#include <utility>
#include <vector>

#include "harness.hpp"
#include "mailbox_link.hpp"
#include "shmbox/mailbox.hpp"
#include "shmbox/service.hpp"
#include "transports.hpp"

namespace bench {
namespace {

// The server's default max_payload. A message also carries its id in a header, so a
// message of exactly this size is already over.
constexpr std::size_t max_payload = 1024 * 1024;

// On PATH, or in /usr/sbin, where Debian puts it (not on every user's PATH). "" if absent.
std::string find_server() {
  const char* path = ::getenv("PATH");
  std::string directories = path != nullptr ? path : "";
  directories += ":/usr/sbin";
  for (std::size_t start = 0; start <= directories.size();) {
    const std::size_t colon = std::min(directories.find(':', start), directories.size());
    const std::filesystem::path candidate =
        std::filesystem::path{directories.substr(start, colon - start)} / "nats-server";
    if (colon > start && ::access(candidate.c_str(), X_OK) == 0) return candidate;
    start = colon + 1;
  }
  return {};
}

sockaddr_in loopback(int port) {
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<std::uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return address;
}

// A port nobody listens on now (the kernel's choice for an ephemeral bind).
int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address = loopback(0);
  socklen_t length = sizeof address;
  const bool bound = ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0 &&
                     ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) == 0;
  ::close(fd);
  if (!bound) throw std::runtime_error("no free loopback port for nats-server");
  return ntohs(address.sin_port);
}

// GET /healthz?js-enabled-only=true on the monitoring port: "ok" once JetStream is up.
bool healthy(int monitor_port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  const sockaddr_in address = loopback(monitor_port);
  bool ok = false;
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) == 0) {
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

// The last non-empty line of a log: why the server stopped.
std::string last_line(const std::filesystem::path& file) {
  std::ifstream lines(file);
  std::string line, last;
  while (std::getline(lines, line)) {
    if (!line.empty()) last = line;
  }
  return last;
}

// A transport through a nats-server of its own per measurement: started by setup(),
// stopped (with all it holds) by teardown().
class NatsServerTransport : public Transport {
 public:
  NatsServerTransport(std::string label, std::string server) : label_(std::move(label)), server_(std::move(server)) {}
  ~NatsServerTransport() override { stop(); }

  std::string name() const override { return label_; }
  bool remote() const override { return true; }
  std::string unavailable(const Shape& shape) const override {
    if (server_.empty()) return "nats-server not found on PATH or in /usr/sbin (Debian: nats-server)";
    if (shape.size >= max_payload) {
      return "over the server's default max_payload of 1 MiB (a message also carries its id in a header)";
    }
    return {};
  }
  void teardown(const Shape&) override { stop(); }

 protected:
  std::string prefix() const { return fmt::format("nats://127.0.0.1:{}/", port_); }
  int port() const { return port_; }
  // Runs `body` in a child process (this one never uses the NATS client), which says
  // through a pipe that it is done with its setup and then stays until stop() when `stay`.
  void start_helper(const std::function<bool()>& body, bool stay, const char* what) {
    int ready[2];
    if (::pipe2(ready, O_CLOEXEC) != 0) throw std::runtime_error("cannot make a pipe");
    std::fflush(nullptr);
    const pid_t helper = ::fork();
    if (helper == 0) {
      ::close(ready[0]);
      if (!body()) ::_exit(1);
      const char done = 1;
      if (::write(ready[1], &done, 1) != 1) ::_exit(1);
      if (!stay) ::_exit(0);
      for (;;) ::pause();
    }
    ::close(ready[1]);
    char done = 0;
    const bool ok = helper > 0 && ::read(ready[0], &done, 1) == 1;  // end of file: it failed
    ::close(ready[0]);
    if (stay) {
      owner_ = helper;
    } else if (helper > 0) {
      ::waitpid(helper, nullptr, 0);
    }
    if (!ok) {
      stop();
      throw std::runtime_error(what);
    }
  }

  // Ports found free may be taken by another process before the server listens on them:
  // a server that exits at start is started again on other ports.
  void start_server() {
    std::string store = (std::filesystem::temp_directory_path() / "shmbox-bench-nats-XXXXXX").string();
    if (::mkdtemp(store.data()) == nullptr) throw std::runtime_error("cannot make a directory for nats-server");
    store_ = store;
    for (int attempt = 1;; ++attempt) {
      port_ = free_port();
      int monitor_port = free_port();
      while (monitor_port == port_) monitor_port = free_port();
      std::fflush(nullptr);
      server_pid_ = ::fork();
      if (server_pid_ == 0) {
        // Its log goes beside its store, not into our tables.
        const int log = ::open((store + "/server.log").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
        ::dup2(log, STDOUT_FILENO);
        ::dup2(log, STDERR_FILENO);
        const std::string port = std::to_string(port_), monitor = std::to_string(monitor_port);
        ::execl(server_.c_str(), server_.c_str(), "-a", "127.0.0.1", "-p", port.c_str(), "-m", monitor.c_str(), "-js",
                "-sd", store.c_str(), static_cast<char*>(nullptr));
        ::_exit(127);
      }
      const auto deadline = Clock::now() + std::chrono::seconds{10};
      bool exited = false;
      while (!exited && !healthy(monitor_port)) {
        if (Clock::now() > deadline) {
          stop();
          throw std::runtime_error("nats-server not ready within 10 s");
        }
        std::this_thread::sleep_for(std::chrono::milliseconds{2});
        exited = ::waitpid(server_pid_, nullptr, WNOHANG) == server_pid_;
      }
      // Healthy may have been another process's answer on a port ours could not take.
      exited = exited || ::waitpid(server_pid_, nullptr, WNOHANG) == server_pid_;
      if (!exited) return;
      server_pid_ = -1;  // nothing left to kill
      if (attempt == 3) {
        const std::string why = last_line(store_ / "server.log");
        stop();
        throw std::runtime_error("nats-server exited at start, 3 times: " + why);
      }
    }
  }
  // SIGKILL for both: the store is thrown away, so there is nothing to shut down cleanly.
  void stop() {
    for (pid_t* pid : {&owner_, &server_pid_}) {
      if (*pid <= 0) continue;
      ::kill(*pid, SIGKILL);
      ::waitpid(*pid, nullptr, 0);
      *pid = -1;
    }
    if (!store_.empty()) std::filesystem::remove_all(store_);
    store_.clear();
  }

  std::string label_;
  std::string server_;  // nats-server's path, "" if not installed
  pid_t server_pid_ = -1, owner_ = -1;
  int port_ = 0;
  std::filesystem::path store_;
};

// Remote shmbox mailboxes.
class NatsTransport final : public NatsServerTransport {
 public:
  NatsTransport(std::string label, shmbox::Buffering buffering, std::string server)
      : NatsServerTransport(std::move(label), std::move(server)), buffering_(buffering) {}

  std::string unavailable(const Shape& shape) const override {
    if (auto why = NatsServerTransport::unavailable(shape); !why.empty()) return why;
    if (buffering_ == shmbox::Buffering::zero && shape.pattern == Pattern::stream) {
      return "zero capacity: each send waits for its receiver, a round trip; measured as round trip only";
    }
    return {};
  }
  // The mailboxes' owner: a process that creates them and holds them until teardown, so
  // that they are process-owned (memory storage) with their owner alive throughout, as a
  // user's would be.
  void setup(const Shape& shape) override {
    start_server();
    const shmbox::MailboxOptions options{.buffering = buffering_,
                                         .capacity = static_cast<std::uint32_t>(shape.capacity),
                                         .max_message_size = static_cast<std::uint32_t>(shape.size),
                                         .ownership = shmbox::Ownership::process};
    start_helper(
        [&] {
          static std::vector<shmbox::Mailbox> held;  // the helper's, until it is killed
          for (const auto& name : mailbox_names(shape, prefix())) {
            auto made = shmbox::Mailbox::create(name, options);
            if (!made) {
              std::fprintf(stderr, "  %s\n", made.error().message().c_str());
              return false;
            }
            held.push_back(std::move(*made));
          }
          return true;
        },
        true, "cannot create the remote mailboxes");
  }
  std::unique_ptr<Link> connect(const Shape& shape, Role role, int) override {
    return open_mailboxes(shape, role, mailbox_names(shape, prefix()));
  }

 private:
  shmbox::Buffering buffering_;
};

// A remote shmbox service: requests over NATS request/reply to a server process.
class NatsServiceTransport final : public NatsServerTransport {
 public:
  explicit NatsServiceTransport(std::string server) : NatsServerTransport("shmbox nats service", std::move(server)) {}
  bool offers(Pattern pattern) const override { return pattern == Pattern::request; }
  void setup(const Shape& shape) override {
    start_server();
    start_helper(
        [&] {
          auto joined = shmbox::Server::join(prefix() + shape.tag,
                                             {.max_request_size = static_cast<std::uint32_t>(shape.size)});
          if (!joined) std::fprintf(stderr, "  %s\n", joined.error().message().c_str());
          return joined.has_value();
        },
        false, "cannot make the remote service");
  }
  std::unique_ptr<Link> connect(const Shape& shape, Role role, int) override {
    return service_link(prefix() + shape.tag, shape.size, role);
  }
};

// NATS itself, without shmbox: core request/reply (natsConnection_Request) to a
// subscriber that publishes each request back to its reply subject.
class RawNatsLink final : public Link {
 public:
  RawNatsLink(const std::string& url, const std::string& subject, bool server) : subject_(subject) {
    // Each write at once, as shmbox's connections do (the client otherwise holds a publish
    // up to a millisecond for company).
    natsOptions* options = nullptr;
    natsStatus status = natsOptions_Create(&options);
    if (status == NATS_OK) status = natsOptions_SetURL(options, url.c_str());
    if (status == NATS_OK) status = natsOptions_SetSendAsap(options, true);
    if (status == NATS_OK) status = natsConnection_Connect(&connection_, options);
    natsOptions_Destroy(options);
    if (status != NATS_OK) throw_error("cannot connect to nats-server");
    if (server) {
      if (natsConnection_SubscribeSync(&subscription_, connection_, subject.c_str()) != NATS_OK ||
          natsConnection_Flush(connection_) != NATS_OK) {
        throw_error("cannot subscribe");
      }
    }
  }
  ~RawNatsLink() override {
    natsMsg_Destroy(reply_);
    natsSubscription_Destroy(subscription_);
    natsConnection_Destroy(connection_);
  }
  void send(std::span<const std::byte> message) override {
    natsMsg_Destroy(std::exchange(reply_, nullptr));
    if (natsConnection_Request(&reply_, connection_, subject_.c_str(), message.data(), static_cast<int>(message.size()),
                               10'000) != NATS_OK) {
      throw_error("NATS request failed");
    }
  }
  std::size_t receive(std::span<std::byte> buffer) override {
    if (reply_ == nullptr) throw_error("a reply received before its request was sent");
    const auto size = static_cast<std::size_t>(natsMsg_GetDataLength(reply_));
    if (size > buffer.size()) throw_error("reply larger than the buffer");
    std::memcpy(buffer.data(), natsMsg_GetData(reply_), size);
    return size;
  }
  void echo(std::span<std::byte>) override {
    natsMsg* request = nullptr;
    if (natsSubscription_NextMsg(&request, subscription_, 10'000) != NATS_OK) throw_error("no NATS request");
    const natsStatus status = natsConnection_Publish(connection_, natsMsg_GetReply(request), natsMsg_GetData(request),
                                                     natsMsg_GetDataLength(request));
    natsMsg_Destroy(request);
    if (status != NATS_OK) throw_error("NATS reply failed");
  }

 private:
  std::string subject_;
  natsConnection* connection_ = nullptr;
  natsSubscription* subscription_ = nullptr;
  natsMsg* reply_ = nullptr;
};

class RawNatsTransport final : public NatsServerTransport {
 public:
  explicit RawNatsTransport(std::string server) : NatsServerTransport("NATS request/reply", std::move(server)) {}
  bool offers(Pattern pattern) const override { return pattern == Pattern::request; }
  void setup(const Shape&) override { start_server(); }
  std::unique_ptr<Link> connect(const Shape& shape, Role role, int) override {
    return std::make_unique<RawNatsLink>(fmt::format("nats://127.0.0.1:{}", port()), "bench." + shape.tag,
                                         role == Role::pong);
  }
};

}  // namespace

void add_nats_transports(std::vector<std::unique_ptr<Transport>>& transports) {
  const std::string server = find_server();
  transports.push_back(std::make_unique<NatsTransport>("shmbox nats bounded", shmbox::Buffering::bounded, server));
  transports.push_back(std::make_unique<NatsTransport>("shmbox nats zero-capacity", shmbox::Buffering::zero, server));
  transports.push_back(std::make_unique<NatsServiceTransport>(server));
  transports.push_back(std::make_unique<RawNatsTransport>(server));
}

}  // namespace bench
