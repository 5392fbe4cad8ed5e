/* Kernel-level checks that need only the kernels (kernels/kernels.h), no CPU backend:
 *  - GEMM: each tile configuration against a float64 reference (rel err <= 2e-3 for F16/BF16),
 *    the three configurations bitwise equal to each other, and a row computed alone (M = 1) or
 *    inside a batch of 77 bitwise equal to the same row inside M = 1001 (batch invariance);
 *    every epilogue, both dtypes; the output poisoned with NaN first, guard rows kept NaN.
 *  - GEMM with a fixed split of K (k_chunk): every tile, chunks added in registers or across
 *    blocks, bitwise equal; against float64; rows alone == rows in a batch; counters reset.
 *  - Attention (tensor-core head width 64 and the CUDA-core fallback): against float64; row i of a 77-token sequence bitwise equal to the
 *    last-only result of its prefix of i+1 tokens packed behind another sequence (causality and
 *    length invariance, which pooled-only passes rely on).
 * Exit 77 (SKIPPED) when no CUDA device is usable. */
#include "gpu_test_model.h"
#include "kernels.h"
#include "test_util.h"

#include <cuda_runtime_api.h>

#include "cu_check.h"
#include "dev_buf.h"

static int g_n_sm;

static void dev_poison(void *d, size_t bytes) { CU(cudaMemset(d, 0xff, bytes)); } /* all-ones: NaN */

static double act_ref(double x, clipskip_act act) {
    return act == CLIPSKIP_ACT_GELU ? 0.5 * x * (1.0 + erf(x / sqrt(2.0))) : x / (1.0 + exp(-1.702 * x));
}

static void report(const char *what, int ok, const char *fmt, double v) {
    printf("  %-5s %-44s ", ok ? "ok" : "FAIL", what);
    printf(fmt, v);
    printf("\n");
    if (!ok) cs_test_failures++;
}

/* Relative Frobenius error of got (m, n) against the float64 x w^T (+ b, then the activation)
 * on every step-th row; got minus r0 when r0 is given (the residual epilogue's input). A
 * non-finite output makes it infinite. */
static double gemm_rel_err(const float *x, const float *w, const float *b, int32_t m, int32_t n,
                           int32_t k, cs_k_epilogue epi, clipskip_act act, const float *got,
                           const float *r0, int32_t step) {
    double num = 0, den = 0;
    for (int32_t i = 0; i < m; i += step)
        for (int32_t j = 0; j < n; j++) {
            double s = 0;
            for (int32_t q = 0; q < k; q++) s += (double)x[(size_t)i * k + q] * w[(size_t)j * k + q];
            if (epi != CS_K_EPI_NONE) s += b[j];
            if (epi == CS_K_EPI_BIAS_ACT) s = act_ref(s, act);
            const double g = got[(size_t)i * n + j] - (r0 ? r0[(size_t)i * n + j] : 0);
            num += isfinite(g) ? (g - s) * (g - s) : INFINITY;
            den += s * s;
        }
    return sqrt(num / den);
}

/* Rows start .. start + rows - 1 computed alone (a call of M = rows through a, the tile picked)
 * against the same rows of full, the host copy of the whole batch's output (es bytes per
 * element): the number of (start, rows) slices that differ bitwise. a->x is the whole batch's
 * input, a->out a device buffer for the slice; r0 (the residual input, or NULL) is put there
 * before each call. rows ascending (the last sizes the host buffer). */
static size_t slices_differ(const cs_k_gemm_args *a, const char *full, size_t es, const float *r0,
                            const int32_t *starts, int n_starts, const int32_t *rows, int n_rows) {
    size_t bad = 0;
    char *sub = malloc((size_t)rows[n_rows - 1] * a->n * es);
    for (int si = 0; si < n_starts; si++)
        for (int ri = 0; ri < n_rows; ri++) {
            cs_k_gemm_args o = *a;
            o.x = (const char *)a->x + (size_t)starts[si] * a->k * cs_dtype_size(a->dtype);
            o.m = rows[ri];
            if (r0) CU(cudaMemcpy(o.out, r0, (size_t)rows[ri] * a->n * sizeof(float), cudaMemcpyHostToDevice));
            CU(cs_k_gemm(&o, g_n_sm, -1, 0));
            CU(cudaMemcpy(sub, o.out, (size_t)rows[ri] * a->n * es, cudaMemcpyDeviceToHost));
            bad += memcmp(sub, full + (size_t)starts[si] * a->n * es, (size_t)rows[ri] * a->n * es) != 0;
        }
    free(sub);
    return bad;
}

/* One GEMM shape and epilogue through every tile; returns nothing, counts failures. */
static void gemm_case(clipskip_dtype dt, int32_t m, int32_t n, int32_t k, cs_k_epilogue epi,
                      clipskip_act act) {
    const int resid = epi == CS_K_EPI_BIAS_RESID;
    const clipskip_dtype odt = resid ? CLIPSKIP_DTYPE_F32 : dt;
    float *x = malloc((size_t)m * k * sizeof(float)), *w = malloc((size_t)n * k * sizeof(float));
    float *b = malloc((size_t)n * sizeof(float)), *r0 = malloc((size_t)m * n * sizeof(float));
    tm_fill(x, (size_t)m * k, 1.0f, 0.0f);
    tm_fill(w, (size_t)n * k, 1.0f / sqrtf((float)k), 0.0f);
    tm_fill(b, (size_t)n, 0.5f, 0.0f);
    tm_fill(r0, (size_t)m * n, 1.0f, 0.0f);
    tm_round(x, (size_t)m * k, dt);
    tm_round(w, (size_t)n * k, dt);
    void *dx = dev_put(x, (size_t)m * k, dt), *dw = dev_put(w, (size_t)n * k, dt);
    float *db = dev_put(b, (size_t)n, CLIPSKIP_DTYPE_F32);
    const size_t out_n = (size_t)(m + 2) * n, ob = out_n * cs_dtype_size(odt);
    void *dout = NULL;
    CU(cudaMalloc(&dout, ob));
    float *res[CS_K_GEMM_N_TILES] = {0};
    char what[96];
    for (int t = 0; t < CS_K_GEMM_N_TILES; t++) {
        if (!cs_k_gemm_tile_usable(t)) continue; /* e.g. wgmma off sm_90a */
        dev_poison(dout, ob);
        if (resid) CU(cudaMemcpy(dout, r0, (size_t)m * n * sizeof(float), cudaMemcpyHostToDevice));
        cs_k_gemm_args a = {.x = dx, .w = dw, .bias = epi == CS_K_EPI_NONE ? NULL : db, .out = dout,
                             .m = m, .n = n, .k = k, .dtype = dt, .epi = epi, .act = act};
        CU(cs_k_gemm(&a, g_n_sm, t, 0));
        CU(cudaDeviceSynchronize());
        res[t] = dev_get(dout, out_n, odt);
    }
    /* float64 reference on a sample of rows (all rows for small M): the default configuration,
     * and the wgmma path when this device runs it */
    const int32_t step = m > 256 ? 97 : 1;
    for (int t = 0; t < CS_K_GEMM_N_TILES; t = t ? t + 1 : CS_K_GEMM_N_MMA_TILES) {
        if (!res[t]) continue;
        const double err = gemm_rel_err(x, w, b, m, n, k, epi, act, res[t], resid ? r0 : NULL, step);
        size_t guard = 0;
        for (size_t i = (size_t)m * n; i < out_n; i++) guard += !isnan(res[t][i]);
        snprintf(what, sizeof what, "gemm %s %dx%dx%d epi %d %s vs fp64", cs_dtype_name(dt), m, n, k,
                 (int)epi, t ? cs_k_gemm_tile_name(t) : "");
        report(what, err <= 2e-3 && guard == 0, "rel err %.3e", err);
    }
    size_t diff = 0;
    for (int t = 1; t < CS_K_GEMM_N_MMA_TILES; t++)
        diff += res[t] && memcmp(res[0], res[t], (size_t)m * n * sizeof(float)) != 0;
    snprintf(what, sizeof what, "gemm %s %dx%dx%d epi %d tiles equal", cs_dtype_name(dt), m, n, k, (int)epi);
    report(what, diff == 0, "%g tile(s) differ", (double)diff);
    for (int t = CS_K_GEMM_N_MMA_TILES; t < CS_K_GEMM_N_TILES; t++) {
        if (!res[t]) continue; /* a finding, not a failure: decides how wgmma may be used */
        size_t nd = 0;
        for (size_t i = 0; i < (size_t)m * n; i++) nd += memcmp(&res[0][i], &res[t][i], sizeof(float)) != 0;
        printf("  info  gemm %s %dx%dx%d epi %d: %s vs mma.sync: %zu of %zu outputs differ bitwise\n",
               cs_dtype_name(dt), m, n, k, (int)epi, cs_k_gemm_tile_name(t), nd, (size_t)m * n);
    }
    for (int t = 0; t < CS_K_GEMM_N_TILES; t++) free(res[t]);
    CU(cudaFree(dx));
    CU(cudaFree(dw));
    CU(cudaFree(db));
    CU(cudaFree(dout));
    free(x);
    free(w);
    free(b);
    free(r0);
}

/* Row r computed in a batch of 1 and of 77 (picked tile may differ) == inside M = 1001. */
static void gemm_batch_invariance(clipskip_dtype dt) {
    const int32_t m = 1001, n = 2304, k = 768;
    float *x = malloc((size_t)m * k * sizeof(float)), *w = malloc((size_t)n * k * sizeof(float));
    float *b = malloc((size_t)n * sizeof(float));
    tm_fill(x, (size_t)m * k, 1.0f, 0.0f);
    tm_fill(w, (size_t)n * k, 1.0f / sqrtf((float)k), 0.0f);
    tm_fill(b, (size_t)n, 0.5f, 0.0f);
    void *dx = dev_put(x, (size_t)m * k, dt), *dw = dev_put(w, (size_t)n * k, dt);
    float *db = dev_put(b, (size_t)n, CLIPSKIP_DTYPE_F32);
    void *dout = NULL, *dsub = NULL;
    const size_t es = cs_dtype_size(dt);
    CU(cudaMalloc(&dout, (size_t)m * n * es));
    CU(cudaMalloc(&dsub, (size_t)77 * n * es));
    cs_k_gemm_args a = {.x = dx, .w = dw, .bias = db, .out = dout, .m = m, .n = n, .k = k, .dtype = dt,
                        .epi = CS_K_EPI_BIAS_ACT, .act = CLIPSKIP_ACT_GELU};
    CU(cs_k_gemm(&a, g_n_sm, -1, 0));
    CU(cudaDeviceSynchronize());
    char *full = malloc((size_t)m * n * es);
    CU(cudaMemcpy(full, dout, (size_t)m * n * es, cudaMemcpyDeviceToHost));
    const int32_t starts[4] = {0, 1, 500, 924}, rows[2] = {1, 77};
    a.out = dsub;
    const size_t bad = slices_differ(&a, full, es, NULL, starts, 4, rows, 2);
    report(dt == CLIPSKIP_DTYPE_F16 ? "gemm F16 rows alone == rows in batch" : "gemm BF16 rows alone == rows in batch",
           bad == 0, "%g mismatching slices", (double)bad);
    CU(cudaFree(dx));
    CU(cudaFree(dw));
    CU(cudaFree(db));
    CU(cudaFree(dout));
    CU(cudaFree(dsub));
    free(x);
    free(w);
    free(b);
    free(full);
}

/* Fixed split of K (k_chunk): every mma.sync tile, with the chunks added in registers
 * (in-block) and on separate blocks (cross-block, run twice: the counters must be back at 0),
 * and the one wgmma tile that takes a k_chunk (128x128ws, in registers only),
 * bitwise equal to each other and within 2e-3 of float64; rows alone (cross-block) bitwise
 * equal to the same rows inside M = 1001 (in-block). */
static void gemm_split_case(clipskip_dtype dt, int32_t m, int32_t n, int32_t k, int32_t kc,
                            cs_k_epilogue epi) {
    const int resid = epi == CS_K_EPI_BIAS_RESID;
    const clipskip_dtype odt = resid ? CLIPSKIP_DTYPE_F32 : dt;
    const int32_t big = 1001, splits = cs_k_gemm_splits(k, kc);
    float *x = malloc((size_t)big * k * sizeof(float)), *w = malloc((size_t)n * k * sizeof(float));
    float *b = malloc((size_t)n * sizeof(float)), *r0 = calloc((size_t)big * n, sizeof(float));
    tm_fill(x, (size_t)big * k, 1.0f, 0.0f);
    tm_fill(w, (size_t)n * k, 1.0f / sqrtf((float)k), 0.0f);
    tm_fill(b, (size_t)n, 0.5f, 0.0f);
    tm_round(x, (size_t)big * k, dt);
    tm_round(w, (size_t)n * k, dt);
    void *dx = dev_put(x, (size_t)big * k, dt), *dw = dev_put(w, (size_t)n * k, dt);
    float *db = dev_put(b, (size_t)n, CLIPSKIP_DTYPE_F32), *ws = NULL;
    unsigned *sem = NULL;
    const size_t out_n = (size_t)(big + 2) * n, ob = out_n * cs_dtype_size(odt);
    const size_t n_sem = 1 << 16;
    void *dout = NULL;
    CU(cudaMalloc(&dout, ob));
    CU(cudaMalloc((void **)&ws, (size_t)splits * big * n * sizeof(float)));
    CU(cudaMalloc((void **)&sem, n_sem * sizeof(unsigned)));
    CU(cudaMemset(sem, 0, n_sem * sizeof(unsigned)));
    cs_k_gemm_args a = {.x = dx, .w = dw, .bias = db, .out = dout, .m = m, .n = n, .k = k, .dtype = dt,
                        .epi = epi, .act = CLIPSKIP_ACT_QUICK_GELU, .k_chunk = kc};
    float *first = NULL;
    size_t differ = 0, runs = 0;
    char what[112];
    for (int t = 0; t < CS_K_GEMM_N_TILES; t++)
        for (int run = 0; run < 3; run++) { /* in-block, cross-block, cross-block again */
            if (!cs_k_gemm_tile_usable(t)) continue;
            dev_poison(dout, ob);
            if (resid) CU(cudaMemcpy(dout, r0, (size_t)m * n * sizeof(float), cudaMemcpyHostToDevice));
            cs_k_gemm_args o = a;
            o.split_ws = run ? ws : NULL;
            o.split_sem = run ? sem : NULL;
            const cudaError_t e = cs_k_gemm(&o, g_n_sm, t, 0);
            if (e == cudaErrorInvalidValue) continue; /* not whole k-tiles, or no such split here */
            CU(e);
            CU(cudaDeviceSynchronize());
            float *got = dev_get(dout, out_n, odt);
            runs++;
            if (!first) first = got;
            else {
                differ += memcmp(first, got, (size_t)m * n * sizeof(float)) != 0;
                free(got);
            }
        }
    snprintf(what, sizeof what, "gemm %s %dx%dx%d k_chunk %d (%d) tiles x split modes equal",
             cs_dtype_name(dt), m, n, k, kc, splits);
    report(what, runs >= 6 && differ == 0, "%g of the runs differ", (double)differ);
    const double err = first ? gemm_rel_err(x, w, b, m, n, k, epi, CLIPSKIP_ACT_QUICK_GELU, first,
                                            resid ? r0 : NULL, 1)
                             : INFINITY;
    size_t guard = 0;
    for (size_t i = (size_t)m * n; first && i < (size_t)(m + 2) * n; i++) guard += !isnan(first[i]);
    snprintf(what, sizeof what, "gemm %s %dx%dx%d k_chunk %d vs fp64", cs_dtype_name(dt), m, n, k, kc);
    report(what, first && err <= 2e-3 && guard == 0, "rel err %.3e", err);

    /* the backend's way: M = 1001 in-block, slices of it cross-block, tiles picked */
    const size_t es = cs_dtype_size(odt);
    char *full = malloc((size_t)big * n * es);
    cs_k_gemm_args o = a;
    o.m = big;
    if (resid) CU(cudaMemcpy(dout, r0, (size_t)big * n * sizeof(float), cudaMemcpyHostToDevice));
    CU(cs_k_gemm(&o, g_n_sm, -1, 0));
    CU(cudaMemcpy(full, dout, (size_t)big * n * es, cudaMemcpyDeviceToHost));
    const int32_t starts[3] = {0, 500, 924}, rows[3] = {1, 8, 77};
    o = a;
    o.split_ws = ws;
    o.split_sem = sem;
    const size_t bad = slices_differ(&o, full, es, resid ? r0 : NULL, starts, 3, rows, 3);
    unsigned *hs = malloc(n_sem * sizeof(unsigned));
    CU(cudaMemcpy(hs, sem, n_sem * sizeof(unsigned), cudaMemcpyDeviceToHost));
    size_t nonzero = 0;
    for (size_t i = 0; i < n_sem; i++) nonzero += hs[i] != 0;
    snprintf(what, sizeof what, "gemm %s k_chunk %d rows alone == rows in batch", cs_dtype_name(dt), kc);
    report(what, bad == 0, "%g mismatching slices", (double)bad);
    snprintf(what, sizeof what, "gemm %s k_chunk %d split counters back at 0", cs_dtype_name(dt), kc);
    report(what, nonzero == 0, "%g nonzero", (double)nonzero);
    free(hs);
    free(full);
    free(first);
    CU(cudaFree(dx));
    CU(cudaFree(dw));
    CU(cudaFree(db));
    CU(cudaFree(dout));
    CU(cudaFree(ws));
    CU(cudaFree(sem));
    free(x);
    free(w);
    free(b);
    free(r0);
}

/* float64 causal attention of one sequence: q,k,v rows of qkv (len, 3d) -> out (len, d). */
static void attn_ref(const float *qkv, int32_t len, int32_t heads, int32_t d, double *out) {
    const int dh = d / heads;
    double p[CS_K_ATTN_MAX_T];
    for (int h = 0; h < heads; h++)
        for (int i = 0; i < len; i++) {
            double mx = -INFINITY, sum = 0;
            for (int j = 0; j <= i; j++) {
                double s = 0;
                for (int c = 0; c < dh; c++)
                    s += (double)qkv[(size_t)i * 3 * d + h * dh + c] * qkv[(size_t)j * 3 * d + d + h * dh + c];
                p[j] = s / sqrt((double)dh);
                mx = p[j] > mx ? p[j] : mx;
            }
            for (int j = 0; j <= i; j++) sum += (p[j] = exp(p[j] - mx));
            for (int c = 0; c < dh; c++) {
                double o = 0;
                for (int j = 0; j <= i; j++) o += p[j] * qkv[(size_t)j * 3 * d + 2 * d + h * dh + c];
                out[(size_t)i * d + h * dh + c] = o / sum;
            }
        }
}

static void attention_checks(clipskip_dtype dt, int32_t heads, int32_t dh) {
    const int32_t d = heads * dh, pre = 13, len = 77, m = pre + len;
    const size_t es = cs_dtype_size(dt);
    float *qkv = malloc((size_t)m * 3 * d * sizeof(float));
    tm_fill(qkv, (size_t)m * 3 * d, 1.0f, 0.0f);
    tm_round(qkv, (size_t)m * 3 * d, dt);
    void *dq = dev_put(qkv, (size_t)m * 3 * d, dt), *dout = NULL;
    int32_t *doff = NULL;
    CU(cudaMalloc(&dout, (size_t)(m + 1) * d * es));
    CU(cudaMalloc((void **)&doff, 3 * sizeof(int32_t)));
    int32_t off[3] = {0, pre, m};
    CU(cudaMemcpy(doff, off, sizeof off, cudaMemcpyHostToDevice));
    dev_poison(dout, (size_t)(m + 1) * d * es);
    const float scale = 1.0f / sqrtf((float)dh);
    CU(cs_k_attention(dout, dq, doff, 2, heads, d, scale, 0, dt, 0));
    CU(cudaDeviceSynchronize());
    float *got = dev_get(dout, (size_t)(m + 1) * d, dt);
    double *ref = malloc((size_t)len * d * sizeof(double));
    attn_ref(qkv + (size_t)pre * 3 * d, len, heads, d, ref);
    double num = 0, den = 0;
    for (size_t i = 0; i < (size_t)len * d; i++) {
        const double g = got[(size_t)pre * d + i];
        num += isfinite(g) ? (g - ref[i]) * (g - ref[i]) : INFINITY;
        den += ref[i] * ref[i];
    }
    size_t guard = 0;
    for (size_t i = (size_t)m * d; i < (size_t)(m + 1) * d; i++) guard += !isnan(got[i]);
    char what[96];
    snprintf(what, sizeof what, "attention %s %dx%d vs fp64", cs_dtype_name(dt), heads, dh);
    report(what, sqrt(num / den) <= 2e-3 && guard == 0, "rel err %.3e", sqrt(num / den));

    /* prefix of i+1 tokens, last-only, packed behind the 13-token sequence */
    uint16_t *full = malloc((size_t)m * d * es), *row = malloc((size_t)2 * d * es);
    CU(cudaMemcpy(full, dout, (size_t)m * d * es, cudaMemcpyDeviceToHost));
    size_t bad = 0;
    for (int32_t i = 0; i < len; i++) {
        int32_t o2[3] = {0, pre, pre + i + 1};
        CU(cudaMemcpy(doff, o2, sizeof o2, cudaMemcpyHostToDevice));
        CU(cs_k_attention(dout, dq, doff, 2, heads, d, scale, 1, dt, 0));
        CU(cudaMemcpy(row, dout, (size_t)2 * d * es, cudaMemcpyDeviceToHost));
        bad += memcmp((char *)row + (size_t)d * es, (char *)full + (size_t)(pre + i) * d * es, (size_t)d * es) != 0;
        bad += memcmp(row, (char *)full + (size_t)(pre - 1) * d * es, (size_t)d * es) != 0;
    }
    snprintf(what, sizeof what, "attention %s %dx%d prefix last-only == full", cs_dtype_name(dt), heads, dh);
    report(what, bad == 0, "%g mismatching rows", (double)bad);
    CU(cudaFree(dq));
    CU(cudaFree(dout));
    CU(cudaFree(doff));
    free(qkv);
    free(got);
    free(ref);
    free(full);
    free(row);
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0); /* lines reach check.sh's log even if it times out */
    struct cudaDeviceProp prop;
    const int skip = cu_test_device(&prop);
    if (skip) return skip;
    g_n_sm = prop.multiProcessorCount;
    tm_seed();
    CU(cs_k_gemm_setup());
    const clipskip_dtype dts[2] = {CLIPSKIP_DTYPE_F16, CLIPSKIP_DTYPE_BF16};
    if (getenv("CS_TEST_QUICK")) { /* small shapes only: for compute-sanitizer (check.sh) */
        for (int i = 0; i < 2; i++) {
            gemm_case(dts[i], 77, 256, 768, CS_K_EPI_BIAS_ACT, CLIPSKIP_ACT_GELU);
            gemm_case(dts[i], 130, 128, 256, CS_K_EPI_BIAS_RESID, CLIPSKIP_ACT_GELU);
            gemm_case(dts[i], 45, 72, 40, CS_K_EPI_BIAS, CLIPSKIP_ACT_GELU);
            gemm_split_case(dts[i], 45, 72, 520, 128, CS_K_EPI_BIAS_ACT);
            attention_checks(dts[i], 2, 64);
            attention_checks(dts[i], 1, 8);
        }
        TEST_DONE("test_gpu_invariance (quick)");
    }
    for (int i = 0; i < 2; i++) {
        gemm_case(dts[i], 77, 2304, 768, CS_K_EPI_BIAS, CLIPSKIP_ACT_GELU);
        gemm_case(dts[i], 1, 768, 768, CS_K_EPI_BIAS_RESID, CLIPSKIP_ACT_GELU);
        gemm_case(dts[i], 154, 3072, 768, CS_K_EPI_BIAS_ACT, CLIPSKIP_ACT_QUICK_GELU);
        gemm_case(dts[i], 130, 1024, 4096, CS_K_EPI_BIAS_RESID, CLIPSKIP_ACT_GELU);
        gemm_case(dts[i], 1001, 5120, 1280, CS_K_EPI_BIAS_ACT, CLIPSKIP_ACT_GELU);
        gemm_case(dts[i], 3, 768, 768, CS_K_EPI_NONE, CLIPSKIP_ACT_GELU);
        gemm_case(dts[i], 45, 72, 40, CS_K_EPI_BIAS, CLIPSKIP_ACT_GELU); /* N, K tails */
        gemm_batch_invariance(dts[i]);
        gemm_split_case(dts[i], 77, 768, 3072, 384, CS_K_EPI_BIAS_RESID); /* CLIP-L fc2 */
        gemm_split_case(dts[i], 77, 2304, 768, 384, CS_K_EPI_BIAS);       /* qkv */
        gemm_split_case(dts[i], 130, 1024, 4096, 1024, CS_K_EPI_BIAS_RESID);
        gemm_split_case(dts[i], 45, 72, 520, 128, CS_K_EPI_BIAS_ACT);     /* ragged last chunk */
        attention_checks(dts[i], 12, 64);
        attention_checks(dts[i], 20, 64);
        attention_checks(dts[i], 4, 8);  /* CUDA-core fallback: small test towers */
        attention_checks(dts[i], 2, 32);
    }
    TEST_DONE("test_gpu_invariance");
}
