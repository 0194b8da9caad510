#!/usr/bin/env bash
# The GPU issue's device check, sized for one short lease (under 8 minutes on one GPU): what the device can
# tell us that the emulation cannot. Writes env.txt, tests.txt, gpu.txt, gpu.json and gpu.md to $OUT.
#
#   bash benchmarks/gpu_check.sh             # on a machine with a GPU, nvcc and g++ (the device tool's image)
#   bash benchmarks/gpu_check.sh --emulate   # here, without a GPU: the same steps on the host emulation
#
# The device tool (run with carry ['.whl'] where wheels are needed, then fetch $OUT):
#   bash benchmarks/gpu_check.sh
# The tool's image has cupy-cuda13x 14 for its CUDA 13 driver (and numpy, llvmlite, networkx, pytest); nothing
# can be fetched there. Only if `import cupy, ml_dtypes` fails are the wheels in .whl/ installed (--no-index,
# into /tmp/site): download them here as the device notes say (python 3.12, manylinux x86_64), e.g.
#   pip download ml_dtypes --no-deps --only-binary=:all: --python-version 3.12 --platform manylinux2014_x86_64 -d .whl
# (bfloat16's dtype; the tool's image has it, as JAX's: without it the bfloat16 tests skip). A cupy-cuda12x wheel
# (CuPy 13.6.0, whose cupyx.cudnn runtime/cudnn.py uses) is 113 MB, past the 64 MiB a call carries, so on that
# image convolutions take the im2col + cuBLAS path and runtime.cudnn.decisions says why.
#
# Steps: (1) the machine: GPU, driver, nvcc, cupy; (2) the GPU tests: tests/test_cuda.py (nvcc for sm_80/sm_90,
# the emulation against the interpreter, and on a device every corpus model's plan through cupy against the CPU
# plan), test_gpu_ndarray.py (NDArrays on gc.gpu), test_gpu_training.py (hybridized training on gc.gpu: LeNet,
# ResNet-18, the char-LSTM against the CPU, in the stand-in and, on a device, through real cupy),
# test_gpu_update.py (the Trainer's multi-tensor kernels, float32/float64 and 16-bit weights with float32 masters),
# test_gpu_graphs.py (CUDA graphs), test_gpu_amp.py
# (float16/bfloat16 storage), test_gpu_cudnn.py (cuDNN and its im2col fallback), test_gpu_rnn.py (the fused RNN's
# device loop), test_gpu_arena.py (a plan's values in one device arena), test_bfloat16.py (bfloat16 NDArrays),
# test_serialization.py (.params files, bfloat16 with the image's ml_dtypes),
# over 8 pytest-xdist workers where it is installed and 8 cores are; (3) benchmarks/gpu.py: op by op vs
# hybridized per workload, whole steps on gc.gpu eager vs hybridized vs CUDA graphs, and each fused kernel's
# bandwidth beside a device-to-device copy.
set -u -o pipefail
cd "$(dirname "$0")/.."
EMU=()
LIMITS=(270 180)  # seconds for the tests and for gpu.py: together under 8 minutes of a lease
[ "${1:-}" = --emulate ] && EMU=(--emulate) && LIMITS=(900 600)  # (no lease here: a loaded machine may take longer)
OUT=${OUT:-build/gpu_check}
PY=${PYTHON:-python3}
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
t0=$SECONDS
status=0

if ! $PY -c "import cupy, ml_dtypes" 2>/dev/null && [ -z "${EMU[*]}" ] && ls .whl/*.whl >/dev/null 2>&1; then
  echo "== installing the carried wheels (.whl/) into /tmp/site"
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH="$PYTHONPATH:/tmp/site"
fi

{
  date -u
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1 || echo "no nvidia-smi"
  nvcc --version 2>&1 | tail -1 || echo "no nvcc"
  $PY -c "import sys, numpy, llvmlite; print(sys.version.split()[0], 'numpy', numpy.__version__, 'llvmlite', llvmlite.__version__)"
  $PY -c "import cupy; print('cupy', cupy.__version__, 'devices', cupy.cuda.runtime.getDeviceCount())" 2>&1 | tail -1
  $PY -c "import ml_dtypes; print('ml_dtypes', ml_dtypes.__version__)" 2>&1 | tail -1
  $PY -c "from graphc.runtime import cudnn; print('cuDNN:', cudnn.library()[1] or 'cupyx.cudnn')" 2>&1 | tail -1
} > "$OUT/env.txt" 2>&1
cat "$OUT/env.txt"

echo "== GPU tests ($((SECONDS - t0)) s)"
XDIST=()  # (pytest-xdist where installed and there are 8 cores or more: the device machine has 16)
[ "$(nproc)" -ge 8 ] && $PY -c "import xdist" 2>/dev/null && XDIST=(-n 8)
timeout "${LIMITS[0]}" $PY -m pytest -q -p no:randomly -p no:cacheprovider -rs "${XDIST[@]}" tests/test_cuda.py \
  tests/test_gpu_ndarray.py tests/test_gpu_training.py tests/test_gpu_update.py tests/test_gpu_graphs.py \
  tests/test_gpu_amp.py tests/test_gpu_cudnn.py tests/test_gpu_rnn.py tests/test_gpu_arena.py tests/test_bfloat16.py \
  tests/test_serialization.py \
  2>&1 | tee "$OUT/tests.txt" | tail -25 || status=1

echo "== benchmarks/gpu.py ($((SECONDS - t0)) s)"
timeout "${LIMITS[1]}" $PY benchmarks/gpu.py "${EMU[@]}" --json "$OUT/gpu.json" --md "$OUT/gpu.md" 2>&1 | tee "$OUT/gpu.txt" \
  || status=1

echo "== done in $((SECONDS - t0)) s, status $status; results in $OUT"
exit $status
