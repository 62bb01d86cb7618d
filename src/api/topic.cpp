// The public topic handles: each call forwarded to the topic's transport, resolved from
// its name (topic/topic_backend.hpp).
#include "shmbox/topic.hpp"

#include <utility>

#include "platform/process.hpp"
#include "platform/shm.hpp"
#include "remote/nats_topic.hpp"
#include "remote/remote_name.hpp"
#include "topic/local_topic.hpp"
#include "topic/topic_backend.hpp"

namespace shmbox {
namespace detail {
namespace {

template <class Names>
constexpr TopicTransport topic_transport_of() noexcept {
  return TopicTransport{Names::create, Names::open, Names::remove, Names::stat};
}

constexpr TopicTransport local_topics = topic_transport_of<LocalTopics>();
constexpr TopicTransport nats_topics = topic_transport_of<NatsTopics>();

const TopicTransport& topic_transport_for(std::string_view name) noexcept {
  return is_remote_name(name) ? nats_topics : local_topics;
}

}  // namespace
}  // namespace detail

namespace {

Error moved_from(const char* what) { return Error{Errc::invalid_argument, what, "is empty (moved from)"}; }

}  // namespace

// ---- Topic ----

Result<Topic> Topic::create(std::string_view name, const TopicOptions& options) {
  auto backend = detail::topic_transport_for(name).create(name, options);
  if (!backend) return std::unexpected(backend.error());
  Topic topic;
  topic.backend_ = std::move(*backend);
  return topic;
}

Result<Topic> Topic::open(std::string_view name, const WaitPolicy& wait) {
  auto backend = detail::topic_transport_for(name).open(name, wait);
  if (!backend) return std::unexpected(backend.error());
  Topic topic;
  topic.backend_ = std::move(*backend);
  return topic;
}

Result<void> Topic::remove(std::string_view name) { return detail::topic_transport_for(name).remove(name); }

Result<TopicStatus> Topic::stat(std::string_view name) { return detail::topic_transport_for(name).stat(name); }

std::vector<std::string> Topic::list() { return platform::list_shm_names(detail::topic_file_prefix); }

Result<std::vector<std::string>> Topic::list(std::string_view server) { return detail::NatsTopics::list(server); }

Result<Publisher> Topic::publisher() const {
  if (!backend_) return std::unexpected(moved_from("topic"));
  auto backend = backend_->publisher();
  if (!backend) return std::unexpected(backend.error());
  Publisher publisher;
  publisher.backend_ = std::move(*backend);
  return publisher;
}

Result<Subscriber> Topic::subscribe(std::uint32_t history) const {
  if (!backend_) return std::unexpected(moved_from("topic"));
  auto backend = backend_->subscribe(history);
  if (!backend) return std::unexpected(backend.error());
  Subscriber subscriber;
  subscriber.backend_ = std::move(*backend);
  return subscriber;
}

const std::string& Topic::name() const noexcept {
  static const std::string none;
  return backend_ ? backend_->name() : none;
}

std::size_t Topic::max_message_size() const noexcept { return backend_ ? backend_->max_message_size() : 0; }

// ---- Publisher ----

Publisher::Publisher() noexcept = default;
Publisher::Publisher(Publisher&& other) noexcept = default;
Publisher& Publisher::operator=(Publisher&& other) noexcept = default;
Publisher::~Publisher() = default;

Result<std::uint64_t> Publisher::publish(std::span<const std::byte> message, Deadline deadline) {
  if (!backend_) return std::unexpected(moved_from("publisher"));
  return backend_->publish(message, deadline);
}

Result<TopicLoan> Publisher::loan(std::size_t size) {
  if (!backend_) return std::unexpected(moved_from("publisher"));
  return backend_->loan(size);
}

Result<std::uint64_t> Publisher::publish(TopicLoan&& loan, Deadline deadline) {
  if (!backend_) return std::unexpected(moved_from("publisher"));
  return backend_->publish(std::move(loan), deadline);
}

// ---- Subscriber ----

Subscriber::Subscriber() noexcept = default;
Subscriber::Subscriber(Subscriber&& other) noexcept = default;
Subscriber& Subscriber::operator=(Subscriber&& other) noexcept = default;
Subscriber::~Subscriber() = default;

Result<Delivered> Subscriber::receive(std::vector<std::byte>& message, Deadline deadline) {
  if (!backend_) return std::unexpected(moved_from("subscriber"));
  return backend_->receive(message, deadline);
}

Result<TopicMessage> Subscriber::receive_in_place(Deadline deadline) {
  if (!backend_) return std::unexpected(moved_from("subscriber"));
  return backend_->receive_in_place(deadline);
}

std::uint64_t Subscriber::lost() const noexcept { return backend_ ? backend_->lost() : 0; }

// ---- TopicLoan ----

TopicLoan& TopicLoan::operator=(TopicLoan&& other) noexcept {
  if (this != &other) {
    give_back();
    state_ = std::move(other.state_);
    slot_ = other.slot_;
    chunk_ = other.chunk_;
    data_ = other.data_;
    fork_generation_ = other.fork_generation_;
    term_ = other.term_;
  }
  return *this;
}

void TopicLoan::give_back() noexcept {
  if (state_ && fork_generation_ == platform::fork_generation()) state_->ring.give_back(slot_, chunk_, term_);
  state_.reset();
}

// ---- TopicMessage ----

TopicMessage& TopicMessage::operator=(TopicMessage&& other) noexcept {
  if (this != &other) {
    release();
    state_ = std::move(other.state_);
    slot_ = other.slot_;
    chunk_ = other.chunk_;
    data_ = other.data_;
    info_ = other.info_;
    fork_generation_ = other.fork_generation_;
  }
  return *this;
}

void TopicMessage::release() noexcept {
  if (!state_) return;
  // A forked child's copy pins nothing of its own.
  if (fork_generation_ != platform::fork_generation()) {
    state_.reset();
    data_ = {};
    return;
  }
  state_->ring.unpin(slot_, chunk_);
  try {
    state_->release_subscriber_use(slot_, false, true);
  } catch (...) {  // only a failed lock could throw
  }
  state_.reset();
  data_ = {};
}

}  // namespace shmbox
