// Standard output as the tool's contract needs it: a record counts as written only once
// it has left the process (write(2) succeeded) and, when stdout is a pipe, once the
// reader has taken it out of the pipe, so that `shmbox recv --count 50 | head -1` takes
// one message and leaves the rest queued. Failures are values, never SIGPIPE.
#pragma once

#include <cstddef>
#include <span>
#include <string>
#include <string_view>

#include "shmbox/error.hpp"

namespace shmbox::cli {

class Output {
 public:
  // Ignores SIGPIPE for the process: a closed pipe is an EPIPE error to report.
  static Output standard_output();

  // Writes all of `bytes`; for a pipe, waits until the reader has read them (or has gone).
  Result<void> write(std::span<const std::byte> bytes);
  Result<void> write(std::string_view text);

 private:
  Output(int fd, bool pipe) noexcept : fd_(fd), pipe_(pipe) {}
  Result<void> wait_until_read();

  int fd_;
  bool pipe_;
};

// `bytes` in base64, for the --json records.
std::string base64(std::span<const std::byte> bytes);

}  // namespace shmbox::cli
