// Input checks shared by the bindings and the drivers: each throws std::invalid_argument (ValueError in
// Python) with the message "<op>: <arg> must be <expected>, got <actual>".
// Included by baseline-ISA translation units only.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>

namespace fusedscore {

[[noreturn]] inline void fail(const std::string& op, const std::string& arg, const std::string& expected,
                              const std::string& actual) {
  throw std::invalid_argument(op + ": " + arg + " must be " + expected + ", got " + actual);
}

// offsets [n+1]: offsets[0] == 0, non-decreasing, offsets[n] == rows. O(n), far below the cost of scoring,
// and it makes a malformed call an exception instead of an out-of-bounds read.
inline void check_offsets(const int64_t* off, int64_t n, int64_t rows, const std::string& op, const std::string& arg) {
  if (off[0] != 0) fail(op, arg + "[0]", "0", std::to_string(off[0]));
  for (int64_t i = 0; i < n; ++i) {
    if (off[i + 1] < off[i])
      fail(op, arg, "non-decreasing",
           arg + "[" + std::to_string(i) + "]=" + std::to_string(off[i]) + " > " + arg + "[" + std::to_string(i + 1) +
               "]=" + std::to_string(off[i + 1]));
  }
  if (off[n] != rows)
    fail(op, arg + "[-1]", "the number of rows (" + std::to_string(rows) + ")", std::to_string(off[n]));
}

// index [n]: every entry in [0, bound).
inline void check_index(const int64_t* idx, int64_t n, int64_t bound, const std::string& op, const std::string& arg) {
  for (int64_t i = 0; i < n; ++i) {
    if (idx[i] < 0 || idx[i] >= bound)
      fail(op, arg, "in [0, " + std::to_string(bound) + ")",
           std::to_string(idx[i]) + " at position " + std::to_string(i));
  }
}

}  // namespace fusedscore
