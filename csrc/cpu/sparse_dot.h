// Learned-sparse dot product on CPU:  out[b, n] = sum over term ids t in both rows of w_q[b, t] * w_d[n, t].
//
// Inputs are CSR: ids int32 [nnz] (sorted and unique within a row, as SparseVectors guarantees), weights
// [nnz] fp32 | fp16 | bf16 (raw uint16 bits), offsets int64 [rows+1]. fp32 accumulation, fp32 out.
// Modes: all-pairs (query_index == nullptr, out [B, N] row-major) or paired (query_index [N], out [N]).
// Empty rows score 0. Ids outside [0, vocab_size) never cause an out-of-bounds access (they are hashed), they
// simply match equal ids.
#pragma once

#include <cstdint>

#include "cpu/maxsim.h"  // DType

namespace fusedscore {

struct SparseDotArgs {
  const int32_t* q_idx;  // [nnz_q]
  const void* q_val;     // [nnz_q]
  const int64_t* q_off;  // [B+1]
  int64_t n_queries;     // B
  const int32_t* d_idx;  // [nnz_d]
  const void* d_val;     // [nnz_d]
  const int64_t* d_off;  // [N+1]
  int64_t n_docs;        // N
  const int64_t* query_index;  // [N] or nullptr (all-pairs)
  int64_t vocab_size;          // V, sizes the membership filter / the direct-mapped term array
  DType dtype;
  float* out;  // [B, N] or [N]
  // Polled between pieces of the work (see common/parallel.h): a stop leaves `out` partly written.
  const Interrupt* interrupt = nullptr;
};

// Validated inputs only (the bindings check shapes, offsets and query_index). Returns false when `interrupt`
// stopped the call early.
bool sparse_dot(const SparseDotArgs& args);

namespace cpu {

// row[l] += sum_h w[h] * W[rows[h] * ldw + l] for l < lanes (a multiple of 16): the dense-row part of one
// document's all-pairs scores, one vector FMA per 16 queries per matching term. One per ISA.
using DenseRowsFn = void (*)(float* row, const float* W, int64_t ldw, int64_t lanes, const int32_t* rows,
                             const float* w, int64_t n);
// One document's terms (fp32 weights, direct-mapped lookup): c = map[min(uint32(ids[i]), V)]; a dense code
// (0 <= c < n_dense) appends (c, w[i]) to drow/dwt, a postings code (c >= n_dense) to sent/swt, in term order;
// c = -1 appends nothing. The four outputs need len + 16 slots (whole vectors are stored). Returns nd, ns.
using SplitFn = void (*)(const int32_t* ids, const float* w, int64_t len, const int32_t* map, uint32_t V,
                         int32_t n_dense, int32_t* drow, float* dwt, int64_t* nd, int32_t* sent, float* swt,
                         int64_t* ns);
#if defined(FUSEDSCORE_X86_TUS)
void sparse_dense_rows_avx2(float* row, const float* W, int64_t ldw, int64_t lanes, const int32_t* rows,
                            const float* w, int64_t n);
void sparse_dense_rows_avx512(float* row, const float* W, int64_t ldw, int64_t lanes, const int32_t* rows,
                              const float* w, int64_t n);
void sparse_split_avx512(const int32_t* ids, const float* w, int64_t len, const int32_t* map, uint32_t V,
                         int32_t n_dense, int32_t* drow, float* dwt, int64_t* nd, int32_t* sent, float* swt,
                         int64_t* ns);
#endif

}  // namespace cpu

}  // namespace fusedscore
