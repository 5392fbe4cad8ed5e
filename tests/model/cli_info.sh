#!/bin/sh
# clipskip info on the fixtures: text and --json identify each layout; failures exit 1 with the
# loader's message on stderr; usage errors exit 2.
set -u
BIN=$1
M=$2/models
fail=0
check() { # description, command output, pattern
    if ! printf '%s' "$2" | grep -q -- "$3"; then
        echo "FAIL: $1: no '$3' in:"; printf '%s\n' "$2" | head -40; fail=1
    fi
}
out=$("$BIN" info "$M/sdxl.safetensors" 2>&1); rc=$?
[ $rc -eq 0 ] || { echo "FAIL: info sdxl exit $rc"; fail=1; }
check "sdxl text" "$out" "pipeline: sdxl, 2 towers"
check "sdxl text" "$out" "layout       sdxl-single-file (prefix 'conditioner.embedders.1.model.')"
check "sdxl text" "$out" "projection   64 -> 48"
check "sdxl text" "$out" "final LN     off by default"
out=$("$BIN" info --json "$M/sd2.safetensors" "$M/diffusers/text_encoder_2/model.safetensors" 2>&1); rc=$?
[ $rc -eq 0 ] || { echo "FAIL: info --json exit $rc"; fail=1; }
check "json" "$out" '"pipeline":	"sd2"'
check "json" "$out" '"layout":	"diffusers"'
check "json" "$out" '"n_heads":	4'
check "json" "$out" '"activation":	"gelu"'
check "json" "$out" '"dtype":	"BF16"'
if command -v python3 >/dev/null; then
    printf '%s' "$out" | python3 -c 'import json,sys; d=json.load(sys.stdin); assert len(d)==2 and d[0]["towers"][0]["default_clip_skip"]==2' \
        || { echo "FAIL: --json is not the expected JSON"; fail=1; }
fi
out=$("$BIN" info "$M/bad/pickle.ckpt" 2>&1); rc=$?
[ $rc -eq 1 ] || { echo "FAIL: pickle exit $rc, expected 1"; fail=1; }
check "pickle" "$out" "unsupported: .*pickle.ckpt: a PyTorch pickle checkpoint"
out=$("$BIN" info "$M/bad/trailing-bytes.safetensors" 2>&1); rc=$?
[ $rc -eq 0 ] || { echo "FAIL: trailing bytes exit $rc"; fail=1; }
check "trailing" "$out" "warning: .*4 trailing bytes after the last tensor"
out=$("$BIN" info --bogus 2>&1); rc=$?
[ $rc -eq 2 ] || { echo "FAIL: unknown option exit $rc, expected 2"; fail=1; }
out=$("$BIN" info 2>&1); rc=$?
[ $rc -eq 2 ] || { echo "FAIL: no file exit $rc, expected 2"; fail=1; }
# --backend cpu: an encoder for --batch prompts, its memory after one full pass (SDXL: both towers)
out=$("$BIN" info --backend cpu --batch 3 "$M/sdxl.safetensors" 2>&1); rc=$?
[ $rc -eq 0 ] || { echo "FAIL: info --backend cpu exit $rc"; fail=1; }
check "encoder text" "$out" "encoder: cpu (cpu: "
check "encoder text" "$out" "activations  [0-9.]* MB after one pass of 3 full-length prompts"
out=$("$BIN" info --json --backend cpu --batch 2 --random tiny 2>&1); rc=$?
[ $rc -eq 0 ] || { echo "FAIL: info --random tiny --backend cpu --json exit $rc"; fail=1; }
if command -v python3 >/dev/null; then
    printf '%s' "$out" | python3 -c 'import json,sys; e=json.load(sys.stdin)[0]["encoder"]; assert e["backend"]=="cpu" and e["max_batch"]==2 and e["weight_bytes"]>0 and e["activation_bytes"]>0, e' \
        || { echo "FAIL: --json encoder entry"; printf '%s\n' "$out" | tail -12; fail=1; }
fi
out=$("$BIN" info --backend cpu --batch 0 "$M/sd1.safetensors" 2>&1); rc=$?
[ $rc -eq 2 ] || { echo "FAIL: --batch 0 exit $rc, expected 2"; fail=1; }
[ $fail -eq 0 ] && echo "cli_info: all checks passed"
exit $fail
