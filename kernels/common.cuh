/* Device helpers shared by kernels/*.cu: element types, conversions, the activations, and thin
 * wrappers over the PTX instructions the GEMM and attention kernels use (sm_80+). */
#ifndef CLIPSKIP_KERNELS_COMMON_CUH
#define CLIPSKIP_KERNELS_COMMON_CUH

#include "kernels.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <stdint.h>

/* ---- element types: T is __half or __nv_bfloat16; T2 its pair type */
template <typename T> struct cs_pair;
template <> struct cs_pair<__half> { typedef __half2 type; };
template <> struct cs_pair<__nv_bfloat16> { typedef __nv_bfloat162 type; };

template <typename T> __device__ __forceinline__ float cs_to_f32(T v);
template <> __device__ __forceinline__ float cs_to_f32<float>(float v) { return v; }
template <> __device__ __forceinline__ float cs_to_f32<__half>(__half v) { return __half2float(v); }
template <> __device__ __forceinline__ float cs_to_f32<__nv_bfloat16>(__nv_bfloat16 v) {
    return __bfloat162float(v);
}

template <typename T> __device__ __forceinline__ T cs_from_f32(float v);
template <> __device__ __forceinline__ float cs_from_f32<float>(float v) { return v; }
template <> __device__ __forceinline__ __half cs_from_f32<__half>(float v) { return __float2half_rn(v); }
template <> __device__ __forceinline__ __nv_bfloat16 cs_from_f32<__nv_bfloat16>(float v) {
    return __float2bfloat16_rn(v);
}

/* Whether attention splits P into hi + lo parts for the P.V product: bf16's 8-bit significand
 * alone would cost ~1.9e-3 relative error on the output (f16's 11 bits: 2e-4). */
template <typename T> struct cs_split_p { static const bool value = false; };
template <> struct cs_split_p<__nv_bfloat16> { static const bool value = true; };

/* Two floats rounded into one 32-bit register holding (lo, hi), as mma operands expect. */
template <typename T> __device__ __forceinline__ uint32_t cs_pack2(float lo, float hi);
template <> __device__ __forceinline__ uint32_t cs_pack2<__half>(float lo, float hi) {
    __half2 h = __floats2half2_rn(lo, hi);
    return *reinterpret_cast<uint32_t *>(&h);
}
template <> __device__ __forceinline__ uint32_t cs_pack2<__nv_bfloat16>(float lo, float hi) {
    __nv_bfloat162 h = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<uint32_t *>(&h);
}

/* The rounding error of cs_pack2<T>(v, .) in its first element: v - (float)(T)v. */
template <typename T> __device__ __forceinline__ float cs_round_err(float v) {
    return v - cs_to_f32<T>(cs_from_f32<T>(v));
}

/* ---- activations (SEMANTICS.md): fp32 in, fp32 out */
__device__ __forceinline__ float cs_quick_gelu(float x) { return x / (1.0f + __expf(-1.702f * x)); }
/* exact erf GELU; erff is the accurate one also under --use_fast_math */
__device__ __forceinline__ float cs_gelu_erf(float x) {
    return 0.5f * x * (1.0f + erff(x * 0.70710678118654752440f));
}
__device__ __forceinline__ float cs_act(float x, clipskip_act act) {
    return act == CLIPSKIP_ACT_GELU ? cs_gelu_erf(x) : cs_quick_gelu(x);
}

/* ---- warp reductions: butterfly, so every lane ends with the same value in a fixed order */
__device__ __forceinline__ float cs_warp_sum(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

/* ---- PTX wrappers (sm_80+); under CS_EMU (tests/emu: the CPU emulator) the emulator's. */
#ifdef CS_EMU
#include <type_traits>
__device__ __forceinline__ uint32_t cs_smem_addr(const void *p) { return cs_emu_smem_addr(p); }
__device__ __forceinline__ void cs_cp_async16(void *smem, const void *gmem, int src_bytes) {
    cs_emu_cp_async16(smem, gmem, src_bytes);
}
__device__ __forceinline__ void cs_cp_async_commit() { cs_emu_cp_async_commit(); }
template <int N> __device__ __forceinline__ void cs_cp_async_wait() { cs_emu_cp_async_wait(N); }
__device__ __forceinline__ void cs_ldmatrix_x4(uint32_t r[4], const void *smem) {
    cs_emu_ldmatrix_x4(r, smem, 0);
}
__device__ __forceinline__ void cs_ldmatrix_x4_trans(uint32_t r[4], const void *smem) {
    cs_emu_ldmatrix_x4(r, smem, 1);
}
template <typename T> __device__ __forceinline__ void cs_mma16816(float d[4], const uint32_t a[4],
                                                                const uint32_t b[2]) {
    cs_emu_mma16816(d, a, b, std::is_same<T, __nv_bfloat16>::value);
}
/* The kernel's dynamic shared memory (extern __shared__ name[] on the device). */
#define CS_DYN_SMEM(name, align) unsigned char *name = static_cast<unsigned char *>(cs_emu_dyn_smem())
#else
#define CS_DYN_SMEM(name, align) extern __shared__ __align__(align) unsigned char name[]
__device__ __forceinline__ uint32_t cs_smem_addr(const void *p) {
    return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

/* 16-byte global -> shared copy; src_bytes < 16 zero-fills the rest (0: all zeros, and src is
 * not read). */
__device__ __forceinline__ void cs_cp_async16(void *smem, const void *gmem, int src_bytes) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(cs_smem_addr(smem)),
                 "l"(gmem), "r"(src_bytes));
}
__device__ __forceinline__ void cs_cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N> __device__ __forceinline__ void cs_cp_async_wait() {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

__device__ __forceinline__ void cs_ldmatrix_x4(uint32_t r[4], const void *smem) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(cs_smem_addr(smem)));
}
__device__ __forceinline__ void cs_ldmatrix_x4_trans(uint32_t r[4], const void *smem) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(cs_smem_addr(smem)));
}

/* d = a(16x16, row) * b(16x8, col) + d, fp32 accumulators. */
template <typename T> __device__ __forceinline__ void cs_mma16816(float d[4], const uint32_t a[4],
                                                                const uint32_t b[2]);
template <> __device__ __forceinline__ void cs_mma16816<__half>(float d[4], const uint32_t a[4],
                                                               const uint32_t b[2]) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 "
                 "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}
template <> __device__ __forceinline__ void cs_mma16816<__nv_bfloat16>(float d[4],
                                                                      const uint32_t a[4],
                                                                      const uint32_t b[2]) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
                 "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

#endif /* CS_EMU */

/* GEMM shared-memory tiles (gemm.cu; gemm_wgmma.cu relies on the BK = 64 layout being the
 * wgmma 128-byte swizzle). A tile is rows x BK elements (BK = 32, 64, 128 or 256), in 16-byte
 * chunks of 8.
 * BK = 32: 64 B per row, four chunks; chunk c of row r is stored at c ^ ((r >> 1) & 3), so the 8
 * rows one ldmatrix 8x8 reads (same logical chunk) fall in 8 distinct 16-byte bank groups: rows
 * r, r+1 sit half a bank-line apart and the xor spreads the four row pairs over the four slots.
 * BK >= 64: rows are whole 128-byte bank lines; chunk c is stored at c ^ (r & 7), which gives
 * the 8 rows 8 distinct slots (slot j and j + 8 of a 256-byte row share banks, and the xor only
 * touches the low 3 bits). cp.async writes fill whole rows, so they are conflict-free whatever
 * the permutation. */
template <int BK> __device__ __forceinline__ int cs_gemm_swz(int r, int c) {
    static_assert(BK == 32 || BK == 64 || BK == 128 || BK == 256, "k-tile the swizzle covers");
    return BK == 32 ? r * 32 + ((c ^ ((r >> 1) & 3)) << 3) : r * BK + ((c ^ (r & 7)) << 3);
}

/* Queue the copy of one ROWS x BK tile (rows row0.., columns k0..) of g (ld = K) into s. */
template <typename T, int ROWS, int BK, int NT>
__device__ __forceinline__ void cs_gemm_load_tile(T *s, const T *g, int row0, int rows_valid, int K,
                                               int k0, int tid) {
    constexpr int CPR = BK / 8; /* chunks per row */
    static_assert((ROWS * CPR) % NT == 0, "tile chunks must divide evenly among threads");
#pragma unroll
    for (int it = 0; it < ROWS * CPR / NT; it++) {
        const int i = tid + it * NT;
        const int r = i / CPR, c = i % CPR;
        const int gr = row0 + r, gk = k0 + c * 8;
        const bool ok = gr < rows_valid && gk < K;
        const T *src = ok ? g + (size_t)gr * K + gk : g;
        cs_cp_async16(s + cs_gemm_swz<BK>(r, c), src, ok ? 16 : 0);
    }
}

/* The GEMM epilogue (gemm.cu, gemm_wgmma.cu) of one pair of adjacent outputs (row, col),
 * (row, col+1): + bias, then the activation and a round to T, or fp32 out += . */
template <typename T>
__device__ __forceinline__ void cs_gemm_store_pair(const cs_k_gemm_args &a, int row, int col,
                                                float v0, float v1, float b0, float b1) {
    const size_t o = (size_t)row * a.n + col;
    v0 += b0;
    v1 += b1;
    if (a.epi == CS_K_EPI_BIAS_RESID) {
        float2 *p = reinterpret_cast<float2 *>(static_cast<float *>(a.out) + o);
        float2 r = *p;
        r.x += v0;
        r.y += v1;
        *p = r;
        return;
    }
    if (a.epi == CS_K_EPI_BIAS_ACT) {
        v0 = cs_act(v0, a.act);
        v1 = cs_act(v1, a.act);
    }
    *reinterpret_cast<uint32_t *>(static_cast<T *>(a.out) + o) = cs_pack2<T>(v0, v1);
}

static inline unsigned cs_div_up(size_t a, unsigned b) { return (unsigned)((a + b - 1) / b); }

/* ---- programmatic dependent launch (PDL; sm_90+, off unless cs_k_set_pdl(1)).
 * A kernel launched with it may start while the kernel before it in the stream still runs:
 * it must call cs_pdl_wait() before it reads anything an earlier kernel wrote or writes
 * anything one reads (it returns once the previous grid has finished and its writes are
 * visible); what comes before the wait may only read data no kernel writes (weights).
 * cs_pdl_trigger() lets the next kernel start its blocks; a block that never calls it
 * triggers when it exits. Both are no-ops below sm_90 and in a launch without the attribute.
 * Only kernels that call cs_pdl_wait() first may be launched through cs_launch. */
__device__ __forceinline__ void cs_pdl_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.wait;\n" ::: "memory");
#endif
}
__device__ __forceinline__ void cs_pdl_trigger() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory");
#endif
}

extern thread_local int cs_k_pdl_flag; /* kernels/launch.cu; cs_k_set_pdl */

/* kernel<<<grid, block, smem, stream>>>(args...), with the PDL attribute when it is on;
 * returns the launch's error. cs_launch_plain: without PDL, for kernels that never wait. */
#ifdef CS_EMU
template <typename... KArgs, typename... Args>
static cudaError_t cs_launch_plain(void (*kernel)(KArgs...), dim3 grid, dim3 block, size_t smem,
                                   cudaStream_t stream, Args... args) {
    return cs_emu_launch(reinterpret_cast<const void *>(kernel), grid, block, smem, stream,
                         [=]() { kernel(static_cast<KArgs>(args)...); });
}
template <typename... KArgs, typename... Args>
static cudaError_t cs_launch(void (*kernel)(KArgs...), dim3 grid, dim3 block, size_t smem,
                             cudaStream_t stream, Args... args) {
    return cs_launch_plain(kernel, grid, block, smem, stream, args...);
}
#else
template <typename... KArgs, typename... Args>
static cudaError_t cs_launch_plain(void (*kernel)(KArgs...), dim3 grid, dim3 block, size_t smem,
                                   cudaStream_t stream, Args... args) {
    kernel<<<grid, block, smem, stream>>>(static_cast<KArgs>(args)...);
    return cudaGetLastError();
}
template <typename... KArgs, typename... Args>
static cudaError_t cs_launch(void (*kernel)(KArgs...), dim3 grid, dim3 block, size_t smem,
                             cudaStream_t stream, Args... args) {
    if (!cs_k_pdl_flag) {
        kernel<<<grid, block, smem, stream>>>(args...);
        return cudaGetLastError();
    }
    cudaLaunchAttribute at[1];
    at[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    at[0].val.programmaticStreamSerializationAllowed = 1;
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = grid;
    cfg.blockDim = block;
    cfg.dynamicSmemBytes = smem;
    cfg.stream = stream;
    cfg.attrs = at;
    cfg.numAttrs = 1;
    return cudaLaunchKernelEx(&cfg, kernel, static_cast<KArgs>(args)...);
}

#endif /* CS_EMU */

#endif
