#include "measure.hpp"

#include <fmt/core.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <stdexcept>
#include <thread>
#include <vector>

namespace bench {
namespace {

// Every process of a measurement connects, then waits here until all have.
void arrive_and_wait(std::atomic<int>& ready, int count) {
  ready.fetch_add(1, std::memory_order_acq_rel);
  while (ready.load(std::memory_order_acquire) < count) std::this_thread::yield();
}

void put_sequence(std::span<std::byte> message, std::uint64_t sequence) {
  std::memcpy(message.data(), &sequence, sizeof sequence);
}

constexpr std::uint64_t sender_shift = 48;

// A stream's rates: `messages` of `size` bytes between two instants, and what sending cost.
Stream rates_of(std::int64_t start_ns, std::int64_t end_ns, std::size_t messages, std::size_t size,
                std::int64_t sender_cpu_ns) {
  Stream result;
  const double seconds = static_cast<double>(end_ns - start_ns) / 1e9;
  result.messages_per_second = static_cast<double>(messages) / seconds;
  result.bytes_per_second = result.messages_per_second * static_cast<double>(size);
  result.sender_cpu_ns = static_cast<double>(sender_cpu_ns) / static_cast<double>(messages);
  return result;
}  // stream messages: sender index << 48 | its count

}  // namespace

std::size_t capacity_for(std::size_t size) {
  if (size <= 1024) return 256;
  if (size <= 64 * 1024) return 64;
  return 8;
}

RoundTrip measure_round_trip(Transport& transport, std::size_t size, std::size_t iterations, const std::string& tag,
                             Pattern pattern) {
  const Shape shape{.pattern = pattern, .size = size, .capacity = capacity_for(size), .tag = tag};
  const std::size_t warm_up = std::max<std::size_t>(iterations / 10, 10);
  struct Shared {
    std::atomic<int> ready;
    std::atomic<std::int64_t> cpu_ns;
  };
  SharedMemory shared{sizeof(Shared) + iterations * sizeof(double)};
  auto* control = new (shared.as<Shared>()) Shared{};
  auto* samples = reinterpret_cast<double*>(shared.as<std::byte>() + sizeof(Shared));
  transport.setup(shape);
  const std::string failure = run_processes(
      {[&] {
         auto link = transport.connect(shape, Role::ping, 0);
         std::vector<std::byte> message(size, std::byte{0x5a}), reply(size);
         arrive_and_wait(control->ready, 2);
         const std::int64_t cpu_before = cpu_time_ns();
         for (std::size_t i = 0; i < warm_up + iterations; ++i) {
           const auto start = Clock::now();
           put_sequence(message, i);
           link->send(message);
           if (link->receive_sequence(reply) != i) throw std::runtime_error("reply out of sequence");
           if (i >= warm_up) samples[i - warm_up] = std::chrono::duration<double, std::nano>(Clock::now() - start).count();
         }
         control->cpu_ns.fetch_add(cpu_time_ns() - cpu_before);
         return 0;
       },
       [&] {
         auto link = transport.connect(shape, Role::pong, 0);
         std::vector<std::byte> scratch(size);
         arrive_and_wait(control->ready, 2);
         const std::int64_t cpu_before = cpu_time_ns();
         for (std::size_t i = 0; i < warm_up + iterations; ++i) link->echo(scratch);
         control->cpu_ns.fetch_add(cpu_time_ns() - cpu_before);
         return 0;
       }},
      true, std::chrono::seconds{120});
  transport.teardown(shape);
  RoundTrip result;
  result.failure = failure;
  if (failure.empty()) {
    result.ns = percentiles({samples, samples + iterations});
    result.cpu_ns = static_cast<double>(control->cpu_ns.load()) / static_cast<double>(warm_up + iterations);
  }
  return result;
}

Stream measure_stream(Transport& transport, std::size_t size, std::size_t count, int senders, int receivers,
                      const std::string& tag, std::chrono::seconds limit) {
  const Shape shape{.pattern = Pattern::stream,
                    .size = size,
                    .capacity = capacity_for(size),
                    .senders = senders,
                    .receivers = receivers,
                    .tag = tag};
  const std::size_t per_sender = count / static_cast<std::size_t>(senders);
  const std::size_t total = per_sender * static_cast<std::size_t>(senders);
  struct Shared {
    std::atomic<int> ready;
    std::atomic<std::int64_t> start_ns, end_ns;
    std::atomic<std::uint64_t> received;
    std::atomic<std::int64_t> sender_cpu_ns, receiver_cpu_ns;
    std::atomic<int> errors;
  };
  // One byte per message: how many times it arrived.
  SharedMemory shared{sizeof(Shared) + total};
  auto* control = new (shared.as<Shared>()) Shared{};
  auto* arrivals = reinterpret_cast<std::atomic<std::uint8_t>*>(shared.as<std::byte>() + sizeof(Shared));
  const int processes = senders + receivers;
  auto now_ns = [] { return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch()).count(); };

  std::vector<std::function<int()>> bodies;
  for (int r = 0; r < receivers; ++r) {
    bodies.push_back([&, r] {
      auto link = transport.connect(shape, Role::receiver, r);
      std::vector<std::byte> scratch(size);
      std::vector<std::uint64_t> next(static_cast<std::size_t>(senders), 0);
      arrive_and_wait(control->ready, processes);
      const std::int64_t cpu_before = cpu_time_ns();
      // One receiver takes everything; several take until all is taken (the rest are
      // then blocked, and killed: finished() below).
      while (control->received.load(std::memory_order_relaxed) < total) {
        const std::uint64_t sequence = link->receive_sequence(scratch);
        const std::uint64_t sender = sequence >> sender_shift, number = sequence & ((1ull << sender_shift) - 1);
        bool in_order = sender < static_cast<std::uint64_t>(senders) && number < per_sender;
        if (in_order) {
          // Alone, exactly the next; sharing, later than the last this receiver saw.
          in_order = receivers == 1 ? number == next[sender] : number >= next[sender];
          next[sender] = number + 1;
          if (arrivals[sender * per_sender + number].fetch_add(1) != 0) in_order = false;
        }
        if (!in_order) control->errors.fetch_add(1);
        if (control->received.fetch_add(1) + 1 == total) control->end_ns.store(now_ns());
        if (!in_order) break;
      }
      control->receiver_cpu_ns.fetch_add(cpu_time_ns() - cpu_before);
      return 0;
    });
  }
  for (int s = 0; s < senders; ++s) {
    bodies.push_back([&, s] {
      // Receivers connect first: transports that bind on the receiving side (ZeroMQ)
      // must not see a sender connect to an address that is not there yet.
      while (control->ready.load(std::memory_order_acquire) < receivers) std::this_thread::yield();
      auto link = transport.connect(shape, Role::sender, s);
      std::vector<std::byte> message(size, std::byte{0x5a});
      arrive_and_wait(control->ready, processes);
      std::int64_t expected = 0;
      control->start_ns.compare_exchange_strong(expected, now_ns());
      const std::int64_t cpu_before = cpu_time_ns();
      for (std::size_t i = 0; i < per_sender; ++i) {
        put_sequence(message, static_cast<std::uint64_t>(s) << sender_shift | i);
        link->send(message);
      }
      control->sender_cpu_ns.fetch_add(cpu_time_ns() - cpu_before);
      // Stay connected until everything has arrived: ZeroMQ drops what a peer that
      // disconnected had sent and the receiver had not yet taken.
      while (control->received.load() < total && control->errors.load() == 0) {
        std::this_thread::sleep_for(std::chrono::microseconds{200});
      }
      return 0;
    });
  }
  transport.setup(shape);
  // Receivers pinned apart from senders when there is one of each.
  // Several receivers: those still blocked once all has arrived are killed. A lone one
  // ends by itself (and so gets to record its CPU time).
  const std::string failure = run_processes(bodies, senders == 1 && receivers == 1, limit, [&] {
    return (receivers > 1 && control->received.load() >= total) || control->errors.load() != 0;
  });
  transport.teardown(shape);
  Stream result;
  if (control->errors.load() != 0) {
    result.failure = "messages dropped, duplicated or reordered";
  } else if (!failure.empty()) {
    result.failure = fmt::format("{} ({} of {} messages received)", failure, control->received.load(), total);
  } else {
    result = rates_of(control->start_ns.load(), control->end_ns.load(), total, size, control->sender_cpu_ns.load());
    // Receivers killed while blocked could not add theirs: only one receiver's is known.
    if (receivers == 1) {
      result.receiver_cpu_ns = static_cast<double>(control->receiver_cpu_ns.load()) / static_cast<double>(total);
    }
  }
  return result;
}

Stream measure_fanout(Transport& transport, std::size_t size, std::size_t count, int receivers, const std::string& tag,
                      std::chrono::seconds limit) {
  const Shape shape{.pattern = Pattern::fanout,
                    .size = size,
                    .capacity = capacity_for(size),
                    .receivers = receivers,
                    .tag = tag};
  struct Shared {
    std::atomic<int> ready;
    std::atomic<std::int64_t> start_ns, end_ns;
    std::atomic<int> done;  // receivers that have every message
    std::atomic<std::int64_t> sender_cpu_ns;
    std::atomic<int> errors;
  };
  SharedMemory shared{sizeof(Shared)};
  auto* control = new (shared.as<Shared>()) Shared{};
  const int processes = 1 + receivers;
  auto now_ns = [] { return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch()).count(); };
  std::vector<std::function<int()>> bodies;
  for (int r = 0; r < receivers; ++r) {
    bodies.push_back([&, r] {
      auto link = transport.connect(shape, Role::receiver, r);
      std::vector<std::byte> scratch(size);
      arrive_and_wait(control->ready, processes);
      for (std::uint64_t i = 0; i < count; ++i) {
        if (link->receive_sequence(scratch) != i) {
          control->errors.fetch_add(1);
          return 0;
        }
      }
      if (control->done.fetch_add(1) + 1 == receivers) control->end_ns.store(now_ns());
      return 0;
    });
  }
  bodies.push_back([&] {
    // Subscribers first: what is published before a subscription stands goes to nobody.
    while (control->ready.load(std::memory_order_acquire) < receivers) std::this_thread::yield();
    auto link = transport.connect(shape, Role::sender, 0);
    std::vector<std::byte> message(size, std::byte{0x5a});
    arrive_and_wait(control->ready, processes);
    control->start_ns.store(now_ns());
    const std::int64_t cpu_before = cpu_time_ns();
    for (std::uint64_t i = 0; i < count; ++i) {
      put_sequence(message, i);
      link->send(message);
    }
    control->sender_cpu_ns.fetch_add(cpu_time_ns() - cpu_before);
    while (control->done.load() < receivers && control->errors.load() == 0) {
      std::this_thread::sleep_for(std::chrono::microseconds{200});
    }
    return 0;
  });
  transport.setup(shape);
  const std::string failure = run_processes(bodies, false, limit, [&] { return control->errors.load() != 0; });
  transport.teardown(shape);
  Stream result;
  if (control->errors.load() != 0) {
    result.failure = "a subscriber missed a message or got one out of order";
  } else if (!failure.empty()) {
    result.failure = fmt::format("{} ({} of {} subscribers got everything)", failure, control->done.load(), receivers);
  } else {
    result = rates_of(control->start_ns.load(), control->end_ns.load(), count, size, control->sender_cpu_ns.load());
  }
  return result;
}

Percentiles cache_line_round_trip(std::size_t iterations) {
  struct Shared {
    std::atomic<int> ready;
    alignas(64) std::atomic<std::uint64_t> line;
  };
  SharedMemory shared{sizeof(Shared) + iterations * sizeof(double)};
  auto* control = new (shared.as<Shared>()) Shared{};
  auto* samples = reinterpret_cast<double*>(shared.as<std::byte>() + sizeof(Shared));
  const std::size_t warm_up = std::max<std::size_t>(iterations / 10, 10);
  const std::string failure = run_processes(
      {[&] {
         arrive_and_wait(control->ready, 2);
         for (std::uint64_t i = 0; i < warm_up + iterations; ++i) {
           const auto start = Clock::now();
           control->line.store(2 * i + 1, std::memory_order_release);
           while (control->line.load(std::memory_order_acquire) != 2 * i + 2) __builtin_ia32_pause();
           if (i >= warm_up) samples[i - warm_up] = std::chrono::duration<double, std::nano>(Clock::now() - start).count();
         }
         return 0;
       },
       [&] {
         arrive_and_wait(control->ready, 2);
         for (std::uint64_t i = 0; i < warm_up + iterations; ++i) {
           while (control->line.load(std::memory_order_acquire) != 2 * i + 1) __builtin_ia32_pause();
           control->line.store(2 * i + 2, std::memory_order_release);
         }
         return 0;
       }},
      true, std::chrono::seconds{60});
  if (!failure.empty()) return {};
  return percentiles({samples, samples + iterations});
}

double memcpy_bytes_per_second(std::size_t size, std::size_t count) {
  std::vector<std::byte> from(size, std::byte{1}), to(size);
  const auto start = Clock::now();
  for (std::size_t i = 0; i < count; ++i) {
    from[i % size] = static_cast<std::byte>(i);
    std::memcpy(to.data(), from.data(), size);
    asm volatile("" : : "r"(to.data()) : "memory");
  }
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  return static_cast<double>(size) * static_cast<double>(count) / seconds;
}

}  // namespace bench
