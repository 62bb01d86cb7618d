#include "remote/nats_stream_facts.hpp"

#include <algorithm>
#include <chrono>
#include <thread>

#include "remote/lease.hpp"
#include "remote/nats_handles.hpp"
#include "remote/nats_streams.hpp"

namespace shmbox::detail {
namespace {

StreamFacts facts_of(const jsStreamInfo& info, natsConnection* connection) {
  const jsStreamConfig& config = *info.Config;
  StreamFacts facts;
  facts.buffering = config.MaxMsgs > 0 ? Buffering::bounded : Buffering::unbounded;
  facts.capacity = config.MaxMsgs > 0 ? static_cast<std::uint32_t>(std::min<std::int64_t>(config.MaxMsgs, UINT32_MAX)) : 0;
  if (marked(config.Description, zero_capacity_mark)) {
    facts.buffering = Buffering::zero;
    facts.capacity = 0;
  }
  const std::int64_t limit = config.MaxMsgSize > 0 ? config.MaxMsgSize : natsConnection_GetMaxPayload(connection);
  facts.max_message_size = static_cast<std::size_t>(std::max<std::int64_t>(limit - header_allowance, 0));
  facts.closed = marked(config.Description, closed_mark);
  facts.created = info.Created;
  facts.queued = info.State.Msgs;
  facts.stored_bytes = info.State.Bytes;
  facts.file_storage = config.Storage == js_FileStorage;
  facts.owner = owner_mark_in(config.Description);
  facts.replicas = static_cast<std::uint32_t>(std::clamp<std::int64_t>(config.Replicas, 1, 5));
  return facts;
}

}  // namespace

Result<StreamFacts> read_stream(const RemoteName& name, jsCtx* jetstream, natsConnection* connection) {
  OwnedStreamInfo info;
  jsErrCode code = static_cast<jsErrCode>(0);
  natsStatus status = NATS_OK;
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds{30};
  for (;;) {
    code = static_cast<jsErrCode>(0);
    status = js_GetStreamInfo(out(info), jetstream, stream_of(name).c_str(), nullptr, &code);
    if (status == NATS_OK || stream_removed(status, code, jetstream, stream_of(name))) break;
    if (std::chrono::steady_clock::now() >= give_up) break;
    std::this_thread::sleep_for(std::chrono::milliseconds{100});
  }
  if (status != NATS_OK) {
    if (missing(status, code)) return std::unexpected(not_found_error(name));
    return std::unexpected(nats_error(Errc::system, name, "cannot read its stream", status));
  }
  return facts_of(*info, connection);
}

}  // namespace shmbox::detail
