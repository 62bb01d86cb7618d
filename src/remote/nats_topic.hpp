// Topics held by a NATS server or cluster: a name "nats://host:port/NAME" selects one. Each
// is a JetStream stream that keeps the topic's last `capacity` messages; each subscriber
// is an ordered consumer of it (remote/nats_topic.cpp gives the mapping).
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "topic/topic_backend.hpp"

namespace shmbox::detail {

// nats:// names as a topic transport (api/topic.cpp, topic_transport_for, lists it).
struct NatsTopics {
  static Result<std::shared_ptr<TopicBackend>> create(std::string_view name, const TopicOptions& options);
  static Result<std::shared_ptr<TopicBackend>> open(std::string_view name, const WaitPolicy& wait);
  static Result<void> remove(std::string_view name);
  static Result<TopicStatus> stat(std::string_view name);
  // The full names of the topics on `server` ("nats://host:port").
  static Result<std::vector<std::string>> list(std::string_view server);
};

}  // namespace shmbox::detail
