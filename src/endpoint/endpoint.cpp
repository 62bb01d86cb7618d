#include "shmbox/endpoint.hpp"

#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstdio>
#include <cstring>
#include <map>
#include <new>
#include <optional>
#include <thread>

#include "endpoint/endpoint_files.hpp"
#include "endpoint/layout.hpp"
#include "local/local_mailbox.hpp"
#include "local/mailbox_file.hpp"
#include "local/mailbox_state.hpp"
#include "local/ownership.hpp"
#include "local/recovery.hpp"
#include "local/ring.hpp"
#include "local/wait_any.hpp"
#include "base/name.hpp"
#include "platform/futex.hpp"
#include "platform/process.hpp"
#include "platform/shm.hpp"
#include "segment/segment_factory.hpp"

namespace shmbox {
namespace detail {
namespace {

constexpr std::string_view kind = "endpoint";

void ring_doorbell(EndpointHeader& header) noexcept {
  // Rare (a lane added, the endpoint closed): wake every sleeper, no counting first.
  header.doorbell.fetch_add(1, std::memory_order_release);
  platform::futex_wake(header.doorbell, INT_MAX);
}

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
  if (auto fault = implausible_process(identity.owner)) {
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

namespace {

// Whether a process of `uid` whose group is `gid` may read and write `file`, by the
// kernel's rules (its supplementary groups are unknown here: they are not counted).
bool may_read_and_write(uid_t uid, gid_t gid, const platform::FileStatus& file) {
  if (uid == 0) return true;
  const mode_t bits = file.uid == uid ? file.mode >> 6 : file.gid == gid ? file.mode >> 3 : file.mode;
  return (bits & 06) == 06;
}

// The endpoint's process must open the lane we made (it receives from it, read-write),
// or every message sent through it would wait unread. The lane is the endpoint's owner's
// where we may give it (root: user and group; anyone: the group, if it is one of ours);
// if its process still could not use it, sending is refused.
Result<void> hand_lane_to_receiver(const LocalMailbox& lane, const EndpointView& peer) {
  const int fd = SegmentFactory::descriptor(*lane.state().mapping);
  if (!platform::change_owner(fd, ::geteuid() == 0 ? peer.file_uid : static_cast<uid_t>(-1), peer.file_gid)) {
    (void)platform::change_owner(fd, static_cast<uid_t>(-1), peer.file_gid);
  }
  auto made = platform::file_status(fd, peer.names.object);
  if (!made) return std::unexpected(made.error());
  if (may_read_and_write(peer.file_uid, peer.file_gid, *made)) return {};
  char mode[8];
  std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(made->mode));
  return std::unexpected(Error{Errc::permission_denied, peer.names.object,
                               "its process (uid " + std::to_string(peer.file_uid) + ") could not use this sender's " +
                                   "lane (uid " + std::to_string(made->uid) + ", gid " + std::to_string(made->gid) +
                                   ", mode " + mode + "), which this process may not give it: nothing was sent"});
}

Error gone_error(const EndpointView& endpoint) {
  return Error{Errc::not_found, endpoint.names.object,
               "does not exist: its owner, process " +
                   std::to_string(platform::ProcessIdentity::unpack(endpoint.owner).pid) + ", exited"};
}

// A sender's lane that the receiver watches.
struct Lane {
  std::uint32_t index;
  std::uint64_t sender;
  std::string from;
  std::unique_ptr<LocalMailbox> box;
};

// Our lane into a peer's endpoint.
struct Link {
  EndpointView peer;
  std::unique_ptr<LocalMailbox> lane;
};

// A lane's copy of a zero-capacity receiver's presence: while we wait in receive(),
// non-blocking rendezvous sends to the lanes we watch may go ahead.
class Presence {
 public:
  Presence(std::vector<Lane*>& lanes) : lanes_(lanes) {
    for (Lane* lane : lanes_) {
      MailboxState& state = lane->box->state();
      if (state.geometry.buffering != Buffering::zero) continue;
      state.header->receivers_present.fetch_add(1, std::memory_order_seq_cst);
      wake_senders(state, true);
    }
  }
  ~Presence() {
    for (Lane* lane : lanes_) {
      MailboxState& state = lane->box->state();
      if (state.geometry.buffering == Buffering::zero) state.header->receivers_present.fetch_sub(1, std::memory_order_relaxed);
    }
  }
  Presence(const Presence&) = delete;
  Presence& operator=(const Presence&) = delete;

 private:
  std::vector<Lane*>& lanes_;
};

}  // namespace

struct EndpointState {
  EndpointState(EndpointView view, const WaitPolicy& policy) : self(std::move(view)), wait(policy) {}
  EndpointState(const EndpointState&) = delete;
  EndpointState& operator=(const EndpointState&) = delete;

  EndpointView self;
  WaitPolicy wait;
  std::uint64_t me = platform::current_process().packed();
  // Receiving: the lanes into our endpoint, in table order.
  std::vector<Lane> lanes;
  std::optional<std::uint32_t> seen_doorbell;
  std::size_t next = 0;  // receive() starts here: lanes take turns
  std::chrono::steady_clock::time_point next_sweep{};
  std::chrono::steady_clock::time_point last_sweep{};
  // Sending: our lanes into peers' endpoints, by peer name.
  std::map<std::string, Link, std::less<>> links;

  ~EndpointState() {
    lanes.clear();
    links.clear();
    // A forked child's copy is not the endpoint: only its process leaves.
    if (me == platform::current_process().packed()) (void)retire_endpoint(self, Retirer::owner);
  }

  // Brings `lanes` up to date with the table when the doorbell rang (or `force`).
  void refresh(bool force) {
    const std::uint32_t bell = self.header->doorbell.load(std::memory_order_acquire);
    if (!force && seen_doorbell == bell) return;
    seen_doorbell = bell;
    for (std::uint32_t i = 0; i < self.max_peers; ++i) {
      LaneEntry& entry = self.table[i];
      const std::uint64_t sender = entry.sender.load(std::memory_order_acquire);
      const bool ready = entry.ready.load(std::memory_order_acquire) != 0;
      auto known = std::find_if(lanes.begin(), lanes.end(), [&](const Lane& lane) { return lane.index == i; });
      if (known != lanes.end()) {
        if (known->sender == sender && ready) continue;
        lanes.erase(known);  // given back, or taken by another sender since
      }
      if (sender == 0 || !ready) continue;
      // Untrusted: a name that is too long or not a valid name leaves the lane unread.
      const std::uint32_t length = entry.name_length.load(std::memory_order_relaxed);
      if (length == 0 || length > lane_name_capacity) continue;
      std::string from(entry.name, length);
      if (!endpoint_file(from)) continue;
      // Any owner: who may create a lane is decided by our endpoint's mode.
      auto box = MailboxFactory::open(lane_file(self, i), wait, OwnerCheck::any_owner);
      if (!box) continue;
      // Made by a sender that ignored our limits (a legitimate one copies them): refuse it.
      if ((*box)->buffering() != self.lane.buffering || (*box)->max_message_size() != self.lane.max_message_size ||
          (self.lane.buffering == Buffering::bounded && (*box)->capacity() != self.lane.capacity)) {
        give_back(i, sender);
        continue;
      }
      const auto at = std::find_if(lanes.begin(), lanes.end(), [&](const Lane& lane) { return lane.index > i; });
      lanes.insert(at, Lane{i, sender, std::move(from), std::move(*box)});
    }
  }

  // Once a second: a lane whose sender died has the position it may have claimed and
  // not published cancelled (we never wait inside a lane, where that would happen), and
  // is closed, so that it drains and is then given back (receive() retires a lane that
  // says Closed).
  void sweep() {
    const auto now = std::chrono::steady_clock::now();
    // A sender waiting for a lane asked: sweep now, but at most every 10 ms.
    const bool asked = self.header->sweep_requested.exchange(0, std::memory_order_acq_rel) != 0;
    if (now < next_sweep && !(asked && now >= last_sweep + std::chrono::milliseconds{10})) return;
    last_sweep = now;
    next_sweep = now + std::chrono::seconds{1};
    refresh(true);
    for (Lane& lane : lanes) {
      if (lane.box->closed() || platform::liveness(lane.sender) == platform::Liveness::alive) continue;
      (void)recover(lane.box->state(), nullptr);
      (void)lane.box->close();
    }
  }

  // A lane that is closed and drained (or refused): remove its file, then free its
  // entry, in that order, so that an entry is never free while its file exists.
  void retire_lane(std::size_t position) {
    const Lane lane = std::move(lanes[position]);
    lanes.erase(lanes.begin() + static_cast<std::ptrdiff_t>(position));
    give_back(lane.index, lane.sender);
  }
  void give_back(std::uint32_t index, std::uint64_t sender) {
    (void)MailboxFactory::remove_if_owned_by(lane_file(self, index), self.owner);
    self.table[index].ready.store(0, std::memory_order_release);
    // A CAS, not a store: a sender that found the entry's dead claimer with `ready` 0
    // may have taken it over just now, and its claim must stand.
    std::uint64_t expected = sender;
    (void)self.table[index].sender.compare_exchange_strong(expected, 0, std::memory_order_acq_rel);
    ring_doorbell(*self.header);  // for a sender waiting for a free lane
  }

  Result<Link*> link_to(std::string_view to);
  Result<Link*> make_lane(EndpointView peer, std::uint32_t index);

  // Receives from the lanes `from` selects (all when empty), taking turns, with
  // `take(LocalMailbox&)` doing the non-blocking receive. Returns the lane's sender.
  template <class Take>
  Result<std::string> receive(std::optional<std::string_view> from, Deadline deadline, Take&& take);
};

Result<Link*> EndpointState::make_lane(EndpointView peer, std::uint32_t index) {
  LaneEntry& entry = peer.table[index];
  entry.name_length.store(static_cast<std::uint32_t>(self.names.name.size()), std::memory_order_relaxed);
  std::memcpy(entry.name, self.names.name.data(), self.names.name.size());
  MailboxOptions options = peer.lane;
  options.mode = peer.mode;
  options.max_attached = 8;  // the receiver and the sender, and room for their successors
  const MailboxFile file = lane_file(peer, index);
  // A file left by a claimer that died before it set ready (or by an old endpoint of
  // the name): remove it first.
  (void)MailboxFactory::remove_if_owned_by(file, peer.owner);
  auto lane = MailboxFactory::create(file, options, wait, peer.owner);
  if (!lane) {
    entry.sender.store(0, std::memory_order_release);
    if (lane.error() == Errc::already_exists) {
      // Someone else's file under the lane's name, which we may not remove.
      return std::unexpected(Error{Errc::already_exists, peer.names.object,
                                   "cannot make lane " + std::to_string(index) + ": " + lane.error().detail()});
    }
    return std::unexpected(lane.error());
  }
  if (auto usable = hand_lane_to_receiver(**lane, peer); !usable) {
    (void)MailboxFactory::remove(file);
    entry.sender.store(0, std::memory_order_release);
    return std::unexpected(usable.error());
  }
  entry.ready.store(1, std::memory_order_seq_cst);
  if (peer.header->closed.load(std::memory_order_seq_cst) != 0) {
    // It left while we made the lane, perhaps after its retirement passed this index.
    (void)MailboxFactory::remove(file);
    return std::unexpected(Error{Errc::not_found, peer.names.object, "does not exist: it has left"});
  }
  ring_doorbell(*peer.header);
  std::string name = peer.names.name;
  auto [link, inserted] = links.insert_or_assign(std::move(name), Link{std::move(peer), std::move(*lane)});
  return &link->second;
}

Result<Link*> EndpointState::link_to(std::string_view to) {
  if (auto known = links.find(to); known != links.end()) {
    if (!known->second.lane->closed()) return &known->second;
    links.erase(known);
  }
  auto names = endpoint_file(to);
  if (!names) return std::unexpected(names.error());
  auto peer = open_endpoint(std::move(*names), Access::read_write, OwnerCheck::trusted_owner);
  if (!peer) return std::unexpected(peer.error());
  if (peer->header->closed.load(std::memory_order_acquire) != 0) {
    return std::unexpected(Error{Errc::not_found, peer->names.object, "does not exist: it has left"});
  }
  if (platform::liveness(peer->owner) == platform::Liveness::dead) {
    (void)retire_endpoint(*peer, Retirer::survivor);
    return std::unexpected(gone_error(*peer));
  }
  // Our lane from before (our link was dropped), if it is still there. Every endpoint
  // of this process has our identity: the name tells ours apart.
  for (std::uint32_t i = 0; i < peer->max_peers; ++i) {
    LaneEntry& entry = peer->table[i];
    if (entry.sender.load(std::memory_order_acquire) != me || entry.ready.load(std::memory_order_acquire) == 0) continue;
    if (entry.name_length.load(std::memory_order_relaxed) != self.names.name.size() ||
        std::memcmp(entry.name, self.names.name.data(), self.names.name.size()) != 0) {
      continue;
    }
    if (auto lane = MailboxFactory::open(lane_file(*peer, i), wait, OwnerCheck::any_owner); lane && !(*lane)->closed()) {
      std::string name = peer->names.name;
      auto [link, inserted] = links.insert_or_assign(std::move(name), Link{std::move(*peer), std::move(*lane)});
      return &link->second;
    }
  }
  // A free entry; failing that, one whose claimer died before its lane was ready. An
  // entry whose lane name a stranger's file blocks is passed over.
  std::optional<Error> blocked;
  auto claim = [&](std::uint32_t i) -> std::optional<Result<Link*>> {
    auto made = make_lane(*peer, i);
    if (!made && made.error() == Errc::already_exists) {
      blocked = made.error();
      return std::nullopt;
    }
    return made;
  };
  for (std::uint32_t i = 0; i < peer->max_peers; ++i) {
    std::uint64_t expected = 0;
    if (peer->table[i].sender.compare_exchange_strong(expected, me, std::memory_order_acq_rel)) {
      if (auto made = claim(i)) return std::move(*made);
    }
  }
  for (std::uint32_t i = 0; i < peer->max_peers; ++i) {
    LaneEntry& entry = peer->table[i];
    std::uint64_t claimer = entry.sender.load(std::memory_order_acquire);
    if (claimer == 0 || claimer == me || entry.ready.load(std::memory_order_acquire) != 0) continue;
    if (platform::liveness(claimer) == platform::Liveness::dead &&
        entry.sender.compare_exchange_strong(claimer, me, std::memory_order_acq_rel)) {
      if (auto made = claim(i)) return std::move(*made);
    }
  }
  if (blocked) return std::unexpected(*blocked);
  peer->header->sweep_requested.store(1, std::memory_order_release);
  ring_doorbell(*peer->header);
  return std::unexpected(Error{Errc::no_space, peer->names.object,
                               "all " + std::to_string(peer->max_peers) +
                                   " lanes are held by senders or by messages not yet received (raise max_peers)"});
}

template <class Take>
Result<std::string> EndpointState::receive(std::optional<std::string_view> from, Deadline deadline, Take&& take) {
  const Deadline::clock::duration sweep_interval = std::chrono::seconds{1};
  std::vector<Lane*> watched;
  for (;;) {
    sweep();
    refresh(false);
    watched.clear();
    const std::size_t count = lanes.size();
    bool retired = false;
    for (std::size_t k = 0; k < count && !retired; ++k) {
      const std::size_t i = (next + k) % count;
      Lane& lane = lanes[i];
      if (from && lane.from != *from) continue;
      auto got = take(*lane.box);
      if (got) {
        next = (i + 1) % count;
        return lane.from;
      }
      if (got.error() == Errc::would_block) {
        watched.push_back(&lane);
      } else if (got.error() == Errc::too_large) {
        return std::unexpected(got.error());  // the caller's buffer: the message stays queued
      } else {
        // Closed: drained, and its sender is gone. Anything else (Corrupt): a lane that
        // would fail every receive, which must not stall the other senders'.
        retire_lane(i);
        retired = true;
      }
    }
    if (retired) continue;
    if (deadline.is_none()) return std::unexpected(Error{Errc::would_block, {}, {}});
    if (deadline.expired()) return std::unexpected(Error{Errc::timeout, self.names.object, "timed out"});
    // Sleep on the watched lanes and the doorbell (a new lane may be the one we want),
    // waking at least once a second to sweep.
    std::vector<WatchedWord> words;
    words.reserve(watched.size() + 1);
    for (Lane* lane : watched) {
      Header& header = *lane->box->state().header;
      words.push_back({&header.data_epoch, &header.receive_selectors_sleeping, nullptr});
    }
    words.push_back({&self.header->doorbell, &self.header->doorbell_sleepers, nullptr});
    const std::uint32_t bell = *seen_doorbell;
    const Presence present{watched};
    const auto nap_end = Deadline::clock::now() + sweep_interval;
    (void)wait_any(wait, deadline.is_forever() || nap_end < deadline.until() ? Deadline{nap_end} : deadline, words,
                   [&]() -> std::optional<std::size_t> {
                     if (self.header->doorbell.load(std::memory_order_acquire) != bell) return watched.size();
                     for (std::size_t i = 0; i < watched.size(); ++i) {
                       if (ready_to_receive(watched[i]->box->state())) return i;
                     }
                     return std::nullopt;
                   });
  }
}

}  // namespace detail

Endpoint::Endpoint(std::unique_ptr<detail::EndpointState> state) noexcept : state_(std::move(state)) {}
Endpoint::Endpoint(Endpoint&& other) noexcept = default;
Endpoint& Endpoint::operator=(Endpoint&& other) noexcept {
  if (this != &other) state_ = std::move(other.state_);  // leaves the endpoint this one held
  return *this;
}
Endpoint::~Endpoint() = default;

Error Endpoint::moved_from() {
  return Error{Errc::invalid_argument, "endpoint", "this handle was moved from: it has joined as no name"};
}

Result<Endpoint> Endpoint::join(std::string_view name, const EndpointOptions& options, const WaitPolicy& wait) {
  auto names = detail::endpoint_file(name);
  if (!names) return std::unexpected(names.error());
  if (options.max_peers == 0 || options.max_peers > max_peers_limit) {
    return std::unexpected(Error{Errc::invalid_argument, names->object,
                                 "max_peers is " + std::to_string(options.max_peers) + "; it must be 1 to " +
                                     std::to_string(max_peers_limit)});
  }
  const MailboxOptions lane{.buffering = options.buffering,
                            .capacity = options.capacity,
                            .max_message_size = options.max_message_size,
                            .mode = options.mode};
  if (auto valid = detail::plan_geometry(lane, names->object); !valid) return std::unexpected(valid.error());
  const std::uint64_t size = detail::file_size_for(options.max_peers);
  auto make = [&] {
    return detail::SegmentFactory::create(
        names->file_name, names->object, size,
        {.mode = options.mode,
         .initialize =
             [&](std::span<std::byte> memory) {
               detail::initialize_endpoint(memory, options, static_cast<std::uint32_t>(detail::endpoint_header_bytes));
             }},
        size);
  };
  auto segment = make();
  // Taken: by an endpoint whose process died, the name is free again. Another process
  // may be retiring it or joining at the same time: look again a few times.
  for (int attempt = 0; attempt < 8 && !segment && segment.error() == Errc::already_exists; ++attempt) {
    if (!detail::remove_endpoint_if_garbage(names->name)) {
      if (auto holder = detail::open_endpoint(*names, Access::read_only);
          holder && platform::liveness(holder->owner) == platform::Liveness::alive) {
        const pid_t pid = platform::ProcessIdentity::unpack(holder->owner).pid;
        return std::unexpected(Error{Errc::already_exists, names->object,
                                     "is joined by process " + std::to_string(pid) + " (" +
                                         platform::process_name(holder->owner) + ")"});
      }
    }
    segment = make();
  }
  if (!segment) return std::unexpected(segment.error());
  auto view = detail::view_endpoint(std::move(*names), std::move(*segment));
  if (!view) return std::unexpected(view.error());
  auto state = std::make_unique<detail::EndpointState>(*view, wait);
  detail::run_at_exit(view->names.file_name, state->me, [endpoint = *view] {
    (void)detail::retire_endpoint(endpoint, detail::Retirer::owner);
  });
  return Endpoint{std::move(state)};
}

const std::string& Endpoint::name() const noexcept {
  static const std::string none;
  return state_ ? state_->self.names.name : none;
}

Result<void> Endpoint::send(std::string_view to, std::span<const std::byte> message, Deadline deadline) {
  if (!state_) return std::unexpected(moved_from());
  detail::EndpointState& state = *state_;
  auto link = state.link_to(to);
  // Every lane is taken: the receiver was asked to give back those of dead senders.
  // Waiting for one is rare, so it polls rather than sleeping on the peer's doorbell.
  while (!link && link.error() == Errc::no_space && !deadline.is_none() && !deadline.expired()) {
    std::this_thread::sleep_for(std::chrono::milliseconds{2});
    link = state.link_to(to);
  }
  if (!link) {
    if (link.error() == Errc::no_space && !deadline.is_none()) {
      return std::unexpected(Error{Errc::timeout, link.error().object(), "timed out waiting for a free lane"});
    }
    return std::unexpected(link.error());
  }
  auto sent = (*link)->lane->send(message, deadline, {});
  if (sent || sent.error() != Errc::closed) return sent;
  // Our lane was closed: the peer left (then this is the answer), or it is a new
  // process under the same name, which a fresh link reaches.
  auto again = state.link_to(to);
  if (!again) return again.error() == Errc::not_found ? sent : std::unexpected(again.error());
  return (*again)->lane->send(message, deadline, {});
}

Result<std::size_t> Endpoint::receive_from(std::string_view from, std::span<std::byte> buffer, Deadline deadline) {
  if (!state_) return std::unexpected(moved_from());
  if (auto valid = detail::endpoint_file(from); !valid) return std::unexpected(valid.error());
  std::size_t size = 0;
  auto sender = state_->receive(from, deadline, [&](detail::LocalMailbox& lane) -> Result<void> {
    auto got = lane.receive(buffer, no_wait);
    if (!got) return std::unexpected(got.error());
    size = *got;
    return {};
  });
  if (!sender) return std::unexpected(sender.error());
  return size;
}

Result<void> Endpoint::receive_from(std::string_view from, std::vector<std::byte>& message, Deadline deadline) {
  if (!state_) return std::unexpected(moved_from());
  if (auto valid = detail::endpoint_file(from); !valid) return std::unexpected(valid.error());
  auto sender = state_->receive(from, deadline, [&](detail::LocalMailbox& lane) { return lane.receive(message, no_wait); });
  if (!sender) return std::unexpected(sender.error());
  return {};
}

Result<Received> Endpoint::receive(std::span<std::byte> buffer, Deadline deadline) {
  if (!state_) return std::unexpected(moved_from());
  std::size_t size = 0;
  auto sender = state_->receive(std::nullopt, deadline, [&](detail::LocalMailbox& lane) -> Result<void> {
    auto got = lane.receive(buffer, no_wait);
    if (!got) return std::unexpected(got.error());
    size = *got;
    return {};
  });
  if (!sender) return std::unexpected(sender.error());
  return Received{std::move(*sender), size};
}

Result<std::string> Endpoint::receive(std::vector<std::byte>& message, Deadline deadline) {
  if (!state_) return std::unexpected(moved_from());
  return state_->receive(std::nullopt, deadline, [&](detail::LocalMailbox& lane) { return lane.receive(message, no_wait); });
}

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
