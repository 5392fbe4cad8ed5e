#!/bin/sh
# clipskip encode names a bad or truncated prompt by where it came from: FILE:LINE for --file
# and stdin, the row index for arguments; a bad prompt fails the run before any is encoded
# and leaves no --out file.
set -u
BIN=$1
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail=0
LONG=$(i=0; while [ $i -lt 100 ]; do printf 'cat '; i=$((i + 1)); done)
printf 'a cat\na dog\n\377 bad\n' >"$T/bad.txt"
printf 'a cat\n%s\n' "$LONG" >"$T/long.txt"
expect() { # description FILE-OF-STDERR expected-substring
    grep -qF -- "$3" "$2" || { echo "FAIL: $1: expected '$3' in: $(cat "$2")"; fail=1; }
}
if "$BIN" encode --random tiny --batch 2 --file "$T/bad.txt" --out "$T/o.npy" 2>"$T/e1"; then
    echo "FAIL: invalid UTF-8 on line 3 was accepted"; fail=1
fi
expect "bad UTF-8 in --file" "$T/e1" "bad.txt:3: text: invalid UTF-8 at byte 0"
[ -e "$T/o.npy" ] && { echo "FAIL: a failed encode left $T/o.npy"; fail=1; }
printf 'x\n\303\n' | "$BIN" encode --random tiny 2>"$T/e2" >/dev/null && { echo "FAIL: stdin accepted"; fail=1; }
expect "bad UTF-8 on stdin" "$T/e2" "<stdin>:2: text: invalid UTF-8 at byte 0"
"$BIN" encode --random tiny ok "$(printf 'b\303')" 2>"$T/e3" >/dev/null && { echo "FAIL: argument accepted"; fail=1; }
expect "bad UTF-8 in an argument" "$T/e3" "prompt 1: text: invalid UTF-8 at byte 1"
"$BIN" encode --random tiny --batch 1 --file "$T/long.txt" 2>"$T/e4" >/dev/null || { echo "FAIL: long prompt: $(cat "$T/e4")"; fail=1; }
expect "truncation warning, --file" "$T/e4" "/long.txt:2 truncated: 25 of 100 tokens dropped"
"$BIN" encode --random tiny a "$LONG" 2>"$T/e5" >/dev/null || { echo "FAIL: long argument: $(cat "$T/e5")"; fail=1; }
expect "truncation warning, argument" "$T/e5" "warning: prompt 1 truncated: 25 of 100 tokens dropped"
[ $fail -eq 0 ] && echo "cli_encode_where: all checks passed"
exit $fail
