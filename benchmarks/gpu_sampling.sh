#!/usr/bin/env bash
# Fast sampling's device checks (issue 13) as one prepared script, for a GPU machine.
#
# Here (the machine with the run), copy what the GPU machine lacks into an ignored folder:
#     bash benchmarks/gpu_sampling.sh prepare runs/NAME     # a finished run with lora and nara cells
# then, from the repo root on the GPU machine (the device tool: carry ["runs/gpu-carry"]):
#     bash benchmarks/gpu_sampling.sh
# It needs torch, transformers, peft, typer, pyyaml and pandas (the GPU image has them; lm-eval
# and datasets are not needed). Everything runs under bf16 autocast, as the harness evaluates on
# CUDA. About 3-5 minutes on an H200; results go to $OUT (or /tmp/gpu-sampling).
set -euo pipefail
CARRY=runs/gpu-carry

if [[ "${1:-}" == "prepare" ]]; then
    run=${2:?usage: gpu_sampling.sh prepare RUN_FOLDER}
    cache=${BENCH_CACHE:-$HOME/.cache/bench}
    fixtures=${BENCH_DLLM_FIXTURES:-../shared/fixtures/dllm-code}
    rm -rf "$CARRY" && mkdir -p "$CARRY/cache"
    cp -r "$run" "$CARRY/run"
    cp -r "$cache"/tiny-base-* "$CARRY/cache/"
    cp -r "$fixtures" "$CARRY/dllm-code"
    du -sh "$CARRY"
    exit 0
fi

export BENCH_CACHE=$PWD/$CARRY/cache BENCH_DLLM_FIXTURES=$PWD/$CARRY/dllm-code
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
OUT=${OUT:-/tmp/gpu-sampling}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
"$PY" -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())"

# The tiny base with the run's LoRA and NaRA adapters: gen 256 (batch 1 and 16) and gen 512.
"$PY" benchmarks/bench_sampler.py --run "$CARRY/run" --device cuda --threads 4 \
    --gen-length 256 --block 32 --batches 1,16 --repeats 3 --skip-accuracy | tee "$OUT/sampler-256.txt"
"$PY" benchmarks/bench_sampler.py --run "$CARRY/run" --device cuda --threads 4 \
    --gen-length 512 --block 32 --batches 1 --repeats 3 --skip-accuracy | tee "$OUT/sampler-512.txt"
# The same accuracy run as on the CPU, in bf16 (gen 32 block 32, three synthetic suites).
"$PY" benchmarks/bench_sampler.py --run "$CARRY/run" --device cuda --skip-speed \
    --lengths 32/32 --tasks synth_math,synth_choice,synth_code | tee "$OUT/accuracy-bf16.txt" || true
# The released LLaDA and Dream code (random weights, bf16): the cached window against the
# uncached forward, then plain / prefix / dual timings at two sizes.
"$PY" benchmarks/bench_released_cache.py --device cuda --hidden 1024 --layers 8 \
    --gen-length 256 --block 32 --batch 1 --repeats 3 | tee "$OUT/released-256.txt"
"$PY" benchmarks/bench_released_cache.py --device cuda --hidden 2048 --layers 8 \
    --gen-length 512 --block 32 --batch 1 --repeats 2 | tee "$OUT/released-512.txt"
