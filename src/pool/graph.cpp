// Task graphs: a pool per stage, and the calling process routing each result under its key.
// docs/design.md ("Task graphs") has the protocol and what a kill at each point leaves.
#include "shmbox/graph.hpp"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <deque>
#include <optional>
#include <stdexcept>
#include <unordered_map>
#include <utility>

#include "shmbox/selector.hpp"
#include "pool/protocol.hpp"

namespace shmbox {
namespace {

using namespace std::chrono_literals;

// How long the router sleeps when nothing moves: the pools look after their workers when
// asked for outcomes, so it asks at least this often.
constexpr auto idle_wait = 20ms;
// With tasks waiting for room in a stage's queue, room comes when a worker takes a task,
// which no outcome announces: the router looks again this soon.
constexpr auto full_queue_wait = 2ms;
constexpr std::size_t max_name_length = 64;

std::string stage_object(std::string_view name) { return "graph stage '" + std::string{name} + "'"; }

// A join's task: how many parts, each one's size, then their bytes.
std::vector<std::byte> frame_parts(std::vector<std::optional<std::vector<std::byte>>>& parts) {
  std::size_t total = sizeof(std::uint64_t) * (1 + parts.size());
  for (const auto& part : parts) total += part->size();
  std::vector<std::byte> task(total);
  std::byte* out = task.data();
  const auto put_word = [&](std::uint64_t word) {
    std::memcpy(out, &word, sizeof word);
    out += sizeof word;
  };
  put_word(parts.size());
  for (const auto& part : parts) put_word(part->size());
  for (auto& part : parts) {
    if (!part->empty()) std::memcpy(out, part->data(), part->size());
    out += part->size();
    part.reset();
  }
  return task;
}

std::vector<std::span<const std::byte>> unframe_parts(std::span<const std::byte> task) {
  const auto fail = [] { throw std::invalid_argument("a join's task that is not its parts"); };
  std::uint64_t count = 0;
  if (task.size() < sizeof count) fail();
  std::memcpy(&count, task.data(), sizeof count);
  if (count == 0 || count > (task.size() - sizeof count) / sizeof(std::uint64_t)) fail();
  std::size_t offset = sizeof(std::uint64_t) * (1 + count);
  std::vector<std::span<const std::byte>> parts;
  parts.reserve(count);
  for (std::uint64_t i = 0; i < count; ++i) {
    std::uint64_t size = 0;
    std::memcpy(&size, task.data() + sizeof(std::uint64_t) * (1 + i), sizeof size);
    if (size > task.size() - offset) fail();
    parts.push_back(task.subspan(offset, size));
    offset += size;
  }
  if (offset != task.size()) fail();
  return parts;
}

// One run of a graph: the stages' pools, and each key in flight.
class GraphRun {
 public:
  GraphRun(const std::vector<Graph::StageDefinition>& stages, const GraphOptions& options, std::size_t count,
           const std::function<std::span<const std::byte>(std::size_t)>& input_at)
      : definitions_(stages), options_(options), count_(count), input_at_(input_at) {}

  Result<std::vector<GraphOutcome>> run() {
    if (auto started = start(); !started) return std::unexpected(started.error());
    outcomes_.resize(count_);
    progress_.total = count_;
    Selector selector;
    for (StageRun& stage : stages_) {
      if (auto added = stage.pool.add_to(selector); !added) return std::unexpected(added.error());
    }
    while (progress_.done < count_) {
      // The stages' pools stop their workers and remove their mailboxes as the run ends.
      if (options_.stop.stop_requested()) {
        return std::unexpected(Error{Errc::closed, "graph", "was cancelled after " + std::to_string(progress_.done) +
                                                                " of " + std::to_string(count_) + " inputs"});
      }
      moved_ = false;
      if (auto admitted = admit(); !admitted) return std::unexpected(admitted.error());
      if (auto flushed = flush(); !flushed) return std::unexpected(flushed.error());
      if (auto drained = drain(); !drained) return std::unexpected(drained.error());
      if (moved_) continue;
      const bool queues_full = std::any_of(stages_.begin(), stages_.end(),
                                           [](const StageRun& stage) { return !stage.waiting.empty(); });
      (void)selector.wait(queues_full ? full_queue_wait : idle_wait);  // a timeout is a cue to look again
    }
    return std::move(outcomes_);
  }

 private:
  struct StageRun {
    const Graph::StageDefinition* definition;
    Pool pool;
    std::vector<Graph::Stage> next;   // the stages that take its results
    std::optional<std::size_t> final_index;  // its place in an outcome's results
    std::optional<std::size_t> join_index;   // a join: its place in a key's parts
    std::vector<std::uint64_t> key_of_task;  // task ids are 0, 1, 2, ... per pool
    std::deque<std::pair<std::uint64_t, std::vector<std::byte>>> waiting;  // for room in its queue
  };
  struct KeyState {
    std::uint32_t tasks = 0;  // queued or running in some stage
    bool failed = false;
    std::size_t finals_missing = 0;
    std::vector<std::vector<std::optional<std::vector<std::byte>>>> join_parts;  // per join
  };

  Result<void> start() {
    std::vector<std::size_t> max_result(definitions_.size());
    std::size_t joins = 0;
    std::size_t finals = 0;
    stages_.reserve(definitions_.size());
    for (std::size_t i = 0; i < definitions_.size(); ++i) {
      const Graph::StageDefinition& definition = definitions_[i];
      std::size_t max_task = options_.max_input_size;
      if (definition.after.size() == 1) max_task = max_result[definition.after[0]];
      if (definition.after.size() > 1) {
        max_task = sizeof(std::uint64_t) * (1 + definition.after.size());
        for (const Graph::Stage after : definition.after) max_task += max_result[after];
      }
      max_result[i] = definition.options.max_result_size;
      TaskFunction function = definition.function;
      if (definition.after.size() > 1) {
        function = [join = definition.join](std::span<const std::byte> task) { return join(unframe_parts(task)); };
      }
      auto pool = Pool::fork(std::move(function), {.workers = definition.options.workers,
                                                   .attempts = definition.options.attempts,
                                                   .max_task_size = max_task,
                                                   .max_result_size = definition.options.max_result_size});
      if (!pool) {
        return std::unexpected(Error{pool.error().errc(), stage_object(definition.name),
                                     "cannot start its workers: " + pool.error().detail(), pool.error().system_errno()});
      }
      workers_ += pool->worker_pids().size();
      stages_.push_back(StageRun{.definition = &definition, .pool = std::move(*pool)});
      if (definition.after.size() > 1) stages_.back().join_index = joins++;
      for (const Graph::Stage after : definition.after) stages_[after].next.push_back(static_cast<Graph::Stage>(i));
    }
    for (StageRun& stage : stages_) {
      if (stage.next.empty()) stage.final_index = finals++;
    }
    finals_ = finals;
    joins_ = joins;
    max_in_flight_ = options_.max_in_flight != 0 ? options_.max_in_flight : 4 * workers_;
    return {};
  }

  // Lets inputs in while fewer than max_in_flight are in the graph.
  Result<void> admit() {
    while (keys_.size() < max_in_flight_ && next_input_ < count_) {
      const std::uint64_t key = next_input_++;
      KeyState& state = keys_[key];
      state.finals_missing = finals_;
      state.join_parts.resize(joins_);
      outcomes_[key].key = key;
      const std::span<const std::byte> input = input_at_(key);
      for (Graph::Stage stage = 0; stage < stages_.size(); ++stage) {
        if (!stages_[stage].definition->after.empty()) continue;
        if (auto queued = enqueue(stage, key, input); !queued) return queued;
      }
      moved_ = true;
    }
    return {};
  }

  // Gives a stage a task for `key`: to its pool now, or in line for room in its queue.
  Result<void> enqueue(Graph::Stage index, std::uint64_t key, std::span<const std::byte> task) {
    StageRun& stage = stages_[index];
    ++keys_[key].tasks;
    if (stage.waiting.empty()) {
      auto submitted = stage.pool.submit(task, Deadline::none());
      if (submitted) {
        stage.key_of_task.push_back(key);
        return {};
      }
      if (submitted.error() != Errc::would_block) return std::unexpected(submitted.error());
    }
    stage.waiting.emplace_back(key, std::vector<std::byte>(task.begin(), task.end()));
    return {};
  }

  Result<void> flush() {
    for (StageRun& stage : stages_) {
      while (!stage.waiting.empty()) {
        auto submitted = stage.pool.submit(stage.waiting.front().second, Deadline::none());
        if (!submitted) {
          if (submitted.error() == Errc::would_block) break;
          return std::unexpected(submitted.error());
        }
        stage.key_of_task.push_back(stage.waiting.front().first);
        stage.waiting.pop_front();
        moved_ = true;
      }
    }
    return {};
  }

  Result<void> drain() {
    for (Graph::Stage index = 0; index < stages_.size(); ++index) {
      for (;;) {
        auto outcome = stages_[index].pool.next_finished(Deadline::none());
        if (!outcome) {
          if (outcome.error() == Errc::would_block || outcome.error() == Errc::not_found) break;
          return std::unexpected(outcome.error());
        }
        moved_ = true;
        if (auto routed = route(index, *outcome); !routed) return routed;
      }
    }
    return {};
  }

  // Each stage's outcome for a key arrives here once (the pool counts it once): it goes to
  // every stage after, to a join's parts, or into the key's results.
  Result<void> route(Graph::Stage index, TaskOutcome& outcome) {
    StageRun& stage = stages_[index];
    const std::uint64_t key = stage.key_of_task[outcome.task];
    KeyState& state = keys_[key];
    --state.tasks;
    if (!outcome.ok) {
      if (!state.failed) {
        state.failed = true;
        outcomes_[key].stage = stage.definition->name;
        outcomes_[key].error = detail::failed_after(outcome.attempts, outcome.error);
      }
    } else if (!state.failed) {
      for (const Graph::Stage next : stage.next) {
        StageRun& after = stages_[next];
        if (!after.join_index) {
          if (auto queued = enqueue(next, key, outcome.result); !queued) return queued;
          continue;
        }
        auto& parts = state.join_parts[*after.join_index];
        const auto& joined = after.definition->after;
        parts.resize(joined.size());
        parts[static_cast<std::size_t>(std::find(joined.begin(), joined.end(), index) - joined.begin())] =
            outcome.result;
        if (std::all_of(parts.begin(), parts.end(), [](const auto& part) { return part.has_value(); })) {
          const std::vector<std::byte> task = frame_parts(parts);
          if (auto queued = enqueue(next, key, task); !queued) return queued;
        }
      }
      if (stage.final_index) {
        outcomes_[key].results.resize(finals_);
        outcomes_[key].results[*stage.final_index] = std::move(outcome.result);
        --state.finals_missing;
      }
    }
    if (state.tasks == 0) finish(key, state);
    return {};
  }

  // Nothing of the key is left in any stage: its outcome is final.
  void finish(std::uint64_t key, const KeyState& state) {
    GraphOutcome& outcome = outcomes_[key];
    outcome.ok = !state.failed && state.finals_missing == 0;
    if (!outcome.ok) {
      if (outcome.error.empty()) outcome.error = "left the graph without a result from each final stage";
      outcome.results.clear();
      ++progress_.failed;
    }
    ++progress_.done;
    keys_.erase(key);
    if (options_.on_progress) {
      progress_.workers_replaced = 0;
      for (const StageRun& stage : stages_) progress_.workers_replaced += stage.pool.progress().workers_replaced;
      options_.on_progress(progress_);
    }
  }

  const std::vector<Graph::StageDefinition>& definitions_;
  const GraphOptions& options_;
  std::size_t count_;
  const std::function<std::span<const std::byte>(std::size_t)>& input_at_;
  std::vector<StageRun> stages_;
  std::size_t workers_ = 0;
  std::size_t finals_ = 0;
  std::size_t joins_ = 0;
  std::size_t max_in_flight_ = 0;
  std::uint64_t next_input_ = 0;
  std::unordered_map<std::uint64_t, KeyState> keys_;
  std::vector<GraphOutcome> outcomes_;
  GraphProgress progress_;
  bool moved_ = false;
};

}  // namespace

Result<Graph::Stage> Graph::add(StageDefinition definition) {
  const std::string object = stage_object(definition.name);
  const auto invalid = [&](std::string cause) {
    return std::unexpected(Error{Errc::invalid_argument, object, std::move(cause)});
  };
  if (definition.name.empty() || definition.name.size() > max_name_length) {
    return invalid("a stage's name must be 1 to " + std::to_string(max_name_length) + " characters");
  }
  if (std::any_of(stages_.begin(), stages_.end(), [&](const auto& stage) { return stage.name == definition.name; })) {
    return invalid("the graph has a stage of that name already");
  }
  if (definition.after.size() > 1 ? !definition.join : !definition.function) return invalid("needs a function");
  for (std::size_t i = 0; i < definition.after.size(); ++i) {
    const Stage after = definition.after[i];
    if (after >= stages_.size()) return invalid("comes after stage " + std::to_string(after) + ", which the graph has not");
    if (std::find(definition.after.begin(), definition.after.begin() + static_cast<std::ptrdiff_t>(i), after) !=
        definition.after.begin() + static_cast<std::ptrdiff_t>(i)) {
      return invalid("joins stage '" + stages_[after].name + "' twice");
    }
  }
  if (definition.options.attempts == 0 || definition.options.attempts > 100) {
    return invalid("attempts must be 1 to 100, not " + std::to_string(definition.options.attempts));
  }
  stages_.push_back(std::move(definition));
  return static_cast<Stage>(stages_.size() - 1);
}

Result<Graph::Stage> Graph::source(std::string name, TaskFunction function, const StageOptions& options) {
  return add({.name = std::move(name), .function = std::move(function), .options = options});
}

Result<Graph::Stage> Graph::then(Stage after, std::string name, TaskFunction function, const StageOptions& options) {
  return add({.name = std::move(name), .after = {after}, .function = std::move(function), .options = options});
}

Result<Graph::Stage> Graph::join(std::initializer_list<Stage> after, std::string name, JoinFunction function,
                                 const StageOptions& options) {
  return join(std::span<const Stage>{after.begin(), after.size()}, std::move(name), std::move(function), options);
}

Result<Graph::Stage> Graph::join(std::span<const Stage> after, std::string name, JoinFunction function,
                                 const StageOptions& options) {
  if (after.size() < 2) {
    return std::unexpected(Error{Errc::invalid_argument, stage_object(name), "a join takes two stages or more"});
  }
  return add({.name = std::move(name),
              .after = {after.begin(), after.end()},
              .join = std::move(function),
              .options = options});
}

Result<std::vector<GraphOutcome>> Graph::run(std::span<const std::vector<std::byte>> inputs,
                                             const GraphOptions& options) const {
  return run(inputs.size(), [&](std::size_t i) { return std::span<const std::byte>{inputs[i]}; }, options);
}

Result<std::vector<GraphOutcome>> Graph::run(std::size_t count,
                                             const std::function<std::span<const std::byte>(std::size_t)>& input_at,
                                             const GraphOptions& options) const {
  if (stages_.empty()) return std::unexpected(Error{Errc::invalid_argument, "graph", "has no stage"});
  if (count == 0) return std::vector<GraphOutcome>{};
  return GraphRun{stages_, options, count, input_at}.run();
}

Error Graph::failure(const GraphOutcome& outcome) {
  return Error{Errc::task_failed, stage_object(outcome.stage), "input " + std::to_string(outcome.key) + " " + outcome.error};
}

}  // namespace shmbox
