/* CPU backend: fp32 everywhere, the reference every other path is held to.
 *
 * Weights are upcast to fp32 once at init. GEMMs go through OpenBLAS sgemm (row-major,
 * x(M,K) @ W(N,K)^T), whose per-element reduction order does not depend on M, so a row's
 * result is the same whatever else is packed with it (tests check this bitwise).
 * LayerNorm, attention and the activations are plain loops over rows, split across a blocking
 * thread pool by rows / (sequence, head) pairs; each row's arithmetic is independent of the
 * thread count. With several threads each large GEMM is split by columns over the same pool
 * (single-threaded sgemm per slice, its bias/activation fused while the slice is in cache):
 * measured 15-20% faster than OpenBLAS's own threads + a bias pass on ViT-L at batch 1 and 8,
 * 2 cores, and bitwise the same output. */
#include "backend.h"
#include "internal.h"
#include "threadpool.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>


#define CPU_LN_EPS 1e-5f
#define CPU_MLP_CHUNK 4096 /* rows per FC1/FC2 chunk: (4096, F) fp32 intermediate */
/* OpenBLAS switches to "small matrix" kernels below M*N*K of about 1e6 (0.3.21, SkylakeX /
 * Cooperlake cores), and those sum in another order than its blocked kernels: a row's result
 * would then depend on how many rows share the call. Every sgemm is therefore given at least
 * this many multiply-adds (4x the threshold seen), padding M with scratch rows when needed.
 * Real towers only pad the rare calls of a few rows (N*K >= 768*768). */
#define CPU_MIN_GEMM_MNK 4000000.0
#define CPU_MAX_HEAD_DIM 256 /* CLIP towers use 64 */

/* Hot loops get AVX-512 / AVX2 clones picked at run time; the build stays baseline x86-64.
 * (Not under ThreadSanitizer, whose runtime is not up yet when ifunc resolvers run.)
 * -ffp-contract=off (CMake) keeps every clone's arithmetic identical to the scalar code. */
#if defined(__GNUC__) && defined(__x86_64__) && !defined(__clang__) && !defined(__SANITIZE_THREAD__)
#define CS_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define CS_CLONES
#endif

typedef struct {
    float *ln1_w, *ln1_b, *ln2_w, *ln2_b; /* (D) */
    float *qkv_w, *qkv_b;                 /* (3D, D), (3D) */
    float *o_w, *o_b;                     /* (D, D), (D) */
    float *fc1_w, *fc1_b;                 /* (F, D), (F) */
    float *fc2_w, *fc2_b;                 /* (D, F), (D) */
} cpu_layer;

typedef struct {
    int d, f, heads, vocab, ctx, proj_dim;
    clipskip_act act;
    float *tok_emb;      /* (V, D) */
    float *pos_emb;      /* (T, D) */
    float *lnf_w, *lnf_b;/* (D) */
    float *proj;         /* (E, D) or NULL */
    cpu_layer *layers;
    int n_layers;
} cpu_tower;

struct cs_backend {
    int n_towers;
    cpu_tower towers[CS_MAX_TOWERS];
    int n_threads;
    cs_pool *pool;
    size_t weight_bytes, act_bytes;
    int32_t n_seq;
    int32_t *seq_off;    /* (n_seq + 1) prefix sums of the packing */
    int32_t seq_cap;
    float *pad_x, *pad_out; /* scratch for padded small GEMMs */
    size_t pad_cap;         /* elements in each */
    int split_gemm;         /* GEMMs split by columns over the pool, OpenBLAS single-threaded */
    char name[64];
};

/* ------------------------------------------------------------------ weights */

/* fp32 copy of a weight; rows*cols elements expected (checked by model.c already). */
static float *upcast(cs_backend *be, const cs_weight *w, size_t n) {
    float *p = cs_malloc(n * sizeof(float));
    if (!p) return NULL;
    cs_convert_to_f32(p, w->data, w->dtype, n);
    be->weight_bytes += n * sizeof(float);
    return p;
}

/* Stack q, k, v (each (D, D) or (D)) into one (3D, D) / (3D) buffer. */
static float *upcast_qkv(cs_backend *be, const cs_weight *q, const cs_weight *k,
                         const cs_weight *v, size_t n) {
    float *p = cs_malloc(3 * n * sizeof(float));
    if (!p) return NULL;
    cs_convert_to_f32(p, q->data, q->dtype, n);
    cs_convert_to_f32(p + n, k->data, k->dtype, n);
    cs_convert_to_f32(p + 2 * n, v->data, v->dtype, n);
    be->weight_bytes += 3 * n * sizeof(float);
    return p;
}

/* OpenCLIP's text_projection is (D, E) used as x @ P; store (E, D) like nn.Linear. */
static float *upcast_proj(cs_backend *be, const cs_tower *t) {
    size_t d = (size_t)t->info.d_model, e = (size_t)t->info.proj_dim;
    float *p = upcast(be, &t->proj, d * e);
    if (!p || t->proj_is_linear) return p;
    float *tr = cs_malloc(d * e * sizeof(float));
    if (!tr) {
        free(p);
        return NULL;
    }
    for (size_t i = 0; i < d; i++)
        for (size_t j = 0; j < e; j++) tr[j * d + i] = p[i * e + j];
    free(p);
    return tr;
}

static int load_layer(cs_backend *be, cpu_layer *cl, const cs_layer *l, size_t d, size_t f) {
    cl->ln1_w = upcast(be, &l->ln1_w, d);
    cl->ln1_b = upcast(be, &l->ln1_b, d);
    cl->ln2_w = upcast(be, &l->ln2_w, d);
    cl->ln2_b = upcast(be, &l->ln2_b, d);
    cl->qkv_w = upcast_qkv(be, &l->q_w, &l->k_w, &l->v_w, d * d);
    cl->qkv_b = upcast_qkv(be, &l->q_b, &l->k_b, &l->v_b, d);
    cl->o_w = upcast(be, &l->o_w, d * d);
    cl->o_b = upcast(be, &l->o_b, d);
    cl->fc1_w = upcast(be, &l->fc1_w, f * d);
    cl->fc1_b = upcast(be, &l->fc1_b, f);
    cl->fc2_w = upcast(be, &l->fc2_w, d * f);
    cl->fc2_b = upcast(be, &l->fc2_b, d);
    return cl->ln1_w && cl->ln1_b && cl->ln2_w && cl->ln2_b && cl->qkv_w && cl->qkv_b &&
           cl->o_w && cl->o_b && cl->fc1_w && cl->fc1_b && cl->fc2_w && cl->fc2_b;
}

static void free_layer(cpu_layer *cl) {
    float *ps[] = {cl->ln1_w, cl->ln1_b, cl->ln2_w, cl->ln2_b, cl->qkv_w, cl->qkv_b,
                   cl->o_w,   cl->o_b,   cl->fc1_w, cl->fc1_b, cl->fc2_w, cl->fc2_b};
    for (size_t i = 0; i < sizeof ps / sizeof ps[0]; i++) free(ps[i]);
}

static int load_tower(cs_backend *be, cpu_tower *ct, const cs_tower *t) {
    const clipskip_tower_info *in = &t->info;
    if (in->n_heads <= 0 || in->d_model % in->n_heads || in->d_model / in->n_heads > CPU_MAX_HEAD_DIM) {
        cs_fail(CLIPSKIP_ERR_UNSUPPORTED, "cpu backend: width %d with %d heads: head dim must "
                "divide the width and be at most %d", in->d_model, in->n_heads, CPU_MAX_HEAD_DIM);
        return 0;
    }
    size_t d = (size_t)in->d_model, f = (size_t)in->d_mlp;
    ct->d = in->d_model;
    ct->f = in->d_mlp;
    ct->heads = in->n_heads;
    ct->vocab = in->vocab;
    ct->ctx = in->context;
    ct->proj_dim = in->proj_dim;
    ct->act = in->act;
    ct->n_layers = in->n_layers;
    ct->tok_emb = upcast(be, &t->tok_emb, (size_t)in->vocab * d);
    ct->pos_emb = upcast(be, &t->pos_emb, (size_t)in->context * d);
    ct->lnf_w = upcast(be, &t->lnf_w, d);
    ct->lnf_b = upcast(be, &t->lnf_b, d);
    if (!ct->tok_emb || !ct->pos_emb || !ct->lnf_w || !ct->lnf_b) return 0;
    if (t->proj.data && !(ct->proj = upcast_proj(be, t))) return 0;
    ct->layers = cs_calloc((size_t)in->n_layers, sizeof(cpu_layer));
    if (!ct->layers) return 0;
    for (int i = 0; i < in->n_layers; i++)
        if (!load_layer(be, &ct->layers[i], &t->layers[i], d, f)) return 0;
    return 1;
}

static void free_tower(cpu_tower *ct) {
    if (ct->layers)
        for (int i = 0; i < ct->n_layers; i++) free_layer(&ct->layers[i]);
    free(ct->layers);
    free(ct->tok_emb);
    free(ct->pos_emb);
    free(ct->lnf_w);
    free(ct->lnf_b);
    free(ct->proj);
}

static void cpu_free(cs_backend *be) {
    if (!be) return;
    for (int i = 0; i < be->n_towers; i++) free_tower(&be->towers[i]);
    free(be->seq_off);
    free(be->pad_x);
    free(be->pad_out);
    cs_pool_free(be->pool);
    free(be);
}

static clipskip_status cpu_init(const clipskip_model *model, const clipskip_encoder_params *p,
                                cs_backend **out) {
    cs_backend *be = cs_calloc(1, sizeof *be);
    if (!be) return CLIPSKIP_ERR_NOMEM;
    be->n_threads = p->n_threads > 0 ? p->n_threads : cs_cpu_count();
    be->n_towers = model->n_towers;
    if (!(be->pool = cs_pool_new(be->n_threads))) {
        int n = be->n_threads;
        free(be);
        return cs_fail(CLIPSKIP_ERR_NOMEM, "cpu backend: cannot start %d threads", n);
    }
    for (int i = 0; i < model->n_towers; i++) {
        if (!load_tower(be, &be->towers[i], &model->towers[i])) {
            cpu_free(be);
            return clipskip_last_status() ? clipskip_last_status() : CLIPSKIP_ERR_NOMEM;
        }
    }
    const char *sg = getenv("CLIPSKIP_CPU_GEMM"); /* "blas": OpenBLAS's own threads (comparison) */
    be->split_gemm = be->n_threads > 1 && !(sg && !strcmp(sg, "blas"));
    /* OpenBLAS's thread count is process-wide. Split GEMMs call it from every pool thread at
     * once, each on its own columns: it must then run single-threaded. */
    if (be->split_gemm)
        openblas_set_num_threads(1);
    else if (p->n_threads > 0)
        openblas_set_num_threads(p->n_threads);
    snprintf(be->name, sizeof be->name, "cpu: %d threads, OpenBLAS %s", be->n_threads,
             openblas_get_corename());
    *out = be;
    return CLIPSKIP_OK;
}

/* ------------------------------------------------------------------ buffers */

static size_t cpu_elem_bytes(const cs_backend *be, cs_buf_kind kind) { return sizeof(float); }
static int32_t cpu_mlp_chunk_rows(const cs_backend *be) { return CPU_MLP_CHUNK; }
static const char *cpu_device_name(const cs_backend *be) { return be->name; }

static void cpu_memory(const cs_backend *be, size_t *weights, size_t *activations) {
    if (weights) *weights = be->weight_bytes;
    if (activations) *activations = be->act_bytes;
}

/* Buffers carry their size in a header so release() can keep act_bytes exact. */
static void *cpu_alloc(cs_backend *be, cs_buf_kind kind, size_t n) {
    size_t bytes = n * sizeof(float) + 64;
    char *p = aligned_alloc(64, (bytes + 63) / 64 * 64);
    if (!p) {
        cs_fail(CLIPSKIP_ERR_NOMEM, "cpu backend: out of memory allocating %zu bytes", bytes);
        return NULL;
    }
    *(size_t *)p = bytes;
    be->act_bytes += bytes;
    return p + 64;
}

static void cpu_release(cs_backend *be, void *buf) {
    if (!buf) return;
    char *p = (char *)buf - 64;
    be->act_bytes -= *(size_t *)p;
    free(p);
}

static clipskip_status cpu_set_seqs(cs_backend *be, int32_t n_seq, const int32_t *len) {
    if (n_seq + 1 > be->seq_cap) {
        int32_t *p = realloc(be->seq_off, (size_t)(n_seq + 1) * sizeof *p);
        if (!p) return cs_fail(CLIPSKIP_ERR_NOMEM, "cpu backend: out of memory (sequences)");
        be->seq_off = p;
        be->seq_cap = n_seq + 1;
    }
    be->n_seq = n_seq;
    be->seq_off[0] = 0;
    for (int32_t i = 0; i < n_seq; i++) be->seq_off[i + 1] = be->seq_off[i] + len[i];
    return CLIPSKIP_OK;
}

/* ------------------------------------------------------------------ parallel rows */

typedef void (*rows_fn)(void *ctx, int64_t r0, int64_t r1);

typedef struct {
    rows_fn fn;
    void *ctx;
    int64_t n, per_task;
} rows_job;

static void rows_task(void *ctx, int64_t t) {
    rows_job *j = ctx;
    int64_t r0 = t * j->per_task, r1 = r0 + j->per_task < j->n ? r0 + j->per_task : j->n;
    j->fn(j->ctx, r0, r1);
}

/* fn over rows [0, n) in about 4 tasks per thread. */
static void parallel_rows(cs_backend *be, int64_t n, rows_fn fn, void *ctx) {
    int64_t tasks = 4 * (int64_t)be->n_threads;
    rows_job j = {fn, ctx, n, (n + tasks - 1) / tasks};
    if (j.per_task < 1) j.per_task = 1;
    cs_pool_run(be->pool, (n + j.per_task - 1) / j.per_task, rows_task, &j);
}

/* ------------------------------------------------------------------ ops */

typedef struct {
    const cpu_tower *t;
    const int32_t *ids, *pos; /* (M) */
    float *h;                 /* (M, D) */
} embed_job;

CS_CLONES static void embed_rows(void *ctx, int64_t r0, int64_t r1) {
    const embed_job *j = ctx;
    int d = j->t->d;
    for (int64_t i = r0; i < r1; i++) {
        const float *te = j->t->tok_emb + (size_t)j->ids[i] * d; /* ids checked by the encoder */
        const float *pe = j->t->pos_emb + (size_t)j->pos[i] * d;
        float *o = j->h + (size_t)i * d;
        for (int c = 0; c < d; c++) o[c] = te[c] + pe[c];
    }
}

static clipskip_status cpu_embed(cs_backend *be, int tower, const int32_t *ids,
                                 const int32_t *pos, int32_t m, void *h) {
    embed_job j = {&be->towers[tower], ids, pos, h};
    parallel_rows(be, m, embed_rows, &j);
    return CLIPSKIP_OK;
}

/* One row: out = (x - mean) / sqrt(var + eps) * w + b, two-pass fp32 statistics. */
CS_CLONES static void layernorm_row(float *out, const float *x, const float *w, const float *b, int d) {
    float mean = 0.f;
    for (int c = 0; c < d; c++) mean += x[c];
    mean /= (float)d;
    float var = 0.f;
    for (int c = 0; c < d; c++) {
        float t = x[c] - mean;
        var += t * t;
    }
    var /= (float)d;
    float rstd = 1.f / sqrtf(var + CPU_LN_EPS);
    for (int c = 0; c < d; c++) out[c] = (x[c] - mean) * rstd * w[c] + b[c];
}

typedef struct {
    const float *in;    /* rows of D */
    const int32_t *idx; /* out row i from in row idx[i]; NULL: from row i */
    float *out;         /* (M, D) */
    const float *w, *b;
    int d;
} ln_job;

static void ln_rows(void *ctx, int64_t r0, int64_t r1) {
    const ln_job *j = ctx;
    for (int64_t i = r0; i < r1; i++) {
        const size_t src = j->idx ? (size_t)j->idx[i] : (size_t)i;
        layernorm_row(j->out + (size_t)i * j->d, j->in + src * j->d, j->w, j->b, j->d);
    }
}

static clipskip_status cpu_layernorm(cs_backend *be, int tower, int layer, cs_ln_id which,
                                     const void *in_, void *out_, int32_t m, const int32_t *idx) {
    const cpu_tower *t = &be->towers[tower];
    const float *w, *b;
    if (which == CS_LN_FINAL) {
        w = t->lnf_w, b = t->lnf_b;
    } else {
        const cpu_layer *l = &t->layers[layer];
        w = which == CS_LN_1 ? l->ln1_w : l->ln2_w;
        b = which == CS_LN_1 ? l->ln1_b : l->ln2_b;
    }
    for (int32_t i = 0; idx && i < m; i++)
        if (idx[i] < 0) return cs_fail(CLIPSKIP_ERR_INVALID_ARG, "cpu: layernorm idx[%d] = %d", i, idx[i]);
    ln_job j = {in_, idx, out_, w, b, t->d};
    parallel_rows(be, m, ln_rows, &j);
    return CLIPSKIP_OK;
}

/* exp(x) for the activations, branch-free so the row loops vectorize (libm's expf is a call per
 * element: ~2% of a ViT-L encode on its own). Cephes' single-precision method: x = n ln2 + r
 * with ln2 in two parts, |r| <= ln2/2, a degree-7 polynomial for e^r, 2^n through the exponent
 * bits; within 2 ulp of expf over the clamped range. The clamp keeps 2^n finite and normal:
 * quick_gelu only needs "huge" and "tiny" there, and gets x / huge = -0 or x. */
static inline float exp_vec(float x) {
    x = x > 88.0f ? 88.0f : (x < -87.0f ? -87.0f : x);
    float n = x * 1.44269504088896341f + 12582912.f; /* + 1.5 * 2^23: round to nearest */
    n -= 12582912.f;
    float r = x - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    int32_t bits = ((int32_t)n + 127) << 23;
    float s;
    memcpy(&s, &bits, sizeof s);
    return p * s;
}

static inline float quick_gelu(float x) { return x / (1.f + exp_vec(-1.702f * x)); }
static inline float gelu_erf(float x) { return 0.5f * x * (1.f + erff(x * 0.70710678118654752f)); }

typedef struct {
    float *out;         /* (M, N), rows ld apart */
    const float *bias;  /* (N) */
    int n, ld, act;
    clipskip_act kind;
} bias_job;

CS_CLONES static void bias_rows(void *ctx, int64_t r0, int64_t r1) {
    const bias_job *j = ctx;
    for (int64_t i = r0; i < r1; i++) {
        float *o = j->out + (size_t)i * j->ld;
        const float *b = j->bias;
        if (!j->act) {
            for (int c = 0; c < j->n; c++) o[c] += b[c];
        } else if (j->kind == CLIPSKIP_ACT_QUICK_GELU) {
            for (int c = 0; c < j->n; c++) o[c] = quick_gelu(o[c] + b[c]);
        } else {
            for (int c = 0; c < j->n; c++) o[c] = gelu_erf(o[c] + b[c]);
        }
    }
}

/* out(M, N) += bias, then the activation when act, in place. */
static void bias_act(cs_backend *be, float *out, const float *bias, int32_t m, int n, int act,
                     clipskip_act kind) {
    bias_job j = {out, bias, n, n, act, kind};
    parallel_rows(be, m, bias_rows, &j);
}

static void gemm_weights(const cpu_tower *t, int layer, cs_weight_id w, const float **W,
                         const float **bias, int *n, int *k) {
    const cpu_layer *l = w == CS_W_PROJ ? NULL : &t->layers[layer];
    *W = NULL, *bias = NULL, *n = 0, *k = 0;
    switch (w) {
    case CS_W_QKV: *W = l->qkv_w, *bias = l->qkv_b, *n = 3 * t->d, *k = t->d; break;
    case CS_W_O: *W = l->o_w, *bias = l->o_b, *n = t->d, *k = t->d; break;
    case CS_W_FC1: *W = l->fc1_w, *bias = l->fc1_b, *n = t->f, *k = t->d; break;
    case CS_W_FC2: *W = l->fc2_w, *bias = l->fc2_b, *n = t->d, *k = t->f; break;
    case CS_W_PROJ: *W = t->proj, *bias = NULL, *n = t->proj_dim, *k = t->d; break;
    }
}

/* out(M, N) = x(M, K) W^T (+ out when accumulate), with M padded up to the row-invariant
 * regime of OpenBLAS (see CPU_MIN_GEMM_MNK). */
static clipskip_status sgemm_rows(cs_backend *be, const float *x, const float *W, float *out,
                                  int32_t m, int n, int k, int accumulate) {
    int32_t m_min = (int32_t)(CPU_MIN_GEMM_MNK / ((double)n * k)) + 1;
    float beta = accumulate ? 1.f : 0.f;
    if (m >= m_min) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, k, 1.f, x, k, W, k, beta, out, n);
        return CLIPSKIP_OK;
    }
    size_t need = (size_t)m_min * (size_t)(n > k ? n : k);
    if (need > be->pad_cap) {
        float *px = realloc(be->pad_x, need * sizeof(float)), *po;
        if (px) be->pad_x = px;
        po = px ? realloc(be->pad_out, need * sizeof(float)) : NULL;
        if (!px || !po) return cs_fail(CLIPSKIP_ERR_NOMEM, "cpu backend: out of memory (gemm scratch)");
        be->pad_out = po;
        be->pad_cap = need;
    }
    memcpy(be->pad_x, x, (size_t)m * k * sizeof(float));
    memset(be->pad_x + (size_t)m * k, 0, (size_t)(m_min - m) * k * sizeof(float));
    if (accumulate) memcpy(be->pad_out, out, (size_t)m * n * sizeof(float));
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m_min, n, k, 1.f, be->pad_x, k, W, k,
                beta, be->pad_out, n);
    memcpy(out, be->pad_out, (size_t)m * n * sizeof(float));
    return CLIPSKIP_OK;
}

/* Column-split GEMM: task t computes out[:, n0:n1] = x W[n0:n1]^T (+ out) with a single-threaded
 * sgemm, then its own bias / activation while those columns are still in cache. One pool
 * dispatch per GEMM instead of OpenBLAS's thread hand-off plus a second pass for the bias.
 * Slice edges are multiples of 16 fixed by (n, thread count), never by m, and sgemm's
 * per-element order over K does not depend on the slice, so rows stay batch-invariant. */
typedef struct {
    const float *x, *W, *bias;
    float *out;
    int32_t m;
    int n, k, n_slices, accumulate, epi_bias, act;
    clipskip_act kind;
} split_job;

static int split_edge(const split_job *j, int64_t t) {
    return t >= j->n_slices ? j->n : (int)(((int64_t)j->n * t / j->n_slices) & ~(int64_t)15);
}

static void split_task(void *ctx, int64_t t) {
    const split_job *j = ctx;
    const int n0 = split_edge(j, t), n1 = split_edge(j, t + 1), nn = n1 - n0;
    if (nn <= 0) return;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, j->m, nn, j->k, 1.f, j->x, j->k,
                j->W + (size_t)n0 * j->k, j->k, j->accumulate ? 1.f : 0.f, j->out + n0, j->n);
    if (!j->epi_bias) return;
    bias_job b = {j->out + n0, j->bias + n0, nn, j->n, j->act, j->kind};
    bias_rows(&b, 0, j->m);
}

static clipskip_status cpu_gemm(cs_backend *be, int tower, int layer, cs_weight_id w,
                                cs_epilogue epi, const void *x_, void *out_, int32_t m) {
    const cpu_tower *t = &be->towers[tower];
    const float *W, *bias;
    int n, k;
    gemm_weights(t, layer, w, &W, &bias, &n, &k);
    if (!W) return cs_fail(CLIPSKIP_ERR_INVALID_ARG, "cpu backend: tower %d has no projection", tower);
    if (m == 0) return CLIPSKIP_OK;
    const float *x = x_; /* (M, K) */
    float *out = out_;   /* (M, N) */
    const int slices = be->n_threads;
    if (be->split_gemm && (double)m * (n / slices) * k >= CPU_MIN_GEMM_MNK && n >= 16 * slices) {
        split_job j = {x, W, bias, out, m, n, k, slices, epi == CS_EPI_BIAS_RESID,
                       epi != CS_EPI_NONE, epi == CS_EPI_BIAS_ACT, t->act};
        cs_pool_run(be->pool, slices, split_task, &j);
        return CLIPSKIP_OK;
    }
    /* BIAS_RESID: out = out + x W^T, then + b (the bias after the accumulation: a rounding
     * difference from HF's out + (x W^T + b), well inside the 1e-5 tolerance, and no extra
     * (M, N) pass). */
    CS_TRY(sgemm_rows(be, x, W, out, m, n, k, epi == CS_EPI_BIAS_RESID));
    if (epi != CS_EPI_NONE) bias_act(be, out, bias, m, n, epi == CS_EPI_BIAS_ACT, t->act);
    return CLIPSKIP_OK;
}

/* One query row i of one head: out(Dh) = softmax_{j<=i}(q.k_j * scale) v_j.
 * kt (Dh, T) is the head's K transposed so the score loop runs over j contiguously; each
 * score still sums over c = 0..Dh-1 in order, so a row's result depends on nothing but its
 * own inputs (not on len, not on the thread). v: the head's V of row 0, rows stride apart. */
CS_CLONES static void attend_row(float *out, const float *q, const float *kt, const float *v,
                                 int i, int dh, size_t stride, float scale, float *p) {
    for (int j = 0; j <= i; j++) p[j] = 0.f;
    for (int c = 0; c < dh; c++) {
        const float qc = q[c], *kc = kt + (size_t)c * CLIPSKIP_CONTEXT;
        for (int j = 0; j <= i; j++) p[j] += qc * kc[j];
    }
    float mx = -INFINITY;
    for (int j = 0; j <= i; j++) {
        p[j] *= scale;
        mx = p[j] > mx ? p[j] : mx;
    }
    float sum = 0.f;
    for (int j = 0; j <= i; j++) {
        p[j] = expf(p[j] - mx);
        sum += p[j];
    }
    float inv = 1.f / sum;
    for (int c = 0; c < dh; c++) out[c] = 0.f;
    for (int j = 0; j <= i; j++) {
        const float *vj = v + (size_t)j * stride, pj = p[j] * inv;
        for (int c = 0; c < dh; c++) out[c] += pj * vj[c];
    }
}

typedef struct {
    const cs_backend *be;
    const float *qkv; /* (M, 3D): q | k | v, heads contiguous inside each */
    float *out;       /* (M, D), or (n_seq, D) with last_only */
    int d, nh, last_only;
} attn_job;

/* Rows are (sequence, head) pairs. */
static void attn_pairs(void *ctx, int64_t p0, int64_t p1) {
    const attn_job *j = ctx;
    int d = j->d, dh = d / j->nh;
    size_t stride = 3 * (size_t)d;
    float scale = 1.f / sqrtf((float)dh), p[CLIPSKIP_CONTEXT];
    float kt[CPU_MAX_HEAD_DIM * CLIPSKIP_CONTEXT]; /* (Dh, T) */
    for (int64_t pair = p0; pair < p1; pair++) {
        int32_t s = (int32_t)(pair / j->nh), hd = (int32_t)(pair % j->nh);
        int32_t off = j->be->seq_off[s], len = j->be->seq_off[s + 1] - off;
        const float *base = j->qkv + (size_t)off * stride + (size_t)hd * dh;
        for (int r = 0; r < len; r++)
            for (int c = 0; c < dh; c++) kt[c * CLIPSKIP_CONTEXT + r] = base[(size_t)r * stride + d + c];
        for (int i = j->last_only ? len - 1 : 0; i < len; i++) {
            float *o = j->last_only ? j->out + (size_t)s * d : j->out + (size_t)(off + i) * d;
            attend_row(o + (size_t)hd * dh, base + (size_t)i * stride, kt, base + 2 * d, i, dh,
                       stride, scale, p);
        }
    }
}

static clipskip_status cpu_attention(cs_backend *be, int tower, const void *qkv, void *out,
                                     int last_only) {
    const cpu_tower *t = &be->towers[tower];
    attn_job j = {be, qkv, out, t->d, t->heads, last_only};
    parallel_rows(be, (int64_t)be->n_seq * t->heads, attn_pairs, &j);
    return CLIPSKIP_OK;
}

static clipskip_status cpu_gather_rows(cs_backend *be, cs_buf_kind kind, const void *src_,
                                       void *dst_, int32_t width, const int32_t *idx, int32_t n) {
    const float *src = src_;
    float *dst = dst_;
    for (int32_t i = 0; i < n; i++)
        memcpy(dst + (size_t)i * width, src + (size_t)idx[i] * width, (size_t)width * sizeof(float));
    return CLIPSKIP_OK;
}

static clipskip_status cpu_download(cs_backend *be, cs_buf_kind kind, const void *buf, size_t off,
                                    size_t n, void *dst, clipskip_dtype dtype) {
    cs_convert_from_f32(dst, (const float *)buf + off, dtype, n);
    return CLIPSKIP_OK;
}

static clipskip_status cpu_finish(cs_backend *be) { return CLIPSKIP_OK; }

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* Best of a few runs of a 2048^3 sgemm and a 256 MB copy, with the backend's threads. */
typedef struct {
    float *dst;
    const float *src;
} copy_job;

/* Elements [i0, i1) of a parallel copy (parallel_rows over elements). */
static void copy_elems(void *ctx, int64_t i0, int64_t i1) {
    const copy_job *j = ctx;
    memcpy(j->dst + i0, j->src + i0, (size_t)(i1 - i0) * sizeof(float));
}

/* The ceilings the encoder itself can reach: the GEMM the way cpu_gemm runs it (split over the
 * pool, or OpenBLAS's threads) and a copy over all threads. */
static clipskip_status cpu_measure_peak(cs_backend *be, double *flops_per_s, double *bytes_per_s) {
    const int n = 2048;
    const size_t copy = (size_t)64 << 20; /* floats: 256 MB */
    float *a = cs_malloc((size_t)n * n * 4 * 3), *src = cs_malloc(copy * 4), *dst = cs_malloc(copy * 4);
    if (!a || !src || !dst) {
        free(a), free(src), free(dst);
        return CLIPSKIP_ERR_NOMEM;
    }
    for (size_t i = 0; i < (size_t)n * n * 3; i++) a[i] = (float)(i % 13) * 0.01f - 0.06f;
    for (size_t i = 0; i < copy; i++) src[i] = (float)(i % 7), dst[i] = 0.f;
    double best_gemm = 1e30, best_copy = 1e30;
    for (int rep = 0; rep < 4; rep++) {
        double t = now_s();
        if (be->split_gemm) {
            split_job j = {a, a + (size_t)n * n, NULL, a + 2 * (size_t)n * n, n, n, n,
                           be->n_threads, 0, 0, 0, CLIPSKIP_ACT_QUICK_GELU};
            cs_pool_run(be->pool, be->n_threads, split_task, &j);
        } else {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, n, n, 1.f, a, n,
                        a + (size_t)n * n, n, 0.f, a + 2 * (size_t)n * n, n);
        }
        t = now_s() - t;
        if (t < best_gemm) best_gemm = t;
        copy_job cj = {dst, src};
        t = now_s();
        parallel_rows(be, (int64_t)copy, copy_elems, &cj);
        t = now_s() - t;
        if (t < best_copy) best_copy = t;
    }
    *flops_per_s = 2.0 * n * n * (double)n / best_gemm;
    *bytes_per_s = 2.0 * (double)copy * 4 / best_copy;
    free(a), free(src), free(dst);
    return CLIPSKIP_OK;
}

const cs_backend_ops cs_backend_cpu = {
    .name = "cpu",
    .kind = CLIPSKIP_BACKEND_CPU,
    .init = cpu_init,
    .free = cpu_free,
    .elem_bytes = cpu_elem_bytes,
    .mlp_chunk_rows = cpu_mlp_chunk_rows,
    .device_name = cpu_device_name,
    .memory = cpu_memory,
    .alloc = cpu_alloc,
    .release = cpu_release,
    .set_seqs = cpu_set_seqs,
    .embed = cpu_embed,
    .layernorm = cpu_layernorm,
    .gemm = cpu_gemm,
    .attention = cpu_attention,
    .gather_rows = cpu_gather_rows,
    .download = cpu_download,
    .finish = cpu_finish,
    .device_seconds = NULL,
    .measure_peak = cpu_measure_peak,
    .graph_begin = NULL,
    .graph_end = NULL,
};
