#include "shmbox/cleanup.hpp"

#include <iterator>

#include "endpoint/endpoint_files.hpp"
#include "local/local_mailbox.hpp"
#include "local/mailbox_file.hpp"
#include "mailbox/backend.hpp"
#include "platform/shm.hpp"
#include "segment/segment_factory.hpp"
#include "sharing/board_layout.hpp"
#include "sharing/local_board.hpp"
#include "sharing/lock_layout.hpp"
#include "topic/local_topic.hpp"
#include "topic/topic_layout.hpp"

namespace shmbox {

std::vector<RemovedObject> collect_garbage() {
  std::vector<RemovedObject> removed;
  // Endpoints before lanes: retiring an endpoint removes its lanes with it.
  for (const std::string& name : platform::list_shm_names(detail::endpoint_file_prefix)) {
    if (auto garbage = detail::remove_endpoint_if_garbage(name)) {
      removed.push_back({"endpoint", name, garbage->owner_pid, std::move(garbage->cause)});
    }
  }
  auto mailboxes = detail::remove_garbage_mailboxes(detail::mailbox_file_prefix, "mailbox");
  auto lanes = detail::remove_garbage_mailboxes(detail::lane_file_prefix, "lane");
  removed.insert(removed.end(), std::make_move_iterator(mailboxes.begin()), std::make_move_iterator(mailboxes.end()));
  removed.insert(removed.end(), std::make_move_iterator(lanes.begin()), std::make_move_iterator(lanes.end()));
  // Locks belong to the system: only one left empty is garbage (named only once sized).
  for (const std::string& name : platform::list_shm_names(detail::lock_file_prefix)) {
    if (detail::SegmentFactory::remove_if_left_unsized(std::string{detail::lock_file_prefix} + name)) {
      auto garbage = detail::Garbage::left_unsized();
      removed.push_back({"lock", name, garbage.owner_pid, std::move(garbage.cause)});
    }
  }
  for (const std::string& name : platform::list_shm_names(detail::board_file_prefix)) {
    if (auto garbage = detail::remove_board_if_garbage(name)) {
      removed.push_back({"board", name, garbage->owner_pid, std::move(garbage->cause)});
    }
  }
  for (const std::string& name : platform::list_shm_names(detail::topic_file_prefix)) {
    if (auto garbage = detail::remove_topic_if_garbage(name)) {
      removed.push_back({"topic", name, garbage->owner_pid, std::move(garbage->cause)});
    }
  }
  return removed;
}

Result<std::vector<RemovedObject>> collect_garbage(std::string_view server) {
  return detail::transport_for(server).collect_garbage(server);
}

}  // namespace shmbox
