// MaxSim on bf16 inputs with vdpbf16ps (AVX512_BF16): one instruction multiplies a pair of bf16 query values by
// a pair of bf16 document values and adds both products into the fp32 accumulator lane. bf16 x bf16 products are
// exact in fp32 and accumulation stays fp32 (denormal inputs/outputs are flushed to zero by the instruction;
// the tolerance in tests/_tol.py covers that). Odd D: the last column runs as a plain fp32 FMA.
//
// Compiled with the AVX-512 flags plus -mavx512bf16 for this file only, and only when the compiler accepts
// them (CMakeLists.txt); used only when the CPU reports avx512_bf16. No static initialisers, no std templates.
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "cpu/maxsim.h"

namespace fusedscore {
namespace cpu {
namespace avx512bf16 {

struct V {
  using Vec = __m512;
  using QVec = __m512bh;
  using DElem = uint16_t;
  static constexpr int kLanes = 16;
  static constexpr int kStep = 2;  // one k step consumes a pair of document elements
  static constexpr bool kPairs = true;
  static inline Vec zero() { return _mm512_setzero_ps(); }
  // 16 lanes x (bf16 pair) = 64 bytes per packed-query vector
  static inline QVec loadq(const float* p) { return (__m512bh)_mm512_loadu_si512(p); }
  static inline QVec bcast(const uint16_t* p) {
    uint32_t pair;
    std::memcpy(&pair, p, sizeof pair);
    return (__m512bh)_mm512_set1_epi32(static_cast<int>(pair));
  }
  static inline Vec dot(Vec acc, QVec q, QVec b) { return _mm512_dpbf16_ps(acc, q, b); }
  static inline Vec max(Vec a, Vec b) { return _mm512_max_ps(a, b); }
  static inline Vec load_f32(const float* p) { return _mm512_loadu_ps(p); }
  static inline void store_f32(float* p, Vec v) { _mm512_storeu_ps(p, v); }
  static inline Vec fma_f32(Vec a, Vec b, Vec c) { return _mm512_fmadd_ps(a, b, c); }
  static inline Vec bcast_tail(const uint16_t* p) {
    return _mm512_castsi512_ps(_mm512_set1_epi32(static_cast<int>(static_cast<uint32_t>(*p) << 16)));
  }
};

template <int NV>
constexpr int kRows = NV == 1 ? 16 : NV == 2 ? 12 : NV == 3 ? 8 : 6;
constexpr int kMaxNV = 4;

#include "cpu/maxsim_impl-inl.h"

}  // namespace avx512bf16

MaxSimKernels maxsim_kernels_avx512bf16() {
  // only the pair kernel: fp32 tiles and conversions come from the AVX-512 table (the driver merges them)
  return {"avx512bf16", avx512bf16::V::kLanes, avx512bf16::V::kLanes * avx512bf16::kMaxNV, nullptr, nullptr,
          &avx512bf16::tile_max};
}

}  // namespace cpu
}  // namespace fusedscore
