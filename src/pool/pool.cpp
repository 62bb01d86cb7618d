// Pools: worker processes fed by a task mailbox, answering through a result mailbox.
// docs/design.md ("Pools") has the protocol and what a kill at each point leaves.
#include "shmbox/pool.hpp"

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
#include <cstdlib>
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
#include "pool/protocol.hpp"

namespace shmbox {
namespace detail {
namespace {

using namespace std::chrono_literals;

// How often a pool waiting for outcomes looks at its workers.
constexpr auto worker_check_interval = 20ms;
// A worker that lends nothing in place and has not been heard from for this long (it
// says it is alive every second) is taken for lost, and its task is sent again.
constexpr auto lease_timeout = 5s;
// A task sent again may wait this much longer in the queue before it counts as lost.
constexpr auto queued_grace = 60s;
// How long a cancelled worker may take to leave before it is killed.
constexpr auto cancel_grace = 200ms;
// A forked worker's process name (at most 15 characters).
constexpr const char* worker_process_name = "shmbox worker";

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
  std::string pool_name;
  std::vector<std::string> command;  // exec'd workers: the program and its arguments
  pid_t pool_pid;
};

// A forked worker's life, as its exit status.
int run_forked_worker(const WorkerPlan& plan, const TaskFunction& function, const CancelFlag& cancel) {
  auto tasks = Mailbox::open(tasks_name_of(plan.pool_name));
  auto results = Mailbox::open(results_name_of(plan.pool_name));
  Result<void> served = !tasks ? std::unexpected(tasks.error())
                        : !results ? std::unexpected(results.error())
                                   : serve(*tasks, *results, results_name_of(plan.pool_name), function, &cancel);
  if (served) return 0;
  std::fprintf(stderr, "shmbox: pool worker: %s\n", served.error().message().c_str());
  return worker_failed;
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
  CancelFlag cancel;
  std::vector<pid_t> workers;
  bool cancelled = false;

  std::uint64_t next_id = 0;
  // Which tasks of the window [lowest_outstanding, next_id) have their outcome: a ring of
  // the window's size, so that counting an outcome once costs no allocation.
  std::vector<std::uint8_t> finished_ring;
  std::uint64_t lowest_outstanding = 0;
  std::uint64_t outstanding_count = 0;
  std::map<std::uint64_t, TaskOutcome> unclaimed;
  // Tasks taken by workers that lend nothing in place (remote ones), by id.
  struct Lease {
    std::string worker;
    std::vector<std::byte> task;
    Deadline::clock::time_point heard;  // its worker's last word
    std::uint32_t takes = 0;
    bool running = false;  // taken, or queued again; false: waiting for room in the queue
  };
  std::map<std::uint64_t, Lease> leases;
  std::deque<std::uint64_t> finish_order;  // of the unclaimed, as they finished
  // While map() runs: its outcomes go straight to their place.
  std::vector<TaskOutcome>* map_sink = nullptr;
  std::uint64_t map_first = 0;
  std::uint64_t map_missing = 0;
  PoolProgress progress;
  std::vector<std::byte> buffer;
  // A task being submitted waits in task_message while outcomes are collected, and a
  // leased task may be sent again meanwhile: each has its own buffer.
  std::vector<std::byte> task_message;
  std::vector<std::byte> resent_message;
  Deadline::clock::time_point next_worker_check{};

  PoolState(std::string pool_name, TaskFunction task_function, const PoolOptions& pool_options, std::uint32_t count,
            WorkerPlan worker_plan, Mailbox task_mailbox, Mailbox result_mailbox, CancelFlag cancel_flag,
            std::size_t window)
      : name(std::move(pool_name)),
        object("pool '" + name + "'"),
        function(std::move(task_function)),
        options(pool_options),
        worker_count(count),
        plan(std::move(worker_plan)),
        tasks(std::move(task_mailbox)),
        results(std::move(result_mailbox)),
        cancel(std::move(cancel_flag)),
        finished_ring(window, 1) {}

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
      if (!plan.command.empty()) {
        std::vector<char*> argv;
        for (const std::string& argument : plan.command) argv.push_back(const_cast<char*>(argument.c_str()));
        argv.push_back(nullptr);
        ::setenv(pool_variable, plan.pool_name.c_str(), 1);
        ::execvp(argv[0], argv.data());
        std::fprintf(stderr, "shmbox: %s: cannot run '%s': %s\n", object.c_str(), argv[0], std::strerror(errno));
        ::_exit(worker_failed);
      }
      // Told apart from the pool's process by ps, top and pkill -x.
      ::prctl(PR_SET_NAME, worker_process_name);
      // _exit: the pool's handles and buffers in this copy are the pool's, not ours.
      ::_exit(run_forked_worker(plan, function, cancel));
    }
    return pid;
  }

  // Workers that died are replaced; one that could not even start ends the pool's work.
  Result<void> look_after_workers() {
    for (pid_t& worker : workers) {
      int status = 0;
      const pid_t gone = ::waitpid(worker, &status, WNOHANG);
      if (gone == 0 || (gone < 0 && errno == EINTR)) continue;
      // A program that exits by itself (not killed) would only exit again if started again.
      if (gone > 0 && WIFEXITED(status) && (WEXITSTATUS(status) == worker_failed || !plan.command.empty())) {
        return std::unexpected(Error{Errc::system, object,
                                     "a worker failed: it exited with status " + std::to_string(WEXITSTATUS(status)) +
                                         " (its error is on stderr)"});
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
        if (auto looked = look_after_leases(); !looked) return looked;
        next_worker_check = now + worker_check_interval;
      }
      const Deadline wait = waited ? Deadline::none() : earlier(deadline, Deadline{next_worker_check});
      auto received = results.receive(buffer, wait);
      if (!received) {
        if (received.error() == Errc::would_block || received.error() == Errc::timeout) return {};
        return std::unexpected(received.error());
      }
      if (auto taken = take_report(); !taken) return taken;
    }
  }

  Result<void> take_report() {
    ResultHeader header{};
    if (buffer.size() < sizeof header) {
      return std::unexpected(Error{Errc::corrupt, object, "got a report of " + std::to_string(buffer.size()) +
                                                              " bytes, shorter than its header"});
    }
    std::memcpy(&header, buffer.data(), sizeof header);
    if (header.report > Report::attempt_failed || (header.report != Report::alive && header.id >= next_id)) {
      return std::unexpected(Error{Errc::corrupt, object, "got a report on task " + std::to_string(header.id) +
                                                              " that makes no sense"});
    }
    const auto body = std::span<const std::byte>{buffer}.subspan(sizeof header);
    if (header.report == Report::alive) {
      const std::string_view worker{reinterpret_cast<const char*>(body.data()), body.size()};
      for (auto& [id, lease] : leases) {
        if (lease.worker == worker) lease.heard = Deadline::clock::now();
      }
      return {};
    }
    if (!outstanding(header.id)) return {};  // finished already: a duplicate
    // A leased pool's result mailbox holds more than max_result_size (room for a took
    // report): a result over it is a failed attempt, as a worker in place reports it.
    const bool too_large = header.report == Report::succeeded && body.size() > options.max_result_size;
    switch (too_large ? Report::attempt_failed : header.report) {
      case Report::took: return take_lease(header.id, body);
      case Report::attempt_failed: {
        const std::string error = too_large ? result_too_large(body.size(), options.max_result_size)
                                            : std::string{reinterpret_cast<const char*>(body.data()), body.size()};
        auto found = leases.find(header.id);
        if (found == leases.end()) return finish(header.id, false, 1, as_bytes(error));
        if (found->second.takes >= options.attempts) return finish(header.id, false, found->second.takes, as_bytes(error));
        return send_again(found->second, header.id);
      }
      case Report::succeeded:
      case Report::failed: {
        auto found = leases.find(header.id);
        // A leased task's attempts are the pool's count, not the worker's.
        const std::uint32_t attempts = found != leases.end() ? found->second.takes : header.attempts;
        return finish(header.id, header.report == Report::succeeded, attempts, body);
      }
      case Report::alive: break;
    }
    return {};
  }

  // A worker that lends nothing in place took the task: what it said is its lease.
  Result<void> take_lease(std::uint64_t id, std::span<const std::byte> body) {
    std::uint32_t name_length = 0;
    if (body.size() < sizeof name_length) {
      return std::unexpected(Error{Errc::corrupt, object, "got a take of task " + std::to_string(id) + " without its worker"});
    }
    std::memcpy(&name_length, body.data(), sizeof name_length);
    if (name_length > body.size() - sizeof name_length) {
      return std::unexpected(Error{Errc::corrupt, object, "got a take of task " + std::to_string(id) + " that makes no sense"});
    }
    Lease& lease = leases[id];
    lease.worker.assign(reinterpret_cast<const char*>(body.data()) + sizeof name_length, name_length);
    lease.task.assign(body.begin() + static_cast<std::ptrdiff_t>(sizeof name_length + name_length), body.end());
    lease.heard = Deadline::clock::now();
    lease.running = true;
    ++lease.takes;
    return {};
  }

  // Leases whose worker has gone quiet: the task goes out again, or fails after its attempts.
  Result<void> look_after_leases() {
    const auto now = Deadline::clock::now();
    for (auto it = leases.begin(); it != leases.end();) {
      const std::uint64_t id = it->first;
      Lease& lease = (it++)->second;
      if (lease.running && now - lease.heard < lease_timeout) continue;
      if (lease.running && lease.takes >= options.attempts) {
        const std::string error = "its worker was lost (" + lease.worker + " went quiet) during each of its " +
                                  std::to_string(lease.takes) + " attempts";
        if (auto finished = finish(id, false, lease.takes, as_bytes(error)); !finished) return finished;
        continue;
      }
      if (auto sent = send_again(lease, id); !sent) return sent;
    }
    return {};
  }

  // The message for task `id` in `message`: its header (no takes yet), then its bytes.
  void frame_task(std::uint64_t id, std::span<const std::byte> task, std::vector<std::byte>& message) const {
    const TaskHeader header{.id = id, .takes = 0, .attempts = options.attempts};
    message.resize(sizeof header + task.size());
    std::memcpy(message.data(), &header, sizeof header);
    if (!task.empty()) std::memcpy(message.data() + sizeof header, task.data(), task.size());
  }

  // Puts a leased task back in the queue; tried again later while the queue is full.
  Result<void> send_again(Lease& lease, std::uint64_t id) {
    lease.running = false;
    frame_task(id, lease.task, resent_message);
    auto sent = tasks.send(resent_message, Deadline::none());
    if (sent) {
      lease.running = true;  // in the queue: only a new take (a new lease) or a quiet worker changes that
      lease.heard = Deadline::clock::now() + queued_grace;
      return {};
    }
    if (sent.error() == Errc::would_block) return {};
    return std::unexpected(sent.error());
  }

  // A task's outcome, counted once.
  Result<void> finish(std::uint64_t id, bool ok, std::uint32_t attempts, std::span<const std::byte> body) {
    leases.erase(id);
    finished_ring[id % finished_ring.size()] = 1;
    --outstanding_count;
    while (lowest_outstanding < next_id && finished_ring[lowest_outstanding % finished_ring.size()] == 1) {
      ++lowest_outstanding;
    }
    TaskOutcome outcome{.task = id, .ok = ok, .attempts = attempts};
    if (outcome.ok) {
      outcome.result.assign(body.begin(), body.end());
    } else {
      outcome.error.assign(reinterpret_cast<const char*>(body.data()), body.size());
      ++progress.failed;
    }
    ++progress.done;
    if (map_sink != nullptr && id >= map_first && id - map_first < map_sink->size()) {
      (*map_sink)[id - map_first] = std::move(outcome);
      --map_missing;
    } else {
      unclaimed.emplace(id, std::move(outcome));
      finish_order.push_back(id);
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
    frame_task(id, task, task_message);
    for (;;) {
      // The ring of finished tasks holds a window: no task is queued a window past one that
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
    cancel.flag().store(1, std::memory_order_release);
    (void)tasks.close();
    (void)results.close();  // workers of other processes leave when they next send
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
    (void)Mailbox::remove(tasks_name_of(name));
    (void)Mailbox::remove(results_name_of(name));
  }
};

}  // namespace detail

namespace {

std::atomic<std::uint32_t> pools_made{0};

Error pool_error(Errc errc, std::string detail) { return Error{errc, "pool", std::move(detail)}; }

}  // namespace

Result<Pool> Pool::fork(TaskFunction function, const PoolOptions& options) {
  if (!function) return std::unexpected(pool_error(Errc::invalid_argument, "needs a function"));
  return start(std::move(function), {}, options, true);
}

Result<Pool> Pool::exec(std::vector<std::string> command, const PoolOptions& options) {
  if (command.empty() || command[0].empty()) return std::unexpected(pool_error(Errc::invalid_argument, "needs a program to run"));
  return start({}, std::move(command), options, true);
}

Result<Pool> Pool::create(const PoolOptions& options) {
  if (options.name.empty()) {
    return std::unexpected(pool_error(Errc::invalid_argument, "needs a name, for its workers to join it by"));
  }
  return start({}, {}, options, false);
}

Result<Pool> Pool::start(TaskFunction function, std::vector<std::string> command, const PoolOptions& options,
                         bool own_workers) {
  if (options.attempts == 0 || options.attempts > detail::max_attempts) {
    return std::unexpected(pool_error(Errc::invalid_argument, "attempts must be 1 to " +
                                                                   std::to_string(detail::max_attempts) + ", not " +
                                                                   std::to_string(options.attempts)));
  }
  const std::uint32_t workers =
      options.workers != 0 ? options.workers : static_cast<std::uint32_t>(detail::cpus_to_use());
  const std::uint32_t capacity = options.queue_capacity != 0 ? options.queue_capacity : 4 * workers;
  const std::string name = !options.name.empty() ? options.name
                                                 : "pool-" + std::to_string(::getpid()) + "-" +
                                                       std::to_string(pools_made.fetch_add(1));
  const std::string object = "pool '" + name + "'";
  if (own_workers && command.empty() && detail::takes_with_leases(name)) {
    return std::unexpected(Error{Errc::invalid_argument, object,
                                 "cannot fork workers that use NATS (its client does not survive a fork): start "
                                 "them with Pool::exec, or let workers join (serve_pool, shmbox worker)"});
  }
  const std::size_t max_report_size =
      std::max(options.max_result_size,
               detail::takes_with_leases(name) ? options.max_task_size + detail::took_overhead : 0) +
      sizeof(detail::ResultHeader);
  if (options.max_task_size + sizeof(detail::TaskHeader) > std::numeric_limits<std::uint32_t>::max() ||
      max_report_size > std::numeric_limits<std::uint32_t>::max()) {
    return std::unexpected(Error{Errc::too_large, object, "max_task_size and max_result_size must be under 4 GiB"});
  }
  // Room to attach for the workers, their replacements, and workers that join from
  // elsewhere.
  const std::uint32_t attached = workers * 2 + 64;
  auto tasks = Mailbox::create(detail::tasks_name_of(name),
                               {.buffering = Buffering::bounded,
                                .capacity = capacity,
                                .max_message_size = static_cast<std::uint32_t>(options.max_task_size +
                                                                               sizeof(detail::TaskHeader)),
                                .max_attached = attached});
  if (!tasks) return std::unexpected(tasks.error());
  // Room for an outcome of every task in flight, and a duplicate from each worker: a
  // worker never waits for the caller, who may be waiting for room in the task queue.
  const std::size_t window = detail::window_for(capacity + workers);
  auto results = Mailbox::create(detail::results_name_of(name),
                                 {.buffering = Buffering::bounded,
                                  .capacity = static_cast<std::uint32_t>(window + 2 * workers),
                                  .max_message_size = static_cast<std::uint32_t>(max_report_size),
                                  .max_attached = attached});
  if (!results) {
    (void)Mailbox::remove(detail::tasks_name_of(name));
    return std::unexpected(results.error());
  }
  auto cancel = detail::CancelFlag::make(object);
  if (!cancel) {
    (void)Mailbox::remove(detail::tasks_name_of(name));
    (void)Mailbox::remove(detail::results_name_of(name));
    return std::unexpected(cancel.error());
  }
  detail::WorkerPlan plan{.pool_name = name, .command = std::move(command), .pool_pid = ::getpid()};
  auto state = std::make_unique<detail::PoolState>(name, std::move(function), options, workers, std::move(plan),
                                                   std::move(*tasks), std::move(*results), std::move(*cancel), window);
  for (std::uint32_t i = 0; own_workers && i < workers; ++i) {
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

Error Pool::failure(const TaskOutcome& outcome, std::size_t expected_size) const {
  const std::string object = state_ ? state_->object : "pool";
  const std::string task = "task " + std::to_string(outcome.task);
  if (outcome.ok) {
    return Error{Errc::task_failed, object, task + " returned " + std::to_string(outcome.result.size()) +
                                                " bytes, not a value of " + std::to_string(expected_size)};
  }
  return Error{Errc::task_failed, object, task + " " + detail::failed_after(outcome.attempts, outcome.error)};
}

Error chunk_failure(std::string_view segment, const TaskOutcome& outcome) {
  const std::string object = "segment '" + std::string{segment} + "'";
  const std::string chunk = "chunk " + std::to_string(outcome.task);
  if (outcome.ok) {
    return Error{Errc::task_failed, object, chunk + " gave " + std::to_string(outcome.result.size()) +
                                                " bytes, not a value of the type asked for"};
  }
  return Error{Errc::task_failed, object, chunk + " " + detail::failed_after(outcome.attempts, outcome.error)};
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
