#!/usr/bin/env bash
# Issue 3's device check as one prepared run on a lent GPU (device tool: run `bash benchmarks/gpu_check.sh`,
# timeout_s 600): build the package there, the Triton kernel tests on CUDA tensors (their larger GPU shapes),
# compute-sanitizer memcheck once over every kernel, then `fusedscore bench --device cuda`. Everything lands under
# $OUT: env.txt, build.log, tests.log, sanitizer.log, bench-cuda.json (copy it to benchmarks/results/).
# The device image has torch, triton, pybind11, scikit-build-core, cmake and ninja but no network: GPU peers
# (flash-maxsim, late-interaction-kernels) travel as wheels in .whl (see the device README), when carried.
set -uo pipefail
OUT=${OUT:-/tmp/fusedscore-gpu}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
PY=${PY:-python3}
QUICK=${QUICK:---quick}   # QUICK= for the full GPU workloads (1000 x 1,000,000 top-k: several minutes)
{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
  $PY -c "import sys, torch, triton; print(sys.version.split()[0], torch.__version__, triton.__version__)"; } \
  | tee "$OUT/env.txt"
$PY -m pip install -q --no-deps --no-build-isolation --no-index --target /tmp/fs-site . >"$OUT/build.log" 2>&1 \
  || { tail -40 "$OUT/build.log"; exit 1; }
if [ -d .whl ]; then $PY -m pip install -q --no-deps --no-index --target /tmp/fs-site .whl/*.whl >>"$OUT/build.log" 2>&1; fi
export PYTHONPATH=/tmp/fs-site
$PY -c "import fusedscore as fs; print(fs.backend_info()); print('warmup launches', fs.warmup())" | tee -a "$OUT/env.txt"
# the GPU cases sit beside the CPU ones in each op's test file, with "cuda" in their ids (conftest.backend_params)
timeout 240 $PY -m pytest -q -p no:cacheprovider -k cuda tests/test_maxsim.py tests/test_maxsim_lists.py \
  tests/test_maxsim_padded.py tests/test_maxsim_topk.py tests/test_sparse_dot.py tests/test_dense_dot.py \
  2>&1 | tee "$OUT/tests.log" | tail -15
timeout 120 $PY -m pytest -q -p no:cacheprovider tests/test_dispatch.py tests/test_fusion.py 2>&1 \
  | tee -a "$OUT/tests.log" | tail -5
timeout 150 compute-sanitizer --tool memcheck --error-exitcode 3 $PY benchmarks/sanitize_kernels.py 2>&1 \
  | tee "$OUT/sanitizer.log" | tail -8
timeout 300 $PY -m fusedscore.bench --device cuda $QUICK --quiet --out "$OUT/bench-cuda.json" 2>&1 | tail -5
$PY -m fusedscore report "$OUT/bench-cuda.json" 2>&1 | tee "$OUT/bench-cuda.md" | head -60
