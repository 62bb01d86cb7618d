// Local topics: a topic in a file of /dev/shm (docs/design.md, "Topics"): its names,
// creation, validation, removal, and the state every handle on it shares.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "base/name.hpp"
#include "segment/garbage.hpp"
#include "segment/segment_factory.hpp"
#include "shmbox/topic.hpp"
#include "topic/topic_backend.hpp"
#include "topic/topic_ring.hpp"

namespace shmbox::detail {

// What the handles on one mapping of a topic share: the mapping, the ring over it, and
// how many messages each of this process's subscriber slots holds in place (a slot is
// given up only when its subscriber has gone and released everything it held).
struct TopicState {
  TopicState(FileNames file_names, Segment topic_mapping, const TopicRecord& record, const WaitPolicy& wait)
      : names(std::move(file_names)), mapping(std::move(topic_mapping)), ring(record, names.object, wait) {}

  struct SubscriberUse {
    std::uint32_t held = 0;
    bool left = false;  // its Subscriber has gone
  };

  // A slot's message was released (or its Subscriber went); the slot is left once both.
  void release_subscriber_use(std::uint32_t slot, bool subscriber_gone, bool message_released);

  FileNames names;
  Segment mapping;
  TopicRing ring;
  std::mutex mutex;
  std::map<std::uint32_t, SubscriberUse> subscribers;
};

// Removes the topic `name` if it is garbage: its owner has exited, or it was left empty;
// and says why. nullopt if it is not, or this process cannot tell or may not remove it.
std::optional<Garbage> remove_topic_if_garbage(const std::string& name);

// This machine's topics, as a topic transport (api/topic.cpp lists it).
struct LocalTopics {
  static Result<std::shared_ptr<TopicBackend>> create(std::string_view name, const TopicOptions& options);
  static Result<std::shared_ptr<TopicBackend>> open(std::string_view name, const WaitPolicy& wait);
  static Result<void> remove(std::string_view name);
  static Result<TopicStatus> stat(std::string_view name);
};

}  // namespace shmbox::detail
