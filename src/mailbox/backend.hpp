// The contract every transport of mailboxes keeps: a Mailbox forwards each call to its
// backend without asking which kind it is. A transport is a folder that implements
// MailboxBackend and a Transport (its static operations), and one line in
// api/mailbox.cpp (transport_for) that resolves names to it. docs/design.md, "Transports".
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "shmbox/cleanup.hpp"
#include "shmbox/error.hpp"
#include "shmbox/mailbox_types.hpp"
#include "shmbox/wait.hpp"

namespace shmbox::detail {

struct MappedMailbox;

// A slot lent for a zero-copy send, or a message read in place: where it is and its
// bytes. SendLoan and ReceivedMessage hold one with their backend.
struct Lent {
  std::uint64_t position = 0;
  std::span<std::byte> bytes;
};

// What a mailbox is, fixed when a handle is made: every transport has the same.
struct MailboxFacts {
  std::string name;
  std::string object;  // "mailbox 'NAME'", for errors
  Buffering buffering = Buffering::bounded;
  std::uint32_t capacity = 0;  // bounded only
  std::size_t max_message_size = 0;
};

class MailboxBackend {
 public:
  explicit MailboxBackend(MailboxFacts facts) noexcept : facts_(std::move(facts)) {}
  MailboxBackend(const MailboxBackend&) = delete;
  MailboxBackend& operator=(const MailboxBackend&) = delete;
  virtual ~MailboxBackend() = default;  // detaches; the mailbox itself stays

  const std::string& name() const noexcept { return facts_.name; }
  const std::string& object() const noexcept { return facts_.object; }
  Buffering buffering() const noexcept { return facts_.buffering; }
  std::uint32_t capacity() const noexcept { return facts_.capacity; }
  std::size_t max_message_size() const noexcept { return facts_.max_message_size; }
  // TooLarge for a message of `size` bytes: what every transport refuses a send or a loan
  // over the maximum with.
  Error too_large(std::size_t size) const;

  virtual bool closed() const noexcept = 0;
  virtual std::uint64_t queued() const noexcept = 0;
  virtual Result<void> close() = 0;

  // `id` (empty: none) names the message for a transport whose sends may be retried
  // after an answer was lost: it stores one message per id. Others need no id.
  virtual Result<void> send(std::span<const std::byte> message, Deadline deadline, std::string_view id) = 0;
  virtual Result<std::size_t> receive(std::span<std::byte> buffer, Deadline deadline) = 0;
  virtual Result<void> receive(std::vector<std::byte>& message, Deadline deadline) = 0;
  // Batches (Mailbox::send_many, receive_many): by default one send or receive after
  // another; a transport overrides them where a batch costs less.
  virtual Result<std::size_t> send_many(std::span<const std::span<const std::byte>> messages, Deadline deadline);
  virtual Result<std::size_t> receive_many(std::span<std::byte> buffer, std::span<std::size_t> sizes,
                                           Deadline deadline);
  // The first message of `messages` over the maximum, as the error that refuses the batch.
  std::optional<Error> oversized(std::span<const std::span<const std::byte>> messages) const;
  // The next message goes to `take`, and leaves the mailbox only if `take` succeeds;
  // otherwise (an error or an exception) it is put back, to be received next.
  virtual Result<void> receive_with(const DeliveryTaker& take, Deadline deadline) = 0;

  // Zero-copy, where the transport has memory to lend (Errc::invalid_argument where not).
  virtual Result<Lent> loan(std::size_t size, Deadline deadline) = 0;
  virtual Result<void> commit_loan(const Lent& loan, std::size_t size, Deadline deadline) = 0;
  virtual void abandon_loan(const Lent& loan) noexcept = 0;
  virtual Result<Lent> receive_in_place(Deadline deadline) = 0;
  // Releases a message read in place, or puts it back unread.
  virtual void hand_back(const Lent& message, bool put_back) noexcept = 0;

  // The shared memory a selector sleeps on; nullptr for a transport without any.
  virtual MappedMailbox* shared_memory() noexcept { return nullptr; }

 private:
  MailboxFacts facts_;
};

// A transport with no memory to lend (a network's): zero-copy calls are refused with
// InvalidArgument, naming the mailbox, and change nothing.
class BackendWithoutLoans : public MailboxBackend {
 public:
  using MailboxBackend::MailboxBackend;
  Result<Lent> loan(std::size_t size, Deadline deadline) final;
  Result<void> commit_loan(const Lent& loan, std::size_t size, Deadline deadline) final;
  void abandon_loan(const Lent& loan) noexcept final;
  Result<Lent> receive_in_place(Deadline deadline) final;
  void hand_back(const Lent& message, bool put_back) noexcept final;
};

// What a transport offers besides its handles: the operations on a name. `name` is the
// whole name the user gave ("orders", "nats://host:4222/orders"); `where` for list and
// collect_garbage is the transport's own ("" locally, "nats://host:4222").
struct Transport {
  bool (*claims)(std::string_view name);
  Result<std::unique_ptr<MailboxBackend>> (*create)(std::string_view name, const MailboxOptions& options,
                                                    const WaitPolicy& wait);
  Result<std::unique_ptr<MailboxBackend>> (*open)(std::string_view name, const WaitPolicy& wait);
  // For open_wait: a nap of up to the given time that ends early when a mailbox may
  // have appeared under `name` (set up before the first open is tried).
  Result<std::function<void(std::chrono::milliseconds)>> (*appearance_waiter)(std::string_view name);
  Result<void> (*remove)(std::string_view name);
  Result<MailboxStatus> (*stat)(std::string_view name);
  Result<std::vector<std::string>> (*list)(std::string_view where);
  Result<std::vector<RemovedObject>> (*collect_garbage)(std::string_view where);
};

// A transport whose operations are the static functions of `Names` (claims, create,
// open, appearance_waiter, remove, stat, list, collect_garbage).
template <class Names>
constexpr Transport transport_of() noexcept {
  return Transport{Names::claims, Names::create, Names::open,  Names::appearance_waiter,
                   Names::remove, Names::stat,   Names::list, Names::collect_garbage};
}

// The transport a name belongs to (api/mailbox.cpp).
const Transport& transport_for(std::string_view name) noexcept;

}  // namespace shmbox::detail
