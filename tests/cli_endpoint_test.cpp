// The endpoint side of the shmbox tool: send --to, recv --as/--from, ls, stat and rm.
#include <gtest/gtest.h>
#include <sysexits.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "shmbox/endpoint.hpp"
#include "support/cli.hpp"
#include "support/process.hpp"
#include "support/text.hpp"

namespace shmbox {
namespace {

using namespace std::chrono_literals;

using test::shmbox_cli;

using test::text_of;

class EndpointCliTest : public ::testing::Test {
 protected:
  std::string server = test::unique_name("cliserver");
  std::string client = test::unique_name("cliclient");
};

TEST_F(EndpointCliTest, SendToAnEndpointAsANamedSender) {
  auto me = Endpoint::join(server);
  ASSERT_TRUE(me);
  auto sent = shmbox_cli({"send", "--to", server, "--as", client, "hello", "world"});
  ASSERT_TRUE(sent.status.exited_with(EX_OK)) << sent.err;
  std::vector<std::byte> message;
  ASSERT_TRUE(me->receive_from(client, message, 10s));
  EXPECT_EQ(text_of(message), "hello");
  auto from = me->receive(message, 10s);
  ASSERT_TRUE(from);
  EXPECT_EQ(*from, client);
  EXPECT_EQ(text_of(message), "world");
}

TEST_F(EndpointCliTest, SendWithoutAsUsesANameOfItsOwn) {
  auto me = Endpoint::join(server);
  ASSERT_TRUE(me);
  ASSERT_TRUE(shmbox_cli({"send", "--to", server, "anonymous"}).status.exited_with(EX_OK));
  std::vector<std::byte> message;
  auto from = me->receive(message, 10s);
  ASSERT_TRUE(from);
  EXPECT_TRUE(from->starts_with("shmbox-cli-")) << *from;
}

TEST_F(EndpointCliTest, ReceiveAsAnEndpointFromOnePeerOrFromAnyone) {
  test::Pipe progress;
  auto receiver = test::ChildProcess::spawn([&]() -> int {
    auto result = shmbox_cli({"recv", "--as", server, "--from", client, "--timeout", "10s"});
    if (!result.status.exited_with(EX_OK) || result.out != "only-this\n") return 1;
    progress.send("first done");
    result = shmbox_cli({"recv", "--as", server, "--timeout", "10s"});
    return result.status.exited_with(EX_OK) && result.out == client + ": anyone\n" ? 0 : 2;
  });
  auto me = Endpoint::join(client);
  ASSERT_TRUE(me);
  auto send_when_there = [&](const char* text) {
    for (int attempt = 0; attempt < 500; ++attempt) {
      if (me->send(server, as_bytes(text), 1s)) return true;
      std::this_thread::sleep_for(10ms);  // the CLI has not joined yet
    }
    return false;
  };
  ASSERT_TRUE(send_when_there("only-this"));
  // The first recv has left (its endpoint went with it); the second joins afresh.
  ASSERT_EQ(progress.receive(), "first done");
  ASSERT_TRUE(send_when_there("anyone"));
  EXPECT_TRUE(receiver.wait().exited_with(0));
}

TEST_F(EndpointCliTest, LsListsEndpointsWithTheirOwner) {
  auto me = Endpoint::join(server, {.capacity = 7});
  ASSERT_TRUE(me);
  auto listed = shmbox_cli({"ls"});
  ASSERT_TRUE(listed.status.exited_with(EX_OK));
  const auto row = listed.out.find("endpoint " + server);
  ASSERT_NE(row, std::string::npos) << listed.out;
  const std::string line = listed.out.substr(row, listed.out.find('\n', row) - row);
  EXPECT_NE(line.find(std::to_string(::getpid()) + " (shmbox_tests)"), std::string::npos) << line;
  EXPECT_NE(line.find(" 7 "), std::string::npos) << line;
  auto json = shmbox_cli({"ls", "--json"});
  EXPECT_NE(json.out.find("\"kind\":\"endpoint\""), std::string::npos) << json.out;
}

TEST_F(EndpointCliTest, ErrorsExitWithTheirCodes) {
  auto missing = shmbox_cli({"send", "--to", server, "x"});
  EXPECT_TRUE(missing.status.exited_with(EX_NOINPUT));
  EXPECT_EQ(missing.err, "shmbox: endpoint '" + server + "': cannot open: does not exist (No such file or directory)\n");
  auto both = shmbox_cli({"recv", "box", "--as", server});
  EXPECT_TRUE(both.status.exited_with(EX_USAGE));
  EXPECT_EQ(both.err, "shmbox: usage: recv takes a mailbox name or --as ENDPOINT\n");
  auto from_alone = shmbox_cli({"recv", "--from", client});
  EXPECT_TRUE(from_alone.status.exited_with(EX_USAGE));
  EXPECT_EQ(from_alone.err, "shmbox: usage: recv --from needs --as ENDPOINT, the endpoint to receive at\n");
  auto me = Endpoint::join(server);
  ASSERT_TRUE(me);
  auto taken = shmbox_cli({"recv", "--as", server, "--nonblock"});
  EXPECT_TRUE(taken.status.exited_with(EX_CANTCREAT));
  auto empty = shmbox_cli({"recv", "--as", client, "--nonblock"});
  EXPECT_TRUE(empty.status.exited_with(EX_TEMPFAIL));
  EXPECT_EQ(empty.err, "shmbox: endpoint '" + client + "': is empty\n");
}

// A `recv --as` in a child (of `uid` 65534 when asked), whose output the test reads
// after waiting for it; started once its endpoint exists.
class EndpointCliUsersTest : public EndpointCliTest {
 protected:
  void SetUp() override {
    if (!test::running_as_root()) GTEST_SKIP() << "needs root to switch to another uid";
  }
  void start_receiver(std::vector<std::string> args, bool as_nobody) {
    receiver = test::ChildProcess::spawn([=, this]() -> int {
      if (as_nobody && !test::drop_privileges()) return 10;
      auto result = shmbox_cli(args);
      output.send(result.out + result.err);
      return result.status.exited_with(EX_OK) ? 0 : 1;
    });
    for (int i = 0; i < 500 && !Endpoint::stat(server); ++i) std::this_thread::sleep_for(10ms);
    ASSERT_TRUE(Endpoint::stat(server)) << "the receiver never joined";
  }
  // Runs the tool as uid 65534.
  static test::CommandResult shmbox_cli_as_nobody(const std::vector<std::string>& args) {
    test::Pipe result;
    auto child = test::ChildProcess::spawn([&]() -> int {
      if (!test::drop_privileges()) return 10;
      auto ran = shmbox_cli(args);
      result.send(std::to_string(ran.status.code) + " " + ran.err);
      return 0;
    });
    auto line = result.receive().value_or("-1 no answer");
    child.wait();
    const auto space = line.find(' ');
    return {.status = {.kind = test::ExitStatus::Kind::exited, .code = std::stoi(line.substr(0, space))},
            .out = {},
            .err = line.substr(space + 1)};
  }
  std::optional<test::ChildProcess> receiver;
  test::Pipe output;
};

TEST_F(EndpointCliUsersTest, ModeLetsAnotherUserSendToAnEndpoint) {
  ASSERT_NO_FATAL_FAILURE(start_receiver({"recv", "--as", server, "--mode", "666", "--timeout", "10s"}, false));
  EXPECT_EQ(Endpoint::stat(server)->mode, 0666u);
  auto sent = shmbox_cli_as_nobody({"send", "--to", server, "--as", client, "--mode", "0600", "hello"});
  EXPECT_TRUE(sent.status.exited_with(EX_OK)) << sent.err;
  EXPECT_EQ(output.receive(), client + ": hello");
}

TEST_F(EndpointCliUsersTest, WithoutTheModeAnotherUserIsRefusedNamingTheEndpoint) {
  ASSERT_NO_FATAL_FAILURE(start_receiver({"recv", "--as", server, "--timeout", "1s"}, false));
  EXPECT_EQ(Endpoint::stat(server)->mode, 0600u);
  auto refused = shmbox_cli_as_nobody({"send", "--to", server, "--as", client, "lost"});
  EXPECT_TRUE(refused.status.exited_with(EX_NOPERM)) << refused.err;
  EXPECT_TRUE(refused.err.starts_with("shmbox: endpoint '" + server + "': ")) << refused.err;
  EXPECT_EQ(output.receive(), "shmbox: endpoint '" + server + "': timed out");
}

TEST_F(EndpointCliUsersTest, RootReachesAnEndpointAnotherUserJoinedWithMode0600) {
  ASSERT_NO_FATAL_FAILURE(start_receiver({"recv", "--as", server, "--timeout", "10s"}, true));
  auto sent = shmbox_cli({"--trust-user", "65534", "send", "--to", server, "--as", client, "delivered"});
  EXPECT_TRUE(sent.status.exited_with(EX_OK)) << sent.err;
  EXPECT_EQ(output.receive(), client + ": delivered");
}

TEST_F(EndpointCliUsersTest, AnotherUsersRmOfAGoneProcesssEndpointIsRefusedAndChangesNothing) {
  test::Pipe joined;
  auto holder = test::ChildProcess::spawn([&] {
    auto me = Endpoint::join(server, {.mode = 0666});
    if (!me) return 1;
    joined.send("joined");
    ::pause();
    return 0;
  });
  ASSERT_EQ(joined.receive(), "joined");
  holder.kill();
  holder.wait();
  auto refused = shmbox_cli_as_nobody({"rm", "--endpoint", server});
  EXPECT_TRUE(refused.status.exited_with(EX_NOPERM)) << refused.err;
  EXPECT_EQ(refused.err, "shmbox: endpoint '" + server + "': cannot remove: permission denied (Operation not permitted)");
  auto still = Endpoint::stat(server);
  ASSERT_TRUE(still) << still.error().message();
  EXPECT_FALSE(still->owner_alive);
  auto removed = shmbox_cli({"rm", "--endpoint", server});
  EXPECT_TRUE(removed.status.exited_with(EX_OK)) << removed.err;
}

TEST_F(EndpointCliTest, ABadModeIsAUsageError) {
  for (const auto& args : {std::vector<std::string>{"recv", "--as", server, "--mode", "999", "--nonblock"},
                           std::vector<std::string>{"send", "--to", server, "--mode", "rw", "x"}}) {
    auto bad = shmbox_cli(args);
    EXPECT_TRUE(bad.status.exited_with(EX_USAGE)) << args[0] << ": " << bad.err;
    EXPECT_TRUE(bad.err.starts_with("shmbox: --mode '")) << bad.err;
  }
}

TEST_F(EndpointCliTest, RmRefusesAnEndpointWhileItsProcessLivesAndRemovesItWithItsLanesAfter) {
  test::Pipe joined;
  auto holder = test::ChildProcess::spawn([&] {
    auto me = Endpoint::join(server);
    if (!me) return 1;
    joined.send("joined");
    ::pause();
    return 0;
  });
  ASSERT_EQ(joined.receive(), "joined");
  ASSERT_TRUE(shmbox_cli({"send", "--to", server, "--as", client, "queued"}).status.exited_with(EX_OK));
  const auto has_lanes = [&] {
    for (const auto& entry : std::filesystem::directory_iterator("/dev/shm")) {
      if (entry.path().filename().string().starts_with("shmbox.ln." + server + ".")) return true;
    }
    return false;
  };
  ASSERT_TRUE(has_lanes());

  auto refused = shmbox_cli({"rm", "--endpoint", server});
  EXPECT_TRUE(refused.status.exited_with(EX_TEMPFAIL)) << refused.status.describe();
  EXPECT_EQ(refused.err, "shmbox: endpoint '" + server + "': process " + std::to_string(holder.pid()) +
                             " (shmbox_tests) is joined to it; an endpoint goes when its process leaves\n");
  auto still = Endpoint::stat(server);  // a refused rm changed nothing
  ASSERT_TRUE(still);
  EXPECT_EQ(still->queued, 1u);
  EXPECT_TRUE(still->owner_alive);

  holder.kill();
  holder.wait();
  auto removed = shmbox_cli({"rm", "--endpoint", server});
  EXPECT_TRUE(removed.status.exited_with(EX_OK)) << removed.err;
  EXPECT_FALSE(has_lanes());
  auto gone = shmbox_cli({"stat", "--endpoint", server});
  EXPECT_TRUE(gone.status.exited_with(EX_NOINPUT));
  auto again = shmbox_cli({"rm", "--endpoint", server});
  EXPECT_TRUE(again.status.exited_with(EX_NOINPUT));
  EXPECT_EQ(again.err, "shmbox: endpoint '" + server + "': cannot open: does not exist (No such file or directory)\n");
  auto bad = shmbox_cli({"rm", "--endpoint", "a/b"});
  EXPECT_TRUE(bad.status.exited_with(EX_USAGE));
}

TEST_F(EndpointCliTest, RmRemovesAnEndpointFileNobodyCanRead) {
  const std::string path = "/dev/shm/shmbox.ep." + server;
  { std::ofstream{path} << "not an endpoint"; }
  auto removed = shmbox_cli({"rm", "--endpoint", server});
  EXPECT_TRUE(removed.status.exited_with(EX_OK)) << removed.err;
  EXPECT_FALSE(std::filesystem::exists(path));
}

}  // namespace
}  // namespace shmbox
