// Boards on NATS JetStream's key-value store. The board NAME is the bucket
// "SHMBOX_BOARD_NAME" (stream "KV_SHMBOX_BOARD_NAME", which listing mailboxes passes
// over) holding one key, "value", with a history of one:
//   - A version is the key's revision (its stream sequence): a new board has no entry,
//     which is version 0 and the empty value; each put stores one message, so versions
//     rise by one per put.
//   - put_if is a publish the server refuses unless the key's last revision is the one
//     expected (no message at all for version 0).
//   - watch is a KV watch of the key; a removal deletes the key before the bucket, so
//     that watchers hear of it at once (and they ask every second, for other deletions).
//   - max_size is the bucket's maximum value size less header_allowance (a conditional
//     put carries a header, and the server counts it), so open() learns it there.
// Everything read from the server is checked before use. Boards are system-owned: the
// server cannot tell that a process has gone.
#include "remote/nats_board.hpp"

#include <nats/nats.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "remote/nats_handles.hpp"
#include "remote/nats_streams.hpp"
#include "remote/remote_name.hpp"

namespace shmbox::detail {
namespace {

using OwnedKeyValue = NatsOwned<kvStore, kvStore_Destroy>;
using OwnedWatcher = NatsOwned<kvWatcher, kvWatcher_Destroy>;
using OwnedEntry = NatsOwned<kvEntry, kvEntry_Destroy>;

constexpr const char* value_key = "value";
// How often a watcher asks whether its bucket is still there.
constexpr std::chrono::seconds removal_check_interval{1};

// Where a board lies on its server, and how errors name it ("board 'nats://host:port/NAME'").
struct BoardPlace {
  RemoteName name;
  std::string bucket;
  std::string stream;
  std::string subject;
};

Result<BoardPlace> place_of(std::string_view text) {
  auto parsed = parse_remote_name(text, "board");
  if (!parsed) return std::unexpected(parsed.error());
  std::string bucket = "SHMBOX_BOARD_" + parsed->name;
  std::string stream = "KV_" + bucket;
  std::string subject = "$KV." + bucket + "." + value_key;
  return BoardPlace{std::move(*parsed), std::move(bucket), std::move(stream), std::move(subject)};
}

// The full name, as given: what open() takes.
std::string full_name(const BoardPlace& place) { return place.name.server + "/" + place.name.name; }

Error removed_error(const BoardPlace& place) { return Error{Errc::closed, place.name.object, "was removed"}; }

Error corrupt(const BoardPlace& place, std::string detail) {
  return Error{Errc::corrupt, place.name.object, std::move(detail)};
}

// A value from the server into `bytes`, if it fits the board.
Result<void> take_value(const BoardPlace& place, std::size_t max_size, const void* data, int length,
                        std::vector<std::byte>& bytes) {
  if (length < 0 || static_cast<std::size_t>(length) > max_size) {
    return std::unexpected(corrupt(place, "holds a value of " + std::to_string(length) +
                                              " bytes, over its maximum of " + std::to_string(max_size)));
  }
  const auto* first = static_cast<const std::byte*>(data);
  bytes.assign(first, first + length);
  return {};
}

// The latest value into `bytes`, and its version.
Result<std::uint64_t> read_latest(jsCtx* jetstream, const BoardPlace& place, std::size_t max_size,
                                  std::vector<std::byte>& bytes) {
  OwnedMsg latest;
  jsErrCode code = static_cast<jsErrCode>(0);
  const natsStatus status =
      js_GetLastMsg(out(latest), jetstream, place.stream.c_str(), place.subject.c_str(), nullptr, &code);
  if (status != NATS_OK) {
    if (code == JSNoMessageFoundErr) {  // nothing put yet
      bytes.clear();
      return 0;
    }
    if (stream_removed(status, code, jetstream, place.stream)) return std::unexpected(removed_error(place));
    return std::unexpected(request_failed(place.name, "cannot read its value", status, code));
  }
  // Only a deletion carries an operation: remove()'s, or another client's.
  const char* operation = nullptr;
  if (natsMsgHeader_Get(latest.get(), "KV-Operation", &operation) == NATS_OK) return std::unexpected(removed_error(place));
  const std::uint64_t version = natsMsg_GetSequence(latest.get());
  if (version == 0) return std::unexpected(corrupt(place, "gave its latest value without a revision"));
  if (auto taken = take_value(place, max_size, natsMsg_GetData(latest.get()), natsMsg_GetDataLength(latest.get()), bytes);
      !taken) {
    return std::unexpected(taken.error());
  }
  return version;
}

// The board's max_size, from its bucket's configuration.
Result<std::size_t> max_size_of(jsCtx* jetstream, const BoardPlace& place) {
  OwnedStreamInfo info;
  jsErrCode code = static_cast<jsErrCode>(0);
  const natsStatus status = js_GetStreamInfo(out(info), jetstream, place.stream.c_str(), nullptr, &code);
  if (status != NATS_OK) {
    if (missing(status, code)) return std::unexpected(not_found_error(place.name));
    return std::unexpected(request_failed(place.name, "cannot read its bucket", status, code));
  }
  const std::int64_t limit = info->Config->MaxMsgSize;
  if (limit <= header_allowance) {
    return std::unexpected(corrupt(place, "has a bucket whose maximum value size is " + std::to_string(limit) +
                                              ", which is no board's (its max_size and " +
                                              std::to_string(header_allowance) + " bytes of headers)"));
  }
  return static_cast<std::size_t>(limit - header_allowance);
}

BoardStatus status_of(const BoardPlace& place, std::uint64_t version, std::size_t size, std::size_t max_size) {
  BoardStatus status;
  status.name = full_name(place);
  status.version = version;
  status.size = size;
  status.max_size = max_size;
  status.ownership = Ownership::system;
  status.server = place.name.server;
  return status;
}

// A view's bytes: a copy of the value, as there is nothing to pin on the server.
struct CopiedValue final : BoardHold {
  std::vector<std::byte> bytes;
};

class NatsBoard final : public BoardBackend {
 public:
  NatsBoard(BoardPlace place, std::unique_ptr<NatsConnection> connection, OwnedKeyValue store, std::size_t max_size)
      : BoardBackend(full_name(place), place.name.object, max_size),
        place_(std::move(place)),
        connection_(std::move(connection)),
        store_(std::move(store)) {}

  // The server orders writers: there is no other writer's turn to wait for.
  Result<std::uint64_t> put(std::span<const std::byte> value, std::optional<std::uint64_t> expected_version,
                            Deadline) override {
    jsPubOptions options;
    jsPubOptions_Init(&options);
    if (expected_version) {
      // 0 in ExpectLastSubjectSeq means "no expectation": version 0 is "no message yet".
      if (*expected_version == 0) {
        options.ExpectNoMessage = true;
      } else {
        options.ExpectLastSubjectSeq = *expected_version;
      }
    }
    OwnedPubAck ack;
    jsErrCode code = static_cast<jsErrCode>(0);
    const natsStatus status = js_Publish(out(ack), jetstream(), place_.subject.c_str(), value.data(),
                                         static_cast<int>(value.size()), &options, &code);
    if (status == NATS_OK) {
      if (ack->Sequence == 0) return std::unexpected(corrupt(place_, "acknowledged a value without a revision"));
      return ack->Sequence;
    }
    if (code == JSStreamWrongLastSequenceErr && expected_version) {
      auto latest = version();
      if (!latest) return std::unexpected(latest.error());
      return std::unexpected(conflict(*expected_version, *latest));
    }
    if (code == JSStreamMessageExceedsMaximumErr) {
      return std::unexpected(Error{Errc::too_large, object(), "the server refused the value as too large"});
    }
    // Nobody listens on a deleted bucket's subject.
    if (status == NATS_NO_RESPONDERS && stream_gone(jetstream(), place_.stream)) return std::unexpected(removed_error(place_));
    return std::unexpected(request_failed(place_.name, "cannot put a value", status, code));
  }

  Result<std::uint64_t> get(std::vector<std::byte>& bytes) override {
    return read_latest(jetstream(), place_, max_size(), bytes);
  }

  Result<std::uint64_t> version() override {
    std::vector<std::byte> bytes;
    return get(bytes);
  }

  Result<BoardView> view() override {
    auto copy = std::make_unique<CopiedValue>();
    auto version = get(copy->bytes);
    if (!version) return std::unexpected(version.error());
    const std::span<const std::byte> bytes{copy->bytes};
    return make_view(std::move(copy), bytes, *version);
  }

  Result<BoardValue> watch(std::uint64_t after_version, Deadline deadline) override {
    BoardValue latest;
    auto version = get(latest.bytes);
    if (!version) return std::unexpected(version.error());
    if (*version > after_version) return newer(std::move(latest), *version, after_version);
    if (deadline.is_none()) {
      return std::unexpected(Error{Errc::would_block, object(), "has no version after " + std::to_string(after_version)});
    }
    // The watch hands over the key's latest entry first, so a put since the look above is
    // not missed.
    OwnedWatcher watcher;
    kvWatchOptions options;
    kvWatchOptions_Init(&options);
    natsStatus status = kvStore_Watch(out(watcher), store_.get(), value_key, &options);
    if (status != NATS_OK) return std::unexpected(watch_failed(status));
    auto next_removal_check = Deadline::clock::now() + removal_check_interval;
    for (;;) {
      const auto now = Deadline::clock::now();
      if (deadline.expired()) {
        return std::unexpected(Error{Errc::timeout, object(),
                                     "timed out waiting for a version after " + std::to_string(after_version)});
      }
      if (now >= next_removal_check) {
        if (stream_gone(jetstream(), place_.stream)) return std::unexpected(removed_error(place_));
        next_removal_check = now + removal_check_interval;
      }
      const auto wake_at = deadline.is_forever() ? next_removal_check : std::min(next_removal_check, deadline.until());
      const auto wait = std::chrono::ceil<std::chrono::milliseconds>(wake_at - now).count();
      OwnedEntry entry;
      status = kvWatcher_Next(out(entry), watcher.get(), std::max<std::int64_t>(wait, 1));
      if (status == NATS_TIMEOUT) continue;
      if (status != NATS_OK) return std::unexpected(watch_failed(status));
      if (entry == nullptr) continue;  // the end of the entries it held at the start
      if (kvEntry_Operation(entry.get()) != kvOp_Put) return std::unexpected(removed_error(place_));
      const std::uint64_t revision = kvEntry_Revision(entry.get());
      if (revision <= after_version) continue;
      if (auto taken = take_value(place_, max_size(), kvEntry_Value(entry.get()), kvEntry_ValueLen(entry.get()),
                                  latest.bytes);
          !taken) {
        return std::unexpected(taken.error());
      }
      return newer(std::move(latest), revision, after_version);
    }
  }

  Result<BoardStatus> status() override {
    std::vector<std::byte> bytes;
    auto version = get(bytes);
    if (!version) return std::unexpected(version.error());
    return status_of(place_, *version, bytes.size(), max_size());
  }

 private:
  jsCtx* jetstream() const noexcept { return connection_->jetstream.get(); }

  // A watch that breaks while the board is being removed is the removal's news.
  Error watch_failed(natsStatus status) const {
    if (stream_gone(jetstream(), place_.stream)) return removed_error(place_);
    return request_failed(place_.name, "cannot watch its value", status, static_cast<jsErrCode>(0));
  }

  static BoardValue newer(BoardValue value, std::uint64_t version, std::uint64_t after_version) {
    value.version = version;
    value.skipped = version - after_version - 1;
    return value;
  }

  BoardPlace place_;
  std::unique_ptr<NatsConnection> connection_;
  OwnedKeyValue store_;  // declared after the connection: destroyed before it
};

// A board's place and a connection to its server.
struct Reached {
  BoardPlace place;
  std::unique_ptr<NatsConnection> connection;
  std::size_t max_size = 0;  // read by reach_board
};

Result<Reached> reach(std::string_view name) {
  auto place = place_of(name);
  if (!place) return std::unexpected(place.error());
  auto connection = NatsConnection::open(place->name);
  if (!connection) return std::unexpected(connection.error());
  return Reached{std::move(*place), std::move(*connection)};
}

// The same for a board that must be there, with its max_size.
Result<Reached> reach_board(std::string_view name) {
  auto reached = reach(name);
  if (!reached) return reached;
  auto max_size = max_size_of(reached->connection->jetstream.get(), reached->place);
  if (!max_size) return std::unexpected(max_size.error());
  reached->max_size = *max_size;
  return reached;
}

}  // namespace

Result<std::unique_ptr<BoardBackend>> NatsBoards::create(std::string_view name, const BoardOptions& options) {
  auto place = place_of(name);
  if (!place) return std::unexpected(place.error());
  const std::string& object = place->name.object;
  if (options.max_size == 0) {
    return std::unexpected(Error{Errc::invalid_argument, object, "max_size must be at least 1 byte"});
  }
  if (options.replicas != 1 && options.replicas != 3 && options.replicas != 5) {
    return std::unexpected(Error{Errc::invalid_argument, object,
                                 "replicas must be 1, 3 or 5, not " + std::to_string(options.replicas)});
  }
  if (auto owned = system_owned_only(place->name, "board", options.ownership); !owned) {
    return std::unexpected(owned.error());
  }
  auto connection = NatsConnection::open(place->name);
  if (!connection) return std::unexpected(connection.error());
  jsCtx* jetstream = (*connection)->jetstream.get();
  if (auto fits = fits_payload(**connection, place->name, "max_size", options.max_size); !fits) {
    return std::unexpected(fits.error());
  }
  const auto exists = [&] {
    OwnedStreamInfo info;
    return js_GetStreamInfo(out(info), jetstream, place->stream.c_str(), nullptr, nullptr) == NATS_OK;
  };
  const Error already_exists{Errc::already_exists, object, "already exists on " + place->name.server};
  if (exists()) return std::unexpected(already_exists);
  const std::string description = unique_description("shmbox board");
  kvConfig config;
  kvConfig_Init(&config);
  config.Bucket = place->bucket.c_str();
  config.Description = description.c_str();
  config.MaxValueSize = static_cast<std::int32_t>(options.max_size) + header_allowance;
  config.History = 1;
  config.StorageType = js_FileStorage;  // system-owned: it outlives a server restart
  config.Replicas = static_cast<int>(options.replicas);
  OwnedKeyValue store;
  const natsStatus status = js_CreateKeyValue(out(store), jetstream, &config);
  if (status != NATS_OK) {
    if (exists()) return std::unexpected(already_exists);
    return std::unexpected(request_failed(place->name, "cannot create its bucket", status, static_cast<jsErrCode>(0)));
  }
  return std::make_unique<NatsBoard>(std::move(*place), std::move(*connection), std::move(store), options.max_size);
}

Result<std::unique_ptr<BoardBackend>> NatsBoards::open(std::string_view name) {
  auto reached = reach_board(name);
  if (!reached) return std::unexpected(reached.error());
  auto& [place, connection, max_size] = *reached;
  jsCtx* jetstream = connection->jetstream.get();
  OwnedKeyValue store;
  if (const natsStatus status = js_KeyValue(out(store), jetstream, place.bucket.c_str()); status != NATS_OK) {
    if (status == NATS_NOT_FOUND) return std::unexpected(not_found_error(place.name));  // removed meanwhile
    return std::unexpected(request_failed(place.name, "cannot open its bucket", status, static_cast<jsErrCode>(0)));
  }
  return std::make_unique<NatsBoard>(std::move(place), std::move(connection), std::move(store), max_size);
}

Result<void> NatsBoards::remove(std::string_view name) {
  auto reached = reach(name);
  if (!reached) return std::unexpected(reached.error());
  const BoardPlace& place = reached->place;
  jsCtx* jetstream = reached->connection->jetstream.get();
  // The key's deletion first: watchers hear of it at once, where the bucket's would reach
  // them only when they next ask.
  OwnedKeyValue store;
  if (js_KeyValue(out(store), jetstream, place.bucket.c_str()) == NATS_OK) (void)kvStore_Delete(store.get(), value_key);
  return delete_stream(jetstream, place.name, place.stream, "its bucket");
}

Result<BoardStatus> NatsBoards::stat(std::string_view name) {
  auto reached = reach_board(name);
  if (!reached) return std::unexpected(reached.error());
  auto& [place, connection, max_size] = *reached;
  jsCtx* jetstream = connection->jetstream.get();
  std::vector<std::byte> bytes;
  auto version = read_latest(jetstream, place, max_size, bytes);
  if (!version) return std::unexpected(version.error());
  return status_of(place, *version, bytes.size(), max_size);
}

}  // namespace shmbox::detail
