#include <string>

#include "topic/topic_backend.hpp"

namespace shmbox::detail {

Result<void> check_topic_options(const std::string& object, const TopicOptions& options) {
  const auto invalid = [&](std::string detail) {
    return std::unexpected(Error{Errc::invalid_argument, object, std::move(detail)});
  };
  if (options.capacity == 0 || options.capacity > max_topic_capacity) {
    return invalid("capacity must be 1 to " + std::to_string(max_topic_capacity) + ", not " +
                   std::to_string(options.capacity));
  }
  if (options.history > options.capacity) {
    return invalid("history " + std::to_string(options.history) + " is over its capacity of " +
                   std::to_string(options.capacity));
  }
  if (options.max_message_size > max_topic_message_size) {
    return std::unexpected(Error{Errc::too_large, object,
                                 "max_message_size " + std::to_string(options.max_message_size) +
                                     " is over the limit of " + std::to_string(max_topic_message_size) + " bytes"});
  }
  if (options.max_subscribers == 0 || options.max_subscribers > max_topic_subscribers) {
    return invalid("max_subscribers must be 1 to " + std::to_string(max_topic_subscribers) + ", not " +
                   std::to_string(options.max_subscribers));
  }
  return {};
}

}  // namespace shmbox::detail
