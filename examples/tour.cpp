// A tour of shmbox in a few seconds: each way it lets processes cooperate, each one run
// across real processes and checked.
//
//   tour [--workers N] [--megabytes M]
//
// 1. shared memory: the producer/consumer over a segment;
// 2. a mailbox: each message to exactly one of two receivers;
// 3. direct messages: send(P, m) and receive_from(Q) between two named processes;
// 4. splitting data: word frequencies of a generated corpus, held once in a segment,
//    counted by 1 worker and by N, against the sequential count;
// 5. splitting the task graph: the same as stages with a join;
// 6. the same two again with a worker killed half-way.
// Exits 0 when every check holds.
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <random>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

#include "hello.hpp"
#include "shmbox/endpoint.hpp"
#include "shmbox/graph.hpp"
#include "shmbox/mailbox.hpp"
#include "shmbox/pool.hpp"
#include "shmbox/segment.hpp"

namespace {

using Clock = std::chrono::steady_clock;
// Looked up by string_view, so that adding a chunk's counts allocates only for new words.
struct WordHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view word) const noexcept { return std::hash<std::string_view>{}(word); }
};
using Frequencies = std::unordered_map<std::string, std::uint64_t, WordHash, std::equal_to<>>;

bool all_held = true;

void check(bool holds, const char* what) {
  std::printf("   %s: %s\n", what, holds ? "yes" : "NO");
  all_held = all_held && holds;
}

double seconds_since(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

// A child process running `body`; its exit status.
template <class Body>
pid_t spawn(Body body) {
  std::fflush(stdout);
  const pid_t pid = ::fork();
  if (pid == 0) {
    const int status = body();
    std::fflush(stdout);
    ::_exit(status);
  }
  return pid;
}

bool exited_cleanly(pid_t pid) {
  int status = 0;
  return ::waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

void shared_memory_section(const std::string& name) {
  std::printf("1. Shared memory: a consumer waits for a segment that a producer creates\n");
  const pid_t consumer = spawn([&] {
    std::printf("   consumer read: ");
    return hello::consume(name, std::chrono::seconds{10});
  });
  const bool produced = hello::produce(name) == 0;
  check(exited_cleanly(consumer) && produced, "the consumer read what the producer wrote, and removed it");
}

void mailbox_section(const std::string& name) {
  std::printf("2. A mailbox: 1000 numbers, two receivers, each number taken by exactly one\n");
  auto box = shmbox::Mailbox::create(name, {.capacity = 16, .max_message_size = sizeof(std::uint64_t)}).value();
  // Each receiver's count and sum come back through a second mailbox.
  auto totals = shmbox::Mailbox::create(name + "-totals", {.capacity = 4, .max_message_size = 16}).value();
  std::vector<pid_t> receivers;
  for (int r = 0; r < 2; ++r) {
    receivers.push_back(spawn([&, r] {
      auto inbox = shmbox::Mailbox::open(name).value();
      std::array<std::uint64_t, 2> taken_and_sum{};
      for (auto number = inbox.receive_value<std::uint64_t>(); number; number = inbox.receive_value<std::uint64_t>()) {
        ++taken_and_sum[0];
        taken_and_sum[1] += *number;
      }
      std::printf("   receiver %d took %llu numbers summing to %llu\n", r + 1,
                  static_cast<unsigned long long>(taken_and_sum[0]), static_cast<unsigned long long>(taken_and_sum[1]));
      return shmbox::Mailbox::open(name + "-totals").value().send_value(taken_and_sum) ? 0 : 1;
    }));
  }
  for (std::uint64_t number = 1; number <= 1000; ++number) (void)box.send_value(number);
  (void)box.close();  // the receivers drain what is left, then see it closed
  std::array<std::uint64_t, 2> all{};
  bool clean = true;
  for (const pid_t receiver : receivers) {
    const auto one = totals.receive_value<std::array<std::uint64_t, 2>>(std::chrono::seconds{10});
    clean = one.has_value() && clean;
    if (one) all = {all[0] + (*one)[0], all[1] + (*one)[1]};
    clean = exited_cleanly(receiver) && clean;
  }
  check(clean && all[0] == 1000 && all[1] == 500500, "1000 numbers taken in all, summing to 500500");
  (void)shmbox::Mailbox::remove(name);
  (void)shmbox::Mailbox::remove(name + "-totals");
}

void direct_section(const std::string& prefix) {
  std::printf("3. Direct messages: process P sends to Q by name, and Q answers P alone\n");
  const std::string p = prefix + "-P";
  const std::string q = prefix + "-Q";
  auto me = shmbox::Endpoint::join(p).value();
  const pid_t other = spawn([&] {
    auto endpoint = shmbox::Endpoint::join(q).value();
    std::vector<std::byte> message;
    if (!endpoint.receive_from(p, message, std::chrono::seconds{10})) return 1;
    const std::string text(reinterpret_cast<const char*>(message.data()), message.size());
    std::printf("   Q got \"%s\" from P\n", text.c_str());
    return endpoint.send(p, shmbox::as_bytes("pong")) ? 0 : 1;
  });
  std::vector<std::byte> answer;
  bool sent = false;
  // Q may not have joined yet: its name appears when it does.
  for (int tries = 0; tries < 1000 && !sent; ++tries) {
    sent = me.send(q, shmbox::as_bytes("ping")).has_value();
    if (!sent) std::this_thread::sleep_for(std::chrono::milliseconds{10});
  }
  const bool answered = sent && me.receive_from(q, answer, std::chrono::seconds{10}).has_value();
  std::printf("   P got \"%.*s\" from Q\n", static_cast<int>(answer.size()), reinterpret_cast<const char*>(answer.data()));
  check(exited_cleanly(other) && answered, "ping went to Q, pong came back to P");
}

// The corpus: lines of words drawn from a vocabulary with a few frequent words and a long tail.
std::vector<std::string> vocabulary() {
  std::mt19937 random{7};
  std::vector<std::string> words;
  for (int i = 0; i < 4000; ++i) {
    std::string word;
    for (std::size_t length = 2 + random() % 9; word.size() < length;) word += static_cast<char>('a' + random() % 26);
    words.push_back(word);
  }
  return words;
}

void write_corpus(std::span<std::byte> memory) {
  const auto words = vocabulary();
  std::mt19937_64 random{42};
  std::uniform_real_distribution<double> uniform{0.0, 1.0};
  auto* out = reinterpret_cast<char*>(memory.data());
  const std::size_t size = memory.size();
  std::size_t at = 0;
  for (int in_line = 0; at < size; ++in_line) {
    const double u = uniform(random);
    const std::string& word = words[static_cast<std::size_t>(u * u * u * static_cast<double>(words.size()))];
    const std::size_t n = std::min(word.size(), size - at);
    std::memcpy(out + at, word.data(), n);
    at += n;
    if (at < size) out[at++] = in_line % 12 == 11 ? '\n' : ' ';
  }
}

bool is_space(char c) { return c == ' ' || c == '\n'; }

// Counts the words that start in [offset, offset + length): one cut by the start belongs to
// the chunk before; one cut by the end is read to its end.
template <class Count>
void for_each_word(const shmbox::Chunk& chunk, Count count) {
  const auto* text = reinterpret_cast<const char*>(chunk.data.data());
  const std::size_t size = chunk.data.size();
  std::size_t at = chunk.offset;
  if (at > 0 && !is_space(text[at - 1])) {
    while (at < size && !is_space(text[at])) ++at;
  }
  const std::size_t end = chunk.offset + chunk.length;
  while (at < end) {
    while (at < end && is_space(text[at])) ++at;
    if (at >= end) break;
    const std::size_t start = at;
    while (at < size && !is_space(text[at])) ++at;
    count(std::string_view{text + start, at - start});
  }
}

// A chunk's frequencies as bytes: for each word its length (1 byte), letters and count.
std::vector<std::byte> frequencies_of(const shmbox::Chunk& chunk) {
  // Kept from chunk to chunk: a worker's later chunks reuse its buckets.
  thread_local std::unordered_map<std::string_view, std::uint64_t> counts(8192);
  counts.clear();
  for_each_word(chunk, [&](std::string_view word) { ++counts[word]; });
  std::vector<std::byte> bytes;
  for (const auto& [word, count] : counts) {
    const auto length = static_cast<std::uint8_t>(std::min<std::size_t>(word.size(), 255));
    bytes.push_back(std::byte{length});
    const auto* letters = reinterpret_cast<const std::byte*>(word.data());
    bytes.insert(bytes.end(), letters, letters + length);
    const auto* count_bytes = reinterpret_cast<const std::byte*>(&count);
    bytes.insert(bytes.end(), count_bytes, count_bytes + sizeof count);
  }
  return bytes;
}

void add_frequencies(Frequencies& total, std::span<const std::byte> bytes) {
  for (std::size_t at = 0; at < bytes.size();) {
    const auto length = static_cast<std::size_t>(bytes[at++]);
    const std::string_view word(reinterpret_cast<const char*>(bytes.data() + at), length);
    at += length;
    std::uint64_t count = 0;
    std::memcpy(&count, bytes.data() + at, sizeof count);
    at += sizeof count;
    if (auto found = total.find(word); found != total.end()) {
      found->second += count;
    } else {
      total.emplace(word, count);
    }
  }
}

// Kills one of this process's children (a worker), half-way through.
void kill_a_worker(const char* when) {
  std::ifstream children{"/proc/self/task/" + std::to_string(::getpid()) + "/children"};
  pid_t worker = 0;
  if (children >> worker && ::kill(worker, SIGKILL) == 0) std::printf("   killed worker %d %s\n", worker, when);
}

std::uint64_t sum_of(const Frequencies& frequencies) {
  std::uint64_t sum = 0;
  for (const auto& entry : frequencies) sum += entry.second;
  return sum;
}

Frequencies count_with_pool(const std::string& corpus, std::size_t corpus_size, std::size_t chunk_size,
                            std::uint32_t workers, bool kill) {
  const std::uint64_t chunks = (corpus_size + chunk_size - 1) / chunk_size;
  auto outcomes = shmbox::map_chunks(corpus, chunk_size, frequencies_of,
                                     {.workers = workers,
                                      .max_result_size = 1 << 20,
                                      .on_progress = [&](const shmbox::PoolProgress& progress) {
                                        if (kill && progress.done == chunks / 2) kill_a_worker("half-way through the chunks");
                                      }});
  Frequencies total;
  if (!outcomes) {
    std::printf("   %s\n", outcomes.error().message().c_str());
    all_held = false;
    return total;
  }
  for (const auto& outcome : *outcomes) add_frequencies(total, outcome.result);
  return total;
}

// The same split over threads of this process: what the machine's cores give at best.
Frequencies count_with_threads(std::span<const std::byte> corpus, std::size_t chunk_size, std::uint32_t threads) {
  const std::size_t count = (corpus.size() + chunk_size - 1) / chunk_size;
  std::vector<std::vector<std::byte>> parts(count);
  std::vector<std::thread> running;
  for (std::uint32_t t = 0; t < threads; ++t) {
    running.emplace_back([&, t] {
      for (std::size_t i = t; i < count; i += threads) {
        parts[i] = frequencies_of(shmbox::Chunk{
            .data = corpus, .offset = i * chunk_size, .length = std::min(chunk_size, corpus.size() - i * chunk_size)});
      }
    });
  }
  for (auto& thread : running) thread.join();
  Frequencies total;
  for (const auto& part : parts) add_frequencies(total, part);
  return total;
}

// read the chunk -> (frequencies x N, line count) -> join: a chunk's summary; then merged here.
Frequencies count_with_graph(std::span<const std::byte> corpus, std::size_t chunk_size, std::uint32_t workers,
                             bool kill, std::uint64_t& lines) {
  const auto chunk_of = [corpus](std::span<const std::byte> task) {
    std::array<std::uint64_t, 2> range{};
    std::memcpy(range.data(), task.data(), sizeof range);
    return shmbox::Chunk{.data = corpus, .offset = range[0], .length = range[1]};
  };
  shmbox::Graph graph;
  const auto words = graph
                         .source("frequencies", [&](std::span<const std::byte> task) { return frequencies_of(chunk_of(task)); },
                                 {.workers = workers, .max_result_size = 1 << 20})
                         .value();
  const auto newlines = graph
                            .source("lines",
                                    [&](std::span<const std::byte> task) {
                                      const shmbox::Chunk chunk = chunk_of(task);
                                      const auto text = chunk.data.subspan(chunk.offset, chunk.length);
                                      const std::uint64_t count =
                                          static_cast<std::uint64_t>(std::count(text.begin(), text.end(), std::byte{'\n'}));
                                      const auto bytes = std::as_bytes(std::span{&count, 1});
                                      return std::vector<std::byte>(bytes.begin(), bytes.end());
                                    })
                            .value();
  (void)graph
      .join({words, newlines}, "summary",
            [](std::span<const std::span<const std::byte>> parts) {
              // The line count first, then the frequencies: one message per chunk.
              std::vector<std::byte> summary(parts[1].begin(), parts[1].end());
              summary.insert(summary.end(), parts[0].begin(), parts[0].end());
              return summary;
            },
            {.max_result_size = 2 << 20})
      .value();
  const std::size_t count = (corpus.size() + chunk_size - 1) / chunk_size;
  std::vector<std::vector<std::byte>> inputs;
  for (std::size_t i = 0; i < count; ++i) {
    const std::array<std::uint64_t, 2> range{i * chunk_size, std::min(chunk_size, corpus.size() - i * chunk_size)};
    const auto bytes = std::as_bytes(std::span{range});
    inputs.emplace_back(bytes.begin(), bytes.end());
  }
  auto outcomes = graph.run(inputs, {.on_progress = [&](const shmbox::GraphProgress& progress) {
                              if (kill && progress.done == count / 2) kill_a_worker("half-way through the graph");
                            }});
  Frequencies total;
  lines = 0;
  if (!outcomes) {
    std::printf("   %s\n", outcomes.error().message().c_str());
    all_held = false;
    return total;
  }
  for (const auto& outcome : *outcomes) {
    if (!outcome.ok) {
      std::printf("   %s\n", shmbox::Graph::failure(outcome).message().c_str());
      all_held = false;
      continue;
    }
    std::uint64_t chunk_lines = 0;
    std::memcpy(&chunk_lines, outcome.results[0].data(), sizeof chunk_lines);
    lines += chunk_lines;
    add_frequencies(total, std::span{outcome.results[0]}.subspan(sizeof chunk_lines));
  }
  return total;
}

}  // namespace

int main(int argc, char** argv) {
  std::uint32_t workers = std::max(2u, std::thread::hardware_concurrency());
  std::size_t megabytes = 128;
  for (int i = 1; i < argc; i += 2) {
    const std::string_view option = argv[i];
    const char* value = i + 1 < argc ? argv[i + 1] : "";
    char* end = nullptr;
    const unsigned long number = std::strtoul(value, &end, 10);
    if ((option != "--workers" && option != "--megabytes") || *value == '\0' || *end != '\0' || number == 0 ||
        number > 4096) {
      std::fprintf(stderr, "usage: tour [--workers N] [--megabytes M] (each 1 to 4096)\n");
      return 64;
    }
    if (option == "--workers") workers = static_cast<std::uint32_t>(number);
    if (option == "--megabytes") megabytes = number;
  }
  const std::string prefix = "tour-" + std::to_string(::getpid());
  shared_memory_section(prefix + "-hello");
  mailbox_section(prefix + "-numbers");
  direct_section(prefix);

  const std::string corpus_name = prefix + "-corpus";
  const std::size_t chunk_size = 4 << 20;
  auto corpus = shmbox::Segment::create(corpus_name, megabytes << 20, {.initialize = write_corpus});
  if (!corpus) {
    std::fprintf(stderr, "tour: %s\n", corpus.error().message().c_str());
    return 1;
  }
  const std::span<const std::byte> text = corpus->bytes();
  std::printf("4. Splitting data: word frequencies of a %zu MiB corpus held once in a segment, %zu chunks\n",
              megabytes, (text.size() + chunk_size - 1) / chunk_size);
  auto start = Clock::now();
  Frequencies sequential;
  add_frequencies(sequential, frequencies_of(shmbox::Chunk{.data = text, .offset = 0, .length = text.size()}));
  const double sequential_time = seconds_since(start);
  std::printf("   sequential, in this process: %.2f s, %llu words, %zu distinct\n", sequential_time,
              static_cast<unsigned long long>(sum_of(sequential)), sequential.size());
  start = Clock::now();
  const Frequencies one = count_with_pool(corpus_name, text.size(), chunk_size, 1, false);
  const double one_time = seconds_since(start);
  start = Clock::now();
  const Frequencies many = count_with_pool(corpus_name, text.size(), chunk_size, workers, false);
  const double many_time = seconds_since(start);
  start = Clock::now();
  const Frequencies threaded = count_with_threads(text, chunk_size, workers);
  const double threads_time = seconds_since(start);
  std::printf("   1 worker: %.2f s; %u workers: %.2f s: %.2fx faster\n", one_time, workers, many_time,
              one_time / many_time);
  std::printf("   (%u threads of one process, the most these cores give: %.2f s, %.2fx the sequential)\n", workers,
              threads_time, sequential_time / threads_time);
  check(one == sequential && many == sequential && threaded == sequential, "each equals the sequential count");

  std::printf("5. Splitting the task graph: chunk -> (frequencies x %u, lines) -> join by chunk -> merge\n", workers);
  const auto expected_lines = static_cast<std::uint64_t>(std::count(text.begin(), text.end(), std::byte{'\n'}));
  std::uint64_t lines = 0;
  start = Clock::now();
  const Frequencies single_stage = count_with_graph(text, chunk_size, 1, false, lines);
  const double graph_one_time = seconds_since(start);
  start = Clock::now();
  const Frequencies graphed = count_with_graph(text, chunk_size, workers, false, lines);
  const double graph_many_time = seconds_since(start);
  std::printf("   1 worker a stage: %.2f s; %u counting: %.2f s: %.2fx faster; %llu lines\n", graph_one_time, workers,
              graph_many_time, graph_one_time / graph_many_time, static_cast<unsigned long long>(lines));
  check(single_stage == sequential && graphed == sequential && lines == expected_lines,
        "both equal the sequential count, and the lines add up");

  std::printf("6. The same with a worker killed half-way\n");
  const Frequencies survived = count_with_pool(corpus_name, text.size(), chunk_size, workers, true);
  check(survived == sequential, "the pool's count still equals the sequential one");
  const Frequencies graph_survived = count_with_graph(text, chunk_size, workers, true, lines);
  check(graph_survived == sequential && lines == expected_lines, "the graph's count still equals the sequential one");

  (void)shmbox::Segment::remove(corpus_name);
  std::printf(all_held ? "Every check held.\n" : "A check failed.\n");
  return all_held ? 0 : 1;
}
