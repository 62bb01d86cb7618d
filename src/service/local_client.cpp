// The client's side of a local service: send a request into the service's mailbox, naming
// the client's own answer mailbox; take the answers from there, each call its own.
// docs/design.md ("Request/response").
#include <algorithm>
#include <atomic>
#include <chrono>
#include <deque>
#include <map>
#include <set>

#include "platform/process.hpp"
#include "service/local_service.hpp"
#include "service/protocol.hpp"

namespace shmbox::detail {
namespace {

using Clock = std::chrono::steady_clock;

std::atomic<std::uint64_t> clients_made{0};

// A request's deadline for its servers: none for forever, and for no_wait (which says
// only that the send does not wait for room).
std::int64_t deadline_ns(Deadline deadline) {
  if (deadline.is_forever() || deadline.is_none()) return 0;
  return std::max<std::int64_t>(
      1, std::chrono::duration_cast<std::chrono::nanoseconds>(deadline.until().time_since_epoch()).count());
}

class LocalClient final : public ClientBackend {
 public:
  LocalClient(std::string service, Mailbox service_box, Mailbox answer_box, std::string answer_box_name,
              const ClientOptions& options, std::uint64_t me)
      : name_(std::move(service)),
        requests_(std::move(service_box)),
        answers_(std::move(answer_box)),
        answers_name_(std::move(answer_box_name)),
        max_answer_size_(options.max_answer_size),
        capacity_(options.capacity),
        identity_(me) {}
  // Its answer mailbox goes with it (and with its process, however it ends); a forked
  // child's copy leaves its parent's alone.
  ~LocalClient() override {
    if (platform::current_process().packed() == identity_) (void)Mailbox::remove(answers_name_);
  }

  const std::string& name() const noexcept override { return name_; }
  std::size_t max_request_size() const noexcept override {
    return requests_.max_message_size() - request_message_size(0);
  }

  Result<std::uint64_t> send(std::span<const std::byte> request, Deadline deadline) override {
    // More open calls than answers the mailbox holds could leave servers waiting for room
    // in it while this client waits for room among the requests.
    if (open_.size() >= capacity_) {
      return std::unexpected(Error{Errc::invalid_argument, service_object(name_),
                                   std::to_string(open_.size()) +
                                       " calls of this client are open, as many as its answer mailbox holds: take "
                                       "their answers first"});
    }
    const std::uint64_t id = next_id_++;
    const RequestHeader header{.magic = request_magic,
                               .takes = 0,
                               .id = id,
                               .client = identity_,
                               .deadline_ns = deadline_ns(deadline),
                               .max_answer_size = max_answer_size_,
                               .answers_name_size = static_cast<std::uint32_t>(answers_name_.size())};
    frame_.resize(sizeof header + answers_name_.size() + request.size());
    std::memcpy(frame_.data(), &header, sizeof header);
    std::memcpy(frame_.data() + sizeof header, answers_name_.data(), answers_name_.size());
    if (!request.empty()) std::memcpy(frame_.data() + sizeof header + answers_name_.size(), request.data(), request.size());
    auto sent = requests_.send(frame_, deadline);
    if (!sent) {
      const Error& cause = sent.error();
      if (cause == Errc::would_block) {
        return std::unexpected(Error{Errc::would_block, service_object(name_), "has no room for a request now"});
      }
      if (cause == Errc::timeout) {
        return std::unexpected(
            Error{Errc::timeout, service_object(name_), "had no room for request " + std::to_string(id) + " in time"});
      }
      return std::unexpected(cause);
    }
    open_.insert(id);
    return id;
  }

  Result<Answer> next_answer(std::uint64_t id, Deadline until) override {
    for (;;) {
      if (auto stashed = stash_.take(id)) return std::move(*stashed);
      // In slices, to see the service removed meanwhile: no answer would come then.
      const Deadline slice = earlier(until, Deadline{Clock::now() + service_check_interval});
      auto got = answers_.receive(received_, slice);
      if (!got) {
        const bool slice_over = got.error() == Errc::timeout && (until.is_forever() || !until.expired());
        if (slice_over) {
          if (requests_.closed()) return std::unexpected(removed_with(id));
          continue;
        }
        if (got.error() == Errc::timeout || got.error() == Errc::would_block) {
          return std::unexpected(no_answer_in_time(got.error().errc(), id));
        }
        return std::unexpected(got.error());
      }
      auto parsed = parse_answer(received_);
      if (!parsed) continue;  // not an answer: dropped
      Answer answer{parsed->header.kind, parsed->header.part, {parsed->bytes.begin(), parsed->bytes.end()}};
      if (parsed->header.id == id) return answer;
      // Another open call's: kept for it. A finished call's (a server that died after
      // answering, and the one that answered again): dropped.
      if (open_.contains(parsed->header.id)) stash_.keep(parsed->header.id, std::move(answer));
    }
  }

  void forget(std::uint64_t id) noexcept override {
    open_.erase(id);
    stash_.drop(id);
  }

 private:
  Error removed_with(std::uint64_t id) const {
    return Error{Errc::closed, service_object(name_), "was removed; request " + std::to_string(id) + " has no answer"};
  }
  Error no_answer_in_time(Errc errc, std::uint64_t id) const {
    return Error{errc, service_object(name_), "no answer to request " + std::to_string(id) + " in time"};
  }

  std::string name_;
  Mailbox requests_;
  Mailbox answers_;
  std::string answers_name_;
  std::uint32_t max_answer_size_;
  std::uint32_t capacity_;  // answers its mailbox holds: at most this many calls open
  std::uint64_t identity_;  // ProcessIdentity::packed() of the process that made it
  std::uint64_t next_id_ = 1;
  std::set<std::uint64_t> open_;
  AnswerStash stash_;
  std::vector<std::byte> frame_;
  std::vector<std::byte> received_;
};

}  // namespace

Result<std::shared_ptr<ClientBackend>> LocalServices::connect(std::string_view name, const ClientOptions& options) {
  auto requests = open_service(name, options.wait);
  if (!requests) return std::unexpected(requests.error());
  if (requests->max_message_size() <= request_message_size(0)) {
    return std::unexpected(Error{Errc::invalid_argument, service_object(name),
                                 "is a mailbox too small to be a service's (messages of at most " +
                                     std::to_string(requests->max_message_size()) + " bytes)"});
  }
  // Named after the service and this process's identity (pid and start time: a pid used
  // again makes other names), and owned by this process: it goes with it.
  const std::uint64_t me = platform::current_process().packed();
  const std::string answers_name =
      answers_name_prefix(name, me) + std::to_string(clients_made.fetch_add(1, std::memory_order_relaxed));
  auto answers = Mailbox::create(answers_name,
                                 {.capacity = options.capacity,
                                  .max_message_size = static_cast<std::uint32_t>(sizeof(AnswerHeader)) +
                                                      std::max(options.max_answer_size, max_failure_text),
                                  .ownership = Ownership::process},
                                 options.wait);
  if (!answers) return std::unexpected(answers.error());
  return std::make_shared<LocalClient>(std::string{name}, std::move(*requests), std::move(*answers), answers_name,
                                       options, me);
}

}  // namespace shmbox::detail
