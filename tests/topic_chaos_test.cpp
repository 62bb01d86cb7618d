// Chaos: publishers of a blocking topic killed with SIGKILL at random moments (most of them
// inside a publish) and restarted, beside subscribers that copy and subscribers that hold
// messages in place (killed and restarted too). Every message carries its publisher, that
// publisher's count and a checksum; checked throughout: no subscriber sees a torn message,
// or a message in place that changes while held; each subscriber sees each publisher's
// counts in order with no gap (a blocking topic loses nothing; a restarted publisher may
// publish its last count again, if it was killed after the publish and before it noted
// it); no call fails; publishers never wait on a dead subscriber for good. At the end the
// topic still works.
//
// Run with three publishers (and a spare slot), and with one publisher on a topic of one
// publisher slot, whose publisher writes without compare-and-swap and whose subscribers
// follow its hints (design.md, "One publisher slot"): each restarted publisher recovers
// its dead predecessor's slot before it publishes.
//
// SHMBOX_CHAOS_SECONDS=N turns it into a soak of N seconds (default: 300 kills, at least
// 150 of them inside a publish).
#include <gtest/gtest.h>
#include <algorithm>
#include <atomic>
#include <cstring>
#include <random>
#include <thread>

#include "shmbox/topic.hpp"
#include "support/chaos.hpp"
#include "support/process.hpp"

namespace shmbox {
namespace {

using namespace std::chrono_literals;
using test::ChildProcess;

constexpr int max_publishers = 3;
constexpr int copiers = 2;
constexpr int holders = 2;
constexpr std::size_t max_payload = 512;

struct Stamp {
  std::uint32_t publisher;
  std::uint32_t payload_size;
  std::uint64_t count;
  std::uint64_t checksum;
};

std::uint64_t checksum_of(const Stamp& stamp, std::span<const std::byte> payload) {
  std::uint64_t hash = 0xcbf29ce484222325ull ^ (stamp.count * 31 + stamp.publisher);
  for (const std::byte b : payload) hash = (hash ^ std::to_integer<std::uint64_t>(b)) * 0x100000001b3ull;
  return hash;
}

// Each sequence number's message, as the first subscriber to get it saw it: (sequence <<
// 24) | the low 24 bits of its checksum, at sequence % this. Every other subscriber must
// see the same message under that number.
constexpr std::size_t numbers_kept = 1 << 16;

struct Ledger {
  std::atomic<bool> stop;
  std::atomic<std::uint64_t> by_number[numbers_kept];
  test::Violations violations;
  std::atomic<std::uint64_t> published;
  std::atomic<std::uint64_t> received;
  std::atomic<std::uint64_t> next_count[max_publishers];  // what each publisher publishes next
  std::atomic<std::int64_t> publishing[max_publishers];   // pid of the publisher inside publish(), 0 outside
};

std::optional<std::string> fault_in(std::span<const std::byte> bytes, Stamp& stamp) {
  if (bytes.size() < sizeof stamp) return "a message of " + std::to_string(bytes.size()) + " bytes has no stamp";
  std::memcpy(&stamp, bytes.data(), sizeof stamp);
  const auto payload = bytes.subspan(sizeof stamp);
  if (stamp.publisher >= max_publishers || stamp.payload_size != payload.size()) return "a message has a torn stamp";
  if (stamp.checksum != checksum_of(stamp, payload)) {
    return "publisher " + std::to_string(stamp.publisher) + "'s message " + std::to_string(stamp.count) + " is torn";
  }
  return std::nullopt;
}

int run_publisher(Topic& topic, Ledger& ledger, int index) {
  auto publisher = topic.publisher();
  if (!publisher) return ledger.violations.record("publisher() failed: " + publisher.error().message()), 2;
  std::mt19937_64 random{std::random_device{}()};
  std::vector<std::byte> message;
  while (!ledger.stop.load()) {
    const std::uint64_t count = ledger.next_count[index].load();
    const std::size_t payload_size = random() % max_payload;
    message.resize(sizeof(Stamp) + payload_size);
    for (std::size_t i = sizeof(Stamp); i < message.size(); ++i) message[i] = static_cast<std::byte>(random());
    Stamp stamp{static_cast<std::uint32_t>(index), static_cast<std::uint32_t>(payload_size), count, 0};
    stamp.checksum = checksum_of(stamp, std::span{message}.subspan(sizeof(Stamp)));
    std::memcpy(message.data(), &stamp, sizeof stamp);
    ledger.publishing[index] = ::getpid();
    // A dead subscriber holds a blocking topic back for 100 ms at most: far below this.
    auto published = publisher->publish(message, 10s);
    ledger.publishing[index] = 0;
    if (!published) return ledger.violations.record("publish failed: " + published.error().message()), 3;
    ledger.next_count[index].store(count + 1);
    ledger.published.fetch_add(1, std::memory_order_relaxed);
  }
  return 0;
}

// Whether the message under `sequence` is the one every other subscriber got under it.
bool same_message_everywhere(Ledger& ledger, std::uint64_t sequence, std::uint64_t checksum) {
  const std::uint64_t seen = sequence << 24 | (checksum & 0xffffff);
  std::atomic<std::uint64_t>& kept = ledger.by_number[sequence % numbers_kept];
  std::uint64_t current = kept.load();
  for (;;) {
    if (current >> 24 == sequence) return current == seen;
    if (current >> 24 > sequence) return true;  // far behind the others: no longer kept
    if (kept.compare_exchange_weak(current, seen)) return true;
  }
}

// Checks each message, that each publisher's counts come in order with no gap, that each
// number is one message for every subscriber, and (one publisher: nothing is abandoned,
// as a dead publisher's last message is rolled forward) that numbers have no gap.
int run_subscriber(Topic& topic, Ledger& ledger, bool in_place, bool sole) {
  auto subscriber = topic.subscribe();
  if (!subscriber) return ledger.violations.record("subscribe() failed: " + subscriber.error().message()), 2;
  std::optional<std::uint64_t> last[max_publishers];
  std::optional<std::uint64_t> last_sequence;
  const auto seen = [&](std::span<const std::byte> bytes, const Delivered& delivered) {
    Stamp stamp{};
    if (auto fault = fault_in(bytes, stamp)) return ledger.violations.record(*fault);
    if (delivered.lost != 0) ledger.violations.record("a blocking topic lost " + std::to_string(delivered.lost));
    if (!same_message_everywhere(ledger, delivered.sequence, stamp.checksum)) {
      ledger.violations.record("two messages were numbered " + std::to_string(delivered.sequence));
    }
    if (sole && last_sequence && delivered.sequence != *last_sequence + 1) {
      ledger.violations.record("numbers went from " + std::to_string(*last_sequence) + " to " +
                               std::to_string(delivered.sequence));
    }
    last_sequence = delivered.sequence;
    std::optional<std::uint64_t>& previous = last[stamp.publisher];
    if (previous && stamp.count != *previous && stamp.count != *previous + 1) {
      ledger.violations.record("publisher " + std::to_string(stamp.publisher) + "'s count went from " +
                               std::to_string(*previous) + " to " + std::to_string(stamp.count));
    }
    previous = stamp.count;
    ledger.received.fetch_add(1, std::memory_order_relaxed);
  };
  std::vector<std::byte> bytes;
  while (!ledger.stop.load()) {
    if (in_place) {
      auto message = subscriber->receive_in_place(200ms);
      if (!message) {
        if (message.error() == Errc::timeout) continue;
        return ledger.violations.record("receive_in_place failed: " + message.error().message()), 3;
      }
      seen(message->data(), message->info());
      std::this_thread::sleep_for(50us);  // held while publishers go on, and for kills to land in
      Stamp stamp{};
      if (auto fault = fault_in(message->data(), stamp)) ledger.violations.record("a held message changed: " + *fault);
    } else {
      auto delivered = subscriber->receive(bytes, 200ms);
      if (!delivered) {
        if (delivered.error() == Errc::timeout) continue;
        return ledger.violations.record("receive failed: " + delivered.error().message()), 4;
      }
      seen(bytes, *delivered);
    }
  }
  return 0;
}

int run_worker(const std::string& name, Ledger& ledger, int publishers, int worker) {
  auto topic = Topic::open(name);
  if (!topic) return ledger.violations.record("open failed: " + topic.error().message()), 1;
  if (worker < publishers) return run_publisher(*topic, ledger, worker);
  return run_subscriber(*topic, ledger, worker >= publishers + copiers, publishers == 1);
}

// The parameter: how many publishers; the topic has a spare slot beside several.
class TopicChaos : public ::testing::TestWithParam<int> {};

TEST_P(TopicChaos, KilledPublishersAndSubscribersNeverTearLoseOrStallATopic) {
  const int publishers = GetParam();
  const int workers = publishers + copiers + holders;
  const auto soak_for = test::chaos_soak_duration();
  const int target_kills = soak_for.count() > 0 ? 1 << 26 : 300;
  const int target_inside = soak_for.count() > 0 ? 0 : 150;
  const std::string name = test::unique_name("topic-chaos");
  auto topic = Topic::create(name, {.capacity = 16,
                                    .max_message_size = sizeof(Stamp) + max_payload,
                                    .max_subscribers = copiers + holders + 2,
                                    .max_publishers = static_cast<std::uint32_t>(publishers == 1 ? 1 : publishers + 1),
                                    .held_per_subscriber = 2,
                                    .ownership = Ownership::system});
  ASSERT_TRUE(topic.has_value()) << topic.error().message();
  auto& ledger = test::shared_with_workers<Ledger>();

  const auto start = [&](int w) {
    return ChildProcess::spawn([&, w] { return run_worker(name, ledger, publishers, w); });
  };
  auto running = test::start_workers(workers, start);
  // Two kills in three go to a publisher inside publish(), the rest to any worker,
  // subscribers holding messages among them.
  const auto tally = test::kill_and_restart(
      running, publishers, ledger.publishing,
      start, ledger.violations,
      target_kills, target_inside, 3, 2ms);
  const int kills = tally.kills;
  const int died_inside = tally.inside;
  EXPECT_TRUE(tally.all_killed_by_sigkill);
  ledger.stop = true;
  for (auto& child : running) EXPECT_TRUE(child.wait(30s).exited_with(0));
  EXPECT_EQ(ledger.violations.count.load(), 0u) << ledger.violations.first;

  // After it all the topic still works: every slot the dead held is recovered.
  auto subscriber = topic->subscribe();
  ASSERT_TRUE(subscriber.has_value()) << subscriber.error().message();
  auto publisher = topic->publisher();
  ASSERT_TRUE(publisher.has_value()) << publisher.error().message();
  std::vector<std::byte> message;
  for (int n = 0; n < 40; ++n) {  // more than the ring holds: dead subscribers' slots are passed
    auto published = publisher->publish(as_bytes("after"), 5s);
    ASSERT_TRUE(published.has_value()) << published.error().message();
    auto received = subscriber->receive(message, 5s);
    ASSERT_TRUE(received.has_value()) << received.error().message();
  }
  // A dead publisher's slot that nothing needed yet may still be listed, as dead.
  const auto status = Topic::stat(name);
  ASSERT_TRUE(status.has_value());
  const auto alive = [](const auto& participants) {
    return std::count_if(participants.begin(), participants.end(), [](const auto& one) { return one.alive; });
  };
  EXPECT_EQ(alive(status->subscribers), 1);
  EXPECT_EQ(alive(status->publishers), 1);

  std::printf("topic chaos, %d publisher%s: %d kills (%d inside a publish), %llu published, %llu received and checked\n", publishers,
              publishers == 1 ? "" : "s", kills,
              died_inside, static_cast<unsigned long long>(ledger.published.load()),
              static_cast<unsigned long long>(ledger.received.load()));
  EXPECT_GE(kills, soak_for.count() > 0 ? 1 : target_kills);
  EXPECT_GE(died_inside, target_inside);
  EXPECT_GT(ledger.received.load(), 0u);
  (void)Topic::remove(name);
}

INSTANTIATE_TEST_SUITE_P(Publishers, TopicChaos, ::testing::Values(3, 1));

}  // namespace
}  // namespace shmbox
