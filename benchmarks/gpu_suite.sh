#!/usr/bin/env bash
# Everything worth measuring on a borrowed GPU, in one short run (about 5 minutes on an H100):
# golden parity on the device, then seconds / FLOPs / peak memory per iteration at 256 px for the
# light and full models in fp32 and bf16, ours against the official dead work. Tables go to stdout
# and JSON to ${OUT:-.}; copy the tables into docs/benchmarks.md with the card's name.
set -euo pipefail
out="${OUT:-.}"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python benchmarks/golden_on_device.py --device cuda
python benchmarks/golden_on_device.py --device cuda --precision bf16
for model in --light ""; do
  for precision in fp32 bf16; do
    python benchmarks/bench_step.py --img-size 256 $model --precision "$precision" --device cuda \
      --iters 20 --warmup 3 --json "$out/step_256${model}_${precision}.json"
  done
done
