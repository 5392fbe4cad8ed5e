/* Token + position embedding into the fp32 residual stream. */
#include "common.cuh"

/* One thread per 4 consecutive elements of h; grid-stride. */
template <typename TE>
static __global__ void embed_kernel(float *h, const TE *tok, const float *pos_emb,
                                    const int32_t *ids, const int32_t *pos, int32_t m, int32_t d) {
    cs_pdl_wait();
    cs_pdl_trigger();
    const int d4 = d >> 2;
    const size_t n4 = (size_t)m * d4;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n4;
         i += (size_t)gridDim.x * blockDim.x) {
        const size_t row = i / d4;
        const int c = (int)(i - row * d4) * 4;
        const TE *t = tok + (size_t)ids[row] * d + c;
        const float4 p = *reinterpret_cast<const float4 *>(pos_emb + (size_t)pos[row] * d + c);
        float4 r;
        r.x = cs_to_f32(t[0]) + p.x;
        r.y = cs_to_f32(t[1]) + p.y;
        r.z = cs_to_f32(t[2]) + p.z;
        r.w = cs_to_f32(t[3]) + p.w;
        reinterpret_cast<float4 *>(h)[i] = r;
    }
}

extern "C" cudaError_t cs_k_embed(float *h, const void *tok_emb, clipskip_dtype tok_dtype,
                                  const float *pos_emb, const int32_t *ids, const int32_t *pos,
                                  int32_t m, int32_t d, cudaStream_t stream) {
    if (m < 0 || d <= 0 || d % 4) return cudaErrorInvalidValue;
    if (m == 0) return cudaSuccess;
    const size_t n4 = (size_t)m * (d / 4);
    const unsigned blocks = n4 / 256 + 1 < 8192 ? (unsigned)(n4 / 256 + 1) : 8192u;
    const dim3 grid(blocks), block(256);
    switch (tok_dtype) {
    case CLIPSKIP_DTYPE_F32:
        return cs_launch(embed_kernel<float>, grid, block, 0, stream, h,
                         static_cast<const float *>(tok_emb), pos_emb, ids, pos, m, d);
    case CLIPSKIP_DTYPE_F16:
        return cs_launch(embed_kernel<__half>, grid, block, 0, stream, h,
                         static_cast<const __half *>(tok_emb), pos_emb, ids, pos, m, d);
    case CLIPSKIP_DTYPE_BF16:
        return cs_launch(embed_kernel<__nv_bfloat16>, grid, block, 0, stream, h,
                         static_cast<const __nv_bfloat16 *>(tok_emb), pos_emb, ids, pos, m, d);
    default: return cudaErrorInvalidValue;
    }
}
