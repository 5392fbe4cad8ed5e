#!/usr/bin/env python3
"""HF transformers CLIPTextModel on the shapes `clipskip bench` times, same JSON schema.

    python3 bench/baseline_hf.py --device cpu --model vit-l --batch 1,8 --clip-skip 1,2 \
        --threads 2 --json out/hf.json
    python3 bench/compare.py out/clipskip.json out/hf.json

Random weights (HF's own init, seed 1234), the same token ids as the C bench (splitmix64,
bench/README.md), the same batches and clip skips. Variants (--variants, comma list):

  sdpa-all          (a)+(c) the diffusers / A1111 way on SDPA attention: every layer runs with
                    output_hidden_states=True, hidden_states[-skip] is picked, final LayerNorm
                    applied as the family does (vit-l, vit-h: yes; vit-bigg: no)
  eager-all         (b)+(c) the same with eager attention
  sdpa-trunc        (d) the best plain torch can do: encoder.layers truncated to the depth
                    L - (skip - 1), only those layers run
  sdpa-trunc-graph  (d) on CUDA: sdpa-trunc captured per (batch, depth) with torch.cuda.graphs
  compile           (d) on CUDA: sdpa-trunc under torch.compile(mode="reduce-overhead")
                    (opt-in: one compile per shape takes minutes)

CPU: fp32, torch.set_num_threads(--threads). CUDA: fp16 (--dtype f32|f16|bf16 to change).
Latency is host wall time of one call with a device synchronize at the end; on CUDA also
CUDA-event time. On CUDA the timed call ends with the result copied into a host f32 tensor,
as clipskip's API delivers it (--output device leaves it on the GPU, diffusers-style). Percentiles interpolate linearly (numpy's default), as the C bench does.
Needs torch and transformers (not needed by CI).
"""
import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time

import numpy as np

FAMILIES = {
    # name: layers, width, heads, mlp, act, pad id, final LN on the hidden output by default
    "vit-l": (12, 768, 12, 3072, "quick_gelu", 49407, True),
    "vit-h": (24, 1024, 16, 4096, "gelu", 0, True),
    "vit-bigg": (32, 1280, 20, 5120, "gelu", 0, False),
    "tiny": (4, 64, 4, 256, "quick_gelu", 49407, True),
}
CONTEXT, BOS, EOS = 77, 49406, 49407
MASK64 = (1 << 64) - 1
ENV_VARS = ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "OPENBLAS_NUM_THREADS",
            "CUDA_VISIBLE_DEVICES")
DEFAULT_VARIANTS = {"cpu": "sdpa-all,eager-all,sdpa-trunc",
                    "cuda": "sdpa-all,eager-all,sdpa-trunc,sdpa-trunc-graph"}


# ---------------------------------------------------------------- inputs (same as the C bench)

def splitmix64(state):
    """One step: returns (new state, output), as host/cli/bench_data.c next_u64."""
    state = (state + 0x9E3779B97F4A7C15) & MASK64
    z = state
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return state, z ^ (z >> 31)


def ids_for_rows(seed, n_rows, pad_id):
    """(n_rows, 77) int64 ids and each row's EOS position, as cs_bench_make_ids."""
    s, rows, eos = seed, [], []
    for _ in range(n_rows):
        s, r = splitmix64(s)
        n = 10 + r % 66
        content = []
        for _ in range(n):
            s, r = splitmix64(s)
            content.append(r % 49406)
        row = [BOS] + content + [EOS] + [pad_id] * (CONTEXT - n - 2)
        rows.append(row)
        eos.append(n + 1)
    return np.array(rows, dtype=np.int64), eos


# ---------------------------------------------------------------- cost (as bench_cost.c)

def cost(layers_run, width, mlp, batch, weight_bytes, out_bytes):
    """FLOPs and floor bytes of layers_run full layers over batch rows of 77 tokens."""
    t, d, f = 77.0, float(width), float(mlp)
    full = 2.0 * batch * t * (4 * d * d + 2 * d * f) + 4.0 * d * batch * t * (t + 1) / 2
    params = 4 * d * d + 2 * d * f + 9 * d + f
    nbytes = (layers_run * params * weight_bytes + batch * t * 2 * d * weight_bytes
              + batch * t * 4 + batch * t * d * out_bytes)
    return layers_run * full, nbytes


def stats(x):
    if not x:
        return None
    a = np.asarray(x, dtype=np.float64)
    return {"n": len(x), "p50": float(np.percentile(a, 50)), "p90": float(np.percentile(a, 90)),
            "p99": float(np.percentile(a, 99)), "mean": float(a.mean()), "min": float(a.min()),
            "max": float(a.max())}


# ---------------------------------------------------------------- model and variants

def make_model(torch, family, attn, dtype, device):
    from transformers import CLIPTextConfig, CLIPTextModel
    layers, width, heads, mlp, act, pad, _ = FAMILIES[family]
    cfg = CLIPTextConfig(vocab_size=49408, hidden_size=width, intermediate_size=mlp,
                         num_hidden_layers=layers, num_attention_heads=heads,
                         max_position_embeddings=CONTEXT, hidden_act=act, layer_norm_eps=1e-5,
                         projection_dim=width, bos_token_id=BOS, eos_token_id=EOS,
                         pad_token_id=pad)
    torch.manual_seed(1234)
    model = CLIPTextModel._from_config(cfg, attn_implementation=attn)
    return model.to(device=device, dtype=dtype).eval()


class Variant:
    """A callable ids -> (B, 77, D) hidden states at a clip skip, one per variant kind."""

    def __init__(self, torch, name, model, family, device):
        self.torch, self.name, self.model, self.device = torch, name, model, device
        self.final_ln = FAMILIES[family][6]
        self.all_layers = list(model.encoder.layers)
        if not self.final_ln and not name.endswith("-all"):
            # bigG's hidden output has no final LN: last_hidden_state of the truncated stack
            model.final_layer_norm = torch.nn.Identity()
        self.graphs = {}
        self.compiled = None

    def layers_run(self, depth):
        return len(self.all_layers) if self.name.endswith("-all") else depth

    def _forward(self, ids, skip, depth):
        m = self.model
        if self.name.endswith("-all"):
            hs = m(input_ids=ids, output_hidden_states=True).hidden_states[-skip]
            return m.final_layer_norm(hs) if self.final_ln else hs
        if len(m.encoder.layers) != depth:
            m.encoder.layers = self.torch.nn.ModuleList(self.all_layers[:depth])
        return m(input_ids=ids).last_hidden_state  # final LN of the truncated stack (or none)

    def prepare(self, ids, skip, depth):
        """Per-point set-up (graph capture, compile) outside the timed region."""
        torch = self.torch
        if self.name == "sdpa-trunc-graph":
            key = (ids.shape[0], depth)
            if key not in self.graphs:
                static = ids.clone()
                s = torch.cuda.Stream()
                s.wait_stream(torch.cuda.current_stream())
                with torch.cuda.stream(s):
                    for _ in range(3):
                        self._forward(static, skip, depth)
                torch.cuda.current_stream().wait_stream(s)
                g = torch.cuda.CUDAGraph()
                with torch.cuda.graph(g):
                    out = self._forward(static, skip, depth)
                self.graphs[key] = (g, static, out)
        elif self.name == "compile":
            self.model.encoder.layers = torch.nn.ModuleList(self.all_layers[:depth])
            self.compiled = torch.compile(lambda x: self._forward(x, skip, depth),
                                          mode="reduce-overhead", dynamic=False)

    def __call__(self, ids, skip, depth):
        if self.name == "sdpa-trunc-graph":
            g, static, out = self.graphs[(ids.shape[0], depth)]
            static.copy_(ids)
            g.replay()
            return out
        if self.name == "compile":
            return self.compiled(ids)
        return self._forward(ids, skip, depth)


# ---------------------------------------------------------------- measuring

def measure_peak(torch, device, dtype):
    """Best of a few large GEMMs (FLOP/s in dtype) and copies (bytes read + written / s)."""
    n = 2048 if device == "cpu" else 8192
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    src = torch.empty((64 << 20) if device == "cpu" else (256 << 20), device=device, dtype=torch.float32)
    dst = torch.empty_like(src)
    best_mm = best_cp = float("inf")
    for _ in range(4):
        sync(torch, device)
        t = time.perf_counter()
        torch.mm(a, b)
        sync(torch, device)
        best_mm = min(best_mm, time.perf_counter() - t)
        t = time.perf_counter()
        dst.copy_(src)
        sync(torch, device)
        best_cp = min(best_cp, time.perf_counter() - t)
    return 2.0 * n ** 3 / best_mm, 2.0 * src.numel() * 4 / best_cp


def sync(torch, device):
    if device == "cuda":
        torch.cuda.synchronize()


def time_calls(torch, args, fn):
    """Warmup, then timed calls until --iters or --seconds (at least 3): wall, device lists."""
    cuda = args.device == "cuda"
    for _ in range(args.warmup):
        fn()
    sync(torch, args.device)
    wall, dev = [], []
    cap = args.iters if args.iters > 0 else 100000
    t0 = time.perf_counter()
    while len(wall) < cap:
        if cuda:
            e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            e0.record()
        s = time.perf_counter()
        fn()
        if cuda:
            e1.record()
        sync(torch, args.device)
        e = time.perf_counter()
        wall.append(e - s)
        if cuda:
            dev.append(e0.elapsed_time(e1) * 1e-3)
        if args.iters <= 0 and e - t0 >= args.seconds and len(wall) >= 3:
            break
    return wall, dev


def measure_point(torch, args, v, ids, skip, depth, peak):
    width, mlp = FAMILIES[args.model][1], FAMILIES[args.model][3]
    b = ids.shape[0]
    v.prepare(ids, skip, depth)
    if args.device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    if args.device == "cuda" and args.output in ("host", "pinned"):
        # clipskip's API writes into caller host memory as f32 (plain malloc, or pinned memory
        # from clipskip_host_alloc, which clipskip bench uses by default): do the same
        host = torch.empty((b, CONTEXT, width), dtype=torch.float32,
                           pin_memory=args.output == "pinned")
        wall, dev = time_calls(torch, args, lambda: host.copy_(v(ids, skip, depth)))
    else:
        wall, dev = time_calls(torch, args, lambda: v(ids, skip, depth))
    ws = stats(wall)
    wbytes = 4.0 if args.torch_dtype == torch.float32 else 2.0
    flops, nbytes = cost(v.layers_run(depth), width, mlp, b, wbytes, wbytes)
    floor = max(flops / peak[0], nbytes / peak[1])
    mem = (torch.cuda.max_memory_allocated() if args.device == "cuda"
           else sum(p.numel() * p.element_size() for p in v.model.parameters()))
    return {"variant": v.name, "batch": b, "clip_skip": skip, "depth": depth,
            "layers_run": v.layers_run(depth), "outputs": "hidden", "warmup": args.warmup,
            "latency_s": ws, "device_s": stats(dev), "prompts_per_s": b / ws["p50"],
            "flops": flops, "flops_nominal": flops, "bytes_floor": nbytes,
            "tflops": flops / ws["p50"] * 1e-12, "floor_s": floor,
            "floor_fraction": floor / ws["p50"], "activation_bytes": mem}


def run_variant(torch, args, name, ids_all, peak, log):
    """Every (batch, skip) point of one variant, on a model of its own (same seed, same weights)."""
    layers = FAMILIES[args.model][0]
    attn = "eager" if name.startswith("eager") else "sdpa"
    model = make_model(torch, args.model, attn, args.torch_dtype, args.device)
    v = Variant(torch, name, model, args.model, args.device)
    points = []
    for b in args.batches:
        ids = ids_all[:b]
        for skip in args.skips:
            depth = layers - (skip - 1)
            try:
                points.append(measure_point(torch, args, v, ids, skip, depth, peak))
            except Exception as e:  # a graph capture or compile that does not work here
                if name not in ("sdpa-trunc-graph", "compile"):
                    raise
                log(f"{name} batch {b} skip {skip}: FAILED: {type(e).__name__}: {e}")
                points.append({"variant": name, "batch": b, "clip_skip": skip, "depth": depth,
                               "outputs": "hidden", "latency_s": None,
                               "error": f"{type(e).__name__}: {e}"[:500]})
                continue
            p = points[-1]
            log(f"{name} batch {b} skip {skip}: p50 {p['latency_s']['p50'] * 1e3:.3f} ms, "
                f"{p['prompts_per_s']:.1f} prompts/s")
    del v, model
    if args.device == "cuda":
        torch.cuda.empty_cache()
    return points


# ---------------------------------------------------------------- description, main

def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def loadavg():
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return ""


def commit():
    if os.environ.get("CLIPSKIP_COMMIT"):
        return os.environ["CLIPSKIP_COMMIT"]
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        out = subprocess.run(["git", "-C", here, "describe", "--always", "--dirty", "--tags"],
                             capture_output=True, text=True, timeout=10)
        if out.returncode == 0 and out.stdout.strip():
            return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return "unknown"


def parse_list(s, what, lo, hi):
    try:
        vals = [int(x) for x in s.split(",")]
    except ValueError:
        sys.exit(f"baseline_hf.py: --{what} {s}: expected a comma-separated list of integers")
    for v in vals:
        if not lo <= v <= hi:
            sys.exit(f"baseline_hf.py: --{what} {v} out of range: valid {lo}..{hi}")
    return vals


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument("--model", choices=sorted(FAMILIES), default="vit-l")
    ap.add_argument("--batch", default=None, help="batch sizes (default: 1,8 cpu; 1,8,64,256,1024 cuda)")
    ap.add_argument("--clip-skip", default="1,2", help="clip skips, or 'all' (1..L)")
    ap.add_argument("--variants", default=None, help="comma list (default: " + str(DEFAULT_VARIANTS) + ")")
    ap.add_argument("--dtype", choices=["f32", "f16", "bf16"], default=None,
                    help="compute dtype (default f32 on cpu, f16 on cuda)")
    ap.add_argument("--threads", type=int, default=0, help="CPU threads (0 = all cores)")
    ap.add_argument("--output", choices=["host", "pinned", "device"], default="host",
                    help="CUDA: copy each result into a host f32 tensor inside the timed call, as "
                         "clipskip's API returns it (host: pageable; pinned: page-locked, like "
                         "clipskip bench's default --out-memory pinned), or leave it on the GPU "
                         "(device)")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--iters", type=int, default=0, help="timed calls per point (0 = --seconds)")
    ap.add_argument("--seconds", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=42, help="token id generator seed (as clipskip bench)")
    ap.add_argument("--json", default=None)
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)
    layers = FAMILIES[args.model][0]
    args.batches = parse_list(args.batch or ("1,8" if args.device == "cpu" else "1,8,64,256,1024"),
                              "batch", 1, 1 << 20)
    args.skips = (list(range(1, layers + 1)) if args.clip_skip == "all"
                  else parse_list(args.clip_skip, "clip-skip", 1, layers))
    args.variant_names = (args.variants or DEFAULT_VARIANTS[args.device]).split(",")
    for v in args.variant_names:
        if v not in ("sdpa-all", "eager-all", "sdpa-trunc", "sdpa-trunc-graph", "compile"):
            sys.exit(f"baseline_hf.py: unknown variant {v}")
        if v in ("sdpa-trunc-graph", "compile") and args.device != "cuda":
            sys.exit(f"baseline_hf.py: variant {v} needs --device cuda")
    args.dtype = args.dtype or ("f32" if args.device == "cpu" else "f16")
    return args


def main(argv):
    args = parse_args(argv)
    import torch
    import transformers
    log = (lambda m: None) if args.quiet else (lambda m: print("baseline_hf: " + m, file=sys.stderr, flush=True))
    threads = args.threads or os.cpu_count()
    torch.set_num_threads(threads)
    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("baseline_hf.py: --device cuda but torch sees no CUDA device")
    args.torch_dtype = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}[args.dtype]
    layers, width, heads, mlp, act, pad, _ = FAMILIES[args.model]
    ids_np, _ = ids_for_rows(args.seed, max(args.batches), pad)
    ids_all = torch.from_numpy(ids_np).to(args.device)
    device = (torch.cuda.get_device_name() if args.device == "cuda"
              else f"cpu: {threads} threads, torch {torch.__version__}")
    log(f"measuring the peak ({device})...")
    peak = measure_peak(torch, args.device, args.torch_dtype)
    log(f"peak {peak[0] * 1e-9:.1f} GFLOP/s, {peak[1] * 1e-9:.1f} GB/s")
    result = {
        "schema": "clipskip-bench/1", "tool": "transformers",
        "version": f"transformers {transformers.__version__}, torch {torch.__version__}",
        "build": "", "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": " ".join(["python3"] + [sys.argv[0]] + argv), "commit": commit(),
        "machine": {"cpu": cpu_model(), "cores": os.cpu_count(), "loadavg_start": loadavg(),
                    "env": {k: os.environ[k] for k in ENV_VARS if k in os.environ}},
        "device": device, "backend": args.device, "threads": threads,
        "compute_dtype": args.dtype,
        "out_dtype": "f32" if args.device == "cuda" and args.output != "device" else args.dtype,
        "output": "host" if args.device == "cpu" else args.output,
        "model": {"name": args.model, "layers": layers, "width": width, "heads": heads, "mlp": mlp,
                  "act": act, "pad_id": pad, "matmul_params_per_layer": 4 * width * width + 2 * width * mlp},
        "ids": {"generator": "splitmix64: n = 10 + next() % 66, id = next() % 49406", "seed": args.seed},
        "peak": {"flops_per_s": peak[0], "bytes_per_s": peak[1], "how": "torch.mm + tensor copy"},
        "weight_bytes_per_param": 4 if args.dtype == "f32" else 2,
        "flop_counting": "GEMMs (QKV, out-proj, MLP) + attention QK^T and PV over causal pairs "
                         "(key <= query) of the layers each variant runs",
        "variants": args.variant_names, "points": [],
    }
    with torch.inference_mode():
        for name in args.variant_names:
            result["points"] += run_variant(torch, args, name, ids_all, peak, log)
    result["machine"]["loadavg_end"] = loadavg()
    text = json.dumps(result, indent=1)
    if args.json:
        tmp = args.json + ".tmp"
        with open(tmp, "w") as f:
            f.write(text + "\n")
        os.replace(tmp, args.json)
    else:
        print(text)


if __name__ == "__main__":
    main(sys.argv[1:])
