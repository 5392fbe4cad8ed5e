#!/usr/bin/env bash
# clipskip CPU vs HF transformers CLIPTextModel on torch CPU (fp32), one command:
# prompts/s for ViT-L with random weights at batch 1, 8, 64 and clip skip 1 and 2, both with
# the same number of threads and the same token ids, run back to back.
#
#   [ROUNDS=N] bench/cpu_vs_torch.sh [PATH/TO/clipskip] [THREADS]   (defaults: build/clipskip, nproc)
#
# ROUNDS=N alternates the two N times and keeps, per point, each side's best round
# (bench/best_of.py): on a shared machine that is the figure least disturbed by other load.
# Writes clipskip.json/.svg/.md, hf.json and compare.md under $OUT/cpu_vs_torch (OUT
# defaults to out/) and prints the side-by-side table last. About 6 minutes on 2 cores.
# On a shared machine the numbers follow the load: the JSON files record the load average
# at start and end, and both runs are printed with it.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
BIN=${1:-$(cd "$HERE/.." && pwd)/build/clipskip}
THREADS=${2:-$(nproc)}
ROOT=$(cd "$HERE/.." && pwd)
DIR=${OUT:-$ROOT/out}/cpu_vs_torch
mkdir -p "$DIR"
rm -f "$DIR"/clipskip.[0-9]*.json "$DIR"/hf.[0-9]*.json
POINTS=(--batch 1,8,64 --clip-skip 1,2 --warmup 1 --iters 3 --threads "$THREADS")

ROUNDS=${ROUNDS:-1}
for r in $(seq 1 "$ROUNDS"); do
    echo "== round $r/$ROUNDS: clipskip bench, cpu, $THREADS threads" >&2
    "$BIN" bench --random vit-l --backend cpu "${POINTS[@]}" --no-text \
        --json "$DIR/clipskip.$r.json" --plot "$DIR/clipskip.svg" > "$DIR/clipskip.md"
    echo "== round $r/$ROUNDS: HF transformers CLIPTextModel, torch cpu fp32, $THREADS threads" >&2
    python3 "$HERE/baseline_hf.py" --device cpu --model vit-l "${POINTS[@]}" --json "$DIR/hf.$r.json"
done
# one round: its numbers; several: per point the best (lowest p50) round of each side
python3 "$HERE/best_of.py" "$DIR"/clipskip.[0-9]*.json --out "$DIR/clipskip.json"
python3 "$HERE/best_of.py" "$DIR"/hf.[0-9]*.json --out "$DIR/hf.json"
python3 "$HERE/compare.py" "$DIR/clipskip.json" "$DIR/hf.json" --out "$DIR/compare.md"
