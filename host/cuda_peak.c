/* CUDA backend: the device's own ceilings, measured once (clipskip_encoder_measure_peak):
 * a cuBLASLt GEMM of 8192^3 in the compute dtype with fp32 accumulation, and a 1 GiB
 * device-to-device copy (bytes read + written). Inputs are random, not zeros (zeros run
 * faster on some cards); the best of five timed runs after a warm-up. */
#ifdef CLIPSKIP_WITH_CUDA
#include "cuda_priv.h"

#include <stdlib.h>

#define PEAK_N 8192
#define PEAK_COPY_BYTES ((size_t)1 << 30)
#define PEAK_REPS 5

/* n random values in [-1, 1) as the compute dtype, into dev. */
static clipskip_status fill_random(cs_backend *be, void *dev, size_t n) {
    uint16_t *h = malloc(n * sizeof *h);
    if (!h) return cs_fail(CLIPSKIP_ERR_NOMEM, "cuda: measure_peak: host buffer");
    uint64_t s = 0x9e3779b97f4a7c15ull;
    for (size_t i = 0; i < n; i++) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        float f = (float)(s >> 40) * (1.f / 8388608.f) - 1.f;
        h[i] = be->cdt == CLIPSKIP_DTYPE_BF16 ? cs_f32_to_bf16(f) : cs_f32_to_f16(f);
    }
    cudaError_t e = cudaMemcpy(dev, h, n * sizeof *h, cudaMemcpyHostToDevice);
    free(h);
    return e == cudaSuccess ? CLIPSKIP_OK : cs_cu_fail(be, e, "cudaMemcpy(peak input)", __FILE__, __LINE__);
}

/* Best seconds of PEAK_REPS runs of one GEMM (or one copy when gemm is NULL). */
static clipskip_status time_best(cs_backend *be, const cs_cu_linear *gemm, const void *x, void *out,
                                 void *dst, const void *src, double *best) {
    *best = 1e30;
    for (int r = 0; r <= PEAK_REPS; r++) { /* r == 0: warm-up */
        float ms = 0.f;
        CU_TRY(be, cudaEventRecord(be->ev_start, be->stream));
        if (gemm)
            CS_TRY(cs_cu_lt_gemm(be, gemm, CS_K_EPI_NONE, CLIPSKIP_ACT_GELU, x, out, PEAK_N));
        else
            CU_TRY(be, cudaMemcpyAsync(dst, src, PEAK_COPY_BYTES, cudaMemcpyDeviceToDevice, be->stream));
        CU_TRY(be, cudaEventRecord(be->ev_stop, be->stream));
        CU_TRY(be, cudaEventSynchronize(be->ev_stop));
        CU_TRY(be, cudaEventElapsedTime(&ms, be->ev_start, be->ev_stop));
        if (r > 0 && ms * 1e-3 < *best) *best = ms * 1e-3;
    }
    return CLIPSKIP_OK;
}

clipskip_status cs_cu_measure_peak(cs_backend *be, double *flops_per_s, double *bytes_per_s) {
    if (be->cap) return cs_fail(CLIPSKIP_ERR_INVALID_ARG, "cuda: measure_peak inside a graph capture");
    CU_TRY(be, cudaSetDevice(be->device));
    CU_TRY(be, cudaStreamSynchronize(be->stream));
    if (!be->lt) CS_TRY(cs_cu_lt_init(be));
    const size_t n2 = (size_t)PEAK_N * PEAK_N, es = 2;
    void *w = NULL, *x = NULL, *y = NULL, *a = NULL, *b = NULL;
    clipskip_status st = CLIPSKIP_OK;
    double t_gemm = 0, t_copy = 0;
    cudaError_t e = cudaMalloc(&w, n2 * es);
    if (e == cudaSuccess) e = cudaMalloc(&x, n2 * es);
    if (e == cudaSuccess) e = cudaMalloc(&y, n2 * es);
    if (e == cudaSuccess) e = cudaMalloc(&a, PEAK_COPY_BYTES);
    if (e == cudaSuccess) e = cudaMalloc(&b, PEAK_COPY_BYTES);
    if (e != cudaSuccess) st = cs_cu_fail(be, e, "cudaMalloc(peak buffers, 2.4 GB)", __FILE__, __LINE__);
    if (st == CLIPSKIP_OK) st = fill_random(be, w, n2);
    if (st == CLIPSKIP_OK) st = fill_random(be, x, n2);
    if (st == CLIPSKIP_OK) st = fill_random(be, a, PEAK_COPY_BYTES / es);
    cs_cu_linear lin = {.w = w, .n = PEAK_N, .k = PEAK_N};
    if (st == CLIPSKIP_OK) st = time_best(be, &lin, x, y, NULL, NULL, &t_gemm);
    if (st == CLIPSKIP_OK) st = time_best(be, NULL, NULL, NULL, b, a, &t_copy);
    cudaFree(w), cudaFree(x), cudaFree(y), cudaFree(a), cudaFree(b);
    (void)cudaGetLastError();
    if (st != CLIPSKIP_OK) return st;
    *flops_per_s = 2.0 * PEAK_N * (double)PEAK_N * PEAK_N / t_gemm;
    *bytes_per_s = 2.0 * (double)PEAK_COPY_BYTES / t_copy;
    return CLIPSKIP_OK;
}
#endif
