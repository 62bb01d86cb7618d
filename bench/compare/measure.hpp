// The measurements shmbox-bench makes of every transport, on equal terms: the same
// message sizes, queue capacities and counts; processes pinned to their own CPUs;
// warm-up first; every message carries a sequence number that its receiver checks.
#pragma once

#include <chrono>
#include <cstddef>
#include <string>

#include "harness.hpp"
#include "transport.hpp"

namespace bench {

struct RoundTrip {
  Percentiles ns;          // per round trip
  double cpu_ns = 0;       // CPU time of both processes per round trip
  std::string failure;     // "" when it ran as it should
};

struct Stream {
  double messages_per_second = 0;
  double bytes_per_second = 0;
  double sender_cpu_ns = 0;    // per message, all senders together
  double receiver_cpu_ns = 0;  // per message, all receivers together
  std::string failure;
};

// Queue capacity for messages of `size` bytes, the same for every transport.
std::size_t capacity_for(std::size_t size);

// `iterations` timed round trips (after a tenth as many to warm up): a message and its
// echo (ping_pong), or a request and its answer (request).
RoundTrip measure_round_trip(Transport& transport, std::size_t size, std::size_t iterations, const std::string& tag,
                             Pattern pattern = Pattern::ping_pong);

// `count` messages from `senders` processes to `receivers` processes. With one of each
// the receiver requires sequence numbers 0, 1, 2, ... exactly; with several, each
// receiver requires every sender's numbers to increase, and together they must see
// every message once. A transport that loses a message is reported after `limit`.
Stream measure_stream(Transport& transport, std::size_t size, std::size_t count, int senders, int receivers,
                      const std::string& tag, std::chrono::seconds limit);

// `count` messages from one sender to each of `receivers` processes, each of which must
// get every one, in order (publish/subscribe). The rate is messages per second that each
// receiver gets, from the first send until the last receiver has all.
Stream measure_fanout(Transport& transport, std::size_t size, std::size_t count, int receivers, const std::string& tag,
                      std::chrono::seconds limit);

// The floors: two processes bouncing one cache line; memcpy within one process.
Percentiles cache_line_round_trip(std::size_t iterations);
double memcpy_bytes_per_second(std::size_t size, std::size_t count);

}  // namespace bench
