/* CUDA backend: convert every tower's weights to the compute dtype once and upload them into
 * one device arena. Matmul weights become F16/BF16 in nn.Linear (N, K) layout (q, k, v stacked
 * into one (3D, D) QKV weight; an OpenCLIP (D, E) text projection transposed to (E, D));
 * biases, LayerNorm parameters and position embeddings become fp32; the token embedding stays
 * in the file's dtype (exact, as the CPU backend's upcast of it). Conversion runs on the
 * device: each tensor is copied raw into a scratch buffer and converted by a kernel. */
#ifdef CLIPSKIP_WITH_CUDA
#include "cuda_priv.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    char *base; /* NULL: counting pass */
    size_t off;
} cw_arena;

static void *cw_carve(cw_arena *a, size_t bytes) {
    void *p = a->base ? a->base + a->off : NULL;
    a->off += (bytes + 255) & ~(size_t)255; /* 256-byte aligned, as cuBLASLt likes */
    return p;
}

static size_t cw_act(const cs_backend *be, size_t n) { return n * cs_dtype_size(be->cdt); }

static void cw_linear(cs_backend *be, cw_arena *a, cs_cu_linear *l, int32_t n, int32_t k,
                      int bias, int lt_bias) {
    l->n = n;
    l->k = k;
    l->w = cw_carve(a, cw_act(be, (size_t)n * k));
    l->b = bias ? cw_carve(a, (size_t)n * sizeof(float)) : NULL;
    l->b_lt = lt_bias ? cw_carve(a, cw_act(be, (size_t)n)) : NULL;
}

/* Assign every device pointer of one tower (a->base == NULL: only count bytes). */
static void cw_layout(cs_backend *be, cw_arena *a, cs_cu_tower *t) {
    const size_t d = (size_t)t->d;
    const int lt = be->gemm_path == CLIPSKIP_GEMM_CUBLASLT;
    t->tok_emb = cw_carve(a, (size_t)t->vocab * d * cs_dtype_size(t->tok_dtype));
    t->pos_emb = cw_carve(a, (size_t)t->context * d * sizeof(float));
    t->lnf_g = cw_carve(a, d * sizeof(float));
    t->lnf_b = cw_carve(a, d * sizeof(float));
    for (int l = 0; l < t->n_layers; l++) {
        cs_cu_layer *L = &t->layers[l];
        L->ln1_g = cw_carve(a, d * sizeof(float));
        L->ln1_b = cw_carve(a, d * sizeof(float));
        L->ln2_g = cw_carve(a, d * sizeof(float));
        L->ln2_b = cw_carve(a, d * sizeof(float));
        cw_linear(be, a, &L->qkv, 3 * t->d, t->d, 1, lt);
        cw_linear(be, a, &L->o, t->d, t->d, 1, 0);
        cw_linear(be, a, &L->fc1, t->f, t->d, 1, lt);
        cw_linear(be, a, &L->fc2, t->d, t->f, 1, 0);
    }
    if (t->proj.n > 0) cw_linear(be, a, &t->proj, t->proj.n, t->d, 0, 0);
}

static clipskip_status cw_shape(const cs_weight *w, int64_t rows, int64_t cols) {
    const int ok = w->ndim == (cols < 0 ? 1 : 2) && w->shape[0] == rows &&
                   (cols < 0 || w->shape[1] == cols);
    if (ok) return CLIPSKIP_OK;
    if (cols < 0)
        return cs_fail(CLIPSKIP_ERR_SHAPE, "cuda: tensor %s: expected (%lld), found %d-d (%lld, %lld)",
                       w->name ? w->name : "?", (long long)rows, (int)w->ndim,
                       (long long)w->shape[0], (long long)w->shape[1]);
    return cs_fail(CLIPSKIP_ERR_SHAPE, "cuda: tensor %s: expected (%lld, %lld), found %d-d (%lld, %lld)",
                   w->name ? w->name : "?", (long long)rows, (long long)cols, (int)w->ndim,
                   (long long)w->shape[0], (long long)w->shape[1]);
}

typedef struct {
    void *scratch; /* device, raw file bytes of one tensor */
    size_t cap;
} cw_up;

/* dst (n elements of dst_dt) = convert(w), w checked to be (rows, cols) (cols < 0: vector).
 * An absent optional tensor (data == NULL) uploads zeros. */
static clipskip_status cw_put(cs_backend *be, cw_up *u, void *dst, clipskip_dtype dst_dt,
                              const cs_weight *w, int64_t rows, int64_t cols) {
    const size_t n = (size_t)rows * (size_t)(cols < 0 ? 1 : cols);
    if (!w->data) {
        CU_TRY(be, cudaMemsetAsync(dst, 0, n * cs_dtype_size(dst_dt), be->stream));
        return CLIPSKIP_OK;
    }
    CS_TRY(cw_shape(w, rows, cols));
    const size_t bytes = n * cs_dtype_size(w->dtype);
    if (w->dtype == dst_dt) {
        CU_TRY(be, cudaMemcpyAsync(dst, w->data, bytes, cudaMemcpyHostToDevice, be->stream));
        return CLIPSKIP_OK;
    }
    if (bytes > u->cap)
        return cs_fail(CLIPSKIP_ERR_BACKEND, "cuda: tensor %s: %zu bytes over the upload scratch",
                       w->name ? w->name : "?", bytes);
    /* stream-ordered: the next tensor's copy into scratch waits for this conversion */
    CU_TRY(be, cudaMemcpyAsync(u->scratch, w->data, bytes, cudaMemcpyHostToDevice, be->stream));
    CU_TRY(be, cs_k_convert(dst, dst_dt, u->scratch, w->dtype, n, be->stream));
    return CLIPSKIP_OK;
}

static clipskip_status cw_put_linear_bias_lt(cs_backend *be, const cs_cu_linear *l) {
    if (l->b_lt) CU_TRY(be, cs_k_convert(l->b_lt, be->cdt, l->b, CLIPSKIP_DTYPE_F32, l->n, be->stream));
    return CLIPSKIP_OK;
}

static clipskip_status cw_put_layer(cs_backend *be, cw_up *u, const cs_cu_tower *t,
                                    const cs_layer *s, const cs_cu_layer *L) {
    const int64_t d = t->d, f = t->f;
    const clipskip_dtype c = be->cdt, F = CLIPSKIP_DTYPE_F32;
    const size_t es = cs_dtype_size(c);
    CS_TRY(cw_put(be, u, L->ln1_g, F, &s->ln1_w, d, -1));
    CS_TRY(cw_put(be, u, L->ln1_b, F, &s->ln1_b, d, -1));
    CS_TRY(cw_put(be, u, L->ln2_g, F, &s->ln2_w, d, -1));
    CS_TRY(cw_put(be, u, L->ln2_b, F, &s->ln2_b, d, -1));
    /* q, k, v stacked: rows 0..D-1, D..2D-1, 2D..3D-1 of the (3D, D) weight */
    const cs_weight *qkv_w[3] = {&s->q_w, &s->k_w, &s->v_w}, *qkv_b[3] = {&s->q_b, &s->k_b, &s->v_b};
    for (int i = 0; i < 3; i++) {
        CS_TRY(cw_put(be, u, (char *)L->qkv.w + (size_t)i * d * d * es, c, qkv_w[i], d, d));
        CS_TRY(cw_put(be, u, L->qkv.b + i * d, F, qkv_b[i], d, -1));
    }
    CS_TRY(cw_put(be, u, L->o.w, c, &s->o_w, d, d));
    CS_TRY(cw_put(be, u, L->o.b, F, &s->o_b, d, -1));
    CS_TRY(cw_put(be, u, L->fc1.w, c, &s->fc1_w, f, d));
    CS_TRY(cw_put(be, u, L->fc1.b, F, &s->fc1_b, f, -1));
    CS_TRY(cw_put(be, u, L->fc2.w, c, &s->fc2_w, d, f));
    CS_TRY(cw_put(be, u, L->fc2.b, F, &s->fc2_b, d, -1));
    CS_TRY(cw_put_linear_bias_lt(be, &L->qkv));
    return cw_put_linear_bias_lt(be, &L->fc1);
}

static clipskip_status cw_put_tower(cs_backend *be, cw_up *u, const cs_tower *s,
                                    const cs_cu_tower *t) {
    const int64_t d = t->d;
    if (!s->tok_emb.data) return cs_fail(CLIPSKIP_ERR_SHAPE, "cuda: token embedding missing");
    CS_TRY(cw_shape(&s->tok_emb, t->vocab, d));
    CU_TRY(be, cudaMemcpyAsync(t->tok_emb, s->tok_emb.data,
                               (size_t)t->vocab * d * cs_dtype_size(t->tok_dtype),
                               cudaMemcpyHostToDevice, be->stream));
    CS_TRY(cw_put(be, u, t->pos_emb, CLIPSKIP_DTYPE_F32, &s->pos_emb, t->context, d));
    CS_TRY(cw_put(be, u, t->lnf_g, CLIPSKIP_DTYPE_F32, &s->lnf_w, d, -1));
    CS_TRY(cw_put(be, u, t->lnf_b, CLIPSKIP_DTYPE_F32, &s->lnf_b, d, -1));
    for (int l = 0; l < t->n_layers; l++)
        CS_TRY(cw_put_layer(be, u, t, &s->layers[l], &t->layers[l]));
    if (!t->proj.w) return CLIPSKIP_OK;
    const int64_t e = t->proj.n;
    if (s->proj_is_linear) return cw_put(be, u, t->proj.w, be->cdt, &s->proj, e, d);
    /* OpenCLIP text_projection (D, E), used as x @ P: store P^T (E, D) */
    CS_TRY(cw_shape(&s->proj, d, e));
    const size_t bytes = (size_t)d * e * cs_dtype_size(s->proj.dtype);
    CU_TRY(be, cudaMemcpyAsync(u->scratch, s->proj.data, bytes, cudaMemcpyHostToDevice, be->stream));
    CU_TRY(be, cs_k_transpose_convert(t->proj.w, be->cdt, u->scratch, s->proj.dtype, d, e, be->stream));
    return CLIPSKIP_OK;
}

/* Shapes the kernels take; anything else is refused here, before any upload. */
static clipskip_status cw_describe(cs_backend *be, const cs_tower *s, cs_cu_tower *t, int ti) {
    const clipskip_tower_info *in = &s->info;
    t->d = in->d_model;
    t->heads = in->n_heads;
    t->f = in->d_mlp;
    t->n_layers = in->n_layers;
    t->vocab = in->vocab;
    t->context = in->context;
    t->act = in->act;
    t->tok_dtype = s->tok_emb.dtype;
    t->proj.n = s->proj.data ? in->proj_dim : 0;
    if (t->d <= 0 || t->heads <= 0 || t->d % t->heads || t->d / t->heads > CS_K_ATTN_MAX_HEAD_DIM)
        return cs_fail(CLIPSKIP_ERR_UNSUPPORTED,
                       "cuda: tower %d: width %d with %d heads: the attention kernels need head "
                       "width <= %d", ti, t->d, t->heads, CS_K_ATTN_MAX_HEAD_DIM);
    if (t->d > 2048 || t->d % 8 || t->f <= 0 || t->f % 8 || t->proj.n % 8 || t->n_layers < 0)
        return cs_fail(CLIPSKIP_ERR_UNSUPPORTED,
                       "cuda: tower %d: width %d, MLP %d, projection %d: kernels need width <= "
                       "2048 and multiples of 8", ti, t->d, t->f, t->proj.n);
    if (t->vocab <= 0 || t->context <= 0)
        return cs_fail(CLIPSKIP_ERR_SHAPE, "cuda: tower %d: vocab %d, context %d", ti, t->vocab,
                       t->context);
    t->layers = cs_calloc((size_t)(t->n_layers > 0 ? t->n_layers : 1), sizeof(cs_cu_layer));
    return t->layers ? CLIPSKIP_OK : CLIPSKIP_ERR_NOMEM;
}

/* Largest tensor (bytes in the file) that goes through the conversion scratch. */
static size_t cw_scratch_bytes(const cs_tower *s) {
    size_t mx = 0;
    const cs_weight *top[] = {&s->pos_emb, &s->proj};
    for (int i = 0; i < 2; i++)
        if (top[i]->data) {
            size_t b = (size_t)top[i]->shape[0] * (top[i]->ndim > 1 ? (size_t)top[i]->shape[1] : 1) *
                       cs_dtype_size(top[i]->dtype);
            mx = b > mx ? b : mx;
        }
    for (int l = 0; l < s->info.n_layers; l++) {
        const cs_weight *m[3] = {&s->layers[l].q_w, &s->layers[l].fc1_w, &s->layers[l].fc2_w};
        for (int i = 0; i < 3; i++) {
            if (!m[i]->data || m[i]->ndim != 2) continue;
            size_t b = (size_t)m[i]->shape[0] * (size_t)m[i]->shape[1] * cs_dtype_size(m[i]->dtype);
            mx = b > mx ? b : mx;
        }
    }
    return mx;
}

clipskip_status cs_cu_weights_init(cs_backend *be, const clipskip_model *model) {
    if (model->n_towers < 1 || model->n_towers > CS_MAX_TOWERS)
        return cs_fail(CLIPSKIP_ERR_INVALID_ARG, "cuda: model has %d towers", model->n_towers);
    be->n_towers = model->n_towers;
    cw_arena a = {NULL, 0};
    size_t scratch = 0;
    for (int i = 0; i < be->n_towers; i++) {
        CS_TRY(cw_describe(be, &model->towers[i], &be->towers[i], i));
        cw_layout(be, &a, &be->towers[i]);
        size_t s = cw_scratch_bytes(&model->towers[i]);
        scratch = s > scratch ? s : scratch;
    }
    if (cudaMalloc(&be->weights, a.off) != cudaSuccess) {
        (void)cudaGetLastError();
        be->weights = NULL;
        return cs_fail(CLIPSKIP_ERR_NOMEM, "cuda: cudaMalloc of %zu bytes for the weights failed "
                       "on device %d: out of memory", a.off, be->device);
    }
    be->weight_bytes = a.off;
    a.base = be->weights;
    a.off = 0;
    for (int i = 0; i < be->n_towers; i++) cw_layout(be, &a, &be->towers[i]);

    cw_up u = {NULL, scratch};
    if (scratch) CU_TRY(be, cudaMalloc(&u.scratch, scratch));
    clipskip_status st = CLIPSKIP_OK;
    for (int i = 0; i < be->n_towers && st == CLIPSKIP_OK; i++)
        st = cw_put_tower(be, &u, &model->towers[i], &be->towers[i]);
    /* the pageable copies have been staged, but the conversions still read scratch */
    cudaError_t e = cudaStreamSynchronize(be->stream);
    if (u.scratch) cudaFree(u.scratch);
    if (st != CLIPSKIP_OK) return st;
    if (e != cudaSuccess) return cs_cu_fail(be, e, "cudaStreamSynchronize(weights upload)", __FILE__, __LINE__);
    return CLIPSKIP_OK;
}

void cs_cu_weights_free(cs_backend *be) {
    if (be->weights) cudaFree(be->weights);
    be->weights = NULL;
    for (int i = 0; i < CS_MAX_TOWERS; i++) {
        free(be->towers[i].layers);
        be->towers[i].layers = NULL;
    }
}
#endif
