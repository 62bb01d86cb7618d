// A remote mailbox's facts as its stream's configuration, state and description give
// them: what open and stat read.
#pragma once

#include <nats/nats.h>

#include <cstddef>
#include <cstdint>

#include "remote/nats_mailbox.hpp"
#include "shmbox/error.hpp"
#include "shmbox/mailbox_types.hpp"

namespace shmbox::detail {

// What a mailbox's stream says of it. Untrusted like shared memory: a stream someone
// else made may hold anything, so every field is read within bounds.
struct StreamFacts {
  Buffering buffering = Buffering::bounded;
  std::uint32_t capacity = 0;
  std::size_t max_message_size = 0;
  bool closed = false;
  std::int64_t created = 0;
  std::uint64_t queued = 0;
  std::uint64_t stored_bytes = 0;
  bool file_storage = false;
  std::uint32_t replicas = 1;
  OwnerMark owner;  // process-owned; empty: system-owned
};

// The stream's facts, asking again for up to 30 s while a cluster elects a leader (it
// answers nothing meanwhile: seconds, more on a loaded machine). "Not found" is an
// answer once the meta leader agrees.
Result<StreamFacts> read_stream(const RemoteName& name, jsCtx* jetstream, natsConnection* connection);

}  // namespace shmbox::detail
