// The mailbox contract (src/mailbox/backend.hpp) that every transport keeps, run against
// each: a local mailbox in /dev/shm, and a remote one on a real nats-server (started on
// loopback per test). What only one transport does is in its own tests (mailbox_test,
// remote_mailbox_test). Every mailbox call runs in a child process: the NATS client is
// not fork-safe, so the test process itself never starts it.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <atomic>
#include <functional>
#include <stdexcept>
#include <thread>
#include <tuple>

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

// A mailbox name on the transport under test, and the calls every test makes.
class ContractFixture {
 protected:
  void start(Backend transport) {
    backend = transport;
    if (backend == Backend::local) {
      name = test::unique_name("contract");
      return;
    }
    test::start_nats_or_skip(server);
    if (server) name = test::remote_name(*server, "contract");
  }
  void finish() {
    if (backend == Backend::local) (void)Mailbox::remove(name);
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
  std::string object() const { return "mailbox '" + name + "'"; }
  Backend backend = Backend::local;
  std::optional<test::NatsServer> server;
  std::string name;
};

class MailboxContract : public ContractFixture, public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override { start(GetParam()); }
  void TearDown() override { finish(); }
};

// How often each of `count` messages was received, in shared memory that receiver
// children write: each must end at exactly one.
class ReceiptLedger {
 public:
  explicit ReceiptLedger(std::uint32_t count)
      : count_(count), segment_(Segment::create(name_, count * sizeof(std::uint32_t)).value()) {}
  ~ReceiptLedger() { (void)Segment::remove(name_); }
  ReceiptLedger(const ReceiptLedger&) = delete;
  ReceiptLedger& operator=(const ReceiptLedger&) = delete;
  void count(std::uint32_t message) { seen()[message].fetch_add(1); }
  void expect_each_once() {
    for (std::uint32_t i = 0; i < count_; ++i) EXPECT_EQ(seen()[i].load(), 1u) << "message " << i;
  }

 private:
  std::atomic<std::uint32_t>* seen() {
    return reinterpret_cast<std::atomic<std::uint32_t>*>(segment_.writable_bytes()->data());
  }
  std::string name_ = test::unique_name("receipts");
  std::uint32_t count_;
  Segment segment_;
};

// Two senders and two receivers, a message per call or batches on both sides: each
// message is received once, and each receiver sees each sender's messages in the order
// they were sent.
void expect_competing_receivers_take_each_once(const std::string& name, bool batches) {
  constexpr std::uint32_t per_sender = 210;
  const std::uint32_t batch = batches ? 7 : 1;
  ReceiptLedger ledger{2 * per_sender};
  std::vector<ChildProcess> receivers;
  for (int r = 0; r < 2; ++r) {
    receivers.push_back(ChildProcess::spawn([&] {
      auto box = Mailbox::open(name);
      if (!box) return 1;
      std::int64_t last[2] = {-1, -1};
      std::array<std::uint32_t, 5> values{};
      std::array<std::size_t, 5> sizes{};
      for (;;) {
        Result<std::size_t> count = 1;
        if (batches) {
          count = box->receive_many(std::as_writable_bytes(std::span{values}), sizes, 3s);
        } else if (auto value = box->receive_value<std::uint32_t>(3s)) {
          values[0] = *value;
          sizes[0] = sizeof *value;
        } else {
          count = std::unexpected(value.error());
        }
        if (!count) return count.error().errc() == Errc::timeout ? 0 : 2;  // all taken
        for (std::size_t k = 0; k < *count; ++k) {
          const std::uint32_t value = values[k];
          const std::uint32_t sender = value / per_sender;
          if (sizes[k] != sizeof value || sender > 1 || static_cast<std::int64_t>(value) <= last[sender]) return 3;
          last[sender] = value;
          ledger.count(value);
        }
      }
    }));
  }
  std::vector<ChildProcess> senders;
  for (std::uint32_t s = 0; s < 2; ++s) {
    senders.push_back(ChildProcess::spawn([&, s] {
      auto box = Mailbox::open(name);
      if (!box) return 1;
      std::array<std::uint32_t, 7> values{};
      std::array<std::span<const std::byte>, 7> messages;
      for (std::uint32_t k = 0; k < batch; ++k) messages[k] = std::as_bytes(std::span{&values[k], 1});
      for (std::uint32_t first = 0; first < per_sender; first += batch) {
        for (std::uint32_t k = 0; k < batch; ++k) values[k] = s * per_sender + first + k;
        if (!batches) {
          if (!box->send_value(values[0], 30s)) return 2;  // waits while 16 are queued
          continue;
        }
        for (std::size_t sent = 0; sent < batch;) {
          auto more = box->send_many(std::span{messages}.subspan(sent, batch - sent), 30s);
          if (!more) return 2;
          sent += *more;
        }
      }
      return 0;
    }));
  }
  for (auto& sender : senders) EXPECT_TRUE(sender.wait(60s).exited_with(0));
  for (auto& receiver : receivers) EXPECT_TRUE(receiver.wait(60s).exited_with(0));
  ledger.expect_each_once();
}

TEST_P(MailboxContract, CompetingReceiversTakeEachMessageOnceInEachSendersOrder) {
  create({.capacity = 16, .max_message_size = 16});
  expect_competing_receivers_take_each_once(name, false);
}

TEST_P(MailboxContract, CompetingBatchReceiversTakeEachMessageOnceInEachSendersOrder) {
  create({.capacity = 16, .max_message_size = 16});
  expect_competing_receivers_take_each_once(name, true);
}

TEST_P(MailboxContract, AFullBoundedMailboxWouldBlockTimesOutAndBlocksUntilThereIsRoom) {
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

TEST_P(MailboxContract, ReceivesOnAnEmptyMailboxWouldBlockOrTimeOut) {
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

TEST_P(MailboxContract, UnboundedSendsNeverWait) {
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

TEST_P(MailboxContract, ZeroCapacitySendReturnsOnceAReceiverTookTheMessage) {
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

TEST_P(MailboxContract, OversizedSendsAreRefusedAndSendNothing) {
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
TEST_P(MailboxContract, CloseStopsSendsAndReceiversDrainThenGetClosed) {
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

TEST_P(MailboxContract, CloseWakesABlockedReceiver) {
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

TEST_P(MailboxContract, AClosedZeroCapacityMailboxRefusesBothSidesAndClosingTwiceIsHarmless) {
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
TEST_P(MailboxContract, ZeroCapacityMessageTooLargeForTheBufferWaitsForTheNextReceive) {
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
TEST_P(MailboxContract, AMessageWhoseTakerFailsStaysQueuedAndComesNext) {
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

// Errors of the calls on names: each names the mailbox and says the cause, with the same
// code whatever the transport.
TEST_P(MailboxContract, CallsOnNamesFailWithTheSameCodesOnEveryTransport) {
  in_child([&] {
    auto missing = Mailbox::open(name);
    if (missing || missing.error().errc() != Errc::not_found) return 1;
    const std::string said = missing.error().message();
    if (!said.starts_with(object() + ": ") || said.find("does not exist") == std::string::npos) return 2;
    auto stat_missing = Mailbox::stat(name);
    if (stat_missing || stat_missing.error().errc() != Errc::not_found) return 3;
    auto remove_missing = Mailbox::remove(name);
    if (remove_missing || remove_missing.error().errc() != Errc::not_found) return 4;
    auto made = Mailbox::create(name, {.capacity = 2, .max_message_size = 16, .ownership = Ownership::system});
    if (!made) return 5;
    auto taken = Mailbox::create(name, {.ownership = Ownership::system});
    if (taken || taken.error().errc() != Errc::already_exists || !taken.error().message().starts_with(object() + ": ")) {
      return 6;
    }
    auto bad = Mailbox::create(name + " with spaces");
    if (bad || bad.error().errc() != Errc::invalid_name) return 7;
    auto no_capacity = Mailbox::create(name + "-2", {.capacity = 0});
    if (no_capacity || no_capacity.error().errc() != Errc::invalid_argument) return 8;
    if (!Mailbox::remove(name)) return 9;
    auto gone = Mailbox::open(name);
    if (gone || gone.error().errc() != Errc::not_found) return 10;
    // The name is free again.
    auto again = Mailbox::create(name, {.ownership = Ownership::system});
    return again ? 0 : 11;
  });
}

// A handle on a mailbox removed under it: its calls fail (Closed or NotFound), never hang.
TEST_P(MailboxContract, AHandleOnARemovedMailboxFailsAndDoesNotHang) {
  create({.capacity = 4, .max_message_size = 16});
  in_child([&] {
    auto box = Mailbox::open(name);
    if (!box || !Mailbox::remove(name)) return 1;
    auto sent = box->send(as_bytes("late"), 5s);
    if (sent || (sent.error().errc() != Errc::closed && sent.error().errc() != Errc::not_found)) return 2;
    std::vector<std::byte> message;
    auto received = box->receive(message, 5s);
    if (received || (received.error().errc() != Errc::closed && received.error().errc() != Errc::not_found)) return 3;
    return 0;
  });
}

// The waiting policies change how a call waits, never what it does (a remote handle
// waits on its server whatever the policy).
TEST_P(MailboxContract, EveryWaitPolicyWaitsForTheMessage) {
  create({.capacity = 4, .max_message_size = 16});
  for (const WaitPolicy policy : {WaitPolicy{.mode = WaitMode::busy_poll}, WaitPolicy{.mode = WaitMode::adaptive},
                                  WaitPolicy{.mode = WaitMode::sleep}}) {
    test::Pipe progress;
    auto receiver = ChildProcess::spawn([&] {
      auto box = Mailbox::open(name, policy);
      if (!box) return 1;
      progress.send("receiving");
      std::vector<std::byte> message;
      return box->receive(message, 20s) && text_of(message) == "awaited" ? 0 : 2;
    });
    ASSERT_EQ(progress.receive(), "receiving");
    std::this_thread::sleep_for(100ms);
    in_child([&] {
      auto box = Mailbox::open(name);
      return box && box->send(as_bytes("awaited")) ? 0 : 1;
    });
    EXPECT_TRUE(receiver.wait(30s).exited_with(0)) << "wait mode " << static_cast<int>(policy.mode);
  }
}

// Zero-copy needs memory to lend: a local mailbox lends its slots, a remote one refuses
// with InvalidArgument and changes nothing.
TEST_P(MailboxContract, LoansAreLentWhereThereIsMemoryAndRefusedElsewhere) {
  create({.capacity = 4, .max_message_size = 16});
  in_child([&] {
    auto box = Mailbox::open(name);
    if (!box) return 1;
    auto loan = box->loan(5);
    if (backend == Backend::remote) {
      if (loan || loan.error().errc() != Errc::invalid_argument) return 2;
      if (loan.error().message() != object() + ": a zero-copy loan needs a local mailbox") return 3;
      auto in_place = box->receive_in_place(no_wait);
      if (in_place || in_place.error().message() != object() + ": a zero-copy receive needs a local mailbox") return 4;
      return box->queued() == 0 ? 0 : 5;
    }
    if (!loan) return 6;
    std::memcpy(loan->data().data(), "lent!", 5);
    if (!loan->commit()) return 7;
    auto in_place = box->receive_in_place(10s);
    if (!in_place || text_of(in_place->data()) != "lent!") return 8;
    in_place->release();
    return box->queued() == 0 ? 0 : 9;
  });
}

// The pieces of the contract that each buffering keeps, on each transport.
class MailboxContractByBuffering : public ContractFixture,
                                   public ::testing::TestWithParam<std::tuple<Backend, Buffering>> {
 protected:
  void SetUp() override {
    buffering = std::get<1>(GetParam());
    start(std::get<0>(GetParam()));
  }
  void TearDown() override { finish(); }
  MailboxOptions options() const { return {.buffering = buffering, .capacity = 4, .max_message_size = 16}; }
  // A zero-capacity send needs a receiver: one waits in a child for `count` messages and
  // reports them through the pipe.
  std::optional<ChildProcess> receiver_for_zero(test::Pipe& received, int count) {
    if (buffering != Buffering::zero) return std::nullopt;
    return ChildProcess::spawn([&, count] {
      auto box = Mailbox::open(name);
      if (!box) return 1;
      std::vector<std::byte> message;
      for (int i = 0; i < count; ++i) {
        if (!box->receive(message, 20s)) return 2;
        received.send(text_of(message));
      }
      return 0;
    });
  }
  Buffering buffering = Buffering::bounded;
};

// Sends and receives in every waiting form; stat and queued() tell what is queued; a
// mailbox's facts read the same through a handle and through stat.
TEST_P(MailboxContractByBuffering, MessagesGoThroughInOrderAndStatTellsTheTruth) {
  create(options());
  test::Pipe received;
  auto zero_receiver = receiver_for_zero(received, 3);
  in_child([&] {
    auto box = Mailbox::open(name);
    if (!box || box->buffering() != buffering || box->max_message_size() != 16) return 1;
    if (box->capacity() != (buffering == Buffering::bounded ? 4u : 0u)) return 2;
    if (!box->send(as_bytes("one")) || !box->send(as_bytes("two"), 10s)) return 3;
    if (!box->send(as_bytes("three"), buffering == Buffering::zero ? Deadline{10s} : no_wait)) return 4;
    if (buffering == Buffering::zero) return 0;
    auto status = Mailbox::stat(name);
    if (!status || status->queued != 3 || box->queued() != 3) return 5;
    if (status->name != name || status->buffering != buffering || status->capacity != box->capacity() ||
        status->max_message_size != 16 || status->closed || status->ownership != Ownership::system) {
      return 6;
    }
    if ((status->remote() != nullptr) != (backend == Backend::remote)) return 7;
    return 0;
  });
  if (zero_receiver) {
    for (const char* text : {"one", "two", "three"}) EXPECT_EQ(received.receive(), text);
    EXPECT_TRUE(zero_receiver->wait(30s).exited_with(0));
    return;
  }
  in_child([&] {
    auto box = Mailbox::open(name);
    if (!box) return 1;
    std::vector<std::byte> message;
    if (!box->receive(message) || text_of(message) != "one") return 2;
    std::array<std::byte, 16> buffer{};
    auto size = box->receive(buffer, 10s);
    if (!size || text_of(std::span{buffer.data(), *size}) != "two") return 3;
    if (!box->receive(message, no_wait) || text_of(message) != "three") return 4;
    auto empty = box->receive(message, no_wait);
    if (empty || empty.error().errc() != Errc::would_block) return 5;
    auto status = Mailbox::stat(name);
    return status && status->queued == 0 && box->queued() == 0 ? 0 : 6;
  });
}

// Batches: each message goes as one send would and comes as one receive would; a batch
// that can only partly go says how much went, and one that cannot go at all fails as a
// single call would, with nothing sent.
TEST_P(MailboxContractByBuffering, BatchesGoInOrderAndSayHowManyWent) {
  create(options());
  const std::array<std::span<const std::byte>, 6> six{as_bytes("one"),  as_bytes("two"),  as_bytes("three"),
                                                       as_bytes("four"), as_bytes("five"), as_bytes("six")};
  const auto texts = [](std::span<const std::byte> buffer, std::span<const std::size_t> sizes) {
    std::string joined;
    for (const std::size_t size : sizes) {
      if (!joined.empty()) joined += ' ';
      joined += text_of(buffer.first(size));
      buffer = buffer.subspan(size);
    }
    return joined;
  };
  if (buffering == Buffering::zero) {
    // A rendezvous: each message waits for its receiver, who takes them in order.
    auto receiver = ChildProcess::spawn([&] {
      auto box = Mailbox::open(name);
      if (!box) return 1;
      std::array<std::byte, 64> buffer{};
      std::array<std::size_t, 4> sizes{};
      std::string got;
      while (std::count(got.begin(), got.end(), ' ') < 5) {
        auto count = box->receive_many(buffer, sizes, 20s);
        if (!count || *count == 0) return 2;
        if (!got.empty()) got += ' ';
        got += texts(buffer, std::span{sizes}.first(*count));
      }
      return got == "one two three four five six" ? 0 : 3;
    });
    in_child([&] {
      auto box = Mailbox::open(name);
      if (!box) return 1;
      auto sent = box->send_many(six, 20s);
      return sent && *sent == 6 ? 0 : 2;
    });
    EXPECT_TRUE(receiver.wait(30s).exited_with(0));
    return;
  }
  in_child([&] {
    auto box = Mailbox::open(name);
    if (!box) return 1;
    // Bounded (capacity 4): four go, then the deadline passes (long enough for four remote
    // sends on a loaded machine); unbounded: all six.
    const std::size_t room = buffering == Buffering::bounded ? 4 : 6;
    auto sent = box->send_many(six, 1s);
    if (!sent || *sent != room) return 2;
    if (buffering == Buffering::bounded) {
      auto full = box->send_many(std::span{six}.subspan(4), no_wait);
      if (full || full.error().errc() != Errc::would_block) return 3;
    }
    const std::array<std::span<const std::byte>, 2> oversized{as_bytes("fits"), as_bytes("seventeen bytes!!")};
    auto refused = box->send_many(oversized, no_wait);
    if (refused || refused.error().errc() != Errc::too_large ||
        refused.error().message() != object() + ": message 1 of the batch is 17 bytes, over the mailbox's maximum "
                                                "of 16; none was sent") {
      return 4;
    }
    if (box->queued() != room) return 5;
    // Three sizes: three messages, though more are queued; then what fits in 8 bytes.
    std::array<std::byte, 64> buffer{};
    std::array<std::size_t, 4> sizes{};
    auto three = box->receive_many(buffer, std::span{sizes}.first(3), no_wait);
    if (!three || *three != 3 || texts(buffer, std::span{sizes}.first(3)) != "one two three") return 7;
    auto fitting = box->receive_many(std::span{buffer}.first(8), sizes, no_wait);
    const std::string rest = buffering == Buffering::bounded ? "four" : "four five";
    if (!fitting || texts(buffer, std::span{sizes}.first(*fitting)) != rest) return 8;
    if (buffering == Buffering::unbounded) {
      auto last = box->receive_many(buffer, sizes, 10s);
      if (!last || *last != 1 || texts(buffer, std::span{sizes}.first(1)) != "six") return 9;
    }
    auto empty = box->receive_many(buffer, sizes, no_wait);
    if (empty || empty.error().errc() != Errc::would_block) return 10;
    // A first message that does not fit a 2-byte buffer stays queued.
    const std::array<std::span<const std::byte>, 1> seven{as_bytes("seven")};
    if (auto sent_one = box->send_many(seven, no_wait); !sent_one || *sent_one != 1) return 6;
    std::array<std::byte, 2> tiny{};
    auto small = box->receive_many(tiny, sizes, no_wait);
    if (small || small.error().errc() != Errc::too_large) return 15;
    auto again = box->receive_many(buffer, sizes, 10s);
    if (!again || *again != 1 || texts(buffer, std::span{sizes}.first(1)) != "seven") return 16;
    auto none = box->receive_many(buffer, std::span<std::size_t>{}, no_wait);
    if (!none || *none != 0) return 11;
    if (!box->close()) return 12;
    auto closed = box->send_many(six, no_wait);
    if (closed || closed.error().message() != object() + ": is closed") return 13;
    auto drained = box->receive_many(buffer, sizes, 10s);
    return !drained && drained.error().errc() == Errc::closed ? 0 : 14;
  });
}

// Close: sends fail, what is queued drains, then receives fail, and stat says closed.
TEST_P(MailboxContractByBuffering, CloseLetsReceiversDrainAndRefusesSenders) {
  create(options());
  in_child([&] {
    auto box = Mailbox::open(name);
    if (!box) return 1;
    if (buffering != Buffering::zero && !box->send(as_bytes("queued"))) return 2;
    if (!box->close() || !box->closed()) return 3;
    auto refused = box->send(as_bytes("late"), no_wait);
    if (refused || refused.error().errc() != Errc::closed || refused.error().message() != object() + ": is closed") {
      return 4;
    }
    std::vector<std::byte> message;
    if (buffering != Buffering::zero && (!box->receive(message, 10s) || text_of(message) != "queued")) return 5;
    auto drained = box->receive(message, 10s);
    if (drained || drained.error().errc() != Errc::closed) return 6;
    auto status = Mailbox::stat(name);
    return status && status->closed && status->queued == 0 ? 0 : 7;
  });
}

// The bufferings that queue messages (a rendezvous has no queue to put one back in: its
// refused messages go back to their sender, ZeroCapacityMessageTooLarge... above).
class MailboxContractQueueing : public MailboxContractByBuffering {};

// A taker that refuses puts the message back; it comes again with the same sequence and
// id, and once taken it is gone.
TEST_P(MailboxContractQueueing, ARefusedDeliveryComesAgainWithTheSameIdAndSequence) {
  create(options());
  in_child([&] {
    auto box = Mailbox::open(name);
    if (!box || !box->send(as_bytes("again"))) return 1;
    std::string first_id;
    std::uint64_t first_sequence = 0;
    auto refused = box->receive_with(
        [&](const Delivery& delivery) -> Result<void> {
          first_id = delivery.id;
          first_sequence = delivery.sequence;
          return std::unexpected(Error{Errc::timeout, "destination", "timed out"});
        },
        10s);
    if (refused || first_id.empty()) return 2;
    bool same = false;
    auto taken = box->receive_with(
        [&](const Delivery& delivery) -> Result<void> {
          same = delivery.id == first_id && delivery.sequence == first_sequence && text_of(delivery.bytes) == "again";
          return {};
        },
        10s);
    if (!taken || !same) return 3;
    std::vector<std::byte> message;
    auto empty = box->receive(message, no_wait);
    return !empty && empty.error().errc() == Errc::would_block ? 0 : 4;
  });
}

std::string transport_and_buffering(const ::testing::TestParamInfo<std::tuple<Backend, Buffering>>& info) {
  static constexpr std::array<const char*, 3> buffering_names{"Zero", "Bounded", "Unbounded"};
  return std::string{std::get<0>(info.param) == Backend::local ? "Local" : "Remote"} +
         buffering_names[static_cast<std::size_t>(std::get<1>(info.param))];
}

INSTANTIATE_TEST_SUITE_P(Transports, MailboxContractByBuffering,
                         ::testing::Combine(::testing::Values(Backend::local, Backend::remote),
                                            ::testing::Values(Buffering::zero, Buffering::bounded,
                                                              Buffering::unbounded)),
                         transport_and_buffering);
INSTANTIATE_TEST_SUITE_P(Transports, MailboxContractQueueing,
                         ::testing::Combine(::testing::Values(Backend::local, Backend::remote),
                                            ::testing::Values(Buffering::bounded, Buffering::unbounded)),
                         transport_and_buffering);

INSTANTIATE_TEST_SUITE_P(Backends, MailboxContract, ::testing::Values(Backend::local, Backend::remote),
                         [](const auto& backend) { return backend.param == Backend::local ? "Local" : "Remote"; });

}  // namespace
}  // namespace shmbox
