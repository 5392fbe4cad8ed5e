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
 * cuBLASLt. The templated form and the other three variants have NOT run on a GPU. None is
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
#include "common.cuh"

#define WG_BM 128
#define WG_BK 64
#define WG_THREADS 256

#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define WG_HAVE 1
#else
#define WG_HAVE 0
#endif

/* The variants: X(tile index, BN, STAGES, DEPTH) */
#define WG_VARIANTS(X)                          \
    X(CS_K_GEMM_TILE_WGMMA, 128, 3, 0)          \
    X(CS_K_GEMM_TILE_WGMMA_256, 256, 3, 0)      \
    X(CS_K_GEMM_TILE_WGMMA_P, 128, 4, 1)        \
    X(CS_K_GEMM_TILE_WGMMA_256_P, 256, 4, 1)

/* dynamic shared memory: STAGES x (BM + BN) x BK x 2 bytes, + slack to align the base to 1024 */
#define WG_SMEM(bn, st) ((st) * (WG_BM + (bn)) * WG_BK * 2 + 1024)

/* Shared-memory matrix descriptor: K-major, 128-byte swizzle, 8-row groups 1024 B apart. */
__device__ __forceinline__ uint64_t wg_desc(uint32_t smem_addr) {
    uint64_t d = 0;
    d |= (uint64_t)((smem_addr & 0x3FFFF) >> 4);   /* start address */
    d |= (uint64_t)1 << 16;                         /* leading byte offset (unused: swizzled K-major) */
    d |= (uint64_t)(1024 >> 4) << 32;               /* stride byte offset */
    d |= (uint64_t)1 << 62;                         /* 128-byte swizzle */
    return d;
}

template <typename T, int BN> struct wg_mma;
#if WG_HAVE
/* one m64nNk16 wgmma, A and B from shared memory (descriptors), fp32 accumulators in d */
#define WG_MMA_ASM_128(TY) \
    asm volatile("{\n" \
                 ".reg .pred p;\n" \
                 "setp.ne.b32 p, %66, 0;\n" \
                 "wgmma.mma_async.sync.aligned.m64n128k16.f32." TY "." TY " " \
                 "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, " \
                 "%64, %65, p, 1, 1, 0, 0;\n" \
                 "}\n" \
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), \
                   "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), \
                   "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), \
                   "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), \
                   "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), \
                   "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), \
                   "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), \
                   "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63]) \
                 : "l"(da), "l"(db), "r"(1)); /* scale-d = 1: d += a b */
template <> struct wg_mma<__half, 128> {
    static __device__ __forceinline__ void run(float *d, uint64_t da, uint64_t db) { WG_MMA_ASM_128("f16") }
};
template <> struct wg_mma<__nv_bfloat16, 128> {
    static __device__ __forceinline__ void run(float *d, uint64_t da, uint64_t db) { WG_MMA_ASM_128("bf16") }
};
#define WG_MMA_ASM_256(TY) \
    asm volatile("{\n" \
                 ".reg .pred p;\n" \
                 "setp.ne.b32 p, %130, 0;\n" \
                 "wgmma.mma_async.sync.aligned.m64n256k16.f32." TY "." TY " " \
                 "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63, %64, %65, %66, %67, %68, %69, %70, %71, %72, %73, %74, %75, %76, %77, %78, %79, %80, %81, %82, %83, %84, %85, %86, %87, %88, %89, %90, %91, %92, %93, %94, %95, %96, %97, %98, %99, %100, %101, %102, %103, %104, %105, %106, %107, %108, %109, %110, %111, %112, %113, %114, %115, %116, %117, %118, %119, %120, %121, %122, %123, %124, %125, %126, %127}, " \
                 "%128, %129, p, 1, 1, 0, 0;\n" \
                 "}\n" \
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), \
                   "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), \
                   "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), \
                   "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), \
                   "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), \
                   "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), \
                   "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), \
                   "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63]), \
                   "+f"(d[64]), "+f"(d[65]), "+f"(d[66]), "+f"(d[67]), "+f"(d[68]), "+f"(d[69]), "+f"(d[70]), "+f"(d[71]), \
                   "+f"(d[72]), "+f"(d[73]), "+f"(d[74]), "+f"(d[75]), "+f"(d[76]), "+f"(d[77]), "+f"(d[78]), "+f"(d[79]), \
                   "+f"(d[80]), "+f"(d[81]), "+f"(d[82]), "+f"(d[83]), "+f"(d[84]), "+f"(d[85]), "+f"(d[86]), "+f"(d[87]), \
                   "+f"(d[88]), "+f"(d[89]), "+f"(d[90]), "+f"(d[91]), "+f"(d[92]), "+f"(d[93]), "+f"(d[94]), "+f"(d[95]), \
                   "+f"(d[96]), "+f"(d[97]), "+f"(d[98]), "+f"(d[99]), "+f"(d[100]), "+f"(d[101]), "+f"(d[102]), "+f"(d[103]), \
                   "+f"(d[104]), "+f"(d[105]), "+f"(d[106]), "+f"(d[107]), "+f"(d[108]), "+f"(d[109]), "+f"(d[110]), "+f"(d[111]), \
                   "+f"(d[112]), "+f"(d[113]), "+f"(d[114]), "+f"(d[115]), "+f"(d[116]), "+f"(d[117]), "+f"(d[118]), "+f"(d[119]), \
                   "+f"(d[120]), "+f"(d[121]), "+f"(d[122]), "+f"(d[123]), "+f"(d[124]), "+f"(d[125]), "+f"(d[126]), "+f"(d[127]) \
                 : "l"(da), "l"(db), "r"(1)); /* scale-d = 1: d += a b */
template <> struct wg_mma<__half, 256> {
    static __device__ __forceinline__ void run(float *d, uint64_t da, uint64_t db) { WG_MMA_ASM_256("f16") }
};
template <> struct wg_mma<__nv_bfloat16, 256> {
    static __device__ __forceinline__ void run(float *d, uint64_t da, uint64_t db) { WG_MMA_ASM_256("bf16") }
};
#endif

/* Keep the compiler from moving accumulator registers while a wgmma may still write them. */
template <int N> __device__ __forceinline__ void wg_pin(float *d) {
#pragma unroll
    for (int i = 0; i < N; i++) asm volatile("" : "+f"(d[i])::"memory");
}

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
    extern __shared__ unsigned char wg_smem_raw[];
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
        asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
        __syncthreads(); /* tile kt visible to all; the slot refilled below is free everywhere */
        const int nk = kt + PD;
        if (nk < KT) {
            const int s = nk % STAGES;
            wg_load_stage<T, BN>(sA + s * WG_BM * WG_BK, sB + s * BN * WG_BK, X, W, a, m0, n0, nk, tid);
        }
        cs_cp_async_commit();

        const uint32_t tA = cs_smem_addr(sA + (kt % STAGES) * WG_BM * WG_BK) + wgi * 64 * 128;
        const uint32_t tB = cs_smem_addr(sB + (kt % STAGES) * BN * WG_BK);
        wg_pin<ND>(d);
        asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
#pragma unroll
        for (int kk = 0; kk < WG_BK / 16; kk++)
            wg_mma<T, BN>::run(d, wg_desc(tA + kk * 32), wg_desc(tB + kk * 32));
        asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
        asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(DEPTH) : "memory");
        wg_pin<ND>(d);
    }
    asm volatile("wgmma.wait_group.sync.aligned 0;\n" ::: "memory");
    wg_pin<ND>(d);
    cs_cp_async_wait<0>();

    /* accumulator j*4 + i*2 + e: row 16 warp + lane/4 + 8 i, column 8 j + 2 (lane % 4) + e */
    const int rbase = m0 + wgi * 64 + warp * 16 + (lane >> 2);
#pragma unroll
    for (int j = 0; j < BN / 8; j++) {
        const int col = n0 + j * 8 + (lane & 3) * 2;
        if (col >= a.n) continue;
        float2 b = make_float2(0.0f, 0.0f);
        if (a.epi != CS_K_EPI_NONE) b = *reinterpret_cast<const float2 *>(a.bias + col);
        if (rbase < a.m) cs_gemm_store_pair<T>(a, rbase, col, d[j * 4], d[j * 4 + 1], b.x, b.y);
        if (rbase + 8 < a.m) cs_gemm_store_pair<T>(a, rbase + 8, col, d[j * 4 + 2], d[j * 4 + 3], b.x, b.y);
    }
#endif
}

/* 1 when the code the device runs was compiled with wgmma (sm_90a), else 0. */
static __global__ void wg_probe(int *out) { *out = WG_HAVE; }

static bool wg_ok[CS_K_GEMM_N_TILES];

template <typename T, int BN, int STAGES, int DEPTH> static cudaError_t wg_set_smem() {
    return cudaFuncSetAttribute(wg_gemm_kernel<T, BN, STAGES, DEPTH>,
                                cudaFuncAttributeMaxDynamicSharedMemorySize, WG_SMEM(BN, STAGES));
}

extern "C" cudaError_t cs_k_gemm_wgmma_setup(int usable[CS_K_GEMM_N_TILES]) {
    for (int t = 0; t < CS_K_GEMM_N_TILES; t++) usable[t] = wg_ok[t] = false;
    int dev = 0, major = 0, minor = 0, optin = 0;
    cudaError_t e = cudaGetDevice(&dev);
    if (e == cudaSuccess) e = cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev);
    if (e == cudaSuccess) e = cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev);
    if (e == cudaSuccess) e = cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev);
    if (e != cudaSuccess) return e;
    if (major != 9 || minor != 0) return cudaSuccess; /* sm_90a code runs on 9.0 only */
    int *dflag = NULL, h = 0;
    if ((e = cudaMalloc(&dflag, sizeof(int))) != cudaSuccess) return e;
    wg_probe<<<1, 1>>>(dflag);
    e = cudaGetLastError();
    if (e == cudaSuccess) e = cudaMemcpy(&h, dflag, sizeof(int), cudaMemcpyDeviceToHost);
    cudaFree(dflag);
    if (e != cudaSuccess || !h) return e;
#define WG_SETUP(idx, bn, st, dp)                                                              \
    if (WG_SMEM(bn, st) <= optin) {                                                            \
        if ((e = wg_set_smem<__half, bn, st, dp>()) != cudaSuccess) return e;                 \
        if ((e = wg_set_smem<__nv_bfloat16, bn, st, dp>()) != cudaSuccess) return e;          \
        usable[idx] = wg_ok[idx] = true;                                                      \
    }
    WG_VARIANTS(WG_SETUP)
#undef WG_SETUP
    return cudaSuccess;
}

template <typename T, int BN, int STAGES, int DEPTH>
static cudaError_t wg_launch(const cs_k_gemm_args *a, cudaStream_t stream) {
    const unsigned gy = cs_div_up((size_t)a->m, WG_BM);
    if (gy > 65535u) return cudaErrorInvalidValue;
    const dim3 grid(cs_div_up((size_t)a->n, BN), gy);
    wg_gemm_kernel<T, BN, STAGES, DEPTH><<<grid, WG_THREADS, WG_SMEM(BN, STAGES), stream>>>(*a);
    return cudaGetLastError();
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
    if (tile < 0 || tile >= CS_K_GEMM_N_TILES || !wg_ok[tile]) return cudaErrorInvalidValue;
    if (a->dtype == CLIPSKIP_DTYPE_F16) return wg_dispatch<__half>(a, tile, stream);
    if (a->dtype == CLIPSKIP_DTYPE_BF16) return wg_dispatch<__nv_bfloat16>(a, tile, stream);
    return cudaErrorInvalidValue;
}
