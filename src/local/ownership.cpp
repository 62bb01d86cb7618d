#include "local/ownership.hpp"

#include "local/ring.hpp"
#include "platform/shm.hpp"
#include "segment/segment_factory.hpp"

namespace shmbox::detail {
namespace {

// Removes the name if it still names the file mapped as `mapping`, then closes the
// mailbox: the kernel decides whether we may remove it, and a removal it refuses
// changes nothing. A name already gone or taken by a new file counts as removed: ours
// is unnamed either way. Whether the mailbox is unnamed and closed now.
bool unlink_then_close(Header& header, const std::string& file_name, const Segment& mapping) noexcept {
  auto unlinked = platform::unlink_shm_file_if_same(file_name, SegmentFactory::descriptor(mapping), {});
  if (!unlinked && unlinked.error() != Errc::not_found) return false;
  close_mailbox(header);
  return true;
}

// The owner is gone or leaving: the mailbox closes for everyone even where this
// process may not remove its name (it may have changed its uid since it created it).
bool close_for_good(Header& header, const std::string& file_name, const Segment& mapping) noexcept {
  if (unlink_then_close(header, file_name, mapping)) return true;
  close_mailbox(header);
  return false;
}

}  // namespace

bool close_for_good(MappedMailbox& mailbox) noexcept {
  const bool removed = close_for_good(*mailbox.header, mailbox.file_name, *mailbox.mapping);
  forget_at_exit(mailbox.file_name);
  return removed;
}

bool retire(MappedMailbox& mailbox) noexcept {
  if (!unlink_then_close(*mailbox.header, mailbox.file_name, *mailbox.mapping)) return false;
  forget_at_exit(mailbox.file_name);
  return true;
}

bool retire_if_orphaned(MappedMailbox& mailbox) noexcept {
  if (mailbox.owner == 0 || !mailbox.owner_watch.exited()) return false;
  (void)close_for_good(mailbox);
  return true;
}

std::optional<std::string> owner_record_fault(std::string_view file_name, std::uint64_t owner, std::uint64_t creator) {
  if (owner == 0) return std::nullopt;
  if (auto fault = platform::implausible_process(owner)) return fault;
  if (file_name.starts_with(mailbox_file_prefix) && owner != creator) {
    return "it names process " + std::to_string(platform::ProcessIdentity::unpack(owner).pid) +
           ", but the mailbox was created for process " +
           std::to_string(platform::ProcessIdentity::unpack(creator).pid) +
           ", and a mailbox belongs to the process it was created for or to the system";
  }
  return std::nullopt;
}

void remove_at_exit(const MappedMailbox& mailbox) {
  // The mapping is kept so that exit can close the mailbox without opening it again.
  run_at_exit(mailbox.file_name, mailbox.owner, [file_name = mailbox.file_name, mapping = mailbox.mapping, header = mailbox.header] {
    (void)close_for_good(*header, file_name, *mapping);
  });
}

}  // namespace shmbox::detail
