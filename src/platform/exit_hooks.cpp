#include "platform/exit_hooks.hpp"

#include <cstdlib>
#include <mutex>
#include <vector>

#include "platform/process.hpp"

namespace shmbox::detail {
namespace {

struct Hook {
  std::string key;
  std::uint64_t owner;
  std::function<void()> work;
};

struct Hooks {
  std::mutex lock;
  std::vector<Hook> pending;
};

Hooks& hooks() {
  // Never destroyed: the handler below may run after static destructors have begun.
  static auto* instance = new Hooks;
  return *instance;
}

void run_hooks() {
  std::vector<Hook> pending;
  {
    Hooks& exiting = hooks();
    const std::scoped_lock guard{exiting.lock};
    pending.swap(exiting.pending);
  }
  const std::uint64_t me = platform::current_process().packed();
  for (Hook& hook : pending) {
    if (hook.owner == me) hook.work();
  }
}

}  // namespace

void run_at_exit(std::string key, std::uint64_t owner, std::function<void()> work) {
  Hooks& exiting = hooks();
  const std::scoped_lock guard{exiting.lock};
  static const bool registered = std::atexit(run_hooks) == 0;
  (void)registered;
  exiting.pending.push_back({std::move(key), owner, std::move(work)});
}

void forget_at_exit(const std::string& key) noexcept {
  Hooks& exiting = hooks();
  const std::scoped_lock guard{exiting.lock};
  std::erase_if(exiting.pending, [&](const Hook& hook) { return hook.key == key; });
}

}  // namespace shmbox::detail
