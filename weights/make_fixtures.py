#!/usr/bin/env python3
"""Generate clipskip's test models and golden outputs (committed: CI needs no torch).

Regenerate, from the repository root:
    python3 weights/make_fixtures.py          # tests/data/models/ (about 37 MB, deterministic)
    python3 weights/make_fixtures.py --full   # also weights/full/ (ViT-L-shaped, ~250 MB, not
                                              # committed: a one-off local check)

Needs torch, transformers, safetensors, numpy; open_clip_torch for the OpenCLIP cross-check
(skipped with a note when missing). weights/README.md says what each file is.

The reference is HF transformers (CLIPTextModel / CLIPTextModelWithProjection) in float32 with
eager attention. Weights are random (fixed seeds), rounded to the dtype they are stored in
before the goldens are computed, so the goldens hold for exactly the stored values. Towers saved
under OpenCLIP names are converted from the HF weights (in_proj = cat(q, k, v), text_projection
= W^T, ...), so one set of goldens covers both spellings; open_clip's own TextTransformer is run
on the converted weights as a check of that conversion.

Head count: single files carry no config, and clipskip reads heads as D/64 there (every CLIP
text tower has 64-wide heads). So the single-file golden towers (D = 64) have one 64-wide head;
the diffusers text_encoder_2 golden (D = 32) has four 8-wide heads, given by its config.json.
"""
import argparse
import gzip
import json
import math
import os
import shutil
import sys
import tempfile

import numpy as np
import torch
from safetensors.numpy import save_file as np_save_file
from safetensors.torch import save_file

import transformers
from transformers import (CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection,
                          CLIPTokenizer)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "data", "models")
FULL = os.path.join(ROOT, "weights", "full")
VOCAB_GZ = os.path.join(ROOT, "weights", "bpe_simple_vocab_16e6.txt.gz")

BOS, EOS, VOCAB = 49406, 49407, 49408
GOLDEN_FORMAT, GOLDEN_VERSION = "clipskip-golden", "1"

PROMPTS = [
    "a photo of a cat",
    "",
    "A painting of a fox in the snow, by Greg Rutkowski, trending on ArtStation, 8k",
    "masterpiece, best quality, 1girl, (blue eyes:1.2), [simple background]",
    "a very long prompt: " + ", ".join(f"detail {i}" for i in range(40)),  # > 75 tokens
    "café au lait — crème brûlée",
]

F16, BF16, F32 = torch.float16, torch.bfloat16, torch.float32

# ----------------------------------------------------------------------------- tokenizer


def byte_symbols():
    """The 256 byte symbols in vocabulary order: the 188 printable bytes as themselves (in byte
    order), then the other 68 bytes as U+0100, U+0101, ... (SEMANTICS.md "Tokens")."""
    printable = [b for b in range(256) if 0x21 <= b <= 0x7E or 0xA1 <= b <= 0xAC or 0xAE <= b]
    return [chr(b) for b in printable] + [chr(0x100 + n) for n in range(256 - len(printable))]


def clip_vocab():
    lines = gzip.open(VOCAB_GZ).read().decode("utf-8").split("\n")
    merges = [tuple(m.split()) for m in lines[1:1 + 48894]]  # line 0 is a header
    syms = byte_symbols()
    tokens = syms + [s + "</w>" for s in syms] + ["".join(m) for m in merges]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    assert len(tokens) == VOCAB
    return {t: i for i, t in enumerate(tokens)}, merges


def make_tokenizer(pad_id):
    vocab, merges = clip_vocab()
    pad = "<|endoftext|>" if pad_id == EOS else "!"  # "!" is id 0 (diffusers SD2/SDXL-G)
    tok = CLIPTokenizer(vocab=vocab, merges=merges, pad_token=pad)
    assert tok.pad_token_id == pad_id
    return tok


def tokenize(prompts, pad_id):
    tok = make_tokenizer(pad_id)
    ids = tok(prompts, padding="max_length", max_length=77, truncation=True,
              return_tensors="pt").input_ids.to(torch.int32)
    check_against_open_clip(prompts, ids, pad_id)
    return ids


def check_against_open_clip(prompts, ids, pad_id):
    """The prompts are chosen so that every cleanup mode (HF fast, HF with ftfy, open_clip with
    ftfy + HTML unescape) gives the same ids: check against open_clip's tokenizer."""
    try:
        from open_clip.tokenizer import SimpleTokenizer
    except ImportError:
        print("note: open_clip missing, tokenizer cross-check skipped")
        return
    st = SimpleTokenizer()
    for p, row in zip(prompts, ids.tolist()):
        body = st.encode(p)[:75]
        ref = [BOS] + body + [EOS]
        ref += [pad_id] * (77 - len(ref))
        assert ref == row, f"tokenizers disagree on {p!r}"

# ----------------------------------------------------------------------------- towers


def hf_config(D, F, L, heads, act, vocab=VOCAB, proj=None):
    cfg = CLIPTextConfig(vocab_size=vocab, hidden_size=D, intermediate_size=F,
                         num_hidden_layers=L, num_attention_heads=heads, hidden_act=act,
                         max_position_embeddings=77, projection_dim=proj or D,
                         bos_token_id=BOS, eos_token_id=EOS, pad_token_id=1)
    return cfg


def make_tower(seed, D, F, L, heads, act, vocab=VOCAB, proj=None, dtype_of=None):
    """An HF tower with random weights of a useful size (unit-ish activations, LayerNorm
    weights away from 1, non-zero biases), rounded to their storage dtypes."""
    torch.manual_seed(seed)
    cfg = hf_config(D, F, L, heads, act, vocab, proj)
    model = (CLIPTextModelWithProjection if proj else CLIPTextModel)(cfg)
    model.set_attn_implementation("eager")
    model.eval()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            r = torch.randn(p.shape, generator=g)
            if "layer_norm" in name:
                v = (1.0 if name.endswith("weight") else 0.0) + 0.1 * r
            elif name.endswith("bias"):
                v = 0.1 * r
            elif "embedding" in name:
                v = 0.5 * r
            else:  # (out, in) matrices
                v = r / math.sqrt(p.shape[1])
            store = (dtype_of or (lambda n, t: F32))(rel_name(name), v)
            p.copy_(v.to(store).float())
    model.store_dtypes = {rel_name(n): (dtype_of or (lambda n, t: F32))(rel_name(n), p)
                          for n, p in model.named_parameters()}
    return model


def rel_name(name):
    """Tower-relative HF names: 'embeddings.…', 'encoder.layers.…', 'final_layer_norm.…',
    'text_projection.weight' (transformers 5 keeps 'text_model.' only in the projection
    model)."""
    return name[len("text_model."):] if name.startswith("text_model.") else name


def hf_tensors(model):
    """{relative name: tensor in its storage dtype}."""
    out = {}
    for k, v in model.state_dict().items():
        r = rel_name(k)
        if r.endswith("position_ids"):
            continue
        out[r] = v.to(model.store_dtypes[r]).contiguous()
    return out


def hf_layout(model, prefix, proj_prefix=""):
    t = hf_tensors(model)
    out = {}
    for k, v in t.items():
        out[(proj_prefix if k == "text_projection.weight" else prefix) + k] = v
    return out


def openclip_layout(model, prefix):
    """HF names → OpenCLIP names: fused in_proj (3D, D) = cat(q, k, v), text_projection (D, E)
    = W^T, used as x @ P."""
    t = hf_tensors(model)
    L = model.config.num_hidden_layers
    out = {
        prefix + "token_embedding.weight": t["embeddings.token_embedding.weight"],
        prefix + "positional_embedding": t["embeddings.position_embedding.weight"],
        prefix + "ln_final.weight": t["final_layer_norm.weight"],
        prefix + "ln_final.bias": t["final_layer_norm.bias"],
    }
    for i in range(L):
        h, o = f"encoder.layers.{i}.", f"{prefix}transformer.resblocks.{i}."
        a = h + "self_attn."
        for kind in ("weight", "bias"):
            out[o + "attn.in_proj_" + kind] = torch.cat(
                [t[a + p + "_proj." + kind] for p in "qkv"]).contiguous()
            out[o + "attn.out_proj." + kind] = t[a + "out_proj." + kind]
            out[o + "ln_1." + kind] = t[h + "layer_norm1." + kind]
            out[o + "ln_2." + kind] = t[h + "layer_norm2." + kind]
            out[o + "mlp.c_fc." + kind] = t[h + "mlp.fc1." + kind]
            out[o + "mlp.c_proj." + kind] = t[h + "mlp.fc2." + kind]
    if "text_projection.weight" in t:
        out[prefix + "text_projection"] = t["text_projection.weight"].t().contiguous()
    return out


@torch.no_grad()
def run_reference(model, ids):
    """HF outputs: every hidden state, last_hidden_state, pooled, text_embeds."""
    text_model = model.text_model if hasattr(model, "text_model") else model
    out = text_model(input_ids=ids.long(), output_hidden_states=True)
    res = {
        "hidden_states": torch.stack(out.hidden_states).float(),  # (L+1, B, 77, D)
        "last_hidden_state": out.last_hidden_state.float(),
        "pooled": out.pooler_output.float(),
    }
    # pooled at the first EOS (SEMANTICS.md): check HF agrees
    eos_pos = (ids == EOS).int().argmax(-1)
    ref = out.last_hidden_state[torch.arange(ids.shape[0]), eos_pos]
    assert torch.equal(ref, out.pooler_output)
    if isinstance(model, CLIPTextModelWithProjection):
        res["text_embeds"] = model(input_ids=ids.long()).text_embeds.float()
    return res


@torch.no_grad()
def check_openclip(model, tensors, prefix, ids, ref):
    """Run open_clip's TextTransformer on the converted weights: same text_embeds and tokens."""
    try:
        from open_clip.transformer import TextTransformer
    except ImportError:
        print("note: open_clip missing, OpenCLIP conversion cross-check skipped")
        return
    c = model.config
    assert c.hidden_act == "gelu"
    tt = TextTransformer(context_length=77, vocab_size=c.vocab_size, width=c.hidden_size,
                         heads=c.num_attention_heads, layers=c.num_hidden_layers,
                         mlp_ratio=c.intermediate_size / c.hidden_size,
                         output_dim=c.projection_dim, output_tokens=True, pad_id=0)
    sd = {k[len(prefix):]: v.float() for k, v in tensors.items() if k.startswith(prefix)}
    sd = {k: v for k, v in sd.items() if k in tt.state_dict()}
    tt.load_state_dict(sd, strict=True)
    tt.eval()
    pooled, tokens = tt(ids.long())
    assert torch.allclose(tokens, ref["last_hidden_state"], atol=1e-4, rtol=1e-4)
    assert torch.allclose(pooled, ref["text_embeds"], atol=1e-4, rtol=1e-4)


def write_goldens(path, model_rel, tower, ids, ref, pad_id, model):
    c = model.config
    tensors = {"ids": ids.contiguous()}
    tensors.update({k: v.contiguous() for k, v in ref.items()})
    meta = {
        "format": GOLDEN_FORMAT, "version": GOLDEN_VERSION,
        "model": model_rel, "tower": str(tower), "pad_id": str(pad_id),
        "n_layers": str(c.num_hidden_layers), "n_heads": str(c.num_attention_heads),
        "act": c.hidden_act, "prompts": json.dumps(PROMPTS, ensure_ascii=False),
        "clean": "hf (prompts chosen so that hf, hf-fast and openclip cleanups agree)",
        "reference": f"transformers {transformers.__version__} "
                     f"{type(model).__name__}, float32, eager attention; torch {torch.__version__}",
        "generator": "weights/make_fixtures.py",
    }
    save_deterministic(tensors, path, meta)


def save_deterministic(tensors, path, metadata):
    """safetensors with the official layout (larger item sizes first, then by name; header
    padded with spaces to 8 bytes) and sorted metadata keys: the official writer orders
    metadata by a hash map, so its bytes change from run to run."""
    st_dtype = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16",
                torch.int32: "I32", torch.int64: "I64"}
    order = sorted(tensors, key=lambda k: (-tensors[k].element_size(), k))
    header, blobs, off = {"__metadata__": dict(sorted(metadata.items()))}, [], 0
    for k in order:
        t = tensors[k].contiguous()
        raw = (t.view(torch.int16) if t.dtype == torch.bfloat16 else t).numpy().tobytes()
        header[k] = {"dtype": st_dtype[t.dtype], "shape": list(t.shape),
                     "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    h = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(len(h).to_bytes(8, "little") + h + b"".join(blobs))
    from safetensors import safe_open  # the official reader accepts it
    with safe_open(path, "pt") as f:
        assert f.metadata() == metadata and set(f.keys()) == set(tensors)


def save_model(path, tensors, extra=None, meta=None):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    t = dict(tensors)
    t.update({k: torch.from_numpy(v) for k, v in (extra or {}).items()})
    save_file(t, path, metadata=meta or {"format": "pt"})


def not_text_tensors(prefix_unet="model.diffusion_model.", prefix_vae="first_stage_model."):
    """A few tensors standing in for the UNet and VAE of a single-file checkpoint."""
    rng = np.random.default_rng(0)
    return {
        prefix_unet + "input_blocks.0.0.weight": rng.standard_normal((8, 4, 3, 3)).astype(np.float16),
        prefix_unet + "input_blocks.0.0.bias": rng.standard_normal(8).astype(np.float16),
        prefix_vae + "decoder.conv_in.weight": rng.standard_normal((8, 4, 3, 3)).astype(np.float16),
        "alphas_cumprod": np.linspace(1, 0.01, 1000, dtype=np.float32),
    }


# ----------------------------------------------------------------------------- fixtures


def tok_f16(rel, t):
    """Golden towers: token embedding F16 (keeps the 49408-row table at 6 MB), rest F32."""
    return F16 if rel.endswith("token_embedding.weight") else F32


def all_f16(rel, t):
    return F16


def gen_sd1(files):
    m = make_tower(101, 64, 256, 6, 1, "quick_gelu", dtype_of=tok_f16)
    t = hf_layout(m, "cond_stage_model.transformer.text_model.")
    # merged checkpoints carry a corrupted position_ids: it must be ignored
    bad_pos = np.arange(77, dtype=np.int64)[None, :]
    bad_pos[0, 5:] -= 1
    extra = not_text_tensors()
    extra["cond_stage_model.transformer.text_model.embeddings.position_ids"] = bad_pos
    save_model(f"{OUT}/sd1.safetensors", t, extra)
    ids = tokenize(PROMPTS, EOS)
    write_goldens(f"{OUT}/sd1.goldens.safetensors", "sd1.safetensors", 0, ids,
                  run_reference(m, ids), EOS, m)
    files += ["sd1.safetensors", "sd1.goldens.safetensors"]


def gen_sd2(files):
    m = make_tower(202, 64, 256, 5, 1, "gelu", proj=64, dtype_of=all_f16)
    p = "cond_stage_model.model."
    t = openclip_layout(m, p)
    extra = not_text_tensors()
    extra[p + "logit_scale"] = np.array(4.6052, dtype=np.float32)  # a 0-d tensor
    save_model(f"{OUT}/sd2.safetensors", t, extra)
    ids = tokenize(PROMPTS, 0)
    ref = run_reference(m, ids)
    check_openclip(m, t, p, ids, ref)
    write_goldens(f"{OUT}/sd2.goldens.safetensors", "sd2.safetensors", 0, ids, ref, 0, m)
    files += ["sd2.safetensors", "sd2.goldens.safetensors"]


def write_sdxl(out, name, d1, files):
    """SDXL single file: tower 0 CLIP-L-like (D 64), tower 1 bigG-like (D d1, d1/64 heads),
    and the goldens of each tower (name.tower{0,1}.goldens.safetensors)."""
    ml = make_tower(303, 64, 256, 4, 1, "quick_gelu", dtype_of=all_f16)
    mg = make_tower(304, d1, 4 * d1, 6, d1 // 64, "gelu", proj=48, dtype_of=all_f16)
    pg = "conditioner.embedders.1.model."
    t = hf_layout(ml, "conditioner.embedders.0.transformer.text_model.")
    tg = openclip_layout(mg, pg)
    t.update(tg)
    extra = not_text_tensors()
    extra[pg + "logit_scale"] = np.array(4.6052, dtype=np.float32)
    save_model(f"{out}/{name}.safetensors", t, extra)
    for i, (m, pad) in enumerate(((ml, EOS), (mg, 0))):
        ids = tokenize(PROMPTS, pad)
        ref = run_reference(m, ids)
        if i == 1:
            check_openclip(m, tg, pg, ids, ref)
        write_goldens(f"{out}/{name}.tower{i}.goldens.safetensors", f"{name}.safetensors", i, ids,
                      ref, pad, m)
        files.append(f"{name}.tower{i}.goldens.safetensors")
    files.append(f"{name}.safetensors")


def gen_sdxl(files):
    # both towers 64 wide: each 64 of width costs ~6 MB (the 49408-row token embedding), and
    # the committed tree must stay small (it travels to the GPU machine); --sdxl-wide writes the
    # real-SDXL case (towers of different widths) under weights/full/ instead
    write_sdxl(OUT, "sdxl", 64, files)


def gen_diffusers(files):
    """text_encoder_2-like: HF names, config.json (D = 32: 4 heads of 8, gelu), a projection,
    and a mixed-dtype file: matmul weights BF16, token embedding F16, the rest F32."""
    def mixed(rel, t):
        if rel.endswith("token_embedding.weight"):
            return F16
        return BF16 if t.dim() == 2 and "embedding" not in rel else F32
    m = make_tower(405, 32, 128, 5, 4, "gelu", proj=24, dtype_of=mixed)
    d = f"{OUT}/diffusers/text_encoder_2"
    save_model(f"{d}/model.safetensors", hf_layout(m, "text_model."))
    m.config.save_pretrained(d)
    ids = tokenize(PROMPTS, 0)
    write_goldens(f"{OUT}/diffusers/text_encoder_2.goldens.safetensors",
                  "diffusers/text_encoder_2/model.safetensors", 0, ids, run_reference(m, ids), 0, m)
    files += ["diffusers/text_encoder_2/model.safetensors", "diffusers/text_encoder_2/config.json",
              "diffusers/text_encoder_2.goldens.safetensors"]


def gen_small(files):
    """Layouts without goldens (vocab 1000: the loader reads the vocab from the shapes)."""
    # diffusers text_encoder as older transformers saved it: 'text_model.' prefix, position_ids
    m = make_tower(501, 64, 128, 3, 2, "quick_gelu", vocab=1000, dtype_of=all_f16)
    d = f"{OUT}/diffusers/text_encoder"
    t = hf_layout(m, "text_model.")
    save_model(f"{d}/model.safetensors", t,
               {"text_model.embeddings.position_ids": np.arange(77, dtype=np.int64)[None]})
    m.config.save_pretrained(d)
    files += ["diffusers/text_encoder/model.safetensors", "diffusers/text_encoder/config.json"]
    # transformers >= 5.6: CLIPTextModel.save_pretrained writes names without 'text_model.'
    m = make_tower(502, 64, 128, 2, 4, "quick_gelu", vocab=1000, dtype_of=all_f16)
    m.half().save_pretrained(f"{OUT}/hf-noprefix")
    files += ["hf-noprefix/model.safetensors", "hf-noprefix/config.json"]
    # SD1 single file, older prefix without text_model.
    m = make_tower(503, 64, 128, 2, 1, "quick_gelu", vocab=1000, dtype_of=all_f16)
    save_model(f"{OUT}/sd1-old.safetensors", hf_layout(m, "cond_stage_model.transformer."),
               not_text_tensors())
    files.append("sd1-old.safetensors")
    # SDXL refiner: bigG-like alone at conditioner.embedders.0.model.
    m = make_tower(504, 64, 128, 3, 1, "gelu", vocab=1000, proj=32, dtype_of=all_f16)
    save_model(f"{OUT}/sdxl-refiner.safetensors",
               openclip_layout(m, "conditioner.embedders.0.model."), not_text_tensors())
    files.append("sdxl-refiner.safetensors")
    # OpenCLIP native names (no prefix) with a visual tower that must be ignored; D = 128
    m = make_tower(505, 128, 256, 2, 2, "gelu", vocab=1000, proj=64, dtype_of=all_f16)
    rng = np.random.default_rng(1)
    vis = {
        "visual.conv1.weight": rng.standard_normal((32, 3, 4, 4)).astype(np.float16),
        "visual.transformer.resblocks.0.attn.in_proj_weight":
            rng.standard_normal((96, 32)).astype(np.float16),
        "visual.proj": rng.standard_normal((32, 64)).astype(np.float16),
        "logit_scale": np.array(4.6052, dtype=np.float32),
    }
    save_model(f"{OUT}/openclip.safetensors", openclip_layout(m, ""), vis)
    files.append("openclip.safetensors")
    # every tensor BF16
    m = make_tower(506, 64, 128, 2, 1, "quick_gelu", vocab=1000, dtype_of=lambda r, t: BF16)
    save_model(f"{OUT}/tower-bf16.safetensors", hf_layout(m, "text_model."))
    files.append("tower-bf16.safetensors")


def gen_bad(files):
    """Files the loader must refuse (or accept with a warning), each for one reason."""
    b = f"{OUT}/bad"
    os.makedirs(b, exist_ok=True)
    m = make_tower(601, 64, 96, 2, 1, "quick_gelu", vocab=16, dtype_of=all_f16)
    good = hf_layout(m, "cond_stage_model.transformer.text_model.")
    p = "cond_stage_model.transformer.text_model.encoder.layers."

    def variant(name, edit):
        t = dict(good)
        edit(t)
        save_model(f"{b}/{name}", t)
        files.append(f"bad/{name}")

    variant("wrong-shape.safetensors",  # fc2 (D, F) stored transposed
            lambda t: t.__setitem__(p + "1.mlp.fc2.weight", t[p + "1.mlp.fc2.weight"].t().contiguous()))
    variant("missing-tensor.safetensors", lambda t: t.pop(p + "1.self_attn.v_proj.bias"))
    variant("layer-gap.safetensors",  # layer 1 renamed to 2: layers 0 and 2
            lambda t: [t.__setitem__(k.replace(".layers.1.", ".layers.2."), t.pop(k))
                       for k in [k for k in t if ".layers.1." in k]])
    variant("int-weight.safetensors",
            lambda t: t.__setitem__(p + "0.mlp.fc1.weight", t[p + "0.mlp.fc1.weight"].to(torch.int32)))
    variant("unknown-layer-tensor.safetensors",  # layer scale: not a CLIP text layer
            lambda t: t.__setitem__(p + "0.ls_1.gamma", torch.ones(64, dtype=F16)))
    n = len("cond_stage_model.transformer.text_model.")
    variant("three-towers.safetensors",
            lambda t: t.update({f"{x}.text_model.{k[n:]}": v.clone()
                                for x in "xy" for k, v in good.items()}))
    save_model(f"{b}/no-text-tower.safetensors", {}, not_text_tensors())
    files.append("bad/no-text-tower.safetensors")
    # a valid file with 4 bytes after the last tensor (as some SD1.5 checkpoints): accepted
    save_model(f"{b}/trailing-bytes.safetensors", good)
    with open(f"{b}/trailing-bytes.safetensors", "ab") as f:
        f.write(b"\0\0\0\0")
    files.append("bad/trailing-bytes.safetensors")
    # the same file cut short: the last tensor runs past the end
    save_model(f"{b}/truncated.safetensors", good)
    with open(f"{b}/truncated.safetensors", "r+b") as f:
        f.truncate(os.path.getsize(f"{b}/truncated.safetensors") - 100)
    files.append("bad/truncated.safetensors")
    # PyTorch pickles: by extension, and zip content under a .safetensors name
    torch.save({"state_dict": {"w": torch.zeros(2)}}, f"{b}/pickle.ckpt")
    shutil.copy(f"{b}/pickle.ckpt", f"{b}/pickle-renamed.safetensors")
    files += ["bad/pickle.ckpt", "bad/pickle-renamed.safetensors"]


def gen_full():
    """A ViT-L-shaped SD1 single file (12 x 768, 12 heads, 3072, quick_gelu, F16) + goldens."""
    m = make_tower(777, 768, 3072, 12, 12, "quick_gelu", dtype_of=all_f16)
    os.makedirs(FULL, exist_ok=True)
    save_model(f"{FULL}/sd1-clip-l.safetensors",
               hf_layout(m, "cond_stage_model.transformer.text_model."))
    ids = tokenize(PROMPTS, EOS)
    write_goldens(f"{FULL}/sd1-clip-l.goldens.safetensors", "sd1-clip-l.safetensors", 0, ids,
                  run_reference(m, ids), EOS, m)
    print(f"wrote {FULL}/sd1-clip-l.safetensors and its goldens")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--full", action="store_true", help="also write weights/full/ (not committed)")
    ap.add_argument("--sdxl-wide", action="store_true",
                    help="only write weights/full/sdxl-wide* (towers 64 and 128 wide, as real "
                         "SDXL's differ; not committed), for test_golden's one-case mode")
    args = ap.parse_args()
    torch.set_default_dtype(torch.float32)
    transformers.logging.set_verbosity_error()
    if args.sdxl_wide:
        os.makedirs(FULL, exist_ok=True)
        write_sdxl(FULL, "sdxl-wide", 128, [])
        print(f"wrote {FULL}/sdxl-wide.safetensors and the goldens of both towers")
        return
    if os.path.isdir(OUT):
        shutil.rmtree(OUT)
    os.makedirs(OUT)
    files = []
    gen_sd1(files)
    gen_sd2(files)
    gen_sdxl(files)
    gen_diffusers(files)
    gen_small(files)
    gen_bad(files)
    total = 0
    for f in sorted(files):
        n = os.path.getsize(f"{OUT}/{f}")
        total += n
        print(f"{n:>10}  tests/data/models/{f}")
    print(f"{total:>10}  total")
    if args.full:
        gen_full()


if __name__ == "__main__":
    main()
