#!/bin/sh
# clipskip encode --syntax a1111: hidden states of 77 x chunks tokens a prompt (the most any
# prompt of the run takes), recorded in the metadata; a bad weight fails naming the prompt's
# line; dataset mode refuses the option; tokenize shows the chunks. Needs python3.
set -u
BIN=$1
command -v python3 >/dev/null || { echo "SKIPPED: no python3"; exit 77; }
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail=0
LONG=$(i=0; while [ $i -lt 30 ]; do printf 'a (red:1.3) cat, '; i=$((i + 1)); done)
header() { # FILE EXPR: python expression over h (the header) printed
    python3 -c 'import json, struct, sys
f = open(sys.argv[1], "rb"); n = struct.unpack("<Q", f.read(8))[0]; h = json.loads(f.read(n))
print(eval(sys.argv[2]))' "$1" "$2"
}
"$BIN" encode --random tiny --syntax a1111 --quiet --out "$T/a.safetensors" "$LONG" "a [dog] on a hill" 2>"$T/e" ||
    { echo "FAIL: encode: $(cat "$T/e")"; fail=1; }
got=$(header "$T/a.safetensors" 'h["hidden_states"]["shape"], h["__metadata__"]["syntax"], h["__metadata__"]["chunks"]')
[ "$got" = "([2, 154, 64], 'a1111', '2')" ] || { echo "FAIL: shape and metadata: $got"; fail=1; }
"$BIN" encode --random tiny --quiet --out "$T/p.safetensors" "$LONG" 2>"$T/e" || { echo "FAIL: plain: $(cat "$T/e")"; fail=1; }
got=$(header "$T/p.safetensors" 'h["hidden_states"]["shape"], h["__metadata__"]["syntax"]')
[ "$got" = "([1, 77, 64], 'plain')" ] || { echo "FAIL: plain shape and metadata: $got"; fail=1; }
printf 'a cat\n(b:1.2.3)\n' >"$T/bad.txt"
if "$BIN" encode --random tiny --syntax a1111 --file "$T/bad.txt" 2>"$T/e" >/dev/null; then
    echo "FAIL: a weight that is not a number was accepted"; fail=1
fi
grep -q "bad.txt:2: prompt weight '1.2.3' at byte 3 is not a number" "$T/e" || { echo "FAIL: bad weight: $(cat "$T/e")"; fail=1; }
"$BIN" encode --random tiny --syntax a1111 --out-dir "$T/ds" --file "$T/bad.txt" 2>"$T/e"
rc=$?
[ $rc = 2 ] && grep -q "not available in dataset mode" "$T/e" || { echo "FAIL: dataset mode rc=$rc: $(cat "$T/e")"; fail=1; }
# tokenize shows the chunks: 2 x 77 ids on one line; JSON with each position's weight
n=$("$BIN" tokenize --syntax a1111 "a cat BREAK a dog" | wc -w)
[ "$n" = 154 ] || { echo "FAIL: tokenize --syntax a1111 printed $n ids, expected 154"; fail=1; }
got=$("$BIN" tokenize --syntax a1111 --json "(cat:1.5)" | python3 -c 'import json, sys; d = json.load(sys.stdin); print(d["chunks"], d["ids"][0][1], d["weights"][0][1])')
[ "$got" = "1 2368 1.5" ] || { echo "FAIL: tokenize --syntax a1111 --json: $got"; fail=1; }
[ $fail -eq 0 ] && echo "cli_encode_syntax: all checks passed"
exit $fail
