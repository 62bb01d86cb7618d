// Process-owned remote mailboxes. A NATS server cannot tell that a client process died
// (a dropped connection may be a network's fault), so the owner renews a lease: every
// heartbeat_interval it publishes to its subject in the mailbox's lease stream, which
// keeps each subject's last message for lease_time. Each mailbox made carries a random
// nonce in its description, and its lease subject ends with it, so that a process still
// renewing an earlier mailbox of the same name keeps only that one alive.
//
// A lease seen empty twice, a heartbeat interval apart, means the owner has gone (once
// could be a server that has just restarted); whoever sees that (an open, a create of
// the name, a handle checking once a second, gc) removes the mailbox, after reading
// again that it is still the same one.
#pragma once

#include <chrono>
#include <string>

#include "remote/nats_mailbox.hpp"
#include "remote/nats_streams.hpp"

namespace shmbox::detail {

inline constexpr std::chrono::seconds heartbeat_interval{2};
inline constexpr std::chrono::seconds lease_time{6};  // three heartbeats: one late one is no death

OwnerMark owner_mark_in(const char* description);
// A new owner mark for this process, with a fresh nonce; and as description text.
OwnerMark new_owner_mark();
std::string describe(const OwnerMark& mark);
// "process 1234 (server@host)" from "1234 server@host".
std::string describe_owner(const OwnerMark& mark);

// Creates the lease stream (if need be) and stores the first heartbeat.
Result<void> start_lease(NatsConnection& connection, const RemoteName& name, const OwnerMark& mark,
                         std::int64_t replicas);
// This process renews the lease from now on, and removes the mailbox when it exits
// normally, until drop_lease. A forked child renews nothing (nor may it use the client).
void keep_lease(const RemoteName& name, const OwnerMark& mark, std::int64_t replicas);
void drop_lease(const RemoteName& name);
bool keeps_lease(const RemoteName& name, const OwnerMark& mark);

enum class LeaseState { live, lapsed, unknown };
// One look. Unknown when the server does not answer: no proof of death.
LeaseState lease_state(NatsConnection& connection, const RemoteName& name, const OwnerMark& mark);
// Two looks, a heartbeat interval apart when the first finds it lapsed.
bool owner_has_gone(NatsConnection& connection, const RemoteName& name, const OwnerMark& mark);

// Deletes the mailbox's stream if it is still the one `mark` describes; false otherwise.
// Its lease stream stays (others of the name share it; a dead owner's subject ages out):
// only remove() deletes that.
bool delete_mailbox_stream(NatsConnection& connection, const RemoteName& name, const OwnerMark& mark);

}  // namespace shmbox::detail
