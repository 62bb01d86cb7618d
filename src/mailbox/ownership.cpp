#include "mailbox/ownership.hpp"

#include <cstdlib>
#include <functional>
#include <mutex>
#include <vector>

#include "mailbox/ring.hpp"
#include "platform/shm.hpp"
#include "segment_factory.hpp"

namespace shmbox::detail {
namespace {

struct OwnedObject {
  std::string file_name;
  std::uint64_t owner;
  std::function<void()> retire;
};

struct ExitRegistry {
  std::mutex lock;
  std::vector<OwnedObject> owned;
};

ExitRegistry& registry() {
  // Never destroyed: the handler below may run after static destructors have begun.
  static auto* instance = new ExitRegistry;
  return *instance;
}

void remove_owned_at_exit() {
  std::vector<OwnedObject> owned;
  {
    ExitRegistry& exiting = registry();
    const std::scoped_lock guard{exiting.lock};
    owned.swap(exiting.owned);
  }
  // A forked child inherits the list but owns none of it.
  const std::uint64_t me = platform::current_process().packed();
  for (OwnedObject& object : owned) {
    if (object.owner == me) object.retire();
  }
}

// Closes the mailbox mapped as `mapping` and removes its name if it is still this file's.
void close_and_unlink(Header& header, const std::string& file_name, const Segment& mapping) noexcept {
  close_mailbox(header);
  platform::unlink_shm_file_if_same(file_name, SegmentFactory::descriptor(mapping));
}

}  // namespace

void retire(MailboxState& state) noexcept {
  close_and_unlink(*state.header, state.file_name, *state.mapping);
  forget_at_exit(state.file_name);
}

bool retire_if_orphaned(MailboxState& state) noexcept {
  if (state.owner == 0 || !state.owner_watch.exited()) return false;
  retire(state);
  return true;
}

void retire_at_exit(std::string file_name, std::uint64_t owner, std::function<void()> retire) {
  ExitRegistry& exiting = registry();
  const std::scoped_lock guard{exiting.lock};
  static const bool registered = std::atexit(remove_owned_at_exit) == 0;
  (void)registered;
  exiting.owned.push_back({std::move(file_name), owner, std::move(retire)});
}

void remove_at_exit(const MailboxState& state) {
  // The mapping is kept so that exit can close the mailbox without opening it again.
  retire_at_exit(state.file_name, state.owner, [file_name = state.file_name, mapping = state.mapping, header = state.header] {
    close_and_unlink(*header, file_name, *mapping);
  });
}

void forget_at_exit(const std::string& file_name) noexcept {
  ExitRegistry& exiting = registry();
  const std::scoped_lock guard{exiting.lock};
  std::erase_if(exiting.owned, [&](const OwnedObject& object) { return object.file_name == file_name; });
}

}  // namespace shmbox::detail
