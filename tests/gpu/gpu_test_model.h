/* Shared by the GPU tests: a random CLIP text tower built in memory as model.h structs (no file),
 * and small helpers (fresh random numbers, dtype rounding, relative Frobenius error).
 * Header-only (static functions): each test program includes it once. */
#ifndef CS_GPU_TEST_MODEL_H
#define CS_GPU_TEST_MODEL_H

#include "backend.h"
#include "internal.h"
#include "model.h"

#include <math.h>
#include <stdint.h>
#ifdef CLIPSKIP_WITH_CUDA
#include <cuda_runtime_api.h>
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* TM_EMU: 1 when the program is built against the CPU emulator of CUDA (tests/emu), where every
 * warp collective is 32 fiber switches: the tests then use small shapes with the same structure
 * (same code paths, head width 64, several GEMM tiles) instead of the real families'. */
#ifdef CS_CUDA_EMULATOR
#define TM_EMU 1
#else
#define TM_EMU 0
#endif

/* ---- random numbers: xorshift64*, seeded from the clock unless CS_TEST_SEED is set, so every
 * run draws fresh inputs (METHOD: the fast path must compute the same function on any input)
 * while a failing run can be repeated. The state is per translation unit (static): a file that
 * never calls tm_seed seeds itself on first use (from the same CS_TEST_SEED, so still
 * repeatable); an unseeded xorshift would return 0 forever, every "random" value -sqrt(3). */
static uint64_t tm_rng_state;

static inline uint64_t tm_seed_value(void) {
    const char *s = getenv("CS_TEST_SEED");
    const uint64_t v = s ? strtoull(s, NULL, 10) : (uint64_t)time(NULL) * 2654435761u;
    return v ? v : 88172645463325252ull;
}

static inline void tm_seed(void) {
    tm_rng_state = tm_seed_value();
    printf("seed %llu (set CS_TEST_SEED to repeat)\n", (unsigned long long)tm_rng_state);
}

static inline uint64_t tm_next(void) {
    if (!tm_rng_state) tm_rng_state = tm_seed_value() ^ 0x5851f42d4c957f2dull; /* this file's own stream */
    tm_rng_state ^= tm_rng_state >> 12;
    tm_rng_state ^= tm_rng_state << 25;
    tm_rng_state ^= tm_rng_state >> 27;
    return tm_rng_state * 2685821657736338717ull;
}

/* Uniform with mean 0 and standard deviation sd (sqrt(3)*sd half-width). */
static inline float tm_uniform(float sd) {
    const double u = (double)(tm_next() >> 11) * (1.0 / 9007199254740992.0); /* [0, 1) */
    return (float)((2.0 * u - 1.0) * 1.7320508075688772 * sd);
}

static inline int32_t tm_int(int32_t n) { return (int32_t)(tm_next() % (uint64_t)n); }

static inline void tm_fill(float *v, size_t n, float sd, float mean) {
    for (size_t i = 0; i < n; i++) v[i] = mean + tm_uniform(sd);
}

/* Round every value to dt and back (the exact values an F16/BF16 buffer holds). */
static inline void tm_round(float *v, size_t n, clipskip_dtype dt) {
    for (size_t i = 0; i < n; i++) {
        if (dt == CLIPSKIP_DTYPE_F16) v[i] = cs_f16_to_f32(cs_f32_to_f16(v[i]));
        else if (dt == CLIPSKIP_DTYPE_BF16) v[i] = cs_bf16_to_f32(cs_f32_to_bf16(v[i]));
    }
}

/* ||got - ref|| / ||ref|| in double; +inf when got holds a NaN or Inf (never passes). */
static inline double tm_rel_err(const float *ref, const float *got, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(got[i])) return INFINITY;
        const double d = (double)got[i] - ref[i];
        num += d * d;
        den += (double)ref[i] * ref[i];
    }
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

/* ---- the random model */
static inline void tm_weight(cs_weight *w, const char *name, clipskip_dtype dt, int64_t rows, int64_t cols,
                      float sd, float mean) {
    const size_t n = (size_t)rows * (size_t)(cols > 0 ? cols : 1);
    void *data = malloc(n * cs_dtype_size(dt));
    if (!data) {
        fprintf(stderr, "out of memory for test weight %s\n", name);
        exit(1);
    }
    float buf[4096];
    for (size_t i = 0; i < n; i += 4096) {
        const size_t c = n - i < 4096 ? n - i : 4096;
        tm_fill(buf, c, sd, mean);
        cs_convert_from_f32((char *)data + i * cs_dtype_size(dt), buf, dt, c);
    }
    w->data = data;
    w->dtype = dt;
    w->ndim = cols > 0 ? 2 : 1;
    w->shape[0] = rows;
    w->shape[1] = cols > 0 ? cols : 0;
    w->name = name;
}

typedef struct {
    int32_t n_layers, d, heads, f, vocab, proj_dim;
    clipskip_act act;
    clipskip_dtype dtype;   /* of every tensor "in the file" */
    int proj_is_linear;     /* 1: (E, D) HF Linear; 0: (D, E) OpenCLIP parameter */
} tm_shape;

static inline void tm_layer(cs_layer *L, const tm_shape *s) {
    const float wd = 1.0f / sqrtf((float)s->d), wf = 1.0f / sqrtf((float)s->f);
    tm_weight(&L->ln1_w, "ln1.weight", s->dtype, s->d, 0, 0.1f, 1.0f);
    tm_weight(&L->ln1_b, "ln1.bias", s->dtype, s->d, 0, 0.1f, 0.0f);
    tm_weight(&L->q_w, "q.weight", s->dtype, s->d, s->d, wd, 0.0f);
    tm_weight(&L->k_w, "k.weight", s->dtype, s->d, s->d, wd, 0.0f);
    tm_weight(&L->v_w, "v.weight", s->dtype, s->d, s->d, wd, 0.0f);
    tm_weight(&L->q_b, "q.bias", s->dtype, s->d, 0, 0.1f, 0.0f);
    tm_weight(&L->k_b, "k.bias", s->dtype, s->d, 0, 0.1f, 0.0f);
    tm_weight(&L->v_b, "v.bias", s->dtype, s->d, 0, 0.1f, 0.0f);
    tm_weight(&L->o_w, "out_proj.weight", s->dtype, s->d, s->d, wd, 0.0f);
    tm_weight(&L->o_b, "out_proj.bias", s->dtype, s->d, 0, 0.1f, 0.0f);
    tm_weight(&L->ln2_w, "ln2.weight", s->dtype, s->d, 0, 0.1f, 1.0f);
    tm_weight(&L->ln2_b, "ln2.bias", s->dtype, s->d, 0, 0.1f, 0.0f);
    tm_weight(&L->fc1_w, "fc1.weight", s->dtype, s->f, s->d, wd, 0.0f);
    tm_weight(&L->fc1_b, "fc1.bias", s->dtype, s->f, 0, 0.1f, 0.0f);
    tm_weight(&L->fc2_w, "fc2.weight", s->dtype, s->d, s->f, wf, 0.0f);
    tm_weight(&L->fc2_b, "fc2.bias", s->dtype, s->d, 0, 0.1f, 0.0f);
}

static inline clipskip_model *tm_make(const tm_shape *s) {
    clipskip_model *m = calloc(1, sizeof *m);
    if (!m) exit(1);
    m->pipeline = CLIPSKIP_PIPELINE_TOWER;
    m->n_towers = 1;
    cs_tower *t = &m->towers[0];
    clipskip_tower_info *in = &t->info;
    in->family = s->act == CLIPSKIP_ACT_QUICK_GELU ? CLIPSKIP_FAMILY_CLIP_L : CLIPSKIP_FAMILY_OPENCLIP_H;
    in->layout = "random-test";
    in->prefix = "";
    in->n_layers = s->n_layers;
    in->d_model = s->d;
    in->n_heads = s->heads;
    in->d_mlp = s->f;
    in->vocab = s->vocab;
    in->context = CLIPSKIP_CONTEXT;
    in->proj_dim = s->proj_dim;
    in->act = s->act;
    in->file_dtype = s->dtype;
    in->pad_id = s->act == CLIPSKIP_ACT_QUICK_GELU ? CLIPSKIP_EOS : 0;
    in->default_clip_skip = 1;
    in->default_final_ln = 1;
    in->default_clean = CLIPSKIP_CLEAN_HF;
    tm_weight(&t->tok_emb, "token_embedding.weight", s->dtype, s->vocab, s->d, 0.5f, 0.0f);
    tm_weight(&t->pos_emb, "position_embedding.weight", s->dtype, CLIPSKIP_CONTEXT, s->d, 0.5f, 0.0f);
    t->layers = calloc((size_t)s->n_layers, sizeof(cs_layer));
    if (!t->layers) exit(1);
    for (int l = 0; l < s->n_layers; l++) tm_layer(&t->layers[l], s);
    tm_weight(&t->lnf_w, "final_layer_norm.weight", s->dtype, s->d, 0, 0.1f, 1.0f);
    tm_weight(&t->lnf_b, "final_layer_norm.bias", s->dtype, s->d, 0, 0.1f, 0.0f);
    t->proj_is_linear = s->proj_is_linear;
    if (s->proj_dim > 0) {
        if (s->proj_is_linear)
            tm_weight(&t->proj, "text_projection.weight", s->dtype, s->proj_dim, s->d, 1.0f / sqrtf((float)s->d), 0);
        else
            tm_weight(&t->proj, "text_projection", s->dtype, s->d, s->proj_dim, 1.0f / sqrtf((float)s->d), 0);
    }
    in->n_params = 0;
    return m;
}

static inline void tm_free_w(cs_weight *w) { free((void *)w->data); }

static inline void tm_free(clipskip_model *m) {
    if (!m) return;
    cs_tower *t = &m->towers[0];
    for (int l = 0; l < t->info.n_layers; l++) {
        cs_weight *w = &t->layers[l].ln1_w; /* cs_layer is 16 cs_weight in a row */
        for (int i = 0; i < (int)(sizeof(cs_layer) / sizeof(cs_weight)); i++) tm_free_w(&w[i]);
    }
    free(t->layers);
    tm_free_w(&t->tok_emb);
    tm_free_w(&t->pos_emb);
    tm_free_w(&t->lnf_w);
    tm_free_w(&t->lnf_b);
    tm_free_w(&t->proj);
    free(m);
}

/* A two-tower model (SDXL style) of one-tower models a and b: tower 0 is a's, tower 1 b's. It
 * shares their tensors, so it is not freed itself: tm_free(a) and tm_free(b) free them. */
static inline clipskip_model tm_two_towers(const clipskip_model *a, const clipskip_model *b) {
    clipskip_model two = *a;
    two.n_towers = 2;
    two.towers[1] = b->towers[0];
    return two;
}

/* The two backends of test_gpu_ops over one model. */
typedef struct {
    cs_backend *cpu, *gpu;
    clipskip_dtype cdt;
    const clipskip_model *model;
    int32_t d, heads, f, e, vocab, n_layers;
    const char *tag;
} tm_pair;

#endif
