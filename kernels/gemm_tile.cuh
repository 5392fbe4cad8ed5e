/* The mma.sync GEMM's work on one output tile, as a device function: gemm.cu's kernel runs it
 * for its block's tile, and the fused layer kernel (layer.cu) for each tile it takes, so both
 * compute every output with the same operations in the same order (batch invariance across
 * the two paths). Needs gemm.cu's header note for the numerics. */
#ifndef CLIPSKIP_KERNELS_GEMM_TILE_CUH
#define CLIPSKIP_KERNELS_GEMM_TILE_CUH

#include "common.cuh"

/* The number of K chunks of a fixed split (kernels.h: cs_k_gemm_splits, which is this on the
 * host): 1 without a k_chunk or when K fits one chunk. */
__host__ __device__ __forceinline__ int32_t cs_gemm_splits(int32_t k, int32_t k_chunk) {
    return k_chunk > 0 && k > k_chunk ? (int32_t)(((int64_t)k + k_chunk - 1) / k_chunk) : 1;
}

/* With a k_chunk (SPLIT): the partial sums of one tile's chunks cross blocks through split_ws.
 * Every block stores its partial; the last of the tile's nz blocks to arrive (a counter
 * per tile) reads all of them back in chunk order and leaves the counter at 0. Returns whether
 * this block is that last one, with acc = 0 + P_0 + P_1 + ... then. */
template <int MI, int NI, int WM, int WN>
__device__ __forceinline__ bool gemm_split_gather(const cs_k_gemm_args &a, float (&acc)[MI][NI][4],
                                                  int m0, int n0, int wm, int wn, int lane, int z,
                                                  int nz, unsigned *sem, int *s_last) {
    const size_t plane = (size_t)a.m * a.n;
    float *ws = a.split_ws;
#pragma unroll
    for (int ni = 0; ni < NI; ni++) {
        const int col = n0 + wn * WN + ni * 8 + (lane & 3) * 2;
        if (col >= a.n) continue;
#pragma unroll
        for (int mi = 0; mi < MI; mi++)
#pragma unroll
            for (int h = 0; h < 2; h++) {
                const int row = m0 + wm * WM + mi * 16 + (lane >> 2) + 8 * h;
                if (row < a.m)
                    __stcg(reinterpret_cast<float2 *>(ws + z * plane + (size_t)row * a.n + col),
                           make_float2(acc[mi][ni][2 * h], acc[mi][ni][2 * h + 1]));
            }
    }
    /* The hand-off of threadFenceReduction / cooperative groups' grid sync: the barrier
     * gathers the block's stores, then the thread that counts fences (release) before its
     * atomic, and the last block's counting thread fences after it (acquire) before the
     * barrier that lets the block read the other partials. */
    __threadfence();
    __syncthreads();
    if (threadIdx.x == 0) {
        __threadfence();
        *s_last = atomicAdd(sem, 1u) == (unsigned)nz - 1;
        if (*s_last) {
            atomicExch(sem, 0u); /* every chunk has counted: ready for the next launch */
            __threadfence();
        }
    }
    __syncthreads();
    if (!*s_last) return false;
#pragma unroll
    for (int ni = 0; ni < NI; ni++) {
        const int col = n0 + wn * WN + ni * 8 + (lane & 3) * 2;
#pragma unroll
        for (int mi = 0; mi < MI; mi++)
#pragma unroll
            for (int h = 0; h < 2; h++) {
                const int row = m0 + wm * WM + mi * 16 + (lane >> 2) + 8 * h;
                float s0 = 0.0f, s1 = 0.0f;
                if (row < a.m && col < a.n)
                    for (int c = 0; c < nz; c++) {
                        const float2 p = __ldcg(reinterpret_cast<const float2 *>(
                            ws + c * plane + (size_t)row * a.n + col));
                        s0 += p.x;
                        s1 += p.y;
                    }
                acc[mi][ni][2 * h] = s0;
                acc[mi][ni][2 * h + 1] = s1;
            }
    }
    return true;
}

/* Output tile (tm, tn) of BM x BN: chunk z of nz (nz > 1: SPLIT across blocks; sem is the
 * tile's counter and s_last an int in shared memory), else all of K. smem: the dynamic shared
 * memory, STAGES x (BM + BN) x BK elements. The caller synchronizes the block before reusing
 * smem for another tile. Returns whether this block stored the tile's outputs (false: a split
 * chunk's block that was not the last to arrive); the same for every thread of the block. */
template <typename T, int BM, int BN, int BK, int WARPS_M, int WARPS_N, int STAGES, bool SPLIT>
__device__ __forceinline__ bool cs_gemm_tile(const cs_k_gemm_args &a, unsigned char *smem, int tm,
                                             int tn, int z, int nz, unsigned *sem, int *s_last) {
    constexpr int NT = WARPS_M * WARPS_N * 32;
    constexpr int WM = BM / WARPS_M, WN = BN / WARPS_N; /* warp tile */
    constexpr int MI = WM / 16, NI = WN / 8;             /* mma tiles per warp */
    static_assert(WM % 16 == 0 && WN % 16 == 0, "warp tile must be whole 16x16 pairs");

    T *sA = reinterpret_cast<T *>(smem);  /* STAGES x (BM, BK) */
    T *sB = sA + STAGES * BM * BK;        /* STAGES x (BN, BK) */

    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int wm = warp / WARPS_N, wn = warp % WARPS_N;
    const int m0 = tm * BM, n0 = tn * BN;
    const T *X = static_cast<const T *>(a.x), *W = static_cast<const T *>(a.w);
    /* this block's k range: all of K, or (SPLIT across blocks) chunk blockIdx.z. A chunk is a
     * whole number of k-tiles, so no tile straddles a chunk boundary. */
    int k0 = 0, kend = a.k;
    if (SPLIT && nz > 1) {
        k0 = z * a.k_chunk;
        kend = min(a.k, k0 + a.k_chunk);
    }
    const int KT = (kend - k0 + BK - 1) / BK;
    const int chunk_kt = SPLIT ? a.k_chunk / BK : KT; /* k-tiles per chunk */

    /* prologue: the weight tiles first (no kernel writes them: under PDL they stream in while
     * the previous kernel finishes), then the activations once it has. Group 0 holds every
     * prologue weight tile and activation tile 0, group s activation tile s. */
#pragma unroll
    for (int s = 0; s < STAGES - 1; s++)
        if (s < KT) cs_gemm_load_tile<T, BN, BK, NT>(sB + s * BN * BK, W, n0, a.n, a.k, k0 + s * BK, tid);
    cs_pdl_wait();
    cs_pdl_trigger();
#pragma unroll
    for (int s = 0; s < STAGES - 1; s++) {
        if (s < KT) cs_gemm_load_tile<T, BM, BK, NT>(sA + s * BM * BK, X, m0, a.m, a.k, k0 + s * BK, tid);
        cs_cp_async_commit();
    }

    /* acc: the running chunk's partial; tot (SPLIT only): 0 + the partials of finished chunks */
    float acc[MI][NI][4], tot[MI][NI][4];
#pragma unroll
    for (int i = 0; i < MI; i++)
#pragma unroll
        for (int j = 0; j < NI; j++)
#pragma unroll
            for (int e = 0; e < 4; e++) acc[i][j][e] = tot[i][j][e] = 0.0f;

    for (int kt = 0; kt < KT; kt++) {
        if (SPLIT && kt > 0 && kt % chunk_kt == 0) { /* a chunk ends: fold it in, start afresh */
#pragma unroll
            for (int i = 0; i < MI; i++)
#pragma unroll
                for (int j = 0; j < NI; j++)
#pragma unroll
                    for (int e = 0; e < 4; e++) {
                        tot[i][j][e] += acc[i][j][e];
                        acc[i][j][e] = 0.0f;
                    }
        }
        /* k-tile kt has landed for this thread; the barrier makes it visible to all and
         * guarantees every warp is done reading the slot the prefetch below overwrites. */
        cs_cp_async_wait<STAGES - 2>();
        __syncthreads();
        const int nk = kt + STAGES - 1;
        if (nk < KT) {
            const int s = nk % STAGES;
            cs_gemm_load_tile<T, BM, BK, NT>(sA + s * BM * BK, X, m0, a.m, a.k, k0 + nk * BK, tid);
            cs_gemm_load_tile<T, BN, BK, NT>(sB + s * BN * BK, W, n0, a.n, a.k, k0 + nk * BK, tid);
        }
        cs_cp_async_commit(); /* possibly empty: keeps the group count in step */

        const T *tA = sA + (kt % STAGES) * BM * BK;
        const T *tB = sB + (kt % STAGES) * BN * BK;
#pragma unroll
        for (int kk = 0; kk < BK / 16; kk++) {
            uint32_t af[MI][4], bf[NI][2];
#pragma unroll
            for (int mi = 0; mi < MI; mi++) {
                /* lanes 0-15: rows 0-15 at k 0-7; lanes 16-31: rows 0-15 at k 8-15 */
                const int r = wm * WM + mi * 16 + (lane & 15);
                cs_ldmatrix_x4(af[mi], tA + cs_gemm_swz<BK>(r, kk * 2 + (lane >> 4)));
            }
#pragma unroll
            for (int p = 0; p < NI / 2; p++) {
                /* matrices: (n 0-7, k 0-7) (n 0-7, k 8-15) (n 8-15, k 0-7) (n 8-15, k 8-15) */
                const int r = wn * WN + p * 16 + (lane & 7) + ((lane >> 4) << 3);
                uint32_t t4[4];
                cs_ldmatrix_x4(t4, tB + cs_gemm_swz<BK>(r, kk * 2 + ((lane >> 3) & 1)));
                bf[2 * p][0] = t4[0];
                bf[2 * p][1] = t4[1];
                bf[2 * p + 1][0] = t4[2];
                bf[2 * p + 1][1] = t4[3];
            }
#pragma unroll
            for (int mi = 0; mi < MI; mi++)
#pragma unroll
                for (int ni = 0; ni < NI; ni++) cs_mma16816<T>(acc[mi][ni], af[mi], bf[ni]);
        }
    }
    cs_cp_async_wait<0>();

    if (SPLIT) {
#pragma unroll
        for (int i = 0; i < MI; i++)
#pragma unroll
            for (int j = 0; j < NI; j++)
#pragma unroll
                for (int e = 0; e < 4; e++) acc[i][j][e] += tot[i][j][e];
        if (nz > 1 && !gemm_split_gather<MI, NI, WM, WN>(a, acc, m0, n0, wm, wn, lane, z, nz, sem, s_last))
            return false;
    }

    /* accumulator (mi, ni): c0,c1 at (row g, cols 2t, 2t+1), c2,c3 at row g + 8 */
#pragma unroll
    for (int ni = 0; ni < NI; ni++) {
        const int col = n0 + wn * WN + ni * 8 + (lane & 3) * 2;
        if (col >= a.n) continue;
        float2 b = make_float2(0.0f, 0.0f);
        if (a.epi != CS_K_EPI_NONE) b = *reinterpret_cast<const float2 *>(a.bias + col);
#pragma unroll
        for (int mi = 0; mi < MI; mi++) {
            const int row = m0 + wm * WM + mi * 16 + (lane >> 2);
            if (row < a.m) cs_gemm_store_pair<T>(a, row, col, acc[mi][ni][0], acc[mi][ni][1], b.x, b.y);
            if (row + 8 < a.m)
                cs_gemm_store_pair<T>(a, row + 8, col, acc[mi][ni][2], acc[mi][ni][3], b.x, b.y);
        }
    }
    return true;
}

#endif
