// The worker's side of a pool: take a task, run the function, report, and only then let
// the task go. docs/design.md ("Pools") has the protocol and what a kill at each point leaves.
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <mutex>
#include <optional>
#include <stop_token>
#include <thread>

#include "pool/protocol.hpp"

namespace shmbox {
namespace detail {
namespace {

using namespace std::chrono_literals;

// How often a worker on a transport without in-place messages tells the pool it still
// works at its task (the pool gives up on it after several missed ones).
constexpr auto heartbeat_interval = 1s;
constexpr std::uint64_t not_a_task = std::numeric_limits<std::uint64_t>::max();

// Builds and sends the messages to the pool.
class Reporter {
 public:
  explicit Reporter(Mailbox& results) : results_(results), max_size_(results.max_message_size() - sizeof(ResultHeader)) {}

  Result<void> send(std::uint64_t id, Report report, std::uint32_t attempts, std::span<const std::byte> bytes,
                    std::span<const std::byte> more = {}) {
    const ResultHeader header{.id = id, .report = report, .attempts = attempts};
    message_.resize(sizeof header + bytes.size() + more.size());
    std::memcpy(message_.data(), &header, sizeof header);
    if (!bytes.empty()) std::memcpy(message_.data() + sizeof header, bytes.data(), bytes.size());
    if (!more.empty()) std::memcpy(message_.data() + sizeof header + bytes.size(), more.data(), more.size());
    return results_.send(message_);
  }
  Result<void> send_error(std::uint64_t id, Report report, std::uint32_t attempts, std::string error) {
    if (error.size() > max_size_) error.resize(max_size_);
    return send(id, report, attempts, as_bytes(error));
  }
  // The task's run: its result, or why it failed.
  std::pair<std::vector<std::byte>, std::optional<std::string>> run(const TaskFunction& function,
                                                                    std::span<const std::byte> task) const {
    try {
      auto result = function(task);
      // With leases the mailbox has room for more (a took report): the pool checks again.
      if (result.size() > max_size_) return {{}, result_too_large(result.size(), max_size_)};
      return {std::move(result), std::nullopt};
    } catch (const std::exception& error) {
      return {{}, std::string{error.what()}};
    } catch (...) {
      return {{}, std::string{"threw something that is not a std::exception"}};
    }
  }

 private:
  Mailbox& results_;
  std::size_t max_size_;
  std::vector<std::byte> message_;
};

bool pool_ended(const Error& error) { return error == Errc::closed || error == Errc::not_found; }

std::string worker_name() {
  char host[256] = {};
  (void)::gethostname(host, sizeof host - 1);
  return std::string{host} + ":" + std::to_string(::getpid());
}

// On a transport that lends no message in place (nats://): the task leaves the mailbox
// only once the pool has been told who took it. From then on the pool holds a lease for
// it, kept alive by this worker's heartbeats; a worker lost with its machine lets it run
// out, and the pool sends the task again. Attempts are counted by the pool.
Result<void> serve_with_leases(Mailbox& tasks, Mailbox& results, std::string_view results_name,
                               const TaskFunction& function) {
  const std::string worker = worker_name();
  // Its own handle: heartbeats are sent from another thread.
  auto beats = Mailbox::open(results_name);
  if (!beats) return std::unexpected(beats.error());
  std::atomic<bool> working{false};
  std::jthread heartbeat([&](std::stop_token stop) {
    Reporter reporter{*beats};
    std::mutex mutex;
    std::condition_variable_any sleep;
    std::unique_lock lock{mutex};
    while (!sleep.wait_for(lock, stop, heartbeat_interval, [] { return false; }) && !stop.stop_requested()) {
      if (working.load()) (void)reporter.send(0, Report::alive, 0, as_bytes(worker));
    }
  });
  Reporter reporter{results};
  std::vector<std::byte> task;
  TaskHeader header{};
  const auto name_bytes = as_bytes(worker);
  const auto name_length = static_cast<std::uint32_t>(name_bytes.size());
  std::vector<std::byte> took(sizeof name_length + name_bytes.size());
  std::memcpy(took.data(), &name_length, sizeof name_length);
  std::memcpy(took.data() + sizeof name_length, name_bytes.data(), name_bytes.size());
  for (;;) {
    auto taken = tasks.receive_with([&](const Delivery& delivery) -> Result<void> {
      header.id = not_a_task;
      if (delivery.bytes.size() < sizeof header) return {};  // not a task: dropped
      std::memcpy(&header, delivery.bytes.data(), sizeof header);
      task.assign(delivery.bytes.begin() + sizeof header, delivery.bytes.end());
      return reporter.send(header.id, Report::took, 0, took, task);
    });
    if (!taken) {
      if (pool_ended(taken.error())) return {};
      return std::unexpected(taken.error());
    }
    if (header.id == not_a_task) continue;
    working.store(true);
    auto [result, failure] = reporter.run(function, task);
    working.store(false);
    auto sent = failure ? reporter.send_error(header.id, Report::attempt_failed, 0, *failure)
                        : reporter.send(header.id, Report::succeeded, 0, result);
    if (!sent) {
      if (pool_ended(sent.error())) return {};
      return std::unexpected(sent.error());
    }
  }
}

}  // namespace

// On a transport that lends messages in place: the takes are counted in the held message
// before the function runs, so a take that kills its worker counts too.
Result<void> serve(Mailbox& tasks, Mailbox& results, std::string_view results_name, const TaskFunction& function,
                   const CancelFlag* cancel) {
  const auto cancelled = [cancel] { return cancel != nullptr && cancel->flag().load(std::memory_order_acquire) != 0; };
  Reporter reporter{results};
  while (!cancelled()) {
    auto message = tasks.receive_in_place();
    if (!message) {
      if (pool_ended(message.error())) return {};
      // Only a mailbox that lends nothing refuses this (a remote one): leases instead.
      if (message.error() == Errc::invalid_argument) return serve_with_leases(tasks, results, results_name, function);
      return std::unexpected(message.error());
    }
    if (cancelled()) return {};
    const auto bytes = message->writable_data();
    TaskHeader header{};
    if (bytes.size() < sizeof header) continue;  // not a task: released unread
    std::memcpy(&header, bytes.data(), sizeof header);
    header.takes = std::min(header.takes, max_attempts) + 1;
    std::memcpy(bytes.data() + offsetof(TaskHeader, takes), &header.takes, sizeof header.takes);
    const std::uint32_t attempts = std::clamp(header.attempts, 1u, max_attempts);
    Result<void> sent;
    if (header.takes > attempts) {
      // The attempt before this one ended with its worker's death.
      sent = reporter.send_error(header.id, Report::failed, header.takes - 1,
                                 "its worker died during each of its " + std::to_string(header.takes - 1) + " attempts");
    } else {
      auto [result, failure] = reporter.run(function, bytes.subspan(sizeof header));
      if (failure && header.takes < attempts) {
        message->requeue();  // first in line again, for the next attempt
        continue;
      }
      sent = failure ? reporter.send_error(header.id, Report::failed, header.takes, *failure)
                     : reporter.send(header.id, Report::succeeded, header.takes, result);
    }
    // Unsent, the task stays: released only once its outcome is on its way.
    if (!sent) {
      message->requeue();
      if (pool_ended(sent.error())) return {};
      return std::unexpected(sent.error());
    }
  }
  return {};
}

}  // namespace detail

Result<void> serve_pool(std::string_view name, const TaskFunction& function) {
  const std::string object = "pool '" + std::string{name} + "'";
  if (!function) return std::unexpected(Error{Errc::invalid_argument, object, "needs a function to serve it with"});
  const auto open = [&](const std::string& mailbox) -> Result<Mailbox> {
    auto opened = Mailbox::open(mailbox);
    if (!opened && opened.error() == Errc::not_found) {
      return std::unexpected(Error{Errc::not_found, object, "does not exist (no mailbox '" + mailbox + "')"});
    }
    return opened;
  };
  auto tasks = open(detail::tasks_name_of(name));
  if (!tasks) return std::unexpected(tasks.error());
  auto results = open(detail::results_name_of(name));
  if (!results) return std::unexpected(results.error());
  return detail::serve(*tasks, *results, detail::results_name_of(name), function, nullptr);
}

std::optional<std::string> pool_to_serve() {
  const char* name = std::getenv(detail::pool_variable);
  if (name == nullptr || *name == '\0') return std::nullopt;
  return std::string{name};
}

}  // namespace shmbox
