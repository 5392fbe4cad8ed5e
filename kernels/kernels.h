/* Launchers of the CUDA kernels (kernels/<op>.cu): plain C so that host/backend_cuda.c (C11,
 * gcc) includes it.
 *
 * Every launcher queues its work on `stream` and returns the error of its launch (cudaSuccess,
 * or what cudaGetLastError() said right after it, or cudaErrorInvalidValue for arguments the
 * kernel cannot take); none synchronizes, none allocates, so every launcher may be captured
 * into a CUDA graph. Pointers are device pointers. dtype arguments are clipskip_dtype values:
 * ACT buffers are F16 or BF16, the residual stream (RESID) is F32.
 *
 * Numerics that the backend's contract relies on (kernels/README.md has the reasons):
 *   - GEMM: fp32 accumulation, one accumulator per output element fed k-steps of 16 in
 *     increasing k; tile shape may depend on M, the k sequence never does (batch invariance).
 *     With a k_chunk, one accumulator per chunk, added in chunk order (cs_k_gemm_args).
 *   - LayerNorm and softmax statistics in fp32; reductions in a fixed order per row.
 *   - Attention: the output row i of a sequence depends on rows 0..i only, bitwise. */
#ifndef CLIPSKIP_KERNELS_H
#define CLIPSKIP_KERNELS_H

#include "clipskip.h"

#include <cuda_runtime_api.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Largest sequence the attention kernel takes (5 query tiles of 16); CLIP uses 77. */
#define CS_K_ATTN_MAX_T 80
/* Head width the tensor-core attention kernel is written for (every CLIP text tower); other
 * widths up to CS_K_ATTN_MAX_HEAD_DIM take a slower CUDA-core kernel. */
#define CS_K_ATTN_HEAD_DIM 64
#define CS_K_ATTN_MAX_HEAD_DIM 64

/* Programmatic dependent launch (sm_90+ devices only; off by default): embed, layernorm,
 * attention, gather and the mma.sync GEMM are then launched so that each may start while the
 * kernel before it finishes (the GEMM streams its first weight tiles meanwhile). Per host
 * thread: it applies to the launches (and graph captures) the calling thread makes after it;
 * the CUDA backend sets it at the start of every pass from its encoder's own setting. */
void cs_k_set_pdl(int on);
int cs_k_pdl(void);
/* Whether the code loaded for the current device has the PDL instructions (built for sm_90+,
 * not JIT-compiled from older PTX, where the waits are compiled out): 1 or 0. */
int cs_k_pdl_usable(void);

/* h(m, d) fp32 = tok_emb[ids[i]] (tok_dtype: F32/F16/BF16) + pos_emb[pos[i]] (fp32).
 * ids/pos (m) device int32, already range-checked by the caller. d % 4 == 0. */
cudaError_t cs_k_embed(float *h, const void *tok_emb, clipskip_dtype tok_dtype,
                       const float *pos_emb, const int32_t *ids, const int32_t *pos, int32_t m,
                       int32_t d, cudaStream_t stream);

/* out(m, d) ACT = (in - mean) * rstd * gamma + beta per row, fp32 statistics (two passes:
 * mean, then centred variance). in fp32; gamma, beta (d) fp32. d % 4 == 0. Row i of out comes
 * from row i of in, or from row rows[i] when rows (m device int32, checked by the caller) is
 * given: the final LN of the pooled output reads each sequence's EOS row in place, no gather. */
cudaError_t cs_k_layernorm(void *out, clipskip_dtype out_dtype, const float *in, const int32_t *rows,
                           const float *gamma, const float *beta, int32_t m, int32_t d, float eps,
                           cudaStream_t stream);

typedef enum {
    CS_K_EPI_NONE = 0,       /* out ACT = x W^T */
    CS_K_EPI_BIAS = 1,       /* out ACT = x W^T + b */
    CS_K_EPI_BIAS_ACT = 2,   /* out ACT = act(x W^T + b) */
    CS_K_EPI_BIAS_RESID = 3  /* out fp32 += x W^T + b */
} cs_k_epilogue;

typedef struct {
    const void *x;      /* (m, k) F16/BF16, row-major */
    const void *w;      /* (n, k) same dtype: nn.Linear layout, y = x @ w^T */
    const float *bias;  /* (n) fp32, 8-byte aligned; NULL only with CS_K_EPI_NONE */
    void *out;          /* (m, n): dtype for NONE/BIAS/BIAS_ACT, fp32 for BIAS_RESID */
    int32_t m, n, k;    /* k % 8 == 0, n % 8 == 0; m >= 1 */
    clipskip_dtype dtype;
    cs_k_epilogue epi;
    clipskip_act act;   /* for CS_K_EPI_BIAS_ACT */
    /* Fixed split of K (0: none). With k_chunk > 0 every output is the sum, in chunk order
     * starting from 0.0f, of partial products over k in [c * k_chunk, (c + 1) * k_chunk), each
     * accumulated from zero in k-steps of 16: s = 0; s += P_0; s += P_1; ... That sum has the
     * same bits whether one block walks every chunk (registers) or each chunk runs on its own
     * block (split_ws != NULL: partials through split_ws, the last block of a tile to finish
     * adds them up in chunk order), so a fixed k_chunk keeps batch invariance while letting
     * small batches spread K over more blocks. k_chunk must be a multiple of the tile's k-tile
     * (128 covers every mma.sync tile the pick uses). Of the wgmma tiles only 128x128ws takes
     * it, in registers (split_ws NULL); cs_k_gemm refuses the others when k > k_chunk. */
    int32_t k_chunk;
    float *split_ws;       /* >= ceil(k / k_chunk) * m * n floats, or NULL: chunks in-block */
    unsigned *split_sem;   /* with split_ws: one counter per output tile, all 0 before the
                            * first launch; the kernel leaves them 0 again (graph replays) */
} cs_k_gemm_args;

/* Tile configurations of the native GEMM (BM x BN, k-tile BK; kernels/gemm.cu has the table).
 * They differ in which block computes an element and how many k-steps a pipeline stage holds,
 * never in the order of the k-steps: all give bitwise the same result. */
typedef enum {
    CS_K_GEMM_TILE_128x128 = 0, /* BK 64 */
    CS_K_GEMM_TILE_64x64 = 1,   /* BK 64 */
    CS_K_GEMM_TILE_32x32 = 2,   /* BK 128 */
    CS_K_GEMM_TILE_128x128_K32 = 3, CS_K_GEMM_TILE_64x64_K32 = 4, CS_K_GEMM_TILE_32x32_K32 = 5,
    CS_K_GEMM_TILE_32x32_K256 = 6, /* written after the H100 runs, not run yet */
    /* sm_90a wgmma kernels (kernels/gemm_wgmma.cu, whose header has their status): never
     * picked yet, usable only on a compute capability 9.0 device running sm_90a code.
     * 128 x BN tiles, k-tile 64; _P: one wgmma group kept in flight, 4 stages */
    CS_K_GEMM_TILE_WGMMA = 7, CS_K_GEMM_TILE_WGMMA_256 = 8, CS_K_GEMM_TILE_WGMMA_P = 9,
    CS_K_GEMM_TILE_WGMMA_256_P = 10,
    /* kernels/gemm_wgmma_ws.cu: TMA loads by a producer warpgroup, 2 consumer warpgroups,
     * 128 x 128 (6 stages) and 128 x 256 (4 stages); never run yet */
    CS_K_GEMM_TILE_WGMMA_WS = 11, CS_K_GEMM_TILE_WGMMA_WS_256 = 12,
    CS_K_GEMM_N_TILES = 13
} cs_k_gemm_tile;
/* The mma.sync configurations are 0 .. CS_K_GEMM_N_MMA_TILES - 1 (bitwise equal by design). */
#define CS_K_GEMM_N_MMA_TILES 7

/* Once per device (current device) before the first cs_k_gemm: raises the dynamic shared
 * memory limit of the kernels that need more than 48 KB. */
cudaError_t cs_k_gemm_setup(void);
/* kernels/gemm_wgmma.cu: probe the device once (cs_k_gemm_setup calls it); usable[t] = 1 for
 * each wgmma configuration t the running code and the device's shared memory allow. The
 * launcher takes cs_k_gemm's arguments and one of the CS_K_GEMM_TILE_WGMMA* values. */
cudaError_t cs_k_gemm_wgmma_setup(int usable[CS_K_GEMM_N_TILES]);
cudaError_t cs_k_gemm_wgmma(const cs_k_gemm_args *a, int tile, cudaStream_t stream);
/* "128x128k64" etc.; "?" out of range. */
const char *cs_k_gemm_tile_name(int tile);
/* Whether the device (after cs_k_gemm_setup) can run the configuration (shared memory). */
int cs_k_gemm_tile_usable(int tile);
/* The tile configuration cs_k_gemm picks for (m, n) on a device with n_sm multiprocessors:
 * the largest tile that still makes at least n_sm blocks (tiles x k_splits, the number of
 * chunks run on separate blocks; 1 without a cross-block split), else the smallest. */
cs_k_gemm_tile cs_k_gemm_pick(int32_t m, int32_t n, int32_t k_splits, int n_sm);
/* Whether configuration `tile` takes a fixed split of K of k_chunk (> 0): whole k-tiles, and
 * for a wgmma tile only 128x128ws with the chunks in registers (across = 0). */
int cs_k_gemm_chunk_ok(int tile, int32_t k_chunk, int across);
/* Number of K chunks of a GEMM with the given k and k_chunk (1 when k_chunk <= 0). */
int32_t cs_k_gemm_splits(int32_t k, int32_t k_chunk);
/* Output tiles of configuration `tile` for (m, n): the split_sem counters a cross-block
 * split needs. */
size_t cs_k_gemm_tiles(int tile, int32_t m, int32_t n);
/* Workspace the encoder gives cross-block splits: partials (floats) and per-tile counters. */
#define CS_K_GEMM_SPLIT_WS_FLOATS ((size_t)8 << 20)
#define CS_K_GEMM_SPLIT_SEMS ((size_t)1 << 16)
/* The split plan the encoder runs (and bench_kernels times): with a k_chunk that splits k, the
 * chunks go on separate blocks when the default tile alone makes fewer than 4 blocks per SM
 * (under two waves) and the partials and counters fit ws_floats and sems. Returns 1 then, with
 * *tile the pick counting tiles x chunks; else 0 (chunks added in registers, *tile untouched).
 * Any plan gives the same bits (cs_k_gemm_args). */
int cs_k_gemm_split_across(int32_t m, int32_t n, int32_t k, int32_t k_chunk, size_t ws_floats,
                           size_t sems, int n_sm, int *tile);
/* Tensor-core GEMM (mma.sync m16n8k16, ldmatrix, cp.async pipeline) with a fused epilogue.
 * tile < 0: cs_k_gemm_pick(m, n, splits across blocks, n_sm); else that configuration (tests, benchmarks;
 * cudaErrorInvalidValue when it is not usable on this device). */
cudaError_t cs_k_gemm(const cs_k_gemm_args *a, int n_sm, int tile, cudaStream_t stream);

/* Causal multi-head attention, one block per (sequence, head).
 * qkv (M, 3d) dtype, row = [q | k | v], head h at columns h*dh .. h*dh+dh-1 of each part,
 * dh = d / n_heads <= CS_K_ATTN_MAX_HEAD_DIM (64: tensor cores; others: CUDA cores).
 * offsets (n_seq + 1) device int32 prefix sums (row of sequence s = offsets[s] ..
 * offsets[s+1]-1), every length in 1..CS_K_ATTN_MAX_T.
 * out: (M, d) merged heads, or with last_only (n_seq, d) holding each sequence's last row.
 * scale multiplies q.k in fp32; softmax in fp32; P is rounded to dtype for the P.V product. */
cudaError_t cs_k_attention(void *out, const void *qkv, const int32_t *offsets, int32_t n_seq,
                           int32_t n_heads, int32_t d, float scale, int last_only,
                           clipskip_dtype dtype, cudaStream_t stream);

/* Layers of a small pass in ONE cooperative launch (kernels/layer.cu): for each layer,
 * h += O(attn(LN1(h))), then h += FC2(act(FC1(LN2(h)))), as phases separated by grid-wide
 * barriers (QKV, attention, O + residual, FC1 + act, FC2 + residual; LN2 and the next layer's
 * LN1 run inside the O and FC2 phases, by the block that stores a row block's last tile, and
 * LN1 of the first layer is a phase of its own), every block taking the phase's output tiles
 * (x K chunks) or (sequence, head[, query tile]) items in turn. Each item runs the very
 * device function the separate kernels run (cs_ln_row, cs_gemm_tile, cs_attn_block), so the
 * result is bitwise the separate kernels' under the same k_chunk: a prompt alone (fused) and
 * inside a large batch (separate kernels) stay equal. For passes too small to fill the
 * device, where the seven launches per layer and the gaps between them are most of the time.
 * Head width 64 only (the tensor-core attention). */
typedef struct {
    const float *ln1_g, *ln1_b, *ln2_g, *ln2_b;
    const void *w_qkv, *w_o, *w_fc1, *w_fc2; /* nn.Linear (N, K) */
    const float *b_qkv, *b_o, *b_fc1, *b_fc2;
} cs_k_layer_weights;

typedef struct {
    clipskip_dtype dtype;    /* F16 or BF16: the ACT buffers and weights */
    clipskip_act act;        /* FC1's activation */
    int32_t m, d, n_heads, f; /* token rows, width, heads (d / n_heads == 64), MLP width */
    int32_t n_seq;
    const int32_t *offsets;  /* (n_seq + 1) device prefix sums, as cs_k_attention */
    float scale, eps;        /* attention's Dh^-0.5; LayerNorm's eps */
    float *h;                /* (m, d) fp32 residual, updated in place */
    void *a, *qkv, *att, *mlp; /* ACT scratch: (m, d), (m, 3d), (m, d), (m, f) */
    const cs_k_layer_weights *layers; /* device array: the n_layers layers to run, in order */
    int32_t n_layers;
    /* last_only: the last layer is pooled-only (host/encoder.c layer_last_only): its attention
     * for each sequence's last row (into att row s), the residual rows pool_rows[i] of h
     * copied into h_pool, and O, LN2, FC1, FC2 over those n_pool = n_seq rows only: h_pool
     * (n_pool, d) fp32 holds the layer's output, h the layer before's */
    int32_t last_only, n_pool;
    const int32_t *pool_rows; /* (n_pool) device row numbers in h */
    float *h_pool;
    int32_t k_chunk;         /* as cs_k_gemm_args (0: no split) */
    float *split_ws;         /* with k_chunk: chunks on separate blocks where these fit, */
    size_t split_ws_floats;  /* else added in registers (same bits) */
    unsigned *split_sem;
    size_t split_sems;
    unsigned *bar;           /* 1 device counter for the grid barrier: 0 (or 2^31) before the
                              * first launch; each barrier adds 2^31 (layer.cu), so it stays
                              * ready for the next launch (graph replays) and any grid size */
    unsigned *row_sem;       /* 2 x CS_K_LAYER_ROW_SEMS(m) device counters: the finished tiles
                              * per row block of O, then of FC2; 0 before the first launch and
                              * left 0 */
    int flow;                /* 1: inside the layers, items wait for what they read through
                              * per-row counters instead of grid barriers (layer_flow.cuh) */
    unsigned *flow_sem;      /* flow: CS_K_LAYER_FLOW_SEMS(m, n_seq) device counters, zeroed by
                              * the kernel, left holding counts (never shared with row_sem) */
    int per_sm;              /* the per_sm_max cs_k_layer_setup was given (3: the 3-per-SM build) */
    int prefetch;            /* ask L2 for the weights: 0 no, 1 each layer's as it starts, 2 also
                              * the next layer's (two layers' weights must fit L2) */
    unsigned long long *trace; /* NULL, or (5 n_layers + 3) x blocks x 2 %globaltimer stamps (ns):
                              * row 0 each block's start, row 1 its arrival at and departure from
                              * the barrier after the first LN1, row 2 + 5 l + j the barrier of
                              * layer l after QKV, attention, O (+ LN2), FC1, FC2 (+ next LN1;
                              * none after the last layer; in flow mode a phase's end, both
                              * stamps alike), row 5 n_layers + 1 its end, the last row the ns
                              * it waited (barriers, flow counters) and how many waits
                              * (bench_kernels prints the phases from it) */
} cs_k_layer_args;
/* Once per device before cs_k_layer; *blocks = the grid to launch (every block resident at
 * once: multiprocessors x resident blocks per multiprocessor, at most per_sm_max: 1, 2 or 3;
 * anything else means 2). 3 takes the kernel built for 3 blocks per SM (168 registers, 32x32
 * tiles, 48 KB), which cs_k_layer_args.per_sm must then name. Fewer blocks: fewer arrivals per
 * grid barrier, fewer items in flight. */
cudaError_t cs_k_layer_setup(int per_sm_max, int *blocks);
/* Counters per row block of m rows (cs_k_layer_args.row_sem holds two such arrays), and flow
 * mode's for m rows of n_seq sequences (cs_k_layer_args.flow_sem: 4 per 32 rows, 1 per
 * sequence). */
#define CS_K_LAYER_ROW_SEMS(m) ((size_t)(m) / 32 + 1)
#define CS_K_LAYER_FLOW_SEMS(m, n_seq) (4 * (((size_t)(m) + 31) / 32) + (size_t)(n_seq))
/* cudaErrorInvalidValue where the layer does not fit the kernel (head width, d > 2048, dtype);
 * cudaErrorCooperativeLaunchTooLarge when the blocks cannot all be resident. */
cudaError_t cs_k_layer(const cs_k_layer_args *a, int blocks, cudaStream_t stream);

/* dst row i = src row idx[i], row_bytes each; idx (n) device int32, range-checked by the
 * caller. */
cudaError_t cs_k_gather_rows(void *dst, const void *src, size_t row_bytes, const int32_t *idx,
                             int32_t n, cudaStream_t stream);

/* dst[i] = (dst_dtype) src[i], n elements, F32/F16/BF16 either side (round to nearest even;
 * NaN stays NaN). Same dtype: a copy. */
cudaError_t cs_k_convert(void *dst, clipskip_dtype dst_dtype, const void *src,
                         clipskip_dtype src_dtype, size_t n, cudaStream_t stream);
/* dst (cols, rows) = transpose of src (rows, cols), converted. */
cudaError_t cs_k_transpose_convert(void *dst, clipskip_dtype dst_dtype, const void *src,
                                   clipskip_dtype src_dtype, int64_t rows, int64_t cols,
                                   cudaStream_t stream);
/* x[i] = act(x[i]) in place, n elements of dtype (F16/BF16); fp32 arithmetic. */
cudaError_t cs_k_activation(void *x, clipskip_dtype dtype, clipskip_act act, size_t n,
                            cudaStream_t stream);

#ifdef __cplusplus
}
#endif
#endif
