// CPU feature probe and the process-wide SIMD level (scalar / AVX2 / AVX-512 / AVX-512 + BF16).
//
// The level is chosen once, the first time it is asked for: the best level that both the CPU and this build
// support, unless FUSEDSCORE_SIMD=scalar|avx2|avx512|avx512bf16 asks for another one. A requested level that is
// unavailable falls back to the best available level below it, and simd_note() says so. Tests switch levels
// with set_active_simd_level().
//
// Only baseline-ISA translation units include this header (it uses std::vector / std::string, whose inline
// instantiations must never be emitted by an ISA TU; see STYLE.md section 8).
#pragma once

#include <string>
#include <vector>

namespace fusedscore {

enum class SimdLevel : int { kScalar = 0, kAvx2 = 1, kAvx512 = 2, kAvx512Bf16 = 3 };

const char* simd_level_name(SimdLevel level);
// Parse "scalar", "avx2", "avx512", "avx512bf16"; false for anything else.
bool parse_simd_level(const std::string& name, SimdLevel* out);

// Levels this CPU and this build can run, lowest first (always starts with kScalar).
const std::vector<SimdLevel>& available_simd_levels();
bool simd_level_available(SimdLevel level);

SimdLevel active_simd_level();
// Make `level` the active one and return the previous. Throws std::invalid_argument when unavailable.
SimdLevel set_active_simd_level(SimdLevel level);
// Empty unless FUSEDSCORE_SIMD asked for something that could not be honoured (then: what and why).
std::string simd_note();

bool cpu_has_f16c();
bool cpu_has_avx512bf16();

}  // namespace fusedscore
