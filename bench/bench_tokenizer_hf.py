#!/usr/bin/env python3
"""Baselines for bench_tokenizer: HF CLIPTokenizerFast (Rust) and the Python CLIPTokenizer (+ftfy)
on the same corpus, 77-id sequences (truncation + padding), as bench_tokenizer measures clipskip.

Usually run by `build/bench/bench_tokenizer --python PYTHON`, which merges the rows into its
table; alone:
    build/venv-hf4/bin/python bench/bench_tokenizer_hf.py --corpus tests/data/tokenizer/corpus.txt
(transformers < 5 for the Python CLIPTokenizer; with v5 only the Rust tokenizer is measured.)
Prints one JSON object per line: name, threads, cache, subset, prompts, bytes, seconds.
Rust threads: TOKENIZERS_PARALLELISM=false for one thread; rayon with RAYON_NUM_THREADS=N else
(each setting in its own process, since rayon's pool is fixed at first use).
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "weights"))

SD = ("sd_tags", "sd_natural", "emphasis")


def load(corpus, subset):
    from gen_tokenizer_golden import read_corpus
    items = read_corpus(corpus)
    if subset == "sd":
        items = [x for x in items if x[0] in SD]
    return [t for _, t in items]


def timed(fn, min_seconds):
    """Seconds per pass: the first (cold) pass, then the median of warm passes."""
    t = time.perf_counter()
    fn()
    cold = time.perf_counter() - t
    warm, total = [], 0.0
    while total < min_seconds or len(warm) < 3:
        t = time.perf_counter()
        fn()
        d = time.perf_counter() - t
        warm.append(d)
        total += d
        if len(warm) >= 3 and total > 10 * min_seconds:
            break
    warm.sort()
    return cold, warm[len(warm) // 2]


def worker(args):
    import logging
    import transformers
    from transformers import CLIPTokenizerFast
    from gen_tokenizer_golden import write_hf_folder
    logging.getLogger("transformers").setLevel(logging.ERROR)
    folder = tempfile.mkdtemp(prefix="clipskip-bench-vocab-")
    write_hf_folder(folder)
    vj, mt = os.path.join(folder, "vocab.json"), os.path.join(folder, "merges.txt")
    for subset in ("all", "sd"):
        prompts = load(args.corpus, subset)
        nbytes = sum(len(p.encode("utf-8")) for p in prompts)
        rows = []
        if args.worker == "rust":
            tk = CLIPTokenizerFast(vj, mt).backend_tokenizer  # fresh: its BPE cache is empty
            tk.enable_truncation(77)
            tk.enable_padding(length=77, pad_id=49407)
            cold, warm = timed(lambda: tk.encode_batch(prompts), args.min_seconds)
            name = "HF CLIPTokenizerFast (Rust, tokenizers)"
            rows += [(name, args.threads, "cold", cold), (name, args.threads, "warm", warm)]
        else:
            if int(transformers.__version__.split(".")[0]) >= 5:
                continue  # v5 has no Python CLIPTokenizer
            from transformers import CLIPTokenizer
            tok = CLIPTokenizer(vj, mt)

            def run():
                tok(prompts, padding="max_length", truncation=True, max_length=77)
            t = time.perf_counter()
            run()
            cold = time.perf_counter() - t
            t = time.perf_counter()
            run()
            warm = time.perf_counter() - t
            name = "HF CLIPTokenizer (Python + ftfy)"
            rows += [(name, 1, "cold", cold), (name, 1, "warm", warm)]
        for name, th, cache, sec in rows:
            print(json.dumps({"name": name, "threads": th, "cache": cache, "subset": subset,
                              "prompts": len(prompts), "bytes": nbytes, "seconds": sec}), flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpus", default=os.path.join(ROOT, "tests", "data", "tokenizer", "corpus.txt"))
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--min-seconds", type=float, default=1.0)
    ap.add_argument("--worker", choices=["rust", "python"])
    args = ap.parse_args()
    if args.worker:
        return worker(args)
    me = [sys.executable, os.path.abspath(__file__), "--corpus", args.corpus, "--min-seconds", str(args.min_seconds)]
    runs = [("rust", 1, {"TOKENIZERS_PARALLELISM": "false"})]
    if args.threads > 1:
        runs.append(("rust", args.threads, {"TOKENIZERS_PARALLELISM": "true", "RAYON_NUM_THREADS": str(args.threads)}))
    runs.append(("python", 1, {}))
    for kind, th, env in runs:
        e = dict(os.environ, **env)
        subprocess.run(me + ["--worker", kind, "--threads", str(th)], env=e, check=True)


if __name__ == "__main__":
    main()
