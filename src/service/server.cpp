// The server's side of a service: take a request in place from the service's mailbox,
// hold it there until it is answered, answer into the client's mailbox.
// docs/design.md ("Request/response") has the protocol and what a kill at each point leaves.
#include <algorithm>
#include <chrono>
#include <map>

#include "platform/process.hpp"
#include "service/protocol.hpp"
#include "shmbox/service.hpp"

namespace shmbox {

namespace detail {

struct ServerState {
  std::string name;
  Mailbox requests;
  std::uint32_t attempts;
  // The clients' answer mailboxes, opened once: a client sends many requests.
  std::map<std::string, std::shared_ptr<Mailbox>, std::less<>> answer_boxes;
  // When each client was last seen alive: a look costs a read of /proc, more than a call.
  std::map<std::uint64_t, std::chrono::steady_clock::time_point> clients_alive;

  static constexpr std::size_t answer_boxes_kept = 64;
  static constexpr auto liveness_interval = std::chrono::milliseconds{100};

  // Whether the client `identity` is dead, looked at no more than once per liveness interval.
  bool client_dead(std::uint64_t identity) {
    const auto now = std::chrono::steady_clock::now();
    if (auto found = clients_alive.find(identity); found != clients_alive.end() && now - found->second < liveness_interval) {
      return false;
    }
    if (platform::liveness(identity) == platform::Liveness::dead) {
      clients_alive.erase(identity);
      return true;
    }
    if (clients_alive.size() >= answer_boxes_kept) clients_alive.clear();
    clients_alive[identity] = now;
    return false;
  }

  Result<std::shared_ptr<Mailbox>> answer_box(std::string_view answers_name) {
    if (auto found = answer_boxes.find(answers_name); found != answer_boxes.end()) return found->second;
    auto opened = Mailbox::open(answers_name);
    if (!opened) return std::unexpected(opened.error());
    if (answer_boxes.size() >= answer_boxes_kept) answer_boxes.clear();  // requests keep theirs
    auto box = std::make_shared<Mailbox>(std::move(*opened));
    answer_boxes.emplace(std::string{answers_name}, box);
    return box;
  }
  void forget(const std::string& answers_name) { answer_boxes.erase(answers_name); }
};

}  // namespace detail

namespace {

using Clock = std::chrono::steady_clock;

// A failure's text, whatever the client's maximum answer size: at most this long.
constexpr std::size_t max_failure_text = 1024;

std::int64_t now_ns() { return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch()).count(); }

Deadline deadline_of(const detail::RequestHeader& header) {
  if (header.deadline_ns == 0) return forever;
  return Deadline{Clock::time_point{std::chrono::duration_cast<Clock::duration>(std::chrono::nanoseconds{header.deadline_ns})}};
}

}  // namespace

// ---- Request ----

struct Request::Held {
  std::shared_ptr<detail::ServerState> server;
  ReceivedMessage message;
  detail::RequestHeader header{};
  std::string answers_name;
  std::shared_ptr<Mailbox> answers;
  std::span<const std::byte> bytes;
  std::uint64_t next_part = 0;
  bool done = false;
  std::vector<std::byte> frame;

  Result<void> send(detail::AnswerKind kind, std::span<const std::byte> bytes_out) {
    const detail::AnswerHeader answer{
        .magic = detail::answer_magic, .kind = kind, .id = header.id, .part = next_part};
    frame.resize(sizeof answer + bytes_out.size());
    std::memcpy(frame.data(), &answer, sizeof answer);
    if (!bytes_out.empty()) std::memcpy(frame.data() + sizeof answer, bytes_out.data(), bytes_out.size());
    auto sent = answers->send(frame, deadline_of(header));
    if (sent) {
      ++next_part;
    } else if (sent.error() == Errc::closed || sent.error() == Errc::not_found) {
      server->forget(answers_name);  // the client has gone
    }
    if (kind != detail::AnswerKind::part || !sent) finish();
    return sent;
  }
  // Lets the request go from the service's mailbox: answered, or nobody to answer.
  void finish() noexcept {
    done = true;
    message.release();
  }
};

Request::Request(Request&&) noexcept = default;

Request& Request::operator=(Request&& other) noexcept {
  if (this != &other) {
    if (held_ && !held_->done) (void)fail("the server dropped it unanswered");
    held_ = std::move(other.held_);
  }
  return *this;
}

Request::~Request() {
  if (held_ && !held_->done) (void)fail("the server dropped it unanswered");
}

std::span<const std::byte> Request::data() const noexcept { return held_ ? held_->bytes : std::span<const std::byte>{}; }
std::uint64_t Request::id() const noexcept { return held_ ? held_->header.id : 0; }
pid_t Request::client_pid() const noexcept {
  return held_ ? platform::ProcessIdentity::unpack(held_->header.client).pid : 0;
}
std::uint32_t Request::takes() const noexcept { return held_ ? held_->header.takes : 0; }

namespace {

Error answered_already() { return Error{Errc::invalid_argument, "request", "was answered already (or is empty)"}; }

}  // namespace

// An answer over the client's maximum fails the request, telling the client why.
Result<void> Request::send_answer(int kind, std::span<const std::byte> bytes, const char* what) {
  if (!held_ || held_->done) return std::unexpected(answered_already());
  if (bytes.size() > held_->header.max_answer_size) {
    const std::string why = std::string{what} + " of " + std::to_string(bytes.size()) +
                            " bytes is over the client's maximum of " + std::to_string(held_->header.max_answer_size);
    (void)fail(why);
    return std::unexpected(Error{Errc::too_large, "request " + std::to_string(held_->header.id), why});
  }
  return held_->send(static_cast<detail::AnswerKind>(kind), bytes);
}

Result<void> Request::answer(std::span<const std::byte> answer) {
  return send_answer(static_cast<int>(detail::AnswerKind::last), answer, "its answer");
}

Result<void> Request::answer_part(std::span<const std::byte> part) {
  return send_answer(static_cast<int>(detail::AnswerKind::part), part, "a part");
}

Result<void> Request::end() {
  if (!held_ || held_->done) return std::unexpected(answered_already());
  return held_->send(detail::AnswerKind::last, {});
}

Result<void> Request::fail(std::string_view why) {
  if (!held_ || held_->done) return std::unexpected(answered_already());
  return held_->send(detail::AnswerKind::failed, as_bytes(why.substr(0, max_failure_text)));
}

// ---- Server ----

namespace {

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

Server::Server(Server&&) noexcept = default;
Server& Server::operator=(Server&&) noexcept = default;
Server::~Server() = default;

Result<Server> Server::join(std::string_view name, const ServiceOptions& options) {
  if (auto valid = check_attempts(name, options); !valid) return std::unexpected(valid.error());
  auto requests = Mailbox::open(name, options.wait);
  for (int tries = 0; !requests && requests.error() == Errc::not_found && tries < 2; ++tries) {
    // The first server makes it; the system owns it, so that it outlives every server.
    requests = Mailbox::create(name,
                               {.capacity = options.capacity,
                                .max_message_size = detail::request_message_size(options.max_request_size),
                                .mode = options.mode,
                                .ownership = Ownership::system},
                               options.wait);
    if (!requests && requests.error() == Errc::already_exists) requests = Mailbox::open(name, options.wait);
  }
  if (!requests) return std::unexpected(requests.error());
  Server server;
  server.state_ = std::make_shared<detail::ServerState>(
      detail::ServerState{.name = std::string{name}, .requests = std::move(*requests), .attempts = options.attempts});
  return server;
}

Result<Server> Server::open(std::string_view name, const ServiceOptions& options) {
  if (auto valid = check_attempts(name, options); !valid) return std::unexpected(valid.error());
  auto requests = detail::open_service(name, options.wait);
  if (!requests) return std::unexpected(requests.error());
  Server server;
  server.state_ = std::make_shared<detail::ServerState>(detail::ServerState{
      .name = std::string{name}, .requests = std::move(*requests), .attempts = options.attempts});
  return server;
}

Result<void> Server::remove(std::string_view name) { return Mailbox::remove(name); }

const std::string& Server::name() const noexcept {
  static const std::string none;
  return state_ ? state_->name : none;
}

Result<Request> Server::next(Deadline deadline) {
  if (!state_) return std::unexpected(Error{Errc::invalid_argument, "server", "is empty (moved from)"});
  for (;;) {
    auto message = state_->requests.receive_in_place(deadline);
    if (!message) return std::unexpected(message.error());
    auto parsed = detail::parse_request(message->data());
    if (!parsed) continue;  // not a request: dropped
    // Counted in place before anything else, so that a take that kills us counts too.
    const std::uint32_t takes = std::min(parsed->header.takes, detail::max_service_attempts) + 1;
    std::memcpy(message->writable_data().data() + offsetof(detail::RequestHeader, takes), &takes, sizeof takes);
    parsed->header.takes = takes;
    if (state_->client_dead(parsed->header.client)) continue;
    if (parsed->header.deadline_ns != 0 && now_ns() >= parsed->header.deadline_ns) continue;
    // Only into the mailbox of the client the request says it is from.
    if (!parsed->answers_name.starts_with(detail::answers_name_prefix(state_->name, parsed->header.client))) continue;
    auto answers = state_->answer_box(parsed->answers_name);
    if (!answers) {
      if (answers.error() == Errc::not_found || answers.error() == Errc::closed) continue;  // the client has gone
      message->requeue();  // for another try (its take counted): nothing is lost
      return std::unexpected(answers.error());
    }
    Request request;
    request.held_ = std::make_unique<Request::Held>(Request::Held{.server = state_,
                                                                  .message = std::move(*message),
                                                                  .header = parsed->header,
                                                                  .answers_name = std::string{parsed->answers_name},
                                                                  .answers = std::move(*answers),
                                                                  .bytes = parsed->bytes});
    if (takes > state_->attempts) {
      // The servers that took it before died holding it, each time.
      (void)request.fail("its server died during each of its " + std::to_string(takes - 1) + " attempts");
      continue;
    }
    return request;
  }
}

}  // namespace shmbox
