#!/usr/bin/env bash
# The GPU benchmarks in one go, for a session that is lent a GPU machine (the device tool):
# bench/train.py (earmark's pipeline vs the tutorial loop, MFU) and bench/infer.py (105k clips).
# Fetch the wheels first with bench/gpu_wheels.sh, then run from the repository root there:
#
#   run(command="bash bench/gpu_run.sh", carry=[".whl"], timeout_s=570)
#
# Each bench has its own time limit (180 + 120 + 240 s at most); on an H200 the whole script should
# take about 5 minutes, most of it writing the synthetic WAV files on the CPU.
#
# Output goes to $OUT (the device tool's folder that comes back) or ./gpu-out; each bench's
# report is also printed. SMOKE=1 runs tiny sizes (to try the script on a CPU machine); WHEELS names
# the wheel folder (default .whl; empty: install none, use what PYTHON already has).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-gpu-out}"
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
PY="${PYTHON:-python3}"
WHEELS="${WHEELS-.whl}"
if [ -n "$WHEELS" ] && [ -d "$WHEELS" ]; then
  rm -rf /tmp/earmark-site
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/earmark-site \
    "$WHEELS"/*.whl || { echo "FATAL: the wheels in $WHEELS did not install (run bench/gpu_wheels.sh here)"; exit 1; }
  export PYTHONPATH="/tmp/earmark-site${PYTHONPATH:+:$PYTHONPATH}"
fi
if [ "${SMOKE:-0}" = 1 ]; then
  TRAIN_ARGS="--clips 300 --steps 3 --batch-size 32"; INFER_ARGS="--clips 300 --batch-size 64"
else
  TRAIN_ARGS="--clips 20000 --steps 100 --batch-size 1024"; INFER_ARGS="--clips 105000 --batch-size 4096"
fi
{
  date -u; uname -m; nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null || true
  "$PY" -c "import sys, torch, numpy, soundfile, sqlalchemy; print(sys.version.split()[0], 'torch', torch.__version__, \
'cuda', torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else '-', \
'numpy', numpy.__version__, 'soundfile', soundfile.__version__, 'sqlalchemy', sqlalchemy.__version__)"
} 2>&1 | tee "$OUT/env.txt"
rc=0
echo "== bench/train.py $TRAIN_ARGS"
# shellcheck disable=SC2086
timeout 180 "$PY" bench/train.py $TRAIN_ARGS 2>&1 | tee "$OUT/train.txt" || rc=1
echo "== bench/train.py $TRAIN_ARGS --model m5 --steps 50"
# shellcheck disable=SC2086
timeout 120 "$PY" bench/train.py $TRAIN_ARGS --model m5 --steps 50 2>&1 | tee "$OUT/train_m5.txt" || rc=1
echo "== bench/infer.py $INFER_ARGS"
# shellcheck disable=SC2086
timeout 240 "$PY" bench/infer.py $INFER_ARGS 2>&1 | tee "$OUT/infer.txt" || rc=1
exit $rc
