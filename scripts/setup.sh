#!/usr/bin/env bash
# Installs the system packages TunedKernels needs (OpenCL loader and headers, the PoCL CPU driver, cpp for a test,
# OpenBLAS, CLBlast, clinfo, oclgrind, zlib) when any is missing. Idempotent; needs root to install.
set -euo pipefail
packages=(pocl-opencl-icd ocl-icd-opencl-dev opencl-headers libopenblas-dev libclblast-dev clinfo oclgrind pkg-config zlib1g-dev cpp)
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all system packages present" >&2
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "setup: missing packages: ${missing[*]}" >&2
  echo "setup: run as root (or: sudo apt-get update && sudo apt-get install -y ${missing[*]})" >&2
  exit 1
fi
echo "setup: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
