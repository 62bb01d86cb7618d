// Eclipse iceoryx: zero-copy publish/subscribe through shared memory brokered by its
// daemon, RouDi, which this transport starts (with memory pools large enough for
// lossless 1 MiB streams) and stops itself. Set for no loss: the publisher waits for a
// full subscriber queue (WAIT_FOR_CONSUMER with BLOCK_PRODUCER) instead of discarding.
// On equal terms with shmbox's copy mode, a sender loans a chunk, copies the message in
// and publishes; a receiver takes it, copies it out and releases it.
#include <fcntl.h>
#include <fmt/core.h>
#include <pwd.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <thread>

#include "iceoryx_hoofs/log/logmanager.hpp"
#include "iceoryx_posh/popo/untyped_publisher.hpp"
#include "iceoryx_posh/popo/untyped_subscriber.hpp"
#include "iceoryx_posh/popo/wait_set.hpp"
#include "iceoryx_posh/runtime/posh_runtime.hpp"
#include "transports.hpp"

namespace bench {
namespace {

iox::capro::ServiceDescription topic(const Shape& shape, const char* direction) {
  return {"shmbox-bench", iox::capro::IdString_t(iox::cxx::TruncateToCapacity, shape.tag.c_str()),
          iox::capro::IdString_t(iox::cxx::TruncateToCapacity, direction)};
}

class IceoryxLink final : public Link {
 public:
  IceoryxLink(const Shape& shape, const char* out, const char* in) {
    if (out != nullptr) {
      iox::popo::PublisherOptions options;
      options.subscriberTooSlowPolicy = iox::popo::ConsumerTooSlowPolicy::WAIT_FOR_CONSUMER;
      publisher_.emplace(topic(shape, out), options);
    }
    if (in != nullptr) {
      iox::popo::SubscriberOptions options;
      options.queueCapacity = shape.capacity;
      options.queueFullPolicy = iox::popo::QueueFullPolicy::BLOCK_PRODUCER;
      subscriber_.emplace(topic(shape, in), options);
      waitset_.emplace();
      waitset_->attachState(*subscriber_, iox::popo::SubscriberState::HAS_DATA).or_else([](auto) {
        throw_error("cannot attach the subscriber to a wait set");
      });
    }
  }
  ~IceoryxLink() override {
    if (waitset_ && subscriber_) waitset_->detachState(*subscriber_, iox::popo::SubscriberState::HAS_DATA);
  }

  // Subscriptions are made through RouDi, asynchronously: nothing may be published
  // before they stand, or it would go to nobody.
  void wait_until_connected() {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds{10};
    while ((publisher_ && !publisher_->hasSubscribers()) ||
           (subscriber_ && subscriber_->getSubscriptionState() != iox::SubscribeState::SUBSCRIBED)) {
      if (std::chrono::steady_clock::now() > deadline) throw_error("iceoryx did not connect within 10 s");
      std::this_thread::sleep_for(std::chrono::milliseconds{1});
    }
  }

  void send(std::span<const std::byte> message) override {
    publisher_->loan(static_cast<std::uint32_t>(message.size()))
        .and_then([&](void* payload) {
          std::memcpy(payload, message.data(), message.size());
          publisher_->publish(payload);
        })
        .or_else([](auto) { throw_error("iceoryx could not loan a chunk (memory pools exhausted)"); });
  }
  std::size_t receive(std::span<std::byte> buffer) override {
    for (;;) {
      auto taken = subscriber_->take();
      if (!taken.has_error()) {
        const void* payload = taken.value();
        const auto* header = iox::mepoo::ChunkHeader::fromUserPayload(payload);
        const std::size_t size = header->userPayloadSize();
        if (size > buffer.size()) throw_error("iceoryx chunk larger than the buffer");
        std::memcpy(buffer.data(), payload, size);
        subscriber_->release(payload);
        return size;
      }
      if (taken.get_error() != iox::popo::ChunkReceiveResult::NO_CHUNK_AVAILABLE) throw_error("iceoryx take failed");
      (void)waitset_->wait();
    }
  }

 private:
  std::optional<iox::popo::UntypedPublisher> publisher_;
  std::optional<iox::popo::UntypedSubscriber> subscriber_;
  std::optional<iox::popo::WaitSet<>> waitset_;
};

class IceoryxTransport final : public Transport {
 public:
  ~IceoryxTransport() override { stop_roudi(); }
  std::string name() const override { return "iceoryx"; }
  bool offers(Pattern pattern) const override { return pattern != Pattern::request; }
  std::string unavailable(const Shape& shape) const override {
    if (shape.senders != 1 || (shape.receivers != 1 && shape.pattern != Pattern::fanout)) {
      return "publish/subscribe: every subscriber gets every message, no competing consumers";
    }
    if (shape.capacity > iox::MAX_SUBSCRIBER_QUEUE_CAPACITY) return "capacity over its subscriber queue's maximum";
    if (!std::filesystem::exists(roudi_path)) return std::string{roudi_path} + " not found (Debian: iceoryx)";
    return {};
  }
  void setup(const Shape&) override { start_roudi(); }
  std::unique_ptr<Link> connect(const Shape& shape, Role role, int index) override {
    const std::string runtime = fmt::format("{}-{}-{}", shape.tag, static_cast<int>(role), index);
    iox::log::LogManager::GetLogManager().SetDefaultLogLevel(iox::log::LogLevel::kError, iox::log::LogLevelOutput::kHideLogLevel);
    iox::runtime::PoshRuntime::initRuntime(iox::RuntimeName_t(iox::cxx::TruncateToCapacity, runtime.c_str()));
    std::unique_ptr<IceoryxLink> link;
    switch (role) {
      case Role::ping: link = std::make_unique<IceoryxLink>(shape, "ab", "ba"); break;
      case Role::pong: link = std::make_unique<IceoryxLink>(shape, "ba", "ab"); break;
      case Role::sender: link = std::make_unique<IceoryxLink>(shape, "ab", nullptr); break;
      case Role::receiver: link = std::make_unique<IceoryxLink>(shape, nullptr, "ab"); break;
    }
    link->wait_until_connected();
    // RouDi connects subscribers to a new publisher in its discovery loop: the rest of
    // them, after the first, within a turn of it, before anything is published.
    if (shape.pattern == Pattern::fanout && role == Role::sender) std::this_thread::sleep_for(std::chrono::milliseconds{200});
    return link;
  }
  void teardown(const Shape&) override {}

 private:
  static constexpr const char* roudi_path = "/usr/bin/iox-roudi";

  // Once per run: a daemon whose pools hold every size measured, `capacity` deep and more.
  void start_roudi() {
    if (roudi_ > 0) return;
    config_ = std::filesystem::temp_directory_path() / fmt::format("shmbox-bench-roudi-{}.toml", ::getpid());
    std::ofstream config(config_);
    config << "[general]\nversion = 1\n\n[[segment]]\n";
    // Chunks carry a header of up to a few hundred bytes besides the message.
    for (const auto& [size, count] : {std::pair{512, 8192}, std::pair{2048, 4096}, std::pair{66 * 1024, 512},
                                      std::pair{1025 * 1024, 64}}) {
      config << fmt::format("\n[[segment.mempool]]\nsize = {}\ncount = {}\n", size, count);
    }
    config.close();
    std::fflush(nullptr);
    roudi_ = ::fork();
    if (roudi_ == 0) {
      const int quiet = ::open("/dev/null", O_WRONLY);  // its banner would land in our tables
      ::dup2(quiet, STDOUT_FILENO);
      ::dup2(quiet, STDERR_FILENO);
      ::execl(roudi_path, roudi_path, "-c", config_.c_str(), "-l", "error", static_cast<char*>(nullptr));
      ::_exit(127);
    }
  }
  void stop_roudi() {
    if (roudi_ <= 0) return;
    ::kill(roudi_, SIGTERM);
    ::waitpid(roudi_, nullptr, 0);
    roudi_ = -1;
    std::filesystem::remove(config_);
    // RouDi leaves its segments behind when apps ended without deregistering (ours
    // end with _exit): the management segment, and the data segment named after the user.
    std::filesystem::remove("/dev/shm/iceoryx_mgmt");
    if (const passwd* user = ::getpwuid(::geteuid())) std::filesystem::remove(std::string{"/dev/shm/"} + user->pw_name);
  }

  pid_t roudi_ = -1;
  std::filesystem::path config_;
};

}  // namespace

void add_iceoryx_transports(std::vector<std::unique_ptr<Transport>>& transports) {
  transports.push_back(std::make_unique<IceoryxTransport>());
}

}  // namespace bench
