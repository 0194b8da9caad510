#!/usr/bin/env bash
# The GPU issue's device check, sized for one short lease (under 8 minutes on one GPU): what the device can
# tell us that the emulation cannot. Writes env.txt, tests.txt, gpu.txt, gpu.json and gpu.md to $OUT.
#
#   bash benchmarks/gpu_check.sh             # on a machine with a GPU, cupy, nvcc and g++ (the device tool's image has them)
#   bash benchmarks/gpu_check.sh --emulate   # here, without a GPU: the same steps on the host emulation
#
# Steps: (1) the machine: GPU, driver, nvcc, cupy; (2) the GPU tests: tests/test_cuda.py (nvcc for sm_80/sm_90,
# the emulation against the interpreter, and on a device every corpus model's plan through cupy against the CPU
# plan), tests/test_gpu_ndarray.py (NDArrays on gc.gpu with the stand-in) and tests/test_gpu_training.py (hybridized
# training on gc.gpu: LeNet, ResNet-18, the char-LSTM against the CPU), tests/test_gpu_update.py (the Trainer's
# multi-tensor kernel) and tests/test_gpu_graphs.py (CUDA graphs); (3) benchmarks/gpu.py: op by op vs hybridized
# per workload, whole steps on gc.gpu eager vs hybridized vs CUDA graphs, and each fused kernel's bandwidth
# beside a device-to-device copy.
set -u -o pipefail
cd "$(dirname "$0")/.."
EMU=()
[ "${1:-}" = --emulate ] && EMU=(--emulate)
OUT=${OUT:-build/gpu_check}
PY=${PYTHON:-python3}
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
t0=$SECONDS
status=0

{
  date -u
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1 || echo "no nvidia-smi"
  nvcc --version 2>&1 | tail -1 || echo "no nvcc"
  $PY -c "import sys, numpy, llvmlite; print(sys.version.split()[0], 'numpy', numpy.__version__, 'llvmlite', llvmlite.__version__)"
  $PY -c "import cupy; print('cupy', cupy.__version__, 'devices', cupy.cuda.runtime.getDeviceCount())" 2>&1 | tail -1
} > "$OUT/env.txt" 2>&1
cat "$OUT/env.txt"

echo "== GPU tests ($((SECONDS - t0)) s)"
timeout 300 $PY -m pytest -p no:randomly -p no:cacheprovider -rs tests/test_cuda.py tests/test_gpu_ndarray.py tests/test_gpu_training.py \
  tests/test_gpu_update.py tests/test_gpu_graphs.py \
  2>&1 | tee "$OUT/tests.txt" | tail -25 || status=1

echo "== benchmarks/gpu.py ($((SECONDS - t0)) s)"
timeout 240 $PY benchmarks/gpu.py "${EMU[@]}" --json "$OUT/gpu.json" --md "$OUT/gpu.md" 2>&1 | tee "$OUT/gpu.txt" \
  || status=1

echo "== done in $((SECONDS - t0)) s, status $status; results in $OUT"
exit $status
