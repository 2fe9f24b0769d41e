#!/usr/bin/env bash
# The main job: sets up, builds the release `autotune`, tunes HGEMM 1024^3 on the default device with
# a small budget, then benchmarks it against OpenBLAS and CLBlast and prints the table.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
swift build -c release --product autotune
autotune=$(swift build -c release --show-bin-path)/autotune
shape=${SHAPE:-1024x1024x1024}
"$autotune" devices
"$autotune" tune gemm --shape "$shape" --precision half --budget "${BUDGET:-12}"
"$autotune" bench gemm --shape "$shape" --precision half --rounds 3
