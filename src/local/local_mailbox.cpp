// The local transport's data path: sends, receives and loans on the ring of a mapped
// mailbox file (ring.hpp), waiting as the handle's policy says (waiting.hpp); and its
// operations on names. docs/design.md, "Send", "Receive", "Zero-copy".
#include "local/local_mailbox.hpp"

#include <algorithm>
#include <cstring>

#include "base/name.hpp"
#include "local/mailbox_file.hpp"
#include "local/ownership.hpp"
#include "local/recovery.hpp"
#include "local/ring.hpp"
#include "local/waiting.hpp"
#include "platform/directory_watch.hpp"
#include "platform/shm.hpp"

namespace shmbox {
namespace {

using detail::MappedMailbox;

constexpr std::string_view kind = "mailbox";

}  // namespace

namespace detail {

LocalMailbox::LocalMailbox(MappedMailbox mailbox)
    : MailboxBackend(MailboxFacts{mailbox.name, mailbox.object, mailbox.geometry.buffering, mailbox.geometry.capacity,
                                  mailbox.geometry.max_message_size}),
      mapped_(std::move(mailbox)) {}

LocalMailbox::~LocalMailbox() { detach(mapped_); }

bool LocalMailbox::closed() const noexcept { return is_closed(mapped_); }
std::uint64_t LocalMailbox::queued() const noexcept { return detail::queued(mapped_); }

Result<void> LocalMailbox::close() {
  close_mailbox(*mapped_.header);
  return {};
}

}  // namespace detail

namespace {

// The error a wait that did not claim ends with.
Error wait_error(MappedMailbox& mailbox, detail::Waited waited, Deadline deadline) {
  if (waited == detail::Waited::failed) return std::move(*mailbox.failure);
  return deadline.is_none() ? detail::would_block_error() : detail::timeout_error(mailbox);
}

// Claims what `attempt` claims (a position, or a run of them) to send messages of `size`
// bytes at, waiting as the deadline allows.
template <class AttemptFn>
detail::Waited claim_for_send_with(MappedMailbox& mailbox, std::size_t size, Deadline deadline, AttemptFn&& attempt) {
  mailbox.recent_message_size = static_cast<std::uint32_t>(size);
  // A sender that never waits would never look at the owner: look every 1024 claims,
  // so that sends into a mailbox whose owner has gone start failing.
  if (--mailbox.sends_until_check == 0) {
    mailbox.sends_until_check = 1024;
    detail::watch_owner(mailbox, std::chrono::steady_clock::now());
  }
  mailbox.record_role(detail::role_sender);
  return detail::wait_for(mailbox, detail::Side::send, deadline, std::forward<AttemptFn>(attempt));
}

// Claims a position to send a message of `size` bytes at, waiting as the deadline allows.
detail::Waited claim_for_send(MappedMailbox& mailbox, std::size_t size, Deadline deadline, detail::SendClaim& claim) {
  return claim_for_send_with(mailbox, size, deadline, [&] { return detail::try_claim_send(mailbox, claim); });
}

// Zero capacity: after publishing, the send completes only once a receiver has
// claimed the message. On expiry or close the sender takes it back if it can; if a
// receiver claimed it first, the send succeeded after all.
Result<void> await_pick_up(MappedMailbox& mailbox, const detail::SendClaim& claim, Deadline deadline) {
  // A non-blocking send goes ahead only when a receiver is waiting; that receiver may
  // be asleep, so give it time for a kernel wake-up (2 ms covers one on a loaded
  // machine) before taking the message back.
  const bool non_blocking = deadline.is_none();
  if (non_blocking) deadline = Deadline{std::max<std::chrono::microseconds>(mailbox.wait.spin, std::chrono::milliseconds{2})};
  const detail::Waited waited = detail::wait_for(mailbox, detail::Side::send, deadline, [&] {
    if (!detail::still_published(mailbox, claim)) return detail::Attempt::claimed;
    if (detail::is_closed(mailbox)) return mailbox.fail(mailbox.closed_error(), detail::Attempt::failed);
    return detail::Attempt::not_yet;
  });
  if (waited == detail::Waited::done) return {};
  if (!detail::take_back(mailbox, claim)) return {};  // a receiver claimed it first
  return std::unexpected(wait_error(mailbox, waited, non_blocking ? Deadline::none() : deadline));
}

}  // namespace

Result<void> detail::LocalMailbox::send(std::span<const std::byte> message, Deadline deadline, std::string_view) {
  MappedMailbox& mailbox = mapped_;
  if (message.size() > mailbox.geometry.max_message_size) return std::unexpected(too_large(message.size()));
  const bool zero = mailbox.geometry.buffering == Buffering::zero;
  if (zero && deadline.is_none() && mailbox.header->receivers_present.load(std::memory_order_seq_cst) == 0) {
    if (detail::is_closed(mailbox)) return std::unexpected(mailbox.closed_error());
    return std::unexpected(detail::would_block_error());
  }
  detail::SendClaim claim{};
  const detail::Waited waited = claim_for_send(mailbox, message.size(), deadline, claim);
  if (waited != detail::Waited::done) return std::unexpected(wait_error(mailbox, waited, deadline));
  if (!message.empty()) std::memcpy(mailbox.payload(*claim.slot), message.data(), message.size());
  detail::publish(mailbox, claim, static_cast<std::uint32_t>(message.size()));
  if (zero) return await_pick_up(mailbox, claim, deadline);
  return {};
}

namespace {

// Claims the next message no larger than `size_limit`, waiting as the deadline
// allows. An out-parameter and a one-byte result keep the hot path free of Error.
detail::Waited claim_for_receive(MappedMailbox& mailbox, std::size_t size_limit, Deadline deadline,
                                 detail::ReceiveClaim& claim) {
  // In a mailbox that is never empty nobody waits, so recovery would never run from a
  // wait: adopt orphaned messages periodically too (a clock read per 1024 receives).
  if (--mailbox.receives_until_check == 0) {
    mailbox.receives_until_check = 1024;
    if (const auto now = std::chrono::steady_clock::now(); now >= mailbox.next_periodic_recovery) {
      mailbox.next_periodic_recovery = now + std::chrono::seconds{1};
      detail::watch_owner(mailbox, now);
      if (detail::recover(mailbox, &claim, size_limit)) return detail::Waited::done;
    }
  }
  mailbox.record_role(detail::role_receiver);
  const detail::Waited waited = detail::wait_for(mailbox, detail::Side::receive, deadline,
                                                 [&] { return detail::try_claim_receive(mailbox, size_limit, claim); });
  if (waited == detail::Waited::done) mailbox.recent_message_size = claim.size;
  return waited;
}

// Copies a claimed message to `destination` and frees its slot.
void copy_out_and_release(MappedMailbox& mailbox, const detail::ReceiveClaim& claim, std::byte* destination) noexcept {
  if (claim.size != 0) std::memcpy(destination, mailbox.payload(*claim.slot), claim.size);
  detail::release(mailbox, claim);
}

}  // namespace

Result<std::size_t> detail::LocalMailbox::receive(std::span<std::byte> buffer, Deadline deadline) {
  MappedMailbox& mailbox = mapped_;
  detail::ReceiveClaim claim{};
  const detail::Waited waited = claim_for_receive(mailbox, buffer.size(), deadline, claim);
  if (waited != detail::Waited::done) return std::unexpected(wait_error(mailbox, waited, deadline));
  copy_out_and_release(mailbox, claim, buffer.data());
  return claim.size;
}

Result<void> detail::LocalMailbox::receive(std::vector<std::byte>& message, Deadline deadline) {
  MappedMailbox& mailbox = mapped_;
  // Room first: an allocation that fails must fail before a message is taken.
  message.reserve(mailbox.geometry.max_message_size);
  detail::ReceiveClaim claim{};
  const detail::Waited waited = claim_for_receive(mailbox, mailbox.geometry.max_message_size, deadline, claim);
  if (waited != detail::Waited::done) return std::unexpected(wait_error(mailbox, waited, deadline));
  message.resize(claim.size);  // within the capacity reserved: cannot throw
  copy_out_and_release(mailbox, claim, message.data());
  return {};
}

Result<std::size_t> detail::LocalMailbox::send_many(std::span<const std::span<const std::byte>> messages,
                                                    Deadline deadline) {
  MappedMailbox& mailbox = mapped_;
  // A rendezvous waits for each message's receiver: one send after another.
  if (mailbox.geometry.buffering == Buffering::zero) return MailboxBackend::send_many(messages, deadline);
  if (auto refused = oversized(messages)) return std::unexpected(std::move(*refused));
  // Bounded: a run of free slots at a time, claimed with one CAS of tail (ring.hpp).
  // Unbounded: a position at a time (its chunks are backed one by one).
  const bool runs = !mailbox.unbounded();
  std::size_t sent = 0;
  while (sent < messages.size()) {
    detail::SendClaim first{};
    std::uint64_t count = 1;
    const detail::Waited waited = claim_for_send_with(mailbox, messages[sent].size(), deadline, [&] {
      return runs ? detail::try_claim_send_run(mailbox, messages.size() - sent, first, count)
                  : detail::try_claim_send(mailbox, first);
    });
    if (waited != detail::Waited::done) {
      if (sent == 0) return std::unexpected(wait_error(mailbox, waited, deadline));
      mailbox.failure.reset();  // the next call meets it again and reports it
      break;
    }
    for (std::uint64_t k = 0; k < count; ++k) {
      const auto message = messages[sent + k];
      const detail::SendClaim claim{first.position + k, &mailbox.slot(first.position + k)};
      if (!message.empty()) std::memcpy(mailbox.payload(*claim.slot), message.data(), message.size());
      detail::make_visible(mailbox, claim, static_cast<std::uint32_t>(message.size()));
    }
    detail::end_claim(mailbox, count > 1);
    sent += count;
  }
  return sent;
}

Result<std::size_t> detail::LocalMailbox::receive_many(std::span<std::byte> buffer, std::span<std::size_t> sizes,
                                                       Deadline deadline) {
  if (sizes.empty()) return 0;
  MappedMailbox& mailbox = mapped_;
  detail::ReceiveClaim claim{};
  const detail::Waited waited = claim_for_receive(mailbox, buffer.size(), deadline, claim);
  if (waited != detail::Waited::done) return std::unexpected(wait_error(mailbox, waited, deadline));
  copy_out_and_release(mailbox, claim, buffer.data());
  sizes[0] = claim.size;
  std::size_t count = 1;
  std::size_t used = claim.size;
  // Whatever stops the batch (nothing queued, a message that does not fit what is left,
  // a put-back message, close) is for the next call to meet.
  if (mailbox.unbounded() || mailbox.geometry.buffering == Buffering::zero) {
    // A position at a time, each claimed as a receive claims it.
    for (; count < sizes.size(); ++count) {
      if (detail::try_claim_receive(mailbox, buffer.size() - used, claim) != detail::Attempt::claimed) {
        mailbox.failure.reset();
        break;
      }
      copy_out_and_release(mailbox, claim, buffer.data() + used);
      sizes[count] = claim.size;
      used += claim.size;
    }
    return count;
  }
  // Bounded: the messages that follow ours, each claimed on its slot; head moves past
  // them once, and only then are their slots freed (a slot freed ahead of head would
  // look to other receivers like a position that does not fit the ring).
  const std::uint64_t first = claim.position + 1;
  std::uint64_t next = first;
  for (; count < sizes.size(); ++count, ++next) {
    if (!detail::try_claim_next(mailbox, next, buffer.size() - used, claim)) break;
    if (claim.size != 0) std::memcpy(buffer.data() + used, mailbox.payload(*claim.slot), claim.size);
    sizes[count] = claim.size;
    used += claim.size;
  }
  if (next == first) return count;
  detail::advance_head(mailbox, next);
  for (std::uint64_t position = first; position < next; ++position) {
    detail::free_slot(mailbox, detail::ReceiveClaim{position, &mailbox.slot(position), 0});
  }
  detail::wake_senders(mailbox, true);
  return count;
}

Result<detail::Lent> detail::LocalMailbox::loan(std::size_t size, Deadline deadline) {
  MappedMailbox& mailbox = mapped_;
  if (size > mailbox.geometry.max_message_size) return std::unexpected(too_large(size));
  detail::SendClaim claim{};
  const detail::Waited waited = claim_for_send(mailbox, size, deadline, claim);
  if (waited != detail::Waited::done) return std::unexpected(wait_error(mailbox, waited, deadline));
  return Lent{claim.position, {mailbox.payload(*claim.slot), size}};
}

Result<void> detail::LocalMailbox::commit_loan(const Lent& loan, std::size_t size, Deadline deadline) {
  MappedMailbox& mailbox = mapped_;
  const detail::SendClaim claim{loan.position, &mailbox.slot(loan.position)};
  detail::publish(mailbox, claim, static_cast<std::uint32_t>(size));
  if (mailbox.geometry.buffering == Buffering::zero) return await_pick_up(mailbox, claim, deadline);
  return {};
}

void detail::LocalMailbox::abandon_loan(const Lent& loan) noexcept {
  detail::abandon(mapped_, detail::SendClaim{loan.position, &mapped_.slot(loan.position)});
}

Result<detail::Lent> detail::LocalMailbox::receive_in_place(Deadline deadline) {
  MappedMailbox& mailbox = mapped_;
  detail::ReceiveClaim claim{};
  const detail::Waited waited = claim_for_receive(mailbox, mailbox.geometry.max_message_size, deadline, claim);
  if (waited != detail::Waited::done) return std::unexpected(wait_error(mailbox, waited, deadline));
  return Lent{claim.position, {mailbox.payload(*claim.slot), claim.size}};
}

void detail::LocalMailbox::hand_back(const Lent& message, bool put_back) noexcept {
  const detail::ReceiveClaim claim{message.position, &mapped_.slot(message.position), 0};
  if (put_back) {
    detail::put_back(mapped_, claim);
  } else {
    detail::release(mapped_, claim);
  }
}

Result<void> detail::LocalMailbox::receive_with(const DeliveryTaker& take, Deadline deadline) {
  // A mailbox whose file cannot be told from others' (no boot id) names its messages
  // with no id: a de-duplicating destination then stores each copy it is sent.
  if (!delivery_prefix_) delivery_prefix_ = instance_of(mapped_).value_or(std::string{});
  auto message = receive_in_place(deadline);
  if (!message) return std::unexpected(message.error());
  Result<void> taken;
  try {
    const std::string id = delivery_prefix_->empty() ? std::string{} : *delivery_prefix_ + std::to_string(message->position);
    taken = take(Delivery{message->bytes, message->position, id});
  } catch (...) {
    hand_back(*message, true);  // a taker that throws has not taken it either
    throw;
  }
  hand_back(*message, !taken);
  return taken;
}

namespace {

// The local transport's operations on names: every name that no other transport claims.
struct LocalNames {
  static bool claims(std::string_view) noexcept { return true; }
  static Result<std::unique_ptr<detail::MailboxBackend>> create(std::string_view name, const MailboxOptions& options,
                                                                const WaitPolicy& wait);
  static Result<std::unique_ptr<detail::MailboxBackend>> open(std::string_view name, const WaitPolicy& wait);
  static Result<std::function<void(std::chrono::milliseconds)>> appearance_waiter(std::string_view name);
  static Result<void> remove(std::string_view name);
  static Result<MailboxStatus> stat(std::string_view name);
  static Result<std::vector<std::string>> list(std::string_view where);
  static Result<std::vector<RemovedObject>> collect_garbage(std::string_view where);
};

Result<std::unique_ptr<detail::MailboxBackend>> LocalNames::create(std::string_view name, const MailboxOptions& options,
                                                             const WaitPolicy& wait) {
  auto names = detail::mailbox_file(name);
  if (!names) return std::unexpected(names.error());
  auto owner = detail::owner_of(names->object, options);
  if (!owner) return std::unexpected(owner.error());
  auto made = detail::MailboxFactory::create(std::move(*names), options, wait, *owner);
  if (!made) return std::unexpected(made.error());
  return std::move(*made);
}

Result<std::unique_ptr<detail::MailboxBackend>> LocalNames::open(std::string_view name, const WaitPolicy& wait) {
  auto names = detail::mailbox_file(name);
  if (!names) return std::unexpected(names.error());
  auto opened = detail::MailboxFactory::open(std::move(*names), wait, detail::OwnerCheck::trusted_owner);
  if (!opened) return std::unexpected(opened.error());
  return std::move(*opened);
}

// Woken by inotify: the cap that open_wait puts on a nap bounds the cost of a missed event.
Result<std::function<void(std::chrono::milliseconds)>> LocalNames::appearance_waiter(std::string_view name) {
  auto watching = platform::DirectoryWatch::watch_shm_directory(detail::describe(kind, name));
  if (!watching) return std::unexpected(watching.error());
  auto watch = std::make_shared<platform::DirectoryWatch>(std::move(*watching));
  return [watch](std::chrono::milliseconds nap) { watch->wait(nap); };
}

Result<void> LocalNames::remove(std::string_view name) {
  auto names = detail::mailbox_file(name);
  if (!names) return std::unexpected(names.error());
  return detail::MailboxFactory::remove(*names);
}

Result<MailboxStatus> LocalNames::stat(std::string_view name) {
  auto names = detail::mailbox_file(name);
  if (!names) return std::unexpected(names.error());
  return detail::MailboxFactory::stat(*names);
}

// Local mailboxes live on this machine, not on a server: `where` is empty, and anything
// else names a server that no transport claims.
Result<void> no_server(std::string_view where) {
  if (where.empty()) return {};
  return std::unexpected(Error{Errc::invalid_name, detail::describe("server", where),
                               "a server is nats://host[:port][,host[:port]...]"});
}

Result<std::vector<std::string>> LocalNames::list(std::string_view where) {
  if (auto local = no_server(where); !local) return std::unexpected(local.error());
  return platform::list_shm_names(detail::mailbox_file_prefix);
}

Result<std::vector<RemovedObject>> LocalNames::collect_garbage(std::string_view where) {
  if (auto local = no_server(where); !local) return std::unexpected(local.error());
  return detail::remove_garbage_mailboxes(detail::mailbox_file_prefix, kind);
}

}  // namespace

const detail::Transport detail::local_transport = detail::transport_of<LocalNames>();

}  // namespace shmbox
