// MaxSim leaf kernels for AVX2 + FMA + F16C. Compiled with those flags for this file only: nothing here runs
// unless common/simd.cpp found the features at run time. No static initialisers, no std templates.
#include <immintrin.h>

#include <cstdint>

#include "cpu/maxsim.h"

namespace fusedscore {
namespace cpu {
namespace avx2 {

struct V {
  using Vec = __m256;
  using QVec = __m256;
  using DElem = float;
  static constexpr int kLanes = 8;
  static constexpr int kStep = 1;
  static constexpr bool kPairs = false;
  static inline Vec zero() { return _mm256_setzero_ps(); }
  static inline QVec loadq(const float* p) { return _mm256_loadu_ps(p); }
  static inline Vec bcast(const float* p) { return _mm256_broadcast_ss(p); }
  static inline Vec dot(Vec acc, QVec q, Vec b) { return _mm256_fmadd_ps(q, b, acc); }
  static inline Vec max(Vec a, Vec b) { return _mm256_max_ps(a, b); }
  static inline Vec load_f32(const float* p) { return _mm256_loadu_ps(p); }
  static inline void store_f32(float* p, Vec v) { _mm256_storeu_ps(p, v); }
  static inline Vec fma_f32(Vec a, Vec b, Vec c) { return _mm256_fmadd_ps(a, b, c); }
  static inline Vec bcast_tail(const float* p) { return _mm256_broadcast_ss(p); }
};

// 16 ymm registers: R * NV accumulators + NV query vectors + NV running maxima + one broadcast.
template <int NV>
constexpr int kRows = NV == 1 ? 8 : 4;
constexpr int kMaxNV = 2;

#include "cpu/maxsim_impl-inl.h"

void to_f32(const void* src, DType dtype, int64_t n, float* dst) {
  const uint16_t* s = static_cast<const uint16_t*>(src);
  int64_t i = 0;
  if (dtype == DType::kBF16) {
    for (; i + 8 <= n; i += 8) {
      const __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(s + i)));
      _mm256_storeu_ps(dst + i, _mm256_castsi256_ps(_mm256_slli_epi32(w, 16)));
    }
    for (; i < n; ++i) {
      const __m128i w = _mm_cvtsi32_si128(static_cast<int>(static_cast<uint32_t>(s[i]) << 16));
      dst[i] = _mm_cvtss_f32(_mm_castsi128_ps(w));
    }
  } else {
    for (; i + 8 <= n; i += 8)
      _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(s + i))));
    for (; i < n; ++i) dst[i] = _cvtsh_ss(s[i]);
  }
}

}  // namespace avx2

MaxSimKernels maxsim_kernels_avx2() {
  return {"avx2", avx2::V::kLanes, avx2::V::kLanes * avx2::kMaxNV, &avx2::tile_max, &avx2::to_f32, nullptr};
}

}  // namespace cpu
}  // namespace fusedscore
