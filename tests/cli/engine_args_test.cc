// tools/cli/options.h: --disable's names become the options the library
// takes, through the library's table of switches (no hand mapping to go stale).
#include <gtest/gtest.h>

#include "damoyolo/optimizations.h"
#include "options.h"

namespace {

using damoyolo::OptimizationScope;
using damoyolo::OptimizationSwitch;
using damoyolo::optimization_switches;

TEST(EngineArgs, EveryDisableNameTurnsOffItsSwitchAndNoOther) {
  for (const OptimizationSwitch& s : optimization_switches()) {
    damoyolo::cli::EngineArgs a;
    a.disable = {std::string(s.name)};
    const damoyolo::DetectorOptions d = a.detector_options();
    const damoyolo::SessionOptions so = a.session_options();
    for (const OptimizationSwitch& t : optimization_switches()) {
      EXPECT_EQ(damoyolo::optimization_enabled(d, t), &t != &s) << "--disable " << s.name << ": " << t.name;
      if (t.scope == OptimizationScope::kSession) {
        EXPECT_EQ(so.opt.*(t.session_flag), &t != &s) << "--disable " << s.name << ": " << t.name;
      }
    }
  }
}

TEST(EngineArgs, NamesAreTheTablesAndDetectorSwitchesOnlyWhereADetectorRuns) {
  const auto session = damoyolo::cli::EngineArgs::switch_names(false);
  const auto all = damoyolo::cli::EngineArgs::switch_names(true);
  ASSERT_EQ(all.size(), optimization_switches().size());
  ASSERT_EQ(session.size(), optimization_switches(OptimizationScope::kSession).size());
  for (size_t i = 0; i < all.size(); ++i) EXPECT_EQ(all[i], optimization_switches()[i].name);
  for (size_t i = 0; i < session.size(); ++i) EXPECT_EQ(session[i], all[i]);
  // A command without a Detector rejects fast_nms at parse time.
  CLI::App app;
  damoyolo::cli::EngineArgs a;
  a.add_to(&app, /*with_batch=*/false, /*with_detector=*/false);
  EXPECT_THROW(app.parse(std::vector<std::string>{"fast_nms", "--disable"}), CLI::ValidationError);
  CLI::App app2;
  damoyolo::cli::EngineArgs b;
  b.add_to(&app2, /*with_batch=*/false, /*with_detector=*/true);
  EXPECT_NO_THROW(app2.parse(std::vector<std::string>{"fuse_head,fast_nms", "--disable"}));
  EXPECT_FALSE(b.detector_options().fast_nms);
  EXPECT_FALSE(b.detector_options().session.opt.fuse_head);
}

}  // namespace
