// The contract every board transport keeps: a BoardBackend per handle and a
// BoardTransport (its operations on names). Board forwards to them with no branch on the
// kind; api/board.cpp resolves a name to its transport (docs/design.md, "Boards").
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "shmbox/board.hpp"
#include "shmbox/error.hpp"
#include "shmbox/wait.hpp"

namespace shmbox::detail {

// What keeps a view's bytes valid: a pinned buffer (local) or a copy (remote). Released
// when the view goes.
struct BoardHold {
  virtual ~BoardHold() = default;
};

class BoardBackend {
 public:
  BoardBackend(std::string name, std::string object, std::size_t max_size)
      : name_(std::move(name)), object_(std::move(object)), max_size_(max_size) {}
  virtual ~BoardBackend() = default;
  BoardBackend(const BoardBackend&) = delete;
  BoardBackend& operator=(const BoardBackend&) = delete;

  const std::string& name() const noexcept { return name_; }
  // "board 'config'", for errors.
  const std::string& object() const noexcept { return object_; }
  std::size_t max_size() const noexcept { return max_size_; }

  // Publishes `value` (already checked against max_size), if `expected_version` is
  // empty or is the latest version (else Errc::conflict naming the latest).
  virtual Result<std::uint64_t> put(std::span<const std::byte> value, std::optional<std::uint64_t> expected_version,
                                    Deadline deadline) = 0;
  // The latest value into `bytes`; its version.
  virtual Result<std::uint64_t> get(std::vector<std::byte>& bytes) = 0;
  virtual Result<std::uint64_t> version() = 0;
  virtual Result<BoardView> view() = 0;
  virtual Result<BoardValue> watch(std::uint64_t after_version, Deadline deadline) = 0;
  virtual Result<BoardStatus> status() = 0;

  // The error every transport gives for a value over max_size.
  Error too_large(std::size_t size) const {
    return Error{Errc::too_large, object_,
                 "a value of " + std::to_string(size) + " bytes is over its maximum of " + std::to_string(max_size_)};
  }
  Error conflict(std::uint64_t expected, std::uint64_t latest) const {
    return Error{Errc::conflict, object_,
                 "version " + std::to_string(expected) + " is no longer the latest: version " +
                     std::to_string(latest) + " is"};
  }

 protected:
  // Views are made by backends only.
  static BoardView make_view(std::unique_ptr<BoardHold> hold, std::span<const std::byte> bytes,
                             std::uint64_t version) noexcept {
    return BoardView{std::move(hold), bytes, version};
  }

 private:
  std::string name_;
  std::string object_;
  std::size_t max_size_;
};

// A transport's operations on names.
struct BoardTransport {
  Result<std::unique_ptr<BoardBackend>> (*create)(std::string_view name, const BoardOptions& options);
  Result<std::unique_ptr<BoardBackend>> (*open)(std::string_view name);
  Result<void> (*remove)(std::string_view name);
  Result<BoardStatus> (*stat)(std::string_view name);
};

}  // namespace shmbox::detail
