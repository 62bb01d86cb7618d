// Boards held by a NATS server or cluster: a name "nats://host:port/NAME" selects one.
// Each is a JetStream key-value bucket of one key, whose revisions are the versions
// (remote/nats_board.cpp gives the mapping).
#pragma once

#include <memory>
#include <string_view>

#include "sharing/board_backend.hpp"

namespace shmbox::detail {

// nats:// names as a board transport (api/board.cpp, board_transport_for, lists it).
struct NatsBoards {
  static Result<std::unique_ptr<BoardBackend>> create(std::string_view name, const BoardOptions& options);
  static Result<std::unique_ptr<BoardBackend>> open(std::string_view name);
  static Result<void> remove(std::string_view name);
  static Result<BoardStatus> stat(std::string_view name);
};

}  // namespace shmbox::detail
