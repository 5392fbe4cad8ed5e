#!/usr/bin/env python3
"""Realistic-looking SD training captions from templates, with some exact duplicates.

    python3 bench/gen_captions.py N OUT.txt [--seed S]

Deterministic for a seed; about 12% of lines repeat an earlier caption (as in scraped
datasets, where the same alt text recurs)."""
import argparse
import random

SUBJECTS = ["a cat", "a dog", "a woman", "a man", "an old castle", "a mountain lake", "a red car",
            "a bowl of fruit", "a city street", "a robot", "a dragon", "a lighthouse", "two children",
            "a portrait of an elderly fisherman", "a bowl of ramen", "a café in Paris", "a forest path"]
ACTIONS = ["sitting on a bench", "in the rain", "at sunset", "under the stars", "in a field of flowers",
           "on a wooden table", "near the sea", "in the snow", "reading a book", "looking at the camera"]
STYLES = ["photo", "oil painting", "watercolor", "digital art", "35mm film", "studio lighting", "8k",
          "highly detailed", "by greg rutkowski", "trending on artstation", "bokeh", "cinematic",
          "(masterpiece:1.2)", "best quality", "soft light", "wide angle", "macro"]


def caption(rnd):
    parts = [rnd.choice(SUBJECTS) + " " + rnd.choice(ACTIONS)]
    parts += rnd.sample(STYLES, rnd.randint(0, 6))
    if rnd.random() < 0.1:
        parts.append("seed %d" % rnd.randint(0, 99999))
    return ", ".join(parts)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("n", type=int)
    ap.add_argument("out")
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    rnd = random.Random(a.seed)
    recent = []
    with open(a.out, "w", encoding="utf-8") as f:
        for _ in range(a.n):
            if recent and rnd.random() < 0.12:
                c = rnd.choice(recent)
            else:
                c = caption(rnd)
                recent.append(c)
                if len(recent) > 2000:
                    recent.pop(rnd.randrange(len(recent)))
            f.write(c + "\n")


main()
