#!/usr/bin/env bash
# Sets up the machine and runs the test suite (PoCL CPU device, oclgrind checks included).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
# Tests build programs for many configurations: keep their binaries out of the user's cache.
export TUNEDKERNELS_PROGRAM_CACHE="${TUNEDKERNELS_PROGRAM_CACHE:-$PWD/.build/test-program-cache}"
swift build --build-tests
swift test --skip-build --no-parallel "$@"
