// The table of optimisation switches (damoyolo/optimizations.h): every row
// reads and writes its own field and no other, names are found, a
// SessionOptions refuses the Detector's switches, all_off() turns off all.
// (That every struct field has a row is checked at compile time, in the header.)
#include <gtest/gtest.h>

#include <array>
#include <bit>
#include <set>
#include <string>

#include "damoyolo/detector.h"
#include "damoyolo/optimizations.h"

namespace damoyolo {
namespace {

// How many of the options' switch bytes are off, read from the raw structs
// rather than through the table.
int fields_off(const DetectorOptions& o) {
  int off = 0;
  for (bool b : std::bit_cast<std::array<bool, kSessionSwitchCount>>(o.session.opt)) off += !b;
  for (bool b : std::bit_cast<std::array<bool, kDetectorSwitchCount>>(static_cast<const DetectorOptimizations&>(o)))
    off += !b;
  return off;
}

TEST(OptimizationSwitches, EveryRowTurnsOffExactlyItsOwnField) {
  std::set<std::string> seen;
  for (const OptimizationSwitch& s : optimization_switches()) {
    DetectorOptions o;
    EXPECT_TRUE(optimization_enabled(o, s)) << s.name << " is on by default";
    set_optimization(o, s, false);
    EXPECT_FALSE(optimization_enabled(o, s)) << s.name;
    EXPECT_EQ(fields_off(o), 1) << s.name;
    for (const OptimizationSwitch& t : optimization_switches()) {
      if (&t != &s) {
        EXPECT_TRUE(optimization_enabled(o, t)) << s.name << " off turned " << t.name << " off too";
      }
    }
    set_optimization(o, s, true);
    EXPECT_EQ(fields_off(o), 0) << s.name;
    EXPECT_FALSE(s.description.empty()) << s.name;
    EXPECT_FALSE(s.when_off.empty()) << s.name;
    EXPECT_TRUE(seen.insert(std::string(s.name)).second) << s.name;
  }
  EXPECT_EQ(seen.size(), kSessionSwitchCount + kDetectorSwitchCount);
}

TEST(OptimizationSwitches, RowsPointAtTheFieldsOfTheirName) {
  // The names are the fields' names: spot-check the ones older code sets directly.
  DetectorOptions o;
  o.session.opt.fuse_head = false;
  o.fast_nms = false;
  EXPECT_FALSE(optimization_enabled(o, *find_optimization("fuse_head")));
  EXPECT_FALSE(optimization_enabled(o, *find_optimization("fast_nms")));
  EXPECT_EQ(fields_off(o), 2);
  EXPECT_EQ(find_optimization("constant_folding")->session_flag, &OptimizationOptions::constant_folding);
  EXPECT_EQ(find_optimization("huge_pages")->session_flag, &OptimizationOptions::huge_pages);
  EXPECT_EQ(find_optimization("simd_preprocess")->detector_flag, &DetectorOptimizations::simd_preprocess);
  EXPECT_EQ(find_optimization("warp_drive"), nullptr);
}

TEST(OptimizationSwitches, ScopesSplitTheTable) {
  const auto session = optimization_switches(OptimizationScope::kSession);
  const auto detector = optimization_switches(OptimizationScope::kDetector);
  EXPECT_EQ(session.size() + detector.size(), optimization_switches().size());
  for (const auto& s : session) EXPECT_EQ(s.scope, OptimizationScope::kSession) << s.name;
  for (const auto& s : detector) EXPECT_EQ(s.scope, OptimizationScope::kDetector) << s.name;
  EXPECT_EQ(optimization_scope_name(OptimizationScope::kSession), "session");
  EXPECT_EQ(optimization_scope_name(OptimizationScope::kDetector), "detector");
}

TEST(OptimizationSwitches, SetByNameAndSessionOptionsRefuseDetectorSwitches) {
  DetectorOptions d;
  EXPECT_TRUE(set_optimization(d, "memory_planning", false));
  EXPECT_FALSE(d.session.opt.memory_planning);
  EXPECT_TRUE(set_optimization(d, "simd_preprocess", false));
  EXPECT_FALSE(d.simd_preprocess);
  EXPECT_FALSE(set_optimization(d, "warp_drive", false));
  EXPECT_EQ(fields_off(d), 2);

  SessionOptions s;
  EXPECT_TRUE(set_optimization(s, "blocked_layout", false));
  EXPECT_FALSE(s.opt.blocked_layout);
  EXPECT_FALSE(set_optimization(s, "fast_nms", false));  // a Session has no NMS
  EXPECT_FALSE(set_optimization(s, *find_optimization("simd_preprocess"), false));
  EXPECT_FALSE(set_optimization(s, "warp_drive", false));
  OptimizationOptions want;
  want.blocked_layout = false;
  EXPECT_EQ(s.opt, want);
}

TEST(OptimizationSwitches, AllOffTurnsOffEverySwitch) {
  // The brace list this replaced, {true, false, false, false, false, false, false},
  // left constant_folding and huge_pages on.
  const OptimizationOptions off = OptimizationOptions::all_off();
  for (const auto& s : optimization_switches(OptimizationScope::kSession)) EXPECT_FALSE(off.*(s.session_flag)) << s.name;
  const DetectorOptimizations doff = DetectorOptimizations::all_off();
  for (const auto& s : optimization_switches(OptimizationScope::kDetector))
    EXPECT_FALSE(doff.*(s.detector_flag)) << s.name;

  DetectorOptions d;
  set_all_optimizations(d, false);
  EXPECT_EQ(fields_off(d), static_cast<int>(optimization_switches().size()));
  EXPECT_EQ(d.session.opt, off);
  EXPECT_EQ(static_cast<const DetectorOptimizations&>(d), doff);
  set_all_optimizations(d, true);
  EXPECT_EQ(fields_off(d), 0);

  SessionOptions s;
  set_all_optimizations(s, false);
  EXPECT_EQ(s.opt, off);
}

}  // namespace
}  // namespace damoyolo
