#!/usr/bin/env bash
# tests/gpu/check.sh: the ONE script to run on a lent GPU machine (ARCHITECTURE.md "GPU
# verification"). From the repository root:
#
#     tests/gpu/check.sh
#
# Two ways to get binaries, tried in this order:
#   carried: build-gpu-carry/ made on the build machine by tests/gpu/pack.sh (binaries for
#            sm_90 plus the non-system shared libraries they need; the device image may lack
#            the Debian -dev packages the build needs). Pass carry: ["build-gpu-carry"].
#   built:   configure + build build-gpu there with CUDA for the local arch only.
# Then: the GPU tests (ctest -L gpu when built there, the test programs directly when carried),
# bench_kernels --quick, bench/run_gpu.sh (clipskip bench + bench/baseline_hf.py on the same
# card, side by side), and compute-sanitizer memcheck and racecheck on the kernel test in quick
# mode while time is left.
# CHECK_STEPS / VARIANTS select steps for a targeted rerun (see want() below).
# Logs go to $OUT when set (at most 8 files come back), else build-gpu/check-logs. A short table
# is printed last. Budget: under 5 minutes (each step has a timeout; the sanitizers only run if
# enough time is left). Exit status: 0 when nothing failed (skips are not failures).
set -u
T0=$(date +%s)
BUDGET=${CHECK_BUDGET_S:-285}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT" || exit 1
LOG=${OUT:-$ROOT/build-gpu/check-logs}
mkdir -p "$LOG"
NAMES=() RESULTS=() SECS=() NOTES=()
FAILED=0

elapsed() { echo $(( $(date +%s) - T0 )); }
left() { echo $(( BUDGET - $(elapsed) )); }
# within MAX MARGIN: a step's time limit, MAX seconds or what is left but MARGIN, the smaller
within() { local l=$(( $(left) - $2 )); echo $(( l < $1 ? l : $1 )); }
# CHECK_STEPS=tests,variants (a comma list of: tests kernels bench memcheck newpaths variants
# racecheck) runs only those groups, e.g. for a targeted rerun on the same warm machine;
# default: all of them. VARIANTS="default pdl" replaces the variant list.
want() { [ -z "${CHECK_STEPS:-}" ] || [[ ",$CHECK_STEPS," == *",$1,"* ]]; }
record() { NAMES+=("$1"); RESULTS+=("$2"); SECS+=("$3"); NOTES+=("$4"); [ "$2" = FAIL ] || [ "$2" = TIMEOUT ] && FAILED=1; return 0; }
verdict() { case $1 in 0) echo PASS ;; 77) echo SKIP ;; 124|137) echo TIMEOUT ;; *) echo FAIL ;; esac; }

# run NAME LOGFILE TIMEOUT CMD...: append output to LOGFILE, record the verdict
run() {
    local name=$1 logf=$2 to=$3; shift 3
    local t=$(date +%s)
    echo "=== $name: $*" >>"$logf"
    timeout "$to" "$@" >>"$logf" 2>&1
    local rc=$?
    record "$name" "$(verdict $rc)" $(( $(date +%s) - t )) "rc=$rc"
    return $rc
}

# ---- the device
{
    echo "date: $(date -u +%FT%TZ)"
    echo "commit: $(git rev-parse --short HEAD 2>/dev/null)$(git diff --quiet 2>/dev/null || echo -dirty)"
    nvidia-smi --query-gpu=name,compute_cap,driver_version,memory.total,clocks.sm,clocks.max.sm --format=csv 2>&1
    nvcc --version 2>&1 | tail -1
    command -v compute-sanitizer
    uname -m
} >"$LOG/info.log" 2>&1
GPU=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)
ARCH=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -1 | tr -d '. ')
ARCH=${ARCH:-90}

# ---- binaries
CARRY=$ROOT/build-gpu-carry
# unpacked outside the carried folder (a dry run here must not grow what travels), and again
# whenever the archive differs from the one unpacked before (a warm machine keeps old copies)
UNP=$ROOT/build-gpu-run
unpack() { # unpack ARCHIVE DIR, with tar or else Python
    [ -f "$1" ] || return 0
    local sum
    sum=$(cksum <"$1")
    [ -d "$2" ] && [ "$(cat "$2/.archive" 2>/dev/null)" = "$sum" ] && return 0
    rm -rf "$2"
    mkdir -p "$2"
    tar xJf "$1" -C "$2" 2>/dev/null ||
        python3 -c 'import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])' "$1" "$2"
    echo "$sum" >"$2/.archive"
}
unpack "$CARRY/bin.tar.xz" "$UNP/bin"
if [ -x "$UNP/bin/test_gpu_invariance" ]; then
    MODE=carried
    BIN=$UNP/bin
    unpack "$CARRY/lib.tar.xz" "$UNP/lib"
    CUBLAS_DIR=$(python3 -c 'import nvidia.cublas, os; print(os.path.join(list(nvidia.cublas.__path__)[0], "lib"))' 2>/dev/null)
    export LD_LIBRARY_PATH="$UNP/lib:/usr/local/cuda/lib64:${CUBLAS_DIR:-}:${LD_LIBRARY_PATH:-}"
    export CS_TEST_DATA=$ROOT/tests/data
    { echo "carried build: $(cat "$CARRY/BUILD_INFO" 2>/dev/null)"; echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH";
      for b in "$BIN"/*; do echo "== ldd $b"; ldd "$b" | grep -E "not found|cublas|cudart"; done; } >>"$LOG/info.log" 2>&1
    record build "PASS" 0 "carried ($(cat "$CARRY/BUILD_INFO" 2>/dev/null | head -1))"
else
    MODE=built
    BIN=$ROOT/build-gpu
    t=$(date +%s)
    if cmake -S . -B build-gpu -DCLIPSKIP_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES="$ARCH" \
            -DCMAKE_BUILD_TYPE=Release >>"$LOG/info.log" 2>&1 &&
        timeout 200 cmake --build build-gpu -j"$(nproc)" >>"$LOG/info.log" 2>&1; then
        record build PASS $(( $(date +%s) - t )) "sm_$ARCH, -j$(nproc)"
    else
        record build FAIL $(( $(date +%s) - t )) "see info.log (no carried build either)"
    fi
fi

# ---- the GPU tests
if ! want tests; then
    :
elif [ "$MODE" = built ] && [ -f build-gpu/CTestTestfile.cmake ]; then
    t=$(date +%s)
    timeout 240 ctest --test-dir build-gpu -L gpu --output-on-failure --timeout 200 >"$LOG/tests.log" 2>&1
    rc=$?
    while read -r name res; do
        record "$name" "$res" "-" "ctest"
    done < <(sed -nE 's/.*Test +#[0-9]+: ([a-z_0-9]+) \.+[* ]*(Passed|Failed|Not Run|Skipped|Timeout|Exception).*/\1 \2/p' "$LOG/tests.log" |
             sed -E 's/ Passed$/ PASS/; s/ (Failed|Exception)$/ FAIL/; s/ (Skipped|Not Run)$/ SKIP/; s/ Timeout$/ TIMEOUT/')
    record "ctest -L gpu" "$( [ $rc = 0 ] && echo PASS || echo FAIL )" $(( $(date +%s) - t )) "rc=$rc"
elif [ "$MODE" = carried ]; then
    # the kernel test first; if it fails, once more without the never-run TMA wgmma variants
    # (gemm_wgmma_ws.cu), which then stay off for every later step so they cannot take the
    # other results down with them
    if [ -x "$BIN/test_gpu_invariance" ]; then
        run test_gpu_invariance "$LOG/tests.log" 90 "$BIN/test_gpu_invariance"
        rc=$?
        if [ $rc != 0 ] && [ $rc != 77 ]; then
            export CLIPSKIP_CUDA_WGMMA_WS=0
            run "test_gpu_invariance ws=0" "$LOG/tests.log" 90 "$BIN/test_gpu_invariance"
        fi
    fi
    for tbin in test_gpu_layer test_gpu_ops test_gpu_e2e; do
        [ -x "$BIN/$tbin" ] && run "$tbin" "$LOG/tests.log" 90 "$BIN/$tbin"
    done
fi

# ---- benchmarks
KB=$BIN/bench_kernels
[ -x "$KB" ] || KB=$BIN/bench/kernels/bench_kernels
want kernels && [ -x "$KB" ] && run bench_kernels "$LOG/bench_kernels.log" 90 "$KB" --quick

# clipskip bench (ViT-L random, cuda) + the HF transformers baseline on the same card, same
# shapes, same run, then the side-by-side table: bench/run_gpu.sh. Both JSON files are kept
# ($OUT brings back at most 8 files: info (with the build), tests (with the sanitizers),
# bench_kernels, bench_gpu (with the variants), summary and the two JSON make 7).
CLI=$BIN/clipskip
if ! want bench; then
    :
elif [ -x "$CLI" ] && [ -x bench/run_gpu.sh ]; then
    BT=$(within 120 60)
    if [ "$BT" -gt 30 ]; then
        BOUT=$(mktemp -d)
        # fewer points than run_gpu.sh's default (20 per side, ~2 minutes): the headline shapes
        run "bench + HF baseline" "$LOG/bench_gpu.log" "$BT" env OUT="$BOUT" \
            RUN_GPU_POINTS="--batch 1,8,256,1024 --clip-skip 1,2,12 --seconds 0.3 --warmup 2" \
            bench/run_gpu.sh "$CLI"
        cp "$BOUT/bench/clipskip_gpu.json" "$BOUT/bench/hf_gpu.json" "$LOG/" 2>/dev/null
    else
        record "bench + HF baseline" SKIP 0 "only $(left)s of the budget left"
    fi
else
    record "bench + HF baseline" SKIP 0 "no clipskip binary or bench/run_gpu.sh"
fi

# ---- compute-sanitizer on the kernel test, small shapes, while time is left: memcheck before
# the end-to-end variants (it covers the newest kernels), racecheck after them
TI=$BIN/test_gpu_invariance
[ -x "$TI" ] || TI=$BIN/tests/gpu/test_gpu_invariance
sanitize() { # sanitize TOOL MAX_SECONDS
    if ! command -v compute-sanitizer >/dev/null 2>&1 || [ ! -x "$TI" ]; then
        record "sanitizer $1" SKIP 0 "not installed or no test binary"
        return
    fi
    local L
    L=$(left)
    if [ "$L" -gt 40 ]; then
        run "sanitizer $1" "$LOG/tests.log" "$(within "$2" 15)" env CS_TEST_QUICK=1 \
            compute-sanitizer --tool "$1" --error-exitcode 3 "$TI"
    else
        record "sanitizer $1" SKIP 0 "only ${L}s of the budget left"
    fi
}
want memcheck && sanitize memcheck 60

# ---- the newer paths end to end, after the headline numbers are safe: the large GEMMs on a
# wgmma tile (Hopper only; elsewhere the encoder refuses the variable and the step fails fast,
# which then says so), every GEMM on a fixed split of K (cross-block at small batches, in
# registers at large ones; same tolerances, batch invariance at 1/7/64/513 included), and the
# clipskip program itself on CUDA (info, encode vs the CPU backend, serve)
E2E=$BIN/test_gpu_e2e
[ -x "$E2E" ] || E2E=$BIN/tests/gpu/test_gpu_e2e
if want newpaths && [ -x "$E2E" ] && [ "$(left)" -gt 60 ]; then
    run "test_gpu_e2e kchunk384" "$LOG/tests.log" "$(within 90 30)" env CLIPSKIP_CUDA_K_CHUNK=384 "$E2E"
fi
# the fused layer kernel (one cooperative kernel per run of layers for passes of <= 8 prompts): batch 1 and 7
# of the invariance check run fused, 64 and 513 not, so bitwise equality covers both paths
if want newpaths && [ -x "$E2E" ] && [ "$(left)" -gt 60 ]; then
    run "test_gpu_e2e fused8 kchunk384" "$LOG/tests.log" "$(within 90 30)" env CLIPSKIP_CUDA_FUSED_LAYER=8 \
        CLIPSKIP_CUDA_K_CHUNK=384 "$E2E"
fi
if want newpaths && [ -x "$E2E" ] && [ "$(left)" -gt 60 ]; then # the same in flow mode
    run "test_gpu_e2e fused8 flow" "$LOG/tests.log" "$(within 90 30)" env CLIPSKIP_CUDA_FUSED_LAYER=8 \
        CLIPSKIP_CUDA_FUSED_SYNC=flow CLIPSKIP_CUDA_K_CHUNK=384 "$E2E"
fi
if want newpaths && [ "$ARCH" = 90 ] && [ -x "$E2E" ] && [ "$(left)" -gt 60 ]; then
    if [ "${CLIPSKIP_CUDA_WGMMA_WS:-}" = 0 ]; then
        run "test_gpu_e2e wgmma" "$LOG/tests.log" "$(within 90 30)" env CLIPSKIP_CUDA_GEMM_LARGE_TILE=wgmma128x256k64p "$E2E"
    else # the TMA tile on large GEMMs, the split mma.sync tiles on small ones, one k_chunk
        run "test_gpu_e2e wgmma128x128ws kchunk384" "$LOG/tests.log" "$(within 90 30)" \
            env CLIPSKIP_CUDA_GEMM_LARGE_TILE=wgmma128x128ws CLIPSKIP_CUDA_K_CHUNK=384 "$E2E"
    fi
fi
if want newpaths && [ -x "$BIN/clipskip" ] && [ "$(left)" -gt 45 ]; then
    run "cli smoke (cuda)" "$LOG/tests.log" 40 tests/gpu/cli_smoke.sh "$BIN/clipskip"
fi

# ---- end-to-end variants at three batch sizes, full depth: the defaults (outputs in pinned
# memory from clipskip_host_alloc), outputs in malloc memory (driver copy), the same through
# the pinned staging + memcpy (CLIPSKIP_CUDA_DOWNLOAD=pinned), cuBLASLt GEMMs, f16 output, and
# each wgmma GEMM variant in place of the 128x128 tile (CLIPSKIP_CUDA_GEMM_LARGE_TILE), and
# fixed splits of K (CLIPSKIP_CUDA_K_CHUNK) and programmatic dependent launch
# (CLIPSKIP_CUDA_PDL) and the fused layer kernel (CLIPSKIP_CUDA_FUSED_LAYER=8: one cooperative
# kernel per run of layers for passes of <= 8 prompts): the batch-1 latency candidates;
# overlap256 / overlap64: passes of 256 / 64 prompts whose downloads run under the next pass
# (CLIPSKIP_CUDA_OVERLAP, CLIPSKIP_PASS_ROWS; 64 splits batch 256 into 4: the clip-skip goal's
# fixed cost at large k is the download); skips-f16-overlap64: batch 256 at clip skips 1, 2, 6
# and 12 with f16 output and overlap64, whose clip-skip scaling table the summary prints with
# the bench step's
if ! want variants; then
    :
elif [ -x "$CLI" ] && [ "$(left)" -gt 70 ]; then
    VB=(bench --random vit-l --backend cuda --batch 1,8,256,1024 --clip-skip 1 --seconds 0.3 --warmup 2 --no-text --quiet)
    # (wgmma128x128ws-kchunk384: that tile for large batches and the split mma.sync tiles for
    # small ones, under one k_chunk, i.e. both experiments promoted together)
    # in the order of what decides the most, since the budget may cut the tail: the baseline,
    # the TMA tiles (throughput goals), the batch-1 candidates, both promoted together, the
    # overlapped downloads, the cuBLASLt reference, then the rest
    WS=(wgmma128x128ws wgmma128x256ws)
    WSK=(wgmma128x128ws-kchunk384)
    if [ "${CLIPSKIP_CUDA_WGMMA_WS:-}" = 0 ]; then WS=(); WSK=(); fi
    # all-candidates: every experiment at once (the ws tile only while it is usable), i.e. where
    # the defaults would be if each one is promoted
    VS=(default all-candidates fused8-kchunk384 fused8-kchunk384-flow fused8 fused8-kchunk384-b1 fused8-kchunk384-b3 fused8-kchunk384-nopf "${WS[@]}" pdl-kchunk384 kchunk384 pdl "${WSK[@]}" overlap256 overlap64 skips-f16-overlap64 cublaslt
        kchunk768 wgmma128x128k64p wgmma128x256k64p wgmma128x128k64 wgmma128x256k64 bigg)
    # the download variants were measured on the H100 (bench/RESULTS.md, run 3): on request
    [ -n "${CHECK_ALL_VARIANTS:-}" ] && VS+=(pageable staged f16out)
    [ -n "${VARIANTS:-}" ] && read -r -a VS <<<"$VARIANTS"
    for v in "${VS[@]}"; do
        if [ "$(left)" -lt 45 ]; then
            record "variant $v" SKIP 0 "only $(left)s of the budget left"
            continue
        fi
        case $v in
        all-candidates)
            LT=wgmma128x128ws
            [ "${CLIPSKIP_CUDA_WGMMA_WS:-}" = 0 ] && LT=
            run "variant $v" "$LOG/bench_gpu.log" 40 env CLIPSKIP_CUDA_GEMM_LARGE_TILE=$LT \
                CLIPSKIP_CUDA_K_CHUNK=384 CLIPSKIP_CUDA_PDL=1 CLIPSKIP_CUDA_OVERLAP=1 \
                CLIPSKIP_PASS_ROWS=256 CLIPSKIP_CUDA_FUSED_LAYER=8 "$CLI" "${VB[@]}" ;;
        fused*) # the fused layer kernel: fusedN[-kchunkK][-bB][-nopf][-flow]: passes of <= N
            # prompts, a fixed split of K, B blocks per SM, no L2 prefetch of the weights,
            # per-row counters instead of grid barriers inside the layers
            FE=(CLIPSKIP_CUDA_FUSED_LAYER="$(echo "$v" | sed -E 's/^fused([0-9]+).*/\1/')")
            case $v in *-kchunk*) FE+=(CLIPSKIP_CUDA_K_CHUNK="$(echo "$v" | sed -E 's/.*-kchunk([0-9]+).*/\1/')") ;; esac
            case $v in *-b[123]) FE+=(CLIPSKIP_CUDA_FUSED_BLOCKS="${v##*-b}") ;; esac
            case $v in *-nopf) FE+=(CLIPSKIP_CUDA_FUSED_PREFETCH=0) ;; esac
            case $v in *-flow) FE+=(CLIPSKIP_CUDA_FUSED_SYNC=flow) ;; esac
            run "variant $v" "$LOG/bench_gpu.log" 40 env "${FE[@]}" "$CLI" "${VB[@]}" ;;
        wgmma*-kchunk*)
            run "variant $v" "$LOG/bench_gpu.log" 40 env CLIPSKIP_CUDA_GEMM_LARGE_TILE=${v%-kchunk*} \
                CLIPSKIP_CUDA_K_CHUNK=${v##*-kchunk} "$CLI" "${VB[@]}" ;;
        wgmma*) # the large-batch GEMMs on a wgmma tile (kernels/gemm_wgmma.cu), end to end
            run "variant $v" "$LOG/bench_gpu.log" 40 env CLIPSKIP_CUDA_GEMM_LARGE_TILE=$v "$CLI" \
                "${VB[@]}" ;;
        default) run "variant $v" "$LOG/bench_gpu.log" 40 "$CLI" "${VB[@]}" ;;
        kchunk*) run "variant $v" "$LOG/bench_gpu.log" 40 env CLIPSKIP_CUDA_K_CHUNK=${v#kchunk} "$CLI" \
                "${VB[@]}" ;;
        pdl) run "variant $v" "$LOG/bench_gpu.log" 40 env CLIPSKIP_CUDA_PDL=1 "$CLI" "${VB[@]}" ;;
        pdl-kchunk*) run "variant $v" "$LOG/bench_gpu.log" 40 env CLIPSKIP_CUDA_PDL=1 \
                CLIPSKIP_CUDA_K_CHUNK=${v#pdl-kchunk} "$CLI" "${VB[@]}" ;;
        overlap*) # passes of N rows, each one's download under the next one's compute
            run "variant $v" "$LOG/bench_gpu.log" 40 env CLIPSKIP_CUDA_OVERLAP=1 \
                CLIPSKIP_PASS_ROWS=${v#overlap} "$CLI" "${VB[@]}" ;;
        pageable) run "variant $v" "$LOG/bench_gpu.log" 40 "$CLI" "${VB[@]}" --out-memory pageable ;;
        staged) run "variant $v" "$LOG/bench_gpu.log" 40 env CLIPSKIP_CUDA_DOWNLOAD=pinned "$CLI" "${VB[@]}" --out-memory pageable ;;
        cublaslt) run "variant $v" "$LOG/bench_gpu.log" 40 "$CLI" "${VB[@]}" --gemm cublaslt ;;
        bigg) # SDXL's second tower (32 layers of 1280, never timed on a GPU yet)
            run "variant $v" "$LOG/bench_gpu.log" 40 "$CLI" "${VB[@]/vit-l/vit-bigg}" ;;
        f16out) run "variant $v" "$LOG/bench_gpu.log" 40 "$CLI" "${VB[@]}" --dtype f16 ;;
        skips-f16-overlap64) # the clip-skip goal where its fixed cost is smallest: f16 output,
            # each quarter's download under the next quarter's compute (its scaling table)
            run "variant $v" "$LOG/bench_gpu.log" 40 env CLIPSKIP_CUDA_OVERLAP=1 CLIPSKIP_PASS_ROWS=64 \
                "$CLI" bench --random vit-l --backend cuda --batch 256 --clip-skip 1,2,6,12 --seconds 0.3 \
                --warmup 2 --no-text --quiet --dtype f16 ;;
        esac
    done
else
    record "variants" SKIP 0 "only $(left)s of the budget left"
fi

want racecheck && sanitize racecheck 240

# ---- summary: bench table, then the step table (last, so the reply's tail shows it)
{
    if [ -f "$LOG/bench_gpu.log" ]; then
        sed -n '/^### clipskip vs HF/,$p' "$LOG/bench_gpu.log" | grep -E "^(\||###)" | head -30
        echo
    fi
    if grep -q "^=== variant" "$LOG/bench_gpu.log" 2>/dev/null; then
        echo "### variants (batch, p50 ms, device p50 ms, prompts/s)"
        awk '/^=== variant/{v=$3; sub(":","",v)} /^\| [0-9]+ \| 1 \|/ && v!="" {print "| " v " | " $2 " | " $10 " | " $16 " | " $20 " |"}' "$LOG/bench_gpu.log"
        echo
    fi
    if grep -q "^Clip-skip scaling" "$LOG/bench_gpu.log" 2>/dev/null; then
        echo "### clip-skip scaling (step | batch | clip skip | depth | ideal | p50/full | x ideal | device p50/full | x ideal; goal x ideal <= 1.05)"
        awk '/^=== /{v=$0; sub(/^=== /,"",v); sub(/:.*/,"",v); on=0}
             /^Clip-skip scaling/{on=1; next}
             on && !/^\|/ && !/^$/{on=0}
             on && /^\| [0-9]/{print "| " v " " $0}' "$LOG/bench_gpu.log"
        echo
    fi
    if [ -f "$LOG/bench_kernels.log" ]; then
        grep -E "^(device|ceilings)" "$LOG/bench_kernels.log"
        grep -E "^\|" "$LOG/bench_kernels.log"
        grep -E "^  clip-l fused" "$LOG/bench_kernels.log"
        echo
    fi
    echo "clipskip GPU check: ${GPU:-no GPU} (sm_$ARCH), $MODE build, $(git rev-parse --short HEAD 2>/dev/null), $(elapsed)s"
    printf "| %-22s | %-7s | %5s | %s\n" step result s note
    for i in "${!NAMES[@]}"; do
        printf "| %-22s | %-7s | %5s | %s\n" "${NAMES[$i]}" "${RESULTS[$i]}" "${SECS[$i]}" "${NOTES[$i]}"
    done
    echo "logs: $LOG"
} | tee "$LOG/summary.txt"
# failing test output, short, for the reply's tail
grep -hE "FAIL|CHECK failed|REQUIRE failed| failed at |error:" "$LOG/tests.log" 2>/dev/null | head -20
exit $FAILED
