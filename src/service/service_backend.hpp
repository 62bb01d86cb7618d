// The contract every service transport keeps: a ServerBackend per Server, a RequestBackend
// per Request it took, a ClientBackend per Client (shared by its Calls), and a
// ServiceTransport (its operations on names). The public handles keep what is the same for
// every transport (answered once, sizes, parts taken once and in order) and forward the
// rest; server.cpp resolves a name to its transport (docs/design.md, "Request/response").
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "shmbox/service.hpp"

namespace shmbox::detail {

enum class AnswerKind : std::uint32_t {
  part = 0,    // one answer of a stream, more to come
  last = 1,    // the last answer (the whole answer of a plain call); may be empty
  failed = 2,  // the request failed: the text says why
  working = 3,  // nats:// only: a server took the request and is alive (its client's lease)
  queued = 4,   // nats:// only: the request waits at a live server (the lease, not a take)
};

class RequestBackend {
 public:
  virtual ~RequestBackend() = default;
  virtual std::span<const std::byte> data() const noexcept = 0;
  virtual std::uint64_t id() const noexcept = 0;
  virtual pid_t client_pid() const noexcept = 0;
  virtual std::uint32_t takes() const noexcept = 0;
  virtual std::uint32_t max_answer_size() const noexcept = 0;
  virtual bool done() const noexcept = 0;
  // Sends one answer, numbered after those before it; a last or failed one, or one that
  // could not be sent, ends the request.
  virtual Result<void> send(AnswerKind kind, std::span<const std::byte> bytes) = 0;
};

class ServerBackend {
 public:
  virtual ~ServerBackend() = default;
  virtual const std::string& name() const noexcept = 0;
  virtual Result<std::unique_ptr<RequestBackend>> next(Deadline deadline) = 0;
};

// An answer as a client takes it: what it is, its index in the stream, its bytes.
struct Answer {
  AnswerKind kind = AnswerKind::last;
  std::uint64_t part = 0;
  std::vector<std::byte> bytes;
};

// Answers that came for other open calls than the one a client waits for, kept for them.
class AnswerStash {
 public:
  std::optional<Answer> take(std::uint64_t id) {
    auto stashed = stash_.find(id);
    if (stashed == stash_.end()) return std::nullopt;
    Answer answer = std::move(stashed->second.front());
    stashed->second.pop_front();
    if (stashed->second.empty()) stash_.erase(stashed);
    return answer;
  }
  void keep(std::uint64_t id, Answer answer) { stash_[id].push_back(std::move(answer)); }
  void drop(std::uint64_t id) noexcept { stash_.erase(id); }

 private:
  std::map<std::uint64_t, std::deque<Answer>> stash_;
};

class ClientBackend {
 public:
  virtual ~ClientBackend() = default;
  virtual const std::string& name() const noexcept = 0;
  virtual std::size_t max_request_size() const noexcept = 0;
  // Sends `request` (size checked); the call's id.
  virtual Result<std::uint64_t> send(std::span<const std::byte> request, Deadline deadline) = 0;
  // The next answer for the call `id`, until `until`: Errc::timeout (or would_block) naming
  // the request, Errc::closed once the service is removed.
  virtual Result<Answer> next_answer(std::uint64_t id, Deadline until) = 0;
  // The call `id` ended, or was dropped: its answers, if more come, are dropped.
  virtual void forget(std::uint64_t id) noexcept = 0;
};

struct ServiceTransport {
  Result<std::shared_ptr<ServerBackend>> (*join)(std::string_view name, const ServiceOptions& options);
  Result<std::shared_ptr<ServerBackend>> (*open)(std::string_view name, const ServiceOptions& options);
  Result<void> (*remove)(std::string_view name);
  Result<std::shared_ptr<ClientBackend>> (*connect)(std::string_view name, const ClientOptions& options);
};

}  // namespace shmbox::detail
