// The public client handles: a Client and its Calls, forwarded to the service's transport;
// what every transport shares (request sizes, each part once and in order, the end and a
// failure) is kept here.
#include "service/protocol.hpp"
#include "service/service_backend.hpp"
#include "shmbox/service.hpp"

namespace shmbox {

namespace detail {
const ServiceTransport& service_transport_for(std::string_view name) noexcept;  // server.cpp
}

// ---- Client ----

Client::Client() noexcept = default;
Client::Client(Client&&) noexcept = default;
Client& Client::operator=(Client&&) noexcept = default;
Client::~Client() = default;

Result<Client> Client::connect(std::string_view name, const ClientOptions& options) {
  if (auto valid = detail::check_service_name(name); !valid) return std::unexpected(valid.error());
  auto backend = detail::service_transport_for(name).connect(name, options);
  if (!backend) return std::unexpected(backend.error());
  Client client;
  client.backend_ = std::move(*backend);
  return client;
}

const std::string& Client::name() const noexcept {
  static const std::string none;
  return backend_ ? backend_->name() : none;
}

std::size_t Client::max_request_size() const noexcept { return backend_ ? backend_->max_request_size() : 0; }

Result<Call> Client::send(std::span<const std::byte> request, Deadline deadline) {
  if (!backend_) return std::unexpected(Error{Errc::invalid_argument, "client", "is empty (moved from)"});
  if (request.size() > backend_->max_request_size()) {
    return std::unexpected(Error{Errc::too_large, detail::service_object(backend_->name()),
                                 "a request of " + std::to_string(request.size()) + " bytes is over its maximum of " +
                                     std::to_string(backend_->max_request_size())});
  }
  auto id = backend_->send(request, deadline);
  if (!id) return std::unexpected(id.error());
  Call call;
  call.client_ = backend_;
  call.id_ = *id;
  call.deadline_ = deadline.is_none() ? forever : deadline;
  return call;
}

Result<std::vector<std::byte>> Client::call(std::span<const std::byte> request, Deadline deadline) {
  auto sent = send(request, deadline);
  if (!sent) return std::unexpected(sent.error());
  return sent->answer(deadline);
}

// ---- Call ----

Call::Call() noexcept = default;
Call::Call(Call&&) noexcept = default;

Call& Call::operator=(Call&& other) noexcept {
  if (this != &other) {
    if (client_) client_->forget(id_);
    client_ = std::move(other.client_);
    id_ = other.id_;
    next_part_ = other.next_part_;
    ended_ = other.ended_;
    deadline_ = other.deadline_;
  }
  return *this;
}

Call::~Call() {
  if (client_) client_->forget(id_);  // its answers, if any still come, are dropped
}

bool Call::ended() const noexcept { return ended_; }
std::uint64_t Call::id() const noexcept { return id_; }

Result<std::optional<std::vector<std::byte>>> Call::next_part(Deadline deadline) {
  if (!client_) return std::unexpected(Error{Errc::invalid_argument, "call", "is empty (moved from)"});
  if (ended_) return std::nullopt;
  const Deadline until = earlier(deadline, deadline_);
  for (;;) {
    auto answer = client_->next_answer(id_, until);
    if (!answer) return std::unexpected(answer.error());
    // A lease's renewal, not an answer.
    if (answer->kind == detail::AnswerKind::working || answer->kind == detail::AnswerKind::queued) continue;
    // A part sent already by a server that died before it let the request go: dropped.
    // The end and a failure are taken whatever their index: a server that takes the request
    // over numbers afresh, and may end sooner (or fail it: its attempts are spent).
    if (answer->kind == detail::AnswerKind::part && answer->part < next_part_) continue;
    next_part_ = answer->part + 1;
    switch (answer->kind) {
      case detail::AnswerKind::part: return std::optional{std::move(answer->bytes)};
      case detail::AnswerKind::last:
        ended_ = true;
        client_->forget(id_);
        if (answer->bytes.empty()) return std::nullopt;
        return std::optional{std::move(answer->bytes)};
      case detail::AnswerKind::working:
      case detail::AnswerKind::queued: continue;
      case detail::AnswerKind::failed: {
        ended_ = true;
        client_->forget(id_);
        const std::string why(reinterpret_cast<const char*>(answer->bytes.data()), answer->bytes.size());
        return std::unexpected(Error{Errc::task_failed, detail::service_object(client_->name()),
                                     "request " + std::to_string(id_) + " failed: " + why});
      }
    }
  }
}

Result<std::vector<std::byte>> Call::answer(Deadline deadline) {
  std::vector<std::byte> whole;
  for (;;) {
    auto part = next_part(deadline);
    if (!part) return std::unexpected(part.error());
    if (!*part) return whole;
    whole.insert(whole.end(), (*part)->begin(), (*part)->end());
  }
}

}  // namespace shmbox
