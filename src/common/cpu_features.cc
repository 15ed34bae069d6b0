#include "common/cpu_features.h"

#if defined(__x86_64__)
#include <cpuid.h>
#endif
#if defined(__x86_64__) && defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <mutex>

namespace damoyolo::cpu {

namespace {

CpuFeatures detect() {
  CpuFeatures f;
#if DAMOYOLO_X86_SIMD
  __builtin_cpu_init();  // harmless when already done; needed before constructors run
  f.avx2 = __builtin_cpu_supports("avx2");
  f.fma = __builtin_cpu_supports("fma");
  f.avx512f = __builtin_cpu_supports("avx512f");
  f.avx512bw = __builtin_cpu_supports("avx512bw");
  f.avx512vl = __builtin_cpu_supports("avx512vl");
  f.avx512dq = __builtin_cpu_supports("avx512dq");
  f.avx512vbmi = __builtin_cpu_supports("avx512vbmi");
  // From CPUID leaf 7 directly: clang 14's __builtin_cpu_supports knows no
  // AMX feature names. AMX also needs the OS to manage the tile state
  // (XCR0 bits 17 and 18); AVX512-VNNI the AVX-512 state, checked by avx512f.
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (__get_cpuid_count(7, 0, &a, &b, &c, &d)) {
    f.avx512vnni = f.avx512f && (c & (1u << 11)) != 0;
    unsigned a1 = 0, b1 = 0, c1 = 0, d1 = 0;
    const bool osxsave = __get_cpuid(1, &a1, &b1, &c1, &d1) && (c1 & (1u << 27)) != 0;
    uint32_t xcr0_lo = 0, xcr0_hi = 0;
    if (osxsave) __asm__("xgetbv" : "=a"(xcr0_lo), "=d"(xcr0_hi) : "c"(0));
    const bool tile_state = (xcr0_lo & (3u << 17)) == (3u << 17);
    f.amx_tile = tile_state && (d & (1u << 24)) != 0;
    f.amx_int8 = f.amx_tile && (d & (1u << 25)) != 0;
  }
#endif
  return f;
}

// The level in force, -1 until the first isa_level() / set_isa_level().
std::atomic<int> g_level{-1};
std::string g_note;  // written once, inside the call_once below

int init_level() {
  static std::once_flag once;
  std::call_once(once, [] {
    const IsaLevel l = resolve_isa_level(std::getenv("DAMOYOLO_ISA"), cpu_isa_level(), &g_note);
    g_level.store(static_cast<int>(l), std::memory_order_relaxed);
    if (!g_note.empty()) std::fprintf(stderr, "damoyolo: %s\n", g_note.c_str());
  });
  return g_level.load(std::memory_order_relaxed);
}

}  // namespace

const char* isa_level_name(IsaLevel level) {
  switch (level) {
    case IsaLevel::kScalar: return "scalar";
    case IsaLevel::kAvx2: return "avx2";
    case IsaLevel::kAvx512: return "avx512";
  }
  return "?";
}

std::optional<IsaLevel> parse_isa_level(std::string_view name) {
  for (IsaLevel l : kIsaLevels)
    if (name == isa_level_name(l)) return l;
  return std::nullopt;
}

const CpuFeatures& cpu_features() {
  static const CpuFeatures f = detect();
  return f;
}

IsaLevel level_for(const CpuFeatures& f) {
  if (!f.avx2 || !f.fma) return IsaLevel::kScalar;
  if (f.avx512f && f.avx512bw && f.avx512vl && f.avx512dq && f.avx512vbmi) return IsaLevel::kAvx512;
  return IsaLevel::kAvx2;
}

IsaLevel cpu_isa_level() {
  static const IsaLevel l = level_for(cpu_features());
  return l;
}

IsaLevel resolve_isa_level(const char* env_value, IsaLevel cpu, std::string* note) {
  if (note) note->clear();
  if (!env_value || !*env_value || std::string_view(env_value) == "auto") return cpu;
  const std::optional<IsaLevel> want = parse_isa_level(env_value);
  if (!want) {
    if (note)
      *note = std::string("DAMOYOLO_ISA=") + env_value + " is not one of scalar, avx2, avx512, auto; using " +
              isa_level_name(cpu) + ", this CPU's best";
    return cpu;
  }
  if (*want > cpu) {
    if (note)
      *note = std::string("DAMOYOLO_ISA=") + env_value + " is above what this CPU supports; using " +
              isa_level_name(cpu);
    return cpu;
  }
  return *want;
}

IsaLevel isa_level() {
  const int l = g_level.load(std::memory_order_relaxed);
  return static_cast<IsaLevel>(l >= 0 ? l : init_level());
}

std::string isa_level_note() {
  init_level();
  return g_note;
}

IsaLevel set_isa_level(IsaLevel level) {
  init_level();
  if (level > cpu_isa_level()) level = cpu_isa_level();
  return static_cast<IsaLevel>(g_level.exchange(static_cast<int>(level), std::memory_order_relaxed));
}

bool request_amx() {
#if defined(__x86_64__) && defined(__linux__)
  static const bool granted = [] {
    if (!cpu_features().amx_tile) return false;
    // ARCH_REQ_XCOMP_PERM (0x1023) for XFEATURE_XTILEDATA (18): Linux 5.16+
    // keeps the 8 KiB tile state off until a process asks for it.
    return syscall(SYS_arch_prctl, 0x1023, 18) == 0;
  }();
  return granted;
#else
  return false;
#endif
}

}  // namespace damoyolo::cpu
