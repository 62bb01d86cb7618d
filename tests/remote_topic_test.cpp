// Remote topics (nats://host:port/NAME) against a real nats-server with JetStream, started
// by each test on loopback: every subscriber gets every message, history, losses told,
// removal, and every error, across processes. Every use of the NATS client is in a child
// process: the client is not fork-safe, so the test process itself never starts it.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <functional>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "shmbox/selector.hpp"
#include "shmbox/topic.hpp"
#include "support/nats_test.hpp"
#include "support/process.hpp"
#include "support/text.hpp"

namespace shmbox {
namespace {

using namespace std::chrono_literals;
using test::ChildProcess;
using test::failed;
using test::fails_with;
using test::Pipe;
using test::text_of;

constexpr TopicOptions remote_options{.capacity = 64,
                                      .history = 8,
                                      .max_message_size = 64,
                                      .max_subscribers = 4,
                                      .overflow = Overflow::overwrite,
                                      .ownership = Ownership::system};

// "m<i>", the message numbered i. (Built by appending: g++ 12 at -O3 warns falsely on
// "literal" + std::string.)
std::string message_text(int i) {
  std::string text = "m";
  text += std::to_string(i);
  return text;
}

// Receives `count` messages and checks that they are "m<first>".."m<first+count-1>" with
// those sequence numbers and no loss.
int expect_messages(Subscriber& subscriber, int first, int count) {
  std::vector<std::byte> message;
  for (int i = first; i < first + count; ++i) {
    auto got = subscriber.receive(message, 10s);
    if (!got) return failed(10, got.error());
    if (text_of(message) != message_text(i) || got->sequence != static_cast<std::uint64_t>(i) ||
        got->lost != 0) {
      std::fprintf(stderr, "got '%s' sequence %llu lost %llu; expected m%d\n", text_of(message).c_str(),
                   static_cast<unsigned long long>(got->sequence), static_cast<unsigned long long>(got->lost), i);
      return 11;
    }
  }
  return 0;
}

int publish_messages(Publisher& publisher, int first, int count) {
  for (int i = first; i < first + count; ++i) {
    auto published = publisher.publish(as_bytes(message_text(i)));
    if (!published) return failed(20, published.error());
    if (*published != static_cast<std::uint64_t>(i)) return 21;
  }
  return 0;
}

class RemoteTopic : public ::testing::Test {
 protected:
  void SetUp() override {
    test::start_nats_or_skip(server);
    if (server) name = test::remote_name(*server, "topic");
  }
  void in_child(const std::function<int()>& body) { test::expect_child_succeeds(body); }
  void create_topic(const TopicOptions& options = remote_options) {
    in_child([&] {
      auto topic = Topic::create(name, options);
      return topic ? 0 : failed(1, topic.error());
    });
  }
  void publish(int first, int count) {
    in_child([&] {
      auto topic = Topic::open(name);
      if (!topic) return failed(1, topic.error());
      auto publisher = topic->publisher();
      if (!publisher) return failed(2, publisher.error());
      return publish_messages(*publisher, first, count);
    });
  }
  std::string object() const { return "topic '" + name + "'"; }
  std::optional<test::NatsServer> server;
  std::string name;
};

TEST_F(RemoteTopic, EverySubscriberInAnotherProcessGetsEveryMessageInOrder) {
  create_topic();
  Pipe ready;
  std::vector<ChildProcess> subscribers;
  for (int i = 0; i < 2; ++i) {
    subscribers.push_back(ChildProcess::spawn([&] {
      auto topic = Topic::open(name);
      if (!topic) return failed(1, topic.error());
      auto subscriber = topic->subscribe();
      if (!subscriber) return failed(2, subscriber.error());
      ready.send("ready");
      if (const int checked = expect_messages(*subscriber, 1, 50); checked != 0) return checked;
      return subscriber->lost() == 0 ? 0 : 3;
    }));
  }
  ASSERT_TRUE(ready.receive(20s));
  ASSERT_TRUE(ready.receive(20s));
  publish(1, 50);
  for (auto& subscriber : subscribers) EXPECT_TRUE(subscriber.wait(30s).exited_with(0));
}

TEST_F(RemoteTopic, ALateSubscriberGetsTheHistoryItAskedForAtMostTheTopics) {
  create_topic({.capacity = 10, .history = 3, .max_message_size = 64, .overflow = Overflow::overwrite,
                .ownership = Ownership::system});
  publish(1, 5);
  in_child([&] {
    auto topic = Topic::open(name);
    if (!topic) return failed(1, topic.error());
    auto two = topic->subscribe(2);
    auto all = topic->subscribe(100);  // the topic's history is 3
    auto none = topic->subscribe();
    if (!two || !all || !none) return 2;
    auto publisher = topic->publisher();
    if (!publisher || publish_messages(*publisher, 6, 1) != 0) return 3;
    if (const int checked = expect_messages(*two, 4, 3); checked != 0) return checked;
    if (const int checked = expect_messages(*all, 3, 4); checked != 0) return checked;
    return expect_messages(*none, 6, 1);
  });
}

TEST_F(RemoteTopic, ASubscriberThatFallsBehindTheStreamIsToldWhatItLost) {
  create_topic({.capacity = 4, .max_message_size = 64, .overflow = Overflow::overwrite, .ownership = Ownership::system});
  Pipe subscribed;
  Pipe published;
  auto subscriber = ChildProcess::spawn([&] {
    auto topic = Topic::open(name);
    if (!topic) return failed(1, topic.error());
    auto late = topic->subscribe();
    if (!late) return failed(2, late.error());
    subscribed.send("subscribed");
    if (!published.receive(30s)) return 3;
    // 20 published, and the stream (like the subscriber's own buffer) keeps 4: it gets the
    // newest 4, and is told of the 16 before them as lost.
    std::uint64_t received = 0, lost = 0, last = 0;
    std::vector<std::byte> message;
    while (last < 20) {
      auto got = late->receive(message, 10s);
      if (!got) return failed(4, got.error());
      if (got->sequence <= last) return 5;
      if (got->sequence - last - 1 != got->lost) return 6;
      ++received;
      lost += got->lost;
      last = got->sequence;
    }
    if (received != 4 || lost != 16) {
      std::fprintf(stderr, "received %llu lost %llu\n", static_cast<unsigned long long>(received),
                   static_cast<unsigned long long>(lost));
      return 7;
    }
    return late->lost() == 16 ? 0 : 8;
  });
  ASSERT_TRUE(subscribed.receive(20s));
  publish(1, 20);
  published.send("published");
  EXPECT_TRUE(subscriber.wait(30s).exited_with(0));
}

TEST_F(RemoteTopic, RemovingTheTopicFailsItsPublishersAndWakesItsSubscribers) {
  create_topic();
  Pipe waiting;
  auto subscriber = ChildProcess::spawn([&] {
    auto topic = Topic::open(name);
    if (!topic) return failed(1, topic.error());
    auto listening = topic->subscribe();
    if (!listening) return failed(2, listening.error());
    waiting.send("waiting");
    std::vector<std::byte> message;
    const auto start = std::chrono::steady_clock::now();
    if (!fails_with(listening->receive(message), Errc::closed, object() + ": was removed")) return 3;
    return std::chrono::steady_clock::now() - start < 10s ? 0 : 4;
  });
  ASSERT_TRUE(waiting.receive(20s));
  in_child([&] {
    auto topic = Topic::open(name);
    if (!topic) return failed(1, topic.error());
    auto publisher = topic->publisher();
    if (!publisher) return failed(2, publisher.error());
    if (auto removed = Topic::remove(name); !removed) return failed(3, removed.error());
    if (!fails_with(publisher->publish(as_bytes("late"), 1s), Errc::closed, object() + ": was removed")) return 4;
    if (!fails_with(topic->subscribe(), Errc::closed, object() + ": was removed")) return 5;
    if (!fails_with(Topic::open(name), Errc::not_found, object() + ": does not exist on " + server->url())) return 6;
    return fails_with(Topic::remove(name), Errc::not_found, object() + ": does not exist on " + server->url()) ? 0 : 7;
  });
  EXPECT_TRUE(subscriber.wait(30s).exited_with(0));
}

TEST_F(RemoteTopic, RefusedOptionsAndCallsSayWhy) {
  in_child([&] {
    TopicOptions blocking = remote_options;
    blocking.overflow = Overflow::block;
    if (!fails_with(Topic::create(name, blocking), Errc::invalid_argument,
                    object() + ": a nats:// topic overwrites (its server does not wait for subscribers): create it "
                               "with Overflow::overwrite")) {
      return 1;
    }
    TopicOptions owned = remote_options;
    owned.ownership = Ownership::process;
    if (!fails_with(Topic::create(name, owned), Errc::invalid_argument,
                    object() + ": a nats:// topic is system-owned (the server cannot tell that a process has gone): "
                               "create it with Ownership::system")) {
      return 2;
    }
    TopicOptions deep = remote_options;
    deep.history = 65;
    if (!fails_with(Topic::create(name, deep), Errc::invalid_argument,
                    object() + ": history 65 is over its capacity of 64")) {
      return 3;
    }
    TopicOptions huge = remote_options;
    huge.max_message_size = 2 << 20;
    if (!fails_with(Topic::create(name, huge), Errc::too_large,
                    object() + ": max_message_size 2097152 (and its headers) is over the server's maximum payload "
                               "of 1048576 bytes")) {
      return 4;
    }
    if (!fails_with(Topic::open(name), Errc::not_found, object() + ": does not exist on " + server->url())) return 5;
    auto topic = Topic::create(name, remote_options);
    if (!topic) return failed(6, topic.error());
    if (!fails_with(Topic::create(name, remote_options), Errc::already_exists,
                    object() + ": already exists on " + server->url())) {
      return 7;
    }
    auto publisher = topic->publisher();
    auto subscriber = topic->subscribe();
    if (!publisher || !subscriber) return 8;
    if (!fails_with(publisher->publish(std::vector<std::byte>(65)), Errc::too_large,
                    object() + ": a message of 65 bytes is over its maximum of 64")) {
      return 9;
    }
    if (!fails_with(publisher->loan(8), Errc::invalid_argument,
                    object() + ": lends no memory: a nats:// topic's messages are published as copies")) {
      return 10;
    }
    if (!fails_with(subscriber->receive_in_place(no_wait), Errc::invalid_argument,
                    object() + ": is not in this machine's memory: receive a nats:// topic's messages as copies")) {
      return 11;
    }
    Selector selector;
    if (!fails_with(selector.add(*subscriber), Errc::invalid_argument,
                    "selector: a subscriber of a nats:// topic cannot be watched; use a local topic")) {
      return 12;
    }
    std::vector<std::byte> message;
    auto nothing = subscriber->receive(message, no_wait);
    if (nothing || nothing.error().errc() != Errc::would_block) return 13;
    if (!fails_with(subscriber->receive(message, 100ms), Errc::timeout, object() + ": timed out")) return 14;
    // max_subscribers is 4: one is taken above.
    std::vector<Subscriber> more;
    for (int i = 0; i < 3; ++i) {
      auto another = topic->subscribe();
      if (!another) return failed(15, another.error());
      more.push_back(std::move(*another));
    }
    if (!fails_with(topic->subscribe(), Errc::in_use, object() + ": has no subscriber slot free: all 4 are taken")) {
      return 16;
    }
    return 0;
  });
}

TEST_F(RemoteTopic, StatShowsWhatWasPublishedAndEachSubscribersLag) {
  create_topic();
  publish(1, 3);
  in_child([&] {
    auto topic = Topic::open(name);
    if (!topic) return failed(1, topic.error());
    auto subscriber = topic->subscribe(8);
    if (!subscriber) return failed(2, subscriber.error());
    if (expect_messages(*subscriber, 1, 1) != 0) return 3;
    auto status = Topic::stat(name);
    if (!status) return failed(4, status.error());
    if (status->name != name || status->overflow != Overflow::overwrite || status->capacity != 64 ||
        status->history != 8 || status->max_message_size != 64 || status->published != 3 ||
        status->max_subscribers != 4 || status->ownership != Ownership::system) {
      return 5;
    }
    if (status->subscribers.size() != 1) return 6;
    return topic->name() == name && topic->max_message_size() == 64 ? 0 : 7;
  });
}

}  // namespace
}  // namespace shmbox
