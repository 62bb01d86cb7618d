// Names another user created first: a process does not talk through them unless it
// trusts that user (shmbox/trust.hpp). The mode still decides what the kernel allows.
#include <gtest/gtest.h>
#include <sysexits.h>

#include <cstring>
#include <filesystem>
#include <optional>
#include <thread>

#include "shmbox/cleanup.hpp"
#include "shmbox/endpoint.hpp"
#include "shmbox/mailbox.hpp"
#include "shmbox/segment.hpp"
#include "shmbox/trust.hpp"
#include "support/process.hpp"
#include "support/text.hpp"

namespace shmbox {
namespace {

using test::ChildProcess;

constexpr uid_t nobody = 65534;

class Squatting : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!test::running_as_root()) GTEST_SKIP() << "needs root to switch to another uid";
  }
  // The squatter was killed holding what it made; root may remove it all.
  void TearDown() override {
    (void)Mailbox::remove(name);
    (void)Segment::remove(name);
    std::filesystem::remove("/dev/shm/shmbox.ep." + name);
  }
  std::string name = test::unique_name("squat");
  std::string me = test::unique_name("me");

  // A child of another user that creates `make()`'s object, with a mode that lets
  // everyone in, and keeps it until killed. nullopt if we cannot switch users here.
  template <class Make>
  std::optional<ChildProcess> squat(Make make) {
    test::Pipe progress;
    auto squatter = ChildProcess::spawn([&, make]() -> int {
      if (!test::drop_privileges()) {
        progress.send("no");
        return 10;
      }
      progress.send(make() ? "squatting" : "failed");
      for (;;) ::pause();
    });
    const auto said = progress.receive();
    if (said == "no") return std::nullopt;
    EXPECT_EQ(said, "squatting");
    return squatter;
  }
};

std::string distrust(const std::string& object) {
  return object + ": belongs to uid 65534, whom this process does not trust (see shmbox::trust_user)";
}

TEST_F(Squatting, AMailboxAnotherUserCreatedFirstIsRefusedUntilTrusted) {
  auto squatter = squat([&] { return Mailbox::create(name, {.mode = 0666}).has_value(); });
  if (!squatter) GTEST_SKIP() << "cannot switch to uid 65534 here";
  auto opened = Mailbox::open(name);
  ASSERT_FALSE(opened);
  EXPECT_EQ(opened.error().errc(), Errc::permission_denied);
  EXPECT_EQ(opened.error().message(), distrust("mailbox '" + name + "'"));
  // Stat and ls still show it, so that it can be found and removed.
  auto status = Mailbox::stat(name);
  ASSERT_TRUE(status);
  EXPECT_EQ(status->local()->owner_uid, nobody);
  // Creating it is refused as before: create never adopts what exists.
  EXPECT_EQ(Mailbox::create(name).error().errc(), Errc::already_exists);
  auto trusting = ChildProcess::spawn([&]() -> int {
    trust_user(nobody);
    return Mailbox::open(name) ? 0 : 1;
  });
  EXPECT_TRUE(trusting.wait().exited_with(0));
  squatter->kill();
}

TEST_F(Squatting, AnEndpointNameAnotherUserTookFirstIsRefusedToSendersAndJoiners) {
  auto squatter = squat([&] {
    static std::optional<Endpoint> held;  // the endpoint lives as long as its handle
    if (auto joined = Endpoint::join(name, {.mode = 0666})) held.emplace(std::move(*joined));
    return held.has_value();
  });
  if (!squatter) GTEST_SKIP() << "cannot switch to uid 65534 here";
  auto joined = Endpoint::join(name);
  ASSERT_FALSE(joined);
  EXPECT_EQ(joined.error().errc(), Errc::already_exists);  // loud: the name is not ours
  auto sender = Endpoint::join(me);
  ASSERT_TRUE(sender);
  auto sent = sender->send(name, as_bytes("secret"));
  ASSERT_FALSE(sent);
  EXPECT_EQ(sent.error().errc(), Errc::permission_denied);
  EXPECT_EQ(sent.error().message(), distrust("endpoint '" + name + "'"));
  squatter->kill();
}

TEST_F(Squatting, ASegmentAnotherUserCreatedFirstIsRefusedToOpenAndOpenOrCreate) {
  auto squatter = squat([&] {
    return Segment::create(name, 4096, {.mode = 0666}).has_value();
  });
  if (!squatter) GTEST_SKIP() << "cannot switch to uid 65534 here";
  auto opened = Segment::open(name, Access::read_write);
  ASSERT_FALSE(opened);
  EXPECT_EQ(opened.error().message(), distrust("segment '" + name + "'"));
  auto either = Segment::open_or_create(name, 4096);
  ASSERT_FALSE(either);
  EXPECT_EQ(either.error().errc(), Errc::permission_denied);
  squatter->kill();
  ASSERT_TRUE(squatter->wait().killed_by(SIGKILL));
  (void)Segment::remove(name);
}

TEST_F(Squatting, TheToolRefusesASquattersMailboxUnlessToldToTrustItsUser) {
  auto squatter = squat([&] { return Mailbox::create(name, {.mode = 0666}).has_value(); });
  if (!squatter) GTEST_SKIP() << "cannot switch to uid 65534 here";
  auto refused = test::run_command({SHMBOX_CLI_PATH, "send", name, "x"});
  EXPECT_TRUE(refused.status.exited_with(EX_NOPERM));
  EXPECT_EQ(refused.err, "shmbox: " + distrust("mailbox '" + name + "'") + "\n");
  auto trusted = test::run_command({SHMBOX_CLI_PATH, "--trust-user", "65534", "send", name, "x"});
  EXPECT_TRUE(trusted.status.exited_with(EX_OK)) << trusted.err;
  squatter->kill();
}

TEST_F(Squatting, TrustingAllUsersLeavesTheDecisionToTheMode) {
  auto squatter = squat([&] { return Mailbox::create(name, {.mode = 0666}).has_value(); });
  if (!squatter) GTEST_SKIP() << "cannot switch to uid 65534 here";
  auto trusting = ChildProcess::spawn([&]() -> int {
    trust_all_users();
    auto box = Mailbox::open(name);
    return box && box->send(as_bytes("x")) ? 0 : 1;
  });
  EXPECT_TRUE(trusting.wait().exited_with(0));
  squatter->kill();
}

// Removal by a user the mode lets write to an object but who may not remove it (in
// the sticky /dev/shm only the file's owner or root may): refused, and nothing changes.
class RefusedRemoval : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!test::running_as_root()) GTEST_SKIP() << "needs root to switch to another uid";
  }
  void TearDown() override { (void)Mailbox::remove(name); }
  std::string name = test::unique_name("refused");
  std::string object() const { return "mailbox '" + name + "'"; }
};

TEST_F(RefusedRemoval, AnotherUsersRemoveOfAMailboxItMayWriteToLeavesItOpenWithItsMessages) {
  auto box = Mailbox::create(name, {.capacity = 4, .mode = 0666, .ownership = shmbox::Ownership::system});
  ASSERT_TRUE(box);
  ASSERT_TRUE(box->send(as_bytes("kept")));
  auto stranger = ChildProcess::spawn([&]() -> int {
    if (!test::drop_privileges()) return 10;
    auto opened = Mailbox::open(name);  // the mode lets it in
    if (!opened || !opened->send(as_bytes("also kept"))) return 1;
    auto removed = Mailbox::remove(name);
    if (removed || removed.error().errc() != Errc::permission_denied) return 2;
    if (removed.error().message() != object() + ": cannot remove: permission denied (Operation not permitted)") return 3;
    return opened->closed() ? 4 : 0;
  });
  const auto status = stranger.wait();
  if (status.exited_with(10)) GTEST_SKIP() << "cannot switch to uid 65534 here";
  ASSERT_TRUE(status.exited_with(0)) << status.describe();
  EXPECT_FALSE(box->closed());
  EXPECT_EQ(box->queued(), 2u);
  auto reopened = Mailbox::open(name);
  ASSERT_TRUE(reopened) << reopened.error().message();
  std::vector<std::byte> message;
  ASSERT_TRUE(reopened->receive(message, no_wait));
  EXPECT_EQ(test::text_of(message), "kept");
  EXPECT_TRUE(box->send(as_bytes("still open")));
}

TEST_F(RefusedRemoval, GarbageCollectionLeavesWhatTheCollectorMayNotRemoveAsItWas) {
  // In a private /dev/shm: gc must not reach other tests' leftovers.
  auto child = ChildProcess::spawn([&]() -> int {
    if (!test::private_dev_shm("16m")) return 10;
    test::Pipe progress;
    auto owner = ChildProcess::spawn([&]() -> int {
      static std::optional<Endpoint> endpoint;
      auto box = Mailbox::create(name, {.mode = 0666});
      if (auto joined = Endpoint::join(name, {.mode = 0666})) endpoint.emplace(std::move(*joined));
      progress.send(box && endpoint ? "created" : "failed");
      for (;;) ::pause();
    });
    if (progress.receive() != "created") return 1;
    owner.kill();
    if (!owner.wait().killed_by(SIGKILL)) return 2;
    auto stranger = ChildProcess::spawn([&]() -> int {
      if (!test::drop_privileges()) return 10;
      return collect_garbage().empty() ? 0 : 3;
    });
    if (const auto status = stranger.wait(); !status.exited_with(0)) return status.code;
    auto endpoint_file = Segment::open("shmbox.ep." + name, Access::read_only);
    if (!endpoint_file) return 4;
    std::uint32_t endpoint_closed = 1;  // EndpointHeader::closed, offset 72
    std::memcpy(&endpoint_closed, endpoint_file->bytes().data() + 72, sizeof endpoint_closed);
    auto status = Mailbox::stat(name);
    if (!status || status->closed || endpoint_closed != 0) return 5;
    // Its owner may remove it all.
    return collect_garbage().size() == 2 ? 0 : 6;
  });
  const auto status = child.wait();
  if (status.exited_with(10)) GTEST_SKIP() << "cannot mount a private /dev/shm or switch to uid 65534 here";
  EXPECT_TRUE(status.exited_with(0)) << status.describe();
}

TEST_F(RefusedRemoval, AnEndpointLeavingClosesTheLanesAnotherUsersSendersMadeThoughItMayNotRemoveThem) {
  const std::string sender_name = test::unique_name("root-sender");
  test::Pipe joined;
  test::Pipe leave;
  auto receiver = ChildProcess::spawn([&]() -> int {
    if (!test::drop_privileges()) {
      joined.send("no");
      return 10;
    }
    std::optional<Endpoint> endpoint;
    if (auto made = Endpoint::join(name, {.capacity = 1, .mode = 0666})) endpoint.emplace(std::move(*made));
    joined.send(endpoint ? "joined" : "failed");
    (void)leave.receive();
    endpoint.reset();  // leaves; the process lives on, so no owner watch fires
    for (;;) ::pause();
  });
  const auto said = joined.receive();
  if (said == "no") GTEST_SKIP() << "cannot switch to uid 65534 here";
  ASSERT_EQ(said, "joined");
  test::Pipe progress;
  auto sender = ChildProcess::spawn([&]() -> int {
    trust_user(nobody);
    auto me = Endpoint::join(sender_name);
    if (!me || !me->send(name, as_bytes("fills the lane"))) return 1;
    progress.send("full");
    auto blocked = me->send(name, as_bytes("blocks"), std::chrono::seconds{10});
    return !blocked && blocked.error().errc() == Errc::closed ? 0 : 2;
  });
  ASSERT_EQ(progress.receive(), "full");
  std::this_thread::sleep_for(std::chrono::milliseconds{50});  // into its wait
  leave.send("leave");
  EXPECT_TRUE(sender.wait(std::chrono::seconds{5}).exited_with(0)) << "the lane root made was closed";
  receiver.kill();
  std::filesystem::remove("/dev/shm/shmbox.ln." + name + ".0");
}

}  // namespace
}  // namespace shmbox
