// Two-process benchmark of mailboxes and topics: round-trip latency and one-way throughput
// between processes pinned to CPU 0 and CPU 1, against baselines measured in the same run
// (a pipe, two processes ping-ponging one cache line: the latency floor, and a raw
// single-producer single-consumer ring: the throughput floor). Topics also: what a publish
// costs with 1, 4, 16 and 64 subscribers; and a service's call (request/response).
//
//   mailbox_bench [--quick] [--repeat N] [--only latency|throughput|many|kills|idle|topics]
//
// Every figure is repeated; the report gives the median of the repetitions with their
// min-max. Latency figures are per-sample percentiles within a repetition.
#include <fcntl.h>
#include <signal.h>
#include <sched.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fmt/core.h>
#include <functional>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "shmbox/endpoint.hpp"
#include "shmbox/mailbox.hpp"
#include "shmbox/segment.hpp"
#include "shmbox/service.hpp"
#include "shmbox/topic.hpp"

namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

struct Config {
  bool quick = false;
  int repeat = 5;
  std::size_t round_trips = 200'000;
  std::size_t small_messages = 5'000'000;
  std::size_t large_messages = 50'000;
  std::string only;  // one section: latency, throughput, many, kills, idle, topics
  bool wants(const char* section) const { return only.empty() || only == section; }
};

void pin(unsigned cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  ::sched_setaffinity(0, sizeof set, &set);
}

std::string unique(const char* what) { return std::string{"shmbox-bench-"} + what + "-" + std::to_string(::getpid()); }

// Shared between the two processes of one measurement.
struct Control {
  std::atomic<int> ready;
  std::atomic<std::int64_t> end_ns;
  std::atomic<std::int64_t> child_cpu_us;
  std::atomic<int> failures;
};

std::int64_t now_ns() { return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch()).count(); }

std::int64_t cpu_us() {
  rusage usage{};
  ::getrusage(RUSAGE_SELF, &usage);
  return (usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) * 1'000'000L + usage.ru_utime.tv_usec + usage.ru_stime.tv_usec;
}

// Runs `child` pinned to CPU 1 and `parent` pinned to CPU 0, with a shared Control.
template <class Parent, class Child>
auto run_pair(Parent parent, Child child) {
  const std::string control_name = unique("control");
  auto segment = shmbox::Segment::create(control_name, sizeof(Control)).value();
  auto* control = new (segment.writable_bytes()->data()) Control{};
  std::fflush(nullptr);
  const pid_t pid = ::fork();
  if (pid == 0) {
    pin(1);
    const int status = child(*control);
    control->child_cpu_us.store(cpu_us());
    std::fflush(nullptr);
    ::_exit(status);
  }
  pin(0);
  auto result = parent(*control);
  int status = 0;
  ::waitpid(pid, &status, 0);
  (void)shmbox::Segment::remove(control_name);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || control->failures.load() != 0) {
    fmt::print(stderr, "benchmark child failed (status {:#x})\n", status);
    std::exit(1);
  }
  return result;
}

void wait_ready(Control& control, int count) {
  while (control.ready.load(std::memory_order_acquire) < count) std::this_thread::yield();
}

struct Percentiles {
  double median, p99, p999, max;
};

Percentiles percentiles(std::vector<double> samples) {
  std::sort(samples.begin(), samples.end());
  auto at = [&](double q) { return samples[static_cast<std::size_t>(q * static_cast<double>(samples.size() - 1))]; };
  return {at(0.5), at(0.99), at(0.999), samples.back()};
}

// ---- round trips ---------------------------------------------------------------------

using RoundTrip = std::function<Percentiles()>;

Percentiles shmbox_round_trip(const Config& config, shmbox::WaitPolicy policy, std::size_t size, bool zero_copy) {
  const std::string ping = unique("ping"), pong = unique("pong");
  const shmbox::MailboxOptions options{.capacity = 64, .max_message_size = static_cast<std::uint32_t>(size)};
  auto ping_box = shmbox::Mailbox::create(ping, options, policy).value();
  auto pong_box = shmbox::Mailbox::create(pong, options, policy).value();
  const std::size_t total = config.round_trips + config.round_trips / 10;
  auto result = run_pair(
      [&](Control& control) {
        wait_ready(control, 1);
        std::vector<std::byte> message(size, std::byte{1});
        std::vector<double> samples;
        samples.reserve(config.round_trips);
        for (std::size_t i = 0; i < total; ++i) {
          const auto start = Clock::now();
          if (zero_copy) {
            auto loan = ping_box.loan(size).value();
            std::memcpy(loan.data().data(), message.data(), size);
            (void)loan.commit();
            auto reply = pong_box.receive_in_place().value();
          } else {
            (void)ping_box.send(message);
            (void)pong_box.receive(std::span{message});
          }
          if (i >= total - config.round_trips) {
            samples.push_back(std::chrono::duration<double, std::nano>(Clock::now() - start).count());
          }
        }
        return percentiles(std::move(samples));
      },
      [&](Control& control) {
        auto in = shmbox::Mailbox::open(ping, policy).value();
        auto out = shmbox::Mailbox::open(pong, policy).value();
        std::vector<std::byte> message(size);
        control.ready.fetch_add(1);
        for (std::size_t i = 0; i < total; ++i) {
          if (zero_copy) {
            auto request = in.receive_in_place().value();
            auto loan = out.loan(request.size()).value();
            std::memcpy(loan.data().data(), request.data().data(), request.size());
            request.release();
            (void)loan.commit();
          } else {
            auto got = in.receive(std::span{message});
            if (!got || !out.send(std::span{message}.first(*got))) return 1;
          }
        }
        return 0;
      });
  (void)shmbox::Mailbox::remove(ping);
  (void)shmbox::Mailbox::remove(pong);
  return result;
}

Percentiles pipe_round_trip(const Config& config, std::size_t size) {
  int there[2], back[2];
  if (::pipe(there) != 0 || ::pipe(back) != 0) std::exit(1);
  const std::size_t total = config.round_trips / 10;
  auto full_io = [](auto io, int fd, std::byte* data, std::size_t n) {
    for (std::size_t done = 0; done < n;) {
      const ssize_t got = io(fd, data + done, n - done);
      if (got <= 0) return false;
      done += static_cast<std::size_t>(got);
    }
    return true;
  };
  auto result = run_pair(
      [&](Control& control) {
        wait_ready(control, 1);
        std::vector<std::byte> message(size);
        std::vector<double> samples;
        for (std::size_t i = 0; i < total; ++i) {
          const auto start = Clock::now();
          full_io(::write, there[1], message.data(), size);
          full_io(::read, back[0], message.data(), size);
          samples.push_back(std::chrono::duration<double, std::nano>(Clock::now() - start).count());
        }
        return percentiles(std::move(samples));
      },
      [&](Control& control) {
        std::vector<std::byte> message(size);
        control.ready.fetch_add(1);
        for (std::size_t i = 0; i < total; ++i) {
          if (!full_io(::read, there[0], message.data(), size) || !full_io(::write, back[1], message.data(), size)) return 1;
        }
        return 0;
      });
  for (int fd : {there[0], there[1], back[0], back[1]}) ::close(fd);
  return result;
}

// The floor: one cache line bounced between the two processes, spinning.
Percentiles cache_line_round_trip(const Config& config) {
  const std::string name = unique("line");
  auto segment = shmbox::Segment::create(name, 4096).value();
  auto* line = new (segment.writable_bytes()->data()) std::atomic<std::uint64_t>{0};
  const std::size_t total = config.round_trips + config.round_trips / 10;
  auto result = run_pair(
      [&](Control& control) {
        wait_ready(control, 1);
        std::vector<double> samples;
        samples.reserve(config.round_trips);
        for (std::uint64_t i = 0; i < total; ++i) {
          const auto start = Clock::now();
          line->store(2 * i + 1, std::memory_order_release);
          while (line->load(std::memory_order_acquire) != 2 * i + 2) __builtin_ia32_pause();
          if (i >= total - config.round_trips) {
            samples.push_back(std::chrono::duration<double, std::nano>(Clock::now() - start).count());
          }
        }
        return percentiles(std::move(samples));
      },
      [&](Control& control) {
        control.ready.fetch_add(1);
        for (std::uint64_t i = 0; i < total; ++i) {
          while (line->load(std::memory_order_acquire) != 2 * i + 1) __builtin_ia32_pause();
          line->store(2 * i + 2, std::memory_order_release);
        }
        return 0;
      });
  (void)shmbox::Segment::remove(name);
  return result;
}

// ---- throughput ------------------------------------------------------------------------

struct Throughput {
  double messages_per_second;
  double bytes_per_second;
  double sender_cpu_ns_per_message;
  double receiver_cpu_ns_per_message;
};

// `count` messages of `size` bytes in `elapsed_ns`, the sender having used `sender_cpu_us`.
Throughput rates_of(std::int64_t elapsed_ns, std::size_t count, std::size_t size, std::int64_t sender_cpu_us) {
  const double seconds = static_cast<double>(elapsed_ns) / 1e9;
  return {static_cast<double>(count) / seconds, static_cast<double>(count * size) / seconds,
          static_cast<double>(sender_cpu_us) * 1000.0 / static_cast<double>(count), 0};
}

// How the stream's messages go: one call each (copied or zero-copy), or in batches
// (send_many and receive_many, copied).
struct StreamCalls {
  bool zero_copy = false;
  std::size_t batch = 1;
};

Throughput shmbox_throughput(shmbox::WaitPolicy policy, std::size_t size, std::size_t count, StreamCalls calls) {
  const bool zero_copy = calls.zero_copy;
  const std::size_t batch = calls.batch;
  const std::string name = unique("stream");
  const std::uint32_t capacity = size <= 1024 ? 1024 : 64;
  auto box = shmbox::Mailbox::create(name, {.capacity = capacity, .max_message_size = static_cast<std::uint32_t>(size)},
                                     policy)
                 .value();
  std::int64_t parent_cpu = 0;
  auto result = run_pair(
      [&](Control& control) {
        wait_ready(control, 1);
        std::vector<std::byte> message(size, std::byte{7});
        std::vector<std::byte> batch_bytes(batch * size, std::byte{7});
        std::vector<std::span<const std::byte>> batch_messages(batch);
        for (std::size_t k = 0; k < batch; ++k) batch_messages[k] = std::span{batch_bytes}.subspan(k * size, size);
        const std::int64_t cpu_before = cpu_us();
        const std::int64_t start = now_ns();
        for (std::uint64_t i = 0; i < count;) {
          if (batch > 1) {
            const std::size_t n = std::min<std::size_t>(batch, count - i);
            for (std::size_t k = 0; k < n; ++k) {
              const std::uint64_t sequence = i + k;
              std::memcpy(batch_bytes.data() + k * size, &sequence, sizeof sequence);
            }
            std::size_t sent = 0;
            while (sent < n) sent += box.send_many(std::span{batch_messages}.subspan(sent, n - sent)).value();
            i += n;
            continue;
          }
          if (zero_copy) {
            auto loan = box.loan(size).value();
            std::memcpy(loan.data().data(), message.data(), size);
            std::memcpy(loan.data().data(), &i, sizeof i);
            (void)loan.commit();
          } else {
            std::memcpy(message.data(), &i, sizeof i);
            (void)box.send(message);
          }
          ++i;
        }
        parent_cpu = cpu_us() - cpu_before;
        while (control.end_ns.load(std::memory_order_acquire) == 0) std::this_thread::yield();
        return control.end_ns.load() - start;
      },
      [&](Control& control) {
        auto inbox = shmbox::Mailbox::open(name, policy).value();
        std::vector<std::byte> message(size);
        std::vector<std::byte> batch_bytes(batch * size);
        std::vector<std::size_t> sizes(batch);
        control.ready.fetch_add(1);
        for (std::uint64_t i = 0; i < count;) {
          if (batch > 1) {
            const std::size_t got = inbox.receive_many(batch_bytes, sizes).value();
            for (std::size_t k = 0; k < got; ++k, ++i) {
              std::uint64_t sequence = 0;
              std::memcpy(&sequence, batch_bytes.data() + k * size, sizeof sequence);
              if (sequence != i || sizes[k] != size) control.failures.fetch_add(1);
            }
            continue;
          }
          std::uint64_t sequence = 0;
          if (zero_copy) {
            // Read in place: the sequence and the last byte, as a consumer that
            // parses the message where it lies would.
            auto got = inbox.receive_in_place().value();
            std::memcpy(&sequence, got.data().data(), sizeof sequence);
            if (got.data()[got.size() - 1] != std::byte{7}) control.failures.fetch_add(1);
          } else {
            (void)inbox.receive(std::span{message});
            std::memcpy(&sequence, message.data(), sizeof sequence);
          }
          if (sequence != i) control.failures.fetch_add(1);  // dropped, duplicated or reordered
          ++i;
        }
        control.end_ns.store(now_ns(), std::memory_order_release);
        return 0;
      });
  (void)shmbox::Mailbox::remove(name);
  return rates_of(result, count, size, parent_cpu);
}

// The copy floor: a single-producer single-consumer ring between the two processes,
// memcpy in and memcpy out, with cached indices and nothing else (no claims, no
// waiting protocol, no crash safety). What any shared-memory transport must beat.
Throughput raw_ring_throughput(std::size_t size, std::size_t count) {
  constexpr std::uint64_t slots = 1024;
  struct alignas(64) Indices {
    std::atomic<std::uint64_t> write;
    alignas(64) std::atomic<std::uint64_t> read;
  };
  const std::string name = unique("ring");
  const std::size_t ring_slots = size <= 1024 ? slots : 64;
  auto segment = shmbox::Segment::create(name, 4096 + ring_slots * size).value();
  auto* indices = new (segment.writable_bytes()->data()) Indices{};
  std::byte* data = segment.writable_bytes()->data() + 4096;
  auto result = run_pair(
      [&](Control& control) {
        wait_ready(control, 1);
        std::vector<std::byte> message(size, std::byte{7});
        const std::int64_t start = now_ns();
        std::uint64_t read_cached = 0;
        for (std::uint64_t i = 0; i < count; ++i) {
          while (i - read_cached == ring_slots) read_cached = indices->read.load(std::memory_order_acquire);
          std::memcpy(message.data(), &i, sizeof i);
          std::memcpy(data + (i % ring_slots) * size, message.data(), size);
          indices->write.store(i + 1, std::memory_order_release);
        }
        while (control.end_ns.load(std::memory_order_acquire) == 0) std::this_thread::yield();
        return control.end_ns.load() - start;
      },
      [&](Control& control) {
        std::vector<std::byte> message(size);
        control.ready.fetch_add(1);
        std::uint64_t write_cached = 0;
        for (std::uint64_t i = 0; i < count; ++i) {
          while (i == write_cached) write_cached = indices->write.load(std::memory_order_acquire);
          std::memcpy(message.data(), data + (i % ring_slots) * size, size);
          indices->read.store(i + 1, std::memory_order_release);
          std::uint64_t sequence = 0;
          std::memcpy(&sequence, message.data(), sizeof sequence);
          if (sequence != i) control.failures.fetch_add(1);
        }
        control.end_ns.store(now_ns(), std::memory_order_release);
        return 0;
      });
  (void)shmbox::Segment::remove(name);
  return rates_of(result, count, size, 0);
}

// Bytes per second of memcpy of `size`-byte blocks within one process.
double memcpy_bandwidth(std::size_t size, std::size_t count) {
  std::vector<std::byte> from(size, std::byte{1}), to(size);
  const auto start = Clock::now();
  for (std::size_t i = 0; i < count; ++i) {
    std::memcpy(to.data(), from.data(), size);
    asm volatile("" : : "r"(to.data()) : "memory");
  }
  return static_cast<double>(size * count) / std::chrono::duration<double>(Clock::now() - start).count();
}

// 4 senders and 4 receivers on one mailbox, all processes, on this machine's CPUs.
double many_to_many(shmbox::WaitPolicy policy, std::size_t count_per_sender) {
  const std::string name = unique("mxm");
  auto box = shmbox::Mailbox::create(name, {.capacity = 1024, .max_message_size = 64}, policy).value();
  const std::string control_name = unique("mxm-control");
  auto segment = shmbox::Segment::create(control_name, sizeof(Control)).value();
  auto* control = new (segment.writable_bytes()->data()) Control{};
  std::vector<pid_t> pids;
  auto spawn = [&](auto body) {
    std::fflush(nullptr);
    const pid_t pid = ::fork();
    if (pid == 0) ::_exit(body());
    pids.push_back(pid);
  };
  const auto start = now_ns();
  for (int r = 0; r < 4; ++r) {
    spawn([&] {
      auto inbox = shmbox::Mailbox::open(name, policy).value();
      std::array<std::byte, 64> message{};
      while (inbox.receive(std::span{message})) {
      }
      return 0;
    });
  }
  for (int s = 0; s < 4; ++s) {
    spawn([&] {
      auto outbox = shmbox::Mailbox::open(name, policy).value();
      std::array<std::byte, 64> message{};
      for (std::size_t i = 0; i < count_per_sender; ++i) {
        if (!outbox.send(message)) return 1;
      }
      return 0;
    });
  }
  for (std::size_t i = 4; i < pids.size(); ++i) ::waitpid(pids[i], nullptr, 0);
  while (box.queued() != 0) std::this_thread::yield();
  const auto end = now_ns();
  (void)box.close();
  for (std::size_t i = 0; i < 4; ++i) ::waitpid(pids[i], nullptr, 0);
  (void)control;
  (void)shmbox::Mailbox::remove(name);
  (void)shmbox::Segment::remove(control_name);
  return static_cast<double>(4 * count_per_sender) / (static_cast<double>(end - start) / 1e9);
}

// CPU used by a receiver blocked for one second on an empty mailbox, as a fraction.
double idle_receiver_cpu_fraction(shmbox::WaitPolicy policy) {
  const std::string name = unique("idle");
  auto box = shmbox::Mailbox::create(name, {}, policy).value();
  std::int64_t used_us = 0;
  run_pair(
      [&](Control& control) {
        wait_ready(control, 1);
        while (control.end_ns.load(std::memory_order_acquire) == 0) std::this_thread::sleep_for(10ms);
        used_us = control.end_ns.load();
        return 0;
      },
      [&](Control& control) {
        auto inbox = shmbox::Mailbox::open(name, policy).value();
        control.ready.fetch_add(1);
        std::vector<std::byte> message;
        const std::int64_t before = cpu_us();
        (void)inbox.receive(message, 1s);
        control.end_ns.store(std::max<std::int64_t>(1, cpu_us() - before), std::memory_order_release);
        return 0;
      });
  (void)shmbox::Mailbox::remove(name);
  return static_cast<double>(used_us) / 1e6;
}

// ---- what a kill costs the survivors ----------------------------------------------------

// One sample: a victim process gets to `victim()` (which says "ready" through the pipe and
// then waits to be killed), the survivor blocks in `survive()` and a thread kills the
// victim 20 ms later. Returns milliseconds from the kill to survive()'s return; survive()
// returns false if it did not end as recovery should.
double kill_to_recovery_ms(const std::function<void()>& victim, const std::function<bool()>& survive) {
  int ready[2];
  if (::pipe(ready) != 0) std::exit(1);
  std::fflush(nullptr);
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::close(ready[0]);
    victim();
    const char byte = 1;
    (void)::write(ready[1], &byte, 1);
    for (;;) ::pause();
  }
  ::close(ready[1]);
  char byte = 0;
  if (::read(ready[0], &byte, 1) != 1) std::exit(1);
  ::close(ready[0]);
  std::atomic<std::int64_t> killed_at{0};
  std::jthread killer{[&] {
    std::this_thread::sleep_for(20ms);
    killed_at.store(now_ns());
    ::kill(pid, SIGKILL);
  }};
  const bool recovered = survive();
  const std::int64_t returned_at = now_ns();
  killer.join();
  ::waitpid(pid, nullptr, 0);
  if (!recovered) {
    fmt::print(stderr, "a survivor did not recover as it should\n");
    std::exit(1);
  }
  return static_cast<double>(returned_at - killed_at.load()) / 1e6;
}

// The baseline: a blocked receiver woken by a message sent 20 ms later (ms).
double wake_ms() {
  const std::string name = unique("wake");
  auto box = shmbox::Mailbox::create(name).value();
  std::atomic<std::int64_t> sent_at{0};
  std::jthread sender{[&] {
    auto out = shmbox::Mailbox::open(name).value();
    std::this_thread::sleep_for(20ms);
    sent_at.store(now_ns());
    (void)out.send(shmbox::as_bytes("x"));
  }};
  std::vector<std::byte> message;
  (void)box.receive(message, 10s);
  const std::int64_t woke_at = now_ns();
  sender.join();
  (void)shmbox::Mailbox::remove(name);
  return static_cast<double>(woke_at - sent_at.load()) / 1e6;
}

void print_kill_costs(const Config& config) {
  const int samples = config.quick ? 10 : 40;
  const std::string name = unique("kill");
  auto measure = [&](const std::string& label, const std::function<double()> sample) {
    std::vector<double> costs, baselines;
    for (int i = 0; i < samples; ++i) {
      baselines.push_back(wake_ms());
      costs.push_back(sample());
    }
    const Percentiles cost = percentiles(costs), baseline = percentiles(baselines);
    fmt::print("| {:<60} | {:>6.1f} | {:>6.1f} | {:>8.3f} | {:>7.0f}x |\n", label, cost.median, cost.p99, baseline.median,
               cost.median / baseline.median);
    std::fflush(stdout);
  };
  measure("owner killed: a blocked receiver wakes with Closed", [&] {
    return kill_to_recovery_ms([&] { (void)shmbox::Mailbox::create(name).value(); },
                               [&] {
                                 auto box = shmbox::Mailbox::open(name).value();
                                 std::vector<std::byte> message;
                                 auto got = box.receive(message, 10s);
                                 return !got && got.error().errc() == shmbox::Errc::closed;
                               });
  });
  measure("endpoint's process killed: a sender blocked on its lane", [&] {
    const std::string sender_name = name + "-sender";
    return kill_to_recovery_ms(
        [&] {
          static std::optional<shmbox::Endpoint> held;
          held.emplace(shmbox::Endpoint::join(name, {.capacity = 1}).value());
        },
        [&] {
          auto me = shmbox::Endpoint::join(sender_name).value();
          if (!me.send(name, shmbox::as_bytes("fills"))) return false;
          auto blocked = me.send(name, shmbox::as_bytes("waits"), 10s);
          return !blocked && blocked.error().errc() == shmbox::Errc::closed;
        });
  });
  auto with_mailbox = [&](const std::function<void()>& victim, const std::function<bool(shmbox::Mailbox&)>& survive,
                          const char* queued = nullptr) {
    auto box = shmbox::Mailbox::create(name, {.capacity = 4}).value();
    if (queued != nullptr) (void)box.send(shmbox::as_bytes(queued));
    const double ms = kill_to_recovery_ms(victim, [&] { return survive(box); });
    (void)shmbox::Mailbox::remove(name);
    return ms;
  };
  measure("sender killed between claim and publish: the next message", [&] {
    return with_mailbox(
        [&] {
          auto out = shmbox::Mailbox::open(name).value();
          static std::optional<shmbox::SendLoan> held;
          held.emplace(out.loan(8).value());
          static std::optional<shmbox::Mailbox> kept;
          kept.emplace(std::move(out));
        },
        [&](shmbox::Mailbox& box) {
          if (!box.send(shmbox::as_bytes("behind"))) return false;
          std::vector<std::byte> message;
          return box.receive(message, 10s).has_value() && message.size() == 6;
        });
  });
  measure("receiver killed holding a message: another receiver gets it", [&] {
    return with_mailbox(
        [&] {
          auto in = shmbox::Mailbox::open(name).value();
          static std::optional<shmbox::ReceivedMessage> held;
          held.emplace(in.receive_in_place(10s).value());
          static std::optional<shmbox::Mailbox> kept;
          kept.emplace(std::move(in));
        },
        [&](shmbox::Mailbox& box) {
          std::vector<std::byte> message;
          return box.receive(message, 10s).has_value() && message.size() == 4;
        },
        "held");
  });
}

// ---- topics ------------------------------------------------------------------------------

// One publisher (parent) and one subscriber (child), each message checked by its sequence.
// `publishers`: the topic's publisher slots (1: the sole publisher's path).
Throughput topic_throughput(std::size_t size, std::size_t count, bool in_place, std::uint32_t publishers) {
  const std::string name = unique("topic-stream");
  auto topic = shmbox::Topic::create(name, {.capacity = size <= 1024 ? 1024u : 64u,
                                            .max_message_size = static_cast<std::uint32_t>(size),
                                            .max_publishers = publishers})
                   .value();
  std::int64_t parent_cpu = 0;
  auto result = run_pair(
      [&](Control& control) {
        auto publisher = topic.publisher().value();
        wait_ready(control, 1);
        std::vector<std::byte> message(size, std::byte{7});
        const std::int64_t cpu_before = cpu_us();
        const std::int64_t start = now_ns();
        for (std::uint64_t i = 0; i < count; ++i) {
          std::memcpy(message.data(), &i, sizeof i);
          (void)publisher.publish(message);
        }
        parent_cpu = cpu_us() - cpu_before;
        while (control.end_ns.load(std::memory_order_acquire) == 0) std::this_thread::yield();
        return control.end_ns.load() - start;
      },
      [&](Control& control) {
        auto subscriber = shmbox::Topic::open(name).value().subscribe().value();
        std::vector<std::byte> message(size);
        control.ready.fetch_add(1);
        for (std::uint64_t i = 0; i < count; ++i) {
          std::uint64_t sequence = 0;
          if (in_place) {
            auto got = subscriber.receive_in_place().value();
            std::memcpy(&sequence, got.data().data(), sizeof sequence);
          } else {
            (void)subscriber.receive(message).value();
            std::memcpy(&sequence, message.data(), sizeof sequence);
          }
          if (sequence != i) control.failures.fetch_add(1);
        }
        control.end_ns.store(now_ns(), std::memory_order_release);
        return 0;
      });
  (void)shmbox::Topic::remove(name);
  return rates_of(result, count, size, parent_cpu);
}

// Ping on one topic, pong on another: each side publishes on one and subscribes to the other.
Percentiles topic_round_trip(const Config& config, std::size_t size, std::uint32_t publishers) {
  const std::string ping = unique("topic-ping"), pong = unique("topic-pong");
  const shmbox::TopicOptions options{
      .capacity = 64, .max_message_size = static_cast<std::uint32_t>(size), .max_publishers = publishers};
  auto ping_topic = shmbox::Topic::create(ping, options).value();
  auto pong_topic = shmbox::Topic::create(pong, options).value();
  const std::size_t total = config.round_trips + config.round_trips / 10;
  auto result = run_pair(
      [&](Control& control) {
        auto out = ping_topic.publisher().value();
        auto in = pong_topic.subscribe().value();
        wait_ready(control, 1);
        std::vector<std::byte> message(size, std::byte{1});
        std::vector<double> samples;
        samples.reserve(config.round_trips);
        for (std::size_t i = 0; i < total; ++i) {
          const auto start = Clock::now();
          (void)out.publish(message);
          (void)in.receive(message);
          if (i >= total - config.round_trips) {
            samples.push_back(std::chrono::duration<double, std::nano>(Clock::now() - start).count());
          }
        }
        return percentiles(std::move(samples));
      },
      [&](Control& control) {
        auto in = shmbox::Topic::open(ping).value().subscribe().value();
        auto out = shmbox::Topic::open(pong).value().publisher().value();
        std::vector<std::byte> message(size);
        control.ready.fetch_add(1);
        for (std::size_t i = 0; i < total; ++i) {
          if (!in.receive(message) || !out.publish(message)) return 1;
        }
        return 0;
      });
  (void)shmbox::Topic::remove(ping);
  (void)shmbox::Topic::remove(pong);
  return result;
}

// A call to a service (request and answer, 64 B each) against a server in the other process.
Percentiles service_round_trip(const Config& config, std::size_t size) {
  const std::string name = unique("service");
  (void)shmbox::Server::join(name).value();
  const std::size_t total = config.round_trips + config.round_trips / 10;
  auto result = run_pair(
      [&](Control& control) {
        auto client = shmbox::Client::connect(name).value();
        wait_ready(control, 1);
        std::vector<std::byte> request(size, std::byte{1});
        std::vector<double> samples;
        samples.reserve(config.round_trips);
        for (std::size_t i = 0; i < total; ++i) {
          const auto start = Clock::now();
          if (!client.call(request)) control.failures.fetch_add(1);
          if (i >= total - config.round_trips) {
            samples.push_back(std::chrono::duration<double, std::nano>(Clock::now() - start).count());
          }
        }
        return percentiles(std::move(samples));
      },
      [&](Control& control) {
        auto server = shmbox::Server::join(name).value();
        control.ready.fetch_add(1);
        for (std::size_t i = 0; i < total; ++i) {
          auto request = server.next();
          if (!request || !request->answer(request->data())) return 1;
        }
        return 0;
      });
  (void)shmbox::Server::remove(name);
  return result;
}

// What one publish() costs the publisher with `subscribers` subscriber processes (unpinned,
// on both CPUs), at a pace they keep up with (one message every 20 us): ns per call.
Percentiles publish_cost(const Config& config, int subscribers) {
  const std::string name = unique("topic-fanout");
  auto topic = shmbox::Topic::create(name, {.capacity = 1024, .max_message_size = 64,
                                            .max_subscribers = static_cast<std::uint32_t>(subscribers)})
                   .value();
  const std::size_t count = config.round_trips / 4;
  const std::string control_name = unique("fanout-control");
  auto segment = shmbox::Segment::create(control_name, sizeof(Control)).value();
  auto* control = new (segment.writable_bytes()->data()) Control{};
  std::vector<pid_t> children;
  std::fflush(nullptr);
  for (int s = 0; s < subscribers; ++s) {
    const pid_t pid = ::fork();
    if (pid == 0) {
      auto subscriber = shmbox::Topic::open(name).value().subscribe().value();
      control->ready.fetch_add(1);
      std::vector<std::byte> message(64);
      for (std::size_t i = 0; i < count; ++i) {
        auto got = subscriber.receive(message);
        if (!got || got->lost != 0) control->failures.fetch_add(1);
      }
      ::_exit(0);
    }
    children.push_back(pid);
  }
  auto publisher = topic.publisher().value();
  wait_ready(*control, subscribers);
  std::vector<std::byte> message(64, std::byte{3});
  std::vector<double> samples;
  samples.reserve(count);
  for (std::size_t i = 0; i < count; ++i) {
    const auto start = Clock::now();
    (void)publisher.publish(message);
    samples.push_back(std::chrono::duration<double, std::nano>(Clock::now() - start).count());
    while (Clock::now() - start < 20us) {
    }
  }
  for (const pid_t pid : children) ::waitpid(pid, nullptr, 0);
  if (control->failures.load() != 0) {
    fmt::print(stderr, "a subscriber lost or failed to receive a message\n");
    std::exit(1);
  }
  (void)shmbox::Segment::remove(control_name);
  (void)shmbox::Topic::remove(name);
  return percentiles(std::move(samples));
}

// ---- report ----------------------------------------------------------------------------

template <class T, class F>
std::vector<T> repeat(int times, F measure) {
  std::vector<T> results;
  for (int i = 0; i < times; ++i) results.push_back(measure());
  return results;
}

struct Summary {
  double median, min, max;
};

Summary summarise(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return {values[values.size() / 2], values.front(), values.back()};
}

// Each repetition measures the baseline right before the transport, so that the
// ratio compares figures taken in the same state of a shared, noisy machine; the
// reported ratio is the median of the per-repetition ratios.
void print_latency(const std::string& label, const Config& config, const std::function<Percentiles()>& baseline,
                   const std::function<Percentiles()>& measure) {
  std::vector<double> medians, p99s, p999s, maxes, ratios;
  for (int i = 0; i < config.repeat; ++i) {
    const Percentiles floor = baseline();
    const Percentiles run = measure();
    medians.push_back(run.median);
    p99s.push_back(run.p99);
    p999s.push_back(run.p999);
    maxes.push_back(run.max);
    ratios.push_back(run.median / floor.median);
  }
  const auto m = summarise(medians), p = summarise(p99s), q = summarise(p999s), x = summarise(maxes);
  const auto r = summarise(ratios);
  fmt::print("| {:<34} | {:>7.0f} ({:.0f}-{:.0f}) | {:>7.0f} | {:>7.0f} | {:>8.0f} | {:>6.2f}x ({:.2f}-{:.2f}) |\n", label,
             m.median, m.min, m.max, p.median, q.median, x.median, r.median, r.min, r.max);
  std::fflush(stdout);
}

void print_throughput(const std::string& label, const Config& config, const std::function<Throughput()>& baseline,
                      const std::function<Throughput()>& measure) {
  std::vector<double> rates, bytes, cpu, ratios;
  for (int i = 0; i < config.repeat; ++i) {
    const double floor = baseline ? baseline().messages_per_second : 0;
    const Throughput run = measure();
    rates.push_back(run.messages_per_second);
    bytes.push_back(run.bytes_per_second);
    cpu.push_back(run.sender_cpu_ns_per_message);
    ratios.push_back(floor > 0 ? run.messages_per_second / floor : 0);
  }
  const auto r = summarise(rates), b = summarise(bytes), c = summarise(cpu), q = summarise(ratios);
  fmt::print("| {:<34} | {:>8.2f}M ({:.2f}-{:.2f}M) | {:>6.2f} ({:.2f}-{:.2f}) | {:>5.0f} | {:>5.2f} ({:.2f}-{:.2f}) |\n", label,
             r.median / 1e6, r.min / 1e6, r.max / 1e6, b.median / 1e9, b.min / 1e9, b.max / 1e9, c.median, q.median,
             q.min, q.max);
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  Config config;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--quick") {
      config.quick = true;
      config.repeat = 3;
      config.round_trips = 20'000;
      config.small_messages = 500'000;
      config.large_messages = 5'000;
    } else if (arg == "--repeat" && i + 1 < argc) {
      config.repeat = std::atoi(argv[++i]);
    } else if (arg == "--only" && i + 1 < argc) {
      config.only = argv[++i];
    } else {
      fmt::print(stderr, "usage: mailbox_bench [--quick] [--repeat N] [--only latency|throughput|many|kills|idle|topics]\n");
      return 64;
    }
  }
  const shmbox::WaitPolicy busy{.mode = shmbox::WaitMode::busy_poll};
  const shmbox::WaitPolicy adaptive{};
  const shmbox::WaitPolicy sleepy{.mode = shmbox::WaitMode::sleep};

  if (config.wants("latency")) {
    fmt::print("## Round trip, 64 B unless said (ns; median of {} runs (min-max), then medians of p99, p99.9, max;\n"
               "## ratio to the cache-line floor measured just before each run)\n\n",
               config.repeat);
    fmt::print("| {:<34} | {:>17} | {:>7} | {:>7} | {:>8} | {:>18} |\n", "transport", "median", "p99", "p99.9", "max",
               "/ floor");
    fmt::print("|{:-<36}|{:-<19}|{:-<9}|{:-<9}|{:-<10}|{:-<20}|\n", "", "", "", "", "", "");
    const std::function<Percentiles()> floor = [&] { return cache_line_round_trip(config); };
    print_latency("cache line (floor)", config, floor, floor);
    print_latency("shmbox busy_poll", config, floor, [&] { return shmbox_round_trip(config, busy, 64, false); });
    print_latency("shmbox adaptive (default)", config, floor, [&] { return shmbox_round_trip(config, adaptive, 64, false); });
    print_latency("shmbox adaptive, zero-copy", config, floor, [&] { return shmbox_round_trip(config, adaptive, 64, true); });
    // Up to 48 B a message shares its slot's first line with the state word (design.md,
    // Where the nanoseconds go): one line moves each way, as for the floor.
    print_latency("shmbox adaptive, 48 B", config, floor, [&] { return shmbox_round_trip(config, adaptive, 48, false); });
    print_latency("shmbox sleep", config, floor, [&] {
      Config fewer = config;
      fewer.round_trips /= 10;
      return shmbox_round_trip(fewer, sleepy, 64, false);
    });
    print_latency("pipe", config, floor, [&] { return pipe_round_trip(config, 64); });
  }

  if (config.wants("throughput")) {
    fmt::print("\n## One-way throughput (median of {} runs (min-max); ratio to the raw ring measured just before)\n\n",
               config.repeat);
    fmt::print("| {:<34} | {:>24} | {:>18} | {:>5} | {:>17} |\n", "transport", "messages/s", "GB/s", "ns/msg",
               "/ raw ring");
    fmt::print("|{:-<36}|{:-<26}|{:-<20}|{:-<7}|{:-<19}|\n", "", "", "", "", "");
    const std::function<Throughput()> small_ring = [&] { return raw_ring_throughput(64, config.small_messages); };
    const std::function<Throughput()> large_ring = [&] { return raw_ring_throughput(65536, config.large_messages); };
    print_throughput("raw SPSC ring (floor), 64 B", config, small_ring, small_ring);
    for (const auto& [label, policy] : {std::pair{"busy_poll", busy}, std::pair{"adaptive", adaptive}, std::pair{"sleep", sleepy}}) {
      print_throughput(fmt::format("shmbox {}, 64 B", label), config, small_ring,
                       [&] { return shmbox_throughput(policy, 64, config.small_messages, {}); });
    }
    print_throughput("shmbox adaptive, 64 B, zero-copy", config, small_ring,
                     [&] { return shmbox_throughput(adaptive, 64, config.small_messages, {.zero_copy = true}); });
    print_throughput("shmbox adaptive, 64 B, batches of 32", config, small_ring,
                     [&] { return shmbox_throughput(adaptive, 64, config.small_messages, {.batch = 32}); });
    print_throughput("raw SPSC ring (floor), 64 KiB", config, large_ring, large_ring);
    for (const auto& [label, policy] : {std::pair{"busy_poll", busy}, std::pair{"adaptive", adaptive}}) {
      print_throughput(fmt::format("shmbox {}, 64 KiB", label), config, large_ring,
                       [&] { return shmbox_throughput(policy, 65536, config.large_messages, {}); });
    }
    print_throughput("shmbox adaptive, 64 KiB, zero-copy", config, large_ring,
                     [&] { return shmbox_throughput(adaptive, 65536, config.large_messages, {.zero_copy = true}); });
    const auto copy = summarise(repeat<double>(config.repeat, [&] { return memcpy_bandwidth(65536, config.large_messages * 4); }));
    fmt::print("| {:<34} | {:>24} | {:>6.2f} ({:.2f}-{:.2f}) | {:>5} | {:>17} |\n", "memcpy 64 KiB, one process", "-",
               copy.median / 1e9, copy.min / 1e9, copy.max / 1e9, "-", "-");
  }

  if (config.wants("many")) {
    fmt::print("\n## 4 senders x 4 receivers, 64 B, on 2 CPUs (median of {} runs)\n\n", config.repeat);
    for (const auto& [label, policy] : {std::pair{"busy_poll", busy}, std::pair{"adaptive", adaptive}, std::pair{"sleep", sleepy}}) {
      const auto rate = summarise(repeat<double>(config.repeat, [&] { return many_to_many(policy, config.small_messages / 20); }));
      fmt::print("- {}: {:.2f}M messages/s ({:.2f}-{:.2f}M)\n", label, rate.median / 1e6, rate.min / 1e6, rate.max / 1e6);
      std::fflush(stdout);
    }
  }

  if (config.wants("kills")) {
    fmt::print("\n## What a SIGKILL costs the survivors ({} kills each: ms from the kill until the survivor's\n"
               "## blocked call returns, median and p99; baseline: a blocked receiver's wake-up by a send, ms)\n\n",
               config.quick ? 10 : 40);
    fmt::print("| {:<60} | {:>6} | {:>6} | {:>8} | {:>8} |\n", "victim and survivor", "median", "p99", "baseline",
               "/ base");
    fmt::print("|{:-<62}|{:-<8}|{:-<8}|{:-<10}|{:-<10}|\n", "", "", "", "", "");
    print_kill_costs(config);
  }

  if (config.wants("topics")) {
    fmt::print("\n## Topics: one publisher, one subscriber, 64 B (as above: ratios to the floors measured just before)\n\n");
    fmt::print("| {:<34} | {:>24} | {:>18} | {:>5} | {:>17} |\n", "transport", "messages/s", "GB/s", "ns/msg",
               "/ raw ring");
    fmt::print("|{:-<36}|{:-<26}|{:-<20}|{:-<7}|{:-<19}|\n", "", "", "", "", "");
    const std::function<Throughput()> small_ring = [&] { return raw_ring_throughput(64, config.small_messages); };
    print_throughput("raw SPSC ring (floor), 64 B", config, small_ring, small_ring);
    print_throughput("mailbox adaptive, 64 B", config, small_ring,
                     [&] { return shmbox_throughput(adaptive, 64, config.small_messages, {}); });
    print_throughput("topic, 64 B, copied", config, small_ring,
                     [&] { return topic_throughput(64, config.small_messages, false, 8); });
    print_throughput("topic, 64 B, in place", config, small_ring,
                     [&] { return topic_throughput(64, config.small_messages, true, 8); });
    print_throughput("topic, 1 publisher slot, copied", config, small_ring,
                     [&] { return topic_throughput(64, config.small_messages, false, 1); });
    print_throughput("topic, 1 publisher slot, in place", config, small_ring,
                     [&] { return topic_throughput(64, config.small_messages, true, 1); });
    fmt::print("\n| {:<34} | {:>17} | {:>7} | {:>7} | {:>8} | {:>18} |\n", "round trip, 64 B (ns)", "median", "p99",
               "p99.9", "max", "/ floor");
    fmt::print("|{:-<36}|{:-<19}|{:-<9}|{:-<9}|{:-<10}|{:-<20}|\n", "", "", "", "", "", "");
    const std::function<Percentiles()> floor = [&] { return cache_line_round_trip(config); };
    print_latency("cache line (floor)", config, floor, floor);
    print_latency("mailbox adaptive", config, floor, [&] { return shmbox_round_trip(config, adaptive, 64, false); });
    print_latency("topic adaptive", config, floor, [&] { return topic_round_trip(config, 64, 8); });
    print_latency("topic adaptive, 1 publisher slot", config, floor,
                  [&] { return topic_round_trip(config, 64, 1); });
    print_latency("service call (request and answer)", config, floor, [&] { return service_round_trip(config, 64); });
    fmt::print("\n| {:<34} | {:>17} | {:>7} | {:>7} | {:>8} | {:>18} |\n", "publish() call, 64 B (ns)", "median",
               "p99", "p99.9", "max", "/ 1 subscriber");
    fmt::print("|{:-<36}|{:-<19}|{:-<9}|{:-<9}|{:-<10}|{:-<20}|\n", "", "", "", "", "", "");
    const std::function<Percentiles()> one = [&] { return publish_cost(config, 1); };
    for (const int subscribers : {1, 4, 16, 64}) {
      print_latency(fmt::format("{} subscriber{}", subscribers, subscribers == 1 ? "" : "s"), config, one,
                    [&] { return publish_cost(config, subscribers); });
    }
  }

  if (config.wants("idle")) {
    fmt::print("\n## A receiver blocked 1 s on an empty mailbox: CPU used\n\n");
    for (const auto& [label, policy] : {std::pair{"adaptive", adaptive}, std::pair{"sleep", sleepy}}) {
      fmt::print("- {}: {:.3f}% of one CPU\n", label, 100 * idle_receiver_cpu_fraction(policy));
    }
  }
  return 0;
}
