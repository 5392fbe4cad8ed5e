/* Towers of real shape with random weights: benchmarks and demos need no download. */
#include "internal.h"
#include "model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    int layers, d, heads, f, proj;
    clipskip_act act;
    int pad, skip, final_ln;
    const char *layout;
} random_shape;

static random_shape shape_of(clipskip_family fam) {
    switch (fam) {
    case CLIPSKIP_FAMILY_CLIP_L:
        return (random_shape){12, 768, 12, 3072, 768, CLIPSKIP_ACT_QUICK_GELU, 49407, 1, 1, "random-vit-l"};
    case CLIPSKIP_FAMILY_OPENCLIP_H:
        return (random_shape){24, 1024, 16, 4096, 1024, CLIPSKIP_ACT_GELU, 0, 2, 1, "random-vit-h"};
    case CLIPSKIP_FAMILY_OPENCLIP_BIGG:
        return (random_shape){32, 1280, 20, 5120, 1280, CLIPSKIP_ACT_GELU, 0, 2, 0, "random-vit-bigg"};
    default:
        return (random_shape){4, 64, 4, 256, 48, CLIPSKIP_ACT_QUICK_GELU, 49407, 1, 1, "random-tiny"};
    }
}

typedef struct {
    char *blob;          /* all weights, one allocation */
    size_t used, cap;
    uint64_t rng;
    clipskip_dtype dtype;
} arena;

/* splitmix64 → uniform in [-1, 1) */
static float next_uniform(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return (float)((double)(z >> 11) * (1.0 / 9007199254740992.0)) * 2.f - 1.f;
}

/* A weight of rows*cols values: uniform with standard deviation std around mean. */
static cs_weight fill(arena *a, const char *name, int64_t rows, int64_t cols, float mean, float std) {
    size_t n = (size_t)rows * (size_t)(cols ? cols : 1), esz = cs_dtype_size(a->dtype);
    cs_weight w = {a->blob + a->used, a->dtype, cols ? 2 : 1, {rows, cols}, name};
    float buf[256];
    for (size_t i = 0; i < n; i += 256) {
        size_t k = n - i < 256 ? n - i : 256;
        for (size_t j = 0; j < k; j++) buf[j] = mean + std * 1.7320508f * next_uniform(&a->rng);
        cs_convert_from_f32(a->blob + a->used + i * esz, buf, a->dtype, k);
    }
    a->used += (n * esz + 63) / 64 * 64;
    return w;
}

static size_t tower_bytes(const random_shape *s, size_t esz) {
    size_t d = s->d, per_layer = 4 * d * d + 2 * d * s->f + 9 * d + s->f + 64 * 16;
    return esz * ((size_t)CLIPSKIP_VOCAB * d + 77 * d + s->layers * per_layer + d * s->proj + 4 * d) + 4096;
}

static void fill_layer(arena *a, cs_layer *l, const random_shape *s) {
    float w = 0.02f, wo = 0.02f / sqrtf(2.f * s->layers); /* HF CLIP init scales */
    l->ln1_w = fill(a, "ln1.weight", s->d, 0, 1.f, 0.02f);
    l->ln1_b = fill(a, "ln1.bias", s->d, 0, 0.f, 0.02f);
    l->q_w = fill(a, "q.weight", s->d, s->d, 0.f, w);
    l->k_w = fill(a, "k.weight", s->d, s->d, 0.f, w);
    l->v_w = fill(a, "v.weight", s->d, s->d, 0.f, w);
    l->q_b = fill(a, "q.bias", s->d, 0, 0.f, 0.02f);
    l->k_b = fill(a, "k.bias", s->d, 0, 0.f, 0.02f);
    l->v_b = fill(a, "v.bias", s->d, 0, 0.f, 0.02f);
    l->o_w = fill(a, "out.weight", s->d, s->d, 0.f, wo);
    l->o_b = fill(a, "out.bias", s->d, 0, 0.f, 0.02f);
    l->ln2_w = fill(a, "ln2.weight", s->d, 0, 1.f, 0.02f);
    l->ln2_b = fill(a, "ln2.bias", s->d, 0, 0.f, 0.02f);
    l->fc1_w = fill(a, "fc1.weight", s->f, s->d, 0.f, w);
    l->fc1_b = fill(a, "fc1.bias", s->f, 0, 0.f, 0.02f);
    l->fc2_w = fill(a, "fc2.weight", s->d, s->f, 0.f, wo);
    l->fc2_b = fill(a, "fc2.bias", s->d, 0, 0.f, 0.02f);
}

static void fill_info(clipskip_tower_info *in, clipskip_family fam, const random_shape *s,
                      clipskip_dtype dtype) {
    memset(in, 0, sizeof *in);
    in->family = fam;
    in->layout = s->layout;
    in->prefix = strdup(""); /* freed by clipskip_model_free like a loaded tower's */
    in->n_layers = s->layers, in->d_model = s->d, in->n_heads = s->heads, in->d_mlp = s->f;
    in->vocab = CLIPSKIP_VOCAB, in->context = CLIPSKIP_CONTEXT, in->proj_dim = s->proj;
    in->act = s->act;
    in->file_dtype = dtype;
    in->n_params = (int64_t)CLIPSKIP_VOCAB * s->d + 77 * s->d + (int64_t)s->d * s->proj + 2 * s->d +
                   (int64_t)s->layers * (4 * s->d * s->d + 2 * s->d * s->f + 9 * s->d + s->f);
    in->pad_id = s->pad;
    in->default_clip_skip = s->skip;
    in->default_final_ln = s->final_ln;
    in->default_clean = CLIPSKIP_CLEAN_HF;
}

clipskip_status cs_model_random(clipskip_family fam, uint64_t seed, clipskip_dtype dtype,
                                clipskip_model **out) {
    if (!out) return cs_fail(CLIPSKIP_ERR_INVALID_ARG, "model_random: out is NULL");
    *out = NULL;
    random_shape s = shape_of(fam);
    clipskip_model *m = cs_calloc(1, sizeof *m);
    arena a = {.cap = tower_bytes(&s, cs_dtype_size(dtype)), .rng = seed, .dtype = dtype};
    if (!m || !(a.blob = cs_malloc(a.cap)) ||
        !(m->towers[0].layers = cs_calloc((size_t)s.layers, sizeof(cs_layer)))) {
        if (m) free(m->towers[0].layers);
        free(m), free(a.blob);
        return CLIPSKIP_ERR_NOMEM;
    }
    cs_tower *t = &m->towers[0];
    fill_info(&t->info, fam, &s, dtype);
    t->tok_emb = fill(&a, "token_embedding", CLIPSKIP_VOCAB, s.d, 0.f, 0.02f);
    t->pos_emb = fill(&a, "position_embedding", CLIPSKIP_CONTEXT, s.d, 0.f, 0.01f);
    for (int i = 0; i < s.layers; i++) fill_layer(&a, &t->layers[i], &s);
    t->lnf_w = fill(&a, "final_layer_norm.weight", s.d, 0, 1.f, 0.02f);
    t->lnf_b = fill(&a, "final_layer_norm.bias", s.d, 0, 0.f, 0.02f);
    t->proj = fill(&a, "text_projection", s.proj, s.d, 0.f, 0.02f);
    t->proj_is_linear = 1;
    m->owned = a.blob;
    m->n_towers = 1;
    m->pipeline = CLIPSKIP_PIPELINE_TOWER;
    char path[64];
    snprintf(path, sizeof path, "<%s seed %llu>", s.layout, (unsigned long long)seed);
    m->path = strdup(path);
    *out = m;
    return CLIPSKIP_OK;
}

clipskip_status clipskip_model_random(clipskip_family family, uint64_t seed,
                                      clipskip_model **out) {
    CS_TRY(cs_model_random(family, seed, CLIPSKIP_DTYPE_F16, out));
    clipskip_status s = clipskip_tokenizer_load(NULL, &(*out)->tokenizer);
    if (s) {
        clipskip_model_free(*out);
        *out = NULL;
    }
    return s;
}
