// Moving every public type with move operations: the moved-to object works fully, the
// moved-from one is valid (destructible, assignable, with the answers its header
// documents), and a self-move changes nothing.
#include <gtest/gtest.h>

#include <array>
#include <cstring>
#include <functional>
#include <utility>

#include "shmbox/endpoint.hpp"
#include "shmbox/mailbox.hpp"
#include "shmbox/segment.hpp"
#include "shmbox/selector.hpp"
#include "support/nats_test.hpp"
#include "support/process.hpp"
#include "support/text.hpp"

namespace shmbox {
namespace {

using namespace std::chrono_literals;
using test::text_of;

// Assigns an object to itself without the compiler's self-move warning.
template <class T>
void self_move_assign(T& object) {
  T& same = object;
  object = std::move(same);
}

std::string describe(const char* step, const Error& error) { return std::string{step} + ": " + error.message(); }

// What is wrong with `box` as a working handle on `name` (empty if nothing): a message
// goes through it, and stat sees it queued and then gone.
std::string check_works(Mailbox& box, const std::string& name) {
  // A remote handle's name is the part after the server.
  const std::string own_name = name.starts_with("nats://") ? name.substr(name.rfind('/') + 1) : name;
  if (box.name() != own_name) return "name is '" + box.name() + "', not '" + own_name + "'";
  if (box.closed()) return "says closed";
  const std::string text = "through " + name;
  if (auto sent = box.send(as_bytes(text), 10s); !sent) return describe("send", sent.error());
  auto status = Mailbox::stat(name);
  if (!status) return describe("stat", status.error());
  if (status->queued != 1) return "stat shows " + std::to_string(status->queued) + " queued after a send";
  std::vector<std::byte> message;
  if (auto got = box.receive(message, 10s); !got) return describe("receive", got.error());
  if (text_of(message) != text) return "received '" + text_of(message) + "'";
  status = Mailbox::stat(name);
  if (!status) return describe("stat", status.error());
  if (status->queued != 0) return "stat shows " + std::to_string(status->queued) + " queued after the receive";
  return {};
}

// What is wrong with `box` as a moved-from handle (see Mailbox's move operations).
std::string check_moved_from(Mailbox& box) {
  if (!box.name().empty()) return "moved-from name is '" + box.name() + "'";
  if (!box.closed() || box.queued() != 0 || box.capacity() != 0 || box.max_message_size() != 0) {
    return "moved-from handle does not read as empty and closed";
  }
  std::vector<std::byte> message;
  std::array<std::byte, 8> buffer{};
  const auto refused = [](const auto& result) { return !result && result.error().errc() == Errc::invalid_argument; };
  if (!refused(box.send(as_bytes("x"), no_wait))) return "moved-from send was not refused";
  if (!refused(box.receive(message, no_wait))) return "moved-from receive (vector) was not refused";
  if (!refused(box.receive(buffer, no_wait))) return "moved-from receive (span) was not refused";
  const std::array<std::span<const std::byte>, 1> batch{as_bytes("x")};
  std::array<std::size_t, 2> sizes{};
  if (!refused(box.send_many(batch, no_wait))) return "moved-from send_many was not refused";
  if (!refused(box.receive_many(buffer, sizes, no_wait))) return "moved-from receive_many was not refused";
  if (!refused(box.loan(1, no_wait))) return "moved-from loan was not refused";
  if (!refused(box.receive_in_place(no_wait))) return "moved-from receive_in_place was not refused";
  if (!refused(box.receive_with([](auto) -> Result<void> { return {}; }, no_wait))) {
    return "moved-from receive_with was not refused";
  }
  if (!refused(box.close())) return "moved-from close was not refused";
  return {};
}

class LocalMailboxMove : public ::testing::Test {
 protected:
  void TearDown() override {
    (void)Mailbox::remove(first);
    (void)Mailbox::remove(second);
  }
  Mailbox make(const std::string& name) { return Mailbox::create(name, {.capacity = 4, .max_message_size = 64}).value(); }
  std::uint32_t attached(const std::string& name) { return Mailbox::stat(name).value().local()->attached; }
  std::string first = test::unique_name("move-a");
  std::string second = test::unique_name("move-b");
};

TEST_F(LocalMailboxMove, MoveConstruction) {
  Mailbox from = make(first);
  Mailbox to{std::move(from)};
  EXPECT_EQ(check_works(to, first), "");
  EXPECT_EQ(check_moved_from(from), "");
  EXPECT_EQ(attached(first), 1u) << "the handle moved; it did not attach twice";
}

TEST_F(LocalMailboxMove, MoveAssignmentDetachesWhatTheTargetHeld) {
  Mailbox target = make(first);
  Mailbox source = make(second);
  target = std::move(source);
  EXPECT_EQ(check_works(target, second), "");
  EXPECT_EQ(check_moved_from(source), "");
  EXPECT_EQ(attached(first), 0u);
  EXPECT_EQ(attached(second), 1u);
}

TEST_F(LocalMailboxMove, AMovedFromHandleCanBeAssignedAgain) {
  Mailbox box = make(first);
  Mailbox keeper{std::move(box)};
  box = make(second);
  EXPECT_EQ(check_works(box, second), "");
  EXPECT_EQ(check_works(keeper, first), "");
  Mailbox empty{std::move(keeper)};
  keeper = std::move(empty);  // back again
  EXPECT_EQ(check_works(keeper, first), "");
  Mailbox moved_from_twice{std::move(empty)};  // a moved-from handle moved on stays empty
  EXPECT_EQ(check_moved_from(moved_from_twice), "");
  EXPECT_EQ(check_moved_from(empty), "");
}

TEST_F(LocalMailboxMove, SelfMoveAssignmentChangesNothing) {
  Mailbox box = make(first);
  self_move_assign(box);
  EXPECT_EQ(check_works(box, first), "");
  EXPECT_EQ(attached(first), 1u);
  Mailbox empty{std::move(box)};
  self_move_assign(box);
  EXPECT_EQ(check_moved_from(box), "");
}

TEST_F(LocalMailboxMove, Swap) {
  Mailbox a = make(first);
  Mailbox b = make(second);
  std::swap(a, b);
  EXPECT_EQ(check_works(a, second), "");
  EXPECT_EQ(check_works(b, first), "");
  EXPECT_EQ(attached(first), 1u);
  EXPECT_EQ(attached(second), 1u);
}

TEST_F(LocalMailboxMove, LoansAndInPlaceMessagesFollowTheHandle) {
  Mailbox box = make(first);
  ASSERT_TRUE(box.send(as_bytes("held")));
  auto loan = box.loan(8).value();
  auto held = box.receive_in_place().value();
  Mailbox moved{std::move(box)};
  std::memcpy(loan.data().data(), "lent", 4);
  ASSERT_TRUE(loan.commit(4));
  EXPECT_EQ(text_of(held.data()), "held");
  held.release();
  std::vector<std::byte> message;
  ASSERT_TRUE(moved.receive(message, no_wait));
  EXPECT_EQ(text_of(message), "lent");
  EXPECT_EQ(moved.queued(), 0u);
}

class ZeroCopyMove : public ::testing::Test {
 protected:
  void TearDown() override { (void)Mailbox::remove(name); }
  std::string name = test::unique_name("move-zc");
  Mailbox box = Mailbox::create(name, {.capacity = 4, .max_message_size = 64}).value();
  std::string receive_text() {
    std::vector<std::byte> message;
    auto got = box.receive(message, no_wait);
    if (got) return text_of(message);
    // Appending rather than "(" + string: g++ 12 -O3 warns falsely (-Wrestrict) on that.
    std::string refused = "(";
    refused += got.error().message();
    return refused + ")";
  }
  static void fill(SendLoan& loan, std::string_view text) { std::memcpy(loan.data().data(), text.data(), text.size()); }
  static bool loan_refused(SendLoan& loan) {
    auto committed = loan.commit(0);
    return loan.data().empty() && !committed && committed.error().errc() == Errc::invalid_argument;
  }
};

TEST_F(ZeroCopyMove, LoanMoveConstructionAndAssignment) {
  auto first = box.loan(8).value();
  fill(first, "one");
  SendLoan second{std::move(first)};
  EXPECT_TRUE(loan_refused(first));
  first.abandon();  // does nothing: it holds no slot
  auto third = box.loan(8).value();
  fill(third, "two");
  // Assigning over a loan abandons what it held: receivers skip that position.
  third = std::move(second);
  EXPECT_TRUE(loan_refused(second));
  ASSERT_TRUE(third.commit(3));
  EXPECT_TRUE(loan_refused(third)) << "a committed loan holds nothing";
  EXPECT_EQ(receive_text(), "one");
  EXPECT_EQ(box.receive_in_place(no_wait).error().errc(), Errc::would_block) << "the abandoned loan is skipped";
  second = box.loan(8).value();  // a moved-from loan can be assigned again
  fill(second, "three");
  ASSERT_TRUE(second.commit(5));
  EXPECT_EQ(receive_text(), "three");
}

TEST_F(ZeroCopyMove, LoanSelfMoveAndSwap) {
  auto a = box.loan(8).value();
  auto b = box.loan(8).value();
  fill(a, "aaa");
  fill(b, "bbb");
  self_move_assign(a);
  std::swap(a, b);
  ASSERT_TRUE(a.commit(3));
  ASSERT_TRUE(b.commit(3));
  EXPECT_EQ(receive_text(), "aaa");  // positions stay with their slots: a's was claimed first
  EXPECT_EQ(receive_text(), "bbb");
}

TEST_F(ZeroCopyMove, ReceivedMessageMoveConstructionAndAssignment) {
  for (const char* text : {"one", "two", "three"}) ASSERT_TRUE(box.send(as_bytes(text)));
  auto first = box.receive_in_place().value();
  const std::uint64_t sequence = first.sequence();
  ReceivedMessage moved{std::move(first)};
  EXPECT_TRUE(first.data().empty());
  EXPECT_EQ(first.sequence(), 0u);
  first.requeue();  // does nothing: it holds no message
  first.release();
  EXPECT_EQ(text_of(moved.data()), "one");
  EXPECT_EQ(moved.sequence(), sequence);
  auto second = box.receive_in_place().value();
  // Assigning over a held message releases it: "one" is gone for good.
  second = std::move(moved);
  EXPECT_EQ(text_of(second.data()), "one");
  EXPECT_TRUE(moved.data().empty());
  second.requeue();
  EXPECT_TRUE(second.data().empty()) << "a put-back message holds nothing";
  EXPECT_EQ(receive_text(), "one");
  moved = box.receive_in_place().value();  // a moved-from message can be assigned again
  EXPECT_EQ(text_of(moved.data()), "three");
  moved.release();
  EXPECT_EQ(box.queued(), 0u);
}

TEST_F(ZeroCopyMove, ReceivedMessageSelfMoveAndSwap) {
  for (const char* text : {"one", "two"}) ASSERT_TRUE(box.send(as_bytes(text)));
  auto a = box.receive_in_place().value();
  auto b = box.receive_in_place().value();
  self_move_assign(a);
  EXPECT_EQ(text_of(a.data()), "one");
  std::swap(a, b);
  EXPECT_EQ(text_of(a.data()), "two");
  EXPECT_EQ(text_of(b.data()), "one");
  b.requeue();
  a.release();
  EXPECT_EQ(receive_text(), "one");
  EXPECT_EQ(box.queued(), 0u);
}

class SegmentMove : public ::testing::Test {
 protected:
  void TearDown() override {
    (void)Segment::remove(first);
    (void)Segment::remove(second);
  }
  static std::string check_works(Segment& segment, const std::string& name, std::size_t size) {
    if (segment.name() != name || segment.size() != size || segment.bytes().size() != size) return "wrong name or size";
    auto writable = segment.writable_bytes();
    if (!writable) return describe("writable_bytes", writable.error());
    (*writable)[0] = std::byte{42};
    if (auto grown = segment.resize(size * 2); !grown) return describe("resize", grown.error());
    if (auto refreshed = segment.refresh(); !refreshed) return describe("refresh", refreshed.error());
    if (segment.bytes()[0] != std::byte{42}) return "contents lost";
    return {};
  }
  static std::string check_moved_from(Segment& segment) {
    if (!segment.name().empty() || segment.size() != 0 || !segment.bytes().empty()) return "moved-from is not empty";
    const auto refused = [](const auto& result) { return !result && result.error().errc() == Errc::invalid_argument; };
    if (!refused(segment.writable_bytes()) || !refused(segment.resize(4096)) || !refused(segment.refresh())) {
      return "moved-from calls were not refused";
    }
    return {};
  }
  std::string first = test::unique_name("move-seg-a");
  std::string second = test::unique_name("move-seg-b");
};

TEST_F(SegmentMove, ConstructionAssignmentSelfMoveAndSwap) {
  Segment a = Segment::create(first, 4096).value();
  Segment moved{std::move(a)};
  EXPECT_EQ(check_moved_from(a), "");
  EXPECT_EQ(check_works(moved, first, 4096), "");
  Segment b = Segment::create(second, 4096).value();
  b = std::move(moved);
  EXPECT_EQ(check_moved_from(moved), "");
  EXPECT_EQ(check_works(b, first, 8192), "");
  self_move_assign(b);
  EXPECT_EQ(b.name(), first);
  a = Segment::open(second).value();  // a moved-from segment can be assigned again
  std::swap(a, b);
  EXPECT_EQ(a.name(), first);
  EXPECT_EQ(b.name(), second);
  EXPECT_EQ(check_works(b, second, 4096), "");
}

class EndpointMove : public ::testing::Test {
 protected:
  static Endpoint join(const std::string& name) { return Endpoint::join(name).value(); }
  // A message from `from` reaches `to`, which reports the sender's name.
  static std::string check_works(Endpoint& from, Endpoint& to, const std::string& from_name) {
    if (from.name() != from_name) return "name is '" + from.name() + "'";
    if (auto sent = from.send(to.name(), as_bytes("hello"), 5s); !sent) return describe("send", sent.error());
    std::vector<std::byte> message;
    auto sender = to.receive(message, 5s);
    if (!sender) return describe("receive", sender.error());
    if (*sender != from_name || text_of(message) != "hello") return "received '" + text_of(message) + "' from " + *sender;
    return {};
  }
  static std::string check_moved_from(Endpoint& endpoint) {
    if (!endpoint.name().empty()) return "moved-from name is '" + endpoint.name() + "'";
    std::vector<std::byte> message;
    std::array<std::byte, 8> buffer{};
    const auto refused = [](const auto& result) { return !result && result.error().errc() == Errc::invalid_argument; };
    if (!refused(endpoint.send("anyone", as_bytes("x"), no_wait)) || !refused(endpoint.receive(message, no_wait)) ||
        !refused(endpoint.receive(buffer, no_wait)) || !refused(endpoint.receive_from("anyone", message, no_wait)) ||
        !refused(endpoint.receive_from("anyone", buffer, no_wait))) {
      return "moved-from calls were not refused";
    }
    return {};
  }
  std::string first = test::unique_name("move-ep-a");
  std::string second = test::unique_name("move-ep-b");
  std::string peer_name = test::unique_name("move-ep-peer");
};

TEST_F(EndpointMove, ConstructionAssignmentSelfMoveAndSwap) {
  Endpoint peer = join(peer_name);
  Endpoint a = join(first);
  Endpoint moved{std::move(a)};
  EXPECT_EQ(check_moved_from(a), "");
  EXPECT_EQ(check_works(moved, peer, first), "");
  EXPECT_EQ(check_works(peer, moved, peer_name), "");

  Endpoint b = join(second);
  b = std::move(moved);  // b leaves `second` and takes over `first`
  EXPECT_EQ(check_moved_from(moved), "");
  EXPECT_EQ(Endpoint::stat(second).error().errc(), Errc::not_found);
  EXPECT_EQ(check_works(b, peer, first), "");
  EXPECT_EQ(check_works(peer, b, peer_name), "");

  self_move_assign(b);
  EXPECT_EQ(check_works(b, peer, first), "");
  a = join(second);  // a moved-from endpoint can be assigned again
  std::swap(a, b);
  EXPECT_EQ(check_works(a, peer, first), "");
  EXPECT_EQ(check_works(b, peer, second), "");
  EXPECT_EQ(check_works(peer, b, peer_name), "");
}

class SelectorMove : public LocalMailboxMove {};

TEST_F(SelectorMove, ConstructionAssignmentSelfMoveAndSwap) {
  Mailbox box_a = make(first);
  Mailbox box_b = make(second);
  Selector a;
  ASSERT_EQ(a.add(box_a).value(), 0u);
  ASSERT_TRUE(box_a.send(as_bytes("x")));
  Selector moved{std::move(a)};
  EXPECT_EQ(a.size(), 0u);
  EXPECT_EQ(a.wait(no_wait).error().errc(), Errc::invalid_argument);
  EXPECT_EQ(moved.wait(no_wait).value(), 0u);

  Selector b;
  ASSERT_TRUE(b.add(box_b));
  b = std::move(moved);
  EXPECT_EQ(moved.size(), 0u);
  EXPECT_EQ(b.size(), 1u);
  EXPECT_EQ(b.wait(no_wait).value(), 0u);
  self_move_assign(b);
  EXPECT_EQ(b.size(), 1u);
  EXPECT_EQ(b.wait(no_wait).value(), 0u);

  ASSERT_EQ(a.add(box_b).value(), 0u);  // a moved-from selector can be added to again
  std::swap(a, b);
  EXPECT_EQ(a.wait(no_wait).value(), 0u);  // watches box_a, which has a message
  EXPECT_EQ(b.wait(no_wait).error().errc(), Errc::would_block);  // box_b is empty
}

TEST_F(SelectorMove, AWatchedMailboxMayBeMoved) {
  Mailbox box = make(first);
  Selector selector;
  ASSERT_TRUE(selector.add(box));
  Mailbox moved{std::move(box)};
  EXPECT_EQ(selector.wait(no_wait).error().errc(), Errc::would_block);
  ASSERT_TRUE(moved.send(as_bytes("x")));
  EXPECT_EQ(selector.wait(no_wait).value(), 0u);
  EXPECT_EQ(selector.add(box).error().errc(), Errc::invalid_argument) << "a moved-from mailbox cannot be watched";
}

TEST(ErrorMove, ConstructionAssignmentAndSwap) {
  Error a{Errc::closed, "mailbox 'a'", "is closed"};
  Error b{std::move(a)};
  EXPECT_EQ(b.message(), "mailbox 'a': is closed");
  a = Error{Errc::timeout, "mailbox 'b'", "ran out of time"};  // a moved-from error can be assigned
  std::swap(a, b);
  EXPECT_EQ(a.errc(), Errc::closed);
  EXPECT_EQ(b.message(), "mailbox 'b': ran out of time");
  self_move_assign(b);
  EXPECT_EQ(b.message(), "mailbox 'b': ran out of time");
}

// Remote handles: every direction of move assignment between local and nats:// handles,
// in a child process (the NATS client is not fork-safe).
class RemoteMailboxMove : public ::testing::Test {
 protected:
  void SetUp() override {
    test::start_nats_or_skip(server);
    if (server) {
      remote_a = test::remote_name(*server, "move-ra");
      remote_b = test::remote_name(*server, "move-rb");
    }
  }
  void TearDown() override {
    (void)Mailbox::remove(local_a);
    (void)Mailbox::remove(local_b);
  }
  // Runs `body` in a child with two local and two remote mailboxes made; it returns a
  // problem, or "" if none.
  void in_child(const std::function<std::string(Mailbox& la, Mailbox& lb, Mailbox& ra, Mailbox& rb)>& body) {
    test::expect_child_succeeds([&] {
      const MailboxOptions options{.capacity = 4, .max_message_size = 64};
      auto la = Mailbox::create(local_a, options);
      auto lb = Mailbox::create(local_b, options);
      auto ra = Mailbox::create(remote_a, options);
      auto rb = Mailbox::create(remote_b, options);
      if (!la || !lb || !ra || !rb) return std::fprintf(stderr, "cannot create the mailboxes\n"), 1;
      const std::string problem = body(*la, *lb, *ra, *rb);
      if (problem.empty()) return 0;
      return std::fprintf(stderr, "%s\n", problem.c_str()), 1;
    });
  }
  std::optional<test::NatsServer> server;
  std::string remote_a, remote_b;
  std::string local_a = test::unique_name("move-la");
  std::string local_b = test::unique_name("move-lb");
};

// The first problem of several checks, labelled.
std::string first_problem(std::initializer_list<std::pair<const char*, std::string>> checks) {
  for (const auto& [label, problem] : checks) {
    if (!problem.empty()) return std::string{label} + ": " + problem;
  }
  return {};
}

TEST_F(RemoteMailboxMove, MoveConstruction) {
  in_child([&](Mailbox&, Mailbox&, Mailbox& ra, Mailbox&) {
    Mailbox moved{std::move(ra)};
    return first_problem({{"moved-to", check_works(moved, remote_a)}, {"moved-from", check_moved_from(ra)}});
  });
}

TEST_F(RemoteMailboxMove, LocalFromRemote) {
  in_child([&](Mailbox& la, Mailbox&, Mailbox& ra, Mailbox&) {
    la = std::move(ra);
    return first_problem({{"moved-to", check_works(la, remote_a)},
                          {"moved-from", check_moved_from(ra)},
                          {"left behind", Mailbox::stat(local_a)->local()->attached == 0 ? "" : "still attached"}});
  });
}

TEST_F(RemoteMailboxMove, RemoteFromLocal) {
  in_child([&](Mailbox& la, Mailbox&, Mailbox& ra, Mailbox&) {
    ra = std::move(la);
    return first_problem({{"moved-to", check_works(ra, local_a)}, {"moved-from", check_moved_from(la)}});
  });
}

TEST_F(RemoteMailboxMove, RemoteFromRemote) {
  in_child([&](Mailbox&, Mailbox&, Mailbox& ra, Mailbox& rb) {
    ra = std::move(rb);
    return first_problem({{"moved-to", check_works(ra, remote_b)}, {"moved-from", check_moved_from(rb)}});
  });
}

TEST_F(RemoteMailboxMove, SelfMoveAndSwap) {
  in_child([&](Mailbox& la, Mailbox& lb, Mailbox& ra, Mailbox& rb) {
    self_move_assign(ra);
    if (auto problem = check_works(ra, remote_a); !problem.empty()) return "self-moved: " + problem;
    std::swap(la, ra);
    std::swap(rb, lb);
    return first_problem({{"local swapped in", check_works(ra, local_a)},
                          {"remote swapped in", check_works(la, remote_a)},
                          {"local swapped in", check_works(rb, local_b)},
                          {"remote swapped in", check_works(lb, remote_b)}});
  });
}

}  // namespace
}  // namespace shmbox
