// Topics across processes: every subscriber gets every message in order; blocking and
// overwriting overflow; history; messages in place; dead and stopped subscribers; errors.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <optional>
#include <thread>
#include <vector>

#include "shmbox/cleanup.hpp"
#include "shmbox/topic.hpp"
#include "support/process.hpp"

namespace shmbox {
namespace {

using namespace std::chrono_literals;
using test::ChildProcess;
using test::Pipe;

std::vector<std::byte> number(std::uint64_t n) {
  std::vector<std::byte> bytes(sizeof n);
  std::memcpy(bytes.data(), &n, sizeof n);
  return bytes;
}

std::uint64_t number_in(std::span<const std::byte> bytes) {
  std::uint64_t n = ~std::uint64_t{0};
  if (bytes.size() == sizeof n) std::memcpy(&n, bytes.data(), sizeof n);
  return n;
}

class TopicTest : public ::testing::Test {
 protected:
  void TearDown() override { if (!HasFailure()) (void)Topic::remove(name); }
  std::string name = test::unique_name("topic");
};

// The same behaviour whatever the publisher slots: with one, its publisher takes the path
// of a sole writer (stores and hints instead of compare-and-swap; design.md, "One
// publisher slot"). The parameter is the topic's max_publishers.
class EveryTopic : public TopicTest, public ::testing::WithParamInterface<std::uint32_t> {
 protected:
  TopicOptions with_slots(TopicOptions options) const {
    options.max_publishers = GetParam();
    return options;
  }
};

// Subscribers in processes of their own, each told to start before the first publish;
// each checks that it got 0..count-1 in order with nothing lost.
TEST_P(EveryTopic, EverySubscriberGetsEveryMessageInOrder) {
  constexpr std::uint64_t count = 20'000;
  auto topic = Topic::create(name, with_slots({.capacity = 16, .ownership = Ownership::system}));
  ASSERT_TRUE(topic.has_value()) << topic.error().message();
  Pipe ready;
  std::vector<ChildProcess> subscribers;
  for (int i = 0; i < 3; ++i) {
    subscribers.push_back(ChildProcess::spawn([&, in_place = i == 2]() -> int {
      auto subscriber = Topic::open(name).value().subscribe().value();
      ready.send("subscribed");
      std::vector<std::byte> bytes;
      for (std::uint64_t n = 0; n < count; ++n) {
        std::uint64_t got = 0;
        Delivered info;
        if (in_place) {
          auto message = subscriber.receive_in_place(10s);
          if (!message) return 10;
          got = number_in(message->data());
          info = message->info();
        } else {
          auto received = subscriber.receive(bytes, 10s);
          if (!received) return 11;
          got = number_in(bytes);
          info = *received;
        }
        if (got != n || info.lost != 0 || info.sequence != n + 1) return 12;
      }
      return 0;
    }));
  }
  for (int i = 0; i < 3; ++i) ASSERT_EQ(ready.receive(), "subscribed");
  auto publisher = topic->publisher().value();
  for (std::uint64_t n = 0; n < count; ++n) {
    auto published = publisher.publish(number(n), 10s);
    ASSERT_TRUE(published.has_value()) << published.error().message();
    ASSERT_EQ(*published, n + 1);
  }
  for (ChildProcess& subscriber : subscribers) EXPECT_TRUE(subscriber.wait().exited_with(0));
}

// Publishers in processes of their own: the subscriber sees each one's messages in its order.
TEST_F(TopicTest, EachPublishersMessagesComeInItsOrder) {
  constexpr std::uint64_t per_publisher = 10'000;
  auto topic = Topic::create(name, {.capacity = 32, .ownership = Ownership::system});
  ASSERT_TRUE(topic.has_value()) << topic.error().message();
  auto subscriber = topic->subscribe().value();
  std::vector<ChildProcess> publishers;
  for (std::uint64_t p = 0; p < 2; ++p) {
    publishers.push_back(ChildProcess::spawn([&, p]() -> int {
      auto publisher = Topic::open(name).value().publisher().value();
      for (std::uint64_t n = 0; n < per_publisher; ++n) {
        if (auto published = publisher.publish(number(p << 32 | n), 10s); !published) {
          std::fprintf(stderr, "publisher %llu: %s\n", static_cast<unsigned long long>(p),
                       published.error().message().c_str());
          return 10;
        }
      }
      return 0;
    }));
  }
  std::uint64_t next[2] = {0, 0};
  std::vector<std::byte> bytes;
  for (std::uint64_t i = 0; i < 2 * per_publisher; ++i) {
    auto received = subscriber.receive(bytes, 10s);
    ASSERT_TRUE(received.has_value()) << received.error().message();
    ASSERT_EQ(received->lost, 0u);
    const std::uint64_t value = number_in(bytes);
    const std::uint64_t p = value >> 32;
    ASSERT_LT(p, 2u);
    ASSERT_EQ(value & 0xffffffff, next[p]++) << "publisher " << p;
  }
  for (ChildProcess& publisher : publishers) EXPECT_TRUE(publisher.wait().exited_with(0));
}

TEST_P(EveryTopic, AnOverwritingTopicTellsASlowSubscriberWhatItLost) {
  auto topic =
      Topic::create(name, with_slots({.capacity = 8, .overflow = Overflow::overwrite, .ownership = Ownership::system}));
  ASSERT_TRUE(topic.has_value()) << topic.error().message();
  auto subscriber = topic->subscribe().value();
  ChildProcess publisher = ChildProcess::spawn([&]() -> int {
    auto publishing = Topic::open(name).value().publisher().value();
    for (std::uint64_t n = 0; n < 100; ++n) {
      if (!publishing.publish(number(n), no_wait)) return 10;  // never waits
    }
    return 0;
  });
  ASSERT_TRUE(publisher.wait().exited_with(0));
  std::vector<std::byte> bytes;
  auto first = subscriber.receive(bytes, 1s);
  ASSERT_TRUE(first.has_value()) << first.error().message();
  EXPECT_EQ(first->lost, 92u);
  EXPECT_EQ(number_in(bytes), 92u);
  for (std::uint64_t n = 93; n < 100; ++n) {
    auto next = subscriber.receive(bytes, 1s);
    ASSERT_TRUE(next.has_value()) << next.error().message();
    EXPECT_EQ(next->lost, 0u);
    EXPECT_EQ(number_in(bytes), n);
  }
  EXPECT_EQ(subscriber.lost(), 92u);
  auto none = subscriber.receive(bytes, no_wait);
  ASSERT_FALSE(none.has_value());
  EXPECT_EQ(none.error(), Errc::would_block);
}

TEST_P(EveryTopic, ALateSubscriberGetsTheHistoryItAsksFor) {
  auto topic = Topic::create(name, with_slots({.capacity = 8, .history = 5, .ownership = Ownership::system}));
  ASSERT_TRUE(topic.has_value()) << topic.error().message();
  auto publisher = topic->publisher().value();
  for (std::uint64_t n = 0; n < 10; ++n) ASSERT_TRUE(publisher.publish(number(n), no_wait).has_value());
  ChildProcess late = ChildProcess::spawn([&]() -> int {
    auto opened = Topic::open(name).value();
    auto some = opened.subscribe(3).value();
    auto all = opened.subscribe(100).value();  // at most the topic's history: 5
    auto none = opened.subscribe().value();
    std::vector<std::byte> bytes;
    for (std::uint64_t n = 7; n < 10; ++n) {
      if (!some.receive(bytes, no_wait) || number_in(bytes) != n) return 10;
    }
    for (std::uint64_t n = 5; n < 10; ++n) {
      if (!all.receive(bytes, no_wait) || number_in(bytes) != n) return 11;
    }
    if (some.receive(bytes, no_wait) || none.receive(bytes, no_wait)) return 12;
    return 0;
  });
  EXPECT_TRUE(late.wait().exited_with(0));
}

// A message held in place stays as it was while the ring is overwritten many times over.
TEST_P(EveryTopic, AMessageHeldInPlaceStaysWhilePublishersOverwrite) {
  auto topic =
      Topic::create(name, with_slots({.capacity = 4, .overflow = Overflow::overwrite, .ownership = Ownership::system}));
  ASSERT_TRUE(topic.has_value()) << topic.error().message();
  auto subscriber = topic->subscribe().value();
  ASSERT_TRUE(topic->publisher().value().publish(number(7)).has_value());  // and gone: the slot is free
  auto held = subscriber.receive_in_place(1s);
  ASSERT_TRUE(held.has_value()) << held.error().message();
  ChildProcess overwriter = ChildProcess::spawn([&]() -> int {
    auto publishing = Topic::open(name).value().publisher().value();
    for (std::uint64_t n = 100; n < 1100; ++n) {
      if (!publishing.publish(number(n), no_wait)) return 10;
    }
    return 0;
  });
  ASSERT_TRUE(overwriter.wait().exited_with(0));
  EXPECT_EQ(number_in(held->data()), 7u);
  held->release();
  std::vector<std::byte> bytes;
  auto next = subscriber.receive(bytes, 1s);
  ASSERT_TRUE(next.has_value());
  EXPECT_EQ(next->lost, 996u);
  EXPECT_EQ(number_in(bytes), 1096u);
}

// A blocking topic's publisher waits for a live subscriber, but not for a dead one (its
// slot is recovered) nor a stopped one (passed over, and told what it lost once it runs).
TEST_P(EveryTopic, ABlockedPublisherWaitsForTheLiveButNotTheDeadOrStopped) {
  auto topic = Topic::create(name, with_slots({.capacity = 4, .ownership = Ownership::system}));
  ASSERT_TRUE(topic.has_value()) << topic.error().message();
  auto publisher = topic->publisher().value();
  Pipe ready;
  ChildProcess doomed = ChildProcess::spawn([&]() -> int {
    auto subscriber = Topic::open(name).value().subscribe().value();
    ready.send("subscribed");
    ::pause();
    return 0;
  });
  ASSERT_EQ(ready.receive(), "subscribed");
  for (std::uint64_t n = 0; n < 4; ++n) ASSERT_TRUE(publisher.publish(number(n), no_wait).has_value());
  auto full = publisher.publish(number(4), no_wait);
  ASSERT_FALSE(full.has_value());
  EXPECT_EQ(full.error(), Errc::would_block);
  auto timed_out = publisher.publish(number(4), 50ms);
  ASSERT_FALSE(timed_out.has_value());
  EXPECT_EQ(timed_out.error(), Errc::timeout);
  EXPECT_EQ(timed_out.error().message(), "topic '" + name + "': timed out waiting for a subscriber to read");
  doomed.kill();
  (void)doomed.wait();
  ASSERT_TRUE(publisher.publish(number(4), 5s).has_value());

  Pipe resumed;
  ChildProcess sleeper = ChildProcess::spawn([&]() -> int {
    auto subscriber = Topic::open(name).value().subscribe().value();
    ready.send("subscribed");
    resumed.receive(60s);  // stopped meanwhile
    std::vector<std::byte> bytes;
    auto received = subscriber.receive(bytes, 5s);
    if (!received) return 10;
    ready.send(std::to_string(received->lost) + " " + std::to_string(number_in(bytes)));
    return 0;
  });
  ASSERT_EQ(ready.receive(), "subscribed");
  ::kill(sleeper.pid(), SIGSTOP);
  for (std::uint64_t n = 5; n < 20; ++n) {
    auto published = publisher.publish(number(n), 5s);
    ASSERT_TRUE(published.has_value()) << published.error().message();
  }
  ::kill(sleeper.pid(), SIGCONT);
  resumed.send("go");
  // It had read nothing of 5..19; the ring keeps the last 4 of them.
  EXPECT_EQ(ready.receive(), "11 16");
  EXPECT_TRUE(sleeper.wait().exited_with(0));
}

// Owned by its creator (the default): gone when the creator exits, and when it is killed,
// removed by gc (or the next open), naming the dead owner.
TEST_F(TopicTest, AKilledOwnersTopicIsRemovedByGc) {
  Pipe made;
  ChildProcess owner = ChildProcess::spawn([&]() -> int {
    auto topic = Topic::create(name);
    if (!topic) return 1;
    made.send("made");
    ::pause();
    return 0;
  });
  ASSERT_EQ(made.receive(), "made");
  ASSERT_TRUE(Topic::open(name).has_value());
  owner.kill();
  (void)owner.wait();
  bool found = false;
  for (const RemovedObject& removed : collect_garbage()) {
    if (removed.kind == "topic" && removed.name == name) {
      found = true;
      EXPECT_EQ(removed.owner_pid, owner.pid());
    }
  }
  EXPECT_TRUE(found);
  EXPECT_EQ(Topic::open(name).error(), Errc::not_found);

  ChildProcess exits = ChildProcess::spawn([&]() -> int {
    if (!Topic::create(name)) return 1;
    std::exit(0);  // runs exit handlers, as returning from main does
  });
  ASSERT_TRUE(exits.wait().exited_with(0));
  EXPECT_EQ(Topic::open(name).error(), Errc::not_found);
}

// A loan is written in place and published; one dropped unpublished is given back and the
// publisher goes on. A forked child's copies of a publisher and a subscriber refuse to work
// (the slots are the parent's), and the parent's keep working.
TEST_P(EveryTopic, LoansAndForkedCopies) {
  auto topic = Topic::create(name, with_slots({.capacity = 4, .ownership = Ownership::system}));
  ASSERT_TRUE(topic.has_value()) << topic.error().message();
  auto subscriber = topic->subscribe().value();
  auto publisher = topic->publisher().value();
  {
    auto dropped = publisher.loan(8);
    ASSERT_TRUE(dropped.has_value()) << dropped.error().message();
    auto second = publisher.loan(8);
    ASSERT_FALSE(second.has_value());
    EXPECT_EQ(second.error().message(), "topic '" + name + "': this publisher holds a loan already");
  }
  auto loan = publisher.loan(8);
  ASSERT_TRUE(loan.has_value()) << loan.error().message();
  const std::uint64_t value = 42;
  std::memcpy(loan->data().data(), &value, sizeof value);
  ASSERT_TRUE(publisher.publish(std::move(*loan)).has_value());
  ChildProcess child = ChildProcess::spawn([&]() -> int {
    const std::string expected_publisher =
        "topic '" + name + "': this publisher was made by the parent process; make another in this one";
    const std::string expected_subscriber =
        "topic '" + name + "': this subscriber was made by the parent process; make another in this one";
    auto published = publisher.publish(number(1), no_wait);
    if (published || published.error().message() != expected_publisher) return 10;
    std::vector<std::byte> bytes;
    auto received = subscriber.receive(bytes, no_wait);
    if (received || received.error().message() != expected_subscriber) return 11;
    return 0;
  });
  EXPECT_TRUE(child.wait().exited_with(0));
  std::vector<std::byte> bytes;
  auto received = subscriber.receive(bytes, 1s);
  ASSERT_TRUE(received.has_value()) << received.error().message();
  EXPECT_EQ(number_in(bytes), 42u);
  EXPECT_TRUE(publisher.publish(number(2), no_wait).has_value());
}

TEST_F(TopicTest, ErrorsNameTheTopicAndTheCause) {
  auto missing = Topic::open(name);
  ASSERT_FALSE(missing.has_value());
  EXPECT_EQ(missing.error(), Errc::not_found);
  auto bad_history = Topic::create(name, {.capacity = 4, .history = 5});
  ASSERT_FALSE(bad_history.has_value());
  EXPECT_EQ(bad_history.error().message(), "topic '" + name + "': history 5 is over its capacity of 4");
  auto no_capacity = Topic::create(name, {.capacity = 0});
  ASSERT_FALSE(no_capacity.has_value());
  EXPECT_EQ(no_capacity.error().message(), "topic '" + name + "': capacity must be 1 to 16384, not 0");
  auto topic = Topic::create(name, {.max_message_size = 8, .max_publishers = 1, .ownership = Ownership::system});
  ASSERT_TRUE(topic.has_value()) << topic.error().message();
  EXPECT_EQ(Topic::create(name).error(), Errc::already_exists);
  auto publisher = topic->publisher().value();
  auto too_large = publisher.publish(std::vector<std::byte>(9));
  ASSERT_FALSE(too_large.has_value());
  EXPECT_EQ(too_large.error().message(), "topic '" + name + "': a message of 9 bytes is over its maximum of 8");
  auto second = topic->publisher();
  ASSERT_FALSE(second.has_value());
  EXPECT_EQ(second.error().message(), "topic '" + name + "': has no publisher slot free: all 1 are held by live processes");
  auto subscriber = topic->subscribe().value();
  ASSERT_TRUE(Topic::remove(name).has_value());
  std::vector<std::byte> bytes;
  auto removed = subscriber.receive(bytes, 1s);
  ASSERT_FALSE(removed.has_value());
  EXPECT_EQ(removed.error(), Errc::closed);
  EXPECT_EQ(publisher.publish(number(1)).error(), Errc::closed);
}

// A loan that outlives its publisher was given back when the publisher went: a publisher
// that takes the slot after it (here in another process, through more messages than the
// topic has chunks) never finds that chunk taken from under it when the loan goes.
TEST_P(EveryTopic, ALoanThatOutlivesItsPublisherGivesNothingBack) {
  auto topic = Topic::create(name, with_slots({.capacity = 4, .max_subscribers = 1, .held_per_subscriber = 1,
                                               .ownership = Ownership::system}));
  ASSERT_TRUE(topic.has_value()) << topic.error().message();
  auto subscriber = topic->subscribe().value();
  std::optional<TopicLoan> stray;
  {
    auto publisher = topic->publisher().value();
    auto loan = publisher.loan(8);
    ASSERT_TRUE(loan.has_value()) << loan.error().message();
    stray.emplace(std::move(*loan));
  }
  Pipe halfway, dropped;
  ChildProcess next = ChildProcess::spawn([&]() -> int {
    auto publisher = Topic::open(name).value().publisher().value();
    for (std::uint64_t n = 0; n < 40; ++n) {
      if (n == 20) {
        halfway.send("halfway");
        if (dropped.receive() != "dropped") return 11;
      }
      if (!publisher.publish(number(n), 10s)) return 10;
    }
    return 0;
  });
  std::vector<std::byte> bytes;
  for (std::uint64_t n = 0; n < 40; ++n) {
    if (n == 20) {
      ASSERT_EQ(halfway.receive(), "halfway");
      stray.reset();  // gives nothing back: the chunk may be the new publisher's by now
      dropped.send("dropped");
    }
    auto received = subscriber.receive(bytes, 10s);
    ASSERT_TRUE(received.has_value()) << received.error().message();
    ASSERT_EQ(number_in(bytes), n);
    ASSERT_EQ(received->lost, 0u);
  }
  EXPECT_TRUE(next.wait().exited_with(0));
}

// A subscriber of a one-slot topic watches the chunk its last message named; here that
// chunk is given back (a dropped loan), marked again for a later message, and the message
// the subscriber wants went elsewhere (and was overwritten since). A receive that may not
// wait still reads the ring before it says there is nothing.
TEST_F(TopicTest, ANonblockingReceiveReadsTheRingWhenTheChunkItWatchesBrokeItsPromise) {
  auto topic = Topic::create(name, {.capacity = 1, .max_subscribers = 1, .max_publishers = 1,
                                    .held_per_subscriber = 1, .overflow = Overflow::overwrite,
                                    .ownership = Ownership::system});
  ASSERT_TRUE(topic.has_value()) << topic.error().message();
  auto subscriber = topic->subscribe().value();
  auto publisher = topic->publisher().value();
  std::vector<std::byte> bytes;
  ASSERT_TRUE(publisher.publish(number(1)).has_value());
  ASSERT_TRUE(subscriber.receive(bytes, no_wait).has_value());  // now watching the next chunk
  { ASSERT_TRUE(publisher.loan(8).has_value()); }                 // that chunk, given back
  ASSERT_TRUE(publisher.publish(number(2)).has_value());
  ASSERT_TRUE(publisher.publish(number(3)).has_value());  // overwrites 2; its run marks that chunk again
  auto received = subscriber.receive(bytes, no_wait);
  ASSERT_TRUE(received.has_value()) << received.error().message();
  EXPECT_EQ(number_in(bytes), 3u);
  EXPECT_EQ(received->lost, 1u);
}

INSTANTIATE_TEST_SUITE_P(PublisherSlots, EveryTopic, ::testing::Values(8u, 1u));

// One publisher slot, held in turn by publishers in processes of their own: the next goes
// on from the last one's number. One of them drops a loan, breaking the promise its last
// message made to subscribers of the chunk for the next one. A copying subscriber and one
// that reads in place (in another process) get every message once, in order.
TEST_F(TopicTest, ATopicWithOnePublisherSlotPassesItOnAndLosesNothing) {
  constexpr std::uint64_t per_publisher = 2'000;
  auto topic = Topic::create(name, {.capacity = 16, .max_publishers = 1, .ownership = Ownership::system});
  ASSERT_TRUE(topic.has_value()) << topic.error().message();
  auto subscriber = topic->subscribe().value();
  Pipe ready;
  ChildProcess reader = ChildProcess::spawn([&]() -> int {
    auto in_place = Topic::open(name).value().subscribe().value();
    ready.send("subscribed");
    for (std::uint64_t n = 0; n < 3 * per_publisher; ++n) {
      auto message = in_place.receive_in_place(10s);
      if (!message || number_in(message->data()) != n || message->info().sequence != n + 1) return 10;
    }
    return 0;
  });
  ASSERT_EQ(ready.receive(), "subscribed");
  for (std::uint64_t p = 0; p < 3; ++p) {
    ChildProcess publisher = ChildProcess::spawn([&, p]() -> int {
      auto publishing = Topic::open(name).value().publisher().value();
      for (std::uint64_t n = p * per_publisher; n < (p + 1) * per_publisher; ++n) {
        if (p == 1 && n % 100 == 0) {
          auto dropped = publishing.loan(8);  // given back unpublished
          if (!dropped) return 11;
        }
        if (!publishing.publish(number(n), 10s)) return 10;
      }
      return 0;
    });
    std::vector<std::byte> bytes;
    for (std::uint64_t n = p * per_publisher; n < (p + 1) * per_publisher; ++n) {
      auto received = subscriber.receive(bytes, 10s);
      ASSERT_TRUE(received.has_value()) << received.error().message();
      ASSERT_EQ(number_in(bytes), n);
      ASSERT_EQ(received->sequence, n + 1);
      ASSERT_EQ(received->lost, 0u);
    }
    EXPECT_TRUE(publisher.wait().exited_with(0));
  }
  EXPECT_TRUE(reader.wait().exited_with(0));
}

// A subscriber that busy-polls still honours its deadline and learns of the topic's removal.
TEST(TopicWaiting, ABusyPollingSubscriberHonoursItsDeadlineAndTheRemoval) {
  const std::string name = test::unique_name("topic-busy");
  auto topic = Topic::create(name, {.wait = {.mode = WaitMode::busy_poll}}).value();
  auto subscriber = topic.subscribe().value();
  std::vector<std::byte> message;
  const auto started = std::chrono::steady_clock::now();
  auto late = subscriber.receive(message, 100ms);
  ASSERT_FALSE(late);
  EXPECT_EQ(late.error().errc(), Errc::timeout);
  EXPECT_LT(std::chrono::steady_clock::now() - started, 5s);
  auto remover = ChildProcess::spawn([&] {
    std::this_thread::sleep_for(100ms);
    return Topic::remove(name) ? 0 : 1;
  });
  auto removed = subscriber.receive(message, 10s);
  ASSERT_FALSE(removed);
  EXPECT_EQ(removed.error().errc(), Errc::closed);
  EXPECT_TRUE(remover.wait().exited_with(0));
}

}  // namespace
}  // namespace shmbox
