#include "segment/garbage.hpp"

#include "segment/segment_factory.hpp"

namespace shmbox::detail {

Garbage Garbage::owner_exited(pid_t pid) {
  return Garbage{pid, "its owner, process " + std::to_string(pid) + ", had exited"};
}

Garbage Garbage::left_unsized() {
  return Garbage{0, "it had been empty (0 bytes) for over " + std::to_string(unsized_grace.count()) + " s"};
}

}  // namespace shmbox::detail
