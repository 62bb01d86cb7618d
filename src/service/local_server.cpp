// The server's side of a local service: take a request in place from the service's
// mailbox, hold it there until it is answered, answer into the client's mailbox.
// docs/design.md ("Request/response") has the protocol and what a kill at each point leaves.
#include <algorithm>
#include <chrono>
#include <map>

#include "platform/process.hpp"
#include "service/local_service.hpp"
#include "service/protocol.hpp"

namespace shmbox::detail {
namespace {

using Clock = std::chrono::steady_clock;

std::int64_t now_ns() { return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch()).count(); }

Deadline deadline_of(const RequestHeader& header) {
  if (header.deadline_ns == 0) return forever;
  return Deadline{Clock::time_point{std::chrono::duration_cast<Clock::duration>(std::chrono::nanoseconds{header.deadline_ns})}};
}

class LocalServer final : public ServerBackend, public std::enable_shared_from_this<LocalServer> {
 public:
  LocalServer(std::string name, Mailbox requests, std::uint32_t attempts)
      : name_(std::move(name)), requests_(std::move(requests)), attempts_(attempts) {}

  const std::string& name() const noexcept override { return name_; }
  Result<std::unique_ptr<RequestBackend>> next(Deadline deadline) override;

  // The client's answer mailbox is gone: opened again if it comes back.
  void forget(const std::string& answers_name) { answer_boxes_.erase(answers_name); }

 private:
  static constexpr std::size_t answer_boxes_kept = 64;
  static constexpr auto liveness_interval = std::chrono::milliseconds{100};

  // Whether the client `identity` is dead, looked at no more than once per liveness interval.
  bool client_dead(std::uint64_t identity) {
    const auto now = Clock::now();
    if (auto found = clients_alive_.find(identity);
        found != clients_alive_.end() && now - found->second < liveness_interval) {
      return false;
    }
    if (platform::liveness(identity) == platform::Liveness::dead) {
      clients_alive_.erase(identity);
      return true;
    }
    if (clients_alive_.size() >= answer_boxes_kept) clients_alive_.clear();
    clients_alive_[identity] = now;
    return false;
  }

  Result<std::shared_ptr<Mailbox>> answer_box(std::string_view answers_name) {
    if (auto found = answer_boxes_.find(answers_name); found != answer_boxes_.end()) return found->second;
    auto opened = Mailbox::open(answers_name);
    if (!opened) return std::unexpected(opened.error());
    if (answer_boxes_.size() >= answer_boxes_kept) answer_boxes_.clear();  // requests keep theirs
    auto box = std::make_shared<Mailbox>(std::move(*opened));
    answer_boxes_.emplace(std::string{answers_name}, box);
    return box;
  }

  std::string name_;
  Mailbox requests_;
  std::uint32_t attempts_;
  // The clients' answer mailboxes, opened once: a client sends many requests.
  std::map<std::string, std::shared_ptr<Mailbox>, std::less<>> answer_boxes_;
  // When each client was last seen alive: a look costs a read of /proc, more than a call.
  std::map<std::uint64_t, Clock::time_point> clients_alive_;
};

// A request held in place in the service's mailbox until it is answered.
class LocalRequest final : public RequestBackend {
 public:
  LocalRequest(std::shared_ptr<LocalServer> server, ReceivedMessage message, const ParsedRequest& parsed,
               std::shared_ptr<Mailbox> answers)
      : server_(std::move(server)),
        message_(std::move(message)),
        header_(parsed.header),
        answers_name_(parsed.answers_name),
        answers_(std::move(answers)),
        bytes_(parsed.bytes) {}

  std::span<const std::byte> data() const noexcept override { return bytes_; }
  std::uint64_t id() const noexcept override { return header_.id; }
  pid_t client_pid() const noexcept override { return platform::ProcessIdentity::unpack(header_.client).pid; }
  std::uint32_t takes() const noexcept override { return header_.takes; }
  std::uint32_t max_answer_size() const noexcept override { return header_.max_answer_size; }
  bool done() const noexcept override { return done_; }

  Result<void> send(AnswerKind kind, std::span<const std::byte> bytes) override {
    const AnswerHeader answer{.magic = answer_magic, .kind = kind, .id = header_.id, .part = next_part_};
    frame_.resize(sizeof answer + bytes.size());
    std::memcpy(frame_.data(), &answer, sizeof answer);
    if (!bytes.empty()) std::memcpy(frame_.data() + sizeof answer, bytes.data(), bytes.size());
    auto sent = answers_->send(frame_, deadline_of(header_));
    if (sent) {
      ++next_part_;
    } else if (sent.error() == Errc::closed || sent.error() == Errc::not_found) {
      server_->forget(answers_name_);  // the client has gone
    }
    if (kind != AnswerKind::part || !sent) finish();
    return sent;
  }

 private:
  // Lets the request go from the service's mailbox: answered, or nobody to answer.
  void finish() noexcept {
    done_ = true;
    message_.release();
  }

  std::shared_ptr<LocalServer> server_;
  ReceivedMessage message_;
  RequestHeader header_;
  std::string answers_name_;
  std::shared_ptr<Mailbox> answers_;
  std::span<const std::byte> bytes_;
  std::uint64_t next_part_ = 0;
  bool done_ = false;
  std::vector<std::byte> frame_;
};

Result<std::unique_ptr<RequestBackend>> LocalServer::next(Deadline deadline) {
  for (;;) {
    auto message = requests_.receive_in_place(deadline);
    if (!message) return std::unexpected(message.error());
    auto parsed = parse_request(message->data());
    if (!parsed) continue;  // not a request: dropped
    // Counted in place before anything else, so that a take that kills us counts too.
    const std::uint32_t takes = std::min(parsed->header.takes, max_service_attempts) + 1;
    std::memcpy(message->writable_data().data() + offsetof(RequestHeader, takes), &takes, sizeof takes);
    parsed->header.takes = takes;
    if (client_dead(parsed->header.client)) continue;
    if (parsed->header.deadline_ns != 0 && now_ns() >= parsed->header.deadline_ns) continue;
    // Only into the mailbox of the client the request says it is from.
    if (!parsed->answers_name.starts_with(answers_name_prefix(name_, parsed->header.client))) continue;
    auto answers = answer_box(parsed->answers_name);
    if (!answers) {
      if (answers.error() == Errc::not_found || answers.error() == Errc::closed) continue;  // the client has gone
      message->requeue();  // for another try (its take counted): nothing is lost
      return std::unexpected(answers.error());
    }
    auto request = std::make_unique<LocalRequest>(shared_from_this(), std::move(*message), *parsed, std::move(*answers));
    if (takes > attempts_) {
      // The servers that took it before died holding it, each time.
      (void)request->send(AnswerKind::failed, as_bytes(servers_died(takes - 1)));
      continue;
    }
    return request;
  }
}

}  // namespace

Result<std::shared_ptr<ServerBackend>> LocalServices::join(std::string_view name, const ServiceOptions& options) {
  auto requests = Mailbox::open(name, options.wait);
  for (int tries = 0; !requests && requests.error() == Errc::not_found && tries < 2; ++tries) {
    // The first server makes it; the system owns it, so that it outlives every server.
    requests = Mailbox::create(name,
                               {.capacity = options.capacity,
                                .max_message_size = request_message_size(options.max_request_size),
                                .mode = options.mode,
                                .ownership = Ownership::system},
                               options.wait);
    if (!requests && requests.error() == Errc::already_exists) requests = Mailbox::open(name, options.wait);
  }
  if (!requests) return std::unexpected(requests.error());
  return std::make_shared<LocalServer>(std::string{name}, std::move(*requests), options.attempts);
}

Result<std::shared_ptr<ServerBackend>> LocalServices::open(std::string_view name, const ServiceOptions& options) {
  auto requests = open_service(name, options.wait);
  if (!requests) return std::unexpected(requests.error());
  return std::make_shared<LocalServer>(std::string{name}, std::move(*requests), options.attempts);
}

Result<void> LocalServices::remove(std::string_view name) { return Mailbox::remove(name); }

}  // namespace shmbox::detail
