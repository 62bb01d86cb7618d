// Messages read from standard input or a file in bounded memory: records end at a
// delimiter (newline or NUL), and one longer than the destination's maximum message
// size is refused as soon as it passes that size, before the rest of it is read.
#pragma once

#include <cstddef>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "shmbox/error.hpp"

namespace shmbox::cli {

class RecordReader {
 public:
  // Reads `fd` (not owned), described as `object` in errors ("standard input").
  RecordReader(int fd, std::string object, char delimiter, std::size_t max_size);

  // The next record without its delimiter (valid until the next call); nullopt at the
  // end. Errc::too_large once a record passes max_size; Errc::system if reading fails.
  Result<std::optional<std::span<const std::byte>>> next();

 private:
  Result<bool> fill();  // false at end of input

  int fd_;
  std::string object_;
  char delimiter_;
  std::size_t max_size_;
  std::vector<std::byte> buffer_;
  std::size_t begin_ = 0;
  std::size_t end_ = 0;
  bool at_end_ = false;
};

// Everything `fd` holds until its end, if that is at most max_size bytes (Errc::too_large
// once it passes them, without reading on).
Result<std::vector<std::byte>> read_at_most(int fd, const std::string& object, std::size_t max_size);

// The whole of the file at `path` as one message of at most max_size bytes, read
// without ever holding more than max_size + 1 bytes.
Result<std::vector<std::byte>> read_whole_file(const std::string& path, std::size_t max_size);

// The report of a whole input (read_at_most, read_whole_file) that failed: reading it
// (74), or over `max_size` for `object` (65: "the value from standard input is over its
// maximum of N bytes; nothing was put", with `what` and `nothing_done`); its exit code.
int fail_input(const Error& error, const std::string& object, const char* what, std::size_t max_size,
               const char* nothing_done);

}  // namespace shmbox::cli
