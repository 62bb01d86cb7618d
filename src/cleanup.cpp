#include "shmbox/cleanup.hpp"

#include "mailbox/mailbox_state.hpp"
#include "mailbox/ownership.hpp"
#include "name.hpp"
#include "shmbox/mailbox.hpp"

namespace shmbox {

std::vector<RemovedObject> collect_garbage() {
  std::vector<RemovedObject> removed;
  for (const std::string& name : Mailbox::list()) {
    const std::string file_name = std::string{detail::mailbox_file_prefix} + name;
    if (const auto owner = detail::remove_mailbox_if_orphaned(file_name, detail::describe("mailbox", name))) {
      removed.push_back({"mailbox", name, *owner});
    }
  }
  return removed;
}

}  // namespace shmbox
