// Why collect_garbage() removed an object: what each kind's sweep returns, and
// RemovedObject carries to the caller.
#pragma once

#include <sys/types.h>

#include <string>

namespace shmbox::detail {

struct Garbage {
  pid_t owner_pid = 0;  // the owner that had exited; 0 when it was garbage for another cause
  std::string cause;    // in words, for RemovedObject::cause

  static Garbage owner_exited(pid_t pid);
  // Empty for longer than a creator can need (segment_factory.hpp, Unsized).
  static Garbage left_unsized();
};

}  // namespace shmbox::detail
