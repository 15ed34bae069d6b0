#include "common/cpu_features.h"

#if defined(__x86_64__) && defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif

#include <atomic>
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
  f.avx512vnni = __builtin_cpu_supports("avx512vnni");
  f.amx_tile = __builtin_cpu_supports("amx-tile");
  f.amx_int8 = __builtin_cpu_supports("amx-int8");
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
