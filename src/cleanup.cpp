#include "shmbox/cleanup.hpp"

#include "endpoint/endpoint_files.hpp"
#include "garbage.hpp"
#include "mailbox/mailbox_state.hpp"
#include "mailbox/ownership.hpp"
#include "name.hpp"
#include "platform/shm.hpp"
#include "remote/nats_mailbox.hpp"
#include "segment_factory.hpp"

namespace shmbox {

namespace detail {

Garbage Garbage::owner_exited(pid_t pid) {
  return Garbage{pid, "its owner, process " + std::to_string(pid) + ", had exited"};
}

Garbage Garbage::left_unsized() {
  return Garbage{0, "it had been empty (0 bytes) for over " + std::to_string(unsized_grace.count()) + " s"};
}

}  // namespace detail

std::vector<RemovedObject> collect_garbage() {
  std::vector<RemovedObject> removed;
  // Endpoints before lanes: retiring an endpoint removes its lanes with it.
  for (const std::string& name : platform::list_shm_names(detail::endpoint_file_prefix)) {
    if (auto garbage = detail::remove_endpoint_if_garbage(name)) {
      removed.push_back({"endpoint", name, garbage->owner_pid, std::move(garbage->cause)});
    }
  }
  auto sweep_mailboxes = [&](std::string_view prefix, const char* kind) {
    for (const std::string& name : platform::list_shm_names(prefix)) {
      const detail::MailboxFile names{name, std::string{prefix} + name, detail::describe(kind, name)};
      if (auto garbage = detail::remove_mailbox_if_garbage(names)) {
        removed.push_back({kind, name, garbage->owner_pid, std::move(garbage->cause)});
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
