// What shmbox-bench compares: a transport moves messages between processes. Each one
// is set up in the parent (names, queues, file descriptors), then connected inside each
// forked process, where it gives that process its Link.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace bench {

// The pattern being measured and this process's place in it. ping_pong: a message and
// its echo; stream: one way, each message to one receiver; fanout: one way, each message
// to every receiver (publish/subscribe); request: ping asks, pong answers
// (request/response: ping is the client, pong a server).
enum class Pattern { ping_pong, stream, fanout, request };
enum class Role { ping, pong, sender, receiver };

struct Shape {
  Pattern pattern;
  std::size_t size;      // every message is exactly this many bytes
  std::size_t capacity;  // messages a queue holds before its sender waits
  int senders = 1;
  int receivers = 1;
  std::string tag;       // unique per measurement: names of queues, sockets, topics
};

// One process's end. send() and receive() block; they throw std::runtime_error on any
// failure (the process then exits non-zero and the measurement is reported as failed).
// ping: send to pong, receive from it; pong: the other way; sender/receiver: one way.
class Link {
 public:
  virtual ~Link() = default;
  virtual void send(std::span<const std::byte> message) = 0;
  virtual std::size_t receive(std::span<std::byte> buffer) = 0;
  // The sequence number in the first 8 bytes of the next message. By default the
  // message is received into `scratch` (copied out); zero-copy links read it in place.
  virtual std::uint64_t receive_sequence(std::span<std::byte> scratch) {
    const std::size_t got = receive(scratch);
    if (got < sizeof(std::uint64_t)) throw_error("message shorter than its sequence number");
    std::uint64_t sequence = 0;
    std::memcpy(&sequence, scratch.data(), sizeof sequence);
    return sequence;
  }
  // pong: sends back the next message received.
  virtual void echo(std::span<std::byte> scratch) { send(scratch.first(receive(scratch))); }

 protected:
  [[noreturn]] static void throw_error(const std::string& what);
};

class Transport {
 public:
  virtual ~Transport() = default;
  virtual std::string name() const = 0;
  // Its messages go through a server over TCP (a remote mailbox), a millisecond or so
  // each: it is measured on fewer of them.
  virtual bool remote() const { return false; }
  // The patterns it has: queues give ping_pong and stream; publish/subscribe gives fanout;
  // request/response gives request.
  virtual bool offers(Pattern pattern) const { return pattern == Pattern::ping_pong || pattern == Pattern::stream; }
  // Why this transport cannot run `shape` here ("" if it can): a size over a system
  // limit, a pattern it has no equivalent for.
  virtual std::string unavailable(const Shape& shape) const = 0;
  virtual void setup(const Shape& shape) = 0;  // in the parent, before any fork
  virtual std::unique_ptr<Link> connect(const Shape& shape, Role role, int index) = 0;  // in the child
  virtual void teardown(const Shape& shape) = 0;  // in the parent, after every child ended
};

struct Availability {
  std::string name;
  std::string why_missing;  // "" when built in
};

// Every transport built into this binary, and those left out at build time with why.
std::vector<std::unique_ptr<Transport>> make_transports();
std::vector<Availability> missing_transports();

}  // namespace bench
