#!/usr/bin/env bash
# The quick GPU benchmark that tests/gpu/check.sh calls on a lent GPU machine. Builds nothing.
#
#   bench/run_gpu.sh PATH/TO/clipskip
#
# 1. clipskip bench --random vit-l --backend cuda at batch 1,8,64,256,1024 and clip skip
#    1,2,6,12 (JSON, SVG, Markdown)
# 2. bench/baseline_hf.py on cuda with the same shapes, ids and points (skipped, with a note,
#    when torch/transformers or a CUDA device are missing there)
# 3. bench/compare.py: the side-by-side table, printed last
# Files go to $OUT/bench when OUT is set, else out/bench-gpu. About 2 minutes on an H100.
# RUN_GPU_POINTS="--batch 1,256 --clip-skip 1,2 --seconds 0.3 --warmup 2" replaces the points.
# Exit code: 0 when every step that could run passed, 1 otherwise.
set -uo pipefail
BIN=${1:?usage: bench/run_gpu.sh PATH/TO/clipskip}
HERE=$(cd "$(dirname "$0")" && pwd)
DIR=${OUT:+$OUT/bench}
DIR=${DIR:-$HERE/../out/bench-gpu}
mkdir -p "$DIR"
rm -f "$DIR"/clipskip_gpu.* "$DIR"/hf_gpu.json "$DIR"/compare_gpu.md
# RUN_GPU_POINTS overrides the points (check.sh asks for fewer, to leave time for the rest)
if [ -n "${RUN_GPU_POINTS:-}" ]; then
    read -r -a POINTS <<<"$RUN_GPU_POINTS"
else
    POINTS=(--batch 1,8,64,256,1024 --clip-skip 1,2,6,12 --seconds 0.4 --warmup 3)
fi
rc=0

echo "== clipskip bench (cuda)" >&2
if ! "$BIN" bench --random vit-l --backend cuda "${POINTS[@]}" --json "$DIR/clipskip_gpu.json" \
        --plot "$DIR/clipskip_gpu.svg" > "$DIR/clipskip_gpu.md"; then
    echo "run_gpu.sh: clipskip bench failed (above)" >&2
    rc=1
fi
cat "$DIR/clipskip_gpu.md"

echo "== HF transformers baseline (cuda)" >&2
if python3 -c "import torch, transformers, sys; sys.exit(0 if torch.cuda.is_available() else 3)" 2>/dev/null; then
    if ! python3 "$HERE/baseline_hf.py" --device cuda --model vit-l --output pinned "${POINTS[@]}" \
            --json "$DIR/hf_gpu.json"; then
        echo "run_gpu.sh: baseline_hf.py failed (above)" >&2
        rc=1
    fi
else
    echo "run_gpu.sh: no torch+transformers with a CUDA device here: baseline skipped" >&2
fi

if [ -s "$DIR/clipskip_gpu.json" ] && [ -s "$DIR/hf_gpu.json" ]; then
    python3 "$HERE/compare.py" "$DIR/clipskip_gpu.json" "$DIR/hf_gpu.json" --out "$DIR/compare_gpu.md" || rc=1
fi
echo "run_gpu.sh: results in $DIR" >&2
exit $rc
