#include "shmbox/cleanup.hpp"

#include "endpoint/endpoint_files.hpp"
#include "mailbox/mailbox_state.hpp"
#include "mailbox/ownership.hpp"
#include "name.hpp"
#include "platform/shm.hpp"
#include "remote/nats_mailbox.hpp"

namespace shmbox {

std::vector<RemovedObject> collect_garbage() {
  std::vector<RemovedObject> removed;
  // Endpoints before lanes: retiring an endpoint removes its lanes with it.
  for (const std::string& name : platform::list_shm_names(detail::endpoint_file_prefix)) {
    if (const auto owner = detail::remove_endpoint_if_orphaned(name)) removed.push_back({"endpoint", name, *owner});
  }
  auto sweep_mailboxes = [&](std::string_view prefix, const char* kind) {
    for (const std::string& name : platform::list_shm_names(prefix)) {
      const std::string file_name = std::string{prefix} + name;
      if (const auto owner = detail::remove_mailbox_if_orphaned(file_name, detail::describe(kind, name))) {
        removed.push_back({kind, name, *owner});
      }
    }
  };
  sweep_mailboxes(detail::mailbox_file_prefix, "mailbox");
  sweep_mailboxes(detail::lane_file_prefix, "lane");
  return removed;
}

Result<std::vector<RemovedObject>> collect_garbage(std::string_view server) {
  auto remote = detail::parse_remote_server(server);
  if (!remote) return std::unexpected(remote.error());
  return detail::NatsMailbox::collect_garbage(*remote);
}

}  // namespace shmbox
