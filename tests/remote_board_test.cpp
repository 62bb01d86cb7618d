// Remote boards (nats://host:port/NAME) against a real nats-server with JetStream, started
// by each test on loopback: versions, conditional writes, watching and every error across
// processes. Every use of the NATS client is in a child process: the client is not
// fork-safe, so the test process itself never starts it.
#include <gtest/gtest.h>
#include <nats/nats.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "shmbox/board.hpp"
#include "shmbox/mailbox_types.hpp"
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

constexpr BoardOptions system_owned{.max_size = 64, .ownership = Ownership::system};

// The NATS client used directly, as another program on the server would: a connection
// and JetStream context for `body`, which returns the child's exit code.
int with_raw_jetstream(const std::string& url, const std::function<int(jsCtx*)>& body) {
  natsConnection* connection = nullptr;
  jsCtx* jetstream = nullptr;
  if (natsConnection_ConnectTo(&connection, url.c_str()) != NATS_OK) return 90;
  if (natsConnection_JetStream(&jetstream, connection, nullptr) != NATS_OK) return 91;
  const int result = body(jetstream);
  jsCtx_Destroy(jetstream);
  natsConnection_Destroy(connection);
  return result;
}

// Another client stores `size` bytes as the value: more than a board's put would (the
// bucket's limit leaves room for headers).
int store_raw_value(const std::string& url, const std::string& subject, int size) {
  return with_raw_jetstream(url, [&](jsCtx* jetstream) {
    const std::string bytes(static_cast<std::size_t>(size), 'x');
    jsPubAck* ack = nullptr;
    const natsStatus status = js_Publish(&ack, jetstream, subject.c_str(), bytes.data(), size, nullptr, nullptr);
    jsPubAck_Destroy(ack);
    return status == NATS_OK ? 0 : 1;
  });
}

class RemoteBoard : public ::testing::Test {
 protected:
  void SetUp() override {
    test::start_nats_or_skip(server);
    if (server) name = test::remote_name(*server, "board");
  }
  void in_child(const std::function<int()>& body) { test::expect_child_succeeds(body); }
  void create_board(const BoardOptions& options = system_owned) {
    in_child([&] {
      auto board = Board::create(name, options);
      return board ? 0 : failed(1, board.error());
    });
  }
  // Runs `watch` in a child on a handle of its own; returns once it is about to watch.
  ChildProcess spawn_watcher(const std::function<int(Board&)>& watch) {
    Pipe watching;
    auto watcher = ChildProcess::spawn([&] {
      auto board = Board::open(name);
      if (!board) return failed(1, board.error());
      watching.send("watching");
      return watch(*board);
    });
    if (!watching.receive(10s)) ADD_FAILURE() << "the watcher did not open the board";
    std::this_thread::sleep_for(200ms);  // into its watch, most likely
    return watcher;
  }
  std::string object() const { return "board '" + name + "'"; }
  std::string bucket() const { return "SHMBOX_BOARD_" + name.substr(name.rfind('/') + 1); }
  std::string bucket_stream() const { return "KV_" + bucket(); }
  std::string value_subject() const { return "$KV." + bucket() + ".value"; }
  std::optional<test::NatsServer> server;
  std::string name;
};

TEST_F(RemoteBoard, VersionsStartAtZeroAndRiseByOnePerPutAcrossProcesses) {
  in_child([&] {
    auto board = Board::create(name, system_owned);
    if (!board) return failed(1, board.error());
    auto empty = board->get();
    if (!empty || !empty->bytes.empty() || empty->version != 0) return 2;
    return board->name() == name && board->max_size() == 64 ? 0 : 3;
  });
  in_child([&] {
    auto board = Board::open(name);
    if (!board) return failed(1, board.error());
    auto first = board->put(as_bytes("one"));
    auto second = board->put(as_bytes("two"));
    return first == 1u && second == 2u ? 0 : 2;
  });
  in_child([&] {
    auto board = Board::open(name);
    if (!board) return failed(1, board.error());
    auto latest = board->get();
    if (!latest || text_of(latest->bytes) != "two" || latest->version != 2 || board->version() != 2u) return 2;
    auto view = board->view();
    if (!view || text_of(view->bytes()) != "two" || view->version() != 2) return 3;
    if (board->max_size() != 64) return 4;
    // The empty value is a value like any other.
    if (board->put({}) != 3u) return 5;
    auto emptied = board->get();
    return emptied && emptied->bytes.empty() && emptied->version == 3 ? 0 : 6;
  });
}

TEST_F(RemoteBoard, PutIfAfterAnotherWriterIsAConflictNamingTheLatestVersion) {
  create_board();
  in_child([&] {
    auto board = Board::open(name);
    return board && board->put_if(0, as_bytes("first")) == 1u ? 0 : 1;
  });
  in_child([&] {
    auto board = Board::open(name);
    if (!board) return 1;
    if (!fails_with(board->put_if(0, as_bytes("late")), Errc::conflict,
                    object() + ": version 0 is no longer the latest: version 1 is")) {
      return 2;
    }
    if (!fails_with(board->put_if(5, as_bytes("ahead")), Errc::conflict,
                    object() + ": version 5 is no longer the latest: version 1 is")) {
      return 3;
    }
    if (board->put_if(1, as_bytes("second")) != 2u) return 4;
    auto latest = board->get();
    return latest && text_of(latest->bytes) == "second" ? 0 : 5;
  });
}

TEST_F(RemoteBoard, UpdatesFromThreeProcessesLoseNoIncrement) {
  create_board({.max_size = 8, .ownership = Ownership::system});
  constexpr int writers = 3, increments = 50;
  std::vector<ChildProcess> children;
  for (int i = 0; i < writers; ++i) {
    children.push_back(ChildProcess::spawn([&] {
      auto board = Board::open(name);
      if (!board) return failed(1, board.error());
      for (int n = 0; n < increments; ++n) {
        auto published = board->update([](std::span<const std::byte> old) {
          std::uint64_t count = 0;
          if (old.size() == sizeof count) std::memcpy(&count, old.data(), sizeof count);
          ++count;
          std::vector<std::byte> next(sizeof count);
          std::memcpy(next.data(), &count, sizeof count);
          return next;
        });
        if (!published) return failed(2, published.error());
      }
      return 0;
    }));
  }
  for (auto& child : children) EXPECT_TRUE(child.wait(120s).exited_with(0));
  in_child([&] {
    auto board = Board::open(name);
    if (!board) return 1;
    auto count = board->get_as<std::uint64_t>();
    if (!count) return failed(2, count.error());
    std::fprintf(stderr, "count %llu at version %llu\n", static_cast<unsigned long long>(count->value),
                 static_cast<unsigned long long>(count->version));
    return count->value == writers * increments && count->version == writers * increments ? 0 : 3;
  });
}

TEST_F(RemoteBoard, AWatchWakesOnAPutFromAnotherProcess) {
  create_board();
  auto watcher = spawn_watcher([&](Board& board) {
    auto next = board.watch(0, 20s);
    if (!next) return failed(2, next.error());
    return text_of(next->bytes) == "news" && next->version == 1 && next->skipped == 0 ? 0 : 3;
  });
  in_child([&] {
    auto board = Board::open(name);
    return board && board->put(as_bytes("news")) == 1u ? 0 : 1;
  });
  EXPECT_TRUE(watcher.wait(30s).exited_with(0));
}

TEST_F(RemoteBoard, AWatchSaysHowManyVersionsItSkipped) {
  create_board();
  in_child([&] {
    auto board = Board::open(name);
    if (!board) return 1;
    for (const char* text : {"a", "b", "c"}) {
      if (!board->put(as_bytes(text))) return 2;
    }
    auto from_start = board->watch(0, no_wait);
    if (!from_start || from_start->version != 3 || from_start->skipped != 2 || text_of(from_start->bytes) != "c") return 3;
    auto from_one = board->watch(1, 5s);
    return from_one && from_one->version == 3 && from_one->skipped == 1 ? 0 : 4;
  });
}

TEST_F(RemoteBoard, AWatchWithNothingNewWouldBlockOrTimesOut) {
  create_board();
  in_child([&] {
    auto board = Board::open(name);
    if (!board) return 1;
    if (!fails_with(board->watch(0, no_wait), Errc::would_block, object() + ": has no version after 0")) return 2;
    const auto start = std::chrono::steady_clock::now();
    if (!fails_with(board->watch(0, 1500ms), Errc::timeout, object() + ": timed out waiting for a version after 0")) {
      return 3;
    }
    const auto waited = std::chrono::steady_clock::now() - start;
    return waited >= 1500ms && waited < 5s ? 0 : 4;
  });
}

TEST_F(RemoteBoard, RemovingABoardWakesItsWatchersAndClosesItsHandles) {
  create_board();
  auto watcher = spawn_watcher([&](Board& board) {
    const auto start = std::chrono::steady_clock::now();
    if (!fails_with(board.watch(0, 20s), Errc::closed, object() + ": was removed")) return 2;
    if (std::chrono::steady_clock::now() - start > 5s) return 3;
    if (!fails_with(board.get(), Errc::closed, object() + ": was removed")) return 4;
    if (!fails_with(board.put(as_bytes("x")), Errc::closed, object() + ": was removed")) return 5;
    return fails_with(board.status(), Errc::closed, object() + ": was removed") ? 0 : 6;
  });
  in_child([&] {
    if (auto removed = Board::remove(name); !removed) return failed(1, removed.error());
    const std::string missing = object() + ": does not exist on " + server->url();
    if (!fails_with(Board::open(name), Errc::not_found, missing)) return 2;
    if (!fails_with(Board::stat(name), Errc::not_found, missing)) return 3;
    return fails_with(Board::remove(name), Errc::not_found, missing) ? 0 : 4;
  });
  EXPECT_TRUE(watcher.wait(30s).exited_with(0));
}

// Another client deleting the bucket sends a watcher nothing: it finds out by asking.
TEST_F(RemoteBoard, ABucketDeletedByAnotherClientClosesAWatch) {
  create_board();
  auto watcher = spawn_watcher([&](Board& board) {
    return fails_with(board.watch(0, 20s), Errc::closed, object() + ": was removed") ? 0 : 2;
  });
  in_child([&] {
    return with_raw_jetstream(server->url(), [&](jsCtx* jetstream) {
      return js_DeleteStream(jetstream, bucket_stream().c_str(), nullptr, nullptr) == NATS_OK ? 0 : 1;
    });
  });
  EXPECT_TRUE(watcher.wait(30s).exited_with(0));
}

TEST_F(RemoteBoard, AKeyDeletedByAnotherClientReadsAsRemoved) {
  create_board();
  in_child([&] {
    auto board = Board::open(name);
    if (!board || !board->put(as_bytes("v"))) return 1;
    const int deleted = with_raw_jetstream(server->url(), [&](jsCtx* jetstream) {
      kvStore* store = nullptr;
      if (js_KeyValue(&store, jetstream, bucket().c_str()) != NATS_OK) return 1;
      const natsStatus status = kvStore_Delete(store, "value");
      kvStore_Destroy(store);
      return status == NATS_OK ? 0 : 2;
    });
    if (deleted != 0) return 10 + deleted;
    return fails_with(board->get(), Errc::closed, object() + ": was removed") ? 0 : 3;
  });
}

TEST_F(RemoteBoard, SizesAndOptionsOutOfRangeAreRefusedWithTheirReasons) {
  in_child([&] {
    auto board = Board::create(name, {.max_size = 4, .ownership = Ownership::system});
    if (!board) return failed(1, board.error());
    if (!fails_with(board->put(as_bytes("12345")), Errc::too_large,
                    object() + ": a value of 5 bytes is over its maximum of 4")) {
      return 2;
    }
    if (!fails_with(Board::create(name, system_owned), Errc::already_exists,
                    object() + ": already exists on " + server->url())) {
      return 3;
    }
    const std::string huge = name + "-huge";
    if (!fails_with(Board::create(huge, {.max_size = 2u << 20, .ownership = Ownership::system}), Errc::too_large,
                    "board '" + huge + "': max_size 2097152 (and its headers) is over the server's maximum payload of "
                                       "1048576 bytes")) {
      return 4;
    }
    const std::string other = name + "-other";
    if (!fails_with(Board::create(other, {.max_size = 0, .ownership = Ownership::system}), Errc::invalid_argument,
                    "board '" + other + "': max_size must be at least 1 byte")) {
      return 5;
    }
    if (!fails_with(Board::create(other, {.ownership = Ownership::system, .replicas = 2}), Errc::invalid_argument,
                    "board '" + other + "': replicas must be 1, 3 or 5, not 2")) {
      return 6;
    }
    if (!fails_with(Board::create(other), Errc::invalid_argument,
                    "board '" + other + "': a nats:// board is system-owned (the server cannot tell that a process "
                                        "has gone): create it with Ownership::system")) {
      return 7;
    }
    for (const char* bad : {"nats://host", "nats://host/", "nats://host/a.b", "nats://a@b/x"}) {
      auto opened = Board::open(bad);
      if (opened || opened.error().errc() != Errc::invalid_name || opened.error().object() != "board '" + std::string{bad} + "'") {
        return 8;
      }
    }
    return 0;
  });
}

TEST_F(RemoteBoard, StatusNamesTheServerAndTheLatestValue) {
  create_board();
  in_child([&] {
    auto board = Board::open(name);
    if (!board || board->put(as_bytes("hello")) != 1u) return 1;
    for (auto status : {board->status(), Board::stat(name)}) {
      if (!status) return failed(2, status.error());
      if (status->name != name || status->version != 1 || status->size != 5 || status->max_size != 64 ||
          status->ownership != Ownership::system || status->server != server->url()) {
        return 3;
      }
    }
    return 0;
  });
}

TEST_F(RemoteBoard, ABoardKeepsItsValueAcrossAServerRestart) {
  create_board();
  in_child([&] {
    auto board = Board::open(name);
    return board && board->put(as_bytes("kept")) == 1u ? 0 : 1;
  });
  ASSERT_TRUE(server->restart());
  in_child([&] {
    auto board = Board::open(name);
    if (!board) return failed(1, board.error());
    auto latest = board->get();
    return latest && text_of(latest->bytes) == "kept" && latest->version == 1 ? 0 : 2;
  });
}

TEST_F(RemoteBoard, AnUnreachableServerIsAClearErrorNotAHang) {
  create_board();
  Pipe opened, killed;
  auto holder = ChildProcess::spawn([&] {
    auto board = Board::open(name);
    if (!board) return 1;
    opened.send("opened");
    if (!killed.receive(30s)) return 2;
    const auto start = std::chrono::steady_clock::now();
    auto latest = board->get();
    if (latest || latest.error().errc() != Errc::unreachable ||
        latest.error().message().find(object() + ": cannot reach the NATS server " + server->url()) != 0) {
      return latest ? 3 : failed(4, latest.error());
    }
    return std::chrono::steady_clock::now() - start < 10s ? 0 : 5;
  });
  ASSERT_TRUE(opened.receive(10s));
  server->kill();
  killed.send("killed");
  EXPECT_TRUE(holder.wait(30s).exited_with(0));
  in_child([&] {
    const auto start = std::chrono::steady_clock::now();
    const std::string unreachable = object() + ": cannot reach the NATS server " + server->url();
    auto board = Board::open(name);
    if (board || board.error().errc() != Errc::unreachable || board.error().message().find(unreachable) != 0) return 1;
    for (const auto& error : {Board::create(name, system_owned).error(), Board::stat(name).error(),
                              Board::remove(name).error()}) {
      if (error.errc() != Errc::unreachable || error.message().find(unreachable) != 0) return failed(2, error);
    }
    return std::chrono::steady_clock::now() - start < 20s ? 0 : 3;
  });
}

TEST_F(RemoteBoard, AValueOverItsMaximumFromTheServerIsCorrupt) {
  create_board({.max_size = 8, .ownership = Ownership::system});
  in_child([&] {
    auto board = Board::open(name);
    if (!board) return 1;
    if (const int stored = store_raw_value(server->url(), value_subject(), 20); stored != 0) return 10 + stored;
    const std::string over = object() + ": holds a value of 20 bytes, over its maximum of 8";
    if (!fails_with(board->get(), Errc::corrupt, over)) return 2;
    if (!fails_with(board->watch(0, 5s), Errc::corrupt, over)) return 3;
    return fails_with(Board::stat(name), Errc::corrupt, over) ? 0 : 4;
  });
}

TEST_F(RemoteBoard, AWatchChecksWhatItIsHandedToo) {
  create_board({.max_size = 8, .ownership = Ownership::system});
  auto watcher = spawn_watcher([&](Board& board) {
    return fails_with(board.watch(0, 20s), Errc::corrupt, object() + ": holds a value of 20 bytes, over its maximum of 8")
               ? 0
               : 2;
  });
  in_child([&] { return store_raw_value(server->url(), value_subject(), 20); });
  EXPECT_TRUE(watcher.wait(30s).exited_with(0));
}

TEST_F(RemoteBoard, ABucketNoBoardWouldHaveIsCorrupt) {
  in_child([&] {
    const int made = with_raw_jetstream(server->url(), [&](jsCtx* jetstream) {
      kvConfig config;
      kvConfig_Init(&config);
      const std::string unlimited = bucket();
      config.Bucket = unlimited.c_str();  // MaxValueSize left unlimited (-1)
      kvStore* store = nullptr;
      const natsStatus status = js_CreateKeyValue(&store, jetstream, &config);
      kvStore_Destroy(store);
      return status == NATS_OK ? 0 : 1;
    });
    if (made != 0) return 10 + made;
    return fails_with(Board::open(name), Errc::corrupt,
                      object() + ": has a bucket whose maximum value size is -1, which is no board's (its max_size "
                                 "and 256 bytes of headers)")
               ? 0
               : 1;
  });
}

TEST_F(RemoteBoard, AValueTheServerRefusesIsTooLarge) {
  create_board();
  in_child([&] {
    auto board = Board::open(name);
    if (!board) return 1;
    // Another client narrows the bucket under the handle.
    const int narrowed = with_raw_jetstream(server->url(), [&](jsCtx* jetstream) {
      jsStreamInfo* info = nullptr;
      if (js_GetStreamInfo(&info, jetstream, bucket_stream().c_str(), nullptr, nullptr) != NATS_OK) return 1;
      info->Config->MaxMsgSize = 8;
      jsStreamInfo* updated = nullptr;
      const natsStatus status = js_UpdateStream(&updated, jetstream, info->Config, nullptr, nullptr);
      jsStreamInfo_Destroy(updated);
      jsStreamInfo_Destroy(info);
      return status == NATS_OK ? 0 : 2;
    });
    if (narrowed != 0) return 10 + narrowed;
    return fails_with(board->put(as_bytes("sixteen bytes..")), Errc::too_large,
                      object() + ": the server refused the value as too large")
               ? 0
               : 2;
  });
}

}  // namespace
}  // namespace shmbox
