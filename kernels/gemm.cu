/* Tensor-core GEMM with fused epilogues: out(M, N) = epi(x(M, K) @ W(N, K)^T).
 *
 * Both operands are K-major (x row-major, W in nn.Linear layout), which is exactly what
 * mma.sync.m16n8k16.row.col wants: ldmatrix without transposition for both. A multi-stage
 * cp.async pipeline keeps STAGES-1 k-tiles of BK = 32 in flight; tiles past M or N (and k-chunks
 * past K) are zero-filled by cp.async, so any M >= 1 works and N, K need only be multiples of 8.
 *
 * Batch invariance: every configuration gives each output element ONE fp32 accumulator that
 * receives the mma k-steps k = 0, 16, 32, ... in increasing order; no split-K, no reordering.
 * The tile shape (chosen from M) only decides which block computes an element, so a row's
 * result is bitwise the same whatever M, the batch or the configuration. */
#include "common.cuh"

template <typename T, int BM, int BN, int BK, int WARPS_M, int WARPS_N, int STAGES, int MIN_BLOCKS>
static __global__ void __launch_bounds__(WARPS_M *WARPS_N * 32, MIN_BLOCKS)
    gemm_kernel(cs_k_gemm_args a) {
    constexpr int NT = WARPS_M * WARPS_N * 32;
    constexpr int WM = BM / WARPS_M, WN = BN / WARPS_N; /* warp tile */
    constexpr int MI = WM / 16, NI = WN / 8;             /* mma tiles per warp */
    static_assert(WM % 16 == 0 && WN % 16 == 0, "warp tile must be whole 16x16 pairs");

    extern __shared__ __align__(128) unsigned char gemm_smem[];
    T *sA = reinterpret_cast<T *>(gemm_smem);  /* STAGES x (BM, BK) */
    T *sB = sA + STAGES * BM * BK;        /* STAGES x (BN, BK) */

    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int wm = warp / WARPS_N, wn = warp % WARPS_N;
    const int m0 = blockIdx.y * BM, n0 = blockIdx.x * BN;
    const T *X = static_cast<const T *>(a.x), *W = static_cast<const T *>(a.w);
    const int KT = (a.k + BK - 1) / BK;

#pragma unroll
    for (int s = 0; s < STAGES - 1; s++) {
        if (s < KT) {
            cs_gemm_load_tile<T, BM, BK, NT>(sA + s * BM * BK, X, m0, a.m, a.k, s * BK, tid);
            cs_gemm_load_tile<T, BN, BK, NT>(sB + s * BN * BK, W, n0, a.n, a.k, s * BK, tid);
        }
        cs_cp_async_commit();
    }

    float acc[MI][NI][4];
#pragma unroll
    for (int i = 0; i < MI; i++)
#pragma unroll
        for (int j = 0; j < NI; j++)
#pragma unroll
            for (int e = 0; e < 4; e++) acc[i][j][e] = 0.0f;

    for (int kt = 0; kt < KT; kt++) {
        /* k-tile kt has landed for this thread; the barrier makes it visible to all and
         * guarantees every warp is done reading the slot the prefetch below overwrites. */
        cs_cp_async_wait<STAGES - 2>();
        __syncthreads();
        const int nk = kt + STAGES - 1;
        if (nk < KT) {
            const int s = nk % STAGES;
            cs_gemm_load_tile<T, BM, BK, NT>(sA + s * BM * BK, X, m0, a.m, a.k, nk * BK, tid);
            cs_gemm_load_tile<T, BN, BK, NT>(sB + s * BN * BK, W, n0, a.n, a.k, nk * BK, tid);
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
}

/* ---- configurations: BM, BN, BK, warps M x N, stages, min blocks per SM. Every one keeps its
 * shared memory <= 96 KB so that it runs on sm_86/89 (99 KB per block) as well as sm_80/90.
 * X(index, name, config). The first three are the ones cs_k_gemm_pick uses: on an H100
 * (bench_kernels sweep, 2026-11-27) each was the fastest or within 5% of it at CLIP-L's shapes
 * for its range of M; the k32 ones are the first design, kept for the sweep and the tests.
 * 128x256 and 256x128 (warp tile 64x64, 72 KB) were measured 10-40% slower than 128x128k64 at
 * batch 256 and 1024 and were dropped. */
#define GEMM_CONFIGS(X)                                                                    \
    X(0, "128x128k64", 128, 128, 64, 2, 4, 3, 2) /* warp 64x32;  96 KB; batch >= 32 */     \
    X(1, "64x64k64", 64, 64, 64, 2, 2, 4, 2)     /* warp 32x32;  64 KB; batch ~8-16 */     \
    X(2, "32x32k128", 32, 32, 128, 2, 2, 4, 2)   /* warp 16x16;  64 KB; batch 1 */         \
    X(3, "128x128k32", 128, 128, 32, 2, 4, 4, 2) /* warp 64x32;  64 KB */                  \
    X(4, "64x64k32", 64, 64, 32, 2, 2, 4, 4)     /* warp 32x32;  32 KB */                  \
    X(5, "32x32k32", 32, 32, 32, 2, 2, 6, 4)     /* warp 16x16;  24 KB */                  \
    X(6, "32x32k256", 32, 32, 256, 2, 2, 3, 2)   /* warp 16x16;  96 KB; batch 1, not run yet */

#define GEMM_BM_OF(i, nm, bm, bn, ...) bm,
#define GEMM_BN_OF(i, nm, bm, bn, ...) bn,
#define GEMM_NAME_OF(i, nm, ...) nm,
static_assert(CS_K_GEMM_N_MMA_TILES == 7, "GEMM_CONFIGS and kernels.h disagree");
static const int gemm_bm[CS_K_GEMM_N_TILES] = {GEMM_CONFIGS(GEMM_BM_OF) 128, 128, 128, 128};
static const int gemm_bn[CS_K_GEMM_N_TILES] = {GEMM_CONFIGS(GEMM_BN_OF) 128, 256, 128, 256};
static const char *const gemm_names[CS_K_GEMM_N_TILES] = {
    GEMM_CONFIGS(GEMM_NAME_OF) "wgmma128x128k64", "wgmma128x256k64", "wgmma128x128k64p",
    "wgmma128x256k64p"};
/* Whether cs_k_gemm_setup could give the configuration its shared memory on this device. */
static bool gemm_ok[CS_K_GEMM_N_TILES];

template <typename T, int BM, int BN, int BK, int WARPS_M, int WARPS_N, int STAGES, int MIN_BLOCKS>
static cudaError_t gemm_launch(const cs_k_gemm_args *a, cudaStream_t stream) {
    const size_t smem = (size_t)STAGES * (BM + BN) * BK * sizeof(T);
    const unsigned gy = cs_div_up((size_t)a->m, BM);
    if (gy > 65535u) return cudaErrorInvalidValue;
    dim3 grid(cs_div_up((size_t)a->n, BN), gy);
    gemm_kernel<T, BM, BN, BK, WARPS_M, WARPS_N, STAGES, MIN_BLOCKS>
        <<<grid, WARPS_M * WARPS_N * 32, smem, stream>>>(*a);
    return cudaGetLastError();
}

template <typename T, int BM, int BN, int BK, int WARPS_M, int WARPS_N, int STAGES, int MIN_BLOCKS>
static cudaError_t gemm_set_smem() {
    const int smem = STAGES * (BM + BN) * BK * (int)sizeof(T);
    return cudaFuncSetAttribute(gemm_kernel<T, BM, BN, BK, WARPS_M, WARPS_N, STAGES, MIN_BLOCKS>,
                                cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
}

template <typename T>
static cudaError_t gemm_dispatch(const cs_k_gemm_args *a, int tile, cudaStream_t stream) {
    switch (tile) {
#define GEMM_CASE(i, nm, ...) \
    case i: return gemm_launch<T, __VA_ARGS__>(a, stream);
        GEMM_CONFIGS(GEMM_CASE)
#undef GEMM_CASE
    }
    return cudaErrorInvalidValue;
}

extern "C" cudaError_t cs_k_gemm_setup(void) {
    int dev = 0, optin = 0;
    cudaError_t e = cudaGetDevice(&dev);
    if (e == cudaSuccess) e = cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev);
    if (e != cudaSuccess) return e;
#define GEMM_SETUP(i, nm, bm, bn, bk, wm, wn, st, mb)                                          \
    gemm_ok[i] = st * (bm + bn) * bk * 2 <= optin;                                            \
    if (gemm_ok[i]) {                                                                         \
        if ((e = gemm_set_smem<__half, bm, bn, bk, wm, wn, st, mb>()) != cudaSuccess) return e;  \
        if ((e = gemm_set_smem<__nv_bfloat16, bm, bn, bk, wm, wn, st, mb>()) != cudaSuccess)     \
            return e;                                                                         \
    }
    GEMM_CONFIGS(GEMM_SETUP)
#undef GEMM_SETUP
    int wg[CS_K_GEMM_N_TILES];
    if ((e = cs_k_gemm_wgmma_setup(wg)) != cudaSuccess) return e;
    for (int t = CS_K_GEMM_N_MMA_TILES; t < CS_K_GEMM_N_TILES; t++) gemm_ok[t] = wg[t] != 0;
    return cudaSuccess;
}

extern "C" const char *cs_k_gemm_tile_name(int tile) {
    return tile >= 0 && tile < CS_K_GEMM_N_TILES ? gemm_names[tile] : "?";
}

extern "C" int cs_k_gemm_tile_usable(int tile) {
    return tile >= 0 && tile < CS_K_GEMM_N_TILES && gemm_ok[tile];
}

/* Preference order, largest work per block first; the first that still gives every SM a block
 * wins, else the last (most blocks). */
static const int gemm_pref[] = {CS_K_GEMM_TILE_128x128, CS_K_GEMM_TILE_64x64, CS_K_GEMM_TILE_32x32};

extern "C" cs_k_gemm_tile cs_k_gemm_pick(int32_t m, int32_t n, int n_sm) {
    const int np = (int)(sizeof gemm_pref / sizeof gemm_pref[0]);
    for (int i = 0; i < np - 1; i++) {
        const int t = gemm_pref[i];
        if (!gemm_ok[t]) continue;
        const size_t blocks = (size_t)cs_div_up((size_t)m, gemm_bm[t]) * cs_div_up((size_t)n, gemm_bn[t]);
        if (blocks >= (size_t)n_sm) return (cs_k_gemm_tile)t;
    }
    return (cs_k_gemm_tile)gemm_pref[np - 1];
}

extern "C" cudaError_t cs_k_gemm(const cs_k_gemm_args *a, int n_sm, int tile, cudaStream_t stream) {
    if (a->m < 0 || a->n <= 0 || a->k <= 0 || a->n % 8 || a->k % 8) return cudaErrorInvalidValue;
    if (a->epi != CS_K_EPI_NONE && !a->bias) return cudaErrorInvalidValue;
    if (((uintptr_t)a->x | (uintptr_t)a->w) % 16 || (uintptr_t)a->out % 8) return cudaErrorInvalidValue;
    if (a->m == 0) return cudaSuccess;
    if (tile < 0) tile = cs_k_gemm_pick(a->m, a->n, n_sm);
    if (tile >= CS_K_GEMM_N_TILES || !gemm_ok[tile]) return cudaErrorInvalidValue;
    if (tile >= CS_K_GEMM_N_MMA_TILES) return cs_k_gemm_wgmma(a, tile, stream);
    if (a->dtype == CLIPSKIP_DTYPE_F16) return gemm_dispatch<__half>(a, tile, stream);
    if (a->dtype == CLIPSKIP_DTYPE_BF16) return gemm_dispatch<__nv_bfloat16>(a, tile, stream);
    return cudaErrorInvalidValue;
}
