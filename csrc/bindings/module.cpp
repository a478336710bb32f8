// fusedscore._native: the one pybind11 module. Bindings hold no maths: they check ndim, shape, dtype and
// contiguity of NumPy buffers (never converting: a wrong dtype is an error, not a silent copy), validate offsets
// and indices so malformed input raises instead of reading out of bounds, release the GIL and call the kernel.
// std::invalid_argument -> ValueError; py::type_error -> TypeError. Long calls stop between pieces of work when a
// Python signal handler raises (Ctrl-C: KeyboardInterrupt), instead of after the whole job.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <string>

#include "common/check.h"
#include "common/parallel.h"
#include "common/simd.h"
#include "cpu/maxsim.h"
#include "cpu/sparse_dot.h"

namespace py = pybind11;
using fusedscore::DType;
using fusedscore::fail;

#ifndef FUSEDSCORE_COMPILER
#define FUSEDSCORE_COMPILER "unknown"
#endif

namespace {

// numpy flag bits (stable ABI values)
constexpr int kCContiguous = 0x0001;
constexpr int kAligned = 0x0100;
constexpr int kWriteable = 0x0400;

std::string shape_str(const py::array& a) {
  std::string s = "(";
  for (py::ssize_t i = 0; i < a.ndim(); ++i) s += (i ? ", " : "") + std::to_string(a.shape(i));
  return s + (a.ndim() == 1 ? ",)" : ")");
}

std::string dtype_str(const py::array& a) { return py::str(a.dtype()).cast<std::string>(); }

// The object must be a numpy array (no conversion), C-contiguous, aligned, native byte order.
py::array as_array(const py::object& obj, const std::string& op, const std::string& arg) {
  if (!py::isinstance<py::array>(obj))
    throw py::type_error(op + ": " + arg + " must be a numpy.ndarray, got " +
                         py::str(py::type::of(obj).attr("__name__")).cast<std::string>());
  py::array a = py::reinterpret_borrow<py::array>(obj);
  if (!(a.flags() & kCContiguous) || !(a.flags() & kAligned))
    fail(op, arg, "C-contiguous and aligned", "an array with strides " + [&] {
      std::string s = "(";
      for (py::ssize_t i = 0; i < a.ndim(); ++i) s += (i ? ", " : "") + std::to_string(a.strides(i));
      return s + ")";
    }());
  if (!a.dtype().attr("isnative").cast<bool>())
    throw py::type_error(op + ": " + arg + " must be in native byte order, got " + dtype_str(a));
  return a;
}

void require_ndim(const py::array& a, py::ssize_t ndim, const std::string& op, const std::string& arg,
                  const std::string& shape_doc) {
  if (a.ndim() != ndim) fail(op, arg, "of shape " + shape_doc, shape_str(a));
}

// dtype kind and size, e.g. ('f', 4) for float32, ('u', 2) for uint16
void require_dtype(const py::array& a, char kind, py::ssize_t size, const std::string& op, const std::string& arg,
                   const std::string& name) {
  if (a.dtype().kind() != kind || a.itemsize() != size)
    throw py::type_error(op + ": " + arg + " must have dtype " + name + ", got " + dtype_str(a));
}

DType parse_dtype(const std::string& s, const std::string& op) {
  if (s == "float32") return DType::kF32;
  if (s == "float16") return DType::kF16;
  if (s == "bfloat16") return DType::kBF16;
  fail(op, "dtype", "'float32', 'float16' or 'bfloat16'", "'" + s + "'");
}

// values arrays: float32, float16, or uint16 carrying bf16 bits, as `dt` says
void require_values_dtype(const py::array& a, DType dt, const std::string& op, const std::string& arg) {
  switch (dt) {
    case DType::kF32: require_dtype(a, 'f', 4, op, arg, "float32 (dtype='float32')"); break;
    case DType::kF16: require_dtype(a, 'f', 2, op, arg, "float16 (dtype='float16')"); break;
    case DType::kBF16: require_dtype(a, 'u', 2, op, arg, "uint16 holding bf16 bits (dtype='bfloat16')"); break;
  }
}

py::array offsets_array(const py::object& obj, int64_t rows, const std::string& op, const std::string& arg) {
  py::array a = as_array(obj, op, arg);
  require_dtype(a, 'i', 8, op, arg, "int64");
  require_ndim(a, 1, op, arg, "[n+1]");
  if (a.shape(0) < 1) fail(op, arg, "of shape [n+1] with at least one element", shape_str(a));
  fusedscore::check_offsets(static_cast<const int64_t*>(a.data()), a.shape(0) - 1, rows, op, arg);
  return a;
}

// query_index: None or int64 [N] with entries in [0, B)
const int64_t* query_index_ptr(const py::object& obj, int64_t n_docs, int64_t n_queries, const std::string& op) {
  if (obj.is_none()) return nullptr;
  py::array a = as_array(obj, op, "query_index");
  require_dtype(a, 'i', 8, op, "query_index", "int64");
  require_ndim(a, 1, op, "query_index", "[N]=(" + std::to_string(n_docs) + ",)");
  if (a.shape(0) != n_docs) fail(op, "query_index", "of shape [N]=(" + std::to_string(n_docs) + ",)", shape_str(a));
  const auto* p = static_cast<const int64_t*>(a.data());
  fusedscore::check_index(p, n_docs, n_queries, op, "query_index");
  return p;
}

// doc_index: None or int64 [P] (P = len(query_index), the pairs) with entries in [0, N); paired mode only
const int64_t* doc_index_ptr(const py::object& obj, const py::object& query_index, int64_t n_pairs, int64_t n_docs,
                             const std::string& op) {
  if (obj.is_none()) return nullptr;
  if (query_index.is_none()) fail(op, "doc_index", "None in all-pairs mode (query_index=None)", "an array");
  py::array a = as_array(obj, op, "doc_index");
  require_dtype(a, 'i', 8, op, "doc_index", "int64");
  const std::string shape = "[P]=(" + std::to_string(n_pairs) + ",) like query_index";
  require_ndim(a, 1, op, "doc_index", shape);
  if (a.shape(0) != n_pairs) fail(op, "doc_index", "of shape " + shape, shape_str(a));
  const auto* p = static_cast<const int64_t*>(a.data());
  fusedscore::check_index(p, n_pairs, n_docs, op, "doc_index");
  return p;
}

float* out_ptr(const py::object& obj, const int64_t* qi, int64_t B, int64_t N, const std::string& op) {
  py::array a = as_array(obj, op, "out");
  require_dtype(a, 'f', 4, op, "out", "float32");
  if (!(a.flags() & kWriteable)) fail(op, "out", "writeable", "a read-only array");
  const bool ok = qi ? (a.ndim() == 1 && a.shape(0) == N) : (a.ndim() == 2 && a.shape(0) == B && a.shape(1) == N);
  if (!ok)
    fail(op, "out", qi ? "of shape [N]=(" + std::to_string(N) + ",)" :
                        "of shape [B, N]=(" + std::to_string(B) + ", " + std::to_string(N) + ")",
         shape_str(a));
  return static_cast<float*>(a.mutable_data());
}

// Python's signal handlers, run between pieces of a long kernel call (common/parallel.h: Interrupt). The GIL is
// retaken only for the check; a handler that raises (KeyboardInterrupt) leaves its exception set and stops the call.
bool poll_python_signals(void*) {
  py::gil_scoped_acquire gil;
  return PyErr_CheckSignals() != 0;
}

// Handlers run only in the main thread: other threads would retake the GIL between pieces for nothing.
fusedscore::Interrupt python_interrupt() {
  py::module_ threading = py::module_::import("threading");
  if (threading.attr("current_thread")().is(threading.attr("main_thread")())) return {&poll_python_signals, nullptr};
  return {};
}

// Run `kernel` (which returns false when stopped) without the GIL; a stop raises the handler's exception.
template <class Kernel>
void run_interruptible(const Kernel& kernel) {
  bool done;
  {
    py::gil_scoped_release nogil;
    done = kernel();
  }
  if (!done) throw py::error_already_set();
}

// The query values: checked before anything of the documents.
py::array query_values(const py::object& q_values, DType dt, const std::string& op) {
  py::array qv = as_array(q_values, op, "q_values");
  require_values_dtype(qv, dt, op, "q_values");
  require_ndim(qv, 2, op, "q_values", "[Tq, D]");
  return qv;
}

// Shared by maxsim and maxsim_rows: the query offsets, the modes and the output, then the call without the GIL.
// `td` is the documents' row count (d_offsets[-1]).
void maxsim_call(const std::string& op, const py::array& qv, const py::object& q_offsets, const void* d_values,
                 const void* const* d_rows, const py::object& d_offsets, int64_t td, int64_t dim_d,
                 const py::object& query_index, DType dt, bool reduce_mean, const py::object& out,
                 const py::object& doc_index) {
  const int64_t tq = qv.shape(0);
  // a side without tokens is never read, so its D need not match (an empty container may have D = 0)
  if (tq > 0 && td > 0 && qv.shape(1) != dim_d)
    fail(op, "d_values", "of shape [Td, D] with D=" + std::to_string(qv.shape(1)) + " to match q_values",
         "D=" + std::to_string(dim_d));
  py::array qo = offsets_array(q_offsets, tq, op, "q_offsets");
  py::array doff = offsets_array(d_offsets, td, op, "d_offsets");
  const int64_t B = qo.shape(0) - 1, N = doff.shape(0) - 1;
  // paired pairs: one per document, or with doc_index one per query_index entry (documents by id)
  int64_t P = N;
  if (!doc_index.is_none() && !query_index.is_none()) {
    py::array qa = as_array(query_index, op, "query_index");
    if (qa.ndim() == 1) P = qa.shape(0);
  }
  const int64_t* qi = query_index_ptr(query_index, P, B, op);
  const int64_t* di = doc_index_ptr(doc_index, query_index, P, N, op);
  const fusedscore::Interrupt intr = python_interrupt();
  fusedscore::MaxSimArgs args{qv.data(), static_cast<const int64_t*>(qo.data()), B,
                              d_values, static_cast<const int64_t*>(doff.data()), N,
                              tq > 0 ? qv.shape(1) : dim_d, dt, qi, reduce_mean,
                              out_ptr(out, qi, B, qi ? P : N, op), di, P, d_rows, &intr};
  run_interruptible([&] { return fusedscore::maxsim(args); });
}

void maxsim(const py::object& q_values, const py::object& q_offsets, const py::object& d_values,
            const py::object& d_offsets, const py::object& query_index, const std::string& dtype, bool reduce_mean,
            const py::object& out, const py::object& doc_index) {
  const std::string op = "maxsim";
  const DType dt = parse_dtype(dtype, op);
  py::array qv = query_values(q_values, dt, op);
  py::array dv = as_array(d_values, op, "d_values");
  require_values_dtype(dv, dt, op, "d_values");
  require_ndim(dv, 2, op, "d_values", "[Td, D]");
  maxsim_call(op, qv, q_offsets, dv.data(), nullptr, d_offsets, dv.shape(0), dv.shape(1), query_index, dt,
              reduce_mean, out, doc_index);
}

// Documents as a table of row pointers (each document its own C-contiguous [L_n, D] buffer, never packed). The
// addresses come from fusedscore._dispatch, which holds the buffers alive for the call and checked each one's
// shape, dtype, contiguity and device; here only the table's own shape and null entries can be checked.
void maxsim_rows(const py::object& q_values, const py::object& q_offsets, const py::object& d_rows,
                 const py::object& d_offsets, int64_t dim, const py::object& query_index, const std::string& dtype,
                 bool reduce_mean, const py::object& out, const py::object& doc_index) {
  const std::string op = "maxsim_rows";
  const DType dt = parse_dtype(dtype, op);
  py::array qv = query_values(q_values, dt, op);
  if (dim < 0) fail(op, "dim", ">= 0", std::to_string(dim));
  py::array rows = as_array(d_rows, op, "d_rows");
  require_dtype(rows, 'i', 8, op, "d_rows", "int64 (addresses)");
  py::array doff = as_array(d_offsets, op, "d_offsets");
  require_dtype(doff, 'i', 8, op, "d_offsets", "int64");
  require_ndim(doff, 1, op, "d_offsets", "[N+1]");
  if (doff.shape(0) < 1) fail(op, "d_offsets", "of shape [N+1] with at least one element", shape_str(doff));
  const int64_t n = doff.shape(0) - 1;
  if (rows.ndim() != 1 || rows.shape(0) != n)
    fail(op, "d_rows", "of shape [N]=(" + std::to_string(n) + ",) like d_offsets", shape_str(rows));
  const auto* off = static_cast<const int64_t*>(doff.data());
  const auto* ptrs = static_cast<const int64_t*>(rows.data());
  for (int64_t i = 0; i < n; ++i) {
    if (ptrs[i] == 0 && off[i + 1] != off[i])
      fail(op, "d_rows", "non-null for every non-empty document", "0 at position " + std::to_string(i));
  }
  static_assert(sizeof(int64_t) == sizeof(const void*), "addresses travel as int64");
  maxsim_call(op, qv, q_offsets, nullptr, reinterpret_cast<const void* const*>(ptrs), d_offsets,
              off[n], dim, query_index, dt, reduce_mean, out, doc_index);
}

void sparse_dot(const py::object& q_idx, const py::object& q_val, const py::object& q_off, const py::object& d_idx,
                const py::object& d_val, const py::object& d_off, const py::object& query_index, int64_t vocab_size,
                const std::string& dtype, const py::object& out) {
  const std::string op = "sparse_dot";
  const DType dt = parse_dtype(dtype, op);
  if (vocab_size <= 0) fail(op, "vocab_size", "> 0", std::to_string(vocab_size));
  py::array qi_ = as_array(q_idx, op, "q_idx"), qv = as_array(q_val, op, "q_val");
  py::array di = as_array(d_idx, op, "d_idx"), dv = as_array(d_val, op, "d_val");
  require_dtype(qi_, 'i', 4, op, "q_idx", "int32");
  require_dtype(di, 'i', 4, op, "d_idx", "int32");
  require_values_dtype(qv, dt, op, "q_val");
  require_values_dtype(dv, dt, op, "d_val");
  require_ndim(qi_, 1, op, "q_idx", "[nnz_q]");
  require_ndim(di, 1, op, "d_idx", "[nnz_d]");
  if (qv.ndim() != 1 || qv.shape(0) != qi_.shape(0))
    fail(op, "q_val", "of shape [nnz_q]=(" + std::to_string(qi_.shape(0)) + ",) like q_idx", shape_str(qv));
  if (dv.ndim() != 1 || dv.shape(0) != di.shape(0))
    fail(op, "d_val", "of shape [nnz_d]=(" + std::to_string(di.shape(0)) + ",) like d_idx", shape_str(dv));
  py::array qo = offsets_array(q_off, qi_.shape(0), op, "q_off");
  py::array doff = offsets_array(d_off, di.shape(0), op, "d_off");
  if (qi_.shape(0) > 0x7fffffff)  // the query index stores positions as int32
    fail(op, "q_idx", "shorter than 2**31 entries", std::to_string(qi_.shape(0)) + " entries");
  // query ids build the hash table, so they must be real ids; document ids are only looked up (any value is safe)
  const auto* qids = static_cast<const int32_t*>(qi_.data());
  for (py::ssize_t i = 0; i < qi_.shape(0); ++i) {
    if (qids[i] < 0 || qids[i] >= vocab_size)
      fail(op, "q_idx", "in [0, vocab_size=" + std::to_string(vocab_size) + ")",
           std::to_string(qids[i]) + " at position " + std::to_string(i));
  }
  const int64_t B = qo.shape(0) - 1, N = doff.shape(0) - 1;
  const int64_t* qi = query_index_ptr(query_index, N, B, op);
  const fusedscore::Interrupt intr = python_interrupt();
  fusedscore::SparseDotArgs args{qids, qv.data(), static_cast<const int64_t*>(qo.data()), B,
                                 static_cast<const int32_t*>(di.data()), dv.data(),
                                 static_cast<const int64_t*>(doff.data()), N, qi, vocab_size, dt,
                                 out_ptr(out, qi, B, N, op), &intr};
  run_interruptible([&] { return fusedscore::sparse_dot(args); });
}

py::dict info() {
  py::dict d;
  d["simd"] = fusedscore::simd_level_name(fusedscore::active_simd_level());
  py::list levels;
  for (auto l : fusedscore::available_simd_levels()) levels.append(fusedscore::simd_level_name(l));
  d["simd_levels"] = levels;
  const std::string note = fusedscore::simd_note();
  d["simd_note"] = note.empty() ? py::object(py::none()) : py::object(py::str(note));
  d["openmp"] = fusedscore::have_openmp();
  d["threads"] = fusedscore::max_threads();
  d["f16c"] = fusedscore::cpu_has_f16c();
  d["avx512bf16"] = fusedscore::cpu_has_avx512bf16();
  d["compiler"] = FUSEDSCORE_COMPILER;
  return d;
}

std::string set_simd(const std::string& level) {
  fusedscore::SimdLevel l;
  if (!fusedscore::parse_simd_level(level, &l))
    fail("set_simd", "level", "one of 'scalar', 'avx2', 'avx512', 'avx512bf16'", "'" + level + "'");
  return fusedscore::simd_level_name(fusedscore::set_active_simd_level(l));
}

}  // namespace

PYBIND11_MODULE(_native, m) {
  m.doc() = "fusedscore C++ CPU kernels (MaxSim, sparse dot); see fusedscore/_native.pyi";
  m.def("maxsim", &maxsim, py::arg("q_values"), py::arg("q_offsets"), py::arg("d_values"), py::arg("d_offsets"),
        py::arg("query_index"), py::arg("dtype"), py::arg("reduce_mean"), py::arg("out"),
        py::arg("doc_index") = py::none(),
        "MaxSim scores into out ([B, N] all-pairs, [N] when query_index is given, [P] with doc_index); see "
        "_native.pyi.");
  m.def("maxsim_rows", &maxsim_rows, py::arg("q_values"), py::arg("q_offsets"), py::arg("d_rows"),
        py::arg("d_offsets"), py::arg("dim"), py::arg("query_index"), py::arg("dtype"), py::arg("reduce_mean"),
        py::arg("out"), py::arg("doc_index") = py::none(),
        "maxsim with each document in its own buffer (a table of row addresses); see _native.pyi.");
  m.def("sparse_dot", &sparse_dot, py::arg("q_idx"), py::arg("q_val"), py::arg("q_off"), py::arg("d_idx"),
        py::arg("d_val"), py::arg("d_off"), py::arg("query_index"), py::arg("vocab_size"), py::arg("dtype"),
        py::arg("out"), "Sparse dot products into out ([B, N] or [N]); see _native.pyi.");
  m.def("info", &info, "Build and CPU facts: SIMD level in use and available, OpenMP, threads, compiler.");
  m.def("set_simd", &set_simd, py::arg("level"), "Switch the SIMD level (tests); returns the previous one.");
  m.def("_set_min_work_scale", &fusedscore::set_min_work_scale, py::arg("scale"),
        "Tests: scale the least work per extra thread and per interruptible piece (0 = thread even tiny calls, "
        "one item a piece); returns the previous scale.");
}
