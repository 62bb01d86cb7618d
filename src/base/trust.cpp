#include "shmbox/trust.hpp"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <mutex>
#include <vector>

#include "base/trust_check.hpp"

namespace shmbox {
namespace {

struct TrustedUsers {
  std::mutex lock;
  std::vector<uid_t> uids;
  std::atomic<bool> everyone{false};
};

TrustedUsers& trusted() {
  static TrustedUsers users;
  return users;
}

}  // namespace

void trust_user(uid_t uid) {
  TrustedUsers& users = trusted();
  const std::scoped_lock guard{users.lock};
  if (std::find(users.uids.begin(), users.uids.end(), uid) == users.uids.end()) users.uids.push_back(uid);
}

void trust_all_users() { trusted().everyone.store(true, std::memory_order_release); }

bool trusts_user(uid_t uid) noexcept {
  if (uid == ::geteuid() || uid == 0) return true;
  TrustedUsers& users = trusted();
  if (users.everyone.load(std::memory_order_acquire)) return true;
  const std::scoped_lock guard{users.lock};
  return std::find(users.uids.begin(), users.uids.end(), uid) != users.uids.end();
}

namespace detail {

Result<void> check_trusted_owner(uid_t owner, const std::string& object) {
  if (trusts_user(owner)) return {};
  return std::unexpected(Error{Errc::permission_denied, object,
                               "belongs to uid " + std::to_string(owner) +
                                   ", whom this process does not trust (see shmbox::trust_user)"});
}

}  // namespace detail
}  // namespace shmbox
