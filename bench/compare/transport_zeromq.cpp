// ZeroMQ over ipc:// (Unix-domain sockets underneath): PAIR for the ping-pong, PUSH/PULL
// for streams, each PUSH connected to every PULL so that receivers share the load.
// High-water marks of `capacity` messages make a full sender wait instead of dropping.
#include <unistd.h>

#include <filesystem>
#include <zmq.hpp>

#include "transports.hpp"

namespace bench {
namespace {

class ZeroMqLink final : public Link {
 public:
  ZeroMqLink(zmq::socket_type type, const Shape& shape) : socket_(context_, type) {
    const int hwm = static_cast<int>(shape.capacity);
    socket_.set(zmq::sockopt::sndhwm, hwm);
    socket_.set(zmq::sockopt::rcvhwm, hwm);
    // A sender that has sent everything waits on exit until it is delivered.
    socket_.set(zmq::sockopt::linger, -1);
  }
  zmq::socket_t& socket() { return socket_; }
  void send(std::span<const std::byte> message) override {
    if (!socket_.send(zmq::const_buffer(message.data(), message.size()), zmq::send_flags::none)) {
      throw_error("zmq send would block");
    }
  }
  std::size_t receive(std::span<std::byte> buffer) override {
    const auto got = socket_.recv(zmq::mutable_buffer(buffer.data(), buffer.size()), zmq::recv_flags::none);
    if (!got) throw_error("zmq recv would block");
    if (got->truncated()) throw_error("zmq message larger than the buffer");
    return got->size;
  }

 private:
  zmq::context_t context_{1};  // made after fork, in the process that uses it
  zmq::socket_t socket_;
};

class ZeroMqTransport final : public Transport {
 public:
  std::string name() const override { return "ZeroMQ ipc"; }
  std::string unavailable(const Shape&) const override { return {}; }
  void setup(const Shape& shape) override { std::filesystem::create_directories(directory(shape)); }
  std::unique_ptr<Link> connect(const Shape& shape, Role role, int index) override {
    const std::string base = "ipc://" + directory(shape) + "/";
    if (shape.pattern == Pattern::ping_pong) {
      auto link = std::make_unique<ZeroMqLink>(zmq::socket_type::pair, shape);
      if (role == Role::ping) link->socket().bind(base + "pair");
      else link->socket().connect(base + "pair");
      return link;
    }
    if (role == Role::receiver) {
      auto link = std::make_unique<ZeroMqLink>(zmq::socket_type::pull, shape);
      link->socket().bind(base + "r" + std::to_string(index));
      return link;
    }
    auto link = std::make_unique<ZeroMqLink>(zmq::socket_type::push, shape);
    for (int r = 0; r < shape.receivers; ++r) link->socket().connect(base + "r" + std::to_string(r));
    return link;
  }
  void teardown(const Shape& shape) override { std::filesystem::remove_all(directory(shape)); }

 private:
  static std::string directory(const Shape& shape) { return "/tmp/" + shape.tag + "-zmq"; }
};

}  // namespace

void add_zeromq_transports(std::vector<std::unique_ptr<Transport>>& transports) {
  transports.push_back(std::make_unique<ZeroMqTransport>());
}

}  // namespace bench
