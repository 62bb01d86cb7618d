#include "endpoint/lanes.hpp"

#include <unistd.h>

#include <cstdio>
#include <cstring>

#include "local/mailbox_file.hpp"
#include "local/recovery.hpp"
#include "platform/shm.hpp"
#include "segment/segment_factory.hpp"

namespace shmbox::detail {
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
  const int fd = SegmentFactory::descriptor(*lane.mapped().mapping);
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

}  // namespace

JoinedEndpoint::~JoinedEndpoint() {
  lanes.clear();
  links.clear();
  // A forked child's copy is not the endpoint: only its process leaves.
  if (me == platform::current_process().packed()) (void)retire_endpoint(self, Retirer::owner);
}

void JoinedEndpoint::refresh(bool force) {
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

bool JoinedEndpoint::prepare_for_selector() noexcept {
  try {
    sweep();
    refresh(false);
    return true;
  } catch (...) {
    return false;
  }
}

bool JoinedEndpoint::doorbell_moved() const noexcept {
  return self.header->doorbell.load(std::memory_order_acquire) != seen_doorbell;
}

bool JoinedEndpoint::may_receive() const noexcept {
  return std::any_of(lanes.begin(), lanes.end(), [](const Lane& lane) { return ready_to_receive(lane.box->mapped()); });
}

void JoinedEndpoint::add_words(std::vector<WatchedWord>& words) {
  for (const Lane& lane : lanes) {
    Header& header = *lane.box->mapped().header;
    words.push_back({&header.data_epoch, &header.receive_selectors_sleeping, nullptr});
  }
  words.push_back({&self.header->doorbell, &self.header->doorbell_sleepers, nullptr});
}

void JoinedEndpoint::sweep() {
  const auto now = std::chrono::steady_clock::now();
  // A sender waiting for a lane asked: sweep now, but at most every 10 ms.
  const bool asked = self.header->sweep_requested.exchange(0, std::memory_order_acq_rel) != 0;
  if (now < next_sweep && !(asked && now >= last_sweep + std::chrono::milliseconds{10})) return;
  last_sweep = now;
  next_sweep = now + std::chrono::seconds{1};
  refresh(true);
  for (Lane& lane : lanes) {
    if (lane.box->closed() || platform::liveness(lane.sender) == platform::Liveness::alive) continue;
    (void)recover(lane.box->mapped(), nullptr, 0);
    (void)lane.box->close();
  }
}

void JoinedEndpoint::retire_lane(std::size_t position) {
  const Lane lane = std::move(lanes[position]);
  lanes.erase(lanes.begin() + static_cast<std::ptrdiff_t>(position));
  give_back(lane.index, lane.sender);
}

void JoinedEndpoint::give_back(std::uint32_t index, std::uint64_t sender) {
  (void)MailboxFactory::remove_if_owned_by(lane_file(self, index), self.owner);
  self.table[index].ready.store(0, std::memory_order_release);
  // A CAS, not a store: a sender that found the entry's dead claimer with `ready` 0
  // may have taken it over just now, and its claim must stand.
  std::uint64_t expected = sender;
  (void)self.table[index].sender.compare_exchange_strong(expected, 0, std::memory_order_acq_rel);
  ring_doorbell(*self.header);  // for a sender waiting for a free lane
}

Result<Link*> JoinedEndpoint::make_lane(EndpointView peer, std::uint32_t index) {
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

Result<Link*> JoinedEndpoint::link_to(std::string_view to) {
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

}  // namespace shmbox::detail
