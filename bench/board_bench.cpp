// Board benchmark: shmbox::Board's get and put against what users would write instead to
// share one value between processes: a robust pthread mutex around a buffer (lock, memcpy,
// unlock; the baseline), and a bare seqlock (one buffer and a sequence number: the floor,
// with no robustness, no versions, no views). At 64 B, 1 KiB and 16 KiB:
//   - get and put alone, one process on CPU 0;
//   - get on CPU 0 while another process on CPU 1 puts every 10 us, and that process's puts;
//   - reads per second on CPU 0 while the process on CPU 1 puts flat out.
//
//   board_bench [--quick] [--repeat N] [--plot FILE.svg]
//
// Every figure is repeated; the report gives the median of the repetitions (min-max). Each
// repetition measures both baselines right before the board, so that a ratio compares
// figures taken in the same state of a shared, noisy machine; the reported ratio is the
// median of the per-repetition ratios. --plot draws the medians with gnuplot.
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <fmt/core.h>
#include <fstream>
#include <functional>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "bench_support.hpp"
#include "shmbox/board.hpp"

namespace {

using namespace bench;
using namespace std::chrono_literals;

constexpr std::size_t max_value_size = 16 * 1024;
constexpr std::array<std::size_t, 3> value_sizes{64, 1024, max_value_size};
// Gets and puts alone are timed in batches: a clock read costs about as much as a 64 B get.
constexpr std::size_t batch = 64;
// The paced writer: often enough to keep readers meeting writes, seldom enough that a bare
// seqlock's reader of 16 KiB is not starved (a flat-out writer starves it: see the report).
constexpr auto write_interval = 10us;
// Longer than any measurement takes, shorter than the CI test's timeout.
constexpr auto stuck_after = 60s;
// The most puts a paced writer times in one run.
constexpr std::size_t max_timed_puts = std::size_t{1} << 17;

struct Config {
  int repeat = 5;
  Clock::duration run = 200ms;  // each measurement
  std::string plot_file;
};

std::string board_name;  // this run's board, removed on every way out

void remove_objects() {
  if (!board_name.empty()) (void)shmbox::Board::remove(board_name);
}

// Callable from any thread of the parent (the watchdog's among them); never from a child,
// which leaves the board to the parent.
[[noreturn]] void fail(const std::string& message) { fail_run("board_bench", message, remove_objects); }

// What both processes of a measurement use, in an anonymous MAP_SHARED mapping made before
// any fork: the baselines' values and the start handshake. The writer's put timings follow
// the struct in the same mapping.
struct Shared {
  // The pthread baseline's value, guarded by its mutex.
  pthread_mutex_t mutex;
  std::size_t guarded_length;
  alignas(64) std::byte guarded[max_value_size];
  // The seqlock's value: odd sequence while the writer is in it. The length is atomic
  // because readers load it while the writer may be storing it.
  alignas(64) std::atomic<std::uint64_t> sequence;
  std::atomic<std::size_t> sequenced_length;
  alignas(64) std::byte sequenced[max_value_size];

  alignas(64) std::atomic<bool> child_ready;
  std::atomic<bool> go;
  std::atomic<bool> stop;
  std::atomic<std::int64_t> child_start_ns;
  std::atomic<std::int64_t> child_end_ns;
  std::atomic<std::uint64_t> puts;
  char child_error[256];

  std::span<double> timed_puts() { return {reinterpret_cast<double*>(this + 1), max_timed_puts}; }

  void reset() {
    child_ready = false;
    go = false;
    stop = false;
    child_start_ns = 0;
    child_end_ns = 0;
    puts = 0;
  }
};

Shared& map_shared_state() {
  auto* shared = new (map_shared(sizeof(Shared) + max_timed_puts * sizeof(double))) Shared{};
  init_robust_mutex(shared->mutex);
  return *shared;
}

// The value a writer puts: the same count in its first and last word, so that a torn read
// (parts of two puts) shows as two counts, and fails the run.
class Value {
 public:
  explicit Value(std::size_t size) : bytes_(size) {}
  std::span<const std::byte> next() {
    ++count_;
    std::memcpy(bytes_.data(), &count_, sizeof count_);
    std::memcpy(bytes_.data() + bytes_.size() - sizeof count_, &count_, sizeof count_);
    return bytes_;
  }
  static void check(std::span<const std::byte> read, std::size_t size) {
    std::uint64_t first = 0, last = 0;
    if (read.size() == size) {
      std::memcpy(&first, read.data(), sizeof first);
      std::memcpy(&last, read.data() + size - sizeof last, sizeof last);
    }
    if (read.size() != size || first != last) {
      throw std::runtime_error(fmt::format("torn read: {} bytes, counts {} and {}", read.size(), first, last));
    }
  }

 private:
  std::vector<std::byte> bytes_;
  std::uint64_t count_ = 0;
};

// ---- the shared values -------------------------------------------------------------------
//
// A cell is one process's handle on a shared value, made in the process that uses it.
// get(bytes, give_up) copies the latest value into `bytes` (reusing its memory), as
// Board::get(std::vector<std::byte>&) does; false if it could not before `give_up` (only
// the seqlock, whose reader a flat-out writer can starve). Failures throw.

// Word by word through relaxed atomic accesses, the strictly conforming copy (a board copies
// so only under ThreadSanitizer): no data race with a writer for the language, but no vector
// moves either.
void copy_words_out(const std::byte* source, std::byte* target, std::size_t length) {
  const auto* words = reinterpret_cast<const std::uint64_t*>(source);
  for (std::size_t i = 0; i < length / 8; ++i) {
    const std::uint64_t word = __atomic_load_n(words + i, __ATOMIC_RELAXED);
    std::memcpy(target + i * 8, &word, 8);
  }
}

void copy_words_in(const std::byte* source, std::byte* target, std::size_t length) {
  auto* words = reinterpret_cast<std::uint64_t*>(target);
  for (std::size_t i = 0; i < length / 8; ++i) {
    std::uint64_t word;
    std::memcpy(&word, source + i * 8, 8);
    __atomic_store_n(words + i, word, __ATOMIC_RELAXED);
  }
}

// The textbook seqlock copies with memcpy (the floor); with WordCopy, word by word, which
// tells the board's protocol apart from its copy.
template <bool WordCopy>
class SeqlockCell {
 public:
  explicit SeqlockCell(Shared& shared) : shared_(shared) {}
  bool get(std::vector<std::byte>& bytes, Clock::time_point give_up) {
    for (std::uint32_t tries = 1;; ++tries) {
      const std::uint64_t before = shared_.sequence.load(std::memory_order_acquire);
      if ((before & 1) == 0) {
        bytes.resize(std::min(shared_.sequenced_length.load(std::memory_order_relaxed), max_value_size));
        copy(shared_.sequenced, bytes.data(), bytes.size(), copy_words_out);
        std::atomic_thread_fence(std::memory_order_acquire);
        if (shared_.sequence.load(std::memory_order_relaxed) == before) return true;
      }
      if (tries % 1024 == 0 && Clock::now() >= give_up) return false;
    }
  }
  // One writer: nothing keeps a second out.
  void put(std::span<const std::byte> value) {
    const std::uint64_t before = shared_.sequence.load(std::memory_order_relaxed);
    shared_.sequence.store(before + 1, std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_release);
    copy(value.data(), shared_.sequenced, value.size(), copy_words_in);
    shared_.sequenced_length.store(value.size(), std::memory_order_relaxed);
    shared_.sequence.store(before + 2, std::memory_order_release);
  }

 private:
  // Values are whole words here (sizes are multiples of 8).
  static void copy(const std::byte* source, std::byte* target, std::size_t length,
                   void (*by_words)(const std::byte*, std::byte*, std::size_t)) {
    if constexpr (WordCopy) {
      by_words(source, target, length);
    } else {
      std::memcpy(target, source, length);
    }
  }
  Shared& shared_;
};

class PthreadCell {
 public:
  explicit PthreadCell(Shared& shared) : shared_(shared) {}
  bool get(std::vector<std::byte>& bytes, Clock::time_point) {
    lock();
    bytes.resize(shared_.guarded_length);
    std::memcpy(bytes.data(), shared_.guarded, bytes.size());
    unlock();
    return true;
  }
  void put(std::span<const std::byte> value) {
    lock();
    std::memcpy(shared_.guarded, value.data(), value.size());
    shared_.guarded_length = value.size();
    unlock();
  }

 private:
  // EOWNERDEAD is a failure too: nobody dies here.
  void lock() {
    if (const int error = ::pthread_mutex_lock(&shared_.mutex); error != 0) throw_error("pthread_mutex_lock", error);
  }
  void unlock() {
    if (const int error = ::pthread_mutex_unlock(&shared_.mutex); error != 0) {
      throw_error("pthread_mutex_unlock", error);
    }
  }
  Shared& shared_;
};

class BoardCell {
 public:
  BoardCell() : board_(open_board()) {}
  bool get(std::vector<std::byte>& bytes, Clock::time_point) {
    if (auto version = board_.get(bytes); !version) throw std::runtime_error(version.error().message());
    return true;
  }
  void put(std::span<const std::byte> value) {
    if (auto version = board_.put(value); !version) throw std::runtime_error(version.error().message());
  }

 private:
  static shmbox::Board open_board() {
    auto board = shmbox::Board::open(board_name);
    if (!board) throw std::runtime_error(board.error().message());
    return std::move(*board);
  }
  shmbox::Board board_;
};

// ---- measurements ------------------------------------------------------------------------

Watchdog watchdog(std::string what, pid_t child) { return Watchdog{std::move(what), child, stuck_after, fail}; }

// Batches of op for `run`; each sample is a batch's ns per op.
template <class Op>
std::vector<double> time_batches_for(Clock::duration run, Op&& op) {
  std::vector<double> samples;
  const auto until = Clock::now() + run;
  while (Clock::now() < until) {
    const std::size_t done = samples.size();
    samples.resize(done + 4096);
    samples.resize(done + time_batches(std::span{samples}.subspan(done), batch, op, until));
  }
  return samples;
}

enum class Op { get, put };

// ns per get or put, one process, nobody else in the way.
template <class MakeCell>
Percentiles alone(const std::string& label, Op op, std::size_t size, Clock::duration run, MakeCell make_cell) {
  const Watchdog stuck = watchdog(label, 0);
  try {
    auto cell = make_cell();
    Value value{size};
    std::vector<std::byte> bytes;
    cell.put(value.next());
    const auto get = [&] {
      (void)cell.get(bytes, Clock::time_point::max());
      Value::check(bytes, size);
    };
    const auto put = [&] { cell.put(value.next()); };
    // Warm-up: the first calls fault pages in and claim the board handle's writer slot.
    if (op == Op::get) {
      (void)time_batches_for(run / 10, get);
      return percentiles(time_batches_for(run, get));
    }
    (void)time_batches_for(run / 10, put);
    return percentiles(time_batches_for(run, put));
  } catch (const std::exception& error) {
    fail(fmt::format("{}: {}", label, error.what()));
  }
}

struct Together {
  Percentiles get;  // the reader's, over batches
  Percentiles put;  // the writer's, each put timed (paced writer only)
  double reads_per_second, writes_per_second;
};

// A reader on CPU 0 (this process) gets for `run` while a writer process on CPU 1 puts,
// every `interval` or, with interval 0, flat out.
template <class MakeCell>
Together together(const std::string& label, Shared& shared, std::size_t size, Clock::duration run,
                  Clock::duration interval, MakeCell make_cell) {
  shared.reset();
  const pid_t child = fork_pinned(1, shared.child_error, [&] {
    auto cell = make_cell();
    Value value{size};
    const std::span<double> timed = shared.timed_puts();
    shared.child_ready.store(true);
    while (!shared.go.load()) std::this_thread::yield();
    shared.child_start_ns.store(now_ns());
    std::uint64_t puts = 0;
    while (!shared.stop.load(std::memory_order_relaxed)) {
      if (interval == Clock::duration::zero()) {
        cell.put(value.next());
        ++puts;
        continue;
      }
      const auto start = Clock::now();
      cell.put(value.next());
      const auto end = Clock::now();
      if (puts < timed.size()) timed[puts] = std::chrono::duration<double, std::nano>(end - start).count();
      ++puts;
      // Spins: a sleep would last the kernel's timer slack (50 us), not 10 us.
      while (Clock::now() < start + interval && !shared.stop.load(std::memory_order_relaxed)) {
      }
    }
    shared.child_end_ns.store(now_ns());
    shared.puts.store(puts);
  });
  std::vector<double> samples;
  std::uint64_t reads = 0;
  std::int64_t start = 0, end = 0;
  {
    const Watchdog stuck = watchdog(label, child);
    try {
      auto cell = make_cell();
      std::vector<std::byte> bytes;
      while (!shared.child_ready.load()) std::this_thread::yield();
      shared.go.store(true);
      // Starting before the writer has would time the reader alone.
      while (shared.child_start_ns.load() == 0) std::this_thread::yield();
      start = now_ns();
      const auto give_up = Clock::now() + run;
      samples = time_batches_for(run, [&] {
        if (!cell.get(bytes, give_up)) return;
        Value::check(bytes, size);
        ++reads;
      });
      end = now_ns();
      shared.stop.store(true);
    } catch (const std::exception& error) {
      kill_child(child);
      fail(fmt::format("{}: {}", label, error.what()));
    }
    if (const std::string problem = reap(child, shared.child_error); !problem.empty()) {
      fail(fmt::format("{}: the writer process failed: {}", label, problem));
    }
  }
  const std::uint64_t puts = shared.puts.load();
  const auto timed = shared.timed_puts().first(std::min<std::size_t>(puts, max_timed_puts));
  const double writer_seconds = static_cast<double>(shared.child_end_ns.load() - shared.child_start_ns.load()) / 1e9;
  return {.get = percentiles(std::move(samples)),
          .put = timed.empty() ? Percentiles{0, 0} : percentiles({timed.begin(), timed.end()}),
          .reads_per_second = static_cast<double>(reads) / (static_cast<double>(end - start) / 1e9),
          .writes_per_second = static_cast<double>(puts) / writer_seconds};
}

// ---- report ------------------------------------------------------------------------------

// One repetition of one kind of shared value at one size.
struct Figures {
  Percentiles get_alone, put_alone;
  Together paced, flat_out;
};

enum Kind : std::size_t { floor_kind, word_floor_kind, pthread_kind, board_kind, kinds };
constexpr std::array<const char*, kinds> kind_names{"seqlock (floor)", "seqlock, word copy", "pthread robust + memcpy",
                                                    "shmbox Board"};
constexpr std::array<const char*, kinds> short_names{"floor", "word copy", "pthread", "Board"};

// [kind][repetition]
using Repetitions = std::array<std::vector<Figures>, kinds>;

template <class Pick>
std::vector<double> each(const std::vector<Figures>& runs, Pick pick) {
  std::vector<double> values;
  for (const Figures& figures : runs) values.push_back(pick(figures));
  return values;
}

// Board's figure over another kind's, per repetition.
template <class Pick>
Summary ratio(const Repetitions& runs, Kind other, Pick pick) {
  std::vector<double> ratios;
  for (std::size_t i = 0; i < runs[board_kind].size(); ++i) {
    ratios.push_back(pick(runs[board_kind][i]) / pick(runs[other][i]));
  }
  return summarise(std::move(ratios));
}

std::string size_label(std::size_t size) {
  return size >= 1024 ? fmt::format("{} KiB", size / 1024) : fmt::format("{} B", size);
}

// The baselines Board's ratios are to, one column each.
constexpr std::array<Kind, 3> baselines{floor_kind, word_floor_kind, pthread_kind};
constexpr std::size_t cell_width = 23, ratio_width = 20;

using Columns = std::vector<std::pair<std::string, std::size_t>>;  // name, width

// A markdown table's header: the leading columns, a cell per kind, a ratio per baseline, the
// trailing columns.
void print_header(Columns columns, const Columns& trailing = {}) {
  for (const char* name : kind_names) columns.emplace_back(name, cell_width);
  for (const Kind baseline : baselines) columns.emplace_back(fmt::format("Board / {}", short_names[baseline]), ratio_width);
  columns.insert(columns.end(), trailing.begin(), trailing.end());
  std::string names = "|", rule = "|";
  for (const auto& [name, width] : columns) {
    names += fmt::format(" {:>{}} |", name, width);
    rule += std::string(width + 2, '-') + "|";
  }
  fmt::print("{}\n{}\n", names, rule);
}

void print_ratios(const Repetitions& runs, const std::function<double(const Figures&)>& pick) {
  for (const Kind baseline : baselines) fmt::print(" {:>{}} |", spread(ratio(runs, baseline, pick), 2, "x"), ratio_width);
}

template <class Pick>
void print_latency(std::size_t size, const char* operation, const Repetitions& runs, Pick pick) {
  fmt::print("| {:>6} | {:<26} |", size_label(size), operation);
  for (const auto& kind_runs : runs) {
    const double median = summarise(each(kind_runs, [&](const Figures& f) { return pick(f).median; })).median;
    const double p99 = summarise(each(kind_runs, [&](const Figures& f) { return pick(f).p99; })).median;
    fmt::print(" {:>{}} |", fmt::format("{:.1f} [{:.0f}]", median, p99), cell_width);
  }
  print_ratios(runs, [&](const Figures& f) { return pick(f).median; });
  fmt::print("\n");
}

template <class Pick>
void print_rate(std::size_t size, const char* writer, const Repetitions& runs, Pick pick) {
  fmt::print("| {:>6} | {:<11} |", size_label(size), writer);
  for (const auto& kind_runs : runs) {
    fmt::print(" {:>{}} |", spread(summarise(each(kind_runs, [&](const Figures& f) { return pick(f).reads_per_second; })), 2, "M", 1e6),
               cell_width);
  }
  print_ratios(runs, [&](const Figures& f) { return pick(f).reads_per_second; });
  std::string writes;
  for (const auto& kind_runs : runs) {
    const double median = summarise(each(kind_runs, [&](const Figures& f) { return pick(f).writes_per_second; })).median;
    writes += fmt::format("{}{:.2f}M", writes.empty() ? "" : " / ", median / 1e6);
  }
  fmt::print(" {:>30} |\n", writes);
}

// A clustered bar chart of the medians by size, drawn by gnuplot: get alone, get beside the
// paced writer (ns, log scale), reads per second beside the flat-out writer.
std::string write_plot(const std::string& file, const std::array<Repetitions, value_sizes.size()>& results) {
  struct Panel {
    const char* block;
    const char* title;
    double (*pick)(const Figures&);
  };
  const std::array<Panel, 3> panels{{
      {"$get_alone", "get alone: ns, median (lower is better)", [](const Figures& f) { return f.get_alone.median; }},
      {"$get_paced", "get, writer every 10 us: ns, median", [](const Figures& f) { return f.paced.get.median; }},
      {"$reads_flat_out", "reads/s (M), writer flat out (higher is better)",
       [](const Figures& f) { return f.flat_out.reads_per_second / 1e6; }},
  }};
  std::string script = fmt::format(
      "set terminal svg size 1500,450 font ',11'\nset output '{}'\nset termoption noenhanced\n"
      "set multiplot layout 1,3\nset style data histogram\nset style histogram clustered gap 1\n"
      "set style fill solid 0.85 border -1\nset grid ytics\nset key top left font ',9'\nset yrange [0:*]\n",
      file);
  for (const Panel& panel : panels) {
    script += fmt::format("{} << EOD\n", panel.block);
    for (std::size_t s = 0; s < value_sizes.size(); ++s) {
      script += fmt::format("\"{}\"", size_label(value_sizes[s]));
      for (const auto& kind_runs : results[s]) script += fmt::format(" {:.6g}", summarise(each(kind_runs, panel.pick)).median);
      script += "\n";
    }
    script += "EOD\n";
  }
  for (const Panel& panel : panels) {
    // ns span 100x between 64 B and 16 KiB: a log scale keeps 64 B readable.
    script += std::string{panel.block} == "$reads_flat_out" ? "unset logscale y\nset yrange [0:*]\n"
                                                             : "set logscale y\nset yrange [1:*]\n";
    script += fmt::format("set title '{}'\nplot {} using 2:xtic(1) title '{}'", panel.title, panel.block, kind_names[0]);
    for (std::size_t kind = 1; kind < kinds; ++kind) {
      script += fmt::format(", '' using {} title '{}'", kind + 2, kind_names[kind]);
    }
    script += "\n";
  }
  script += "unset multiplot\n";
  return bench::draw_with_gnuplot(file, script);
}

void run(const Config& config) {
  board_name = fmt::format("board-bench-{}", ::getpid());
  if (auto created = shmbox::Board::create(board_name, {.max_size = max_value_size}); !created) {
    fail(created.error().message());
  }
  Shared& shared = map_shared_state();
  pin(0);

  std::array<Repetitions, value_sizes.size()> results;
  for (std::size_t s = 0; s < value_sizes.size(); ++s) {
    const std::size_t size = value_sizes[s];
    for (int i = 0; i < config.repeat; ++i) {
      // Each kind measured right after the others, figure by figure, so that a ratio
      // compares the same state of the machine.
      std::array<Figures, kinds> figures{};
      const auto measure_all = [&](auto&& measure) {
        measure(floor_kind, [&] { return SeqlockCell<false>{shared}; });
        measure(word_floor_kind, [&] { return SeqlockCell<true>{shared}; });
        measure(pthread_kind, [&] { return PthreadCell{shared}; });
        measure(board_kind, [] { return BoardCell{}; });
      };
      measure_all([&](Kind kind, auto make_cell) {
        figures[kind].get_alone = alone(fmt::format("{} get", kind_names[kind]), Op::get, size, config.run, make_cell);
      });
      measure_all([&](Kind kind, auto make_cell) {
        figures[kind].put_alone = alone(fmt::format("{} put", kind_names[kind]), Op::put, size, config.run, make_cell);
      });
      measure_all([&](Kind kind, auto make_cell) {
        figures[kind].paced =
            together(fmt::format("{}, paced writer", kind_names[kind]), shared, size, config.run, write_interval, make_cell);
      });
      measure_all([&](Kind kind, auto make_cell) {
        figures[kind].flat_out = together(fmt::format("{}, flat-out writer", kind_names[kind]), shared, size,
                                          config.run, Clock::duration::zero(), make_cell);
      });
      for (std::size_t kind = 0; kind < kinds; ++kind) results[s][kind].push_back(figures[kind]);
    }
  }

  const auto run_ms = std::chrono::duration_cast<std::chrono::milliseconds>(config.run).count();
  fmt::print("## Latency, ns per op: median [p99] ({} runs of {} ms each; get and put alone are timed in\n"
             "## batches of {}, the paced writer's puts one by one; each run's median and p99, then the\n"
             "## median over runs). Ratios: Board's median over the baseline's, per run: median (min-max).\n"
             "## Writer (CPU 1) every {} us; reader (CPU 0) getting flat out.\n\n",
             config.repeat, run_ms, batch, std::chrono::duration_cast<std::chrono::microseconds>(write_interval).count());
  print_header({{"size", 6}, {"operation", 26}});
  for (std::size_t s = 0; s < value_sizes.size(); ++s) {
    const std::size_t size = value_sizes[s];
    print_latency(size, "get, alone", results[s], [](const Figures& f) { return f.get_alone; });
    print_latency(size, "get, writer every 10 us", results[s], [](const Figures& f) { return f.paced.get; });
    print_latency(size, "put, alone", results[s], [](const Figures& f) { return f.put_alone; });
    print_latency(size, "put (every 10 us), reader", results[s], [](const Figures& f) { return f.paced.put; });
  }

  fmt::print("\n## Reads per second: one reader process (CPU 0) getting flat out, one writer process (CPU 1)\n"
             "## putting every {} us or flat out: median of {} runs (min-max); ratio: Board's reads/s over the\n"
             "## baseline's, per run (above 1: Board reads more). Last column: the writer's puts/s, in the\n"
             "## order of the columns.\n\n",
             std::chrono::duration_cast<std::chrono::microseconds>(write_interval).count(), config.repeat);
  print_header({{"size", 6}, {"writer", 11}}, {{"writes/s", 30}});
  for (std::size_t s = 0; s < value_sizes.size(); ++s) {
    const std::size_t size = value_sizes[s];
    print_rate(size, "every 10 us", results[s], [](const Figures& f) { return f.paced; });
    print_rate(size, "flat out", results[s], [](const Figures& f) { return f.flat_out; });
  }
  std::fflush(stdout);
  if (!config.plot_file.empty()) {
    if (const std::string problem = write_plot(config.plot_file, results); !problem.empty()) fail(problem);
    fmt::print("\nplot: {}\n", config.plot_file);
  }
  remove_objects();
}

}  // namespace

int main(int argc, char** argv) {
  Config config;
  bool quick = false;
  std::optional<int> repeat;  // --repeat wins over --quick's default, in either order
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--quick") {
      quick = true;
      config.run = 20ms;
    } else if (arg == "--repeat" && i + 1 < argc && std::atoi(argv[i + 1]) > 0) {
      repeat = std::atoi(argv[++i]);
    } else if (arg == "--plot" && i + 1 < argc) {
      config.plot_file = argv[++i];
    } else {
      fmt::print(stderr, "usage: board_bench [--quick] [--repeat N] [--plot FILE.svg]  (N >= 1)\n");
      return 64;
    }
  }
  config.repeat = repeat.value_or(quick ? 3 : 5);
  try {
    run(config);
  } catch (const std::exception& error) {
    fail(error.what());
  }
  return 0;
}
