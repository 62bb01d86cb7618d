// The mailbox semantics every back end keeps, run against each: a local mailbox in
// /dev/shm, and a remote one on a real nats-server (started on loopback per test).
// Every mailbox call runs in a child process: the NATS client is not fork-safe, so the
// test process itself never starts it.
#include <gtest/gtest.h>

#include <array>
#include <atomic>
#include <functional>
#include <stdexcept>
#include <thread>

#include "shmbox/mailbox.hpp"
#include "shmbox/segment.hpp"
#include "support/nats_test.hpp"
#include "support/process.hpp"
#include "support/text.hpp"

namespace shmbox {
namespace {

using namespace std::chrono_literals;
using test::ChildProcess;
using test::text_of;

enum class Backend { local, remote };

class MailboxSemantics : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    if (GetParam() == Backend::local) {
      name = test::unique_name("semantics");
      return;
    }
    test::start_nats_or_skip(server);
    if (server) name = test::remote_name(*server, "semantics");
  }
  void TearDown() override {
    if (GetParam() == Backend::local) (void)Mailbox::remove(name);
  }
  // System-owned, so that it outlives the child that creates it.
  void create(MailboxOptions options) {
    options.ownership = Ownership::system;
    in_child([&] {
      auto box = Mailbox::create(name, options);
      if (!box) std::fprintf(stderr, "create: %s\n", box.error().message().c_str());
      return box ? 0 : 1;
    });
  }
  void in_child(const std::function<int()>& body) { test::expect_child_succeeds(body); }
  std::optional<test::NatsServer> server;
  std::string name;
};

// Two senders and two receivers: each message is received once, and each receiver sees
// each sender's messages in the order they were sent.
TEST_P(MailboxSemantics, CompetingReceiversTakeEachMessageOnceInEachSendersOrder) {
  constexpr std::uint32_t per_sender = 200;
  const std::string ledger_name = test::unique_name("semantics-ledger");
  auto ledger = Segment::create(ledger_name, 2 * per_sender * sizeof(std::uint32_t));
  ASSERT_TRUE(ledger);
  auto* seen = reinterpret_cast<std::atomic<std::uint32_t>*>(ledger->writable_bytes()->data());
  create({.capacity = 16, .max_message_size = 16});
  std::vector<ChildProcess> receivers;
  for (int r = 0; r < 2; ++r) {
    receivers.push_back(ChildProcess::spawn([&] {
      auto box = Mailbox::open(name);
      if (!box) return 1;
      std::int64_t last[2] = {-1, -1};
      for (;;) {
        auto value = box->receive_value<std::uint32_t>(3s);
        if (!value) return value.error().errc() == Errc::timeout ? 0 : 2;  // all taken
        const std::uint32_t sender = *value / per_sender;
        if (sender > 1 || static_cast<std::int64_t>(*value) <= last[sender]) return 3;
        last[sender] = *value;
        seen[*value].fetch_add(1);
      }
    }));
  }
  std::vector<ChildProcess> senders;
  for (std::uint32_t s = 0; s < 2; ++s) {
    senders.push_back(ChildProcess::spawn([&, s] {
      auto box = Mailbox::open(name);
      if (!box) return 1;
      for (std::uint32_t i = 0; i < per_sender; ++i) {
        if (!box->send_value(s * per_sender + i, 30s)) return 2;  // waits while 16 are queued
      }
      return 0;
    }));
  }
  for (auto& sender : senders) EXPECT_TRUE(sender.wait(60s).exited_with(0));
  for (auto& receiver : receivers) EXPECT_TRUE(receiver.wait(60s).exited_with(0));
  for (std::uint32_t i = 0; i < 2 * per_sender; ++i) EXPECT_EQ(seen[i].load(), 1u) << "message " << i;
  (void)Segment::remove(ledger_name);
}

TEST_P(MailboxSemantics, AFullBoundedMailboxWouldBlockTimesOutAndBlocksUntilThereIsRoom) {
  create({.capacity = 2, .max_message_size = 16});
  in_child([&] {
    auto box = Mailbox::open(name);
    if (!box || box->buffering() != Buffering::bounded || box->capacity() != 2) return 1;
    if (!box->send(as_bytes("a")) || !box->send(as_bytes("b"))) return 2;
    auto full = box->send(as_bytes("c"), no_wait);
    if (full || full.error().errc() != Errc::would_block) return 3;
    const auto start = std::chrono::steady_clock::now();
    auto late = box->send(as_bytes("c"), 100ms);
    if (late || late.error().errc() != Errc::timeout || late.error().message() != "mailbox '" + name + "': timed out") {
      return 4;
    }
    return std::chrono::steady_clock::now() - start >= 100ms ? 0 : 5;
  });
  test::Pipe progress;
  auto sender = ChildProcess::spawn([&] {
    auto box = Mailbox::open(name);
    if (!box) return 1;
    progress.send("sending");
    return box->send(as_bytes("c")) ? 0 : 2;  // blocks: full
  });
  ASSERT_EQ(progress.receive(), "sending");
  std::this_thread::sleep_for(300ms);
  EXPECT_TRUE(sender.running()) << "a send into a full mailbox returned";
  in_child([&] {
    auto box = Mailbox::open(name);
    std::vector<std::byte> message;
    return box && box->receive(message, 10s) && text_of(message) == "a" ? 0 : 1;
  });
  EXPECT_TRUE(sender.wait(10s).exited_with(0));
  in_child([&] {
    auto box = Mailbox::open(name);
    std::vector<std::byte> message;
    if (!box || !box->receive(message, 10s) || text_of(message) != "b") return 1;
    return box->receive(message, 10s) && text_of(message) == "c" ? 0 : 2;
  });
}

TEST_P(MailboxSemantics, ReceivesOnAnEmptyMailboxWouldBlockOrTimeOut) {
  create({.capacity = 4, .max_message_size = 16});
  in_child([&] {
    auto box = Mailbox::open(name);
    if (!box) return 1;
    std::vector<std::byte> message;
    auto empty = box->receive(message, no_wait);
    if (empty || empty.error().errc() != Errc::would_block) return 2;
    const auto start = std::chrono::steady_clock::now();
    auto late = box->receive(message, 100ms);
    if (late || late.error().errc() != Errc::timeout || late.error().message() != "mailbox '" + name + "': timed out") {
      return 3;
    }
    return std::chrono::steady_clock::now() - start >= 100ms ? 0 : 4;
  });
}

TEST_P(MailboxSemantics, UnboundedSendsNeverWait) {
  create({.buffering = Buffering::unbounded, .max_message_size = 16});
  in_child([&] {
    auto box = Mailbox::open(name);
    if (!box || box->buffering() != Buffering::unbounded) return 1;
    for (std::uint32_t i = 0; i < 500; ++i) {
      if (!box->send_value(i, no_wait)) return 2;
    }
    for (std::uint32_t i = 0; i < 500; ++i) {
      auto value = box->receive_value<std::uint32_t>(10s);
      if (!value || *value != i) return 3;
    }
    return 0;
  });
}

TEST_P(MailboxSemantics, ZeroCapacitySendReturnsOnceAReceiverTookTheMessage) {
  create({.buffering = Buffering::zero, .max_message_size = 16});
  in_child([&] {
    auto box = Mailbox::open(name);
    if (!box || box->buffering() != Buffering::zero) return 1;
    auto nobody = box->send(as_bytes("x"), no_wait);  // no receiver is waiting
    return !nobody && nobody.error().errc() == Errc::would_block ? 0 : 4;
  });
  // The receiver comes 200 ms after the sender has begun (opening takes its own time,
  // more so on a loaded machine): the send must wait for it.
  test::Pipe sending;
  auto receiver = ChildProcess::spawn([&] {
    auto box = Mailbox::open(name);
    if (!box) return 1;
    if (sending.receive() != "sending") return 3;
    std::this_thread::sleep_for(200ms);
    std::vector<std::byte> message;
    return box->receive(message, 10s) && text_of(message) == "met" ? 0 : 2;
  });
  in_child([&] {
    auto box = Mailbox::open(name);
    if (!box) return 1;
    sending.send("sending");
    const auto start = std::chrono::steady_clock::now();
    if (!box->send(as_bytes("met"), 10s)) return 3;
    return std::chrono::steady_clock::now() - start >= 100ms ? 0 : 2;
  });
  EXPECT_TRUE(receiver.wait(30s).exited_with(0));
}

TEST_P(MailboxSemantics, OversizedSendsAreRefusedAndSendNothing) {
  create({.capacity = 4, .max_message_size = 8});
  in_child([&] {
    auto box = Mailbox::open(name);
    if (!box || box->max_message_size() != 8) return 1;
    auto big = box->send(as_bytes("nine bytes"));
    if (big || big.error().errc() != Errc::too_large) return 2;
    if (big.error().message() != "mailbox '" + name + "': message of 10 bytes is over the mailbox's maximum of 8") return 3;
    std::vector<std::byte> message;
    auto empty = box->receive(message, no_wait);
    return !empty && empty.error().errc() == Errc::would_block ? 0 : 4;
  });
}

// Close: sends fail at once, receivers drain what is queued and then get Closed, and a
// receiver blocked on the empty mailbox wakes with Closed.
TEST_P(MailboxSemantics, CloseStopsSendsAndReceiversDrainThenGetClosed) {
  create({.capacity = 8, .max_message_size = 16});
  in_child([&] {
    auto box = Mailbox::open(name);
    return box && box->send(as_bytes("a")) && box->send(as_bytes("b")) && box->close() && box->closed() ? 0 : 1;
  });
  in_child([&] {
    auto box = Mailbox::open(name);
    if (!box || !box->closed()) return 1;
    auto refused = box->send(as_bytes("c"));
    if (refused || refused.error().errc() != Errc::closed) return 2;
    if (refused.error().message() != "mailbox '" + name + "': is closed") return 3;
    std::vector<std::byte> message;
    if (!box->receive(message, 10s) || text_of(message) != "a") return 4;
    if (!box->receive(message, 10s) || text_of(message) != "b") return 5;
    auto drained = box->receive(message, 10s);
    return !drained && drained.error().errc() == Errc::closed ? 0 : 6;
  });
}

TEST_P(MailboxSemantics, CloseWakesABlockedReceiver) {
  create({.capacity = 8, .max_message_size = 16});
  test::Pipe progress;
  auto receiver = ChildProcess::spawn([&] {
    auto box = Mailbox::open(name);
    if (!box) return 1;
    progress.send("receiving");
    std::vector<std::byte> message;
    auto got = box->receive(message);
    return !got && got.error().errc() == Errc::closed ? 0 : 2;
  });
  ASSERT_EQ(progress.receive(), "receiving");
  std::this_thread::sleep_for(200ms);
  in_child([&] {
    auto box = Mailbox::open(name);
    return box && box->close() ? 0 : 1;
  });
  // Remote receivers look at the stream between fetches, once a second.
  EXPECT_TRUE(receiver.wait(10s).exited_with(0));
}

TEST_P(MailboxSemantics, AClosedZeroCapacityMailboxRefusesBothSidesAndClosingTwiceIsHarmless) {
  create({.buffering = Buffering::zero, .max_message_size = 16});
  in_child([&] {
    auto box = Mailbox::open(name);
    if (!box || !box->close() || !box->close() || !box->closed()) return 1;
    std::vector<std::byte> message;
    auto received = box->receive(message, no_wait);
    if (received || received.error().errc() != Errc::closed) return 2;
    auto sent = box->send(as_bytes("x"), no_wait);
    if (sent || sent.error().errc() != Errc::closed) return 3;
    return sent.error().message() == "mailbox '" + name + "': is closed" ? 0 : 4;
  });
}

// A receiver whose buffer is too small does not take the message: it stays for the
// next receive (remote: the receiver answers "refused" and the sender offers it again).
TEST_P(MailboxSemantics, ZeroCapacityMessageTooLargeForTheBufferWaitsForTheNextReceive) {
  create({.buffering = Buffering::zero, .max_message_size = 16});
  auto receiver = ChildProcess::spawn([&] {
    auto box = Mailbox::open(name);
    if (!box) return 1;
    std::array<std::byte, 2> small{};
    auto refused = box->receive(small, 10s);
    if (refused || refused.error().errc() != Errc::too_large) return 2;
    std::vector<std::byte> message;
    return box->receive(message, 10s) && text_of(message) == "hello" ? 0 : 3;
  });
  in_child([&] {
    auto box = Mailbox::open(name);
    return box && box->send(as_bytes("hello"), 20s) ? 0 : 1;
  });
  EXPECT_TRUE(receiver.wait(30s).exited_with(0));
}

// receive_with: a message leaves only once its taker succeeded; a taker that fails puts
// it back, to be the next one received, in any process.
TEST_P(MailboxSemantics, AMessageWhoseTakerFailsStaysQueuedAndComesNext) {
  create({.capacity = 8, .max_message_size = 16});
  in_child([&] {
    auto box = Mailbox::open(name);
    if (!box || !box->send(as_bytes("first")) || !box->send(as_bytes("second"))) return 1;
    std::string seen;
    auto refused = box->receive_with(
        [&](const Delivery& delivery) -> Result<void> {
          seen = text_of(delivery.bytes);
          return std::unexpected(Error{Errc::system, "stdout", "cannot write"});
        },
        10s);
    if (refused || refused.error().message() != "stdout: cannot write" || seen != "first") return 2;
    try {
      (void)box->receive_with([](const Delivery&) -> Result<void> {
        throw std::runtime_error("taker failed");
      }, 10s);
      return 3;
    } catch (const std::runtime_error&) {
    }
    return 0;
  });
  in_child([&] {
    auto box = Mailbox::open(name);
    if (!box) return 1;
    std::vector<std::string> taken;
    for (int i = 0; i < 2; ++i) {
      auto got = box->receive_with(
          [&](const Delivery& delivery) -> Result<void> {
            taken.push_back(text_of(delivery.bytes));
            return {};
          },
          10s);
      if (!got) return 2;
    }
    if (taken != std::vector<std::string>{"first", "second"}) return 3;
    std::vector<std::byte> message;
    auto empty = box->receive(message, no_wait);
    return !empty && empty.error().errc() == Errc::would_block ? 0 : 4;
  });
}

INSTANTIATE_TEST_SUITE_P(Backends, MailboxSemantics, ::testing::Values(Backend::local, Backend::remote),
                         [](const auto& backend) { return backend.param == Backend::local ? "Local" : "Remote"; });

}  // namespace
}  // namespace shmbox
