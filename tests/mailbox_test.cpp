#include "shmbox/mailbox.hpp"

#include <gtest/gtest.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <thread>

#include "shmbox/cleanup.hpp"
#include "shmbox/segment.hpp"
#include "support/build.hpp"
#include "support/open_elsewhere.hpp"
#include "support/process.hpp"
#include "support/text.hpp"

namespace shmbox {
namespace {

using namespace std::chrono_literals;
using test::ChildProcess;

using test::text_of;

class MailboxTest : public ::testing::Test {
 protected:
  void TearDown() override { (void)Mailbox::remove(name); }
  Mailbox make(const MailboxOptions& options = {}, const WaitPolicy& wait = {}) {
    auto created = Mailbox::create(name, options, wait);
    EXPECT_TRUE(created) << created.error().message();
    return std::move(*created);
  }
  std::string name = test::unique_name("mailbox");
};

std::string receive_text(Mailbox& box, Deadline deadline = forever) {
  std::vector<std::byte> message;
  auto got = box.receive(message, deadline);
  if (got) return text_of(message);
  std::string failure = "<";  // built in steps: GCC 12 -O3 misreports -Wrestrict on "<" + s + ">"
  failure += got.error().message();
  failure += '>';
  return failure;
}

TEST_F(MailboxTest, SendAndReceiveAcrossProcesses) {
  Mailbox box = make();
  auto receiver = ChildProcess::spawn([&] {
    auto inbox = Mailbox::open(name);
    if (!inbox) return 1;
    for (const char* expected : {"one", "two", "three"}) {
      if (receive_text(*inbox, 10s) != expected) return 2;
    }
    return 0;
  });
  for (const char* text : {"one", "two", "three"}) ASSERT_TRUE(box.send(as_bytes(text)));
  EXPECT_TRUE(receiver.wait().exited_with(0));
}

TEST_F(MailboxTest, EverySizeFromZeroToTheMaximum) {
  Mailbox box = make({.capacity = 4, .max_message_size = 300});
  for (std::size_t size : {std::size_t{0}, std::size_t{1}, std::size_t{48}, std::size_t{49}, std::size_t{300}}) {
    std::vector<std::byte> out(size, std::byte{0x5a});
    ASSERT_TRUE(box.send(out));
    std::vector<std::byte> in;
    ASSERT_TRUE(box.receive(in, no_wait));
    EXPECT_EQ(in, out) << size;
  }
}

TEST_F(MailboxTest, OversizedSendIsRefusedAndSendsNothing) {
  Mailbox box = make({.max_message_size = 16});
  std::vector<std::byte> big(17);
  auto sent = box.send(big);
  ASSERT_FALSE(sent);
  EXPECT_EQ(sent.error().errc(), Errc::too_large);
  EXPECT_EQ(sent.error().message(),
            "mailbox '" + name + "': message of 17 bytes is over the mailbox's maximum of 16");
  EXPECT_EQ(box.queued(), 0u);
  EXPECT_EQ(box.loan(17).error().errc(), Errc::too_large);
}

TEST_F(MailboxTest, SmallBufferLeavesTheMessageQueued) {
  Mailbox box = make();
  ASSERT_TRUE(box.send(as_bytes("hello")));
  std::array<std::byte, 2> small{};
  auto got = box.receive(small, no_wait);
  ASSERT_FALSE(got);
  EXPECT_EQ(got.error().errc(), Errc::too_large);
  EXPECT_EQ(got.error().message(), "mailbox '" + name + "': next message is 5 bytes, the buffer holds 2");
  EXPECT_EQ(receive_text(box, no_wait), "hello");
}

TEST_F(MailboxTest, NonBlockingCallsReturnWouldBlockAtOnce) {
  Mailbox box = make({.capacity = 1});
  auto empty = box.receive_in_place(no_wait);
  ASSERT_FALSE(empty);
  EXPECT_EQ(empty.error().errc(), Errc::would_block);
  EXPECT_EQ(empty.error().message(), "would block");
  ASSERT_TRUE(box.send(as_bytes("x"), no_wait));
  auto full = box.send(as_bytes("y"), no_wait);
  ASSERT_FALSE(full);
  EXPECT_EQ(full.error().errc(), Errc::would_block);
}

TEST_F(MailboxTest, TimedReceiveHonoursItsTimeout) {
  Mailbox box = make();
  const auto start = std::chrono::steady_clock::now();
  std::vector<std::byte> message;
  auto got = box.receive(message, 150ms);
  const auto waited = std::chrono::steady_clock::now() - start;
  ASSERT_FALSE(got);
  EXPECT_EQ(got.error().errc(), Errc::timeout);
  EXPECT_EQ(got.error().message(), "mailbox '" + name + "': timed out");
  EXPECT_GE(waited, 150ms);
  EXPECT_LT(waited, 5s);
}

TEST_F(MailboxTest, TimedSendOnAFullMailboxTimesOut) {
  Mailbox box = make({.capacity = 1});
  ASSERT_TRUE(box.send(as_bytes("a")));
  const auto start = std::chrono::steady_clock::now();
  auto sent = box.send(as_bytes("b"), 100ms);
  ASSERT_FALSE(sent);
  EXPECT_EQ(sent.error().errc(), Errc::timeout);
  EXPECT_GE(std::chrono::steady_clock::now() - start, 100ms);
  EXPECT_EQ(box.queued(), 1u);
}

TEST_F(MailboxTest, BoundedSenderBlocksAtCapacityAndResumesWhenOneIsTaken) {
  Mailbox box = make({.capacity = 2});
  ASSERT_TRUE(box.send(as_bytes("1")));
  ASSERT_TRUE(box.send(as_bytes("2")));
  test::Pipe progress;
  auto sender = ChildProcess::spawn([&] {
    auto outbox = Mailbox::open(name);
    if (!outbox) return 1;
    progress.send("sending");
    if (!outbox->send(as_bytes("3"))) return 2;
    progress.send("sent");
    return 0;
  });
  ASSERT_EQ(progress.receive(), "sending");
  EXPECT_EQ(progress.receive(300ms), std::nullopt) << "a sender went past a full mailbox";
  EXPECT_EQ(box.queued(), 2u);
  EXPECT_EQ(receive_text(box), "1");
  EXPECT_EQ(progress.receive(10s), "sent");
  EXPECT_TRUE(sender.wait().exited_with(0));
  EXPECT_EQ(receive_text(box), "2");
  EXPECT_EQ(receive_text(box), "3");
}

TEST_F(MailboxTest, CloseWakesABlockedReceiverInAnotherProcess) {
  Mailbox box = make({}, {.mode = WaitMode::sleep});
  test::Pipe progress;
  auto receiver = ChildProcess::spawn([&] {
    auto inbox = Mailbox::open(name, {.mode = WaitMode::sleep});
    if (!inbox) return 1;
    progress.send("waiting");
    std::vector<std::byte> message;
    auto got = inbox->receive(message);
    return !got && got.error().errc() == Errc::closed ? 0 : 2;
  });
  ASSERT_EQ(progress.receive(), "waiting");
  std::this_thread::sleep_for(100ms);
  ASSERT_TRUE(box.close());
  EXPECT_TRUE(receiver.wait(10s).exited_with(0));
}

TEST_F(MailboxTest, CloseWakesABlockedSender) {
  Mailbox box = make({.capacity = 1});
  ASSERT_TRUE(box.send(as_bytes("fill")));
  test::Pipe progress;
  auto sender = ChildProcess::spawn([&] {
    auto outbox = Mailbox::open(name);
    if (!outbox) return 1;
    progress.send("sending");
    auto sent = outbox->send(as_bytes("more"));
    return !sent && sent.error().errc() == Errc::closed ? 0 : 2;
  });
  ASSERT_EQ(progress.receive(), "sending");
  std::this_thread::sleep_for(100ms);
  ASSERT_TRUE(box.close());
  EXPECT_TRUE(sender.wait(10s).exited_with(0));
}

TEST_F(MailboxTest, AfterCloseReceiversDrainThenGetClosed) {
  Mailbox box = make();
  ASSERT_TRUE(box.send(as_bytes("a")));
  ASSERT_TRUE(box.send(as_bytes("b")));
  ASSERT_TRUE(box.close());
  EXPECT_TRUE(box.closed());
  auto sent = box.send(as_bytes("c"));
  ASSERT_FALSE(sent);
  EXPECT_EQ(sent.error().errc(), Errc::closed);
  EXPECT_EQ(sent.error().message(), "mailbox '" + name + "': is closed");
  EXPECT_EQ(box.loan(1).error().errc(), Errc::closed);
  EXPECT_EQ(receive_text(box), "a");
  EXPECT_EQ(receive_text(box), "b");
  EXPECT_EQ(receive_text(box), "<mailbox '" + name + "': is closed>");
}

TEST_F(MailboxTest, ZeroCapacitySendReturnsOnlyAfterTheReceiverTookIt) {
  Mailbox box = make({.buffering = Buffering::zero});
  EXPECT_EQ(box.capacity(), 0u);
  test::Pipe go;
  auto receiver = ChildProcess::spawn([&] {
    auto inbox = Mailbox::open(name);
    if (!inbox || go.receive() != "go") return 1;
    std::this_thread::sleep_for(300ms);  // counted from the parent's start: it sent "go" after
    return receive_text(*inbox, 10s) == "rendezvous" ? 0 : 2;
  });
  const auto start = std::chrono::steady_clock::now();
  go.send("go");
  ASSERT_TRUE(box.send(as_bytes("rendezvous")));
  EXPECT_GE(std::chrono::steady_clock::now() - start, 300ms);
  EXPECT_EQ(box.queued(), 0u);
  EXPECT_TRUE(receiver.wait().exited_with(0));
}

TEST_F(MailboxTest, ZeroCapacityNonBlockingSendNeedsAWaitingReceiver) {
  Mailbox box = make({.buffering = Buffering::zero});
  auto alone = box.send(as_bytes("nobody"), no_wait);
  ASSERT_FALSE(alone);
  EXPECT_EQ(alone.error().errc(), Errc::would_block);

  auto receiver = ChildProcess::spawn([&] {
    auto inbox = Mailbox::open(name);
    return inbox && receive_text(*inbox, 20s) == "somebody" ? 0 : 1;
  });
  const auto give_up = std::chrono::steady_clock::now() + 20s;
  Result<void> sent = std::unexpected(Error{Errc::would_block, {}, {}});
  while (!sent && std::chrono::steady_clock::now() < give_up) {
    sent = box.send(as_bytes("somebody"), no_wait);
    if (!sent) {
      ASSERT_EQ(sent.error().errc(), Errc::would_block);
      std::this_thread::sleep_for(5ms);
    }
  }
  EXPECT_TRUE(sent);
  EXPECT_TRUE(receiver.wait().exited_with(0));
}

TEST_F(MailboxTest, ZeroCapacityTimedOutSendIsNeverReceived) {
  Mailbox box = make({.buffering = Buffering::zero});
  auto sent = box.send(as_bytes("too late"), 100ms);
  ASSERT_FALSE(sent);
  EXPECT_EQ(sent.error().errc(), Errc::timeout);
  auto receiver = ChildProcess::spawn([&] {
    auto inbox = Mailbox::open(name);
    if (!inbox) return 1;
    std::vector<std::byte> message;
    auto got = inbox->receive(message, 300ms);
    return !got && got.error().errc() == Errc::timeout ? 0 : 2;
  });
  EXPECT_TRUE(receiver.wait().exited_with(0));
}

TEST_F(MailboxTest, ZeroCapacityCloseWakesAWaitingSender) {
  Mailbox box = make({.buffering = Buffering::zero});
  test::Pipe progress;
  auto sender = ChildProcess::spawn([&] {
    auto outbox = Mailbox::open(name);
    if (!outbox) return 1;
    progress.send("sending");
    auto sent = outbox->send(as_bytes("x"));
    return !sent && sent.error().errc() == Errc::closed ? 0 : 2;
  });
  ASSERT_EQ(progress.receive(), "sending");
  std::this_thread::sleep_for(100ms);
  ASSERT_TRUE(box.close());
  EXPECT_TRUE(sender.wait(10s).exited_with(0));
  EXPECT_EQ(box.receive_in_place(no_wait).error().errc(), Errc::closed);  // taken back: nothing to drain
}

TEST_F(MailboxTest, LoanCommitAndAbandon) {
  Mailbox box = make({.capacity = 2, .max_message_size = 64});
  {
    auto abandoned = box.loan(8);
    ASSERT_TRUE(abandoned);
    std::memcpy(abandoned->data().data(), "ignored!", 8);
  }  // abandoned by its destructor
  auto loan = box.loan(64);
  ASSERT_TRUE(loan);
  EXPECT_EQ(loan->data().size(), 64u);
  std::memcpy(loan->data().data(), "in place", 8);
  ASSERT_TRUE(loan->commit(8));
  auto again = loan->commit(8);
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().errc(), Errc::invalid_argument);

  auto message = box.receive_in_place(no_wait);
  ASSERT_TRUE(message) << message.error().message();
  EXPECT_EQ(text_of(message->data()), "in place");
  message->release();
  EXPECT_TRUE(message->data().empty());
  EXPECT_EQ(box.receive_in_place(no_wait).error().errc(), Errc::would_block);
}

TEST_F(MailboxTest, LoanCommitLargerThanTheLoanIsRefused) {
  Mailbox box = make();
  auto loan = box.loan(4);
  ASSERT_TRUE(loan);
  auto committed = loan->commit(5);
  ASSERT_FALSE(committed);
  EXPECT_EQ(committed.error().errc(), Errc::too_large);
  EXPECT_EQ(committed.error().message(), "mailbox '" + name + "': commit of 5 bytes exceeds the loan of 4");
}

TEST_F(MailboxTest, ReceivedInPlaceHoldsItsSlotUntilReleased) {
  Mailbox box = make({.capacity = 1});
  ASSERT_TRUE(box.send(as_bytes("held")));
  auto message = box.receive_in_place();
  ASSERT_TRUE(message);
  EXPECT_EQ(box.send(as_bytes("next"), no_wait).error().errc(), Errc::would_block);
  message->release();
  EXPECT_TRUE(box.send(as_bytes("next"), no_wait));
}

struct Point {
  int x;
  double y;
};

TEST_F(MailboxTest, TypedValues) {
  Mailbox box = make();
  ASSERT_TRUE(box.send_value(Point{3, 4.5}));
  auto point = box.receive_value<Point>(no_wait);
  ASSERT_TRUE(point);
  EXPECT_EQ(point->x, 3);
  EXPECT_EQ(point->y, 4.5);
  ASSERT_TRUE(box.send_value(std::uint16_t{7}));
  auto wrong = box.receive_value<Point>(no_wait);
  ASSERT_FALSE(wrong);
  EXPECT_EQ(wrong.error().errc(), Errc::invalid_argument);
  EXPECT_EQ(wrong.error().message(),
            "mailbox '" + name + "': received a message of 2 bytes where " + std::to_string(sizeof(Point)) +
                " were expected");
}

TEST_F(MailboxTest, IdleBlockedReceiverUsesNoCpuAfterItsSpinBudget) {
  Mailbox box = make();
  auto receiver = ChildProcess::spawn([&] {
    auto inbox = Mailbox::open(name);
    if (!inbox) return 1;
    std::vector<std::byte> message;
    (void)inbox->receive(message, 1s);
    rusage usage{};
    ::getrusage(RUSAGE_SELF, &usage);
    const long cpu_us = (usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) * 1'000'000L + usage.ru_utime.tv_usec +
                        usage.ru_stime.tv_usec;
    return cpu_us < 100'000 ? 0 : 2;  // 1 s asleep: well under 10% even with start-up
  });
  EXPECT_TRUE(receiver.wait().exited_with(0));
}

// The spin budget grows with the size of the messages passing, and stays bounded: after a
// 1 MiB message a receiver with nothing to read still sleeps within a millisecond.
TEST_F(MailboxTest, SpinBudgetScalesWithTheMessageSizeAndAnIdleReceiverStillSleeps) {
  constexpr WaitPolicy policy{};
  static_assert(policy.spin_for(0) == 20us);
  static_assert(policy.spin_for(64 * 1024) == 20us + 16384ns);
  static_assert(policy.spin_for(1024 * 1024) == 20us + 262144ns);
  Mailbox box = make({.capacity = 2, .max_message_size = 1024 * 1024});
  ASSERT_TRUE(box.send(std::vector<std::byte>(1024 * 1024, std::byte{7})));
  auto receiver = ChildProcess::spawn([&] {
    auto inbox = Mailbox::open(name);
    if (!inbox) return 1;
    std::vector<std::byte> message;
    if (!inbox->receive(message) || message.size() != 1024 * 1024) return 2;
    rusage before{};
    ::getrusage(RUSAGE_SELF, &before);
    if (inbox->receive(message, 1s).error().errc() != Errc::timeout) return 3;
    rusage after{};
    ::getrusage(RUSAGE_SELF, &after);
    const auto cpu_us = [](const rusage& usage) {
      return (usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) * 1'000'000L + usage.ru_utime.tv_usec +
             usage.ru_stime.tv_usec;
    };
    return cpu_us(after) - cpu_us(before) < 100'000 ? 0 : 4;  // 1 s asleep but for 282 us
  });
  EXPECT_TRUE(receiver.wait().exited_with(0));
}

TEST_F(MailboxTest, DefaultModeIs0600) {
  Mailbox box = make();
  EXPECT_EQ(Mailbox::stat(name)->local()->mode, 0600u);
}

TEST_F(MailboxTest, StatAndList) {
  Mailbox box = make({.capacity = 5, .max_message_size = 100, .mode = 0640});
  ASSERT_TRUE(box.send(as_bytes("x")));
  auto status = Mailbox::stat(name);
  ASSERT_TRUE(status) << status.error().message();
  EXPECT_EQ(status->name, name);
  EXPECT_EQ(status->buffering, Buffering::bounded);
  EXPECT_EQ(status->capacity, 5u);
  EXPECT_EQ(status->max_message_size, 100u);
  EXPECT_EQ(status->queued, 1u);
  EXPECT_FALSE(status->closed);
  EXPECT_EQ(status->local()->mode, 0640u);
  EXPECT_EQ(status->local()->attached, 1u);
  const auto names = Mailbox::list();
  EXPECT_NE(std::find(names.begin(), names.end(), name), names.end());
}

TEST_F(MailboxTest, RemoveClosesForThoseStillAttached) {
  Mailbox box = make();
  ASSERT_TRUE(Mailbox::remove(name));
  EXPECT_TRUE(box.closed());
  EXPECT_EQ(Mailbox::open(name).error().errc(), Errc::not_found);
}

TEST_F(MailboxTest, AttachLimitAndDeadHoldersAreReclaimed) {
  Mailbox box = make({.max_attached = 2});
  test::Pipe progress;
  auto holder = ChildProcess::spawn([&]() -> int {
    auto opened = Mailbox::open(name);
    progress.send(opened ? "attached" : "failed");
    ::pause();
    return 0;
  });
  ASSERT_EQ(progress.receive(), "attached");
  auto third = Mailbox::open(name);
  ASSERT_FALSE(third);
  EXPECT_EQ(third.error().errc(), Errc::no_space);
  EXPECT_EQ(third.error().message(),
            "mailbox '" + name + "': all 2 attach entries are held by live handles (raise max_attached)");
  holder.kill();
  holder.wait();
  EXPECT_TRUE(Mailbox::open(name));
}

// Creation and opening errors, each with its exact error.
TEST_F(MailboxTest, CreateExistingIsAlreadyExists) {
  Mailbox box = make();
  auto again = Mailbox::create(name);
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().errc(), Errc::already_exists);
  EXPECT_EQ(again.error().message(), "mailbox '" + name + "': cannot create: already exists (File exists)");
}

TEST_F(MailboxTest, OpenMissingIsNotFound) {
  auto opened = Mailbox::open(name);
  ASSERT_FALSE(opened);
  EXPECT_EQ(opened.error().errc(), Errc::not_found);
  EXPECT_EQ(opened.error().message(), "mailbox '" + name + "': cannot open: does not exist (No such file or directory)");
  EXPECT_EQ(Mailbox::stat(name).error().errc(), Errc::not_found);
  EXPECT_EQ(Mailbox::remove(name).error().errc(), Errc::not_found);
}

TEST_F(MailboxTest, BadOptionsAreInvalidArguments) {
  struct Case {
    MailboxOptions options;
    std::string detail;
  };
  for (const auto& [options, detail] :
       {Case{{.capacity = 0}, "a bounded mailbox needs a capacity of at least 1 (or zero buffering)"},
        Case{{.max_message_size = (1u << 30) + 1}, "max message size 1073741825 is over the limit of 1073741824 bytes"},
        Case{{.mode = 01777}, "mode must be permission bits within 0777"},
        Case{{.max_attached = 0}, "max attached must be from 1 to 65534"}}) {
    auto created = Mailbox::create(name, options);
    ASSERT_FALSE(created);
    EXPECT_EQ(created.error().errc(), Errc::invalid_argument);
    EXPECT_EQ(created.error().detail(), detail);
  }
  auto huge = Mailbox::create(name, {.capacity = 1u << 31, .max_message_size = 1u << 20});
  ASSERT_FALSE(huge);
  EXPECT_EQ(huge.error().errc(), Errc::too_large);
}

TEST_F(MailboxTest, InvalidNamesAreRejected) {
  EXPECT_EQ(Mailbox::create("a/b").error().errc(), Errc::invalid_name);
  EXPECT_EQ(Mailbox::open("").error().errc(), Errc::invalid_name);
  auto long_name = Mailbox::create(std::string(246, 'm'));
  ASSERT_FALSE(long_name);
  EXPECT_EQ(long_name.error().detail(), "name is 246 characters long, the limit is 245");
  EXPECT_EQ(Mailbox::stat("..").error().errc(), Errc::invalid_name);
  EXPECT_EQ(Mailbox::remove("x y").error().errc(), Errc::invalid_name);
}

TEST_F(MailboxTest, AnotherUserIsDenied) {
  if (!test::running_as_root()) GTEST_SKIP() << "needs root to switch to another uid";
  Mailbox box = make();
  auto child = ChildProcess::spawn([&] {
    if (!test::drop_privileges()) return 10;
    if (Mailbox::open(name).error().errc() != Errc::permission_denied) return 1;
    if (Mailbox::stat(name).error().errc() != Errc::permission_denied) return 2;
    if (Mailbox::remove(name).error().errc() != Errc::permission_denied) return 3;
    return 0;
  });
  EXPECT_TRUE(child.wait().exited_with(0));
}

// The file behind a mailbox, for tests that write into it directly.
Segment raw_file(const std::string& name) { return Segment::open("shmbox.mb." + name, Access::read_write).value(); }

TEST_F(MailboxTest, LayoutVersionMismatchIsItsOwnError) {
  Mailbox box = make();
  auto raw = raw_file(name);
  const std::uint32_t version = 99;
  std::memcpy(raw.writable_bytes()->data() + 8, &version, sizeof version);
  auto opened = Mailbox::open(name);
  ASSERT_FALSE(opened);
  EXPECT_EQ(opened.error().errc(), Errc::version_mismatch);
  EXPECT_EQ(opened.error().message(), "mailbox '" + name + "': has layout version 99; this build reads version 5");
}

TEST_F(MailboxTest, LayoutVersionMismatchFromStatAndRemove) {
  Mailbox box = make();
  auto raw = raw_file(name);
  const std::uint32_t version = 6;
  std::memcpy(raw.writable_bytes()->data() + 8, &version, sizeof version);
  auto status = Mailbox::stat(name);
  ASSERT_FALSE(status);
  EXPECT_EQ(status.error().errc(), Errc::version_mismatch);
  EXPECT_EQ(status.error().message(), "mailbox '" + name + "': has layout version 6; this build reads version 5");
  EXPECT_TRUE(Mailbox::remove(name));  // removal needs no understanding of the layout
  EXPECT_EQ(Mailbox::open(name).error().errc(), Errc::not_found);
}

TEST_F(MailboxTest, WrongMagicIsCorrupt) {
  Mailbox box = make();
  auto raw = raw_file(name);
  raw.writable_bytes()->data()[0] = std::byte{'X'};
  auto opened = Mailbox::open(name);
  ASSERT_FALSE(opened);
  EXPECT_EQ(opened.error().errc(), Errc::corrupt);
  EXPECT_EQ(opened.error().message(), "mailbox '" + name + "': is not a mailbox (bad magic number)");
  EXPECT_EQ(Mailbox::stat(name).error().errc(), Errc::corrupt);
  EXPECT_TRUE(Mailbox::remove(name));  // a corrupt mailbox can still be removed
}

TEST_F(MailboxTest, TruncatedFileIsCorrupt) {
  Mailbox box = make({.capacity = 8});
  auto raw = raw_file(name);
  ASSERT_TRUE(raw.resize(4096));
  auto opened = Mailbox::open(name);
  ASSERT_FALSE(opened);
  EXPECT_EQ(opened.error().errc(), Errc::corrupt);
  EXPECT_NE(opened.error().detail().find("shorter than its header says"), std::string::npos);
}

// A mailbox file is named only once sized, so an empty one is no mailbox in the making:
// for a moment it may be another program's, made in place (not ready), and once left so
// for 2 s it is corrupt, until a create under the name reclaims it.
TEST_F(MailboxTest, AFileTruncatedToNothingIsNotReadyForAMomentThenCorrupt) {
  {
    Mailbox box = make({.capacity = 8, .ownership = Ownership::system});
    ASSERT_TRUE(box.send(as_bytes("lost with the truncation")));
  }  // a mapping of a truncated file faults when touched
  const std::string path = "/dev/shm/shmbox.mb." + name;
  ASSERT_EQ(::truncate(path.c_str(), 0), 0);
  const std::string object = "mailbox '" + name + "': ";
  auto young = Mailbox::open(name);
  ASSERT_FALSE(young);
  EXPECT_EQ(young.error().errc(), Errc::not_ready);
  EXPECT_EQ(young.error().message(), object + "is empty: its creator has not sized it yet");
  std::this_thread::sleep_for(2200ms);
  const std::string left = object + "is empty (0 bytes) and has been for over 2 s: it was truncated, or its creator is gone";
  const auto refused = test::open_error_in_another_process(name);
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->errc(), Errc::corrupt);
  EXPECT_EQ(refused->message(), left);
  auto status = Mailbox::stat(name);
  ASSERT_FALSE(status);
  EXPECT_EQ(status.error().errc(), Errc::corrupt);
  EXPECT_EQ(status.error().message(), left);
  EXPECT_EQ(::access(path.c_str(), F_OK), 0) << "open and stat only say so";
  auto again = Mailbox::create(name);
  ASSERT_TRUE(again) << again.error().message();
  ASSERT_TRUE(again->send(as_bytes("fresh")));
  EXPECT_EQ(receive_text(*again), "fresh");
}

TEST_F(MailboxTest, AnEmptyFileWhoseCreatorHoldsALockIsNotGarbageUntilTheCreatorGoes) {
  // Another program making a file in place under a mailbox's name, slowly: its record
  // lock says it is still at work.
  const std::string path = "/dev/shm/shmbox.mb." + name;
  test::Pipe progress;
  auto creator = ChildProcess::spawn([&]() -> int {
    const int fd = ::open(path.c_str(), O_CREAT | O_EXCL | O_RDWR, 0600);
    struct flock lock {};
    lock.l_type = F_WRLCK;
    lock.l_whence = SEEK_SET;
    if (fd < 0 || ::fcntl(fd, F_OFD_SETLK, &lock) != 0) return 1;
    progress.send("locked");
    for (;;) ::pause();
  });
  ASSERT_EQ(progress.receive(), "locked");
  std::this_thread::sleep_for(2200ms);
  EXPECT_EQ(Mailbox::open(name).error().errc(), Errc::not_ready);
  EXPECT_EQ(Mailbox::stat(name).error().errc(), Errc::not_ready);
  EXPECT_EQ(Mailbox::create(name).error().errc(), Errc::already_exists);
  creator.kill();
  ASSERT_TRUE(creator.wait().killed_by(SIGKILL));
  EXPECT_EQ(Mailbox::open(name).error().errc(), Errc::corrupt);
}

}  // namespace
}  // namespace shmbox

namespace shmbox {
namespace {

std::size_t memory_of(const std::string& name) { return Mailbox::stat(name).value().local()->memory_bytes; }

TEST_F(MailboxTest, UnboundedSenderNeverBlocksWhileItGrowsAHundredfoldAndTheMemoryComesBack) {
  Mailbox box = make({.buffering = Buffering::unbounded, .max_message_size = 1000});
  EXPECT_EQ(box.buffering(), Buffering::unbounded);
  const std::size_t empty = memory_of(name);
  constexpr std::uint32_t count = 16'000;
  std::array<std::byte, 1000> message{};
  for (std::uint32_t i = 0; i < count; ++i) {
    std::memcpy(message.data(), &i, sizeof i);
    auto sent = box.send(message, no_wait);  // never has to wait
    ASSERT_TRUE(sent) << i << ": " << sent.error().message();
  }
  const std::size_t full = memory_of(name);
  EXPECT_GE(full, 100 * empty) << "empty " << empty << ", full " << full;
  EXPECT_EQ(box.queued(), count);

  auto receiver = ChildProcess::spawn([&] {
    auto inbox = Mailbox::open(name);
    if (!inbox) return 1;
    std::array<std::byte, 1000> got{};
    for (std::uint32_t i = 0; i < count; ++i) {
      auto size = inbox->receive(got, no_wait);
      std::uint32_t sequence = 0;
      std::memcpy(&sequence, got.data(), sizeof sequence);
      if (!size || *size != 1000 || sequence != i) return 2;
    }
    return 0;
  });
  ASSERT_TRUE(receiver.wait().exited_with(0));
  const std::size_t drained = memory_of(name);
  // Everything but the chunk the next message goes to has been given back (that
  // chunk may occupy a 2 MiB huge page).
  EXPECT_LT(drained, full / 4) << "full " << full << ", drained " << drained;
}

TEST_F(MailboxTest, UnboundedOutOfMemoryFailsTheSendAndLosesNothing) {
  if (!test::running_as_root()) GTEST_SKIP() << "needs root to mount a small /dev/shm";
  auto child = ChildProcess::spawn([&] {
    if (!test::private_dev_shm("8m")) {
      return 10;
    }
    auto box = Mailbox::create(name, {.buffering = Buffering::unbounded, .max_message_size = 1000});
    if (!box) return 1;
    std::array<std::byte, 1000> message{};
    std::uint32_t sent = 0;
    for (;; ++sent) {
      std::memcpy(message.data(), &sent, sizeof sent);
      auto result = box->send(message, no_wait);
      if (result) continue;
      if (result.error().errc() != Errc::out_of_memory) return 2;
      if (result.error().message().find("mailbox '" + name + "': cannot grow by ") != 0) return 3;
      break;
    }
    if (sent < 1000) return 4;
    for (std::uint32_t i = 0; i < sent; ++i) {
      auto size = box->receive(message, no_wait);
      std::uint32_t sequence = 0;
      std::memcpy(&sequence, message.data(), sizeof sequence);
      if (!size || sequence != i) return 5;
    }
    // Drained, the memory is back: sending works again.
    return box->send(message, no_wait) ? 0 : 6;
  });
  const auto status = child.wait();
  if (status.exited_with(10)) GTEST_SKIP() << "cannot mount a private /dev/shm here (no CAP_SYS_ADMIN?)";
  EXPECT_TRUE(status.exited_with(0)) << status.describe();
}

TEST_F(MailboxTest, UnboundedRingWrapsAroundItsVirtualRange) {
  if (!test::running_as_root()) GTEST_SKIP() << "needs root to mount a small /dev/shm";
  // An 8 MiB /dev/shm gives a virtual range of 16 MiB, 16 chunks of 16384 slots:
  // 600,000 messages through it wrap the ring twice.
  auto child = ChildProcess::spawn([&] {
    if (!test::private_dev_shm("8m")) {
      return 10;
    }
    auto box = Mailbox::create(name, {.buffering = Buffering::unbounded, .max_message_size = 48});
    if (!box) return 1;
    std::array<std::byte, 48> message{};
    std::uint64_t next_in = 0, next_out = 0;
    if (Mailbox::stat(name).value().local()->memory_bytes > (1u << 20)) return 5;
    for (int round = 0; round < 600; ++round) {
      for (int i = 0; i < 1000; ++i, ++next_in) {
        std::memcpy(message.data(), &next_in, sizeof next_in);
        if (!box->send(message, no_wait)) return 2;
      }
      for (int i = 0; i < 1000; ++i, ++next_out) {
        std::uint64_t sequence = 0;
        if (!box->receive(message, no_wait)) return 3;
        std::memcpy(&sequence, message.data(), sizeof sequence);
        if (sequence != next_out) return 4;
      }
    }
    return 0;
  });
  const auto status = child.wait(120s);
  if (status.exited_with(10)) GTEST_SKIP() << "cannot mount a private /dev/shm here (no CAP_SYS_ADMIN?)";
  EXPECT_TRUE(status.exited_with(0)) << status.describe();
}

}  // namespace
}  // namespace shmbox

namespace shmbox {
namespace {

TEST_F(MailboxTest, ZeroCapacityTimedSendsWithNoReceiverNeverPileUp) {
  // Every expired send leaves a taken-back slot; with only two slots the third send
  // must free one rather than wait for a receiver that never comes.
  Mailbox box = make({.buffering = Buffering::zero, .max_attached = 2});
  auto child = ChildProcess::spawn([&] {
    auto sender = Mailbox::open(name);
    if (!sender) return 1;
    for (int i = 0; i < 10; ++i) {
      auto sent = sender->send(as_bytes("x"), 10ms);
      if (sent || sent.error().errc() != Errc::timeout) return 2;
      auto quick = sender->send(as_bytes("y"), no_wait);
      if (quick || quick.error().errc() != Errc::would_block) return 3;
    }
    return 0;
  });
  EXPECT_TRUE(child.wait(20s).exited_with(0));
}

TEST_F(MailboxTest, AReceiverWhoseBufferIsTooSmallPassesItsWakeUpOn) {
  Mailbox box = make({}, {.mode = WaitMode::sleep});
  test::Pipe progress;
  auto small = ChildProcess::spawn([&] {
    auto inbox = Mailbox::open(name, {.mode = WaitMode::sleep});
    std::array<std::byte, 4> buffer{};
    progress.send("small waiting");
    auto got = inbox->receive(buffer, 10s);
    return !got && got.error().errc() == Errc::too_large ? 0 : 1;
  });
  auto large = ChildProcess::spawn([&] {
    auto inbox = Mailbox::open(name, {.mode = WaitMode::sleep});
    std::vector<std::byte> message;
    progress.send("large waiting");
    return inbox->receive(message, 10s) && message.size() == 33 ? 0 : 1;
  });
  ASSERT_TRUE(progress.receive());
  ASSERT_TRUE(progress.receive());
  std::this_thread::sleep_for(100ms);  // both asleep
  ASSERT_TRUE(box.send(std::vector<std::byte>(33)));
  const auto start = std::chrono::steady_clock::now();
  EXPECT_TRUE(large.wait(20s).exited_with(0));
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5s) << "the large receiver slept past the message";
  small.kill();
}

TEST_F(MailboxTest, LoansAndHeldMessagesSurviveMovingTheMailbox) {
  Mailbox box = make();
  auto loan = box.loan(4).value();
  Mailbox moved = std::move(box);
  std::memcpy(loan.data().data(), "move", 4);
  ASSERT_TRUE(loan.commit());
  auto held = moved.receive_in_place(no_wait).value();
  Mailbox again = std::move(moved);
  EXPECT_EQ(text_of(held.data()), "move");
  held.release();
  EXPECT_EQ(again.queued(), 0u);
}

}  // namespace
}  // namespace shmbox

namespace shmbox {
namespace {

TEST_F(MailboxTest, UnboundedRingWrapsUnderConcurrentSendersAndReceivers) {
  if (!test::running_as_root()) GTEST_SKIP() << "needs root to mount a small /dev/shm";
  // 3 senders and 3 receivers through a 16-chunk virtual range, laps over: chunks
  // are backed, drained, punched and backed again while other processes use their
  // neighbours. Every message arrives exactly once and in each sender's order.
  auto child = ChildProcess::spawn([&] {
    if (!test::private_dev_shm("8m")) {
      return 10;
    }
    // 262,144 slots in the range: 3 x 100,000 still wraps it.
    constexpr std::uint32_t per_sender = test::sanitized_build ? 100'000 : 200'000;
    auto box = Mailbox::create(name, {.buffering = Buffering::unbounded, .max_message_size = 48});
    auto counts = Segment::create(name + "-counts", 3 * per_sender);
    if (!box || !counts) return 1;
    auto* seen = reinterpret_cast<std::atomic<std::uint8_t>*>(counts->writable_bytes()->data());
    std::vector<ChildProcess> workers;
    for (std::uint32_t s = 0; s < 3; ++s) {
      workers.push_back(ChildProcess::spawn([&, s] {
        auto out = Mailbox::open(name);
        std::array<std::uint32_t, 2> message{s, 0};
        for (std::uint32_t i = 0; i < per_sender; ++i) {
          message[1] = i;
          // Back-pressure by hand: an unbounded sender never waits, but the 8 MiB
          // /dev/shm must not fill.
          while (out->queued() > 10'000) std::this_thread::yield();
          if (auto sent = out->send(std::as_bytes(std::span{message})); !sent) {
            std::fprintf(stderr, "sender %u: %s\n", s, sent.error().message().c_str());
            return 1;
          }
        }
        return 0;
      }));
    }
    for (int r = 0; r < 3; ++r) {
      workers.push_back(ChildProcess::spawn([&] {
        auto in = Mailbox::open(name);
        std::array<std::int64_t, 3> last{-1, -1, -1};
        std::array<std::uint32_t, 2> message{};
        for (;;) {
          auto got = in->receive(std::as_writable_bytes(std::span{message}));
          if (!got) return got.error().errc() == Errc::closed ? 0 : 2;
          if (message[0] >= 3 || message[1] >= per_sender || message[1] <= last[message[0]]) return 3;
          last[message[0]] = message[1];
          seen[message[0] * per_sender + message[1]].fetch_add(1);
        }
      }));
    }
    for (std::size_t i = 0; i < 3; ++i) {
      if (!workers[i].wait(120s).exited_with(0)) return 4;
    }
    while (box->queued() != 0) std::this_thread::sleep_for(1ms);
    if (!box->close()) return 5;
    for (std::size_t i = 3; i < workers.size(); ++i) {
      if (!workers[i].wait(60s).exited_with(0)) return 6;
    }
    for (std::uint32_t i = 0; i < 3 * per_sender; ++i) {
      if (seen[i].load() != 1) return 7;
    }
    return 0;
  });
  const auto status = child.wait(240s);
  if (status.exited_with(10)) GTEST_SKIP() << "cannot mount a private /dev/shm here (no CAP_SYS_ADMIN?)";
  EXPECT_TRUE(status.exited_with(0)) << status.describe();
}

// The calls that take a server refuse a name that is no server's, rather than answering
// for this machine's mailboxes.
TEST(MailboxNames, ListingOrCollectingGarbageOnWhatIsNoServerIsInvalidName) {
  const std::string said = "server 'orders': a server is nats://host[:port][,host[:port]...]";
  auto listed = Mailbox::list("orders");
  ASSERT_FALSE(listed);
  EXPECT_EQ(listed.error().errc(), Errc::invalid_name);
  EXPECT_EQ(listed.error().message(), said);
  auto collected = collect_garbage("orders");
  ASSERT_FALSE(collected);
  EXPECT_EQ(collected.error().errc(), Errc::invalid_name);
  EXPECT_EQ(collected.error().message(), said);
}

}  // namespace
}  // namespace shmbox
