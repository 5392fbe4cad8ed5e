#!/usr/bin/env python3
"""Merge repeated runs of one benchmark tool: per point (variant, batch, clip skip, outputs)
keep the run with the lowest p50 latency. On a shared machine the best of a few interleaved
rounds is the figure least disturbed by other load (bench/cpu_vs_torch.sh ROUNDS=N).

    bench/best_of.py RUN1.json RUN2.json ... --out MERGED.json

The merged file is the first run's header with the chosen points; "best_of" records the number
of runs and each run's date and load."""
import argparse
import json
import sys


def key(p):
    return (p.get("variant"), p["batch"], p["clip_skip"], p.get("outputs", "hidden"))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    runs = [json.load(open(f)) for f in a.runs]
    tools = {r["tool"] for r in runs}
    if len(tools) != 1:
        sys.exit(f"best_of.py: runs of different tools: {sorted(tools)}")
    best = {}
    for r in runs:
        for p in r["points"]:
            lat = (p.get("latency_s") or {}).get("p50")
            if lat is None:
                continue
            k = key(p)
            if k not in best or lat < best[k]["latency_s"]["p50"]:
                best[k] = p
    out = dict(runs[0])
    out["points"] = [best[k] for k in sorted(best, key=lambda k: (str(k[0]), k[1], k[2], k[3]))]
    out["best_of"] = {"runs": len(runs),
                      "each": [{"date": r.get("date"), "load": r.get("machine", {}).get("load")}
                               for r in runs]}
    with open(a.out, "w") as f:
        json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
