// Task graphs: stages of worker processes connected by mailboxes, each input flowing
// through them under its key, with fan-out and joins, exact even when workers die.
//
//   shmbox::Graph graph;
//   auto parse = graph.source("parse", parse_chunk, {.workers = 2}).value();  // takes the inputs
//   auto words = graph.then(parse, "words", count_words).value();            // each parse result
//   auto lines = graph.then(parse, "lines", count_lines).value();            // fan-out: both get it
//   graph.join({words, lines}, "summary", summarise).value();                 // both, for one key
//   std::vector<shmbox::GraphOutcome> out = graph.run(inputs).value();        // per input, in order
//
// Each stage is a pool (shmbox/pool.hpp) of forks of the calling process; the calling
// process routes every result to the stages after it and holds a join's parts until the
// last one of a key arrives. Results come out of the stages that nothing follows.
//
// Guarantees (docs/design.md, "Task graphs"):
//   - Exact: a worker killed at any instruction loses nothing, and each stage's result for a
//     key is routed once, however often its task was run.
//   - A task that fails at every attempt fails its input's key: the stages after it are not
//     run for that key, the outcome names the stage and the error, and the other keys
//     complete.
//   - Back-pressure: at most `max_in_flight` inputs are in the graph at once, and every
//     stage's queue is bounded, so a fast stage cannot flood a slow one nor the memory of
//     the calling process.
//
// Thread contract: a Graph is used by one thread at a time; run() forks the workers and
// stops them (and removes their mailboxes) before it returns.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <span>
#include <stop_token>
#include <string>
#include <vector>

#include "shmbox/error.hpp"
#include "shmbox/pool.hpp"

namespace shmbox {

// A join's function: the results of the stages it joins, in the order they were named.
using JoinFunction = std::function<std::vector<std::byte>(std::span<const std::span<const std::byte>> parts)>;

struct StageOptions {
  std::uint32_t workers = 1;  // 0: one per CPU this process may run on
  std::uint32_t attempts = 3;
  std::size_t max_result_size = 64 * 1024;
};

struct GraphProgress {
  std::uint64_t done = 0;    // inputs out of the graph (failed ones included)
  std::uint64_t failed = 0;  // of which failed
  std::uint64_t total = 0;
  std::uint64_t workers_replaced = 0;
};

struct GraphOptions {
  std::size_t max_input_size = 64 * 1024;
  // Inputs in the graph at once; 0: four per worker of all the stages.
  std::uint32_t max_in_flight = 0;
  // Called in the calling process each time an input comes out of the graph.
  std::function<void(const GraphProgress&)> on_progress;
  // Once a stop is requested (from on_progress or another thread), the run ends within
  // about 20 ms: every stage's workers are stopped and waited for and its mailboxes are
  // removed, and run() fails with Errc::closed ("graph: was cancelled after D of N inputs").
  std::stop_token stop;
};

// What became of one input.
struct GraphOutcome {
  std::uint64_t key = 0;  // the input's index
  bool ok = false;
  // ok: one result per final stage (one that nothing follows), in the order they were added.
  std::vector<std::vector<std::byte>> results;
  std::string stage;  // not ok: the stage whose task failed
  std::string error;  // not ok: why, with its attempts
};

class Graph {
 public:
  using Stage = std::uint32_t;

  // A stage that takes each input of the job.
  [[nodiscard]] Result<Stage> source(std::string name, TaskFunction function, const StageOptions& options = {});
  // A stage that takes each result of `after`.
  [[nodiscard]] Result<Stage> then(Stage after, std::string name, TaskFunction function,
                                   const StageOptions& options = {});
  // A stage that takes, for each key, the results of every stage in `after` at once.
  [[nodiscard]] Result<Stage> join(std::initializer_list<Stage> after, std::string name, JoinFunction function,
                                   const StageOptions& options = {});
  [[nodiscard]] Result<Stage> join(std::span<const Stage> after, std::string name, JoinFunction function,
                                   const StageOptions& options = {});

  // Every input through the graph; the outcomes in input order. Fails as a whole only when
  // the graph cannot run (no stage, a pool that cannot start or whose worker cannot reach
  // its mailboxes); a task's failure is its key's outcome.
  [[nodiscard]] Result<std::vector<GraphOutcome>> run(std::span<const std::vector<std::byte>> inputs,
                                                      const GraphOptions& options = {}) const;
  // The same over `count` inputs that `input_at(i)` gives (each used only during the call).
  [[nodiscard]] Result<std::vector<GraphOutcome>> run(
      std::size_t count, const std::function<std::span<const std::byte>(std::size_t)>& input_at,
      const GraphOptions& options = {}) const;

  // Errc::task_failed: "graph stage 'NAME': input 3 failed: <its error>".
  static Error failure(const GraphOutcome& outcome);

  struct StageDefinition {
    std::string name;
    std::vector<Stage> after;  // none: takes the inputs; one: a chain; more: a join
    TaskFunction function;     // chains and sources
    JoinFunction join;         // joins
    StageOptions options;
  };
  const std::vector<StageDefinition>& stages() const noexcept { return stages_; }

 private:
  Result<Stage> add(StageDefinition definition);
  std::vector<StageDefinition> stages_;
};

}  // namespace shmbox
