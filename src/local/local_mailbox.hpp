// The local transport: a mailbox in a file in /dev/shm, mapped by every process that
// uses it (layout.hpp, ring.hpp). docs/design.md, "Mailboxes".
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "local/mapped_mailbox.hpp"
#include "mailbox/backend.hpp"

namespace shmbox::detail {

class LocalMailbox final : public MailboxBackend {
 public:
  explicit LocalMailbox(MappedMailbox mailbox);
  ~LocalMailbox() override;

  // Sending: a position claimed on the ring, written (copied, or in place through a
  // loan), then published; a zero-capacity send then waits for a receiver's claim.
  Result<void> send(std::span<const std::byte> message, Deadline deadline, std::string_view id) override;
  // Batches: the ring's attempts one after another inside one call, and a receive that
  // takes what is queued without waiting after its first.
  Result<std::size_t> send_many(std::span<const std::span<const std::byte>> messages, Deadline deadline) override;
  Result<std::size_t> receive_many(std::span<std::byte> buffer, std::span<std::size_t> sizes,
                                   Deadline deadline) override;
  Result<Lent> loan(std::size_t size, Deadline deadline) override;
  Result<void> commit_loan(const Lent& loan, std::size_t size, Deadline deadline) override;
  void abandon_loan(const Lent& loan) noexcept override;

  // Receiving: a slot claimed, read (copied, or in place), then released or put back.
  Result<std::size_t> receive(std::span<std::byte> buffer, Deadline deadline) override;
  Result<void> receive(std::vector<std::byte>& message, Deadline deadline) override;
  Result<Lent> receive_in_place(Deadline deadline) override;
  void hand_back(const Lent& message, bool put_back) noexcept override;
  Result<void> receive_with(const DeliveryTaker& take, Deadline deadline) override;

  bool closed() const noexcept override;
  std::uint64_t queued() const noexcept override;  // reads the slots: costs time in proportion to the capacity
  Result<void> close() override;

  MappedMailbox* shared_memory() noexcept override { return &mapped_; }
  MappedMailbox& mapped() noexcept { return mapped_; }
  const MappedMailbox& mapped() const noexcept { return mapped_; }

 private:
  MappedMailbox mapped_;
  // What Delivery ids start with: this mailbox's file on this boot (found on first use;
  // empty if it cannot be told).
  std::optional<std::string> delivery_prefix_;
};

// The local transport's operations on names (transport_for, api/mailbox.cpp, lists it).
extern const Transport local_transport;

}  // namespace shmbox::detail
