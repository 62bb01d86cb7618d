// The local transport: a mailbox in a file in /dev/shm, mapped by every process that
// uses it (layout.hpp, ring.hpp). docs/design.md, "Mailboxes".
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "local/mailbox_state.hpp"
#include "mailbox/backend.hpp"
#include "segment/garbage.hpp"
#include "base/trust_check.hpp"

namespace shmbox::detail {

class LocalMailbox final : public MailboxBackend {
 public:
  explicit LocalMailbox(MailboxState state) noexcept : state_(std::move(state)) {}
  ~LocalMailbox() override;

  const std::string& name() const noexcept override { return state_.name; }
  const std::string& object() const noexcept override { return state_.object; }
  Buffering buffering() const noexcept override { return state_.geometry.buffering; }
  std::uint32_t capacity() const noexcept override { return state_.geometry.capacity; }
  std::size_t max_message_size() const noexcept override { return state_.geometry.max_message_size; }
  bool closed() const noexcept override;
  std::uint64_t queued() const noexcept override;
  Result<void> close() override;

  Result<void> send(std::span<const std::byte> message, Deadline deadline, std::string_view id) override;
  Result<std::size_t> receive(std::span<std::byte> buffer, Deadline deadline) override;
  Result<void> receive(std::vector<std::byte>& message, Deadline deadline) override;
  Result<void> receive_with(const DeliveryTaker& take, Deadline deadline) override;

  Result<Lent> loan(std::size_t size, Deadline deadline) override;
  Result<void> commit_loan(const Lent& loan, std::size_t size, Deadline deadline) override;
  void abandon_loan(const Lent& loan) noexcept override;
  Result<Lent> receive_in_place(Deadline deadline) override;
  void hand_back(const Lent& message, bool put_back) noexcept override;

  MailboxState* shared_memory() noexcept override { return &state_; }
  MailboxState& state() noexcept { return state_; }
  const MailboxState& state() const noexcept { return state_; }

 private:
  MailboxState state_;
  // What Delivery ids start with: this mailbox's file on this boot (made on first use).
  std::string delivery_prefix_;
};

// Local mailboxes under any file name and with any owner: the local transport's own
// calls, and the lanes of endpoints, which are mailboxes under names of their own.
struct MailboxFactory {
  // owner: ProcessIdentity::packed() of the owning process, 0 for the system. A
  // mailbox this process owns is also removed at its exit.
  static Result<std::unique_ptr<LocalMailbox>> create(MailboxFile names, const MailboxOptions& options,
                                                      const WaitPolicy& wait, std::uint64_t owner);
  static Result<std::unique_ptr<LocalMailbox>> open(MailboxFile names, const WaitPolicy& wait, OwnerCheck check);
  static Result<void> remove(const MailboxFile& names);
  static Result<MailboxStatus> stat(const MailboxFile& names);
  // Retires the mailbox under `names` if `owner` owns it or its owner has exited;
  // whether it removed it. (For lanes: never removes a live endpoint's lane by mistake.)
  // A mailbox this process owns is closed even where it may not remove the name.
  static bool remove_if_owned_by(const MailboxFile& names, std::uint64_t owner);
};

// Removes the garbage among the mailbox files named `file_prefix`NAME
// (remove_mailbox_if_garbage), and says what it removed as `kind`s.
std::vector<RemovedObject> remove_garbage_mailboxes(std::string_view file_prefix, std::string_view kind);

// The local transport's operations on names (api/transports.cpp lists it).
extern const Transport local_transport;

}  // namespace shmbox::detail
