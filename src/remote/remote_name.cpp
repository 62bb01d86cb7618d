#include "remote/remote_name.hpp"

#include <algorithm>
#include <string>

#include "base/name.hpp"

namespace shmbox::detail {

constexpr std::size_t max_remote_name = 200;

Result<RemoteName> parse_remote_name(std::string_view text, std::string_view kind) {
  const std::string object = describe(kind, text);
  auto invalid = [&](const std::string& detail) {
    return std::unexpected(Error{Errc::invalid_name, object, detail});
  };
  if (!text.starts_with(remote_scheme)) return invalid("a remote name starts with nats://");
  const std::string_view rest = text.substr(remote_scheme.size());
  const auto slash = rest.find('/');
  if (slash == std::string_view::npos || slash == 0) return invalid("a remote name is nats://host[:port]/NAME");
  const std::string_view host = rest.substr(0, slash), name = rest.substr(slash + 1);
  if (name.empty() || name.size() > max_remote_name) {
    return invalid("the " + std::string{kind} + " name after the server must be 1 to " + std::to_string(max_remote_name) +
                   " characters");
  }
  for (const char c : name) {
    // Stream names and subject tokens both hold these; '.', '*', '>' and spaces they do not.
    const bool allowed = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
    if (!allowed) return invalid("a remote " + std::string{kind} + " name may contain only letters, digits, '_' and '-'");
  }
  RemoteName parsed{std::string{remote_scheme} + std::string{host}, {}, std::string{name}, object};
  for (std::size_t start = 0; start <= host.size();) {
    const std::size_t comma = std::min(host.find(',', start), host.size());
    const std::string_view server = host.substr(start, comma - start);
    if (server.empty()) return invalid("the server part must be host[:port][,host[:port]...]");
    for (const char c : server) {
      if (c == '@' || c == '/' || c == ' ') return invalid("the server part must be host[:port][,host[:port]...]");
    }
    parsed.servers.push_back(std::string{remote_scheme} + std::string{server});
    start = comma + 1;
  }
  return parsed;
}

Result<RemoteName> parse_remote_server(std::string_view text) {
  while (text.ends_with('/')) text.remove_suffix(1);
  // A server is a remote name without the mailbox: checked by the same rules.
  auto parsed = parse_remote_name(std::string{text} + "/-");
  if (!parsed) {
    return std::unexpected(Error{Errc::invalid_name, describe("server", text), "a server is nats://host[:port][,host[:port]...]"});
  }
  parsed->name.clear();
  parsed->object = describe("server", text);
  return parsed;
}

}  // namespace shmbox::detail
