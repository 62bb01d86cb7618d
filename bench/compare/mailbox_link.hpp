// A shmbox mailbox per direction as a Link: the local mailboxes' transports and the
// remote ones' (nats://) share it, so that the two differ only in where the mailbox is.
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

}  // namespace bench
