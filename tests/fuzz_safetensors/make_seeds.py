#!/usr/bin/env python3
"""Seed corpus for the safetensors fuzz target (committed in corpus/).
Regenerate: python3 tests/fuzz_safetensors/make_seeds.py   (needs numpy, safetensors)"""
import json
import os
import struct

import numpy as np
from safetensors.numpy import save

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")


def raw(header, data=b""):
    h = json.dumps(header).encode()
    return struct.pack("<Q", len(h)) + h + data


def compact(tensors, metadata=None):
    """The fuzz target's compact form: 'Z', u32 data size, header (data all zeros)."""
    full = save(tensors, metadata=metadata)
    (n,) = struct.unpack("<Q", full[:8])
    return b"Z" + struct.pack("<I", len(full) - 8 - n) + full[8:8 + n]


def tower(hf, prefix, D=64, F=2, L=1, V=2, E=0):
    """A minimal tower (shapes only matter): D = 64 so the head count is known without config."""
    z = lambda *s: np.zeros(s, np.float16)
    t = {}
    if hf:
        t[prefix + "embeddings.token_embedding.weight"] = z(V, D)
        t[prefix + "embeddings.position_embedding.weight"] = z(77, D)
        for i in range(L):
            p = f"{prefix}encoder.layers.{i}."
            for n in ("layer_norm1", "layer_norm2"):
                t[p + n + ".weight"], t[p + n + ".bias"] = z(D), z(D)
            for n in "qkv":
                t[p + f"self_attn.{n}_proj.weight"], t[p + f"self_attn.{n}_proj.bias"] = z(D, D), z(D)
            t[p + "self_attn.out_proj.weight"], t[p + "self_attn.out_proj.bias"] = z(D, D), z(D)
            t[p + "mlp.fc1.weight"], t[p + "mlp.fc1.bias"] = z(F, D), z(F)
            t[p + "mlp.fc2.weight"], t[p + "mlp.fc2.bias"] = z(D, F), z(D)
        t[prefix + "final_layer_norm.weight"], t[prefix + "final_layer_norm.bias"] = z(D), z(D)
        if E:
            t[prefix.replace("text_model.", "") + "text_projection.weight"] = z(E, D)
    else:
        t[prefix + "token_embedding.weight"] = z(V, D)
        t[prefix + "positional_embedding"] = z(77, D)
        for i in range(L):
            p = f"{prefix}transformer.resblocks.{i}."
            for n in ("ln_1", "ln_2", "attn.out_proj", "mlp.c_proj"):
                t[p + n + ".bias"] = z(D)
            for n in ("ln_1", "ln_2"):
                t[p + n + ".weight"] = z(D)
            t[p + "attn.in_proj_weight"], t[p + "attn.in_proj_bias"] = z(3 * D, D), z(3 * D)
            t[p + "attn.out_proj.weight"] = z(D, D)
            t[p + "mlp.c_fc.weight"], t[p + "mlp.c_fc.bias"] = z(F, D), z(F)
            t[p + "mlp.c_proj.weight"] = z(D, F)
        t[prefix + "ln_final.weight"], t[prefix + "ln_final.bias"] = z(D), z(D)
        if E:
            t[prefix + "text_projection"] = z(D, E)
    return t


def main():
    os.makedirs(OUT, exist_ok=True)
    seeds = {
        "empty.st": raw({}),
        "meta.st": raw({"__metadata__": {"format": "pt", "k": "v"}}),
        "one_f32.st": raw({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}, bytes(8)),
        "scalar_empty.st": raw({"s": {"dtype": "U8", "shape": [], "data_offsets": [0, 1]},
                                "e": {"dtype": "F16", "shape": [0, 3], "data_offsets": [1, 1]}},
                               bytes(1)),
        "trailing.st": raw({"w": {"dtype": "I64", "shape": [1], "data_offsets": [0, 8]}}, bytes(12)),
        "dtypes.st": save({f"t{i}": np.zeros((2, 2), dt) for i, dt in enumerate(
            [np.float32, np.float16, np.float64, np.int64, np.int32, np.int16, np.int8, np.uint8,
             np.bool_, np.uint16, np.uint32, np.uint64])}),
        "sd1_tower.st": save(tower(True, "cond_stage_model.transformer.text_model.")),
        "sd1_tower.z": compact(tower(True, "cond_stage_model.transformer.text_model."),
                               metadata={"format": "pt"}),
        "diffusers_proj.z": compact(tower(True, "text_model.", E=4)),
        "noprefix.z": compact(tower(True, "", L=2)),
        "sd2_tower.z": compact(tower(False, "cond_stage_model.model.", E=4)),
        "openclip.z": compact(tower(False, "", E=2)),
        "sdxl.z": compact({**tower(True, "conditioner.embedders.0.transformer.text_model."),
                           **tower(False, "conditioner.embedders.1.model.", E=2)}),
        "refiner_wide.z": compact(tower(False, "conditioner.embedders.0.model.", D=128, E=2)),
    }
    for name, data in seeds.items():
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(data)
        print(f"{len(data):>7}  corpus/{name}")


if __name__ == "__main__":
    main()
