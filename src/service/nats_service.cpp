// Services on NATS. The service NAME on a server is:
//   - a record that it exists: the JetStream stream "SHMBOXSVC_NAME" (which listing
//     mailboxes passes over), holding no message; its description carries the largest
//     request, "shmbox service; max request N #NONCE". The first server to join makes it;
//     Server::remove deletes it.
//   - requests on the subject "shmbox.svc.NAME", which the servers take in the queue group
//     "servers" (each request to one of them), each a NatsRequestHeader and the request's
//     bytes, with the reply subject "<client's inbox>.<id>";
//   - answers published to that reply subject, framed as local answers are (AnswerHeader);
//     while a server holds a request it publishes `working` every 250 ms.
// The client keeps a lease on each open call: heard from (sent, or `working`, or an answer)
// in the last second, or it sends the request again: as it was, if no server took it (none
// was listening), or with one more take if its server went quiet (died, or lost its
// connection). A server fails a request whose takes are over its attempts. Parts carry
// their index, so a client takes each once whatever server sent it. Deadlines travel as
// wall-clock time (servers on other machines read their own clocks). Everything read from
// the server is checked before use.
#include "service/nats_service.hpp"

#include <nats/nats.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <array>
#include <deque>
#include <map>
#include <mutex>
#include <stop_token>
#include <thread>

#include "remote/nats_handles.hpp"
#include "remote/nats_streams.hpp"
#include "service/protocol.hpp"

namespace shmbox::detail {
namespace {

using Clock = std::chrono::steady_clock;
using OwnedInbox = NatsOwned<natsInbox, natsInbox_Destroy>;

constexpr std::string_view max_request_mark = "shmbox service; max request ";
constexpr const char* server_group = "servers";
constexpr std::uint32_t nats_request_magic = 0x4e524253;  // "SBRN"
// A server says it holds a request this often; its client sends the request again when it
// has heard nothing of it for lease_time.
constexpr auto heartbeat_interval = std::chrono::milliseconds{250};
constexpr auto lease_time = std::chrono::seconds{1};
// How often a waiting server or client asks whether the service is still there.
constexpr auto removal_check_interval = std::chrono::seconds{1};

struct NatsRequestHeader {
  std::uint32_t magic;
  std::uint32_t takes;  // servers that took it before and went quiet (counted by the client)
  std::uint64_t id;     // the client's number for it
  std::int64_t deadline_ms;  // wall clock, ms since the epoch; 0: none
  std::uint32_t max_answer_size;
  std::uint32_t client_pid;
};

std::int64_t wall_clock_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// A steady-clock deadline as wall-clock milliseconds for servers elsewhere (0: none).
std::int64_t wall_deadline_ms(Deadline deadline) {
  if (deadline.is_forever() || deadline.is_none()) return 0;
  const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline.until() - Clock::now()).count();
  return std::max<std::int64_t>(1, wall_clock_ms() + left);
}

// Where a service lies on its server.
struct ServicePlace {
  RemoteName name;
  std::string stream;
  std::string subject;
};

Result<ServicePlace> place_of(std::string_view text) {
  auto parsed = parse_remote_name(text, "service");
  if (!parsed) return std::unexpected(parsed.error());
  std::string stream = "SHMBOXSVC_" + parsed->name;
  std::string subject = "shmbox.svc." + parsed->name;
  return ServicePlace{std::move(*parsed), std::move(stream), std::move(subject)};
}

Error does_not_exist(const ServicePlace& place) {
  return Error{Errc::not_found, place.name.object, "does not exist (no server has joined it)"};
}

// The service's largest request, from its record: not_found if there is none.
Result<std::uint32_t> read_record(jsCtx* jetstream, const ServicePlace& place) {
  auto info = read_stream(jetstream, place.name, place.stream, "cannot read its record", does_not_exist(place));
  if (!info) return std::unexpected(info.error());
  const char* description = (*info)->Config != nullptr ? (*info)->Config->Description : nullptr;
  const std::string_view text = description != nullptr ? description : "";
  std::uint32_t max_request = 0;
  const std::string_view number = text.starts_with(max_request_mark) ? text.substr(max_request_mark.size()) : "";
  const auto [end, error] = std::from_chars(number.data(), number.data() + number.size(), max_request);
  if (number.empty() || error != std::errc{} || (end != number.data() + number.size() && *end != ' ')) {
    return std::unexpected(Error{Errc::corrupt, place.name.object,
                                 "its record is not a service's (its description is '" + std::string{text} + "')"});
  }
  return max_request;
}

// The server's word that the service was removed, as an error for request `id` (0: none).
Error removed(const ServicePlace& place, std::uint64_t id) {
  if (id == 0) return Error{Errc::closed, place.name.object, "was removed"};
  return Error{Errc::closed, place.name.object, "was removed; request " + std::to_string(id) + " has no answer"};
}

Result<void> publish(natsConnection* connection, const std::string& subject, const char* reply,
                     std::span<const std::byte> bytes, const ServicePlace& place) {
  const natsStatus status =
      reply != nullptr
          ? natsConnection_PublishRequest(connection, subject.c_str(), reply, bytes.data(), static_cast<int>(bytes.size()))
          : natsConnection_Publish(connection, subject.c_str(), bytes.data(), static_cast<int>(bytes.size()));
  if (status == NATS_OK) return {};
  if (status == NATS_MAX_PAYLOAD) {
    return std::unexpected(Error{Errc::too_large, place.name.object,
                                 "a message of " + std::to_string(bytes.size()) +
                                     " bytes is over the server's maximum payload"});
  }
  return std::unexpected(nats_error(Errc::unreachable, place.name, "cannot reach the NATS server " + place.name.server,
                                    status));
}

std::vector<std::byte> answer_frame(AnswerKind kind, std::uint64_t id, std::uint64_t part,
                                    std::span<const std::byte> bytes) {
  const AnswerHeader header{.magic = answer_magic, .kind = kind, .id = id, .part = part};
  std::vector<std::byte> frame(sizeof header + bytes.size());
  std::memcpy(frame.data(), &header, sizeof header);
  if (!bytes.empty()) std::memcpy(frame.data() + sizeof header, bytes.data(), bytes.size());
  return frame;
}

// ---- servers ----

// What a server's handle and the requests it took share: its connection, the requests
// delivered to it and not yet taken by next(), and those held now. A request is said
// `queued` from the moment it reaches this server and `working` once taken (a thread of its
// own repeats it): a request waiting behind a long one is not sent again to the same
// server, and only one that was taken counts a take when the server dies.
class ServerHeart {
 public:
  ServerHeart(ServicePlace place, std::unique_ptr<NatsConnection> connection)
      : place_(std::move(place)), connection_(std::move(connection)) {
    thread_ = std::jthread{[this](std::stop_token stop) { beat(stop); }};
  }
  ~ServerHeart() {
    thread_.request_stop();
    wake_.notify_all();
  }

  const ServicePlace& place() const noexcept { return place_; }
  natsConnection* connection() const noexcept { return connection_->connection.get(); }
  jsCtx* jetstream() const noexcept { return connection_->jetstream.get(); }

  // A request delivered (on the client library's thread): queued and said `queued`, unless
  // this server has it already, or its queue is full (its client sends it again, maybe to
  // another server). One it answered lately is a copy sent again because the answer was
  // lost on its way: the client is told so.
  void arrived(OwnedMsg message) {
    const char* reply_text = natsMsg_GetReply(message.get());
    NatsRequestHeader header{};
    if (reply_text == nullptr || *reply_text == '\0' ||
        natsMsg_GetDataLength(message.get()) < static_cast<int>(sizeof header)) {
      return;
    }
    const std::string reply{reply_text};  // the message may be gone once queued
    std::memcpy(&header, natsMsg_GetData(message.get()), sizeof header);
    bool answered_lately = false;
    {
      const std::scoped_lock guard{mutex_};
      if (closed_ || held_.contains(reply) || queue_.size() >= max_queued) return;
      answered_lately = std::find(finished_.begin(), finished_.end(), reply) != finished_.end();
      if (!answered_lately) {
        held_.emplace(reply, Held{header.id, false});
        queue_.push_back(std::move(message));
      }
    }
    if (answered_lately) {
      const std::string why = "it was answered, and the answer was lost on its way";
      (void)publish(connection(), reply, nullptr, answer_frame(AnswerKind::failed, header.id, 0, as_bytes(why)), place_);
      return;
    }
    (void)publish(connection(), reply, nullptr, answer_frame(AnswerKind::queued, header.id, 0, {}), place_);
    arrived_.notify_one();
  }

  // The next request delivered, until `until` (nullptr then).
  OwnedMsg next_delivered(Clock::time_point until) {
    std::unique_lock lock{mutex_};
    arrived_.wait_until(lock, until, [&] { return !queue_.empty(); });
    if (queue_.empty()) return nullptr;
    OwnedMsg message = std::move(queue_.front());
    queue_.pop_front();
    return message;
  }

  // The request is this server's now: said `working` at once, before the caller runs
  // anything (a request that kills each server as it is taken must count its takes).
  void taken(const std::string& reply, std::uint64_t id) {
    {
      const std::scoped_lock guard{mutex_};
      if (auto found = held_.find(reply); found != held_.end()) found->second.taken = true;
    }
    (void)publish(connection(), reply, nullptr, answer_frame(AnswerKind::working, id, 0, {}), place_);
  }

  // A request let go; `answered` if its end (or failure) was sent: a copy of it that comes
  // later means that the answer was lost. One dropped unanswered is forgotten.
  void let_go(const std::string& reply, bool answered) {
    const std::scoped_lock guard{mutex_};
    if (held_.erase(reply) == 0 || !answered) return;
    finished_[next_finished_] = reply;
    next_finished_ = (next_finished_ + 1) % finished_.size();
  }

  // The server's handle went: requests still queued are no longer said to wait (their
  // clients send them again); taken ones stay until their Requests go.
  void close() {
    const std::scoped_lock guard{mutex_};
    closed_ = true;
    for (const OwnedMsg& message : queue_) held_.erase(natsMsg_GetReply(message.get()));
    queue_.clear();
  }

 private:
  static constexpr std::size_t max_queued = 1024;
  struct Held {
    std::uint64_t id;
    bool taken;
  };

  void beat(const std::stop_token& stop) {
    std::unique_lock lock{mutex_};
    while (!stop.stop_requested()) {
      for (const auto& [reply, held] : held_) {
        const AnswerKind kind = held.taken ? AnswerKind::working : AnswerKind::queued;
        (void)publish(connection(), reply, nullptr, answer_frame(kind, held.id, 0, {}), place_);
      }
      wake_.wait_for(lock, stop, heartbeat_interval, [] { return false; });
    }
  }

  ServicePlace place_;
  std::unique_ptr<NatsConnection> connection_;
  std::mutex mutex_;
  std::condition_variable_any wake_;
  std::condition_variable arrived_;
  std::deque<OwnedMsg> queue_;
  std::map<std::string, Held> held_;       // reply subject -> request: queued or taken
  std::array<std::string, 256> finished_;  // reply subjects let go lately
  std::size_t next_finished_ = 0;
  bool closed_ = false;
  std::jthread thread_;  // declared last: stopped and joined first
};

class NatsRequest final : public RequestBackend {
 public:
  NatsRequest(std::shared_ptr<ServerHeart> heart, OwnedMsg message, const NatsRequestHeader& header)
      : heart_(std::move(heart)), message_(std::move(message)), header_(header), reply_(natsMsg_GetReply(message_.get())) {}
  ~NatsRequest() override { heart_->let_go(reply_, done_); }

  std::span<const std::byte> data() const noexcept override {
    const auto* first = reinterpret_cast<const std::byte*>(natsMsg_GetData(message_.get()));
    const auto length = static_cast<std::size_t>(natsMsg_GetDataLength(message_.get()));
    return std::span<const std::byte>{first, length}.subspan(sizeof header_);
  }
  std::uint64_t id() const noexcept override { return header_.id; }
  pid_t client_pid() const noexcept override { return static_cast<pid_t>(header_.client_pid); }
  std::uint32_t takes() const noexcept override { return header_.takes; }
  std::uint32_t max_answer_size() const noexcept override { return header_.max_answer_size; }
  bool done() const noexcept override { return done_; }
  const std::string& reply() const noexcept { return reply_; }

  Result<void> send(AnswerKind kind, std::span<const std::byte> bytes) override {
    auto sent = publish(heart_->connection(), reply_, nullptr, answer_frame(kind, header_.id, next_part_, bytes),
                        heart_->place());
    if (sent) {
      ++next_part_;
    } else if (kind != AnswerKind::failed) {
      // The client is told, rather than left to take the silence for a death.
      const std::string why = "its answer could not be sent: " + sent.error().detail();
      (void)publish(heart_->connection(), reply_, nullptr, answer_frame(AnswerKind::failed, header_.id, next_part_, as_bytes(why)),
                    heart_->place());
    }
    if (kind != AnswerKind::part || !sent) {
      // Written to the socket at once (SendAsap), not flushed through a round trip: an end
      // lost with its server is no loss, as the client's lease sends the request again.
      done_ = true;
      heart_->let_go(reply_, true);
    }
    return sent;
  }

 private:
  std::shared_ptr<ServerHeart> heart_;
  OwnedMsg message_;
  NatsRequestHeader header_;
  std::string reply_;
  std::uint64_t next_part_ = 0;
  bool done_ = false;
};

class NatsServer final : public ServerBackend {
 public:
  NatsServer(std::shared_ptr<ServerHeart> heart, std::uint32_t max_request, std::uint32_t attempts)
      : heart_(std::move(heart)),
        name_(heart_->place().name.server + "/" + heart_->place().name.name),
        max_request_(max_request),
        attempts_(attempts) {}
  ~NatsServer() override {
    if (requests_ == nullptr) return;
    // Others of the group take what comes from now on. The subscription keeps the heart
    // alive (its own reference, dropped by on_complete) while the handler may still run.
    (void)natsSubscription_Unsubscribe(requests_.get());
    heart_->close();
  }

  // Subscribes this server to the service's requests, in the servers' queue group.
  Result<void> subscribe() {
    const ServicePlace& place = heart_->place();
    auto* kept = new std::shared_ptr<ServerHeart>(heart_);
    natsStatus status = natsConnection_QueueSubscribe(out(requests_), heart_->connection(), place.subject.c_str(),
                                                      server_group, on_request, kept);
    if (status != NATS_OK) {
      delete kept;
      return std::unexpected(nats_error(Errc::system, place.name, "cannot take requests", status));
    }
    // Registered before any unsubscribe can happen; should it fail, the reference is left
    // to leak rather than freed under a handler that may run.
    status = natsSubscription_SetOnCompleteCB(requests_.get(), on_complete, kept);
    if (status != NATS_OK) return std::unexpected(nats_error(Errc::system, place.name, "cannot take requests", status));
    return {};
  }

  const std::string& name() const noexcept override { return name_; }

  Result<std::unique_ptr<RequestBackend>> next(Deadline deadline) override {
    const ServicePlace& place = heart_->place();
    auto next_check = Clock::now() + removal_check_interval;
    for (;;) {
      const auto now = Clock::now();
      const auto until = deadline.is_none() ? now : std::min(next_check, deadline.is_forever() ? next_check : deadline.until());
      if (OwnedMsg message = heart_->next_delivered(until)) {
        if (auto request = take(std::move(message))) return request;
        continue;
      }
      if (deadline.is_none()) return std::unexpected(Error{Errc::would_block, {}, {}});
      if (deadline.expired()) return std::unexpected(Error{Errc::timeout, place.name.object, "no request in time"});
      if (Clock::now() >= next_check) {
        if (stream_gone(heart_->jetstream(), place.stream)) return std::unexpected(removed(place, 0));
        next_check = Clock::now() + removal_check_interval;
      }
    }
  }

 private:
  static void on_request(natsConnection*, natsSubscription*, natsMsg* message, void* closure) {
    (*static_cast<std::shared_ptr<ServerHeart>*>(closure))->arrived(OwnedMsg{message});
  }
  static void on_complete(void* closure) { delete static_cast<std::shared_ptr<ServerHeart>*>(closure); }

  // A request to answer, or nothing: not a request, past its deadline, or failed here
  // because the servers before died holding it.
  std::unique_ptr<RequestBackend> take(OwnedMsg message) {
    NatsRequestHeader header{};
    std::memcpy(&header, natsMsg_GetData(message.get()), sizeof header);  // arrived() checked the length
    const std::size_t length = static_cast<std::size_t>(natsMsg_GetDataLength(message.get()));
    header.takes = std::min(header.takes, max_service_attempts) + 1;
    auto request = std::make_unique<NatsRequest>(heart_, std::move(message), header);  // lets it go when dropped
    if (header.magic != nats_request_magic || length - sizeof header > max_request_) return nullptr;
    if (header.deadline_ms != 0 && wall_clock_ms() >= header.deadline_ms) return nullptr;
    if (header.takes > attempts_) {
      (void)request->send(AnswerKind::failed, as_bytes(servers_died(header.takes - 1)));
      return nullptr;
    }
    heart_->taken(request->reply(), header.id);
    return request;
  }

  std::shared_ptr<ServerHeart> heart_;
  std::string name_;
  std::uint32_t max_request_;
  std::uint32_t attempts_;
  OwnedSubscription requests_;  // declared last: unsubscribed (in the destructor) first
};

// ---- clients ----

class NatsClient final : public ClientBackend {
 public:
  NatsClient(ServicePlace place, std::unique_ptr<NatsConnection> connection, OwnedInbox inbox,
             OwnedSubscription answers, std::uint32_t max_request, const ClientOptions& options)
      : place_(std::move(place)),
        name_(place_.name.server + "/" + place_.name.name),
        connection_(std::move(connection)),
        inbox_(std::move(inbox)),
        answers_(std::move(answers)),
        max_request_(max_request),
        max_answer_size_(options.max_answer_size) {}
  ~NatsClient() override {
    if (answers_ != nullptr) (void)natsSubscription_Unsubscribe(answers_.get());
  }

  const std::string& name() const noexcept override { return name_; }
  std::size_t max_request_size() const noexcept override { return max_request_; }

  Result<std::uint64_t> send(std::span<const std::byte> request, Deadline deadline) override {
    const std::uint64_t id = next_id_++;
    const NatsRequestHeader header{.magic = nats_request_magic,
                                   .takes = 0,
                                   .id = id,
                                   .deadline_ms = wall_deadline_ms(deadline),
                                   .max_answer_size = max_answer_size_,
                                   .client_pid = static_cast<std::uint32_t>(::getpid())};
    OpenCall call{.frame = std::vector<std::byte>(sizeof header + request.size()), .heard = Clock::now()};
    std::memcpy(call.frame.data(), &header, sizeof header);
    if (!request.empty()) std::memcpy(call.frame.data() + sizeof header, request.data(), request.size());
    if (auto sent = send_frame(id, call.frame); !sent) return std::unexpected(sent.error());
    open_.emplace(id, std::move(call));
    return id;
  }

  Result<Answer> next_answer(std::uint64_t id, Deadline until) override {
    auto next_check = Clock::now() + removal_check_interval;
    for (;;) {
      if (auto stashed = stash_.take(id)) return std::move(*stashed);
      const std::int64_t slice_ms =
          std::min<std::int64_t>(wait_ms(until, 1000), std::chrono::milliseconds{service_check_interval}.count());
      OwnedMsg message;
      const natsStatus status = natsSubscription_NextMsg(out(message), answers_.get(), slice_ms);
      if (status == NATS_OK) {
        auto answer = take(message.get());
        if (answer && answer->first == id) return std::move(answer->second);
        if (answer && open_.contains(answer->first)) stash_.keep(answer->first, std::move(answer->second));
      } else if (status != NATS_TIMEOUT && status != NATS_SLOW_CONSUMER && status != NATS_NO_RESPONDERS) {
        // No responders: no server took a request; its lease sends it again.
        return std::unexpected(nats_error(Errc::system, place_.name, "cannot receive an answer", status));
      }
      // Leases are judged on what had arrived by a time whose messages have all been read
      // since: a backlog is not a server's silence. With none waiting, that is now; else
      // the time of a count of those waiting, once as many have been read.
      int waiting = 0;
      if (status == NATS_OK) ++read_since_;
      if (natsSubscription_GetPending(answers_.get(), &waiting, nullptr) == NATS_OK) {
        const auto now = Clock::now();
        if (waiting == 0 || read_since_ >= waiting_then_) {
          caught_up_at_ = waiting == 0 ? now : counted_at_;
          counted_at_ = now;
          waiting_then_ = waiting;
          read_since_ = 0;
        }
      }
      if (auto renewed = renew_leases(); !renewed) return std::unexpected(renewed.error());
      if (status == NATS_OK && waiting > 0) continue;  // what is here already, before any verdict
      if (until.is_none() || until.expired()) {
        return std::unexpected(Error{until.is_none() ? Errc::would_block : Errc::timeout, place_.name.object,
                                     "no answer to request " + std::to_string(id) + " in time"});
      }
      if (const auto now = Clock::now(); now >= next_check) {
        if (stream_gone(connection_->jetstream.get(), place_.stream)) return std::unexpected(removed(place_, id));
        next_check = now + removal_check_interval;
      }
    }
  }

  void forget(std::uint64_t id) noexcept override {
    open_.erase(id);
    stash_.drop(id);
  }

 private:
  struct OpenCall {
    std::vector<std::byte> frame;  // the request as sent, its takes counted in place
    Clock::time_point heard;       // sent, or heard of from a server
    bool taken = false;            // a server said it holds it
  };

  Result<void> send_frame(std::uint64_t id, std::span<const std::byte> frame) {
    const std::string reply = std::string{inbox_.get()} + "." + std::to_string(id);
    return publish(connection_->connection.get(), place_.subject, reply.c_str(), frame, place_);
  }

  // An answer from a server, for the call it names, with its lease renewed; nullopt for
  // what is not an answer to an open call (dropped).
  std::optional<std::pair<std::uint64_t, Answer>> take(natsMsg* message) {
    const auto* first = reinterpret_cast<const std::byte*>(natsMsg_GetData(message));
    const int length = natsMsg_GetDataLength(message);
    if (first == nullptr || length <= 0) return std::nullopt;  // a status (no responders)
    auto parsed = parse_answer({first, static_cast<std::size_t>(length)});
    if (!parsed) return std::nullopt;
    auto call = open_.find(parsed->header.id);
    if (call == open_.end()) return std::nullopt;
    call->second.heard = Clock::now();
    if (parsed->header.kind == AnswerKind::queued) return std::nullopt;  // waits at a server: no take yet
    call->second.taken = true;
    if (parsed->header.kind == AnswerKind::working) return std::nullopt;
    return std::pair{parsed->header.id,
                     Answer{parsed->header.kind, parsed->header.part, {parsed->bytes.begin(), parsed->bytes.end()}}};
  }

  // Sends again each open request nothing was heard of for lease_time: as it was if no
  // server had taken it, with one more take if its server went quiet.
  Result<void> renew_leases() {
    const auto now = Clock::now();
    for (auto& [id, call] : open_) {
      if (caught_up_at_ < call.heard || caught_up_at_ - call.heard < lease_time) continue;
      if (call.taken) {
        NatsRequestHeader header{};
        std::memcpy(&header, call.frame.data(), sizeof header);
        header.takes = std::min(header.takes, max_service_attempts) + 1;
        std::memcpy(call.frame.data(), &header, sizeof header);
      }
      call.taken = false;
      call.heard = now;
      if (auto sent = send_frame(id, call.frame); !sent) return sent;
    }
    return {};
  }

  ServicePlace place_;
  std::string name_;
  std::unique_ptr<NatsConnection> connection_;
  OwnedInbox inbox_;
  OwnedSubscription answers_;  // declared after the connection: destroyed before it
  std::uint32_t max_request_;
  std::uint32_t max_answer_size_;
  std::uint64_t next_id_ = 1;
  std::map<std::uint64_t, OpenCall> open_;
  AnswerStash stash_;
  Clock::time_point caught_up_at_ = Clock::now();  // everything that had arrived by then was read
  Clock::time_point counted_at_ = Clock::now();    // when waiting_then_ answers waited
  int waiting_then_ = 0;
  int read_since_ = 0;
};

// A server's handle on a service whose record exists.
Result<std::shared_ptr<ServerBackend>> server_on(ServicePlace place, std::unique_ptr<NatsConnection> connection,
                                                 std::uint32_t max_request, const ServiceOptions& options) {
  auto heart = std::make_shared<ServerHeart>(std::move(place), std::move(connection));
  auto server = std::make_shared<NatsServer>(std::move(heart), max_request, options.attempts);
  if (auto subscribed = server->subscribe(); !subscribed) return std::unexpected(subscribed.error());
  return server;
}

}  // namespace

Result<std::shared_ptr<ServerBackend>> NatsServices::join(std::string_view name, const ServiceOptions& options) {
  auto reached = reach(name, place_of);
  if (!reached) return std::unexpected(reached.error());
  auto& [place, connection] = *reached;
  jsCtx* jetstream = connection->jetstream.get();
  auto max_request = read_record(jetstream, place);
  if (!max_request && max_request.error() == Errc::not_found) {
    if (auto fits = fits_payload(*connection, place.name, "max_request_size",
                                 options.max_request_size + sizeof(NatsRequestHeader));
        !fits) {
      return std::unexpected(fits.error());
    }
    // The first server makes the record; one racing it may make it first (same result).
    const std::string description =
        unique_description(std::string{max_request_mark} + std::to_string(options.max_request_size));
    const std::string record_subject = "shmbox.svcrecord." + place.name.name;
    const char* subjects[] = {record_subject.c_str()};
    jsStreamConfig config;
    jsStreamConfig_Init(&config);
    config.Name = place.stream.c_str();
    config.Description = description.c_str();
    config.Subjects = subjects;
    config.SubjectsLen = 1;
    config.Storage = js_FileStorage;  // system-owned: it outlives a server restart
    OwnedStreamInfo info;
    jsErrCode code = static_cast<jsErrCode>(0);
    const natsStatus status = js_AddStream(out(info), jetstream, &config, nullptr, &code);
    if (status != NATS_OK && code != JSStreamNameExistErr) {
      return std::unexpected(request_failed(place.name, "cannot make its record", status, code));
    }
    max_request = read_record(jetstream, place);
  }
  if (!max_request) return std::unexpected(max_request.error());
  return server_on(std::move(place), std::move(connection), *max_request, options);
}

Result<std::shared_ptr<ServerBackend>> NatsServices::open(std::string_view name, const ServiceOptions& options) {
  auto reached = reach(name, place_of);
  if (!reached) return std::unexpected(reached.error());
  auto max_request = read_record(reached->connection->jetstream.get(), reached->place);
  if (!max_request) return std::unexpected(max_request.error());
  return server_on(std::move(reached->place), std::move(reached->connection), *max_request, options);
}

Result<void> NatsServices::remove(std::string_view name) {
  auto reached = reach(name, place_of);
  if (!reached) return std::unexpected(reached.error());
  jsCtx* jetstream = reached->connection->jetstream.get();
  if (auto record = read_record(jetstream, reached->place); !record) return std::unexpected(record.error());
  auto deleted = delete_stream(jetstream, reached->place.name, reached->place.stream, "its record");
  if (!deleted && deleted.error() == Errc::not_found) return std::unexpected(does_not_exist(reached->place));
  return deleted;
}

Result<std::shared_ptr<ClientBackend>> NatsServices::connect(std::string_view name, const ClientOptions& options) {
  auto reached = reach(name, place_of);
  if (!reached) return std::unexpected(reached.error());
  auto& [place, connection] = *reached;
  auto max_request = read_record(connection->jetstream.get(), place);
  if (!max_request) return std::unexpected(max_request.error());
  if (auto fits = fits_payload(*connection, place.name, "max_answer_size",
                               std::size_t{options.max_answer_size} + sizeof(AnswerHeader));
      !fits) {
    return std::unexpected(fits.error());
  }
  OwnedInbox inbox;
  natsStatus status = natsInbox_Create(out(inbox));
  OwnedSubscription answers;
  if (status == NATS_OK) {
    const std::string all = std::string{inbox.get()} + ".*";
    status = natsConnection_SubscribeSync(out(answers), connection->connection.get(), all.c_str());
  }
  if (status != NATS_OK) return std::unexpected(nats_error(Errc::system, place.name, "cannot take answers", status));
  return std::make_shared<NatsClient>(std::move(place), std::move(connection), std::move(inbox), std::move(answers),
                                      *max_request, options);
}

}  // namespace shmbox::detail
