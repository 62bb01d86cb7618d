// Pools: worker processes fed by a task mailbox, answering through a result mailbox.
// docs/design.md ("Pools") has the protocol and what a kill at each point leaves.
#include "shmbox/pool.hpp"

#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <deque>
#include <exception>
#include <limits>
#include <map>
#include <optional>
#include <thread>
#include <utility>

#include "shmbox/mailbox.hpp"
#include "shmbox/segment.hpp"
#include "shmbox/selector.hpp"

namespace shmbox {
namespace detail {
namespace {

using namespace std::chrono_literals;

// How often a pool waiting for outcomes looks at its workers.
constexpr auto worker_check_interval = 20ms;
// The exit status of a worker that cannot go on (its mailboxes failed): the pool stops.
constexpr int worker_failed = 71;
// How long a cancelled worker may take to leave before it is killed.
constexpr auto cancel_grace = 200ms;
constexpr std::uint32_t max_attempts = 100;

// A task message: its id, then the task's bytes.
struct TaskHeader {
  std::uint64_t id;
};
// A result message: the task's id, how it went, its attempts; then the result's bytes or
// the error's text.
struct ResultHeader {
  std::uint64_t id;
  std::uint32_t ok;
  std::uint32_t attempts;
};

// Memory the pool and its forked workers share without a name (nothing to leave behind):
// the cancel flag, then one take counter per task in the window: id << 8 | takes.
class SharedCounters {
 public:
  static Result<SharedCounters> make(std::size_t window, const std::string& object) {
    const std::size_t bytes = 64 + window * sizeof(std::uint64_t);
    void* memory = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (memory == MAP_FAILED) {
      return std::unexpected(Error{Errc::out_of_memory, object, "cannot map its counters of " +
                                                                    std::to_string(bytes) + " bytes", errno});
    }
    return SharedCounters{static_cast<std::byte*>(memory), bytes, window};
  }
  SharedCounters(SharedCounters&& other) noexcept
      : memory_(std::exchange(other.memory_, nullptr)), bytes_(other.bytes_), window_(other.window_) {}
  SharedCounters& operator=(SharedCounters&&) = delete;
  ~SharedCounters() {
    if (memory_ != nullptr) ::munmap(memory_, bytes_);
  }

  std::atomic_ref<std::uint32_t> cancelled() const noexcept {
    return std::atomic_ref<std::uint32_t>{*reinterpret_cast<std::uint32_t*>(memory_)};
  }
  std::atomic_ref<std::uint64_t> takes_of(std::uint64_t id) const noexcept {
    return std::atomic_ref<std::uint64_t>{reinterpret_cast<std::uint64_t*>(memory_ + 64)[id % window_]};
  }
  std::size_t window() const noexcept { return window_; }

 private:
  SharedCounters(std::byte* memory, std::size_t bytes, std::size_t window) noexcept
      : memory_(memory), bytes_(bytes), window_(window) {}
  std::byte* memory_;
  std::size_t bytes_;
  std::size_t window_;
};

enum class Take { run, finished_already };

// Counts a worker's take of task `id`; how many takes it has had, this one included. A
// counter that names a later task means `id` is finished: the pool submits a task only
// once every task a window before it has its outcome.
std::pair<Take, std::uint32_t> count_take(const SharedCounters& counters, std::uint64_t id) {
  auto word = counters.takes_of(id);
  std::uint64_t seen = word.load(std::memory_order_relaxed);
  for (;;) {
    const std::uint64_t seen_id = seen >> 8;
    if (seen_id > id) return {Take::finished_already, 0};
    const std::uint32_t takes = seen_id == id ? std::min<std::uint32_t>((seen & 0xff) + 1, 0xff) : 1;
    if (word.compare_exchange_weak(seen, id << 8 | takes, std::memory_order_acq_rel)) return {Take::run, takes};
  }
}

std::size_t cpus_to_use() {
  cpu_set_t set;
  if (::sched_getaffinity(0, sizeof set, &set) == 0) return static_cast<std::size_t>(std::max(CPU_COUNT(&set), 1));
  return std::max<std::size_t>(std::thread::hardware_concurrency(), 1);
}

std::size_t window_for(std::size_t in_flight) {
  std::size_t window = 64;
  while (window < 4 * in_flight) window *= 2;
  return window;
}

// What a worker knows, from before the fork.
struct WorkerPlan {
  std::string tasks_name;
  std::string results_name;
  std::uint32_t attempts;
  std::size_t max_result_size;
  pid_t pool_pid;
};

// The worker process's life: take a task, run the function, send the outcome, and only
// then let the task go. Returns the exit status.
int run_worker(const WorkerPlan& plan, const TaskFunction& function, const SharedCounters& counters) {
  auto tasks = Mailbox::open(plan.tasks_name);
  auto results = Mailbox::open(plan.results_name);
  if (!tasks || !results) {
    std::fprintf(stderr, "shmbox: pool worker: %s\n",
                 (tasks ? results.error() : tasks.error()).message().c_str());
    return worker_failed;
  }
  std::vector<std::byte> outcome;
  const auto send_outcome = [&](std::uint64_t id, bool ok, std::uint32_t attempts,
                                std::span<const std::byte> bytes) -> Result<void> {
    const ResultHeader header{.id = id, .ok = ok ? 1u : 0u, .attempts = attempts};
    outcome.resize(sizeof header + bytes.size());
    std::memcpy(outcome.data(), &header, sizeof header);
    if (!bytes.empty()) std::memcpy(outcome.data() + sizeof header, bytes.data(), bytes.size());
    return results->send(outcome);
  };
  const auto send_failure = [&](std::uint64_t id, std::uint32_t attempts, std::string error) {
    if (error.size() > plan.max_result_size) error.resize(plan.max_result_size);
    return send_outcome(id, false, attempts, as_bytes(error));
  };
  while (counters.cancelled().load(std::memory_order_acquire) == 0) {
    auto message = tasks->receive_in_place();
    if (!message) return message.error() == Errc::closed ? 0 : worker_failed;
    if (counters.cancelled().load(std::memory_order_acquire) != 0) return 0;
    const auto bytes = message->data();
    TaskHeader header{};
    if (bytes.size() < sizeof header) continue;  // not a task: released unread
    std::memcpy(&header, bytes.data(), sizeof header);
    const auto [take, takes] = count_take(counters, header.id);
    if (take == Take::finished_already) continue;  // a copy whose outcome the pool has
    Result<void> sent;
    if (takes > plan.attempts) {
      // The attempt before this one ended with its worker's death.
      sent = send_failure(header.id, takes - 1,
                          "its worker died during each of its " + std::to_string(takes - 1) + " attempts");
    } else {
      std::optional<std::string> failure;
      try {
        const auto result = function(bytes.subspan(sizeof header));
        if (result.size() > plan.max_result_size) {
          failure = "returned " + std::to_string(result.size()) + " bytes, over the pool's max_result_size of " +
                    std::to_string(plan.max_result_size);
        } else {
          sent = send_outcome(header.id, true, takes, result);
        }
      } catch (const std::exception& error) {
        failure = error.what();
      } catch (...) {
        failure = "threw something that is not a std::exception";
      }
      if (failure) {
        if (takes < plan.attempts) {
          message->requeue();  // first in line again, for the next attempt
          continue;
        }
        sent = send_failure(header.id, takes, *failure);
      }
    }
    // Unsent, the task stays: released only once its outcome is on its way.
    if (!sent) {
      std::fprintf(stderr, "shmbox: pool worker: %s\n", sent.error().message().c_str());
      return worker_failed;
    }
  }
  return 0;
}

}  // namespace

struct PoolState {
  std::string name;
  std::string object;
  TaskFunction function;
  PoolOptions options;
  std::uint32_t worker_count = 0;
  WorkerPlan plan;
  Mailbox tasks;
  Mailbox results;
  SharedCounters counters;
  std::vector<pid_t> workers;
  bool cancelled = false;

  std::uint64_t next_id = 0;
  // Which tasks of the window [lowest_outstanding, next_id) have their outcome: a ring of
  // the window's size, so that counting an outcome once costs no allocation.
  std::vector<std::uint8_t> finished_ring;
  std::uint64_t lowest_outstanding = 0;
  std::uint64_t outstanding_count = 0;
  std::map<std::uint64_t, TaskOutcome> unclaimed;
  std::deque<std::uint64_t> finish_order;  // of the unclaimed, as they finished
  // While map() runs: its outcomes go straight to their place.
  std::vector<TaskOutcome>* map_sink = nullptr;
  std::uint64_t map_first = 0;
  std::uint64_t map_missing = 0;
  PoolProgress progress;
  std::vector<std::byte> buffer;
  std::vector<std::byte> task_message;
  Deadline::clock::time_point next_worker_check{};

  PoolState(std::string pool_name, TaskFunction task_function, const PoolOptions& pool_options, std::uint32_t count,
            WorkerPlan worker_plan, Mailbox task_mailbox, Mailbox result_mailbox, SharedCounters shared)
      : name(std::move(pool_name)),
        object("pool '" + name + "'"),
        function(std::move(task_function)),
        options(pool_options),
        worker_count(count),
        plan(std::move(worker_plan)),
        tasks(std::move(task_mailbox)),
        results(std::move(result_mailbox)),
        counters(std::move(shared)),
        finished_ring(counters.window(), 1) {}

  PoolState(const PoolState&) = delete;
  PoolState& operator=(const PoolState&) = delete;
  ~PoolState() { stop(); }

  Error closed_error() const { return Error{Errc::closed, object, "was cancelled"}; }

  Result<pid_t> start_worker() {
    std::fflush(nullptr);  // so that the child does not write out our buffered output again
    const pid_t pid = ::fork();
    if (pid < 0) return std::unexpected(Error{Errc::system, object, "cannot start a worker", errno});
    if (pid == 0) {
      // Die with the pool, even if it is killed; it may have died already.
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != plan.pool_pid) ::_exit(0);
      // _exit: the pool's handles and buffers in this copy are the pool's, not ours.
      ::_exit(run_worker(plan, function, counters));
    }
    return pid;
  }

  // Workers that died are replaced; one that could not even start ends the pool's work.
  Result<void> look_after_workers() {
    for (pid_t& worker : workers) {
      int status = 0;
      const pid_t gone = ::waitpid(worker, &status, WNOHANG);
      if (gone == 0 || (gone < 0 && errno == EINTR)) continue;
      if (gone > 0 && WIFEXITED(status) && WEXITSTATUS(status) == worker_failed) {
        return std::unexpected(Error{Errc::system, object, "a worker failed (its error is on stderr)"});
      }
      auto replacement = start_worker();
      if (!replacement) return std::unexpected(replacement.error());
      worker = *replacement;
      ++progress.workers_replaced;
    }
    return {};
  }

  // Takes in outcomes: waits until `deadline` (or the next look at the workers) for the
  // first, then takes what is there. A duplicate (a task done again because its worker
  // died after sending its outcome) is dropped.
  Result<void> collect(Deadline deadline) {
    for (bool waited = false;; waited = true) {
      const auto now = Deadline::clock::now();
      if (now >= next_worker_check) {
        if (auto looked = look_after_workers(); !looked) return looked;
        next_worker_check = now + worker_check_interval;
      }
      const Deadline wait = waited ? Deadline::none() : earlier(deadline, Deadline{next_worker_check});
      auto received = results.receive(buffer, wait);
      if (!received) {
        if (received.error() == Errc::would_block || received.error() == Errc::timeout) return {};
        return std::unexpected(received.error());
      }
      if (auto taken = take_outcome(); !taken) return taken;
    }
  }

  static Deadline earlier(const Deadline& a, const Deadline& b) {
    if (a.is_none() || b.is_forever()) return a;
    if (b.is_none() || a.is_forever()) return b;
    return a.until() < b.until() ? a : b;
  }

  Result<void> take_outcome() {
    ResultHeader header{};
    if (buffer.size() < sizeof header) {
      return std::unexpected(Error{Errc::corrupt, object, "got an outcome of " + std::to_string(buffer.size()) +
                                                              " bytes, shorter than its header"});
    }
    std::memcpy(&header, buffer.data(), sizeof header);
    if (header.id >= next_id || header.ok > 1) {
      return std::unexpected(Error{Errc::corrupt, object, "got an outcome for task " + std::to_string(header.id) +
                                                              " that makes no sense"});
    }
    if (!outstanding(header.id)) return {};  // counted already
    finished_ring[header.id % finished_ring.size()] = 1;
    --outstanding_count;
    while (lowest_outstanding < next_id && finished_ring[lowest_outstanding % finished_ring.size()] == 1) {
      ++lowest_outstanding;
    }
    TaskOutcome outcome{.task = header.id, .ok = header.ok == 1, .attempts = header.attempts};
    const auto body = std::span{buffer}.subspan(sizeof header);
    if (outcome.ok) {
      outcome.result.assign(body.begin(), body.end());
    } else {
      outcome.error.assign(reinterpret_cast<const char*>(body.data()), body.size());
      ++progress.failed;
    }
    ++progress.done;
    if (map_sink != nullptr && header.id >= map_first && header.id - map_first < map_sink->size()) {
      (*map_sink)[header.id - map_first] = std::move(outcome);
      --map_missing;
    } else {
      unclaimed.emplace(header.id, std::move(outcome));
      finish_order.push_back(header.id);
    }
    if (options.on_progress) options.on_progress(progress);
    return {};
  }

  bool outstanding(std::uint64_t id) const {
    return id >= lowest_outstanding && id < next_id && finished_ring[id % finished_ring.size()] == 0;
  }

  Result<std::uint64_t> submit(std::span<const std::byte> task, Deadline deadline) {
    if (cancelled) return std::unexpected(closed_error());
    if (task.size() > options.max_task_size) {
      return std::unexpected(Error{Errc::too_large, object,
                                   "a task of " + std::to_string(task.size()) + " bytes is over its max_task_size of " +
                                       std::to_string(options.max_task_size)});
    }
    const std::uint64_t id = next_id;
    const TaskHeader header{.id = id};
    task_message.resize(sizeof header + task.size());
    std::memcpy(task_message.data(), &header, sizeof header);
    if (!task.empty()) std::memcpy(task_message.data() + sizeof header, task.data(), task.size());
    for (;;) {
      // The take counters hold a window of tasks: no task is queued a window past one that
      // has no outcome yet.
      if (id - lowest_outstanding < finished_ring.size()) {
        auto sent = tasks.send(task_message, Deadline::none());
        if (sent) break;
        if (sent.error() != Errc::would_block) return std::unexpected(sent.error());
      }
      // Outcomes make room; waiting for one is short, then the queue is tried again. Even
      // without waiting, the workers are looked after: the queue may be full of copies of
      // finished tasks that their killed workers gave back, which only new workers clear.
      if (auto collected = collect(earlier(deadline, Deadline{Deadline::clock::now() + 1ms})); !collected) {
        return std::unexpected(collected.error());
      }
      if (deadline.expired()) {
        if (deadline.is_none()) return std::unexpected(Error{Errc::would_block, object, "has a full task queue"});
        return std::unexpected(Error{Errc::timeout, object, "timed out waiting for room in its task queue"});
      }
    }
    ++next_id;
    finished_ring[id % finished_ring.size()] = 0;
    ++outstanding_count;
    ++progress.submitted;
    return id;
  }

  Result<TaskOutcome> claim(std::uint64_t id) {
    auto found = unclaimed.find(id);
    TaskOutcome outcome = std::move(found->second);
    unclaimed.erase(found);
    // Claimed ones leave the finishing order when they reach its front.
    while (!finish_order.empty() && !unclaimed.contains(finish_order.front())) finish_order.pop_front();
    return outcome;
  }

  Result<TaskOutcome> result(std::uint64_t id, Deadline deadline) {
    if (cancelled) return std::unexpected(closed_error());
    for (bool looked = false;; looked = true) {
      if (unclaimed.contains(id)) return claim(id);
      if (!outstanding(id)) {
        return std::unexpected(Error{Errc::not_found, object, "has no task " + std::to_string(id) + " to wait for"});
      }
      // Even without waiting, what has come in is taken in once.
      if (looked && deadline.expired()) return std::unexpected(waited_too_long(deadline, "task " + std::to_string(id)));
      if (auto collected = collect(deadline); !collected) return std::unexpected(collected.error());
    }
  }

  Result<TaskOutcome> next_finished(Deadline deadline) {
    if (cancelled) return std::unexpected(closed_error());
    for (bool looked = false;; looked = true) {
      if (!finish_order.empty()) return claim(finish_order.front());
      if (outstanding_count == 0) return std::unexpected(Error{Errc::not_found, object, "has no task running"});
      if (looked && deadline.expired()) return std::unexpected(waited_too_long(deadline, "a task"));
      if (auto collected = collect(deadline); !collected) return std::unexpected(collected.error());
    }
  }

  Error waited_too_long(const Deadline& deadline, const std::string& what) const {
    if (deadline.is_none()) return Error{Errc::would_block, object, "has no outcome yet for " + what};
    return Error{Errc::timeout, object, "timed out waiting for " + what};
  }

  // Workers first (told through the shared flag and by closing the task queue, then
  // killed if they take too long), then the names.
  void stop() noexcept {
    if (cancelled) return;
    cancelled = true;
    counters.cancelled().store(1, std::memory_order_release);
    (void)tasks.close();
    const auto give_up = Deadline::clock::now() + cancel_grace;
    for (const pid_t worker : workers) {
      int status = 0;
      while (::waitpid(worker, &status, WNOHANG) == 0) {
        if (Deadline::clock::now() >= give_up) {
          ::kill(worker, SIGKILL);
          while (::waitpid(worker, &status, 0) < 0 && errno == EINTR) {
          }
          break;
        }
        std::this_thread::sleep_for(1ms);
      }
    }
    workers.clear();
    (void)Mailbox::remove(plan.tasks_name);
    (void)Mailbox::remove(plan.results_name);
  }
};

}  // namespace detail

namespace {

std::atomic<std::uint32_t> pools_made{0};

Error pool_error(Errc errc, std::string detail) { return Error{errc, "pool", std::move(detail)}; }

}  // namespace

Result<Pool> Pool::fork(TaskFunction function, const PoolOptions& options) {
  if (!function) return std::unexpected(pool_error(Errc::invalid_argument, "needs a function"));
  if (options.attempts == 0 || options.attempts > detail::max_attempts) {
    return std::unexpected(pool_error(Errc::invalid_argument, "attempts must be 1 to " +
                                                                   std::to_string(detail::max_attempts) + ", not " +
                                                                   std::to_string(options.attempts)));
  }
  const std::uint32_t workers =
      options.workers != 0 ? options.workers : static_cast<std::uint32_t>(detail::cpus_to_use());
  const std::uint32_t capacity = options.queue_capacity != 0 ? options.queue_capacity : 4 * workers;
  const std::string name = "pool-" + std::to_string(::getpid()) + "-" + std::to_string(pools_made.fetch_add(1));
  const std::string object = "pool '" + name + "'";
  if (options.max_task_size + sizeof(detail::TaskHeader) > std::numeric_limits<std::uint32_t>::max() ||
      options.max_result_size + sizeof(detail::ResultHeader) > std::numeric_limits<std::uint32_t>::max()) {
    return std::unexpected(Error{Errc::too_large, object, "max_task_size and max_result_size must be under 4 GiB"});
  }
  auto tasks = Mailbox::create(name + "-tasks", {.buffering = Buffering::bounded,
                                                  .capacity = capacity,
                                                  .max_message_size = static_cast<std::uint32_t>(
                                                      options.max_task_size + sizeof(detail::TaskHeader)),
                                                  .max_attached = workers * 2 + 8});
  if (!tasks) return std::unexpected(tasks.error());
  // Room for an outcome of every task in flight, and a duplicate from each worker: a
  // worker never waits for the caller, who may be waiting for room in the task queue.
  const std::size_t window = detail::window_for(capacity + workers);
  auto results = Mailbox::create(name + "-results", {.buffering = Buffering::bounded,
                                                      .capacity = static_cast<std::uint32_t>(window + 2 * workers),
                                                      .max_message_size = static_cast<std::uint32_t>(
                                                          options.max_result_size + sizeof(detail::ResultHeader)),
                                                      .max_attached = workers * 2 + 8});
  if (!results) {
    (void)Mailbox::remove(name + "-tasks");
    return std::unexpected(results.error());
  }
  auto counters = detail::SharedCounters::make(window, object);
  if (!counters) {
    (void)Mailbox::remove(name + "-tasks");
    (void)Mailbox::remove(name + "-results");
    return std::unexpected(counters.error());
  }
  detail::WorkerPlan plan{.tasks_name = name + "-tasks",
                          .results_name = name + "-results",
                          .attempts = options.attempts,
                          .max_result_size = options.max_result_size,
                          .pool_pid = ::getpid()};
  auto state = std::make_unique<detail::PoolState>(name, std::move(function), options, workers, std::move(plan),
                                                   std::move(*tasks), std::move(*results), std::move(*counters));
  for (std::uint32_t i = 0; i < workers; ++i) {
    auto worker = state->start_worker();
    if (!worker) return std::unexpected(worker.error());  // the state's destructor stops those started
    state->workers.push_back(*worker);
  }
  return Pool{std::move(state)};
}

Pool::Pool(std::unique_ptr<detail::PoolState> state) noexcept : state_(std::move(state)) {}
Pool::Pool(Pool&& other) noexcept = default;
Pool& Pool::operator=(Pool&& other) noexcept = default;
Pool::~Pool() = default;

namespace {
Error moved_from() { return pool_error(Errc::invalid_argument, "this handle was moved from"); }
}  // namespace

Result<std::uint64_t> Pool::submit(std::span<const std::byte> task, Deadline deadline) {
  if (!state_) return std::unexpected(moved_from());
  return state_->submit(task, deadline);
}

Result<TaskOutcome> Pool::result(std::uint64_t id, Deadline deadline) {
  if (!state_) return std::unexpected(moved_from());
  return state_->result(id, deadline);
}

Result<TaskOutcome> Pool::next_finished(Deadline deadline) {
  if (!state_) return std::unexpected(moved_from());
  return state_->next_finished(deadline);
}

Result<std::vector<TaskOutcome>> Pool::map(std::span<const std::vector<std::byte>> inputs) {
  return map(inputs.size(), [&](std::size_t i) { return std::span<const std::byte>{inputs[i]}; });
}

Result<std::vector<TaskOutcome>> Pool::map(std::size_t count,
                                           const std::function<std::span<const std::byte>(std::size_t)>& task_at) {
  if (!state_) return std::unexpected(moved_from());
  detail::PoolState& state = *state_;
  std::vector<TaskOutcome> outcomes(count);
  // Outcomes go straight to their place while the tasks are submitted and after.
  state.map_sink = &outcomes;
  state.map_first = state.next_id;
  state.map_missing = count;
  struct Unhook {
    detail::PoolState& state;
    ~Unhook() { state.map_sink = nullptr; }
  } unhook{state};
  for (std::size_t i = 0; i < count; ++i) {
    if (auto id = state.submit(task_at(i), forever); !id) return std::unexpected(id.error());
  }
  while (state.map_missing > 0) {
    if (state.cancelled) return std::unexpected(state.closed_error());
    if (auto collected = state.collect(forever); !collected) return std::unexpected(collected.error());
  }
  return outcomes;
}

namespace {
std::string attempts_text(std::uint32_t attempts) {
  return std::to_string(attempts) + (attempts == 1 ? " attempt" : " attempts");
}
}  // namespace

Error Pool::failure(const TaskOutcome& outcome, std::size_t expected_size) const {
  const std::string object = state_ ? state_->object : "pool";
  const std::string task = "task " + std::to_string(outcome.task);
  if (outcome.ok) {
    return Error{Errc::task_failed, object, task + " returned " + std::to_string(outcome.result.size()) +
                                                " bytes, not a value of " + std::to_string(expected_size)};
  }
  return Error{Errc::task_failed, object, task + " failed after " + attempts_text(outcome.attempts) + ": " + outcome.error};
}

Error chunk_failure(std::string_view segment, const TaskOutcome& outcome) {
  const std::string object = "segment '" + std::string{segment} + "'";
  const std::string chunk = "chunk " + std::to_string(outcome.task);
  if (outcome.ok) {
    return Error{Errc::task_failed, object, chunk + " gave " + std::to_string(outcome.result.size()) +
                                                " bytes, not a value of the type asked for"};
  }
  return Error{Errc::task_failed, object, chunk + " failed after " + attempts_text(outcome.attempts) + ": " + outcome.error};
}

Result<std::vector<TaskOutcome>> map_chunks(std::string_view segment, std::size_t chunk_size, ChunkFunction function,
                                            const PoolOptions& options) {
  if (chunk_size == 0) {
    return std::unexpected(Error{Errc::invalid_argument, "segment '" + std::string{segment} + "'",
                                 "chunks must be at least 1 byte"});
  }
  if (!function) return std::unexpected(pool_error(Errc::invalid_argument, "needs a function"));
  // Mapped before the workers are forked: they inherit the mapping, read-only, and nobody
  // copies the data.
  auto data = Segment::open(segment, Access::read_only);
  if (!data) return std::unexpected(data.error());
  const std::span<const std::byte> bytes = data->bytes();
  auto pool = Pool::fork(
      [bytes, function = std::move(function)](std::span<const std::byte> task) {
        std::array<std::uint64_t, 2> range{};
        if (task.size() != sizeof range) throw std::invalid_argument("not a chunk");
        std::memcpy(range.data(), task.data(), sizeof range);
        return function(Chunk{.data = bytes, .offset = range[0], .length = range[1]});
      },
      options);
  if (!pool) return std::unexpected(pool.error());
  const std::size_t count = (bytes.size() + chunk_size - 1) / chunk_size;
  std::array<std::uint64_t, 2> range{};
  return pool->map(count, [&](std::size_t i) {
    range = {i * chunk_size, std::min(chunk_size, bytes.size() - i * chunk_size)};
    return std::as_bytes(std::span{range});
  });
}

void Pool::cancel() noexcept {
  if (state_) state_->stop();
}

Result<std::size_t> Pool::add_to(Selector& selector) {
  if (!state_) return std::unexpected(moved_from());
  return selector.add(state_->results);
}

PoolProgress Pool::progress() const noexcept { return state_ ? state_->progress : PoolProgress{}; }

std::vector<pid_t> Pool::worker_pids() const { return state_ ? state_->workers : std::vector<pid_t>{}; }

const std::string& Pool::name() const noexcept {
  static const std::string none;
  return state_ ? state_->name : none;
}

}  // namespace shmbox
