// A GoogleTest fixture with a fresh temporary directory per test, named after
// the test suite and removed afterwards (also when the test fails).
#pragma once

#include <gtest/gtest.h>

#include <filesystem>
#include <system_error>

#include "testutil/testutil.h"

namespace damoyolo::testing {

class TempDirTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = make_temp_dir(::testing::UnitTest::GetInstance()->current_test_info()->test_suite_name());
  }
  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  std::filesystem::path dir_;
};

}  // namespace damoyolo::testing
