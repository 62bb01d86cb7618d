// Test-name helpers for suites run once per buffering mode.
#pragma once

#include <gtest/gtest.h>

#include <string>

#include "shmbox/mailbox.hpp"

namespace shmbox::test {

// For INSTANTIATE_TEST_SUITE_P over ::testing::Values of Buffering.
inline std::string buffering_test_name(const ::testing::TestParamInfo<Buffering>& info) {
  return shmbox::buffering_name(info.param);
}

inline const auto all_bufferings = ::testing::Values(Buffering::bounded, Buffering::zero, Buffering::unbounded);
// Those that queue a message without a receiver waiting.
inline const auto queueing_bufferings = ::testing::Values(Buffering::bounded, Buffering::unbounded);

}  // namespace shmbox::test
