#!/usr/bin/env python3
"""Side-by-side table of `clipskip bench --json` and `bench/baseline_hf.py --json` results.

    python3 bench/compare.py CLIPSKIP.json HF.json [MORE.json ...] [--out FILE.md]

Joins the points on (batch, clip skip) with hidden-state output and prints, per point,
clipskip's p50 latency and prompts/s, then each torch variant's prompts/s and the ratio
"x" = torch p50 / clipskip p50 (above 1: clipskip is that many times faster). Warns when the
runs differ in model shape, token ids, device kind or threads. Standard library only.
"""
import argparse
import json
import sys


def load(path):
    with open(path) as f:
        d = json.load(f)
    if d.get("schema") != "clipskip-bench/1":
        sys.exit(f"compare.py: {path}: not a clipskip-bench/1 file (schema {d.get('schema')!r})")
    return d


def key(p):
    return (p["batch"], p["clip_skip"])


def describe(d):
    m = d["machine"]
    return (f"{d['tool']} ({d.get('version', '')}): {d['device']}, backend {d['backend']}, "
            f"{d['threads']} threads, compute {d['compute_dtype']}, output {d.get('output', 'host')} "
            f"{d['out_dtype']}; commit {d['commit']}; "
            f"{d['date']}; load {m.get('loadavg_start', '?')} -> {m.get('loadavg_end', '?')}")


def warnings(runs):
    out = []
    ref = runs[0]
    for d in runs[1:]:
        for field in ("layers", "width", "heads", "mlp"):
            if d["model"][field] != ref["model"][field]:
                out.append(f"model {field} differs: {ref['model'][field]} vs {d['model'][field]}")
        if d["ids"]["seed"] != ref["ids"]["seed"]:
            out.append(f"token id seeds differ: {ref['ids']['seed']} vs {d['ids']['seed']}")
        if d["backend"] != ref["backend"]:
            out.append(f"devices differ: {ref['backend']} vs {d['backend']}")
        if d["threads"] != ref["threads"]:
            out.append(f"threads differ: {ref['threads']} vs {d['threads']}")
    return out


def table(runs):
    cs = [d for d in runs if d["tool"] == "clipskip"]
    if len(cs) != 1:
        sys.exit("compare.py: give exactly one clipskip JSON (tool = clipskip)")
    base = {key(p): p for p in cs[0]["points"] if p.get("outputs", "hidden") == "hidden"}
    variants, by_variant = [], {}
    for d in runs:
        if d["tool"] == "clipskip":
            continue
        for p in d["points"]:
            v = p["variant"]
            if v not in by_variant:
                variants.append(v)
                by_variant[v] = {}
            by_variant[v][key(p)] = p
    head = ["batch", "clip skip", "depth", "clipskip p50 ms", "clipskip prompts/s"]
    for v in variants:
        head += [f"{v} prompts/s", f"x vs {v}"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---:|" * len(head)]
    for k in sorted(base):
        p = base[k]
        row = [str(k[0]), str(k[1]), str(p["depth"]), f"{p['latency_s']['p50'] * 1e3:.2f}",
               f"{p['prompts_per_s']:.1f}"]
        for v in variants:
            q = by_variant[v].get(k)
            if q is None:
                row += ["-", "-"]
            elif not q.get("latency_s"):
                row += ["failed", "-"]
            else:
                row += [f"{q['prompts_per_s']:.1f}", f"{q['latency_s']['p50'] / p['latency_s']['p50']:.2f}"]
        lines.append("| " + " | ".join(row) + " |")
    return lines


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("json", nargs="+", help="clipskip and baseline JSON files")
    ap.add_argument("--out", help="also write the table (Markdown) to this file")
    args = ap.parse_args(argv)
    runs = [load(p) for p in args.json]
    m = runs[0]["model"]
    text = [f"### clipskip vs HF transformers: {m['name']} ({m['layers']} layers, width {m['width']}), "
            f"{runs[0]['backend']}", ""]
    text += [f"- {describe(d)}" for d in runs]
    text += ["- latency: host wall time of one call, p50; prompts/s = batch / p50; "
             "x = torch p50 / clipskip p50 (above 1: clipskip faster)", ""]
    text += [f"WARNING: {w}" for w in warnings(runs)]
    text += table(runs) + [""]
    for d in runs:
        for p in d["points"]:
            if p.get("error"):
                text.append(f"- {p['variant']} batch {p['batch']} skip {p['clip_skip']} failed: {p['error']}")
    out = "\n".join(text)
    print(out)
    if args.out:
        with open(args.out, "w") as f:
            f.write(out + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
