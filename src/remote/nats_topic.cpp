// Topics on NATS JetStream. The topic NAME is the stream "SHMBOXTOPIC_NAME" (which listing
// mailboxes passes over) capturing the subject "shmbox.topic.NAME":
//   - The stream keeps the last `capacity` messages (MaxMsgs, older ones discarded), at
//     most `max_message_size` bytes each (MaxMsgSize, less header_allowance), and at most
//     `max_subscribers` consumers (MaxConsumers). Its description carries the history a
//     late subscriber may ask for: "shmbox topic; history H #NONCE".
//   - A publish is a JetStream publish that expects this stream: its acknowledgement gives
//     the message's sequence number, the stream's.
//   - A subscriber is an ordered consumer (no acknowledgements, flow-controlled, made
//     again by the client after a gap or a lost heartbeat) starting at the first message
//     it is to get. A sequence number that jumps says how many messages the stream
//     discarded before this subscriber read them: those are its losses.
//   - Overflow is always overwrite: the server does not wait for subscribers, so a
//     blocking topic is refused at creation.
// Everything read from the server is checked before use. Topics are system-owned: the
// server cannot tell that a process has gone.
#include "remote/nats_topic.hpp"

#include <nats/nats.h>

#include <charconv>
#include <cstdio>
#include <random>
#include <climits>
#include <chrono>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

#include "remote/nats_handles.hpp"
#include "remote/nats_streams.hpp"
#include "remote/remote_name.hpp"

namespace shmbox::detail {
namespace {

using OwnedConsumerInfoList = NatsOwned<jsConsumerInfoList, jsConsumerInfoList_Destroy>;

constexpr std::string_view history_mark = "shmbox topic; history ";
constexpr std::string_view topic_stream_prefix = "SHMBOXTOPIC_";
constexpr std::chrono::seconds duplicate_window{30};
// How often a waiting subscriber asks whether its topic is still there (and how often one
// whose subscription failed tries again).
constexpr std::chrono::seconds removal_check_interval{1};
// The longest one JetStream request waits for its answer.
constexpr std::int64_t request_wait_ms = 2000;

// Where a topic lies on its server, and how errors name it ("topic 'nats://host:port/NAME'").
struct TopicPlace {
  RemoteName name;
  std::string stream;
  std::string subject;
};

Result<TopicPlace> place_of(std::string_view text) {
  auto parsed = parse_remote_name(text, "topic");
  if (!parsed) return std::unexpected(parsed.error());
  std::string stream = std::string{topic_stream_prefix} + parsed->name;
  std::string subject = "shmbox.topic." + parsed->name;
  return TopicPlace{std::move(*parsed), std::move(stream), std::move(subject)};
}

Error corrupt(const TopicPlace& place, std::string detail) {
  return Error{Errc::corrupt, place.name.object, std::move(detail)};
}

// What the stream says of the topic, checked.
struct TopicFacts {
  std::uint32_t capacity = 0;
  std::uint32_t history = 0;
  std::size_t max_message_size = 0;
  std::uint32_t max_subscribers = 0;
  std::uint64_t first = 0;  // the oldest message it keeps (0: none yet)
  std::uint64_t last = 0;   // the newest message published (0: none yet)
  std::uint64_t bytes = 0;
};

Result<TopicFacts> facts_of(const TopicPlace& place, const jsStreamInfo& info) {
  const jsStreamConfig* config = info.Config;
  if (config == nullptr) return std::unexpected(corrupt(place, "its stream's answer has no configuration"));
  const std::string_view description = config->Description != nullptr ? config->Description : "";
  if (!description.starts_with(history_mark)) {
    return std::unexpected(corrupt(place, "its stream is not a topic's (its description is '" +
                                              std::string{description} + "')"));
  }
  TopicFacts facts;
  const std::string_view history = description.substr(history_mark.size());
  const auto [end, error] = std::from_chars(history.data(), history.data() + history.size(), facts.history);
  if (error != std::errc{} || (end != history.data() + history.size() && *end != ' ')) {
    return std::unexpected(corrupt(place, "its stream's description gives no history: '" + std::string{description} + "'"));
  }
  if (config->MaxMsgs < 1 || config->MaxMsgs > max_topic_capacity || facts.history > config->MaxMsgs) {
    return std::unexpected(corrupt(place, "its stream keeps " + std::to_string(config->MaxMsgs) +
                                              " messages, not a capacity from 1 to " +
                                              std::to_string(max_topic_capacity) + " that holds its history of " +
                                              std::to_string(facts.history)));
  }
  facts.capacity = static_cast<std::uint32_t>(config->MaxMsgs);
  const std::int64_t max_size = std::int64_t{config->MaxMsgSize} - header_allowance;
  if (max_size < 0 || static_cast<std::uint64_t>(max_size) > max_topic_message_size) {
    return std::unexpected(corrupt(place, "its stream's largest message, " + std::to_string(config->MaxMsgSize) +
                                              " bytes, is no topic's"));
  }
  facts.max_message_size = static_cast<std::size_t>(max_size);
  if (config->MaxConsumers < 1 || config->MaxConsumers > max_topic_subscribers) {
    return std::unexpected(corrupt(place, "its stream allows " + std::to_string(config->MaxConsumers) +
                                              " consumers, not 1 to " + std::to_string(max_topic_subscribers)));
  }
  facts.max_subscribers = static_cast<std::uint32_t>(config->MaxConsumers);
  facts.first = info.State.Msgs > 0 ? info.State.FirstSeq : 0;
  facts.last = info.State.LastSeq;
  facts.bytes = info.State.Bytes;
  return facts;
}

// The topic's stream as its server describes it now.
Result<TopicFacts> read_facts(jsCtx* jetstream, const TopicPlace& place) {
  auto info = read_stream(jetstream, place.name, place.stream, "cannot read its stream", not_found_error(place.name));
  if (!info) return std::unexpected(info.error());
  return facts_of(place, **info);
}

// An ordered consumer of the topic's stream from message `start` on. A subscriber holds at
// most what its topic keeps: beyond that the client drops what comes, says so
// (NATS_SLOW_CONSUMER), and the subscriber starts again after the last message it took.
Result<OwnedSubscription> subscribe_from(jsCtx* jetstream, const TopicPlace& place, const TopicFacts& facts,
                                         std::uint64_t start) {
  jsSubOptions options;
  jsSubOptions_Init(&options);
  options.Stream = place.stream.c_str();
  options.Ordered = true;
  options.Config.DeliverPolicy = js_DeliverByStartSequence;
  options.Config.OptStartSeq = start;
  OwnedSubscription subscription;
  jsErrCode code = static_cast<jsErrCode>(0);
  const natsStatus status = js_SubscribeSync(out(subscription), jetstream, place.subject.c_str(), nullptr, &options, &code);
  if (status != NATS_OK) {
    if (code == JSMaximumConsumersLimitErr) {
      return std::unexpected(Error{Errc::in_use, place.name.object,
                                   "has no subscriber slot free: all " + std::to_string(facts.max_subscribers) +
                                       " are taken"});
    }
    if (stream_removed(status, code, jetstream, place.stream)) return std::unexpected(topic_removed(place.name.object));
    return std::unexpected(request_failed(place.name, "cannot subscribe", status, code));
  }
  const std::int64_t most = std::int64_t{facts.capacity};
  const std::int64_t bytes = most * (static_cast<std::int64_t>(facts.max_message_size) + header_allowance);
  (void)natsSubscription_SetPendingLimits(subscription.get(), static_cast<int>(most),
                                          static_cast<int>(std::min<std::int64_t>(bytes, INT_MAX)));
  return subscription;
}

// 16 hex digits no other publisher has, and a dash: what each message id starts with.
std::string publisher_nonce() {
  std::random_device random;
  char text[18];
  std::snprintf(text, sizeof text, "%08x%08x-", random(), random());
  return text;
}

class NatsPublisher final : public PublisherBackend {
 public:
  NatsPublisher(std::shared_ptr<NatsConnection> connection, const TopicPlace& place, std::size_t max_message_size)
      : connection_(std::move(connection)),
        place_(place),
        max_message_size_(max_message_size),
        id_prefix_(publisher_nonce()) {}

  Result<std::uint64_t> publish(std::span<const std::byte> message, Deadline deadline) override {
    if (message.size() > max_message_size_) {
      return std::unexpected(topic_too_large(place_.name.object, message.size(), max_message_size_));
    }
    jsCtx* jetstream = connection_->jetstream.get();
    // One id per message, kept across retries: one stored whose acknowledgement was lost is
    // not stored again (the stream's duplicate window), and the retry learns its number.
    const std::string id = id_prefix_ + std::to_string(++published_);
    auto backoff = std::chrono::milliseconds{1};
    for (;;) {
      jsPubOptions options;
      jsPubOptions_Init(&options);
      options.MsgId = id.c_str();  // its header and this id stay well within header_allowance
      options.MaxWait = wait_ms(deadline.is_none() ? forever : deadline, request_wait_ms);
      OwnedPubAck ack;
      jsErrCode code = static_cast<jsErrCode>(0);
      const natsStatus status = js_Publish(out(ack), jetstream, place_.subject.c_str(), message.data(),
                                           static_cast<int>(message.size()), &options, &code);
      if (status == NATS_OK) {
        if (ack == nullptr || ack->Sequence == 0) {
          return std::unexpected(corrupt(place_, "acknowledged a message without its sequence number"));
        }
        // Another stream on the subject (the topic's being gone) took it: not this topic's.
        if (ack->Stream == nullptr || place_.stream != ack->Stream) {
          if (stream_gone(jetstream, place_.stream)) return std::unexpected(topic_removed(place_.name.object));
          return std::unexpected(corrupt(place_, "a message published to it was stored by the stream '" +
                                                     std::string{ack->Stream != nullptr ? ack->Stream : ""} + "'"));
        }
        return ack->Sequence;
      }
      // Nobody listens on the subject: the stream is gone, or its server is away for now.
      if (status == NATS_NO_RESPONDERS || missing(status, code)) {
        if (stream_gone(jetstream, place_.stream)) return std::unexpected(topic_removed(place_.name.object));
      }
      const bool may_wait = !deadline.is_none() && !deadline.expired();
      if (!transient(status, code) || !may_wait) return std::unexpected(request_failed(place_.name, "cannot publish", status, code));
      std::this_thread::sleep_for(backoff);
      backoff = std::min(backoff * 2, std::chrono::milliseconds{100});
    }
  }

  Result<TopicLoan> loan(std::size_t) override {
    return std::unexpected(Error{Errc::invalid_argument, place_.name.object,
                                 "lends no memory: a nats:// topic's messages are published as copies"});
  }

  Result<std::uint64_t> publish(TopicLoan&&, Deadline) override {
    return std::unexpected(Error{Errc::invalid_argument, place_.name.object, "the loan is not this publisher's"});
  }

 private:
  std::shared_ptr<NatsConnection> connection_;
  TopicPlace place_;
  std::size_t max_message_size_;
  std::string id_prefix_;  // unique to this publisher
  std::uint64_t published_ = 0;
};

class NatsSubscriber final : public SubscriberBackend {
 public:
  NatsSubscriber(std::shared_ptr<NatsConnection> connection, const TopicPlace& place, const TopicFacts& facts,
                 OwnedSubscription subscription, std::uint64_t first_expected)
      : connection_(std::move(connection)),
        place_(place),
        facts_(facts),
        subscription_(std::move(subscription)),
        expected_(first_expected) {}

  ~NatsSubscriber() override {
    // Deletes the consumer now, not when the server notices that nobody listens.
    if (subscription_ != nullptr) (void)natsSubscription_Unsubscribe(subscription_.get());
  }

  Result<Delivered> receive(std::vector<std::byte>& message, Deadline deadline) override {
    auto next_check = Deadline::clock::now() + removal_check_interval;
    for (;;) {
      natsStatus status = NATS_TIMEOUT;
      if (subscription_ != nullptr) {
        OwnedMsg got;
        status = natsSubscription_NextMsg(out(got), subscription_.get(), wait_ms(deadline, 1000));
        if (status == NATS_OK) {
          // A message before the one expected came twice (a consumer made again): passed over.
          if (auto taken = take(got.get(), message); !taken || taken->sequence != 0) return taken;
          continue;
        }
      }
      if (status == NATS_SLOW_CONSUMER) {
        // The client dropped messages it could not hold: start again after the last one
        // taken, from what the stream still keeps.
        (void)natsSubscription_Unsubscribe(subscription_.get());
        subscription_.reset();
        next_subscribe_ = {};
      }
      // A non-blocking receive does not wait for a subscription's request to the server.
      if (subscription_ == nullptr && !deadline.is_none() && Deadline::clock::now() >= next_subscribe_) {
        auto again = subscribe_from(connection_->jetstream.get(), place_, facts_, expected_);
        if (again) {
          subscription_ = std::move(*again);
          continue;
        }
        if (again.error().errc() != Errc::unreachable) return std::unexpected(again.error());
        next_subscribe_ = Deadline::clock::now() + removal_check_interval;  // the server away: later
      }
      if (subscription_ == nullptr && !deadline.is_none()) {
        std::this_thread::sleep_for(std::chrono::milliseconds{50});
      } else if (status != NATS_TIMEOUT && status != NATS_SLOW_CONSUMER) {
        return std::unexpected(nats_error(Errc::system, place_.name, "cannot receive", status));
      }
      if (deadline.is_none()) return std::unexpected(Error{Errc::would_block, {}, {}});
      if (deadline.expired()) return std::unexpected(Error{Errc::timeout, place_.name.object, "timed out"});
      if (const auto now = Deadline::clock::now(); now >= next_check) {
        if (stream_gone(connection_->jetstream.get(), place_.stream)) return std::unexpected(topic_removed(place_.name.object));
        next_check = now + removal_check_interval;
      }
    }
  }

  Result<TopicMessage> receive_in_place(Deadline) override {
    return std::unexpected(Error{Errc::invalid_argument, place_.name.object,
                                 "is not in this machine's memory: receive a nats:// topic's messages as copies"});
  }

  std::uint64_t lost() const noexcept override { return lost_; }

  Result<TopicWatch> watch() const override {
    return std::unexpected(Error{Errc::invalid_argument, "selector",
                                 "a subscriber of a nats:// topic cannot be watched; use a local topic"});
  }

 private:
  // A message from the server: its sequence number, and the losses just before it.
  Result<Delivered> take(natsMsg* got, std::vector<std::byte>& message) {
    OwnedMsgMetaData meta;
    const natsStatus status = natsMsg_GetMetaData(out(meta), got);  // `meta` is set once this statement ends
    if (status != NATS_OK || meta == nullptr || meta->Sequence.Stream == 0) {
      return std::unexpected(corrupt(place_, "delivered a message without its sequence number"));
    }
    const std::uint64_t sequence = meta->Sequence.Stream;
    if (sequence < expected_) return Delivered{};  // had already: the caller passes it over
    const std::uint64_t lost = sequence - expected_;
    expected_ = sequence + 1;
    lost_ += lost;
    const int length = natsMsg_GetDataLength(got);
    if (length < 0 || static_cast<std::size_t>(length) > facts_.max_message_size) {
      return std::unexpected(corrupt(place_, "delivered message " + std::to_string(sequence) + " of " +
                                                 std::to_string(length) + " bytes, over its maximum of " +
                                                 std::to_string(facts_.max_message_size)));
    }
    const auto* first = reinterpret_cast<const std::byte*>(natsMsg_GetData(got));
    message.assign(first, first + length);
    return Delivered{.size = message.size(), .sequence = sequence, .lost = lost};
  }

  // Declared first: destroyed after the subscription.
  std::shared_ptr<NatsConnection> connection_;
  TopicPlace place_;
  TopicFacts facts_;  // as it was when subscribed: capacity and sizes do not change
  OwnedSubscription subscription_;
  std::uint64_t expected_;  // the sequence number of the next message, if none is lost
  Deadline::clock::time_point next_subscribe_{};  // a failed subscription is tried again from then
  std::uint64_t lost_ = 0;
};

class NatsTopic final : public TopicBackend {
 public:
  NatsTopic(TopicPlace place, std::shared_ptr<NatsConnection> connection, const TopicFacts& facts)
      : TopicBackend(place.name.server + "/" + place.name.name, place.name.object, facts.max_message_size),
        place_(std::move(place)),
        connection_(std::move(connection)),
        history_(facts.history) {}

  Result<std::unique_ptr<PublisherBackend>> publisher() override {
    return std::make_unique<NatsPublisher>(connection_, place_, max_message_size());
  }

  Result<std::unique_ptr<SubscriberBackend>> subscribe(std::uint32_t history) override {
    jsCtx* jetstream = connection_->jetstream.get();
    auto facts = read_facts(jetstream, place_);
    if (!facts) {
      if (facts.error().errc() == Errc::not_found) return std::unexpected(topic_removed(place_.name.object));
      return std::unexpected(facts.error());
    }
    // The last `history` messages (at most the topic's), as far as the stream still keeps them.
    const std::uint64_t wanted = std::min(history, history_);
    std::uint64_t start = facts->last + 1 - std::min<std::uint64_t>(wanted, facts->last);
    if (wanted > 0 && facts->first > start) start = facts->first;
    auto subscription = subscribe_from(jetstream, place_, *facts, start);
    if (!subscription) return std::unexpected(subscription.error());
    return std::make_unique<NatsSubscriber>(connection_, place_, *facts, std::move(*subscription), start);
  }

 private:
  TopicPlace place_;
  std::shared_ptr<NatsConnection> connection_;
  std::uint32_t history_;
};


}  // namespace

Result<std::shared_ptr<TopicBackend>> NatsTopics::create(std::string_view name, const TopicOptions& options) {
  auto place = place_of(name);
  if (!place) return std::unexpected(place.error());
  const std::string& object = place->name.object;
  if (auto checked = check_topic_options(object, options); !checked) return std::unexpected(checked.error());
  if (options.overflow == Overflow::block) {
    return std::unexpected(Error{Errc::invalid_argument, object,
                                 "a nats:// topic overwrites (its server does not wait for subscribers): create it "
                                 "with Overflow::overwrite"});
  }
  if (auto owned = system_owned_only(place->name, "topic", options.ownership); !owned) {
    return std::unexpected(owned.error());
  }
  auto connection = NatsConnection::open(place->name);
  if (!connection) return std::unexpected(connection.error());
  jsCtx* jetstream = (*connection)->jetstream.get();
  if (auto fits = fits_payload(**connection, place->name, "max_message_size", options.max_message_size); !fits) {
    return std::unexpected(fits.error());
  }
  const std::string description = unique_description(std::string{history_mark} + std::to_string(options.history));
  const char* subjects[] = {place->subject.c_str()};
  jsStreamConfig config;
  jsStreamConfig_Init(&config);
  config.Name = place->stream.c_str();
  config.Description = description.c_str();
  config.Subjects = subjects;
  config.SubjectsLen = 1;
  config.Retention = js_LimitsPolicy;
  config.Discard = js_DiscardOld;  // overwrite: the oldest message goes
  config.MaxMsgs = options.capacity;
  config.MaxMsgSize = static_cast<std::int32_t>(options.max_message_size) + header_allowance;
  config.MaxConsumers = options.max_subscribers;
  // Message ids are remembered this long: a publish retried within it is not stored twice,
  // and the server keeps no more than a few seconds' worth of ids.
  config.Duplicates = std::chrono::duration_cast<std::chrono::nanoseconds>(duplicate_window).count();
  config.Storage = js_FileStorage;  // system-owned: it outlives a server restart
  OwnedStreamInfo info;
  jsErrCode code = static_cast<jsErrCode>(0);
  const natsStatus status = js_AddStream(out(info), jetstream, &config, nullptr, &code);
  if (status != NATS_OK) {
    if (code == JSStreamNameExistErr) {
      return std::unexpected(Error{Errc::already_exists, object, "already exists on " + place->name.server});
    }
    return std::unexpected(request_failed(place->name, "cannot create its stream", status, code));
  }
  auto facts = facts_of(*place, *info);
  if (!facts) return std::unexpected(facts.error());
  return std::make_shared<NatsTopic>(std::move(*place), std::move(*connection), *facts);
}

Result<std::shared_ptr<TopicBackend>> NatsTopics::open(std::string_view name, const WaitPolicy&) {
  auto reached = reach(name, place_of);
  if (!reached) return std::unexpected(reached.error());
  auto facts = read_facts(reached->connection->jetstream.get(), reached->place);
  if (!facts) return std::unexpected(facts.error());
  return std::make_shared<NatsTopic>(std::move(reached->place), std::move(reached->connection), *facts);
}

Result<void> NatsTopics::remove(std::string_view name) {
  auto reached = reach(name, place_of);
  if (!reached) return std::unexpected(reached.error());
  const TopicPlace& place = reached->place;
  jsCtx* jetstream = reached->connection->jetstream.get();
  // Only a topic's stream: a name that is another kind of stream is not this call's to delete.
  if (auto facts = read_facts(jetstream, place); !facts) return std::unexpected(facts.error());
  return delete_stream(jetstream, place.name, place.stream, "its stream");
}

Result<TopicStatus> NatsTopics::stat(std::string_view name) {
  auto reached = reach(name, place_of);
  if (!reached) return std::unexpected(reached.error());
  const TopicPlace& place = reached->place;
  jsCtx* jetstream = reached->connection->jetstream.get();
  auto facts = read_facts(jetstream, place);
  if (!facts) return std::unexpected(facts.error());
  TopicStatus status{.name = place.name.server + "/" + place.name.name,
                     .server = place.name.server,
                     .overflow = Overflow::overwrite,
                     .capacity = facts->capacity,
                     .history = facts->history,
                     .max_message_size = facts->max_message_size,
                     .published = facts->last,
                     .max_subscribers = facts->max_subscribers,
                     .max_publishers = 0,
                     .ownership = Ownership::system,
                     .memory_bytes = facts->bytes};
  OwnedConsumerInfoList consumers;
  jsErrCode code = static_cast<jsErrCode>(0);
  const natsStatus listed = js_Consumers(out(consumers), jetstream, place.stream.c_str(), nullptr, &code);
  if (listed == NATS_NOT_FOUND) return status;  // no subscriber
  if (listed != NATS_OK) return std::unexpected(request_failed(place.name, "cannot list its subscribers", listed, code));
  for (int i = 0; consumers != nullptr && i < consumers->Count; ++i) {
    const jsConsumerInfo* consumer = consumers->List[i];
    if (consumer == nullptr) continue;
    status.subscribers.push_back(TopicSubscriberStatus{.pid = 0,
                                                       .alive = consumer->PushBound,
                                                       .lag = consumer->NumPending,
                                                       .received = consumer->Delivered.Consumer});
  }
  return status;
}

Result<std::vector<std::string>> NatsTopics::list(std::string_view server) {
  auto remote = parse_remote_server(server);
  if (!remote) return std::unexpected(remote.error());
  auto connection = NatsConnection::open(*remote);
  if (!connection) return std::unexpected(connection.error());
  return names_on(**connection, *remote, topic_stream_prefix);
}

}  // namespace shmbox::detail
