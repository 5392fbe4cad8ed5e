/* Model loading: find the text tower(s) in a safetensors file by their tensor names, read the
 * configuration from the shapes (and a diffusers config.json), validate every shape, and map
 * the names onto cs_tower views (zero-copy into the mapping).
 *
 * Layouts (tower prefix → layout, pipeline):
 *   cond_stage_model.transformer.text_model.   HF names      sd1-single-file        SD1
 *   cond_stage_model.transformer.              HF names      sd1-single-file-old    SD1
 *   cond_stage_model.model.                    OpenCLIP      sd2-single-file        SD2
 *   conditioner.embedders.0.transformer.text_model.  HF      sdxl-single-file       SDXL tower 0
 *   conditioner.embedders.1.model.             OpenCLIP      sdxl-single-file       SDXL tower 1
 *   conditioner.embedders.0.model.             OpenCLIP      sdxl-refiner-single-file  refiner
 *   text_model.                                HF names      diffusers              tower
 *   (none)                                     HF names      transformers-no-prefix tower
 *   (none)                                     OpenCLIP      openclip               tower
 *   text.                                      OpenCLIP      openclip-custom-text   tower
 *   anything else                              either        hf-names / openclip-names
 * A tower is found by its token embedding: "<P>embeddings.token_embedding.weight" (HF names) or
 * "<P>token_embedding.weight" (OpenCLIP names). Other tensors (UNet, VAE, visual tower,
 * position_ids, logit_scale) are ignored; an unknown tensor inside a layer is refused.
 *
 * Configuration: D and vocab from the token embedding, F from layer 0's fc1, the layer count
 * from the layers present (contiguous from 0), E from text_projection. The head count comes from
 * config.json beside a diffusers/transformers file when present, else D/64: every CLIP text
 * tower (OpenAI and OpenCLIP) uses 64-wide heads. Activation: quick_gelu for HF-named towers of
 * width other than 1024/1280 (OpenAI CLIP), exact erf GELU for OpenCLIP-named towers and for
 * widths 1024/1280 (OpenCLIP H, bigG); config.json's hidden_act overrides.
 *
 * Defaults per tower (SEMANTICS.md) follow the tower's role in its pipeline:
 *   SD1 role   (SD1 files; lone CLIP-L or quick_gelu towers):   skip 1, final LN on,  pad 49407
 *   SD2 role   (SD2 files; lone OpenCLIP-H or other GELU towers): skip 2, final LN on, pad 0
 *              (skip 1 for an HF-named 23-layer tower: the diffusers conversion already dropped
 *               the last layer, so its full depth is SD2's penultimate layer)
 *   SDXL-L     (SDXL tower 0):                                   skip 2, final LN off, pad 49407
 *   SDXL-G     (SDXL tower 1, refiner; lone bigG, or an HF-named GELU tower with a projection,
 *               i.e. a diffusers text_encoder_2):                skip 2, final LN off, pad 0
 * The pad id of a lone tower therefore follows its family (49407 CLIP-L, 0 OpenCLIP). The
 * default text cleanup is CLIPSKIP_CLEAN_HF for every tower (what diffusers does); A1111 uses
 * open_clip's cleanup (CLIPSKIP_CLEAN_OPENCLIP) for OpenCLIP towers, selectable per call.
 * A default skip larger than the tower's layer count is clamped to it. */
#include "model.h"

#include "internal.h"
#include "model_config.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#define MAX_LAYERS 1024
#define NAME_CAP 512
#define PREFIX_MAX 256 /* longest tower prefix accepted (real ones are < 60 bytes) */

typedef enum { NAMES_HF, NAMES_OPENCLIP } names_style;

static const struct {
    const char *prefix;
    names_style style;
    const char *layout;
    clipskip_pipeline pipeline; /* what a file holding this tower (alone or with its pair) is */
} KNOWN[] = {
    {"cond_stage_model.transformer.text_model.", NAMES_HF, "sd1-single-file",
     CLIPSKIP_PIPELINE_SD1},
    {"cond_stage_model.transformer.", NAMES_HF, "sd1-single-file-old", CLIPSKIP_PIPELINE_SD1},
    {"cond_stage_model.model.", NAMES_OPENCLIP, "sd2-single-file", CLIPSKIP_PIPELINE_SD2},
    {"conditioner.embedders.0.transformer.text_model.", NAMES_HF, "sdxl-single-file",
     CLIPSKIP_PIPELINE_SDXL},
    {"conditioner.embedders.1.model.", NAMES_OPENCLIP, "sdxl-single-file", CLIPSKIP_PIPELINE_SDXL},
    {"conditioner.embedders.0.model.", NAMES_OPENCLIP, "sdxl-refiner-single-file",
     CLIPSKIP_PIPELINE_SDXL_REFINER},
    {"text_model.", NAMES_HF, "diffusers", CLIPSKIP_PIPELINE_TOWER},
    {"", NAMES_HF, "transformers-no-prefix", CLIPSKIP_PIPELINE_TOWER},
    {"", NAMES_OPENCLIP, "openclip", CLIPSKIP_PIPELINE_TOWER},
    {"text.", NAMES_OPENCLIP, "openclip-custom-text", CLIPSKIP_PIPELINE_TOWER},
};
#define N_KNOWN ((int)(sizeof KNOWN / sizeof KNOWN[0]))

typedef struct {
    char *prefix;
    names_style style;
    const char *layout;
    clipskip_pipeline pipeline;
} tower_loc;

/* Dimension symbols for shape expectations. */
typedef enum { DIM_D, DIM_F, DIM_3D } dim_sym;

/* One tensor of a layer: name suffix, where it goes, its shape. split: OpenCLIP's fused
 * in_proj (3D, ...) spread over the three consecutive q/k/v members. */
typedef struct {
    const char *suffix;
    size_t member;
    int ndim;
    dim_sym rows, cols;
    int split;
} layer_key;

#define LW(m) offsetof(cs_layer, m)
static const layer_key HF_KEYS[] = {
    {"layer_norm1.weight", LW(ln1_w), 1, DIM_D, DIM_D, 0},
    {"layer_norm1.bias", LW(ln1_b), 1, DIM_D, DIM_D, 0},
    {"self_attn.q_proj.weight", LW(q_w), 2, DIM_D, DIM_D, 0},
    {"self_attn.q_proj.bias", LW(q_b), 1, DIM_D, DIM_D, 0},
    {"self_attn.k_proj.weight", LW(k_w), 2, DIM_D, DIM_D, 0},
    {"self_attn.k_proj.bias", LW(k_b), 1, DIM_D, DIM_D, 0},
    {"self_attn.v_proj.weight", LW(v_w), 2, DIM_D, DIM_D, 0},
    {"self_attn.v_proj.bias", LW(v_b), 1, DIM_D, DIM_D, 0},
    {"self_attn.out_proj.weight", LW(o_w), 2, DIM_D, DIM_D, 0},
    {"self_attn.out_proj.bias", LW(o_b), 1, DIM_D, DIM_D, 0},
    {"layer_norm2.weight", LW(ln2_w), 1, DIM_D, DIM_D, 0},
    {"layer_norm2.bias", LW(ln2_b), 1, DIM_D, DIM_D, 0},
    {"mlp.fc1.weight", LW(fc1_w), 2, DIM_F, DIM_D, 0},
    {"mlp.fc1.bias", LW(fc1_b), 1, DIM_F, DIM_F, 0},
    {"mlp.fc2.weight", LW(fc2_w), 2, DIM_D, DIM_F, 0},
    {"mlp.fc2.bias", LW(fc2_b), 1, DIM_D, DIM_D, 0},
    {NULL, 0, 0, DIM_D, DIM_D, 0},
};
static const layer_key OC_KEYS[] = {
    {"ln_1.weight", LW(ln1_w), 1, DIM_D, DIM_D, 0},
    {"ln_1.bias", LW(ln1_b), 1, DIM_D, DIM_D, 0},
    {"attn.in_proj_weight", LW(q_w), 2, DIM_3D, DIM_D, 1},
    {"attn.in_proj_bias", LW(q_b), 1, DIM_3D, DIM_D, 1},
    {"attn.out_proj.weight", LW(o_w), 2, DIM_D, DIM_D, 0},
    {"attn.out_proj.bias", LW(o_b), 1, DIM_D, DIM_D, 0},
    {"ln_2.weight", LW(ln2_w), 1, DIM_D, DIM_D, 0},
    {"ln_2.bias", LW(ln2_b), 1, DIM_D, DIM_D, 0},
    {"mlp.c_fc.weight", LW(fc1_w), 2, DIM_F, DIM_D, 0},
    {"mlp.c_fc.bias", LW(fc1_b), 1, DIM_F, DIM_F, 0},
    {"mlp.c_proj.weight", LW(fc2_w), 2, DIM_D, DIM_F, 0},
    {"mlp.c_proj.bias", LW(fc2_b), 1, DIM_D, DIM_D, 0},
    {NULL, 0, 0, DIM_D, DIM_D, 0},
};

/* Per-tower loading state: the file, the names' parts and the dimensions read so far. */
typedef struct {
    const cs_safetensors *st;
    const char *file;
    const tower_loc *loc;
    const layer_key *keys;
    char layers_prefix[PREFIX_MAX + 32];
    int64_t D, F;
} tower_ctx;

static int64_t dim_value(const tower_ctx *c, dim_sym s) {
    return s == DIM_D ? c->D : s == DIM_F ? c->F : 3 * c->D;
}

static const char *dim_name(dim_sym s) { return s == DIM_D ? "D" : s == DIM_F ? "F" : "3D"; }

static const char *shape_str(const int64_t *shape, int ndim, char *buf, size_t cap) {
    int n = snprintf(buf, cap, "[");
    for (int i = 0; i < ndim && n > 0 && (size_t)n < cap; i++)
        n += snprintf(buf + n, cap - (size_t)n, "%s%" PRId64, i ? ", " : "", shape[i]);
    if (n > 0 && (size_t)n < cap) snprintf(buf + n, cap - (size_t)n, "]");
    return buf;
}

/* ------------------------------------------------------------------ tensors */

/* A weight tensor: present, and F32/F16/BF16. */
static clipskip_status get_tensor(const tower_ctx *c, const char *name, const cs_st_tensor **out) {
    const cs_st_tensor *t = cs_st_find(c->st, name);
    if (!t)
        return cs_fail(CLIPSKIP_ERR_FORMAT,
                       "%s: tensor '%s': missing: expected it in the %s tower at prefix '%s'",
                       c->file, name, c->loc->layout, c->loc->prefix);
    if (cs_st_to_clipskip_dtype(t->dtype) < 0)
        return cs_fail(CLIPSKIP_ERR_UNSUPPORTED,
                       "%s: tensor '%s': dtype: expected F32, F16 or BF16 for a weight, found %s",
                       c->file, name, cs_st_dtype_name(t->dtype));
    *out = t;
    return CLIPSKIP_OK;
}

static void set_view(cs_weight *w, const cs_st_tensor *t, int ndim, int64_t r, int64_t cols) {
    w->data = t->data;
    w->dtype = (clipskip_dtype)cs_st_to_clipskip_dtype(t->dtype);
    w->ndim = ndim;
    w->shape[0] = r;
    w->shape[1] = ndim == 2 ? cols : 0;
    w->name = t->name;
}

/* Tensor `name` with shape [rows] or [rows, cols] (symbols for the message). */
static clipskip_status get_view(const tower_ctx *c, const char *name, int ndim, dim_sym rs,
                                dim_sym cs, cs_weight *w) {
    const cs_st_tensor *t = NULL;
    clipskip_status s = get_tensor(c, name, &t);
    if (s) return s;
    int64_t r = dim_value(c, rs), col = dim_value(c, cs);
    if (t->ndim != ndim || t->shape[0] != r || (ndim == 2 && t->shape[1] != col)) {
        char found[160];
        shape_str(t->shape, t->ndim, found, sizeof found);
        if (ndim == 1)
            return cs_fail(CLIPSKIP_ERR_SHAPE,
                           "%s: tensor '%s': shape: expected [%s] = [%" PRId64 "], found %s",
                           c->file, name, dim_name(rs), r, found);
        return cs_fail(CLIPSKIP_ERR_SHAPE,
                       "%s: tensor '%s': shape: expected [%s, %s] = [%" PRId64 ", %" PRId64
                       "], found %s",
                       c->file, name, dim_name(rs), dim_name(cs), r, col, found);
    }
    set_view(w, t, ndim, r, col);
    return CLIPSKIP_OK;
}

/* One layer's tensors; OpenCLIP's in_proj is split into q/k/v row blocks. */
static clipskip_status load_layer(const tower_ctx *c, int i, cs_layer *L) {
    char name[NAME_CAP];
    for (const layer_key *k = c->keys; k->suffix; k++) {
        snprintf(name, sizeof name, "%s%d.%s", c->layers_prefix, i, k->suffix);
        cs_weight *dst = (cs_weight *)((char *)L + k->member), w;
        clipskip_status s = get_view(c, name, k->ndim, k->rows, k->cols, &w);
        if (s) return s;
        if (!k->split) {
            *dst = w;
            continue;
        }
        size_t block = (size_t)(c->D * (k->ndim == 2 ? c->D : 1)) * cs_dtype_size(w.dtype);
        for (int j = 0; j < 3; j++) {
            dst[j] = w;
            dst[j].data = (const char *)w.data + j * block;
            dst[j].shape[0] = c->D;
        }
    }
    return CLIPSKIP_OK;
}

/* Layer indices present under layers_prefix: contiguous from 0, every tensor a known one. */
static clipskip_status count_layers(const tower_ctx *c, int *n_out) {
    unsigned char present[MAX_LAYERS] = {0};
    size_t lp = strlen(c->layers_prefix);
    int n = 0;
    for (int i = 0; i < c->st->n_tensors; i++) {
        const char *name = c->st->tensors[i].name;
        if (strncmp(name, c->layers_prefix, lp) != 0) continue;
        const char *p = name + lp, *q = p;
        long idx = 0;
        while (isdigit((unsigned char)*q) && q - p < 5) idx = idx * 10 + (*q++ - '0');
        int ok = q > p && *q == '.' && !(p[0] == '0' && q - p > 1);
        const layer_key *k = c->keys;
        while (ok && k->suffix && strcmp(k->suffix, q + 1) != 0) k++;
        if (!ok || !k->suffix)
            return cs_fail(CLIPSKIP_ERR_UNSUPPORTED,
                           "%s: tensor '%s': unexpected in a CLIP text layer (a layer holds only "
                           "ln1, q/k/v, out_proj, ln2, fc1, fc2 as %s names): this "
                           "architecture is not supported",
                           c->file, name, c->loc->style == NAMES_HF ? "HF" : "OpenCLIP");
        if (idx >= MAX_LAYERS)
            return cs_fail(CLIPSKIP_ERR_UNSUPPORTED,
                           "%s: tensor '%s': layer index: expected below %d, found %ld", c->file,
                           name, MAX_LAYERS, idx);
        present[idx] = 1;
        if (idx + 1 > n) n = (int)idx + 1;
    }
    if (n == 0)
        return cs_fail(CLIPSKIP_ERR_FORMAT,
                       "%s: layers: expected tensors named '%s0.%s' and on, found none", c->file,
                       c->layers_prefix, c->keys[0].suffix);
    for (int i = 0; i < n; i++)
        if (!present[i])
            return cs_fail(CLIPSKIP_ERR_FORMAT,
                           "%s: layer %d: missing: expected layers 0..%d contiguous under '%s', "
                           "found tensors for layer %d but none for layer %d",
                           c->file, i, n - 1, c->layers_prefix, n - 1, i);
    *n_out = n;
    return CLIPSKIP_OK;
}

/* ------------------------------------------------------------------ one tower */

/* Token embedding (V, D): the first shape read, so it sets D. */
static clipskip_status load_tok_emb(tower_ctx *c, cs_tower *tw) {
    char name[NAME_CAP], found[160];
    int hf = c->loc->style == NAMES_HF;
    snprintf(name, sizeof name, "%s%s", c->loc->prefix,
             hf ? "embeddings.token_embedding.weight" : "token_embedding.weight");
    const cs_st_tensor *t = NULL;
    clipskip_status s = get_tensor(c, name, &t);
    if (s) return s;
    if (t->ndim != 2 || t->shape[0] < 1 || t->shape[0] > INT32_MAX || t->shape[1] < 1 ||
        t->shape[1] > 65536)
        return cs_fail(CLIPSKIP_ERR_SHAPE,
                       "%s: tensor '%s': shape: expected [V, D] with 1 <= V < 2^31 and "
                       "1 <= D <= 65536, found %s",
                       c->file, name, shape_str(t->shape, t->ndim, found, sizeof found));
    c->D = t->shape[1];
    set_view(&tw->tok_emb, t, 2, t->shape[0], c->D);
    tw->info.vocab = (int32_t)t->shape[0];
    tw->info.d_model = (int32_t)c->D;
    return CLIPSKIP_OK;
}

/* Layer 0's fc1 (F, D): sets F. */
static clipskip_status read_mlp_width(tower_ctx *c) {
    char name[NAME_CAP], found[160];
    snprintf(name, sizeof name, "%s0.%s", c->layers_prefix,
             c->loc->style == NAMES_HF ? "mlp.fc1.weight" : "mlp.c_fc.weight");
    const cs_st_tensor *t = NULL;
    clipskip_status s = get_tensor(c, name, &t);
    if (s) return s;
    if (t->ndim != 2 || t->shape[1] != c->D || t->shape[0] < 1 || t->shape[0] > (1 << 20))
        return cs_fail(CLIPSKIP_ERR_SHAPE,
                       "%s: tensor '%s': shape: expected [F, D] = [F, %" PRId64
                       "] with 1 <= F <= 2^20, found %s",
                       c->file, name, c->D, shape_str(t->shape, t->ndim, found, sizeof found));
    c->F = t->shape[0];
    return CLIPSKIP_OK;
}

/* Position embedding (77, D): positions are always 0..76 (a stored position_ids is ignored). */
static clipskip_status load_pos_emb(const tower_ctx *c, cs_tower *tw) {
    char name[NAME_CAP], found[160];
    int hf = c->loc->style == NAMES_HF;
    snprintf(name, sizeof name, "%s%s", c->loc->prefix,
             hf ? "embeddings.position_embedding.weight" : "positional_embedding");
    const cs_st_tensor *t = NULL;
    clipskip_status s = get_tensor(c, name, &t);
    if (s) return s;
    if (t->ndim != 2 || t->shape[0] != CLIPSKIP_CONTEXT || t->shape[1] != c->D)
        return cs_fail(
            CLIPSKIP_ERR_SHAPE,
            "%s: tensor '%s': shape: expected [context, D] = [%d, %" PRId64 "], found %s", c->file,
            name, CLIPSKIP_CONTEXT, c->D, shape_str(t->shape, t->ndim, found, sizeof found));
    set_view(&tw->pos_emb, t, 2, CLIPSKIP_CONTEXT, c->D);
    tw->info.context = CLIPSKIP_CONTEXT;
    return CLIPSKIP_OK;
}

/* Optional text projection: HF nn.Linear (E, D) beside text_model, OpenCLIP parameter (D, E). */
static clipskip_status load_projection(const tower_ctx *c, cs_tower *tw) {
    char name[NAME_CAP], found[160];
    const char *p = c->loc->prefix;
    int hf = c->loc->style == NAMES_HF;
    if (hf) {
        size_t pl = strlen(p), tl = strlen("text_model.");
        if (pl >= tl && strcmp(p + pl - tl, "text_model.") == 0) pl -= tl; /* beside text_model */
        snprintf(name, sizeof name, "%.*stext_projection.weight", (int)pl, p);
    } else {
        snprintf(name, sizeof name, "%stext_projection", p);
    }
    if (!cs_st_find(c->st, name)) return CLIPSKIP_OK;
    const cs_st_tensor *t = NULL;
    clipskip_status s = get_tensor(c, name, &t);
    if (s) return s;
    int e_axis = hf ? 0 : 1;
    if (t->ndim != 2 || t->shape[1 - e_axis] != c->D || t->shape[e_axis] < 1 ||
        t->shape[e_axis] > 65536)
        return cs_fail(CLIPSKIP_ERR_SHAPE,
                       "%s: tensor '%s': shape: expected %s = %s%" PRId64 "%s with 1 <= E <= "
                       "65536, found %s",
                       c->file, name, hf ? "[E, D]" : "[D, E]", hf ? "[E, " : "[", c->D,
                       hf ? "]" : ", E]", shape_str(t->shape, t->ndim, found, sizeof found));
    set_view(&tw->proj, t, 2, t->shape[0], t->shape[1]);
    tw->proj_is_linear = hf;
    tw->info.proj_dim = (int32_t)t->shape[e_axis];
    return CLIPSKIP_OK;
}

/* Parameter count and the dtype holding most of the matmul weights. */
static void summarize(cs_tower *tw) {
    int64_t n = 0, by_dtype[3] = {0};
    const cs_weight *w[] = {&tw->tok_emb, &tw->pos_emb, &tw->lnf_w, &tw->lnf_b, &tw->proj};
    for (size_t i = 0; i < sizeof w / sizeof w[0]; i++) /* an absent projection is all zeros */
        n += w[i]->shape[0] * (w[i]->ndim == 2 ? w[i]->shape[1] : 1);
    for (int l = 0; l < tw->info.n_layers; l++) {
        const cs_weight *lw = (const cs_weight *)&tw->layers[l];
        for (size_t k = 0; k < sizeof(cs_layer) / sizeof(cs_weight); k++) {
            int64_t e = lw[k].shape[0] * (lw[k].ndim == 2 ? lw[k].shape[1] : 1);
            n += e;
            if (lw[k].ndim == 2) by_dtype[lw[k].dtype] += e;
        }
    }
    tw->info.n_params = n;
    int best = 0;
    for (int d = 1; d < 3; d++)
        if (by_dtype[d] > by_dtype[best]) best = d;
    tw->info.file_dtype = (clipskip_dtype)best;
}

/* config.json values, when present, must agree with the shapes; heads and act come from it. */
static clipskip_status apply_config(const tower_ctx *c, const cs_hf_config *cfg, cs_tower *tw) {
    clipskip_tower_info *in = &tw->info;
    const struct {
        const char *key;
        int64_t want, have;
        const char *what;
    } checks[] = {
        {"hidden_size", cfg->hidden_size, in->d_model, "the token embedding's width D"},
        {"intermediate_size", cfg->intermediate_size, in->d_mlp, "fc1's rows F"},
        {"num_hidden_layers", cfg->num_hidden_layers, in->n_layers, "the layers in the file"},
        {"vocab_size", cfg->vocab_size, in->vocab, "the token embedding's rows"},
        {"max_position_embeddings", cfg->max_position_embeddings, in->context,
         "the position embedding's rows"},
        {"projection_dim", in->proj_dim ? cfg->projection_dim : -1, in->proj_dim,
         "text_projection's E"},
    };
    for (size_t i = 0; cfg->present && i < sizeof checks / sizeof checks[0]; i++)
        if (checks[i].want >= 0 && checks[i].want != checks[i].have)
            return cs_fail(CLIPSKIP_ERR_SHAPE,
                           "%s: %s: expected %" PRId64 " (%s in %s), found %" PRId64, cfg->path,
                           checks[i].key, checks[i].have, checks[i].what, c->file, checks[i].want);
    if (cfg->present && cfg->num_attention_heads > 0) {
        if (c->D % cfg->num_attention_heads)
            return cs_fail(CLIPSKIP_ERR_SHAPE,
                           "%s: num_attention_heads: expected a divisor of D = %" PRId64
                           ", found %" PRId64,
                           cfg->path, c->D, cfg->num_attention_heads);
        in->n_heads = (int32_t)cfg->num_attention_heads;
    } else if (c->D % 64 == 0) {
        in->n_heads = (int32_t)(c->D / 64); /* every CLIP text tower has 64-wide heads */
    } else {
        return cs_fail(CLIPSKIP_ERR_UNSUPPORTED,
                       "%s: tower at prefix '%s': heads: expected D to be a multiple of 64 (CLIP "
                       "heads are 64 wide) or a config.json with num_attention_heads beside the "
                       "file, found D = %" PRId64 " and no head count",
                       c->file, c->loc->prefix, c->D);
    }
    int wide = c->D == 1024 || c->D == 1280; /* OpenCLIP H and bigG, whatever the names */
    in->act = c->loc->style == NAMES_OPENCLIP || wide ? CLIPSKIP_ACT_GELU : CLIPSKIP_ACT_QUICK_GELU;
    if (cfg->present && cfg->hidden_act >= 0) in->act = (clipskip_act)cfg->hidden_act;
    in->family = c->D == 768 && in->act == CLIPSKIP_ACT_QUICK_GELU ? CLIPSKIP_FAMILY_CLIP_L
                 : c->D == 1024                                    ? CLIPSKIP_FAMILY_OPENCLIP_H
                 : c->D == 1280                                    ? CLIPSKIP_FAMILY_OPENCLIP_BIGG
                                                                   : CLIPSKIP_FAMILY_OTHER;
    return CLIPSKIP_OK;
}

static clipskip_status load_tower(tower_ctx *c, const cs_hf_config *cfg, cs_tower *tw) {
    const tower_loc *loc = c->loc;
    int hf = loc->style == NAMES_HF;
    char name[NAME_CAP];
    c->keys = hf ? HF_KEYS : OC_KEYS;
    snprintf(c->layers_prefix, sizeof c->layers_prefix, "%s%s", loc->prefix,
             hf ? "encoder.layers." : "transformer.resblocks.");
    tw->info.layout = loc->layout;
    tw->info.prefix = loc->prefix;
    int n = 0;
    clipskip_status s = load_tok_emb(c, tw);
    if (!s) s = count_layers(c, &n);
    if (!s) s = read_mlp_width(c);
    if (!s) s = load_pos_emb(c, tw);
    if (s) return s;
    tw->info.n_layers = n;
    tw->info.d_mlp = (int32_t)c->F;
    tw->layers = cs_calloc((size_t)n, sizeof *tw->layers);
    if (!tw->layers) return CLIPSKIP_ERR_NOMEM;
    for (int i = 0; i < n && !s; i++) s = load_layer(c, i, &tw->layers[i]);
    for (int i = 0; i < 2 && !s; i++) {
        snprintf(name, sizeof name, "%s%s.%s", loc->prefix, hf ? "final_layer_norm" : "ln_final",
                 i ? "bias" : "weight");
        s = get_view(c, name, 1, DIM_D, DIM_D, i ? &tw->lnf_b : &tw->lnf_w);
    }
    if (!s) s = load_projection(c, tw);
    if (!s) s = apply_config(c, cfg, tw);
    if (!s) summarize(tw);
    return s;
}

/* ------------------------------------------------------------------ towers of a file */

static int ends_with_part(const char *name, const char *suffix, size_t *prefix_len) {
    size_t n = strlen(name), s = strlen(suffix);
    if (n < s || strcmp(name + n - s, suffix) != 0) return 0;
    if (n > s && name[n - s - 1] != '.') return 0; /* a whole name part, not "xtoken_..." */
    *prefix_len = n - s;
    return 1;
}

static void describe_contents(const cs_safetensors *st, char *buf, size_t cap);

/* Find the towers by their token embeddings; the name sort puts SDXL's embedders.0 first. */
static clipskip_status find_towers(const cs_safetensors *st, const char *file, tower_loc *locs,
                                   int *n_out) {
    int n = 0;
    char extra[256] = "";
    for (int i = 0; i < st->n_tensors; i++) {
        const char *name = st->tensors[i].name;
        size_t pl;
        names_style style;
        if (ends_with_part(name, "embeddings.token_embedding.weight", &pl))
            style = NAMES_HF;
        else if (ends_with_part(name, "token_embedding.weight", &pl))
            style = NAMES_OPENCLIP;
        else
            continue;
        if (n >= CS_MAX_TOWERS) {
            size_t el = strlen(extra);
            snprintf(extra + el, sizeof extra - el, "%s'%.*s'", el ? ", " : "", (int)pl, name);
            n++;
            continue;
        }
        if (pl > PREFIX_MAX)
            return cs_fail(CLIPSKIP_ERR_UNSUPPORTED,
                           "%s: tensor '%.80s...': prefix: expected at most %d bytes, found %zu",
                           file, name, PREFIX_MAX, pl);
        tower_loc *L = &locs[n++];
        L->prefix = strndup(name, pl);
        if (!L->prefix) return cs_fail(CLIPSKIP_ERR_NOMEM, "out of host memory");
        L->style = style;
        L->layout = style == NAMES_HF ? "hf-names" : "openclip-names";
        L->pipeline = CLIPSKIP_PIPELINE_TOWER;
        for (int k = 0; k < N_KNOWN; k++)
            if (KNOWN[k].style == style && strcmp(KNOWN[k].prefix, L->prefix) == 0) {
                L->layout = KNOWN[k].layout;
                L->pipeline = KNOWN[k].pipeline;
            }
    }
    *n_out = n < CS_MAX_TOWERS ? n : CS_MAX_TOWERS;
    if (n > CS_MAX_TOWERS)
        return cs_fail(CLIPSKIP_ERR_UNSUPPORTED,
                       "%s: text towers: expected at most %d per file, found %d (prefixes '%s', "
                       "'%s', %s)",
                       file, CS_MAX_TOWERS, n, locs[0].prefix, locs[1].prefix, extra);
    if (n == 0) {
        char what[512];
        describe_contents(st, what, sizeof what);
        return cs_fail(CLIPSKIP_ERR_UNSUPPORTED,
                       "%s: no CLIP text tower found (looked for '*embeddings.token_embedding."
                       "weight' (HF names) and '*token_embedding.weight' (OpenCLIP names)); the "
                       "file holds %s",
                       file, what);
    }
    return CLIPSKIP_OK;
}

/* "1234 tensors; top-level prefixes: model (686), first_stage_model (248), ..." */
static void describe_contents(const cs_safetensors *st, char *buf, size_t cap) {
    enum { SHOW = 6, TRACK = 64 };
    struct {
        char name[48];
        int count;
    } top[TRACK];
    int n_top = 0;
    for (int i = 0; i < st->n_tensors; i++) {
        const char *name = st->tensors[i].name;
        int len = (int)strcspn(name, ".");
        if (len > 47) len = 47;
        int k = 0;
        while (k < n_top && (strncmp(top[k].name, name, (size_t)len) || top[k].name[len])) k++;
        if (k == n_top) {
            if (n_top == TRACK) continue;
            snprintf(top[n_top].name, sizeof top[0].name, "%.*s", len, name);
            top[n_top++].count = 0;
        }
        top[k].count++;
    }
    int n = snprintf(buf, cap, "%d tensors%s", st->n_tensors, n_top ? "; top-level prefixes:" : "");
    for (int shown = 0; shown < SHOW && shown < n_top && n > 0 && (size_t)n < cap; shown++) {
        int best = 0; /* largest remaining group */
        for (int k = 1; k < n_top; k++)
            if (top[k].count > top[best].count) best = k;
        n += snprintf(buf + n, cap - (size_t)n, "%s %s (%d)", shown ? "," : "", top[best].name,
                      top[best].count);
        top[best].count = -1;
    }
    if (n_top > SHOW && n > 0 && (size_t)n < cap) snprintf(buf + n, cap - (size_t)n, ", ...");
}

static clipskip_pipeline pipeline_of(const tower_loc *locs, int n) {
    if (n == 1)
        return locs[0].pipeline == CLIPSKIP_PIPELINE_SDXL ? CLIPSKIP_PIPELINE_TOWER
                                                          : locs[0].pipeline;
    if (locs[0].pipeline == CLIPSKIP_PIPELINE_SDXL && locs[0].style == NAMES_HF &&
        locs[1].pipeline == CLIPSKIP_PIPELINE_SDXL && locs[1].style == NAMES_OPENCLIP)
        return CLIPSKIP_PIPELINE_SDXL;
    return CLIPSKIP_PIPELINE_TOWER;
}

typedef enum { ROLE_SD1, ROLE_SD2, ROLE_SDXL_L, ROLE_SDXL_G } tower_role;

static tower_role role_of(clipskip_pipeline p, int index, const cs_tower *tw, names_style style) {
    switch (p) {
    case CLIPSKIP_PIPELINE_SD1: return ROLE_SD1;
    case CLIPSKIP_PIPELINE_SD2: return ROLE_SD2;
    case CLIPSKIP_PIPELINE_SDXL: return index == 0 ? ROLE_SDXL_L : ROLE_SDXL_G;
    case CLIPSKIP_PIPELINE_SDXL_REFINER: return ROLE_SDXL_G;
    case CLIPSKIP_PIPELINE_TOWER: break;
    }
    switch (tw->info.family) {
    case CLIPSKIP_FAMILY_CLIP_L: return ROLE_SD1;
    case CLIPSKIP_FAMILY_OPENCLIP_H: return ROLE_SD2;
    case CLIPSKIP_FAMILY_OPENCLIP_BIGG: return ROLE_SDXL_G;
    case CLIPSKIP_FAMILY_OTHER: break;
    }
    if (tw->info.act == CLIPSKIP_ACT_QUICK_GELU) return ROLE_SD1;
    return style == NAMES_HF && tw->proj.data ? ROLE_SDXL_G : ROLE_SD2;
}

/* Per-tower defaults (table at the top of this file). */
static void set_defaults(cs_tower *tw, tower_role role, names_style style) {
    static const struct {
        int skip, final_ln, pad;
    } ROLE[] = {
        [ROLE_SD1] = {1, 1, CLIPSKIP_EOS},
        [ROLE_SD2] = {2, 1, 0},
        [ROLE_SDXL_L] = {2, 0, CLIPSKIP_EOS},
        [ROLE_SDXL_G] = {2, 0, 0},
    };
    clipskip_tower_info *in = &tw->info;
    in->default_clip_skip = ROLE[role].skip;
    in->default_final_ln = ROLE[role].final_ln;
    in->pad_id = ROLE[role].pad;
    if (role == ROLE_SD2 && style == NAMES_HF && in->n_layers == 23)
        in->default_clip_skip = 1; /* diffusers SD2: the conversion dropped the last layer */
    if (in->default_clip_skip > in->n_layers) in->default_clip_skip = in->n_layers;
    in->default_clean = CLIPSKIP_CLEAN_HF;
}

/* ------------------------------------------------------------------ model */

clipskip_status cs_model_from_file(cs_safetensors *st, const char *config_dir, int verbose,
                                   clipskip_model **out) {
    *out = NULL;
    clipskip_model *m = cs_calloc(1, sizeof *m);
    if (!m) {
        cs_st_close(st);
        return CLIPSKIP_ERR_NOMEM;
    }
    m->file = st;
    m->path = strdup(st->path);
    tower_loc locs[CS_MAX_TOWERS] = {{0}};
    int n = 0;
    clipskip_status s = m->path ? find_towers(st, st->path, locs, &n)
                                : cs_fail(CLIPSKIP_ERR_NOMEM, "out of host memory");
    cs_hf_config cfg = {0};
    int diffusers = n == 1 && locs[0].style == NAMES_HF && config_dir &&
                    locs[0].pipeline == CLIPSKIP_PIPELINE_TOWER &&
                    (!strcmp(locs[0].prefix, "") || !strcmp(locs[0].prefix, "text_model."));
    if (!s && diffusers) s = cs_hf_config_read(config_dir, verbose, &cfg);
    m->pipeline = s ? CLIPSKIP_PIPELINE_TOWER : pipeline_of(locs, n);
    for (int i = 0; i < CS_MAX_TOWERS; i++) /* the towers own the prefixes from here on */
        if (locs[i].prefix) {
            m->towers[i].info.prefix = locs[i].prefix;
            m->n_towers = i + 1;
        }
    for (int i = 0; i < n && !s; i++) {
        tower_ctx c = {.st = st, .file = st->path, .loc = &locs[i]};
        s = load_tower(&c, &cfg, &m->towers[i]);
        if (!s)
            set_defaults(&m->towers[i], role_of(m->pipeline, i, &m->towers[i], locs[i].style),
                         locs[i].style);
    }
    if (s) {
        clipskip_model_free(m);
        return s;
    }
    *out = m;
    return CLIPSKIP_OK;
}

static int has_pickle_ext(const char *path) {
    static const char *const EXT[] = {".ckpt", ".pt", ".pth", ".bin", ".pkl", ".pickle"};
    size_t n = strlen(path);
    for (size_t i = 0; i < sizeof EXT / sizeof EXT[0]; i++) {
        size_t e = strlen(EXT[i]);
        if (n >= e && strcasecmp(path + n - e, EXT[i]) == 0) return 1;
    }
    return 0;
}

/* A zip archive (torch.save since 1.6) or a raw pickle stream (protocol 2..5). */
static int has_pickle_magic(const char *path) {
    unsigned char b[4] = {0};
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    size_t n = fread(b, 1, sizeof b, f);
    fclose(f);
    return (n >= 4 && !memcmp(b, "PK\x03\x04", 4)) ||
           (n >= 2 && b[0] == 0x80 && b[1] >= 2 && b[1] <= 5);
}

static clipskip_status pickle_refusal(const char *path, const char *why) {
    return cs_fail(CLIPSKIP_ERR_UNSUPPORTED,
                   "%s: a PyTorch pickle checkpoint (%s) is not supported: unpickling can run "
                   "arbitrary code, so clipskip reads only .safetensors. Convert it once with "
                   "Python (pip install torch safetensors):\n"
                   "  python3 -c \"import torch, safetensors.torch as st; "
                   "sd = torch.load('%s', map_location='cpu', weights_only=True); "
                   "sd = sd.get('state_dict', sd); "
                   "st.save_file({k: v.detach().clone().contiguous() for k, v in sd.items() "
                   "if torch.is_tensor(v)}, 'model.safetensors')\"",
                   path, why, path);
}

/* The tokenizer: the path asked for; else a diffusers tokenizer folder beside the file
 * (text_encoder/ -> ../tokenizer/, text_encoder_2/ -> ../tokenizer_2/) when it holds
 * vocab.json and merges.txt; else the built-in vocabulary. */
static clipskip_status attach_tokenizer(clipskip_model *m, const char *asked, const char *dir) {
    char cand[4200], probe[4300];
    const char *base = strrchr(dir, '/');
    base = base ? base + 1 : dir;
    const char *path = asked;
    if (!path && !strncmp(base, "text_encoder", 12)) {
        snprintf(cand, sizeof cand, "%.*stokenizer%s", (int)(base - dir), dir, base + 12);
        snprintf(probe, sizeof probe, "%s/vocab.json", cand);
        if (access(probe, R_OK) == 0) path = cand;
    }
    clipskip_status s = clipskip_tokenizer_load(path, &m->tokenizer);
    if (s && path) cs_error_prefix("%s: tokenizer %s: ", m->path ? m->path : "model", path);
    return s;
}

clipskip_status clipskip_model_load(const char *path, const clipskip_model_params *params,
                                    clipskip_model **out) {
    if (!out) return cs_fail(CLIPSKIP_ERR_INVALID_ARG, "clipskip_model_load: out is NULL");
    *out = NULL;
    if (!path) return cs_fail(CLIPSKIP_ERR_INVALID_ARG, "clipskip_model_load: path is NULL");
    clipskip_model_params p = params ? *params : clipskip_model_default_params();
    char file[4096];
    struct stat sb;
    int is_dir = stat(path, &sb) == 0 && S_ISDIR(sb.st_mode); /* a diffusers text_encoder/ */
    if ((size_t)snprintf(file, sizeof file, "%s%s", path, is_dir ? "/model.safetensors" : "") >=
        sizeof file)
        return cs_fail(CLIPSKIP_ERR_INVALID_ARG, "%.200s...: path too long", path);
    if (has_pickle_ext(file)) return pickle_refusal(file, strrchr(file, '.'));
    cs_safetensors *st;
    clipskip_status s = cs_st_open(file, p.verbose, &st);
    if (s == CLIPSKIP_ERR_FORMAT && has_pickle_magic(file))
        return pickle_refusal(file, "zip/pickle content under another name");
    if (s) return s;
    char dir[4096];
    const char *slash = strrchr(file, '/');
    snprintf(dir, sizeof dir, "%.*s", slash ? (int)(slash - file) : 1, slash ? file : ".");
    if (slash == file) snprintf(dir, sizeof dir, "/");
    CS_TRY(cs_model_from_file(st, dir, p.verbose, out));
    s = attach_tokenizer(*out, p.tokenizer_path, dir);
    if (s) {
        clipskip_model_free(*out);
        *out = NULL;
    }
    return s;
}

void clipskip_model_free(clipskip_model *model) {
    if (!model) return;
    for (int i = 0; i < model->n_towers; i++) {
        free(model->towers[i].layers);
        free((char *)model->towers[i].info.prefix);
    }
    cs_st_close(model->file);
    clipskip_tokenizer_free(model->tokenizer);
    free(model->owned);
    free(model->path);
    free(model);
}

int clipskip_model_n_towers(const clipskip_model *model) { return model ? model->n_towers : 0; }

clipskip_pipeline clipskip_model_pipeline(const clipskip_model *model) {
    return model ? model->pipeline : CLIPSKIP_PIPELINE_TOWER;
}

clipskip_status clipskip_model_tower_info(const clipskip_model *model, int tower,
                                          clipskip_tower_info *out) {
    if (!model || !out)
        return cs_fail(CLIPSKIP_ERR_INVALID_ARG, "clipskip_model_tower_info: NULL argument");
    if (tower < 0 || tower >= model->n_towers)
        return cs_fail(CLIPSKIP_ERR_INVALID_ARG,
                       "clipskip_model_tower_info: tower %d: expected 0..%d", tower,
                       model->n_towers - 1);
    *out = model->towers[tower].info;
    return CLIPSKIP_OK;
}

const clipskip_tokenizer *clipskip_model_tokenizer(const clipskip_model *model) {
    return model ? model->tokenizer : NULL;
}

clipskip_status clipskip_output_dims(const clipskip_model *model,
                                     const clipskip_encode_options *opt, int32_t *hidden_dim,
                                     int32_t *pooled_dim, int32_t *embeds_dim) {
    if (!model) return cs_fail(CLIPSKIP_ERR_INVALID_ARG, "clipskip_output_dims: model is NULL");
    int32_t tower = opt ? opt->tower : 0, h = 0;
    const clipskip_tower_info *last;
    if (tower == CLIPSKIP_TOWER_ALL) {
        for (int i = 0; i < model->n_towers; i++) h += model->towers[i].info.d_model;
        last = &model->towers[model->n_towers - 1].info;
    } else if (tower >= 0 && tower < model->n_towers) {
        last = &model->towers[tower].info;
        h = last->d_model;
    } else {
        return cs_fail(CLIPSKIP_ERR_INVALID_ARG,
                       "options: tower: expected 0..%d or CLIPSKIP_TOWER_ALL (-1), found %d",
                       model->n_towers - 1, tower);
    }
    if (hidden_dim) *hidden_dim = h;
    if (pooled_dim) *pooled_dim = last->d_model;
    if (embeds_dim) *embeds_dim = last->proj_dim;
    return CLIPSKIP_OK;
}
