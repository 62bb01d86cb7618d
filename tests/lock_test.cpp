// Locks across real processes: exclusion, sharing, waiting, a holder's death and what the
// next taker is told, fairness, and every error a lock call can return.
#include <gtest/gtest.h>
#include <sys/mman.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstring>
#include <optional>
#include <thread>

#include "sharing/lock_layout.hpp"
#include "shmbox/lock.hpp"
#include "shmbox/segment.hpp"
#include "support/process.hpp"

namespace shmbox {
namespace {

using namespace std::chrono_literals;
using test::ChildProcess;
using test::Pipe;

// Memory every forked child shares with the test.
template <class T>
T& shared_memory() {
  void* memory = ::mmap(nullptr, sizeof(T), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (memory == MAP_FAILED) std::abort();
  return *new (memory) T{};
}

// A child that holds the lock exclusively (its only slot) until it is killed.
ChildProcess hold_until_killed(const std::string& name) {
  Pipe holding;
  ChildProcess holder = ChildProcess::spawn([&] {
    auto mine = Lock::open(name);
    if (!mine) return 1;
    auto held = mine->lock();
    if (!held) return 2;
    holding.send("held");
    ::pause();
    return 0;
  });
  if (!holding.receive(5s)) ADD_FAILURE() << "the holder did not take the lock";
  return holder;
}

class LockTest : public ::testing::Test {
 protected:
  void TearDown() override { (void)Lock::remove(name); }
  std::string name = test::unique_name("lock");
};

TEST_F(LockTest, OnlyOneProcessHoldsItExclusively) {
  auto lock = Lock::create(name);
  ASSERT_TRUE(lock.has_value()) << lock.error().message();
  auto held = lock->lock();
  ASSERT_TRUE(held.has_value());
  EXPECT_FALSE(held->owner_died());
  ChildProcess other = ChildProcess::spawn([&] {
    auto mine = Lock::open(name);
    if (!mine) return 1;
    auto refused = mine->try_lock();
    if (refused || refused.error() != Errc::would_block) return 2;
    if (refused.error().message() != "lock '" + name + "': is held") return 3;
    auto timed = mine->lock(LockMode::shared, 50ms);
    if (timed || timed.error() != Errc::timeout) return 4;
    return 0;
  });
  EXPECT_TRUE(other.wait().exited_with(0));
}

TEST_F(LockTest, ReadersShareItAndAWriterWaitsForThemAll) {
  auto& inside = shared_memory<std::atomic<int>>();
  auto lock = Lock::create(name);
  ASSERT_TRUE(lock.has_value());
  Pipe ready;
  std::vector<ChildProcess> readers;
  for (int i = 0; i < 3; ++i) {
    readers.push_back(ChildProcess::spawn([&] {
      auto mine = Lock::open(name);
      if (!mine) return 1;
      auto held = mine->lock(LockMode::shared, 5s);
      if (!held) return 2;
      inside.fetch_add(1);
      ready.send("in");
      std::this_thread::sleep_for(200ms);
      inside.fetch_sub(1);
      return 0;
    }));
  }
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(ready.receive(5s).has_value());
  EXPECT_EQ(inside.load(), 3);  // all three at once
  auto held = lock->lock(LockMode::exclusive, 5s);
  ASSERT_TRUE(held.has_value());
  EXPECT_EQ(inside.load(), 0);  // and the writer only after the last left
  for (auto& reader : readers) EXPECT_TRUE(reader.wait().exited_with(0));
}

TEST_F(LockTest, AKilledHolderIsReleasedAndTheNextTakerIsToldOnce) {
  auto lock = Lock::create(name);
  ASSERT_TRUE(lock.has_value());
  ChildProcess holder = hold_until_killed(name);
  holder.kill();
  (void)holder.wait();
  const auto before = std::chrono::steady_clock::now();
  auto held = lock->lock(LockMode::exclusive, 5s);
  ASSERT_TRUE(held.has_value()) << held.error().message();
  EXPECT_LT(std::chrono::steady_clock::now() - before, 100ms);
  EXPECT_TRUE(held->owner_died());
  EXPECT_EQ(held->died_holding(), holder.pid());
  auto status = lock->status();
  ASSERT_TRUE(status.has_value());
  EXPECT_EQ(status->consistency, LockConsistency::repairing);
  ASSERT_TRUE(held->mark_consistent().has_value());
  held->unlock();
  auto again = lock->lock(LockMode::exclusive, 1s);
  ASSERT_TRUE(again.has_value());
  EXPECT_FALSE(again->owner_died());  // told once only
}

TEST_F(LockTest, AWaiterLearnsOfTheDeathWithin100ms) {
  auto lock = Lock::create(name);
  ASSERT_TRUE(lock.has_value());
  ChildProcess holder = hold_until_killed(name);
  Pipe got;
  ChildProcess waiter = ChildProcess::spawn([&] {
    auto mine = Lock::open(name);
    if (!mine) return 1;
    auto held = mine->lock(LockMode::exclusive, 10s);
    if (!held) return 2;
    got.send(std::to_string(std::chrono::steady_clock::now().time_since_epoch().count()));
    return held->owner_died() ? 0 : 3;
  });
  std::this_thread::sleep_for(100ms);  // the waiter is asleep by now
  const auto killed_at = std::chrono::steady_clock::now();
  holder.kill();
  const auto line = got.receive(5s);
  ASSERT_TRUE(line.has_value());
  const std::chrono::steady_clock::time_point woke{std::chrono::steady_clock::duration{std::stoll(*line)}};
  EXPECT_LT(woke - killed_at, 100ms);
  EXPECT_TRUE(waiter.wait().exited_with(0));
}

TEST_F(LockTest, ATakerThatDoesNotRepairMakesItNotRecoverable) {
  auto lock = Lock::create(name);
  ASSERT_TRUE(lock.has_value());
  ChildProcess holder = ChildProcess::spawn([&] {
    auto mine = Lock::open(name);
    if (!mine) return 1;
    auto held = mine->lock();
    if (!held) return 2;
    ::_exit(0);  // dies holding it: no destructor runs
  });
  ASSERT_TRUE(holder.wait().exited_with(0));
  {
    auto held = lock->lock(LockMode::exclusive, 1s);
    ASSERT_TRUE(held.has_value());
    EXPECT_TRUE(held->owner_died());
  }  // released without mark_consistent()
  auto refused = lock->lock(LockMode::shared, 1s);
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error(), Errc::not_recoverable);
  EXPECT_EQ(refused.error().message(),
            "lock '" + name + "': a holder died holding it and the data it guards was never "
            "marked consistent (remove the lock and create it again)");
  auto status = Lock::stat(name);
  ASSERT_TRUE(status.has_value());
  EXPECT_EQ(status->consistency, LockConsistency::not_recoverable);
  EXPECT_EQ(status->died_holding, holder.pid());
}

TEST_F(LockTest, ADeadReadersShareIsReclaimed) {
  auto lock = Lock::create(name);
  ASSERT_TRUE(lock.has_value());
  ChildProcess reader = ChildProcess::spawn([&] {
    auto mine = Lock::open(name);
    if (!mine) return 1;
    auto held = mine->lock(LockMode::shared);
    if (!held) return 2;
    ::_exit(0);
  });
  ASSERT_TRUE(reader.wait().exited_with(0));
  auto held = lock->lock(LockMode::exclusive, 1s);
  ASSERT_TRUE(held.has_value()) << held.error().message();
  EXPECT_FALSE(held->owner_died());  // a reader wrote nothing
}

TEST_F(LockTest, AWaitingWriterHoldsBackReadersThatComeAfterIt) {
  auto& order = shared_memory<std::array<std::atomic<int>, 4>>();
  auto& next = shared_memory<std::atomic<int>>();
  auto lock = Lock::create(name);
  ASSERT_TRUE(lock.has_value());
  auto first_reader = lock->lock(LockMode::shared);
  ASSERT_TRUE(first_reader.has_value());
  const auto wait_for_waiters = [&](std::size_t count) {
    for (int i = 0; i < 500; ++i) {
      auto status = lock->status();
      if (status && status->waiters.size() >= count) return;
      std::this_thread::sleep_for(2ms);
    }
  };
  ChildProcess writer = ChildProcess::spawn([&] {
    auto mine = Lock::open(name);
    if (!mine) return 1;
    auto held = mine->lock(LockMode::exclusive, 10s);
    if (!held) return 2;
    order[static_cast<std::size_t>(next.fetch_add(1))] = 1;
    return 0;
  });
  wait_for_waiters(1);
  ChildProcess late_reader = ChildProcess::spawn([&] {
    auto mine = Lock::open(name);
    if (!mine) return 1;
    auto held = mine->lock(LockMode::shared, 10s);
    if (!held) return 2;
    order[static_cast<std::size_t>(next.fetch_add(1))] = 2;
    return 0;
  });
  wait_for_waiters(2);
  auto status = lock->status();
  ASSERT_TRUE(status.has_value());
  ASSERT_EQ(status->waiters.size(), 2u);
  EXPECT_EQ(status->waiters[0].pid, writer.pid());
  EXPECT_EQ(status->waiters[0].mode, LockMode::exclusive);
  EXPECT_EQ(status->waiters[1].pid, late_reader.pid());
  ASSERT_EQ(status->holders.size(), 1u);
  EXPECT_EQ(status->holders[0].pid, ::getpid());
  first_reader->unlock();
  EXPECT_TRUE(writer.wait().exited_with(0));
  EXPECT_TRUE(late_reader.wait().exited_with(0));
  EXPECT_EQ(order[0].load(), 1);  // the writer first, though a reader could have shared
  EXPECT_EQ(order[1].load(), 2);
}

// Writers and readers take the lock over and over for a second: each gets its share of
// turns (a lock that lets newcomers barge in can keep one out for as long as the others
// run).
TEST_F(LockTest, NoWaiterStarves) {
  constexpr int workers = 4;
  auto& turns = shared_memory<std::array<std::atomic<int>, workers>>();
  auto& go = shared_memory<std::atomic<bool>>();
  ASSERT_TRUE(Lock::create(name).has_value());
  std::vector<ChildProcess> children;
  for (int w = 0; w < workers; ++w) {
    children.push_back(ChildProcess::spawn([&, w] {
      auto mine = Lock::open(name);
      if (!mine) return 1;
      const LockMode mode = w % 2 == 0 ? LockMode::exclusive : LockMode::shared;
      while (!go.load()) std::this_thread::yield();
      const auto end = std::chrono::steady_clock::now() + 1s;
      while (std::chrono::steady_clock::now() < end) {
        auto held = mine->lock(mode, 10s);
        if (!held) return 2;
        turns[static_cast<std::size_t>(w)].fetch_add(1);
      }
      return 0;
    }));
  }
  go = true;
  for (auto& child : children) EXPECT_TRUE(child.wait(60s).exited_with(0));
  int fewest = turns[0].load(), most = turns[0].load();
  for (const auto& count : turns) {
    fewest = std::min(fewest, count.load());
    most = std::max(most, count.load());
  }
  EXPECT_GT(fewest, 0);
  EXPECT_GE(fewest * 10, most) << "turns: " << turns[0] << " " << turns[1] << " " << turns[2] << " " << turns[3];
}

// Readers that overlap so that at every moment one of them holds the lock: a writer that
// asks still gets in, at once.
TEST_F(LockTest, AStreamOfReadersDoesNotStarveAWriter) {
  auto& stop = shared_memory<std::atomic<bool>>();
  auto lock = Lock::create(name);
  ASSERT_TRUE(lock.has_value());
  std::vector<ChildProcess> readers;
  for (int r = 0; r < 3; ++r) {
    readers.push_back(ChildProcess::spawn([&, r] {
      auto mine = Lock::open(name);
      if (!mine) return 1;
      std::this_thread::sleep_for(std::chrono::milliseconds{r});
      while (!stop.load()) {
        auto held = mine->lock(LockMode::shared, 10s);
        if (!held) return 2;
        std::this_thread::sleep_for(3ms);
      }
      return 0;
    }));
  }
  std::this_thread::sleep_for(100ms);
  const auto asked = std::chrono::steady_clock::now();
  auto held = lock->lock(LockMode::exclusive, 10s);
  const auto waited = std::chrono::steady_clock::now() - asked;
  stop = true;
  ASSERT_TRUE(held.has_value());
  held->unlock();
  EXPECT_LT(waited, 1s);  // the readers already in leave within 3 ms; none comes after
  for (auto& reader : readers) EXPECT_TRUE(reader.wait().exited_with(0));
}

TEST_F(LockTest, AForkedChildTakesASlotOfItsOwn) {
  auto lock = Lock::create(name);
  ASSERT_TRUE(lock.has_value());
  {
    auto held = lock->lock();
    ASSERT_TRUE(held.has_value());
  }
  ChildProcess child = ChildProcess::spawn([&] {
    // The inherited handle: the parent's slot stays the parent's.
    auto held = lock->lock(LockMode::exclusive, 1s);
    if (!held) return 1;
    return 0;
  });
  EXPECT_TRUE(child.wait().exited_with(0));
  auto held = lock->try_lock();
  ASSERT_TRUE(held.has_value()) << held.error().message();
}

TEST_F(LockTest, AForkedChildsCopyOfAHoldReleasesNothing) {
  auto lock = Lock::create(name);
  ASSERT_TRUE(lock.has_value());
  auto inherited = lock->lock(LockMode::shared);
  ASSERT_TRUE(inherited.has_value());
  ChildProcess child = ChildProcess::spawn([&] {
    auto mine = lock->lock(LockMode::shared, 1s);  // a slot and a hold of its own
    if (!mine) return 1;
    inherited->unlock();  // the parent's hold: not the child's to give up, nor its own
    auto status = lock->status();
    return status && status->holders.size() == 2 ? 0 : 2;
  });
  EXPECT_TRUE(child.wait().exited_with(0));
}

TEST_F(LockTest, AHoldOutlivesItsLockAndReleasesWhenItGoes) {
  std::optional<HeldLock> held;
  {
    auto lock = Lock::create(name);
    ASSERT_TRUE(lock.has_value());
    auto taken = lock->lock();
    ASSERT_TRUE(taken.has_value());
    held.emplace(std::move(*taken));
    auto replaced = Lock::open(name);
    ASSERT_TRUE(replaced.has_value());
    *lock = std::move(*replaced);  // the holding handle's Lock goes, by assignment
  }
  auto other = Lock::open(name);
  ASSERT_TRUE(other.has_value());
  ChildProcess blocked = ChildProcess::spawn([&] {
    auto mine = Lock::open(name);
    if (!mine) return 1;
    auto refused = mine->try_lock();
    return !refused && refused.error() == Errc::would_block ? 0 : 2;
  });
  EXPECT_TRUE(blocked.wait().exited_with(0));
  held.reset();  // the last of that handle: released and its slot freed
  ChildProcess taker = ChildProcess::spawn([&] {
    auto mine = Lock::open(name);
    return mine && mine->try_lock() ? 0 : 1;
  });
  EXPECT_TRUE(taker.wait().exited_with(0));
  auto status = other->status();
  ASSERT_TRUE(status.has_value());
  EXPECT_TRUE(status->holders.empty());
}

TEST_F(LockTest, AWriterKilledWhileReadersWereStillInLeavesNothingToRepair) {
  auto lock = Lock::create(name);
  ASSERT_TRUE(lock.has_value());
  auto reading = lock->lock(LockMode::shared);
  ASSERT_TRUE(reading.has_value());
  ChildProcess writer = ChildProcess::spawn([&] {
    auto mine = Lock::open(name);
    return mine && mine->lock(LockMode::exclusive) ? 0 : 1;
  });
  for (int i = 0; i < 500; ++i) {
    auto status = lock->status();
    if (status && !status->waiters.empty()) break;
    std::this_thread::sleep_for(2ms);
  }
  writer.kill();
  (void)writer.wait();
  reading->unlock();
  auto held = lock->lock(LockMode::exclusive, 1s);
  ASSERT_TRUE(held.has_value()) << held.error().message();
  EXPECT_FALSE(held->owner_died());  // it never got in, so it wrote nothing
}

TEST_F(LockTest, ASecondLockThroughOneHandleIsRefused) {
  auto lock = Lock::create(name);
  ASSERT_TRUE(lock.has_value());
  auto held = lock->lock();
  ASSERT_TRUE(held.has_value());
  auto again = lock->try_lock(LockMode::shared);
  ASSERT_FALSE(again.has_value());
  EXPECT_EQ(again.error().message(), "lock '" + name +
                                         "': is already held through this handle (use one handle per thread)");
}

TEST_F(LockTest, MoreHandlesThanSlotsAreRefused) {
  auto lock = Lock::create(name, {.max_handles = 1});
  ASSERT_TRUE(lock.has_value());
  auto held = lock->lock();
  ASSERT_TRUE(held.has_value());
  auto second = Lock::open(name);
  ASSERT_TRUE(second.has_value());
  auto refused = second->try_lock();
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error(), Errc::no_space);
  EXPECT_EQ(refused.error().message(),
            "lock '" + name + "': all of its slots are taken by live handles (raise max_handles)");
}

TEST_F(LockTest, ErrorsNameTheLockAndTheCause) {
  auto missing = Lock::open(name);
  ASSERT_FALSE(missing.has_value());
  EXPECT_EQ(missing.error(), Errc::not_found);
  EXPECT_EQ(missing.error().object(), "lock '" + name + "'");
  auto bad_name = Lock::create("a/b");
  ASSERT_FALSE(bad_name.has_value());
  EXPECT_EQ(bad_name.error(), Errc::invalid_name);
  auto bad_size = Lock::create(name, {.max_handles = 0});
  ASSERT_FALSE(bad_size.has_value());
  EXPECT_EQ(bad_size.error().message(), "lock '" + name + "': max_handles must be 1 to 4096, not 0");
  ASSERT_TRUE(Lock::create(name).has_value());
  auto taken = Lock::create(name);
  ASSERT_FALSE(taken.has_value());
  EXPECT_EQ(taken.error(), Errc::already_exists);
  const auto names = Lock::list();
  EXPECT_NE(std::ranges::find(names, name), names.end());
  const auto segments = Segment::list();
  EXPECT_EQ(std::ranges::find(segments, "shmbox.lk." + name), segments.end());
}

TEST_F(LockTest, CorruptMemoryIsRefusedNotTrusted) {
  auto lock = Lock::create(name);
  ASSERT_TRUE(lock.has_value());
  auto raw = Segment::open("shmbox.lk." + name);
  ASSERT_TRUE(raw.has_value());
  auto bytes = raw->writable_bytes();
  ASSERT_TRUE(bytes.has_value());
  std::uint32_t slots = 100000;
  std::memcpy(bytes->data() + offsetof(detail::LockIdentity, slot_count), &slots, sizeof slots);
  auto refused = Lock::open(name);
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error(), Errc::corrupt);
  EXPECT_EQ(refused.error().message(), "lock '" + name + "': records 100000 slots, which is out of range");
  std::memset(bytes->data(), 0, 8);
  auto no_magic = Lock::stat(name);
  ASSERT_FALSE(no_magic.has_value());
  EXPECT_EQ(no_magic.error().message(), "lock '" + name + "': holds no lock (bad magic)");
}

class LockInSegmentTest : public ::testing::Test {
 protected:
  void TearDown() override { (void)Segment::remove(name); }
  std::string name = test::unique_name("locked-segment");
};

TEST_F(LockInSegmentTest, GuardsACounterBesideIt) {
  constexpr std::size_t counter_offset = 0;
  constexpr std::size_t lock_offset = 64;
  ASSERT_TRUE(Segment::create(name, lock_offset + Lock::footprint(8)).has_value());
  auto lock = Lock::create_in(name, lock_offset, {.max_handles = 8});
  ASSERT_TRUE(lock.has_value()) << lock.error().message();
  constexpr int workers = 4;
  constexpr int increments = 2000;
  std::vector<ChildProcess> children;
  for (int w = 0; w < workers; ++w) {
    children.push_back(ChildProcess::spawn([&] {
      auto segment = Segment::open(name);
      auto mine = Lock::open_in(name, lock_offset);
      if (!segment || !mine) return 1;
      auto* counter = reinterpret_cast<volatile std::uint64_t*>(segment->writable_bytes()->data() + counter_offset);
      for (int i = 0; i < increments; ++i) {
        auto held = mine->lock();
        if (!held) return 2;
        *counter = *counter + 1;  // not atomic: the lock is what makes it right
      }
      return 0;
    }));
  }
  for (auto& child : children) EXPECT_TRUE(child.wait(60s).exited_with(0));
  auto segment = Segment::open(name, Access::read_only);
  ASSERT_TRUE(segment.has_value());
  std::uint64_t counter = 0;
  std::memcpy(&counter, segment->bytes().data() + counter_offset, sizeof counter);
  EXPECT_EQ(counter, std::uint64_t{workers} * increments);
  auto status = Lock::stat_in(name, lock_offset);
  ASSERT_TRUE(status.has_value());
  EXPECT_TRUE(status->holders.empty());
  EXPECT_EQ(status->max_handles, 8u);
}

TEST_F(LockInSegmentTest, PlacementErrorsSayWhatIsWrong) {
  ASSERT_TRUE(Segment::create(name, 4096).has_value());
  auto unaligned = Lock::create_in(name, 10);
  ASSERT_FALSE(unaligned.has_value());
  EXPECT_EQ(unaligned.error().message(),
            "lock in segment '" + name + "' at offset 10: offset must be a multiple of 64");
  auto too_far = Lock::create_in(name, 4096 - 64);
  ASSERT_FALSE(too_far.has_value());
  EXPECT_EQ(too_far.error(), Errc::too_large);
  EXPECT_EQ(too_far.error().message(), "lock in segment '" + name + "' at offset 4032: needs " +
                                           std::to_string(Lock::footprint(64)) + " bytes; the segment has 4096 in all");
  auto nothing_there = Lock::open_in(name, 0);
  ASSERT_FALSE(nothing_there.has_value());
  EXPECT_EQ(nothing_there.error(), Errc::corrupt);
  auto no_segment = Lock::open_in(name + "-missing", 0);
  ASSERT_FALSE(no_segment.has_value());
  EXPECT_EQ(no_segment.error(), Errc::not_found);
}

}  // namespace
}  // namespace shmbox
