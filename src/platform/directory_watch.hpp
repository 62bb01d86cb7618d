#pragma once

#include <chrono>
#include <string>

#include "platform/unique_fd.hpp"
#include "shmbox/error.hpp"

namespace shmbox::platform {

// Sleeps until something in /dev/shm is created, renamed in, resized or written,
// so that a process can wait for another's object to appear without polling.
class DirectoryWatch {
 public:
  static Result<DirectoryWatch> watch_shm_directory(const std::string& object);

  // Returns after a change or after `at_most`, whichever comes first. Spurious
  // returns are allowed: callers re-check their condition.
  void wait(std::chrono::milliseconds at_most) const noexcept;

 private:
  explicit DirectoryWatch(UniqueFd fd) noexcept : fd_(std::move(fd)) {}
  UniqueFd fd_;
};

}  // namespace shmbox::platform
