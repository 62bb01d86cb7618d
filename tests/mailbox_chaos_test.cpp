// Chaos: senders and receivers as separate processes, killed with SIGKILL at random
// moments, over and over, and restarted. At the end every message whose send returned
// success has been received, none twice (except a redelivery after its receiver was
// killed holding it, which is the recovery working), and no survivor hung.
//
// SHMBOX_CHAOS_SECONDS=N turns it into a soak of N seconds (default: 1,000 kills; 400 under
// AddressSanitizer, 200 under ThreadSanitizer).
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <set>
#include <thread>

#include "shmbox/mailbox.hpp"
#include "shmbox/segment.hpp"
#include "support/build.hpp"
#include "support/buffering.hpp"
#include "support/process.hpp"

namespace shmbox {
namespace {

using namespace std::chrono_literals;
using test::ChildProcess;

constexpr std::uint32_t max_incarnations = 8192;
constexpr std::uint32_t messages_per_incarnation = 2048;

// Shared between the supervisor and every worker.
struct Ledger {
  std::atomic<std::uint32_t> sent[max_incarnations][messages_per_incarnation / 32];  // bit per message
  std::atomic<std::uint16_t> received_by[max_incarnations][messages_per_incarnation];  // receiver incarnation + 1
  std::atomic<std::uint8_t> killed[max_incarnations];
  // A receiver holds one message at a time: the last it took (incarnation << 32 |
  // sequence, + 1) is the only one its death may bring round again, and only once.
  std::atomic<std::uint64_t> holding[max_incarnations];
  std::atomic<std::uint8_t> redelivered[max_incarnations];
  std::atomic<std::uint64_t> received, recovered, duplicates, sends;
};

struct Message {
  std::uint32_t incarnation;
  std::uint32_t sequence;
};

// Odd incarnations send and receive in batches. A batch receiver's buffer is shared with
// the supervisor: a receiver killed after its batch left the mailbox and before it wrote
// the batch down took those messages with it, which is a receiver's loss, not a send's.
constexpr std::size_t receive_batch = 8;
constexpr std::uint32_t send_batch = 5;
bool batches(std::uint32_t incarnation) { return incarnation % 2 == 1; }
struct BatchBuffers {
  Message messages[max_incarnations][receive_batch];
};

int run_sender(const std::string& name, Ledger& ledger, std::uint32_t incarnation) {
  auto box = Mailbox::open(name);
  if (!box) {
    std::fprintf(stderr, "sender %u: %s\n", incarnation, box.error().message().c_str());
    return 10;
  }
  const std::uint32_t batch = batches(incarnation) ? send_batch : 1;
  std::array<Message, send_batch> messages{};
  std::array<std::span<const std::byte>, send_batch> spans;
  for (std::uint32_t k = 0; k < send_batch; ++k) spans[k] = std::as_bytes(std::span{&messages[k], 1});
  for (std::uint32_t first = 0; first < messages_per_incarnation; first += batch) {
    const std::uint32_t count = std::min(batch, messages_per_incarnation - first);
    for (std::uint32_t k = 0; k < count; ++k) messages[k] = Message{incarnation, first + k};
    std::size_t sent = 0;
    while (sent < count) {
      Result<std::size_t> more = 1;
      if (batch == 1) {
        if (auto one = box->send(spans[0], 10s); !one) more = std::unexpected(one.error());
      } else {
        more = box->send_many(std::span{spans}.subspan(sent, count - sent), 10s);
      }
      if (!more) return more.error().errc() == Errc::closed ? 0 : 11;
      // Recorded after the send returned: only these are promised.
      for (std::size_t k = sent; k < sent + *more; ++k) {
        const std::uint32_t sequence = first + static_cast<std::uint32_t>(k);
        ledger.sent[incarnation][sequence / 32].fetch_or(1u << (sequence % 32));
        ledger.sends.fetch_add(1);
      }
      sent += *more;
    }
  }
  return 0;
}

// Records a delivery of `message` to `incarnation`; false if it cannot be one of ours.
bool record(Ledger& ledger, const Message& message, std::uint32_t incarnation) {
  if (message.incarnation >= max_incarnations || message.sequence >= messages_per_incarnation) return false;
  auto& slot = ledger.received_by[message.incarnation][message.sequence];
  const std::uint64_t key = (std::uint64_t{message.incarnation} << 32 | message.sequence) + 1;
  if (!batches(incarnation)) ledger.holding[incarnation].store(key);
  std::uint16_t previous = 0;
  if (!slot.compare_exchange_strong(previous, static_cast<std::uint16_t>(incarnation + 1))) {
    // Seen before: legitimate only if the receiver that saw it was killed holding it
    // (before it released the message, which is why it came round again), and once.
    const std::uint32_t holder = previous - 1u;
    if (ledger.killed[holder].load() != 0 && ledger.holding[holder].load() == key &&
        ledger.redelivered[holder].exchange(1) == 0) {
      ledger.recovered.fetch_add(1);
      slot.store(static_cast<std::uint16_t>(incarnation + 1));
    } else {
      ledger.duplicates.fetch_add(1);
    }
  } else {
    ledger.received.fetch_add(1);
  }
  return true;
}

// A batch receiver: receive_many into its shared buffer, then writes the batch down.
int run_batch_receiver(Mailbox& box, Ledger& ledger, BatchBuffers& buffers, std::uint32_t incarnation) {
  std::array<std::size_t, receive_batch> sizes{};
  for (;;) {
    auto count = box.receive_many(std::as_writable_bytes(std::span{buffers.messages[incarnation]}), sizes, 10s);
    if (!count) {
      if (count.error().errc() == Errc::closed) return 0;
      std::fprintf(stderr, "receiver %u: %s\n", incarnation, count.error().message().c_str());
      return 21;
    }
    for (std::size_t k = 0; k < *count; ++k) {
      if (sizes[k] != sizeof(Message)) return 22;
      if (!record(ledger, buffers.messages[incarnation][k], incarnation)) return 23;
    }
  }
}

int run_receiver(const std::string& name, Ledger& ledger, BatchBuffers& buffers, std::uint32_t incarnation) {
  auto box = Mailbox::open(name);
  if (!box) {
    std::fprintf(stderr, "receiver %u: %s\n", incarnation, box.error().message().c_str());
    return 20;
  }
  if (batches(incarnation)) return run_batch_receiver(*box, ledger, buffers, incarnation);
  for (;;) {
    // In place, so that the delivery is recorded before the message is released: a
    // receiver killed in between has its message adopted and recorded again by another.
    auto held = box->receive_in_place(10s);
    if (!held) {
      if (held.error().errc() == Errc::closed) return 0;
      std::fprintf(stderr, "receiver %u: %s\n", incarnation, held.error().message().c_str());
      return 21;
    }
    if (held->size() != sizeof(Message)) return 22;
    Message message{};
    std::memcpy(&message, held->data().data(), sizeof message);
    if (!record(ledger, message, incarnation)) return 23;
    // Hold it a moment, as a consumer that processes in place would: kills then land
    // between delivery and release often enough to exercise adoption.
    for (int spin = 0; spin < 2000; ++spin) asm volatile("" ::: "memory");
    held->release();
  }
}

class MailboxChaos : public ::testing::TestWithParam<Buffering> {};

TEST_P(MailboxChaos, KilledSendersAndReceiversLoseNothingAndNobodyHangs) {
  const char* soak = std::getenv("SHMBOX_CHAOS_SECONDS");
  const auto budget = soak != nullptr ? std::chrono::seconds{std::atoi(soak)} : std::chrono::seconds{120};
  // Sanitizer builds run many times slower: fewer kills keep to the budget (the
  // optimised build's run in CI does the full 1,000).
  const std::uint64_t kill_target = soak != nullptr ? UINT64_MAX : test::thread_sanitized_build ? 200 : test::sanitized_build ? 400 : 1000;
  const std::string name = test::unique_name("chaos");
  auto box = Mailbox::create(
      name, {.buffering = GetParam(), .capacity = 8, .max_message_size = sizeof(Message), .max_attached = 64});
  ASSERT_TRUE(box) << box.error().message();
  auto ledger_segment = Segment::create(name + "-ledger", sizeof(Ledger));
  ASSERT_TRUE(ledger_segment);
  auto* ledger = new (ledger_segment->writable_bytes()->data()) Ledger{};
  auto buffers_segment = Segment::create(name + "-buffers", sizeof(BatchBuffers));
  ASSERT_TRUE(buffers_segment);
  auto* buffers = new (buffers_segment->writable_bytes()->data()) BatchBuffers{};
  // No message has these: an entry no batch filled excuses nothing.
  for (auto& buffer : buffers->messages) std::fill(std::begin(buffer), std::end(buffer), Message{UINT32_MAX, UINT32_MAX});

  struct Worker {
    ChildProcess process;
    std::uint32_t incarnation;
    bool sender;
  };
  std::vector<Worker> workers;
  std::uint32_t next_incarnation = 0;
  std::vector<bool> was_sender;  // by incarnation
  auto spawn = [&](bool sender) {
    const std::uint32_t incarnation = next_incarnation++;
    was_sender.push_back(sender);
    workers.push_back({ChildProcess::spawn([&, incarnation, sender] {
                         return sender ? run_sender(name, *ledger, incarnation)
                                       : run_receiver(name, *ledger, *buffers, incarnation);
                       }),
                       incarnation, sender});
  };
  for (int i = 0; i < 2; ++i) spawn(true);
  for (int i = 0; i < 2; ++i) spawn(false);

  std::mt19937 random{20261126};
  std::uint64_t kills = 0;
  const auto start = std::chrono::steady_clock::now();
  while (kills < kill_target && std::chrono::steady_clock::now() - start < budget &&
         next_incarnation + 8 < max_incarnations) {
    std::this_thread::sleep_for(std::chrono::microseconds{random() % 3000});
    auto& victim = workers[random() % workers.size()];
    const bool sender = victim.sender;
    ledger->killed[victim.incarnation].store(1);  // before: it may die holding a message
    victim.process.kill();
    const auto status = victim.process.wait(10s);
    // Killed, or finished on its own just before (a sender that sent its share).
    ASSERT_TRUE(status.killed_by(SIGKILL) || status.exited_with(0)) << status.describe();
    if (status.killed_by(SIGKILL)) ++kills;
    victim = std::move(workers.back());
    workers.pop_back();
    spawn(sender);
    // A sender that sent its whole share has exited: replace it too.
    for (std::size_t i = 0; i < workers.size(); ++i) {
      if (!workers[i].sender) continue;
      if (const auto ended = workers[i].process.try_wait()) {
        ASSERT_TRUE(ended->exited_with(0)) << "sender " << ended->describe();
        workers[i] = std::move(workers.back());
        workers.pop_back();
        spawn(true);
        break;
      }
    }
  }

  // Stop the senders, let the receivers drain, then close: nobody may hang.
  for (auto& worker : workers) {
    if (worker.sender) {
      worker.process.kill();
      ledger->killed[worker.incarnation].store(1);
      worker.process.wait(10s);
    }
  }
  const auto drain_deadline = std::chrono::steady_clock::now() + 30s;
  while (box->queued() != 0 && std::chrono::steady_clock::now() < drain_deadline) std::this_thread::sleep_for(1ms);
  // Everything queued reached a receiver: nothing is left behind a dead one.
  EXPECT_EQ(box->queued(), 0u);
  // Held by receivers killed just now and not yet recovered: give recovery its interval.
  std::this_thread::sleep_for(300ms);
  ASSERT_TRUE(box->close());
  for (auto& worker : workers) {
    if (!worker.sender) {
      const auto status = worker.process.wait(30s);
      EXPECT_TRUE(status.exited_with(0)) << "receiver " << status.describe();
    }
  }

  // What killed batch receivers took with them (their last batch, not written down). A
  // batch copies a message out before it frees it, so a message in such a buffer may also
  // be one the dead still held, which recovery must hand on: this excuses its loss here;
  // AReceiverKilledInsideABatchLosesNothing (mailbox_recovery_test) checks that path.
  std::set<std::pair<std::uint32_t, std::uint32_t>> taken_by_the_dead;
  for (std::uint32_t i = 0; i < next_incarnation; ++i) {
    if (!batches(i) || was_sender[i] || ledger->killed[i].load() == 0) continue;
    for (const Message& message : buffers->messages[i]) taken_by_the_dead.emplace(message.incarnation, message.sequence);
  }
  std::uint64_t promised = 0, lost = 0, died_with_receiver = 0;
  for (std::uint32_t i = 0; i < next_incarnation; ++i) {
    for (std::uint32_t s = 0; s < messages_per_incarnation; ++s) {
      if ((ledger->sent[i][s / 32].load() & (1u << (s % 32))) == 0) continue;
      ++promised;
      if (ledger->received_by[i][s].load() != 0) continue;
      if (taken_by_the_dead.contains({i, s})) {
        ++died_with_receiver;
      } else {
        ++lost;
      }
    }
  }
  std::printf("chaos (%s): %llu kills, %u processes, %llu sends returned success, %llu received, %llu recovered "
              "(redelivered after their receiver was killed), %llu taken by batch receivers killed before they "
              "wrote them down, %llu lost, %llu duplicated, %.1f s\n",
              ::testing::UnitTest::GetInstance()->current_test_info()->name(), static_cast<unsigned long long>(kills),
              next_incarnation, static_cast<unsigned long long>(promised),
              static_cast<unsigned long long>(ledger->received.load()),
              static_cast<unsigned long long>(ledger->recovered.load()),
              static_cast<unsigned long long>(died_with_receiver), static_cast<unsigned long long>(lost),
              static_cast<unsigned long long>(ledger->duplicates.load()),
              std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  EXPECT_GE(kills, soak != nullptr ? 1u : kill_target);
  EXPECT_EQ(lost, 0u);
  EXPECT_EQ(ledger->duplicates.load(), 0u);
  std::uint64_t killed_receivers = 0;
  for (std::uint32_t i = 0; i < next_incarnation; ++i) killed_receivers += ledger->killed[i].load() != 0;
  EXPECT_LE(ledger->recovered.load(), killed_receivers);  // at most one each (senders counted too: a bound)
  (void)Mailbox::remove(name);
  (void)Segment::remove(name + "-ledger");
  (void)Segment::remove(name + "-buffers");
}

INSTANTIATE_TEST_SUITE_P(Mailbox, MailboxChaos, test::all_bufferings, test::buffering_test_name);

}  // namespace
}  // namespace shmbox
