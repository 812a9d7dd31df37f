#!/usr/bin/env bash
# The GPU collector on real hardware in one short run (about 2 minutes, at most 5):
# NVML calls per sample, cost, every field against nvidia-smi, `snapcloud record`,
# per-field latency. Prints markdown for docs/GPU.md and keeps it in $OUT (or .).
# Without a driver it says why and exits 2.  Usage: bash scripts/gpu_hw_check.sh [args]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
OUT_DIR=${OUT:-.}
mkdir -p "$OUT_DIR"
nvidia-smi -L 2>/dev/null || echo "(nvidia-smi -L: not available)"
exec timeout "${GPU_CHECK_TIMEOUT:-290}" "$PY" scripts/gpu_hw_check.py \
  --out "$OUT_DIR/gpu_hw_check-$(hostname)-$(date +%Y%m%d-%H%M%S).md" "$@"
