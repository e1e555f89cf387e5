#!/usr/bin/env bash
# The GPU acceptance run as one command (see benchmarks/gpu_acceptance.py for what it measures).
#     bash benchmarks/gpu_acceptance.sh [OUT_DIR] [--cpu]      # OUT_DIR defaults to $OUT
# On one H100 it finishes within 8 minutes with nothing downloaded (random weights built on the
# GPU from the released LLaDA-8B and Dream-7B shapes); --cpu runs reduced shapes on the CPU.
# Needs ../shared/fixtures/dllm-code (or BENCH_DLLM_FIXTURES) for the released model code.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
PY=${PYTHON:-$( [[ -x .venv/bin/python ]] && echo .venv/bin/python || echo python3 )}
exec timeout 540 "$PY" benchmarks/gpu_acceptance.py "$@"
