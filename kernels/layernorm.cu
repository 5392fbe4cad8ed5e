/* LayerNorm of the fp32 residual stream into an ACT buffer: fp32 statistics, one warp per row.
 * Two passes over values held in registers (mean, then the centred variance: no cancellation
 * from E[x^2] - E[x]^2); each lane sums its elements in a fixed order and the warp reduces by
 * butterfly, so a row's result never depends on other rows. */
#include "layernorm.cuh"

template <typename T>
static __global__ void __launch_bounds__(LN_ROWS * 32)
    layernorm_kernel(T *out, const float *in, const int32_t *rows, const float *gamma,
                     const float *beta, int32_t m, int32_t d, float eps) {
    cs_pdl_wait();
    cs_pdl_trigger();
    const size_t row = (size_t)blockIdx.x * LN_ROWS + (threadIdx.x >> 5);
    if (row < (size_t)m) cs_ln_row<T>(out, in, rows, gamma, beta, row, d, eps);
}

extern "C" cudaError_t cs_k_layernorm(void *out, clipskip_dtype out_dtype, const float *in,
                                      const int32_t *rows, const float *gamma, const float *beta,
                                      int32_t m, int32_t d, float eps, cudaStream_t stream) {
    if (m < 0 || d <= 0 || d % 4 || d > LN_MAX_V * 128) return cudaErrorInvalidValue;
    if (m == 0) return cudaSuccess;
    const unsigned blocks = cs_div_up((size_t)m, LN_ROWS);
    if (out_dtype == CLIPSKIP_DTYPE_F16)
        return cs_launch(layernorm_kernel<__half>, dim3(blocks), dim3(LN_ROWS * 32), 0, stream,
                         static_cast<__half *>(out), in, rows, gamma, beta, m, d, eps);
    if (out_dtype == CLIPSKIP_DTYPE_BF16)
        return cs_launch(layernorm_kernel<__nv_bfloat16>, dim3(blocks), dim3(LN_ROWS * 32), 0, stream,
                         static_cast<__nv_bfloat16 *>(out), in, rows, gamma, beta, m, d, eps);
    return cudaErrorInvalidValue;
}
