// Board handles: each call forwarded to the board's transport, resolved from its name.
#include "shmbox/board.hpp"

#include "base/name.hpp"
#include "platform/shm.hpp"
#include "remote/nats_board.hpp"
#include "remote/remote_name.hpp"
#include "sharing/board_layout.hpp"
#include "sharing/board_backend.hpp"
#include "sharing/local_board.hpp"

namespace shmbox {
namespace detail {
namespace {

template <class Names>
constexpr BoardTransport board_transport_of() noexcept {
  return BoardTransport{Names::create, Names::open, Names::remove, Names::stat};
}

constexpr BoardTransport local_boards = board_transport_of<LocalBoards>();
constexpr BoardTransport nats_boards = board_transport_of<NatsBoards>();

const BoardTransport& board_transport_for(std::string_view name) noexcept {
  return is_remote_name(name) ? nats_boards : local_boards;
}

Error moved_from() { return Error{Errc::invalid_argument, "board", "this handle was moved from"}; }

}  // namespace
}  // namespace detail

BoardView::BoardView(std::unique_ptr<detail::BoardHold> hold, std::span<const std::byte> bytes,
                     std::uint64_t version) noexcept
    : hold_(std::move(hold)), bytes_(bytes), version_(version) {}
BoardView::BoardView(BoardView&&) noexcept = default;
BoardView& BoardView::operator=(BoardView&&) noexcept = default;
BoardView::~BoardView() = default;

Board::Board(std::unique_ptr<detail::BoardBackend> backend) noexcept : backend_(std::move(backend)) {}
Board::Board(Board&&) noexcept = default;
Board& Board::operator=(Board&&) noexcept = default;
Board::~Board() = default;

Result<Board> Board::create(std::string_view name, const BoardOptions& options) {
  auto backend = detail::board_transport_for(name).create(name, options);
  if (!backend) return std::unexpected(backend.error());
  return Board{std::move(*backend)};
}

Result<Board> Board::open(std::string_view name) {
  auto backend = detail::board_transport_for(name).open(name);
  if (!backend) return std::unexpected(backend.error());
  return Board{std::move(*backend)};
}

Result<Board> Board::open_or_create(std::string_view name, const BoardOptions& options) {
  return detail::open_or_create([&] { return open(name); }, [&] { return create(name, options); });
}

Result<void> Board::remove(std::string_view name) { return detail::board_transport_for(name).remove(name); }

Result<BoardStatus> Board::stat(std::string_view name) { return detail::board_transport_for(name).stat(name); }

std::vector<std::string> Board::list() { return platform::list_shm_names(detail::board_file_prefix); }

Result<std::uint64_t> Board::put(std::span<const std::byte> value, Deadline deadline) {
  if (!backend_) return std::unexpected(detail::moved_from());
  if (value.size() > backend_->max_size()) return std::unexpected(backend_->too_large(value.size()));
  return backend_->put(value, std::nullopt, deadline);
}

Result<std::uint64_t> Board::put_if(std::uint64_t expected_version, std::span<const std::byte> value,
                                    Deadline deadline) {
  if (!backend_) return std::unexpected(detail::moved_from());
  if (value.size() > backend_->max_size()) return std::unexpected(backend_->too_large(value.size()));
  return backend_->put(value, expected_version, deadline);
}

Result<std::uint64_t> Board::update(const std::function<std::vector<std::byte>(std::span<const std::byte>)>& change,
                                    Deadline deadline) {
  if (!backend_) return std::unexpected(detail::moved_from());
  BoardValue latest;
  for (;;) {
    auto version = backend_->get(latest.bytes);
    if (!version) return std::unexpected(version.error());
    const std::vector<std::byte> changed = change(latest.bytes);
    auto published = put_if(*version, changed, deadline);
    if (published || published.error() != Errc::conflict) return published;
  }
}

Result<BoardValue> Board::get() {
  BoardValue value;
  auto version = get(value.bytes);
  if (!version) return std::unexpected(version.error());
  value.version = *version;
  return value;
}

Result<std::uint64_t> Board::get(std::vector<std::byte>& bytes) {
  if (!backend_) return std::unexpected(detail::moved_from());
  return backend_->get(bytes);
}

Result<std::uint64_t> Board::version() {
  if (!backend_) return std::unexpected(detail::moved_from());
  return backend_->version();
}

Result<BoardView> Board::view() {
  if (!backend_) return std::unexpected(detail::moved_from());
  return backend_->view();
}

Result<BoardValue> Board::watch(std::uint64_t after_version, Deadline deadline) {
  if (!backend_) return std::unexpected(detail::moved_from());
  return backend_->watch(after_version, deadline);
}

Result<BoardStatus> Board::status() {
  if (!backend_) return std::unexpected(detail::moved_from());
  return backend_->status();
}

const std::string& Board::name() const noexcept {
  static const std::string none;
  return backend_ ? backend_->name() : none;
}

std::size_t Board::max_size() const noexcept { return backend_ ? backend_->max_size() : 0; }

Error Board::wrong_size(std::size_t size, std::size_t expected) const {
  return Error{Errc::invalid_argument, backend_ ? backend_->object() : "board",
               "holds a value of " + std::to_string(size) + " bytes, not the " + std::to_string(expected) +
                   " of the type asked for"};
}

}  // namespace shmbox
