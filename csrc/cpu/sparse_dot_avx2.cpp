// Sparse dot, dense-row accumulation for AVX2 + FMA (flags for this file only; used only when
// common/simd.cpp found the features at run time). No static initialisers, no std templates.
#include <immintrin.h>

#include <cstdint>

#include "cpu/sparse_dot.h"

namespace fusedscore {
namespace cpu {
namespace avx2 {

struct SV {
  using Vec = __m256;
  static constexpr int64_t kLanes = 8;
  static inline Vec load(const float* p) { return _mm256_loadu_ps(p); }
  static inline void store(float* p, Vec v) { _mm256_storeu_ps(p, v); }
  static inline Vec set1(float x) { return _mm256_set1_ps(x); }
  static inline Vec fma(Vec a, Vec b, Vec c) { return _mm256_fmadd_ps(a, b, c); }
};

#include "cpu/sparse_dot_impl-inl.h"

}  // namespace avx2

void sparse_dense_rows_avx2(float* row, const float* W, int64_t ldw, int64_t lanes, const int32_t* rows,
                       const float* w, int64_t n) {
  avx2::dense_rows(row, W, ldw, lanes, rows, w, n);
}

}  // namespace cpu
}  // namespace fusedscore
