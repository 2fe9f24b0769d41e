#!/usr/bin/env bash
# Sets up the machine and runs the test suite (PoCL CPU device, oclgrind checks included).
#
# With no arguments the suites run in two test processes at once when the machine has two cores or more: most of
# the suite's time is OpenCL compilation, which runs on one core per process. Every test runs in exactly one of
# them (the first shard's suites by --filter, the second's by --skip of the same pattern). Arguments are passed to
# one `swift test` (e.g. `scripts/test.sh --filter GEMMTests`).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
# Tests build programs for many configurations: keep their binaries out of the user's cache.
export TUNEDKERNELS_PROGRAM_CACHE="${TUNEDKERNELS_PROGRAM_CACHE:-$PWD/.build/test-program-cache}"
swift build --build-tests
if [ $# -gt 0 ] || [ "$(nproc)" -lt 2 ]; then
    exec swift test --skip-build --no-parallel "$@"
fi
# The first shard: cut cross-entropy's own suite and a few light ones, none of which leaves buffers on the shared
# context that cut cross-entropy's memory test would count (about half of a cold run each).
first='CutCrossEntropyTests|ConformanceTests|ReliabilityTests|FamilyFixtureTests|SearchStrategyTests|ProgramCacheTests|BenchCommandTests|TuneCommandTests'
logs=$(mktemp -d)
start=$SECONDS
# Nothing is built (--skip-build), so the two may share the build folder: --ignore-lock keeps the second from
# waiting for the first.
swift test --skip-build --ignore-lock --no-parallel --filter "$first" >"$logs/1.log" 2>&1 &
one=$!
swift test --skip-build --ignore-lock --no-parallel --skip "$first" >"$logs/2.log" 2>&1 &
two=$!
status=0
wait "$one" || status=$?
wait "$two" || status=$?
for shard in 1 2; do
    echo "=== test shard $shard of 2 ==="
    cat "$logs/$shard.log"
done
echo "=== both shards: $((SECONDS - start)) s; $(grep -hE '^(✔|✘) Test run' "$logs"/*.log | tr '\n' ' ')"
rm -rf "$logs"
exit "$status"
