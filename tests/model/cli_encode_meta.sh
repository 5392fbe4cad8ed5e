#!/bin/sh
# clipskip encode --out FILE.safetensors records the options each tower ran with: SDXL with
# --tower all writes one value per tower ("2,2", "off,off"), a single tower one value, and an
# explicit --clip-skip / --final-ln wins over the defaults. Needs python3 to read the header.
set -u
BIN=$1
M=$2/models
command -v python3 >/dev/null || { echo "SKIPPED: no python3"; exit 77; }
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail=0
meta() { # FILE KEY: the metadata value
    python3 -c 'import json, struct, sys
f = open(sys.argv[1], "rb"); n = struct.unpack("<Q", f.read(8))[0]
print(json.loads(f.read(n))["__metadata__"][sys.argv[2]])' "$1" "$2"
}
expect() { # description FILE clip_skip final_ln tower
    for kv in "clip_skip=$3" "final_ln=$4" "tower=$5"; do
        got=$(meta "$2" "${kv%%=*}" 2>&1)
        [ "$got" = "${kv#*=}" ] || { echo "FAIL: $1: ${kv%%=*} is '$got', expected '${kv#*=}'"; fail=1; }
    done
}
run() { # OUT args...
    o=$1; shift
    "$BIN" encode --backend cpu --quiet --out "$o" "$@" "a photo of a cat" >/dev/null 2>"$T/err" ||
        { echo "FAIL: encode $*: $(cat "$T/err")"; fail=1; }
}
run "$T/xl.safetensors" --model "$M/sdxl.safetensors" --tower all
expect "sdxl, both towers" "$T/xl.safetensors" "2,2" "off,off" all
run "$T/xl1.safetensors" --model "$M/sdxl.safetensors" --tower 1 --final-ln on
expect "sdxl, tower 1" "$T/xl1.safetensors" 2 on 1
run "$T/sd1.safetensors" --model "$M/sd1.safetensors"
expect "sd1 defaults" "$T/sd1.safetensors" 1 on 0
run "$T/sd1b.safetensors" --model "$M/sd1.safetensors" --clip-skip 2 --final-ln off
expect "sd1 explicit" "$T/sd1b.safetensors" 2 off 0
[ $fail -eq 0 ] && echo "cli_encode_meta: all checks passed"
exit $fail
