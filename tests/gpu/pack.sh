#!/usr/bin/env bash
# tests/gpu/pack.sh: build the GPU test programs HERE (the build machine, where every Debian
# -dev package is installed) for one arch and bundle them with the non-system shared libraries
# they load, into build-gpu-carry/ (git-ignored), so that tests/gpu/check.sh can run them on a
# lent GPU machine whose image lacks those packages. Then call the device with
#     command: tests/gpu/check.sh        carry: ["build-gpu-carry"]
# Usage: tests/gpu/pack.sh [ARCH]   (default 90: H100/H200, with the wgmma GEMM's sm_90a code).
# The carry limit is 64 MiB in all.
# Not bundled: libc/libm/libstdc++/libgcc (the device's are newer), libcuda (the driver's) and
# libcublasLt (hundreds of MB; check.sh finds the device's own CUDA 13 copy).
set -eu
ARCH=${1:-90}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
B=build-gpu-pack
OUTD=build-gpu-carry
cmake -S . -B "$B" -DCLIPSKIP_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES="$ARCH" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$B" -j2
rm -rf "$OUTD"
mkdir -p "$OUTD/bin" "$OUTD/lib"
for f in "$B"/tests/gpu/test_gpu_* "$B"/bench/kernels/bench_kernels "$B"/clipskip; do
    [ -x "$f" ] && [ -f "$f" ] && cp "$f" "$OUTD/bin/"
done
strip --strip-unneeded "$OUTD"/bin/* 2>/dev/null || true
# every resolved library except the base system, the driver and cuBLASLt, xz-compressed: the
# fixtures already take ~38 MB of the 64 MiB that travel, and libopenblas alone is 36 MB raw
# (~5 MB compressed). check.sh unpacks it on the device.
ldd "$OUTD"/bin/* | awk '/=> \//{print $3}' | sort -u | while read -r lib; do
    case $(basename "$lib") in
    libc.so*|libm.so*|libdl.so*|librt.so*|libpthread.so*|ld-linux*|libgcc_s*|libstdc++*|libcuda.so*|libcublasLt*|libcublas.so*) ;;
    *) cp -L "$lib" "$OUTD/lib/" ;;
    esac
done
tar cJf "$OUTD/lib.tar.xz" -C "$OUTD/lib" .
rm -rf "$OUTD/lib"
{
    echo "sm_$ARCH, commit $(git rev-parse --short HEAD)$(git diff --quiet || echo -dirty), built $(date -u +%FT%TZ) on $(. /etc/os-release; echo "$PRETTY_NAME")"
    ls "$OUTD/bin"
} >"$OUTD/BUILD_INFO"
# the binaries too (each links every GEMM configuration: ~6-8 MB each raw); check.sh unpacks
tar cJf "$OUTD/bin.tar.xz" -C "$OUTD/bin" .
rm -rf "$OUTD/bin"
du -sh "$OUTD" "$OUTD"/*.tar.xz | sort -h
echo "carry build-gpu-carry: with the working tree it must stay under 64 MiB (du -sh --exclude=.git --exclude='build*' .)"
