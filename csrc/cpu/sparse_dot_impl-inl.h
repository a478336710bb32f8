// Sparse dot, dense-row accumulation: the loop body once, included by each ISA translation unit after it
// defines, inside its own ISA namespace, a vector-traits struct SV (Vec, kLanes, load, store, set1, fma).
// No include guard on purpose: each ISA TU includes it once, into its own namespace.
//
// row[l] += sum_h w[h] * W[rows[h] * ldw + l] for l < lanes (a multiple of SV::kLanes): NV vectors of the
// document's score row stay in registers while every matching dense term adds its weight row, NV independent
// FMA chains, one FMA (with its load) per kLanes queries per term.

template <int NV>
static inline void rows_block(float* row, const float* W, int64_t ldw, const int32_t* rows, const float* w, int64_t n) {
  constexpr int64_t kW = SV::kLanes;
  typename SV::Vec acc[NV];
  for (int v = 0; v < NV; ++v) acc[v] = SV::load(row + v * kW);
  for (int64_t h = 0; h < n; ++h) {
    const float* src = W + rows[h] * ldw;
    const typename SV::Vec b = SV::set1(w[h]);
    for (int v = 0; v < NV; ++v) acc[v] = SV::fma(SV::load(src + v * kW), b, acc[v]);
  }
  for (int v = 0; v < NV; ++v) SV::store(row + v * kW, acc[v]);
}

static inline void dense_rows(float* row, const float* W, int64_t ldw, int64_t lanes, const int32_t* rows, const float* w,
                       int64_t n) {
  constexpr int64_t kW = SV::kLanes;
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
