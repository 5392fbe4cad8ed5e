/* LayerNorm of the fp32 residual stream into an ACT buffer: fp32 statistics, one warp per row.
 * Two passes over values held in registers (mean, then the centred variance: no cancellation
 * from E[x^2] - E[x]^2); each lane sums its elements in a fixed order and the warp reduces by
 * butterfly, so a row's result never depends on other rows. */
#include "common.cuh"

#define LN_MAX_V 16 /* float4 per lane held in registers: d <= 16 * 4 * 32 = 2048 */
#define LN_ROWS 8   /* rows (warps) per block */

template <typename T>
__device__ __forceinline__ void ln_store4(T *o, float a, float b, float c, float e) {
    uint2 u;
    u.x = cs_pack2<T>(a, b);
    u.y = cs_pack2<T>(c, e);
    *reinterpret_cast<uint2 *>(o) = u;
}

template <typename T>
static __global__ void __launch_bounds__(LN_ROWS * 32)
    layernorm_kernel(T *out, const float *in, const int32_t *rows, const float *gamma,
                     const float *beta, int32_t m, int32_t d, float eps) {
    cs_pdl_wait();
    cs_pdl_trigger();
    const int lane = threadIdx.x & 31;
    const size_t row = (size_t)blockIdx.x * LN_ROWS + (threadIdx.x >> 5);
    if (row >= (size_t)m) return;
    const int nv = d >> 2;
    const size_t src = rows ? (size_t)rows[row] : row;
    const float4 *x = reinterpret_cast<const float4 *>(in + src * d);
    float4 v[LN_MAX_V];
    float sum = 0.0f;
#pragma unroll
    for (int i = 0; i < LN_MAX_V; i++) {
        const int c = lane + i * 32;
        if (c < nv) {
            v[i] = x[c];
            sum += v[i].x + v[i].y + v[i].z + v[i].w;
        }
    }
    const float mean = cs_warp_sum(sum) / (float)d;
    float sq = 0.0f;
#pragma unroll
    for (int i = 0; i < LN_MAX_V; i++) {
        if (lane + i * 32 < nv) {
            const float a = v[i].x - mean, b = v[i].y - mean, c = v[i].z - mean, e = v[i].w - mean;
            sq += a * a + b * b + c * c + e * e;
        }
    }
    const float rstd = rsqrtf(cs_warp_sum(sq) / (float)d + eps);
    T *o = out + row * d;
#pragma unroll
    for (int i = 0; i < LN_MAX_V; i++) {
        const int c = lane + i * 32;
        if (c < nv) {
            const float4 g = reinterpret_cast<const float4 *>(gamma)[c];
            const float4 b = reinterpret_cast<const float4 *>(beta)[c];
            ln_store4<T>(o + c * 4, (v[i].x - mean) * rstd * g.x + b.x,
                         (v[i].y - mean) * rstd * g.y + b.y, (v[i].z - mean) * rstd * g.z + b.z,
                         (v[i].w - mean) * rstd * g.w + b.w);
        }
    }
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
