// A topic with one publisher slot whose publisher is killed between the steps of a commit
// (docs/design.md, "One publisher slot"). A real publisher is killed holding a loan; the
// steps it would have taken next are then written into the topic's memory by the layout's
// own names, as its death at that instruction would leave them. Whatever it left, each
// number is one message for every subscriber, and the next publisher goes on from there.
#include <gtest/gtest.h>

#include <unistd.h>

#include <csignal>
#include <cstring>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "shmbox/segment.hpp"
#include "shmbox/topic.hpp"
#include "support/process.hpp"
#include "platform/process.hpp"
#include "support/text.hpp"
#include "topic/topic_layout.hpp"

namespace shmbox {
namespace {

using namespace std::chrono_literals;
using detail::ChunkHeader;
using detail::PublisherSlot;
using detail::RingEntry;
using detail::TopicGeometry;
using detail::TopicHeader;
using test::ChildProcess;
using test::text_of;

constexpr std::uint32_t capacity = 8;

// The topic's memory, mapped again, with its parts by name.
struct RawTopic {
  explicit RawTopic(const std::string& name)
      : segment(Segment::open("shmbox.tp." + name, Access::read_write).value()), base(segment.writable_bytes()->data()) {
    const auto& identity = header().identity;
    geometry = {identity.capacity, identity.chunk_count, identity.subscriber_slots, identity.publisher_slots,
                identity.stride};
  }
  TopicHeader& header() const { return *reinterpret_cast<TopicHeader*>(base); }
  std::atomic<std::uint64_t>& entry(std::uint64_t sequence) const {
    return reinterpret_cast<std::atomic<std::uint64_t>*>(base + geometry.entries_offset())[sequence % geometry.capacity];
  }
  PublisherSlot& publisher() const { return *reinterpret_cast<PublisherSlot*>(base + geometry.publishers_offset()); }
  ChunkHeader& chunk(std::uint32_t index) const {
    return *reinterpret_cast<ChunkHeader*>(base + geometry.chunks_offset() + std::size_t{index} * geometry.stride);
  }
  std::byte* bytes(std::uint32_t index) const { return reinterpret_cast<std::byte*>(&chunk(index)) + sizeof(ChunkHeader); }

  Segment segment;
  std::byte* base;
  TopicGeometry geometry{};
};

class SolePublisherRecovery : public ::testing::Test {
 protected:
  void SetUp() override {
    auto created = Topic::create(name, {.capacity = capacity,
                                        .history = capacity,
                                        .max_message_size = 16,
                                        .max_subscribers = 3,
                                        .max_publishers = 1,
                                        .held_per_subscriber = 1,
                                        .ownership = Ownership::system});
    ASSERT_TRUE(created.has_value()) << created.error().message();
    topic.emplace(std::move(*created));
    auto subscribed = topic->subscribe();
    ASSERT_TRUE(subscribed.has_value()) << subscribed.error().message();
    follower = std::move(*subscribed);
    // Messages 1 to 3, then a loan (the chunk for message 4, which the commit of message
    // 3 named to subscribers), and killed holding it.
    test::Pipe progress;
    auto doomed = ChildProcess::spawn([&]() -> int {
      auto publisher = Topic::open(name).value().publisher().value();
      for (const char* text : {"1", "2", "3"}) {
        if (!publisher.publish(as_bytes(text))) return 10;
      }
      auto loan = publisher.loan(8);
      progress.send(loan ? "holding" : "failed");
      for (;;) ::pause();
    });
    ASSERT_EQ(progress.receive(), "holding");
    doomed.kill();
    ASSERT_TRUE(doomed.wait().killed_by(SIGKILL));
    // The subscriber had read 1 to 3: it now watches the loaned chunk for message 4.
    std::vector<std::byte> message;
    for (const char* text : {"1", "2", "3"}) {
      auto got = follower.receive(message, 5s);
      ASSERT_TRUE(got.has_value()) << got.error().message();
      ASSERT_EQ(text_of(message), text);
    }
  }
  void TearDown() override { (void)Topic::remove(name); }

  // The dead publisher got as far as numbering its chunk 4 (and, if `entry_too`, putting
  // it in the ring), and no further: head still says 4 is the next number.
  void forge_a_commit_cut_short(const RawTopic& raw, bool entry_too, std::uint32_t& loaned) {
    loaned = raw.publisher().chunk.load();
    ASSERT_LT(loaned, raw.geometry.chunk_count);
    ASSERT_EQ(raw.header().head.load(), 4u);
    std::memcpy(raw.bytes(loaned), "dead", 4);
    ChunkHeader& chunk = raw.chunk(loaned);
    chunk.size.store(4);
    chunk.next.store(detail::topic_no_chunk);
    chunk.sequence.store(4);
    if (entry_too) raw.entry(4).store(RingEntry::make(4, loaned));
  }

  std::string name = test::unique_name("topic-recovery");
  std::optional<Topic> topic;
  Subscriber follower;
};

class CommitCutShort : public SolePublisherRecovery, public ::testing::WithParamInterface<bool> {};

// Numbered (and maybe in the ring), head not moved: message 4 is the dead publisher's for
// every subscriber: the one that took it at once by its hint, one with no hint that waits
// (it recovers the dead publisher itself, with no publisher to come), and one that reads
// the ring later; and the next publisher's first message is 5.
TEST_P(CommitCutShort, TheDeadPublishersLastMessageKeepsItsNumber) {
  RawTopic raw{name};
  std::uint32_t loaned = 0;
  ASSERT_NO_FATAL_FAILURE(forge_a_commit_cut_short(raw, GetParam(), loaned));
  std::vector<std::byte> message;
  auto early = follower.receive(message, no_wait);  // before any recovery: by its hint
  ASSERT_TRUE(early.has_value()) << early.error().message();
  EXPECT_EQ(early->sequence, 4u);
  EXPECT_EQ(text_of(message), "dead");
  auto hintless = topic->subscribe();  // at head, 4: no message has named a chunk to it
  ASSERT_TRUE(hintless.has_value()) << hintless.error().message();
  auto waited = hintless->receive(message, 5s);
  ASSERT_TRUE(waited.has_value()) << waited.error().message();
  EXPECT_EQ(waited->sequence, 4u);
  EXPECT_EQ(text_of(message), "dead");

  auto publisher = topic->publisher();  // takes the dead publisher's slot, recovering it
  ASSERT_TRUE(publisher.has_value()) << publisher.error().message();
  EXPECT_EQ(raw.entry(4).load(), RingEntry::make(4, loaned));
  EXPECT_EQ(raw.header().head.load(), 5u);
  auto published = publisher->publish(as_bytes("next"), 5s);
  ASSERT_TRUE(published.has_value()) << published.error().message();
  EXPECT_EQ(*published, 5u);

  auto late = topic->subscribe(capacity);  // from the ring: 1 to 5
  ASSERT_TRUE(late.has_value()) << late.error().message();
  for (const char* text : {"1", "2", "3", "dead", "next"}) {
    auto got = late->receive(message, 5s);
    ASSERT_TRUE(got.has_value()) << got.error().message();
    EXPECT_EQ(text_of(message), text);
    EXPECT_EQ(got->lost, 0u);
  }
  for (Subscriber* subscriber : {&follower, &*hintless}) {
    auto got = subscriber->receive(message, 5s);
    ASSERT_TRUE(got.has_value()) << got.error().message();
    EXPECT_EQ(got->sequence, 5u);
    EXPECT_EQ(text_of(message), "next");
    EXPECT_EQ(subscriber->receive(message, no_wait).error(), Errc::would_block);
  }
}

INSTANTIATE_TEST_SUITE_P(NumberedOrInTheRing, CommitCutShort, ::testing::Bool());

// Killed with chunks marked ahead and one loaned, nothing numbered: every chunk it marked
// is given back (the topic has 13, and its publisher marked them all), the subscriber
// watching the loaned one learns that the promise broke (the next publisher's first chunk
// is that one, but it drops a loan of it first), and 4 is the next publisher's.
TEST_F(SolePublisherRecovery, ChunksMarkedByTheDeadAreGivenBack) {
  auto publisher = topic->publisher();
  ASSERT_TRUE(publisher.has_value()) << publisher.error().message();
  std::vector<std::byte> message;
  EXPECT_EQ(follower.receive(message, no_wait).error(), Errc::would_block);
  {
    auto dropped = publisher->loan(8);
    ASSERT_TRUE(dropped.has_value()) << dropped.error().message();
  }
  for (std::uint64_t n = 4; n < 4 + 5 * capacity; ++n) {
    auto published = publisher->publish(as_bytes(std::to_string(n)), 5s);
    ASSERT_TRUE(published.has_value()) << published.error().message();
    EXPECT_EQ(*published, n);
    auto got = follower.receive(message, 5s);
    ASSERT_TRUE(got.has_value()) << got.error().message();
    EXPECT_EQ(got->sequence, n);
    EXPECT_EQ(got->lost, 0u);
    EXPECT_EQ(text_of(message), std::to_string(n));
  }
}

// A process recovering the dead publisher's slot (a subscriber waiting on it, say) holds
// the slot under its own identity with the recovering bit. A publisher that joins
// meanwhile waits for the recovery to end; here the recovery gives the slot back to the
// dead (as one does that finds a live slot naming its claim), and the joiner recovers it
// and publishes.
TEST_F(SolePublisherRecovery, APublisherJoiningDuringARecoveryWaitsForIt) {
  RawTopic raw{name};
  const std::uint64_t dead = raw.publisher().owner.load();
  raw.publisher().owner.store(platform::current_process().packed() | platform::ProcessIdentity::recovering_bit);
  test::Pipe progress;
  auto joiner = ChildProcess::spawn([&]() -> int {
    auto opened = Topic::open(name);
    if (!opened) return 10;
    progress.send("joining");
    auto publisher = opened->publisher();
    if (!publisher) return progress.send(publisher.error().message()), 11;
    return publisher->publish(as_bytes("joined"), 5s) ? 0 : 12;
  });
  ASSERT_EQ(progress.receive(), "joining");
  std::this_thread::sleep_for(20ms);
  raw.publisher().owner.store(dead);
  EXPECT_TRUE(joiner.wait(10s).exited_with(0)) << progress.receive(0ms).value_or("");
  std::vector<std::byte> message;
  auto got = follower.receive(message, 5s);
  ASSERT_TRUE(got.has_value()) << got.error().message();
  EXPECT_EQ(got->sequence, 4u);
  EXPECT_EQ(text_of(message), "joined");
}

// A recovery that does not end within the liveness interval (its process lives on, holding
// the slot) leaves the topic full, as a live publisher would.
TEST_F(SolePublisherRecovery, ARecoveryThatDoesNotEndLeavesTheTopicFull) {
  RawTopic raw{name};
  const std::uint64_t dead = raw.publisher().owner.load();
  raw.publisher().owner.store(platform::current_process().packed() | platform::ProcessIdentity::recovering_bit);
  auto publisher = topic->publisher();
  ASSERT_FALSE(publisher.has_value());
  EXPECT_EQ(publisher.error(), Errc::in_use);
  EXPECT_EQ(publisher.error().message(),
            "topic '" + name + "': has no publisher slot free: all 1 are held by live processes");
  raw.publisher().owner.store(dead);
  EXPECT_TRUE(topic->publisher().has_value());
}

}  // namespace
}  // namespace shmbox
