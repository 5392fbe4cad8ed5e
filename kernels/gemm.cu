/* Tensor-core GEMM with fused epilogues: out(M, N) = epi(x(M, K) @ W(N, K)^T).
 *
 * Both operands are K-major (x row-major, W in nn.Linear layout), which is exactly what
 * mma.sync.m16n8k16.row.col wants: ldmatrix without transposition for both. A multi-stage
 * cp.async pipeline keeps STAGES-1 k-tiles of BK = 32 in flight; tiles past M or N (and k-chunks
 * past K) are zero-filled by cp.async, so any M >= 1 works and N, K need only be multiples of 8.
 *
 * Batch invariance: every configuration gives each output element ONE fp32 accumulator that
 * receives the mma k-steps k = 0, 16, 32, ... in increasing order; no reordering.
 * The tile shape (chosen from M) only decides which block computes an element, so a row's
 * result is bitwise the same whatever M, the batch or the configuration.
 *
 * Fixed split of K (args.k_chunk > 0, the SPLIT kernels): one accumulator per chunk of K, the
 * chunks' partials added in chunk order to a sum that starts at 0.0f. Either one block walks
 * every chunk (in-block: a second register set holds the sum) or each chunk has its own block
 * (grid.z; partials through args.split_ws, the tile's last block adds them). Same additions in
 * the same order either way, so the result depends on k_chunk alone, never on M or the tile:
 * small batches get K spread over more blocks without losing batch invariance. */
#include "gemm_tile.cuh"

template <typename T, int BM, int BN, int BK, int WARPS_M, int WARPS_N, int STAGES, int MIN_BLOCKS,
          bool SPLIT>
static __global__ void __launch_bounds__(WARPS_M *WARPS_N * 32, SPLIT ? 1 : MIN_BLOCKS)
    gemm_kernel(cs_k_gemm_args a) {
    CS_DYN_SMEM(gemm_smem, 128);
    __shared__ int s_last;
    cs_gemm_tile<T, BM, BN, BK, WARPS_M, WARPS_N, STAGES, SPLIT>(
        a, gemm_smem, blockIdx.y, blockIdx.x, blockIdx.z, gridDim.z,
        SPLIT ? a.split_sem + blockIdx.y * gridDim.x + blockIdx.x : nullptr, &s_last);
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
#define GEMM_BK_OF(i, nm, bm, bn, bk, ...) bk,
#define GEMM_NAME_OF(i, nm, ...) nm,
static_assert(CS_K_GEMM_N_MMA_TILES == 7, "GEMM_CONFIGS and kernels.h disagree");
static const int gemm_bm[CS_K_GEMM_N_TILES] = {GEMM_CONFIGS(GEMM_BM_OF) 128, 128, 128, 128, 128, 128};
static const int gemm_bn[CS_K_GEMM_N_TILES] = {GEMM_CONFIGS(GEMM_BN_OF) 128, 256, 128, 256, 128, 256};
static const int gemm_bk[CS_K_GEMM_N_TILES] = {GEMM_CONFIGS(GEMM_BK_OF) 64, 64, 64, 64, 64, 64};
static const char *const gemm_names[CS_K_GEMM_N_TILES] = {
    GEMM_CONFIGS(GEMM_NAME_OF) "wgmma128x128k64", "wgmma128x256k64", "wgmma128x128k64p",
    "wgmma128x256k64p", "wgmma128x128ws", "wgmma128x256ws"};
/* Whether cs_k_gemm_setup could give the configuration its shared memory (and, for the wgmma
 * ones, whether the device runs sm_90a code), per device: one process may drive different
 * cards, and a tile usable on one (wgmma on an H100) must not be picked on another. */
#define GEMM_MAX_DEVICES 64
static bool gemm_ok_dev[GEMM_MAX_DEVICES][CS_K_GEMM_N_TILES];

/* The current device's row of gemm_ok_dev (a row of falses past GEMM_MAX_DEVICES). */
static const bool *gemm_ok_row(void) {
    static const bool none[CS_K_GEMM_N_TILES] = {};
    int d = 0;
    if (cudaGetDevice(&d) != cudaSuccess || d < 0 || d >= GEMM_MAX_DEVICES) return none;
    return gemm_ok_dev[d];
}

/* splits: the number of K chunks (1: the plain kernel); with split_ws they go on grid.z. */
template <typename T, int BM, int BN, int BK, int WARPS_M, int WARPS_N, int STAGES, int MIN_BLOCKS>
static cudaError_t gemm_launch(const cs_k_gemm_args *a, int32_t splits, cudaStream_t stream) {
    const size_t smem = (size_t)STAGES * (BM + BN) * BK * sizeof(T);
    const unsigned gy = cs_div_up((size_t)a->m, BM);
    const unsigned gz = splits > 1 && a->split_ws ? (unsigned)splits : 1u;
    if (gy > 65535u || gz > 65535u) return cudaErrorInvalidValue;
    dim3 grid(cs_div_up((size_t)a->n, BN), gy, gz);
    const dim3 block(WARPS_M * WARPS_N * 32);
    if (splits > 1)
        return cs_launch(gemm_kernel<T, BM, BN, BK, WARPS_M, WARPS_N, STAGES, MIN_BLOCKS, true>, grid,
                         block, smem, stream, *a);
    return cs_launch(gemm_kernel<T, BM, BN, BK, WARPS_M, WARPS_N, STAGES, MIN_BLOCKS, false>, grid,
                     block, smem, stream, *a);
}

template <typename T, int BM, int BN, int BK, int WARPS_M, int WARPS_N, int STAGES, int MIN_BLOCKS>
static cudaError_t gemm_set_smem() {
    const int smem = STAGES * (BM + BN) * BK * (int)sizeof(T);
    cudaError_t e = cudaFuncSetAttribute(
        gemm_kernel<T, BM, BN, BK, WARPS_M, WARPS_N, STAGES, MIN_BLOCKS, false>,
        cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
    if (e != cudaSuccess) return e;
    return cudaFuncSetAttribute(gemm_kernel<T, BM, BN, BK, WARPS_M, WARPS_N, STAGES, MIN_BLOCKS, true>,
                                cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
}

template <typename T>
static cudaError_t gemm_dispatch(const cs_k_gemm_args *a, int tile, int32_t splits, cudaStream_t stream) {
    switch (tile) {
#define GEMM_CASE(i, nm, ...) \
    case i: return gemm_launch<T, __VA_ARGS__>(a, splits, stream);
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
    if (dev >= GEMM_MAX_DEVICES) return cudaErrorInvalidDevice;
    bool ok[CS_K_GEMM_N_TILES] = {}; /* written to gemm_ok_dev[dev] once, at the end */
#define GEMM_SETUP(i, nm, bm, bn, bk, wm, wn, st, mb)                                          \
    ok[i] = st * (bm + bn) * bk * 2 <= optin;                                                 \
    if (ok[i]) {                                                                              \
        if ((e = gemm_set_smem<__half, bm, bn, bk, wm, wn, st, mb>()) != cudaSuccess) return e;  \
        if ((e = gemm_set_smem<__nv_bfloat16, bm, bn, bk, wm, wn, st, mb>()) != cudaSuccess)     \
            return e;                                                                         \
    }
    GEMM_CONFIGS(GEMM_SETUP)
#undef GEMM_SETUP
    int wg[CS_K_GEMM_N_TILES];
    if ((e = cs_k_gemm_wgmma_setup(wg)) != cudaSuccess) return e;
    for (int t = CS_K_GEMM_N_MMA_TILES; t < CS_K_GEMM_N_TILES; t++) ok[t] = wg[t] != 0;
    for (int t = 0; t < CS_K_GEMM_N_TILES; t++) gemm_ok_dev[dev][t] = ok[t];
    return cudaSuccess;
}

extern "C" const char *cs_k_gemm_tile_name(int tile) {
    return tile >= 0 && tile < CS_K_GEMM_N_TILES ? gemm_names[tile] : "?";
}

extern "C" int cs_k_gemm_tile_usable(int tile) {
    return tile >= 0 && tile < CS_K_GEMM_N_TILES && gemm_ok_row()[tile];
}

/* Preference order, largest work per block first; the first that still gives every SM a block
 * wins, else the last (most blocks). */
static const int gemm_pref[] = {CS_K_GEMM_TILE_128x128, CS_K_GEMM_TILE_64x64, CS_K_GEMM_TILE_32x32};

extern "C" size_t cs_k_gemm_tiles(int tile, int32_t m, int32_t n) {
    if (tile < 0 || tile >= CS_K_GEMM_N_TILES || m < 0 || n < 0) return 0;
    return (size_t)cs_div_up((size_t)m, gemm_bm[tile]) * cs_div_up((size_t)n, gemm_bn[tile]);
}

extern "C" int32_t cs_k_gemm_splits(int32_t k, int32_t k_chunk) { return cs_gemm_splits(k, k_chunk); }

extern "C" int cs_k_gemm_split_across(int32_t m, int32_t n, int32_t k, int32_t k_chunk,
                                      size_t ws_floats, size_t sems, int n_sm, int *tile) {
    const int32_t s = cs_k_gemm_splits(k, k_chunk);
    if (s < 2 || cs_k_gemm_tiles(cs_k_gemm_pick(m, n, 1, n_sm), m, n) >= 4 * (size_t)n_sm) return 0;
    if ((size_t)s * (size_t)m * (size_t)n > ws_floats) return 0;
    const int t = cs_k_gemm_pick(m, n, s, n_sm);
    if (cs_k_gemm_tiles(t, m, n) > sems) return 0;
    *tile = t;
    return 1;
}

extern "C" int cs_k_gemm_chunk_ok(int tile, int32_t k_chunk, int across) {
    if (tile < 0 || tile >= CS_K_GEMM_N_TILES || k_chunk <= 0 || k_chunk % gemm_bk[tile]) return 0;
    return tile < CS_K_GEMM_N_MMA_TILES || (tile == CS_K_GEMM_TILE_WGMMA_WS && !across);
}

extern "C" cs_k_gemm_tile cs_k_gemm_pick(int32_t m, int32_t n, int32_t k_splits, int n_sm) {
    const int np = (int)(sizeof gemm_pref / sizeof gemm_pref[0]);
    const bool *gemm_ok = gemm_ok_row();
    if (k_splits < 1) k_splits = 1;
    for (int i = 0; i < np - 1; i++) {
        const int t = gemm_pref[i];
        if (!gemm_ok[t]) continue;
        if (cs_k_gemm_tiles(t, m, n) * (size_t)k_splits >= (size_t)n_sm) return (cs_k_gemm_tile)t;
    }
    return (cs_k_gemm_tile)gemm_pref[np - 1];
}

extern "C" cudaError_t cs_k_gemm(const cs_k_gemm_args *a, int n_sm, int tile, cudaStream_t stream) {
    if (a->m < 0 || a->n <= 0 || a->k <= 0 || a->n % 8 || a->k % 8) return cudaErrorInvalidValue;
    if (a->epi != CS_K_EPI_NONE && (!a->bias || (uintptr_t)a->bias % 8)) /* read as float2 */
        return cudaErrorInvalidValue;
    if (((uintptr_t)a->x | (uintptr_t)a->w) % 16 || (uintptr_t)a->out % 8) return cudaErrorInvalidValue;
    if (a->k_chunk < 0 || (a->split_ws && (!a->split_sem || (uintptr_t)a->split_ws % 8)))
        return cudaErrorInvalidValue;
    if (a->m == 0) return cudaSuccess;
    const int32_t splits = cs_k_gemm_splits(a->k, a->k_chunk);
    if (tile < 0) tile = cs_k_gemm_pick(a->m, a->n, a->split_ws ? splits : 1, n_sm);
    if (tile >= CS_K_GEMM_N_TILES || !gemm_ok_row()[tile]) return cudaErrorInvalidValue;
    if (splits > 1 && !cs_k_gemm_chunk_ok(tile, a->k_chunk, a->split_ws != NULL)) return cudaErrorInvalidValue;
    if (tile >= CS_K_GEMM_N_MMA_TILES) return cs_k_gemm_wgmma(a, tile, stream);
    if (a->dtype == CLIPSKIP_DTYPE_F16) return gemm_dispatch<__half>(a, tile, splits, stream);
    if (a->dtype == CLIPSKIP_DTYPE_BF16) return gemm_dispatch<__nv_bfloat16>(a, tile, splits, stream);
    return cudaErrorInvalidValue;
}
