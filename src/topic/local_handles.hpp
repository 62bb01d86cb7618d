// A local topic's backends: the handles on one mapping of a topic file share its
// TopicState; a publisher or subscriber holds a slot for its process.
#pragma once

#include <cstdint>
#include <memory>

#include "topic/local_topic.hpp"
#include "topic/topic_backend.hpp"

namespace shmbox::detail {

class LocalTopic final : public TopicBackend {
 public:
  explicit LocalTopic(std::shared_ptr<TopicState> state);
  Result<std::unique_ptr<PublisherBackend>> publisher() override;
  Result<std::unique_ptr<SubscriberBackend>> subscribe(std::uint32_t history) override;

 private:
  std::shared_ptr<TopicState> state_;
};

// A publisher or subscriber slot and the process that joined it: a forked child's copy is
// not that process, and may not act on the slot (it makes its own).
struct SlotHold {
  std::shared_ptr<TopicState> state;
  std::uint32_t slot = 0;
  std::uint64_t fork_generation = 0;
  bool ours() const noexcept;
  Result<void> check_ours(const char* what) const;
};

class LocalPublisher final : public PublisherBackend {
 public:
  explicit LocalPublisher(SlotHold hold) noexcept : hold_(std::move(hold)) {}
  ~LocalPublisher() override;
  Result<std::uint64_t> publish(std::span<const std::byte> message, Deadline deadline) override;
  Result<TopicLoan> loan(std::size_t size) override;
  Result<std::uint64_t> publish(TopicLoan&& loan, Deadline deadline) override;

 private:
  // A chunk for `size` bytes, after the checks a loan makes.
  Result<std::uint32_t> take_chunk(std::size_t size);
  SlotHold hold_;
};

class LocalSubscriber final : public SubscriberBackend {
 public:
  explicit LocalSubscriber(SlotHold hold) noexcept : hold_(std::move(hold)) {}
  ~LocalSubscriber() override;
  Result<Delivered> receive(std::vector<std::byte>& message, Deadline deadline) override;
  Result<TopicMessage> receive_in_place(Deadline deadline) override;
  std::uint64_t lost() const noexcept override;
  Result<TopicWatch> watch() const override;

 private:
  SlotHold hold_;
};

}  // namespace shmbox::detail
