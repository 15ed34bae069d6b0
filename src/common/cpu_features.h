// The one way damoyolo picks SIMD code: at run time, from what the CPU has.
//
// Every hand-vectorised kernel (pre-processing rows, the head decode, the
// score scan, the NMS IoU test, the CLI's FMA-peak loop) exists once per
// level below, each compiled for its level with a target attribute
// (DAMOYOLO_TARGET_AVX2 / DAMOYOLO_TARGET_AVX512), whatever the build's
// -march. A caller asks isa_level() once per operation (or once per object,
// like the Preprocessor) and calls the kernel for that level through a
// function pointer. Nothing decides behaviour with #if __AVX512F__, so a
// portable build (DAMOYOLO_NATIVE=OFF) runs the same kernels as a native one.
//
// Levels, lowest first:
//   scalar  plain C++ (the compiler may still vectorise it for the build's own
//           baseline: SSE2 in a portable build, everything in a native one)
//   avx2    AVX2 + FMA                          (Haswell, Zen 1 and later)
//   avx512  AVX-512 F/BW/VL/DQ + VBMI + AVX2/FMA (Ice Lake, Sapphire Rapids, Zen 4)
// Every level of a library kernel computes the same bits as scalar (the tests
// run each one at every level the machine supports and compare exactly).
//
// DAMOYOLO_ISA=scalar|avx2|avx512 in the environment (read once, at first
// use) caps the level, e.g. to check the lower paths on an AVX-512 machine;
// a level above the CPU's is lowered to the CPU's, an unknown value is
// ignored with a warning on stderr. Unset, empty or "auto": the CPU's best.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace damoyolo::cpu {

enum class IsaLevel : int { kScalar = 0, kAvx2 = 1, kAvx512 = 2 };
inline constexpr IsaLevel kIsaLevels[] = {IsaLevel::kScalar, IsaLevel::kAvx2, IsaLevel::kAvx512};

// "scalar", "avx2", "avx512".
const char* isa_level_name(IsaLevel level);
// The inverse (exact, lower case); nullopt for anything else.
std::optional<IsaLevel> parse_isa_level(std::string_view name);

// What the CPU (and the OS: register state saved) supports, via
// __builtin_cpu_supports. False everywhere off x86-64.
struct CpuFeatures {
  bool avx2 = false, fma = false;
  bool avx512f = false, avx512bw = false, avx512vl = false, avx512dq = false, avx512vbmi = false;
  // The integer dot-product units INT8 inference runs on (not ISA levels of
  // the dispatched kernels: oneDNN picks its own). AMX also needs the OS's
  // permission per process (cpu::request_amx()).
  bool avx512vnni = false, amx_tile = false, amx_int8 = false;
};
const CpuFeatures& cpu_features();
// Asks Linux for the AMX tile state (arch_prctl ARCH_REQ_XCOMP_PERM); true
// when AMX instructions may run in this process. Once per process.
bool request_amx();
// The best level those features allow.
IsaLevel level_for(const CpuFeatures& f);
// level_for(cpu_features()), computed once.
IsaLevel cpu_isa_level();
inline bool isa_level_supported(IsaLevel level) { return level <= cpu_isa_level(); }

// The level given DAMOYOLO_ISA's value (nullptr: unset) on a CPU whose best is
// `cpu`; `note` (if not null) gets a sentence when the value was not used as
// given (unknown, or above the CPU), else is cleared.
IsaLevel resolve_isa_level(const char* env_value, IsaLevel cpu, std::string* note = nullptr);

// The level the dispatched kernels use now: resolve_isa_level(getenv("DAMOYOLO_ISA"),
// cpu_isa_level()) at first use, or what set_isa_level set since. One relaxed
// atomic load.
IsaLevel isa_level();
// Why DAMOYOLO_ISA was not honoured as given (unknown value, above the CPU);
// empty otherwise (the normal case).
std::string isa_level_note();
// Sets the level for what runs from now on, lowered to cpu_isa_level();
// returns the previous one. For tests (every level on one machine) and
// benchmarks; operations already running keep the kernels they picked.
IsaLevel set_isa_level(IsaLevel level);

// Calls with the level set for the scope: ScopedIsaLevel s(IsaLevel::kAvx2);
class ScopedIsaLevel {
 public:
  explicit ScopedIsaLevel(IsaLevel level) : previous_(set_isa_level(level)) {}
  ~ScopedIsaLevel() { set_isa_level(previous_); }
  ScopedIsaLevel(const ScopedIsaLevel&) = delete;
  ScopedIsaLevel& operator=(const ScopedIsaLevel&) = delete;

 private:
  IsaLevel previous_;
};

// One kernel per level; at(level) picks it. Tables are constant-initialised,
// so a call through one costs a load and an indirect call.
template <class Fn>
struct PerIsa {
  Fn scalar, avx2, avx512;
  Fn at(IsaLevel level) const {
    switch (level) {
      case IsaLevel::kAvx512: return avx512;
      case IsaLevel::kAvx2: return avx2;
      case IsaLevel::kScalar: break;
    }
    return scalar;
  }
  Fn current() const { return at(isa_level()); }
};

}  // namespace damoyolo::cpu

// Target attributes of the kernels' levels. Used only on x86-64 GCC/clang
// (DAMOYOLO_X86_SIMD); elsewhere every table holds the scalar kernel thrice.
// The feature lists match level_for(): a kernel may use exactly these.
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define DAMOYOLO_X86_SIMD 1
#define DAMOYOLO_TARGET_AVX2 __attribute__((target("avx2,fma")))
#define DAMOYOLO_TARGET_AVX512 \
  __attribute__((target("avx2,fma,avx512f,avx512bw,avx512vl,avx512dq,avx512vbmi")))
#else
#define DAMOYOLO_X86_SIMD 0
#endif
