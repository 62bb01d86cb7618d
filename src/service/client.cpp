// The client's side of a service: send a request into the service's mailbox, naming the
// client's own answer mailbox; take the answers from there, each call its own.
// docs/design.md ("Request/response").
#include <algorithm>
#include <atomic>
#include <chrono>
#include <deque>
#include <map>
#include <set>

#include "platform/process.hpp"
#include "service/protocol.hpp"
#include "shmbox/service.hpp"

namespace shmbox {

namespace detail {

// An answer that came for another open call than the one waiting: kept for it.
struct StashedAnswer {
  AnswerKind kind;
  std::uint64_t part;
  std::vector<std::byte> bytes;
};

struct ClientState {
  ClientState(std::string service, Mailbox service_box, Mailbox answer_box, std::string answer_box_name,
              const ClientOptions& options, std::uint64_t me)
      : name(std::move(service)),
        requests(std::move(service_box)),
        answers(std::move(answer_box)),
        answers_name(std::move(answer_box_name)),
        max_answer_size(options.max_answer_size),
        capacity(options.capacity),
        identity(me) {}
  ClientState(const ClientState&) = delete;
  ClientState& operator=(const ClientState&) = delete;
  // Its answer mailbox goes with it (and with its process, however it ends); a forked
  // child's copy leaves its parent's alone.
  ~ClientState() {
    if (platform::current_process().packed() == identity) (void)Mailbox::remove(answers_name);
  }

  std::string name;
  Mailbox requests;
  Mailbox answers;
  std::string answers_name;
  std::uint32_t max_answer_size;
  std::uint32_t capacity;  // answers its mailbox holds: at most this many calls open
  std::uint64_t identity;  // ProcessIdentity::packed() of the process that made it
  std::uint64_t next_id = 1;
  std::set<std::uint64_t> open;
  std::map<std::uint64_t, std::deque<StashedAnswer>> stash;
  std::vector<std::byte> frame;
  std::vector<std::byte> received;
};

}  // namespace detail

namespace {

using Clock = std::chrono::steady_clock;

// A failure's text always fits, whatever the client's maximum answer size.
constexpr std::uint32_t failure_room = 1024;
// How often a waiting call looks whether the service was removed.
constexpr auto service_check_interval = std::chrono::milliseconds{100};

std::atomic<std::uint64_t> clients_made{0};

// A request's deadline for its servers: none for forever, and for no_wait (which says
// only that the send does not wait for room).
std::int64_t deadline_ns(Deadline deadline) {
  if (deadline.is_forever() || deadline.is_none()) return 0;
  return std::max<std::int64_t>(
      1, std::chrono::duration_cast<std::chrono::nanoseconds>(deadline.until().time_since_epoch()).count());
}

// The earlier of two deadlines (no_wait counts as the earliest).
Deadline earlier(Deadline one, Deadline other) {
  if (one.is_none() || other.is_forever()) return one;
  if (other.is_none() || one.is_forever()) return other;
  return one.until() < other.until() ? one : other;
}

}  // namespace

// ---- Client ----

Client::Client(Client&&) noexcept = default;
Client& Client::operator=(Client&&) noexcept = default;
Client::~Client() = default;

Result<Client> Client::connect(std::string_view name, const ClientOptions& options) {
  if (auto valid = detail::check_service_name(name); !valid) return std::unexpected(valid.error());
  auto requests = detail::open_service(name, options.wait);
  if (!requests) return std::unexpected(requests.error());
  if (requests->max_message_size() <= detail::request_message_size(0)) {
    return std::unexpected(Error{Errc::invalid_argument, detail::service_object(name),
                                 "is a mailbox too small to be a service's (messages of at most " +
                                     std::to_string(requests->max_message_size()) + " bytes)"});
  }
  // Named after the service and this process's identity (pid and start time: a pid used
  // again makes other names), and owned by this process: it goes with it.
  const std::uint64_t me = platform::current_process().packed();
  const std::string answers_name = detail::answers_name_prefix(name, me) +
                                   std::to_string(clients_made.fetch_add(1, std::memory_order_relaxed));
  auto answers = Mailbox::create(
      answers_name,
      {.capacity = options.capacity,
       .max_message_size = static_cast<std::uint32_t>(sizeof(detail::AnswerHeader)) +
                           std::max(options.max_answer_size, failure_room),
       .ownership = Ownership::process},
      options.wait);
  if (!answers) return std::unexpected(answers.error());
  Client client;
  client.state_ = std::make_shared<detail::ClientState>(std::string{name}, std::move(*requests), std::move(*answers),
                                                        answers_name, options, me);
  return client;
}

const std::string& Client::name() const noexcept {
  static const std::string none;
  return state_ ? state_->name : none;
}

std::size_t Client::max_request_size() const noexcept {
  return state_ ? state_->requests.max_message_size() - detail::request_message_size(0) : 0;
}

Result<Call> Client::send(std::span<const std::byte> request, Deadline deadline) {
  if (!state_) return std::unexpected(Error{Errc::invalid_argument, "client", "is empty (moved from)"});
  detail::ClientState& state = *state_;
  if (request.size() > max_request_size()) {
    return std::unexpected(Error{Errc::too_large, detail::service_object(state.name),
                                 "a request of " + std::to_string(request.size()) + " bytes is over its maximum of " +
                                     std::to_string(max_request_size())});
  }
  // More open calls than answers the mailbox holds could leave servers waiting for room
  // in it while this client waits for room among the requests.
  if (state.open.size() >= state.capacity) {
    return std::unexpected(Error{Errc::invalid_argument, detail::service_object(state.name),
                                 std::to_string(state.open.size()) +
                                     " calls of this client are open, as many as its answer mailbox holds: take "
                                     "their answers first"});
  }
  const std::uint64_t id = state.next_id++;
  const detail::RequestHeader header{.magic = detail::request_magic,
                                     .takes = 0,
                                     .id = id,
                                     .client = state.identity,
                                     .deadline_ns = deadline_ns(deadline),
                                     .max_answer_size = state.max_answer_size,
                                     .answers_name_size = static_cast<std::uint32_t>(state.answers_name.size())};
  state.frame.resize(sizeof header + state.answers_name.size() + request.size());
  std::memcpy(state.frame.data(), &header, sizeof header);
  std::memcpy(state.frame.data() + sizeof header, state.answers_name.data(), state.answers_name.size());
  if (!request.empty()) {
    std::memcpy(state.frame.data() + sizeof header + state.answers_name.size(), request.data(), request.size());
  }
  auto sent = state.requests.send(state.frame, deadline);
  if (!sent) {
    const Error& cause = sent.error();
    if (cause == Errc::would_block) {
      return std::unexpected(Error{Errc::would_block, detail::service_object(state.name), "has no room for a request now"});
    }
    if (cause == Errc::timeout) {
      return std::unexpected(
          Error{Errc::timeout, detail::service_object(state.name), "had no room for request " + std::to_string(id) + " in time"});
    }
    return std::unexpected(cause);
  }
  state.open.insert(id);
  Call call;
  call.state_ = state_;
  call.id_ = id;
  call.deadline_ = deadline.is_none() ? forever : deadline;
  return call;
}

Result<std::vector<std::byte>> Client::call(std::span<const std::byte> request, Deadline deadline) {
  auto sent = send(request, deadline);
  if (!sent) return std::unexpected(sent.error());
  return sent->answer(deadline);
}

// ---- Call ----

Call::Call(Call&&) noexcept = default;

Call& Call::operator=(Call&& other) noexcept {
  if (this != &other) {
    if (state_) {
      state_->open.erase(id_);
      state_->stash.erase(id_);
    }
    state_ = std::move(other.state_);
    id_ = other.id_;
    next_part_ = other.next_part_;
    ended_ = other.ended_;
    deadline_ = other.deadline_;
  }
  return *this;
}

Call::~Call() {
  if (!state_) return;
  state_->open.erase(id_);  // its answers, if any still come, are dropped
  state_->stash.erase(id_);
}

bool Call::ended() const noexcept { return ended_; }
std::uint64_t Call::id() const noexcept { return id_; }

Result<std::optional<std::vector<std::byte>>> Call::next_part(Deadline deadline) {
  if (!state_) return std::unexpected(Error{Errc::invalid_argument, "call", "is empty (moved from)"});
  if (ended_) return std::nullopt;
  detail::ClientState& state = *state_;
  const Deadline until = earlier(deadline, deadline_);
  for (;;) {
    detail::StashedAnswer answer;
    auto& stashed = state.stash[id_];
    if (!stashed.empty()) {
      answer = std::move(stashed.front());
      stashed.pop_front();
    } else {
      state.stash.erase(id_);
      // In slices, to see the service removed meanwhile: no answer would come then.
      const Deadline slice = earlier(until, Deadline{Clock::now() + service_check_interval});
      auto got = state.answers.receive(state.received, slice);
      if (!got) {
        const bool slice_over = got.error() == Errc::timeout && (until.is_forever() || !until.expired());
        if (slice_over) {
          if (state.requests.closed()) {
            return std::unexpected(Error{Errc::closed, detail::service_object(state.name),
                                         "was removed; request " + std::to_string(id_) + " has no answer"});
          }
          continue;
        }
        if (got.error() == Errc::timeout || got.error() == Errc::would_block) {
          return std::unexpected(Error{got.error().errc(), detail::service_object(state.name),
                                       "no answer to request " + std::to_string(id_) + " in time"});
        }
        return std::unexpected(got.error());
      }
      auto parsed = detail::parse_answer(state.received);
      if (!parsed) continue;  // not an answer: dropped
      answer = {parsed->header.kind, parsed->header.part, {parsed->bytes.begin(), parsed->bytes.end()}};
      if (parsed->header.id != id_) {
        // Another open call's: kept for it. A finished call's (a server that died after
        // answering, and the one that answered again): dropped.
        if (state.open.contains(parsed->header.id)) state.stash[parsed->header.id].push_back(std::move(answer));
        continue;
      }
    }
    // A part sent already by a server that died before it let the request go: dropped.
    // The end and a failure are taken whatever their index: a server that takes the request
    // over numbers afresh, and may end sooner (or fail it: its attempts are spent).
    if (answer.kind == detail::AnswerKind::part && answer.part < next_part_) continue;
    next_part_ = answer.part + 1;
    switch (answer.kind) {
      case detail::AnswerKind::part: return std::optional{std::move(answer.bytes)};
      case detail::AnswerKind::last:
        ended_ = true;
        state.open.erase(id_);
        if (answer.bytes.empty()) return std::nullopt;
        return std::optional{std::move(answer.bytes)};
      case detail::AnswerKind::failed: {
        ended_ = true;
        state.open.erase(id_);
        const std::string why(reinterpret_cast<const char*>(answer.bytes.data()), answer.bytes.size());
        return std::unexpected(Error{Errc::task_failed, detail::service_object(state.name),
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
