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

// Scale on every `min_work` below and on the work per interrupt piece (1 by default; tests set 0 so that small
// inputs exercise the threaded paths and the piece loop).
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

// Polled by the drivers on the calling thread between pieces of a long call, never inside a parallel region (no
// team thread is working then): true means stop now. The bindings poll Python's signal handlers this way, so
// Ctrl-C ends a call within about one piece instead of after the whole job.
struct Interrupt {
  bool (*poll)(void*) = nullptr;
  void* ctx = nullptr;
  bool stop() const { return poll != nullptr && poll(ctx); }
};

// Items per piece for a call of `n` items doing `work` units in total: about `piece_work` units a piece (at
// least one item). One piece is the whole call when it is short. min_work_scale() scales `piece_work` too, so
// tests (scale 0: one item a piece) run the piece loop on small inputs.
inline int64_t piece_items(int64_t n, double work, double piece_work) {
  piece_work *= min_work_scale();
  if (n <= 0 || work <= piece_work) return n > 0 ? n : 1;
  const double items = double(n) * piece_work / work;
  return items < 1.0 ? 1 : static_cast<int64_t>(items);
}

// parallel_for over [0, n) as consecutive pieces of `piece` items (each split into chunks of `grain`), polling
// `intr` between pieces. body(slot, begin, end) gets absolute item indices. Returns false when stopped early.
template <class Body>
bool parallel_for_pieces(int64_t n, int64_t piece, int64_t grain, int threads, const Interrupt& intr,
                         const Body& body) {
  if (piece < 1) piece = 1;
  for (int64_t p0 = 0; p0 < n; p0 += piece) {
    const int64_t len = piece < n - p0 ? piece : n - p0;
    parallel_for(len, grain, threads, [&](int slot, int64_t b, int64_t e) { body(slot, p0 + b, p0 + e); });
    if (p0 + len < n && intr.stop()) return false;
  }
  return true;
}

}  // namespace fusedscore
