// Endpoints: direct communication between named processes, each test across real
// processes. send(P), receive_from(Q) and receive() in every waiting form, fairness,
// names, ownership, crashes, permissions and corruption.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstring>
#include <filesystem>
#include <optional>
#include <thread>

#include "shmbox/cleanup.hpp"
#include "shmbox/endpoint.hpp"
#include "shmbox/segment.hpp"
#include "shmbox/trust.hpp"
#include "support/buffering.hpp"
#include "support/process.hpp"
#include "support/text.hpp"

namespace shmbox {
namespace {

using namespace std::chrono_literals;
using test::ChildProcess;

using test::text_of;

bool endpoint_file_exists(const std::string& name) { return std::filesystem::exists("/dev/shm/shmbox.ep." + name); }
bool lane_files_exist(const std::string& name) {
  for (const auto& entry : std::filesystem::directory_iterator("/dev/shm")) {
    if (entry.path().filename().string().starts_with("shmbox.ln." + name + ".")) return true;
  }
  return false;
}

class EndpointTest : public ::testing::Test {
 protected:
  // Joining a name whose holder was killed retires what it left; leaving at once then
  // removes it all.
  void TearDown() override {
    for (const auto& name : {server, client, other}) (void)Endpoint::join(name);
  }
  std::string server = test::unique_name("server");
  std::string client = test::unique_name("client");
  std::string other = test::unique_name("other");
  std::string server_object() const { return "endpoint '" + server + "'"; }
};

TEST_F(EndpointTest, RequestAndReplyBetweenTwoProcesses) {
  auto me = Endpoint::join(server);
  ASSERT_TRUE(me) << me.error().message();
  auto child = ChildProcess::spawn([&]() -> int {
    auto you = Endpoint::join(client);
    if (!you || !you->send(server, as_bytes("ping"))) return 1;
    std::vector<std::byte> reply;
    if (!you->receive_from(server, reply, 10s) || text_of(reply) != "pong") return 2;
    return 0;
  });
  std::vector<std::byte> request;
  auto from = me->receive(request, 10s);
  ASSERT_TRUE(from) << from.error().message();
  EXPECT_EQ(*from, client);
  EXPECT_EQ(text_of(request), "ping");
  ASSERT_TRUE(me->send(*from, as_bytes("pong")));
  EXPECT_TRUE(child.wait().exited_with(0));
}

TEST_F(EndpointTest, ReceiveIntoABufferSaysWhoAndHowMuch) {
  auto me = Endpoint::join(server);
  ASSERT_TRUE(me);
  auto child = ChildProcess::spawn([&]() -> int {
    auto you = Endpoint::join(client);
    return you && you->send(server, as_bytes("12345")) ? 0 : 1;
  });
  ASSERT_TRUE(child.wait().exited_with(0));
  std::array<std::byte, 16> buffer{};
  auto got = me->receive(buffer, 10s);
  ASSERT_TRUE(got) << got.error().message();
  EXPECT_EQ(got->from, client);
  EXPECT_EQ(got->size, 5u);
  std::array<std::byte, 2> small{};
  EXPECT_EQ(me->receive(small, no_wait).error().errc(), Errc::would_block);
}

TEST_F(EndpointTest, ReceiveFromIsNotHeldUpByAFloodFromAnotherPeer) {
  auto me = Endpoint::join(server, {.capacity = 4});
  ASSERT_TRUE(me);
  test::Pipe progress;
  auto flooder = ChildProcess::spawn([&]() -> int {
    auto you = Endpoint::join(other);
    for (int i = 0; i < 4; ++i) {
      if (!you->send(server, as_bytes("flood"))) return 1;
    }
    progress.send("full");
    // Its lane is full: this send waits, and must not hold up anyone else.
    return you->send(server, as_bytes("flood"), 10s) ? 0 : 2;
  });
  ASSERT_EQ(progress.receive(), "full");
  auto quiet = ChildProcess::spawn([&]() -> int {
    auto you = Endpoint::join(client);
    return you && you->send(server, as_bytes("quiet"), 1s) ? 0 : 1;
  });
  EXPECT_TRUE(quiet.wait().exited_with(0));
  std::vector<std::byte> message;
  ASSERT_TRUE(me->receive_from(client, message, 10s));
  EXPECT_EQ(text_of(message), "quiet");
  EXPECT_EQ(me->receive_from(client, message, no_wait).error().errc(), Errc::would_block);
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(me->receive_from(other, message, 10s));
    EXPECT_EQ(text_of(message), "flood");
  }
  EXPECT_TRUE(flooder.wait().exited_with(0));
}

TEST_F(EndpointTest, ReceiveServesPeersInTurnSoAFloodCannotStarveAQuietPeer) {
  auto me = Endpoint::join(server, {.capacity = 64});
  ASSERT_TRUE(me);
  test::Pipe progress;
  auto flooder = ChildProcess::spawn([&]() -> int {
    auto you = Endpoint::join(other);
    progress.send("joined");
    for (;;) {
      if (!you->send(server, as_bytes("flood"), 10s)) return 0;  // until the server leaves
    }
  });
  ASSERT_EQ(progress.receive(), "joined");
  auto quiet = ChildProcess::spawn([&]() -> int {
    auto you = Endpoint::join(client);
    for (int i = 0; i < 10; ++i) {
      if (!you->send(server, as_bytes("quiet"))) return 1;
    }
    return 0;
  });
  ASSERT_TRUE(quiet.wait().exited_with(0));
  // Both lanes hold messages now: receive() alternates, so the ten quiet messages
  // come within the first twenty however many the flooder has queued.
  int quiet_seen = 0;
  int received = 0;
  std::vector<std::byte> message;
  while (quiet_seen < 10 && received < 200) {
    auto from = me->receive(message, 10s);
    ASSERT_TRUE(from) << from.error().message();
    ++received;
    if (*from == client) ++quiet_seen;
  }
  EXPECT_EQ(quiet_seen, 10);
  EXPECT_LE(received, 21) << "a flooding peer starved a quiet one";
  me = Endpoint::join(server + "-gone");  // leave: the flooder's blocked send wakes with Closed
  EXPECT_TRUE(flooder.wait().exited_with(0));
}

TEST_F(EndpointTest, WaitingFormsOfSendAndReceive) {
  auto me = Endpoint::join(server, {.capacity = 1});
  ASSERT_TRUE(me);
  std::vector<std::byte> message;
  auto empty = me->receive(message, no_wait);
  ASSERT_FALSE(empty);
  EXPECT_EQ(empty.error().errc(), Errc::would_block);
  auto timed = me->receive(message, 30ms);
  ASSERT_FALSE(timed);
  EXPECT_EQ(timed.error().message(), server_object() + ": timed out");
  auto from_nobody = me->receive_from(client, message, 30ms);
  ASSERT_FALSE(from_nobody);
  EXPECT_EQ(from_nobody.error().errc(), Errc::timeout);
  auto child = ChildProcess::spawn([&]() -> int {
    auto you = Endpoint::join(client);
    if (!you->send(server, as_bytes("one"), no_wait)) return 1;
    auto full = you->send(server, as_bytes("two"), no_wait);
    if (full || full.error().errc() != Errc::would_block) return 2;
    auto late = you->send(server, as_bytes("two"), 30ms);
    if (late || late.error().errc() != Errc::timeout) return 3;
    if (late.error().message() != server_object() + ": timed out") return 4;
    return 0;
  });
  EXPECT_TRUE(child.wait().exited_with(0));
  ASSERT_TRUE(me->receive_from(client, message, no_wait));
  EXPECT_EQ(text_of(message), "one");
}

TEST_F(EndpointTest, BlockingReceiveWakesForANewPeer) {
  auto me = Endpoint::join(server);
  ASSERT_TRUE(me);
  auto child = ChildProcess::spawn([&]() -> int {
    std::this_thread::sleep_for(100ms);  // let the server fall asleep with no lane at all
    auto you = Endpoint::join(client);
    return you && you->send(server, as_bytes("late")) ? 0 : 1;
  });
  std::vector<std::byte> message;
  auto from = me->receive_from(client, message, 10s);
  ASSERT_TRUE(from) << from.error().message();
  EXPECT_EQ(text_of(message), "late");
  EXPECT_TRUE(child.wait().exited_with(0));
}

class EndpointBuffering : public ::testing::TestWithParam<Buffering> {};

TEST_P(EndpointBuffering, EveryBufferingDeliversInOrder) {
  const std::string server = test::unique_name("server"), client = test::unique_name("client");
  auto me = Endpoint::join(server, {.buffering = GetParam(), .capacity = 4});
  ASSERT_TRUE(me);
  auto child = ChildProcess::spawn([&]() -> int {
    auto you = Endpoint::join(client);
    for (int i = 0; i < 100; ++i) {
      if (!you->send(server, as_bytes(std::to_string(i)), 10s)) return 1;
    }
    return 0;
  });
  std::vector<std::byte> message;
  for (int i = 0; i < 100; ++i) {
    ASSERT_TRUE(me->receive_from(client, message, 10s)) << i;
    ASSERT_EQ(text_of(message), std::to_string(i));
  }
  EXPECT_TRUE(child.wait().exited_with(0));
}

INSTANTIATE_TEST_SUITE_P(Endpoint, EndpointBuffering, test::all_bufferings, test::buffering_test_name);

TEST_F(EndpointTest, ZeroBufferingIsARendezvous) {
  auto me = Endpoint::join(server, {.buffering = Buffering::zero});
  ASSERT_TRUE(me);
  test::Pipe progress;
  auto child = ChildProcess::spawn([&]() -> int {
    auto you = Endpoint::join(client);
    auto nobody = you->send(server, as_bytes("x"), no_wait);  // the server is not receiving
    if (nobody || nobody.error().errc() != Errc::would_block) return 1;
    progress.send("tried");
    const auto start = std::chrono::steady_clock::now();
    if (!you->send(server, as_bytes("met"), 10s)) return 2;
    // It returned only once the server took it, which the server does after 100 ms.
    return std::chrono::steady_clock::now() - start >= 90ms ? 0 : 3;
  });
  ASSERT_EQ(progress.receive(), "tried");
  std::this_thread::sleep_for(100ms);
  std::vector<std::byte> message;
  ASSERT_TRUE(me->receive(message, 10s));
  EXPECT_EQ(text_of(message), "met");
  EXPECT_TRUE(child.wait().exited_with(0));
}

TEST_F(EndpointTest, TwoEndpointsOfOneProcessSendThroughLanesOfTheirOwn) {
  auto receiver = Endpoint::join(server).value();
  std::vector<std::byte> message;
  {
    auto first = Endpoint::join(client).value();
    ASSERT_TRUE(first.send(server, as_bytes("from the first")));
    EXPECT_EQ(receiver.receive(message, 5s).value(), client);
  }
  // Same process, so same sender identity as the first's lane (still ready until the
  // receiver sweeps it): the name must keep them apart.
  auto second = Endpoint::join(other).value();
  ASSERT_TRUE(second.send(server, as_bytes("from the second")));
  EXPECT_EQ(receiver.receive(message, 5s).value(), other);
  EXPECT_EQ(text_of(message), "from the second");
}

TEST_F(EndpointTest, TwoLiveProcessesCannotJoinUnderOneName) {
  auto me = Endpoint::join(server);
  ASSERT_TRUE(me);
  auto child = ChildProcess::spawn([&]() -> int {
    auto twin = Endpoint::join(server);
    if (twin || twin.error().errc() != Errc::already_exists) return 1;
    const std::string expected = server_object() + ": is joined by process " + std::to_string(::getppid()) + " (shmbox_tests)";
    return twin.error().message() == expected ? 0 : 2;
  });
  EXPECT_TRUE(child.wait().exited_with(0));
}

// A child process joined as `name` until it is killed; started once it has joined.
ChildProcess joined_in_a_child(const std::string& name) {
  test::Pipe progress;
  auto holder = ChildProcess::spawn([&]() -> int {
    auto you = Endpoint::join(name);
    progress.send(you ? "joined" : "failed");
    for (;;) ::pause();
  });
  EXPECT_EQ(progress.receive(), "joined");
  return holder;
}

TEST_F(EndpointTest, TheNameOfAKilledProcessCanBeTakenAgain) {
  auto holder = joined_in_a_child(server);
  holder.kill();
  ASSERT_TRUE(holder.wait().killed_by(SIGKILL));
  auto again = Endpoint::join(server);
  ASSERT_TRUE(again) << again.error().message();
}

TEST_F(EndpointTest, RemoveIsRefusedWhileTheProcessLivesAndTakesTheLanesAfter) {
  auto holder = joined_in_a_child(server);
  {
    auto me = Endpoint::join(client);
    ASSERT_TRUE(me);
    ASSERT_TRUE(me->send(server, as_bytes("queued"), no_wait));
  }
  auto refused = Endpoint::remove(server);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().errc(), Errc::in_use);
  EXPECT_TRUE(endpoint_file_exists(server));
  EXPECT_TRUE(lane_files_exist(server));
  holder.kill();
  ASSERT_TRUE(holder.wait().killed_by(SIGKILL));
  ASSERT_TRUE(Endpoint::remove(server));
  EXPECT_FALSE(endpoint_file_exists(server));
  EXPECT_FALSE(lane_files_exist(server));
  auto missing = Endpoint::remove(server);
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().errc(), Errc::not_found);
}

TEST_F(EndpointTest, LeavingRemovesTheEndpointAndItsLanesAndWakesBlockedSenders) {
  auto me = Endpoint::join(server, {.capacity = 1});
  ASSERT_TRUE(me);
  test::Pipe progress;
  auto child = ChildProcess::spawn([&]() -> int {
    auto you = Endpoint::join(client);
    if (!you->send(server, as_bytes("fills"))) return 1;
    progress.send("blocking");
    auto blocked = you->send(server, as_bytes("waits"), 10s);
    if (blocked || blocked.error().errc() != Errc::closed) return 2;
    auto after = you->send(server, as_bytes("nobody"), no_wait);
    return !after && after.error().errc() == Errc::not_found ? 0 : 3;
  });
  ASSERT_EQ(progress.receive(), "blocking");
  std::this_thread::sleep_for(50ms);
  me = Endpoint::join(other);  // the old endpoint leaves
  EXPECT_TRUE(child.wait().exited_with(0));
  EXPECT_FALSE(endpoint_file_exists(server));
  EXPECT_FALSE(lane_files_exist(server));
}

TEST_F(EndpointTest, AForkedChildDroppingItsCopyDoesNotLeaveForItsParent) {
  std::optional<Endpoint> me = Endpoint::join(server).value();
  auto child = ChildProcess::spawn([&]() -> int {
    me.reset();  // the child's copy of the handle
    return 0;
  });
  ASSERT_TRUE(child.wait().exited_with(0));
  EXPECT_TRUE(endpoint_file_exists(server));
  auto sender = ChildProcess::spawn([&]() -> int {
    auto you = Endpoint::join(client);
    return you && you->send(server, as_bytes("still here")) ? 0 : 1;
  });
  EXPECT_TRUE(sender.wait().exited_with(0));
  std::vector<std::byte> message;
  ASSERT_TRUE(me->receive(message, 10s));
  EXPECT_EQ(text_of(message), "still here");
}

TEST_F(EndpointTest, AReceiverKilledWakesItsBlockedSendersWithClosedAndLeavesNothing) {
  test::Pipe progress;
  auto receiver = ChildProcess::spawn([&]() -> int {
    auto you = Endpoint::join(server, {.capacity = 1});
    progress.send(you ? "joined" : "failed");
    for (;;) ::pause();
  });
  ASSERT_EQ(progress.receive(), "joined");
  auto me = Endpoint::join(client);
  ASSERT_TRUE(me);
  ASSERT_TRUE(me->send(server, as_bytes("fills")));
  auto killer = std::jthread([&] {
    std::this_thread::sleep_for(50ms);
    receiver.kill();
  });
  const auto start = std::chrono::steady_clock::now();
  auto blocked = me->send(server, as_bytes("waits"), 10s);
  const auto waited = std::chrono::steady_clock::now() - start;
  ASSERT_FALSE(blocked);
  EXPECT_EQ(blocked.error().errc(), Errc::closed);
  EXPECT_LT(waited, 2s);
  killer.join();
  ASSERT_TRUE(receiver.wait().killed_by(SIGKILL));
  auto after = me->send(server, as_bytes("nobody"), no_wait);
  ASSERT_FALSE(after);
  EXPECT_EQ(after.error().errc(), Errc::not_found);
  // The blocked send found the owner dead and removed the endpoint on its way out.
  EXPECT_EQ(after.error().message(), server_object() + ": cannot open: does not exist (No such file or directory)");
  EXPECT_FALSE(endpoint_file_exists(server));
  EXPECT_FALSE(lane_files_exist(server));
}

TEST_F(EndpointTest, MessagesOfASenderThatDiedAreStillDeliveredThenItsLaneIsGivenBack) {
  auto me = Endpoint::join(server, {.max_peers = 1});
  ASSERT_TRUE(me);
  test::Pipe progress;
  auto sender = ChildProcess::spawn([&]() -> int {
    auto you = Endpoint::join(client);
    if (!you->send(server, as_bytes("one")) || !you->send(server, as_bytes("two"))) return 1;
    progress.send("sent");
    for (;;) ::pause();
  });
  ASSERT_EQ(progress.receive(), "sent");
  sender.kill();
  ASSERT_TRUE(sender.wait().killed_by(SIGKILL));
  std::vector<std::byte> message;
  ASSERT_TRUE(me->receive(message, 10s));
  EXPECT_EQ(text_of(message), "one");
  ASSERT_TRUE(me->receive_from(client, message, 10s));
  EXPECT_EQ(text_of(message), "two");
  // The only lane is given back once drained (within a sweep, a second): a new peer fits.
  auto newcomer = ChildProcess::spawn([&]() -> int {
    auto you = Endpoint::join(other);
    for (int attempt = 0; attempt < 50; ++attempt) {
      auto sent = you->send(server, as_bytes("room"), no_wait);
      if (sent) return 0;
      if (sent.error().errc() != Errc::no_space) return 1;
      std::this_thread::sleep_for(100ms);
    }
    return 2;
  });
  auto from = me->receive(message, 10s);
  ASSERT_TRUE(from) << from.error().message();
  EXPECT_EQ(*from, other);
  EXPECT_TRUE(newcomer.wait().exited_with(0));
}

TEST_F(EndpointTest, CollectGarbageRemovesTheEndpointAndLanesOfAKilledProcess) {
  if (!test::running_as_root()) GTEST_SKIP() << "needs root for a private /dev/shm";
  auto child = ChildProcess::spawn([&]() -> int {
    if (!test::private_dev_shm("16m")) return 10;
    test::Pipe progress;
    auto holder = ChildProcess::spawn([&]() -> int {
      auto you = Endpoint::join(server);
      auto me = Endpoint::join(client);
      progress.send(you && me && me->send(server, as_bytes("queued")) ? "ready" : "failed");
      for (;;) ::pause();
    });
    if (progress.receive() != "ready") return 1;
    holder.kill();
    if (!holder.wait().killed_by(SIGKILL)) return 2;
    if (!endpoint_file_exists(server) || !lane_files_exist(server)) return 3;
    const auto removed = collect_garbage();
    if (removed.size() != 2) return 4;  // both endpoints; the lane went with its endpoint
    for (const auto& object : removed) {
      if (object.kind != "endpoint" || object.owner_pid != holder.pid()) return 5;
    }
    return endpoint_file_exists(server) || lane_files_exist(server) || endpoint_file_exists(client) ? 6 : 0;
  });
  const auto status = child.wait();
  if (status.exited_with(10)) GTEST_SKIP() << "cannot mount a private /dev/shm here";
  EXPECT_TRUE(status.exited_with(0)) << status.describe();
}

TEST_F(EndpointTest, ErrorsNameTheEndpointAndTheCause) {
  auto me = Endpoint::join(server, {.max_message_size = 8, .max_peers = 1});
  ASSERT_TRUE(me);
  auto missing = me->send(client, as_bytes("x"));
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().errc(), Errc::not_found);
  EXPECT_EQ(missing.error().message(), "endpoint '" + client + "': cannot open: does not exist (No such file or directory)");
  auto big = me->send(server, as_bytes("nine bytes"));
  ASSERT_FALSE(big);
  EXPECT_EQ(big.error().message(), server_object() + ": message of 10 bytes is over the mailbox's maximum of 8");
  auto bad_name = Endpoint::join("a/b");
  ASSERT_FALSE(bad_name);
  EXPECT_EQ(bad_name.error().errc(), Errc::invalid_name);
  auto long_name = Endpoint::join(std::string(201, 'n'));
  ASSERT_FALSE(long_name);
  EXPECT_EQ(long_name.error().errc(), Errc::invalid_name);
  EXPECT_TRUE(long_name.error().message().ends_with("': name is 201 characters long, the limit is 200"));
  auto peers = Endpoint::join(other, {.max_peers = 127});
  ASSERT_FALSE(peers);
  EXPECT_EQ(peers.error().message(), "endpoint '" + other + "': max_peers is 127; it must be 1 to 126");
  // The only lane is ours (we sent to ourselves above): a second sender finds no room.
  auto child = ChildProcess::spawn([&]() -> int {
    auto you = Endpoint::join(client);
    auto full = you->send(server, as_bytes("x"), no_wait);
    if (full || full.error().errc() != Errc::no_space) return 1;
    if (full.error().message() !=
        server_object() + ": all 1 lanes are held by senders or by messages not yet received (raise max_peers)") {
      return 2;
    }
    auto waited = you->send(server, as_bytes("x"), 30ms);
    if (waited || waited.error().errc() != Errc::timeout) return 3;
    return waited.error().message() == server_object() + ": timed out waiting for a free lane" ? 0 : 4;
  });
  EXPECT_TRUE(child.wait().exited_with(0));
}

TEST_F(EndpointTest, StatAndListShowOwnerAndSenders) {
  auto me = Endpoint::join(server, {.capacity = 8});
  ASSERT_TRUE(me);
  auto child = ChildProcess::spawn([&]() -> int {
    auto you = Endpoint::join(client);
    return you && you->send(server, as_bytes("a")) && you->send(server, as_bytes("b")) ? 0 : 1;
  });
  ASSERT_TRUE(child.wait().exited_with(0));
  auto status = Endpoint::stat(server);
  ASSERT_TRUE(status) << status.error().message();
  EXPECT_EQ(status->owner_pid, ::getpid());
  EXPECT_TRUE(status->owner_alive);
  EXPECT_EQ(status->owner_name, "shmbox_tests");
  EXPECT_EQ(status->capacity, 8u);
  EXPECT_EQ(status->mode, 0600u);
  EXPECT_EQ(status->senders, std::vector<std::string>{client});
  EXPECT_EQ(status->queued, 2u);
  const auto names = Endpoint::list();
  EXPECT_NE(std::find(names.begin(), names.end(), server), names.end());
}

TEST_F(EndpointTest, AnotherUserCannotSendUnlessTheModeAllows) {
  if (!test::running_as_root()) GTEST_SKIP() << "needs root to switch to another uid";
  auto closed_one = Endpoint::join(server);
  auto open_one = Endpoint::join(other, {.mode = 0666});
  ASSERT_TRUE(closed_one && open_one);
  auto child = ChildProcess::spawn([&]() -> int {
    if (!test::drop_privileges()) return 10;
    auto you = Endpoint::join(client);
    if (!you) return 1;
    auto refused = you->send(server, as_bytes("x"));
    if (refused || refused.error().errc() != Errc::permission_denied) return 2;
    if (refused.error().message().find(server_object()) != 0) return 3;
    if (Endpoint::stat(server) || Endpoint::stat(server).error().errc() != Errc::permission_denied) return 4;
    return you->send(other, as_bytes("allowed")) ? 0 : 5;
  });
  const auto status = child.wait();
  if (status.exited_with(10)) GTEST_SKIP() << "cannot switch to uid 65534 here";
  EXPECT_TRUE(status.exited_with(0)) << status.describe();
  std::vector<std::byte> message;
  auto from = open_one->receive(message, 10s);
  ASSERT_TRUE(from) << from.error().message();
  EXPECT_EQ(text_of(message), "allowed");
}

// The endpoint's process must be able to open each sender's lane, or what is sent
// through it waits unread: the lane is given to the endpoint's user (or group), and a
// sender that cannot make it usable is refused, naming the endpoint.
class EndpointOfAnotherUser : public EndpointTest {
 protected:
  void SetUp() override {
    if (!test::running_as_root()) GTEST_SKIP() << "needs root to switch to other uids";
  }
  // A child that joins `server` as `uid` with `mode`, then receives for up to `wait` and
  // says what it got: the sender and text, or the error.
  void start_receiver(uid_t uid, mode_t mode, std::chrono::milliseconds wait = 10s) {
    receiver = ChildProcess::spawn([=, this]() -> int {
      if (!test::switch_user(uid, uid)) return progress.send("cannot switch"), 1;
      auto me = Endpoint::join(server, {.mode = mode});
      progress.send(me ? "joined" : me.error().message());
      for (;;) {
        std::vector<std::byte> message;
        auto from = me->receive(message, wait);
        progress.send(from ? *from + ": " + text_of(message) : from.error().message());
      }
    });
    ASSERT_EQ(progress.receive(), "joined");
  }
  // Runs `body` in a child of root that trusts `receiver_uid` (the endpoint's owner).
  static test::ExitStatus as_trusting_root(uid_t receiver_uid, const std::function<int()>& body) {
    return ChildProcess::spawn([&] {
      trust_user(receiver_uid);
      return body();
    }).wait();
  }
  std::optional<ChildProcess> receiver;
  test::Pipe progress;
};

TEST_F(EndpointOfAnotherUser, ARootSenderGivesItsLaneToTheEndpointsUser) {
  ASSERT_NO_FATAL_FAILURE(start_receiver(65534, 0600));
  const auto sent = as_trusting_root(65534, [&] {
    auto me = Endpoint::join(client);
    if (!me || !me->send(server, as_bytes("to another user"))) return 1;
    struct stat lane {};
    if (::stat(("/dev/shm/shmbox.ln." + server + ".0").c_str(), &lane) != 0) return 2;
    return lane.st_uid == 65534 && lane.st_gid == 65534 ? 0 : 3;
  });
  EXPECT_TRUE(sent.exited_with(0)) << sent.describe();
  EXPECT_EQ(progress.receive(), client + ": to another user");
}

TEST_F(EndpointOfAnotherUser, ASenderThatCannotGiveItsLaneAwayIsRefusedNamingTheEndpoint) {
  ASSERT_NO_FATAL_FAILURE(start_receiver(65534, 0600, 2s));
  const auto refused = as_trusting_root(65534, [&] {
    if (!test::drop_chown_capability()) return 10;
    auto me = Endpoint::join(client);
    if (!me) return 1;
    auto sent = me->send(server, as_bytes("lost"));
    if (sent || sent.error().errc() != Errc::permission_denied) return 2;
    const std::string text = sent.error().message();
    if (!text.starts_with(server_object() + ": its process (uid 65534) could not use")) {
      return std::fprintf(stderr, "%s\n", text.c_str()), 3;
    }
    return lane_files_exist(server) ? 4 : 0;
  });
  if (refused.exited_with(10)) GTEST_SKIP() << "cannot drop CAP_CHOWN here";
  EXPECT_TRUE(refused.exited_with(0)) << refused.describe();
  EXPECT_EQ(progress.receive(), server_object() + ": timed out") << "nothing may wait unread";
  // The refused sender's lane entry was given back: a sender that can hand over its lane
  // gets through.
  const auto sent = as_trusting_root(65534, [&] {
    auto me = Endpoint::join(other);
    return me && me->send(server, as_bytes("delivered")) ? 0 : 1;
  });
  EXPECT_TRUE(sent.exited_with(0)) << sent.describe();
  EXPECT_EQ(progress.receive(), other + ": delivered");
}

TEST_F(EndpointOfAnotherUser, ASenderInTheEndpointsGroupGivesItsLaneThatGroup) {
  ASSERT_NO_FATAL_FAILURE(start_receiver(65533, 0660));
  auto sender = ChildProcess::spawn([&] {
    if (!test::switch_user(65534, 65534, {65533})) return 10;
    trust_user(65533);
    auto me = Endpoint::join(client);
    if (!me) return 1;
    auto sent = me->send(server, as_bytes("to my group"));
    if (!sent) return std::fprintf(stderr, "%s\n", sent.error().message().c_str()), 2;
    return 0;
  }).wait();
  EXPECT_TRUE(sender.exited_with(0)) << sender.describe();
  EXPECT_EQ(progress.receive(), client + ": to my group");
}

TEST_F(EndpointTest, GarbageInTheEndpointIsAnErrorNotACrash) {
  auto me = Endpoint::join(server);
  auto you = Endpoint::join(client);
  ASSERT_TRUE(me && you);
  ASSERT_TRUE(you->send(server, as_bytes("before")));
  auto raw = Segment::open("shmbox.ep." + server, Access::read_write);
  ASSERT_TRUE(raw);
  auto bytes = raw->writable_bytes().value();
  // A lane entry whose name length runs past its field: that lane is ignored.
  const std::uint32_t huge = 100000;
  std::memcpy(bytes.data() + 256 + 16, &huge, sizeof huge);
  std::vector<std::byte> message;
  auto ignored = me->receive(message, 50ms);
  ASSERT_FALSE(ignored);
  EXPECT_EQ(ignored.error().errc(), Errc::timeout);
  // A scribbled identity: senders get Corrupt.
  std::memset(bytes.data() + 16, 0xff, 8);  // max_peers and lane buffering
  auto corrupt = Endpoint::join(other).value().send(server, as_bytes("x"));
  ASSERT_FALSE(corrupt);
  EXPECT_EQ(corrupt.error().errc(), Errc::corrupt);
  EXPECT_EQ(corrupt.error().message(), server_object() + ": has a bad peer count");
  std::memset(bytes.data(), 0, 8);  // the magic number
  EXPECT_EQ(Endpoint::stat(server).error().message(), server_object() + ": is not an endpoint (bad magic number)");
}

TEST_F(EndpointTest, AnOwnerRecordThatMakesNoSenseIsCorruptionAndRetiresNothing) {
  auto me = Endpoint::join(server);
  auto you = Endpoint::join(client);
  ASSERT_TRUE(me && you);
  ASSERT_TRUE(you->send(server, as_bytes("kept")));
  auto raw = Segment::open("shmbox.ep." + server, Access::read_write);
  ASSERT_TRUE(raw);
  constexpr std::size_t owner_offset = 48;  // EndpointIdentity::owner
  std::uint64_t owner = 0;
  std::memcpy(&owner, raw->bytes().data() + owner_offset, sizeof owner);
  const std::uint64_t no_start_time = owner & 0xffffffffu;  // the pid alone: it would read as dead
  std::memcpy(raw->writable_bytes()->data() + owner_offset, &no_start_time, sizeof no_start_time);
  const std::string expected = server_object() + ": has a corrupt owner record: process " +
                               std::to_string(::getpid()) + " has no start time";
  auto sender = ChildProcess::spawn([&]() -> int {
    auto third = Endpoint::join(other);
    if (!third) return 1;
    auto sent = third->send(server, as_bytes("x"));
    if (sent || sent.error().errc() != Errc::corrupt) return 2;
    return sent.error().message() == expected ? 0 : 3;
  });
  EXPECT_TRUE(sender.wait().exited_with(0));
  EXPECT_EQ(Endpoint::stat(server).error().message(), expected);
  EXPECT_TRUE(endpoint_file_exists(server) && lane_files_exist(server));
  std::memcpy(raw->writable_bytes()->data() + owner_offset, &owner, sizeof owner);
  std::vector<std::byte> message;
  ASSERT_TRUE(me->receive_from(client, message, 1s));
  EXPECT_EQ(text_of(message), "kept");
}

}  // namespace
}  // namespace shmbox
