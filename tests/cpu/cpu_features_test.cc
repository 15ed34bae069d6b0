// The SIMD level choice (common/cpu_features.h): names, DAMOYOLO_ISA, the
// feature → level rule, agreement with the kernel's own report of the CPU
// (/proc/cpuinfo), and that the level in force is the CPU's best in every
// build — a portable (DAMOYOLO_NATIVE=OFF) build included.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>
#include <string>

#include "common/cpu_features.h"

namespace damoyolo::cpu {
namespace {

TEST(IsaLevel, NamesRoundTrip) {
  for (IsaLevel l : kIsaLevels) EXPECT_EQ(parse_isa_level(isa_level_name(l)), l);
  EXPECT_STREQ(isa_level_name(IsaLevel::kScalar), "scalar");
  EXPECT_STREQ(isa_level_name(IsaLevel::kAvx2), "avx2");
  EXPECT_STREQ(isa_level_name(IsaLevel::kAvx512), "avx512");
  EXPECT_FALSE(parse_isa_level("AVX2"));
  EXPECT_FALSE(parse_isa_level("sse2"));
  EXPECT_FALSE(parse_isa_level(""));
  EXPECT_LT(IsaLevel::kScalar, IsaLevel::kAvx2);
  EXPECT_LT(IsaLevel::kAvx2, IsaLevel::kAvx512);
}

TEST(IsaLevel, EnvironmentValueCapsTheLevel) {
  std::string note;
  // Unset, empty, auto: the CPU's best, silently.
  EXPECT_EQ(resolve_isa_level(nullptr, IsaLevel::kAvx512, &note), IsaLevel::kAvx512);
  EXPECT_EQ(note, "");
  EXPECT_EQ(resolve_isa_level("", IsaLevel::kAvx2, &note), IsaLevel::kAvx2);
  EXPECT_EQ(resolve_isa_level("auto", IsaLevel::kAvx512, &note), IsaLevel::kAvx512);
  EXPECT_EQ(note, "");
  // A lower level is taken as given.
  EXPECT_EQ(resolve_isa_level("scalar", IsaLevel::kAvx512, &note), IsaLevel::kScalar);
  EXPECT_EQ(note, "");
  EXPECT_EQ(resolve_isa_level("avx2", IsaLevel::kAvx512, &note), IsaLevel::kAvx2);
  EXPECT_EQ(resolve_isa_level("avx512", IsaLevel::kAvx512, &note), IsaLevel::kAvx512);
  EXPECT_EQ(note, "");
  // Above the CPU: the CPU's, with a note.
  EXPECT_EQ(resolve_isa_level("avx512", IsaLevel::kAvx2, &note), IsaLevel::kAvx2);
  EXPECT_NE(note.find("above what this CPU supports"), std::string::npos) << note;
  // Unknown: the CPU's best, with a note naming the choices.
  EXPECT_EQ(resolve_isa_level("sse4", IsaLevel::kAvx512, &note), IsaLevel::kAvx512);
  EXPECT_NE(note.find("DAMOYOLO_ISA=sse4 is not one of scalar, avx2, avx512"), std::string::npos) << note;
  EXPECT_EQ(resolve_isa_level("AVX2", IsaLevel::kAvx512, &note), IsaLevel::kAvx512);
  EXPECT_FALSE(note.empty());
}

TEST(IsaLevel, FeaturesToLevel) {
  CpuFeatures f;
  EXPECT_EQ(level_for(f), IsaLevel::kScalar);
  f.avx2 = true;
  EXPECT_EQ(level_for(f), IsaLevel::kScalar);  // AVX2 without FMA
  f.fma = true;
  EXPECT_EQ(level_for(f), IsaLevel::kAvx2);
  f.avx512f = f.avx512bw = f.avx512vl = f.avx512dq = true;
  EXPECT_EQ(level_for(f), IsaLevel::kAvx2);  // Skylake-X: no VBMI (the resize kernel's vpermt2b)
  f.avx512vbmi = true;
  EXPECT_EQ(level_for(f), IsaLevel::kAvx512);
  f.avx512dq = false;
  EXPECT_EQ(level_for(f), IsaLevel::kAvx2);
}

// The flags the kernel reports for the first CPU; empty when there is no
// /proc/cpuinfo (then the test below has nothing to compare with).
std::set<std::string> proc_cpuinfo_flags() {
  std::ifstream f("/proc/cpuinfo");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind("flags", 0) != 0) continue;
    std::istringstream words(line.substr(line.find(':') + 1));
    std::set<std::string> flags;
    for (std::string w; words >> w;) flags.insert(w);
    return flags;
  }
  return {};
}

TEST(IsaLevel, DetectionAgreesWithProcCpuinfo) {
  const auto flags = proc_cpuinfo_flags();
  if (flags.empty()) GTEST_SKIP() << "no flags line in /proc/cpuinfo";
#if !DAMOYOLO_X86_SIMD
  GTEST_SKIP() << "not an x86-64 build: every level runs the scalar kernels";
#endif
  const CpuFeatures& f = cpu_features();
  EXPECT_EQ(f.avx2, flags.count("avx2") == 1);
  EXPECT_EQ(f.fma, flags.count("fma") == 1);
  EXPECT_EQ(f.avx512f, flags.count("avx512f") == 1);
  EXPECT_EQ(f.avx512bw, flags.count("avx512bw") == 1);
  EXPECT_EQ(f.avx512vl, flags.count("avx512vl") == 1);
  EXPECT_EQ(f.avx512dq, flags.count("avx512dq") == 1);
  EXPECT_EQ(f.avx512vbmi, flags.count("avx512vbmi") == 1);
  CpuFeatures from_proc;
  from_proc.avx2 = flags.count("avx2"), from_proc.fma = flags.count("fma");
  from_proc.avx512f = flags.count("avx512f"), from_proc.avx512bw = flags.count("avx512bw");
  from_proc.avx512vl = flags.count("avx512vl"), from_proc.avx512dq = flags.count("avx512dq");
  from_proc.avx512vbmi = flags.count("avx512vbmi");
  EXPECT_EQ(cpu_isa_level(), level_for(from_proc));
  std::printf("CPU level %s\n", isa_level_name(cpu_isa_level()));
}

// The point of issue #12: whatever the build's -march (DAMOYOLO_NATIVE ON or
// OFF), the kernels run at the best level the CPU supports unless
// DAMOYOLO_ISA asks for less. (The per-stage tests check that each level's
// table really holds that level's kernels in this build.)
TEST(IsaLevel, InForceIsTheCpusBestUnlessLowered) {
  const char* env = std::getenv("DAMOYOLO_ISA");
  RecordProperty("isa_level", isa_level_name(isa_level()));
  if (env && *env && std::string(env) != "auto") {
    EXPECT_EQ(isa_level(), resolve_isa_level(env, cpu_isa_level()));
    GTEST_SKIP() << "DAMOYOLO_ISA=" << env << " is set: the level in force is " << isa_level_name(isa_level());
  }
  EXPECT_EQ(isa_level(), cpu_isa_level());
  EXPECT_EQ(isa_level_note(), "");
}

TEST(IsaLevel, SetIsaLevelClampsToTheCpuAndRestores) {
  const IsaLevel before = isa_level();
  {
    ScopedIsaLevel scalar(IsaLevel::kScalar);
    EXPECT_EQ(isa_level(), IsaLevel::kScalar);
    {
      ScopedIsaLevel top(IsaLevel::kAvx512);
      EXPECT_EQ(isa_level(), cpu_isa_level());  // never above what the CPU has
    }
    EXPECT_EQ(isa_level(), IsaLevel::kScalar);
  }
  EXPECT_EQ(isa_level(), before);
  EXPECT_TRUE(isa_level_supported(IsaLevel::kScalar));
  EXPECT_EQ(isa_level_supported(IsaLevel::kAvx512), cpu_isa_level() == IsaLevel::kAvx512);
}

TEST(IsaLevel, PerIsaTablePicksByLevel) {
  constexpr PerIsa<int> t{1, 2, 3};
  EXPECT_EQ(t.at(IsaLevel::kScalar), 1);
  EXPECT_EQ(t.at(IsaLevel::kAvx2), 2);
  EXPECT_EQ(t.at(IsaLevel::kAvx512), 3);
  ScopedIsaLevel scalar(IsaLevel::kScalar);
  EXPECT_EQ(t.current(), 1);
}

}  // namespace
}  // namespace damoyolo::cpu
