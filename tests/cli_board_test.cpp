// shmbox board: create, put (argument, file, stdin, --if-version), get (exact bytes,
// --version, --json), watch (framings, --count, --timeout, a board removed under it), rm,
// and what ls and stat show; every error as one line with its exit code.
#include <gtest/gtest.h>
#include <sysexits.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "shmbox/board.hpp"
#include "support/cli.hpp"
#include "support/nats_test.hpp"
#include "support/process.hpp"

namespace shmbox {
namespace {

using namespace std::chrono_literals;
using test::ChildProcess;
using test::shell;
using test::shmbox_cli;

class BoardCliTest : public ::testing::Test {
 protected:
  void TearDown() override { (void)Board::remove(name); }
  std::string name = test::unique_name("cliboard");
  std::string object() const { return "board '" + name + "'"; }
};

TEST_F(BoardCliTest, PutPrintsTheVersionAndGetPrintsTheValueExactly) {
  auto created = shmbox_cli({"board", "create", name});
  ASSERT_TRUE(created.status.exited_with(EX_OK)) << created.err;
  EXPECT_EQ(created.out, "");
  auto empty = shmbox_cli({"board", "get", name});
  EXPECT_TRUE(empty.status.exited_with(EX_OK));
  EXPECT_EQ(empty.out, "");
  auto put = shmbox_cli({"board", "put", name, "threads=4"});
  EXPECT_TRUE(put.status.exited_with(EX_OK)) << put.err;
  EXPECT_EQ(put.out, "1\n");
  EXPECT_EQ(shmbox_cli({"board", "get", name}).out, "threads=4");
  // Standard input, every byte of it, newlines and NULs too.
  const std::string binary{"line one\nline two\0after a NUL\n", 30};
  EXPECT_EQ(shmbox_cli({"board", "put", name}, binary).out, "2\n");
  EXPECT_EQ(shmbox_cli({"board", "get", name}).out, binary);
  EXPECT_EQ(shmbox_cli({"board", "get", name, "--version"}).out, "2\n");
  const auto json = nlohmann::json::parse(shmbox_cli({"board", "get", name, "--json"}).out);
  EXPECT_EQ(json["board"], name);
  EXPECT_EQ(json["version"], 2);
  EXPECT_EQ(json["size"], 30);
  EXPECT_EQ(json["data"], "bGluZSBvbmUKbGluZSB0d28AYWZ0ZXIgYSBOVUwK");
  // A file.
  test::TemporaryDirectory directory;
  const std::string path = directory.path() + "/value";
  std::ofstream{path} << "from a file";
  EXPECT_EQ(shmbox_cli({"board", "put", name, "--file", path}).out, "3\n");
  EXPECT_EQ(Board::open(name)->get().value().bytes.size(), 11u);
  auto missing = shmbox_cli({"board", "put", name, "--file", path + "-missing"});
  EXPECT_TRUE(missing.status.exited_with(EX_NOINPUT));
  EXPECT_EQ(Board::open(name)->version().value(), 3u);
}

TEST_F(BoardCliTest, IfVersionRefusesAStalePutWith75NamingTheLatest) {
  ASSERT_TRUE(shmbox_cli({"board", "create", name}).status.exited_with(EX_OK));
  EXPECT_EQ(shmbox_cli({"board", "put", name, "--if-version", "0", "first"}).out, "1\n");
  auto stale = shmbox_cli({"board", "put", name, "--if-version", "0", "second"});
  EXPECT_TRUE(stale.status.exited_with(EX_TEMPFAIL));
  EXPECT_EQ(stale.out, "");
  EXPECT_EQ(stale.err, "shmbox: " + object() + ": version 0 is no longer the latest: version 1 is\n");
  EXPECT_EQ(shmbox_cli({"board", "get", name}).out, "first");
  // A read-modify-write loop in shell: read the version, put if it is still the latest.
  auto loop = shell("v=$($SHMBOX board get " + name + " --version) && $SHMBOX board put " + name +
                    " --if-version \"$v\" next");
  EXPECT_TRUE(loop.status.exited_with(EX_OK)) << loop.err;
  EXPECT_EQ(loop.out, "2\n");
}

TEST_F(BoardCliTest, ARefusedPutChangesNothingAndSaysWhy) {
  ASSERT_TRUE(shmbox_cli({"board", "create", name, "--max-size", "4"}).status.exited_with(EX_OK));
  auto over = shmbox_cli({"board", "put", name}, "12345");
  EXPECT_TRUE(over.status.exited_with(EX_DATAERR));
  EXPECT_EQ(over.err,
            "shmbox: " + object() + ": the value from standard input is over its maximum of 4 bytes; nothing was put\n");
  auto over_argument = shmbox_cli({"board", "put", name, "12345"});
  EXPECT_TRUE(over_argument.status.exited_with(EX_DATAERR));
  EXPECT_EQ(over_argument.err, "shmbox: " + object() + ": a value of 5 bytes is over its maximum of 4\n");
  auto both = shmbox_cli({"board", "put", name, "x", "--file", "/etc/hostname"});
  EXPECT_TRUE(both.status.exited_with(EX_USAGE));
  EXPECT_EQ(both.err, "shmbox: usage: board put takes a VALUE or --file, not both\n");
  auto bad_version = shmbox_cli({"board", "put", name, "--if-version", "-1", "x"});
  EXPECT_TRUE(bad_version.status.exited_with(EX_USAGE));
  EXPECT_EQ(Board::open(name)->version().value(), 0u);
  auto no_board = shmbox_cli({"board", "put", name + "-missing", "x"});
  EXPECT_TRUE(no_board.status.exited_with(EX_NOINPUT));
  EXPECT_TRUE(no_board.err.starts_with("shmbox: board '" + name + "-missing': ")) << no_board.err;
  auto taken = shmbox_cli({"board", "create", name});
  EXPECT_TRUE(taken.status.exited_with(EX_CANTCREAT));
  auto bad_views = shmbox_cli({"board", "create", name + "-2", "--max-views", "0"});
  EXPECT_TRUE(bad_views.status.exited_with(EX_USAGE));
  auto bad_replicas = shmbox_cli({"board", "create", name + "-2", "--replicas", "3"});
  EXPECT_TRUE(bad_replicas.status.exited_with(EX_USAGE));
  EXPECT_EQ(bad_replicas.err, "shmbox: --replicas: only a nats:// board is kept in copies\n");
  auto bad_name = shmbox_cli({"board", "create", "bad/name"});
  EXPECT_TRUE(bad_name.status.exited_with(EX_USAGE));
  EXPECT_EQ(Board::open(name + "-2").error(), Errc::not_found);
}

TEST_F(BoardCliTest, CreateAppliesTheModeExactly) {
  ASSERT_TRUE(shmbox_cli({"board", "create", name, "--mode", "640", "--max-size", "1KiB"}).status.exited_with(EX_OK));
  auto status = Board::stat(name);
  ASSERT_TRUE(status.has_value());
  EXPECT_EQ(status->mode, 0640u);
  EXPECT_EQ(status->max_size, 1024u);
  EXPECT_EQ(status->ownership, Ownership::system);  // it outlives the command
}

TEST_F(BoardCliTest, WatchPrintsEachNewValueOnItsOwnLine) {
  ASSERT_TRUE(shmbox_cli({"board", "create", name}).status.exited_with(EX_OK));
  ASSERT_TRUE(shmbox_cli({"board", "put", name, "before"}).status.exited_with(EX_OK));
  // The writer starts once the watch sleeps on the board (in futex(2), syscall 202): it
  // has taken the version it starts from, however slowly it started.
  test::TemporaryDirectory directory;
  const std::string pid_file = directory.path() + "/pid";
  ChildProcess writer = ChildProcess::spawn([&] {
    for (std::string syscall;; std::this_thread::sleep_for(5ms)) {
      pid_t watch = 0;
      if (!(std::ifstream{pid_file} >> watch)) continue;
      std::ifstream{"/proc/" + std::to_string(watch) + "/syscall"} >> syscall;
      if (syscall == "202") break;
    }
    auto board = Board::open(name);
    if (!board) return 1;
    for (const char* value : {"one", "two"}) {
      if (!board->put(as_bytes(value))) return 2;
      std::this_thread::sleep_for(100ms);
    }
    return 0;
  });
  // Only what comes after it starts; the value, nothing else, one per line.
  auto watched = shell("$SHMBOX board watch " + name + " --count 2 --timeout 20s & echo $! > " + pid_file + "; wait $!");
  EXPECT_TRUE(watched.status.exited_with(EX_OK)) << watched.err;
  EXPECT_EQ(watched.out, "one\ntwo\n");
  EXPECT_TRUE(writer.wait().exited_with(0));

  // --after: from a version already there; a slow watcher is told what it skipped.
  auto json = shmbox_cli({"board", "watch", name, "--after", "1", "--count", "1", "--json"});
  ASSERT_TRUE(json.status.exited_with(EX_OK)) << json.err;
  const auto record = nlohmann::json::parse(json.out);
  EXPECT_EQ(record["version"], 3);
  EXPECT_EQ(record["skipped"], 1);
  EXPECT_EQ(record["data"], "dHdv");
  auto nul = shmbox_cli({"board", "watch", name, "--after", "0", "--count", "1", "--null"});
  EXPECT_EQ(nul.out, std::string("two\0", 4));
}

TEST_F(BoardCliTest, WatchSaysHowItEndedAndWhatItWrote) {
  ASSERT_TRUE(shmbox_cli({"board", "create", name}).status.exited_with(EX_OK));
  auto timed_out = shmbox_cli({"board", "watch", name, "--timeout", "100ms", "--count", "3"});
  EXPECT_TRUE(timed_out.status.exited_with(EX_TEMPFAIL));
  EXPECT_EQ(timed_out.err, "shmbox: " + object() + ": timed out waiting for a version after 0; 0 of 3 written\n");
  // Removed once the watch has written what it saw (however slowly it started): its
  // output goes to a file the remover reads, and is printed after.
  {
    auto board = Board::open(name);
    ASSERT_TRUE(board && board->put(as_bytes("last")));
  }
  test::TemporaryDirectory directory;
  const std::string written = directory.path() + "/written";
  ChildProcess remover = ChildProcess::spawn([&] {
    for (std::string line; line != "last";) {
      std::this_thread::sleep_for(10ms);
      std::ifstream{written} >> line;
    }
    return Board::remove(name) ? 0 : 2;
  });
  auto removed = shell("$SHMBOX board watch " + name + " --after 0 --timeout 20s > " + written +
                       "; status=$?; cat " + written + "; exit $status");
  EXPECT_TRUE(removed.status.exited_with(EX_UNAVAILABLE));
  EXPECT_EQ(removed.out, "last\n");
  EXPECT_EQ(removed.err, "shmbox: " + object() + ": was removed; 1 written\n");
  EXPECT_TRUE(remover.wait().exited_with(0));
  auto both = shmbox_cli({"board", "watch", name, "--json", "--null"});
  EXPECT_TRUE(both.status.exited_with(EX_USAGE));
  EXPECT_EQ(both.err, "shmbox: usage: board watch takes --null or --json, not both\n");
}

TEST_F(BoardCliTest, RmRemovesItAndLsAndStatShowIt) {
  ASSERT_TRUE(shmbox_cli({"board", "create", name, "--max-size", "100"}).status.exited_with(EX_OK));
  ASSERT_TRUE(shmbox_cli({"board", "put", name, "twelve bytes"}).status.exited_with(EX_OK));
  auto stat = shmbox_cli({"stat", "--board", name});
  EXPECT_TRUE(stat.status.exited_with(EX_OK)) << stat.err;
  EXPECT_EQ(stat.out, "board " + name + "\n  owner         system\n  version       1\n  value         12 bytes (at most 100)\n"
                      "  writer        none\n  views         0 held (at most 8)\n  mode          0600\n  owner uid     " +
                          std::to_string(::geteuid()) + "\n");
  const auto json = nlohmann::json::parse(shmbox_cli({"stat", "--board", name, "--json"}).out);
  EXPECT_EQ(json["kind"], "board");
  EXPECT_EQ(json["version"], 1);
  EXPECT_EQ(json["value_size"], 12);
  EXPECT_EQ(json["max_message_size"], 100);
  EXPECT_EQ(json["views"]["max"], 8);
  const auto listing = nlohmann::json::parse(shmbox_cli({"ls", "--json"}).out);
  bool listed = false;
  for (const auto& row : listing) listed = listed || (row["kind"] == "board" && row["name"] == name && row == json);
  EXPECT_TRUE(listed);
  auto removed = shmbox_cli({"board", "rm", name});
  EXPECT_TRUE(removed.status.exited_with(EX_OK)) << removed.err;
  auto again = shmbox_cli({"board", "rm", name});
  EXPECT_TRUE(again.status.exited_with(EX_NOINPUT));
  EXPECT_TRUE(again.err.starts_with("shmbox: " + object() + ": ")) << again.err;
  auto gone = shmbox_cli({"board", "get", name});
  EXPECT_TRUE(gone.status.exited_with(EX_NOINPUT));
}

// The same commands on a nats:// board; what has no meaning there is refused and makes nothing.
TEST(BoardCliRemoteTest, TheSameCommandsWorkOnANatsBoard) {
  std::optional<test::NatsServer> server;
  test::start_nats_or_skip(server);
  if (!server) return;
  const std::string name = test::remote_name(*server, "cliboard");
  const std::string object = "board '" + name + "'";
  auto with_mode = shmbox_cli({"board", "create", name, "--mode", "644"});
  EXPECT_TRUE(with_mode.status.exited_with(EX_USAGE));
  EXPECT_EQ(with_mode.err,
            "shmbox: --mode: a nats:// board has no permission bits: the server's accounts decide who may use it\n");
  auto with_views = shmbox_cli({"board", "create", name, "--max-views", "4"});
  EXPECT_TRUE(with_views.status.exited_with(EX_USAGE));
  EXPECT_EQ(with_views.err, "shmbox: --max-views: a nats:// board's views are copies: there is nothing to pin\n");
  EXPECT_TRUE(shmbox_cli({"board", "get", name}).status.exited_with(EX_NOINPUT));

  ASSERT_TRUE(shmbox_cli({"board", "create", name, "--max-size", "1KiB"}).status.exited_with(EX_OK));
  EXPECT_EQ(shmbox_cli({"board", "put", name, "first"}).out, "1\n");
  EXPECT_EQ(shmbox_cli({"board", "put", name, "second", "--if-version", "1"}).out, "2\n");
  auto stale = shmbox_cli({"board", "put", name, "third", "--if-version", "1"});
  EXPECT_TRUE(stale.status.exited_with(EX_TEMPFAIL));
  EXPECT_EQ(stale.err, "shmbox: " + object + ": version 1 is no longer the latest: version 2 is\n");
  EXPECT_EQ(shmbox_cli({"board", "get", name}).out, "second");
  EXPECT_EQ(shmbox_cli({"board", "get", name, "--version"}).out, "2\n");
  EXPECT_EQ(shmbox_cli({"board", "watch", name, "--after", "1", "--count", "1"}).out, "second\n");
  auto stat = nlohmann::json::parse(shmbox_cli({"stat", "--board", name, "--json"}).out);
  EXPECT_EQ(stat["kind"], "board");
  EXPECT_EQ(stat["transport"], "nats");
  EXPECT_EQ(stat["version"], 2);
  EXPECT_EQ(stat["value_size"], 6);
  EXPECT_TRUE(shmbox_cli({"board", "rm", name}).status.exited_with(EX_OK));
  auto gone = shmbox_cli({"board", "get", name});
  EXPECT_TRUE(gone.status.exited_with(EX_NOINPUT));
  EXPECT_EQ(gone.err, "shmbox: " + object + ": does not exist on " + server->url() + "\n");
}

}  // namespace
}  // namespace shmbox
