// The public server handles: a Server and the Requests it took, forwarded to the service's
// transport, resolved from its name; what every transport shares (a request answered once,
// answer sizes, failure texts) is kept here.
#include "service/local_service.hpp"
#include "service/nats_service.hpp"
#include "service/protocol.hpp"
#include "service/service_backend.hpp"
#include "shmbox/service.hpp"

namespace shmbox {

namespace detail {
namespace {

template <class Names>
constexpr ServiceTransport service_transport_of() noexcept {
  return ServiceTransport{Names::join, Names::open, Names::remove, Names::connect};
}

constexpr ServiceTransport local_services = service_transport_of<LocalServices>();
constexpr ServiceTransport nats_services = service_transport_of<NatsServices>();

}  // namespace

const ServiceTransport& service_transport_for(std::string_view name) noexcept {
  return is_nats_service(name) ? nats_services : local_services;
}

}  // namespace detail

namespace {

Error answered_already() { return Error{Errc::invalid_argument, "request", "was answered already (or is empty)"}; }

// The name, and the options a server's own handle uses.
Result<void> check_attempts(std::string_view name, const ServiceOptions& options) {
  if (auto valid = detail::check_service_name(name); !valid) return valid;
  if (options.attempts == 0 || options.attempts > detail::max_service_attempts) {
    return std::unexpected(Error{Errc::invalid_argument, detail::service_object(name),
                                 "attempts must be 1 to " + std::to_string(detail::max_service_attempts) + ", not " +
                                     std::to_string(options.attempts)});
  }
  return {};
}

}  // namespace

// ---- Request ----

Request::Request() noexcept = default;
Request::Request(Request&&) noexcept = default;

Request& Request::operator=(Request&& other) noexcept {
  if (this != &other) {
    if (backend_ && !backend_->done()) (void)fail("the server dropped it unanswered");
    backend_ = std::move(other.backend_);
  }
  return *this;
}

Request::~Request() {
  if (backend_ && !backend_->done()) (void)fail("the server dropped it unanswered");
}

std::span<const std::byte> Request::data() const noexcept {
  return backend_ ? backend_->data() : std::span<const std::byte>{};
}
std::uint64_t Request::id() const noexcept { return backend_ ? backend_->id() : 0; }
pid_t Request::client_pid() const noexcept { return backend_ ? backend_->client_pid() : 0; }
std::uint32_t Request::takes() const noexcept { return backend_ ? backend_->takes() : 0; }

// An answer over the client's maximum fails the request, telling the client why.
Result<void> Request::send_answer(int kind, std::span<const std::byte> bytes, const char* what) {
  if (!backend_ || backend_->done()) return std::unexpected(answered_already());
  if (bytes.size() > backend_->max_answer_size()) {
    const std::string why = std::string{what} + " of " + std::to_string(bytes.size()) +
                            " bytes is over the client's maximum of " + std::to_string(backend_->max_answer_size());
    (void)fail(why);
    return std::unexpected(Error{Errc::too_large, "request " + std::to_string(backend_->id()), why});
  }
  return backend_->send(static_cast<detail::AnswerKind>(kind), bytes);
}

Result<void> Request::answer(std::span<const std::byte> answer) {
  return send_answer(static_cast<int>(detail::AnswerKind::last), answer, "its answer");
}

Result<void> Request::answer_part(std::span<const std::byte> part) {
  return send_answer(static_cast<int>(detail::AnswerKind::part), part, "a part");
}

Result<void> Request::end() {
  if (!backend_ || backend_->done()) return std::unexpected(answered_already());
  return backend_->send(detail::AnswerKind::last, {});
}

Result<void> Request::fail(std::string_view why) {
  if (!backend_ || backend_->done()) return std::unexpected(answered_already());
  return backend_->send(detail::AnswerKind::failed, as_bytes(why.substr(0, detail::max_failure_text)));
}

// ---- Server ----

Server::Server() noexcept = default;
Server::Server(Server&&) noexcept = default;
Server& Server::operator=(Server&&) noexcept = default;
Server::~Server() = default;

Result<Server> Server::join(std::string_view name, const ServiceOptions& options) {
  if (auto valid = check_attempts(name, options); !valid) return std::unexpected(valid.error());
  auto backend = detail::service_transport_for(name).join(name, options);
  if (!backend) return std::unexpected(backend.error());
  Server server;
  server.backend_ = std::move(*backend);
  return server;
}

Result<Server> Server::open(std::string_view name, const ServiceOptions& options) {
  if (auto valid = check_attempts(name, options); !valid) return std::unexpected(valid.error());
  auto backend = detail::service_transport_for(name).open(name, options);
  if (!backend) return std::unexpected(backend.error());
  Server server;
  server.backend_ = std::move(*backend);
  return server;
}

Result<void> Server::remove(std::string_view name) { return detail::service_transport_for(name).remove(name); }

const std::string& Server::name() const noexcept {
  static const std::string none;
  return backend_ ? backend_->name() : none;
}

Result<Request> Server::next(Deadline deadline) {
  if (!backend_) return std::unexpected(Error{Errc::invalid_argument, "server", "is empty (moved from)"});
  auto taken = backend_->next(deadline);
  if (!taken) return std::unexpected(taken.error());
  Request request;
  request.backend_ = std::move(*taken);
  return request;
}

}  // namespace shmbox
