#!/usr/bin/env bash
# Builds a release `autotune` with the Swift standard library linked statically and gathers the shared
# libraries it needs (OpenCL ICD loader, OpenBLAS, CLBlast and their dependencies, but not glibc) into
# one folder that runs on an x86-64 Linux machine without Swift, given an OpenCL driver there.
#
#   scripts/device-bundle.sh [OUTPUT_DIR]      (default: bundle/)
#   OUTPUT_DIR/autotune devices                (the wrapper sets LD_LIBRARY_PATH to OUTPUT_DIR/lib)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-bundle}
scripts/setup.sh
swift build -c release --product autotune --static-swift-stdlib
bin="$(swift build -c release --show-bin-path)/autotune"
rm -rf "$out"
mkdir -p "$out/lib" "$out/bin"
cp "$bin" "$out/bin/autotune"
# Every resolved dependency except the C library family, which the target machine provides.
ldd "$bin" | awk '/=> \// { print $3 }' | while read -r lib; do
  case "$(basename "$lib")" in
    libc.so*|libm.so*|libpthread.so*|libdl.so*|librt.so*|ld-linux*|libresolv.so*) ;;
    *) cp -L "$lib" "$out/lib/" ;;
  esac
done
cat > "$out/autotune" <<'WRAPPER'
#!/usr/bin/env bash
here="$(cd "$(dirname "$0")" && pwd)"
export LD_LIBRARY_PATH="$here/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
exec "$here/bin/autotune" "$@"
WRAPPER
chmod +x "$out/autotune"
echo "bundle in $out/ ($(du -sh "$out" | cut -f1)): $(ls "$out/lib" | tr '\n' ' ')" >&2
