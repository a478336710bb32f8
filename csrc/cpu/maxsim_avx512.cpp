// MaxSim leaf kernels for AVX-512 (F, BW, VL, DQ) + FMA + F16C. Compiled with those flags for this file only:
// nothing here runs unless common/simd.cpp found the features at run time. No static initialisers, no std
// templates (an ISA TU must not emit inline code that baseline TUs could end up calling).
#include <immintrin.h>

#include <cstdint>

#include "cpu/maxsim.h"

namespace fusedscore {
namespace cpu {
namespace avx512 {

struct V {
  using Vec = __m512;
  using QVec = __m512;
  using DElem = float;
  static constexpr int kLanes = 16;
  static constexpr int kStep = 1;
  static constexpr bool kPairs = false;
  static inline Vec zero() { return _mm512_setzero_ps(); }
  static inline QVec loadq(const float* p) { return _mm512_loadu_ps(p); }
  static inline Vec bcast(const float* p) { return _mm512_set1_ps(*p); }
  static inline Vec dot(Vec acc, QVec q, Vec b) { return _mm512_fmadd_ps(q, b, acc); }
  static inline Vec max(Vec a, Vec b) { return _mm512_max_ps(a, b); }
  static inline Vec load_f32(const float* p) { return _mm512_loadu_ps(p); }
  static inline void store_f32(float* p, Vec v) { _mm512_storeu_ps(p, v); }
  static inline Vec fma_f32(Vec a, Vec b, Vec c) { return _mm512_fmadd_ps(a, b, c); }
  static inline Vec bcast_tail(const float* p) { return _mm512_set1_ps(*p); }
};

// Document rows per register block for NV query vectors: R * NV accumulators + NV query vectors + NV running
// maxima stay within the 32 zmm registers, with R * NV >= 16 independent FMA chains to cover the FMA latency.
template <int NV>
constexpr int kRows = NV == 1 ? 16 : NV == 2 ? 12 : NV == 3 ? 8 : 6;
constexpr int kMaxNV = 4;

#include "cpu/maxsim_impl-inl.h"

void to_f32(const void* src, DType dtype, int64_t n, float* dst) {
  const uint16_t* s = static_cast<const uint16_t*>(src);
  int64_t i = 0;
  if (dtype == DType::kBF16) {
    for (; i + 16 <= n; i += 16) {
      const __m512i w = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(s + i)));
      _mm512_storeu_ps(dst + i, _mm512_castsi512_ps(_mm512_slli_epi32(w, 16)));
    }
    if (i < n) {
      const __mmask16 m = static_cast<__mmask16>((1u << (n - i)) - 1u);
      const __m512i w = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, s + i));
      _mm512_mask_storeu_ps(dst + i, m, _mm512_castsi512_ps(_mm512_slli_epi32(w, 16)));
    }
  } else {
    for (; i + 16 <= n; i += 16)
      _mm512_storeu_ps(dst + i, _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(s + i))));
    if (i < n) {
      const __mmask16 m = static_cast<__mmask16>((1u << (n - i)) - 1u);
      _mm512_mask_storeu_ps(dst + i, m, _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, s + i)));
    }
  }
}

}  // namespace avx512

MaxSimKernels maxsim_kernels_avx512() {
  return {"avx512", avx512::V::kLanes, avx512::V::kLanes * avx512::kMaxNV, &avx512::tile_max, &avx512::to_f32,
          nullptr};
}

}  // namespace cpu
}  // namespace fusedscore
