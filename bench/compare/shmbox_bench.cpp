// shmbox-bench: shmbox against what users would pick instead (pipes, Unix sockets,
// POSIX message queues, Boost.Interprocess, ZeroMQ, iceoryx), measured in one run on
// equal terms, with the hardware floors; and shmbox's remote mailboxes (through a NATS
// server on loopback), to show what crossing a machine costs. docs/benchmarks.md
// explains the method.
//
//   shmbox-bench [--quick] [--repeat N] [--only NAME...] [--json FILE] [--plot FILE.svg|.png]
#include <CLI/CLI.hpp>
#include <fmt/core.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>

#include "harness.hpp"
#include "measure.hpp"
#include "transport.hpp"

namespace bench {
namespace {

struct Options {
  bool quick = false;
  int repeat = 5;
  std::vector<std::string> only;
  std::string json_file;
  std::string plot_file;
};

const std::vector<std::size_t> sizes{64, 1024, 64 * 1024, 1024 * 1024};
constexpr int sharing = 4;  // senders and receivers sharing one queue

std::string size_label(std::size_t size) {
  if (size >= 1024 * 1024) return fmt::format("{} MiB", size / (1024 * 1024));
  if (size >= 1024) return fmt::format("{} KiB", size / 1024);
  return fmt::format("{} B", size);
}

// A remote transport's message is a few round trips to its server (about a millisecond
// here): it gets counts that take about a second, like the local ones'.
std::size_t round_trips_for(std::size_t size, bool quick, bool remote = false) {
  const std::size_t full = size <= 1024 ? (remote ? 1'000 : 50'000) : size <= 64 * 1024 ? (remote ? 500 : 5'000) : 500;
  return quick ? std::max<std::size_t>(full / 25, 20) : full;
}

std::size_t messages_for(std::size_t size, bool quick, bool remote = false) {
  const std::size_t full = remote              ? 1'000
                           : size <= 64        ? 2'000'000
                           : size <= 1024      ? 1'000'000
                           : size <= 64 * 1024 ? 50'000
                                               : 3'000;
  return quick ? std::max<std::size_t>(full / 25, 100) : full;
}

// One figure of one transport: the repetitions' results, or why there are none.
struct Figure {
  std::vector<double> medians, p99s, p999s, maxes;  // round trip, ns
  std::vector<double> rates, cpu_send, cpu_receive;  // stream: messages/s; ns per message
  std::string skipped;  // unavailable here, or failed
  bool failed = false;  // a transport that is here and did not work: the run fails
  void fail(const std::string& why) {
    skipped = "failed: " + why;
    failed = true;
  }
  bool empty() const { return medians.empty() && rates.empty(); }
};

enum class Kind { round_trip, stream, competing, fanout, request };

// Publish/subscribe is measured at these numbers of subscribers.
const std::vector<int> subscriber_counts{1, 2, 4};

struct Key {
  Kind kind;
  std::size_t size;
  std::string transport;
  int subscribers = 1;  // fanout only
  auto operator<=>(const Key&) const = default;
};

Pattern pattern_of(Kind kind) {
  switch (kind) {
    case Kind::round_trip: return Pattern::ping_pong;
    case Kind::stream:
    case Kind::competing: return Pattern::stream;
    case Kind::fanout: return Pattern::fanout;
    case Kind::request: return Pattern::request;
  }
  return Pattern::ping_pong;
}

const char* kind_label(Kind kind) {
  switch (kind) {
    case Kind::round_trip: return "round trip";
    case Kind::stream: return "throughput";
    case Kind::competing: return "4x4";
    case Kind::fanout: return "publish/subscribe";
    case Kind::request: return "request/response";
  }
  return "?";
}

class Progress {
 public:
  explicit Progress(std::size_t total) : total_(total) {}
  void step(const std::string& what) {
    ++done_;
    if (::isatty(STDERR_FILENO)) {
      std::fprintf(stderr, "\r\033[K[%zu/%zu] %s", done_, total_, what.c_str());
    } else if (done_ % 10 == 1) {
      std::fprintf(stderr, "[%zu/%zu] %s\n", done_, total_, what.c_str());
    }
    std::fflush(stderr);
  }
  void finish() {
    if (::isatty(STDERR_FILENO)) std::fprintf(stderr, "\r\033[K");
  }

 private:
  std::size_t total_, done_ = 0;
};

bool selected(const Options& options, const std::string& name) {
  if (options.only.empty()) return true;
  auto lower = [](std::string text) {
    std::transform(text.begin(), text.end(), text.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return text;
  };
  return std::any_of(options.only.begin(), options.only.end(),
                     [&](const std::string& wanted) { return lower(name).find(lower(wanted)) != std::string::npos; });
}

bool is_shmbox(const std::string& name) { return name.starts_with("shmbox"); }
// Remote mailboxes cross a server: they are shown beside the local figures, not raced
// against local peers.
bool is_remote(const std::string& name) { return name.starts_with("shmbox nats") || name.starts_with("NATS"); }

bool is_round_trip(Kind kind) { return kind == Kind::round_trip || kind == Kind::request; }

// The median of the repetitions' medians (round trip) or rates (stream).
std::optional<double> headline(const Figure& figure, Kind kind) {
  if (figure.empty()) return std::nullopt;
  return summarise(is_round_trip(kind) ? figure.medians : figure.rates).median;
}

// How much better shmbox's best is than the best peer's: > 1 means shmbox is ahead.
std::string versus(const std::map<Key, Figure>& figures, Kind kind, std::size_t size, int subscribers = 1) {
  std::optional<double> ours, theirs;
  std::string best_peer;
  for (const auto& [key, figure] : figures) {
    if (key.kind != kind || key.size != size || key.subscribers != subscribers || is_remote(key.transport)) continue;
    const auto value = headline(figure, kind);
    if (!value) continue;
    auto& best = is_shmbox(key.transport) ? ours : theirs;
    const bool better = !best || (is_round_trip(kind) ? *value < *best : *value > *best);
    if (better) {
      best = value;
      if (!is_shmbox(key.transport)) best_peer = key.transport;
    }
  }
  if (!ours || !theirs) return "-";
  const double ratio = is_round_trip(kind) ? *theirs / *ours : *ours / *theirs;
  return fmt::format("{:.2f}x {}", ratio, best_peer);
}

std::string cell_round_trip(const Figure& figure) {
  if (figure.empty()) return figure.skipped.empty() ? "-" : "skipped";
  const Summary median = summarise(figure.medians), p99 = summarise(figure.p99s);
  return fmt::format("{:.2f} [{:.1f}]", median.median / 1000, p99.median / 1000);
}

std::string cell_stream(const Figure& figure, std::size_t size) {
  if (figure.empty()) return figure.skipped.empty() ? "-" : "skipped";
  const Summary rate = summarise(figure.rates);
  // Remote mailboxes move thousands a second, not millions: k/s and MB/s for them.
  const double bytes = rate.median * static_cast<double>(size);
  if (size >= 64 * 1024) return bytes >= 1e9 ? fmt::format("{:.2f} GB/s", bytes / 1e9) : fmt::format("{:.1f} MB/s", bytes / 1e6);
  return rate.median >= 1e5 ? fmt::format("{:.2f} M/s", rate.median / 1e6) : fmt::format("{:.2f} k/s", rate.median / 1e3);
}

void print_table(const std::string& title, const std::vector<std::string>& transports,
                 const std::map<Key, Figure>& figures, Kind kind, const std::vector<std::size_t>& columns,
                 const std::vector<std::pair<std::string, std::vector<std::string>>>& extra_rows) {
  fmt::print("\n{}\n\n", title);
  fmt::print("| {:<28} |", "transport");
  for (const auto size : columns) fmt::print(" {:>22} |", size_label(size));
  fmt::print("\n|{:-<30}|", "");
  for (std::size_t i = 0; i < columns.size(); ++i) fmt::print("{:-<24}|", "");
  fmt::print("\n");
  for (const auto& transport : transports) {
    bool any = false;
    for (const auto size : columns) any = any || figures.contains({kind, size, transport});
    if (!any) continue;
    fmt::print("| {:<28} |", transport);
    for (const auto size : columns) {
      const auto found = figures.find({kind, size, transport});
      const std::string cell = found == figures.end()   ? "-"
                               : is_round_trip(kind) ? cell_round_trip(found->second)
                                                     : cell_stream(found->second, size);
      fmt::print(" {:>22} |", cell);
    }
    fmt::print("\n");
  }
  for (const auto& [label, cells] : extra_rows) {
    fmt::print("| {:<28} |", label);
    for (const auto& cell : cells) fmt::print(" {:>22} |", cell);
    fmt::print("\n");
  }
  std::vector<std::string> ratios;
  for (const auto size : columns) ratios.push_back(versus(figures, kind, size));
  fmt::print("| {:<28} |", "shmbox vs best peer");
  for (const auto& ratio : ratios) fmt::print(" {:>22} |", ratio);
  fmt::print("\n");
}

nlohmann::json to_json(const std::map<Key, Figure>& figures, const std::string& machine) {
  nlohmann::json rows = nlohmann::json::array();
  for (const auto& [key, figure] : figures) {
    nlohmann::json row{{"figure", key.kind == Kind::round_trip ? "round_trip"
                                  : key.kind == Kind::stream   ? "throughput"
                                  : key.kind == Kind::fanout   ? "publish_subscribe"
                                  : key.kind == Kind::request  ? "request_response"
                                                               : "competing_4x4"},
                       {"transport", key.transport},
                       {"size", key.size}};
    if (key.kind == Kind::fanout) row["subscribers"] = key.subscribers;
    if (!figure.skipped.empty()) row["skipped"] = figure.skipped;
    if (!figure.medians.empty()) {
      row["round_trip_ns"] = {{"median", summarise(figure.medians).median},
                              {"median_min", summarise(figure.medians).min},
                              {"median_max", summarise(figure.medians).max},
                              {"p99", summarise(figure.p99s).median},
                              {"p999", summarise(figure.p999s).median},
                              {"max", summarise(figure.maxes).median},
                              {"cpu_ns", summarise(figure.cpu_send).median}};
    }
    if (!figure.rates.empty()) {
      const Summary rate = summarise(figure.rates);
      row["messages_per_second"] = {{"median", rate.median}, {"min", rate.min}, {"max", rate.max}};
      row["bytes_per_second"] = rate.median * static_cast<double>(key.size);
      row["cpu_ns_per_message"] = {{"sender", summarise(figure.cpu_send).median},
                                   {"receiver", summarise(figure.cpu_receive).median}};
    }
    rows.push_back(std::move(row));
  }
  return {{"machine", machine}, {"figures", rows}};
}

// Latency and throughput by message size, one line per transport, log scales, drawn by
// gnuplot (the SVG or PNG terminal, by the file's extension). "" or what went wrong.
std::string write_plot(const std::string& file, const std::vector<std::string>& transports,
                       const std::map<Key, Figure>& figures) {
  std::string blocks;  // one data block per transport and figure: "size value" lines
  std::string latency_plot =
      "set title 'Round trip, median (lower is better)'\nset ylabel 'microseconds'\nplot ";
  std::string throughput_plot = "set title 'One-way throughput (higher is better)'\nset ylabel 'GB/s'\nplot ";
  for (std::size_t i = 0; i < transports.size(); ++i) {
    std::string latency = fmt::format("$l{} << EOD\n", i), throughput = fmt::format("$t{} << EOD\n", i);
    for (const auto size : sizes) {
      if (const auto found = figures.find({Kind::round_trip, size, transports[i]}); found != figures.end()) {
        if (const auto value = headline(found->second, Kind::round_trip)) latency += fmt::format("{} {:.6g}\n", size, *value / 1000);
      }
      if (const auto found = figures.find({Kind::stream, size, transports[i]}); found != figures.end()) {
        if (const auto value = headline(found->second, Kind::stream)) {
          throughput += fmt::format("{} {:.6g}\n", size, *value * static_cast<double>(size) / 1e9);
        }
      }
    }
    blocks += latency + "EOD\n" + throughput + "EOD\n";
    // shmbox's lines solid and thick, the peers' dashed.
    const std::string style = is_shmbox(transports[i]) ? "lw 3" : "lw 1.5 dt 2";
    const char* comma = i == 0 ? "" : ", ";
    latency_plot += fmt::format("{}$l{} using 1:2 with linespoints {} title '{}'", comma, i, style, transports[i]);
    throughput_plot += fmt::format("{}$t{} using 1:2 with linespoints {} title '{}'", comma, i, style, transports[i]);
  }
  const std::string header = fmt::format(
      "set terminal {} size 1400,600 font ',11'\nset output '{}'\nset multiplot layout 1,2\n"
      "set termoption noenhanced\nset logscale xy\nset grid\nset xlabel 'message size'\n"
      "set key outside bottom center horizontal maxrows 5 font ',9'\n"
      "set xtics ('64 B' 64, '1 KiB' 1024, '64 KiB' 65536, '1 MiB' 1048576)\n",
      file.ends_with(".png") ? "pngcairo" : "svg", file);
  const std::string script_file = file + ".gp";
  std::ofstream(script_file) << blocks << header << latency_plot << "\n" << throughput_plot << "\nunset multiplot\n";
  const int status = std::system(("gnuplot '" + script_file + "'").c_str());
  std::remove(script_file.c_str());
  if (status != 0) return "gnuplot failed (is it installed? Debian: gnuplot-nox)";
  return {};
}

// Publish/subscribe (messages/s each subscriber gets, at 1, 2 and 4 subscribers) and
// request/response (round trip), 64 B.
void print_patterns(const Options& options, const std::vector<std::string>& names,
                    const std::map<Key, Figure>& figures) {
  const auto has = [&](Kind kind, const std::string& name) {
    return std::ranges::any_of(figures, [&](const auto& entry) {
      return entry.first.kind == kind && entry.first.transport == name;
    });
  };
  bool header = false;
  for (const auto& name : names) {
    if (!has(Kind::fanout, name)) continue;
    if (!header) {
      fmt::print("\nPublish/subscribe, 64 B: messages/s each subscriber gets, lossless (median of {} runs)\n\n",
                 options.repeat);
      fmt::print("| {:<28} |", "transport");
      for (const int count : subscriber_counts) fmt::print(" {:>22} |", fmt::format("{} subscriber{}", count, count == 1 ? "" : "s"));
      fmt::print("\n|{:-<30}|", "");
      for (std::size_t i = 0; i < subscriber_counts.size(); ++i) fmt::print("{:-<24}|", "");
      fmt::print("\n");
      header = true;
    }
    fmt::print("| {:<28} |", name);
    for (const int count : subscriber_counts) {
      const auto found = figures.find({Kind::fanout, 64, name, count});
      fmt::print(" {:>22} |", found == figures.end() ? "-" : cell_stream(found->second, 64));
    }
    fmt::print("\n");
  }
  if (header) {
    fmt::print("| {:<28} |", "shmbox vs best peer");
    for (const int count : subscriber_counts) fmt::print(" {:>22} |", versus(figures, Kind::fanout, 64, count));
    fmt::print("\n");
  }
  std::vector<std::string> requesting;
  for (const auto& name : names) {
    if (has(Kind::request, name)) requesting.push_back(name);
  }
  if (requesting.empty()) return;
  print_table(fmt::format("Request/response, 64 B round trip (us: median [p99]; median of {} runs)", options.repeat),
              requesting, figures, Kind::request, {64}, {});
  // Across a server, against NATS's own request/reply.
  const auto ours = figures.find({Kind::request, 64, "shmbox nats service"});
  const auto theirs = figures.find({Kind::request, 64, "NATS request/reply"});
  if (ours != figures.end() && theirs != figures.end()) {
    const auto mine = headline(ours->second, Kind::request), peer = headline(theirs->second, Kind::request);
    if (mine && peer) fmt::print("| {:<28} | {:>22} |\n", "shmbox nats vs NATS", fmt::format("{:.2f}x", *peer / *mine));
  }
}

}  // namespace
}  // namespace bench

int main(int argc, char** argv) {
  using namespace bench;
  Options options;
  CLI::App app{
      "shmbox-bench: shmbox against pipes, Unix sockets, POSIX queues, Boost, ZeroMQ and iceoryx; and remote "
      "shmbox mailboxes (a NATS server on loopback)"};
  app.add_flag("--quick", options.quick, "A pass of under a minute: fewer messages, 3 repetitions");
  app.add_option("--repeat", options.repeat, "Repetitions of every figure (default 5; --quick: 3)")->check(CLI::PositiveNumber);
  app.add_option("--only", options.only, "Only transports whose names contain one of these (e.g. shmbox pipe zeromq)");
  app.add_option("--json", options.json_file, "Write every figure to this file as JSON");
  app.add_option("--plot", options.plot_file, "Draw latency and throughput by size to this .svg or .png (gnuplot)");
  CLI11_PARSE(app, argc, argv);
  if (options.quick && app.count("--repeat") == 0) options.repeat = 3;

  const std::string machine = machine_description();
  fmt::print("shmbox-bench on {}\n", machine);
  auto transports = make_transports();
  std::vector<std::string> names;
  for (const auto& transport : transports) {
    if (selected(options, transport->name())) names.push_back(transport->name());
  }
  for (const auto& missing : missing_transports()) fmt::print("  {}: {}\n", missing.name, missing.why_missing);

  struct Job {
    Kind kind;
    std::size_t size;
    Transport* transport;
    int subscribers = 1;
  };
  std::vector<Job> jobs;
  const auto wanted = [&](const Transport& transport, Kind kind) {
    return selected(options, transport.name()) && transport.offers(pattern_of(kind));
  };
  for (const auto kind : {Kind::round_trip, Kind::stream}) {
    for (const auto size : sizes) {
      for (const auto& transport : transports) {
        if (wanted(*transport, kind)) jobs.push_back({kind, size, transport.get()});
      }
    }
  }
  for (const auto& transport : transports) {
    if (wanted(*transport, Kind::competing)) jobs.push_back({Kind::competing, 64, transport.get()});
  }
  // Publish/subscribe and request/response: 64 B, the patterns' own transports.
  for (const int subscribers : subscriber_counts) {
    for (const auto& transport : transports) {
      if (wanted(*transport, Kind::fanout)) jobs.push_back({Kind::fanout, 64, transport.get(), subscribers});
    }
  }
  for (const auto& transport : transports) {
    if (wanted(*transport, Kind::request)) jobs.push_back({Kind::request, 64, transport.get()});
  }

  std::map<Key, Figure> figures;
  Progress progress{jobs.size() * static_cast<std::size_t>(options.repeat)};
  const LoadWatch load;
  int serial = 0;
  // Repetitions are interleaved (all jobs, then all again), so that a burst of load
  // from elsewhere hits one repetition of many figures rather than all of one.
  for (int round = 0; round < options.repeat; ++round) {
    for (const auto& job : jobs) {
      const std::string name = job.transport->name();
      Figure& figure = figures[{job.kind, job.size, name, job.subscribers}];
      progress.step(fmt::format("{} {}: {}", kind_label(job.kind), size_label(job.size), name));
      if (!figure.skipped.empty()) continue;
      const Shape shape{.pattern = pattern_of(job.kind),
                        .size = job.size,
                        .capacity = capacity_for(job.size),
                        .senders = job.kind == Kind::competing ? sharing : 1,
                        .receivers = job.kind == Kind::competing ? sharing
                                     : job.kind == Kind::fanout  ? job.subscribers
                                                                 : 1};
      if (const std::string why = job.transport->unavailable(shape); !why.empty()) {
        figure.skipped = why;
        continue;
      }
      const std::string tag = fmt::format("shmbox-bench-{}-{}", ::getpid(), ++serial);
      try {
        if (is_round_trip(job.kind)) {
          const RoundTrip result =
              measure_round_trip(*job.transport, job.size, round_trips_for(job.size, options.quick, job.transport->remote()),
                                 tag, shape.pattern);
          if (!result.failure.empty()) {
            figure.fail(result.failure);
            continue;
          }
          figure.medians.push_back(result.ns.median);
          figure.p99s.push_back(result.ns.p99);
          figure.p999s.push_back(result.ns.p999);
          figure.maxes.push_back(result.ns.max);
          figure.cpu_send.push_back(result.cpu_ns);
        } else if (job.kind == Kind::fanout) {
          const Stream result = measure_fanout(*job.transport, job.size, messages_for(job.size, options.quick) / 4,
                                               job.subscribers, tag, std::chrono::seconds{options.quick ? 20 : 120});
          if (!result.failure.empty()) {
            figure.fail(result.failure);
            continue;
          }
          figure.rates.push_back(result.messages_per_second);
          figure.cpu_send.push_back(result.sender_cpu_ns);
        } else {
          const int processes = job.kind == Kind::competing ? sharing : 1;
          const Stream result = measure_stream(*job.transport, job.size,
                                               messages_for(job.size, options.quick, job.transport->remote()), processes,
                                               processes, tag, std::chrono::seconds{options.quick ? 20 : 120});
          if (!result.failure.empty()) {
            figure.fail(result.failure);
            continue;
          }
          figure.rates.push_back(result.messages_per_second);
          figure.cpu_send.push_back(result.sender_cpu_ns);
          figure.cpu_receive.push_back(result.receiver_cpu_ns);
        }
      } catch (const std::exception& error) {
        figure.fail(error.what());
      }
    }
  }
  progress.finish();
  const double elsewhere = load.busy_elsewhere();

  const std::size_t floor_iterations = round_trips_for(64, options.quick);
  std::vector<double> floors;
  for (int i = 0; i < options.repeat; ++i) floors.push_back(cache_line_round_trip(floor_iterations).median);
  std::vector<std::string> floor_row;
  std::vector<std::string> memcpy_row;
  for (const auto size : sizes) {
    floor_row.push_back(size == 64 ? fmt::format("{:.2f}", summarise(floors).median / 1000) : "");
    const double bandwidth = memcpy_bytes_per_second(size, std::max<std::size_t>(messages_for(size, true), 1000));
    memcpy_row.push_back(size >= 64 * 1024 ? fmt::format("{:.2f} GB/s", bandwidth / 1e9)
                                           : fmt::format("{:.2f} M/s", bandwidth / static_cast<double>(size) / 1e6));
  }

  print_table(fmt::format("Round trip (us: median [p99]; median of {} runs)", options.repeat), names, figures,
              Kind::round_trip, sizes, {{"floor: one cache line", floor_row}});
  print_table(fmt::format("One-way throughput (messages/s, or GB/s from 64 KiB; median of {} runs)", options.repeat),
              names, figures, Kind::stream, sizes, {{"floor: memcpy, one process", memcpy_row}});
  print_table(fmt::format("{} senders and {} receivers on one queue, 64 B (messages/s)", sharing, sharing), names,
              figures, Kind::competing, {64}, {});

  print_patterns(options, names, figures);

  fmt::print("\nCPU per message, 64 B throughput (ns: sender / receiver)\n\n");
  for (const auto& name : names) {
    const auto found = figures.find({Kind::stream, 64, name});
    if (found == figures.end() || found->second.empty()) continue;
    fmt::print("- {}: {:.0f} / {:.0f}\n", name, summarise(found->second.cpu_send).median,
               summarise(found->second.cpu_receive).median);
  }
  bool any_skipped = false;
  for (const auto& [key, figure] : figures) {
    if (figure.skipped.empty()) continue;
    if (!any_skipped) fmt::print("\nNot measured\n\n");
    any_skipped = true;
    const std::string who = key.kind == Kind::fanout ? fmt::format(", {} subscribers", key.subscribers) : "";
    fmt::print("- {}, {} {}{}: {}\n", key.transport, kind_label(key.kind), size_label(key.size), who, figure.skipped);
  }
  if (elsewhere > 0.05) {
    fmt::print("\nWarning: other processes kept {:.0f}% of the CPUs busy during the run; figures may be low.\n",
               100 * elsewhere);
  }
  if (!options.json_file.empty()) std::ofstream(options.json_file) << to_json(figures, machine).dump(2) << "\n";
  if (!options.plot_file.empty()) {
    if (const std::string problem = write_plot(options.plot_file, names, figures); !problem.empty()) {
      fmt::print(stderr, "shmbox-bench: {}\n", problem);
      return 1;
    }
  }
  const auto failures = std::ranges::count_if(figures, [](const auto& entry) { return entry.second.failed; });
  if (failures > 0) {
    fmt::print(stderr, "shmbox-bench: {} measurement{} failed (listed under Not measured)\n", failures,
               failures == 1 ? "" : "s");
    return 1;
  }
  return 0;
}
