/* Hopper GEMM, the usual sm_90a structure: TMA loads issued by one producer thread, two
 * consumer warpgroups running wgmma, mbarriers between them. Same out = epi(x W^T) and the
 * same k order as gemm.cu and gemm_wgmma.cu (one fp32 accumulator per element fed k = 0, 16,
 * 32, ... in order by m64nBNk16 wgmmas), so the bits match theirs.
 *
 * Status: written 2026-11-27 without a GPU; compiled for sm_90a, never run on a GPU; on the CPU
 * emulator (tests/emu, same day) both variants match float64 and mma.sync bitwise. tests and
 * bench_kernels reach it by tile index (CS_K_GEMM_TILE_WGMMA_WS*), check.sh end to end through
 * CLIPSKIP_CUDA_GEMM_LARGE_TILE; nothing picks it by default. CLIPSKIP_CUDA_WGMMA_WS=0 keeps
 * both variants unusable (check.sh sets it when the kernel test fails with them); a barrier
 * wait longer than 5 s traps, so a deadlock fails a launch instead of hanging the device.
 * The 128-wide tile also takes a fixed split of K in registers (cs_k_gemm_args.k_chunk; added
 * 2026-11-27 in the next session, also never run), so that tile and the split mma.sync tiles
 * of small batches can serve one model under one k_chunk.
 *
 * Block: 3 warpgroups (384 threads). Warpgroup 0 is the producer: it gives back registers
 * (setmaxnreg 40) and one thread loops over the k-tiles: wait until slot s is free (empty[s]),
 * announce the bytes (full[s] expect_tx), and issue two TMA box loads (x: 64 k x 128 rows, W:
 * 64 k x BN rows) that complete on full[s]. Warpgroups 1 and 2 (setmaxnreg 232) own rows 0-63
 * and 64-127: wait for full[s], issue the four k-steps of tile kt, keep that group in flight
 * while waiting for tile kt-1's group, then release slot (kt-1) % STAGES (every consumer thread
 * arrives on empty: count 256). TMA writes the 128-byte swizzle itself (box rows of 128 bytes,
 * 1024-byte aligned slots), the layout wg_desc describes; rows and k past the tensor come back
 * as zeros, as cp.async's zero-fill gives the other kernels. */
#include "wgmma.cuh"

#include <cuda.h>
#include <cudaTypedefs.h>
#include <stdlib.h>
#include <string.h>

#define WS_THREADS 384
/* X(tile index, BN, STAGES): stage = (128 + BN) x 64 x 2 bytes (48 KB for BN 256, 32 KB for 128) */
#define WS_VARIANTS(X)                        \
    X(CS_K_GEMM_TILE_WGMMA_WS_256, 256, 4)    \
    X(CS_K_GEMM_TILE_WGMMA_WS, 128, 6)

#define WS_STAGE_BYTES(bn) ((WG_BM + (bn)) * WG_BK * 2)
#define WS_SMEM(bn, st) ((st) * WS_STAGE_BYTES(bn) + 1024)

#ifdef CS_EMU /* tests/emu: the emulator's mbarriers and TMA */
__device__ __forceinline__ void ws_bar_init(uint64_t *bar, unsigned count) { cs_emu_mbar_init(bar, count); }
__device__ __forceinline__ void ws_bar_expect(uint64_t *bar, unsigned bytes) { cs_emu_mbar_arrive(bar, bytes); }
__device__ __forceinline__ void ws_bar_arrive(uint64_t *bar) { cs_emu_mbar_arrive(bar, 0); }
__device__ __forceinline__ void ws_bar_wait(uint64_t *bar, unsigned parity) { cs_emu_mbar_wait(bar, parity); }
__device__ __forceinline__ void ws_tma_load(void *smem, const CUtensorMap *map, int k, int row, uint64_t *bar) {
    cs_emu_tma_load_2d(smem, map, k, row, bar);
}
__device__ __forceinline__ void ws_bar_init_fence() {}
__device__ __forceinline__ void ws_regs_producer() {}
__device__ __forceinline__ void ws_regs_consumer() {}
#elif WG_HAVE
__device__ __forceinline__ void ws_bar_init(uint64_t *bar, unsigned count) {
    asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(cs_smem_addr(bar)), "r"(count) : "memory");
}
__device__ __forceinline__ void ws_bar_expect(uint64_t *bar, unsigned bytes) {
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(cs_smem_addr(bar)),
                 "r"(bytes) : "memory");
}
__device__ __forceinline__ void ws_bar_arrive(uint64_t *bar) {
    asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(cs_smem_addr(bar)) : "memory");
}
__device__ __forceinline__ uint64_t ws_now_ns() {
    uint64_t t;
    asm volatile("mov.u64 %0, %%globaltimer;\n" : "=l"(t));
    return t;
}
/* Until the phase of this parity has completed. A kernel that has never run must not hang the
 * machine it is tried on: after 5 s of waiting it traps (the launch fails with an error; 5 s
 * leaves room for compute-sanitizer's slowdown, where a wait of a few us can take ms). */
__device__ __forceinline__ void ws_bar_wait(uint64_t *bar, unsigned parity) {
    uint32_t done = 0;
    uint64_t t0 = 0;
    for (unsigned i = 0;; i++) {
        asm volatile("{\n.reg .pred p;\n"
                     "mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\n"
                     "selp.u32 %0, 1, 0, p;\n}\n"
                     : "=r"(done)
                     : "r"(cs_smem_addr(bar)), "r"(parity)
                     : "memory");
        if (done) return;
        if ((i & 1023) == 0) {
            const uint64_t t = ws_now_ns();
            if (!t0) t0 = t;
            else if (t - t0 > 5000000000ull) asm volatile("trap;\n");
        }
    }
}
/* box at (k, row) of the tensor map into smem; completes `bytes` on bar */
__device__ __forceinline__ void ws_tma_load(void *smem, const CUtensorMap *map, int k, int row, uint64_t *bar) {
    asm volatile("cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes"
                 " [%0], [%1, {%2, %3}], [%4];\n" ::"r"(cs_smem_addr(smem)),
                 "l"(reinterpret_cast<uint64_t>(map)), "r"(k), "r"(row), "r"(cs_smem_addr(bar))
                 : "memory");
}
/* the barriers' initial state visible to the TMA unit (async proxy) and to the cluster */
__device__ __forceinline__ void ws_bar_init_fence() {
    asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
    asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
}
/* the producer warpgroup gives registers back; the consumers take them */
__device__ __forceinline__ void ws_regs_producer() { asm volatile("setmaxnreg.dec.sync.aligned.u32 40;\n" ::: "memory"); }
__device__ __forceinline__ void ws_regs_consumer() { asm volatile("setmaxnreg.inc.sync.aligned.u32 232;\n" ::: "memory"); }
#endif

template <typename T, int BN, int STAGES>
static __global__ void __launch_bounds__(WS_THREADS, 1)
    ws_gemm_kernel(const __grid_constant__ CUtensorMap map_x, const __grid_constant__ CUtensorMap map_w,
                   cs_k_gemm_args a) {
#if WG_HAVE
    constexpr int ND = BN / 2; /* accumulators per consumer thread */
    CS_DYN_SMEM(ws_smem_raw, 16);
    __shared__ __align__(8) uint64_t full[STAGES], empty[STAGES];
    const uint32_t raw = cs_smem_addr(ws_smem_raw);
    unsigned char *base = ws_smem_raw + ((1024 - (raw & 1023)) & 1023);
    T *sA = reinterpret_cast<T *>(base);                               /* STAGES x (128, 64) */
    T *sB = reinterpret_cast<T *>(base + STAGES * WG_BM * WG_BK * 2);  /* STAGES x (BN, 64) */

    const int tid = threadIdx.x, wgi = tid >> 7;
    const int m0 = blockIdx.y * WG_BM, n0 = blockIdx.x * BN;
    const int KT = (a.k + WG_BK - 1) / WG_BK;
    if (tid == 0) {
        for (int s = 0; s < STAGES; s++) {
            ws_bar_init(&full[s], 1);
            ws_bar_init(&empty[s], 2 * 128);
        }
        ws_bar_init_fence();
    }
    __syncthreads();

    if (wgi == 0) { /* producer */
        ws_regs_producer();
        if (tid == 0)
            for (int kt = 0; kt < KT; kt++) {
                const int s = kt % STAGES;
                if (kt >= STAGES) ws_bar_wait(&empty[s], ((kt / STAGES) - 1) & 1);
                ws_bar_expect(&full[s], WS_STAGE_BYTES(BN));
                ws_tma_load(sA + s * WG_BM * WG_BK, &map_x, kt * WG_BK, m0, &full[s]);
                ws_tma_load(sB + s * BN * WG_BK, &map_w, kt * WG_BK, n0, &full[s]);
            }
        return;
    }

    ws_regs_consumer();
    const int c = wgi - 1, lane = tid & 31, warp = (tid >> 5) & 3;
    /* Fixed split of K (a.k_chunk, BN 128 only: ws_launch refuses it for 256, whose second
     * register set would not fit): d is the running chunk's partial, tot = 0 + the partials
     * of the chunks before it, folded in at each chunk boundary once the chunk's wgmmas are
     * done; gemm.cu's in-block split does the same additions, so the bits match it. */
    constexpr bool CHUNKS = BN == 128;
    const int chunk_kt = CHUNKS && a.k_chunk > 0 ? a.k_chunk / WG_BK : KT;
    float d[ND], tot[CHUNKS ? ND : 1];
#pragma unroll
    for (int i = 0; i < ND; i++) d[i] = 0.0f;
#pragma unroll
    for (int i = 0; i < (CHUNKS ? ND : 1); i++) tot[i] = 0.0f;
    for (int kt = 0; kt < KT; kt++) {
        const int s = kt % STAGES;
        if (CHUNKS && kt > 0 && kt % chunk_kt == 0) {
            wg_wait<0>();
            wg_pin<ND>(d);
#pragma unroll
            for (int i = 0; i < (CHUNKS ? ND : 1); i++) {
                tot[i] += d[i];
                d[i] = 0.0f;
            }
        }
        ws_bar_wait(&full[s], (kt / STAGES) & 1);
        const uint32_t tA = cs_smem_addr(sA + s * WG_BM * WG_BK) + c * 64 * 128;
        const uint32_t tB = cs_smem_addr(sB + s * BN * WG_BK);
        wg_ktile<T, BN, 1>(d, tA, tB); /* returns with tile kt-1's group done */
        if (kt > 0) ws_bar_arrive(&empty[(kt - 1) % STAGES]);
    }
    wg_wait<0>();
    wg_pin<ND>(d);
    if (CHUNKS && chunk_kt < KT) /* more than one chunk: the sum of all of them */
#pragma unroll
        for (int i = 0; i < (CHUNKS ? ND : 1); i++) d[i] += tot[i];
    wg_store<T, BN>(a, d, m0 + c * 64, n0, warp, lane);
#endif
}

/* ---- host side: tensor maps through the driver's cuTensorMapEncodeTiled (looked up once
 * through the runtime, so nothing links libcuda directly) */
static PFN_cuTensorMapEncodeTiled_v12000 ws_encode;
static bool ws_ok[CS_K_GEMM_N_TILES];

/* Shared memory for the variant, and whether its register split can happen: setmaxnreg.inc
 * waits (it does not fail) until the block's pool has the registers, so a build where ptxas
 * gave the kernel fewer than 128 x 40 + 256 x 232 registers in all would hang every launch. */
template <typename T, int BN, int STAGES> static bool ws_set_smem() {
    cudaFuncAttributes fa;
    if (cudaFuncGetAttributes(&fa, ws_gemm_kernel<T, BN, STAGES>) != cudaSuccess ||
        fa.numRegs * WS_THREADS < 128 * 40 + 256 * 232)
        return false;
    return cudaFuncSetAttribute(ws_gemm_kernel<T, BN, STAGES>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                WS_SMEM(BN, STAGES)) == cudaSuccess;
}

/* ok[t] for each variant this device and driver can run. */
static void ws_setup(bool ok[CS_K_GEMM_N_TILES], int optin) {
    const char *off = getenv("CLIPSKIP_CUDA_WGMMA_WS"); /* "0": keep these variants unusable */
    if (off && !strcmp(off, "0")) return;
    void *fn = NULL;
    cudaDriverEntryPointQueryResult q;
    if (cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &fn, 12000, cudaEnableDefault, &q) !=
            cudaSuccess || q != cudaDriverEntryPointSuccess || !fn) {
        (void)cudaGetLastError();
        return; /* no TMA encoder in this driver: the variants stay unusable */
    }
    ws_encode = (PFN_cuTensorMapEncodeTiled_v12000)fn;
#define WS_SETUP(idx, bn, st)                                                                  \
    if (WS_SMEM(bn, st) <= optin && ws_set_smem<__half, bn, st>() &&                           \
        ws_set_smem<__nv_bfloat16, bn, st>())                                                  \
        ok[idx] = true;
    WS_VARIANTS(WS_SETUP)
#undef WS_SETUP
    (void)cudaGetLastError();
}

/* Called by cs_k_gemm_wgmma_setup once it knows the device runs sm_90a code. */
void wg_ws_setup(int usable[CS_K_GEMM_N_TILES], int optin) {
    bool ok[CS_K_GEMM_N_TILES] = {};
    ws_setup(ok, optin);
    for (int t = 0; t < CS_K_GEMM_N_TILES; t++) /* never cleared: see wg_ok in gemm_wgmma.cu */
        if (ok[t]) ws_ok[t] = true, usable[t] = 1;
}

/* rows x k row-major matrix of 2-byte elements, boxes of 64 k x box_rows rows, 128-byte swizzle */
static cudaError_t ws_map(CUtensorMap *map, const void *p, int32_t rows, int32_t k, int box_rows,
                          clipskip_dtype dt) {
    const cuuint64_t dims[2] = {(cuuint64_t)k, (cuuint64_t)rows};
    const cuuint64_t strides[1] = {(cuuint64_t)k * 2};
    const cuuint32_t box[2] = {WG_BK, (cuuint32_t)box_rows}, estr[2] = {1, 1};
    const CUresult r = ws_encode(map, dt == CLIPSKIP_DTYPE_BF16 ? CU_TENSOR_MAP_DATA_TYPE_BFLOAT16
                                                                : CU_TENSOR_MAP_DATA_TYPE_FLOAT16,
                                 2, const_cast<void *>(p), dims, strides, box, estr,
                                 CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B,
                                 CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
    return r == CUDA_SUCCESS ? cudaSuccess : cudaErrorInvalidValue;
}

template <typename T, int BN, int STAGES>
static cudaError_t ws_launch(const cs_k_gemm_args *a, cudaStream_t stream) {
    const unsigned gy = cs_div_up((size_t)a->m, WG_BM);
    if (gy > 65535u) return cudaErrorInvalidValue;
    /* a fixed split of K: whole k-tiles (refused otherwise even where K fits one chunk: the
     * kernel folds at every k_chunk / 64 k-tiles), in registers (no split_ws), 128 wide only */
    if (a->k_chunk % WG_BK) return cudaErrorInvalidValue;
    if (cs_k_gemm_splits(a->k, a->k_chunk) > 1 && (BN != 128 || a->split_ws)) return cudaErrorInvalidValue;
    CUtensorMap mx, mw;
    cudaError_t e = ws_map(&mx, a->x, a->m, a->k, WG_BM, a->dtype);
    if (e == cudaSuccess) e = ws_map(&mw, a->w, a->n, a->k, BN, a->dtype);
    if (e != cudaSuccess) return e;
    const dim3 grid(cs_div_up((size_t)a->n, BN), gy);
    return cs_launch_plain(ws_gemm_kernel<T, BN, STAGES>, grid, dim3(WS_THREADS), WS_SMEM(BN, STAGES), stream,
                           mx, mw, *a);
}

template <typename T> static cudaError_t ws_dispatch(const cs_k_gemm_args *a, int tile, cudaStream_t stream) {
    switch (tile) {
#define WS_CASE(idx, bn, st) \
    case idx: return ws_launch<T, bn, st>(a, stream);
        WS_VARIANTS(WS_CASE)
#undef WS_CASE
    }
    return cudaErrorInvalidValue;
}

cudaError_t wg_ws_gemm(const cs_k_gemm_args *a, int tile, cudaStream_t stream) {
    if (tile < 0 || tile >= CS_K_GEMM_N_TILES || !ws_ok[tile] || !ws_encode) return cudaErrorInvalidValue;
    if (a->dtype == CLIPSKIP_DTYPE_F16) return ws_dispatch<__half>(a, tile, stream);
    if (a->dtype == CLIPSKIP_DTYPE_BF16) return ws_dispatch<__nv_bfloat16>(a, tile, stream);
    return cudaErrorInvalidValue;
}
