// Endpoint files in /dev/shm and the lane files beside them: names, creation, validation,
// retirement, garbage (docs/design.md, "Endpoints"); and the public calls on names.
#include "endpoint/endpoint_files.hpp"

#include <climits>
#include <cstring>
#include <new>

#include "base/name.hpp"
#include "endpoint/layout.hpp"
#include "local/mailbox_file.hpp"
#include "local/ownership.hpp"
#include "platform/futex.hpp"
#include "platform/process.hpp"
#include "platform/shm.hpp"
#include "segment/segment_factory.hpp"

namespace shmbox {
namespace detail {
namespace {

constexpr std::string_view kind = "endpoint";

void initialize_endpoint(std::span<std::byte> memory, const EndpointOptions& options, std::uint32_t table_offset) {
  // On the unnamed file: nobody else sees it until it is linked.
  auto* header = new (memory.data()) EndpointHeader{};
  header->identity = EndpointIdentity{
      .magic = endpoint_magic,
      .layout_version = endpoint_layout_version,
      .header_size = static_cast<std::uint32_t>(endpoint_header_bytes),
      .max_peers = options.max_peers,
      .lane_buffering = static_cast<std::uint32_t>(options.buffering),
      .lane_capacity = options.capacity,
      .lane_max_message_size = options.max_message_size,
      .table_offset = table_offset,
      .file_size = memory.size(),
      .owner = platform::current_process().packed(),
      .reserved = 0,
  };
  for (std::uint32_t i = 0; i < options.max_peers; ++i) {
    new (memory.data() + table_offset + i * sizeof(LaneEntry)) LaneEntry{};
  }
}

std::uint64_t file_size_for(std::uint32_t max_peers) {
  return endpoint_header_bytes + std::uint64_t{max_peers} * sizeof(LaneEntry);
}

}  // namespace

void ring_doorbell(EndpointHeader& header) noexcept {
  // Rare (a lane added, the endpoint closed): wake every sleeper, no counting first.
  header.doorbell.fetch_add(1, std::memory_order_release);
  platform::futex_wake(header.doorbell, INT_MAX);
}

Result<EndpointFile> endpoint_file(std::string_view name) {
  auto valid = validate_name(kind, name);
  if (!valid) return std::unexpected(valid.error());
  if (valid->size() > Endpoint::max_name_length) {
    return std::unexpected(Error{Errc::invalid_name, describe(kind, *valid),
                                 "name is " + std::to_string(valid->size()) + " characters long, the limit is " +
                                     std::to_string(Endpoint::max_name_length)});
  }
  std::string file_name{endpoint_file_prefix};
  file_name += *valid;
  std::string object = describe(kind, *valid);
  return EndpointFile{std::move(*valid), std::move(file_name), std::move(object)};
}

MailboxFile lane_file(const EndpointView& endpoint, std::uint32_t index) {
  std::string file_name{lane_file_prefix};
  file_name += endpoint.names.name;
  file_name += '.';
  file_name += std::to_string(index);
  return MailboxFile{endpoint.names.name, std::move(file_name), endpoint.names.object};
}

Result<EndpointView> view_endpoint(EndpointFile names, Segment opened) {
  const auto bytes = opened.bytes();
  auto corrupt = [&](const char* detail) { return std::unexpected(Error{Errc::corrupt, names.object, detail}); };
  if (bytes.size() < endpoint_header_bytes) return corrupt("is smaller than an endpoint header");
  EndpointIdentity identity{};
  std::memcpy(&identity, bytes.data(), sizeof identity);
  if (identity.magic != endpoint_magic) return corrupt("is not an endpoint (bad magic number)");
  if (identity.layout_version != endpoint_layout_version) {
    return std::unexpected(Error{Errc::version_mismatch, names.object,
                                 "has layout version " + std::to_string(identity.layout_version) +
                                     "; this build reads version " + std::to_string(endpoint_layout_version)});
  }
  if (identity.header_size != endpoint_header_bytes || identity.table_offset != endpoint_header_bytes) {
    return corrupt("has a header of the wrong size");
  }
  if (identity.max_peers == 0 || identity.max_peers > Endpoint::max_peers_limit) return corrupt("has a bad peer count");
  if (identity.file_size != file_size_for(identity.max_peers) || identity.file_size > bytes.size()) {
    return corrupt("is shorter than its lane table");
  }
  if (identity.lane_buffering > static_cast<std::uint32_t>(BufferingCode::unbounded)) {
    return corrupt("has an unknown buffering");
  }
  const MailboxOptions lane{.buffering = static_cast<Buffering>(identity.lane_buffering),
                            .capacity = identity.lane_capacity,
                            .max_message_size = identity.lane_max_message_size};
  if (!plan_geometry(lane, names.object)) return corrupt("has lane options out of range");
  // Garbage here must never pass for a dead owner: that would retire the endpoint.
  if (auto fault = platform::implausible_process(identity.owner)) {
    return std::unexpected(Error{Errc::corrupt, names.object, "has a corrupt owner record: " + *fault});
  }
  auto info = platform::file_status(SegmentFactory::descriptor(opened), names.object);
  if (!info) return std::unexpected(info.error());
  auto* base = const_cast<std::byte*>(bytes.data());
  return EndpointView{
      .names = std::move(names),
      .mapping = std::make_shared<const Segment>(std::move(opened)),
      .header = reinterpret_cast<EndpointHeader*>(base),
      .table = reinterpret_cast<LaneEntry*>(base + endpoint_header_bytes),
      .max_peers = identity.max_peers,
      .lane = lane,
      .owner = identity.owner,
      .mode = info->mode,
      .file_uid = info->uid,
      .file_gid = info->gid,
  };
}

Result<void> retire_endpoint(const EndpointView& endpoint, Retirer by) {
  // The name first: a survivor the kernel does not let remove it (in the sticky
  // /dev/shm only the file's owner or root may) changes nothing. The endpoint's own
  // process closes it all the same: it is leaving.
  auto unlinked = platform::unlink_shm_file_if_same(endpoint.names.file_name,
                                                    SegmentFactory::descriptor(*endpoint.mapping),
                                                    endpoint.names.object);
  const bool removed = unlinked || unlinked.error() == Errc::not_found;
  if (!removed && by == Retirer::survivor) return std::unexpected(unlinked.error());
  // seq_cst, with the load in make_lane: a sender that set `ready` before this store
  // has its lane file linked, so the loop below finds it; one that sets it after sees
  // `closed` and removes its lane itself.
  endpoint.header->closed.store(1, std::memory_order_seq_cst);
  ring_doorbell(*endpoint.header);
  // Lanes first, and only this endpoint's (its owner's) or orphans: a slower second
  // retirer must not remove the lanes of a new endpoint joined under the name meanwhile.
  for (std::uint32_t i = 0; i < endpoint.max_peers; ++i) {
    (void)MailboxFactory::remove_if_owned_by(lane_file(endpoint, i), endpoint.owner);
  }
  forget_at_exit(endpoint.names.file_name);
  if (!removed) return std::unexpected(unlinked.error());
  return {};
}

Result<EndpointView> open_endpoint(EndpointFile names, Access access, OwnerCheck check) {
  // Named only once sized, as mailboxes are: one left empty is garbage.
  auto segment = SegmentFactory::open(names.file_name, names.object, access, check, Unsized::garbage_after_grace);
  if (!segment) return std::unexpected(segment.error());
  return view_endpoint(std::move(names), std::move(*segment));
}

std::optional<Garbage> remove_endpoint_if_garbage(std::string_view name) {
  auto names = endpoint_file(name);
  if (!names) return std::nullopt;
  if (SegmentFactory::remove_if_left_unsized(names->file_name)) return Garbage::left_unsized();
  auto endpoint = open_endpoint(std::move(*names), Access::read_write);
  if (!endpoint || platform::liveness(endpoint->owner) == platform::Liveness::alive) return std::nullopt;
  if (!retire_endpoint(*endpoint, Retirer::survivor)) return std::nullopt;
  return Garbage::owner_exited(platform::ProcessIdentity::unpack(endpoint->owner).pid);
}

Result<EndpointView> create_endpoint(EndpointFile names, const EndpointOptions& options) {
  const std::uint64_t size = file_size_for(options.max_peers);
  auto make = [&] {
    return SegmentFactory::create(
        names.file_name, names.object, size,
        {.mode = options.mode,
         .initialize =
             [&](std::span<std::byte> memory) {
               initialize_endpoint(memory, options, static_cast<std::uint32_t>(endpoint_header_bytes));
             }},
        size);
  };
  auto segment = make();
  // Taken: by an endpoint whose process died, the name is free again. Another process
  // may be retiring it or joining at the same time: look again a few times.
  for (int attempt = 0; attempt < 8 && !segment && segment.error() == Errc::already_exists; ++attempt) {
    if (!remove_endpoint_if_garbage(names.name)) {
      if (auto holder = open_endpoint(names, Access::read_only);
          holder && platform::liveness(holder->owner) == platform::Liveness::alive) {
        const pid_t pid = platform::ProcessIdentity::unpack(holder->owner).pid;
        return std::unexpected(Error{Errc::already_exists, names.object,
                                     "is joined by process " + std::to_string(pid) + " (" +
                                         platform::process_name(holder->owner) + ")"});
      }
    }
    segment = make();
  }
  if (!segment) return std::unexpected(segment.error());
  return view_endpoint(std::move(names), std::move(*segment));
}

}  // namespace detail

Result<void> Endpoint::remove(std::string_view name) {
  auto names = detail::endpoint_file(name);
  if (!names) return std::unexpected(names.error());
  const detail::EndpointFile file = *names;
  auto endpoint = detail::open_endpoint(std::move(*names), Access::read_write);
  if (!endpoint) {
    // Not an endpoint we can read: nobody can be using it, so it goes as it is.
    const Errc cause = endpoint.error().errc();
    if (cause != Errc::not_ready && cause != Errc::corrupt && cause != Errc::version_mismatch) {
      return std::unexpected(endpoint.error());
    }
    auto removed = detail::SegmentFactory::remove(file.file_name, file.object);
    if (removed) detail::forget_at_exit(file.file_name);
    return removed;
  }
  if (platform::liveness(endpoint->owner) == platform::Liveness::alive) {
    const auto owner = platform::ProcessIdentity::unpack(endpoint->owner);
    return std::unexpected(Error{Errc::in_use, file.object,
                                 "process " + std::to_string(owner.pid) + " (" + platform::process_name(endpoint->owner) +
                                     ") is joined to it; an endpoint goes when its process leaves"});
  }
  return detail::retire_endpoint(*endpoint, detail::Retirer::survivor);
}

Result<EndpointStatus> Endpoint::stat(std::string_view name) {
  auto names = detail::endpoint_file(name);
  if (!names) return std::unexpected(names.error());
  auto info = detail::SegmentFactory::stat(names->file_name, names->object);
  if (!info) return std::unexpected(info.error());
  auto endpoint = detail::open_endpoint(std::move(*names), Access::read_only);
  if (!endpoint) return std::unexpected(endpoint.error());
  const bool alive = platform::liveness(endpoint->owner) == platform::Liveness::alive;
  EndpointStatus status{
      .name = endpoint->names.name,
      .owner_pid = platform::ProcessIdentity::unpack(endpoint->owner).pid,
      .owner_name = alive ? platform::process_name(endpoint->owner) : std::string{},
      .owner_alive = alive,
      .buffering = endpoint->lane.buffering,
      .capacity = endpoint->lane.capacity,
      .max_message_size = endpoint->lane.max_message_size,
      .max_peers = endpoint->max_peers,
      .mode = info->mode,
      .owner_uid = info->owner_uid,
  };
  for (std::uint32_t i = 0; i < endpoint->max_peers; ++i) {
    const detail::LaneEntry& entry = endpoint->table[i];
    if (entry.sender.load(std::memory_order_acquire) == 0 || entry.ready.load(std::memory_order_acquire) == 0) continue;
    const std::uint32_t length = entry.name_length.load(std::memory_order_relaxed);
    if (length == 0 || length > detail::lane_name_capacity) continue;
    status.senders.emplace_back(entry.name, length);
    if (auto lane = detail::MailboxFactory::stat(detail::lane_file(*endpoint, i))) status.queued += lane->queued;
  }
  return status;
}

std::vector<std::string> Endpoint::list() { return platform::list_shm_names(detail::endpoint_file_prefix); }

}  // namespace shmbox
