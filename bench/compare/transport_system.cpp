// The kernel's own: a pipe, a Unix-domain stream socket, a POSIX message queue.
#include <fcntl.h>
#include <fmt/core.h>
#include <mqueue.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <stdexcept>

#include "transports.hpp"

namespace bench {
namespace {

[[noreturn]] void fail(const std::string& what) {
  throw std::runtime_error(what + ": " + std::strerror(errno));
}

std::size_t read_limit(const char* path) {
  std::ifstream file(path);
  std::size_t value = 0;
  file >> value;
  return value;
}

bool privileged() { return ::geteuid() == 0; }

// Whole messages over a byte stream: each is exactly `size` bytes, so no framing.
class StreamLink final : public Link {
 public:
  StreamLink(int out, int in) : out_(out), in_(in) {}
  void send(std::span<const std::byte> message) override {
    for (std::size_t done = 0; done < message.size();) {
      const ssize_t wrote = ::write(out_, message.data() + done, message.size() - done);
      if (wrote < 0 && errno == EINTR) continue;
      if (wrote <= 0) fail("write");
      done += static_cast<std::size_t>(wrote);
    }
  }
  std::size_t receive(std::span<std::byte> buffer) override {
    for (std::size_t done = 0; done < buffer.size();) {
      const ssize_t got = ::read(in_, buffer.data() + done, buffer.size() - done);
      if (got < 0 && errno == EINTR) continue;
      if (got <= 0) fail("read");
      done += static_cast<std::size_t>(got);
    }
    return buffer.size();
  }

 private:
  int out_, in_;
};

// A pipe per direction, sized to hold `capacity` messages like every queue here.
class PipeTransport final : public Transport {
 public:
  std::string name() const override { return "pipe"; }
  std::string unavailable(const Shape& shape) const override {
    if (shape.senders != 1 || shape.receivers != 1) return "one reader per pipe: no competing consumers";
    return {};
  }
  void setup(const Shape& shape) override {
    for (auto* pipe : {&ab_, &ba_}) {
      if (::pipe(pipe->data()) != 0) fail("pipe");
      const std::size_t wanted = shape.capacity * shape.size;
      const std::size_t limit = privileged() ? wanted : read_limit("/proc/sys/fs/pipe-max-size");
      (void)::fcntl((*pipe)[1], F_SETPIPE_SZ, static_cast<int>(std::min(wanted, limit)));
    }
  }
  std::unique_ptr<Link> connect(const Shape& shape, Role role, int) override {
    if (shape.pattern == Pattern::stream) return std::make_unique<StreamLink>(ab_[1], ab_[0]);
    if (role == Role::ping) return std::make_unique<StreamLink>(ab_[1], ba_[0]);
    return std::make_unique<StreamLink>(ba_[1], ab_[0]);
  }
  void teardown(const Shape&) override {
    for (int fd : {ab_[0], ab_[1], ba_[0], ba_[1]}) ::close(fd);
  }

 private:
  std::array<int, 2> ab_{-1, -1}, ba_{-1, -1};
};

// One socketpair: both directions, with buffers for `capacity` messages.
class UnixSocketTransport final : public Transport {
 public:
  std::string name() const override { return "Unix socket"; }
  std::string unavailable(const Shape& shape) const override {
    if (shape.senders != 1 || shape.receivers != 1) return "a stream socket has one reader: no competing consumers";
    return {};
  }
  void setup(const Shape& shape) override {
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, ends_.data()) != 0) fail("socketpair");
    const int bytes = static_cast<int>(std::min<std::size_t>(shape.capacity * shape.size, 64 << 20));
    for (int fd : ends_) {
      for (int option : {SO_SNDBUF, SO_RCVBUF}) {
        // As root past net.core.[rw]mem_max, like the other queues' capacities.
        const int forced = option == SO_SNDBUF ? SO_SNDBUFFORCE : SO_RCVBUFFORCE;
        if (::setsockopt(fd, SOL_SOCKET, forced, &bytes, sizeof bytes) != 0) {
          (void)::setsockopt(fd, SOL_SOCKET, option, &bytes, sizeof bytes);
        }
      }
    }
  }
  std::unique_ptr<Link> connect(const Shape& shape, Role role, int) override {
    const bool first = shape.pattern == Pattern::stream ? role == Role::sender : role == Role::ping;
    const int mine = first ? ends_[0] : ends_[1];
    return std::make_unique<StreamLink>(mine, mine);
  }
  void teardown(const Shape&) override {
    for (int fd : ends_) ::close(fd);
  }

 private:
  std::array<int, 2> ends_{-1, -1};
};

class MessageQueueLink final : public Link {
 public:
  MessageQueueLink(mqd_t out, mqd_t in) : out_(out), in_(in) {}
  ~MessageQueueLink() override {
    ::mq_close(out_);
    if (in_ != out_) ::mq_close(in_);
  }
  void send(std::span<const std::byte> message) override {
    while (::mq_send(out_, reinterpret_cast<const char*>(message.data()), message.size(), 0) != 0) {
      if (errno != EINTR) fail("mq_send");
    }
  }
  std::size_t receive(std::span<std::byte> buffer) override {
    for (;;) {
      const ssize_t got = ::mq_receive(in_, reinterpret_cast<char*>(buffer.data()), buffer.size(), nullptr);
      if (got >= 0) return static_cast<std::size_t>(got);
      if (errno != EINTR) fail("mq_receive");
    }
  }

 private:
  mqd_t out_, in_;
};

// The kernel's limits on message queues: the sysctls (which root may raise, and which the
// benchmark raises for its run and then restores) and RLIMIT_MSGQUEUE (whose hard limit
// only CAP_SYS_RESOURCE may raise).
class PosixQueueTransport final : public Transport {
 public:
  std::string name() const override { return "POSIX mq"; }
  std::string unavailable(const Shape& shape) const override {
    if (!privileged()) {
      if (shape.size > read_limit(msgsize_max)) return fmt::format("{} B is over {} (root may raise it)", shape.size, msgsize_max);
      if (shape.capacity > read_limit(msg_max)) return fmt::format("capacity {} is over {}", shape.capacity, msg_max);
    }
    rlimit limit{};
    ::getrlimit(RLIMIT_MSGQUEUE, &limit);
    const std::size_t queues = shape.pattern == Pattern::ping_pong ? 2 : 1;
    const std::size_t needed = queues * shape.capacity * (shape.size + 2 * sizeof(void*));
    if (limit.rlim_max != RLIM_INFINITY && needed > limit.rlim_max) {
      return fmt::format("{} queued messages of {} B need {} KiB of RLIMIT_MSGQUEUE; its hard limit is {} KiB "
                         "(raising it needs CAP_SYS_RESOURCE)",
                         shape.capacity, shape.size, needed / 1024, limit.rlim_max / 1024);
    }
    return {};
  }
  void setup(const Shape& shape) override {
    rlimit limit{};
    ::getrlimit(RLIMIT_MSGQUEUE, &limit);
    limit.rlim_cur = limit.rlim_max;
    (void)::setrlimit(RLIMIT_MSGQUEUE, &limit);
    raise(msg_max, shape.capacity, saved_msg_max_);
    raise(msgsize_max, shape.size, saved_msgsize_max_);
    mq_attr attributes{};
    attributes.mq_maxmsg = static_cast<long>(shape.capacity);
    attributes.mq_msgsize = static_cast<long>(shape.size);
    for (const auto& name : names(shape)) {
      (void)::mq_unlink(name.c_str());
      const mqd_t queue = ::mq_open(name.c_str(), O_CREAT | O_EXCL | O_RDWR, 0600, &attributes);
      if (queue == static_cast<mqd_t>(-1)) fail("mq_open " + name);
      ::mq_close(queue);
    }
  }
  std::unique_ptr<Link> connect(const Shape& shape, Role role, int) override {
    const auto queues = names(shape);
    auto open = [](const std::string& name) {
      const mqd_t queue = ::mq_open(name.c_str(), O_RDWR);
      if (queue == static_cast<mqd_t>(-1)) fail("mq_open " + name);
      return queue;
    };
    if (shape.pattern == Pattern::stream) {
      const mqd_t queue = open(queues[0]);
      return std::make_unique<MessageQueueLink>(queue, queue);
    }
    const bool ping = role == Role::ping;
    return std::make_unique<MessageQueueLink>(open(queues[ping ? 0 : 1]), open(queues[ping ? 1 : 0]));
  }
  void teardown(const Shape& shape) override {
    for (const auto& name : names(shape)) ::mq_unlink(name.c_str());
    restore(msg_max, saved_msg_max_);
    restore(msgsize_max, saved_msgsize_max_);
  }

 private:
  static constexpr const char* msg_max = "/proc/sys/fs/mqueue/msg_max";
  static constexpr const char* msgsize_max = "/proc/sys/fs/mqueue/msgsize_max";

  static void raise(const char* path, std::size_t wanted, std::size_t& saved) {
    const std::size_t current = read_limit(path);
    if (current >= wanted) return;
    saved = current;
    std::ofstream(path) << wanted;
  }
  static void restore(const char* path, std::size_t& saved) {
    if (saved == 0) return;
    std::ofstream(path) << saved;
    saved = 0;
  }
  static std::vector<std::string> names(const Shape& shape) {
    if (shape.pattern == Pattern::stream) return {"/" + shape.tag};
    return {"/" + shape.tag + "-ab", "/" + shape.tag + "-ba"};
  }
  std::size_t saved_msg_max_ = 0, saved_msgsize_max_ = 0;
};

}  // namespace

void add_system_transports(std::vector<std::unique_ptr<Transport>>& transports) {
  transports.push_back(std::make_unique<PipeTransport>());
  transports.push_back(std::make_unique<UnixSocketTransport>());
  transports.push_back(std::make_unique<PosixQueueTransport>());
}

}  // namespace bench
