// Sparse dot, dense-row accumulation for AVX-512 F/BW/VL/DQ + FMA (flags for this file only; used only when
// common/simd.cpp found the features at run time). No static initialisers, no std templates.
#include <immintrin.h>

#include <cstdint>

#include "cpu/sparse_dot.h"

namespace fusedscore {
namespace cpu {
namespace avx512 {

struct SV {
  using Vec = __m512;
  static constexpr int64_t kLanes = 16;
  static inline Vec load(const float* p) { return _mm512_loadu_ps(p); }
  static inline void store(float* p, Vec v) { _mm512_storeu_ps(p, v); }
  static inline Vec set1(float x) { return _mm512_set1_ps(x); }
  static inline Vec fma(Vec a, Vec b, Vec c) { return _mm512_fmadd_ps(a, b, c); }
};

#include "cpu/sparse_dot_impl-inl.h"

}  // namespace avx512

void sparse_dense_rows_avx512(float* row, const float* W, int64_t ldw, int64_t lanes, const int32_t* rows,
                       const float* w, int64_t n) {
  avx512::dense_rows(row, W, ldw, lanes, rows, w, n);
}

// 16 terms per step: gather their codes, then compress the dense and the postings lanes into their lists.
void sparse_split_avx512(const int32_t* ids, const float* w, int64_t len, const int32_t* map, uint32_t V,
                         int32_t n_dense, int32_t* drow, float* dwt, int64_t* nd, int32_t* sent, float* swt,
                         int64_t* ns) {
  const __m512i vmax = _mm512_set1_epi32(static_cast<int>(V));
  const __m512i vdense = _mm512_set1_epi32(n_dense);
  int64_t d = 0, s = 0;
  for (int64_t i = 0; i < len; i += 16) {
    const int64_t left = len - i;
    const __mmask16 m = left >= 16 ? __mmask16(0xffff) : __mmask16((1u << left) - 1u);
    const __m512i id = _mm512_min_epu32(_mm512_maskz_loadu_epi32(m, ids + i), vmax);
    const __m512i c = _mm512_mask_i32gather_epi32(_mm512_set1_epi32(-1), m, id, map, 4);
    const __m512 wv = _mm512_maskz_loadu_ps(m, w + i);
    const __mmask16 md = _mm512_mask_cmplt_epu32_mask(m, c, vdense);
    const __mmask16 ms = _mm512_mask_cmpge_epi32_mask(m, c, vdense);
    _mm512_storeu_si512(drow + d, _mm512_maskz_compress_epi32(md, c));
    _mm512_storeu_ps(dwt + d, _mm512_maskz_compress_ps(md, wv));
    _mm512_storeu_si512(sent + s, _mm512_maskz_compress_epi32(ms, c));
    _mm512_storeu_ps(swt + s, _mm512_maskz_compress_ps(ms, wv));
#if defined(_MSC_VER)
    d += __popcnt(md);
    s += __popcnt(ms);
#else
    d += __builtin_popcount(md);
    s += __builtin_popcount(ms);
#endif
  }
  *nd = d;
  *ns = s;
}

}  // namespace cpu
}  // namespace fusedscore
