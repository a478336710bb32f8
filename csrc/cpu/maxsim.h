// MaxSim (late interaction) on CPU:  out[b, n] = reduce_i max_j <q_b[i], d_n[j]>,
// reduce = sum or mean over the query's tokens, fp32 accumulation, fp32 out.
//
// Layout: ragged and packed. Queries: values [Tq, D] with offsets [B+1]; documents: values [Td, D] with
// offsets [N+1]. Values are fp32, fp16 or bf16 (raw uint16 bits), both sides the same dtype.
// Modes: all-pairs (query_index == nullptr, out [B, N] row-major) or paired (query_index [P]: pair n is
// document n against query query_index[n], out [P], P == N; or, with doc_index [P], document doc_index[n] read
// in place, so a rerank scores candidates from the corpus without gathering them). An empty document scores
// -inf, an empty query 0 (also for mean).
//
// Structure (STYLE.md section 3): the driver (maxsim.cpp, baseline ISA) packs queries, splits the work over
// threads and reduces; the leaf kernels come from one table per ISA (maxsim_scalar.cpp, maxsim_avx2.cpp,
// maxsim_avx512.cpp, maxsim_avx512bf16.cpp; the SIMD ones share maxsim_impl-inl.h).
//
// This header is included by ISA translation units: declarations and plain structs only, nothing inline.
#pragma once

#include <cstdint>

namespace fusedscore {

struct Interrupt;  // common/parallel.h

enum class DType : int { kF32 = 0, kF16 = 1, kBF16 = 2 };

struct MaxSimArgs {
  const void* q_values;      // [Tq, D]
  const int64_t* q_offsets;  // [B+1]
  int64_t n_queries;         // B
  const void* d_values;      // [Td, D]
  const int64_t* d_offsets;  // [N+1]
  int64_t n_docs;            // N
  int64_t dim;               // D
  DType dtype;
  const int64_t* query_index;  // [P] or nullptr (all-pairs)
  bool reduce_mean;
  float* out;                  // [B, N] or [P]
  const int64_t* doc_index;    // paired only: [P] ids in [0, N), or nullptr (pair n is document n)
  int64_t n_pairs;             // P: paired outputs (== N without doc_index); unused in all-pairs
  // [N] or nullptr. Set: document n's rows start at d_rows[n] (each document its own buffer, e.g. a list of
  // arrays scored without packing it) and d_offsets only give lengths; d_values is unused.
  const void* const* d_rows = nullptr;
  // Polled between pieces of the work (see common/parallel.h): a stop leaves `out` partly written.
  const Interrupt* interrupt = nullptr;
};

// Score with the active SIMD level (common/simd.h). Inputs must already be validated (bindings do it).
// Returns false when `interrupt` stopped the call early.
bool maxsim(const MaxSimArgs& args);

namespace cpu {

// runmax[l] = max(runmax[l], max over rows r < nrows of <qcol_l, d_r>) for the lanes l < nv * lane_width of one
// query tile. NaN is sticky in the tile's first lane (always a real query token): a document row holding a NaN or
// Inf makes runmax[0] NaN for good, so that document's score comes out NaN instead of a silently dropped max.
// `q` points at the tile's first lane of a packed query: slot (k, l) lives at q[k * ldq + l].
//  - fp32 packing: slot = q[l][k] as float, k < D.
//  - bf16-pair packing (tile_max_bf16_pairs): slot = the bf16 pair (q[l][2k], q[l][2k+1]) for k < D/2; for odd D a
//    final fp32 row q[l][D-1] follows at k = D/2.
// `d` is the first of nrows document rows of `dim` elements each (fp32 for tile_max_f32, bf16 bits for pairs).
using TileMaxFn = void (*)(const float* q, int64_t ldq, int64_t nv, int64_t dim, const void* d, int64_t nrows,
                           float* runmax);
// dst[i] = float(src[i]) for i < n; src holds fp16 or bf16 (kF32 is never passed).
using ToF32Fn = void (*)(const void* src, DType dtype, int64_t n, float* dst);

struct MaxSimKernels {
  const char* name;
  int64_t lane_width;  // lanes per vector (the packed query width is a multiple of 16 >= any lane_width)
  int64_t tile_lanes;  // most lanes one tile_max call takes (a multiple of lane_width)
  TileMaxFn tile_max_f32;
  ToF32Fn to_f32;
  TileMaxFn tile_max_bf16_pairs;  // nullptr unless the ISA has a bf16 dot-product instruction
};

MaxSimKernels maxsim_kernels_scalar();
#if defined(FUSEDSCORE_X86_TUS)
MaxSimKernels maxsim_kernels_avx2();
MaxSimKernels maxsim_kernels_avx512();
#endif
#if defined(FUSEDSCORE_AVX512BF16_TU)
MaxSimKernels maxsim_kernels_avx512bf16();
#endif

}  // namespace cpu
}  // namespace fusedscore
