// How a remote mailbox lies on a NATS server: the names of its streams and subjects, the
// marks its stream's description carries, and a connection to the server.
// docs/design.md ("Remote mailboxes") gives the whole mapping.
#pragma once

#include <nats/nats.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <expected>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "remote/nats_handles.hpp"
#include "remote/remote_name.hpp"
#include "shmbox/error.hpp"
#include "shmbox/mailbox_types.hpp"
#include "shmbox/wait.hpp"

namespace shmbox::detail {

inline constexpr std::string_view stream_prefix = "SHMBOX_";
inline std::string stream_of(const RemoteName& name) { return std::string{stream_prefix} + name.name; }
inline std::string subject_of(const RemoteName& name) { return "shmbox.mb." + name.name; }
// The durable pull consumer that every receiver binds to (zero capacity: the queue group).
inline constexpr const char* durable_consumer = "receivers";
// The server's size limit counts headers too, and every message carries its id in one.
inline constexpr std::int32_t header_allowance = 256;
// Zero capacity: a rendezvous over core request/reply on this subject, queue group
// "receivers". Its stream holds no messages; it records that the mailbox exists.
inline std::string rendezvous_of(const RemoteName& name) { return "shmbox.rv." + name.name; }
// A closed mailbox's stream listens on another subject, so that a send finds no stream
// (and then learns why).
inline std::string closed_subject_of(const RemoteName& name) { return "shmbox.closed." + name.name; }
// A process-owned mailbox's lease: a stream of its own (named so that listing mailboxes
// by prefix passes it over) holding each owner's last heartbeat, on the subject of this
// prefix and the mailbox's nonce (lease.hpp).
inline std::string lease_stream_of(const RemoteName& name) { return "SHMBOXLEASE_" + name.name; }
inline std::string lease_subject_prefix_of(const RemoteName& name) { return "shmbox.lease." + name.name + "."; }

// The stream's description: "shmbox" marks joined by "; ".
inline constexpr std::string_view zero_capacity_mark = "shmbox zero capacity";
inline constexpr std::string_view closed_mark = "shmbox closed";
inline constexpr std::string_view owner_mark = "shmbox owned by ";  // then "PID COMMAND@HOST #NONCE"
inline bool marked(const char* description, std::string_view mark) {
  return description != nullptr && std::string_view{description}.find(mark) != std::string_view::npos;
}

// A non-blocking receive still asks the server: one round trip, at most this long
// (cnats refuses a fetch without any wait).
inline constexpr std::int64_t no_wait_fetch_ms = 10;

// Milliseconds left until `deadline`, 1 to `longest` (cnats takes no zero wait).
inline std::int64_t wait_ms(Deadline deadline, std::int64_t longest) {
  if (deadline.is_none()) return no_wait_fetch_ms;
  if (deadline.is_forever()) return longest;
  const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline.until() - Deadline::clock::now()).count();
  return std::clamp<std::int64_t>(left, 1, longest);
}

inline Error nats_error(Errc errc, const RemoteName& name, const std::string& doing, natsStatus status) {
  return Error{errc, name.object, doing + ": " + natsStatus_GetText(status)};
}

// `kind` and a number no other create writes: a create of a stream (or bucket) that exists
// with the same configuration succeeds, so two creators racing must not write the same.
std::string unique_description(std::string_view kind);

// A server's word that the stream (or the receivers' consumer) does not exist; not
// hearing back is no such word. In a cluster it is not final either: while a stream
// elects a leader every member answers, and one still loading it after a restart says
// "not found". stream_removed asks the one server whose word is final.
inline bool missing(natsStatus status, jsErrCode code) {
  return status == NATS_NOT_FOUND || code == JSStreamNotFoundErr || code == JSConsumerNotFoundErr;
}
// The names of the streams the server knows, or why it did not say (in a cluster, only
// the JetStream meta leader answers). `options` may bound the wait.
std::expected<std::vector<std::string>, natsStatus> stream_names(jsCtx* jetstream, jsOptions* options = nullptr);
// True only if a server answered that `stream` is missing (status, code) and the meta
// leader agrees that it is not among its streams; false if it is, or if nobody answers.
bool stream_removed(natsStatus status, jsErrCode code, jsCtx* jetstream, const std::string& stream,
                    jsOptions* options = nullptr);
// An answer that may change if asked again: nobody answering for the stream or its
// consumer (a cluster electing a leader), a member still catching up saying "not found",
// a connection between servers. Any other error is final.
inline bool transient(natsStatus status, jsErrCode code) {
  return status == NATS_TIMEOUT || status == NATS_NO_RESPONDERS || status == NATS_CONNECTION_DISCONNECTED ||
         status == NATS_STALE_CONNECTION || missing(status, code) || code == JSClusterNotAvailErr;
}
// A request that failed: the server out of reach (said as when connecting) or its refusal.
// Callers tell a missing stream apart first.
inline Error request_failed(const RemoteName& name, const std::string& doing, natsStatus status, jsErrCode code) {
  if (transient(status, code)) {
    return nats_error(Errc::unreachable, name, "cannot reach the NATS server " + name.server, status);
  }
  return nats_error(Errc::system, name, doing, status);
}
// Deletes `stream`, which holds the object `name` (a missing one is not_found); `what` names
// the stream in errors ("its bucket").
Result<void> delete_stream(jsCtx* jetstream, const RemoteName& name, const std::string& stream, const char* what);
// What the server says of `stream`, which holds the object `name`: `gone` if it is not
// there (the meta leader agrees), else request_failed(doing). A "not found" that the leader
// contradicts (the stream was made between the two questions) is asked again.
Result<OwnedStreamInfo> read_stream(jsCtx* jetstream, const RemoteName& name, const std::string& stream,
                                    const std::string& doing, const Error& gone);
// The server's word that `stream` is gone (not hearing back is no such word).
bool stream_gone(jsCtx* jetstream, const std::string& stream);

inline Error not_found_error(const RemoteName& name) {
  return Error{Errc::not_found, name.object, "does not exist on " + name.server};
}
inline Error removed_error(const RemoteName& name) {
  return Error{Errc::closed, name.object, "is closed: its stream was removed"};
}

struct NatsConnection {
  // Destroyed in the reverse order: the subscription and the context before the connection.
  OwnedConnection connection;
  OwnedJetStream jetstream;
  OwnedSubscription receivers;  // bound on the first receive

  NatsConnection() = default;
  NatsConnection(const NatsConnection&) = delete;
  NatsConnection& operator=(const NatsConnection&) = delete;
  ~NatsConnection();

  // Unreachable, naming the server, if none of `name`'s servers answers within 2 s.
  static Result<std::unique_ptr<NatsConnection>> open(const RemoteName& name);
};

// A place on a server, as a transport's `place_of` reads it from a name, and a connection
// to that server.
template <class Place>
struct Reached {
  Place place;
  std::unique_ptr<NatsConnection> connection;
};

template <class Place>
Result<Reached<Place>> reach(std::string_view name, Result<Place> (*place_of)(std::string_view)) {
  auto place = place_of(name);
  if (!place) return std::unexpected(place.error());
  auto connection = NatsConnection::open(place->name);
  if (!connection) return std::unexpected(connection.error());
  return Reached<Place>{std::move(*place), std::move(*connection)};
}

// The full names ("nats://host:port/NAME") of the objects whose streams are `prefix` + NAME
// on the server `connection` reaches, sorted.
Result<std::vector<std::string>> names_on(NatsConnection& connection, const RemoteName& server, std::string_view prefix);

// What a create on a server refuses alike for boards and topics: process ownership (the
// server cannot tell that a process has gone), and a `size` option that, with its headers,
// is over the server's maximum payload.
Result<void> system_owned_only(const RemoteName& name, std::string_view kind, Ownership ownership);
Result<void> fits_payload(const NatsConnection& connection, const RemoteName& name, std::string_view option,
                          std::size_t size);

}  // namespace shmbox::detail
