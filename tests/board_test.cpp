// Boards across real processes: versions, conditional writes, watching, zero-copy views,
// writers and viewers killed, ownership and garbage, and every error a board call returns.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <string>

#include "platform/process.hpp"
#include "sharing/board_layout.hpp"
#include "sharing/robust_lock.hpp"
#include "shmbox/board.hpp"
#include "shmbox/cleanup.hpp"
#include "shmbox/segment.hpp"
#include "support/process.hpp"

namespace shmbox {
namespace {

using namespace std::chrono_literals;
using test::ChildProcess;
using test::Pipe;

std::string text_of(std::span<const std::byte> bytes) {
  return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
}

// A child that creates the board `name` (process-owned) and waits to be killed.
ChildProcess own_until_killed(const std::string& name) {
  Pipe made;
  ChildProcess owner = ChildProcess::spawn([&] {
    auto mine = Board::create(name);
    if (!mine) return 1;
    made.send("made");
    ::pause();
    return 0;
  });
  if (!made.receive(5s)) ADD_FAILURE() << "the owner did not create the board";
  return owner;
}

class BoardTest : public ::testing::Test {
 protected:
  void TearDown() override { (void)Board::remove(name); }
  std::string name = test::unique_name("board");
  std::string object() const { return "board '" + name + "'"; }
  std::string file() const { return std::string{detail::board_file_prefix} + name; }
};

TEST_F(BoardTest, ANewBoardHoldsTheEmptyValueAtVersionZero) {
  auto board = Board::create(name);
  ASSERT_TRUE(board.has_value()) << board.error().message();
  auto value = board->get();
  ASSERT_TRUE(value.has_value());
  EXPECT_TRUE(value->bytes.empty());
  EXPECT_EQ(value->version, 0u);
  EXPECT_EQ(board->version().value(), 0u);
  EXPECT_EQ(board->name(), name);
  EXPECT_EQ(board->max_size(), 64u * 1024);
}

TEST_F(BoardTest, APutInOneProcessIsWhatAnotherGets) {
  auto board = Board::create(name, {.ownership = Ownership::system});
  ASSERT_TRUE(board.has_value());
  ChildProcess writer = ChildProcess::spawn([&] {
    auto mine = Board::open(name);
    if (!mine) return 1;
    auto first = mine->put(as_bytes("threads=4"));
    if (!first || *first != 1) return 2;
    auto second = mine->put(as_bytes("threads=8, and a longer value than before"));
    return second && *second == 2 ? 0 : 3;
  });
  ASSERT_TRUE(writer.wait().exited_with(0));
  auto value = board->get();
  ASSERT_TRUE(value.has_value());
  EXPECT_EQ(text_of(value->bytes), "threads=8, and a longer value than before");
  EXPECT_EQ(value->version, 2u);
  EXPECT_EQ(value->skipped, 0u);
  std::vector<std::byte> reused(1000);
  EXPECT_EQ(board->get(reused).value(), 2u);
  EXPECT_EQ(text_of(reused), "threads=8, and a longer value than before");
  // An empty value is a value like any other.
  EXPECT_EQ(board->put({}).value(), 3u);
  EXPECT_TRUE(board->get()->bytes.empty());
}

TEST_F(BoardTest, PutIfRefusesAStaleVersionAndNamesTheLatest) {
  auto board = Board::create(name);
  ASSERT_TRUE(board.has_value());
  EXPECT_EQ(board->put_if(0, as_bytes("first")).value(), 1u);
  auto stale = board->put_if(0, as_bytes("second"));
  ASSERT_FALSE(stale.has_value());
  EXPECT_EQ(stale.error(), Errc::conflict);
  EXPECT_EQ(stale.error().message(), object() + ": version 0 is no longer the latest: version 1 is");
  // A refused put changes nothing.
  auto value = board->get();
  EXPECT_EQ(text_of(value->bytes), "first");
  EXPECT_EQ(value->version, 1u);
}

TEST_F(BoardTest, UpdatesFromManyProcessesAreNeverLost) {
  auto board = Board::create(name);
  ASSERT_TRUE(board.has_value());
  ASSERT_TRUE(board->put_as<std::uint64_t>(0).has_value());
  constexpr int writers = 4;
  constexpr int updates = 300;
  std::vector<ChildProcess> children;
  for (int w = 0; w < writers; ++w) {
    children.push_back(ChildProcess::spawn([&] {
      auto mine = Board::open(name);
      if (!mine) return 1;
      for (int i = 0; i < updates; ++i) {
        auto updated = mine->update([](std::span<const std::byte> old) {
          std::uint64_t count = 0;
          std::memcpy(&count, old.data(), std::min(old.size(), sizeof count));
          ++count;
          std::vector<std::byte> next(sizeof count);
          std::memcpy(next.data(), &count, sizeof count);
          return next;
        });
        if (!updated) return 2;
      }
      return 0;
    }));
  }
  for (auto& child : children) EXPECT_TRUE(child.wait(60s).exited_with(0));
  auto count = board->get_as<std::uint64_t>();
  ASSERT_TRUE(count.has_value());
  EXPECT_EQ(count->value, std::uint64_t{writers} * updates);
  EXPECT_EQ(count->version, std::uint64_t{writers} * updates + 1);
}

TEST_F(BoardTest, AWatcherSleepsUntilAPutAndIsToldWhatItSkipped) {
  auto board = Board::create(name);
  ASSERT_TRUE(board.has_value());
  Pipe seen;
  ChildProcess watcher = ChildProcess::spawn([&] {
    auto mine = Board::open(name);
    if (!mine) return 1;
    auto first = mine->watch(0, 10s);
    if (!first) return 2;
    seen.send(std::to_string(first->version) + " " + std::to_string(first->skipped) + " " + text_of(first->bytes));
    auto later = mine->watch(first->version, 10s);
    if (!later) return 3;
    seen.send(std::to_string(later->version) + " " + std::to_string(later->skipped) + " " + text_of(later->bytes));
    return 0;
  });
  std::this_thread::sleep_for(100ms);
  ASSERT_TRUE(board->put(as_bytes("one")).has_value());
  EXPECT_EQ(seen.receive(10s), "1 0 one");
  // Three puts before the watcher looks again: it sees the last, and that two went by.
  ASSERT_TRUE(board->put(as_bytes("two")).has_value());
  ASSERT_TRUE(board->put(as_bytes("three")).has_value());
  ASSERT_TRUE(board->put(as_bytes("four")).has_value());
  const auto line = seen.receive(10s);
  ASSERT_TRUE(line.has_value());
  // The watcher may wake between the puts; what it reports always adds up.
  if (*line != "4 2 four") {
    EXPECT_TRUE(line == "2 0 two" || line == "3 1 three") << *line;
  }
  EXPECT_TRUE(watcher.wait().exited_with(0));
}

TEST_F(BoardTest, WatchWithoutWaitingOrPastItsDeadlineSaysSo) {
  auto board = Board::create(name);
  ASSERT_TRUE(board.has_value());
  auto now = board->watch(0, no_wait);
  ASSERT_FALSE(now.has_value());
  EXPECT_EQ(now.error(), Errc::would_block);
  EXPECT_EQ(now.error().message(), object() + ": has no version after 0");
  auto timed = board->watch(0, 50ms);
  ASSERT_FALSE(timed.has_value());
  EXPECT_EQ(timed.error(), Errc::timeout);
  EXPECT_EQ(timed.error().message(), object() + ": timed out waiting for a version after 0");
  // A version that already exists is returned at once.
  ASSERT_TRUE(board->put(as_bytes("x")).has_value());
  EXPECT_EQ(board->watch(0, no_wait)->version, 1u);
}

TEST_F(BoardTest, RemovingItWakesWatchersAndClosesEveryHandle) {
  auto board = Board::create(name, {.ownership = Ownership::system});
  ASSERT_TRUE(board.has_value());
  Pipe watching;
  ChildProcess watcher = ChildProcess::spawn([&] {
    auto mine = Board::open(name);
    if (!mine) return 1;
    watching.send("watching");
    auto woken = mine->watch(0, 30s);
    if (woken || woken.error() != Errc::closed) return 2;
    return woken.error().message() == "board '" + name + "': was removed" ? 0 : 3;
  });
  ASSERT_TRUE(watching.receive(5s));
  std::this_thread::sleep_for(50ms);
  ASSERT_TRUE(Board::remove(name).has_value());
  EXPECT_TRUE(watcher.wait(5s).exited_with(0));
  auto put = board->put(as_bytes("late"));
  ASSERT_FALSE(put.has_value());
  EXPECT_EQ(put.error(), Errc::closed);
  EXPECT_EQ(board->get().error(), Errc::closed);
  auto gone = Board::open(name);
  ASSERT_FALSE(gone.has_value());
  EXPECT_EQ(gone.error(), Errc::not_found);
  EXPECT_EQ(Board::remove(name).error(), Errc::not_found);
}

TEST_F(BoardTest, AViewStaysWholeWhileWritersWriteAndTheyNeverWaitForIt) {
  auto board = Board::create(name, {.max_views = 2});
  ASSERT_TRUE(board.has_value());
  ASSERT_TRUE(board->put(as_bytes("held still")).has_value());
  auto first = board->view();
  ASSERT_TRUE(first.has_value()) << first.error().message();
  auto second = board->view();
  ASSERT_TRUE(second.has_value());
  auto third = board->view();
  ASSERT_FALSE(third.has_value());
  EXPECT_EQ(third.error(), Errc::no_space);
  EXPECT_EQ(third.error().message(), object() + ": all 2 of its views are held by live processes");
  ChildProcess writer = ChildProcess::spawn([&] {
    auto mine = Board::open(name);
    if (!mine) return 1;
    for (int i = 0; i < 200; ++i) {
      if (!mine->put(as_bytes("overwritten " + std::to_string(i)), 1s)) return 2;
    }
    return 0;
  });
  ASSERT_TRUE(writer.wait(30s).exited_with(0));
  EXPECT_EQ(text_of(first->bytes()), "held still");
  EXPECT_EQ(first->version(), 1u);
  EXPECT_EQ(text_of(second->bytes()), "held still");
  EXPECT_EQ(board->status()->views_held, 2u);
  { auto released = std::move(first); }
  auto again = board->view();
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(text_of(again->bytes()), "overwritten 199");
  EXPECT_EQ(again->version(), 201u);
}

TEST_F(BoardTest, AViewerKilledHoldingAViewGivesItBack) {
  auto board = Board::create(name, {.max_views = 1});
  ASSERT_TRUE(board.has_value());
  Pipe holding;
  ChildProcess viewer = ChildProcess::spawn([&] {
    auto mine = Board::open(name);
    if (!mine) return 1;
    auto held = mine->view();
    if (!held) return 2;
    holding.send("holding");
    ::pause();
    return 0;
  });
  ASSERT_TRUE(holding.receive(5s));
  EXPECT_EQ(board->view().error(), Errc::no_space);
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(board->put(as_bytes("while it is held"), 1s).has_value());
  viewer.kill();
  ASSERT_TRUE(viewer.wait().killed_by(SIGKILL));
  auto view = board->view();
  ASSERT_TRUE(view.has_value()) << view.error().message();
  EXPECT_EQ(view->version(), 20u);
}

TEST_F(BoardTest, AWriterKilledHoldingTheWritersLockLeavesTheLastVersionAndTheNextGoes) {
  auto board = Board::create(name);
  ASSERT_TRUE(board.has_value());
  ASSERT_TRUE(board->put(as_bytes("last whole value")).has_value());
  // The child takes the writers' lock and starts filling a buffer as put() does, then is
  // killed there: the worst a kill can leave.
  Pipe writing;
  ChildProcess writer = ChildProcess::spawn([&] {
    auto raw = Segment::open(file());
    if (!raw) return 1;
    std::byte* base = raw->writable_bytes()->data();
    auto* header = reinterpret_cast<detail::BoardHeader*>(base);
    const detail::BoardGeometry geometry{header->identity.buffer_count, header->identity.view_slots,
                                         header->identity.writer_slots, header->identity.stride};
    detail::RobustLock lock{base + geometry.lock_offset(), geometry.writer_slots};
    auto slot = lock.claim_slot(platform::current_process().packed());
    if (!slot) return 2;
    if (lock.acquire(*slot, LockMode::exclusive, forever).outcome != detail::Granted::yes) return 3;
    auto* descriptors = reinterpret_cast<detail::BufferDescriptor*>(base + geometry.descriptors_offset());
    descriptors[2].stamp.store(detail::BufferDescriptor::being_written);
    std::memset(base + geometry.data_offset() + 2 * geometry.stride, 'X', 16);
    writing.send("writing");
    ::pause();
    return 0;
  });
  ASSERT_TRUE(writing.receive(5s));
  auto busy = board->put(as_bytes("blocked"), no_wait);
  ASSERT_FALSE(busy.has_value());
  EXPECT_EQ(busy.error(), Errc::would_block);
  EXPECT_EQ(busy.error().message(), object() + ": another writer is writing");
  EXPECT_EQ(board->status()->writer_pid, writer.pid());
  writer.kill();
  ASSERT_TRUE(writer.wait().killed_by(SIGKILL));
  auto value = board->get();
  ASSERT_TRUE(value.has_value());
  EXPECT_EQ(text_of(value->bytes), "last whole value");
  EXPECT_EQ(value->version, 1u);
  auto next = board->put(as_bytes("next writer"), 5s);
  ASSERT_TRUE(next.has_value()) << next.error().message();
  EXPECT_EQ(*next, 2u);
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(board->put(as_bytes("and on"), 1s).has_value());
  EXPECT_EQ(text_of(board->get()->bytes), "and on");
  EXPECT_EQ(board->status()->writer_pid, 0);
}

TEST_F(BoardTest, AProcessOwnedBoardGoesWithItsOwnerHoweverItGoes) {
  ChildProcess tidy = ChildProcess::spawn([&] {
    auto mine = Board::create(name);
    if (!mine || !mine->put(as_bytes("x"))) return 1;
    return 0;
  });
  ASSERT_TRUE(tidy.wait().exited_with(0));
  EXPECT_EQ(Board::open(name).error(), Errc::not_found);

  ChildProcess killed = own_until_killed(name);
  auto status = Board::stat(name);
  ASSERT_TRUE(status.has_value());
  EXPECT_EQ(status->ownership, Ownership::process);
  EXPECT_EQ(status->owner_pid, killed.pid());
  EXPECT_TRUE(status->owner_alive);
  const pid_t owner = killed.pid();
  killed.kill();
  ASSERT_TRUE(killed.wait().killed_by(SIGKILL));
  auto gone = Board::open(name);
  ASSERT_FALSE(gone.has_value());
  EXPECT_EQ(gone.error(), Errc::not_found);
  EXPECT_EQ(gone.error().message(),
            object() + ": its owner, process " + std::to_string(owner) + ", had exited: it was removed");
}

TEST_F(BoardTest, AWatcherOfAProcessOwnedBoardIsToldWhenItsOwnerDies) {
  ChildProcess owner = own_until_killed(name);
  auto board = Board::open(name);
  ASSERT_TRUE(board.has_value());
  const pid_t owner_pid = owner.pid();
  ChildProcess watcher = ChildProcess::spawn([&] {
    auto woken = board->watch(0, 30s);
    if (woken || woken.error() != Errc::closed) return 1;
    return woken.error().message() ==
                   "board '" + name + "': its owner, process " + std::to_string(owner_pid) + ", has exited: it is removed"
               ? 0
               : 2;
  });
  std::this_thread::sleep_for(100ms);
  owner.kill();
  EXPECT_TRUE(watcher.wait(5s).exited_with(0));
}

TEST_F(BoardTest, GcRemovesABoardWhoseOwnerWasKilledAndLeavesSystemBoards) {
  Pipe made;
  const std::string kept = name + "-kept";
  ChildProcess killed = ChildProcess::spawn([&] {
    auto mine = Board::create(name);
    auto system = Board::create(kept, {.ownership = Ownership::system});
    if (!mine || !system) return 1;
    made.send("made");
    ::pause();
    return 0;
  });
  ASSERT_TRUE(made.receive(5s));
  const pid_t owner = killed.pid();
  killed.kill();
  ASSERT_TRUE(killed.wait().killed_by(SIGKILL));
  const auto removed = collect_garbage();
  auto found = std::ranges::find_if(removed, [&](const RemovedObject& object) { return object.name == name; });
  ASSERT_NE(found, removed.end());
  EXPECT_EQ(found->kind, "board");
  EXPECT_EQ(found->owner_pid, owner);
  EXPECT_EQ(found->cause, "its owner, process " + std::to_string(owner) + ", had exited");
  EXPECT_FALSE(std::ranges::any_of(removed, [&](const RemovedObject& object) { return object.name == kept; }));
  EXPECT_TRUE(Board::open(kept).has_value());
  EXPECT_TRUE(Board::remove(kept).has_value());
}

TEST_F(BoardTest, ItIsListedAsABoardAndNotAsASegment) {
  auto board = Board::create(name);
  ASSERT_TRUE(board.has_value());
  const auto boards = Board::list();
  EXPECT_NE(std::ranges::find(boards, name), boards.end());
  const auto segments = Segment::list();
  EXPECT_EQ(std::ranges::find(segments, file()), segments.end());
}

TEST_F(BoardTest, ItsModeIsExactlyWhatWasAskedFor) {
  auto board = Board::create(name);
  ASSERT_TRUE(board.has_value());
  EXPECT_EQ(board->status()->mode, 0600u);
  const std::string shared = name + "-shared";
  ::umask(077);
  auto wide = Board::create(shared, {.mode = 0640});
  ::umask(022);
  ASSERT_TRUE(wide.has_value());
  EXPECT_EQ(Board::stat(shared)->mode, 0640u);
  EXPECT_EQ(Board::stat(shared)->owner_uid, ::geteuid());
}

TEST_F(BoardTest, AnotherUserCannotOpenA0600Board) {
  auto board = Board::create(name, {.ownership = Ownership::system});
  ASSERT_TRUE(board.has_value());
  ChildProcess stranger = ChildProcess::spawn([&] {
    if (!test::drop_privileges()) return 10;
    auto refused = Board::open(name);
    if (refused || refused.error() != Errc::permission_denied) return 1;
    return refused.error().message().starts_with(object() + ": ") ? 0 : 2;
  });
  const auto status = stranger.wait();
  if (status.exited_with(10)) GTEST_SKIP() << "cannot switch to uid 65534 here";
  EXPECT_TRUE(status.exited_with(0)) << status.describe();
}

TEST_F(BoardTest, TypedValuesRoundTripAndAWrongSizeIsRefused) {
  struct Settings {
    std::int32_t threads;
    double ratio;
  };
  auto board = Board::create(name);
  ASSERT_TRUE(board.has_value());
  EXPECT_EQ(board->put_as(Settings{4, 0.5}).value(), 1u);
  auto settings = board->get_as<Settings>();
  ASSERT_TRUE(settings.has_value());
  EXPECT_EQ(settings->value.threads, 4);
  EXPECT_EQ(settings->value.ratio, 0.5);
  EXPECT_EQ(settings->version, 1u);
  auto wrong = board->get_as<std::uint8_t>();
  ASSERT_FALSE(wrong.has_value());
  EXPECT_EQ(wrong.error(), Errc::invalid_argument);
  EXPECT_EQ(wrong.error().message(),
            object() + ": holds a value of " + std::to_string(sizeof(Settings)) + " bytes, not the 1 of the type asked for");
}

TEST_F(BoardTest, BadArgumentsAreRefusedAndChangeNothing) {
  EXPECT_EQ(Board::create(name, {.max_size = 0}).error().message(), object() + ": max_size must be at least 1 byte");
  auto huge = Board::create(name, {.max_size = max_board_size + 1});
  EXPECT_EQ(huge.error(), Errc::too_large);
  EXPECT_EQ(huge.error().message(), object() + ": max_size " + std::to_string(max_board_size + 1) +
                                        " is over the limit of " + std::to_string(max_board_size) + " bytes");
  EXPECT_EQ(Board::create(name, {.max_views = 65}).error().message(),
            object() + ": max_views must be 1 to 64, not 65");
  EXPECT_EQ(Board::create(name, {.replicas = 3}).error().message(), object() + ": replicas are for nats:// boards");
  EXPECT_EQ(Board::open(name).error(), Errc::not_found);
  EXPECT_EQ(Board::create("bad/name").error(), Errc::invalid_name);

  auto board = Board::create(name, {.max_size = 4});
  ASSERT_TRUE(board.has_value());
  EXPECT_EQ(Board::create(name).error(), Errc::already_exists);
  ASSERT_TRUE(board->put(as_bytes("four")).has_value());
  auto over = board->put(as_bytes("fives"));
  ASSERT_FALSE(over.has_value());
  EXPECT_EQ(over.error(), Errc::too_large);
  EXPECT_EQ(over.error().message(), object() + ": a value of 5 bytes is over its maximum of 4");
  EXPECT_EQ(text_of(board->get()->bytes), "four");
  EXPECT_EQ(board->version().value(), 1u);

  Board moved = std::move(*board);
  EXPECT_EQ(board->get().error().message(), "board: this handle was moved from");
  EXPECT_EQ(board->put(as_bytes("x")).error(), Errc::invalid_argument);
  EXPECT_TRUE(moved.get().has_value());
}

TEST_F(BoardTest, CorruptMemoryIsRefusedNotTrusted) {
  auto board = Board::create(name, {.max_size = 100, .ownership = Ownership::system});
  ASSERT_TRUE(board.has_value());
  ASSERT_TRUE(board->put(as_bytes("fine")).has_value());
  auto raw = Segment::open(file());
  ASSERT_TRUE(raw.has_value());
  std::byte* base = raw->writable_bytes()->data();
  auto* header = reinterpret_cast<detail::BoardHeader*>(base);

  // A latest word naming a buffer that does not exist.
  const std::uint64_t good_latest = header->latest.load();
  header->latest.store(detail::LatestWord::make(1, 200));
  auto get = board->get();
  ASSERT_FALSE(get.has_value());
  EXPECT_EQ(get.error(), Errc::corrupt);
  EXPECT_EQ(get.error().message(), object() + ": names buffer 200 of 10 as holding the latest value");
  EXPECT_EQ(board->put(as_bytes("x")).error().message(), get.error().message());
  EXPECT_EQ(board->view().error().message(), get.error().message());

  // A stamp that does not match the latest version, and a length over the maximum.
  header->latest.store(good_latest);
  const detail::BoardGeometry geometry{header->identity.buffer_count, header->identity.view_slots,
                                       header->identity.writer_slots, header->identity.stride};
  auto* descriptors = reinterpret_cast<detail::BufferDescriptor*>(base + geometry.descriptors_offset());
  const std::uint32_t buffer = detail::LatestWord::buffer(good_latest);
  descriptors[buffer].stamp.store(7);
  EXPECT_EQ(board->get().error().message(), object() + ": names buffer " + std::to_string(buffer) +
                                                " as holding version 1, but the buffer is stamped 7");
  descriptors[buffer].stamp.store(1);
  descriptors[buffer].length.store(1000);
  EXPECT_EQ(board->get().error().message(), object() + ": records a value of 1000 bytes in buffer " +
                                                std::to_string(buffer) + ", over its maximum of 100");
  descriptors[buffer].length.store(4);
  EXPECT_EQ(text_of(board->get()->bytes), "fine");

  // Counts in the identity that do not fit the file.
  header->identity.view_slots = 1000;
  auto opened = Board::open(name);
  ASSERT_FALSE(opened.has_value());
  EXPECT_EQ(opened.error(), Errc::corrupt);
  EXPECT_EQ(opened.error().message(),
            object() + ": records 1000 view slots and 10 buffers; it needs 1 to 64 slots and two buffers more");
  header->identity.view_slots = 8;
  header->identity.magic = 0;
  EXPECT_EQ(Board::stat(name).error().message(), object() + ": is not a board (bad magic)");
  // A board that cannot be read can still be removed.
  EXPECT_TRUE(Board::remove(name).has_value());
  EXPECT_EQ(Board::open(name).error(), Errc::not_found);
}

TEST_F(BoardTest, StatusShowsVersionSizeAndViews) {
  auto board = Board::create(name, {.max_size = 1000, .max_views = 3});
  ASSERT_TRUE(board.has_value());
  ASSERT_TRUE(board->put(as_bytes("twelve bytes")).has_value());
  auto view = board->view();
  ASSERT_TRUE(view.has_value());
  auto status = Board::stat(name);
  ASSERT_TRUE(status.has_value());
  EXPECT_EQ(status->name, name);
  EXPECT_EQ(status->version, 1u);
  EXPECT_EQ(status->size, 12u);
  EXPECT_EQ(status->max_size, 1000u);
  EXPECT_EQ(status->max_views, 3u);
  EXPECT_EQ(status->views_held, 1u);
  EXPECT_EQ(status->writer_pid, 0);
  EXPECT_EQ(status->owner_pid, ::getpid());
  EXPECT_TRUE(status->server.empty());
}

}  // namespace
}  // namespace shmbox
