// Endpoint files and their lanes, for the endpoint itself and for whoever inspects or
// cleans up after it (stat, gc).
#pragma once

#include <sys/types.h>

#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "endpoint/layout.hpp"
#include "segment/garbage.hpp"
#include "local/mapped_mailbox.hpp"
#include "shmbox/endpoint.hpp"

namespace shmbox::detail {

inline constexpr std::string_view endpoint_file_prefix = "shmbox.ep.";
// Lane i of endpoint P is the mailbox file "shmbox.ln.P.i".
inline constexpr std::string_view lane_file_prefix = "shmbox.ln.";

using EndpointFile = MailboxFile;  // the same three names

// A validated mapping of an endpoint file, with local copies of its immutable fields.
struct EndpointView {
  EndpointFile names;
  std::shared_ptr<const Segment> mapping;
  EndpointHeader* header;
  LaneEntry* table;  // max_peers entries
  std::uint32_t max_peers;
  MailboxOptions lane;  // buffering, capacity, max_message_size of every lane
  std::uint64_t owner;
  mode_t mode;  // the file's: lanes get the same
  uid_t file_uid;  // the file's user and group: those of the endpoint's process, whose
  gid_t file_gid;  // lanes are handed to them
};

Result<EndpointFile> endpoint_file(std::string_view name);
// Makes the endpoint file for a process joining as `names`: a name held by an endpoint
// whose process has exited is taken over; one held by a live process is AlreadyExists.
Result<EndpointView> create_endpoint(EndpointFile names, const EndpointOptions& options);
MailboxFile lane_file(const EndpointView& endpoint, std::uint32_t index);
Result<EndpointView> view_endpoint(EndpointFile names, Segment opened);
Result<EndpointView> open_endpoint(EndpointFile names, Access access, OwnerCheck check = OwnerCheck::any_owner);

// Wakes every sleeper on the endpoint's doorbell: a lane added or given back, or the
// endpoint closed. Rare, so it wakes everyone rather than counting first.
void ring_doorbell(EndpointHeader& header) noexcept;

// Who retires an endpoint: its own process as it leaves, or another that found that
// process dead.
enum class Retirer { owner, survivor };

// Removes the endpoint's name if it is still this file's, then closes the endpoint
// (senders blocked on its lanes wake with Closed) and removes its lanes. A survivor
// that may not remove the name changes nothing; the owner closes it all the same.
// Fails with why the name could not be removed (gone already is no failure).
Result<void> retire_endpoint(const EndpointView& endpoint, Retirer by);

// Removes the endpoint `name` if it is garbage: its process has exited (it is retired),
// or its file was left empty (segment_factory.hpp, Unsized); and says why.
std::optional<Garbage> remove_endpoint_if_garbage(std::string_view name);

}  // namespace shmbox::detail
