// Boost.Interprocess message_queue: a queue in shared memory guarded by a process-shared
// mutex and condition variables.
#include <boost/interprocess/ipc/message_queue.hpp>

#include <stdexcept>

#include "transports.hpp"

namespace bench {
namespace {

namespace bip = boost::interprocess;

class BoostLink final : public Link {
 public:
  BoostLink(const std::string& out, const std::string& in)
      : out_(bip::open_only, out.c_str()), in_(bip::open_only, in.c_str()) {}
  void send(std::span<const std::byte> message) override { out_.send(message.data(), message.size(), 0); }
  std::size_t receive(std::span<std::byte> buffer) override {
    bip::message_queue::size_type got = 0;
    unsigned int priority = 0;
    in_.receive(buffer.data(), buffer.size(), got, priority);
    return got;
  }

 private:
  bip::message_queue out_, in_;
};

class BoostTransport final : public Transport {
 public:
  std::string name() const override { return "Boost message_queue"; }
  std::string unavailable(const Shape&) const override { return {}; }
  void setup(const Shape& shape) override {
    for (const auto& name : names(shape)) {
      bip::message_queue::remove(name.c_str());
      bip::message_queue queue(bip::create_only, name.c_str(), shape.capacity, shape.size);
    }
  }
  std::unique_ptr<Link> connect(const Shape& shape, Role role, int) override {
    const auto queues = names(shape);
    if (shape.pattern == Pattern::stream) return std::make_unique<BoostLink>(queues[0], queues[0]);
    const bool ping = role == Role::ping;
    return std::make_unique<BoostLink>(queues[ping ? 0 : 1], queues[ping ? 1 : 0]);
  }
  void teardown(const Shape& shape) override {
    for (const auto& name : names(shape)) bip::message_queue::remove(name.c_str());
  }

 private:
  static std::vector<std::string> names(const Shape& shape) {
    if (shape.pattern == Pattern::stream) return {shape.tag + "-boost"};
    return {shape.tag + "-boost-ab", shape.tag + "-boost-ba"};
  }
};

}  // namespace

void add_boost_transports(std::vector<std::unique_ptr<Transport>>& transports) {
  transports.push_back(std::make_unique<BoostTransport>());
}

}  // namespace bench
