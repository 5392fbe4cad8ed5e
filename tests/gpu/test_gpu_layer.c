/* The fused layer kernel (kernels/layer.cu, cs_k_layer) against the seven separate kernels per
 * layer the encoder otherwise launches (LN1, QKV, attention, O + residual, LN2, FC1 + act,
 * FC2 + residual) on the same random weights and residual: bitwise equal outputs (h, and each
 * scratch buffer, poisoned with NaN before each fused launch), at 1 and several packed
 * sequences, one layer and runs of several, with and without a fixed split of K (chunks on
 * separate blocks or in registers), F16 and BF16. Launched twice in a row: the barrier's and
 * the row blocks' counters carry over (graph replays), so the second launch must give the
 * same bits again and leave them consistent.
 * Exit 77 (SKIPPED) when no CUDA device is usable. */
#include "gpu_test_model.h"
#include "kernels.h"
#include "test_util.h"

#include <cuda_runtime_api.h>
#include <stdarg.h>
#include <string.h>

#include "cu_check.h"
#include "dev_buf.h"

/* A FAIL line (and a failure) unless ok. */
static int expect(int ok, const char *fmt, ...) {
    if (ok) return 1;
    va_list ap;
    va_start(ap, fmt);
    printf("  FAIL  ");
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
    cs_test_failures++;
    return 0;
}

typedef struct {
    int32_t d, heads, f, n_seq;
    const int32_t *lens;
} layer_shape;

/* n random values near N(mean, sd), rounded to dt, uploaded as dt */
static void *rand_dev(size_t n, float sd, float mean, clipskip_dtype dt) {
    float *v = malloc(n * sizeof(float));
    tm_fill(v, n, sd, mean);
    void *d = dev_put(v, n, dt);
    free(v);
    return d;
}

static void *zeros_dev(size_t bytes) {
    void *d = NULL;
    CU(cudaMalloc(&d, bytes));
    CU(cudaMemset(d, 0, bytes));
    return d;
}

/* One GEMM of the separate path: out (m rows) = epi(x W^T + b). */
static void sep_gemm(const cs_k_layer_args *a, const void *x, const void *w, const float *b, void *out, int32_t m,
                     int32_t n, int32_t k, cs_k_epilogue epi, int n_sm) {
    const cs_k_gemm_args g = {.x = x, .w = w, .bias = b, .out = out, .m = m, .n = n, .k = k, .dtype = a->dtype,
                              .epi = epi, .act = a->act, .k_chunk = a->k_chunk, .split_ws = a->split_ws,
                              .split_sem = a->split_sem};
    CU(cs_k_gemm(&g, n_sm, -1, 0));
}

/* The separate kernels per layer, as host/encoder.c issues them through the backend: layer_full,
 * and with last_only layer_last_only for the last layer (its rows into h_pool).
 * w: host copy of the layers' device pointers. */
static void run_separate(const cs_k_layer_args *a, const cs_k_layer_weights *w, int n_sm) {
    const int32_t d = a->d;
    for (int l = 0; l < a->n_layers; l++, w++) {
        const int last = a->last_only && l == a->n_layers - 1;
        const int32_t m = last ? a->n_pool : a->m;
        float *h = last ? a->h_pool : a->h;
        CU(cs_k_layernorm(a->a, a->dtype, a->h, NULL, w->ln1_g, w->ln1_b, a->m, d, a->eps, 0));
        sep_gemm(a, a->a, w->w_qkv, w->b_qkv, a->qkv, a->m, 3 * d, d, CS_K_EPI_BIAS, n_sm);
        CU(cs_k_attention(a->att, a->qkv, a->offsets, a->n_seq, a->n_heads, d, a->scale, last, a->dtype, 0));
        if (last) CU(cs_k_gather_rows(h, a->h, (size_t)d * sizeof(float), a->pool_rows, m, 0));
        sep_gemm(a, a->att, w->w_o, w->b_o, h, m, d, d, CS_K_EPI_BIAS_RESID, n_sm);
        CU(cs_k_layernorm(a->a, a->dtype, h, NULL, w->ln2_g, w->ln2_b, m, d, a->eps, 0));
        sep_gemm(a, a->a, w->w_fc1, w->b_fc1, a->mlp, m, a->f, d, CS_K_EPI_BIAS_ACT, n_sm);
        sep_gemm(a, a->mlp, w->w_fc2, w->b_fc2, h, m, d, a->f, CS_K_EPI_BIAS_RESID, n_sm);
    }
}

/* Random weights of one layer (device pointers). */
static cs_k_layer_weights rand_layer(const layer_shape *s, clipskip_dtype dt) {
    const float ws = 1.0f / sqrtf((float)s->d), wf = 1.0f / sqrtf((float)s->f);
    const clipskip_dtype f32 = CLIPSKIP_DTYPE_F32;
    return (cs_k_layer_weights){
        rand_dev(s->d, 0.1f, 1.0f, f32), rand_dev(s->d, 0.1f, 0.0f, f32), rand_dev(s->d, 0.1f, 1.0f, f32),
        rand_dev(s->d, 0.1f, 0.0f, f32), rand_dev((size_t)3 * s->d * s->d, ws, 0.0f, dt),
        rand_dev((size_t)s->d * s->d, ws, 0.0f, dt), rand_dev((size_t)s->f * s->d, ws, 0.0f, dt),
        rand_dev((size_t)s->d * s->f, wf, 0.0f, dt), rand_dev((size_t)3 * s->d, 0.1f, 0.0f, f32),
        rand_dev(s->d, 0.1f, 0.0f, f32), rand_dev(s->f, 0.1f, 0.0f, f32), rand_dev(s->d, 0.1f, 0.0f, f32)};
}

static void free_layer(const cs_k_layer_weights *w) {
    const void *p[] = {w->ln1_g, w->ln1_b, w->ln2_g, w->ln2_b, w->w_qkv, w->w_o, w->w_fc1, w->w_fc2,
                       w->b_qkv, w->b_o, w->b_fc1, w->b_fc2};
    for (int i = 0; i < 12; i++) CU(cudaFree((void *)p[i]));
}

#define N_OUT 6 /* compared outputs: h, ln out, qkv, attention, mlp, h_pool */

/* host copies of the first bytes[i] bytes of each output */
static void take(const cs_k_layer_args *a, char *out[N_OUT], const size_t bytes[N_OUT]) {
    const void *src[N_OUT] = {a->h, a->a, a->qkv, a->att, a->mlp, a->h_pool};
    for (int i = 0; i < N_OUT; i++) {
        out[i] = malloc(bytes[i] + 1);
        if (bytes[i]) CU(cudaMemcpy(out[i], src[i], bytes[i], cudaMemcpyDeviceToHost));
    }
}

static size_t differ(const char *x, const char *y, size_t bytes) {
    size_t n = 0;
    for (size_t i = 0; i < bytes; i++) n += x[i] != y[i];
    return n;
}

typedef struct {
    int n_layers;
    int32_t k_chunk;
    int across;    /* with k_chunk: the chunks on separate blocks (a workspace), else in registers */
    int blocks;    /* the cooperative grid */
    int last_only; /* the last layer pooled-only */
    int per_sm;    /* the build the grid was set up for (cs_k_layer_setup): 1, 2 or 3 */
    int flow;      /* flow mode: per-row counters instead of grid barriers inside the layers */
} layer_opts;

/* Stamps in the trace of a launch of n_layers over blocks (kernels.h: cs_k_layer_args.trace). */
static size_t trace_len(int n_layers, int blocks) { return (size_t)(5 * n_layers + 3) * blocks * 2; }

/* Device buffers of one case, zeroed; the caller fills h0 and frees them with case_free. */
static void case_alloc(cs_k_layer_args *a, const layer_shape *s, const layer_opts *o, const int32_t *off,
                       int32_t m) {
    const size_t es = cs_dtype_size(a->dtype);
    int32_t *d_off = zeros_dev((size_t)(s->n_seq + 1) * sizeof(int32_t));
    CU(cudaMemcpy(d_off, off, (size_t)(s->n_seq + 1) * sizeof(int32_t), cudaMemcpyHostToDevice));
    a->offsets = d_off;
    a->h = zeros_dev((size_t)m * s->d * 4);
    a->a = zeros_dev((size_t)m * s->d * es);
    a->qkv = zeros_dev((size_t)m * 3 * s->d * es);
    a->att = zeros_dev((size_t)m * s->d * es);
    a->mlp = zeros_dev((size_t)m * s->f * es);
    if (o->k_chunk && o->across) {
        a->split_ws_floats = (size_t)16 * m * s->f;
        a->split_sems = 4096;
        a->split_ws = zeros_dev(a->split_ws_floats * 4);
        a->split_sem = zeros_dev(a->split_sems * 4);
    }
    /* the barrier's counter starts with its top bit set: only the low 31 bits must be 0 */
    static const unsigned bar0 = 0x80000000u;
    a->bar = zeros_dev(sizeof(unsigned));
    CU(cudaMemcpy(a->bar, &bar0, sizeof bar0, cudaMemcpyHostToDevice));
    a->row_sem = zeros_dev(2 * CS_K_LAYER_ROW_SEMS(m) * sizeof(unsigned));
    a->flow_sem = o->flow ? zeros_dev(CS_K_LAYER_FLOW_SEMS(m, s->n_seq) * sizeof(unsigned)) : NULL;
    /* the %globaltimer trace (bench_kernels reads it), one row of guard after it */
    const size_t tr = trace_len(a->n_layers, o->blocks);
    a->trace = zeros_dev((tr + 2 * (size_t)o->blocks) * sizeof(unsigned long long));
    CU(cudaMemset(a->trace + tr, 0x5a, 2 * (size_t)o->blocks * sizeof(unsigned long long)));
    if (o->last_only) {
        int32_t eos[64];
        for (int i = 0; i < s->n_seq; i++) eos[i] = off[i + 1] - 1;
        int32_t *d_eos = zeros_dev((size_t)s->n_seq * sizeof(int32_t));
        CU(cudaMemcpy(d_eos, eos, (size_t)s->n_seq * sizeof(int32_t), cudaMemcpyHostToDevice));
        a->pool_rows = d_eos;
        a->n_pool = s->n_seq;
        a->h_pool = zeros_dev((size_t)s->n_seq * s->d * 4);
    }
}

static void case_free(cs_k_layer_args *a) {
    void *ptrs[] = {(void *)a->offsets, a->h, a->a, a->qkv, a->att, a->mlp, a->split_ws, a->split_sem, a->bar,
                    a->row_sem, a->flow_sem, (void *)a->pool_rows, a->h_pool, (void *)a->layers, a->trace};
    for (size_t i = 0; i < sizeof ptrs / sizeof ptrs[0]; i++)
        if (ptrs[i]) CU(cudaFree(ptrs[i]));
}

/* The barrier's and the row blocks' counters after two launches: consistent, or a FAIL line. */
static void check_counters(const cs_k_layer_args *a, const char *what) {
    /* 5 barriers per layer a launch, each adding 2^31: back where it started (0x80000000) */
    unsigned bar;
    CU(cudaMemcpy(&bar, a->bar, sizeof bar, cudaMemcpyDeviceToHost));
    expect(bar == 0x80000000u, "%s: barrier counter %#x after two launches (want 0x80000000)", what, bar);
    const size_t ns = 2 * CS_K_LAYER_ROW_SEMS(a->m); /* O's, then FC2's */
    unsigned *rs = malloc(ns * sizeof(unsigned));
    CU(cudaMemcpy(rs, a->row_sem, ns * sizeof(unsigned), cudaMemcpyDeviceToHost));
    size_t left = 0;
    for (size_t i = 0; i < ns; i++) left += rs[i] != 0;
    expect(left == 0, "%s: %zu row-block counters not back at 0", what, left);
    free(rs);
}

/* The trace's last row after a launch: each block's waits counted (with barriers, exactly the
 * 5 per layer every block passes); the guard row after it untouched. */
static void check_trace(const cs_k_layer_args *a, const layer_opts *o, const char *what) {
    const size_t n = trace_len(a->n_layers, o->blocks), rows = 5 * (size_t)a->n_layers + 2;
    const size_t all = n + 2 * (size_t)o->blocks;
    unsigned long long *tr = malloc(all * sizeof *tr);
    CU(cudaMemcpy(tr, a->trace, all * sizeof *tr, cudaMemcpyDeviceToHost));
    size_t bad = 0, guard = 0;
    const unsigned long long want = 5ull * (unsigned)a->n_layers;
    for (int b = 0; b < o->blocks; b++) {
        const unsigned long long waits = tr[(rows * o->blocks + b) * 2 + 1];
        bad += o->flow ? waits < 1 : waits != want;
    }
    unsigned long long g;
    memset(&g, 0x5a, sizeof g);
    for (size_t i = n; i < all; i++) guard += tr[i] != g;
    expect(bad == 0 && guard == 0, "%s: trace: %zu blocks with a wrong wait count (want %s%llu), %zu guard "
           "words overwritten", what, bad, o->flow ? ">= " : "", o->flow ? 1ull : want, guard);
    free(tr);
}

static void layer_case(const layer_shape *s, clipskip_dtype dt, layer_opts o, int n_sm) {
    int32_t m = 0, off[65] = {0};
    for (int i = 0; i < s->n_seq; i++) off[i + 1] = m += s->lens[i];
    const size_t es = cs_dtype_size(dt);
    cs_k_layer_args a = {.dtype = dt, .act = CLIPSKIP_ACT_QUICK_GELU, .m = m, .d = s->d, .n_heads = s->heads,
                         .f = s->f, .n_seq = s->n_seq, .scale = 0.125f, .eps = 1e-5f, .n_layers = o.n_layers,
                         .last_only = o.last_only, .k_chunk = o.k_chunk, .per_sm = o.per_sm, .flow = o.flow,
                         .prefetch = o.n_layers > 1 ? 2 : 1};
    case_alloc(&a, s, &o, off, m);
    float *h0 = rand_dev((size_t)m * s->d, 1.0f, 0.0f, CLIPSKIP_DTYPE_F32);
    cs_k_layer_weights w[4];
    for (int l = 0; l < o.n_layers; l++) w[l] = rand_layer(s, dt);
    cs_k_layer_weights *d_w = zeros_dev(sizeof w);
    CU(cudaMemcpy(d_w, w, sizeof w, cudaMemcpyHostToDevice));
    a.layers = d_w;
    /* a pooled-only last layer writes only its n_pool rows of attention and mlp */
    const int32_t rows = o.last_only ? a.n_pool : m;
    const size_t full[N_OUT] = {(size_t)m * s->d * 4, (size_t)m * s->d * es, (size_t)m * 3 * s->d * es,
                                (size_t)m * s->d * es, (size_t)m * s->f * es, (size_t)a.n_pool * s->d * 4};
    const size_t bytes[N_OUT] = {full[0], full[1], full[2], (size_t)rows * s->d * es, (size_t)rows * s->f * es,
                                 full[5]};
    char *ref[N_OUT], *got[N_OUT], *again[N_OUT];
    CU(cudaMemcpy(a.h, h0, full[0], cudaMemcpyDeviceToDevice));
    run_separate(&a, w, n_sm);
    CU(cudaDeviceSynchronize());
    take(&a, ref, bytes);
    cudaError_t e = cudaSuccess;
    for (int round = 0; round < 2 && e == cudaSuccess; round++) {
        CU(cudaMemcpy(a.h, h0, full[0], cudaMemcpyDeviceToDevice));
        /* outputs poisoned (all-ones: NaN), so an element the fused kernel never writes shows */
        void *outs[N_OUT - 1] = {a.a, a.qkv, a.att, a.mlp, a.h_pool};
        for (int i = 0; i < N_OUT - 1; i++)
            if (outs[i]) CU(cudaMemset(outs[i], 0xff, full[i + 1]));
        /* flow mode's counters hold anything before a launch: the kernel zeroes them */
        if (a.flow_sem) CU(cudaMemset(a.flow_sem, 0x5a, CS_K_LAYER_FLOW_SEMS(m, s->n_seq) * sizeof(unsigned)));
        e = cs_k_layer(&a, o.blocks, 0);
        if (e == cudaSuccess) e = cudaDeviceSynchronize();
        if (e == cudaSuccess) take(&a, round ? again : got, bytes);
    }
    char what[200];
    snprintf(what, sizeof what, "%s d=%d heads=%d f=%d seqs=%d rows=%d layers=%d%s k_chunk=%d%s, %d blocks",
             dt == CLIPSKIP_DTYPE_F16 ? "f16" : "bf16", s->d, s->heads, s->f, s->n_seq, m, o.n_layers,
             o.last_only ? " (last pooled-only)" : "", o.k_chunk,
             o.k_chunk ? (o.across ? " across blocks" : " in registers") : "", o.blocks);
    if (o.per_sm == 3) snprintf(what + strlen(what), sizeof what - strlen(what), " (3-per-SM build)");
    if (o.flow) snprintf(what + strlen(what), sizeof what - strlen(what), ", flow");
    expect(e == cudaSuccess, "%s: launch: %s", what, cudaGetErrorString(e));
    if (e == cudaSuccess) {
        static const char *names[N_OUT] = {"h", "ln out", "qkv", "attention", "mlp", "pooled rows"};
        size_t total = 0;
        for (int i = 0; i < N_OUT; i++) {
            const size_t n1 = differ(ref[i], got[i], bytes[i]), n2 = differ(got[i], again[i], bytes[i]);
            expect(n1 == 0 && n2 == 0, "%s: %s: %zu bytes differ from the separate kernels, %zu between two launches",
                   what, names[i], n1, n2);
            total += n1 + n2;
            free(got[i]);
            free(again[i]);
        }
        check_counters(&a, what);
        check_trace(&a, &o, what);
        if (total == 0) printf("  ok    fused layer == separate kernels, bitwise, twice: %s\n", what);
    }
    for (int i = 0; i < N_OUT; i++) free(ref[i]);
    for (int l = 0; l < o.n_layers; l++) free_layer(&w[l]);
    CU(cudaFree(h0));
    case_free(&a);
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    struct cudaDeviceProp prop;
    const int skip = cu_test_device(&prop);
    if (skip) return skip;
    tm_seed();
    CU(cs_k_gemm_setup());
    int blocks = 0;
    CU(cs_k_layer_setup(2, &blocks));
    static const int32_t one[1] = {77}, three[3] = {77, 20, 5}, eight[8] = {77, 77, 3, 77, 40, 77, 77, 1};
    const layer_shape shapes[] = {
        {TM_EMU ? 128 : 768, TM_EMU ? 2 : 12, TM_EMU ? 512 : 3072, 1, one},
        {TM_EMU ? 128 : 768, TM_EMU ? 2 : 12, TM_EMU ? 512 : 3072, 3, three},
        {TM_EMU ? 64 : 1024, TM_EMU ? 1 : 16, TM_EMU ? 256 : 4096, 8, eight},
    };
    const int32_t kc = TM_EMU ? 128 : 384;
    const clipskip_dtype dts[2] = {CLIPSKIP_DTYPE_F16, CLIPSKIP_DTYPE_BF16};
    const int n_sm = prop.multiProcessorCount;
    for (int i = 0; i < 2; i++)
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
            layer_case(&shapes[s], dts[i], (layer_opts){1, 0, 0, blocks, 0, 2, 0}, n_sm);
            layer_case(&shapes[s], dts[i], (layer_opts){1, kc, 1, blocks, 0, 2, 0}, n_sm);
            if (s == 0) layer_case(&shapes[s], dts[i], (layer_opts){1, kc, 0, blocks, 0, 2, 0}, n_sm);
        }
    /* a run of layers in one launch, with and without a split of K */
    layer_case(&shapes[1], CLIPSKIP_DTYPE_F16, (layer_opts){3, 0, 0, blocks, 0, 2, 0}, n_sm);
    layer_case(&shapes[0], CLIPSKIP_DTYPE_BF16, (layer_opts){4, kc, 1, blocks, 0, 2, 0}, n_sm);
    /* a pooled-only last layer: alone, and ending a run */
    layer_case(&shapes[1], CLIPSKIP_DTYPE_F16, (layer_opts){1, 0, 0, blocks, 1, 2, 0}, n_sm);
    layer_case(&shapes[2], CLIPSKIP_DTYPE_BF16, (layer_opts){3, kc, 1, blocks, 1, 2, 0}, n_sm);
    layer_case(&shapes[0], CLIPSKIP_DTYPE_F16, (layer_opts){2, kc, 0, blocks, 1, 2, 0}, n_sm);
    /* one block per multiprocessor (CLIPSKIP_CUDA_FUSED_BLOCKS=1) */
    int one_per_sm = 0;
    CU(cs_k_layer_setup(1, &one_per_sm));
    layer_case(&shapes[0], CLIPSKIP_DTYPE_F16, (layer_opts){2, kc, 1, one_per_sm, 0, 1, 0}, n_sm);
    /* three blocks per multiprocessor: the 168-register build (CLIPSKIP_CUDA_FUSED_BLOCKS=3) */
    int three_per_sm = 0;
    CU(cs_k_layer_setup(3, &three_per_sm));
    layer_case(&shapes[1], CLIPSKIP_DTYPE_F16, (layer_opts){2, kc, 1, three_per_sm, 1, 3, 0}, n_sm);
    layer_case(&shapes[2], CLIPSKIP_DTYPE_BF16, (layer_opts){1, 0, 0, three_per_sm, 0, 3, 0}, n_sm);
    /* fewer blocks than the device holds: items wrap around the grid */
    layer_case(&shapes[1], CLIPSKIP_DTYPE_F16, (layer_opts){2, kc, 1, 3, 1, 2, 0}, n_sm);
    /* flow mode: per-row counters instead of grid barriers inside the layers, over runs of
     * layers (where phases of different rows and layers overlap), 1, 3 and 8 sequences, K split
     * across blocks (each GEMM kind its own workspace region) and in registers, a pooled-only
     * last layer (it runs with barriers), each grid size */
    layer_case(&shapes[1], CLIPSKIP_DTYPE_F16, (layer_opts){3, 0, 0, blocks, 0, 2, 1}, n_sm);
    layer_case(&shapes[2], CLIPSKIP_DTYPE_BF16, (layer_opts){3, kc, 1, blocks, 0, 2, 1}, n_sm);
    layer_case(&shapes[0], CLIPSKIP_DTYPE_F16, (layer_opts){4, kc, 1, blocks, 0, 2, 1}, n_sm);
    layer_case(&shapes[0], CLIPSKIP_DTYPE_F16, (layer_opts){2, kc, 0, blocks, 0, 2, 1}, n_sm);
    layer_case(&shapes[2], CLIPSKIP_DTYPE_F16, (layer_opts){3, kc, 1, blocks, 1, 2, 1}, n_sm);
    layer_case(&shapes[1], CLIPSKIP_DTYPE_F16, (layer_opts){1, kc, 1, blocks, 1, 2, 1}, n_sm);
    layer_case(&shapes[2], CLIPSKIP_DTYPE_F16, (layer_opts){2, 0, 0, one_per_sm, 0, 1, 1}, n_sm);
    layer_case(&shapes[1], CLIPSKIP_DTYPE_BF16, (layer_opts){2, kc, 1, three_per_sm, 0, 3, 1}, n_sm);
    layer_case(&shapes[1], CLIPSKIP_DTYPE_F16, (layer_opts){3, kc, 1, 3, 0, 2, 1}, n_sm);
    /* O on 32-row tiles and FC2 on 64-row ones (their LN hand-off counters must not be shared),
     * and a width whose every GEMM splits K (their split-K regions must not be shared) */
    layer_case(&shapes[2], CLIPSKIP_DTYPE_F16, (layer_opts){3, kc, 1, one_per_sm, 0, 1, 1}, n_sm);
    const layer_shape wide = {TM_EMU ? 256 : 1280, TM_EMU ? 4 : 20, TM_EMU ? 512 : 5120, 8, eight};
    layer_case(&wide, CLIPSKIP_DTYPE_F16, (layer_opts){2, kc, 1, blocks, 0, 2, 1}, n_sm);
    /* more blocks than can be resident: refused, never a hang */
    cs_k_layer_args big = {.dtype = CLIPSKIP_DTYPE_F16, .m = 1, .d = 64, .n_heads = 1, .f = 64,
                           .n_seq = 1, .offsets = (const int32_t *)1, .bar = (unsigned *)1,
                           .layers = (const cs_k_layer_weights *)16, .n_layers = 1,
                           .row_sem = (unsigned *)16,
                           .h = (float *)16, .a = (void *)16, .qkv = (void *)16, .att = (void *)16,
                           .mlp = (void *)16};
    const cudaError_t e = cs_k_layer(&big, blocks * 64, 0);
    expect(e == cudaErrorCooperativeLaunchTooLarge, "a grid of %d blocks (%d resident): %s", blocks * 64, blocks,
          cudaGetErrorName(e));
    (void)cudaGetLastError();
    TEST_DONE("test_gpu_layer");
}
