#include "shmbox/error.hpp"

#include <gtest/gtest.h>

#include <cerrno>

namespace shmbox {
namespace {

TEST(Error, MessageJoinsObjectDetailAndErrno) {
  const Error error{Errc::not_found, "segment 'a'", "cannot open: does not exist", ENOENT};
  EXPECT_EQ(error.message(), "segment 'a': cannot open: does not exist (No such file or directory)");
  EXPECT_EQ(error.system_errno(), ENOENT);
  EXPECT_TRUE(error == Errc::not_found);
}

TEST(Error, MessageFallsBackToTheCategoryText) {
  EXPECT_EQ((Error{Errc::would_block, "", ""}.message()), "would block");
  EXPECT_EQ((Error{Errc::timeout, "mailbox 'm'", ""}.message()), "mailbox 'm': timed out");
}

TEST(Error, CodeIsInTheShmboxCategory) {
  const Error error{Errc::corrupt, "x", "bad magic"};
  EXPECT_EQ(error.code(), Errc::corrupt);
  EXPECT_STREQ(error.code().category().name(), "shmbox");
  EXPECT_EQ(error.code().message(), "corrupt");
  EXPECT_NE(error.code(), std::make_error_code(std::errc::io_error));
}

TEST(Error, EveryCodeHasItsOwnText) {
  std::set<std::string> texts;
  for (int value = static_cast<int>(Errc::invalid_name); value <= static_cast<int>(Errc::task_failed); ++value) {
    texts.insert(error_category().message(value));
  }
  EXPECT_EQ(texts.size(), static_cast<std::size_t>(Errc::task_failed));
  EXPECT_EQ(error_category().message(999), "unknown shmbox error 999");
}

}  // namespace
}  // namespace shmbox
