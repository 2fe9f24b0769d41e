#!/usr/bin/env bash
# Proof that the performance-regression checks catch a regression (CI runs it; README, "Performance regression
# tests"). A tuning-database overlay (TUNEDKERNELS_TUNING_DB) plants a valid but slow configuration of GEMM
# 1024^3 half (the packed kernel with 4-wide vectors instead of 16-wide: about 3x slower on the CPU devices seen), then:
#   1. A/B, unplanted against unplanted: no regression (exit 0);
#   2. A/B, planted head against the unplanted base: exit 2, naming gemm/1024x1024x1024-half;
#   3. a baseline recorded here from the unplanted build: the unplanted build passes it, the planted fails (exit 2,
#      the case named).
# Uses AUTOTUNE=path when set, else this tree's release build.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
if [ -n "${AUTOTUNE:-}" ]; then
    autotune="$AUTOTUNE"
else
    swift build -c release --product autotune >&2
    autotune="$(swift build -c release --show-bin-path)/autotune"
fi
export XDG_CACHE_HOME="${XDG_CACHE_HOME:-$root/.build-perf/cache}"
mkdir -p "$XDG_CACHE_HOME"
unset TUNEDKERNELS_TUNING_DB TUNEDKERNELS_KERNELS_DIR
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
case_id=gemm/1024x1024x1024-half
cat > "$work/planted.json" <<'EOF'
{"schema": 2, "device": {"name": "planted by scripts/perf-proof.sh"}, "entries": [
  {"kernel": "gemm", "tags": {"layout": "nn", "precision": "half"}, "sizes": [1024, 1024, 1024, 1],
   "config": {"variant": "packed", "KC": 0, "MR": 6, "NR": 32, "PKU": 2, "PLM": 1, "PLN": 2, "TM": 16, "TN": 1, "VW": 4},
   "seconds": 0.01, "date": "2026-12-07T00:00:00Z"}]}
EOF
planted="TUNEDKERNELS_TUNING_DB=$work/planted.json"
failures=0

# expect STATUS FILE-OR-EMPTY DESCRIPTION -- COMMAND...: runs COMMAND, checks its exit status and that the verdict
# names the case when a regression is expected.
expect() {
    local want=$1 description=$2
    shift 3
    local status=0
    "$@" > "$work/out.txt" 2>"$work/err.txt" || status=$?
    cat "$work/out.txt"
    if [ "$status" != "$want" ]; then
        echo "perf-proof: FAILED: $description: exit $status, expected $want" >&2
        tail -5 "$work/err.txt" >&2
        failures=$((failures + 1))
    elif [ "$want" = 2 ] && ! grep -q "regression in .*$case_id" "$work/out.txt"; then
        echo "perf-proof: FAILED: $description: the verdict does not name $case_id" >&2
        failures=$((failures + 1))
    else
        echo "perf-proof: ok: $description (exit $status)"
    fi
}

expect 0 "A/B of the unplanted build against itself" -- \
    "$autotune" perf compare --base "$autotune" --head "$autotune" --case "$case_id"
expect 2 "A/B with the planted configuration in the head" -- \
    "$autotune" perf compare --base "$autotune" --head "$autotune" --head-env "$planted" --case "$case_id"
"$autotune" perf check --record --baselines "$work/baselines" --runs 3 --case "$case_id" > /dev/null
expect 0 "baseline check of the unplanted build" -- \
    "$autotune" perf check --baselines "$work/baselines" --case "$case_id"
expect 2 "baseline check with the planted configuration" -- \
    env "$planted" "$autotune" perf check --baselines "$work/baselines" --case "$case_id"
if [ "$failures" -gt 0 ]; then
    echo "perf-proof: $failures of 4 checks failed" >&2
    exit 1
fi
echo "perf-proof: all 4 checks hold"
