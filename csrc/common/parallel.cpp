// The one piece of mutable threading state: the min-work scale of threads_for() (parallel.h).
#include <atomic>

#include "common/parallel.h"

namespace fusedscore {
namespace {
std::atomic<double>& scale_slot() {
  static std::atomic<double> scale{1.0};
  return scale;
}
}  // namespace

double min_work_scale() { return scale_slot().load(std::memory_order_relaxed); }
double set_min_work_scale(double scale) { return scale_slot().exchange(scale < 0.0 ? 0.0 : scale); }

}  // namespace fusedscore
