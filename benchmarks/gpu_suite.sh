#!/usr/bin/env bash
# equivox GPU benchmark suite: construction, training step (fp32 + AMP) vs MONAI UNet of the same width at 96^3 and
# 128^3, exported inference, torch.compile (graph breaks), AMP equivariance error, activation-checkpointing memory.
# Writes benchmarks/results/gpu/*.json (+ plots). See benchmarks/gpu_suite.py for the sections and options.
#
#   bash benchmarks/gpu_suite.sh                               # on a CUDA machine (limit: 8 minutes)
#   bash benchmarks/gpu_suite.sh --device cpu --tiny --out /tmp/smoke   # CPU smoke run (seconds)
#
# Fails at once (exit 2) with a clear message when CUDA is absent and --device cpu is not given.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-}"
if [ -z "$PY" ]; then
  if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python; fi
fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
# hard wall-clock limit for the whole suite (sections also stop starting after --budget-s, default 450 s)
exec timeout --signal=TERM "${GPU_SUITE_TIMEOUT:-480}" "$PY" benchmarks/gpu_suite.py "$@"
