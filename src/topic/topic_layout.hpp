// A local topic's shared-memory layout: plain data, every offset fixed and checked at
// compile time. docs/design.md ("Topics") draws it and gives the algorithm.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace shmbox::detail {

// A topic's file in /dev/shm is this prefix and its name.
inline constexpr std::string_view topic_file_prefix = "shmbox.tp.";

inline constexpr std::uint64_t topic_magic = 0x5054504f54424d53ull;  // "SMBTOPTP" little-endian
inline constexpr std::uint32_t topic_layout_version = 3;
inline constexpr std::size_t topic_line = 64;
// A chunk's holders are bits in two words: a subscriber slot each.
inline constexpr std::uint32_t topic_holder_words = 2;
inline constexpr std::uint32_t topic_max_subscribers = 64 * topic_holder_words;
// Chunk indexes are 16 bits in a ring entry; the all-ones index means "no message".
inline constexpr std::uint32_t topic_no_chunk = 0xffff;
inline constexpr std::uint32_t topic_max_chunks = topic_no_chunk;
inline constexpr std::uint32_t topic_max_held_per_subscriber = 64;
// Sequence numbers are 48 bits in a ring entry: compared modulo 2^48, which a subscriber
// never falls 2^47 behind.
inline constexpr std::uint64_t topic_sequence_mask = (std::uint64_t{1} << 48) - 1;

enum class TopicOverflow : std::uint32_t { block = 0, overwrite = 1 };

// Line 0: written once by the creator before anyone can see the topic.
struct TopicIdentity {
  std::uint64_t magic;
  std::uint32_t layout_version;
  std::uint32_t capacity;          // ring entries: the messages a topic keeps
  std::uint32_t history;           // the most a late subscriber may ask for (<= capacity)
  std::uint32_t max_message_size;
  std::uint32_t chunk_count;       // capacity + 1 + subscribers * held + publishers
  std::uint32_t subscriber_slots;
  std::uint32_t publisher_slots;
  std::uint32_t held_per_subscriber;  // messages a subscriber may hold in place at once
  std::uint32_t stride;            // bytes from one chunk to the next (whole lines)
  TopicOverflow overflow;
  std::uint64_t owner;             // ProcessIdentity::packed() of the owning process; 0: the system
  std::uint64_t creator;
};
static_assert(sizeof(TopicIdentity) <= topic_line);

// Futex words that count events in the low 31 bits, with bit 31 set while someone sleeps
// on them (the side that makes the event wakes only then, and clears it).
struct EventWord {
  static constexpr std::uint32_t sleeping = std::uint32_t{1} << 31;
  static constexpr std::uint32_t next(std::uint32_t word) noexcept { return (word + 1) & ~sleeping; }
};

struct alignas(topic_line) TopicHeader {
  TopicIdentity identity;
  // Line 1: what publishers claim. head: the next sequence number to hand out (from 1).
  // gate (blocking topics): a lower bound of the live subscribers' cursors, so that a
  // publisher looks at every subscriber only when the ring seems full.
  alignas(topic_line) std::atomic<std::uint64_t> head;
  std::atomic<std::uint64_t> gate;
  std::atomic<std::uint32_t> next_chunk;  // where publishers look for a free chunk first
  // Line 2: subscribers sleep on published (an event per commit), publishers of a
  // blocking topic on consumed (an event when a subscriber moves on while one waits).
  alignas(topic_line) std::atomic<std::uint32_t> published;
  std::atomic<std::uint32_t> consumed;
  std::atomic<std::uint32_t> removed;  // 1 once removed: every handle's call fails, sleepers wake
};
static_assert(sizeof(TopicHeader) == 3 * topic_line);
static_assert(offsetof(TopicHeader, head) == 64 && offsetof(TopicHeader, published) == 128);

// A ring entry: the sequence number it holds (48 bits) and the chunk that holds its bytes.
struct RingEntry {
  static constexpr std::uint64_t make(std::uint64_t sequence, std::uint32_t chunk) noexcept {
    return (sequence & topic_sequence_mask) << 16 | chunk;
  }
  static constexpr std::uint64_t sequence(std::uint64_t entry) noexcept { return entry >> 16; }
  static constexpr std::uint32_t chunk(std::uint64_t entry) noexcept { return entry & 0xffff; }
};

// At the start of each chunk, its bytes after it. sequence: the message it holds, 0 while
// free (never used, or given back), or being_written(slot) while the publisher of that slot
// owns it (bit 63, which no sequence number reaches, and the slot: whoever recovers a dead
// publisher's slot frees exactly its chunk). holders: a bit per subscriber slot that reads
// it in place. next (a topic with one publisher slot): the chunk its publisher will fill
// with the next message, or topic_no_chunk; a hint its subscribers follow instead of
// reading the ring entry. A chunk numbered past every committed message is published
// already in such a topic: recovery puts it in the ring if its publisher died first.
struct alignas(topic_line) ChunkHeader {
  static constexpr std::uint64_t being_written_bit = std::uint64_t{1} << 63;
  static constexpr std::uint64_t being_written(std::uint32_t publisher_slot) noexcept {
    return being_written_bit | publisher_slot;
  }
  static constexpr bool is_being_written(std::uint64_t sequence) noexcept { return (sequence & being_written_bit) != 0; }
  std::atomic<std::uint64_t> sequence;
  std::atomic<std::uint64_t> size;
  std::atomic<std::uint64_t> holders[topic_holder_words];
  std::atomic<std::uint32_t> next;
};
static_assert(sizeof(ChunkHeader) == topic_line);

// One line per subscriber. owner: ProcessIdentity::packed() (0: free; with
// ProcessIdentity::recovering_bit: being recovered). cursor: the next
// sequence number it reads. lost: messages it was told it lost. evicted: 1 while a
// blocking topic's publishers pass it over (its process was stopped).
struct alignas(topic_line) SubscriberSlot {
  std::atomic<std::uint64_t> owner;
  std::atomic<std::uint64_t> cursor;
  std::atomic<std::uint64_t> lost;
  std::atomic<std::uint64_t> received;
  std::atomic<std::uint32_t> evicted;
};
static_assert(sizeof(SubscriberSlot) == topic_line);

// One line per publisher. owner as above. chunk: the chunk it writes (topic_no_chunk: none).
// claiming: the sequence number it is claiming (0: none), written just before its CAS of
// head and cleared if that fails, so that whoever finds the publisher dead knows what it
// may have claimed and not committed.
struct alignas(topic_line) PublisherSlot {
  std::atomic<std::uint64_t> owner;
  std::atomic<std::uint64_t> claiming;
  std::atomic<std::uint32_t> chunk;
  std::atomic<std::uint64_t> published;
};
static_assert(sizeof(PublisherSlot) == topic_line);

constexpr std::size_t topic_round_to_line(std::size_t bytes) noexcept {
  return (bytes + topic_line - 1) / topic_line * topic_line;
}

// Where each part starts, from the counts in the identity.
struct TopicGeometry {
  std::uint32_t capacity;
  std::uint32_t chunk_count;
  std::uint32_t subscriber_slots;
  std::uint32_t publisher_slots;
  std::uint32_t stride;

  constexpr std::size_t entries_offset() const noexcept { return sizeof(TopicHeader); }
  constexpr std::size_t subscribers_offset() const noexcept {
    return topic_round_to_line(entries_offset() + std::size_t{capacity} * sizeof(std::uint64_t));
  }
  constexpr std::size_t publishers_offset() const noexcept {
    return subscribers_offset() + std::size_t{subscriber_slots} * sizeof(SubscriberSlot);
  }
  constexpr std::size_t chunks_offset() const noexcept {
    return publishers_offset() + std::size_t{publisher_slots} * sizeof(PublisherSlot);
  }
  constexpr std::size_t file_size() const noexcept { return chunks_offset() + std::size_t{chunk_count} * stride; }

  static constexpr std::uint64_t chunks_for(std::uint64_t capacity, std::uint64_t subscribers,
                                            std::uint64_t held_per_subscriber, std::uint64_t publishers) noexcept {
    return capacity + 1 + subscribers * held_per_subscriber + publishers;
  }
  static constexpr std::uint32_t stride_for(std::uint32_t max_message_size) noexcept {
    return static_cast<std::uint32_t>(topic_round_to_line(sizeof(ChunkHeader) + max_message_size));
  }
};

}  // namespace shmbox::detail
