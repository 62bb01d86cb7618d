// shmbox serve and call: answers from a command, shared by server processes, a killed
// server replaced with nothing lost, failures and timeouts as exit codes with one line.
#include <gtest/gtest.h>
#include <sysexits.h>

#include <optional>
#include <string>

#include "shmbox/service.hpp"
#include "support/cli.hpp"
#include "support/nats_test.hpp"
#include "support/process.hpp"

namespace shmbox {
namespace {

using test::shell;
using test::shmbox_cli;

class ServiceCliTest : public ::testing::Test {
 protected:
  void TearDown() override { (void)Server::remove(name); }
  std::string name = test::unique_name("cliservice");
  std::string object() const { return "service '" + name + "'"; }
  // Starts `serve` in the background (its pid in $serve) and waits until it has joined.
  std::string serving(const std::string& options_and_command) const {
    return "$SHMBOX serve " + name + " " + options_and_command + " & serve=$!; "
           "until $SHMBOX stat " + name + " > /dev/null 2>&1; do sleep 0.02; done; ";
  }
};

TEST_F(ServiceCliTest, CallPrintsTheCommandsAnswerExactly) {
  auto run = shell(serving("--workers 2 -- tr a-z A-Z") + "$SHMBOX call " + name + " hello; echo; "
                   "printf 'two\\nlines\\n' | $SHMBOX call " + name + "; $SHMBOX rm " + name + "; wait $serve");
  EXPECT_TRUE(run.status.exited_with(EX_OK)) << run.err;
  EXPECT_EQ(run.out, "HELLO\nTWO\nLINES\n");
  EXPECT_EQ(run.err, "");
}

TEST_F(ServiceCliTest, PersistentServersAnswerEachRequestAsALine) {
  auto run = shell(serving("--workers 1 --persistent -- sh -c 'while read l; do echo \"got $l\"; done'") +
                   "$SHMBOX call " + name + " one && $SHMBOX call " + name + " two; $SHMBOX rm " + name + "; wait $serve");
  EXPECT_EQ(run.out, "got one\ngot two\n");
}

// A server killed while it holds a request is replaced, and the request answered by another.
TEST_F(ServiceCliTest, AServerKilledMidRequestIsReplacedAndTheCallStillAnswered) {
  auto run = shell(serving("--workers 1 -- sh -c 'exec 2> /dev/null; if [ ! -e mark ]; then : > mark; sleep 60; fi; cat'") +
                   "$SHMBOX call " + name + " survived --timeout 30s > out & call=$!; "
                   "until [ -e mark ]; do sleep 0.02; done; pkill -9 -P $serve -x 'shmbox server'; "
                   "wait $call; echo \"call $?\"; cat out; rm -f mark out; $SHMBOX rm " + name + "; wait $serve");
  EXPECT_EQ(run.out, "call 0\nsurvived");
  EXPECT_NE(run.err.find("shmbox: " + object() + ": server "), std::string::npos) << run.err;
  EXPECT_NE(run.err.find(" was killed by signal 9; starting another\n"), std::string::npos) << run.err;
}

// A command that answers without reading its request closes the pipe under the server's
// write: that is the command's business, and its answer still counts.
TEST_F(ServiceCliTest, ACommandThatDoesNotReadItsRequestStillAnswers) {
  auto run = shell(serving("--workers 1 --max-size 1MiB -- sh -c 'echo answered'") +
                   "head -c 300000 /dev/zero > request; $SHMBOX call " + name + " --file request; echo \"call $?\"; "
                   "rm -f request; $SHMBOX rm " + name + "; wait $serve");
  EXPECT_EQ(run.out, "answered\ncall 0\n");
  EXPECT_EQ(run.err, "");
}

TEST_F(ServiceCliTest, FailuresAndTimeoutsAreOneLineWithTheirExitCode) {
  auto missing = shmbox_cli({"call", name, "x"});
  EXPECT_TRUE(missing.status.exited_with(EX_NOINPUT));
  EXPECT_EQ(missing.err, "shmbox: " + object() + ": does not exist (no server has joined it)\n");
  ASSERT_TRUE(Server::join(name, {.max_request_size = 8}));
  auto timeout = shmbox_cli({"call", name, "nobody", "--timeout", "100ms"});
  EXPECT_TRUE(timeout.status.exited_with(EX_TEMPFAIL));
  EXPECT_EQ(timeout.err, "shmbox: " + object() + ": no answer to request 1 in time\n");
  auto large = shmbox_cli({"call", name}, "123456789");
  EXPECT_TRUE(large.status.exited_with(EX_DATAERR));
  EXPECT_EQ(large.err, "shmbox: " + object() + ": the request from standard input is over its maximum of 8 bytes; "
                       "nothing was sent\n");
  auto failed = shell(serving("--workers 1 -- sh -c 'exit 3'") + "$SHMBOX call " + name + " x; echo \"call $?\"; " +
                      "$SHMBOX rm " + name + "; wait $serve");
  EXPECT_EQ(failed.out, "call 65\n");
  EXPECT_EQ(failed.err, "shmbox: " + object() + ": request 1 failed: sh exited with status 3\n");
  auto usage = shmbox_cli({"serve", name});
  EXPECT_TRUE(usage.status.exited_with(EX_USAGE));
  EXPECT_EQ(usage.err, "shmbox: usage: serve needs a command: serve NAME -- COMMAND\n");
}

// The same commands on a nats:// service: servers started by serve answer calls, and
// rm --service ends serve.
TEST(RemoteServiceCli, ServeAndCallWorkOnANatsService) {
  std::optional<test::NatsServer> server;
  test::start_nats_or_skip(server);
  if (!server) return;
  const std::string name = test::remote_name(*server, "cliservice");
  const std::string object = "service '" + name + "'";
  auto missing = shmbox_cli({"call", name, "x"});
  EXPECT_TRUE(missing.status.exited_with(EX_NOINPUT));
  EXPECT_EQ(missing.err, "shmbox: " + object + ": does not exist (no server has joined it)\n");
  auto run = shell("$SHMBOX serve " + name + " --workers 2 -- tr a-z A-Z & serve=$!; "
                   "until $SHMBOX call " + name + " ready --timeout 1s > /dev/null 2>&1; do sleep 0.05; done; "
                   "$SHMBOX call " + name + " hello; echo; printf 'two\\nlines\\n' | $SHMBOX call " + name + "; "
                   "$SHMBOX rm --service " + name + "; wait $serve; echo \"serve $?\"");
  EXPECT_EQ(run.out, "HELLO\nTWO\nLINES\nserve 0\n") << run.err;
  EXPECT_EQ(run.err, "");
  auto gone = shmbox_cli({"rm", "--service", name});
  EXPECT_TRUE(gone.status.exited_with(EX_NOINPUT));
  EXPECT_EQ(gone.err, "shmbox: " + object + ": does not exist (no server has joined it)\n");
}

}  // namespace
}  // namespace shmbox
