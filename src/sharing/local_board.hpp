// Local boards: a board in a file of /dev/shm (docs/design.md, "Boards").
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "segment/garbage.hpp"
#include "sharing/board_backend.hpp"

namespace shmbox::detail {

struct LocalBoards {
  static Result<std::unique_ptr<BoardBackend>> create(std::string_view name, const BoardOptions& options);
  static Result<std::unique_ptr<BoardBackend>> open(std::string_view name);
  static Result<void> remove(std::string_view name);
  static Result<BoardStatus> stat(std::string_view name);
};

// Removes the board `name` if it is garbage: its owner has exited, or it was left empty;
// and says why. nullopt if it is not, or this process cannot tell or may not remove it.
std::optional<Garbage> remove_board_if_garbage(const std::string& name);

}  // namespace shmbox::detail
