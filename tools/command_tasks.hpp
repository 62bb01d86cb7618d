// Tasks run by a command, for `shmbox parallel` and `shmbox worker`: the task on the
// command's standard input, its standard output the result.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "shmbox/pool.hpp"

namespace shmbox::cli {

// Largest task or output a task may have.
inline constexpr std::uint64_t max_record_size = std::uint64_t{64} << 20;

// A task function that runs `command` once per task, the task and `delimiter` (none:
// the task exactly) on its standard input (or, `persistent`, one command per worker
// process, started on its first task, answering each record, ended by `delimiter` or a
// newline, with one record). More than `max_size` bytes of output, or a command that
// exits non-zero or is killed, fails the attempt (it throws). Ignores SIGPIPE for the
// process from here on: writing to a command that stopped reading is an error to handle.
TaskFunction command_task(const std::vector<std::string>& command, bool persistent, std::optional<char> delimiter,
                          std::size_t max_size);

}  // namespace shmbox::cli
