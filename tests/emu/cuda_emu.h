/* clipskip's CUDA emulator, language side: what a kernel source (kernels/*.cu, compiled as C++
 * with -include cuda_emu.h and CS_EMU defined) needs beyond the runtime API. Every CUDA thread
 * is a fiber; a block's fibers run one at a time in one host thread and switch only at the
 * synchronizing points (__syncthreads, warp collectives), so shared memory is ordinary memory
 * and `__shared__` variables are function statics (one block runs at a time).
 *
 * Emulated instructions (emu_kernel.cpp): mma.sync m16n8k16 (f16, bf16; fp32 accumulators),
 * ldmatrix x4 (plain and .trans), cp.async 16 B with commit/wait groups (the copy lands only at
 * the wait that retires its group, so a read before the wait sees stale shared memory), warp
 * shuffles, __syncwarp, __syncthreads; and sm_90a's wgmma (m64nNk16, shared-memory descriptors
 * with the 128-byte swizzle), mbarriers and 2-D TMA loads, as far as kernels/gemm_wgmma*.cu use
 * them. Not emulated: PDL's instructions (no-ops here), setmaxnreg, proxy fences (no-ops). */
#ifndef CS_EMU_CUDA_EMU_H
#define CS_EMU_CUDA_EMU_H

#include "cuda_bf16.h"
#include "cuda_fp16.h"
#include "cuda_runtime_api.h"

#include <functional>
#include <math.h>
#include <stdint.h>
#include <string.h>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __noinline__
#define __shared__ static
#define __launch_bounds__(...)
#define __align__(n) __attribute__((aligned(n)))
#define __grid_constant__

struct __attribute__((aligned(8))) float2 { float x, y; };
struct __attribute__((aligned(16))) float4 { float x, y, z, w; };
struct __attribute__((aligned(8))) uint2 { unsigned int x, y; };
struct __attribute__((aligned(16))) uint4 { unsigned int x, y, z, w; };
static inline float2 make_float2(float x, float y) { return float2{x, y}; }
static inline float4 make_float4(float x, float y, float z, float w) { return float4{x, y, z, w}; }
static inline uint4 make_uint4(unsigned a, unsigned b, unsigned c, unsigned d) { return uint4{a, b, c, d}; }

/* ---- the running thread */
const uint3 &cs_emu_thread_idx(void);
extern uint3 cs_emu_block_idx;
extern dim3 cs_emu_block_dim, cs_emu_grid_dim;
#define threadIdx (cs_emu_thread_idx())
#define blockIdx cs_emu_block_idx
#define blockDim cs_emu_block_dim
#define gridDim cs_emu_grid_dim
#define warpSize 32

/* ---- synchronization and warp collectives */
void cs_emu_syncthreads(void);
void cs_emu_syncwarp(void);
uint64_t cs_emu_shfl_xor(uint64_t v, int lane_mask);
static inline void __syncthreads(void) { cs_emu_syncthreads(); }
static inline void __syncwarp(unsigned = 0xffffffffu) { cs_emu_syncwarp(); }
template <typename T> static inline T __shfl_xor_sync(unsigned, T v, int lane_mask) {
    static_assert(sizeof(T) <= 8, "shuffle of more than 8 bytes");
    uint64_t u = 0;
    memcpy(&u, &v, sizeof v);
    u = cs_emu_shfl_xor(u, lane_mask);
    T r;
    memcpy(&r, &u, sizeof r);
    return r;
}
/* One block runs at a time and fibers switch only at the points above: plain memory
 * operations are atomic and ordered. */
static inline void __threadfence(void) {}
static inline unsigned atomicAdd(unsigned *p, unsigned v) { unsigned o = *p; *p = o + v; return o; }
static inline int atomicAdd(int *p, int v) { int o = *p; *p = o + v; return o; }
static inline float atomicAdd(float *p, float v) { float o = *p; *p = o + v; return o; }
static inline unsigned atomicExch(unsigned *p, unsigned v) { unsigned o = *p; *p = v; return o; }
template <typename T> static inline T __ldcg(const T *p) { return *p; }
template <typename T> static inline void __stcg(T *p, T v) { *p = v; }

/* ---- math: the exact functions (the device's fast ones differ in the last bits) */
#define __expf(x) expf(x) /* glibc declares its own __expf */
static inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
static inline int min(int a, int b) { return a < b ? a : b; }
static inline int max(int a, int b) { return a > b ? a : b; }
static inline unsigned min(unsigned a, unsigned b) { return a < b ? a : b; }
static inline unsigned max(unsigned a, unsigned b) { return a > b ? a : b; }

/* ---- the PTX instructions (common.cuh calls these under CS_EMU) */
void cs_emu_cp_async16(void *smem, const void *gmem, int src_bytes);
void cs_emu_cp_async_commit(void);
void cs_emu_cp_async_wait(int n);
void cs_emu_ldmatrix_x4(uint32_t r[4], const void *smem, int trans);
void cs_emu_mma16816(float d[4], const uint32_t a[4], const uint32_t b[2], int bf16);
void *cs_emu_dyn_smem(void);

/* ---- sm_90 (kernels/wgmma.cuh, gemm_wgmma*.cu). Shared addresses are offsets into the
 * block's dynamic shared memory. A wgmma is queued by each of the 128 threads of its warpgroup
 * and computed at the wgmma.wait_group that retires its group (reading shared memory then);
 * a TMA box lands, and completes its bytes on the mbarrier, only when no thread can make
 * progress otherwise (the latest moment); a spinning mbarrier wait yields. */
uint32_t cs_emu_smem_addr(const void *p);
void cs_emu_wgmma(float *d, uint64_t desc_a, uint64_t desc_b, int n, int bf16);
void cs_emu_wgmma_commit(void);
void cs_emu_wgmma_wait(int n);
void cs_emu_mbar_init(uint64_t *bar, unsigned count);
void cs_emu_mbar_arrive(uint64_t *bar, unsigned expect_tx_bytes); /* 0: a plain arrive */
void cs_emu_mbar_wait(uint64_t *bar, unsigned parity);
void cs_emu_tma_load_2d(void *smem, const void *tensor_map, int c0, int c1, uint64_t *bar);

/* ---- launch: fn runs once per thread of each block of grid; queued on stream s like a
 * kernel (stream order, graph capture). kernel: the kernel's address (its identity for
 * cudaFuncSetAttribute's shared memory limit). */
cudaError_t cs_emu_launch(const void *kernel, dim3 grid, dim3 block, size_t smem, cudaStream_t s,
                          std::function<void()> fn);
/* The same as a cooperative launch: all blocks resident (else cudaErrorCooperativeLaunchTooLarge)
 * and run interleaved; a block waits for others by polling memory with cs_emu_spin() between
 * reads (a thread that only spins makes no progress: all blocks spinning is a deadlock). */
cudaError_t cs_emu_launch_cooperative(const void *kernel, dim3 grid, dim3 block, size_t smem,
                                      cudaStream_t s, std::function<void()> fn);
void cs_emu_spin(void);

#endif
