#!/usr/bin/env python3
"""Dataset mode of `clipskip encode --out-dir` (python3 standard library only: CI has no numpy).

    test_offline.py CLIPSKIP_BINARY TEST_DATA_DIR

Checks: shards equal one-call-at-a-time encodes (bitwise: the CPU encoder is batch-invariant);
SIGKILL at random points then --resume gives byte-identical shards and manifest; bad lines
follow --on-error; JSONL and CSV readers (quoting, embedded newlines, missing fields); SDXL
layout; unwritable output directory; option mismatch on resume.
"""
import json
import os
import random
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time

BIN, DATA = sys.argv[1], sys.argv[2]
SD1 = os.path.join(DATA, "models", "sd1.safetensors")
SDXL = os.path.join(DATA, "models", "sdxl.safetensors")
FAILS = []


def check(cond, what):
    if not cond:
        FAILS.append(what)
        print("FAIL:", what, file=sys.stderr)


def run(*args, ok=True, **kw):
    p = subprocess.run([BIN, "encode", *args], capture_output=True, text=True, **kw)
    if ok and p.returncode != 0:
        print(p.stderr, file=sys.stderr)
    return p


def read_safetensors(path):
    """{name: (dtype, shape, bytes)}, metadata"""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        head = json.loads(f.read(n))
        data = f.read()
    meta = head.pop("__metadata__", {})
    return {k: (v["dtype"], v["shape"], data[v["data_offsets"][0]:v["data_offsets"][1]])
            for k, v in head.items()}, meta


def read_npy(path):
    with open(path, "rb") as f:
        raw = f.read()
    hlen = struct.unpack("<H", raw[8:10])[0]
    return raw[10 + hlen:]


def captions(n, seed):
    rnd = random.Random(seed)
    subj = ["a cat", "a dog", "a castle on a hill", "a portrait of a woman", "a robot", "café au lait"]
    sty = ["oil painting", "photo", "digital art", "watercolor", "8k", "by greg rutkowski", "(masterpiece:1.2)"]
    out = []
    for _ in range(n):
        out.append(rnd.choice(subj) + ", " + ", ".join(rnd.sample(sty, rnd.randint(0, 4))))
    return out


def manifest(d):
    with open(os.path.join(d, "manifest.csv")) as f:
        return f.read().splitlines()


def dir_bytes(d):
    return {n: open(os.path.join(d, n), "rb").read() for n in sorted(os.listdir(d))}


def test_equal_to_single_calls(tmp, caps_path, caps):
    out = os.path.join(tmp, "a")
    p = run("--model", SD1, "--file", caps_path, "--out-dir", out, "--shard-size", "128",
            "--on-error", "skip", "--quiet")
    check(p.returncode == 0, "dataset run exit 0")
    rows = [l.split(",") for l in manifest(out)[1:]]
    check(len(rows) == len(caps) + 2, "manifest has a line per record (%d)" % len(rows))
    bad = [r for r in rows if r[6] != "ok"]
    check(len(bad) == 1 and "UTF-8" in ",".join(bad[0]), "the invalid line is skipped with a reason")
    for rec in random.Random(3).sample(range(len(caps)), 12):
        r = rows[rec]
        st, _ = read_safetensors(os.path.join(out, "shard-%06d.safetensors" % int(r[2])))
        dt, shape, data = st["hidden_states"]
        check(dt == "F16" and shape[1:] == [77, 64], "shard dtype/shape %s %s" % (dt, shape))
        row_bytes = 77 * 64 * 2
        got = data[int(r[3]) * row_bytes:(int(r[3]) + 1) * row_bytes]
        one = os.path.join(tmp, "one.npy")
        q = run("--model", SD1, "--dtype", "f16", "--out", one, "--quiet", "--", caps[rec])
        check(q.returncode == 0 and read_npy(one) == got, "record %d equals a single encode" % rec)
    return out


def dataset_args(caps_path, out):
    """The dataset run the kill, lock, SIGINT and disk-full tests interrupt and resume."""
    return ["--model", SD1, "--file", caps_path, "--out-dir", out, "--shard-size", "128",
            "--on-error", "skip", "--quiet"]


def wait_for_lock(out, pid):
    """Until the run with this pid holds out/clipskip.lock (2 s at most)."""
    lock = os.path.join(out, "clipskip.lock")
    for _ in range(200):
        if os.path.exists(lock) and open(lock).read().strip() == str(pid):
            return
        time.sleep(0.01)


def test_kill_resume(tmp, caps_path, reference):
    out = os.path.join(tmp, "k")
    args = dataset_args(caps_path, out)
    rnd = random.Random(7)
    for attempt in range(3):
        proc = subprocess.Popen([BIN, "encode", *args] + (["--resume"] if attempt else []),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rnd.uniform(0.15, 0.5))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        if attempt == 0:
            check(not os.path.exists(os.path.join(out, "manifest.csv")),
                  "the first SIGKILL landed before the run finished")
    p = run(*args, "--resume")
    check(p.returncode == 0, "resume after kills exits 0")
    a, b = dir_bytes(reference), dir_bytes(out)
    check(a.keys() == b.keys(), "same files after resume: %s" % sorted(set(a) ^ set(b)))
    check(all(a[k] == b.get(k) for k in a), "byte-identical shards and manifest after kill + resume")
    p = run(*args, ok=False)
    check(p.returncode != 0 and "--resume" in p.stderr, "a second run without --resume is refused")
    p = run(*args[:-1], "--resume", "--shard-size", "64", ok=False)
    check(p.returncode != 0 and "options differ" in p.stderr, "resume with other options is refused")


def test_one_run_per_dir(tmp, caps_path, reference):
    """A second run on a directory another run is writing is refused (naming that run's pid),
    and leaves it alone: the first one still finishes byte-identical to a clean run."""
    out = os.path.join(tmp, "two")
    args = dataset_args(caps_path, out)
    first = subprocess.Popen([BIN, "encode", *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    lock = os.path.join(out, "clipskip.lock")
    wait_for_lock(out, first.pid)
    p = run(*args, "--resume", ok=False)
    racing = first.poll() is None
    first_err = first.communicate()[1]
    if racing:  # otherwise the first run was over before the second could try: nothing to see
        check(p.returncode == 1 and "another clipskip run (pid %d)" % first.pid in p.stderr,
              "a second run on a busy directory is refused: " + p.stderr.strip())
    check(first.returncode == 0, "the first run finishes: " + first_err.strip())
    check(not os.path.exists(lock), "the lock file is gone after the run")
    a, b = dir_bytes(reference), dir_bytes(out)
    check(a == b, "the first run's output is byte-identical to a clean run")


def test_sigint(tmp, caps_path, reference):
    """Ctrl-C (SIGINT) stops a run cleanly: exit 130, a message with --resume, only complete
    shards (no temporary file, no lock, no final manifest), and --resume completes it
    byte-identical to a clean run."""
    out = os.path.join(tmp, "int")
    args = dataset_args(caps_path, out)
    proc = subprocess.Popen([BIN, "encode", *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wait_for_lock(out, proc.pid)
    time.sleep(0.2)  # past the signal handlers' setup
    proc.send_signal(signal.SIGINT)
    err = proc.communicate()[1]
    if proc.returncode == 0:
        print("  note: the run ended before SIGINT reached it; nothing to check")
    else:
        check(proc.returncode == 130 and "stopped by SIGINT" in err and "--resume" in err,
              "SIGINT: exit 130 and a message: rc %d, %s" % (proc.returncode, err.strip()))
        names = os.listdir(out)
        check(not [n for n in names if ".tmp." in n] and "clipskip.lock" not in names
              and "manifest.csv" not in names, "SIGINT: only complete shards left: %s" % sorted(names))
    p = run(*args, "--resume")
    a, b = dir_bytes(reference), dir_bytes(out)
    check(p.returncode == 0 and a == b, "resume after SIGINT: byte-identical to a clean run")


def test_on_error_fail(tmp, caps):
    path = os.path.join(tmp, "fail.txt")
    with open(path, "wb") as f:
        for c in caps[:300]:
            f.write(c.encode() + b"\n")
        f.write(b"broken \xc3\x28 utf-8\n")
        f.write(b"after\n")
    out = os.path.join(tmp, "f")
    p = run("--model", SD1, "--file", path, "--out-dir", out, "--shard-size", "100", ok=False)
    check(p.returncode == 1 and "fail.txt:301" in p.stderr and "byte 7" in p.stderr,
          "--on-error fail names file, line and byte: " + p.stderr.strip()[:200])
    done = sorted(n for n in os.listdir(out) if n.endswith(".manifest.csv"))
    check(done == ["shard-%06d.manifest.csv" % i for i in range(3)], "complete shards kept: %s" % done)
    check(not os.path.exists(os.path.join(out, "manifest.csv")), "no final manifest after a failure")


def test_readers(tmp):
    caps = ['a "quoted" cat, oil', "two\nlines", "plain dog", "émoji 🐱"]
    lines = os.path.join(tmp, "r.txt")
    with open(lines, "w") as f:
        f.write("\n".join(c.replace("\n", " ") for c in caps) + "\n")
    jl = os.path.join(tmp, "r.jsonl")
    with open(jl, "w") as f:
        for c in caps:
            f.write(json.dumps({"id": 1, "text": c.replace("\n", " ")}) + "\n")
        f.write('{"id": 2}\n{not json\n')
    csvp = os.path.join(tmp, "r.csv")
    with open(csvp, "w") as f:
        f.write('id,caption\n')
        for i, c in enumerate(caps):
            f.write('%d,"%s"\n' % (i, c.replace('"', '""')))
    res = {}
    for name, path, extra in (("lines", lines, []), ("jsonl", jl, ["--field", "text"]),
                              ("csv", csvp, ["--column", "caption"])):
        out = os.path.join(tmp, "rd-" + name)
        p = run("--model", SD1, "--file", path, "--out-dir", out, "--on-error", "skip", "--quiet", *extra)
        check(p.returncode == 0, "%s reader run" % name)
        res[name] = (manifest(out), read_safetensors(os.path.join(out, "shard-000000.safetensors"))[0])
    m = res["jsonl"][0]
    check(len(m) == 7 and "missing" in m[5] and "JSON" in m[6], "jsonl bad rows reported: %s" % m[5:])
    check(res["csv"][0][2].split(",")[1] == "3" and res["csv"][0][3].split(",")[1] == "5",
          "csv record lines count the embedded newline: %s" % res["csv"][0][1:4])
    h = {k: v[1]["hidden_states"][2] for k, v in res.items()}
    row = 77 * 64 * 2
    check(h["jsonl"][:4 * row] == h["lines"][:4 * row], "jsonl rows equal the lines rows")
    # the quoted field's newline reaches the tokenizer, whose cleanup makes it one space
    check(h["csv"][:4 * row] == h["lines"][:4 * row], "csv rows (quotes, embedded newline) equal the lines rows")


def test_sdxl(tmp, caps_path, caps):
    out = os.path.join(tmp, "x")
    p = run("--model", SDXL, "--file", caps_path, "--out-dir", out, "--shard-size", "4096",
            "--text-embeds", "--on-error", "skip", "--quiet")
    check(p.returncode == 0, "sdxl dataset run")
    st, meta = read_safetensors(os.path.join(out, "shard-000000.safetensors"))
    check(st["hidden_states"][1][1:] == [77, 128] and st["text_embeds"][1][1:] == [48],
          "sdxl shapes: %s %s" % (st["hidden_states"][1], st["text_embeds"][1]))
    one = os.path.join(tmp, "one.safetensors")
    p = run("--model", SDXL, "--dtype", "f16", "--text-embeds", "--out", one, "--quiet", "--", caps[5])
    ref, _ = read_safetensors(one)
    rows = [l.split(",") for l in manifest(out)[1:]]
    r = int(rows[5][3])
    check(st["hidden_states"][2][r * 77 * 128 * 2:(r + 1) * 77 * 128 * 2] == ref["hidden_states"][2],
          "sdxl row equals a single encode (hidden)")
    check(st["text_embeds"][2][r * 96:(r + 1) * 96] == ref["text_embeds"][2], "sdxl text_embeds")


def test_unwritable(tmp, caps_path):
    blocker = os.path.join(tmp, "file")
    open(blocker, "w").close()
    p = run("--model", SD1, "--file", caps_path, "--out-dir", os.path.join(blocker, "sub"), ok=False)
    check(p.returncode == 1 and "cannot create --out-dir" in p.stderr, "unwritable dir: " + p.stderr.strip())


def test_disk_full(tmp, caps_path, reference):
    """A write that fails part-way (a per-file size limit of 1 MiB stands in for a full disk:
    each shard is 1.26 MB), then --resume once there is room: the same bytes as a clean run."""
    import resource

    def limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))

    out = os.path.join(tmp, "full")
    args = dataset_args(caps_path, out)
    p = subprocess.run([BIN, "encode", *args], capture_output=True, text=True, preexec_fn=limit)
    check(p.returncode == 1 and "File too large" in p.stderr and "--resume" in p.stderr,
          "full disk: clear message: " + p.stderr.strip()[:300])
    names = os.listdir(out)
    check(not [n for n in names if ".tmp." in n or n.startswith("shard-")],
          "full disk: no temporary or partial shard file left: %s" % names)
    p = run(*args, "--resume")
    a, b = dir_bytes(reference), dir_bytes(out)
    check(p.returncode == 0 and a == b, "resume after a full disk: byte-identical to a clean run")


def test_truncated(tmp):
    """Prompts cut to 75 tokens are counted on stderr and marked in the manifest."""
    path, out = os.path.join(tmp, "long.txt"), os.path.join(tmp, "long")
    with open(path, "w") as f:
        f.write("a cat\n" + "cat " * 100 + "\na dog\n")
    p = run("--model", SD1, "--file", path, "--out-dir", out)
    check(p.returncode == 0 and "1 truncated to 75 tokens" in p.stderr,
          "the summary counts truncated records: " + p.stderr.strip()[-300:])
    rows = [l.split(",") for l in manifest(out)[1:]]
    check([r[5] for r in rows] == ["0", "25", "0"], "manifest truncated column: %s" % [r[5] for r in rows])


def main():
    tmp = tempfile.mkdtemp(prefix="cs-offline-")
    try:
        caps = captions(1500, 1)
        caps[40] = ""  # an empty caption is a valid prompt
        path = os.path.join(tmp, "caps.txt")
        with open(path, "wb") as f:
            for c in caps:
                f.write(c.encode() + b"\n")
            f.write(b"bad \xff byte\n")
            f.write(caps[0].encode() + b"\n")  # a duplicate in another shard
        ref = test_equal_to_single_calls(tmp, path, caps)
        test_kill_resume(tmp, path, ref)
        test_one_run_per_dir(tmp, path, ref)
        test_sigint(tmp, path, ref)
        test_on_error_fail(tmp, caps)
        test_readers(tmp)
        test_sdxl(tmp, path, caps)
        test_unwritable(tmp, path)
        test_disk_full(tmp, path, ref)
        test_truncated(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if FAILS:
        print("test_offline: %d check(s) failed" % len(FAILS))
        sys.exit(1)
    print("test_offline: all checks passed")


main()
