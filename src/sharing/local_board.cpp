// Local boards. Writers take a robust lock among themselves, fill a buffer nobody reads
// and publish it with one store; readers copy the latest buffer optimistically (a seqlock
// per buffer) or pin it for a view. docs/design.md ("Boards") has the proof sketch and what
// a kill at each point leaves.
#include "sharing/local_board.hpp"

#include <algorithm>
#include <atomic>
#include <bitset>
#include <climits>
#include <cstring>
#include <mutex>

#include "base/name.hpp"
#include "base/seqlock_copy.hpp"
#include "platform/exit_hooks.hpp"
#include "platform/futex.hpp"
#include "platform/process.hpp"
#include "platform/shm.hpp"
#include "segment/owned_file.hpp"
#include "segment/segment_factory.hpp"
#include "sharing/board_layout.hpp"
#include "sharing/robust_lock.hpp"

namespace shmbox::detail {
namespace {

// How often a watcher of a process-owned board looks at its owner.
constexpr std::chrono::milliseconds owner_check_interval{100};

Result<FileNames> board_names(std::string_view name) { return file_names("board", board_file_prefix, name); }

// A validated board: where its parts are. Everything else read from it is checked where
// it is used.
struct BoardRecord {
  BoardHeader* header = nullptr;
  BufferDescriptor* descriptors = nullptr;
  ViewSlot* views = nullptr;
  std::byte* data = nullptr;
  BoardGeometry geometry{};
  std::size_t max_size = 0;
  std::uint64_t owner = 0;

  std::byte* buffer(std::uint32_t index) const noexcept { return data + index * geometry.stride; }
  std::byte* lock_record() const noexcept { return reinterpret_cast<std::byte*>(header) + geometry.lock_offset(); }
};

Error corrupt(const std::string& object, std::string detail) {
  return Error{Errc::corrupt, object, std::move(detail)};
}

Result<BoardRecord> validate(const Segment& mapping, const std::string& object) {
  const auto bytes = mapping.bytes();
  if (bytes.size() < sizeof(BoardHeader)) return std::unexpected(corrupt(object, "is smaller than a board header"));
  BoardIdentity identity{};
  std::memcpy(&identity, bytes.data(), sizeof identity);
  if (identity.magic != board_magic) return std::unexpected(corrupt(object, "is not a board (bad magic)"));
  if (identity.layout_version != board_layout_version) {
    return std::unexpected(Error{Errc::version_mismatch, object,
                                 "has board layout version " + std::to_string(identity.layout_version) +
                                     "; this build speaks " + std::to_string(board_layout_version)});
  }
  if (identity.view_slots == 0 || identity.view_slots > max_board_views ||
      identity.buffer_count != identity.view_slots + 2) {
    return std::unexpected(corrupt(object, "records " + std::to_string(identity.view_slots) + " view slots and " +
                                               std::to_string(identity.buffer_count) +
                                               " buffers; it needs 1 to " + std::to_string(max_board_views) +
                                               " slots and two buffers more"));
  }
  if (identity.max_size == 0 || identity.max_size > max_board_size ||
      identity.stride != round_to_line(identity.max_size)) {
    return std::unexpected(corrupt(object, "records a maximum value size of " + std::to_string(identity.max_size) +
                                               " bytes in buffers of " + std::to_string(identity.stride)));
  }
  if (identity.writer_slots == 0 || identity.writer_slots > max_lock_slots) {
    return std::unexpected(
        corrupt(object, "records " + std::to_string(identity.writer_slots) + " writer slots, which is out of range"));
  }
  const BoardGeometry geometry{identity.buffer_count, identity.view_slots, identity.writer_slots, identity.stride};
  if (geometry.file_size() > bytes.size()) {
    return std::unexpected(corrupt(object, "needs " + std::to_string(geometry.file_size()) +
                                               " bytes for what its header records, but has " +
                                               std::to_string(bytes.size())));
  }
  if (auto fault = implausible_owner(identity.owner, identity.creator, object, "board")) return std::unexpected(*fault);
  auto lock_slots = validate_lock_record(mapping, geometry.lock_offset(), "writers' lock of " + object);
  if (!lock_slots) return std::unexpected(lock_slots.error());
  if (*lock_slots != identity.writer_slots) {
    return std::unexpected(corrupt(object, "has a writers' lock of " + std::to_string(*lock_slots) +
                                               " slots, but records " + std::to_string(identity.writer_slots)));
  }
  auto* base = const_cast<std::byte*>(bytes.data());
  return BoardRecord{.header = reinterpret_cast<BoardHeader*>(base),
                     .descriptors = reinterpret_cast<BufferDescriptor*>(base + geometry.descriptors_offset()),
                     .views = reinterpret_cast<ViewSlot*>(base + geometry.view_slots_offset()),
                     .data = base + geometry.data_offset(),
                     .geometry = geometry,
                     .max_size = identity.max_size,
                     .owner = identity.owner};
}

// Every handle's calls fail from now on, and watchers wake: the futex word moves (without
// the sleeping bit, so that the next put wakes nobody for nothing) and all are woken.
void mark_removed(BoardHeader& header) noexcept {
  header.removed.store(1, std::memory_order_seq_cst);
  std::uint32_t word = header.changed.load(std::memory_order_relaxed);
  while (!header.changed.compare_exchange_weak(word, (word + 1) & ~ChangedWord::sleeping)) {
  }
  platform::futex_wake(header.changed, INT_MAX);
}

OwnedFile board_file(const std::string& file_name, const std::string& object) {
  return owned_file<BoardHeader>(file_name, object, validate, mark_removed);
}

Error owner_exited(const std::string& object, std::uint64_t owner) {
  return Error{Errc::closed, object,
               "its owner, process " + std::to_string(platform::ProcessIdentity::unpack(owner).pid) +
                   ", has exited: it is removed"};
}

// What a view pins: its slot is given back when the view goes (not by a forked child's
// copy, which pins nothing of its own). The mapping stays while a view needs it.
struct PinnedBuffer final : BoardHold {
  PinnedBuffer(std::shared_ptr<const Segment> kept_mapping, ViewSlot& pinned_slot) noexcept
      : mapping(std::move(kept_mapping)), slot(&pinned_slot), fork_generation(platform::fork_generation()) {}
  ~PinnedBuffer() override {
    if (fork_generation != platform::fork_generation()) return;
    slot->pin.store(0, std::memory_order_release);
    slot->owner.store(0, std::memory_order_release);
  }
  std::shared_ptr<const Segment> mapping;
  ViewSlot* slot;
  std::uint64_t fork_generation;
};

BoardStatus status_of(const std::string& name, const BoardRecord& record) {
  BoardStatus status;
  status.name = name;
  const std::uint64_t latest = record.header->latest.load(std::memory_order_acquire);
  status.version = LatestWord::version(latest);
  if (const std::uint32_t buffer = LatestWord::buffer(latest); buffer < record.geometry.buffer_count) {
    status.size = std::min<std::uint64_t>(record.descriptors[buffer].length.load(std::memory_order_relaxed),
                                          record.max_size);
  }
  status.max_size = record.max_size;
  status.ownership = record.owner == 0 ? Ownership::system : Ownership::process;
  if (record.owner != 0) {
    status.owner_pid = platform::ProcessIdentity::unpack(record.owner).pid;
    status.owner_alive = platform::liveness(record.owner) == platform::Liveness::alive;
  }
  const RobustLock lock{record.lock_record(), record.geometry.writer_slots};
  for (const LockParticipant& holder : lock.snapshot().holders) {
    if (holder.alive) status.writer_pid = holder.pid;
  }
  status.max_views = record.geometry.view_slots;
  for (std::uint32_t i = 0; i < record.geometry.view_slots; ++i) {
    const std::uint64_t owner = record.views[i].owner.load(std::memory_order_acquire);
    if (owner != 0 && platform::liveness(owner) == platform::Liveness::alive) ++status.views_held;
  }
  return status;
}

class LocalBoard final : public BoardBackend {
 public:
  LocalBoard(FileNames names, std::shared_ptr<Segment> mapping, const BoardRecord& record)
      : BoardBackend(std::move(names.name), std::move(names.object), record.max_size),
        file_name_(std::move(names.file_name)),
        mapping_(std::move(mapping)),
        record_(record),
        writer_lock_(record.lock_record(), record.geometry.writer_slots),
        owner_watch_(record.owner) {}

  ~LocalBoard() override {
    if (writer_slot_ && writer_slot_generation_ == platform::fork_generation()) writer_lock_.free_slot(*writer_slot_);
  }

  Result<std::uint64_t> put(std::span<const std::byte> value, std::optional<std::uint64_t> expected_version,
                            Deadline deadline) override {
    if (removed()) return std::unexpected(removed_error());
    const std::scoped_lock one_writer_per_handle{writing_};
    auto slot = writer_slot();
    if (!slot) return std::unexpected(slot.error());
    const Grant grant = writer_lock_.acquire(*slot, LockMode::exclusive, deadline);
    switch (grant.outcome) {
      case Granted::yes: break;
      // A writer killed at any point left the latest version whole (it only ever wrote a
      // buffer nobody reads): nothing to repair.
      case Granted::owner_died: (void)writer_lock_.mark_consistent(*slot); break;
      case Granted::not_recoverable:
        return std::unexpected(Error{Errc::not_recoverable, object(),
                                     "its writers' lock was left unrepaired by something other than a board writer"});
      case Granted::expired:
        if (deadline.is_none()) return std::unexpected(Error{Errc::would_block, object(), "another writer is writing"});
        return std::unexpected(Error{Errc::timeout, object(), "timed out waiting for another writer"});
    }
    struct Release {
      RobustLock& lock;
      std::uint32_t slot;
      ~Release() { lock.release(slot, LockMode::exclusive); }
    } release{writer_lock_, *slot};
    if (removed()) return std::unexpected(removed_error());

    BoardHeader& header = *record_.header;
    // Only writers store it, and they hold the lock.
    const std::uint64_t latest = header.latest.load(std::memory_order_relaxed);
    const std::uint32_t latest_buffer = LatestWord::buffer(latest);
    if (latest_buffer >= record_.geometry.buffer_count) return std::unexpected(bad_latest(latest));
    const std::uint64_t version = LatestWord::version(latest);
    if (expected_version && *expected_version != version) return std::unexpected(conflict(*expected_version, version));
    auto target = buffer_to_write(latest_buffer);
    if (!target) return std::unexpected(target.error());

    // Seqlock write (Boehm): the stamp says "being written" before any byte changes, and
    // names the new version once every byte is in. seq_cst so that a reader that sees the
    // stamp move also sees the publish that let the buffer be reused (read_into).
    BufferDescriptor& descriptor = record_.descriptors[*target];
    descriptor.stamp.store(BufferDescriptor::being_written, std::memory_order_seq_cst);
    fence_before_copy_in();
    copy_in(value, record_.buffer(*target));
    descriptor.length.store(value.size(), length_store_order);
    const std::uint64_t next = version + 1;
    descriptor.stamp.store(next, std::memory_order_release);
    // The publish: from here on readers take the new version. seq_cst pairs with a view's
    // pin (view()) and a watcher's sleeping bit (watch()).
    header.latest.store(LatestWord::make(next, *target), std::memory_order_seq_cst);
    const std::uint32_t before = header.changed.exchange(ChangedWord::of(next), std::memory_order_seq_cst);
    if ((before & ChangedWord::sleeping) != 0) platform::futex_wake(header.changed, INT_MAX);
    return next;
  }

  Result<std::uint64_t> get(std::vector<std::byte>& bytes) override {
    if (removed()) return std::unexpected(removed_error());
    return read_into(bytes);
  }

  Result<std::uint64_t> version() override {
    if (removed()) return std::unexpected(removed_error());
    return LatestWord::version(record_.header->latest.load(std::memory_order_acquire));
  }

  Result<BoardView> view() override {
    if (removed()) return std::unexpected(removed_error());
    auto slot = claim_view_slot();
    if (!slot) return std::unexpected(slot.error());
    auto pinned = std::make_unique<PinnedBuffer>(mapping_, record_.views[*slot]);
    BoardHeader& header = *record_.header;
    for (;;) {
      const std::uint64_t latest = header.latest.load(std::memory_order_seq_cst);
      const std::uint32_t buffer = LatestWord::buffer(latest);
      if (buffer >= record_.geometry.buffer_count) return std::unexpected(bad_latest(latest));
      // Dekker with put: either the writer that would reuse this buffer sees the pin, or
      // we see its publish below and pin again.
      pinned->slot->pin.store(buffer + 1, std::memory_order_seq_cst);
      if (header.latest.load(std::memory_order_seq_cst) != latest) continue;
      const BufferDescriptor& descriptor = record_.descriptors[buffer];
      const std::uint64_t version = LatestWord::version(latest);
      if (const std::uint64_t stamp = descriptor.stamp.load(std::memory_order_acquire); stamp != version) {
        return std::unexpected(stale_buffer(buffer, stamp, version));
      }
      const std::uint64_t length = descriptor.length.load(std::memory_order_relaxed);
      if (length > record_.max_size) return std::unexpected(bad_length(buffer, length));
      const std::span<const std::byte> bytes{record_.buffer(buffer), static_cast<std::size_t>(length)};
      return make_view(std::move(pinned), bytes, version);
    }
  }

  Result<BoardValue> watch(std::uint64_t after_version, Deadline deadline) override {
    BoardHeader& header = *record_.header;
    auto next_owner_check = Deadline::clock::now();
    for (;;) {
      if (removed()) return std::unexpected(removed_error());
      if (LatestWord::version(header.latest.load(std::memory_order_acquire)) > after_version) {
        BoardValue value;
        auto version = read_into(value.bytes);
        if (!version) return std::unexpected(version.error());
        value.version = *version;
        value.skipped = *version - after_version - 1;
        return value;
      }
      if (deadline.expired()) {
        if (deadline.is_none()) {
          return std::unexpected(
              Error{Errc::would_block, object(), "has no version after " + std::to_string(after_version)});
        }
        return std::unexpected(Error{Errc::timeout, object(),
                                     "timed out waiting for a version after " + std::to_string(after_version)});
      }
      const auto now = Deadline::clock::now();
      std::optional<platform::MonotonicTime> wake_at;
      if (!deadline.is_forever()) wake_at = deadline.until();
      if (record_.owner != 0) {
        if (now >= next_owner_check) {
          if (owner_watch_.exited()) {
            (void)board_file(file_name_, object()).retire(*mapping_);
            return std::unexpected(owner_exited(object(), record_.owner));
          }
          next_owner_check = now + owner_check_interval;
        }
        wake_at = wake_at ? std::min(*wake_at, next_owner_check) : next_owner_check;
      }
      // Raise the sleeping bit, then look again (Dekker with put's publish and exchange):
      // a put after the look sees the bit and wakes us; one before it is seen by the look.
      std::uint32_t word = header.changed.load(std::memory_order_seq_cst);
      if ((word & ChangedWord::sleeping) == 0) {
        if (!header.changed.compare_exchange_strong(word, word | ChangedWord::sleeping)) continue;
        word |= ChangedWord::sleeping;
      }
      if (LatestWord::version(header.latest.load(std::memory_order_seq_cst)) > after_version || removed()) continue;
      (void)platform::futex_wait(header.changed, word, wake_at);
    }
  }

  Result<BoardStatus> status() override {
    if (removed()) return std::unexpected(removed_error());
    auto status = status_of(name(), record_);
    auto info = platform::file_status(SegmentFactory::descriptor(*mapping_), object());
    if (info) {
      status.mode = info->mode & 07777;
      status.owner_uid = info->uid;
    }
    return status;
  }

 private:
  bool removed() const noexcept { return record_.header->removed.load(std::memory_order_acquire) != 0; }
  Error removed_error() const { return Error{Errc::closed, object(), "was removed"}; }
  Error bad_latest(std::uint64_t latest) const {
    return corrupt(object(), "names buffer " + std::to_string(LatestWord::buffer(latest)) + " of " +
                                 std::to_string(record_.geometry.buffer_count) + " as holding the latest value");
  }
  Error bad_length(std::uint32_t buffer, std::uint64_t length) const {
    return corrupt(object(), "records a value of " + std::to_string(length) + " bytes in buffer " +
                                 std::to_string(buffer) + ", over its maximum of " + std::to_string(record_.max_size));
  }
  Error stale_buffer(std::uint32_t buffer, std::uint64_t stamp, std::uint64_t version) const {
    return corrupt(object(), "names buffer " + std::to_string(buffer) + " as holding version " +
                                 std::to_string(version) + ", but the buffer is stamped " + std::to_string(stamp));
  }

  // The seqlock read of the latest buffer; again if a writer reused it meanwhile (which
  // takes as many publishes as there are free buffers: lock-free, not wait-free).
  Result<std::uint64_t> read_into(std::vector<std::byte>& bytes) {
    const BoardHeader& header = *record_.header;
    for (;;) {
      const std::uint64_t latest = header.latest.load(std::memory_order_acquire);
      const std::uint32_t buffer = LatestWord::buffer(latest);
      if (buffer >= record_.geometry.buffer_count) return std::unexpected(bad_latest(latest));
      const std::uint64_t version = LatestWord::version(latest);
      const BufferDescriptor& descriptor = record_.descriptors[buffer];
      if (const std::uint64_t stamp = descriptor.stamp.load(std::memory_order_seq_cst); stamp != version) {
        // A writer reuses a buffer only after publishing another: if the latest has not
        // moved, the stamp was not written by a writer.
        if (header.latest.load(std::memory_order_seq_cst) == latest) {
          return std::unexpected(stale_buffer(buffer, stamp, version));
        }
        continue;
      }
      const std::uint64_t length = descriptor.length.load(length_load_order);
      if (length > record_.max_size) {
        fence_after_copy_out();
        if (descriptor.stamp.load(std::memory_order_relaxed) == version) return std::unexpected(bad_length(buffer, length));
        continue;
      }
      bytes.resize(length);
      copy_out(record_.buffer(buffer), bytes.data(), length);
      fence_after_copy_out();
      if (descriptor.stamp.load(std::memory_order_relaxed) == version) return version;
    }
  }

  // The buffer a writer fills: neither the latest nor pinned by a view, and of those the
  // one written longest ago, so that an optimistic reader is overtaken as late as can be.
  // There are two buffers more than view slots, so one is always free.
  Result<std::uint32_t> buffer_to_write(std::uint32_t latest_buffer) const {
    std::bitset<max_board_views + 2> pinned;
    for (std::uint32_t i = 0; i < record_.geometry.view_slots; ++i) {
      const std::uint64_t pin = record_.views[i].pin.load(std::memory_order_seq_cst);
      if (pin >= 1 && pin <= record_.geometry.buffer_count) pinned.set(pin - 1);
    }
    std::optional<std::uint32_t> oldest;
    std::uint64_t oldest_stamp = 0;
    for (std::uint32_t i = 0; i < record_.geometry.buffer_count; ++i) {
      if (i == latest_buffer || pinned.test(i)) continue;
      std::uint64_t stamp = record_.descriptors[i].stamp.load(std::memory_order_relaxed);
      if (stamp == BufferDescriptor::being_written) stamp = 0;  // a killed writer's: free
      if (!oldest || stamp < oldest_stamp) {
        oldest = i;
        oldest_stamp = stamp;
      }
    }
    if (!oldest) return std::unexpected(corrupt(object(), "has every buffer pinned, more than its view slots can pin"));
    return *oldest;
  }

  // This handle's slot in the writers' lock, taken on its first put (a forked child takes
  // its own).
  Result<std::uint32_t> writer_slot() {
    if (writer_slot_ && writer_slot_generation_ == platform::fork_generation()) return *writer_slot_;
    writer_slot_ = writer_lock_.claim_slot(platform::current_process().packed());
    if (!writer_slot_) {
      return std::unexpected(Error{Errc::no_space, object(),
                                   "all " + std::to_string(record_.geometry.writer_slots) +
                                       " writer slots are taken by live handles"});
    }
    writer_slot_generation_ = platform::fork_generation();
    return *writer_slot_;
  }

  // A free view slot, reclaiming those of dead processes when none is free. A reclaimed
  // slot keeps its last pin until it is claimed again (clearing it could clear the pin of
  // whoever claims it next); counting every slot as a possible pin keeps that safe.
  Result<std::uint32_t> claim_view_slot() {
    const std::uint64_t me = platform::current_process().packed();
    const std::uint32_t count = record_.geometry.view_slots;
    const std::uint32_t start = static_cast<std::uint32_t>(me % count);
    for (int round = 0; round < 2; ++round) {
      for (std::uint32_t i = 0; i < count; ++i) {
        ViewSlot& slot = record_.views[(start + i) % count];
        std::uint64_t free = 0;
        if (slot.owner.load(std::memory_order_relaxed) == 0 &&
            slot.owner.compare_exchange_strong(free, me, std::memory_order_acq_rel)) {
          return (start + i) % count;
        }
      }
      if (round == 0) {
        for (std::uint32_t i = 0; i < count; ++i) {
          std::uint64_t owner = record_.views[i].owner.load(std::memory_order_acquire);
          if (owner != 0 && platform::liveness(owner) == platform::Liveness::dead) {
            record_.views[i].owner.compare_exchange_strong(owner, 0, std::memory_order_acq_rel);
          }
        }
      }
    }
    return std::unexpected(Error{Errc::no_space, object(),
                                 "all " + std::to_string(count) + " of its views are held by live processes"});
  }

  std::string file_name_;
  std::shared_ptr<Segment> mapping_;
  BoardRecord record_;
  RobustLock writer_lock_;
  platform::ProcessWatch owner_watch_;
  std::mutex writing_;
  std::optional<std::uint32_t> writer_slot_;
  std::uint64_t writer_slot_generation_ = 0;
};

// A handle on a validated board whose owner (if any) still lives.
Result<std::unique_ptr<BoardBackend>> handle_on(FileNames names, Segment mapping) {
  auto record = validate(mapping, names.object);
  if (!record) return std::unexpected(record.error());
  if (record->header->removed.load(std::memory_order_acquire) != 0) {
    return std::unexpected(Error{Errc::closed, names.object, "was removed"});
  }
  if (auto exited = board_file(names.file_name, names.object).retire_if_owner_exited(mapping, record->owner)) {
    return std::unexpected(*exited);
  }
  auto shared = std::make_shared<Segment>(std::move(mapping));
  return std::make_unique<LocalBoard>(std::move(names), std::move(shared), *record);
}

}  // namespace

Result<std::unique_ptr<BoardBackend>> LocalBoards::create(std::string_view name, const BoardOptions& options) {
  auto names = board_names(name);
  if (!names) return std::unexpected(names.error());
  if (options.max_size == 0) {
    return std::unexpected(Error{Errc::invalid_argument, names->object, "max_size must be at least 1 byte"});
  }
  if (options.max_size > max_board_size) {
    return std::unexpected(Error{Errc::too_large, names->object,
                                 "max_size " + std::to_string(options.max_size) + " is over the limit of " +
                                     std::to_string(max_board_size) + " bytes"});
  }
  if (options.max_views == 0 || options.max_views > max_board_views) {
    return std::unexpected(Error{Errc::invalid_argument, names->object,
                                 "max_views must be 1 to " + std::to_string(max_board_views) + ", not " +
                                     std::to_string(options.max_views)});
  }
  if (options.replicas != 1) {
    return std::unexpected(Error{Errc::invalid_argument, names->object, "replicas are for nats:// boards"});
  }
  const BoardGeometry geometry{options.max_views + 2, options.max_views, board_writer_slots,
                               round_to_line(options.max_size)};
  const std::uint64_t me = platform::current_process().packed();
  const std::uint64_t owner = options.ownership == Ownership::process ? me : 0;
  SegmentOptions file_options{
      .mode = options.mode, .initialize = [&](std::span<std::byte> memory) {
        // A fresh mapping is zeros: version 0, the empty value, in buffer 0.
        const BoardIdentity identity{.magic = board_magic,
                                     .layout_version = board_layout_version,
                                     .buffer_count = geometry.buffer_count,
                                     .max_size = options.max_size,
                                     .stride = geometry.stride,
                                     .view_slots = geometry.view_slots,
                                     .writer_slots = geometry.writer_slots,
                                     .owner = owner,
                                     .creator = me};
        std::memcpy(memory.data(), &identity, sizeof identity);
        RobustLock::initialize(memory.data() + geometry.lock_offset(), geometry.writer_slots);
      }};
  const std::size_t size = geometry.file_size();
  auto mapping = SegmentFactory::create(names->file_name, names->object, size, file_options, size);
  if (!mapping) return std::unexpected(mapping.error());
  auto record = validate(*mapping, names->object);
  if (!record) return std::unexpected(record.error());
  auto shared = std::make_shared<Segment>(std::move(*mapping));
  if (owner != 0) {
    run_at_exit(names->file_name, owner, [file = board_file(names->file_name, names->object), mapping = shared] {
      (void)file.retire(*mapping);
    });
  }
  return std::make_unique<LocalBoard>(std::move(*names), std::move(shared), *record);
}

Result<std::unique_ptr<BoardBackend>> LocalBoards::open(std::string_view name) {
  auto names = board_names(name);
  if (!names) return std::unexpected(names.error());
  // Named only once sized (SegmentFactory::create): an empty one is garbage.
  auto mapping = SegmentFactory::open(names->file_name, names->object, Access::read_write, OwnerCheck::trusted_owner,
                                      Unsized::garbage_after_grace);
  if (!mapping) return std::unexpected(mapping.error());
  return handle_on(std::move(*names), std::move(*mapping));
}

Result<void> LocalBoards::remove(std::string_view name) {
  auto names = board_names(name);
  if (!names) return std::unexpected(names.error());
  return board_file(names->file_name, names->object).remove();
}

Result<BoardStatus> LocalBoards::stat(std::string_view name) {
  auto names = board_names(name);
  if (!names) return std::unexpected(names.error());
  auto inspected = inspect(*names, validate);
  if (!inspected) return std::unexpected(inspected.error());
  BoardStatus status = status_of(names->name, inspected->record);
  status.mode = inspected->info.mode;
  status.owner_uid = inspected->info.owner_uid;
  return status;
}

std::optional<Garbage> remove_board_if_garbage(const std::string& name) {
  return board_file(std::string{board_file_prefix} + name, describe("board", name)).remove_if_garbage();
}

}  // namespace shmbox::detail
