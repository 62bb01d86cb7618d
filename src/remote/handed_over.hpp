#pragma once

#include <nats/nats.h>

#include <cstdint>
#include <deque>
#include <utility>

#include "shmbox/wait.hpp"

namespace shmbox::detail {

// The messages a handle handed over lately, to pass over their redeliveries: in a
// cluster, a consumer leader killed before it replicated an ack (even one it confirmed)
// or a delivery has its successor deliver the message again, and the caller has it
// already. (Another receiver would take it again: delivery across receivers stays at
// least once.) Kept for 30 s, an election and the AckWait after it, and at most 65,536
// of them, so fewer seconds' worth above 2,000 messages a second.
class HandedOver {
 public:
  // A stored message: its stream sequence and the time the stream stored it. A mailbox
  // removed and made again under its name reuses sequences, not times.
  struct Stored {
    std::uint64_t sequence = 0;  // 0: unknown, never passed over
    std::int64_t time = 0;       // ns since the epoch
    bool operator==(const Stored&) const = default;
  };
  bool contains(const Stored& message) const;
  void add(const Stored& message);

 private:
  std::deque<std::pair<Stored, Deadline::clock::time_point>> recent_;
  std::uint64_t highest_ = 0;
};

// Where the stream stored a delivered message, from its metadata; unknown without any.
HandedOver::Stored stored_as(natsMsg* message);

}  // namespace shmbox::detail
