// The MaxSim micro-kernel, written once for every SIMD ISA.
//
// Included (no include guard, on purpose) by maxsim_avx2.cpp, maxsim_avx512.cpp and maxsim_avx512bf16.cpp inside
// their ISA namespace, after each defines a vector-traits struct V:
//   V::Vec (fp32 accumulator vector), V::QVec (packed-query vector), V::DElem (document element type),
//   V::kLanes (fp32 lanes), V::kStep (document elements consumed per k step: 1, or 2 for bf16 pairs),
//   V::kPairs (odd-D tail handled in fp32), V::zero, V::loadq, V::bcast, V::dot (acc += q * b), V::max,
//   V::load_f32, V::store_f32, V::fma_f32 / V::bcast_tail (only used when kPairs).
// and the row-block sizes kRows<NV> (how many document rows one register block holds for NV query vectors).
//
// Maths: for a tile of NV query vectors (NV * kLanes query tokens, packed transposed so that one k step of the
// tile is NV contiguous vectors) and a block of R document rows, acc[r][v] = sum_k Q^T[k][v] * d_r[k] is built
// with R * NV independent FMA chains (embedded broadcast of d_r[k]); the block then folds into the running max
// rm[v] = max(rm[v], acc[r][v]): the max over document tokens is lane-wise, so no horizontal reduction happens
// until the driver sums the query lanes once per document. The [Lq, Ld] similarity tile never leaves registers.

template <int NV, int R>
static inline __attribute__((always_inline)) void rows_block(const float* q, int64_t ldq, int64_t ksteps, bool odd,
                                                             const typename V::DElem* d, int64_t ldd,
                                                             typename V::Vec* rm) {
  typename V::Vec acc[R][NV];
#pragma GCC unroll 32
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) acc[r][v] = V::zero();
  // One cache line of the next row block per k step (R rows of ldd elements are at most ksteps lines for
  // R <= 16 fp32 rows or R <= 32 bf16 rows): documents stream from DRAM once, and the hardware prefetchers
  // see R interleaved short streams. A prefetch never faults, even past the end of the array.
  const uintptr_t next = reinterpret_cast<uintptr_t>(d) + uintptr_t(R * ldd) * sizeof(*d);
  for (int64_t k = 0; k < ksteps; ++k) {
    __builtin_prefetch(reinterpret_cast<const char*>(next + uintptr_t(k) * 64));
    typename V::QVec qv[NV];
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) qv[v] = V::loadq(q + k * ldq + v * V::kLanes);
#pragma GCC unroll 32
    for (int r = 0; r < R; ++r) {
      const auto b = V::bcast(d + r * ldd + k * V::kStep);
#pragma GCC unroll 8
      for (int v = 0; v < NV; ++v) acc[r][v] = V::dot(acc[r][v], qv[v], b);
    }
  }
  if constexpr (V::kPairs) {
    if (odd) {  // odd D: the last column, in fp32 (packed as a plain fp32 row after the pairs)
      typename V::Vec qv[NV];
#pragma GCC unroll 8
      for (int v = 0; v < NV; ++v) qv[v] = V::load_f32(q + ksteps * ldq + v * V::kLanes);
#pragma GCC unroll 32
      for (int r = 0; r < R; ++r) {
        const typename V::Vec b = V::bcast_tail(d + r * ldd + ksteps * 2);
#pragma GCC unroll 8
        for (int v = 0; v < NV; ++v) acc[r][v] = V::fma_f32(qv[v], b, acc[r][v]);
      }
    }
  } else {
    (void)odd;
  }
  // Fold the block into the running max. Vector 0 (its first lane is a real query token) keeps NaN for good:
  // max(acc, rm) returns rm when either is NaN, and rm + acc * 0 is rm exactly for a finite acc but NaN for a NaN
  // or Inf one, which is what every lane of a document row holding a NaN/Inf produces (0 * Inf = NaN). The other
  // vectors take the plain max. Cost: one FMA per document row, against ksteps * NV for its dot products.
#pragma GCC unroll 32
  for (int r = 0; r < R; ++r) {
    rm[0] = V::max(acc[r][0], rm[0]);
#pragma GCC unroll 8
    for (int v = 1; v < NV; ++v) rm[v] = V::max(rm[v], acc[r][v]);
  }
  // NaN-sticky: fold every row's vector 0 pairwise with y + 0 * x (y exactly when x is finite, else NaN), a tree
  // of depth log2(R), then into rm[0] the same way
#pragma GCC unroll 32
  for (int w = 1; w < R; w *= 2)
#pragma GCC unroll 32
    for (int r = 0; r + w < R; r += 2 * w) acc[r][0] = V::fma_f32(acc[r + w][0], V::zero(), acc[r][0]);
  rm[0] = V::fma_f32(acc[0][0], V::zero(), rm[0]);
}

template <int NV>
static void tile_rows(const float* q, int64_t ldq, int64_t dim, const typename V::DElem* d, int64_t nrows,
                      float* runmax) {
  constexpr int R = kRows<NV>;
  const int64_t ksteps = dim / V::kStep;
  const bool odd = V::kPairs && (dim % 2) != 0;
  typename V::Vec rm[NV];
  for (int v = 0; v < NV; ++v) rm[v] = V::load_f32(runmax + v * V::kLanes);
  int64_t r = 0;
  for (; r + R <= nrows; r += R) rows_block<NV, R>(q, ldq, ksteps, odd, d + r * dim, dim, rm);
  // tail rows: smaller blocks keep every FMA useful (a fixed block would need padded, duplicated rows)
  if constexpr (R > 4) {
    for (; r + 4 <= nrows; r += 4) rows_block<NV, 4>(q, ldq, ksteps, odd, d + r * dim, dim, rm);
  }
  for (; r < nrows; ++r) rows_block<NV, 1>(q, ldq, ksteps, odd, d + r * dim, dim, rm);
  for (int v = 0; v < NV; ++v) V::store_f32(runmax + v * V::kLanes, rm[v]);
}

static void tile_max(const float* q, int64_t ldq, int64_t nv, int64_t dim, const void* dv, int64_t nrows,
                     float* runmax) {
  const auto* d = static_cast<const typename V::DElem*>(dv);
  switch (nv) {
    case 1: tile_rows<1>(q, ldq, dim, d, nrows, runmax); break;
    case 2: tile_rows<2>(q, ldq, dim, d, nrows, runmax); break;
    case 3: if constexpr (kMaxNV >= 3) tile_rows<3>(q, ldq, dim, d, nrows, runmax); break;
    case 4: if constexpr (kMaxNV >= 4) tile_rows<4>(q, ldq, dim, d, nrows, runmax); break;
    default: break;  // the driver never asks for more than kMaxNV vectors per tile
  }
}
