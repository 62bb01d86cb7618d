// The endpoint side of the shmbox tool: send --to, recv --as/--from, and ls.
#include <gtest/gtest.h>
#include <sysexits.h>

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

}  // namespace
}  // namespace shmbox
