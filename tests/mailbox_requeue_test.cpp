// Putting a received message back (ReceivedMessage::requeue, Mailbox::receive_with):
// the message is received next, by any process, with its sequence, in every buffering;
// stat counts it; a receiver asleep on the empty mailbox wakes for it; and a receiver
// that dies halfway through a put-back loses nothing.
#include <gtest/gtest.h>

#include <stdexcept>
#include <thread>

#include "local/layout.hpp"
#include "shmbox/mailbox.hpp"
#include "support/buffering.hpp"
#include "support/process.hpp"
#include "support/text.hpp"

namespace shmbox {
namespace {

using namespace std::chrono_literals;
using test::ChildProcess;
using test::text_of;

class MailboxRequeue : public ::testing::TestWithParam<Buffering> {
 protected:
  void SetUp() override {
    auto created = Mailbox::create(name, {.buffering = GetParam(), .capacity = 4, .max_message_size = 32,
                                          .ownership = Ownership::system});
    ASSERT_TRUE(created) << created.error().message();
    box.emplace(std::move(*created));
  }
  void TearDown() override { (void)Mailbox::remove(name); }

  // Queues each text: a zero-capacity mailbox needs a sender waiting in another process
  // for each, so a child sends them one after the other, each once it has been taken.
  std::optional<ChildProcess> queue(std::vector<std::string> texts) {
    if (GetParam() != Buffering::zero) {
      for (const auto& text : texts) EXPECT_TRUE(box->send(as_bytes(text)));
      return std::nullopt;
    }
    return ChildProcess::spawn([this, texts] {
      auto sender = Mailbox::open(name);
      if (!sender) return 1;
      for (const auto& text : texts) {
        if (!sender->send(as_bytes(text), 10s)) return 2;
      }
      return 0;
    });
  }
  // Zero capacity: the child's sends have returned once their messages were taken.
  static void expect_sent(std::optional<ChildProcess>& sender) {
    if (sender) {
      EXPECT_TRUE(sender->wait().exited_with(0));
    }
  }
  std::string receive_text(Mailbox& from, Deadline deadline = 10s) {
    std::vector<std::byte> message;
    auto got = from.receive(message, deadline);
    return got ? text_of(message) : "<" + got.error().message() + ">";
  }

  std::string name = test::unique_name("requeue");
  std::optional<Mailbox> box;
};

TEST_P(MailboxRequeue, ARequeuedMessageIsReceivedNextWithItsSequence) {
  auto sender = queue({"one", "two", "three"});
  auto first = box->receive_in_place(10s);
  ASSERT_TRUE(first) << first.error().message();
  ASSERT_EQ(text_of(first->data()), "one");
  const std::uint64_t sequence = first->sequence();
  first->requeue();
  EXPECT_TRUE(first->data().empty());  // no longer ours
  auto again = box->receive_in_place(10s);
  ASSERT_TRUE(again) << again.error().message();
  EXPECT_EQ(text_of(again->data()), "one");
  EXPECT_EQ(again->sequence(), sequence);
  again->release();
  EXPECT_EQ(receive_text(*box), "two");
  EXPECT_EQ(receive_text(*box), "three");
  expect_sent(sender);
  EXPECT_EQ(receive_text(*box, no_wait), "<would block>");
}

TEST_P(MailboxRequeue, StatCountsARequeuedMessageAndAnotherProcessReceivesIt) {
  auto sender = queue({"kept"});
  auto message = box->receive_in_place(10s);
  ASSERT_TRUE(message);
  expect_sent(sender);  // zero capacity: taken, so sent
  EXPECT_EQ(Mailbox::stat(name)->queued, 0u);
  message->requeue();
  EXPECT_EQ(Mailbox::stat(name)->queued, 1u);
  EXPECT_EQ(box->queued(), 1u);
  auto other = ChildProcess::spawn([&] {
    auto inbox = Mailbox::open(name);
    return inbox && receive_text(*inbox) == "kept" ? 0 : 1;
  });
  EXPECT_TRUE(other.wait().exited_with(0));
  EXPECT_EQ(Mailbox::stat(name)->queued, 0u);
}

TEST_P(MailboxRequeue, AReceiverAsleepOnTheEmptyMailboxWakesForARequeuedMessage) {
  auto sender = queue({"late"});
  auto message = box->receive_in_place(10s);
  ASSERT_TRUE(message);
  expect_sent(sender);
  test::Pipe progress;
  auto receiver = ChildProcess::spawn([&] {
    auto inbox = Mailbox::open(name);
    if (!inbox) return 1;
    progress.send("receiving");
    return receive_text(*inbox, 10s) == "late" ? 0 : 2;
  });
  ASSERT_EQ(progress.receive(), "receiving");
  std::this_thread::sleep_for(300ms);  // asleep in the kernel by now
  message->requeue();
  EXPECT_TRUE(receiver.wait(5s).exited_with(0));
}

TEST_P(MailboxRequeue, ATakerThatFailsOrThrowsLeavesTheMessageQueued) {
  auto sender = queue({"stays"});
  auto failed = box->receive_with(
      [](const Delivery&) -> Result<void> {
        return std::unexpected(Error{Errc::system, "stdout", "cannot write"});
      },
      10s);
  ASSERT_FALSE(failed);
  EXPECT_EQ(failed.error().message(), "stdout: cannot write");
  EXPECT_THROW((void)box->receive_with([](const Delivery&) -> Result<void> {
    throw std::runtime_error("taker failed");
  }),
               std::runtime_error);
  std::string taken;
  ASSERT_TRUE(box->receive_with(
      [&](const Delivery& delivery) -> Result<void> {
        taken = text_of(delivery.bytes);
        return {};
      },
      10s));
  EXPECT_EQ(taken, "stays");
  expect_sent(sender);
  EXPECT_EQ(receive_text(*box, no_wait), "<would block>");
}

TEST_P(MailboxRequeue, AMessageTooLargeForTheBufferStaysRequeued) {
  auto sender = queue({"twelve bytes"});
  auto message = box->receive_in_place(10s);
  ASSERT_TRUE(message);
  message->requeue();
  std::array<std::byte, 4> small{};
  auto refused = box->receive(small, no_wait);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().errc(), Errc::too_large);
  EXPECT_EQ(receive_text(*box), "twelve bytes");
  expect_sent(sender);
}

// A receiver killed after marking the slot RETURNED but before bumping the hint: no
// receiver looks behind head for it, but recovery adopts it from the dead handle.
TEST_P(MailboxRequeue, AReceiverKilledHalfwayThroughAPutBackLosesNothing) {
  auto sender = queue({"orphan"});
  auto child = ChildProcess::spawn([&] {
    auto inbox = Mailbox::open(name);
    if (!inbox) return 1;
    auto message = inbox->receive_in_place(10s);
    if (!message) return 2;
    // The put-back's first step, by hand: its slot word says RETURNED, nobody's. The
    // slot header sits just before the message bytes, in every buffering.
    auto* slot = reinterpret_cast<detail::SlotHeader*>(const_cast<std::byte*>(message->data().data()) -
                                                       detail::slot_header_bytes);
    const auto reading = detail::SlotState::unpack(slot->state.load());
    if (reading.phase != static_cast<std::uint8_t>(detail::Phase::reading)) return 3;
    slot->state.store(detail::SlotState::pack(reading.position, detail::Phase::returned, 0));
    std::_Exit(0);  // killed before the bump, holding its handle
  });
  ASSERT_TRUE(child.wait().exited_with(0));
  expect_sent(sender);
  EXPECT_EQ(receive_text(*box, 5s), "orphan");
}

INSTANTIATE_TEST_SUITE_P(Bufferings, MailboxRequeue, test::all_bufferings, test::buffering_test_name);

}  // namespace
}  // namespace shmbox
