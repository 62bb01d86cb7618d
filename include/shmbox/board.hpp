// Boards: one shared value that many processes read and some write, with a version number.
//
//   auto board = shmbox::Board::open_or_create("config", {.max_size = 4096}).value();
//   std::uint64_t v = board.put(shmbox::as_bytes("threads=4")).value();   // publishes version v
//   shmbox::BoardValue latest = board.get().value();                     // bytes and version
//   auto next = board.watch(latest.version, 5s);      // sleeps until a newer version exists
//   board.put_if(latest.version, ...);                // Errc::conflict if someone got there first
//   board.update([](std::span<const std::byte> old) { return changed(old); });   // retries it
//
// A name "nats://host:port/NAME" puts the board in NATS JetStream's key-value store
// (revisions are the versions, watch is a KV watch); the API is the same.
//
// Guarantees (docs/design.md, "Boards"):
//   - A reader sees a whole value or none: never one torn by a writer. Readers never take a
//     lock and never hold writers back; a writer never waits for a reader (readers are
//     lock-free; design.md says why not wait-free).
//   - Versions start at 0 (the empty value of a new board) and rise by one per put.
//   - A writer killed at any instruction leaves the last complete version readable and the
//     next writer free to go (within lock_liveness_interval of it waiting).
//   - A watcher slower than the writers sees the latest value, not a queue of old ones, and
//     is told how many versions it skipped.
//   - A view (zero-copy) stays valid and unchanged while held; a reader killed holding one
//     does not stop writers (a local board keeps max_views + 2 buffers so that a writer
//     always finds a free one).
//
// Thread contract: a Board handle may be used by several threads at once for get, view and
// watch; writers (put, put_if, update) on one handle are serialised by it.
#pragma once

#include <sys/types.h>

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "shmbox/error.hpp"
#include "shmbox/mailbox_types.hpp"
#include "shmbox/wait.hpp"

namespace shmbox {

namespace detail {
class BoardBackend;
struct BoardHold;
}

// The largest value a local board may be made for.
inline constexpr std::size_t max_board_size = std::size_t{64} << 20;
// The most zero-copy views of one local board held at once.
inline constexpr std::uint32_t max_board_views = 64;

struct BoardOptions {
  // The largest value it will hold, 1 byte to max_board_size (NATS: to the server's
  // max_payload).
  std::size_t max_size = 64 * 1024;
  // Local boards: zero-copy views held at once across every process (1 to max_board_views).
  std::uint32_t max_views = 8;
  // Process-owned boards go when their creator goes (however it goes); system-owned ones
  // stay until removed. Remote boards are system-owned.
  Ownership ownership = Ownership::process;
  // Permission bits of a local board, applied exactly (umask does not narrow them).
  mode_t mode = 0600;
  // nats:// boards only: copies a NATS cluster keeps (1, 3 or 5).
  std::uint32_t replicas = 1;
};

// A value and its version. `skipped` is for watch(): versions that came and went between
// the one asked after and this one (0 from get()).
struct BoardValue {
  std::vector<std::byte> bytes;
  std::uint64_t version = 0;
  std::uint64_t skipped = 0;
};

template <class T>
struct Versioned {
  T value;
  std::uint64_t version = 0;
};

struct BoardStatus {
  std::string name;
  std::uint64_t version = 0;
  std::size_t size = 0;       // bytes of the latest value
  std::size_t max_size = 0;
  Ownership ownership = Ownership::system;
  pid_t owner_pid = 0;        // process-owned only
  bool owner_alive = false;   // process-owned only
  pid_t writer_pid = 0;       // local: the process writing now (0: none)
  std::uint32_t max_views = 0;    // local only
  std::uint32_t views_held = 0;   // local: views held by live processes
  mode_t mode = 0;            // local: the file's permission bits
  uid_t owner_uid = 0;        // local: the file's owner
  std::string server;         // remote: the server; empty for a local board
};

// A value read in place: its bytes stay valid and unchanged until the view is destroyed.
class [[nodiscard]] BoardView {
 public:
  BoardView(BoardView&&) noexcept;
  BoardView& operator=(BoardView&&) noexcept;
  BoardView(const BoardView&) = delete;
  BoardView& operator=(const BoardView&) = delete;
  ~BoardView();

  std::span<const std::byte> bytes() const noexcept { return bytes_; }
  std::uint64_t version() const noexcept { return version_; }

 private:
  friend class detail::BoardBackend;
  BoardView(std::unique_ptr<detail::BoardHold> hold, std::span<const std::byte> bytes, std::uint64_t version) noexcept;
  std::unique_ptr<detail::BoardHold> hold_;
  std::span<const std::byte> bytes_;
  std::uint64_t version_ = 0;
};

class Board {
 public:
  // create: Errc::already_exists if the name is taken. open_or_create: the board if it
  // exists (options then ignored), else a new one.
  [[nodiscard]] static Result<Board> create(std::string_view name, const BoardOptions& options = {});
  [[nodiscard]] static Result<Board> open(std::string_view name);
  [[nodiscard]] static Result<Board> open_or_create(std::string_view name, const BoardOptions& options = {});
  // Removes the board: handles on it then fail with Errc::closed, watchers wake.
  [[nodiscard]] static Result<void> remove(std::string_view name);
  [[nodiscard]] static Result<BoardStatus> stat(std::string_view name);
  // Names of the local boards.
  [[nodiscard]] static std::vector<std::string> list();

  // Publishes `value` as the next version and returns it. Waits for another writer (not
  // for readers) until `deadline`. Errc::too_large over max_size.
  [[nodiscard]] Result<std::uint64_t> put(std::span<const std::byte> value, Deadline deadline = forever);
  // As put, only if the latest version is `expected_version`; else Errc::conflict, whose
  // detail names the latest version.
  [[nodiscard]] Result<std::uint64_t> put_if(std::uint64_t expected_version, std::span<const std::byte> value,
                                             Deadline deadline = forever);
  // Read-modify-write: calls `change` on the latest value and put_if's the result, again
  // on the new latest value after each conflict. The version it published.
  [[nodiscard]] Result<std::uint64_t> update(
      const std::function<std::vector<std::byte>(std::span<const std::byte>)>& change, Deadline deadline = forever);

  // The latest complete value.
  [[nodiscard]] Result<BoardValue> get();
  // The same into `bytes` (reusing its memory); returns the version.
  [[nodiscard]] Result<std::uint64_t> get(std::vector<std::byte>& bytes);
  // The latest version alone.
  [[nodiscard]] Result<std::uint64_t> version();
  // The latest value in place (remote boards: a copy with the same interface).
  // Errc::no_space while max_views views are held by live processes.
  [[nodiscard]] Result<BoardView> view();
  // Sleeps until a version after `after_version` exists, then returns the latest one
  // (skipped: how many came between). Errc::timeout at the deadline, Errc::closed when
  // the board is removed.
  [[nodiscard]] Result<BoardValue> watch(std::uint64_t after_version, Deadline deadline = forever);

  // The typed form, for trivially copyable T: the value is T's bytes.
  template <class T>
    requires std::is_trivially_copyable_v<T>
  [[nodiscard]] Result<std::uint64_t> put_as(const T& value, Deadline deadline = forever) {
    return put(std::as_bytes(std::span{&value, 1}), deadline);
  }
  // Errc::invalid_argument unless the value is sizeof(T) bytes.
  template <class T>
    requires std::is_trivially_copyable_v<T>
  [[nodiscard]] Result<Versioned<T>> get_as() {
    std::vector<std::byte> bytes;
    auto version = get(bytes);
    if (!version) return std::unexpected(version.error());
    if (bytes.size() != sizeof(T)) return std::unexpected(wrong_size(bytes.size(), sizeof(T)));
    Versioned<T> typed{};
    std::memcpy(&typed.value, bytes.data(), sizeof(T));
    typed.version = *version;
    return typed;
  }

  [[nodiscard]] Result<BoardStatus> status();
  const std::string& name() const noexcept;
  std::size_t max_size() const noexcept;

  // A moved-from Board holds nothing: its calls fail with Errc::invalid_argument.
  Board(Board&&) noexcept;
  Board& operator=(Board&&) noexcept;
  Board(const Board&) = delete;
  Board& operator=(const Board&) = delete;
  ~Board();

 private:
  explicit Board(std::unique_ptr<detail::BoardBackend> backend) noexcept;
  Error wrong_size(std::size_t size, std::size_t expected) const;
  std::unique_ptr<detail::BoardBackend> backend_;
};

}  // namespace shmbox
