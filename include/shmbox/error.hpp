// shmbox's one error model.
//
// Every fallible call returns shmbox::Result<T> (std::expected<T, shmbox::Error>).
// Nothing in the library throws for a runtime failure; exceptions come only from
// the standard library itself (std::bad_alloc).
//
// An Error carries:
//   - code():   a std::error_code in shmbox's category (compare with shmbox::Errc),
//   - object(): the kind and name of the object it concerns, e.g. "segment 'orders'",
//   - detail(): the cause in words, with the system's errno text where there is one,
//   - system_errno(): the errno behind it, or 0.
// message() joins them into one line suitable for a log or a terminal.
#pragma once

#include <expected>
#include <string>
#include <string_view>
#include <system_error>

namespace shmbox {

enum class Errc : int {
  invalid_name = 1,   // a name breaks the naming rules
  invalid_argument,   // a size, mode or option out of range
  not_found,          // no object of that name
  already_exists,     // exclusive create of a name that is taken
  permission_denied,  // the object's mode or the access asked for forbids it
  no_space,           // /dev/shm (or the address space) cannot hold the size asked for
  too_large,          // a size beyond what the object or the system allows
  not_ready,          // the object exists but its creator has not finished it
  would_block,        // a non-blocking call could not complete at once
  timeout,            // a timed call ran out of time
  closed,             // the object was closed or removed
  corrupt,            // shared memory fails validation: never trusted, never used
  version_mismatch,   // a layout version this build does not speak
  out_of_memory,      // memory ran out while the object grew
  system,             // any other system error (see system_errno())
  unreachable,        // a remote server (nats://) could not be reached
  in_use,             // a live process holds the object, and it goes when that process does
  not_recoverable,    // a lock's holder died and the data it guarded was never repaired
  conflict,           // a conditional write found another writer had got there first
  task_failed,        // a pool's task failed on each of its attempts
};

const std::error_category& error_category() noexcept;
std::error_code make_error_code(Errc e) noexcept;

class Error {
 public:
  Error(Errc code, std::string object, std::string detail, int system_errno = 0);
  Error(const Error&) = default;
  Error(Error&&) noexcept = default;
  Error& operator=(const Error&) = default;
  // A self-move keeps the error (std::string's own self-move empties it).
  Error& operator=(Error&& other) noexcept;
  ~Error() = default;

  std::error_code code() const noexcept { return make_error_code(code_); }
  Errc errc() const noexcept { return code_; }
  const std::string& object() const noexcept { return object_; }
  const std::string& detail() const noexcept { return detail_; }
  int system_errno() const noexcept { return system_errno_; }

  // "segment 'orders': already exists (File exists)"
  std::string message() const;

  friend bool operator==(const Error& e, Errc c) noexcept { return e.code_ == c; }

 private:
  Errc code_;
  int system_errno_;
  std::string object_;
  std::string detail_;
};

// Every function returning a Result is [[nodiscard]]: an ignored error is a bug.
// Discard one on purpose with (void).
template <class T>
using Result = std::expected<T, Error>;

}  // namespace shmbox

template <>
struct std::is_error_code_enum<shmbox::Errc> : std::true_type {};
