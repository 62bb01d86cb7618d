// Process-owned remote mailboxes. A NATS server cannot tell that a client process died
// (a dropped connection may be a network's fault), so the owner renews a lease: every
// heartbeat_interval it publishes to the mailbox's lease stream, which keeps its last
// message for lease_time. A mailbox whose lease stream is empty has lost its owner;
// whoever finds it so (an open, a create of the name, a handle checking once a second)
// removes it. So a killed owner's mailbox closes within lease_time plus a second of
// being used; an owner that exits normally or removes it removes it at once.
#pragma once

#include <chrono>
#include <string>

#include "remote/nats_streams.hpp"

namespace shmbox::detail {

inline constexpr std::chrono::seconds heartbeat_interval{2};
inline constexpr std::chrono::seconds lease_time{6};  // three heartbeats: one late one is no death

// "PID COMMAND@HOST" for this process: what the mailbox's description records of its owner.
std::string this_owner();

// Creates the lease stream with its first heartbeat.
Result<void> start_lease(NatsConnection& connection, const RemoteName& name, std::int64_t replicas);
// This process renews the lease from now on, and removes the mailbox when it exits
// normally, until drop_lease.
void keep_lease(const RemoteName& name);
void drop_lease(const RemoteName& name);
bool keeps_lease(const RemoteName& name);

enum class LeaseState { live, lapsed, unknown };
// Unknown when the server does not answer: no proof of death.
LeaseState lease_state(NatsConnection& connection, const RemoteName& name);

// Deletes the mailbox's stream and its lease's; false if the mailbox's was not there.
bool delete_mailbox_streams(NatsConnection& connection, const RemoteName& name);

}  // namespace shmbox::detail
