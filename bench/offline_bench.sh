#!/usr/bin/env bash
# Dataset-mode throughput (`clipskip encode --out-dir`), one command:
#
#   bench/offline_bench.sh [PATH/TO/clipskip] [BACKEND] [N_CAPTIONS] [N_VITL]
#       defaults: build/clipskip, cpu, 1000000 captions with the tiny tower, 2000 with ViT-L
#
# Generates N realistic captions (bench/gen_captions.py, ~12% duplicates), encodes them with
# the tiny random tower (host-side costs dominate: reading, tokenizing, writing) and the first
# N_VITL of them with a random ViT-L tower (the encoder dominates), and prints each run's
# summary: records/s and the time in the reader+tokenizer thread vs encoding vs writing.
# On a GPU machine: bench/offline_bench.sh build-gpu/clipskip cuda 1000000 1000000.
# Work files under ${OUT:-out}/offline (about 80 MB of captions; shards deleted after each run).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
BIN=${1:-$HERE/../build/clipskip}
BACKEND=${2:-cpu}
N=${3:-1000000}
NL=${4:-2000}
DIR=${OUT:-$HERE/../out}/offline
mkdir -p "$DIR"
CAPS=$DIR/captions-$N.txt
[ -s "$CAPS" ] || python3 "$HERE/gen_captions.py" "$N" "$CAPS"
head -n "$NL" "$CAPS" > "$DIR/captions-vitl.txt"

run() { # NAME MODEL_ARGS... ; prints the summary lines
    local name=$1; shift
    rm -rf "$DIR/shards"
    echo "== $name ($BACKEND)"
    /usr/bin/time -f "   wall %e s, max RSS %M KB" "$BIN" encode "$@" --backend "$BACKEND" \
        --out-dir "$DIR/shards" --shard-size 4096 --batch 256 2>&1 | grep -E "done:|records/s;|wall"
    du -sh "$DIR/shards" | sed 's/^/   output /'
    rm -rf "$DIR/shards"
}
run "tiny tower, $N captions" --random tiny --file "$CAPS"
run "ViT-L (random), $NL captions" --random vit-l --file "$DIR/captions-vitl.txt"
