// Remote mailbox names: "nats://host:port/NAME" selects a mailbox held by a NATS server
// or cluster (docs/design.md, "Remote mailboxes").
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "shmbox/error.hpp"

namespace shmbox::detail {

inline constexpr std::string_view remote_scheme = "nats://";

inline bool is_remote_name(std::string_view name) noexcept { return name.starts_with(remote_scheme); }

struct RemoteName {
  std::string server;  // "nats://host:port", or several joined by ',' (a cluster)
  std::vector<std::string> servers;  // each "nats://host:port"
  std::string name;    // the mailbox's name on that server
  std::string object;  // "mailbox 'nats://host:port/name'" (or board, topic) for errors
};

// Parses "nats://host[:port][,host[:port]...]/NAME" (several servers: members of one
// cluster, any of which will do); NAME is 1 to 200 of [A-Za-z0-9_-] (what a stream name
// and a subject token can both hold). Errors name it as a `kind` ("mailbox 'nats://...'").
Result<RemoteName> parse_remote_name(std::string_view text, std::string_view kind = "mailbox");
// Parses "nats://host[:port][,host[:port]...]", a server without a mailbox (name empty).
Result<RemoteName> parse_remote_server(std::string_view text);

}  // namespace shmbox::detail
