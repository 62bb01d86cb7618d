// Lock handles: standalone lock files and locks inside segments, validated once when
// opened; the algorithm itself is robust_lock.cpp's.
#include "shmbox/lock.hpp"

#include <cstring>
#include <utility>

#include "base/name.hpp"
#include "platform/process.hpp"
#include "platform/shm.hpp"
#include "segment/segment_factory.hpp"
#include "sharing/robust_lock.hpp"

namespace shmbox {
namespace detail {

// One handle's mapping and slot: owned by the Lock, and by itself while a HeldLock it gave
// out outlives the Lock, so that either may go first.
struct LockHandle {
  std::string name;
  std::string object;
  Segment mapping;
  RobustLock lock;
  std::optional<std::uint32_t> slot;  // taken on the first lock()
  std::uint64_t slot_fork_generation = 0;
  bool held = false;

  // A forked child inherits the handle but not its slot, nor what the slot holds.
  bool slot_is_ours() const noexcept {
    return slot.has_value() && slot_fork_generation == platform::fork_generation();
  }

  LockMode held_mode = LockMode::exclusive;
  // HeldLocks that point here (a forked child's copies included: they are in its memory).
  std::uint32_t holds_out = 0;
  // Set when the Lock went while holds were out; the last hold's end drops it.
  std::shared_ptr<LockHandle> kept_for_holds;

  // The Lock lets go of its handle: gone now, or when the last hold goes.
  static void let_go(std::shared_ptr<LockHandle> handle) noexcept {
    if (handle && handle->holds_out > 0) {
      LockHandle& self = *handle;
      self.kept_for_holds = std::move(handle);
    }
  }

  ~LockHandle() {
    if (!slot_is_ours()) return;
    if (held) lock.release(*slot, held_mode);
    lock.free_slot(*slot);
  }
};

namespace {

Result<FileNames> lock_names(std::string_view name) { return file_names("lock", lock_file_prefix, name); }

std::string in_segment_object(std::string_view segment_name, std::size_t offset) {
  return "lock in " + describe("segment", segment_name) + " at offset " + std::to_string(offset);
}

Result<std::uint32_t> checked_slot_count(std::uint32_t max_handles, const std::string& object) {
  if (max_handles == 0 || max_handles > max_lock_slots) {
    return std::unexpected(Error{Errc::invalid_argument, object,
                                 "max_handles must be 1 to " + std::to_string(max_lock_slots) + ", not " +
                                     std::to_string(max_handles)});
  }
  return max_handles;
}

}  // namespace

Result<std::uint32_t> validate_lock_record(const Segment& mapping, std::size_t offset, const std::string& object) {
  const auto bytes = mapping.bytes();
  if (offset > bytes.size() || bytes.size() - offset < sizeof(LockHeader)) {
    return std::unexpected(Error{Errc::corrupt, object, "is smaller than a lock header"});
  }
  LockIdentity identity{};
  std::memcpy(&identity, bytes.data() + offset, sizeof identity);
  if (identity.magic != lock_magic) return std::unexpected(Error{Errc::corrupt, object, "holds no lock (bad magic)"});
  if (identity.layout_version != lock_layout_version) {
    return std::unexpected(Error{Errc::version_mismatch, object,
                                 "has lock layout version " + std::to_string(identity.layout_version) +
                                     "; this build speaks " + std::to_string(lock_layout_version)});
  }
  if (identity.slot_count == 0 || identity.slot_count > max_lock_slots ||
      lock_bytes(identity.slot_count) > bytes.size() - offset) {
    return std::unexpected(Error{Errc::corrupt, object,
                                 "records " + std::to_string(identity.slot_count) + " slots, which " +
                                     (identity.slot_count == 0 || identity.slot_count > max_lock_slots
                                          ? "is out of range"
                                          : "do not fit in its " + std::to_string(bytes.size() - offset) +
                                                " bytes")});
  }
  return identity.slot_count;
}

namespace {

std::string in_segment_name(std::string_view segment_name, std::size_t offset) {
  return std::string{segment_name} + "@" + std::to_string(offset);
}

}  // namespace

struct LockFactory {
  // A handle on the lock at `offset` of `mapping`, once what is there passes validation.
  static Result<Lock> over(Segment mapping, std::size_t offset, std::string name, std::string object) {
    auto slots = validate_lock_record(mapping, offset, object);
    if (!slots) return std::unexpected(slots.error());
    auto* record = const_cast<std::byte*>(mapping.bytes().data()) + offset;
    return Lock{std::make_shared<LockHandle>(std::move(name), std::move(object), std::move(mapping),
                                             RobustLock{record, *slots})};
  }
};

namespace {

LockStatus status_of(std::string name, const RobustLock& lock) {
  RobustLock::Snapshot snapshot = lock.snapshot();
  return LockStatus{.name = std::move(name),
                    .max_handles = lock.slot_count(),
                    .consistency = snapshot.consistency,
                    .died_holding = snapshot.died_holding,
                    .holders = snapshot.holders,
                    .waiters = snapshot.waiters};
}

// Looking needs only read access, and nothing is trusted but what validate_lock_record() checked.
Result<LockStatus> stat_over(Segment mapping, std::size_t offset, std::string name, std::string object) {
  auto slots = validate_lock_record(mapping, offset, object);
  if (!slots) return std::unexpected(slots.error());
  auto* record = const_cast<std::byte*>(mapping.bytes().data()) + offset;
  return status_of(std::move(name), RobustLock{record, *slots});
}

}  // namespace
}  // namespace detail

Result<Lock> Lock::create(std::string_view name, const LockOptions& options) {
  auto names = detail::lock_names(name);
  if (!names) return std::unexpected(names.error());
  auto slots = detail::checked_slot_count(options.max_handles, names->object);
  if (!slots) return std::unexpected(slots.error());
  const std::size_t size = detail::lock_bytes(*slots);
  SegmentOptions file_options{.mode = options.mode,
                              .initialize = [&](std::span<std::byte> memory) {
                                detail::RobustLock::initialize(memory.data(), *slots);
                              }};
  auto mapping = detail::SegmentFactory::create(names->file_name, names->object, size, file_options, size);
  if (!mapping) return std::unexpected(mapping.error());
  return detail::LockFactory::over(std::move(*mapping), 0, names->name, names->object);
}

Result<Lock> Lock::open(std::string_view name) {
  auto names = detail::lock_names(name);
  if (!names) return std::unexpected(names.error());
  // Named only once sized (SegmentFactory::create): an empty one is garbage.
  auto mapping = detail::SegmentFactory::open(names->file_name, names->object, Access::read_write,
                                              detail::OwnerCheck::trusted_owner, detail::Unsized::garbage_after_grace);
  if (!mapping) return std::unexpected(mapping.error());
  return detail::LockFactory::over(std::move(*mapping), 0, names->name, names->object);
}

Result<Lock> Lock::open_or_create(std::string_view name, const LockOptions& options) {
  return detail::open_or_create([&] { return open(name); }, [&] { return create(name, options); });
}

Result<void> Lock::remove(std::string_view name) {
  auto names = detail::lock_names(name);
  if (!names) return std::unexpected(names.error());
  return detail::SegmentFactory::remove(names->file_name, names->object);
}

Result<LockStatus> Lock::stat(std::string_view name) {
  auto names = detail::lock_names(name);
  if (!names) return std::unexpected(names.error());
  auto mapping = detail::SegmentFactory::open(names->file_name, names->object, Access::read_only);
  if (!mapping) return std::unexpected(mapping.error());
  auto info = detail::SegmentFactory::stat(names->file_name, names->object);
  if (!info) return std::unexpected(info.error());
  auto status = detail::stat_over(std::move(*mapping), 0, names->name, names->object);
  if (!status) return std::unexpected(status.error());
  status->mode = info->mode;
  status->owner_uid = info->owner_uid;
  return status;
}

std::vector<std::string> Lock::list() { return platform::list_shm_names(detail::lock_file_prefix); }

std::size_t Lock::footprint(std::uint32_t max_handles) noexcept {
  return detail::lock_bytes(std::min(std::max(max_handles, 1u), detail::max_lock_slots));
}

namespace {

Result<Segment> segment_for_lock(std::string_view segment_name, std::size_t offset, const std::string& object) {
  if (offset % detail::lock_line != 0) {
    return std::unexpected(
        Error{Errc::invalid_argument, object, "offset must be a multiple of " + std::to_string(detail::lock_line)});
  }
  return Segment::open(segment_name, Access::read_write);
}

}  // namespace

Result<Lock> Lock::create_in(std::string_view segment_name, std::size_t offset, const LockOptions& options) {
  const std::string object = detail::in_segment_object(segment_name, offset);
  auto slots = detail::checked_slot_count(options.max_handles, object);
  if (!slots) return std::unexpected(slots.error());
  auto segment = segment_for_lock(segment_name, offset, object);
  if (!segment) return std::unexpected(segment.error());
  const std::size_t needed = detail::lock_bytes(*slots);
  if (offset > segment->size() || segment->size() - offset < needed) {
    return std::unexpected(Error{Errc::too_large, object,
                                 "needs " + std::to_string(needed) + " bytes; the segment has " +
                                     std::to_string(segment->size()) + " in all"});
  }
  auto memory = segment->writable_bytes();
  if (!memory) return std::unexpected(memory.error());
  detail::RobustLock::initialize(memory->data() + offset, *slots);
  return detail::LockFactory::over(std::move(*segment), offset, detail::in_segment_name(segment_name, offset), object);
}

Result<Lock> Lock::open_in(std::string_view segment_name, std::size_t offset) {
  const std::string object = detail::in_segment_object(segment_name, offset);
  auto segment = segment_for_lock(segment_name, offset, object);
  if (!segment) return std::unexpected(segment.error());
  return detail::LockFactory::over(std::move(*segment), offset, detail::in_segment_name(segment_name, offset), object);
}

Result<LockStatus> Lock::stat_in(std::string_view segment_name, std::size_t offset) {
  const std::string object = detail::in_segment_object(segment_name, offset);
  if (offset % detail::lock_line != 0) {
    return std::unexpected(
        Error{Errc::invalid_argument, object, "offset must be a multiple of " + std::to_string(detail::lock_line)});
  }
  auto segment = Segment::open(segment_name, Access::read_only);
  if (!segment) return std::unexpected(segment.error());
  return detail::stat_over(std::move(*segment), offset, detail::in_segment_name(segment_name, offset), object);
}

Error Lock::moved_from() { return Error{Errc::invalid_argument, "lock", "this handle was moved from"}; }

const std::string& Lock::name() const noexcept {
  static const std::string none;
  return handle_ ? handle_->name : none;
}

Result<HeldLock> Lock::lock(LockMode mode, Deadline deadline) {
  if (!handle_) return std::unexpected(moved_from());
  detail::LockHandle& handle = *handle_;
  if (!handle.slot_is_ours()) {
    // First use here (or in a forked child): a slot of our own, the parent's left alone.
    handle.held = false;
    auto slot = handle.lock.claim_slot(platform::current_process().packed());
    if (!slot) {
      handle.slot.reset();
      return std::unexpected(Error{Errc::no_space, handle.object,
                                   "all of its slots are taken by live handles (raise max_handles)"});
    }
    handle.slot = *slot;
    handle.slot_fork_generation = platform::fork_generation();
  } else if (handle.held) {
    return std::unexpected(Error{Errc::invalid_argument, handle.object,
                                 "is already held through this handle (use one handle per thread)"});
  }
  const detail::Grant grant = handle.lock.acquire(*handle.slot, mode, deadline);
  switch (grant.outcome) {
    case detail::Granted::yes:
    case detail::Granted::owner_died:
      handle.held = true;
      handle.held_mode = mode;
      ++handle.holds_out;
      return HeldLock{&handle, mode, grant.died_holding, handle.slot_fork_generation};
    case detail::Granted::not_recoverable:
      return std::unexpected(Error{Errc::not_recoverable, handle.object,
                                   "a holder died holding it and the data it guards was never marked consistent "
                                   "(remove the lock and create it again)"});
    case detail::Granted::expired: break;
  }
  if (deadline.is_none()) return std::unexpected(Error{Errc::would_block, handle.object, "is held"});
  return std::unexpected(Error{Errc::timeout, handle.object, "timed out waiting for it"});
}

Result<LockStatus> Lock::status() const {
  if (!handle_) return std::unexpected(moved_from());
  return detail::status_of(handle_->name, handle_->lock);
}

Lock::Lock(Lock&& other) noexcept = default;

Lock& Lock::operator=(Lock&& other) noexcept {
  if (this != &other) {
    detail::LockHandle::let_go(std::move(handle_));
    handle_ = std::move(other.handle_);
  }
  return *this;
}

Lock::~Lock() { detail::LockHandle::let_go(std::move(handle_)); }

HeldLock::HeldLock(HeldLock&& other) noexcept
    : handle_(std::exchange(other.handle_, nullptr)),
      mode_(other.mode_),
      died_holding_(other.died_holding_),
      fork_generation_(other.fork_generation_) {}

bool HeldLock::ours() const noexcept {
  return handle_ && handle_->slot_is_ours() && fork_generation_ == handle_->slot_fork_generation;
}

HeldLock& HeldLock::operator=(HeldLock&& other) noexcept {
  if (this != &other) {
    unlock();
    handle_ = std::exchange(other.handle_, nullptr);
    mode_ = other.mode_;
    died_holding_ = other.died_holding_;
    fork_generation_ = other.fork_generation_;
  }
  return *this;
}

HeldLock::~HeldLock() { unlock(); }

void HeldLock::unlock() noexcept {
  if (!handle_) return;
  if (ours() && handle_->held) {
    handle_->lock.release(*handle_->slot, mode_);
    handle_->held = false;
  }
  detail::LockHandle* handle = std::exchange(handle_, nullptr);
  // The last hold of a handle whose Lock is gone takes the handle with it (reset() empties
  // the member before the handle it is part of is destroyed).
  if (--handle->holds_out == 0) handle->kept_for_holds.reset();
}

Result<void> HeldLock::mark_consistent() {
  if (!handle_) return std::unexpected(Error{Errc::invalid_argument, "lock", "this held lock was released or moved from"});
  detail::LockHandle& handle = *handle_;
  if (died_holding_ == 0 || !ours() || !handle.lock.mark_consistent(*handle.slot)) {
    return std::unexpected(Error{Errc::invalid_argument, handle.object, "has no death to repair through this hold"});
  }
  died_holding_ = 0;
  return {};
}

}  // namespace shmbox
