// shmbox's Links that local and remote (nats://) transports share, so that the two differ
// only in where the objects are: a mailbox per direction, and a service's client or server.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "shmbox/wait.hpp"
#include "transport.hpp"

namespace bench {

// The mailboxes of a measurement, each `prefix` + a name from the shape's tag: one for a
// stream, one per direction ("-ab" from ping to pong, "-ba" back) for ping-pong.
std::vector<std::string> mailbox_names(const Shape& shape, const std::string& prefix = {});

// This process's end: opens the mailboxes `role` uses (they must exist). Throws
// std::runtime_error when one cannot be opened.
std::unique_ptr<Link> open_mailboxes(const Shape& shape, Role role, const std::vector<std::string>& names,
                                     const shmbox::WaitPolicy& policy = {}, bool zero_copy = false);

// A service's end: ping its client (each send a call, whose answer the next receive takes),
// pong one of its servers (each echo answers a request with its own bytes). The service
// must exist.
std::unique_ptr<Link> service_link(const std::string& name, std::size_t size, Role role);

}  // namespace bench
