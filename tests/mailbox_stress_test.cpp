// Many senders and receivers on one mailbox, as separate processes (and, for
// ThreadSanitizer, as threads): every message carries (sender, sequence), and at the
// end each one was received exactly once, each receiver saw each sender's messages
// in order, and nobody hung.
#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <thread>
#include <vector>

#include "shmbox/mailbox.hpp"
#include "shmbox/segment.hpp"
#include "support/buffering.hpp"
#include "support/process.hpp"

namespace shmbox {
namespace {

using namespace std::chrono_literals;

struct StressCase {
  Buffering buffering;
  std::uint32_t capacity;
  int senders;
  int receivers;
  std::uint32_t per_sender;
  WaitMode wait = WaitMode::adaptive;  // sleep: every wait goes through the futex protocol
};

std::string describe(const StressCase& c) {
  const std::string kind = shmbox::buffering_name(c.buffering);
  const char* wait = c.wait == WaitMode::sleep ? "_sleep" : c.wait == WaitMode::busy_poll ? "_busy" : "";
  return kind + "_capacity" + std::to_string(c.capacity) + "_" + std::to_string(c.senders) + "x" +
         std::to_string(c.receivers) + wait;
}

struct Stamp {
  std::uint32_t sender;
  std::uint32_t sequence;
};

// Variable sizes: 8 to 71 bytes, the tail filled with a pattern the receiver checks.
std::size_t message_size(const Stamp& stamp) { return sizeof(Stamp) + (stamp.sequence * 7 + stamp.sender) % 64; }

int send_all(const std::string& name, std::uint32_t sender, std::uint32_t count, WaitMode wait) {
  auto box = Mailbox::open(name, {.mode = wait});
  if (!box) return 10;
  std::array<std::byte, 128> buffer{};
  for (std::uint32_t sequence = 0; sequence < count; ++sequence) {
    const Stamp stamp{sender, sequence};
    std::memcpy(buffer.data(), &stamp, sizeof stamp);
    const std::size_t size = message_size(stamp);
    std::memset(buffer.data() + sizeof stamp, static_cast<int>(sequence & 0xff), size - sizeof stamp);
    if (!box->send({buffer.data(), size})) return 11;
  }
  return 0;
}

// counts[sender * per_sender + sequence] is incremented once per delivery.
int receive_all(const std::string& name, std::atomic<std::uint32_t>* counts, const StressCase& c) {
  auto box = Mailbox::open(name, {.mode = c.wait});
  if (!box) return 20;
  std::vector<std::int64_t> last(static_cast<std::size_t>(c.senders), -1);
  std::array<std::byte, 128> buffer{};
  for (;;) {
    auto size = box->receive(buffer);
    if (!size) {
      if (size.error().errc() == Errc::closed) return 0;
      std::fprintf(stderr, "receiver: %s\n", size.error().message().c_str());
      return 21;
    }
    Stamp stamp{};
    if (*size < sizeof stamp) return 22;
    std::memcpy(&stamp, buffer.data(), sizeof stamp);
    if (stamp.sender >= static_cast<std::uint32_t>(c.senders) || stamp.sequence >= c.per_sender) return 23;
    if (*size != message_size(stamp)) return 24;
    for (std::size_t i = sizeof stamp; i < *size; ++i) {
      if (buffer[i] != static_cast<std::byte>(stamp.sequence & 0xff)) return 25;
    }
    if (static_cast<std::int64_t>(stamp.sequence) <= last[stamp.sender]) return 26;  // per-sender order
    last[stamp.sender] = stamp.sequence;
    counts[std::size_t{stamp.sender} * c.per_sender + stamp.sequence].fetch_add(1, std::memory_order_relaxed);
  }
}

void expect_each_once(const std::atomic<std::uint32_t>* counts, const StressCase& c) {
  std::size_t lost = 0, duplicated = 0;
  for (std::size_t i = 0; i < std::size_t{c.per_sender} * static_cast<std::size_t>(c.senders); ++i) {
    const auto n = counts[i].load();
    lost += n == 0;
    duplicated += n > 1;
  }
  EXPECT_EQ(lost, 0u);
  EXPECT_EQ(duplicated, 0u);
}

MailboxOptions options_for(const StressCase& c) {
  return {.buffering = c.buffering, .capacity = c.capacity == 0 ? 1 : c.capacity, .max_message_size = 128,
          .max_attached = 32};
}

class MailboxStress : public ::testing::TestWithParam<StressCase> {
 protected:
  void TearDown() override {
    (void)Mailbox::remove(name);
    (void)Segment::remove(name + "-counts");
  }
  std::string name = test::unique_name("stress");
};

TEST_P(MailboxStress, ProcessesReceiveEveryMessageExactlyOnceInSenderOrder) {
  const StressCase c = GetParam();
  auto box = Mailbox::create(name, options_for(c));
  ASSERT_TRUE(box) << box.error().message();
  const std::size_t total = std::size_t{c.per_sender} * static_cast<std::size_t>(c.senders);
  auto counts_segment = Segment::create(name + "-counts", total * sizeof(std::uint32_t));
  ASSERT_TRUE(counts_segment);
  auto* counts = reinterpret_cast<std::atomic<std::uint32_t>*>(counts_segment->writable_bytes()->data());

  std::vector<test::ChildProcess> receivers, senders;
  for (int r = 0; r < c.receivers; ++r) {
    receivers.push_back(test::ChildProcess::spawn([&] { return receive_all(name, counts, c); }));
  }
  for (int s = 0; s < c.senders; ++s) {
    senders.push_back(test::ChildProcess::spawn([&, s] { return send_all(name, static_cast<std::uint32_t>(s), c.per_sender, c.wait); }));
  }
  for (auto& sender : senders) {
    const auto status = sender.wait(120s);
    EXPECT_TRUE(status.exited_with(0)) << "sender " << status.describe();
  }
  ASSERT_TRUE(box->close());
  for (auto& receiver : receivers) {
    const auto status = receiver.wait(60s);
    EXPECT_TRUE(status.exited_with(0)) << "receiver " << status.describe();
  }
  expect_each_once(counts, c);
}

TEST_P(MailboxStress, ThreadsReceiveEveryMessageExactlyOnceInSenderOrder) {
  // The same protocol in one process, so that ThreadSanitizer can check the memory orders.
  const StressCase c = GetParam();
  auto box = Mailbox::create(name, options_for(c));
  ASSERT_TRUE(box) << box.error().message();
  const std::size_t total = std::size_t{c.per_sender} * static_cast<std::size_t>(c.senders);
  std::vector<std::atomic<std::uint32_t>> counts(total);
  std::vector<int> results(static_cast<std::size_t>(c.senders + c.receivers), -1);
  std::vector<std::thread> receivers, senders;
  for (int r = 0; r < c.receivers; ++r) {
    receivers.emplace_back([&, r] { results[static_cast<std::size_t>(r)] = receive_all(name, counts.data(), c); });
  }
  for (int s = 0; s < c.senders; ++s) {
    senders.emplace_back([&, s] {
      results[static_cast<std::size_t>(c.receivers + s)] = send_all(name, static_cast<std::uint32_t>(s), c.per_sender, c.wait);
    });
  }
  for (auto& sender : senders) sender.join();
  ASSERT_TRUE(box->close());
  for (auto& receiver : receivers) receiver.join();
  for (const int result : results) EXPECT_EQ(result, 0);
  expect_each_once(counts.data(), c);
}

INSTANTIATE_TEST_SUITE_P(
    Mailbox, MailboxStress,
    ::testing::Values(StressCase{Buffering::bounded, 1, 3, 3, 10000}, StressCase{Buffering::bounded, 2, 3, 2, 10000},
                      StressCase{Buffering::bounded, 7, 2, 3, 20000}, StressCase{Buffering::bounded, 64, 4, 4, 20000},
                      StressCase{Buffering::bounded, 1024, 1, 1, 100000}, StressCase{Buffering::zero, 0, 3, 3, 5000},
                      StressCase{Buffering::bounded, 1, 2, 2, 5000, WaitMode::sleep},
                      StressCase{Buffering::bounded, 16, 3, 1, 5000, WaitMode::sleep},
                      StressCase{Buffering::zero, 0, 2, 2, 2000, WaitMode::sleep},
                      StressCase{Buffering::bounded, 8, 2, 2, 20000, WaitMode::busy_poll},
                      StressCase{Buffering::unbounded, 0, 3, 3, 20000}, StressCase{Buffering::unbounded, 0, 2, 1, 30000, WaitMode::sleep}),
    [](const auto& test_info) { return describe(test_info.param); });

}  // namespace
}  // namespace shmbox
