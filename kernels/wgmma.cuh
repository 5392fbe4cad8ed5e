/* wgmma (sm_90a) building blocks shared by the Hopper GEMM kernels (gemm_wgmma.cu: cp.async
 * loads, every thread; gemm_wgmma_ws.cu: TMA loads by a producer warpgroup). Both files are
 * compiled by the clipskip_wgmma object target (CMakeLists.txt), for sm_90a where 90 is asked;
 * elsewhere WG_HAVE is 0 and the kernel bodies are empty. */
#ifndef CLIPSKIP_KERNELS_WGMMA_CUH
#define CLIPSKIP_KERNELS_WGMMA_CUH

#include "common.cuh"

#define WG_BM 128
#define WG_BK 64
#define WG_THREADS 256

#if (defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)) || defined(CS_EMU)
#define WG_HAVE 1
#else
#define WG_HAVE 0
#endif

/* Shared-memory matrix descriptor: K-major, 128-byte swizzle, 8-row groups 1024 B apart. */
__device__ __forceinline__ uint64_t wg_desc(uint32_t smem_addr) {
    uint64_t d = 0;
    d |= (uint64_t)((smem_addr & 0x3FFFF) >> 4);   /* start address */
    d |= (uint64_t)1 << 16;                         /* leading byte offset (unused: swizzled K-major) */
    d |= (uint64_t)(1024 >> 4) << 32;               /* stride byte offset */
    d |= (uint64_t)1 << 62;                         /* 128-byte swizzle */
    return d;
}

#ifdef CS_EMU /* tests/emu: the emulator's wgmma and fences */
template <typename T, int BN> struct wg_mma {
    static __device__ __forceinline__ void run(float *d, uint64_t da, uint64_t db) {
        cs_emu_wgmma(d, da, db, BN, std::is_same<T, __nv_bfloat16>::value);
    }
};
__device__ __forceinline__ void wg_fence() {}
__device__ __forceinline__ void wg_commit() { cs_emu_wgmma_commit(); }
template <int N> __device__ __forceinline__ void wg_wait() { cs_emu_wgmma_wait(N); }
__device__ __forceinline__ void wg_fence_proxy_async() {}
template <int N> __device__ __forceinline__ void wg_pin(float *) {}
#else
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
#if WG_HAVE
__device__ __forceinline__ void wg_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wg_commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
template <int N> __device__ __forceinline__ void wg_wait() {
    asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
}
/* generic-proxy writes (cp.async, st.shared) made visible to the async proxy (wgmma, TMA) */
__device__ __forceinline__ void wg_fence_proxy_async() {
    asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
}
#endif
#endif /* CS_EMU */

#if WG_HAVE
/* One 64-deep k-tile of a warpgroup: its four k-steps of 16 as one wgmma group, then wait until
 * at most DEPTH groups are in flight. tA, tB: shared addresses of the warpgroup's 64 A rows and
 * of the BN B rows of the tile (128-byte swizzle). */
template <typename T, int BN, int DEPTH>
__device__ __forceinline__ void wg_ktile(float *d, uint32_t tA, uint32_t tB) {
    wg_pin<BN / 2>(d);
    wg_fence();
#pragma unroll
    for (int kk = 0; kk < WG_BK / 16; kk++) wg_mma<T, BN>::run(d, wg_desc(tA + kk * 32), wg_desc(tB + kk * 32));
    wg_commit();
    wg_wait<DEPTH>();
    wg_pin<BN / 2>(d);
}
#endif

/* Epilogue of one warpgroup's 64 x BN accumulators (rows r0 .. r0 + 63, columns n0 ..):
 * accumulator j*4 + i*2 + e sits at row 16 warp + lane/4 + 8 i, column 8 j + 2 (lane % 4) + e. */
template <typename T, int BN>
__device__ __forceinline__ void wg_store(const cs_k_gemm_args &a, const float *d, int r0, int n0,
                                         int warp, int lane) {
    const int rbase = r0 + warp * 16 + (lane >> 2);
#pragma unroll
    for (int j = 0; j < BN / 8; j++) {
        const int col = n0 + j * 8 + (lane & 3) * 2;
        if (col >= a.n) continue;
        float2 b = make_float2(0.0f, 0.0f);
        if (a.epi != CS_K_EPI_NONE) b = *reinterpret_cast<const float2 *>(a.bias + col);
        if (rbase < a.m) cs_gemm_store_pair<T>(a, rbase, col, d[j * 4], d[j * 4 + 1], b.x, b.y);
        if (rbase + 8 < a.m) cs_gemm_store_pair<T>(a, rbase + 8, col, d[j * 4 + 2], d[j * 4 + 3], b.x, b.y);
    }
}

/* gemm_wgmma_ws.cu, called by gemm_wgmma.cu's setup and dispatch */
void wg_ws_setup(int usable[CS_K_GEMM_N_TILES], int optin);
cudaError_t wg_ws_gemm(const cs_k_gemm_args *a, int tile, cudaStream_t stream);


#endif
