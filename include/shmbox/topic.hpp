// Topics: every subscriber gets every message (publish/subscribe), where a mailbox gives
// each message to one receiver.
//
//   auto topic = shmbox::Topic::create("prices", {.capacity = 256, .history = 16}).value();
//   auto publisher = topic.publisher().value();
//   publisher.publish(shmbox::as_bytes("EURUSD 1.0841"));
//
//   auto subscriber = shmbox::Topic::open("prices").value().subscribe(16).value();  // the last 16 too
//   std::vector<std::byte> message;
//   auto got = subscriber.receive(message, 1s);   // got->lost: messages it missed just before
//
// A publisher writes a message once, into a chunk of the topic's shared memory, and each
// subscriber reads it from there: by copy, or in place (receive_in_place, no copy at all).
// What a publish costs does not depend on how many subscribers there are.
//
// Guarantees (docs/design.md, "Topics"):
//   - Each subscriber gets the messages published after it subscribed (and the history it
//     asked for) in publish order, which keeps each publisher's own order.
//   - Overflow::block: a publisher waits while the oldest message the topic keeps has not
//     been read by every live, running subscriber; nothing is lost. A subscriber process
//     that dies, or is stopped (SIGSTOP), holds publishers back for at most 100 ms: a dead
//     one's slot is recovered, a stopped one is passed over (it is told what it lost when
//     it runs again).
//   - Overflow::overwrite: a publisher never waits; a subscriber that falls more than
//     `capacity` messages behind loses the oldest, and the next message it gets says how
//     many (Delivered::lost).
//   - A message read in place stays valid and unchanged until released, whatever the
//     publishers do meanwhile.
//   - A publisher or subscriber killed at any instruction leaves the topic working: what
//     it claimed is recovered by the next process that waits on it (within 100 ms).
//
// A name "nats://host:port/NAME" is a topic held by that NATS server (JetStream), reachable
// from any machine: the same calls, with overflow always overwrite, copies only (no loans,
// no messages in place, no selector) and system ownership (docs/design.md, "Topics on NATS").
//
// Thread contract: a Publisher or Subscriber is used by one thread at a time; a Topic
// handle may make publishers and subscribers from several threads. A Publisher or
// Subscriber belongs to the process that made it: a forked child's copy refuses to work
// (Errc::invalid_argument) and leaves the parent's slot alone; the child makes its own.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "shmbox/error.hpp"
#include "shmbox/mailbox_types.hpp"
#include "shmbox/wait.hpp"

namespace shmbox {

namespace detail {
struct TopicState;
class TopicBackend;
class PublisherBackend;
class SubscriberBackend;
class LocalPublisher;
class LocalSubscriber;
}

enum class Overflow : std::uint8_t {
  block,      // publishers wait for the slowest live subscriber
  overwrite,  // slow subscribers lose the oldest messages, and are told how many
};

inline constexpr std::uint32_t max_topic_subscribers = 128;
inline constexpr std::uint32_t max_topic_publishers = 256;
inline constexpr std::uint32_t max_topic_capacity = 16384;
inline constexpr std::size_t max_topic_message_size = std::size_t{64} << 20;

struct TopicOptions {
  std::uint32_t capacity = 64;        // the messages the topic keeps (1 to max_topic_capacity)
  std::uint32_t history = 0;          // the most a late subscriber may ask for (at most capacity)
  std::uint32_t max_message_size = 4096;
  std::uint32_t max_subscribers = 16;
  // Publishers at once. With 1, the publisher is the topic's only writer and publishes with
  // plain stores, naming the chunk of its next message to subscribers: the fastest topic
  // (docs/benchmarks.md); a second publisher is refused while the first lives.
  std::uint32_t max_publishers = 8;
  std::uint32_t held_per_subscriber = 4;  // messages one subscriber may hold in place at once
  Overflow overflow = Overflow::block;
  Ownership ownership = Ownership::process;
  std::uint32_t mode = 0600;
  WaitPolicy wait{};
};

// What a receive got besides the bytes.
struct Delivered {
  std::size_t size = 0;
  std::uint64_t sequence = 0;  // the topic's number for the message, from 1 up
  std::uint64_t lost = 0;      // messages overwritten before this subscriber read them, just before this one
};

// A message read in place: valid, and unchanged, until it is released or destroyed.
class TopicMessage {
 public:
  TopicMessage() = default;
  // Moving hands over what is held: the moved-from handle's state is empty.
  TopicMessage(TopicMessage&& other) noexcept = default;
  TopicMessage& operator=(TopicMessage&& other) noexcept;
  TopicMessage(const TopicMessage&) = delete;
  TopicMessage& operator=(const TopicMessage&) = delete;
  ~TopicMessage() { release(); }

  std::span<const std::byte> data() const noexcept { return data_; }
  const Delivered& info() const noexcept { return info_; }
  void release() noexcept;

 private:
  friend class detail::LocalSubscriber;
  std::shared_ptr<detail::TopicState> state_;
  std::uint32_t slot_ = 0;
  std::uint32_t chunk_ = 0;
  std::span<const std::byte> data_;
  Delivered info_;
  std::uint64_t fork_generation_ = 0;
};

// Room for a message in the topic's memory, filled in place and then published. Given back
// unpublished if destroyed. Publish or destroy it before its Publisher goes: one that
// outlives it was given back then, its bytes are no longer its to write, and destroying it
// does nothing more.
class TopicLoan {
 public:
  TopicLoan() = default;
  TopicLoan(TopicLoan&& other) noexcept = default;
  TopicLoan& operator=(TopicLoan&& other) noexcept;
  TopicLoan(const TopicLoan&) = delete;
  TopicLoan& operator=(const TopicLoan&) = delete;
  ~TopicLoan() { give_back(); }

  std::span<std::byte> data() const noexcept { return data_; }

 private:
  friend class detail::LocalPublisher;
  void give_back() noexcept;
  std::shared_ptr<detail::TopicState> state_;
  std::uint32_t slot_ = 0;
  std::uint32_t chunk_ = 0;
  std::span<std::byte> data_;
  std::uint64_t fork_generation_ = 0;
  std::uint64_t term_ = 0;  // its publisher's (a loan that outlives it gives nothing back)
};

// Publishes into its topic (every subscriber gets every message). A moved-from one refuses
// every call (Errc::invalid_argument).
class Publisher {
 public:
  Publisher() noexcept;
  Publisher(Publisher&& other) noexcept;
  Publisher& operator=(Publisher&& other) noexcept;
  Publisher(const Publisher&) = delete;
  Publisher& operator=(const Publisher&) = delete;
  ~Publisher();

  // Copies `message` in and publishes it; its sequence number. A blocking topic waits
  // (until `deadline`) while a live subscriber has not read the oldest message it keeps.
  [[nodiscard]] Result<std::uint64_t> publish(std::span<const std::byte> message, Deadline deadline = forever);
  // Room for `size` bytes in the topic's memory (one loan at a time per publisher; local
  // topics only: a nats:// topic refuses with Errc::invalid_argument).
  [[nodiscard]] Result<TopicLoan> loan(std::size_t size);
  // Publishes what was written into `loan`; its sequence number. A loan it refuses
  // (timed out, would block) is given back.
  [[nodiscard]] Result<std::uint64_t> publish(TopicLoan&& loan, Deadline deadline = forever);

 private:
  friend class Topic;
  std::unique_ptr<detail::PublisherBackend> backend_;
};

class Subscriber {
 public:
  Subscriber() noexcept;
  Subscriber(Subscriber&& other) noexcept;
  Subscriber& operator=(Subscriber&& other) noexcept;
  Subscriber(const Subscriber&) = delete;
  Subscriber& operator=(const Subscriber&) = delete;
  ~Subscriber();

  // The next message, copied into `message`.
  [[nodiscard]] Result<Delivered> receive(std::vector<std::byte>& message, Deadline deadline = forever);
  // The next message, in place: no copy. At most held_per_subscriber at once. Local
  // topics only: a nats:// topic refuses with Errc::invalid_argument.
  [[nodiscard]] Result<TopicMessage> receive_in_place(Deadline deadline = forever);
  // Messages this subscriber lost in all.
  std::uint64_t lost() const noexcept;

 private:
  friend class Topic;
  friend class Selector;  // watches the subscriber's slot
  std::unique_ptr<detail::SubscriberBackend> backend_;
};

// A subscriber as stat sees it. lag: messages published that it has not read yet. A
// nats:// topic's subscribers have no pid (0) here; their losses are their own to count.
struct TopicSubscriberStatus {
  pid_t pid = 0;
  bool alive = false;        // false: dead, its slot not yet recovered
  bool passed_over = false;  // stopped (SIGSTOP): a blocking topic's publishers do not wait for it
  std::uint64_t lag = 0;
  std::uint64_t received = 0;
  std::uint64_t lost = 0;    // overwritten before it read them
};

struct TopicPublisherStatus {
  pid_t pid = 0;
  bool alive = false;
  std::uint64_t published = 0;
};

struct TopicStatus {
  std::string name;
  std::string server;  // a nats:// topic's server ("nats://host:port"); empty for a local one
  Overflow overflow = Overflow::block;
  std::uint32_t capacity = 0;
  std::uint32_t history = 0;
  std::size_t max_message_size = 0;
  std::uint64_t published = 0;  // messages published since it was made (the last sequence number)
  std::uint32_t max_subscribers = 0;
  std::uint32_t max_publishers = 0;  // 0 on nats://: any number
  std::vector<TopicSubscriberStatus> subscribers;
  std::vector<TopicPublisherStatus> publishers;  // local only: a server does not know its publishers
  Ownership ownership = Ownership::system;
  pid_t owner_pid = 0;       // process-owned only
  bool owner_alive = false;  // process-owned only
  mode_t mode = 0;           // the file's permission bits
  uid_t owner_uid = 0;
  std::size_t memory_bytes = 0;
};

class Topic {
 public:
  // Errc::already_exists if the name is taken.
  [[nodiscard]] static Result<Topic> create(std::string_view name, const TopicOptions& options = {});
  [[nodiscard]] static Result<Topic> open(std::string_view name, const WaitPolicy& wait = {});
  // Every handle's calls fail with Errc::closed from now on; sleepers wake.
  [[nodiscard]] static Result<void> remove(std::string_view name);
  // What the topic holds and who uses it, read without joining it.
  [[nodiscard]] static Result<TopicStatus> stat(std::string_view name);
  // The names of this machine's topics.
  [[nodiscard]] static std::vector<std::string> list();
  // The full names of the topics a NATS server holds ("nats://host:port").
  [[nodiscard]] static Result<std::vector<std::string>> list(std::string_view server);

  [[nodiscard]] Result<Publisher> publisher() const;
  // Messages published from now on, and the last `history` ones the topic still keeps
  // (at most its own history).
  [[nodiscard]] Result<Subscriber> subscribe(std::uint32_t history = 0) const;

  const std::string& name() const noexcept;
  std::size_t max_message_size() const noexcept;

 private:
  std::shared_ptr<detail::TopicBackend> backend_;
};

}  // namespace shmbox
