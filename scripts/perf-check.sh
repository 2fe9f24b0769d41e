#!/usr/bin/env bash
# Performance-regression check (README, "Performance regression tests").
#
#   scripts/perf-check.sh --against REV [--json FILE] [--rounds N] [--case ID]...
#       A/B: builds REV's `autotune` in .build-perf/<commit>/ (kept between runs) and this tree's, then measures
#       both interleaved on this machine (`autotune perf compare`). Exit 0: no regression; 2: a regression.
#   scripts/perf-check.sh [--json FILE] [--case ID]...
#       The suite against this device's committed baseline, Benchmarks/baselines/<device>.json (`autotune perf check`).
#   scripts/perf-check.sh --record [--runs N]
#       Records this device's baseline (commit the file it writes).
#
# Other options go to `autotune perf compare` / `autotune perf check` (see their --help). AUTOTUNE=path uses that
# binary as the head instead of building this tree's release build.
#
# Both sides run with XDG_CACHE_HOME=.build-perf/cache: the user's tuned database is left out (what is measured is
# the repository's shipped database and defaults), and PoCL's kernel cache is kept there between runs.
set -euo pipefail
caller=$PWD
# AUTOTUNE: a path (relative to where the script was started) or a command name on PATH.
if [ -n "${AUTOTUNE:-}" ]; then
    case "$AUTOTUNE" in
        /*) ;;
        */*) AUTOTUNE="$caller/$AUTOTUNE" ;;
        *) AUTOTUNE=$(command -v "$AUTOTUNE") || { echo "perf-check: AUTOTUNE=$AUTOTUNE is not a command" >&2; exit 64; } ;;
    esac
fi
cd "$(dirname "$0")/.."
root=$PWD
against=""
record=0
baselines_given=0
passed=()
while [ $# -gt 0 ]; do
    case "$1" in
        --against) [ $# -ge 2 ] || { echo "perf-check: --against needs a revision" >&2; exit 64; }; against=$2; shift 2 ;;
        --against=*) against=${1#--against=}; shift ;;
        --record) record=1; shift ;;
        --baselines|--baselines=*) baselines_given=1; passed+=("$1"); shift ;;
        *) passed+=("$1"); shift ;;
    esac
done
if [ -n "$against" ] && [ "$record" = 1 ]; then
    echo "perf-check: --record records this device's baseline; it does not go with --against" >&2
    exit 64
fi
scripts/setup.sh >&2
export XDG_CACHE_HOME="$root/.build-perf/cache"
mkdir -p "$XDG_CACHE_HOME"
# What is measured is this tree's kernels and shipped database: a developer's overrides would apply to both sides.
unset TUNEDKERNELS_KERNELS_DIR TUNEDKERNELS_TUNING_DB

head_label="$(git rev-parse --short=9 HEAD)"
# Tracked files changed since HEAD (what the head build holds beyond the commit).
if [ -n "$(git status --porcelain --untracked-files=no)" ]; then head_label="$head_label+changes"; fi
if [ -n "${AUTOTUNE:-}" ]; then
    head="$AUTOTUNE"
else
    echo "perf-check: building this tree's release autotune" >&2
    swift build -c release --product autotune >&2
    head="$(swift build -c release --show-bin-path)/autotune"
fi

if [ -z "$against" ]; then
    if [ "$baselines_given" = 0 ]; then passed=(--baselines "$root/Benchmarks/baselines" ${passed[@]+"${passed[@]}"}); fi
    # Paths the caller gave (--json FILE, --baselines DIR) are relative to where the script was started.
    cd "$caller"
    if [ "$record" = 1 ]; then
        exec "$head" perf check --record --commit "$head_label" ${passed[@]+"${passed[@]}"}
    fi
    exec "$head" perf check ${passed[@]+"${passed[@]}"}
fi

commit=$(git rev-parse --verify --quiet "$against^{commit}") || { echo "perf-check: $against is not a commit" >&2; exit 64; }
folder="$root/.build-perf/$commit"
label=$against
if [ ${#label} -gt 20 ]; then label=${commit:0:9}; fi
base="$folder/build/release/autotune"
if [ ! -x "$base" ]; then
    echo "perf-check: building $against ($commit) in $folder (kept for later runs)" >&2
    rm -rf "$folder/src"
    mkdir -p "$folder/src"
    git archive "$commit" | tar -x -C "$folder/src"
    (cd "$folder/src" && swift build -c release --product autotune --scratch-path "$folder/build") >&2
fi
cd "$caller"
exec "$head" perf compare --base "$base" --head "$head" --base-label "$label" --head-label "$head_label" ${passed[@]+"${passed[@]}"}
