// Sparse dot, dense-row accumulation for AVX2 + FMA (flags for this file only; used only when
// common/simd.cpp found the features at run time). No static initialisers, no std templates.
#include <immintrin.h>

#include <cstdint>

#include "cpu/sparse_dot.h"

namespace fusedscore {
namespace cpu {
namespace {

// NV vectors of the document's score row stay in registers while every matching dense term adds its weight
// row: NV independent FMA chains, one FMA (with its load) per 8 queries per term.
template <int NV>
void rows_block(float* row, const float* W, int64_t ldw, const int32_t* rows, const float* w, int64_t n) {
  constexpr int64_t kW = 8;
  __m256 acc[NV];
  for (int v = 0; v < NV; ++v) acc[v] = _mm256_loadu_ps(row + v * kW);
  for (int64_t h = 0; h < n; ++h) {
    const float* src = W + rows[h] * ldw;
    const __m256 b = _mm256_set1_ps(w[h]);
    for (int v = 0; v < NV; ++v) acc[v] = _mm256_fmadd_ps(_mm256_loadu_ps(src + v * kW), b, acc[v]);
  }
  for (int v = 0; v < NV; ++v) _mm256_storeu_ps(row + v * kW, acc[v]);
}

}  // namespace

void sparse_dense_rows_avx2(float* row, const float* W, int64_t ldw, int64_t lanes, const int32_t* rows,
                       const float* w, int64_t n) {
  constexpr int64_t kW = 8;
  for (int64_t c = 0; c < lanes;) {
    const int64_t left = (lanes - c) / kW;
    const int nv = left < 8 ? static_cast<int>(left) : 8;
    switch (nv) {
      case 1: rows_block<1>(row + c, W + c, ldw, rows, w, n); break;
      case 2: rows_block<2>(row + c, W + c, ldw, rows, w, n); break;
      case 3: rows_block<3>(row + c, W + c, ldw, rows, w, n); break;
      case 4: rows_block<4>(row + c, W + c, ldw, rows, w, n); break;
      case 5: rows_block<5>(row + c, W + c, ldw, rows, w, n); break;
      case 6: rows_block<6>(row + c, W + c, ldw, rows, w, n); break;
      case 7: rows_block<7>(row + c, W + c, ldw, rows, w, n); break;
      default: rows_block<8>(row + c, W + c, ldw, rows, w, n); break;
    }
    c += nv * kW;
  }
}

}  // namespace cpu
}  // namespace fusedscore
