// The contract every topic transport keeps: a TopicBackend per Topic, a PublisherBackend
// per Publisher, a SubscriberBackend per Subscriber, and a TopicTransport (its operations
// on names). The public handles forward to them with no branch on the kind; api/topic.cpp
// resolves a name to its transport (docs/design.md, "Topics").
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "shmbox/error.hpp"
#include "shmbox/topic.hpp"
#include "shmbox/wait.hpp"

namespace shmbox::detail {

// The errors every transport gives alike.
inline Error topic_too_large(const std::string& object, std::size_t size, std::size_t max_message_size) {
  return Error{Errc::too_large, object,
               "a message of " + std::to_string(size) + " bytes is over its maximum of " +
                   std::to_string(max_message_size)};
}
inline Error topic_removed(const std::string& object) { return Error{Errc::closed, object, "was removed"}; }

// The options every transport checks alike: capacity, history, max_message_size and
// max_subscribers in their ranges.
Result<void> check_topic_options(const std::string& object, const TopicOptions& options);

class PublisherBackend {
 public:
  virtual ~PublisherBackend() = default;
  virtual Result<std::uint64_t> publish(std::span<const std::byte> message, Deadline deadline) = 0;
  virtual Result<TopicLoan> loan(std::size_t size) = 0;
  virtual Result<std::uint64_t> publish(TopicLoan&& loan, Deadline deadline) = 0;
};

// What a selector watches for a subscriber: its topic's shared memory and its slot there.
struct TopicWatch {
  std::shared_ptr<TopicState> topic;
  std::uint32_t slot = 0;
};

class SubscriberBackend {
 public:
  virtual ~SubscriberBackend() = default;
  virtual Result<Delivered> receive(std::vector<std::byte>& message, Deadline deadline) = 0;
  virtual Result<TopicMessage> receive_in_place(Deadline deadline) = 0;
  virtual std::uint64_t lost() const noexcept = 0;
  // Errc::invalid_argument saying why when a selector cannot watch it.
  virtual Result<TopicWatch> watch() const = 0;
};

class TopicBackend {
 public:
  TopicBackend(std::string name, std::string object, std::size_t max_message_size)
      : name_(std::move(name)), object_(std::move(object)), max_message_size_(max_message_size) {}
  virtual ~TopicBackend() = default;
  TopicBackend(const TopicBackend&) = delete;
  TopicBackend& operator=(const TopicBackend&) = delete;

  const std::string& name() const noexcept { return name_; }
  // "topic 'prices'", for errors.
  const std::string& object() const noexcept { return object_; }
  std::size_t max_message_size() const noexcept { return max_message_size_; }

  virtual Result<std::unique_ptr<PublisherBackend>> publisher() = 0;
  virtual Result<std::unique_ptr<SubscriberBackend>> subscribe(std::uint32_t history) = 0;

 private:
  std::string name_;
  std::string object_;
  std::size_t max_message_size_;
};

// A transport's operations on names.
struct TopicTransport {
  Result<std::shared_ptr<TopicBackend>> (*create)(std::string_view name, const TopicOptions& options);
  Result<std::shared_ptr<TopicBackend>> (*open)(std::string_view name, const WaitPolicy& wait);
  Result<void> (*remove)(std::string_view name);
  Result<TopicStatus> (*stat)(std::string_view name);
};

}  // namespace shmbox::detail
