// MaxSim leaf kernels for the baseline ISA: the plain loop (the compiler may auto-vectorise it for the baseline
// ISA, SSE2 on x86-64 or NEON on aarch64). Also the reference point every SIMD level is tested against.
#include "common/half.h"
#include "cpu/maxsim.h"

namespace fusedscore {
namespace cpu {
namespace scalar {

constexpr int64_t kLaneWidth = 16;
constexpr int64_t kTileLanes = 64;

void tile_max(const float* q, int64_t ldq, int64_t nv, int64_t dim, const void* dv, int64_t nrows, float* runmax) {
  const float* d = static_cast<const float*>(dv);
  const int64_t lanes = nv * kLaneWidth;
  float acc[kTileLanes];
  for (int64_t r = 0; r < nrows; ++r) {
    const float* row = d + r * dim;
    for (int64_t l = 0; l < lanes; ++l) acc[l] = 0.0f;
    for (int64_t k = 0; k < dim; ++k) {
      const float b = row[k];
      const float* qk = q + k * ldq;
      for (int64_t l = 0; l < lanes; ++l) acc[l] += qk[l] * b;
    }
    for (int64_t l = 0; l < lanes; ++l) runmax[l] = acc[l] > runmax[l] ? acc[l] : runmax[l];
    runmax[0] += acc[0] * 0.0f;  // NaN-sticky first lane (see TileMaxFn): NaN/Inf in the row -> NaN for good
  }
}

void to_f32(const void* src, DType dtype, int64_t n, float* dst) {
  const uint16_t* s = static_cast<const uint16_t*>(src);
  if (dtype == DType::kBF16) {
    for (int64_t i = 0; i < n; ++i) dst[i] = bf16_to_float(s[i]);
  } else {
    for (int64_t i = 0; i < n; ++i) dst[i] = half_to_float(s[i]);
  }
}

}  // namespace scalar

MaxSimKernels maxsim_kernels_scalar() {
  return {"scalar", scalar::kLaneWidth, scalar::kTileLanes, &scalar::tile_max, &scalar::to_f32, nullptr};
}

}  // namespace cpu
}  // namespace fusedscore
