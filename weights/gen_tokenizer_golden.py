#!/usr/bin/env python3
"""Golden token ids of tests/data/tokenizer/corpus.txt under the three reference tokenizers.

Regenerate (needs transformers < 5: v5 removed the Python CLIPTokenizer, whose ftfy cleanup is
the default mode; open_clip_torch, ftfy, tokenizers; no network):
    python3 -m venv --system-site-packages build/venv-hf4
    build/venv-hf4/bin/pip install "transformers<5"
    build/venv-hf4/bin/python weights/gen_tokenizer_golden.py

Writes tests/data/tokenizer/golden.txt.gz. The HF tokenizers are loaded from a temporary
vocab.json + merges.txt built from weights/bpe_simple_vocab_16e6.txt.gz (the form a diffusers
tokenizer/ folder has).

Modes (SEMANTICS.md "Tokens", clipskip_clean):
  hf    transformers CLIPTokenizer (Python) with ftfy installed: diffusers, A1111 SD1, ComfyUI
  oc    open_clip SimpleTokenizer (ftfy + html.unescape twice): A1111 SD2 / SDXL tower two
  fast  transformers CLIPTokenizerFast (Rust tokenizers, converted from vocab.json + merges.txt)

Format (gzip text): header lines start with '#'; then for each corpus line, in order,
  "P <index>", "hf <ids>", "oc <ids>", "fast <ids>" and, only where ftfy's mojibake repair
  (fix_encoding, which clipskip does not reproduce) changes the ids, "hf! <ids>" / "oc! <ids>":
  the ids the same reference gives with ftfy.fix_text(..., fix_encoding=False). The C test
  requires exact agreement with "hf"/"oc", or with "hf!"/"oc!" where those exist (the expected
  differences, reported as such). <ids> are the content ids without BOS/EOS, untruncated.

The script also checks, in Python, that every reference builds its 77-id sequence as
BOS + ids[:75] + EOS + padding (49407 for the HF tokenizers, 0 for open_clip).
"""
import gzip
import hashlib
import html
import json
import logging
import os
import sys
import tempfile

import ftfy
import open_clip
import tokenizers
import transformers
from open_clip.tokenizer import SimpleTokenizer, whitespace_clean
from transformers import CLIPTokenizer, CLIPTokenizerFast

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VOCAB_GZ = os.path.join(ROOT, "weights", "bpe_simple_vocab_16e6.txt.gz")
DATA = os.path.join(ROOT, "tests", "data", "tokenizer")
BOS, EOS = 49406, 49407


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


def write_hf_folder(out):
    """vocab.json + merges.txt exactly as openai/clip-vit-large-patch14 (and SD tokenizer/ folders) have them."""
    lines = gzip.open(VOCAB_GZ).read().decode("utf-8").split("\n")
    merges = lines[1:49152 - 256 - 2 + 1]
    vocab = list(bytes_to_unicode().values())
    vocab = vocab + [v + "</w>" for v in vocab]
    vocab += ["".join(m.split()) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    assert len(vocab) == 49408 and len(set(vocab)) == 49408
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump({v: i for i, v in enumerate(vocab)}, f, ensure_ascii=False)
    with open(os.path.join(out, "merges.txt"), "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n" + "\n".join(merges) + "\n")


def unescape_line(s):
    out, i = [], 0
    while i < len(s):
        c = s[i]
        if c != "\\":
            out.append(c)
            i += 1
            continue
        n = s[i + 1]
        if n in "\\tnr":
            out.append({"\\": "\\", "t": "\t", "n": "\n", "r": "\r"}[n])
            i += 2
        elif n == "u":
            out.append(chr(int(s[i + 2:i + 6], 16)))
            i += 6
        elif n == "U":
            out.append(chr(int(s[i + 2:i + 10], 16)))
            i += 10
        else:
            raise ValueError("bad escape in %r" % s)
    return "".join(out)


def read_corpus(path):
    items = []
    with open(path, encoding="utf-8", newline="\n") as f:
        for line in f:
            if line.startswith("#"):
                continue
            cat, _, text = line.rstrip("\n").partition("\t")
            items.append((cat, unescape_line(text)))
    return items


def main():
    if int(transformers.__version__.split(".")[0]) >= 5:
        sys.exit("transformers %s has no Python CLIPTokenizer; use transformers<5 (see the top of this file)"
                 % transformers.__version__)
    logging.getLogger("transformers").setLevel(logging.ERROR)
    folder = tempfile.mkdtemp(prefix="clipskip-vocab-")
    write_hf_folder(folder)
    slow = CLIPTokenizer(os.path.join(folder, "vocab.json"), os.path.join(folder, "merges.txt"))
    assert slow.fix_text is ftfy.fix_text, "ftfy must be installed: without it CLIPTokenizer uses BasicTokenizer"
    fast = CLIPTokenizerFast(os.path.join(folder, "vocab.json"), os.path.join(folder, "merges.txt"))
    oc = SimpleTokenizer(bpe_path=VOCAB_GZ)

    # the same references with ftfy's mojibake repair switched off
    def fix_noenc(t):
        return ftfy.fix_text(t, fix_encoding=False)

    slow_ne = CLIPTokenizer(os.path.join(folder, "vocab.json"), os.path.join(folder, "merges.txt"))
    slow_ne.fix_text = fix_noenc
    oc_ne = SimpleTokenizer(bpe_path=VOCAB_GZ)
    oc_ne.clean_fn = lambda x: whitespace_clean(html.unescape(html.unescape(fix_noenc(x))).strip()).lower()

    # optional arguments (larger differential runs): CORPUS GOLDEN_OUT
    corpus_path = sys.argv[1] if len(sys.argv) > 2 else os.path.join(DATA, "corpus.txt")
    golden_path = sys.argv[2] if len(sys.argv) > 2 else os.path.join(DATA, "golden.txt.gz")
    items = read_corpus(corpus_path)
    sha = hashlib.sha256(open(corpus_path, "rb").read()).hexdigest()
    out_lines = [
        "# clipskip tokenizer golden v1 (format: weights/gen_tokenizer_golden.py)",
        "# corpus sha256 %s, %d prompts" % (sha, len(items)),
        "# references: transformers %s CLIPTokenizer (Python, ftfy %s) | open_clip %s SimpleTokenizer | "
        "tokenizers %s CLIPTokenizerFast" % (transformers.__version__, ftfy.__version__, open_clip.__version__,
                                             tokenizers.__version__),
    ]
    expected = {}
    for idx, (cat, text) in enumerate(items):
        hf = slow(text)["input_ids"][1:-1]
        fa = fast(text)["input_ids"][1:-1]
        o = oc.encode(text)
        hf_ne = slow_ne(text)["input_ids"][1:-1]
        o_ne = oc_ne.encode(text)
        out_lines.append("P %d" % idx)
        out_lines.append(" ".join(["hf"] + [str(x) for x in hf]))
        out_lines.append(" ".join(["oc"] + [str(x) for x in o]))
        out_lines.append(" ".join(["fast"] + [str(x) for x in fa]))
        if hf_ne != hf:
            out_lines.append(" ".join(["hf!"] + [str(x) for x in hf_ne]))
            expected.setdefault((cat, "hf"), []).append(idx)
        if o_ne != o:
            out_lines.append(" ".join(["oc!"] + [str(x) for x in o_ne]))
            expected.setdefault((cat, "oc"), []).append(idx)
        # the 77-id sequences each reference feeds its text encoder
        pad = {"hf": EOS, "oc": 0, "fast": EOS}
        for name, ids, seq in (
                ("hf", hf, slow(text, padding="max_length", truncation=True, max_length=77)["input_ids"]),
                ("fast", fa, fast(text, padding="max_length", truncation=True, max_length=77)["input_ids"]),
                ("oc", o, oc(text)[0].tolist())):
            want = [BOS] + ids[:75] + [EOS]
            want += [pad[name]] * (77 - len(want))
            assert seq == want, (name, idx, text)
        if idx % 1000 == 0:
            print("%d / %d" % (idx, len(items)), file=sys.stderr)
    with gzip.open(golden_path, "wt", encoding="utf-8", compresslevel=9, newline="\n") as f:
        f.write("\n".join(out_lines) + "\n")
    print("prompts where ftfy's mojibake repair changes the ids (expected differences):", file=sys.stderr)
    for (cat, mode), idxs in sorted(expected.items()):
        print("  %-16s %-4s %4d  e.g. line %d" % (cat, mode, len(idxs), idxs[0]), file=sys.stderr)


if __name__ == "__main__":
    main()
