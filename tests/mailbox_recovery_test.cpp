// Processes killed with SIGKILL in the middle of an operation: the survivors recover
// what the dead held, and nothing waits forever on a dead process.
#include <gtest/gtest.h>

#include <sys/mman.h>

#include <algorithm>
#include <array>
#include <csignal>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "shmbox/mailbox.hpp"
#include "shmbox/segment.hpp"
#include "support/buffering.hpp"
#include "support/process.hpp"
#include "support/text.hpp"

namespace shmbox {
namespace {

using namespace std::chrono_literals;
using test::ChildProcess;

using test::text_of;

class Recovery : public ::testing::TestWithParam<Buffering> {
 protected:
  void TearDown() override { (void)Mailbox::remove(name); }
  Mailbox make() { return Mailbox::create(name, {.buffering = GetParam(), .capacity = 4, .max_message_size = 64}).value(); }
  // A sender that claims a position (a loan never committed) and is killed holding it.
  void kill_a_sender_holding_a_claim() {
    test::Pipe progress;
    auto sender = ChildProcess::spawn([&]() -> int {
      auto out = Mailbox::open(name);
      auto loan = out->loan(8);
      progress.send(loan ? "holding" : "failed");
      for (;;) ::pause();
    });
    ASSERT_EQ(progress.receive(), "holding");
    sender.kill();
    ASSERT_TRUE(sender.wait().killed_by(SIGKILL));
  }
  // A receiver that takes the next message in place, reports it through `progress` and
  // never releases it: to be killed holding it.
  ChildProcess start_holder(test::Pipe& progress) {
    return ChildProcess::spawn([&]() -> int {
      auto in = Mailbox::open(name);
      auto held = in->receive_in_place(10s);  // claimed, never released
      progress.send(held ? text_of(held->data()) : "failed");
      for (;;) ::pause();
    });
  }
  std::string name = test::unique_name("recovery");
};

// The cases where a message is queued with no receiver waiting: a zero-capacity sender
// claims the same way, but its send would wait for a receiver here.
class QueueingRecovery : public Recovery {};

TEST_P(QueueingRecovery, ASenderKilledBetweenClaimAndPublishDoesNotStallReceivers) {
  Mailbox box = make();
  ASSERT_NO_FATAL_FAILURE(kill_a_sender_holding_a_claim());
  ASSERT_TRUE(box.send(as_bytes("after")));  // queued behind the dead sender's position
  std::vector<std::byte> message;
  const auto start = std::chrono::steady_clock::now();
  auto got = box.receive(message, 5s);
  ASSERT_TRUE(got) << got.error().message();
  EXPECT_EQ(text_of(message), "after");
  EXPECT_LT(std::chrono::steady_clock::now() - start, 1s) << "recovery should take one check interval";
}

// A sender killed inside a batch, after publishing part of it: what it published is
// received, the rest of its claim (a run of positions, in a bounded mailbox) is
// cancelled, and nobody stalls.
TEST_P(QueueingRecovery, ASenderKilledInsideABatchLeavesWhatItPublishedAndStallsNobody) {
  Mailbox box = make();
  auto sender = ChildProcess::spawn([&]() -> int {
    auto out = Mailbox::open(name);
    if (!out) return 1;
    // The third message's bytes cannot be read: its copy faults once two are published,
    // and the process dies there by SIGKILL, as if killed at that instruction.
    void* unreadable = ::mmap(nullptr, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (unreadable == MAP_FAILED) return 2;
    struct sigaction die {};
    die.sa_handler = [](int) { ::raise(SIGKILL); };
    ::sigaction(SIGSEGV, &die, nullptr);
    const std::array<std::span<const std::byte>, 4> batch{
        as_bytes("one"), as_bytes("two"), std::span{static_cast<const std::byte*>(unreadable), 8}, as_bytes("four")};
    (void)out->send_many(batch);
    return 3;
  });
  ASSERT_TRUE(sender.wait(10s).killed_by(SIGKILL));
  std::vector<std::byte> message;
  for (const char* sent : {"one", "two"}) {
    auto got = box.receive(message, 5s);
    ASSERT_TRUE(got) << got.error().message();
    EXPECT_EQ(text_of(message), sent);
  }
  ASSERT_TRUE(box.send(as_bytes("after"), 5s));
  const auto start = std::chrono::steady_clock::now();
  auto got = box.receive(message, 5s);
  ASSERT_TRUE(got) << got.error().message();
  EXPECT_EQ(text_of(message), "after");
  EXPECT_LT(std::chrono::steady_clock::now() - start, 1s) << "recovery should take one check interval";
  EXPECT_EQ(box.queued(), 0u);
}

TEST_P(Recovery, AReceiverKilledHoldingAMessageDoesNotSwallowIt) {
  Mailbox box = make();
  test::Pipe progress;
  auto receiver = start_holder(progress);
  if (GetParam() == Buffering::zero) {
    ASSERT_TRUE(box.send(as_bytes("precious"), 10s));  // returns once the receiver claimed it
  } else {
    ASSERT_TRUE(box.send(as_bytes("precious")));
  }
  ASSERT_EQ(progress.receive(), "precious");
  receiver.kill();
  ASSERT_TRUE(receiver.wait().killed_by(SIGKILL));
  std::vector<std::byte> message;
  auto got = box.receive(message, 5s);
  ASSERT_TRUE(got) << got.error().message();
  EXPECT_EQ(text_of(message), "precious");
  EXPECT_EQ(box.receive(message, no_wait).error().errc(), Errc::would_block);  // exactly once
}

// A dead receiver's message adopted by a receive whose buffer is too small for it: put
// back, so that this receive gets TooLarge and one with room gets the message, once. The
// recovery runs from a receive that waits, then from one on a closed, drained mailbox.
TEST_P(QueueingRecovery, AMessageADeadReceiverHeldIsNotAdoptedIntoABufferTooSmallForIt) {
  Mailbox box = make();
  for (const bool closed : {false, true}) {
    SCOPED_TRACE(closed ? "closed" : "open");
    test::Pipe progress;
    auto receiver = start_holder(progress);
    ASSERT_TRUE(box.send(as_bytes("a message of 31 bytes, or more.")));
    ASSERT_EQ(progress.receive(), "a message of 31 bytes, or more.");
    receiver.kill();
    ASSERT_TRUE(receiver.wait().killed_by(SIGKILL));
    if (closed) {
      ASSERT_TRUE(box.close());
    }
    std::array<std::byte, 8> small{};
    auto refused = box.receive(small, 5s);
    ASSERT_FALSE(refused);
    EXPECT_EQ(refused.error().message(), "mailbox '" + name + "': next message is 31 bytes, the buffer holds 8");
    std::array<std::byte, 64> room{};
    auto got = box.receive(room, 5s);
    ASSERT_TRUE(got) << got.error().message();
    EXPECT_EQ(text_of(std::span{room}.first(*got)), "a message of 31 bytes, or more.");
    const auto after = box.receive(room, no_wait);  // exactly once
    EXPECT_EQ(after.error().errc(), closed ? Errc::closed : Errc::would_block);
  }
}

// A receiver killed inside a batch, holding messages it claimed ahead of head: they are
// received again, each once, and the mailbox ends empty.
TEST_P(QueueingRecovery, AReceiverKilledInsideABatchLosesNothing) {
  Mailbox box = make();
  // 1023 receives first: our next is the 1024th, which looks for the dead before anything
  // else (as a busy receiver does now and then), while head is still at the dead batch's
  // first held message and its second lies ahead of head.
  std::vector<std::byte> message;
  for (int i = 0; i < 1023; ++i) ASSERT_TRUE(box.send(as_bytes("x")) && box.receive(message, no_wait));
  for (const char* text : {"one", "two", "three", "four"}) ASSERT_TRUE(box.send(as_bytes(text)));
  auto receiver = ChildProcess::spawn([&]() -> int {
    auto in = Mailbox::open(name);
    if (!in) return 1;
    // The buffer ends 7 bytes before an unwritable page: "one" and "two" fit, "three"
    // does not, so its copy faults after its claim (ahead of head, in a bounded mailbox),
    // and the process dies there by SIGKILL, holding "two" and "three".
    auto* pages = static_cast<std::byte*>(
        ::mmap(nullptr, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    if (pages == MAP_FAILED || ::mprotect(pages + 4096, 4096, PROT_NONE) != 0) return 2;
    struct sigaction die {};
    die.sa_handler = [](int) { ::raise(SIGKILL); };
    ::sigaction(SIGSEGV, &die, nullptr);
    std::array<std::size_t, 4> sizes{};
    (void)in->receive_many(std::span{pages + 4096 - 7, 64}, sizes, 5s);
    return 3;
  });
  ASSERT_TRUE(receiver.wait(10s).killed_by(SIGKILL));
  std::vector<std::string> got;
  while (auto received = box.receive(message, 2s)) got.push_back(text_of(message));
  // What it had copied out and released went with it: "one", and in an unbounded
  // mailbox (whose batches claim and free one message at a time) "two" too. What it held
  // comes again, after "four" when receivers reach that first.
  std::sort(got.begin(), got.end());
  if (GetParam() == Buffering::bounded) {
    EXPECT_EQ(got, (std::vector<std::string>{"four", "three", "two"}));
  } else {
    EXPECT_EQ(got, (std::vector<std::string>{"four", "three"}));
  }
  EXPECT_EQ(box.queued(), 0u);
}

TEST_P(Recovery, DeadHandlesFreeTheirEntriesForNewProcesses) {
  auto box = Mailbox::create(name, {.buffering = GetParam(), .capacity = 4, .max_message_size = 64, .max_attached = 3});
  ASSERT_TRUE(box);
  for (int round = 0; round < 5; ++round) {
    test::Pipe progress;
    std::vector<ChildProcess> holders;
    for (int i = 0; i < 2; ++i) {
      holders.push_back(ChildProcess::spawn([&]() -> int {
        auto handle = Mailbox::open(name);
        progress.send(handle ? "attached" : handle.error().message());
        for (;;) ::pause();
      }));
    }
    for (int i = 0; i < 2; ++i) ASSERT_EQ(progress.receive(), "attached") << "round " << round;
    for (auto& holder : holders) holder.kill();
    for (auto& holder : holders) holder.wait();
  }
}

TEST(RecoveryUnbounded, AChunkADeadSenderWasBackingIsBackedAgain) {
  const std::string name = test::unique_name("recovery-backing");
  auto box = Mailbox::create(name, {.buffering = Buffering::unbounded, .max_message_size = 64}).value();
  // A process attaches and dies; then its index is written as the backer of the first
  // chunk, as if it had died inside fallocate.
  auto dead = ChildProcess::spawn([&] {
    auto handle = Mailbox::open(name);
    return handle ? 0 : 1;
  });
  ASSERT_TRUE(dead.wait().exited_with(0));
  auto raw = Segment::open("shmbox.mb." + name, Access::read_write).value();
  std::uint64_t table = 0;
  std::memcpy(&table, raw.bytes().data() + 320, sizeof table);
  // The dead handle took attach index 2 (index 1 is ours); pretend it was mid-backing.
  // Its entry must look attached, as a process killed with its handle open leaves it.
  const std::uint64_t identity = 0x7fffffff00000000ull | 4194303u;  // no such process
  std::memcpy(raw.writable_bytes()->data() + 512 + 64, &identity, sizeof identity);
  const std::uint64_t backing = (std::uint64_t{1} << 32) | (std::uint64_t{1} << 30) | 2;
  std::memcpy(raw.writable_bytes()->data() + table, &backing, sizeof backing);
  auto sent = box.send(as_bytes("through"), 5s);
  ASSERT_TRUE(sent) << sent.error().message();
  std::vector<std::byte> message;
  ASSERT_TRUE(box.receive(message, no_wait));
  EXPECT_EQ(text_of(message), "through");
  (void)Mailbox::remove(name);
}

// Forged states below: a handle killed at one exact instruction cannot be arranged,
// but the state it leaves can. Offsets: identity fields and the attach table (layout.hpp).
template <class T>
T peek(const Segment& raw, std::size_t offset) {
  T value{};
  std::memcpy(&value, raw.bytes().data() + offset, sizeof value);
  return value;
}
template <class T>
void poke(Segment& raw, std::size_t offset, T value) {
  std::memcpy(raw.writable_bytes()->data() + offset, &value, sizeof value);
}
constexpr std::size_t attach_table = 512;
constexpr std::uint64_t no_such_process = 0x7fffffff00000000ull | 4194303u;  // pid 2^22 - 1: above any pid_max

TEST_P(QueueingRecovery, AHandleKilledWhileFreeingACancelledPositionNeverDeliversIt) {
  Mailbox box = make();
  auto dead = ChildProcess::spawn([&] { return Mailbox::open(name) ? 0 : 1; });  // takes attach index 2
  ASSERT_TRUE(dead.wait().exited_with(0));
  auto raw = Segment::open("shmbox.mb." + name, Access::read_write).value();
  poke(raw, attach_table + 64, no_such_process);  // as a process killed with its handle open leaves it
  { ASSERT_TRUE(box.loan(8)); }                    // position 0: abandoned, CANCELLED
  ASSERT_TRUE(box.send(as_bytes("after")));        // position 1
  // Index 2 claimed position 0 to free it, and died: SKIPPING, named by the dead index.
  const auto slots = peek<std::uint64_t>(raw, 48);  // Identity::slots_offset
  const std::uint64_t skipping = std::uint64_t{4} << 16 | 2;  // position 0 | phase | owner
  poke(raw, slots, skipping);
  std::vector<std::byte> message;
  ASSERT_TRUE(box.receive(message, 5s));
  EXPECT_EQ(text_of(message), "after");
  // Nothing more, however long recovery has (it frees position 0, never delivers it).
  EXPECT_EQ(box.receive(message, 300ms).error().errc(), Errc::timeout);
  EXPECT_NE(peek<std::uint64_t>(raw, slots), skipping);
  // Position 4 reuses slot 0: free again.
  for (const char* text : {"2", "3", "4", "5"}) ASSERT_TRUE(box.send(as_bytes(text), no_wait)) << text;
  for (const char* text : {"2", "3", "4", "5"}) {
    ASSERT_TRUE(box.receive(message, no_wait));
    EXPECT_EQ(text_of(message), text);
  }
}

TEST_P(QueueingRecovery, AnEntryHeldByARecoveryThatDiedIsRecoveredToo) {
  auto box = Mailbox::create(name, {.buffering = GetParam(), .capacity = 4, .max_message_size = 64, .max_attached = 2});
  ASSERT_TRUE(box);
  ASSERT_NO_FATAL_FAILURE(kill_a_sender_holding_a_claim());
  // A recovery held the dead sender's entry (its identity with bit 31) and died too.
  auto raw = Segment::open("shmbox.mb." + name, Access::read_write).value();
  poke(raw, attach_table + 64, no_such_process | std::uint64_t{1} << 31);
  ASSERT_TRUE(box->send(as_bytes("after")));  // queued behind the dead sender's position
  std::vector<std::byte> message;
  auto got = box->receive(message, 5s);
  ASSERT_TRUE(got) << got.error().message();
  EXPECT_EQ(text_of(message), "after");
  // The entry was freed: the one other handle allowed can attach.
  auto other = ChildProcess::spawn([&] { return Mailbox::open(name) ? 0 : 1; });
  EXPECT_TRUE(other.wait().exited_with(0));
}

INSTANTIATE_TEST_SUITE_P(Mailbox, Recovery, test::all_bufferings, test::buffering_test_name);
INSTANTIATE_TEST_SUITE_P(Mailbox, QueueingRecovery, test::queueing_bufferings, test::buffering_test_name);

}  // namespace
}  // namespace shmbox
