// A local mailbox's file in /dev/shm: its name, how it is made (initialized unnamed,
// then published), mapped (one mapping per process), validated, attached to and
// detached from, stat'ed, removed, and collected as garbage. docs/design.md, "Files
// and names", "Ownership", "What stat counts".
#include "local/mailbox_file.hpp"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <mutex>
#include <new>
#include <optional>

#include "base/name.hpp"
#include "local/local_mailbox.hpp"
#include "local/ownership.hpp"
#include "local/recovery.hpp"
#include "local/ring.hpp"
#include "platform/barrier.hpp"
#include "platform/process.hpp"
#include "platform/shm.hpp"
#include "segment/segment_factory.hpp"

namespace shmbox {
namespace {


using detail::MappedMailbox;

constexpr std::string_view kind = "mailbox";

using MailboxName = detail::MailboxFile;

void initialize_mailbox(std::span<std::byte> memory, const detail::Geometry& geometry, std::uint64_t owner) {
  // Runs on the unnamed file: nobody else can see it yet, so plain stores suffice,
  // and the link that publishes the file orders them before any open.
  auto* header = new (memory.data()) detail::Header{};
  header->identity = detail::Identity{
      .magic = detail::mailbox_magic,
      .layout_version = detail::mailbox_layout_version,
      .header_size = static_cast<std::uint32_t>(detail::header_bytes),
      .buffering = static_cast<std::uint32_t>(geometry.buffering),
      .dimensions = geometry,
      .placement = geometry,
  };
  header->chunks = geometry.chunks;
  // A process-owned mailbox records its owner as its creator, also when it was made
  // for another process (MailboxOptions::owner_pid): the two must agree on open.
  header->creator = owner != 0 ? owner : platform::current_process().packed();
  header->owner = owner;
  for (std::uint32_t i = 0; i < geometry.attach_capacity; ++i) {
    new (memory.data() + geometry.attach_offset + i * sizeof(detail::AttachEntry)) detail::AttachEntry{};
  }
  if (geometry.buffering == Buffering::unbounded) {
    // Slots are not backed yet: chunks start unbacked (0), and a backed chunk's
    // memory reads as zero, which is how a free unbounded slot looks.
    for (std::uint32_t i = 0; i < geometry.chunks.count; ++i) {
      new (memory.data() + geometry.chunks.table_offset + i * sizeof(detail::ChunkEntry)) detail::ChunkEntry{};
    }
    return;
  }
  for (std::uint64_t i = 0; i < geometry.slot_count; ++i) {
    auto* slot = new (memory.data() + geometry.slots_offset + i * geometry.slot_stride) detail::SlotHeader{};
    slot->state.store(detail::SlotState::pack(i, detail::Phase::free, 0), std::memory_order_relaxed);
  }
}

// The process's one mapping of a mailbox file: a handle opened while another handle
// on the same file (same inode: it cannot be reused while that handle keeps it open)
// lives shares its mapping, and the new one is dropped.
std::shared_ptr<const Segment> share_mapping(Segment segment) {
  // Never destroyed: handlers that run at exit open mailboxes too.
  static auto& lock = *new std::mutex;
  static auto& mappings = *new std::map<std::pair<dev_t, ino_t>, std::weak_ptr<const Segment>>;
  struct stat st {};
  if (::fstat(detail::SegmentFactory::descriptor(segment), &st) != 0) {
    return std::make_shared<const Segment>(std::move(segment));  // unshared: still correct
  }
  const std::scoped_lock guard{lock};
  std::erase_if(mappings, [](const auto& entry) { return entry.second.expired(); });
  auto& slot = mappings[{st.st_dev, st.st_ino}];
  if (auto existing = slot.lock(); existing && existing->size() == segment.size()) return existing;
  auto shared = std::make_shared<const Segment>(std::move(segment));
  slot = shared;
  return shared;
}

// Mailbox files are named only once sized: one left empty is garbage, not a mailbox
// still being made (segment_factory.hpp, Unsized).
Result<Segment> open_mailbox_file(const MailboxName& names, Access access,
                                  detail::OwnerCheck check = detail::OwnerCheck::any_owner) {
  return detail::SegmentFactory::open(names.file_name, names.object, access, check, detail::Unsized::garbage_after_grace);
}

// Maps and validates an opened mailbox file; the caller attaches if it will operate.
Result<std::unique_ptr<detail::LocalMailbox>> view(MailboxName name, Segment opened, const WaitPolicy& wait) {
  // Only read-write mappings are shared (stat's is read-only and short-lived).
  std::shared_ptr<const Segment> mapping = opened.access() == Access::read_write
                                               ? share_mapping(std::move(opened))
                                               : std::make_shared<const Segment>(std::move(opened));
  const auto bytes = mapping->bytes();
  if (bytes.size() < detail::header_bytes) {
    return std::unexpected(Error{Errc::corrupt, name.object, "is smaller than a mailbox header"});
  }
  // One snapshot of the immutable fields; after validation only the copy is used.
  detail::Identity identity{};
  std::memcpy(&identity, bytes.data(), sizeof identity);
  detail::ChunkGeometry chunks{};
  std::memcpy(&chunks, bytes.data() + offsetof(detail::Header, chunks), sizeof chunks);
  auto geometry = detail::validate_identity(identity, chunks, bytes.size(), name.object);
  if (!geometry) return std::unexpected(geometry.error());
  auto* base = const_cast<std::byte*>(bytes.data());
  std::uint64_t owner = 0;
  std::uint64_t creator = 0;
  std::memcpy(&owner, bytes.data() + offsetof(detail::Header, owner), sizeof owner);
  std::memcpy(&creator, bytes.data() + offsetof(detail::Header, creator), sizeof creator);
  // Garbage here must never pass for a dead owner: that would remove the mailbox.
  if (auto fault = detail::owner_record_fault(name.file_name, owner, creator)) {
    return std::unexpected(Error{Errc::corrupt, name.object, "has a corrupt owner record: " + *fault});
  }
  MappedMailbox mailbox{
      .name = std::move(name.name),
      .object = std::move(name.object),
      .file_name = std::move(name.file_name),
      .mapping = std::move(mapping),
      .geometry = *geometry,
      .wait = wait,
      .header = reinterpret_cast<detail::Header*>(base),
      .slots = base + geometry->slots_offset,
  };
  const std::uint64_t count = geometry->slot_count;
  mailbox.index_mask = (count & (count - 1)) == 0 ? count - 1 : 0;
  mailbox.owner = owner;
  return std::make_unique<detail::LocalMailbox>(std::move(mailbox));
}

Result<void> attach(MappedMailbox& mailbox) {
  const std::uint64_t me = platform::current_process().packed();
  mailbox.process = me;  // recover() marks the entries it works on with it
  // Per process, so after a fork the child registers itself when it attaches.
  mailbox.light_wake_checks = platform::register_for_heavy_barriers();
  detail::AttachEntry* table = mailbox.attach_entries();
  // A free entry; failing that, recover what dead processes' entries hold, which
  // frees those entries (an entry is never reused while a slot still names it), and
  // look again. pid reuse cannot fool the liveness check: the identity carries the
  // process's start time.
  for (int pass = 0; pass < 2; ++pass) {
    if (pass == 1) (void)detail::recover(mailbox, nullptr, 0);
    for (std::uint32_t i = 0; i < mailbox.geometry.attach_capacity; ++i) {
      std::uint64_t holder = table[i].identity.load(std::memory_order_acquire);
      if (holder != 0) continue;
      if (table[i].identity.compare_exchange_strong(holder, me, std::memory_order_acq_rel)) {
        mailbox.self = static_cast<std::uint16_t>(i + 1);
        mailbox.entry = &table[i];
        table[i].send_intent.store(0, std::memory_order_relaxed);
        table[i].send_intent_end.store(0, std::memory_order_relaxed);
        table[i].active.store(0, std::memory_order_relaxed);
        const std::uint64_t generation = table[i].generation.fetch_add(1, std::memory_order_acq_rel) + 1;
        mailbox.chunk_tag = detail::ChunkWord::worker_tag(generation, mailbox.self);
        table[i].roles.store(0, std::memory_order_relaxed);
        if (mailbox.owner != 0) mailbox.owner_watch = platform::ProcessWatch{mailbox.owner};
        return {};
      }
    }
  }
  return std::unexpected(Error{Errc::no_space, mailbox.object,
                               "all " + std::to_string(mailbox.geometry.attach_capacity) +
                                   " attach entries are held by live handles (raise max_attached)"});
}

struct AttachedCounts {
  std::uint32_t handles = 0, senders = 0, receivers = 0;
};

// Handles of live processes only: a killed process's entry stays held until a recovery
// frees it, and what it held is then someone else's (a dead receiver's message is counted
// as queued).
AttachedCounts count_attached(const MappedMailbox& mailbox) {
  const detail::AttachEntry* table = mailbox.attach_entries();
  AttachedCounts counts;
  for (std::uint32_t i = 0; i < mailbox.geometry.attach_capacity; ++i) {
    if (!detail::held_by_live_handle(mailbox, static_cast<std::uint16_t>(i + 1))) continue;
    const std::uint64_t roles = table[i].roles.load(std::memory_order_relaxed);
    ++counts.handles;
    if ((roles & detail::role_sender) != 0) ++counts.senders;
    if ((roles & detail::role_receiver) != 0) ++counts.receivers;
  }
  return counts;
}

bool orphaned(const MappedMailbox& mailbox) {
  return mailbox.owner != 0 && platform::liveness(mailbox.owner) == platform::Liveness::dead;
}

// A process-owned mailbox whose owner has exited is no longer there for anyone: close
// it, remove its name, and answer as if it did not exist.
Result<void> refuse_if_orphaned(MappedMailbox& mailbox) {
  if (!orphaned(mailbox)) return {};
  (void)detail::retire(mailbox);  // left as it is if this process may not remove it
  return std::unexpected(Error{Errc::not_found, mailbox.object,
                               "does not exist: its owner, process " +
                                   std::to_string(platform::ProcessIdentity::unpack(mailbox.owner).pid) + ", exited"});
}

}  // namespace

namespace detail {

std::optional<Garbage> remove_mailbox_if_garbage(const MailboxFile& names) {
  if (SegmentFactory::remove_if_left_unsized(names.file_name)) {
    forget_at_exit(names.file_name);  // were it ours, exit must not write into what is left of it
    return Garbage::left_unsized();
  }
  auto segment = open_mailbox_file(names, Access::read_write);
  if (!segment) return std::nullopt;
  auto mailbox = view(names, std::move(*segment), {});
  // Unreadable, its owner lives, or not ours to remove: left alone.
  if (!mailbox || !orphaned((*mailbox)->mapped()) || !retire((*mailbox)->mapped())) return std::nullopt;
  return Garbage::owner_exited(platform::ProcessIdentity::unpack((*mailbox)->mapped().owner).pid);
}

}  // namespace detail

namespace detail {

Result<std::unique_ptr<LocalMailbox>> MailboxFactory::create(MailboxFile names, const MailboxOptions& options, const WaitPolicy& wait,
                                       std::uint64_t owner) {
  auto geometry = plan_geometry(options, names.object);
  if (!geometry) return std::unexpected(geometry.error());
  auto make = [&] {
    return SegmentFactory::create(
        names.file_name, names.object, geometry->file_size,
        {.mode = options.mode,
         .initialize = [&](std::span<std::byte> memory) { initialize_mailbox(memory, *geometry, owner); }},
        geometry->reserved_size);
  };
  auto segment = make();
  // The name is taken: by garbage (a mailbox whose owner has exited, or an empty file
  // left so), it is free to reuse.
  if (!segment && segment.error() == Errc::already_exists && remove_mailbox_if_garbage(names)) segment = make();
  if (!segment) return std::unexpected(segment.error());
  auto mailbox = view(std::move(names), std::move(*segment), wait);
  if (!mailbox) return std::unexpected(mailbox.error());
  if (auto attached = attach((*mailbox)->mapped()); !attached) return std::unexpected(attached.error());
  if (owner == platform::current_process().packed()) remove_at_exit((*mailbox)->mapped());
  return std::move(*mailbox);
}

Result<std::unique_ptr<LocalMailbox>> MailboxFactory::open(MailboxFile names, const WaitPolicy& wait, OwnerCheck check) {
  auto segment = open_mailbox_file(names, Access::read_write, check);
  if (!segment) return std::unexpected(segment.error());
  auto mailbox = view(std::move(names), std::move(*segment), wait);
  if (!mailbox) return std::unexpected(mailbox.error());
  if (auto present = refuse_if_orphaned((*mailbox)->mapped()); !present) return std::unexpected(present.error());
  if (auto attached = attach((*mailbox)->mapped()); !attached) return std::unexpected(attached.error());
  return std::move(*mailbox);
}

Result<void> MailboxFactory::remove(const MailboxFile& names) {
  // The name first: whether we may remove it is the kernel's decision (in the sticky
  // /dev/shm, the file's owner's or root's), and a remove it refuses must change
  // nothing. Then the close, so that processes still mapping it wake instead of waiting
  // on a mailbox nobody can reach. design.md, Close and remove.
  for (;;) {
    auto segment = open_mailbox_file(names, Access::read_write);
    if (!segment) {
      // Not ours to open, empty, or no mailbox at all: there is nothing to close.
      auto removed = SegmentFactory::remove(names.file_name, names.object);
      if (removed) forget_at_exit(names.file_name);
      return removed;
    }
    auto unlinked = platform::unlink_shm_file_if_same(names.file_name, SegmentFactory::descriptor(*segment), names.object);
    if (!unlinked) return std::unexpected(unlinked.error());
    // Removed and made again since we opened it: the name is the new mailbox's now.
    if (!*unlinked) continue;
    forget_at_exit(names.file_name);
    // A corrupt mailbox is removed all the same, but not written to.
    if (auto mailbox = view(names, std::move(*segment), {})) close_mailbox(*(*mailbox)->mapped().header);
    return {};
  }
}

}  // namespace detail

namespace detail {

Result<MailboxFile> mailbox_file(std::string_view name) {
  auto valid = validate_name(kind, name);
  if (!valid) return std::unexpected(valid.error());
  const std::size_t limit = max_name_length - mailbox_file_prefix.size();
  if (valid->size() > limit) {
    return std::unexpected(Error{Errc::invalid_name, describe(kind, *valid),
                                 "name is " + std::to_string(valid->size()) + " characters long, the limit is " +
                                     std::to_string(limit)});
  }
  std::string file_name{mailbox_file_prefix};
  file_name += *valid;
  std::string object = describe(kind, *valid);
  return MailboxFile{std::move(*valid), std::move(file_name), std::move(object)};
}

void detach(MappedMailbox& mailbox) noexcept {
  if (mailbox.self == 0) return;
  mailbox.attach_entries()[mailbox.self - 1].identity.store(0, std::memory_order_release);
  mailbox.self = 0;
  mailbox.entry = nullptr;
}

Result<std::string> instance_of(const MappedMailbox& mailbox) {
  struct stat st {};
  const std::string boot = platform::boot_id();
  if (boot.empty() || ::fstat(SegmentFactory::descriptor(*mailbox.mapping), &st) != 0) {
    return std::unexpected(Error{Errc::system, mailbox.object,
                                 "cannot tell this mailbox's file from others (no boot id, or fstat failed)", errno});
  }
  return mailbox.name + "-" + boot + "-" + std::to_string(st.st_dev) + "-" + std::to_string(st.st_ino) + "-";
}

Result<std::uint64_t> owner_of(const std::string& object, const MailboxOptions& options) {
  if (options.ownership == Ownership::system) {
    if (options.owner_pid != 0) {
      return std::unexpected(Error{Errc::invalid_argument, object, "a system-owned mailbox has no owner process"});
    }
    return 0;
  }
  if (options.owner_pid == 0) return platform::current_process().packed();
  const auto start_time = options.owner_pid > 0 ? platform::process_start_time(options.owner_pid) : std::nullopt;
  if (!start_time) {
    return std::unexpected(Error{Errc::invalid_argument, object,
                                 "its owner, process " + std::to_string(options.owner_pid) + ", is not running"});
  }
  return platform::ProcessIdentity{options.owner_pid, *start_time}.packed();
}

std::vector<RemovedObject> remove_garbage_mailboxes(std::string_view file_prefix, std::string_view shown_as) {
  std::vector<RemovedObject> removed;
  for (const std::string& name : platform::list_shm_names(file_prefix)) {
    const MailboxFile names{name, std::string{file_prefix} + name, describe(shown_as, name)};
    if (auto garbage = remove_mailbox_if_garbage(names)) {
      removed.push_back({std::string{shown_as}, name, garbage->owner_pid, std::move(garbage->cause)});
    }
  }
  return removed;
}

}  // namespace detail

bool detail::MailboxFactory::remove_if_owned_by(const MailboxFile& names, std::uint64_t owner) {
  auto segment = open_mailbox_file(names, Access::read_write);
  if (!segment) return false;
  auto mailbox = view(names, std::move(*segment), {});
  if (!mailbox) return false;
  if ((*mailbox)->mapped().owner != owner && platform::liveness((*mailbox)->mapped().owner) == platform::Liveness::alive) return false;
  // Our own (an endpoint giving back or leaving its lanes): closed even where another
  // user's sender made the file and we may not remove it, so that its blocked sends wake.
  if ((*mailbox)->mapped().owner == platform::current_process().packed()) return detail::close_for_good((*mailbox)->mapped());
  return detail::retire((*mailbox)->mapped());
}

Result<MailboxStatus> detail::MailboxFactory::stat(const MailboxFile& names) {
  auto info = detail::SegmentFactory::stat(names.file_name, names.object);
  if (!info) return std::unexpected(info.error());
  auto segment = open_mailbox_file(names, Access::read_only);
  if (!segment) return std::unexpected(segment.error());
  auto mailbox = view(names, std::move(*segment), {});
  if (!mailbox) return std::unexpected(mailbox.error());
  const MappedMailbox& s = (*mailbox)->mapped();
  const AttachedCounts attached = count_attached(s);
  const bool owner_alive = s.owner != 0 && platform::liveness(s.owner) == platform::Liveness::alive;
  return MailboxStatus{
      .name = s.name,
      .buffering = s.geometry.buffering,
      .capacity = s.geometry.capacity,
      .max_message_size = s.geometry.max_message_size,
      .queued = detail::queued(s),
      .closed = detail::is_closed(s),
      .ownership = s.owner == 0 ? Ownership::system : Ownership::process,
      .owner_pid = s.owner == 0 ? 0 : platform::ProcessIdentity::unpack(s.owner).pid,
      .owner_name = owner_alive ? platform::process_name(s.owner) : std::string{},
      .owner_alive = owner_alive,
      .transport = LocalMailboxStatus{.mode = info->mode,
                                      .owner_uid = info->owner_uid,
                                      .attached = attached.handles,
                                      .senders = attached.senders,
                                      .receivers = attached.receivers,
                                      .memory_bytes = info->allocated},
  };
}

}  // namespace shmbox
