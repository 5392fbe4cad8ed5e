/* Every op of cs_backend_cuda against the same op of cs_backend_cpu (the specification), on
 * fresh random inputs at several shapes: ragged M (1, 77, 78, 154, 1001, 513*77 token rows),
 * each family's width, heads and MLP width, F16 and BF16. Both backends get the same random
 * in-memory model (weights stored in the compute dtype, so both see identical weights) and
 * identical inputs (ACT inputs pre-rounded to the compute dtype). The CUDA output is poisoned
 * with NaN before each op, rows past M are guard rows that must stay NaN, and the relative
 * Frobenius error must be <= 2e-3 (NaN/Inf never pass). Also: graph capture/replay gives
 * bitwise the results of direct issue, regions refuse host-data ops, an impossible allocation
 * fails with CLIPSKIP_ERR_NOMEM and the backend stays usable. Kernel-level invariance checks
 * (GEMM tiles, attention prefixes) live in test_gpu_invariance.c.
 *
 * Exit 77 (SKIPPED) when no CUDA device is usable. Assumes the CPU backend's buffers are host
 * fp32 memory (backend.h: CPU RESID and ACT are fp32), which is how inputs reach it. */
#include "backend.h"
#include "gpu_test_model.h"
#include "test_util.h"

#define GUARD_ROWS 3
/* fp16 output rounding alone is 2^-11/sqrt(3) ~ 3e-4 relative, bf16's 2^-9/sqrt(3) ~ 1.1e-3;
 * the contract's bound for both paths is 2e-3 (ARCHITECTURE.md "Numerics contract"). */
#define TOL_ACT 2e-3
#define TOL_F32 1e-5   /* fp32 results from identical fp32 inputs (embedding): exact in practice */
/* fp32 residual increments: identical F16/BF16 inputs (their products are exact in fp32), so
 * only the summation order differs: ~sqrt(K) * 2^-24 ~ 4e-6 at K = 5120, tensor-core
 * accumulation a little looser. */
#define TOL_RESID 1e-4

typedef tm_pair pair;

static const cs_backend_ops *CPU = &cs_backend_cpu, *GPU = &cs_backend_cuda;

static size_t width_of(const pair *p, cs_weight_id w, int out) {
    switch (w) {
    case CS_W_QKV: return out ? 3 * (size_t)p->d : (size_t)p->d;
    case CS_W_FC1: return out ? (size_t)p->f : (size_t)p->d;
    case CS_W_FC2: return out ? (size_t)p->d : (size_t)p->f;
    case CS_W_PROJ: return out ? (size_t)p->e : (size_t)p->d;
    default: return (size_t)p->d;
    }
}

/* A pair of buffers (CPU, CUDA) of rows x width elements plus guard rows. */
typedef struct {
    void *c, *g;
    cs_buf_kind kind;
    size_t rows, width;
} bufpair;

static bufpair bp_alloc(pair *p, cs_buf_kind kind, size_t rows, size_t width) {
    bufpair b = {NULL, NULL, kind, rows, width};
    const size_t n = (rows + GUARD_ROWS) * width;
    b.c = CPU->alloc(p->cpu, kind, n);
    b.g = GPU->alloc(p->gpu, kind, n);
    if (!b.c || !b.g) {
        fprintf(stderr, "%s: alloc of %zu elements failed: %s\n", p->tag, n, clipskip_last_error());
        exit(1);
    }
    return b;
}

static void bp_free(pair *p, bufpair *b) {
    CPU->release(p->cpu, b->c);
    GPU->release(p->gpu, b->g);
}

/* Both buffers := v (rows x width; ACT values rounded first), guard rows := NaN. */
static void bp_put(pair *p, bufpair *b, float *v) {
    const size_t n = b->rows * b->width, ng = GUARD_ROWS * b->width;
    if (b->kind == CS_BUF_ACT) tm_round(v, n, p->cdt);
    float *cpu = b->c;
    memcpy(cpu, v, n * sizeof(float));
    float *nan = malloc(ng * sizeof(float));
    for (size_t i = 0; i < ng; i++) nan[i] = NAN;
    memcpy(cpu + n, nan, ng * sizeof(float));
    CHECK_OK(cs_cuda_upload_f32(p->gpu, b->kind, b->g, 0, n, v));
    CHECK_OK(cs_cuda_upload_f32(p->gpu, b->kind, b->g, n, ng, nan));
    free(nan);
}

/* Poison both buffers entirely (outputs). */
static void bp_poison(pair *p, bufpair *b) {
    const size_t n = (b->rows + GUARD_ROWS) * b->width;
    float *nan = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) nan[i] = NAN;
    memcpy(b->c, nan, n * sizeof(float));
    CHECK_OK(cs_cuda_upload_f32(p->gpu, b->kind, b->g, 0, n, nan));
    free(nan);
}

static float *fetch(cs_backend *be, const cs_backend_ops *ops, cs_buf_kind kind, const void *buf,
                    size_t n) {
    float *h = malloc(n * sizeof(float));
    CHECK_OK(ops->download(be, kind, buf, 0, n, h, CLIPSKIP_DTYPE_F32));
    CHECK_OK(ops->finish(be));
    return h;
}

/* Compare rows < b->rows; guard rows of the CUDA buffer must still be NaN. sub: subtracted
 * from both before comparing (the initial residual, to judge the increment), or NULL. */
static void bp_compare(pair *p, bufpair *b, const char *what, int32_t m, double tol, const float *sub) {
    const size_t n = b->rows * b->width, nt = n + GUARD_ROWS * b->width;
    float *c = fetch(p->cpu, CPU, b->kind, b->c, n);
    float *g = fetch(p->gpu, GPU, b->kind, b->g, nt);
    if (sub)
        for (size_t i = 0; i < n; i++) {
            c[i] -= sub[i];
            g[i] -= sub[i];
        }
    const double err = tm_rel_err(c, g, n);
    size_t bad_guard = 0;
    for (size_t i = n; i < nt; i++) bad_guard += !isnan(g[i]);
    const int ok = err <= tol && bad_guard == 0;
    printf("  %-5s %-26s M=%-6d rel err %.3e (tol %.0e)%s%s\n", ok ? "ok" : "FAIL", what, m, err,
           tol, bad_guard ? " guard rows overwritten" : "", isinf(err) ? " non-finite output" : "");
    if (!ok) cs_test_failures++;
    free(c);
    free(g);
}

static void test_embed(pair *p, int32_t m) {
    int32_t *ids = malloc((size_t)m * sizeof(int32_t)), *pos = malloc((size_t)m * sizeof(int32_t));
    for (int32_t i = 0; i < m; i++) {
        ids[i] = tm_int(p->vocab);
        pos[i] = i % CLIPSKIP_CONTEXT;
    }
    bufpair h = bp_alloc(p, CS_BUF_RESID, (size_t)m, (size_t)p->d);
    bp_poison(p, &h);
    CHECK_OK(CPU->embed(p->cpu, 0, ids, pos, m, h.c));
    CHECK_OK(GPU->embed(p->gpu, 0, ids, pos, m, h.g));
    bp_compare(p, &h, "embed", m, TOL_F32, NULL);
    bp_free(p, &h);
    free(ids);
    free(pos);
}

/* *n = m / 2 + 1 random rows of m (1 of 1), the last row among them: what a gather or the
 * pooled LN reads. */
static int32_t *random_rows(int32_t m, int32_t *n) {
    *n = m > 1 ? m / 2 + 1 : 1;
    int32_t *idx = malloc((size_t)*n * sizeof(int32_t));
    REQUIRE(idx);
    for (int32_t i = 0; i < *n; i++) idx[i] = tm_int(m);
    idx[*n - 1] = m - 1;
    return idx;
}

/* LN of every row, or (gathered) of rows idx[i] read in place, as the pooled output's final
 * LN reads the EOS rows: out has n = m / 2 + 1 rows then, idx random with the last row in it. */
static void test_layernorm(pair *p, int32_t m, cs_ln_id which, int gathered) {
    const size_t d = (size_t)p->d;
    int32_t n = m;
    int32_t *idx = gathered ? random_rows(m, &n) : NULL;
    bufpair in = bp_alloc(p, CS_BUF_RESID, (size_t)m, d), out = bp_alloc(p, CS_BUF_ACT, (size_t)n, d);
    float *v = malloc((size_t)m * d * sizeof(float));
    for (int32_t r = 0; r < m; r++) tm_fill(v + r * d, d, 2.0f, tm_uniform(4.0f)); /* row offsets */
    bp_put(p, &in, v);
    bp_poison(p, &out);
    const int layer = p->n_layers - 1;
    CHECK_OK(CPU->layernorm(p->cpu, 0, layer, which, in.c, out.c, n, idx));
    CHECK_OK(GPU->layernorm(p->gpu, 0, layer, which, in.g, out.g, n, idx));
    static const char *names[3] = {"layernorm ln1", "layernorm ln2", "layernorm final"};
    char what[64];
    snprintf(what, sizeof what, "%s%s", names[which], gathered ? " of rows idx" : "");
    bp_compare(p, &out, what, n, TOL_ACT, NULL);
    bp_free(p, &in);
    bp_free(p, &out);
    free(v);
    free(idx);
}

static void test_gemm(pair *p, int32_t m, cs_weight_id w, cs_epilogue epi) {
    const size_t k = width_of(p, w, 0), n = width_of(p, w, 1);
    const int resid = epi == CS_EPI_BIAS_RESID;
    bufpair x = bp_alloc(p, CS_BUF_ACT, (size_t)m, k);
    bufpair out = bp_alloc(p, resid ? CS_BUF_RESID : CS_BUF_ACT, (size_t)m, n);
    float *xv = malloc((size_t)m * k * sizeof(float)), *init = NULL;
    tm_fill(xv, (size_t)m * k, 1.0f, 0.0f);
    bp_put(p, &x, xv);
    if (resid) {
        init = malloc((size_t)m * n * sizeof(float));
        tm_fill(init, (size_t)m * n, 1.0f, 0.0f);
        float *tmp = malloc((size_t)m * n * sizeof(float));
        memcpy(tmp, init, (size_t)m * n * sizeof(float));
        bp_put(p, &out, tmp);
        free(tmp);
    } else {
        bp_poison(p, &out);
    }
    const int layer = w == CS_W_PROJ ? 0 : p->n_layers - 1;
    CHECK_OK(CPU->gemm(p->cpu, 0, layer, w, epi, x.c, out.c, m));
    CHECK_OK(GPU->gemm(p->gpu, 0, layer, w, epi, x.g, out.g, m));
    static const char *wn[5] = {"qkv", "o", "fc1", "fc2", "proj"};
    static const char *en[4] = {"none", "bias", "bias+act", "bias+resid"};
    char what[64];
    snprintf(what, sizeof what, "gemm %s %s", wn[w], en[epi]);
    bp_compare(p, &out, what, m, resid ? TOL_RESID : TOL_ACT, init);
    bp_free(p, &x);
    bp_free(p, &out);
    free(xv);
    free(init);
}

static void test_attention(pair *p, const int32_t *len, int32_t n_seq, int last_only) {
    int32_t m = 0;
    for (int i = 0; i < n_seq; i++) m += len[i];
    const size_t d = (size_t)p->d;
    bufpair qkv = bp_alloc(p, CS_BUF_ACT, (size_t)m, 3 * d);
    bufpair out = bp_alloc(p, CS_BUF_ACT, last_only ? (size_t)n_seq : (size_t)m, d);
    float *v = malloc((size_t)m * 3 * d * sizeof(float));
    tm_fill(v, (size_t)m * 3 * d, 1.0f, 0.0f);
    bp_put(p, &qkv, v);
    bp_poison(p, &out);
    CHECK_OK(CPU->set_seqs(p->cpu, n_seq, len));
    CHECK_OK(GPU->set_seqs(p->gpu, n_seq, len));
    CHECK_OK(CPU->attention(p->cpu, 0, qkv.c, out.c, last_only));
    CHECK_OK(GPU->attention(p->gpu, 0, qkv.g, out.g, last_only));
    char what[64];
    snprintf(what, sizeof what, "attention %s %d seqs", last_only ? "last-only" : "full", n_seq);
    bp_compare(p, &out, what, m, TOL_ACT, NULL);
    bp_free(p, &qkv);
    bp_free(p, &out);
    free(v);
}

static void test_gather(pair *p, int32_t m, cs_buf_kind kind) {
    const size_t d = (size_t)p->d;
    int32_t n;
    int32_t *idx = random_rows(m, &n);
    bufpair src = bp_alloc(p, kind, (size_t)m, d), dst = bp_alloc(p, kind, (size_t)n, d);
    float *v = malloc((size_t)m * d * sizeof(float));
    tm_fill(v, (size_t)m * d, 1.0f, 0.0f);
    bp_put(p, &src, v);
    bp_poison(p, &dst);
    CHECK_OK(CPU->gather_rows(p->cpu, kind, src.c, dst.c, (int32_t)d, idx, n));
    CHECK_OK(GPU->gather_rows(p->gpu, kind, src.g, dst.g, (int32_t)d, idx, n));
    bp_compare(p, &dst, kind == CS_BUF_RESID ? "gather_rows resid" : "gather_rows act", n, 0.0, NULL);
    bp_free(p, &src);
    bp_free(p, &dst);
    free(v);
    free(idx);
}

/* Download as F16 must be the round-to-nearest-even of the F32 download, bit for bit. */
static void test_download_f16(pair *p, int32_t m, cs_buf_kind kind) {
    const size_t n = (size_t)m * p->d;
    bufpair b = bp_alloc(p, kind, (size_t)m, (size_t)p->d);
    float *v = malloc(n * sizeof(float));
    tm_fill(v, n, 3.0f, 0.0f);
    bp_put(p, &b, v);
    uint16_t *h = malloc(n * sizeof(uint16_t));
    float *f = malloc(n * sizeof(float));
    CHECK_OK(GPU->download(p->gpu, kind, b.g, 0, n, f, CLIPSKIP_DTYPE_F32));
    CHECK_OK(GPU->download(p->gpu, kind, b.g, 0, n, h, CLIPSKIP_DTYPE_F16));
    CHECK_OK(GPU->finish(p->gpu));
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) bad += h[i] != cs_f32_to_f16(f[i]);
    printf("  %-5s download F16 (%s)          M=%-6d %zu mismatches\n", bad ? "FAIL" : "ok",
           kind == CS_BUF_RESID ? "resid" : "act", m, bad);
    if (bad) cs_test_failures++;
    free(v);
    free(h);
    free(f);
    bp_free(p, &b);
}

/* One pass of M token rows (n_seq sequences of len[]): every op. */
static void test_pass(pair *p, const int32_t *len, int32_t n_seq) {
    int32_t m = 0;
    for (int i = 0; i < n_seq; i++) m += len[i];
    test_embed(p, m);
    for (int w = 0; w < 3; w++) test_layernorm(p, m, (cs_ln_id)w, 0);
    test_layernorm(p, m, CS_LN_FINAL, 1);
    test_gemm(p, m, CS_W_QKV, CS_EPI_BIAS);
    test_gemm(p, m, CS_W_O, CS_EPI_BIAS_RESID);
    test_gemm(p, m, CS_W_FC1, CS_EPI_BIAS_ACT);
    test_gemm(p, m, CS_W_FC2, CS_EPI_BIAS_RESID);
    if (p->e > 0) test_gemm(p, n_seq, CS_W_PROJ, CS_EPI_NONE);
    test_attention(p, len, n_seq, 0);
    test_attention(p, len, n_seq, 1);
    test_gather(p, m, CS_BUF_RESID);
    test_gather(p, m, CS_BUF_ACT);
}

void test_graphs(pair *p);  /* test_gpu_graph.c */
void test_graph_eviction(pair *p);
void test_errors(pair *p);

static void run_family(const char *name, const tm_shape *s, clipskip_dtype cdt, int big) {
    clipskip_model *model = tm_make(s);
    clipskip_encoder_params ep = clipskip_encoder_default_params();
    ep.compute_dtype = cdt;
    ep.max_batch = 513; /* the largest pass below: both backends may size scratch by it */
    pair p = {NULL, NULL, cdt, model, s->d, s->heads, s->f, s->proj_dim, s->vocab, s->n_layers, name};
    printf("%s %s (D=%d, heads=%d, F=%d)\n", name, cs_dtype_name(cdt), s->d, s->heads, s->f);
    CHECK_OK(CPU->init(model, &ep, &p.cpu));
    CHECK_OK(GPU->init(model, &ep, &p.gpu));
    if (!p.cpu || !p.gpu) {
        fprintf(stderr, "%s: init failed: %s\n", name, clipskip_last_error());
        exit(1);
    }
    const int32_t one[1] = {1}, l77[1] = {77}, l78[2] = {77, 1}, l154[2] = {77, 77};
    const int32_t ragged[5] = {5, 77, 13, 40, 1};
    test_pass(&p, one, 1);
    test_pass(&p, l77, 1);
    test_pass(&p, l78, 2);
    test_pass(&p, l154, 2);
    test_pass(&p, ragged, 5);
    if (big) { /* 13 prompts: the 64x64 GEMM tile; 513 prompts: the 128x128 tile */
        int32_t *l = malloc(513 * sizeof(int32_t));
        for (int i = 0; i < 513; i++) l[i] = 77;
        test_pass(&p, l, 13);
        if (big > 1) test_pass(&p, l, 513);
        free(l);
        test_download_f16(&p, 154, CS_BUF_RESID);
        test_download_f16(&p, 154, CS_BUF_ACT);
        test_graphs(&p);
        test_graph_eviction(&p);
        test_errors(&p);
    }
    GPU->free(p.gpu);
    CPU->free(p.cpu);
    tm_free(model);
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0); /* lines reach check.sh's log even if it times out */
    if (!cs_cuda_available()) {
        printf("SKIPPED: no usable CUDA device\n");
        return 77;
    }
    tm_seed();
    if (TM_EMU) { /* the emulator: two widths with head width 64, one with the CUDA-core
                   * attention; 13 prompts reach the 64x64 tile on its 8 SMs */
        const tm_shape a = {2, 128, 2, 512, 2000, 256, CLIPSKIP_ACT_QUICK_GELU, CLIPSKIP_DTYPE_F16, 1};
        const tm_shape b = {2, 192, 3, 256, 2000, 0, CLIPSKIP_ACT_GELU, CLIPSKIP_DTYPE_F16, 0};
        const tm_shape c = {2, 96, 3, 384, 2000, 32, CLIPSKIP_ACT_GELU, CLIPSKIP_DTYPE_F16, 0};
        tm_shape a_bf = a;
        a_bf.dtype = CLIPSKIP_DTYPE_BF16;
        run_family("emu-128", &a, CLIPSKIP_DTYPE_F16, 1);
        run_family("emu-192", &b, CLIPSKIP_DTYPE_F16, 0);
        run_family("emu-96-dh32", &c, CLIPSKIP_DTYPE_F16, 0);
        run_family("emu-128", &a_bf, CLIPSKIP_DTYPE_BF16, 1);
        TEST_DONE("test_gpu_ops (emulated device, small shapes)");
    }
    const tm_shape clip_l = {2, 768, 12, 3072, 2000, 768, CLIPSKIP_ACT_QUICK_GELU, CLIPSKIP_DTYPE_F16, 1};
    const tm_shape h = {2, 1024, 16, 4096, 2000, 1024, CLIPSKIP_ACT_GELU, CLIPSKIP_DTYPE_F16, 0};
    const tm_shape bigg = {2, 1280, 20, 5120, 2000, 1280, CLIPSKIP_ACT_GELU, CLIPSKIP_DTYPE_F16, 0};
    run_family("clip-l", &clip_l, CLIPSKIP_DTYPE_F16, 2);
    run_family("openclip-h", &h, CLIPSKIP_DTYPE_F16, 0);
    run_family("openclip-bigg", &bigg, CLIPSKIP_DTYPE_F16, 1);
    tm_shape clip_l_bf = clip_l, bigg_bf = bigg;
    clip_l_bf.dtype = bigg_bf.dtype = CLIPSKIP_DTYPE_BF16;
    run_family("clip-l", &clip_l_bf, CLIPSKIP_DTYPE_BF16, 1);
    run_family("openclip-bigg", &bigg_bf, CLIPSKIP_DTYPE_BF16, 0);
    TEST_DONE("test_gpu_ops");
}
