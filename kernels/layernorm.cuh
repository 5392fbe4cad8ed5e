/* LayerNorm of one row by one warp, as a device function: layernorm.cu's kernel and the fused
 * layer kernel (layer.cu) both run it, so both give the same bits. layernorm.cu's header note
 * has the numerics. */
#ifndef CLIPSKIP_KERNELS_LAYERNORM_CUH
#define CLIPSKIP_KERNELS_LAYERNORM_CUH

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

/* out row `row` (d elements) = LN(in row rows[row], or row `row` when rows is NULL). The 32
 * lanes of the calling warp all call it; d % 4 == 0, d <= LN_MAX_V * 128. */
template <typename T>
__device__ __forceinline__ void cs_ln_row(T *out, const float *in, const int32_t *rows,
                                          const float *gamma, const float *beta, size_t row, int32_t d,
                                          float eps) {
    const int lane = threadIdx.x & 31;
    const int nv = d >> 2;
    const size_t src = rows ? (size_t)rows[row] : row;
    const float4 *x = reinterpret_cast<const float4 *>(in + src * d);
    float4 v[LN_MAX_V];
    float sum = 0.0f;
#pragma unroll
    for (int i = 0; i < LN_MAX_V; i++) {
        const int c = lane + i * 32;
        if (c < nv) {
            v[i] = __ldcg(x + c); /* through L2: layer.cu reads rows other blocks just wrote */
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

#endif
