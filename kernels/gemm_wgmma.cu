/* Hopper GEMM path: the same out = epi(x W^T) as gemm.cu, with wgmma (sm_90a) instead of
 * mma.sync. Compiled for sm_90a by its own CMake object target (kernels/README.md); in every
 * other arch's code the kernel bodies are empty and wg_probe reports 0, so
 * cs_k_gemm_wgmma_setup marks the path unusable.
 *
 * Status (H100, 2026-11-27, one run of the first variant, 128x128 wait-0, in the form before
 * this file was templated and wg_pin added): correct (same error against float64 as mma.sync)
 * and BITWISE EQUAL to the mma.sync configurations on all 14 tested shapes/epilogues, f16 and
 * bf16 (HGMMA accumulates each k-step of 16 exactly as HMMA does), so it can be mixed with them
 * without breaking batch invariance. Speed: 0.8-1.3x the mma.sync 128x128k64 tile, far from
 * cuBLASLt. The templated form and the other three variants have NOT run on a GPU (on the CPU
 * emulator, tests/emu: all four bitwise equal to mma.sync). None is
 * picked by cs_k_gemm_pick yet; tests and bench_kernels ask for them by index.
 *
 * Block: BM = 128 rows x BN (128 or 256) columns, 2 warpgroups (256 threads), warpgroup g owns
 * rows 64g..64g+63 (one m64nBNk16 wgmma per k-step of 16). K-tiles of 64 in a STAGES-deep
 * cp.async pipeline, loaded by all 256 threads with gemm.cu's loader (cs_gemm_load_tile, BK =
 * 64): rows of 128 bytes, 16-byte chunk c of row r at c ^ (r & 7). With every tile 1024-byte aligned that is the
 * 128-byte swizzle the wgmma shared-memory descriptor names (layout type 1), 8-row groups 1024
 * bytes apart (SBO); k-step kk of a tile starts 32 bytes further. DEPTH = wgmma groups left in
 * flight at the end of an iteration (0: wait for all; 1: the next k-tile's loads and the
 * barrier overlap the previous tile's math); the prefetch distance is STAGES - 1 - DEPTH so a
 * slot is refilled only after the wgmma that read it completed on every warpgroup.
 * k order: one fp32 accumulator per element fed k = 0, 16, 32, ... in order, as in gemm.cu. */
#include "wgmma.cuh"

/* The variants: X(tile index, BN, STAGES, DEPTH) */
#define WG_VARIANTS(X)                          \
    X(CS_K_GEMM_TILE_WGMMA, 128, 3, 0)          \
    X(CS_K_GEMM_TILE_WGMMA_256, 256, 3, 0)      \
    X(CS_K_GEMM_TILE_WGMMA_P, 128, 4, 1)        \
    X(CS_K_GEMM_TILE_WGMMA_256_P, 256, 4, 1)

/* dynamic shared memory: STAGES x (BM + BN) x BK x 2 bytes, + slack to align the base to 1024 */
#define WG_SMEM(bn, st) ((st) * (WG_BM + (bn)) * WG_BK * 2 + 1024)

/* Queue k-tile kt of x (rows m0..) into sA and of W (rows n0..) into sB: gemm.cu's BK = 64 tile
 * layout, which is the 128-byte swizzle the descriptors name. */
template <typename T, int BN>
__device__ __forceinline__ void wg_load_stage(T *sA, T *sB, const T *X, const T *W,
                                              const cs_k_gemm_args &a, int m0, int n0, int kt,
                                              int tid) {
    cs_gemm_load_tile<T, WG_BM, WG_BK, WG_THREADS>(sA, X, m0, a.m, a.k, kt * WG_BK, tid);
    cs_gemm_load_tile<T, BN, WG_BK, WG_THREADS>(sB, W, n0, a.n, a.k, kt * WG_BK, tid);
}

template <typename T, int BN, int STAGES, int DEPTH>
static __global__ void __launch_bounds__(WG_THREADS, 1) wg_gemm_kernel(cs_k_gemm_args a) {
#if WG_HAVE
    constexpr int PD = STAGES - 1 - DEPTH; /* prefetch distance in k-tiles */
    constexpr int ND = BN / 2;             /* accumulators per thread */
    static_assert(PD >= 1, "pipeline too shallow for the wgmma depth");
    CS_DYN_SMEM(wg_smem_raw, 16);
    /* the 128-byte swizzle is anchored to 1024-byte address boundaries */
    const uint32_t raw = cs_smem_addr(wg_smem_raw);
    unsigned char *base = wg_smem_raw + ((1024 - (raw & 1023)) & 1023);
    T *sA = reinterpret_cast<T *>(base);                                 /* STAGES x (128, 64) */
    T *sB = reinterpret_cast<T *>(base + STAGES * WG_BM * WG_BK * 2);    /* STAGES x (BN, 64) */

    const int tid = threadIdx.x, wgi = tid >> 7, lane = tid & 31, warp = (tid >> 5) & 3;
    const int m0 = blockIdx.y * WG_BM, n0 = blockIdx.x * BN;
    const T *X = static_cast<const T *>(a.x), *W = static_cast<const T *>(a.w);
    const int KT = (a.k + WG_BK - 1) / WG_BK;

#pragma unroll
    for (int s = 0; s < PD; s++) {
        if (s < KT) {
            wg_load_stage<T, BN>(sA + s * WG_BM * WG_BK, sB + s * BN * WG_BK, X, W, a, m0, n0, s, tid);
        }
        cs_cp_async_commit();
    }

    float d[ND];
#pragma unroll
    for (int i = 0; i < ND; i++) d[i] = 0.0f;

    for (int kt = 0; kt < KT; kt++) {
        cs_cp_async_wait<PD - 1>(); /* this thread's part of k-tile kt has landed */
        /* cp.async wrote through the generic proxy; wgmma reads through the async proxy */
        wg_fence_proxy_async();
        __syncthreads(); /* tile kt visible to all; the slot refilled below is free everywhere */
        const int nk = kt + PD;
        if (nk < KT) {
            const int s = nk % STAGES;
            wg_load_stage<T, BN>(sA + s * WG_BM * WG_BK, sB + s * BN * WG_BK, X, W, a, m0, n0, nk, tid);
        }
        cs_cp_async_commit();

        const uint32_t tA = cs_smem_addr(sA + (kt % STAGES) * WG_BM * WG_BK) + wgi * 64 * 128;
        const uint32_t tB = cs_smem_addr(sB + (kt % STAGES) * BN * WG_BK);
        wg_ktile<T, BN, DEPTH>(d, tA, tB);
    }
    wg_wait<0>();
    wg_pin<ND>(d);
    cs_cp_async_wait<0>();

    wg_store<T, BN>(a, d, m0 + wgi * 64, n0, warp, lane);
#endif
}

/* 1 when the code the device runs was compiled with wgmma (sm_90a), else 0. */
static __global__ void wg_probe(int *out) { *out = WG_HAVE; }

static bool wg_ok[CS_K_GEMM_N_TILES];

template <typename T, int BN, int STAGES, int DEPTH> static cudaError_t wg_set_smem() {
    return cudaFuncSetAttribute(wg_gemm_kernel<T, BN, STAGES, DEPTH>,
                                cudaFuncAttributeMaxDynamicSharedMemorySize, WG_SMEM(BN, STAGES));
}

/* usable[t] for the current device (cs_k_gemm_wgmma_setup then only ever sets wg_ok flags, so
 * an encoder opening while another thread runs GEMMs never makes a tile briefly unusable). */
static cudaError_t wg_setup(int usable[CS_K_GEMM_N_TILES]) {
    int dev = 0, major = 0, minor = 0, optin = 0;
    cudaError_t e = cudaGetDevice(&dev);
    if (e == cudaSuccess) e = cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev);
    if (e == cudaSuccess) e = cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev);
    if (e == cudaSuccess) e = cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev);
    if (e != cudaSuccess) return e;
    if (major != 9 || minor != 0) return cudaSuccess; /* sm_90a code runs on 9.0 only */
    int *dflag = NULL, h = 0;
    if ((e = cudaMalloc(&dflag, sizeof(int))) != cudaSuccess) return e;
    e = cs_launch_plain(wg_probe, dim3(1), dim3(1), 0, (cudaStream_t)0, dflag);
    if (e == cudaSuccess) e = cudaMemcpy(&h, dflag, sizeof(int), cudaMemcpyDeviceToHost);
    cudaFree(dflag);
    if (e != cudaSuccess || !h) return e;
#define WG_SETUP(idx, bn, st, dp)                                                              \
    if (WG_SMEM(bn, st) <= optin) {                                                            \
        if ((e = wg_set_smem<__half, bn, st, dp>()) != cudaSuccess) return e;                 \
        if ((e = wg_set_smem<__nv_bfloat16, bn, st, dp>()) != cudaSuccess) return e;          \
        usable[idx] = 1;                                                                      \
    }
    WG_VARIANTS(WG_SETUP)
#undef WG_SETUP
    wg_ws_setup(usable, optin); /* gemm_wgmma_ws.cu: the TMA + producer warpgroup variants */
    return cudaSuccess;
}

extern "C" cudaError_t cs_k_gemm_wgmma_setup(int usable[CS_K_GEMM_N_TILES]) {
    for (int t = 0; t < CS_K_GEMM_N_TILES; t++) usable[t] = 0;
    const cudaError_t e = wg_setup(usable);
    /* wg_ok: set up on some device of the process (never cleared: gemm.cu's per-device table
     * decides where a tile may run; this only guards launches of kernels never set up) */
    for (int t = 0; t < CS_K_GEMM_N_TILES; t++)
        if (usable[t]) wg_ok[t] = true;
    return e;
}

template <typename T, int BN, int STAGES, int DEPTH>
static cudaError_t wg_launch(const cs_k_gemm_args *a, cudaStream_t stream) {
    const unsigned gy = cs_div_up((size_t)a->m, WG_BM);
    if (gy > 65535u) return cudaErrorInvalidValue;
    const dim3 grid(cs_div_up((size_t)a->n, BN), gy);
    return cs_launch_plain(wg_gemm_kernel<T, BN, STAGES, DEPTH>, grid, dim3(WG_THREADS), WG_SMEM(BN, STAGES),
                           stream, *a);
}

template <typename T> static cudaError_t wg_dispatch(const cs_k_gemm_args *a, int tile, cudaStream_t stream) {
    switch (tile) {
#define WG_CASE(idx, bn, st, dp) \
    case idx: return wg_launch<T, bn, st, dp>(a, stream);
        WG_VARIANTS(WG_CASE)
#undef WG_CASE
    }
    return cudaErrorInvalidValue;
}

extern "C" cudaError_t cs_k_gemm_wgmma(const cs_k_gemm_args *a, int tile, cudaStream_t stream) {
    if (tile == CS_K_GEMM_TILE_WGMMA_WS || tile == CS_K_GEMM_TILE_WGMMA_WS_256) return wg_ws_gemm(a, tile, stream);
    if (tile < 0 || tile >= CS_K_GEMM_N_TILES || !wg_ok[tile]) return cudaErrorInvalidValue;
    if (a->dtype == CLIPSKIP_DTYPE_F16) return wg_dispatch<__half>(a, tile, stream);
    if (a->dtype == CLIPSKIP_DTYPE_BF16) return wg_dispatch<__nv_bfloat16>(a, tile, stream);
    return cudaErrorInvalidValue;
}
