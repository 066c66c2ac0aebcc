#!/usr/bin/env bash
# Everything worth measuring on a borrowed GPU, in one run of under 6 minutes on one H100 (340 s budget):
#
#     OUT=/some/folder bash benchmarks/gpu_suite.sh            # optional: UGATIT_OFFICIAL=/path/to/UGATIT-pytorch
#
# golden parity on the device (fp32, TF32 off; bf16), `ugatit train` 200 iterations on 256 px shapes with
# the default fast path and with --eager, a profile of one eager iteration (benchmarks/profile_step.py),
# `ugatit bench` at 256 px (light and full; fp32: official loop, eager, CUDA graph; bf16: eager, CUDA graph),
# training as one torchrun rank, and the official code on the same data when UGATIT_OFFICIAL
# points at a clone. Each piece has its own time limit and may fail without stopping the others.
# Results: $OUT/suite.md (tables), $OUT/suite.json (every piece: command, status, time, output, figures),
# $OUT/bench *.json. Installs nothing; runs this checkout's src/ (the package need not be installed).
# Extra arguments go to benchmarks/gpu_suite.py (e.g. --quick: toy sizes, to check the plumbing on a CPU).
set -u
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export PYTHONPATH="$here/src${PYTHONPATH:+:$PYTHONPATH}"
exec "${PYTHON:-python}" "$here/benchmarks/gpu_suite.py" --out "${OUT:-gpu-suite-out}" "$@"
