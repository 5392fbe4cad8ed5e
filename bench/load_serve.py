#!/usr/bin/env python3
"""Load test for `clipskip serve` (standard library only; loopback; stops by itself).

N client threads each send M /encode requests (or keep sending for --duration seconds) over
a keep-alive connection. A request carries a prompt and the empty negative prompt, as a
Stable Diffusion front end sends them, at a clip skip drawn from --clip-skips (so batches mix
depths). Reports requests/s, prompts/s, latency p50/p90/p99, errors (must be 0), the batch
sizes the server achieved (from /metrics), cache hits, and the server's RSS before and
after (and every --rss-every seconds in a soak).

  # start a server itself (tiny random tower, CPU) and run 4 clients x 200 requests:
  python3 bench/load_serve.py --exe build/clipskip --clients 4 --requests 200
  # 5-minute soak at 2 clients, RSS sampled every 15 s:
  python3 bench/load_serve.py --exe build/clipskip --clients 2 --duration 300 --rss-every 15
  # against a running server:
  python3 bench/load_serve.py --url http://127.0.0.1:8080 --clients 8 --requests 100
"""
import argparse
import http.client
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

WORDS = ("a photo of the cat dog astronaut horse riding on mars in style painting oil "
         "portrait city night rain neon forest river mountain castle dragon red blue green "
         "golden hour cinematic lighting highly detailed sharp focus trending 4k").split()


def start_server(exe, extra, log_path):
    log = open(log_path, "w")
    args = [exe, "serve", "--port", "0"] + extra
    proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.time() + 120
    while time.time() < deadline:
        with open(log_path) as f:
            m = re.search(r"listening on ([^ ]+):(\d+)", f.read())
        if m:
            return proc, f"http://127.0.0.1:{m.group(2)}"
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    proc.kill()
    sys.exit(f"server did not start, see {log_path}")


def get(url, path):
    u = urllib.parse.urlparse(url)
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
    c.request("GET", path)
    r = c.getresponse()
    body = r.read()
    c.close()
    return r.status, body


def scrape(url):
    """The /metrics values this tool reports: name{labels} -> float."""
    _, body = get(url, "/metrics")
    out = {}
    for line in body.decode().splitlines():
        if line and not line.startswith("#"):
            k, v = line.rsplit(" ", 1)
            out[k] = float(v)
    return out


class Client(threading.Thread):
    def __init__(self, idx, args, url, stop_at, headers):
        super().__init__(daemon=True)
        self.rng = random.Random(args.seed * 1000 + idx)
        self.args, self.url, self.stop_at, self.headers = args, url, stop_at, headers
        self.latencies, self.errors, self.prompts, self.error_samples = [], 0, 0, []

    def body(self):
        a, rng = self.args, self.rng
        n = rng.randint(1, a.prompts)
        prompts = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 20))) for _ in range(n)]
        if a.negative:
            prompts.append("")
        fmt, outputs = a.format, a.outputs.split(",")
        if fmt == "mix":  # every reply path: json / npy / safetensors, varied outputs and dtype
            fmt = rng.choice(["json", "npy", "safetensors"])
            outputs = [rng.choice(["hidden", "pooled"])] if fmt == "npy" else \
                rng.choice([["hidden"], ["pooled"], ["hidden", "pooled", "text_embeds"]])
        req = {"inputs": prompts, "clip_skip": rng.choice(a.clip_skips), "format": fmt, "outputs": outputs}
        if a.format == "mix":
            req["dtype"] = rng.choice(["f32", "f16"])
        return json.dumps(req).encode(), len(prompts)

    def run(self):
        u = urllib.parse.urlparse(self.url)
        conn = None
        sent = 0
        while (self.stop_at and time.time() < self.stop_at) or (not self.stop_at and sent < self.args.requests):
            body, n = self.body()
            t0 = time.perf_counter()
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=120)
                conn.request("POST", "/encode", body, {"Content-Type": "application/json", **self.headers})
                r = conn.getresponse()
                data = r.read()
                if r.status != 200:
                    self.errors += 1
                    if len(self.error_samples) < 3:
                        self.error_samples.append(f"{r.status} {data[:200]!r}")
                else:
                    self.prompts += n
                    self.latencies.append(time.perf_counter() - t0)
                if r.getheader("connection", "").lower() == "close":
                    conn.close()
                    conn = None
            except Exception as e:  # counted: a load test must see 0
                self.errors += 1
                if len(self.error_samples) < 3:
                    self.error_samples.append(repr(e))
                if conn:
                    conn.close()
                conn = None
            sent += 1
        if conn:
            conn.close()


def pct(xs, p):
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def batch_hist(before, after):
    """Per-bucket counts of the clipskip_batch_size histogram between two scrapes."""
    rows, prev = [], 0.0
    keys = [k for k in after if k.startswith("clipskip_batch_size_bucket")]
    for k in keys:
        le = re.search(r'le="([^"]+)"', k).group(1)
        cum = after[k] - before.get(k, 0.0)
        rows.append((le, cum - prev))
        prev = cum
    return [(le, int(c)) for le, c in rows if c]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", help="a running server (default: start --exe)")
    ap.add_argument("--exe", default="build/clipskip", help="clipskip program to start (with --server-args)")
    ap.add_argument("--server-args", default="--random tiny --backend cpu --threads 1 --max-wait-us 2000",
                    help="arguments for `clipskip serve` when this tool starts it")
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--requests", type=int, default=100, help="per client (ignored with --duration)")
    ap.add_argument("--duration", type=float, default=0, help="seconds to run instead of --requests (soak)")
    ap.add_argument("--prompts", type=int, default=2, help="prompts per request: 1..N, plus the negative")
    ap.add_argument("--no-negative", dest="negative", action="store_false", help="no empty negative prompt")
    ap.add_argument("--clip-skips", default="1,2", help="clip skips drawn per request")
    ap.add_argument("--format", default="npy", choices=["json", "npy", "safetensors", "mix"],
                    help="reply format; mix: each request draws a format, outputs and dtype")
    ap.add_argument("--outputs", default="hidden")
    ap.add_argument("--api-key")
    ap.add_argument("--rss-every", type=float, default=0, help="sample the server RSS every S seconds")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", help="write the results here too")
    args = ap.parse_args()
    args.clip_skips = [int(x) for x in args.clip_skips.split(",")]
    headers = {"Authorization": f"Bearer {args.api_key}"} if args.api_key else {}

    proc = None
    url = args.url
    if not url:
        log = os.path.join(tempfile.gettempdir(), f"load_serve_{os.getpid()}.log")
        proc, url = start_server(args.exe, args.server_args.split(), log)
    try:
        status, _ = get(url, "/health")
        assert status == 200, f"/health answered {status}"
        m0 = scrape(url)
        rss0 = m0.get("process_resident_memory_bytes", 0)
        t_start = time.time()
        stop_at = t_start + args.duration if args.duration else 0
        clients = [Client(i, args, url, stop_at, headers) for i in range(args.clients)]
        for c in clients:
            c.start()
        samples, last = [], t_start
        while any(c.is_alive() for c in clients):
            time.sleep(0.2)
            if args.rss_every and time.time() - last >= args.rss_every:
                last = time.time()
                m = scrape(url)
                samples.append((round(last - t_start), m.get("process_resident_memory_bytes", 0),
                                m.get("clipskip_cache_bytes", 0)))
        for c in clients:
            c.join()
        wall = time.time() - t_start
        m1 = scrape(url)
    finally:
        exit_code = None
        if proc:
            proc.send_signal(signal.SIGTERM)
            exit_code = proc.wait(timeout=120)

    lat = [x for c in clients for x in c.latencies]
    errors = sum(c.errors for c in clients)
    prompts = sum(c.prompts for c in clients)
    d = lambda k: m1.get(k, 0) - m0.get(k, 0)
    batches = d("clipskip_batch_size_count")
    res = {
        "clients": args.clients, "requests_ok": len(lat), "errors": errors, "wall_s": round(wall, 2),
        "requests_per_s": round(len(lat) / wall, 1), "prompts_per_s": round(prompts / wall, 1),
        "latency_ms": {p: round(pct(lat, p) * 1e3, 2) for p in (50, 90, 99)},
        "batches": int(batches), "mean_batch_prompts": round(d("clipskip_batch_size_sum") / batches, 2) if batches else 0,
        "batch_size_hist": batch_hist(m0, m1),
        "encode_calls": int(d("clipskip_encode_calls_total")),
        "cache_hits": int(d("clipskip_cache_hits_total")), "cache_misses": int(d("clipskip_cache_misses_total")),
        "rss_before_mb": round(rss0 / 2**20, 1), "rss_after_mb": round(m1.get("process_resident_memory_bytes", 0) / 2**20, 1),
        "rss_samples_mb": [(t, round(r / 2**20, 1)) for t, r, _ in samples],
        "cache_samples_mb": [(t, round(c / 2**20, 1)) for t, _, c in samples],
        "cache_after_mb": round(m1.get("clipskip_cache_bytes", 0) / 2**20, 1),
        "server_exit_code": exit_code,
        "error_samples": [s for c in clients for s in c.error_samples][:5],
    }
    print("| metric | value |\n|---|---|")
    for k in ("clients", "requests_ok", "errors", "wall_s", "requests_per_s", "prompts_per_s"):
        print(f"| {k} | {res[k]} |")
    print(f"| latency p50 / p90 / p99 (ms) | {res['latency_ms'][50]} / {res['latency_ms'][90]} / {res['latency_ms'][99]} |")
    print(f"| batches / mean prompts per batch | {res['batches']} / {res['mean_batch_prompts']} |")
    print(f"| batch size histogram (le: count) | {', '.join(f'{le}: {c}' for le, c in res['batch_size_hist'])} |")
    print(f"| encoder calls | {res['encode_calls']} |")
    print(f"| cache hits / misses (prompts) | {res['cache_hits']} / {res['cache_misses']} |")
    print(f"| server RSS before / after (MiB) | {res['rss_before_mb']} / {res['rss_after_mb']} |")
    print(f"| result cache held at the end (MiB) | {res['cache_after_mb']} |")
    if samples:
        print(f"| RSS samples (s: MiB) | {', '.join(f'{t}: {r}' for t, r in res['rss_samples_mb'])} |")
        print(f"| cache samples (s: MiB) | {', '.join(f'{t}: {c}' for t, c in res['cache_samples_mb'])} |")
    if exit_code is not None:
        print(f"| server exit code after SIGTERM | {exit_code} |")
    if res["error_samples"]:
        print("errors:", *res["error_samples"], sep="\n  ")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=1)
    return 1 if errors or (exit_code not in (None, 0)) else 0


if __name__ == "__main__":
    sys.exit(main())
