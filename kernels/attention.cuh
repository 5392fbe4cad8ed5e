/* The tensor-core attention's work on one (sequence, head) or one of its query tiles, as device
 * functions: attention.cu's kernel runs it for its block, the fused layer kernel (layer.cu) for
 * each item it takes, so both give the same bits. attention.cu's header note has the numerics. */
#ifndef CLIPSKIP_KERNELS_ATTENTION_CUH
#define CLIPSKIP_KERNELS_ATTENTION_CUH

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

/* Sequence seq, head h: every query tile (split 0; ATT_WARPS warps take them in turn) or query
 * tile zt alone (split 1). sQ, sK, sV: shared memory of CS_K_ATTN_MAX_T x ATT_LD elements each.
 * The caller synchronizes the block before reusing them. */
template <typename T>
__device__ __forceinline__ void cs_attn_block(T *out, const T *qkv, const int32_t *offsets, int d,
                                              float scale, int last_only, int split, int seq, int h,
                                              int zt, T *sQ, T *sK, T *sV) {
    cs_pdl_wait();
    cs_pdl_trigger();
    const int r0 = offsets[seq], len = offsets[seq + 1] - r0;
    if (len <= 0 || len > CS_K_ATTN_MAX_T) return; /* the host validated; never index past smem */
    const size_t ld = 3 * (size_t)d;
    const int n_tiles = (len + 15) >> 4;
    const int first = last_only ? n_tiles - 1 : 0;
    /* split: this block does query tile zt alone and needs rows 0 .. 16 zt + 15 only */
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

#endif
