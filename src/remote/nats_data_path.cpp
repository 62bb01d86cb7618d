// A handle's sends and receives: publishes acknowledged by the stream, pull fetches acked
// once the caller has the bytes, and zero capacity's rendezvous over request/reply.
#include "remote/nats_mailbox.hpp"

#include <nats/nats.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <thread>

#include "platform/process.hpp"
#include "remote/nats_handles.hpp"
#include "remote/nats_streams.hpp"

namespace shmbox::detail {
namespace {

constexpr std::int64_t forever_ms = std::int64_t{24} * 3600 * 1000;
// A rendezvous receiver's answer when it could not take the message (an empty one: taken).
constexpr std::string_view refused_reply = "refused";

// What names a stored message for good: its mailbox, that stream's creation (a later
// mailbox of the same name starts its sequence again) and its place in the stream.
std::string id_of(std::uint64_t sequence, const std::string& mailbox, std::int64_t created) {
  if (sequence == 0) return {};
  return mailbox + "-" + std::to_string(created) + "-" + std::to_string(sequence);
}

// An ack that finds the consumer between leaders is asked again, for up to about the time
// an election takes when the caller may wait (each try that times out has waited 2 s); a
// non-blocking receive tries once. An ack that never got through comes round again as a
// redelivery, which HandedOver passes over.
void acknowledge(natsMsg* message, bool may_wait) {
  const auto give_up = Deadline::clock::now() + std::chrono::seconds{6};
  for (;;) {
    const natsStatus status = natsMsg_AckSync(message, nullptr, nullptr);
    if (status == NATS_OK || (status != NATS_NO_RESPONDERS && status != NATS_TIMEOUT)) return;
    if (!may_wait || Deadline::clock::now() >= give_up) return;
    if (status == NATS_NO_RESPONDERS) std::this_thread::sleep_for(std::chrono::milliseconds{50});
  }
}

}  // namespace

Result<void> NatsMailbox::send(std::span<const std::byte> message, Deadline deadline, std::string_view given_id) {
  if (message.size() > max_message_size()) return std::unexpected(too_large(message.size()));
  // One id per message, kept across retries: a publish stored but unacknowledged and
  // then retried is stored once (within the duplicate window).
  const std::string id = !given_id.empty() ? std::string{given_id}
                                           : std::to_string(platform::current_process().packed()) + "-" +
                                                 std::to_string(reinterpret_cast<std::uintptr_t>(this)) + "-" +
                                                 std::to_string(++next_id_);
  if (auto gone = owner_gone()) return std::unexpected(*gone);
  if (buffering() == Buffering::zero) return send_rendezvous(message, deadline);
  const std::string subject = subject_of(name_);
  auto backoff = std::chrono::milliseconds{1};
  for (;;) {
    jsPubOptions options;
    jsPubOptions_Init(&options);
    options.MsgId = id.c_str();
    // The acknowledgement is a round trip whatever the deadline: the deadline bounds the
    // wait for room, but every attempt waits to hear whether it was stored (a full
    // stream answers at once), so that an expired deadline never leaves the outcome open.
    options.MaxWait = 2000;
    OwnedPubAck ack;
    jsErrCode code = static_cast<jsErrCode>(0);
    const natsStatus status = js_Publish(out(ack), connection_->jetstream.get(), subject.c_str(), message.data(),
                                         static_cast<int>(message.size()), &options, &code);
    if (status == NATS_OK) return {};
    if (status == NATS_NO_RESPONDERS || code == JSStreamNotFoundErr) {
      // Closed, removed, or a cluster between stream leaders (nobody answers for a moment).
      if (auto ended = closed_state()) return std::unexpected(*ended);
      if (deadline.is_none()) return std::unexpected(Error{Errc::would_block, {}, {}});
      if (deadline.expired()) return std::unexpected(Error{Errc::timeout, name_.object, "timed out: the stream has no leader"});
      std::this_thread::sleep_for(std::chrono::milliseconds{50});
      continue;
    }
    const bool full = code == JSStreamStoreFailedErr;  // DiscardNew refused it: the mailbox is full
    if (code == JSStreamMessageExceedsMaximumErr) {
      return std::unexpected(Error{Errc::too_large, name_.object, "the server refused the message as too large"});
    }
    if (!full && status != NATS_TIMEOUT) return std::unexpected(nats_error(Errc::system, name_, "cannot send", status));
    if (deadline.is_none() && full) return std::unexpected(Error{Errc::would_block, {}, {}});
    if (deadline.expired()) {
      return std::unexpected(Error{Errc::timeout, name_.object,
                                   full ? std::string{"timed out"}
                                        : "timed out waiting for the server to acknowledge (it may have stored the message)"});
    }
    if (full) {
      if (auto gone = owner_gone()) return std::unexpected(*gone);
      std::this_thread::sleep_for(std::min<Deadline::clock::duration>(backoff, deadline.is_forever()
                                                                                   ? Deadline::clock::duration::max()
                                                                                   : deadline.until() - Deadline::clock::now()));
      backoff = std::min(backoff * 2, std::chrono::milliseconds{20});
    }
  }
}

// A request to the receivers' queue group: it returns when one of them has replied,
// that is, has taken the message. No responders means no receiver is waiting: nothing
// was delivered, so waiting and asking again is safe. A request that times out with a
// receiver present has an unknown outcome (the receiver may have taken it).
Result<void> NatsMailbox::send_rendezvous(std::span<const std::byte> message, Deadline deadline) {
  const std::string subject = rendezvous_of(name_);
  // No receiver is in the group yet: in a ping-pong one is usually about to join.
  std::chrono::microseconds backoff{100};
  auto next_check = Deadline::clock::now() + std::chrono::seconds{1};
  for (;;) {
    OwnedMsg reply;
    const std::int64_t wait = deadline.is_none() ? 2000 : deadline.is_forever() ? forever_ms : wait_ms(deadline, forever_ms);
    natsStatus status = natsConnection_Request(out(reply), connection_->connection.get(), subject.c_str(), message.data(),
                                               static_cast<int>(message.size()), wait);
    const bool refused =
        status == NATS_OK && natsMsg_GetDataLength(reply.get()) > 0 &&
        std::string_view{natsMsg_GetData(reply.get()), static_cast<std::size_t>(natsMsg_GetDataLength(reply.get()))} ==
            refused_reply;
    if (refused) status = NATS_NO_RESPONDERS;  // the receiver did not take it: as if nobody waited
    if (status == NATS_OK) return {};
    if (status == NATS_TIMEOUT) {
      return std::unexpected(Error{Errc::timeout, name_.object,
                                   "timed out waiting for the receiver's reply (it may have taken the message)"});
    }
    if (status != NATS_NO_RESPONDERS) return std::unexpected(nats_error(Errc::system, name_, "cannot send", status));
    // Nobody to take it: a closed mailbox says so rather than "try again".
    if (deadline.is_none() || deadline.expired()) {
      if (auto ended = closed_state()) return std::unexpected(*ended);
      if (deadline.is_none()) return std::unexpected(Error{Errc::would_block, {}, {}});
      return std::unexpected(Error{Errc::timeout, name_.object, "timed out"});
    }
    if (const auto now = Deadline::clock::now(); now >= next_check) {
      next_check = now + std::chrono::seconds{1};
      if (auto ended = closed_state()) return std::unexpected(*ended);
    }
    std::this_thread::sleep_for(backoff);
    backoff = std::min<std::chrono::microseconds>(backoff * 2, std::chrono::milliseconds{20});
  }
}

// Present in the receivers' queue group only while receiving: a message sent while no
// receive is in progress gets "no responders" rather than waiting in a receiver's queue.
template <class Take>
Result<std::size_t> NatsMailbox::receive_rendezvous(Deadline deadline, Take&& take) {
  // A closed one takes nothing more: look before joining (a round trip, as the join is).
  if (auto ended = closed_state()) return std::unexpected(*ended);
  OwnedSubscription subscription;
  natsStatus status = natsConnection_QueueSubscribeSync(out(subscription), connection_->connection.get(),
                                                         rendezvous_of(name_).c_str(), durable_consumer);
  // One message at most: the server stops routing to us after it, so no second sender's
  // request waits in our queue for a reply that never comes.
  if (status == NATS_OK) status = natsSubscription_AutoUnsubscribe(subscription.get(), 1);
  if (status == NATS_OK) status = natsConnection_Flush(connection_->connection.get());  // the server knows we wait
  if (status != NATS_OK) return std::unexpected(nats_error(Errc::system, name_, "cannot wait for a sender", status));
  OwnedMsg message;
  auto next_check = Deadline::clock::now() + std::chrono::seconds{1};
  for (;;) {
    status = natsSubscription_NextMsg(out(message), subscription.get(), wait_ms(deadline, 1000));
    if (status == NATS_OK) break;
    if (status != NATS_TIMEOUT) break;
    if (deadline.is_none() || deadline.expired()) break;
    if (const auto now = Deadline::clock::now(); now >= next_check) {
      next_check = now + std::chrono::seconds{1};
      if (closed_state()) break;
    }
  }
  if (message == nullptr) {
    // Leave by draining, then take what was routed to us before the server saw us
    // leave: a sender waits for its reply, so nothing that reached us may be dropped.
    if (natsSubscription_Drain(subscription.get()) == NATS_OK) {
      (void)natsSubscription_NextMsg(out(message), subscription.get(), 200);
    }
  }
  subscription.reset();  // out of the queue group before taking (destroying unsubscribes if need be)
  if (message == nullptr) {
    if (auto ended = closed_state()) return std::unexpected(*ended);
    if (deadline.is_none()) return std::unexpected(Error{Errc::would_block, {}, {}});
    return std::unexpected(Error{Errc::timeout, name_.object, "timed out"});
  }
  const auto* data = reinterpret_cast<const std::byte*>(natsMsg_GetData(message.get()));
  auto taken = take(std::span{data, static_cast<std::size_t>(natsMsg_GetDataLength(message.get()))}, 0, std::string{});
  // Reply once it is ours; if `take` refused it (too large for the buffer, or a bridge's
  // destination refusing), say so, and its sender offers it again as if nobody waited.
  if (natsMsg_GetReply(message.get()) != nullptr) {
    const char* reply = taken ? "" : refused_reply.data();
    (void)natsConnection_Publish(connection_->connection.get(), natsMsg_GetReply(message.get()), reply,
                                 static_cast<int>(std::strlen(reply)));
    (void)natsConnection_Flush(connection_->connection.get());
  }
  return taken;
}

template <class Take>
Result<std::size_t> NatsMailbox::take_next(Deadline deadline, Take&& take) {
  if (auto gone = owner_gone()) return std::unexpected(*gone);
  if (buffering() == Buffering::zero) return receive_rendezvous(deadline, take);
  jsErrCode code = static_cast<jsErrCode>(0);
  const std::string stream = stream_of(name_);
  while (connection_->receivers == nullptr) {
    // Bound by the stream's name, not looked up by subject: a closed stream has moved.
    jsSubOptions bind;
    jsSubOptions_Init(&bind);
    bind.Stream = stream.c_str();
    bind.Consumer = durable_consumer;
    const natsStatus status = js_PullSubscribe(out(connection_->receivers), connection_->jetstream.get(),
                                               subject_of(name_).c_str(), durable_consumer, nullptr, &bind, &code);
    if (status == NATS_OK) break;
    connection_->receivers.reset();
    if (auto failed = wait_out(status, code, deadline, "cannot bind to its receivers' consumer")) {
      return std::unexpected(*failed);
    }
  }
  for (;;) {
    natsMsgList list{};
    const OwnedMsgListContents fetched{&list};
    // Once it is known closed, nothing more can come: a drained mailbox answers at once.
    const natsStatus status = natsSubscription_Fetch(&list, connection_->receivers.get(), 1,
                                                     wait_ms(closed_ ? no_wait : deadline, 1000), &code);
    if (status == NATS_OK || status == NATS_TIMEOUT) failing_since_.reset();
    if (status == NATS_OK && list.Count > 0) {
      natsMsg* message = list.Msgs[0];
      const HandedOver::Stored stored = stored_as(message);
      if (handed_over_.contains(stored)) {
        acknowledge(message, !deadline.is_none());  // the caller has it already
        continue;
      }
      const auto* data = reinterpret_cast<const std::byte*>(natsMsg_GetData(message));
      const auto size = static_cast<std::size_t>(natsMsg_GetDataLength(message));
      Result<std::size_t> taken;
      try {
        taken = take(std::span{data, size}, stored.sequence, id_of(stored.sequence, name_.name, created_));
      } catch (...) {
        (void)natsMsg_Nak(message, nullptr);  // the caller could not take it: deliver it again now
        throw;
      }
      if (taken) {
        // Only now that the bytes are the caller's: a receiver that dies before this has
        // its message redelivered (after the consumer's AckWait).
        handed_over_.add(stored);
        acknowledge(message, !deadline.is_none());
      } else {
        (void)natsMsg_Nak(message, nullptr);  // not taken (too large, the taker failed): it stays queued
      }
      return taken;
    }
    if (status != NATS_OK && status != NATS_TIMEOUT) {
      // No consumer answered the request: a removed mailbox has none, and a cluster
      // electing the consumer's leader has none for a moment.
      if (auto failed = wait_out(status, code, deadline, "cannot receive")) return std::unexpected(*failed);
      continue;
    }
    // Empty: a closed mailbox says so now that it is drained (a round trip, only when empty).
    if (auto ended = closed_state()) return std::unexpected(*ended);
    if (deadline.is_none()) return std::unexpected(Error{Errc::would_block, {}, {}});
    if (deadline.expired()) return std::unexpected(Error{Errc::timeout, name_.object, "timed out"});
  }
}

Result<void> NatsMailbox::receive_with(const DeliveryTaker& take, Deadline deadline) {
  auto taken = take_next(deadline, [&](std::span<const std::byte> message, std::uint64_t sequence,
                                       const std::string& id) -> Result<std::size_t> {
    auto delivered = take(Delivery{message, sequence, id});
    if (!delivered) return std::unexpected(delivered.error());
    return message.size();
  });
  if (!taken) return std::unexpected(taken.error());
  return {};
}

Result<std::size_t> NatsMailbox::receive(std::span<std::byte> buffer, Deadline deadline) {
  return take_next(deadline, [&](std::span<const std::byte> message, std::uint64_t, const std::string&) -> Result<std::size_t> {
    if (message.size() > buffer.size()) {
      return std::unexpected(Error{Errc::too_large, name_.object,
                                   "next message is " + std::to_string(message.size()) + " bytes; the buffer holds " +
                                       std::to_string(buffer.size())});
    }
    std::memcpy(buffer.data(), message.data(), message.size());
    return message.size();
  });
}

Result<void> NatsMailbox::receive(std::vector<std::byte>& message, Deadline deadline) {
  auto got = take_next(deadline, [&](std::span<const std::byte> bytes, std::uint64_t, const std::string&) -> Result<std::size_t> {
    message.assign(bytes.begin(), bytes.end());
    return bytes.size();
  });
  if (!got) return std::unexpected(got.error());
  return {};
}

}  // namespace shmbox::detail
