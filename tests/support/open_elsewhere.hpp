// Opening a mailbox in another process, as its next user (the tool's next send, say)
// would: for tests of what a fresh open makes of a damaged mailbox.
#pragma once

#include <optional>
#include <string>

#include "shmbox/mailbox.hpp"
#include "support/process.hpp"

namespace shmbox::test {

// The error Mailbox::open(name) fails with in a child process; nullopt if it opened.
inline std::optional<Error> open_error_in_another_process(const std::string& name) {
  Pipe said;
  auto opener = ChildProcess::spawn([&]() -> int {
    auto opened = Mailbox::open(name);
    if (opened) return 1;
    said.send(std::to_string(static_cast<int>(opened.error().errc())));
    said.send(opened.error().object());
    said.send(opened.error().detail());
    return 0;
  });
  if (!opener.wait().exited_with(0)) return std::nullopt;
  const auto errc = said.receive();
  const auto object = said.receive();
  const auto detail = said.receive();
  if (!errc || !object || !detail) return std::nullopt;
  return Error{static_cast<Errc>(std::stoi(*errc)), *object, *detail};
}

}  // namespace shmbox::test
