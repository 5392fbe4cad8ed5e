/* Fused causal attention for CLIP's short sequences (T <= 80, head width 64).
 *
 * One block per (sequence, head): Q, K and V of the head (T x 64 each) are read straight from
 * the packed QKV GEMM output into shared memory (rows past the sequence zero-filled), and each
 * warp takes query tiles of 16 rows: S = Q K^T with mma.sync (fp32 accumulators), scale, causal
 * mask, softmax in fp32 in registers, then O = P V with P rounded to the compute dtype (bf16:
 * split into hi + lo parts, two products) and divided by the fp32 row sum; the merged-head row
 * is written to out. No (T, T) matrix ever leaves the chip.
 *
 * A row's result depends on rows 0..i only, bitwise: the key tiles a query tile visits depend
 * on the tile index alone (never on the sequence length), masked scores are exactly -inf so
 * their probabilities are exactly 0, zero-filled V rows keep 0 * v exact, and every reduction
 * runs in a fixed order. last_only computes the same tile the same way and stores one row.
 * Head widths other than 64 (only small test towers have them) take a CUDA-core fallback. */
#include "attention.cuh"

template <typename T>
static __global__ void __launch_bounds__(ATT_WARPS * 32)
    attention_kernel(T *out, const T *qkv, const int32_t *offsets, int d, float scale,
                     int last_only, int split) {
    __shared__ __align__(16) T sQ[CS_K_ATTN_MAX_T * ATT_LD];
    __shared__ __align__(16) T sK[CS_K_ATTN_MAX_T * ATT_LD];
    __shared__ __align__(16) T sV[CS_K_ATTN_MAX_T * ATT_LD];
    cs_attn_block<T>(out, qkv, offsets, d, scale, last_only, split, blockIdx.x, blockIdx.y, blockIdx.z,
                     sQ, sK, sV);
}

/* ---- fallback for head widths other than 64 (small test towers, unusual configs): fp32 on
 * CUDA cores, one warp per query row, keys spread over lanes (3 per lane covers T <= 96). Same
 * invariance argument: loops stop at the row's own index, masked terms are exact zeros. */
#define ATT_G_MAX_DH 64

template <typename T>
static __global__ void __launch_bounds__(ATT_WARPS * 32)
    attention_generic_kernel(T *out, const T *qkv, const int32_t *offsets, int d, int dh,
                             float scale, int last_only) {
    __shared__ float sK[CS_K_ATTN_MAX_T][ATT_G_MAX_DH + 1]; /* +1: lanes read distinct rows */
    __shared__ float sV[CS_K_ATTN_MAX_T][ATT_G_MAX_DH];
    __shared__ float sQ[ATT_WARPS][ATT_G_MAX_DH];
    __shared__ float sP[ATT_WARPS][CS_K_ATTN_MAX_T];
    cs_pdl_wait();
    cs_pdl_trigger();
    const int seq = blockIdx.x, h = blockIdx.y, lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int r0 = offsets[seq], len = offsets[seq + 1] - r0;
    if (len <= 0 || len > CS_K_ATTN_MAX_T || dh > ATT_G_MAX_DH) return;
    const size_t ld = 3 * (size_t)d;
    for (int i = threadIdx.x; i < len * dh; i += blockDim.x) {
        const int j = i / dh, c = i - j * dh;
        const T *row = qkv + (size_t)(r0 + j) * ld + h * dh + c;
        sK[j][c] = cs_to_f32(row[d]);
        sV[j][c] = cs_to_f32(row[2 * d]);
    }
    __syncthreads();
    for (int i = (last_only ? len - 1 : 0) + warp; i < len; i += ATT_WARPS) {
        const T *q = qkv + (size_t)(r0 + i) * ld + h * dh;
        for (int c = lane; c < dh; c += 32) sQ[warp][c] = cs_to_f32(q[c]);
        __syncwarp();
        float s[3], mx = -INFINITY;
#pragma unroll
        for (int t = 0; t < 3; t++) {
            const int j = lane + 32 * t;
            s[t] = -INFINITY;
            if (j <= i) {
                float acc = 0.0f;
                for (int c = 0; c < dh; c++) acc = fmaf(sQ[warp][c], sK[j][c], acc);
                s[t] = acc * scale;
            }
            mx = fmaxf(mx, s[t]);
        }
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
        float sum = 0.0f;
#pragma unroll
        for (int t = 0; t < 3; t++) {
            const int j = lane + 32 * t;
            const float p = j <= i ? __expf(s[t] - mx) : 0.0f;
            if (j <= i) sP[warp][j] = p;
            sum += p;
        }
        sum = cs_warp_sum(sum);
        __syncwarp();
        const float inv = 1.0f / sum;
        const size_t orow = last_only ? (size_t)seq : (size_t)(r0 + i);
        for (int c = lane; c < dh; c += 32) {
            float o = 0.0f;
            for (int j = 0; j <= i; j++) o = fmaf(sP[warp][j], sV[j][c], o);
            out[orow * d + h * dh + c] = cs_from_f32<T>(o * inv);
        }
        __syncwarp(); /* sQ, sP are rewritten by the next row */
    }
}

/* Multiprocessors of the current device (the split rule); 0 when it cannot be read. A cheap
 * runtime query, and allowed while a stream is being captured. */
static int att_n_sm(void) {
    int dev = 0, n = 0;
    if (cudaGetDevice(&dev) != cudaSuccess ||
        cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess)
        return 0;
    return n;
}

extern "C" cudaError_t cs_k_attention(void *out, const void *qkv, const int32_t *offsets,
                                      int32_t n_seq, int32_t n_heads, int32_t d, float scale,
                                      int last_only, clipskip_dtype dtype, cudaStream_t stream) {
    if (n_seq < 0 || n_heads <= 0 || n_heads > 65535 || d <= 0 || d % n_heads) return cudaErrorInvalidValue;
    const int dh = d / n_heads;
    if (dh > CS_K_ATTN_MAX_HEAD_DIM) return cudaErrorInvalidValue;
    const int fast = dh == CS_K_ATTN_HEAD_DIM && ((uintptr_t)qkv | (uintptr_t)out) % 16 == 0;
    if (n_seq == 0) return cudaSuccess;
    dim3 grid((unsigned)n_seq, (unsigned)n_heads);
    /* Few (sequence, head) blocks (small batches) leave most SMs idle and each block walks its
     * query tiles in turn: then give every query tile its own block (grid.z). Same tile code,
     * so the same bits; K and V are read up to 3x more often, which small batches can afford. */
    const int split = fast && !last_only && (size_t)n_seq * n_heads < (size_t)2 * att_n_sm();
    dim3 grid_split((unsigned)n_seq, (unsigned)n_heads, ATT_TILES);
    if (dtype == CLIPSKIP_DTYPE_F16) {
        __half *o = static_cast<__half *>(out);
        const __half *q = static_cast<const __half *>(qkv);
        if (fast)
            return cs_launch(attention_kernel<__half>, split ? grid_split : grid, dim3(ATT_WARPS * 32), 0,
                             stream, o, q, offsets, (int)d, scale, last_only, split);
        return cs_launch(attention_generic_kernel<__half>, grid, dim3(ATT_WARPS * 32), 0, stream, o, q,
                         offsets, (int)d, dh, scale, last_only);
    } else if (dtype == CLIPSKIP_DTYPE_BF16) {
        __nv_bfloat16 *o = static_cast<__nv_bfloat16 *>(out);
        const __nv_bfloat16 *q = static_cast<const __nv_bfloat16 *>(qkv);
        if (fast)
            return cs_launch(attention_kernel<__nv_bfloat16>, split ? grid_split : grid,
                             dim3(ATT_WARPS * 32), 0, stream, o, q, offsets, (int)d, scale, last_only, split);
        return cs_launch(attention_generic_kernel<__nv_bfloat16>, grid, dim3(ATT_WARPS * 32), 0, stream,
                         o, q, offsets, (int)d, dh, scale, last_only);
    }
    return cudaErrorInvalidValue;
}
