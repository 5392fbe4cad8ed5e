/* The loaded model: text towers as typed views into the mmap'd safetensors file.
 * Built by model.c (layout detection, key map); read by the backends, which convert weights
 * to their own compute dtype once at encoder init. Immutable after load. */
#ifndef CLIPSKIP_MODEL_H
#define CLIPSKIP_MODEL_H

#include "clipskip.h"
#include "safetensors.h"

#define CS_MAX_TOWERS 2

/* A weight as stored in the file: zero-copy view, any of F32/F16/BF16. Row-major. */
typedef struct {
    const void *data;       /* NULL when absent (optional tensors only) */
    clipskip_dtype dtype;
    int32_t ndim;
    int64_t shape[2];       /* (rows, cols) for matrices, (n) for vectors */
    const char *name;       /* name in the file, for error messages */
} cs_weight;

/* One transformer layer. q/k/v are always separate views, also when the file has OpenCLIP's
 * fused in_proj (3D, D): q = rows 0..D-1, k = D..2D-1, v = 2D..3D-1 (contiguous slices). */
typedef struct {
    cs_weight ln1_w, ln1_b;       /* (D) */
    cs_weight q_w, k_w, v_w;      /* (D, D)  nn.Linear layout (out, in) */
    cs_weight q_b, k_b, v_b;      /* (D) */
    cs_weight o_w, o_b;           /* (D, D), (D) */
    cs_weight ln2_w, ln2_b;       /* (D) */
    cs_weight fc1_w, fc1_b;       /* (F, D), (F) */
    cs_weight fc2_w, fc2_b;       /* (D, F), (D) */
} cs_layer;

typedef struct {
    clipskip_tower_info info;     /* family, shapes, defaults (public view) */
    cs_weight tok_emb;            /* (V, D) */
    cs_weight pos_emb;            /* (T, D), T = context (77) */
    cs_layer *layers;             /* n_layers entries */
    cs_weight lnf_w, lnf_b;       /* (D) final layer norm */
    cs_weight proj;               /* text projection, or data == NULL */
    int proj_is_linear;           /* 1: HF nn.Linear (E, D) used as x @ W^T;
                                     0: OpenCLIP parameter (D, E) used as x @ P */
} cs_tower;

struct clipskip_model {
    char *path;
    cs_safetensors *file;         /* owns the mapping all cs_weight views point into */
    clipskip_pipeline pipeline;
    int n_towers;
    cs_tower towers[CS_MAX_TOWERS];
    clipskip_tokenizer *tokenizer;
    void *owned;                  /* weight memory not in a file (random models), freed with it */
};

/* A model of real shape with random weights (bench, README demo, tests), no file needed.
 * family: CLIP_L (SD1-style tower), OPENCLIP_H, OPENCLIP_BIGG (with projection), or for
 * OTHER a tiny tower (D 64, 4 heads, 4 layers). Weights stored as dtype (F32/F16/BF16). */
clipskip_status cs_model_random(clipskip_family family, uint64_t seed, clipskip_dtype dtype,
                                clipskip_model **out);

/* Build a model from an opened file (takes ownership of st, also on failure). config_dir: the
 * folder to look for a diffusers/transformers config.json in, or NULL for none. Used by
 * clipskip_model_load and by the fuzz target. */
clipskip_status cs_model_from_file(cs_safetensors *st, const char *config_dir, int verbose,
                                   clipskip_model **out);

#endif
