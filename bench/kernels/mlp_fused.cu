/* Variant under study (not on the main path): the whole MLP of a layer in one kernel,
 *     out(M, D) fp32 += act(x(M, D) W1^T + b1) W2^T + b2,
 * with the (rows, F) intermediate never leaving the chip. A block owns 32 token rows and all
 * D output columns: for each chunk of 32 intermediate columns it computes
 * H = act(x W1[chunk]^T + b1) (8 warps, one 16x8 tile each, over all of K = D), rounds H to the
 * compute dtype in shared memory, and adds H W2[:, chunk]^T into the output accumulators held in
 * registers (16 warps, D/16 columns each).
 *
 * Numerics are those of the two-GEMM path bit for bit: every H element has one fp32 accumulator
 * fed k-steps of 16 in increasing k, the same bias/activation/rounding; every output element
 * has one accumulator fed the F dimension in increasing k-steps of 16, then out = r + (acc + b2).
 * So promoting it would not change a single output bit; the open question is only speed.
 *
 * Costs to weigh on the device (kernels/README.md): each block streams ALL of W1 and W2
 * (9.4 MB for CLIP-L) from L2 for 32 rows, i.e. ~32 FLOP per L2 byte, against the two-GEMM
 * path's intermediate round trip to HBM (M x F x 2 bytes written and read). And at batch 1
 * (M = 77) it has 3 blocks for 132 SMs. Shared memory: 3 x 32 x D x 2 bytes + 2 KB, so
 * D <= 768 on A100 (164 KB), D <= 1024 on H100 (227 KB); not for bigG (D = 1280). */
#include "../../kernels/common.cuh"
#include "bench_kernels.h"

#define MF_BM 32
#define MF_BF 32
#define MF_WARPS 16
#define MF_PAD 8 /* elements: rows of 2D+16 bytes put 8 ldmatrix rows in 8 bank groups */

template <typename T, int D>
struct mf_smem {
    static const int LDX = D + MF_PAD;         /* x tile and W1 chunk: (32, D) */
    static const int LDH = MF_BF + MF_PAD;     /* H chunk (32, 32) and W2 chunk (D, 32) */
    static const size_t BYTES = sizeof(T) * ((size_t)2 * MF_BM * LDX + (size_t)MF_BM * LDH + (size_t)D * LDH);
};

/* rows x cols (cols % 8 == 0) from g (row stride g_ld) into s (row stride s_ld), rows past
 * rows_valid zero-filled. */
template <typename T>
__device__ __forceinline__ void mf_load(T *s, int s_ld, const T *g, size_t g_ld, int rows,
                                        int rows_valid, int cols) {
    const int chunks = cols / 8;
    for (int i = threadIdx.x; i < rows * chunks; i += MF_WARPS * 32) {
        const int r = i / chunks, c = (i - r * chunks) * 8;
        const bool ok = r < rows_valid;
        cs_cp_async16(s + r * s_ld + c, ok ? g + (size_t)r * g_ld + c : g, ok ? 16 : 0);
    }
}

template <typename T, int D>
static __global__ void __launch_bounds__(MF_WARPS * 32, 1)
    mlp_fused_kernel(float *out, const T *x, const T *w1, const float *b1, const T *w2,
                     const float *b2, int m, int f, clipskip_act act) {
    typedef mf_smem<T, D> S;
    constexpr int NTW = D / MF_WARPS / 8; /* output n-tiles per warp */
    static_assert(D % (MF_WARPS * 8) == 0, "D must split into 8-wide tiles over 16 warps");
    extern __shared__ __align__(128) unsigned char mf_raw[];
    T *sX = reinterpret_cast<T *>(mf_raw), *sW1 = sX + MF_BM * S::LDX;
    T *sH = sW1 + MF_BM * S::LDX, *sW2 = sH + MF_BM * S::LDH;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, t = lane & 3;
    const int m0 = blockIdx.x * MF_BM;
    const int rows = m - m0 < MF_BM ? m - m0 : MF_BM;

    mf_load<T>(sX, S::LDX, x + (size_t)m0 * D, D, MF_BM, rows, D);
    mf_load<T>(sW1, S::LDX, w1, D, MF_BF, MF_BF, D);
    cs_cp_async_commit();
    mf_load<T>(sW2, S::LDH, w2, f, D, D, MF_BF);
    cs_cp_async_commit();

    float acc[2][NTW][4];
#pragma unroll
    for (int i = 0; i < 2; i++)
#pragma unroll
        for (int j = 0; j < NTW; j++)
#pragma unroll
            for (int e = 0; e < 4; e++) acc[i][j][e] = 0.0f;

    for (int f0 = 0; f0 < f; f0 += MF_BF) {
        cs_cp_async_wait<1>(); /* x and W1[chunk] landed */
        __syncthreads();
        if (warp < 8) { /* H tile (mt, nt) over all of K = D, k in increasing order */
            const int mt = warp >> 2, nt = warp & 3;
            float h[4] = {0.0f, 0.0f, 0.0f, 0.0f};
            for (int k0 = 0; k0 < D; k0 += 16) {
                uint32_t a[4], b4[4];
                cs_ldmatrix_x4(a, sX + (mt * 16 + (lane & 15)) * S::LDX + k0 + (lane >> 4) * 8);
                /* x2 would do; x4 keeps one wrapper: lanes 16-31 repeat lanes 0-15's rows */
                cs_ldmatrix_x4(b4, sW1 + (nt * 8 + (lane & 7)) * S::LDX + k0 + ((lane >> 3) & 1) * 8);
                const uint32_t b[2] = {b4[0], b4[1]};
                cs_mma16816<T>(h, a, b);
            }
            const int col = nt * 8 + 2 * t;
            const float c0 = b1[f0 + col], c1 = b1[f0 + col + 1];
            *reinterpret_cast<uint32_t *>(sH + (mt * 16 + g) * S::LDH + col) =
                cs_pack2<T>(cs_act(h[0] + c0, act), cs_act(h[1] + c1, act));
            *reinterpret_cast<uint32_t *>(sH + (mt * 16 + g + 8) * S::LDH + col) =
                cs_pack2<T>(cs_act(h[2] + c0, act), cs_act(h[3] + c1, act));
        }
        __syncthreads(); /* H written; W1[chunk] no longer read */
        if (f0 + MF_BF < f) mf_load<T>(sW1, S::LDX, w1 + (size_t)(f0 + MF_BF) * D, D, MF_BF, MF_BF, D);
        cs_cp_async_commit();
        cs_cp_async_wait<1>(); /* W2[:, chunk] landed */
        __syncthreads();
#pragma unroll
        for (int kk = 0; kk < MF_BF / 16; kk++) {
            uint32_t a[2][4];
#pragma unroll
            for (int mt = 0; mt < 2; mt++)
                cs_ldmatrix_x4(a[mt], sH + (mt * 16 + (lane & 15)) * S::LDH + kk * 16 + (lane >> 4) * 8);
#pragma unroll
            for (int p = 0; p < NTW / 2; p++) {
                uint32_t b4[4];
                const int r = warp * (NTW * 8) + p * 16 + (lane & 7) + ((lane >> 4) << 3);
                cs_ldmatrix_x4(b4, sW2 + r * S::LDH + kk * 16 + ((lane >> 3) & 1) * 8);
                const uint32_t bl[2] = {b4[0], b4[1]}, bh[2] = {b4[2], b4[3]};
#pragma unroll
                for (int mt = 0; mt < 2; mt++) {
                    cs_mma16816<T>(acc[mt][2 * p], a[mt], bl);
                    cs_mma16816<T>(acc[mt][2 * p + 1], a[mt], bh);
                }
            }
        }
        __syncthreads(); /* W2[chunk] and H no longer read */
        if (f0 + MF_BF < f) mf_load<T>(sW2, S::LDH, w2 + f0 + MF_BF, f, D, D, MF_BF);
        cs_cp_async_commit();
    }
    cs_cp_async_wait<0>();

#pragma unroll
    for (int j = 0; j < NTW; j++) {
        const int col = warp * (NTW * 8) + j * 8 + 2 * t;
        const float c0 = b2[col], c1 = b2[col + 1];
#pragma unroll
        for (int mt = 0; mt < 2; mt++)
#pragma unroll
            for (int hh = 0; hh < 2; hh++) {
                const int r = mt * 16 + g + hh * 8;
                if (r >= rows) continue;
                float2 *o = reinterpret_cast<float2 *>(out + (size_t)(m0 + r) * D + col);
                float2 v = *o;
                v.x += acc[mt][j][2 * hh] + c0;
                v.y += acc[mt][j][2 * hh + 1] + c1;
                *o = v;
            }
    }
}

template <typename T, int D>
static cudaError_t mf_launch(const cs_bk_mlp_args *a, cudaStream_t s) {
    const size_t smem = mf_smem<T, D>::BYTES;
    cudaError_t e = cudaFuncSetAttribute(mlp_fused_kernel<T, D>,
                                         cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
    if (e != cudaSuccess) return e;
    mlp_fused_kernel<T, D><<<cs_div_up((size_t)a->m, MF_BM), MF_WARPS * 32, smem, s>>>(
        a->out, static_cast<const T *>(a->x), static_cast<const T *>(a->w1), a->b1,
        static_cast<const T *>(a->w2), a->b2, a->m, a->f, a->act);
    return cudaGetLastError();
}

extern "C" size_t cs_bk_mlp_fused_smem(int32_t d) {
    return d == 768 ? mf_smem<__half, 768>::BYTES : d == 1024 ? mf_smem<__half, 1024>::BYTES : 0;
}

extern "C" cudaError_t cs_bk_mlp_fused(const cs_bk_mlp_args *a, cudaStream_t s) {
    if (a->m <= 0 || a->f % MF_BF) return a->m == 0 ? cudaSuccess : cudaErrorInvalidValue;
    const int bf = a->dtype == CLIPSKIP_DTYPE_BF16;
    if (a->d == 768) return bf ? mf_launch<__nv_bfloat16, 768>(a, s) : mf_launch<__half, 768>(a, s);
    if (a->d == 1024) return bf ? mf_launch<__nv_bfloat16, 1024>(a, s) : mf_launch<__half, 1024>(a, s);
    return cudaErrorInvalidValue;
}
