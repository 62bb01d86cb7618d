// Ownership: a process-owned mailbox goes when its owner goes (removal, exit, SIGKILL),
// waking whoever is blocked on it; a system-owned one stays until it is removed.
// Leftovers of killed processes are found on reuse of the name, on open, and by gc.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <thread>

#include "local/layout.hpp"
#include "platform/process.hpp"
#include "shmbox/cleanup.hpp"
#include "shmbox/mailbox.hpp"
#include "shmbox/segment.hpp"
#include "support/open_elsewhere.hpp"
#include "support/process.hpp"
#include "support/text.hpp"

namespace shmbox {
namespace {

using namespace std::chrono_literals;
using test::ChildProcess;

bool file_exists(const std::string& name) { return std::filesystem::exists("/dev/shm/shmbox.mb." + name); }

class Ownership : public ::testing::Test {
 protected:
  void TearDown() override { (void)Mailbox::remove(name); }
  std::string name = test::unique_name("owned");

  // A child that creates the mailbox with `ownership`, says so, and waits to be killed.
  ChildProcess spawn_owner(test::Pipe& progress, shmbox::Ownership ownership = shmbox::Ownership::process) {
    auto owner = ChildProcess::spawn([&, ownership]() -> int {
      auto box = Mailbox::create(name, {.capacity = 1, .max_message_size = 16, .ownership = ownership});
      progress.send(box ? "created" : box.error().message());
      for (;;) ::pause();
    });
    EXPECT_EQ(progress.receive(), "created");
    return owner;
  }
  // An owner that creates the mailbox and is killed; its pid.
  pid_t kill_an_owner(shmbox::Ownership ownership = shmbox::Ownership::process) {
    test::Pipe progress;
    auto owner = spawn_owner(progress, ownership);
    owner.kill();
    EXPECT_TRUE(owner.wait().killed_by(SIGKILL));
    return owner.pid();
  }
};

// How long a call blocked in `side` takes to fail once the owner is killed; the call
// must fail with Errc::closed.
void expect_blocked_call_wakes_closed(const std::string& name, ChildProcess& owner, bool sender) {
  test::Pipe progress;
  auto waiter = ChildProcess::spawn([&]() -> int {
    auto box = Mailbox::open(name);
    if (!box) return 10;
    if (sender && !box->send(as_bytes("fills it"))) return 11;
    progress.send("waiting");
    std::vector<std::byte> message;
    const auto result = sender ? box->send(as_bytes("blocks"), 10s) : box->receive(message, 10s);
    if (result || result.error().errc() != Errc::closed) return 12;
    if (result.error().message() != "mailbox '" + name + "': is closed") return 13;
    progress.send("closed");
    return 0;
  });
  ASSERT_EQ(progress.receive(), "waiting");
  std::this_thread::sleep_for(50ms);  // into its sleep
  const auto killed_at = std::chrono::steady_clock::now();
  owner.kill();
  ASSERT_EQ(progress.receive(5s), "closed");
  const auto woke_after = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - killed_at);
  EXPECT_TRUE(waiter.wait().exited_with(0));
  // A bound against hanging, not a speed test (mailbox_bench measures the latency).
  EXPECT_LT(woke_after, 2s);
  std::printf("[ owner killed ] blocked %s woke with Closed after %lld ms\n", sender ? "sender" : "receiver",
              static_cast<long long>(woke_after.count()));
}

TEST_F(Ownership, OwnerKilledWakesABlockedReceiverWithClosedAndRemovesTheMailbox) {
  test::Pipe progress;
  auto owner = spawn_owner(progress);
  expect_blocked_call_wakes_closed(name, owner, false);
  EXPECT_FALSE(file_exists(name)) << "the survivor removes it";
  auto opened = Mailbox::open(name);
  ASSERT_FALSE(opened);
  EXPECT_EQ(opened.error().errc(), Errc::not_found);
  EXPECT_EQ(opened.error().message(), "mailbox '" + name + "': cannot open: does not exist (No such file or directory)");
}

TEST_F(Ownership, OwnerKilledWakesABlockedSenderWithClosed) {
  test::Pipe progress;
  auto owner = spawn_owner(progress);
  expect_blocked_call_wakes_closed(name, owner, true);
  EXPECT_FALSE(file_exists(name));
}

TEST_F(Ownership, OwnerKilledWithNobodyAttachedIsRemovedByTheNextOpen) {
  const pid_t owner_pid = kill_an_owner();
  ASSERT_TRUE(file_exists(name)) << "nobody was there to notice";
  auto opened = Mailbox::open(name);
  ASSERT_FALSE(opened);
  EXPECT_EQ(opened.error().errc(), Errc::not_found);
  EXPECT_EQ(opened.error().message(),
            "mailbox '" + name + "': does not exist: its owner, process " + std::to_string(owner_pid) + ", exited");
  EXPECT_FALSE(file_exists(name));
}

TEST_F(Ownership, ANameWhoseOwnerWasKilledCanBeCreatedAgain) {
  (void)kill_an_owner();
  auto again = Mailbox::create(name);
  ASSERT_TRUE(again) << again.error().message();
  ASSERT_TRUE(again->send(as_bytes("fresh")));
  EXPECT_EQ(again->queued(), 1u);
}

TEST_F(Ownership, ANameWhoseOwnerLivesCannotBeTaken) {
  test::Pipe progress;
  auto owner = spawn_owner(progress);
  auto taken = Mailbox::create(name);
  ASSERT_FALSE(taken);
  EXPECT_EQ(taken.error().errc(), Errc::already_exists);
  owner.kill();
}

TEST_F(Ownership, OwnerExitingNormallyRemovesItsMailboxes) {
  test::Pipe progress;
  test::Pipe go;  // a pipe carries one direction
  auto owner = ChildProcess::spawn([&]() -> int {
    auto box = Mailbox::create(name);
    progress.send(box ? "created" : box.error().message());
    (void)go.receive();
    std::exit(0);  // runs exit handlers, as returning from main does
  });
  ASSERT_EQ(progress.receive(), "created");
  auto user = Mailbox::open(name);
  ASSERT_TRUE(user);
  go.send("exit");
  ASSERT_TRUE(owner.wait().exited_with(0));
  EXPECT_FALSE(file_exists(name)) << "removed at exit";
  EXPECT_TRUE(user->closed());
}

TEST_F(Ownership, OwnerRemovingItClosesItForEveryone) {
  auto owned = Mailbox::create(name);
  ASSERT_TRUE(owned);
  test::Pipe progress;
  auto receiver = ChildProcess::spawn([&]() -> int {
    auto box = Mailbox::open(name);
    progress.send(box ? "waiting" : "failed");
    std::vector<std::byte> message;
    auto got = box->receive(message, 10s);
    return !got && got.error().errc() == Errc::closed ? 0 : 1;
  });
  ASSERT_EQ(progress.receive(), "waiting");
  ASSERT_TRUE(Mailbox::remove(name));
  EXPECT_TRUE(receiver.wait().exited_with(0));
}

TEST_F(Ownership, AForkedChildExitingDoesNotRemoveItsParentsMailbox) {
  auto owned = Mailbox::create(name);
  ASSERT_TRUE(owned);
  auto child = ChildProcess::spawn([&]() -> int { std::exit(0); });
  ASSERT_TRUE(child.wait().exited_with(0));
  EXPECT_TRUE(file_exists(name));
  EXPECT_FALSE(owned->closed());
}

TEST_F(Ownership, SystemOwnedMailboxOutlivesItsCreator) {
  (void)kill_an_owner(shmbox::Ownership::system);
  auto opened = Mailbox::open(name);
  ASSERT_TRUE(opened) << opened.error().message();
  EXPECT_FALSE(opened->closed());
  EXPECT_TRUE(file_exists(name));
  auto status = Mailbox::stat(name);
  ASSERT_TRUE(status);
  EXPECT_EQ(status->ownership, shmbox::Ownership::system);
  EXPECT_EQ(status->owner_pid, 0);
}

TEST_F(Ownership, StatNamesTheOwnerAndCountsSendersAndReceivers) {
  auto owned = Mailbox::create(name, {.capacity = 8});
  ASSERT_TRUE(owned);
  auto sender = Mailbox::open(name);
  auto receiver = Mailbox::open(name);
  ASSERT_TRUE(sender && receiver);
  ASSERT_TRUE(sender->send(as_bytes("a")));
  std::vector<std::byte> message;
  ASSERT_TRUE(receiver->receive(message));
  auto status = Mailbox::stat(name);
  ASSERT_TRUE(status);
  EXPECT_EQ(status->ownership, shmbox::Ownership::process);
  EXPECT_EQ(status->owner_pid, ::getpid());
  EXPECT_TRUE(status->owner_alive);
  EXPECT_EQ(status->owner_name, "shmbox_tests");
  EXPECT_EQ(status->local()->attached, 3u);
  EXPECT_EQ(status->local()->senders, 1u);
  EXPECT_EQ(status->local()->receivers, 1u);
}

TEST_F(Ownership, StatOfAMailboxWhoseOwnerDiedSaysSoWithoutRemovingIt) {
  const pid_t owner_pid = kill_an_owner();
  auto status = Mailbox::stat(name);
  ASSERT_TRUE(status);
  EXPECT_EQ(status->owner_pid, owner_pid);
  EXPECT_FALSE(status->owner_alive);
  EXPECT_EQ(status->owner_name, "");
  EXPECT_TRUE(file_exists(name)) << "stat only looks";
}

TEST_F(Ownership, CollectGarbageRemovesWhatKilledOwnersLeftAndNothingElse) {
  if (!test::running_as_root()) GTEST_SKIP() << "needs root for a private /dev/shm";
  // In a private /dev/shm, so that other tests' leftovers running alongside are not ours to count.
  auto child = ChildProcess::spawn([&]() -> int {
    if (!test::private_dev_shm("16m")) return 10;
    const std::string live_name = name + "-live";
    auto live = Mailbox::create(live_name);
    auto system = Mailbox::create(name + "-system", {.ownership = shmbox::Ownership::system});
    if (!live || !system) return 1;
    const pid_t owner_pid = kill_an_owner();
    const auto removed = collect_garbage();
    if (removed.size() != 1) return 3;
    if (removed[0].kind != "mailbox" || removed[0].name != name || removed[0].owner_pid != owner_pid) return 4;
    if (removed[0].cause != "its owner, process " + std::to_string(owner_pid) + ", had exited") return 7;
    if (file_exists(name) || !file_exists(live_name) || !file_exists(name + "-system") || live->closed()) return 5;
    return collect_garbage().empty() ? 0 : 6;
  });
  const auto status = child.wait();
  if (status.exited_with(10)) GTEST_SKIP() << "cannot mount a private /dev/shm here";
  EXPECT_TRUE(status.exited_with(0)) << status.describe();
}

constexpr std::size_t creator_offset = offsetof(detail::Header, creator);
constexpr std::size_t owner_offset = offsetof(detail::Header, owner);

std::uint64_t packed_identity(std::int64_t pid, std::uint64_t start_time) {
  return platform::ProcessIdentity{static_cast<pid_t>(pid), start_time}.packed();
}

// The largest pid the kernel hands out here, as the library reads it.
std::int64_t max_pid() {
  std::ifstream file{"/proc/sys/kernel/pid_max"};
  std::int64_t pid_max = 0;
  file >> pid_max;
  return pid_max - 1;
}

// The identity of a process that has been killed and reaped.
std::uint64_t dead_process_identity() {
  test::Pipe progress;
  auto child = ChildProcess::spawn([&]() -> int {
    progress.send(std::to_string(platform::current_process().packed()));
    for (;;) ::pause();
  });
  const std::uint64_t identity = std::stoull(progress.receive().value());
  child.kill();
  EXPECT_TRUE(child.wait().killed_by(SIGKILL));
  return identity;
}

// Garbage in the owner record must never pass for a dead owner: the mailbox is
// corrupt, and it stays with its messages until someone removes it.
TEST_F(Ownership, AnOwnerRecordThatMakesNoSenseIsCorruptionAndRemovesNothing) {
  auto box = Mailbox::create(name, {.capacity = 4, .ownership = shmbox::Ownership::system});
  ASSERT_TRUE(box);
  ASSERT_TRUE(box->send(as_bytes("kept")));
  auto raw = Segment::open("shmbox.mb." + name, Access::read_write);
  ASSERT_TRUE(raw);
  auto poke_owner = [&](std::uint64_t owner) { std::memcpy(raw->writable_bytes()->data() + owner_offset, &owner, sizeof owner); };
  std::uint64_t creator = 0;
  std::memcpy(&creator, raw->bytes().data() + creator_offset, sizeof creator);
  const std::string out_of_range = " is not a process ID (1 to " + std::to_string(max_pid()) + ")";
  const std::uint64_t dead = dead_process_identity();
  struct Case {
    std::uint64_t owner;
    std::string fault;
  };
  for (const auto& [owner, fault] : std::vector<Case>{
           {0xdeadbeefcafef00dull, "pid -889262067" + out_of_range},
           {packed_identity(0, 12345), "pid 0" + out_of_range},
           {packed_identity(-5, 12345), "pid -5" + out_of_range},
           {packed_identity(max_pid() + 1, 12345), "pid " + std::to_string(max_pid() + 1) + out_of_range},
           {packed_identity(::getpid(), 0), "process " + std::to_string(::getpid()) + " has no start time"},
           // Well formed and dead, but a mailbox belongs to the process it was created for or to the system.
           {dead, "it names process " + std::to_string(dead & 0xffffffffu) + ", but the mailbox was created for process " +
                      std::to_string(creator & 0xffffffffu) +
                      ", and a mailbox belongs to the process it was created for or to the system"},
       }) {
    poke_owner(owner);
    const std::string expected = "mailbox '" + name + "': has a corrupt owner record: " + fault;
    const auto refused = test::open_error_in_another_process(name);
    ASSERT_TRUE(refused) << fault;
    EXPECT_EQ(refused->errc(), Errc::corrupt);
    EXPECT_EQ(refused->message(), expected);
    auto status = Mailbox::stat(name);
    ASSERT_FALSE(status);
    EXPECT_EQ(status.error().errc(), Errc::corrupt);
    EXPECT_EQ(status.error().message(), expected);
    EXPECT_EQ(Mailbox::create(name).error().errc(), Errc::already_exists) << "create reclaims only the orphaned";
    ASSERT_TRUE(file_exists(name)) << fault;
    EXPECT_FALSE(box->closed()) << fault;
  }
  poke_owner(0);
  auto opened = Mailbox::open(name);
  ASSERT_TRUE(opened) << opened.error().message();
  std::vector<std::byte> message;
  ASSERT_TRUE(opened->receive(message, no_wait));
  EXPECT_EQ(test::text_of(message), "kept");
}

TEST_F(Ownership, CollectGarbageRemovesFilesLeftEmptyForOverTwoSeconds) {
  if (!test::running_as_root()) GTEST_SKIP() << "needs root for a private /dev/shm";
  auto child = ChildProcess::spawn([&]() -> int {
    if (!test::private_dev_shm("16m")) return 10;
    if (!Mailbox::create(name, {.ownership = shmbox::Ownership::system})) return 1;
    if (::truncate(("/dev/shm/shmbox.mb." + name).c_str(), 0) != 0) return 2;
    auto make_empty = [](const std::string& file_name) {
      const int fd = ::open(("/dev/shm/" + file_name).c_str(), O_CREAT | O_EXCL | O_RDWR, 0600);
      return fd >= 0 && ::close(fd) == 0;
    };
    if (!make_empty("shmbox.ep." + name) || !make_empty("shmbox.ln." + name + ".0") ||
        !make_empty("shmbox.lk." + name)) {
      return 3;
    }
    std::this_thread::sleep_for(2200ms);
    if (!make_empty("shmbox.mb." + name + "-young")) return 4;  // may be another program's, in the making
    const auto removed = collect_garbage();
    const std::vector<std::pair<std::string, std::string>> expected{
        {"endpoint", name}, {"mailbox", name}, {"lane", name + ".0"}, {"lock", name}};
    if (removed.size() != expected.size()) return 5;
    for (std::size_t i = 0; i < removed.size(); ++i) {
      if (removed[i].kind != expected[i].first || removed[i].name != expected[i].second) return 6;
      if (removed[i].owner_pid != 0 || removed[i].cause != "it had been empty (0 bytes) for over 2 s") return 7;
    }
    if (file_exists(name) || !file_exists(name + "-young")) return 8;
    return collect_garbage().empty() ? 0 : 9;
  });
  const auto status = child.wait();
  if (status.exited_with(10)) GTEST_SKIP() << "cannot mount a private /dev/shm here";
  EXPECT_TRUE(status.exited_with(0)) << status.describe();
}

TEST_F(Ownership, CollectGarbageLeavesAMailboxWhoseOwnerRecordMakesNoSense) {
  if (!test::running_as_root()) GTEST_SKIP() << "needs root for a private /dev/shm";
  auto child = ChildProcess::spawn([&]() -> int {
    if (!test::private_dev_shm("16m")) return 10;
    auto box = Mailbox::create(name, {.ownership = shmbox::Ownership::system});
    if (!box || !box->send(as_bytes("kept"))) return 1;
    auto raw = Segment::open("shmbox.mb." + name, Access::read_write);
    if (!raw) return 2;
    const std::uint64_t dead = dead_process_identity();
    std::memcpy(raw->writable_bytes()->data() + owner_offset, &dead, sizeof dead);
    if (!collect_garbage().empty()) return 3;
    return file_exists(name) && !box->closed() && box->queued() == 1 ? 0 : 4;
  });
  const auto status = child.wait();
  if (status.exited_with(10)) GTEST_SKIP() << "cannot mount a private /dev/shm here";
  EXPECT_TRUE(status.exited_with(0)) << status.describe();
}

}  // namespace
}  // namespace shmbox
