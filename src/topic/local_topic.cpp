// Local topics' files: made unnamed and published whole (SegmentFactory), validated on
// every open as memory any process may have scribbled on, removed by name.
#include "topic/local_topic.hpp"

#include <climits>
#include <cstring>

#include "platform/exit_hooks.hpp"
#include "platform/futex.hpp"
#include "platform/process.hpp"
#include "segment/owned_file.hpp"
#include "topic/local_handles.hpp"

namespace shmbox::detail {
namespace {

Result<FileNames> topic_names(std::string_view name) { return file_names("topic", topic_file_prefix, name); }

Error corrupt(const std::string& object, std::string detail) { return Error{Errc::corrupt, object, std::move(detail)}; }

Result<TopicRecord> validate(const Segment& mapping, const std::string& object) {
  const auto bytes = mapping.bytes();
  if (bytes.size() < sizeof(TopicHeader)) return std::unexpected(corrupt(object, "is smaller than a topic header"));
  TopicIdentity identity{};
  std::memcpy(&identity, bytes.data(), sizeof identity);
  if (identity.magic != topic_magic) return std::unexpected(corrupt(object, "is not a topic (bad magic)"));
  if (identity.layout_version != topic_layout_version) {
    return std::unexpected(Error{Errc::version_mismatch, object,
                                 "has topic layout version " + std::to_string(identity.layout_version) +
                                     "; this build speaks " + std::to_string(topic_layout_version)});
  }
  const auto out_of_range = [&](const char* what, std::uint64_t value) {
    return corrupt(object, std::string{"records "} + what + " " + std::to_string(value) + ", which is out of range");
  };
  if (identity.capacity == 0 || identity.capacity > max_topic_capacity) {
    return std::unexpected(out_of_range("a capacity of", identity.capacity));
  }
  if (identity.history > identity.capacity) return std::unexpected(out_of_range("a history of", identity.history));
  if (identity.subscriber_slots == 0 || identity.subscriber_slots > max_topic_subscribers) {
    return std::unexpected(out_of_range("subscriber slots:", identity.subscriber_slots));
  }
  if (identity.publisher_slots == 0 || identity.publisher_slots > max_topic_publishers) {
    return std::unexpected(out_of_range("publisher slots:", identity.publisher_slots));
  }
  if (identity.max_message_size > max_topic_message_size ||
      identity.stride != TopicGeometry::stride_for(identity.max_message_size)) {
    return std::unexpected(corrupt(object, "records a maximum message size of " +
                                               std::to_string(identity.max_message_size) + " bytes in chunks of " +
                                               std::to_string(identity.stride)));
  }
  if (identity.held_per_subscriber == 0 || identity.held_per_subscriber > topic_max_held_per_subscriber ||
      identity.chunk_count != TopicGeometry::chunks_for(identity.capacity, identity.subscriber_slots,
                                                        identity.held_per_subscriber, identity.publisher_slots) ||
      identity.chunk_count > topic_max_chunks) {
    return std::unexpected(corrupt(object, "records " + std::to_string(identity.chunk_count) +
                                               " chunks, which its capacity and slots do not account for"));
  }
  if (identity.overflow != TopicOverflow::block && identity.overflow != TopicOverflow::overwrite) {
    return std::unexpected(out_of_range("an overflow policy of", static_cast<std::uint32_t>(identity.overflow)));
  }
  const TopicGeometry geometry{identity.capacity, identity.chunk_count, identity.subscriber_slots,
                               identity.publisher_slots, identity.stride};
  if (geometry.file_size() > bytes.size()) {
    return std::unexpected(corrupt(object, "needs " + std::to_string(geometry.file_size()) +
                                               " bytes for what its header records, but has " +
                                               std::to_string(bytes.size())));
  }
  if (auto fault = implausible_owner(identity.owner, identity.creator, object, "topic")) return std::unexpected(*fault);
  auto* base = const_cast<std::byte*>(bytes.data());
  return TopicRecord{.header = reinterpret_cast<TopicHeader*>(base),
                     .entries = reinterpret_cast<std::atomic<std::uint64_t>*>(base + geometry.entries_offset()),
                     .subscribers = reinterpret_cast<SubscriberSlot*>(base + geometry.subscribers_offset()),
                     .publishers = reinterpret_cast<PublisherSlot*>(base + geometry.publishers_offset()),
                     .chunks = base + geometry.chunks_offset(),
                     .geometry = geometry,
                     .history = identity.history,
                     .max_message_size = identity.max_message_size,
                     .held_per_subscriber = identity.held_per_subscriber,
                     .overflow = identity.overflow,
                     .owner = identity.owner};
}

// Every handle's calls fail from now on, and sleepers (subscribers and blocked
// publishers) wake.
void mark_removed(TopicHeader& header) noexcept {
  header.removed.store(1, std::memory_order_seq_cst);
  for (std::atomic<std::uint32_t>* word : {&header.published, &header.consumed}) {
    std::uint32_t seen = word->load(std::memory_order_relaxed);
    while (!word->compare_exchange_weak(seen, EventWord::next(seen))) {
    }
    platform::futex_wake(*word, INT_MAX);
  }
}

OwnedFile topic_file(const std::string& file_name, const std::string& object) {
  return owned_file<TopicHeader>(file_name, object, validate, mark_removed);
}

Result<std::shared_ptr<TopicState>> handle_on(FileNames names, Segment mapping, const WaitPolicy& wait) {
  auto record = validate(mapping, names.object);
  if (!record) return std::unexpected(record.error());
  if (record->header->removed.load(std::memory_order_acquire) != 0) {
    return std::unexpected(topic_removed(names.object));
  }
  if (auto exited = topic_file(names.file_name, names.object).retire_if_owner_exited(mapping, record->owner)) {
    return std::unexpected(*exited);
  }
  return std::make_shared<TopicState>(std::move(names), std::move(mapping), *record, wait);
}

}  // namespace

void TopicState::release_subscriber_use(std::uint32_t slot, bool subscriber_gone, bool message_released) {
  const std::scoped_lock guard{mutex};
  SubscriberUse& use = subscribers[slot];
  if (subscriber_gone) use.left = true;
  if (message_released && use.held > 0) --use.held;
  if (use.left && use.held == 0) {
    subscribers.erase(slot);
    ring.leave_subscriber(slot);
  }
}

Result<std::shared_ptr<TopicBackend>> LocalTopics::create(std::string_view name, const TopicOptions& options) {
  auto names = topic_names(name);
  if (!names) return std::unexpected(names.error());
  if (auto checked = check_topic_options(names->object, options); !checked) return std::unexpected(checked.error());
  const auto invalid = [&](std::string detail) {
    return std::unexpected(Error{Errc::invalid_argument, names->object, std::move(detail)});
  };
  if (options.max_publishers == 0 || options.max_publishers > max_topic_publishers) {
    return invalid("max_publishers must be 1 to " + std::to_string(max_topic_publishers) + ", not " +
                   std::to_string(options.max_publishers));
  }
  if (options.held_per_subscriber == 0 || options.held_per_subscriber > topic_max_held_per_subscriber) {
    return invalid("held_per_subscriber must be 1 to " + std::to_string(topic_max_held_per_subscriber) + ", not " +
                   std::to_string(options.held_per_subscriber));
  }
  const std::uint64_t chunks = TopicGeometry::chunks_for(options.capacity, options.max_subscribers,
                                                         options.held_per_subscriber, options.max_publishers);
  if (chunks > topic_max_chunks) {
    return invalid("capacity + 1 + max_subscribers * held_per_subscriber + max_publishers is " +
                   std::to_string(chunks) + ", over the limit of " + std::to_string(topic_max_chunks));
  }
  const TopicGeometry geometry{options.capacity, static_cast<std::uint32_t>(chunks), options.max_subscribers,
                               options.max_publishers,
                               TopicGeometry::stride_for(options.max_message_size)};
  const std::uint64_t me = platform::current_process().packed();
  const std::uint64_t owner = options.ownership == Ownership::process ? me : 0;
  SegmentOptions file_options{
      .mode = options.mode, .initialize = [&](std::span<std::byte> memory) {
        // A fresh mapping is zeros: no message, every slot and chunk free. Sequence
        // numbers start at 1, so that an entry of zeros holds nothing yet.
        const TopicIdentity identity{.magic = topic_magic,
                                     .layout_version = topic_layout_version,
                                     .capacity = options.capacity,
                                     .history = options.history,
                                     .max_message_size = options.max_message_size,
                                     .chunk_count = geometry.chunk_count,
                                     .subscriber_slots = options.max_subscribers,
                                     .publisher_slots = options.max_publishers,
                                     .held_per_subscriber = options.held_per_subscriber,
                                     .stride = geometry.stride,
                                     .overflow = options.overflow == Overflow::block ? TopicOverflow::block
                                                                                     : TopicOverflow::overwrite,
                                     .owner = owner,
                                     .creator = me};
        std::memcpy(memory.data(), &identity, sizeof identity);
        auto* header = reinterpret_cast<TopicHeader*>(memory.data());
        header->head.store(1, std::memory_order_relaxed);
        header->gate.store(1, std::memory_order_relaxed);
        for (std::uint32_t i = 0; i < options.max_publishers; ++i) {
          auto* slot = reinterpret_cast<PublisherSlot*>(memory.data() + geometry.publishers_offset()) + i;
          slot->chunk.store(topic_no_chunk, std::memory_order_relaxed);
        }
      }};
  const std::size_t size = geometry.file_size();
  auto mapping = SegmentFactory::create(names->file_name, names->object, size, file_options, size);
  if (!mapping) return std::unexpected(mapping.error());
  auto record = validate(*mapping, names->object);
  if (!record) return std::unexpected(record.error());
  auto state = std::make_shared<TopicState>(std::move(*names), std::move(*mapping), *record, options.wait);
  if (owner != 0) {
    run_at_exit(state->names.file_name, owner,
                [file = topic_file(state->names.file_name, state->names.object), state] { (void)file.retire(state->mapping); });
  }
  return std::make_shared<LocalTopic>(std::move(state));
}

Result<std::shared_ptr<TopicBackend>> LocalTopics::open(std::string_view name, const WaitPolicy& wait) {
  auto names = topic_names(name);
  if (!names) return std::unexpected(names.error());
  // Named only once sized (SegmentFactory::create): an empty one is garbage.
  auto mapping = SegmentFactory::open(names->file_name, names->object, Access::read_write, OwnerCheck::trusted_owner,
                                      Unsized::garbage_after_grace);
  if (!mapping) return std::unexpected(mapping.error());
  auto state = handle_on(std::move(*names), std::move(*mapping), wait);
  if (!state) return std::unexpected(state.error());
  return std::make_shared<LocalTopic>(std::move(*state));
}

Result<void> LocalTopics::remove(std::string_view name) {
  auto names = topic_names(name);
  if (!names) return std::unexpected(names.error());
  return topic_file(names->file_name, names->object).remove();
}

Result<TopicStatus> LocalTopics::stat(std::string_view name) {
  auto names = topic_names(name);
  if (!names) return std::unexpected(names.error());
  auto inspected = inspect(*names, validate);
  if (!inspected) return std::unexpected(inspected.error());
  const TopicRecord& record = inspected->record;
  const TopicHeader& header = *record.header;
  const std::uint64_t head = header.head.load(std::memory_order_acquire);
  TopicStatus status{.name = names->name,
                     .overflow = record.overflow == TopicOverflow::block ? Overflow::block : Overflow::overwrite,
                     .capacity = record.geometry.capacity,
                     .history = record.history,
                     .max_message_size = record.max_message_size,
                     .published = head > 0 ? head - 1 : 0,
                     .max_subscribers = record.geometry.subscriber_slots,
                     .max_publishers = record.geometry.publisher_slots,
                     .ownership = record.owner == 0 ? Ownership::system : Ownership::process,
                     .mode = inspected->info.mode,
                     .owner_uid = inspected->info.owner_uid,
                     .memory_bytes = inspected->info.allocated};
  if (record.owner != 0) {
    status.owner_pid = platform::ProcessIdentity::unpack(record.owner).pid;
    status.owner_alive = platform::liveness(record.owner) == platform::Liveness::alive;
  }
  // Untrusted numbers: a cursor ahead of head (scribbled on) shows as no lag.
  for (std::uint32_t i = 0; i < record.geometry.subscriber_slots; ++i) {
    const SubscriberSlot& slot = record.subscribers[i];
    const std::uint64_t owner = slot.owner.load(std::memory_order_acquire);
    if (owner == 0) continue;
    const std::uint64_t cursor = slot.cursor.load(std::memory_order_acquire);
    const std::uint64_t holder = platform::ProcessIdentity::without_recovering_bit(owner);
    status.subscribers.push_back({.pid = platform::ProcessIdentity::unpack(holder).pid,
                                  .alive = platform::liveness(holder) == platform::Liveness::alive,
                                  .passed_over = slot.evicted.load(std::memory_order_relaxed) != 0,
                                  .lag = head > cursor ? head - cursor : 0,
                                  .received = slot.received.load(std::memory_order_relaxed),
                                  .lost = slot.lost.load(std::memory_order_relaxed)});
  }
  for (std::uint32_t i = 0; i < record.geometry.publisher_slots; ++i) {
    const PublisherSlot& slot = record.publishers[i];
    const std::uint64_t owner = slot.owner.load(std::memory_order_acquire);
    if (owner == 0) continue;
    const std::uint64_t holder = platform::ProcessIdentity::without_recovering_bit(owner);
    status.publishers.push_back({.pid = platform::ProcessIdentity::unpack(holder).pid,
                                 .alive = platform::liveness(holder) == platform::Liveness::alive,
                                 .published = slot.published.load(std::memory_order_relaxed)});
  }
  return status;
}

std::optional<Garbage> remove_topic_if_garbage(const std::string& name) {
  return topic_file(std::string{topic_file_prefix} + name, describe("topic", name)).remove_if_garbage();
}

}  // namespace shmbox::detail
