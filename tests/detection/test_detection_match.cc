// The tests' detection matcher (testutil/detection_match.h) is two-sided: a
// box one list has and the other lacks fails the comparison whichever list
// has it.
#include <gtest/gtest.h>

#include "testutil/detection_match.h"

namespace damoyolo {
namespace {

using testing::match_detections;

const Detection kA{10, 10, 50, 50, 0.9f, 1};
const Detection kB{100, 20, 140, 90, 0.7f, 2};
const Detection kC{200, 200, 260, 230, 0.6f, 1};

TEST(DetectionMatch, SameListsMatchFully) {
  auto m = match_detections({kA, kB}, {kB, kA});  // never by position
  EXPECT_EQ(m.matched, 2u);
  EXPECT_EQ(m.missing(), 0u);
  EXPECT_EQ(m.extra(), 0u);
  EXPECT_DOUBLE_EQ(m.fraction(), 1.0);
}

TEST(DetectionMatch, AnExtraBoxFailsAsSurelyAsAMissingOne) {
  auto extra = match_detections({kA, kB}, {kA, kB, kC});
  EXPECT_EQ(extra.missing(), 0u);
  EXPECT_EQ(extra.extra(), 1u);
  EXPECT_DOUBLE_EQ(extra.recall(), 1.0);
  EXPECT_DOUBLE_EQ(extra.precision(), 2.0 / 3.0);
  EXPECT_DOUBLE_EQ(extra.fraction(), 2.0 / 3.0);
  EXPECT_NE(extra.first_extra.find("class 1 score 0.6"), std::string::npos) << extra.first_extra;
  EXPECT_NE(extra.describe().find("extra 1"), std::string::npos) << extra.describe();

  auto missing = match_detections({kA, kB, kC}, {kA, kB});
  EXPECT_EQ(missing.missing(), 1u);
  EXPECT_EQ(missing.extra(), 0u);
  EXPECT_DOUBLE_EQ(missing.fraction(), 2.0 / 3.0);
  EXPECT_NE(missing.first_unmatched.find("class 1 score 0.6"), std::string::npos) << missing.first_unmatched;

  EXPECT_DOUBLE_EQ(match_detections({}, {}).fraction(), 1.0);
  EXPECT_DOUBLE_EQ(match_detections({}, {kA}).fraction(), 0.0);
  EXPECT_DOUBLE_EQ(match_detections({kA}, {}).fraction(), 0.0);
}

TEST(DetectionMatch, ClassScoreAndIouAreRequiredAndTheBestOverlapPairs) {
  Detection other_class = kA;
  other_class.class_id = 3;
  Detection other_score = kA;
  other_score.score += 1e-3f;
  Detection shifted = kA;
  shifted.x1 += 4, shifted.x2 += 4;  // IoU 0.82
  for (const Detection& d : {other_class, other_score, shifted}) {
    auto m = match_detections({kA}, {d});
    EXPECT_EQ(m.missing(), 1u);
    EXPECT_EQ(m.extra(), 1u);
  }
  // Two candidates within the bounds: the exact one pairs, the other is extra.
  Detection near = kA;
  near.x2 += 0.1f;  // IoU 0.9975
  auto m = match_detections({kA}, {near, kA});
  EXPECT_EQ(m.matched, 1u);
  EXPECT_EQ(m.extra(), 1u);
  EXPECT_NE(m.first_extra.find("50.1"), std::string::npos) << m.first_extra;
}

}  // namespace
}  // namespace damoyolo
