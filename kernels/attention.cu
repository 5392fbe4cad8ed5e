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
#include "common.cuh"

#include <math.h>

#define ATT_LD 72  /* smem row stride (elements): 144 B puts 8 ldmatrix rows in 8 bank groups */
#define ATT_WARPS 4
#define ATT_TILES (CS_K_ATTN_MAX_T / 16)

/* One 16-row query tile qt: rows qt*16 .. qt*16+15 of the sequence. */
template <typename T>
__device__ __forceinline__ void attn_tile(T *out, const T *sQ, const T *sK, const T *sV, int qt,
                                          int len, int r0, int seq, int h, int d, float scale,
                                          int last_only) {
    const int lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
    uint32_t qf[4][4]; /* A fragments of Q over the 4 k-steps of the head dims */
#pragma unroll
    for (int ks = 0; ks < 4; ks++)
        cs_ldmatrix_x4(qf[ks], sQ + (qt * 16 + (lane & 15)) * ATT_LD + ks * 16 + (lane >> 4) * 8);

    float s[2 * ATT_TILES][4]; /* scores, then probabilities: key tile of 8 x (2 rows x 2) */
#pragma unroll
    for (int nt = 0; nt < 2 * ATT_TILES; nt++)
#pragma unroll
        for (int e = 0; e < 4; e++) s[nt][e] = 0.0f;

#pragma unroll
    for (int p = 0; p < ATT_TILES; p++) { /* 16 keys per step, up to the diagonal tile */
        if (p > qt) break;
#pragma unroll
        for (int ks = 0; ks < 4; ks++) {
            uint32_t kb[4];
            cs_ldmatrix_x4(kb, sK + (p * 16 + (lane & 7) + ((lane >> 4) << 3)) * ATT_LD + ks * 16 +
                                   ((lane >> 3) & 1) * 8);
            const uint32_t b0[2] = {kb[0], kb[1]}, b1[2] = {kb[2], kb[3]};
            cs_mma16816<T>(s[2 * p], qf[ks], b0);
            cs_mma16816<T>(s[2 * p + 1], qf[ks], b1);
        }
    }

    /* scale + causal mask + fp32 softmax; row a = qt*16+g (elements 0,1), row b = a+8 (2,3) */
    const int row_a = qt * 16 + g, row_b = row_a + 8;
    float mx_a = -INFINITY, mx_b = -INFINITY;
#pragma unroll
    for (int nt = 0; nt < 2 * ATT_TILES; nt++) {
        if (nt >= 2 * (qt + 1)) break;
#pragma unroll
        for (int e = 0; e < 2; e++) {
            const int key = nt * 8 + 2 * t + e;
            s[nt][e] = key <= row_a ? s[nt][e] * scale : -INFINITY;
            s[nt][2 + e] = key <= row_b ? s[nt][2 + e] * scale : -INFINITY;
            mx_a = fmaxf(mx_a, s[nt][e]);
            mx_b = fmaxf(mx_b, s[nt][2 + e]);
        }
    }
    mx_a = fmaxf(mx_a, __shfl_xor_sync(0xffffffffu, mx_a, 1));
    mx_a = fmaxf(mx_a, __shfl_xor_sync(0xffffffffu, mx_a, 2));
    mx_b = fmaxf(mx_b, __shfl_xor_sync(0xffffffffu, mx_b, 1));
    mx_b = fmaxf(mx_b, __shfl_xor_sync(0xffffffffu, mx_b, 2));
    float sum_a = 0.0f, sum_b = 0.0f;
#pragma unroll
    for (int nt = 0; nt < 2 * ATT_TILES; nt++) {
        if (nt >= 2 * (qt + 1)) break;
#pragma unroll
        for (int e = 0; e < 2; e++) {
            s[nt][e] = __expf(s[nt][e] - mx_a); /* exp(-inf) == 0 exactly */
            s[nt][2 + e] = __expf(s[nt][2 + e] - mx_b);
            sum_a += s[nt][e];
            sum_b += s[nt][2 + e];
        }
    }
    sum_a += __shfl_xor_sync(0xffffffffu, sum_a, 1);
    sum_a += __shfl_xor_sync(0xffffffffu, sum_a, 2);
    sum_b += __shfl_xor_sync(0xffffffffu, sum_b, 1);
    sum_b += __shfl_xor_sync(0xffffffffu, sum_b, 2);

    /* O = P V: P's accumulator layout is the A fragment layout of the next mma */
    float o[8][4];
#pragma unroll
    for (int dt = 0; dt < 8; dt++)
#pragma unroll
        for (int e = 0; e < 4; e++) o[dt][e] = 0.0f;
#pragma unroll
    for (int kp = 0; kp < ATT_TILES; kp++) {
        if (kp > qt) break;
        const uint32_t pa[4] = {cs_pack2<T>(s[2 * kp][0], s[2 * kp][1]),
                                cs_pack2<T>(s[2 * kp][2], s[2 * kp][3]),
                                cs_pack2<T>(s[2 * kp + 1][0], s[2 * kp + 1][1]),
                                cs_pack2<T>(s[2 * kp + 1][2], s[2 * kp + 1][3])};
        uint32_t pl[4] = {0, 0, 0, 0}; /* bf16: what rounding P to T lost, as a second term */
        if (cs_split_p<T>::value) {
            pl[0] = cs_pack2<T>(cs_round_err<T>(s[2 * kp][0]), cs_round_err<T>(s[2 * kp][1]));
            pl[1] = cs_pack2<T>(cs_round_err<T>(s[2 * kp][2]), cs_round_err<T>(s[2 * kp][3]));
            pl[2] = cs_pack2<T>(cs_round_err<T>(s[2 * kp + 1][0]), cs_round_err<T>(s[2 * kp + 1][1]));
            pl[3] = cs_pack2<T>(cs_round_err<T>(s[2 * kp + 1][2]), cs_round_err<T>(s[2 * kp + 1][3]));
        }
#pragma unroll
        for (int dp = 0; dp < 4; dp++) {
            /* V is (key, dim) row-major: .trans turns 8x8 blocks into col-major B fragments */
            uint32_t vb[4];
            cs_ldmatrix_x4_trans(vb, sV + (kp * 16 + (lane & 7) + ((lane >> 3) & 1) * 8) * ATT_LD +
                                         dp * 16 + (lane >> 4) * 8);
            const uint32_t b0[2] = {vb[0], vb[1]}, b1[2] = {vb[2], vb[3]};
            cs_mma16816<T>(o[2 * dp], pa, b0);
            cs_mma16816<T>(o[2 * dp + 1], pa, b1);
            if (cs_split_p<T>::value) {
                cs_mma16816<T>(o[2 * dp], pl, b0);
                cs_mma16816<T>(o[2 * dp + 1], pl, b1);
            }
        }
    }

    const float inv_a = 1.0f / sum_a, inv_b = 1.0f / sum_b;
    const bool st_a = row_a < len && (!last_only || row_a == len - 1);
    const bool st_b = row_b < len && (!last_only || row_b == len - 1);
    const size_t orow_a = last_only ? (size_t)seq : (size_t)(r0 + row_a);
    const size_t orow_b = last_only ? (size_t)seq : (size_t)(r0 + row_b);
#pragma unroll
    for (int dt = 0; dt < 8; dt++) {
        const int col = h * CS_K_ATTN_HEAD_DIM + dt * 8 + 2 * t;
        if (st_a)
            *reinterpret_cast<uint32_t *>(out + orow_a * d + col) =
                cs_pack2<T>(o[dt][0] * inv_a, o[dt][1] * inv_a);
        if (st_b)
            *reinterpret_cast<uint32_t *>(out + orow_b * d + col) =
                cs_pack2<T>(o[dt][2] * inv_b, o[dt][3] * inv_b);
    }
}

template <typename T>
static __global__ void __launch_bounds__(ATT_WARPS * 32)
    attention_kernel(T *out, const T *qkv, const int32_t *offsets, int d, float scale,
                     int last_only, int split) {
    __shared__ __align__(16) T sQ[CS_K_ATTN_MAX_T * ATT_LD];
    __shared__ __align__(16) T sK[CS_K_ATTN_MAX_T * ATT_LD];
    __shared__ __align__(16) T sV[CS_K_ATTN_MAX_T * ATT_LD];
    cs_pdl_wait();
    cs_pdl_trigger();
    const int seq = blockIdx.x, h = blockIdx.y;
    const int r0 = offsets[seq], len = offsets[seq + 1] - r0;
    if (len <= 0 || len > CS_K_ATTN_MAX_T) return; /* the host validated; never index past smem */
    const size_t ld = 3 * (size_t)d;
    const int n_tiles = (len + 15) >> 4;
    const int first = last_only ? n_tiles - 1 : 0;
    /* split: this block does query tile blockIdx.z alone and needs rows 0 .. 16 z + 15 only */
    const int zt = blockIdx.z;
    if (split && (zt >= n_tiles || zt < first)) return;
    const int rows = split ? (zt + 1) * 16 : CS_K_ATTN_MAX_T;

    /* 8 chunks of 16 B per row and matrix; rows past len are zeros (see the header note) */
    for (int i = threadIdx.x; i < rows * 8; i += blockDim.x) {
        const int j = i >> 3, c = i & 7;
        uint4 q = make_uint4(0, 0, 0, 0), k = q, v = q;
        if (j < len) {
            const T *row = qkv + (size_t)(r0 + j) * ld + h * CS_K_ATTN_HEAD_DIM + c * 8;
            q = *reinterpret_cast<const uint4 *>(row);
            k = *reinterpret_cast<const uint4 *>(row + d);
            v = *reinterpret_cast<const uint4 *>(row + 2 * d);
        }
        *reinterpret_cast<uint4 *>(sQ + j * ATT_LD + c * 8) = q;
        *reinterpret_cast<uint4 *>(sK + j * ATT_LD + c * 8) = k;
        *reinterpret_cast<uint4 *>(sV + j * ATT_LD + c * 8) = v;
    }
    __syncthreads();

    const int warp = threadIdx.x >> 5;
    if (split) {
        if (warp == 0) attn_tile<T>(out, sQ, sK, sV, zt, len, r0, seq, h, d, scale, last_only);
        return;
    }
    for (int qt = first + warp; qt < n_tiles; qt += ATT_WARPS)
        attn_tile<T>(out, sQ, sK, sV, qt, len, r0, seq, h, d, scale, last_only);
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
