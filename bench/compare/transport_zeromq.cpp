// ZeroMQ over ipc:// (Unix-domain sockets underneath): PAIR for the ping-pong, PUSH/PULL
// for streams, each PUSH connected to every PULL so that receivers share the load, XPUB/SUB
// for publish/subscribe, REQ/REP for request/response. High-water marks of `capacity`
// messages make a full sender wait instead of dropping (XPUB with XPUB_NODROP: a full
// subscriber makes the publisher wait too).
#include <unistd.h>

#include <chrono>
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
    if (!nodrop_) {
      if (!socket_.send(zmq::const_buffer(message.data(), message.size()), zmq::send_flags::none)) {
        throw_error("zmq send would block");
      }
      return;
    }
    // XPUB_NODROP refuses (EAGAIN) while a subscriber is full: wait for room.
    while (!socket_.send(zmq::const_buffer(message.data(), message.size()), zmq::send_flags::dontwait)) {
      zmq::pollitem_t item{socket_.handle(), 0, ZMQ_POLLOUT, 0};
      zmq::poll(&item, 1, std::chrono::milliseconds{100});
    }
  }
  // XPUB: waits until `subscribers` have subscribed (each says so with a message), then
  // sends by waiting for room, not dropping.
  void wait_for_subscribers(int subscribers) {
    for (int seen = 0; seen < subscribers;) {
      zmq::message_t subscription;
      if (!socket_.recv(subscription, zmq::recv_flags::none)) throw_error("zmq xpub recv failed");
      if (subscription.size() > 0 && *static_cast<const char*>(subscription.data()) == 1) ++seen;
    }
    nodrop_ = true;
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
  bool nodrop_ = false;
};

class ZeroMqTransport final : public Transport {
 public:
  std::string name() const override { return "ZeroMQ ipc"; }
  bool offers(Pattern) const override { return true; }
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
    if (shape.pattern == Pattern::request) {
      auto link = std::make_unique<ZeroMqLink>(role == Role::ping ? zmq::socket_type::req : zmq::socket_type::rep, shape);
      if (role == Role::pong) link->socket().bind(base + "service");
      else link->socket().connect(base + "service");
      return link;
    }
    if (shape.pattern == Pattern::fanout) {
      if (role == Role::receiver) {
        auto link = std::make_unique<ZeroMqLink>(zmq::socket_type::sub, shape);
        link->socket().set(zmq::sockopt::subscribe, "");
        link->socket().connect(base + "topic");
        return link;
      }
      auto link = std::make_unique<ZeroMqLink>(zmq::socket_type::xpub, shape);
      link->socket().set(zmq::sockopt::xpub_nodrop, 1);
      link->socket().set(zmq::sockopt::xpub_verbose, 1);  // every subscription, not only a topic's first
      link->socket().bind(base + "topic");
      link->wait_for_subscribers(shape.receivers);
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
