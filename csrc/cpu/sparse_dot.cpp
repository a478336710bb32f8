// Learned-sparse dot products, hash based (baseline ISA: the work is lookups, not arithmetic).
//
// Query terms live in an open-addressing hash table (power-of-two capacity >= 2x the entries, linear probing,
// Fibonacci hashing), fronted by a membership bitmap over (id mod 2^k), 2^k >= V up to a cap: most document
// terms are in no query, and for them the bitmap answers with one L1-resident load instead of a probe.
//  - all-pairs: one lookup over the union of all query terms (an inverted index of the queries), so every
//    document is read once; a term's entry is a postings list of (query, weight), or for a term that many
//    queries share, a dense weight row over the queries. Up to 2^22 ids the lookup is a direct-mapped array
//    term -> entry (one load, no filter or probe; AVX-512 gathers 16 at a time); the hash table beyond. Scores of a block of documents accumulate in a small
//    dense [block, B] tile that is then transposed into out's rows.
//  - paired: per thread, the table of the current query (rebuilt when the query changes); each candidate's
//    terms probe it.
#include "cpu/sparse_dot.h"

#include <algorithm>
#include <cstring>
#include <type_traits>
#include <vector>

#include "common/half.h"
#include "common/parallel.h"
#include "common/simd.h"

namespace fusedscore {
namespace {

constexpr uint32_t kEmpty = 0xffffffffu;
constexpr int kMaxFilterBits = 21;  // 2^21 bits = 256 KiB; larger vocabularies alias (filter false positives)
constexpr int kMaxDirectBits = 22;  // all-pairs: a direct-mapped term -> entry array up to 2^22 ids (16 MiB)
constexpr double kMinTermsPerThread = 32768;  // document terms (~0.1 ms of probes): below it, one thread
// Work between two interrupt polls, per thread, in document terms x query lanes / 16 (~ns each): tens of ms.
constexpr double kPieceWorkPerThread = 3e7;

const Interrupt kNoInterrupt{};

inline float weight(const void* v, DType dt, int64_t i) {
  switch (dt) {
    case DType::kF32: return static_cast<const float*>(v)[i];
    case DType::kF16: return half_to_float(static_cast<const uint16_t*>(v)[i]);
    default: return bf16_to_float(static_cast<const uint16_t*>(v)[i]);
  }
}

template <DType DT>
inline float weight_as(const void* v, int64_t i) {
  if constexpr (DT == DType::kF32) return static_cast<const float*>(v)[i];
  else if constexpr (DT == DType::kF16) return half_to_float(static_cast<const uint16_t*>(v)[i]);
  else return bf16_to_float(static_cast<const uint16_t*>(v)[i]);
}

int log2_ceil(uint64_t x) {
  int b = 0;
  while ((uint64_t(1) << b) < x) ++b;
  return b;
}

// id -> int32 payload. Capacity is fixed at construction; insert() never sees more than `max_entries` keys.
class TermTable {
 public:
  TermTable() = default;
  TermTable(int64_t max_entries, int64_t vocab_size) {
    bits_ = std::max(4, log2_ceil(static_cast<uint64_t>(std::max<int64_t>(1, 2 * max_entries))));
    keys_.assign(size_t(1) << bits_, kEmpty);
    vals_.assign(size_t(1) << bits_, 0);
    const int fb = std::min(kMaxFilterBits, std::max(6, log2_ceil(static_cast<uint64_t>(std::max<int64_t>(1, vocab_size)))));
    fmask_ = (uint32_t(1) << fb) - 1u;
    filter_.assign((size_t(1) << fb) / 64, 0);
  }

  // Insert `id` if absent; returns its slot. (Repeated ids keep the first payload; callers merge first.)
  int64_t insert(uint32_t id, int32_t payload, bool* fresh) {
    const uint32_t mask = (uint32_t(1) << bits_) - 1u;
    uint32_t s = hash(id);
    while (keys_[s] != kEmpty && keys_[s] != id) s = (s + 1) & mask;
    *fresh = keys_[s] != id;
    if (*fresh) {
      keys_[s] = id;
      vals_[s] = payload;
      const uint32_t f = id & fmask_;
      filter_[f >> 6] |= uint64_t(1) << (f & 63);
    }
    return s;
  }
  int32_t& payload(int64_t slot) { return vals_[size_t(slot)]; }

  // 1 if `id` may be in the table (the membership bitmap; exact unless ids alias modulo the filter size).
  inline uint32_t maybe(uint32_t id) const {
    const uint32_t f = id & fmask_;
    return uint32_t(filter_[f >> 6] >> (f & 63)) & 1u;
  }

  // The payload of `id`, or -1. The filter test is the fast path for absent ids.
  inline int32_t find(uint32_t id) const {
    if (!maybe(id)) return -1;
    return probe(id);
  }

  // The payload of `id`, or -1, without the filter test.
  inline int32_t probe(uint32_t id) const {
    const uint32_t mask = (uint32_t(1) << bits_) - 1u;
    for (uint32_t s = hash(id);; s = (s + 1) & mask) {
      const uint32_t k = keys_[s];
      if (k == id && k != kEmpty) return vals_[s];
      if (k == kEmpty) return -1;
    }
  }

  // Remove every key of ids[0..n) (cheaper than clearing the whole filter when the table is reused).
  void clear(const int32_t* ids, int64_t n) {
    for (int64_t i = 0; i < n; ++i) {
      const uint32_t f = uint32_t(ids[i]) & fmask_;
      filter_[f >> 6] = 0;
    }
    std::fill(keys_.begin(), keys_.end(), kEmpty);
  }

 private:
  inline uint32_t hash(uint32_t id) const { return (id * 0x9E3779B1u) >> (32 - bits_); }

  int bits_ = 4;
  uint32_t fmask_ = 0;
  std::vector<uint32_t> keys_;
  std::vector<int32_t> vals_;
  std::vector<uint64_t> filter_;
};

void dense_rows_scalar(float* row, const float* W, int64_t ldw, int64_t lanes, const int32_t* rows, const float* w,
                       int64_t n) {
  for (int64_t h = 0; h < n; ++h) {
    const float* src = W + rows[h] * ldw;
    for (int64_t l = 0; l < lanes; ++l) row[l] += src[l] * w[h];
  }
}

cpu::DenseRowsFn dense_rows_fn() {
  switch (active_simd_level()) {
#if defined(FUSEDSCORE_X86_TUS)
    case SimdLevel::kAvx2: return &cpu::sparse_dense_rows_avx2;
    case SimdLevel::kAvx512:
    case SimdLevel::kAvx512Bf16: return &cpu::sparse_dense_rows_avx512;
#endif
    default: return &dense_rows_scalar;
  }
}

cpu::SplitFn split_fn_for_level() {
  switch (active_simd_level()) {
#if defined(FUSEDSCORE_X86_TUS)
    case SimdLevel::kAvx512:
    case SimdLevel::kAvx512Bf16: return &cpu::sparse_split_avx512;
#endif
    default: return nullptr;
  }
}

int64_t max_row_nnz(const int64_t* off, int64_t n) {
  int64_t m = 0;
  for (int64_t i = 0; i < n; ++i) m = std::max(m, off[i + 1] - off[i]);
  return m;
}

constexpr int32_t kPostPad = 8;  // postings lists are stored padded to a multiple of this many entries

// A postings list: post_q/post_w[begin, begin + len), padded with (0, 0.0f) up to a multiple of kPostPad.
struct Postings {
  int64_t begin;  // padding can take the storage past 2^31 entries
  int32_t len;
};

// Scores of documents [lo, hi) blocks for one lookup (term id -> code) and one weight dtype. A code is the
// term's entry: [0, n_dense) a dense row, [n_dense, n_entries) a postings list, -1 no query has the term.
template <DType DT, class Code>
// `split`, when given, replaces the scalar split loop (fp32 weights, direct-mapped `map` only).
void all_pairs_blocks(const SparseDotArgs& a, const Code& code_of, cpu::SplitFn split, const int32_t* map,
                      int64_t nb, int64_t Bp, int32_t n_dense,
                      const Postings* posts, const int32_t* pq, const float* pw, const float* dw,
                      cpu::DenseRowsFn dense_rows, float* t, int32_t* drow, float* dwt, int32_t* sent, float* swt,
                      int32_t* fq, float* fw, int64_t flat_cap, int64_t lo, int64_t hi) {
  const int64_t B = a.n_queries, N = a.n_docs;
  const int32_t* d_idx = a.d_idx;
  const int64_t* d_off = a.d_off;
  const void* d_val = a.d_val;
  for (int64_t blk = lo; blk < hi; ++blk) {
    const int64_t n0 = blk * nb, cnt = std::min(nb, N - n0);
    std::fill(t, t + cnt * Bp, 0.0f);
    for (int64_t j = 0; j < cnt; ++j) {
      const int64_t n = n0 + j;
      float* row = t + j * Bp;
      // Split the terms into dense-row and postings hits without branches: whether a term hits, and how,
      // is data-dependent (about a coin flip on Zipf-distributed vocabularies), so a branch per term would
      // mispredict constantly. Both lists are written every time; only the taken one advances.
      const int64_t p0 = d_off[n], len = d_off[n + 1] - p0;
      const int32_t* ids = d_idx + p0;
      int64_t nd = 0, ns = 0;
      if (split) {
        split(ids, static_cast<const float*>(d_val) + p0, len, map, uint32_t(a.vocab_size), n_dense, drow, dwt, &nd,
              sent, swt, &ns);
      } else {
        for (int64_t i = 0; i < len; ++i) {
          const int32_t c = code_of(ids[i]);
          const float w = weight_as<DT>(d_val, p0 + i);
          drow[nd] = c;
          dwt[nd] = w;
          nd += uint32_t(c) < uint32_t(n_dense);
          sent[ns] = c;
          swt[ns] = w;
          ns += c >= n_dense;
        }
      }
      // Postings hits: expand into one flat list of (query, product) in fixed chunks of kPostPad (one chunk
      // per term unless df > kPostPad, so the copy loop's trip count is predictable; the padding beyond len is
      // overwritten by the next term), then one scatter loop over the flat list.
      int64_t nf = 0;
      for (int64_t s = 0; s < ns; ++s) {
        const Postings P = posts[sent[s]];
        const float w = swt[s];
        const int32_t* q = pq + P.begin;
        const float* pwt = pw + P.begin;
        for (int32_t c = 0; c < P.len; c += kPostPad) {
          for (int32_t l = 0; l < kPostPad; ++l) {
            fq[nf + c + l] = q[c + l];
            fw[nf + c + l] = pwt[c + l] * w;
          }
        }
        nf += P.len;
        if (nf > flat_cap) {  // rare: flush (flat_cap leaves room for the longest padded list)
          for (int64_t k = 0; k < nf; ++k) row[fq[k]] += fw[k];
          nf = 0;
        }
      }
      for (int64_t k = 0; k < nf; ++k) row[fq[k]] += fw[k];
      if (nd) dense_rows(row, dw, Bp, Bp, drow, dwt, nd);
    }
    for (int64_t b = 0; b < B; ++b) {
      float* o = a.out + b * N + n0;
      for (int64_t j = 0; j < cnt; ++j) o[j] = t[j * Bp + b];
    }
  }
}

bool sparse_all_pairs(const SparseDotArgs& a) {
  const int64_t B = a.n_queries, N = a.n_docs;
  const int64_t nnz_q = a.q_off[B];
  const int64_t Bp = (B + 15) / 16 * 16;  // a dense row over the queries, padded for whole vectors
  // Inverted index of the queries: term -> entry. A frequent term (in >= Bp/16 queries) gets a dense row of
  // weights over all queries (zeros where absent): one vectorisable multiply-add over Bp lanes beats df
  // scattered updates. A rare term keeps its postings list (Postings). Adding 0 * w for an
  // absent query leaves the sum unchanged, so both forms give the same bits.
  // Term -> entry is a direct-mapped array over the vocabulary (one load per document term) up to
  // 2^kMaxDirectBits ids, else (or for few document terms) the hash table behind its membership filter.
  // Filling the array costs ~V/16 ns: worth it only against enough document terms (~3 ns saved each).
  const bool direct = a.vocab_size <= (int64_t(1) << kMaxDirectBits) &&
                      a.vocab_size <= std::max<int64_t>(int64_t(1) << 16, 8 * a.d_off[N]);
  std::vector<int32_t> code_map;  // [V + 1], code_map[V] = -1 for out-of-range document ids
  TermTable table;
  std::vector<int32_t> entry_of(static_cast<size_t>(nnz_q));
  std::vector<int64_t> count;
  if (direct) {
    code_map.assign(static_cast<size_t>(a.vocab_size + 1), -1);
    for (int64_t p = 0; p < nnz_q; ++p) {
      int32_t& m = code_map[size_t(a.q_idx[p])];
      if (m < 0) {
        m = int32_t(count.size());
        count.push_back(0);
      }
      entry_of[p] = m;
      ++count[size_t(m)];
    }
  } else {
    table = TermTable(nnz_q, a.vocab_size);
    for (int64_t p = 0; p < nnz_q; ++p) {
      bool fresh;
      const int64_t s = table.insert(uint32_t(a.q_idx[p]), int32_t(count.size()), &fresh);
      if (fresh) count.push_back(0);
      entry_of[p] = table.payload(s);
      ++count[size_t(entry_of[p])];
    }
  }
  // Renumber: dense entries first (code = dense row), then the postings entries.
  const size_t n_entries = count.size();
  std::vector<int32_t> code(n_entries);
  int32_t n_dense = 0;
  for (size_t e = 0; e < n_entries; ++e)
    if (count[e] * 16 >= Bp) code[e] = n_dense++;
  {
    int32_t c = n_dense;
    for (size_t e = 0; e < n_entries; ++e)
      if (count[e] * 16 < Bp) code[e] = c++;
  }
  std::vector<Postings> posts(n_entries, Postings{0, 0});  // by code; dense codes have empty lists
  std::vector<int64_t> start(n_entries + 1, 0);  // by code: padded storage
  int64_t max_padded = 0;
  for (size_t e = 0; e < n_entries; ++e) {
    const int64_t padded = code[e] < n_dense ? 0 : (count[e] + kPostPad - 1) / kPostPad * kPostPad;
    start[size_t(code[e]) + 1] = padded;
    if (code[e] >= n_dense) posts[size_t(code[e])].len = int32_t(count[e]);
    max_padded = std::max(max_padded, padded);
  }
  for (size_t c = 0; c < n_entries; ++c) {
    start[c + 1] += start[c];
    posts[c].begin = start[c];
  }
  if (direct) {
    for (int64_t p = 0; p < nnz_q; ++p) code_map[size_t(a.q_idx[p])] = code[size_t(entry_of[p])];
  } else {
    TermTable remapped(nnz_q, a.vocab_size);
    for (int64_t p = 0; p < nnz_q; ++p) {
      bool fresh;
      remapped.insert(uint32_t(a.q_idx[p]), code[size_t(entry_of[p])], &fresh);
    }
    table = std::move(remapped);
  }
  std::vector<int32_t> post_q(static_cast<size_t>(start[n_entries]), 0);
  std::vector<float> post_w(static_cast<size_t>(start[n_entries]), 0.0f);
  std::vector<float> dense(static_cast<size_t>(int64_t(n_dense) * Bp), 0.0f);
  std::vector<int64_t> fill(start.begin(), start.end() - 1);
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t p = a.q_off[b]; p < a.q_off[b + 1]; ++p) {
      const int32_t c = code[size_t(entry_of[p])];
      const float w = weight(a.q_val, a.dtype, p);
      if (c < n_dense) {
        dense[size_t(c * Bp + b)] = w;
      } else {
        const int64_t at = fill[size_t(c)]++;
        post_q[size_t(at)] = int32_t(b);
        post_w[size_t(at)] = w;
      }
    }
  }

  // Documents in blocks of nb: acc[j * Bp + b] is query b's score for document n0 + j (a small L1/L2 tile),
  // transposed into out's rows when the block is done.
  const int64_t nb = std::max<int64_t>(1, std::min<int64_t>(64, 8192 / Bp));
  const int64_t n_blocks = (N + nb - 1) / nb;
  // a document term costs a lookup, and a hit up to a dense row over the queries (Bp / 16 vector FMAs)
  const double work = double(a.d_off[N]) * double(std::max<int64_t>(1, Bp / 16));
  const int64_t piece = piece_items(n_blocks, work, kPieceWorkPerThread * max_threads());
  const int64_t grain = std::max<int64_t>(1, piece / (int64_t(max_threads()) * 16));
  const int threads = threads_for((n_blocks + grain - 1) / grain, double(a.d_off[N]), kMinTermsPerThread);
  std::vector<std::vector<float>> acc(threads, std::vector<float>(static_cast<size_t>(nb * Bp)));
  const size_t max_len = static_cast<size_t>(max_row_nnz(a.d_off, N)) + 16;  // + a vector (split stores)
  std::vector<std::vector<int32_t>> drow_buf(threads, std::vector<int32_t>(max_len));
  std::vector<std::vector<float>> dwt_buf(threads, std::vector<float>(max_len));
  std::vector<std::vector<int32_t>> sent_buf(threads, std::vector<int32_t>(max_len));
  std::vector<std::vector<float>> swt_buf(threads, std::vector<float>(max_len));
  const int64_t flat_cap = 4096;  // flat postings per flush; buffers hold flat_cap + the longest padded list
  std::vector<std::vector<int32_t>> fq_buf(threads, std::vector<int32_t>(size_t(flat_cap + 2 * max_padded + kPostPad)));
  std::vector<std::vector<float>> fw_buf(threads, std::vector<float>(size_t(flat_cap + 2 * max_padded + kPostPad)));
  const cpu::DenseRowsFn dense_rows = dense_rows_fn();
  const cpu::SplitFn split_fn = split_fn_for_level();
  return parallel_for_pieces(n_blocks, piece, grain, threads, a.interrupt ? *a.interrupt : kNoInterrupt,
                             [&](int slot, int64_t lo, int64_t hi) {
    const int32_t* map = code_map.data();
    const uint32_t V = uint32_t(a.vocab_size);
    const auto direct_code = [map, V](int32_t id) { return map[std::min(uint32_t(id), V)]; };
    const auto hashed_code = [&table](int32_t id) { return table.find(uint32_t(id)); };
    const auto run = [&](auto dt_tag, const auto& code_of) {
      constexpr DType kDT = decltype(dt_tag)::value;
      // the vectorised split: fp32 weights and the direct-mapped lookup only
      const cpu::SplitFn sp = (kDT == DType::kF32 && direct) ? split_fn : nullptr;
      all_pairs_blocks<kDT>(a, code_of, sp, map, nb, Bp, n_dense, posts.data(), post_q.data(), post_w.data(),
                            dense.data(), dense_rows, acc[slot].data(), drow_buf[slot].data(), dwt_buf[slot].data(),
                            sent_buf[slot].data(), swt_buf[slot].data(), fq_buf[slot].data(), fw_buf[slot].data(),
                            flat_cap, lo, hi);
    };
    const auto by_dtype = [&](const auto& code_of) {
      switch (a.dtype) {
        case DType::kF32: run(std::integral_constant<DType, DType::kF32>{}, code_of); break;
        case DType::kF16: run(std::integral_constant<DType, DType::kF16>{}, code_of); break;
        default: run(std::integral_constant<DType, DType::kBF16>{}, code_of); break;
      }
    };
    if (direct)
      by_dtype(direct_code);
    else
      by_dtype(hashed_code);
  });
}

bool sparse_paired(const SparseDotArgs& a) {
  const int64_t N = a.n_docs;
  const int64_t max_q = max_row_nnz(a.q_off, a.n_queries);
  const int64_t piece = piece_items(N, double(a.d_off[N]), kPieceWorkPerThread * max_threads());
  const int64_t grain = std::max<int64_t>(1, piece / (int64_t(max_threads()) * 32));
  const int threads = threads_for((N + grain - 1) / grain, double(a.d_off[N]), kMinTermsPerThread);
  std::vector<TermTable> tables;
  std::vector<std::vector<float>> wq(threads, std::vector<float>(static_cast<size_t>(max_q)));
  for (int t = 0; t < threads; ++t) tables.emplace_back(max_q, a.vocab_size);
  std::vector<int64_t> cached_query(threads, -1);  // per thread, across chunks: whose terms the table holds
  return parallel_for_pieces(N, piece, grain, threads, a.interrupt ? *a.interrupt : kNoInterrupt,
                             [&](int slot, int64_t lo, int64_t hi) {
    TermTable& table = tables[slot];
    float* w = wq[slot].data();
    int64_t& cached = cached_query[slot];
    for (int64_t n = lo; n < hi; ++n) {
      const int64_t b = a.query_index[n];
      if (b != cached) {
        if (cached >= 0) table.clear(a.q_idx + a.q_off[cached], a.q_off[cached + 1] - a.q_off[cached]);
        for (int64_t p = a.q_off[b]; p < a.q_off[b + 1]; ++p) {
          bool fresh;
          const int64_t i = p - a.q_off[b];
          w[i] = weight(a.q_val, a.dtype, p);
          table.insert(uint32_t(a.q_idx[p]), int32_t(i), &fresh);
        }
        cached = b;
      }
      float s = 0.0f;
      if (a.q_off[b + 1] > a.q_off[b]) {
        for (int64_t p = a.d_off[n]; p < a.d_off[n + 1]; ++p) {
          const int32_t i = table.find(uint32_t(a.d_idx[p]));
          if (i >= 0) s += w[i] * weight(a.d_val, a.dtype, p);
        }
      }
      a.out[n] = s;
    }
  });
}

}  // namespace

bool sparse_dot(const SparseDotArgs& args) {
  if (args.n_docs == 0 || (args.query_index == nullptr && args.n_queries == 0)) return true;
  return args.query_index == nullptr ? sparse_all_pairs(args) : sparse_paired(args);
}

}  // namespace fusedscore
