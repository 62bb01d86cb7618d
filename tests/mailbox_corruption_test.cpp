// Everything read from shared memory is untrusted. These tests write into a
// mailbox's memory directly, as a buggy or hostile process could, and check that
// every operation then returns Errc::corrupt or works: never a crash, a hang, or an
// access outside the mapping.
#include <gtest/gtest.h>

#include <cstring>
#include <random>

#include "shmbox/mailbox.hpp"
#include "shmbox/segment.hpp"
#include "support/buffering.hpp"
#include "support/process.hpp"

namespace shmbox {
namespace {

using namespace std::chrono_literals;

constexpr std::size_t tail_offset = 64;
constexpr std::size_t head_offset = 128;
constexpr std::size_t slots_offset = 8192;  // 512-byte header + 64 attach lines of 64 bytes, rounded to a page

class MailboxCorruption : public ::testing::Test {
 protected:
  void SetUp() override {
    auto created = Mailbox::create(name, {.capacity = 4, .max_message_size = 64});
    ASSERT_TRUE(created) << created.error().message();
    box.emplace(std::move(*created));
    ASSERT_TRUE(box->send(as_bytes("first")));
    ASSERT_TRUE(box->send(as_bytes("second")));
    raw.emplace(Segment::open("shmbox.mb." + name, Access::read_write).value());
  }
  void TearDown() override { (void)Mailbox::remove(name); }

  template <class T>
  void poke(std::size_t offset, T value) {
    std::memcpy(raw->writable_bytes()->data() + offset, &value, sizeof value);
  }
  Errc receive_error() {
    std::array<std::byte, 64> buffer{};
    auto got = box->receive(buffer, 20ms);
    return got ? Errc{} : got.error().errc();
  }

  std::string name = test::unique_name("corrupt");
  std::optional<Mailbox> box;
  std::optional<Segment> raw;
};

TEST_F(MailboxCorruption, InvalidPhaseIsCorrupt) {
  poke<std::uint64_t>(slots_offset, std::uint64_t{0} << 24 | std::uint64_t{9} << 16);
  std::array<std::byte, 64> buffer{};
  auto got = box->receive(buffer, no_wait);
  ASSERT_FALSE(got);
  EXPECT_EQ(got.error().errc(), Errc::corrupt);
  EXPECT_EQ(got.error().message(), "mailbox '" + name + "': slot for position 0 has an invalid phase");
}

TEST_F(MailboxCorruption, SizeOverTheMaximumIsCorruptAndNothingIsCopied) {
  poke<std::uint32_t>(slots_offset + 8, 1u << 30);
  std::array<std::byte, 64> buffer{};
  auto got = box->receive(buffer, no_wait);
  ASSERT_FALSE(got);
  EXPECT_EQ(got.error().errc(), Errc::corrupt);
  EXPECT_EQ(got.error().message(), "mailbox '" + name + "': slot for position 0 holds a size over the mailbox's maximum");
}

TEST_F(MailboxCorruption, HeadAndTailTooFarApartIsCorrupt) {
  std::array<std::byte, 64> buffer{};
  ASSERT_TRUE(box->receive(buffer, no_wait));
  ASSERT_TRUE(box->receive(buffer, no_wait));
  poke<std::uint64_t>(tail_offset, 1000);
  auto got = box->receive_in_place(no_wait);
  ASSERT_FALSE(got);
  EXPECT_EQ(got.error().errc(), Errc::corrupt);
  EXPECT_EQ(got.error().message(), "mailbox '" + name + "': head 2 and tail 1000 are further apart than the capacity");
  EXPECT_EQ(box->queued(), 0u);  // a snapshot never reports more than the capacity
}

TEST_F(MailboxCorruption, HeadAheadOfTailIsCorrupt) {
  poke<std::uint64_t>(head_offset, 5);
  EXPECT_EQ(receive_error(), Errc::corrupt);
}

TEST_F(MailboxCorruption, SlotPositionOutOfTheRingIsCorrupt) {
  poke<std::uint64_t>(slots_offset, std::uint64_t{3} << 24 | std::uint64_t{2} << 16);
  EXPECT_EQ(receive_error(), Errc::corrupt);
  // Slot 2 serves position 2 next; a wild position there stops senders too.
  poke<std::uint64_t>(slots_offset + 2 * 128, std::uint64_t{77} << 24);
  auto sent = box->send(as_bytes("x"), 20ms);
  ASSERT_FALSE(sent);
  EXPECT_EQ(sent.error().errc(), Errc::corrupt);
  EXPECT_EQ(sent.error().message(), "mailbox '" + name + "': slot for position 2 holds a position that does not fit the ring");
}

TEST_F(MailboxCorruption, AnUnpublishedSlotAtHeadIsWaitedForNotRead) {
  // Position 0 FREE while tail has passed it is what a sender still writing looks
  // like: receivers wait for it (a dead sender's slot is recovered, not misread).
  poke<std::uint64_t>(slots_offset, 0);
  EXPECT_EQ(receive_error(), Errc::timeout);
}

TEST_F(MailboxCorruption, CorruptIdentityFieldsAreCaughtAtOpen) {
  struct Case {
    std::size_t offset;
    std::uint32_t value;
    const char* detail;
  };
  for (const auto& [offset, value, detail] :
       {Case{12, 100, "header size field is wrong"}, Case{16, 7, "buffering field is invalid"},
        Case{24, 1u << 31, "max message size field is out of range"}, Case{28, 65, "slot stride field is inconsistent"},
        Case{32, 0, "slot count is zero"}, Case{36, 0, "attach capacity field is out of range"},
        Case{20, 5, "capacity and slot count disagree"}}) {
    std::array<std::byte, 64> saved{};
    std::memcpy(saved.data(), raw->bytes().data(), saved.size());
    poke(offset, value);
    auto opened = Mailbox::open(name);
    ASSERT_FALSE(opened) << detail;
    EXPECT_EQ(opened.error().errc(), Errc::corrupt);
    EXPECT_EQ(opened.error().detail(), detail);
    EXPECT_EQ(Mailbox::stat(name).error().errc(), Errc::corrupt);
    std::memcpy(raw->writable_bytes()->data(), saved.data(), saved.size());
  }
  EXPECT_TRUE(Mailbox::open(name));
}

// Random garbage, many times over, in a child with a deadline: a crash shows as a
// signal, a hang as a timeout. Every buffering mode; every region another process
// could scribble on: the header's counters, the attach table, the chunk table
// (unbounded), the slots, and now and then the identity itself.
class RandomGarbage : public ::testing::TestWithParam<Buffering> {
 protected:
  std::string name = test::unique_name("garbage");
};

TEST_P(RandomGarbage, NeverCrashesOrHangs) {
  const Buffering buffering = GetParam();
  test::Pipe progress;
  constexpr int trials = 300;
  auto child = test::ChildProcess::spawn([&] {
    std::mt19937_64 random{12345 + static_cast<unsigned>(buffering)};
    for (int trial = 0; trial < trials; ++trial) {
      const std::string trial_name = name + "-" + std::to_string(trial);
      auto victim = Mailbox::create(trial_name, {.buffering = buffering, .capacity = 4, .max_message_size = 64}).value();
      if (buffering != Buffering::zero) {
        (void)victim.send(as_bytes("a"));
        (void)victim.send(as_bytes("bb"));
      }
      auto file = Segment::open("shmbox.mb." + trial_name, Access::read_write).value();
      auto memory = file.writable_bytes().value();
      std::uint64_t attach = 0, slots = 0, chunks = 0;
      std::memcpy(&attach, memory.data() + 40, sizeof attach);
      std::memcpy(&slots, memory.data() + 48, sizeof slots);
      std::memcpy(&chunks, memory.data() + 320, sizeof chunks);
      struct Region {
        std::size_t base, span;
      };
      std::vector<Region> regions{{64, 320}, {attach, 4 * 64}, {slots, 4 * 128}, {0, 64}};
      if (buffering == Buffering::unbounded) regions.push_back({chunks, 64});
      for (int hits = 0; hits < 1 + trial % 4; ++hits) {
        const Region region = regions[random() % regions.size()];
        const std::size_t offset = region.base + random() % region.span;
        const std::size_t length = std::min<std::size_t>(1 + random() % 16, memory.size() - offset);
        for (std::size_t i = 0; i < length; ++i) memory[offset + i] = static_cast<std::byte>(random());
      }
      progress.send(std::to_string(trial));
      std::array<std::byte, 64> buffer{};
      (void)victim.send(as_bytes("c"), no_wait);
      (void)victim.receive(buffer, no_wait);
      (void)victim.receive(buffer, 5ms);
      (void)victim.send(as_bytes("d"), 5ms);
      if (auto loan = victim.loan(8, no_wait)) (void)loan->commit(8, 5ms);
      (void)victim.receive_in_place(no_wait);
      (void)victim.queued();
      (void)Mailbox::stat(trial_name);
      if (auto other = Mailbox::open(trial_name)) (void)other->receive(buffer, 5ms);
      (void)Mailbox::remove(trial_name);
    }
    return 0;
  });
  const auto status = child.wait(180s);
  std::string last = "none";
  while (auto line = progress.receive(0ms)) last = *line;
  EXPECT_TRUE(status.exited_with(0)) << status.describe() << " during trial " << last;
  for (int trial = 0; trial < trials; ++trial) (void)Mailbox::remove(name + "-" + std::to_string(trial));
}

INSTANTIATE_TEST_SUITE_P(Mailbox, RandomGarbage, test::all_bufferings, test::buffering_test_name);

}  // namespace
}  // namespace shmbox
