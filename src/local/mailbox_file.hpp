// A local mailbox's file in /dev/shm: the names, and what is done to the file as a whole
// (create, open, attach, stat, remove, gc) rather than to the messages in it.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/trust_check.hpp"
#include "local/mapped_mailbox.hpp"
#include "shmbox/cleanup.hpp"
#include "shmbox/mailbox_types.hpp"

namespace shmbox::detail {

class LocalMailbox;

// The files of a user's mailbox name, or InvalidName saying what is wrong with it.
Result<MailboxFile> mailbox_file(std::string_view name);

// The owner word a new mailbox records: 0 for the system, else the identity (pid and
// start time) of the calling process or of the running process options.owner_pid names.
Result<std::uint64_t> owner_of(const std::string& object, const MailboxOptions& options);

// Gives the handle's attach entry back (a handle that never attached holds none).
void detach(MappedMailbox& mailbox) noexcept;

// What tells this mailbox from every other, of any name, on any machine, before or
// after: its name, and its file (device and inode) on this boot of this machine.
Result<std::string> instance_of(const MappedMailbox& mailbox);

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
// (remove_mailbox_if_garbage), and says what it removed, each shown as a `shown_as`.
std::vector<RemovedObject> remove_garbage_mailboxes(std::string_view file_prefix, std::string_view shown_as);

}  // namespace shmbox::detail
