// Pools: a function run over many inputs by worker processes, exact even when workers die.
//
//   auto pool = shmbox::Pool::fork([](std::span<const std::byte> task) {
//     return std::vector<std::byte>(task.rbegin(), task.rend());   // runs in a worker process
//   }, {.workers = 4}).value();
//   std::vector<shmbox::TaskOutcome> outcomes = pool.map(inputs).value();   // input order
//   auto id = pool.submit(shmbox::as_bytes("one more")).value();
//   shmbox::TaskOutcome one = pool.result(id).value();      // waits for that task
//
//   // Split data: the bytes live once, in a segment; each worker maps it read-only.
//   auto words = shmbox::map_chunks("corpus", 1 << 20, count_words_in_chunk, std::uint64_t{0},
//                                   [](std::uint64_t sum, std::uint64_t part) { return sum + part; });
//
// Workers take tasks from the pool's task mailbox (each task to exactly one worker) and
// send what the function returns back to the pool. They are forks of the calling process
// (Pool::fork), or a program it starts (Pool::exec), or processes started elsewhere that
// join a named pool (serve_pool, or `shmbox worker NAME -- COMMAND`):
//
//   auto pool = shmbox::Pool::create({.name = "thumbnails"}).value();   // no workers of its own
//   // in any process of this machine, as often as wanted:
//   shmbox::serve_pool("thumbnails", make_thumbnail);                    // returns when the pool ends
//
// Guarantees (docs/design.md, "Pools"):
//   - A worker killed at any instruction loses nothing: the task it held goes to another
//     worker, the pool starts a replacement, and each task's outcome is counted once.
//   - A task that fails every time (throws, or kills its worker) is reported with its id
//     and error after `attempts` tries, never retried for ever; the rest of the job
//     completes.
//   - The pool's mailboxes and its segment belong to the calling process: they go with the
//     pool, and with the process however it ends; workers die with it.
//
// Thread contract: a Pool is used by one thread at a time. The function runs in the
// workers, never in the calling process; it may throw (the attempt fails with what()).
#pragma once

#include <sys/types.h>

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <optional>
#include <string_view>
#include <span>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "shmbox/error.hpp"
#include "shmbox/mailbox_types.hpp"
#include "shmbox/wait.hpp"

namespace shmbox {

class Selector;

namespace detail {
struct PoolState;
}

using TaskFunction = std::function<std::vector<std::byte>(std::span<const std::byte> task)>;

// How far a job has come, given to PoolOptions::on_progress after each task's outcome.
struct PoolProgress {
  std::uint64_t done = 0;       // outcomes so far (failed ones included)
  std::uint64_t failed = 0;     // of which failed after their attempts
  std::uint64_t submitted = 0;  // tasks submitted so far
  std::uint64_t workers_replaced = 0;  // workers that died and were started again
};

struct PoolOptions {
  // Names the pool's mailboxes (NAME-tasks, NAME-results), for workers started elsewhere
  // to join it by; empty: a name of its own ("pool-PID-N").
  std::string name;
  // Worker processes (for a pool made by create(): how many are expected, which sizes its
  // queues); 0: one per CPU this process may run on.
  std::uint32_t workers = 0;
  // Tries per task, 1 to 100: a task that throws or kills its worker this often fails.
  std::uint32_t attempts = 3;
  std::size_t max_task_size = 64 * 1024;
  std::size_t max_result_size = 64 * 1024;
  // Tasks queued for the workers at once (submit waits beyond it); 0: 4 per worker.
  std::uint32_t queue_capacity = 0;
  // Called in the calling process after each outcome.
  std::function<void(const PoolProgress&)> on_progress;
};

// What became of one task.
struct TaskOutcome {
  std::uint64_t task = 0;  // its id: 0, 1, 2, ... in submit order
  bool ok = false;
  std::vector<std::byte> result;  // ok: what the function returned
  std::string error;              // not ok: why its last attempt failed
  std::uint32_t attempts = 0;     // tries it took
};

class Pool {
 public:
  // Starts the workers, forks of this process running `function`.
  [[nodiscard]] static Result<Pool> fork(TaskFunction function, const PoolOptions& options = {});
  // Starts the workers by running `command` (the program, then its arguments, found on
  // PATH), with the pool's name in the environment: the program serves it with
  // serve_pool(*pool_to_serve(), ...) or is `shmbox worker -- COMMAND`. A worker that
  // exits by itself (rather than being killed) fails the pool: it would only exit again.
  [[nodiscard]] static Result<Pool> exec(std::vector<std::string> command, const PoolOptions& options = {});
  // A named pool with no workers of its own: processes of this machine join it with
  // serve_pool() or `shmbox worker NAME -- COMMAND`, and a task waits until one does.
  [[nodiscard]] static Result<Pool> create(const PoolOptions& options);
  // The same for values: tasks are `In`s and results `Out`s, both trivially copyable.
  template <class In, class Out>
    requires std::is_trivially_copyable_v<In> && std::is_trivially_copyable_v<Out> &&
             std::is_default_constructible_v<In>
  [[nodiscard]] static Result<Pool> fork_values(std::function<Out(const In&)> function, const PoolOptions& options = {}) {
    return fork(
        [function = std::move(function)](std::span<const std::byte> task) {
          if (task.size() != sizeof(In)) {
            throw std::invalid_argument("a task of " + std::to_string(task.size()) + " bytes is not a value of " +
                                        std::to_string(sizeof(In)));
          }
          In in;
          std::memcpy(&in, task.data(), sizeof in);
          const Out out = function(in);
          const auto bytes = std::as_bytes(std::span{&out, 1});
          return std::vector<std::byte>(bytes.begin(), bytes.end());
        },
        options);
  }

  // Queues a task and returns its id. While the queue is full it collects outcomes and
  // waits, until `deadline` (Errc::timeout; Errc::would_block for no_wait).
  // Errc::too_large over max_task_size.
  [[nodiscard]] Result<std::uint64_t> submit(std::span<const std::byte> task, Deadline deadline = forever);
  // The outcome of task `id`, once it has one; handed out once (Errc::not_found after,
  // and for an id never submitted).
  [[nodiscard]] Result<TaskOutcome> result(std::uint64_t id, Deadline deadline = forever);
  // The next outcome in the order they finish, not yet handed out; Errc::not_found when
  // no task is waiting for one.
  [[nodiscard]] Result<TaskOutcome> next_finished(Deadline deadline = forever);
  // Every input through the function: the outcomes in input order.
  [[nodiscard]] Result<std::vector<TaskOutcome>> map(std::span<const std::vector<std::byte>> inputs);
  // The same over `count` tasks that `task_at(i)` gives (each used only while it is sent).
  [[nodiscard]] Result<std::vector<TaskOutcome>> map(
      std::size_t count, const std::function<std::span<const std::byte>(std::size_t)>& task_at);
  // Values (a pool made by fork_values<In, Out>): the results in input order, or
  // Errc::task_failed naming the first task that failed and why.
  template <class Out, class In>
    requires std::is_trivially_copyable_v<In> && std::is_trivially_copyable_v<Out> &&
             std::is_default_constructible_v<Out>
  [[nodiscard]] Result<std::vector<Out>> map_values(std::span<const In> inputs) {
    auto outcomes = map(inputs.size(), [&](std::size_t i) { return std::as_bytes(inputs.subspan(i, 1)); });
    if (!outcomes) return std::unexpected(outcomes.error());
    std::vector<Out> values(outcomes->size());
    for (std::size_t i = 0; i < values.size(); ++i) {
      const TaskOutcome& outcome = (*outcomes)[i];
      if (!outcome.ok || outcome.result.size() != sizeof(Out)) return std::unexpected(failure(outcome, sizeof(Out)));
      std::memcpy(&values[i], outcome.result.data(), sizeof(Out));
    }
    return values;
  }
  // Errc::task_failed: "pool 'NAME': task 3 failed after 3 attempts: <its error>" (or, with
  // `expected_size`, a result of the wrong size).
  Error failure(const TaskOutcome& outcome, std::size_t expected_size = 0) const;

  // Stops now: queued tasks are dropped, workers are stopped and waited for, and the
  // pool's mailboxes and segment are removed. Later calls fail with Errc::closed. The
  // destructor does the same.
  void cancel() noexcept;

  // Watches the pool's outcomes with `selector` (ready when an outcome has come in), so that
  // one thread can wait on several pools; follow a wait with next_finished(no_wait). Call
  // next_finished at least every few tens of milliseconds while waiting: that is when the
  // pool looks after its workers. The selector's index for it, or the selector's error.
  [[nodiscard]] Result<std::size_t> add_to(Selector& selector);

  PoolProgress progress() const noexcept;
  // The workers' pids now (a replaced worker's successor in its place).
  std::vector<pid_t> worker_pids() const;
  // The name the pool's mailboxes and segment start with ("pool-PID-N").
  const std::string& name() const noexcept;

  Pool(Pool&& other) noexcept;
  Pool& operator=(Pool&& other) noexcept;
  Pool(const Pool&) = delete;
  Pool& operator=(const Pool&) = delete;
  ~Pool();

 private:
  explicit Pool(std::unique_ptr<detail::PoolState> state) noexcept;
  static Result<Pool> start(TaskFunction function, std::vector<std::string> command, const PoolOptions& options,
                            bool own_workers);
  std::unique_ptr<detail::PoolState> state_;
};

// Serves the pool `name` from this process: takes its tasks one at a time and runs
// `function` on each, until the pool ends (then it returns). A worker killed while it holds
// a task loses nothing: the task goes to another worker, its attempt counted.
// Errc::not_found when there is no such pool.
[[nodiscard]] Result<void> serve_pool(std::string_view name, const TaskFunction& function);
// The name of the pool that started this process with Pool::exec, if one did.
std::optional<std::string> pool_to_serve();

// Split data. A chunk of a segment's bytes: `data` is all of them (mapped read-only, never
// copied), the chunk is [offset, offset + length); a function that must not cut a record in
// two (a word, a line) reads past the end to finish the last one it starts, and skips one
// that began before `offset`.
struct Chunk {
  std::span<const std::byte> data;
  std::size_t offset = 0;
  std::size_t length = 0;
};
using ChunkFunction = std::function<std::vector<std::byte>(const Chunk& chunk)>;

// Runs `function` over the segment `segment` in chunks of `chunk_size` bytes on a pool of
// its own (each worker maps the segment once); the outcomes in chunk order.
[[nodiscard]] Result<std::vector<TaskOutcome>> map_chunks(std::string_view segment, std::size_t chunk_size,
                                                          ChunkFunction function, const PoolOptions& options = {});

// Errc::task_failed: "segment 'NAME': chunk 3 failed after 3 attempts: <its error>".
Error chunk_failure(std::string_view segment, const TaskOutcome& outcome);

// The same, each chunk's result a trivially copyable T folded in chunk order into
// `initial` by `reduce`; Errc::task_failed names the first chunk that failed.
template <class T, class Reduce>
  requires std::is_trivially_copyable_v<T> && std::is_default_constructible_v<T> &&
           std::invocable<Reduce, T, const T&>
[[nodiscard]] Result<T> map_chunks(std::string_view segment, std::size_t chunk_size,
                                   std::function<T(const Chunk& chunk)> function, T initial, Reduce reduce,
                                   const PoolOptions& options = {}) {
  auto outcomes = map_chunks(
      segment, chunk_size,
      [function = std::move(function)](const Chunk& chunk) {
        const T part = function(chunk);
        const auto bytes = std::as_bytes(std::span{&part, 1});
        return std::vector<std::byte>(bytes.begin(), bytes.end());
      },
      options);
  if (!outcomes) return std::unexpected(outcomes.error());
  T total = std::move(initial);
  for (const TaskOutcome& outcome : *outcomes) {
    if (!outcome.ok || outcome.result.size() != sizeof(T)) return std::unexpected(chunk_failure(segment, outcome));
    T part;
    std::memcpy(&part, outcome.result.data(), sizeof part);
    total = reduce(std::move(total), part);
  }
  return total;
}

}  // namespace shmbox
