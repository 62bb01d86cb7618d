#include "shmbox/selector.hpp"

#include <gtest/gtest.h>
#include <sys/resource.h>

#include <thread>

#include "support/process.hpp"

namespace shmbox {
namespace {

using namespace std::chrono_literals;
using test::ChildProcess;

class SelectorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (int i = 0; i < 3; ++i) {
      names.push_back(test::unique_name("select"));
      boxes.push_back(Mailbox::create(names.back(), {.capacity = 1}).value());
    }
  }
  void TearDown() override {
    for (const auto& name : names) (void)Mailbox::remove(name);
  }
  std::vector<std::string> names;
  std::vector<Mailbox> boxes;
};

TEST_F(SelectorTest, WakesForTheMailboxAnotherProcessSendsTo) {
  Selector selector{{.mode = WaitMode::sleep}};
  for (auto& box : boxes) ASSERT_TRUE(selector.add(box));
  auto sender = ChildProcess::spawn([&] {
    std::this_thread::sleep_for(100ms);
    auto box = Mailbox::open(names[2]);
    return box && box->send(as_bytes("hi")) ? 0 : 1;
  });
  auto ready = selector.wait(10s);
  ASSERT_TRUE(ready) << ready.error().message();
  EXPECT_EQ(*ready, 2u);
  std::vector<std::byte> message;
  EXPECT_TRUE(boxes[2].receive(message, no_wait));
  EXPECT_TRUE(sender.wait().exited_with(0));
}

TEST_F(SelectorTest, ServesReadyMailboxesInTurn) {
  Selector selector;
  for (auto& box : boxes) ASSERT_TRUE(selector.add(box));
  for (auto& box : boxes) ASSERT_TRUE(box.send(as_bytes("x")));
  // Nothing is received, so all stay ready: each is reported in turn, none starved.
  EXPECT_EQ(selector.wait(no_wait).value(), 0u);
  EXPECT_EQ(selector.wait(no_wait).value(), 1u);
  EXPECT_EQ(selector.wait(no_wait).value(), 2u);
  EXPECT_EQ(selector.wait(no_wait).value(), 0u);
}

TEST_F(SelectorTest, TimesOutAndWouldBlock) {
  Selector selector;
  for (auto& box : boxes) ASSERT_TRUE(selector.add(box));
  auto none = selector.wait(no_wait);
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error().errc(), Errc::would_block);
  const auto start = std::chrono::steady_clock::now();
  auto late = selector.wait(100ms);
  ASSERT_FALSE(late);
  EXPECT_EQ(late.error().errc(), Errc::timeout);
  EXPECT_EQ(late.error().message(), "selector: nothing it watches became ready in time");
  EXPECT_GE(std::chrono::steady_clock::now() - start, 100ms);
}

TEST_F(SelectorTest, SendInterestWakesWhenASlotIsFreed) {
  ASSERT_TRUE(boxes[0].send(as_bytes("fill")));
  Selector selector{{.mode = WaitMode::sleep}};
  ASSERT_TRUE(selector.add(boxes[0], Interest::send));
  EXPECT_EQ(selector.wait(no_wait).error().errc(), Errc::would_block);
  auto receiver = ChildProcess::spawn([&] {
    std::this_thread::sleep_for(100ms);
    auto box = Mailbox::open(names[0]);
    std::vector<std::byte> message;
    return box && box->receive(message) ? 0 : 1;
  });
  EXPECT_EQ(selector.wait(10s).value(), 0u);
  EXPECT_TRUE(boxes[0].send(as_bytes("again"), no_wait));
  EXPECT_TRUE(receiver.wait().exited_with(0));
}

TEST_F(SelectorTest, ClosedMailboxIsReadySoTheCallerLearnsIt) {
  Selector selector{{.mode = WaitMode::sleep}};
  ASSERT_TRUE(selector.add(boxes[1]));
  auto closer = ChildProcess::spawn([&] {
    std::this_thread::sleep_for(100ms);
    auto box = Mailbox::open(names[1]);
    return box && box->close() ? 0 : 1;
  });
  EXPECT_EQ(selector.wait(10s).value(), 0u);
  std::vector<std::byte> message;
  EXPECT_EQ(boxes[1].receive(message, no_wait).error().errc(), Errc::closed);
  EXPECT_TRUE(closer.wait().exited_with(0));
}

TEST_F(SelectorTest, ZeroCapacitySendInterestWaitsForAReceiver) {
  const std::string name = test::unique_name("select-zero");
  auto box = Mailbox::create(name, {.buffering = Buffering::zero}).value();
  Selector selector{{.mode = WaitMode::sleep}};
  ASSERT_TRUE(selector.add(box, Interest::send));
  EXPECT_EQ(selector.wait(no_wait).error().errc(), Errc::would_block);
  auto receiver = ChildProcess::spawn([&] {
    auto inbox = Mailbox::open(name);
    std::vector<std::byte> message;
    return inbox && inbox->receive(message, 10s) ? 0 : 1;
  });
  EXPECT_EQ(selector.wait(10s).value(), 0u);
  EXPECT_TRUE(box.send(as_bytes("now"), 10s));
  EXPECT_TRUE(receiver.wait().exited_with(0));
  (void)Mailbox::remove(name);
}

TEST_F(SelectorTest, IdleSelectorUsesNoCpu) {
  Selector selector;
  for (auto& box : boxes) ASSERT_TRUE(selector.add(box));
  rusage before{};
  ::getrusage(RUSAGE_SELF, &before);
  EXPECT_EQ(selector.wait(500ms).error().errc(), Errc::timeout);
  rusage after{};
  ::getrusage(RUSAGE_SELF, &after);
  auto cpu_us = [](const rusage& r) {
    return (r.ru_utime.tv_sec + r.ru_stime.tv_sec) * 1'000'000L + r.ru_utime.tv_usec + r.ru_stime.tv_usec;
  };
  EXPECT_LT(cpu_us(after) - cpu_us(before), 100'000L);
}

// A subscriber beside mailboxes: the selector sleeps on the topic's event word too, and
// wakes for a message another process publishes; and for the topic's removal.
TEST_F(SelectorTest, WakesForATopicSubscriberBesideMailboxes) {
  const std::string topic_name = test::unique_name("select-topic");
  auto topic = Topic::create(topic_name, {.ownership = Ownership::system}).value();
  auto subscriber = topic.subscribe().value();
  Selector selector{{.mode = WaitMode::sleep}};
  for (auto& box : boxes) ASSERT_TRUE(selector.add(box));
  EXPECT_EQ(selector.add(subscriber).value(), 3u);
  EXPECT_EQ(selector.wait(no_wait).error().errc(), Errc::would_block);
  auto publisher = ChildProcess::spawn([&] {
    std::this_thread::sleep_for(100ms);
    auto opened = Topic::open(topic_name);
    if (!opened) return 1;
    auto one = opened->publisher();
    return one && one->publish(as_bytes("news")) ? 0 : 2;
  });
  EXPECT_EQ(selector.wait(10s).value(), 3u);
  std::vector<std::byte> message;
  EXPECT_EQ(subscriber.receive(message, no_wait).value().sequence, 1u);
  EXPECT_TRUE(publisher.wait().exited_with(0));
  EXPECT_EQ(selector.wait(no_wait).error().errc(), Errc::would_block);
  // A mailbox and the subscriber both ready: each in turn.
  ASSERT_TRUE(boxes[0].send(as_bytes("mail")));
  ASSERT_TRUE(topic.publisher().value().publish(as_bytes("more")));
  EXPECT_EQ(selector.wait(no_wait).value(), 0u);
  EXPECT_EQ(selector.wait(no_wait).value(), 3u);
  ASSERT_TRUE(subscriber.receive(message, no_wait));
  ASSERT_TRUE(boxes[0].receive(message, no_wait));
  auto remover = ChildProcess::spawn([&] {
    std::this_thread::sleep_for(100ms);
    return Topic::remove(topic_name) ? 0 : 1;
  });
  EXPECT_EQ(selector.wait(10s).value(), 3u);
  EXPECT_EQ(subscriber.receive(message, no_wait).error().errc(), Errc::closed);
  EXPECT_TRUE(remover.wait().exited_with(0));
}

TEST(Selector, RefusesAMovedFromOrInheritedSubscriber) {
  const std::string topic_name = test::unique_name("select-topic");
  auto topic = Topic::create(topic_name).value();
  auto subscriber = topic.subscribe().value();
  Subscriber taken = std::move(subscriber);
  Selector selector;
  auto moved = selector.add(subscriber);
  ASSERT_FALSE(moved);
  EXPECT_EQ(moved.error().message(), "selector: a moved-from subscriber cannot be watched");
  auto child = ChildProcess::spawn([&] {
    Selector in_child;
    auto inherited = in_child.add(taken);
    return !inherited && inherited.error().message() ==
                             "selector: this subscriber was made by the parent process; make another in this one"
               ? 0
               : 1;
  });
  EXPECT_TRUE(child.wait().exited_with(0));
  EXPECT_EQ(selector.add(taken).value(), 0u);
  (void)Topic::remove(topic_name);
}

TEST(Selector, LimitsAndEmptiness) {
  Selector empty;
  auto nothing = empty.wait(no_wait);
  ASSERT_FALSE(nothing);
  EXPECT_EQ(nothing.error().errc(), Errc::invalid_argument);
  EXPECT_EQ(nothing.error().message(), "selector: watches no mailbox, subscriber or endpoint");
  const std::string name = test::unique_name("select-many");
  auto box = Mailbox::create(name).value();
  Selector full;
  for (std::size_t i = 0; i < Selector::max_mailboxes; ++i) ASSERT_TRUE(full.add(box));
  auto over = full.add(box);
  ASSERT_FALSE(over);
  EXPECT_EQ(over.error().errc(), Errc::invalid_argument);
  EXPECT_EQ(over.error().message(), "selector: watches 128 mailboxes, subscribers and endpoints already, its limit");
  (void)Mailbox::remove(name);
}

}  // namespace
}  // namespace shmbox

namespace shmbox {
namespace {

TEST_F(SelectorTest, AMessageBehindAnAbandonedLoanIsReported) {
  auto big = Mailbox::create(names[0] + "-wide", {.capacity = 4}).value();
  auto other_wide = Mailbox::open(names[0] + "-wide").value();
  {
    auto loan = big.loan(4).value();
    ASSERT_TRUE(other_wide.send(as_bytes("behind")));
  }  // abandoned: a CANCELLED slot at head, a message behind it
  Selector selector;
  ASSERT_TRUE(selector.add(big));
  EXPECT_EQ(selector.wait(1s).value(), 0u);
  std::vector<std::byte> message;
  EXPECT_TRUE(big.receive(message, no_wait));
  (void)Mailbox::remove(names[0] + "-wide");
}

// An endpoint is watched with its lanes: ready when any sender's message waits, senders
// that join after the selector started waiting included; and beside a mailbox.
TEST_F(SelectorTest, WakesForAnEndpointThatASenderJoiningLaterSendsTo) {
  const std::string name = test::unique_name("selected"), sender_name = test::unique_name("sender");
  auto endpoint = Endpoint::join(name);
  ASSERT_TRUE(endpoint) << endpoint.error().message();
  Selector selector{{.mode = WaitMode::sleep}};
  ASSERT_EQ(selector.add(boxes[0]).value(), 0u);
  ASSERT_EQ(selector.add(*endpoint).value(), 1u);
  EXPECT_EQ(selector.wait(no_wait).error().errc(), Errc::would_block);
  auto sender = ChildProcess::spawn([&] {
    std::this_thread::sleep_for(200ms);  // the selector is asleep by now
    auto me = Endpoint::join(sender_name);
    return me && me->send(name, as_bytes("to the endpoint")) ? 0 : 1;
  });
  auto ready = selector.wait(10s);
  ASSERT_TRUE(ready) << ready.error().message();
  EXPECT_EQ(*ready, 1u);
  std::vector<std::byte> message;
  auto from = endpoint->receive(message, no_wait);
  ASSERT_TRUE(from) << from.error().message();
  EXPECT_EQ(*from, sender_name);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(message.data()), message.size()), "to the endpoint");
  EXPECT_TRUE(sender.wait().exited_with(0));
  // Taken: not ready any more; the mailbox is, once something waits in it.
  EXPECT_EQ(selector.wait(50ms).error().errc(), Errc::timeout);
  ASSERT_TRUE(boxes[0].send(as_bytes("x")));
  EXPECT_EQ(selector.wait(no_wait).value(), 0u);
  Endpoint moved = std::move(*endpoint);
  auto refused = selector.add(*endpoint);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().message(), "selector: a moved-from endpoint cannot be watched");
}

}  // namespace
}  // namespace shmbox
