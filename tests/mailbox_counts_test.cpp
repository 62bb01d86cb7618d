// What stat counts stays true after processes are killed (SIGKILL) in the middle of
// sends and receives: attached, senders and receivers count live handles only, and
// queued counts exactly the messages a receiver can still get (checked by draining).
#include <gtest/gtest.h>

#include <random>
#include <thread>

#include "shmbox/mailbox.hpp"
#include "support/buffering.hpp"
#include "support/process.hpp"
#include "support/text.hpp"

namespace shmbox {
namespace {

using namespace std::chrono_literals;
using test::ChildProcess;

struct Counts {
  std::uint32_t attached, senders, receivers;
  std::uint64_t queued;
  bool operator==(const Counts&) const = default;
};

std::ostream& operator<<(std::ostream& out, const Counts& c) {
  return out << "{attached " << c.attached << ", senders " << c.senders << ", receivers " << c.receivers << ", queued "
             << c.queued << "}";
}

class KilledMidCall : public ::testing::TestWithParam<Buffering> {
 protected:
  void TearDown() override { (void)Mailbox::remove(name); }
  bool zero() const { return GetParam() == Buffering::zero; }
  Counts counts() {
    const auto status = Mailbox::stat(name).value();
    return {status.local()->attached, status.local()->senders, status.local()->receivers, status.queued};
  }
  // Receives until nothing comes for a while (long enough for recovery to hand on what
  // the dead held); how many it got.
  std::uint64_t drain() {
    std::vector<std::byte> message;
    std::uint64_t count = 0;
    while (box.receive(message, 300ms)) ++count;
    return count;
  }
  // Runs `body` in a child, which says "ready" through the pipe just before the call it
  // is to be killed in; kills it once it is in there.
  void kill_inside(const std::function<void(Mailbox&, test::Pipe&)>& body) {
    test::Pipe progress;
    auto child = ChildProcess::spawn([&]() -> int {
      auto mine = Mailbox::open(name);
      if (!mine) return progress.send(mine.error().message()), 1;
      body(*mine, progress);
      progress.send("returned");
      for (;;) ::pause();
    });
    ASSERT_EQ(progress.receive(), "ready");
    std::this_thread::sleep_for(100ms);  // into the call, and asleep in it
    child.kill();
    ASSERT_TRUE(child.wait().killed_by(SIGKILL));
  }
  std::string name = test::unique_name("counts");
  Mailbox box = Mailbox::create(name, {.buffering = GetParam(), .capacity = 4, .max_message_size = 64}).value();
};

void send_into(Mailbox& mine, int count) {
  for (int i = 0; i < count; ++i) (void)mine.send(as_bytes("queued"));
}

TEST_P(KilledMidCall, ASenderBlockedInSend) {
  // Bounded: blocked on a full mailbox, before any claim. Zero: its message published,
  // waiting for a receiver (a published message is sent: it stays queued). Unbounded
  // never blocks: killed after its send.
  const int filled = zero() ? 0 : 4;
  send_into(box, filled);
  ASSERT_NO_FATAL_FAILURE(kill_inside([&](Mailbox& mine, test::Pipe& progress) {
    progress.send("ready");
    (void)mine.send(as_bytes("from the child"));
  }));
  const std::uint64_t queued = static_cast<std::uint64_t>(filled) + (GetParam() == Buffering::bounded ? 0 : 1);
  EXPECT_EQ(counts(), (Counts{1, filled > 0 ? 1u : 0u, 0, queued}));
  EXPECT_EQ(drain(), queued);
  EXPECT_EQ(counts().queued, 0u);
}

TEST_P(KilledMidCall, AReceiverBlockedInReceive) {
  ASSERT_NO_FATAL_FAILURE(kill_inside([&](Mailbox& mine, test::Pipe& progress) {
    std::vector<std::byte> message;
    progress.send("ready");
    (void)mine.receive(message);
  }));
  EXPECT_EQ(counts(), (Counts{1, 0, 0, 0}));
  // Zero capacity: the dead receiver still counts as present, so these sends go ahead
  // and then take their messages back (CANCELLED): none of it is queued.
  const auto sent = box.send(as_bytes("x"), no_wait);
  EXPECT_EQ(sent.has_value(), !zero());
  if (zero()) {
    EXPECT_EQ(box.send(as_bytes("y"), 10ms).error().errc(), Errc::timeout);
  }
  const std::uint64_t queued = zero() ? 0 : 1;
  EXPECT_EQ(counts(), (Counts{1, 1, 0, queued}));
  EXPECT_EQ(drain(), queued);
}

TEST_P(KilledMidCall, AReceiverHoldingAMessageInPlace) {
  std::optional<std::thread> sender;
  if (zero()) {
    sender.emplace([&] { (void)box.send(as_bytes("held"), 10s); });  // returns once the child claims it
  } else {
    send_into(box, 2);
  }
  ASSERT_NO_FATAL_FAILURE(kill_inside([&](Mailbox& mine, test::Pipe& progress) {
    auto held = mine.receive_in_place(10s);
    progress.send(held ? "ready" : held.error().message());
    for (;;) ::pause();
  }));
  if (sender) sender->join();
  // The held message is queued again: recovery hands it to the next receiver.
  const std::uint64_t queued = zero() ? 1 : 2;
  EXPECT_EQ(counts(), (Counts{1, 1, 0, queued}));
  EXPECT_EQ(drain(), queued);
  EXPECT_EQ(counts().queued, 0u);
}

TEST_P(KilledMidCall, ASenderHoldingAClaimItNeverPublished) {
  ASSERT_NO_FATAL_FAILURE(kill_inside([&](Mailbox& mine, test::Pipe& progress) {
    auto loan = mine.loan(8);
    progress.send(loan ? "ready" : loan.error().message());
    for (;;) ::pause();
  }));
  EXPECT_EQ(counts(), (Counts{1, 0, 0, 0}));
  if (zero()) {
    EXPECT_EQ(drain(), 0u);
    return;
  }
  ASSERT_TRUE(box.send(as_bytes("behind the claim")));
  EXPECT_EQ(counts(), (Counts{1, 1, 0, 1}));
  EXPECT_EQ(drain(), 1u);  // once recovery has cancelled the dead claim
  EXPECT_EQ(counts().queued, 0u);
}

TEST_P(KilledMidCall, TimedSendsKilledAtRandomPoints) {
  // Bounded: full, so every timed send expires. Zero: nobody receives, so every send
  // publishes, waits and takes its message back. Unbounded: sends that succeed.
  const int filled = GetParam() == Buffering::bounded ? 4 : 0;
  send_into(box, filled);
  std::mt19937 random{std::random_device{}()};
  for (int round = 0; round < 6; ++round) {
    test::Pipe progress;
    auto child = ChildProcess::spawn([&]() -> int {
      auto mine = Mailbox::open(name);
      if (!mine) return 1;
      progress.send("ready");
      for (int i = 0; i < 200; ++i) (void)mine->send(as_bytes("timed"), 1ms);
      for (;;) ::pause();
    });
    ASSERT_EQ(progress.receive(), "ready");
    std::this_thread::sleep_for(std::chrono::microseconds{random() % 20000});
    child.kill();
    ASSERT_TRUE(child.wait().killed_by(SIGKILL));
    const Counts now = counts();
    EXPECT_EQ(now.attached, 1u) << "round " << round;
    if (GetParam() == Buffering::bounded) {
      EXPECT_EQ(now.queued, 4u) << "round " << round;
    }
    if (zero()) {
      EXPECT_LE(now.queued, 1u) << "round " << round;
    }
    if (GetParam() != Buffering::bounded) {
      EXPECT_EQ(drain(), now.queued) << "round " << round;
    }
  }
  EXPECT_EQ(drain(), std::uint64_t(filled));
  EXPECT_EQ(counts().queued, 0u);
}

INSTANTIATE_TEST_SUITE_P(Mailbox, KilledMidCall, test::all_bufferings, test::buffering_test_name);

TEST(ZeroCapacityCounts, TimedOutSendsLeaveNothingQueued) {
  const std::string name = test::unique_name("counts-zero");
  auto box = Mailbox::create(name, {.buffering = Buffering::zero, .max_message_size = 64}).value();
  for (int i = 0; i < 5; ++i) EXPECT_EQ(box.send(as_bytes("nobody takes it"), 2ms).error().errc(), Errc::timeout);
  EXPECT_EQ(box.queued(), 0u);
  EXPECT_EQ(Mailbox::stat(name).value().queued, 0u);
  std::vector<std::byte> message;
  EXPECT_EQ(box.receive(message, no_wait).error().errc(), Errc::would_block);
  (void)Mailbox::remove(name);
}

}  // namespace
}  // namespace shmbox
