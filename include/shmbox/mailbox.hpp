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
#include <vector>

#include "shmbox/error.hpp"
#include "shmbox/wait.hpp"

namespace shmbox {

enum class Buffering : std::uint8_t { zero, bounded, unbounded };

// Who a mailbox belongs to. A process-owned mailbox lives as long as the process that
// created it: when that process removes it, exits or is killed, the mailbox is closed
// (blocked calls wake with Errc::closed within 100 ms), later opens fail with
// Errc::not_found, and its memory is freed. A system-owned mailbox belongs to no
// process and stays until it is removed.
enum class Ownership : std::uint8_t { process, system };

struct MailboxOptions {
  Buffering buffering = Buffering::bounded;
  std::uint32_t capacity = 64;             // bounded only: messages queued at most
  std::uint32_t max_message_size = 4096;   // bytes
  mode_t mode = 0600;                      // applied exactly
  std::uint32_t max_attached = 64;         // handles (processes) attached at once
  Ownership ownership = Ownership::process;
  // Process-owned local mailboxes: the running process that owns it (gone when that
  // process exits); 0 = the calling process.
  pid_t owner_pid = 0;
  // nats:// mailboxes only: copies a NATS cluster keeps (1, 3 or 5), so that the loss of
  // a server loses nothing. Unbounded and zero-capacity buffering only (a bounded one is
  // InvalidArgument: see docs/design.md). Local mailboxes ignore it.
  std::uint8_t replicas = 1;
};

struct MailboxStatus {
  std::string name;
  Buffering buffering = Buffering::bounded;
  std::uint32_t capacity = 0;
  std::uint32_t max_message_size = 0;
  // Messages a receive can still get: not positions a sender took back or abandoned,
  // and including a message a killed receiver held (it is received again).
  std::uint64_t queued = 0;
  bool closed = false;
  mode_t mode = 0;
  uid_t owner_uid = 0;
  std::uint32_t attached = 0;   // handles of live processes (a killed one's is not counted)
  std::uint32_t senders = 0;    // attached handles that have sent
  std::uint32_t receivers = 0;  // attached handles that have received
  std::size_t memory_bytes = 0;  // memory the mailbox holds in /dev/shm now
  Ownership ownership = Ownership::process;
  pid_t owner_pid = 0;         // process-owned only
  std::string owner_name;      // the owner's command name; empty once it has exited
  bool owner_alive = false;    // process-owned only
  // nats:// mailboxes: memory_bytes is what the server stores, receivers are receives
  // waiting at the server, and there is no mode, uid or attach table.
  bool remote = false;
  std::uint32_t replicas = 0;   // copies the cluster keeps
  std::uint64_t in_flight = 0;  // handed to a receiver, not yet acknowledged
};

namespace detail {
struct MailboxState;
struct MailboxFactory;
class NatsMailbox;
}

class Mailbox;

// A slot loaned for a zero-copy send: write into data(), then commit(). Destroying an
// uncommitted loan abandons it; receivers never see it. Receivers take messages in
// position order, so while a loan is held, messages sent after it wait behind it:
// commit or abandon loans promptly. The Mailbox must outlive its loans. A moved-from,
// committed or abandoned loan holds nothing: data() is empty, commit() fails with
// Errc::invalid_argument, abandon() does nothing.
class SendLoan {
 public:
  SendLoan(SendLoan&& other) noexcept;
  SendLoan& operator=(SendLoan&& other) noexcept;
  ~SendLoan();

  std::span<std::byte> data() const noexcept { return data_; }
  // Publishes the first `size` bytes (at most data().size()). On a zero-capacity
  // mailbox it then waits, until the deadline, for a receiver to take the message, and
  // takes it back on expiry (Errc::timeout), as send() does.
  [[nodiscard]] Result<void> commit(std::size_t size, Deadline deadline = forever);
  [[nodiscard]] Result<void> commit() { return commit(data_.size()); }
  void abandon() noexcept;

 private:
  friend class Mailbox;
  SendLoan(detail::MailboxState* mailbox, std::uint64_t position, std::span<std::byte> data) noexcept
      : mailbox_(mailbox), position_(position), data_(data) {}
  // The handle's state, not the Mailbox object: a loan survives the handle being moved.
  // Releases the slot, or puts the message back unread.
  void hand_back(bool put_back) noexcept;
  detail::MailboxState* mailbox_ = nullptr;
  std::uint64_t position_ = 0;
  std::span<std::byte> data_;
};

// A message read in place (zero-copy). The bytes stay valid until it is destroyed or
// release()d; then its slot returns to the mailbox. The Mailbox must outlive it. A
// moved-from or released message holds nothing: data() is empty, sequence() is 0,
// release() and requeue() do nothing.
class ReceivedMessage {
 public:
  ReceivedMessage(ReceivedMessage&& other) noexcept;
  ReceivedMessage& operator=(ReceivedMessage&& other) noexcept;
  ~ReceivedMessage();

  std::span<const std::byte> data() const noexcept { return data_; }
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
  ReceivedMessage(detail::MailboxState* mailbox, std::uint64_t position, std::span<const std::byte> data) noexcept
      : mailbox_(mailbox), position_(position), data_(data) {}
  // Releases the slot, or puts the message back unread.
  void hand_back(bool put_back) noexcept;
  detail::MailboxState* mailbox_ = nullptr;
  std::uint64_t position_ = 0;
  std::span<const std::byte> data_;
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
  // messages (they belong to the handle's state, not to the object). A moved-from
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

  // Receives into `buffer` and returns the message's size. A message larger than the
  // buffer stays queued and the call fails with Errc::too_large; a buffer of
  // max_message_size() bytes always suffices.
  [[nodiscard]] Result<std::size_t> receive(std::span<std::byte> buffer, Deadline deadline = forever);
  // Receives into `message`, resizing it to the message's size.
  [[nodiscard]] Result<void> receive(std::vector<std::byte>& message, Deadline deadline = forever);

  // Zero-copy: a slot of `size` bytes to write in place.
  [[nodiscard]] Result<SendLoan> loan(std::size_t size, Deadline deadline = forever);
  // Zero-copy: the next message, read in place.
  [[nodiscard]] Result<ReceivedMessage> receive_in_place(Deadline deadline = forever);

  // Hands the next message and its sequence to `take`, and removes it only if `take`
  // succeeds: otherwise it is put back (a remote one handed back to the server), to be
  // received next, and take's error is returned. For a reader that must pass a message
  // on before it may leave the mailbox (a tool writing it out, a bridge). A remote
  // mailbox's sequence is the stream's (0 for zero capacity).
  using Taker = std::function<Result<void>(std::span<const std::byte> message, std::uint64_t sequence)>;
  [[nodiscard]] Result<void> receive_with(const Taker& take, Deadline deadline = forever);

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

  // Messages queued now (a snapshot), counted as MailboxStatus::queued: it reads the
  // slots, so it costs time in proportion to the capacity.
  std::uint64_t queued() const noexcept;

  // For a selector: the words to sleep on, and whether the mailbox can be received from.
  // (Used by shmbox::Selector; not needed otherwise.)
  detail::MailboxState& state() const noexcept { return *state_; }
  bool local() const noexcept { return state_ != nullptr; }
  bool remote() const noexcept { return remote_ != nullptr; }
  // A remote mailbox's connection (used by shmbox::forward).
  detail::NatsMailbox& remote_mailbox() const noexcept { return *remote_; }

 private:
  friend class SendLoan;
  friend class ReceivedMessage;
  friend struct detail::MailboxFactory;
  explicit Mailbox(std::unique_ptr<detail::MailboxState> state) noexcept;
  Error wrong_size_error(std::size_t got, std::size_t expected) const;

  explicit Mailbox(std::unique_ptr<detail::NatsMailbox> remote) noexcept;
  Error local_only(const char* what) const;
  static Error moved_from();

  std::unique_ptr<detail::MailboxState> state_;
  std::unique_ptr<detail::NatsMailbox> remote_;  // a nats:// mailbox instead
};

// The bytes of a string, for sending text.
inline std::span<const std::byte> as_bytes(std::string_view text) noexcept {
  return std::as_bytes(std::span{text.data(), text.size()});
}

}  // namespace shmbox
