// MaxSim driver (baseline ISA): picks the kernel table for the active SIMD level, packs queries, splits the
// work over threads and reduces each document's running maxima to a score. See maxsim.h for the maths.
//
// Work split:
//  - all-pairs: queries are packed once (in chunks that bound the packed copy to kPackBudgetBytes), then
//    threads take (document, query group) items; a document is read once per query group, in row chunks that
//    stay in L2 while every query of the group runs over them.
//  - paired: threads take runs of consecutive pairs; each thread packs a query when the pair's query changes
//    (candidates of one query are usually contiguous), so nothing of size B is allocated. A pair's document is
//    doc_index[n] when given (read in place from the corpus), else document n.
// Documents are read where they are: from the packed values, or, with d_rows, each from its own buffer.
// Long calls run as pieces of about kPieceMacsPerThread multiply-adds per thread; MaxSimArgs::interrupt is polled
// between pieces (and between query chunks), so a caller can stop a call within a piece.
// Packing a query (a transpose, [Lq, D] -> [D, Lqp]) costs Lq * D; scoring one document costs Lq * Ld * D, so
// neither re-packing per thread nor per document run is visible.
#include "cpu/maxsim.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <new>
#include <vector>

#include "common/half.h"
#include "common/parallel.h"
#include "common/simd.h"

namespace fusedscore {
namespace {

using cpu::MaxSimKernels;
using cpu::TileMaxFn;

constexpr int64_t kPackBudgetBytes = int64_t(32) << 20;  // all-pairs: packed queries held at once
constexpr int64_t kChunkBytes = int64_t(128) << 10;       // document rows scored per query pass (L2-resident)
constexpr int64_t kItemsPerThread = 32;                    // dynamic-schedule granularity target
constexpr double kMinMacsPerThread = 16e6;                 // ~0.1 ms of FMAs: below it, one thread
// Work between two interrupt polls, per thread: ~50 ms on one scalar thread (10 GMAC/s), ~15 ms with AVX2 (measured
// on a busy 2-core AVX2 host); one fork/join per piece costs microseconds.
constexpr double kPieceMacsPerThread = 5e8;

// A float buffer aligned to a cache line (packed query rows are whole 64-byte lines).
class Buffer {
 public:
  Buffer() = default;
  explicit Buffer(size_t n) : n_(n) {
    if (n_) p_ = static_cast<float*>(::operator new(n_ * sizeof(float), std::align_val_t(64)));
  }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  Buffer(Buffer&& o) noexcept : p_(o.p_), n_(o.n_) { o.p_ = nullptr, o.n_ = 0; }
  ~Buffer() {
    if (p_) ::operator delete(p_, std::align_val_t(64));
  }
  float* data() const { return p_; }

 private:
  float* p_ = nullptr;
  size_t n_ = 0;
};

const MaxSimKernels& kernels_for(SimdLevel level) {
  // Each table is built only when its level is first used, i.e. after the CPU check passed.
  switch (level) {
#if defined(FUSEDSCORE_X86_TUS)
    case SimdLevel::kAvx2: {
      static const MaxSimKernels k = cpu::maxsim_kernels_avx2();
      return k;
    }
    case SimdLevel::kAvx512: {
      static const MaxSimKernels k = cpu::maxsim_kernels_avx512();
      return k;
    }
#if defined(FUSEDSCORE_AVX512BF16_TU)
    case SimdLevel::kAvx512Bf16: {
      static const MaxSimKernels k = [] {
        MaxSimKernels t = cpu::maxsim_kernels_avx512();
        const MaxSimKernels p = cpu::maxsim_kernels_avx512bf16();
        t.name = p.name;
        t.tile_max_bf16_pairs = p.tile_max_bf16_pairs;
        return t;
      }();
      return k;
    }
#endif
#endif
    default: {
      static const MaxSimKernels k = cpu::maxsim_kernels_scalar();
      return k;
    }
  }
}

struct Plan {
  const MaxSimKernels* K;
  TileMaxFn tile;      // the tile kernel in use
  int64_t tile_lanes;  // lanes per tile call
  bool pairs;          // bf16-pair packing (vdpbf16ps), else fp32 packing
  bool direct;         // the kernel reads document rows in place (fp32, or bf16 pairs); else convert to fp32
  int64_t dim;
  DType dtype;
  int64_t esize;       // bytes per input element
  int64_t kslots;      // rows of a packed query
  int64_t chunk_rows;  // document rows per query pass
};

Plan make_plan(const MaxSimArgs& a) {
  Plan p{};
  p.K = &kernels_for(active_simd_level());
  p.dim = a.dim;
  p.dtype = a.dtype;
  p.esize = a.dtype == DType::kF32 ? 4 : 2;
  p.pairs = a.dtype == DType::kBF16 && p.K->tile_max_bf16_pairs != nullptr;
  p.tile = p.pairs ? p.K->tile_max_bf16_pairs : p.K->tile_max_f32;
  p.tile_lanes = p.K->tile_lanes;
  p.direct = a.dtype == DType::kF32 || p.pairs;
  p.kslots = p.pairs ? a.dim / 2 + (a.dim & 1) : a.dim;
  p.chunk_rows = std::max<int64_t>(8, kChunkBytes / (4 * std::max<int64_t>(a.dim, 1)));
  return p;
}

// Where document `doc`'s rows start: in the packed values, or in its own buffer (MaxSimArgs::d_rows).
inline const unsigned char* doc_rows(const MaxSimArgs& a, const Plan& p, int64_t doc) {
  if (a.d_rows) return static_cast<const unsigned char*>(a.d_rows[doc]);
  return static_cast<const unsigned char*>(a.d_values) + a.d_offsets[doc] * a.dim * p.esize;
}

inline int64_t round16(int64_t x) { return (x + 15) / 16 * 16; }

// Pack query rows [lq, D] into dst (kslots * lqp floats; see MaxSimKernels for the layouts). Padding lanes are
// zero, and the driver never sums them. `tmp` holds lq * D floats when the input is fp16/bf16 (fp32 packing).
void pack_query(const Plan& p, const unsigned char* rows, int64_t lq, int64_t lqp, float* dst, float* tmp) {
  const int64_t D = p.dim;
  if (!p.pairs) {
    const float* src = reinterpret_cast<const float*>(rows);
    if (p.dtype != DType::kF32) {
      p.K->to_f32(rows, p.dtype, lq * D, tmp);
      src = tmp;
    }
    for (int64_t k = 0; k < D; ++k)
      for (int64_t l = lq; l < lqp; ++l) dst[k * lqp + l] = 0.0f;
    for (int64_t l = 0; l < lq; ++l) {
      const float* s = src + l * D;
      for (int64_t k = 0; k < D; ++k) dst[k * lqp + l] = s[k];
    }
    return;
  }
  const uint16_t* src = reinterpret_cast<const uint16_t*>(rows);
  const int64_t half = D / 2;
  for (int64_t kp = 0; kp < half; ++kp) {
    float* slot = dst + kp * lqp;
    for (int64_t l = 0; l < lqp; ++l) {
      uint32_t pair = 0;
      if (l < lq) pair = uint32_t(src[l * D + 2 * kp]) | (uint32_t(src[l * D + 2 * kp + 1]) << 16);
      std::memcpy(slot + l, &pair, sizeof pair);  // bf16 pair in a 32-bit slot, little-endian like vdpbf16ps
    }
  }
  if (D & 1) {
    float* last = dst + half * lqp;
    for (int64_t l = 0; l < lqp; ++l) last[l] = l < lq ? bf16_to_float(src[l * D + D - 1]) : 0.0f;
  }
}

struct QRef {
  const float* pack;
  int64_t lq, lqp;
  float* runmax;  // lqp floats
  float* out;     // where this query's score for the current document goes
};

float finish(const float* runmax, int64_t lq, bool mean) {
  double s = 0.0;  // Lq adds; double keeps the sum's own rounding out of the error budget
  for (int64_t l = 0; l < lq; ++l) s += runmax[l];
  if (mean) s /= static_cast<double>(lq);
  return static_cast<float>(s);
}

// Score one document (ld rows starting at `rows`) against qs[0..nq); writes *qs[i].out.
void score_doc(const Plan& p, const unsigned char* rows, int64_t ld, QRef* qs, int64_t nq, bool mean, float* conv) {
  constexpr float kNegInf = -std::numeric_limits<float>::infinity();
  if (ld == 0) {
    for (int64_t i = 0; i < nq; ++i) *qs[i].out = qs[i].lq == 0 ? 0.0f : kNegInf;
    return;
  }
  for (int64_t i = 0; i < nq; ++i) std::fill(qs[i].runmax, qs[i].runmax + qs[i].lqp, kNegInf);
  const int64_t lw = p.K->lane_width;
  for (int64_t t0 = 0; t0 < ld; t0 += p.chunk_rows) {
    const int64_t nr = std::min(p.chunk_rows, ld - t0);
    const unsigned char* src = rows + t0 * p.dim * p.esize;
    const void* block = src;
    if (!p.direct) {
      p.K->to_f32(src, p.dtype, nr * p.dim, conv);
      block = conv;
    }
    for (int64_t i = 0; i < nq; ++i) {
      const QRef& q = qs[i];
      for (int64_t l0 = 0; l0 < q.lqp; l0 += p.tile_lanes) {
        const int64_t lanes = std::min(p.tile_lanes, q.lqp - l0);
        p.tile(q.pack + l0, q.lqp, lanes / lw, p.dim, block, nr, q.runmax + l0);
      }
    }
  }
  for (int64_t i = 0; i < nq; ++i) *qs[i].out = qs[i].lq == 0 ? 0.0f : finish(qs[i].runmax, qs[i].lq, mean);
}

const Interrupt kNoInterrupt{};

inline const Interrupt& interrupt_of(const MaxSimArgs& a) { return a.interrupt ? *a.interrupt : kNoInterrupt; }

int64_t grain_for(int64_t n_items) {
  const int64_t per = (n_items + int64_t(max_threads()) * kItemsPerThread - 1) /
                      (int64_t(max_threads()) * kItemsPerThread);
  return std::max<int64_t>(1, per);
}

bool maxsim_all_pairs(const MaxSimArgs& a, const Plan& p) {
  const auto* qbytes = static_cast<const unsigned char*>(a.q_values);
  const int64_t B = a.n_queries, N = a.n_docs, D = a.dim;
  int64_t max_ld = 0;
  for (int64_t n = 0; n < N; ++n) max_ld = std::max(max_ld, a.d_offsets[n + 1] - a.d_offsets[n]);
  const int64_t conv_floats = p.direct ? 0 : std::min(p.chunk_rows, max_ld) * D;

  for (int64_t b0 = 0; b0 < B;) {
    // the query chunk [b0, b1): packed copy within the budget (at least one query)
    std::vector<int64_t> pack_off{0}, rm_off{0};
    int64_t b1 = b0, max_lq = 0;
    while (b1 < B) {
      const int64_t lq = a.q_offsets[b1 + 1] - a.q_offsets[b1], lqp = round16(lq);
      const int64_t slots = p.kslots * lqp;
      if (b1 > b0 && (pack_off.back() + slots) * 4 > kPackBudgetBytes) break;
      pack_off.push_back(pack_off.back() + slots);
      rm_off.push_back(rm_off.back() + lqp);
      max_lq = std::max(max_lq, lq);
      ++b1;
    }
    const int64_t nq = b1 - b0;
    Buffer packed(static_cast<size_t>(pack_off.back()));

    const int threads_pack = threads_for(nq, double(pack_off.back()), kMinMacsPerThread);
    const int64_t tmp_floats = p.pairs || p.dtype == DType::kF32 ? 0 : max_lq * D;
    std::vector<Buffer> tmp;
    for (int t = 0; t < threads_pack; ++t) tmp.emplace_back(static_cast<size_t>(tmp_floats));
    parallel_for(nq, 1, threads_pack, [&](int slot, int64_t lo, int64_t hi) {
      for (int64_t i = lo; i < hi; ++i) {
        const int64_t b = b0 + i, lq = a.q_offsets[b + 1] - a.q_offsets[b];
        pack_query(p, qbytes + a.q_offsets[b] * D * p.esize, lq, round16(lq), packed.data() + pack_off[i],
                   tmp[slot].data());
      }
    });

    // items: (document, query group); groups only when there are too few documents to keep every thread busy
    const int64_t want_items = int64_t(max_threads()) * 8;
    const int64_t groups = N >= want_items ? 1 : std::min(nq, (want_items + N - 1) / N);
    const int64_t per_group = (nq + groups - 1) / groups;
    const int64_t n_items = N * groups;
    const double macs = double(rm_off.back()) * double(a.d_offsets[N]) * double(D);  // padded lanes x tokens x D
    // pieces of ~kPieceMacsPerThread per thread, polled for interrupts in between; chunks sized per piece
    const int64_t piece = piece_items(n_items, macs, kPieceMacsPerThread * max_threads());
    const int64_t grain = grain_for(piece);
    const int threads = threads_for((n_items + grain - 1) / grain, macs, kMinMacsPerThread);

    std::vector<Buffer> runmax, conv;
    std::vector<std::vector<QRef>> refs(threads);
    for (int t = 0; t < threads; ++t) {
      runmax.emplace_back(static_cast<size_t>(rm_off.back()));
      conv.emplace_back(static_cast<size_t>(conv_floats));
      refs[t].resize(static_cast<size_t>(nq));
      for (int64_t i = 0; i < nq; ++i) {
        const int64_t lq = a.q_offsets[b0 + i + 1] - a.q_offsets[b0 + i];
        refs[t][i] = QRef{packed.data() + pack_off[i], lq, round16(lq), runmax[t].data() + rm_off[i], nullptr};
      }
    }
    const bool done = parallel_for_pieces(n_items, piece, grain, threads, interrupt_of(a),
                                          [&](int slot, int64_t lo, int64_t hi) {
      QRef* qr = refs[slot].data();
      for (int64_t it = lo; it < hi; ++it) {
        const int64_t n = it / groups, g = it % groups;
        const int64_t i0 = g * per_group, i1 = std::min(nq, i0 + per_group);
        if (i0 >= i1) continue;
        for (int64_t i = i0; i < i1; ++i) qr[i].out = a.out + (b0 + i) * N + n;
        score_doc(p, doc_rows(a, p, n), a.d_offsets[n + 1] - a.d_offsets[n], qr + i0, i1 - i0, a.reduce_mean,
                  conv[slot].data());
      }
    });
    if (!done) return false;
    b0 = b1;
    if (b0 < B && interrupt_of(a).stop()) return false;
  }
  return true;
}

bool maxsim_paired(const MaxSimArgs& a, const Plan& p) {
  const auto* qbytes = static_cast<const unsigned char*>(a.q_values);
  const int64_t B = a.n_queries, P = a.n_pairs, D = a.dim;
  const int64_t* di = a.doc_index;
  auto doc_of = [di](int64_t n) { return di ? di[n] : n; };
  int64_t max_lq = 0, max_ld = 0;
  for (int64_t b = 0; b < B; ++b) max_lq = std::max(max_lq, a.q_offsets[b + 1] - a.q_offsets[b]);
  double macs = 0.0;
  for (int64_t n = 0; n < P; ++n) {  // over pairs, not the corpus: a rerank touches only its candidates
    const int64_t doc = doc_of(n), ld = a.d_offsets[doc + 1] - a.d_offsets[doc];
    max_ld = std::max(max_ld, ld);
    macs += double(round16(a.q_offsets[a.query_index[n] + 1] - a.q_offsets[a.query_index[n]])) * double(ld) *
            double(D);
  }
  const int64_t max_lqp = round16(max_lq);
  const int64_t piece = piece_items(P, macs, kPieceMacsPerThread * max_threads());
  const int64_t grain = grain_for(piece);
  const int threads = threads_for((P + grain - 1) / grain, macs, kMinMacsPerThread);

  std::vector<Buffer> pack, runmax, conv, tmp;
  for (int t = 0; t < threads; ++t) {
    pack.emplace_back(static_cast<size_t>(p.kslots * max_lqp));
    runmax.emplace_back(static_cast<size_t>(max_lqp));
    conv.emplace_back(static_cast<size_t>(p.direct ? 0 : std::min(p.chunk_rows, max_ld) * D));
    tmp.emplace_back(static_cast<size_t>(p.pairs || p.dtype == DType::kF32 ? 0 : max_lq * D));
  }
  std::vector<int64_t> cached_query(threads, -1);  // per thread, across chunks: whose packing pack[slot] holds
  return parallel_for_pieces(P, piece, grain, threads, interrupt_of(a), [&](int slot, int64_t lo, int64_t hi) {
    int64_t& cached = cached_query[slot];
    QRef q{pack[slot].data(), 0, 0, runmax[slot].data(), nullptr};
    if (cached >= 0) {
      q.lq = a.q_offsets[cached + 1] - a.q_offsets[cached];
      q.lqp = round16(q.lq);
    }
    for (int64_t n = lo; n < hi; ++n) {
      const int64_t b = a.query_index[n];
      if (b != cached) {
        q.lq = a.q_offsets[b + 1] - a.q_offsets[b];
        q.lqp = round16(q.lq);
        pack_query(p, qbytes + a.q_offsets[b] * D * p.esize, q.lq, q.lqp, pack[slot].data(), tmp[slot].data());
        cached = b;
      }
      q.out = a.out + n;
      const int64_t doc = doc_of(n);
      score_doc(p, doc_rows(a, p, doc), a.d_offsets[doc + 1] - a.d_offsets[doc], &q, 1, a.reduce_mean,
                conv[slot].data());
    }
  });
}

}  // namespace

bool maxsim(const MaxSimArgs& args) {
  if (args.query_index == nullptr) {
    if (args.n_docs == 0 || args.n_queries == 0) return true;
    return maxsim_all_pairs(args, make_plan(args));
  }
  if (args.n_pairs == 0) return true;
  return maxsim_paired(args, make_plan(args));
}

}  // namespace fusedscore
