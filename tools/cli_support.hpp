// What every verb of the tool shares: reporting an error in one line with one exit
// code per cause, and parsing option values strictly (CLI11 is given strings only, so
// that every malformed value gets the same one-line usage error).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "shmbox/error.hpp"
#include "shmbox/wait.hpp"

namespace shmbox::cli {

// Prints "shmbox: <object>: <cause>" on stderr and returns the cause's exit code.
int fail(const Error& error);
// As fail(), for a failure to write the output or read the input: EX_IOERR (74).
int fail_io(const Error& error);

// A usage error (64) about `option`'s `value`: "<option> '<value>': must be <form>".
Error bad_value(const std::string& option, const std::string& value, const std::string& form);

// An octal permission string ("600", "0640").
Result<mode_t> parse_mode(const std::string& option, const std::string& text);

// A number and a unit: "250ms", "2s", "1.5s", "1m", "100us", "1h"; at most 1000000h.
Result<Deadline> parse_duration(const std::string& option, const std::string& text);

// Bytes: "4096", "4096B", "64KiB", "1MiB", "1GiB"; at most `limit`.
Result<std::uint64_t> parse_size(const std::string& option, const std::string& text, std::uint64_t limit);

// A whole number in [minimum, maximum], decimal digits only.
Result<std::uint64_t> parse_count(const std::string& option, const std::string& text, std::uint64_t minimum,
                                  std::uint64_t maximum);

// A command's words as the argv that exec and posix_spawn take (valid while `command` is).
inline std::vector<char*> argv_of(const std::vector<std::string>& command) {
  std::vector<char*> argv;
  for (const auto& word : command) argv.push_back(const_cast<char*>(word.c_str()));
  argv.push_back(nullptr);
  return argv;
}

// Whether NAME is a remote one ("nats://host:port/NAME").
inline bool is_remote(const std::string& name) { return name.starts_with("nats://"); }

// "mailbox 'NAME'" as the library names it in errors (quoting what must be quoted).
std::string mailbox_object(const std::string& name);
std::string endpoint_object(const std::string& name);

// The exit codes, one line each ("  64  usage: ..."), for --help and the docs.
std::string exit_code_table();

}  // namespace shmbox::cli
