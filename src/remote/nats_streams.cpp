#include "remote/nats_streams.hpp"

#include <algorithm>
#include <random>

namespace shmbox::detail {

std::expected<std::vector<std::string>, natsStatus> stream_names(jsCtx* jetstream, jsOptions* options) {
  OwnedStreamNames streams;
  const natsStatus status = js_StreamNames(out(streams), jetstream, options, nullptr);
  if (status == NATS_NOT_FOUND) return std::vector<std::string>{};  // no streams at all
  if (status != NATS_OK) return std::unexpected(status);
  return std::vector<std::string>(streams->List, streams->List + streams->Count);
}

Result<std::vector<std::string>> names_on(NatsConnection& connection, const RemoteName& server, std::string_view prefix) {
  const auto streams = stream_names(connection.jetstream.get());
  if (!streams) return std::unexpected(nats_error(Errc::system, server, "cannot list its streams", streams.error()));
  std::vector<std::string> names;
  for (const std::string_view stream : *streams) {
    if (stream.starts_with(prefix)) names.push_back(server.server + "/" + std::string{stream.substr(prefix.size())});
  }
  std::sort(names.begin(), names.end());
  return names;
}

bool stream_removed(natsStatus status, jsErrCode code, jsCtx* jetstream, const std::string& stream, jsOptions* options) {
  if (!missing(status, code)) return false;
  const auto names = stream_names(jetstream, options);
  return names && std::find(names->begin(), names->end(), stream) == names->end();
}

Result<void> delete_stream(jsCtx* jetstream, const RemoteName& name, const std::string& stream, const char* what) {
  jsErrCode code = static_cast<jsErrCode>(0);
  const natsStatus status = js_DeleteStream(jetstream, stream.c_str(), nullptr, &code);
  if (status == NATS_OK) return {};
  if (missing(status, code)) return std::unexpected(not_found_error(name));
  return std::unexpected(request_failed(name, std::string{"cannot remove "} + what, status, code));
}

Result<OwnedStreamInfo> read_stream(jsCtx* jetstream, const RemoteName& name, const std::string& stream,
                                    const std::string& doing, const Error& gone) {
  for (int attempt = 1;; ++attempt) {
    OwnedStreamInfo info;
    jsErrCode code = static_cast<jsErrCode>(0);
    const natsStatus status = js_GetStreamInfo(out(info), jetstream, stream.c_str(), nullptr, &code);
    if (status == NATS_OK) return info;
    if (stream_removed(status, code, jetstream, stream)) return std::unexpected(gone);
    if (!missing(status, code) || attempt == 3) return std::unexpected(request_failed(name, doing, status, code));
  }
}

bool stream_gone(jsCtx* jetstream, const std::string& stream) {
  OwnedStreamInfo info;
  jsErrCode code = static_cast<jsErrCode>(0);
  const natsStatus status = js_GetStreamInfo(out(info), jetstream, stream.c_str(), nullptr, &code);
  return status != NATS_OK && stream_removed(status, code, jetstream, stream);
}

std::string unique_description(std::string_view kind) {
  std::random_device random;
  return std::string{kind} + " #" + std::to_string((std::uint64_t{random()} << 32) ^ random());
}

Result<void> system_owned_only(const RemoteName& name, std::string_view kind, Ownership ownership) {
  if (ownership == Ownership::system) return {};
  return std::unexpected(Error{Errc::invalid_argument, name.object,
                               "a nats:// " + std::string{kind} +
                                   " is system-owned (the server cannot tell that a process has gone): create it with "
                                   "Ownership::system"});
}

Result<void> fits_payload(const NatsConnection& connection, const RemoteName& name, std::string_view option,
                          std::size_t size) {
  const std::int64_t max_payload = natsConnection_GetMaxPayload(connection.connection.get());
  if (size <= static_cast<std::size_t>(std::max<std::int64_t>(max_payload - header_allowance, 0))) return {};
  return std::unexpected(Error{Errc::too_large, name.object,
                               std::string{option} + " " + std::to_string(size) +
                                   " (and its headers) is over the server's maximum payload of " +
                                   std::to_string(max_payload) + " bytes"});
}

NatsConnection::~NatsConnection() {
  // Closed first, which stops its reader thread: cnats 3.4 can crash delivering a late
  // message (a fetch's expiry notice) to a subscription being destroyed (nats.c #637,
  // fixed in 3.6).
  if (connection != nullptr) natsConnection_Close(connection.get());
}

Result<std::unique_ptr<NatsConnection>> NatsConnection::open(const RemoteName& name) {
  auto made = std::make_unique<NatsConnection>();
  OwnedOptions owned_options;
  natsStatus status = natsOptions_Create(out(owned_options));
  natsOptions* options = owned_options.get();
  std::vector<const char*> servers;
  for (const auto& server : name.servers) servers.push_back(server.c_str());
  if (status == NATS_OK) status = natsOptions_SetServers(options, servers.data(), static_cast<int>(servers.size()));
  if (status == NATS_OK) status = natsOptions_SetTimeout(options, 2000);  // connecting: then Unreachable
  // A handle outlives any outage (a server restarting, a cluster electing): calls wait
  // by their deadlines meanwhile, rather than the handle dying after so many tries.
  if (status == NATS_OK) status = natsOptions_SetMaxReconnect(options, -1);
  if (status == NATS_OK) status = natsOptions_SetReconnectWait(options, 250);
  // Write each request at once: by default the client holds a plain publish (a fetch's
  // pull request, a rendezvous reply) up to 1 ms for company, which set every receive's pace.
  if (status == NATS_OK) status = natsOptions_SetSendAsap(options, true);
  if (status == NATS_OK) status = natsConnection_Connect(out(made->connection), options);
  if (status != NATS_OK) {
    return std::unexpected(nats_error(Errc::unreachable, name, "cannot reach the NATS server " + name.server, status));
  }
  // JetStream requests (stream info, acks, deletes) wait 2 s for an answer, not cnats' 5 s.
  jsOptions jetstream_options;
  jsOptions_Init(&jetstream_options);
  jetstream_options.Wait = 2000;
  status = natsConnection_JetStream(out(made->jetstream), made->connection.get(), &jetstream_options);
  if (status != NATS_OK) return std::unexpected(nats_error(Errc::system, name, "cannot use JetStream", status));
  return made;
}

}  // namespace shmbox::detail
