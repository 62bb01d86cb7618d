#include "mailbox/ownership.hpp"

#include <cstdlib>
#include <mutex>
#include <vector>

#include "mailbox/ring.hpp"
#include "platform/shm.hpp"
#include "segment_factory.hpp"

namespace shmbox::detail {
namespace {

struct OwnedMailbox {
  std::string file_name;
  std::shared_ptr<const Segment> mapping;  // kept so that exit can close it without opening
  Header* header;
  std::uint64_t owner;
};

struct ExitRegistry {
  std::mutex lock;
  std::vector<OwnedMailbox> owned;
};

ExitRegistry& registry() {
  // Never destroyed: the handler below may run after static destructors have begun.
  static auto* instance = new ExitRegistry;
  return *instance;
}

void remove_owned_at_exit() {
  ExitRegistry& exiting = registry();
  const std::scoped_lock guard{exiting.lock};
  // A forked child inherits the list but owns none of it.
  const std::uint64_t me = platform::current_process().packed();
  for (OwnedMailbox& mailbox : exiting.owned) {
    if (mailbox.owner != me) continue;
    close_mailbox(*mailbox.header);
    platform::unlink_shm_file_if_same(mailbox.file_name, SegmentFactory::descriptor(*mailbox.mapping));
  }
  exiting.owned.clear();
}

}  // namespace

void retire(MailboxState& state) noexcept {
  close_mailbox(*state.header);
  platform::unlink_shm_file_if_same(state.file_name, SegmentFactory::descriptor(*state.mapping));
  forget_at_exit(state.file_name);
}

bool retire_if_orphaned(MailboxState& state) noexcept {
  if (state.owner == 0 || !state.owner_watch.exited()) return false;
  retire(state);
  return true;
}

void remove_at_exit(const MailboxState& state) {
  ExitRegistry& exiting = registry();
  const std::scoped_lock guard{exiting.lock};
  static const bool registered = std::atexit(remove_owned_at_exit) == 0;
  (void)registered;
  exiting.owned.push_back({state.file_name, state.mapping, state.header, state.owner});
}

void forget_at_exit(const std::string& file_name) noexcept {
  ExitRegistry& exiting = registry();
  const std::scoped_lock guard{exiting.lock};
  std::erase_if(exiting.owned, [&](const OwnedMailbox& mailbox) { return mailbox.file_name == file_name; });
}

}  // namespace shmbox::detail
