// shmbox itself: a mailbox per direction, in each wait policy, copying or zero-copy; a
// topic for publish/subscribe; a service for request/response.
#include <fmt/core.h>

#include <cstring>
#include <optional>
#include <stdexcept>

#include "mailbox_link.hpp"
#include "shmbox/mailbox.hpp"
#include "shmbox/service.hpp"
#include "shmbox/topic.hpp"
#include "transports.hpp"

namespace bench {
namespace {

class MailboxLink final : public Link {
 public:
  MailboxLink(shmbox::Mailbox out, shmbox::Mailbox in, bool zero_copy)
      : out_(std::move(out)), in_(std::move(in)), zero_copy_(zero_copy) {}

  void send(std::span<const std::byte> message) override {
    if (zero_copy_) {
      auto loan = take(out_->loan(message.size()));
      std::memcpy(loan.data().data(), message.data(), message.size());  // the producer writes in place
      check(loan.commit());
      return;
    }
    check(out_->send(message));
  }
  std::size_t receive(std::span<std::byte> buffer) override { return take(in_->receive(buffer)); }
  std::uint64_t receive_sequence(std::span<std::byte> scratch) override {
    if (!zero_copy_) return Link::receive_sequence(scratch);
    auto message = take(in_->receive_in_place());  // read where it lies, no copy out
    std::uint64_t sequence = 0;
    std::memcpy(&sequence, message.data().data(), sizeof sequence);
    return sequence;
  }
  void echo(std::span<std::byte> scratch) override {
    if (!zero_copy_) return Link::echo(scratch);
    auto request = take(in_->receive_in_place());
    auto loan = take(out_->loan(request.size()));
    std::memcpy(loan.data().data(), request.data().data(), request.size());
    request.release();
    check(loan.commit());
  }

 private:
  template <class T>
  static T take(shmbox::Result<T> result) {
    if (!result) throw_error(result.error().message());
    return std::move(*result);
  }
  static void check(shmbox::Result<void> result) {
    if (!result) throw_error(result.error().message());
  }
  std::optional<shmbox::Mailbox> out_, in_;  // optional: a Mailbox has no empty state
  bool zero_copy_;
};

class ShmboxTransport final : public Transport {
 public:
  ShmboxTransport(std::string label, shmbox::WaitPolicy policy, bool zero_copy)
      : label_(std::move(label)), policy_(policy), zero_copy_(zero_copy) {}

  std::string name() const override { return label_; }
  std::string unavailable(const Shape&) const override { return {}; }

  void setup(const Shape& shape) override {
    const shmbox::MailboxOptions options{.capacity = static_cast<std::uint32_t>(shape.capacity),
                                         .max_message_size = static_cast<std::uint32_t>(shape.size),
                                         .ownership = shmbox::Ownership::system};
    for (const auto& name : mailbox_names(shape)) {
      if (auto made = shmbox::Mailbox::create(name, options, policy_); !made) throw_setup(made.error().message());
    }
  }
  std::unique_ptr<Link> connect(const Shape& shape, Role role, int) override {
    return open_mailboxes(shape, role, mailbox_names(shape), policy_, zero_copy_);
  }
  void teardown(const Shape& shape) override {
    for (const auto& name : mailbox_names(shape)) (void)shmbox::Mailbox::remove(name);
  }

 private:
  [[noreturn]] static void throw_setup(const std::string& what) { throw std::runtime_error(what); }
  std::string label_;
  shmbox::WaitPolicy policy_;
  bool zero_copy_;
};

template <class T>
T value_of(shmbox::Result<T> result) {
  if (!result) throw std::runtime_error(result.error().message());
  return std::move(*result);
}

void check_result(shmbox::Result<void> result) {
  if (!result) throw std::runtime_error(result.error().message());
}

// A blocking topic (no loss, as the peers are set): the sender publishes copies, each
// receiver subscribes and receives copies.
class TopicLink final : public Link {
 public:
  explicit TopicLink(shmbox::Publisher publisher) : publisher_(std::move(publisher)) {}
  explicit TopicLink(shmbox::Subscriber subscriber) : subscriber_(std::move(subscriber)) {}
  void send(std::span<const std::byte> message) override { (void)value_of(publisher_.publish(message)); }
  std::size_t receive(std::span<std::byte> buffer) override {
    const auto got = value_of(subscriber_.receive(received_));
    if (got.size > buffer.size()) throw_error("topic message larger than the buffer");
    std::memcpy(buffer.data(), received_.data(), got.size);
    return got.size;
  }

 private:
  shmbox::Publisher publisher_;
  shmbox::Subscriber subscriber_;
  std::vector<std::byte> received_;
};

class TopicTransport final : public Transport {
 public:
  std::string name() const override { return "shmbox topic"; }
  bool offers(Pattern pattern) const override { return pattern == Pattern::fanout; }
  std::string unavailable(const Shape&) const override { return {}; }
  void setup(const Shape& shape) override {
    (void)value_of(shmbox::Topic::create(shape.tag, {.capacity = static_cast<std::uint32_t>(shape.capacity),
                                                     .max_message_size = static_cast<std::uint32_t>(shape.size),
                                                     .max_subscribers = static_cast<std::uint32_t>(shape.receivers),
                                                     // One publisher, as each peer's topic here has one.
                                                     .max_publishers = 1,
                                                     .ownership = shmbox::Ownership::system}));
  }
  std::unique_ptr<Link> connect(const Shape& shape, Role role, int) override {
    auto topic = value_of(shmbox::Topic::open(shape.tag));
    if (role == Role::sender) return std::make_unique<TopicLink>(value_of(topic.publisher()));
    return std::make_unique<TopicLink>(value_of(topic.subscribe()));
  }
  void teardown(const Shape& shape) override { (void)shmbox::Topic::remove(shape.tag); }
};

// A service: ping is its client (each send a call, its answer received next), pong its
// server (each echo answers one request with its own bytes).
class ServiceLink final : public Link {
 public:
  explicit ServiceLink(shmbox::Client client) : client_(std::move(client)) {}
  explicit ServiceLink(shmbox::Server server) : server_(std::move(server)) {}
  void send(std::span<const std::byte> message) override { call_ = value_of(client_->send(message)); }
  std::size_t receive(std::span<std::byte> buffer) override {
    if (!call_) throw_error("an answer received before its request was sent");
    const auto answer = value_of(call_->answer());
    call_.reset();
    if (answer.size() > buffer.size()) throw_error("answer larger than the buffer");
    std::memcpy(buffer.data(), answer.data(), answer.size());
    return answer.size();
  }
  void echo(std::span<std::byte>) override {
    auto request = value_of(server_->next());
    check_result(request.answer(request.data()));
  }

 private:
  std::optional<shmbox::Client> client_;  // optional: the handles have no empty state
  std::optional<shmbox::Server> server_;
  std::optional<shmbox::Call> call_;
};

class ServiceTransport final : public Transport {
 public:
  std::string name() const override { return "shmbox service"; }
  bool offers(Pattern pattern) const override { return pattern == Pattern::request; }
  std::string unavailable(const Shape&) const override { return {}; }
  void setup(const Shape& shape) override {
    (void)value_of(shmbox::Server::join(shape.tag, {.max_request_size = static_cast<std::uint32_t>(shape.size)}));
  }
  std::unique_ptr<Link> connect(const Shape& shape, Role role, int) override {
    return service_link(shape.tag, shape.size, role);
  }
  void teardown(const Shape& shape) override { (void)shmbox::Server::remove(shape.tag); }
};

}  // namespace

std::unique_ptr<Link> service_link(const std::string& name, std::size_t size, Role role) {
  if (role == Role::ping) {
    return std::make_unique<ServiceLink>(
        value_of(shmbox::Client::connect(name, {.max_answer_size = static_cast<std::uint32_t>(size)})));
  }
  return std::make_unique<ServiceLink>(value_of(shmbox::Server::open(name)));
}

std::vector<std::string> mailbox_names(const Shape& shape, const std::string& prefix) {
  if (shape.pattern == Pattern::stream) return {prefix + shape.tag};
  return {prefix + shape.tag + "-ab", prefix + shape.tag + "-ba"};
}

std::unique_ptr<Link> open_mailboxes(const Shape& shape, Role role, const std::vector<std::string>& names,
                                     const shmbox::WaitPolicy& policy, bool zero_copy) {
  auto open = [&](const std::string& name) {
    auto opened = shmbox::Mailbox::open(name, policy);
    if (!opened) throw std::runtime_error(opened.error().message());
    return std::move(*opened);
  };
  if (shape.pattern == Pattern::stream) return std::make_unique<MailboxLink>(open(names[0]), open(names[0]), zero_copy);
  const bool ping = role == Role::ping;
  return std::make_unique<MailboxLink>(open(names[ping ? 0 : 1]), open(names[ping ? 1 : 0]), zero_copy);
}

void add_shmbox_transports(std::vector<std::unique_ptr<Transport>>& transports) {
  const shmbox::WaitPolicy adaptive{}, busy{.mode = shmbox::WaitMode::busy_poll}, sleep{.mode = shmbox::WaitMode::sleep};
  transports.push_back(std::make_unique<ShmboxTransport>("shmbox adaptive", adaptive, false));
  transports.push_back(std::make_unique<ShmboxTransport>("shmbox busy-poll", busy, false));
  transports.push_back(std::make_unique<ShmboxTransport>("shmbox sleep", sleep, false));
  transports.push_back(std::make_unique<ShmboxTransport>("shmbox adaptive zero-copy", adaptive, true));
  transports.push_back(std::make_unique<ShmboxTransport>("shmbox busy-poll zero-copy", busy, true));
  transports.push_back(std::make_unique<TopicTransport>());
  transports.push_back(std::make_unique<ServiceTransport>());
}

}  // namespace bench
