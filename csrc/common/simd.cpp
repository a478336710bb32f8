// Runtime SIMD selection. Compiled for the baseline ISA; it only *asks* the CPU what it supports.
#include "common/simd.h"

#include <atomic>
#include <cstdlib>
#include <stdexcept>

namespace fusedscore {
namespace {

struct CpuFeatures {
  bool avx2 = false, fma = false, f16c = false;
  bool avx512 = false;  // f + bw + vl + dq: what maxsim_avx512.cpp is compiled for
  bool avx512bf16 = false;
};

CpuFeatures probe() {
  CpuFeatures f;
#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
  __builtin_cpu_init();
  // libgcc/compiler-rt also check that the OS saves the wide registers (XCR0) for the AVX/AVX-512 features.
  f.avx2 = __builtin_cpu_supports("avx2");
  f.fma = __builtin_cpu_supports("fma");
#if defined(__clang__) || __GNUC__ >= 11
  f.f16c = __builtin_cpu_supports("f16c");
#endif
  f.avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
             __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
#if defined(__clang__) || __GNUC__ >= 11
  f.avx512bf16 = __builtin_cpu_supports("avx512bf16");
#endif
#endif
  return f;
}

const CpuFeatures& features() {
  static const CpuFeatures f = probe();
  return f;
}

std::vector<SimdLevel> compute_available() {
  std::vector<SimdLevel> levels{SimdLevel::kScalar};
#if defined(FUSEDSCORE_X86_TUS)
  const CpuFeatures& f = features();
  // the AVX2 and AVX-512 TUs are compiled with -mfma -mf16c, so both are required at run time too
  if (f.avx2 && f.fma && f.f16c) levels.push_back(SimdLevel::kAvx2);
  if (f.avx2 && f.fma && f.f16c && f.avx512) levels.push_back(SimdLevel::kAvx512);
#if defined(FUSEDSCORE_AVX512BF16_TU)
  if (f.avx2 && f.fma && f.f16c && f.avx512 && f.avx512bf16) levels.push_back(SimdLevel::kAvx512Bf16);
#endif
#endif
  return levels;
}

struct ActiveState {
  std::atomic<int> level{0};
  std::string note;  // written once, during construction
};

ActiveState& state() {
  static ActiveState* s = [] {
    auto* st = new ActiveState();  // leaked on purpose: usable from any thread until process exit
    const auto& avail = available_simd_levels();
    SimdLevel chosen = avail.back();
    if (const char* env = std::getenv("FUSEDSCORE_SIMD"); env != nullptr && *env != '\0') {
      SimdLevel want;
      if (!parse_simd_level(env, &want)) {
        st->note = std::string("FUSEDSCORE_SIMD=") + env +
                   " is not one of scalar, avx2, avx512, avx512bf16; using " + simd_level_name(chosen);
      } else {
        // the best available level at or below the requested one (scalar is always there)
        chosen = SimdLevel::kScalar;
        for (SimdLevel l : avail)
          if (static_cast<int>(l) <= static_cast<int>(want)) chosen = l;
        if (chosen != want)
          st->note = std::string("FUSEDSCORE_SIMD=") + env + " is unavailable on this CPU/build; using " +
                     simd_level_name(chosen);
      }
    }
    st->level.store(static_cast<int>(chosen));
    return st;
  }();
  return *s;
}

}  // namespace

const char* simd_level_name(SimdLevel level) {
  switch (level) {
    case SimdLevel::kScalar: return "scalar";
    case SimdLevel::kAvx2: return "avx2";
    case SimdLevel::kAvx512: return "avx512";
    case SimdLevel::kAvx512Bf16: return "avx512bf16";
  }
  return "unknown";
}

bool parse_simd_level(const std::string& name, SimdLevel* out) {
  for (SimdLevel l : {SimdLevel::kScalar, SimdLevel::kAvx2, SimdLevel::kAvx512, SimdLevel::kAvx512Bf16}) {
    if (name == simd_level_name(l)) {
      *out = l;
      return true;
    }
  }
  return false;
}

const std::vector<SimdLevel>& available_simd_levels() {
  static const std::vector<SimdLevel> levels = compute_available();
  return levels;
}

bool simd_level_available(SimdLevel level) {
  for (SimdLevel l : available_simd_levels())
    if (l == level) return true;
  return false;
}

SimdLevel active_simd_level() { return static_cast<SimdLevel>(state().level.load(std::memory_order_relaxed)); }

SimdLevel set_active_simd_level(SimdLevel level) {
  if (!simd_level_available(level)) {
    std::string avail;
    for (SimdLevel l : available_simd_levels()) avail += std::string(avail.empty() ? "" : ", ") + simd_level_name(l);
    throw std::invalid_argument(std::string("set_simd: level must be one available on this CPU/build (") + avail +
                                "), got '" + simd_level_name(level) + "'");
  }
  return static_cast<SimdLevel>(state().level.exchange(static_cast<int>(level)));
}

std::string simd_note() { return state().note; }

bool cpu_has_f16c() { return features().f16c; }
bool cpu_has_avx512bf16() { return features().avx512bf16; }

}  // namespace fusedscore
