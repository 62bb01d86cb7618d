// Mailboxes: named message queues in shared memory (indirect communication).
//
//   auto box = shmbox::Mailbox::create("orders", {.capacity = 128, .max_message_size = 1024}).value();
//   box.send(shmbox::as_bytes("hello"));                 // blocking
//   ...
//   auto inbox = shmbox::Mailbox::open("orders").value();  // in another process
//   std::vector<std::byte> message;
//   inbox.receive(message);                               // blocking; message holds the bytes
//
// Semantics:
//   - Any number of processes send and receive at once. Each message is delivered to
//     exactly one receiver (competing receivers share the load). A receiver sees each
//     sender's messages in the order they were sent.
//   - Messages are byte strings of 0 to max_message_size bytes; a larger send fails with
//     Errc::too_large and sends nothing.
//   - Buffering is chosen at creation: bounded (a sender waits while `capacity` messages are
//     queued), zero (a send returns only once a receiver has taken the message) or unbounded.
//   - Every operation takes a Deadline: forever (default), no_wait (Errc::would_block at once)
//     or a timeout (Errc::timeout).
//   - close() closes the mailbox for everyone: sends fail with Errc::closed, receivers drain
//     what is queued and then get Errc::closed; blocked calls wake with Errc::closed.
//   - A name "nats://host:port/NAME" is a mailbox held by a NATS server (JetStream):
//     create, open, close, remove, stat, list, send and receive in every waiting form work
//     as above, in every buffering; zero-copy and selectors need a local one. Delivery is
//     at least once across a receiver's crash, and a killed owner's mailbox closes within
//     about 12 s for those using it. README and docs/design.md ("Remote mailboxes") give
//     the differences.
//   - Limits live in the mailbox, not in the code: processes built separately agree by
//     reading them. Nothing read from shared memory is trusted: a mailbox that another
//     process scribbled over gives Errc::corrupt, never a crash.
//
// Thread contract: a Mailbox handle may be used by one thread at a time; give each thread
// (or process) its own handle. Handles are cheap: one mapping and one attach-table entry.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "shmbox/error.hpp"
#include "shmbox/mailbox_types.hpp"
#include "shmbox/wait.hpp"

namespace shmbox {

namespace detail {
class MailboxBackend;
struct MailboxAccess;

// What SendLoan and ReceivedMessage hold: bytes lent by a mailbox's backend (not by the
// Mailbox object, so they survive the handle being moved). Moving hands them over;
// assigning first lets go of what was held (Owner::let_go: abandon, release).
template <class Byte, class Owner>
class Lending {
 protected:
  Lending(MailboxBackend* mailbox, std::uint64_t position, std::span<Byte> data) noexcept
      : mailbox_(mailbox), position_(position), data_(data) {}
  Lending(Lending&& other) noexcept
      : mailbox_(std::exchange(other.mailbox_, nullptr)),
        position_(std::exchange(other.position_, 0)),
        data_(std::exchange(other.data_, {})) {}
  Lending& operator=(Lending&& other) noexcept {
    if (this != &other) {
      static_cast<Owner*>(this)->let_go();
      mailbox_ = std::exchange(other.mailbox_, nullptr);
      position_ = std::exchange(other.position_, 0);
      data_ = std::exchange(other.data_, {});
    }
    return *this;
  }
  ~Lending() = default;

  MailboxBackend* mailbox_ = nullptr;
  std::uint64_t position_ = 0;
  std::span<Byte> data_;
};
}  // namespace detail

class Mailbox;

// A slot loaned for a zero-copy send: write into data(), then commit(). Destroying an
// uncommitted loan abandons it; receivers never see it. Receivers take messages in
// position order, so while a loan is held, messages sent after it wait behind it:
// commit or abandon loans promptly. The Mailbox must outlive its loans. A moved-from,
// committed or abandoned loan holds nothing: data() is empty, commit() fails with
// Errc::invalid_argument, abandon() does nothing.
class SendLoan : private detail::Lending<std::byte, SendLoan> {
 public:
  SendLoan(SendLoan&& other) noexcept = default;
  SendLoan& operator=(SendLoan&& other) noexcept = default;
  ~SendLoan() { abandon(); }

  std::span<std::byte> data() const noexcept { return data_; }
  // Publishes the first `size` bytes (at most data().size()). On a zero-capacity
  // mailbox it then waits, until the deadline, for a receiver to take the message, and
  // takes it back on expiry (Errc::timeout), as send() does.
  [[nodiscard]] Result<void> commit(std::size_t size, Deadline deadline = forever);
  [[nodiscard]] Result<void> commit() { return commit(data_.size()); }
  void abandon() noexcept;

 private:
  friend class Mailbox;
  friend class detail::Lending<std::byte, SendLoan>;
  using Lending::Lending;
  void let_go() noexcept { abandon(); }
};

// A message read in place (zero-copy). The bytes stay valid until it is destroyed or
// release()d; then its slot returns to the mailbox. The Mailbox must outlive it. A
// moved-from or released message holds nothing: data() is empty, sequence() is 0,
// release() and requeue() do nothing.
class ReceivedMessage : private detail::Lending<std::byte, ReceivedMessage> {
 public:
  ReceivedMessage(ReceivedMessage&& other) noexcept = default;
  ReceivedMessage& operator=(ReceivedMessage&& other) noexcept = default;
  ~ReceivedMessage() { release(); }

  std::span<const std::byte> data() const noexcept { return data_; }
  // The same bytes, to change in place while the message is held: what the holder writes
  // stays with the message when it goes back (requeue(), or the holder's death), so a
  // receiver can mark it, e.g. count the attempts made at it.
  std::span<std::byte> writable_data() noexcept { return data_; }
  std::size_t size() const noexcept { return data_.size(); }
  // Its place in the mailbox: no two messages of one mailbox share it, and a message
  // recovered from a receiver that died holding it keeps it (so it tells a redelivery).
  std::uint64_t sequence() const noexcept { return position_; }
  // Takes the message out of the mailbox for good (as destruction does).
  void release() noexcept;
  // Puts the message back unread, for a reader that could not pass it on: the next
  // receive takes it, before the messages queued after it, with the same sequence().
  void requeue() noexcept;

 private:
  friend class Mailbox;
  friend class detail::Lending<std::byte, ReceivedMessage>;
  using Lending::Lending;
  void let_go() noexcept { release(); }
  // Releases the slot, or puts the message back unread.
  void hand_back(bool put_back) noexcept;
};

class Mailbox {
 public:
  // Creates a mailbox; Errc::already_exists if the name is taken.
  [[nodiscard]] static Result<Mailbox> create(std::string_view name, const MailboxOptions& options = {},
                                const WaitPolicy& wait = {});
  // Attaches to an existing mailbox.
  [[nodiscard]] static Result<Mailbox> open(std::string_view name, const WaitPolicy& wait = {});
  // As open(), but if the mailbox does not exist yet (or is not finished), sleeps until
  // it appears or the deadline passes (Errc::timeout). Local mailboxes: woken by
  // inotify; nats:// ones: asked again every 100 ms. Any other error returns at once.
  [[nodiscard]] static Result<Mailbox> open_wait(std::string_view name, Deadline deadline, const WaitPolicy& wait = {});
  // Closes the mailbox for everyone and removes its name.
  [[nodiscard]] static Result<void> remove(std::string_view name);
  // Reads a mailbox's header without attaching to it (maps it read-only).
  [[nodiscard]] static Result<MailboxStatus> stat(std::string_view name);
  // Names of the mailboxes in /dev/shm.
  [[nodiscard]] static std::vector<std::string> list();
  // Names of the mailboxes a NATS server holds ("nats://host:port"), as full names.
  [[nodiscard]] static Result<std::vector<std::string>> list(std::string_view server);

  // Moving hands the handle over, local or remote, with its loans and in-place
  // messages (they belong to the handle's backend, not to the object). A moved-from
  // Mailbox refers to no mailbox: it may be destroyed or assigned to; name() is "",
  // closed() is true, queued(), capacity() and max_message_size() are 0, and every
  // other call fails with Errc::invalid_argument.
  Mailbox(Mailbox&& other) noexcept;
  Mailbox& operator=(Mailbox&& other) noexcept;
  Mailbox(const Mailbox&) = delete;
  Mailbox& operator=(const Mailbox&) = delete;
  ~Mailbox();  // detaches; the mailbox itself stays

  const std::string& name() const noexcept;
  Buffering buffering() const noexcept;
  std::uint32_t capacity() const noexcept;
  std::size_t max_message_size() const noexcept;

  [[nodiscard]] Result<void> send(std::span<const std::byte> message, Deadline deadline = forever);
  // As send(), naming the message `id` for a transport whose send may be retried after
  // its answer was lost (nats://): the server stores one message per id within its
  // two-minute duplicate window, however often the send is retried (zero capacity
  // stores nothing, so it keeps no ids). A local send is never in doubt: it ignores ids.
  [[nodiscard]] Result<void> send(std::span<const std::byte> message, Deadline deadline, std::string_view id);

  // Receives into `buffer` and returns the message's size. A message larger than the
  // buffer stays queued and the call fails with Errc::too_large; a buffer of
  // max_message_size() bytes always suffices.
  [[nodiscard]] Result<std::size_t> receive(std::span<std::byte> buffer, Deadline deadline = forever);
  // Receives into `message`, resizing it to the message's size.
  [[nodiscard]] Result<void> receive(std::vector<std::byte>& message, Deadline deadline = forever);

  // Batches: many messages in one call, for streams where what a call costs counts (as
  // sendmmsg/recvmmsg). Each message is sent and received exactly as by one send() or
  // receive(): same order, same delivery to exactly one receiver.
  //
  // Sends `messages` in order, each waiting for room as the deadline allows. Returns how
  // many were sent: all of them, or the first k when the deadline passed or the mailbox
  // closed after k were sent (the rest were not: the next call reports why). Fails, sending
  // nothing, as send() would when not even the first can go; a message over the maximum
  // refuses the whole batch (Errc::too_large) before any is sent.
  [[nodiscard]] Result<std::size_t> send_many(std::span<const std::span<const std::byte>> messages,
                                              Deadline deadline = forever);
  // Receives up to sizes.size() messages into `buffer`, back to back: waits as the deadline
  // allows for the first, then takes, without waiting, those queued behind it while they
  // fit in what is left of the buffer. sizes[i] is the i-th message's size. Returns how
  // many were received; fails as receive() would when it gets none (Errc::too_large when
  // the first does not fit the buffer; it stays queued).
  [[nodiscard]] Result<std::size_t> receive_many(std::span<std::byte> buffer, std::span<std::size_t> sizes,
                                                 Deadline deadline = forever);

  // Zero-copy: a slot of `size` bytes to write in place.
  [[nodiscard]] Result<SendLoan> loan(std::size_t size, Deadline deadline = forever);
  // Zero-copy: the next message, read in place.
  [[nodiscard]] Result<ReceivedMessage> receive_in_place(Deadline deadline = forever);

  // Hands the next message to `take` (Delivery: its bytes, sequence and id), and removes
  // it only if `take` succeeds: otherwise (an error, or an exception) it is put back (a
  // remote one handed back to the server), to be received next, and take's error is
  // returned. For a reader that must pass a message on before it may leave the mailbox
  // (a tool writing it out, a bridge).
  [[nodiscard]] Result<void> receive_with(const DeliveryTaker& take, Deadline deadline = forever);

  template <class T>
    requires std::is_trivially_copyable_v<T>
  [[nodiscard]] Result<void> send_value(const T& value, Deadline deadline = forever) {
    return send(std::as_bytes(std::span{&value, 1}), deadline);
  }
  // Errc::too_large if the next message is larger than T (it stays queued);
  // Errc::invalid_argument if it is smaller (it is consumed).
  template <class T>
    requires std::is_trivially_copyable_v<T> && std::is_default_constructible_v<T>
  [[nodiscard]] Result<T> receive_value(Deadline deadline = forever) {
    T value{};
    auto size = receive(std::as_writable_bytes(std::span{&value, 1}), deadline);
    if (!size) return std::unexpected(size.error());
    if (*size != sizeof(T)) return std::unexpected(wrong_size_error(*size, sizeof(T)));
    return value;
  }

  // Closes the mailbox for every process (it stays until removed).
  [[nodiscard]] Result<void> close();
  bool closed() const noexcept;

  // Messages queued now (a snapshot), counted as MailboxStatus::queued. A local mailbox
  // reads its slots (time in proportion to the capacity); a remote one asks its server
  // (a round trip, longer while a cluster elects a leader; 0 if it cannot be reached).
  std::uint64_t queued() const noexcept;

 private:
  friend struct detail::MailboxAccess;
  explicit Mailbox(std::unique_ptr<detail::MailboxBackend> backend) noexcept;
  Error wrong_size_error(std::size_t got, std::size_t expected) const;
  static Error moved_from();

  std::unique_ptr<detail::MailboxBackend> backend_;
};

}  // namespace shmbox
