// parallel_for over [0, n) in chunks: OpenMP when the build has it, a serial loop otherwise.
//
// The body gets (slot, begin, end); `slot` is in [0, threads) and indexes per-thread scratch the caller
// allocated *before* the call, so nothing inside the parallel region allocates or throws (an exception
// escaping an OpenMP region terminates the process). Chunks are handed out dynamically: work items are
// ragged (documents differ in length), so static schedules leave one core idle at the end.
//
// Included by baseline-ISA translation units only.
#pragma once

#include <cstdint>

#if defined(FUSEDSCORE_HAVE_OPENMP)
#include <omp.h>
#endif

namespace fusedscore {

inline int max_threads() {
#if defined(FUSEDSCORE_HAVE_OPENMP)
  return omp_get_max_threads();
#else
  return 1;
#endif
}

inline bool have_openmp() {
#if defined(FUSEDSCORE_HAVE_OPENMP)
  return true;
#else
  return false;
#endif
}

// Scale on every `min_work` below (1 by default; tests set 0 so that small inputs exercise the threaded paths).
// Defined in parallel.cpp.
double min_work_scale();
double set_min_work_scale(double scale);  // returns the previous scale

// Number of threads for a parallel_for over `n_chunks` chunks doing `work` units in total: never more threads
// than chunks, and one more thread only per `min_work` units. Waking a team costs microseconds on an idle
// machine and up to a scheduler time slice on a busy one (the region ends only when every team thread has
// run), so short calls stay on the calling thread.
inline int threads_for(int64_t n_chunks, double work = 1e300, double min_work = 1.0) {
  int64_t t = max_threads();
  if (n_chunks < t) t = n_chunks;
  const double scaled = min_work * min_work_scale();
  const double by_work = scaled > 0.0 ? work / scaled : 1e300;
  if (by_work < static_cast<double>(t)) t = static_cast<int64_t>(by_work);
  return t < 1 ? 1 : static_cast<int>(t);
}

// Run body(slot, begin, end) over [0, n) split into chunks of `grain` items, on `threads` threads
// (from threads_for(ceil(n / grain))).
template <class Body>
void parallel_for(int64_t n, int64_t grain, int threads, const Body& body) {
  if (n <= 0) return;
  if (grain < 1) grain = 1;
#if defined(FUSEDSCORE_HAVE_OPENMP)
  const int64_t n_chunks = (n + grain - 1) / grain;
  if (threads > 1 && n_chunks > 1) {
#pragma omp parallel num_threads(threads)
    {
      const int slot = omp_get_thread_num();
#pragma omp for schedule(dynamic, 1) nowait
      for (int64_t c = 0; c < n_chunks; ++c) {
        const int64_t b = c * grain;
        body(slot, b, b + grain < n ? b + grain : n);
      }
    }
    return;
  }
#endif
  (void)threads;
  body(0, 0, n);
}

}  // namespace fusedscore
