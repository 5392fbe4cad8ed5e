#!/usr/bin/env bash
# tests/gpu/cli_smoke.sh CLIPSKIP: the clipskip program itself on the CUDA backend (the tests
# drive the library; this drives the CLI and the server), for tests/gpu/check.sh and, on the
# CUDA emulator, ctest emu_cli_smoke.
#  - info --backend cuda: device and memory for a batch of 64;
#  - encode on cuda and on cpu, same random weights and prompts: hidden (clip skip 2) and pooled
#    within 2e-3 relative (Frobenius), as test_gpu_e2e holds the library to; the same for
#    --syntax a1111 (emphasis, BREAK, several chunks);
#  - serve --backend cuda: /health, one /encode in npy format equal to encode's output bitwise
#    (same encoder semantics, f32), then SIGTERM and a clean exit.
# Exit 0 when every step passed; prints one line per step.
set -u
BIN=$1
BE=${CLI_SMOKE_BACKEND:-cuda} # cpu: a dry run of this script on a machine without a GPU
# the model: random weights of ViT-L's shape, or of CLI_SMOKE_RANDOM's (tiny on the emulator)
MODEL=(--random "${CLI_SMOKE_RANDOM:-vit-l}")
python3 -c "import numpy" 2>/dev/null || { echo "SKIPPED: python3 has no numpy"; exit 77; }
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail=0
step() { # name rc
    if [ "$2" = 0 ]; then echo "ok    $1"; else echo "FAIL  $1 (rc $2)"; fail=1; fi
}

"$BIN" info "${MODEL[@]}" --backend "$BE" --batch 64 >"$T/info.txt" 2>&1
rc=$?
grep -q "encoder: $BE" "$T/info.txt" || [ $rc != 0 ] || rc=1
step "info --backend $BE: $(grep -E 'encoder:|weights|activations' "$T/info.txt" | tr -s ' ' | tr '\n' ';')" $rc

P=("a photo of a cat, masterpiece" "" "an oil painting of a lighthouse at dusk, dramatic clouds")
for be in "$BE" cpu; do
    [ "$be" = cpu ] && [ -f "$T/cpu.npy" ] && continue
    "$BIN" encode "${MODEL[@]}" --backend "$be" --clip-skip 2 --pooled --quiet --out "$T/$be.npy" "${P[@]}" \
        >"$T/$be.log" 2>&1
    step "encode --backend $be" $?
    "$BIN" encode "${MODEL[@]}" --backend "$be" --syntax a1111 --quiet --out "$T/$be.a1111.npy" "${P[0]}" \
        "$(printf '(%s:1.2), [blurry] BREAK ' "${P[@]}" "${P[@]}" "${P[@]}")" >>"$T/$be.log" 2>&1
    step "encode --backend $be --syntax a1111" $?
done
python3 - "$T" "$BE" <<'EOF'
import sys, numpy as np
t, be = sys.argv[1], sys.argv[2]
ok = True
for suffix in ("", ".pooled", ".a1111"):
    try:
        g, c = np.load(f"{t}/{be}{suffix}.npy"), np.load(f"{t}/cpu{suffix}.npy")
    except OSError as e:
        print(f"FAIL  encode {be} vs cpu{suffix}: {e}")
        ok = False
        continue
    rel = float(np.linalg.norm(g.astype(np.float64) - c) / np.linalg.norm(c))
    good = g.shape == c.shape and np.isfinite(g).all() and rel <= 2e-3
    ok &= good
    print(f"{'ok   ' if good else 'FAIL '} encode {be} vs cpu{suffix or ' hidden'}: shape {g.shape}, rel err {rel:.2e}")
sys.exit(0 if ok else 1)
EOF
[ $? = 0 ] || fail=1

PORT=$(( 20000 + RANDOM % 20000 ))
"$BIN" serve "${MODEL[@]}" --backend "$BE" --port "$PORT" --quiet >"$T/serve.log" 2>&1 &
SP=$!
up=1
for _ in $(seq 1 60); do
    kill -0 "$SP" 2>/dev/null || break # the server exited (its log says why)
    python3 -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:$PORT/health', timeout=1)" 2>/dev/null && { up=0; break; }
    sleep 0.5
done
step "serve --backend $BE: /health" $up
if [ $up = 0 ]; then
    python3 - "$PORT" "$T" "$BE" <<'EOF'
import io, json, sys, urllib.request, numpy as np
port, t, be = sys.argv[1], sys.argv[2], sys.argv[3]
body = json.dumps({"inputs": ["a photo of a cat, masterpiece", "",
                              "an oil painting of a lighthouse at dusk, dramatic clouds"],
                   "clip_skip": 2, "outputs": ["hidden"], "format": "npy"}).encode()
r = urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{port}/encode", data=body,
                                                  headers={"Content-Type": "application/json"}), timeout=60)
got = np.load(io.BytesIO(r.read()))
ref = np.load(f"{t}/{be}.npy")
same = got.shape == ref.shape and np.array_equal(got, ref)
print(f"{'ok   ' if same else 'FAIL '} serve /encode npy == encode --backend {be}: shape {got.shape}, "
      f"max |diff| {float(np.abs(got - ref).max()) if got.shape == ref.shape else float('nan'):.3g}, "
      f"inference {r.headers.get('x-inference-time')} ms")
sys.exit(0 if same else 1)
EOF
    [ $? = 0 ] || fail=1
fi
if kill -TERM "$SP" 2>/dev/null; then
    wait "$SP"
    step "serve: SIGTERM, exit status" $?
else
    wait "$SP"
    step "serve: it had already exited" 1
fi
[ $fail = 0 ] || { echo "--- serve log"; tail -20 "$T/serve.log"; }
exit $fail
