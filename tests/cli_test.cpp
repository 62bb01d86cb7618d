// The shmbox tool as a user's shell sees it: exit codes from sysexits.h and one
// line on stderr naming the object and the cause.
#include <gtest/gtest.h>
#include <sysexits.h>

#include <filesystem>

#include "shmbox/segment.hpp"
#include "support/cli.hpp"
#include "support/process.hpp"

namespace shmbox {
namespace {

using test::run_command;

using test::shmbox_cli;

class SegmentCliTest : public ::testing::Test {
 protected:
  void TearDown() override { (void)Segment::remove(name); }
  std::string name = test::unique_name("cli");
};

TEST_F(SegmentCliTest, CreateWriteReadStatRemove) {
  ASSERT_TRUE(shmbox_cli({"segment", "create", name, "64", "--mode", "640"}).status.exited_with(EX_OK));
  ASSERT_TRUE(shmbox_cli({"segment", "write", name, "hello"}).status.exited_with(EX_OK));
  ASSERT_TRUE(shmbox_cli({"segment", "write", name, "--offset", "5"}, " world").status.exited_with(EX_OK));
  auto read = shmbox_cli({"segment", "read", name, "--length", "11"});
  EXPECT_TRUE(read.status.exited_with(EX_OK));
  EXPECT_EQ(read.out, "hello world");
  auto stat = shmbox_cli({"segment", "stat", name, "--json"});
  EXPECT_TRUE(stat.status.exited_with(EX_OK));
  EXPECT_NE(stat.out.find("\"size\":64"), std::string::npos) << stat.out;
  EXPECT_NE(stat.out.find("\"mode\":\"0640\""), std::string::npos) << stat.out;
  auto human = shmbox_cli({"segment", "stat", name});
  EXPECT_NE(human.out.find("size  64 bytes"), std::string::npos) << human.out;
  EXPECT_TRUE(shmbox_cli({"segment", "rm", name}).status.exited_with(EX_OK));
  EXPECT_FALSE(Segment::stat(name));
}

TEST_F(SegmentCliTest, ExistingNameExits73) {
  ASSERT_TRUE(Segment::create(name, 64));
  auto result = shmbox_cli({"segment", "create", name, "64"});
  EXPECT_TRUE(result.status.exited_with(EX_CANTCREAT));
  EXPECT_EQ(result.err, "shmbox: segment '" + name + "': cannot create: already exists (File exists)\n");
  EXPECT_TRUE(shmbox_cli({"segment", "create", name, "64", "--open-existing"}).status.exited_with(EX_OK));
}

TEST_F(SegmentCliTest, MissingSegmentExits66ForEveryVerb) {
  for (const char* verb : {"read", "stat", "rm"}) {
    auto result = shmbox_cli({"segment", verb, name});
    EXPECT_TRUE(result.status.exited_with(EX_NOINPUT)) << verb;
    EXPECT_NE(result.err.find("segment '" + name + "': "), std::string::npos) << result.err;
    EXPECT_NE(result.err.find("does not exist"), std::string::npos) << result.err;
  }
  EXPECT_TRUE(shmbox_cli({"segment", "write", name, "x"}).status.exited_with(EX_NOINPUT));
}

TEST_F(SegmentCliTest, InvalidNameExits64) {
  auto result = shmbox_cli({"segment", "create", "a/b", "64"});
  EXPECT_TRUE(result.status.exited_with(EX_USAGE));
  EXPECT_EQ(result.err,
            "shmbox: segment 'a/b': name must be one path component (no '/' after the first character)\n");
}

TEST_F(SegmentCliTest, BadModeAndSizeExit64) {
  auto mode = shmbox_cli({"segment", "create", name, "64", "--mode", "999"});
  EXPECT_TRUE(mode.status.exited_with(EX_USAGE));
  EXPECT_EQ(mode.err, "shmbox: --mode '999': must be octal permission bits such as 600 or 0640\n");
  auto size = shmbox_cli({"segment", "create", name, "0"});
  EXPECT_TRUE(size.status.exited_with(EX_USAGE));
  EXPECT_EQ(size.err, "shmbox: segment '" + name + "': size must be at least 1 byte\n");
  EXPECT_TRUE(shmbox_cli({"segment", "create", name, "lots"}).status.exited_with(EX_USAGE));
}

TEST_F(SegmentCliTest, WritePastTheEndExits65AndWritesNothing) {
  ASSERT_TRUE(Segment::create(name, 4));
  auto result = shmbox_cli({"segment", "write", name, "too long"});
  EXPECT_TRUE(result.status.exited_with(EX_DATAERR));
  EXPECT_EQ(result.err, "shmbox: segment '" + name + "': 8 bytes at offset 0 do not fit in its 4 bytes\n");
  auto segment = Segment::open(name, Access::read_only);
  EXPECT_EQ(segment->bytes()[0], std::byte{0});
}

TEST_F(SegmentCliTest, ReadPastTheEndExits64) {
  ASSERT_TRUE(Segment::create(name, 4));
  auto result = shmbox_cli({"segment", "read", name, "--offset", "5"});
  EXPECT_TRUE(result.status.exited_with(EX_USAGE));
  EXPECT_EQ(result.err, "shmbox: segment '" + name + "': offset 5 is past its end (4 bytes)\n");
}

TEST_F(SegmentCliTest, PermissionDeniedExits77) {
  if (!test::running_as_root()) GTEST_SKIP() << "needs root to switch to another uid";
  ASSERT_TRUE(Segment::create(name, 4));
  // The build tree may sit where uid 65534 cannot reach (a 0700 home): run a copy.
  const test::TemporaryDirectory public_dir{0755};
  const std::string cli = public_dir.path() + "/shmbox";
  std::filesystem::copy_file(SHMBOX_CLI_PATH, cli);
  auto child = test::ChildProcess::spawn([&] {
    if (!test::drop_privileges()) return 10;
    auto result = test::run_command({cli, "segment", "read", name});
    if (!result.status.exited_with(EX_NOPERM)) return 1;
    return result.err == "shmbox: segment '" + name + "': cannot open: permission denied (Permission denied)\n" ? 0 : 2;
  });
  const auto status = child.wait();
  if (status.exited_with(10)) GTEST_SKIP() << "cannot switch to uid 65534 here";
  EXPECT_TRUE(status.exited_with(0)) << status.describe();
}

TEST_F(SegmentCliTest, NegativeNumbersAndEmptyModeAreUsageErrors) {
  EXPECT_TRUE(shmbox_cli({"segment", "create", name, "-1"}).status.exited_with(EX_USAGE));
  auto empty_mode = shmbox_cli({"segment", "create", name, "64", "--mode", ""});
  EXPECT_TRUE(empty_mode.status.exited_with(EX_USAGE));
  EXPECT_EQ(empty_mode.err, "shmbox: --mode '': must be octal permission bits such as 600 or 0640\n");
  ASSERT_TRUE(Segment::create(name, 4));
  EXPECT_TRUE(shmbox_cli({"segment", "read", name, "--length", "-1"}).status.exited_with(EX_USAGE));
  EXPECT_TRUE(shmbox_cli({"segment", "write", name, "x", "--offset", "-1"}).status.exited_with(EX_USAGE));
}

TEST(Cli, UnknownVerbIsAUsageError) {
  EXPECT_TRUE(shmbox_cli({"frobnicate"}).status.exited_with(EX_USAGE));
  EXPECT_TRUE(shmbox_cli({}).status.exited_with(EX_USAGE));
  EXPECT_TRUE(shmbox_cli({"--help"}).status.exited_with(EX_OK));
}

}  // namespace
}  // namespace shmbox
