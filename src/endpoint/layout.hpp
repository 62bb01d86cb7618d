// The endpoint file's shared-memory layout: a header and a table of lanes, one per
// sender. Each lane is a mailbox file of its own. docs/design.md ("Endpoints").
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "local/layout.hpp"

namespace shmbox::detail {

inline constexpr std::uint64_t endpoint_magic = 0x5045584f424d4853ull;  // "SHMBOXEP" little-endian
inline constexpr std::uint32_t endpoint_layout_version = 1;
inline constexpr std::uint64_t endpoint_header_bytes = 256;
inline constexpr std::size_t lane_name_capacity = 232;

// Line 0: written once by the joiner before the endpoint gets its name; never again.
struct EndpointIdentity {
  std::uint64_t magic;
  std::uint32_t layout_version;
  std::uint32_t header_size;
  std::uint32_t max_peers;
  std::uint32_t lane_buffering;  // BufferingCode
  std::uint32_t lane_capacity;
  std::uint32_t lane_max_message_size;
  std::uint64_t table_offset;
  std::uint64_t file_size;
  std::uint64_t owner;  // ProcessIdentity::packed() of the process that joined
  std::uint64_t reserved;
};
static_assert(sizeof(EndpointIdentity) == cache_line);

struct alignas(cache_line) EndpointHeader {
  EndpointIdentity identity;
  // Futex: bumped when a lane is added, and when the endpoint closes.
  alignas(cache_line) std::atomic<std::uint32_t> doorbell;
  std::atomic<std::uint32_t> doorbell_sleepers;  // counted by sleepers; the doorbell always wakes all
  std::atomic<std::uint32_t> closed;             // 1 once the endpoint's process left
  // Set by a sender that found every lane taken: the receiver then looks for lanes of
  // dead senders at once instead of at its next once-a-second sweep.
  std::atomic<std::uint32_t> sweep_requested;
};
static_assert(sizeof(EndpointHeader) <= endpoint_header_bytes);
static_assert(offsetof(EndpointHeader, doorbell) == 64);

// A sender's lane. Claimed by CAS of `sender` from 0; the name is written, the lane's
// mailbox file created, and only then `ready` set (release). Given back in the
// reverse order by the receiver once the sender is dead and the lane drained.
struct alignas(cache_line) LaneEntry {
  std::atomic<std::uint64_t> sender;  // ProcessIdentity::packed(); 0 = free
  std::atomic<std::uint64_t> ready;   // 1 once the lane's file exists
  std::atomic<std::uint32_t> name_length;
  std::uint32_t reserved;
  char name[lane_name_capacity];  // the sender's endpoint name; read only after ready
};
static_assert(sizeof(LaneEntry) == 256);

}  // namespace shmbox::detail
