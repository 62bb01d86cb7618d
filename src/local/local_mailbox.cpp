#include "local/local_mailbox.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>
#include <mutex>
#include <new>
#include <optional>

#include "base/name.hpp"
#include "local/ownership.hpp"
#include "local/recovery.hpp"
#include "local/ring.hpp"
#include "local/waiting.hpp"
#include "platform/barrier.hpp"
#include "platform/directory_watch.hpp"
#include "platform/process.hpp"
#include "platform/shm.hpp"
#include "segment/segment_factory.hpp"

namespace shmbox {
namespace {

using detail::MailboxState;

constexpr std::string_view kind = "mailbox";

using MailboxName = detail::MailboxFile;

Result<MailboxName> mailbox_name(std::string_view name) {
  auto valid = detail::validate_name(kind, name);
  if (!valid) return std::unexpected(valid.error());
  const std::size_t limit = detail::max_name_length - detail::mailbox_file_prefix.size();
  if (valid->size() > limit) {
    return std::unexpected(Error{Errc::invalid_name, detail::describe(kind, *valid),
                                 "name is " + std::to_string(valid->size()) + " characters long, the limit is " +
                                     std::to_string(limit)});
  }
  std::string file_name{detail::mailbox_file_prefix};
  file_name += *valid;
  std::string object = detail::describe(kind, *valid);
  return MailboxName{std::move(*valid), std::move(file_name), std::move(object)};
}

void initialise(std::span<std::byte> memory, const detail::Geometry& geometry, std::uint64_t owner) {
  // Runs on the unnamed file: nobody else can see it yet, so plain stores suffice,
  // and the link that publishes the file orders them before any open.
  auto* header = new (memory.data()) detail::Header{};
  header->identity = detail::Identity{
      .magic = detail::mailbox_magic,
      .layout_version = detail::mailbox_layout_version,
      .header_size = static_cast<std::uint32_t>(detail::header_bytes),
      .buffering = static_cast<std::uint32_t>(geometry.buffering),
      .capacity = geometry.capacity,
      .max_message_size = geometry.max_message_size,
      .slot_stride = geometry.slot_stride,
      .slot_count = geometry.slot_count,
      .attach_capacity = geometry.attach_capacity,
      .attach_offset = geometry.attach_offset,
      .slots_offset = geometry.slots_offset,
      .file_size = geometry.file_size,
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
  MailboxState state{
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
  state.index_mask = (count & (count - 1)) == 0 ? count - 1 : 0;
  state.owner = owner;
  return std::make_unique<detail::LocalMailbox>(std::move(state));
}

Result<void> attach(MailboxState& state) {
  const std::uint64_t me = platform::current_process().packed();
  state.process = me;  // recover() marks the entries it works on with it
  // Per process, so after a fork the child registers itself when it attaches.
  state.light_wake_checks = platform::register_for_heavy_barriers();
  detail::AttachEntry* table = state.attach_entries();
  // A free entry; failing that, recover what dead processes' entries hold, which
  // frees those entries (an entry is never reused while a slot still names it), and
  // look again. pid reuse cannot fool the liveness check: the identity carries the
  // process's start time.
  for (int pass = 0; pass < 2; ++pass) {
    if (pass == 1) (void)detail::recover(state, nullptr);
    for (std::uint32_t i = 0; i < state.geometry.attach_capacity; ++i) {
      std::uint64_t holder = table[i].identity.load(std::memory_order_acquire);
      if (holder != 0) continue;
      if (table[i].identity.compare_exchange_strong(holder, me, std::memory_order_acq_rel)) {
        state.self = static_cast<std::uint16_t>(i + 1);
        state.entry = &table[i];
        table[i].send_intent.store(0, std::memory_order_relaxed);
        table[i].active.store(0, std::memory_order_relaxed);
        const std::uint64_t generation = table[i].generation.fetch_add(1, std::memory_order_acq_rel) + 1;
        state.chunk_tag = detail::ChunkWord::worker_tag(generation, state.self);
        table[i].roles.store(0, std::memory_order_relaxed);
        if (state.owner != 0) state.owner_watch = platform::ProcessWatch{state.owner};
        return {};
      }
    }
  }
  return std::unexpected(Error{Errc::no_space, state.object,
                               "all " + std::to_string(state.geometry.attach_capacity) +
                                   " attach entries are held by live handles (raise max_attached)"});
}

void detach(MailboxState& state) noexcept {
  if (state.self == 0) return;
  state.attach_entries()[state.self - 1].identity.store(0, std::memory_order_release);
  state.self = 0;
  state.entry = nullptr;
}

struct AttachedCounts {
  std::uint32_t handles = 0, senders = 0, receivers = 0;
};

// Handles of live processes only: a killed process's entry stays held until a recovery
// frees it, and what it held is then someone else's (a dead receiver's message is counted
// as queued).
AttachedCounts count_attached(const MailboxState& state) {
  const detail::AttachEntry* table = state.attach_entries();
  AttachedCounts counts;
  for (std::uint32_t i = 0; i < state.geometry.attach_capacity; ++i) {
    if (!detail::held_by_live_handle(state, static_cast<std::uint16_t>(i + 1))) continue;
    const std::uint64_t roles = table[i].roles.load(std::memory_order_relaxed);
    ++counts.handles;
    if ((roles & detail::role_sender) != 0) ++counts.senders;
    if ((roles & detail::role_receiver) != 0) ++counts.receivers;
  }
  return counts;
}

bool orphaned(const MailboxState& state) {
  return state.owner != 0 && platform::liveness(state.owner) == platform::Liveness::dead;
}

// A process-owned mailbox whose owner has exited is no longer there for anyone: close
// it, remove its name, and answer as if it did not exist.
Result<void> refuse_if_orphaned(MailboxState& state) {
  if (!orphaned(state)) return {};
  (void)detail::retire(state);  // left as it is if this process may not remove it
  return std::unexpected(Error{Errc::not_found, state.object,
                               "does not exist: its owner, process " +
                                   std::to_string(platform::ProcessIdentity::unpack(state.owner).pid) + ", exited"});
}

// What tells this mailbox from every other, of any name, on any machine, before or
// after: its name, and its file (device and inode) on this boot of this machine.
Result<std::string> instance_of(const MailboxState& state) {
  struct stat st {};
  const std::string boot = platform::boot_id();
  if (boot.empty() || ::fstat(detail::SegmentFactory::descriptor(*state.mapping), &st) != 0) {
    return std::unexpected(Error{Errc::system, state.object,
                                 "cannot tell this mailbox's file from others (no boot id, or fstat failed)", errno});
  }
  return state.name + "-" + boot + "-" + std::to_string(st.st_dev) + "-" + std::to_string(st.st_ino) + "-";
}

Error too_large_error(const MailboxState& state, std::size_t size) {
  return Error{Errc::too_large, state.object,
               "message of " + std::to_string(size) + " bytes is over the mailbox's maximum of " +
                   std::to_string(state.geometry.max_message_size)};
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
  auto state = view(names, std::move(*segment), {});
  // Unreadable, its owner lives, or not ours to remove: left alone.
  if (!state || !orphaned((*state)->state()) || !retire((*state)->state())) return std::nullopt;
  return Garbage::owner_exited(platform::ProcessIdentity::unpack((*state)->state().owner).pid);
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
         .initialize = [&](std::span<std::byte> memory) { initialise(memory, *geometry, owner); }},
        geometry->reserved_size);
  };
  auto segment = make();
  // The name is taken: by garbage (a mailbox whose owner has exited, or an empty file
  // left so), it is free to reuse.
  if (!segment && segment.error() == Errc::already_exists && remove_mailbox_if_garbage(names)) segment = make();
  if (!segment) return std::unexpected(segment.error());
  auto state = view(std::move(names), std::move(*segment), wait);
  if (!state) return std::unexpected(state.error());
  if (auto attached = attach((*state)->state()); !attached) return std::unexpected(attached.error());
  if (owner == platform::current_process().packed()) remove_at_exit((*state)->state());
  return std::move(*state);
}

Result<std::unique_ptr<LocalMailbox>> MailboxFactory::open(MailboxFile names, const WaitPolicy& wait, OwnerCheck check) {
  auto segment = open_mailbox_file(names, Access::read_write, check);
  if (!segment) return std::unexpected(segment.error());
  auto state = view(std::move(names), std::move(*segment), wait);
  if (!state) return std::unexpected(state.error());
  if (auto present = refuse_if_orphaned((*state)->state()); !present) return std::unexpected(present.error());
  if (auto attached = attach((*state)->state()); !attached) return std::unexpected(attached.error());
  return std::move(*state);
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
    if (auto state = view(names, std::move(*segment), {})) close_mailbox(*(*state)->state().header);
    return {};
  }
}

}  // namespace detail

namespace detail {

LocalMailbox::~LocalMailbox() { detach(state_); }

bool LocalMailbox::closed() const noexcept { return is_closed(state_); }
std::uint64_t LocalMailbox::queued() const noexcept { return detail::queued(state_); }

Result<void> LocalMailbox::close() {
  close_mailbox(*state_.header);
  return {};
}

}  // namespace detail

namespace {

// The error a wait that did not claim ends with.
Error wait_error(MailboxState& state, detail::Waited waited, Deadline deadline) {
  if (waited == detail::Waited::failed) return std::move(*state.failure);
  return deadline.is_none() ? detail::would_block_error() : detail::timeout_error(state);
}

// Claims a position to send at, waiting as the deadline allows.
detail::Waited claim_for_send(MailboxState& state, Deadline deadline, detail::SendClaim& claim) {
  // A sender that never waits would never look at the owner: look every 1024 sends,
  // so that sends into a mailbox whose owner has gone start failing.
  if (--state.sends_until_check == 0) {
    state.sends_until_check = 1024;
    detail::watch_owner(state, std::chrono::steady_clock::now());
  }
  state.record_role(detail::role_sender);
  return detail::wait_for(state, detail::Side::send, deadline, [&] { return detail::try_claim_send(state, claim); });
}

// Zero capacity: after publishing, the send completes only once a receiver has
// claimed the message. On expiry or close the sender takes it back if it can; if a
// receiver claimed it first, the send succeeded after all.
Result<void> await_pick_up(MailboxState& state, const detail::SendClaim& claim, Deadline deadline) {
  // A non-blocking send goes ahead only when a receiver is waiting; that receiver may
  // be asleep, so give it time for a kernel wake-up (2 ms covers one on a loaded
  // machine) before taking the message back.
  const bool non_blocking = deadline.is_none();
  if (non_blocking) deadline = Deadline{std::max<std::chrono::microseconds>(state.wait.spin, std::chrono::milliseconds{2})};
  const detail::Waited waited = detail::wait_for(state, detail::Side::send, deadline, [&] {
    if (!detail::still_published(state, claim)) return detail::Attempt::claimed;
    if (detail::is_closed(state)) return state.fail(state.closed_error(), detail::Attempt::failed);
    return detail::Attempt::not_yet;
  });
  if (waited == detail::Waited::done) return {};
  if (!detail::take_back(state, claim)) return {};  // a receiver claimed it first
  return std::unexpected(wait_error(state, waited, non_blocking ? Deadline::none() : deadline));
}

}  // namespace

Result<void> detail::LocalMailbox::send(std::span<const std::byte> message, Deadline deadline, std::string_view) {
  MailboxState& state = state_;
  if (message.size() > state.geometry.max_message_size) return std::unexpected(too_large_error(state, message.size()));
  const bool zero = state.geometry.buffering == Buffering::zero;
  if (zero && deadline.is_none() && state.header->receivers_present.load(std::memory_order_seq_cst) == 0) {
    if (detail::is_closed(state)) return std::unexpected(state.closed_error());
    return std::unexpected(detail::would_block_error());
  }
  detail::SendClaim claim{};
  const detail::Waited waited = claim_for_send(state, deadline, claim);
  if (waited != detail::Waited::done) return std::unexpected(wait_error(state, waited, deadline));
  if (!message.empty()) std::memcpy(state.payload(*claim.slot), message.data(), message.size());
  detail::publish(state, claim, static_cast<std::uint32_t>(message.size()));
  if (zero) return await_pick_up(state, claim, deadline);
  return {};
}

namespace {

// Claims the next message no larger than `size_limit`, waiting as the deadline
// allows. An out-parameter and a one-byte result keep the hot path free of Error.
detail::Waited claim_for_receive(MailboxState& state, std::size_t size_limit, Deadline deadline,
                                 detail::ReceiveClaim& claim) {
  // In a mailbox that is never empty nobody waits, so recovery would never run from a
  // wait: adopt orphaned messages periodically too (a clock read per 1024 receives).
  if (--state.receives_until_check == 0) {
    state.receives_until_check = 1024;
    if (const auto now = std::chrono::steady_clock::now(); now >= state.next_periodic_recovery) {
      state.next_periodic_recovery = now + std::chrono::seconds{1};
      detail::watch_owner(state, now);
      if (detail::recover(state, &claim)) return detail::Waited::done;
    }
  }
  state.record_role(detail::role_receiver);
  return detail::wait_for(state, detail::Side::receive, deadline,
                          [&] { return detail::try_claim_receive(state, size_limit, claim); });
}

}  // namespace

Result<std::size_t> detail::LocalMailbox::receive(std::span<std::byte> buffer, Deadline deadline) {
  MailboxState& state = state_;
  detail::ReceiveClaim claim{};
  const detail::Waited waited = claim_for_receive(state, buffer.size(), deadline, claim);
  if (waited != detail::Waited::done) return std::unexpected(wait_error(state, waited, deadline));
  if (claim.size != 0) std::memcpy(buffer.data(), state.payload(*claim.slot), claim.size);
  detail::release(state, claim);
  return claim.size;
}

Result<void> detail::LocalMailbox::receive(std::vector<std::byte>& message, Deadline deadline) {
  MailboxState& state = state_;
  // Room first: an allocation that fails must fail before a message is taken.
  message.reserve(state.geometry.max_message_size);
  detail::ReceiveClaim claim{};
  const detail::Waited waited = claim_for_receive(state, state.geometry.max_message_size, deadline, claim);
  if (waited != detail::Waited::done) return std::unexpected(wait_error(state, waited, deadline));
  message.resize(claim.size);  // within the capacity reserved: cannot throw
  if (claim.size != 0) std::memcpy(message.data(), state.payload(*claim.slot), claim.size);
  detail::release(state, claim);
  return {};
}

Result<detail::Lent> detail::LocalMailbox::loan(std::size_t size, Deadline deadline) {
  MailboxState& state = state_;
  if (size > state.geometry.max_message_size) return std::unexpected(too_large_error(state, size));
  detail::SendClaim claim{};
  const detail::Waited waited = claim_for_send(state, deadline, claim);
  if (waited != detail::Waited::done) return std::unexpected(wait_error(state, waited, deadline));
  return Lent{claim.position, {state.payload(*claim.slot), size}};
}

Result<void> detail::LocalMailbox::commit_loan(const Lent& loan, std::size_t size, Deadline deadline) {
  MailboxState& state = state_;
  const detail::SendClaim claim{loan.position, &state.slot(loan.position)};
  detail::publish(state, claim, static_cast<std::uint32_t>(size));
  if (state.geometry.buffering == Buffering::zero) return await_pick_up(state, claim, deadline);
  return {};
}

void detail::LocalMailbox::abandon_loan(const Lent& loan) noexcept {
  detail::abandon(state_, detail::SendClaim{loan.position, &state_.slot(loan.position)});
}

Result<detail::Lent> detail::LocalMailbox::receive_in_place(Deadline deadline) {
  MailboxState& state = state_;
  detail::ReceiveClaim claim{};
  const detail::Waited waited = claim_for_receive(state, state.geometry.max_message_size, deadline, claim);
  if (waited != detail::Waited::done) return std::unexpected(wait_error(state, waited, deadline));
  return Lent{claim.position, {state.payload(*claim.slot), claim.size}};
}

void detail::LocalMailbox::hand_back(const Lent& message, bool put_back) noexcept {
  const detail::ReceiveClaim claim{message.position, &state_.slot(message.position), 0};
  if (put_back) {
    detail::put_back(state_, claim);
  } else {
    detail::release(state_, claim);
  }
}

Result<void> detail::LocalMailbox::receive_with(const DeliveryTaker& take, Deadline deadline) {
  if (delivery_prefix_.empty()) {
    auto instance = instance_of(state_);
    if (!instance) return std::unexpected(instance.error());
    delivery_prefix_ = std::move(*instance);
  }
  auto message = receive_in_place(deadline);
  if (!message) return std::unexpected(message.error());
  const std::string id = delivery_prefix_ + std::to_string(message->position);
  Result<void> taken;
  try {
    taken = take(Delivery{message->bytes, message->position, id});
  } catch (...) {
    hand_back(*message, true);  // a taker that throws has not taken it either
    throw;
  }
  hand_back(*message, !taken);
  return taken;
}

namespace {

// The owner word a new mailbox records: 0 for the system, else the identity (pid and
// start time) of the calling process or of the running process options.owner_pid names.
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

}  // namespace

namespace {

Result<std::unique_ptr<detail::MailboxBackend>> create_local(std::string_view name, const MailboxOptions& options,
                                                             const WaitPolicy& wait) {
  auto names = mailbox_name(name);
  if (!names) return std::unexpected(names.error());
  auto owner = owner_of(names->object, options);
  if (!owner) return std::unexpected(owner.error());
  auto made = detail::MailboxFactory::create(std::move(*names), options, wait, *owner);
  if (!made) return std::unexpected(made.error());
  return std::move(*made);
}

Result<std::unique_ptr<detail::MailboxBackend>> open_local(std::string_view name, const WaitPolicy& wait) {
  auto names = mailbox_name(name);
  if (!names) return std::unexpected(names.error());
  auto opened = detail::MailboxFactory::open(std::move(*names), wait, detail::OwnerCheck::trusted_owner);
  if (!opened) return std::unexpected(opened.error());
  return std::move(*opened);
}

// Woken by inotify: the cap that open_wait puts on a nap bounds the cost of a missed event.
Result<std::function<void(std::chrono::milliseconds)>> local_appearance_waiter(std::string_view name) {
  auto watching = platform::DirectoryWatch::watch_shm_directory(detail::describe(kind, name));
  if (!watching) return std::unexpected(watching.error());
  auto watch = std::make_shared<platform::DirectoryWatch>(std::move(*watching));
  return [watch](std::chrono::milliseconds nap) { watch->wait(nap); };
}

Result<void> remove_local(std::string_view name) {
  auto names = mailbox_name(name);
  if (!names) return std::unexpected(names.error());
  return detail::MailboxFactory::remove(*names);
}

Result<MailboxStatus> stat_local(std::string_view name) {
  auto names = mailbox_name(name);
  if (!names) return std::unexpected(names.error());
  return detail::MailboxFactory::stat(*names);
}

Result<std::vector<std::string>> list_local(std::string_view) {
  return platform::list_shm_names(detail::mailbox_file_prefix);
}

Result<std::vector<RemovedObject>> collect_local_garbage(std::string_view) {
  return detail::remove_garbage_mailboxes(detail::mailbox_file_prefix, kind);
}

}  // namespace

std::vector<RemovedObject> detail::remove_garbage_mailboxes(std::string_view file_prefix, std::string_view kind) {
  std::vector<RemovedObject> removed;
  for (const std::string& name : platform::list_shm_names(file_prefix)) {
    const MailboxFile names{name, std::string{file_prefix} + name, describe(kind, name)};
    if (auto garbage = remove_mailbox_if_garbage(names)) {
      removed.push_back({std::string{kind}, name, garbage->owner_pid, std::move(garbage->cause)});
    }
  }
  return removed;
}

const detail::Transport detail::local_transport{
    .claims = [](std::string_view) { return true; },  // every name no other transport claims
    .create = create_local,
    .open = open_local,
    .appearance_waiter = local_appearance_waiter,
    .remove = remove_local,
    .stat = stat_local,
    .list = list_local,
    .collect_garbage = collect_local_garbage,
};

bool detail::MailboxFactory::remove_if_owned_by(const MailboxFile& names, std::uint64_t owner) {
  auto segment = open_mailbox_file(names, Access::read_write);
  if (!segment) return false;
  auto state = view(names, std::move(*segment), {});
  if (!state) return false;
  if ((*state)->state().owner != owner && platform::liveness((*state)->state().owner) == platform::Liveness::alive) return false;
  // Our own (an endpoint giving back or leaving its lanes): closed even where another
  // user's sender made the file and we may not remove it, so that its blocked sends wake.
  if ((*state)->state().owner == platform::current_process().packed()) return detail::close_for_good((*state)->state());
  return detail::retire((*state)->state());
}

Result<MailboxStatus> detail::MailboxFactory::stat(const MailboxFile& names) {
  auto info = detail::SegmentFactory::stat(names.file_name, names.object);
  if (!info) return std::unexpected(info.error());
  auto segment = open_mailbox_file(names, Access::read_only);
  if (!segment) return std::unexpected(segment.error());
  auto state = view(names, std::move(*segment), {});
  if (!state) return std::unexpected(state.error());
  const MailboxState& s = (*state)->state();
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
