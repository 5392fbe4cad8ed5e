/* The fused layer kernel (kernels.h: cs_k_layer): the layers of a small pass in one
 * cooperative launch. Every block is resident at once and loops over each layer's phases; a
 * grid-wide barrier separates them (a phase reads what the one before it wrote, in other
 * blocks). Inside a phase a block takes items in turn (item = blockIdx.x, + gridDim.x, ...):
 *   LN1 of layer 0      one row per warp                     cs_ln_row      (layernorm.cuh)
 *   QKV, O, FC1, FC2    one output tile (x one K chunk)     cs_gemm_tile   (gemm_tile.cuh)
 *   attention           one (sequence, head[, query tile])  cs_attn_block  (attention.cuh)
 * the same device functions the separate kernels run, so the same bits (kernels.h). LN2 and
 * the next layer's LN1 need whole rows of h, which the O and FC2 phases finish one row block
 * at a time: the block that stores a row block's last tile normalizes it (layer_ln_after),
 * which saves two barriers per layer.
 *
 * Flow mode (a.flow, layer_flow.cuh): inside the layers no barriers; each item waits through
 * per-row counters for the items it reads.
 *
 * Why: at batch 1 a CLIP-L layer is 7 launches of a few microseconds of work each, and the
 * launch gaps inside a graph cost about as much as the work (kernels/README.md, "Batch 1"). One
 * launch per run of layers leaves 5 grid barriers per layer, about a microsecond each.
 *
 * Barrier: one counter, bar[0], to which every barrier adds exactly 2^31: block 0 adds
 * 2^31 - (blocks - 1), every other block 1, so its top bit flips when, and only when, the last
 * block has arrived (the sense-reversing counter of cooperative groups' grid sync). A block's
 * thread 0 arrives (atom.acq_rel: releases the block's writes, which the __syncthreads before
 * gathered) and polls the counter with acquire loads until the top bit differs from the value
 * its own arrival returned; an acquire that reads the last arrival's value synchronizes with
 * every arrival before it (PTX observation order runs through atomic read-modify-writes). One
 * hop: no block has to see that it came last and then release the others. The low 31 bits
 * must be 0 before the first launch (a partial sum would carry into the top bit early
 * otherwise); each barrier leaves them 0 again, so nothing needs a reset between launches
 * (graph replays) or when the grid size changes. The blocks must all be resident: the launch is
 * cooperative, which CUDA refuses when they would not be. */
#include "attention.cuh"
#include "gemm_tile.cuh"
#include "layernorm.cuh"

#define LAYER_THREADS 128 /* 4 warps: the 2 x 2 warp layout of the GEMM tiles used here */
/* dynamic shared memory: the larger of a GEMM tile's stages (64 KB for the tiles of the
 * 2-per-SM build, 48 KB for the 3-per-SM one) and attention's Q, K, V (3 x 80 x 72 x 2 B =
 * 34,560 B), then an int for the split hand-off */
static constexpr __host__ __device__ int layer_gemm_smem(int per_sm) { return per_sm == 3 ? 48 * 1024 : 64 * 1024; }
static constexpr __host__ __device__ int layer_smem(int per_sm) { return layer_gemm_smem(per_sm) + 16; }

#ifdef CS_EMU
__device__ __forceinline__ unsigned layer_ld_acquire(const unsigned *p) { return *p; }
__device__ __forceinline__ unsigned layer_atom_add_acq_rel(unsigned *p, unsigned v) {
    return atomicAdd(p, v);
}
__device__ __forceinline__ void layer_pause() { cs_emu_spin(); }
__device__ __forceinline__ void layer_prefetch_line(const void *) {}
__device__ __forceinline__ unsigned long long layer_now() { return 0; }
__device__ __forceinline__ void layer_trap() {}
#else
__device__ __forceinline__ unsigned layer_ld_acquire(const unsigned *p) {
    unsigned v;
    asm volatile("ld.acquire.gpu.global.u32 %0, [%1];\n" : "=r"(v) : "l"(p) : "memory");
    return v;
}
__device__ __forceinline__ unsigned layer_atom_add_acq_rel(unsigned *p, unsigned v) {
    unsigned old;
    asm volatile("atom.acq_rel.gpu.global.add.u32 %0, [%1], %2;\n" : "=r"(old) : "l"(p), "r"(v) : "memory");
    return old;
}
__device__ __forceinline__ void layer_pause() { __nanosleep(32); }
__device__ __forceinline__ void layer_prefetch_line(const void *p) {
    asm volatile("prefetch.global.L2 [%0];\n" ::"l"(p));
}
__device__ __forceinline__ unsigned long long layer_now() {
    unsigned long long t;
    asm volatile("mov.u64 %0, %%globaltimer;\n" : "=l"(t));
    return t;
}
__device__ __forceinline__ void layer_trap() { asm volatile("trap;\n"); }
#endif

/* One turn of a poll that started at t0: a pause, and a trap once it has lasted 5 s (a wait that
 * can never end, e.g. a block that cannot arrive, fails the launch with an error instead of
 * hanging the device; never run yet). */
__device__ __forceinline__ void layer_backoff(unsigned long long t0) {
    layer_pause();
    if (layer_now() - t0 > 5000000000ull) layer_trap();
}

#include "layer_flow.cuh"

/* Ask L2 for bytes of p, one 128-byte line per thread of the grid in turn: a layer's weights
 * ahead of its GEMM phases, so they find them on chip. */
__device__ __forceinline__ void layer_prefetch(const void *p, size_t bytes) {
    const size_t step = (size_t)gridDim.x * blockDim.x * 128;
    for (size_t off = ((size_t)blockIdx.x * blockDim.x + threadIdx.x) * 128; off < bytes; off += step)
        layer_prefetch_line(static_cast<const char *>(p) + off);
}

/* This block's two stamps in row i of the trace, or NULL without one. */
__device__ __forceinline__ unsigned long long *layer_trace_row(const cs_k_layer_args &a, int i) {
    return a.trace ? a.trace + ((size_t)i * gridDim.x + blockIdx.x) * 2 : nullptr;
}

/* This block's row of wait totals, the trace's last (ns waited, waits), or NULL. */
__device__ __forceinline__ unsigned long long *layer_trace_waits(const cs_k_layer_args &a) {
    return layer_trace_row(a, 5 * a.n_layers + 2);
}

/* Thread 0, with a trace: t0's wait (a barrier's or flow mode's) added to the block's totals. */
__device__ __forceinline__ void layer_trace_wait(const cs_k_layer_args &a, unsigned long long t0) {
    unsigned long long *tr = layer_trace_waits(a);
    if (!tr) return;
    tr[0] += layer_now() - t0;
    tr[1] += 1;
}

/* Every block of the grid reaches here before any leaves; writes before it are visible to
 * every block after it. i: the barrier's number in the launch (1, 2, ...), for the trace. */
__device__ __forceinline__ void layer_grid_sync(const cs_k_layer_args &a, int i) {
    unsigned *bar = a.bar;
    __syncthreads();
    if (threadIdx.x == 0) {
        unsigned long long *tr = layer_trace_row(a, i);
        if (tr) tr[0] = layer_now();
        const unsigned add = blockIdx.x == 0 ? 0x80000000u - (gridDim.x - 1) : 1u;
        const unsigned old = layer_atom_add_acq_rel(bar, add);
        const unsigned long long t0 = layer_now();
        while (((old ^ layer_ld_acquire(bar)) & 0x80000000u) == 0) layer_backoff(t0);
        layer_trace_wait(a, t0);
        if (tr) tr[1] = layer_now();
    }
    __syncthreads();
}

/* The trace's first and last rows: the block's start and end (both stamps alike). */
__device__ __forceinline__ void layer_stamp(const cs_k_layer_args &a, int i) {
    unsigned long long *tr = layer_trace_row(a, i);
    if (tr && threadIdx.x == 0) tr[0] = tr[1] = layer_now();
}

/* At the start, with a trace: the block's wait totals to 0 (layer_trace_wait). */
__device__ __forceinline__ void layer_trace_start(const cs_k_layer_args &a) {
    layer_stamp(a, 0);
    unsigned long long *tr = layer_trace_waits(a);
    if (tr && threadIdx.x == 0) tr[0] = tr[1] = 0;
}

/* The phase functions, layer_ln_rows and layer_run are __noinline__: with every phase inlined
 * into the layer loop ptxas spilled (sm_80: 296 bytes stored, 1168 loaded; sm_90: 112 / 292),
 * and with the LN rows inlined into the GEMM item loop up to 240 bytes of loads there; as calls
 * each gets its own allocation and only the kernel body spills, 12-16 bytes stored and 24-36
 * loaded (around its calls, once per layer). They take P, the build's blocks per SM, though
 * most never read it: so that each build gets its own copy, compiled under its own register
 * bound. */

/* rows m of out = LN(in), one row per warp of the grid */
template <typename T, int P>
__device__ __noinline__ void layer_ln(const cs_k_layer_args &a, const float *g, const float *b) {
    const size_t warps = (size_t)gridDim.x * (LAYER_THREADS / 32);
    for (size_t row = (size_t)blockIdx.x * (LAYER_THREADS / 32) + (threadIdx.x >> 5); row < (size_t)a.m;
         row += warps)
        cs_ln_row<T>(static_cast<T *>(a.a), a.h, nullptr, g, b, row, a.d, a.eps);
}

/* LN rows r0 .. r1 - 1 of in (fp32, d wide) into the same rows of a.a, a warp per row. */
template <typename T, int P>
__device__ __noinline__ void layer_ln_rows(const cs_k_layer_args &a, const float *in, int r0, int r1,
                                           const float *g, const float *b) {
    for (int row = r0 + (threadIdx.x >> 5); row < r1; row += LAYER_THREADS / 32)
        cs_ln_row<T>(static_cast<T *>(a.a), in, nullptr, g, b, (size_t)row, a.d, a.eps);
}

/* What the items of one phase wait for and signal in flow mode (layer_flow.cuh); all null
 * with barriers. */
struct layer_dep {
    const unsigned *wait; /* wait until wait[i] >= target for the item's units (or sequences) */
    unsigned target;
    int by_seq;           /* wait is indexed by sequence (att), not by unit */
    unsigned *sig;        /* +1 per unit of each tile stored (qkv, fc1) */
    unsigned *ln_sig;     /* +1 per unit of each row block the LN hand-off normalized (ln2, ln1) */
};

/* Thread 0 of the block, before an item over rows [r0, r1): its waits. */
__device__ __forceinline__ void layer_wait_rows(const cs_k_layer_args &a, const layer_dep &dp, int32_t r0,
                                                int32_t r1) {
    if (!dp.wait || threadIdx.x != 0) return;
    int32_t i0, i1;
    if (dp.by_seq) layer_seq_range(a, r0, r1, &i0, &i1);
    else layer_unit_range(r0, r1, &i0, &i1);
    const unsigned long long t0 = layer_now();
    layer_wait_all(dp.wait, i0, i1, dp.target, t0);
    layer_trace_wait(a, t0);
}

/* After a tile of a residual GEMM (O, FC2; gm its arguments) is stored: the block counts it for
 * its row block on row_sem, and the block storing the row block's last tile runs the next
 * LayerNorm (gamma g, beta b) on those rows of the residual (gm.out) into a.a, so no LN phase
 * and no barrier are needed for it (in flow mode it then signals ln_sig for those rows). The
 * tiles' stores are handed over as the split-K partials are (fence, counter, fence); cs_ln_row
 * reads h through L2 (__ldcg), never a stale L1 line. wrote: whether this block stored the tile. */
template <typename T, int P, int BM>
__device__ __forceinline__ void layer_ln_after(const cs_k_layer_args &a, const cs_k_gemm_args &gm, int tm,
                                               int tn_count, bool wrote, const float *g, const float *b,
                                               unsigned *row_sem, unsigned *ln_sig, int *s_flag) {
    __threadfence();
    __syncthreads();
    if (threadIdx.x == 0) {
        int last = 0;
        if (wrote) {
            unsigned *sem = row_sem + tm;
            last = atomicAdd(sem, 1u) == (unsigned)tn_count - 1;
            if (last) {
                atomicExch(sem, 0u); /* every column tile has counted: ready for the next GEMM */
                __threadfence();
            }
        }
        *s_flag = last;
    }
    __syncthreads();
    if (!*s_flag) return;
    const int32_t r0 = tm * BM, r1 = min(gm.m, (tm + 1) * BM);
    layer_ln_rows<T, P>(a, static_cast<const float *>(gm.out), r0, r1, g, b);
    if (ln_sig) {
        int32_t u0, u1;
        layer_unit_range(r0, r1, &u0, &u1);
        layer_signal(ln_sig, u0, u1);
    }
}

/* The LN after a residual GEMM: gamma, beta (null: none) and its hand-off counters. */
struct layer_ln_next {
    const float *g, *b;
    unsigned *row_sem;
};

/* One GEMM over the grid with tile BM x BN (k-tile 64 or 128: 64 KB of stages either way);
 * with ln.g, the LayerNorm of each finished row block after it (layer_ln_after); dp: flow
 * mode's waits and signals. */
template <typename T, int P, int BM, int BN, int BK, int STAGES>
__device__ __noinline__ void layer_gemm_tiles(const cs_k_layer_args &a, const cs_k_gemm_args &g,
                                              unsigned char *smem, int *s_last, const layer_ln_next &ln,
                                              const layer_dep &dp) {
    const int tn_count = (g.n + BN - 1) / BN;
    const int tiles = ((g.m + BM - 1) / BM) * tn_count;
    const int splits = cs_gemm_splits(g.k, g.k_chunk);
    /* chunks on separate items where the partials fit, else added in registers: same bits */
    const int nz = splits > 1 && g.split_ws ? splits : 1;
    for (int item = blockIdx.x; item < tiles * nz; item += gridDim.x) {
        const int tile = item % tiles, z = item / tiles, tm = tile / tn_count, tn = tile % tn_count;
        const int32_t r0 = tm * BM, r1 = min(g.m, (tm + 1) * BM);
        layer_wait_rows(a, dp, r0, r1);
        __syncthreads(); /* the previous item's warps are done with smem; the waits are over */
        bool wrote;
        if (splits > 1)
            wrote = cs_gemm_tile<T, BM, BN, BK, 2, 2, STAGES, true>(g, smem, tm, tn, z, nz,
                                                                    g.split_sem ? g.split_sem + tile : nullptr,
                                                                    s_last);
        else
            wrote = cs_gemm_tile<T, BM, BN, BK, 2, 2, STAGES, false>(g, smem, tm, tn, 0, 1, nullptr, s_last);
        if (ln.g) layer_ln_after<T, P, BM>(a, g, tm, tn_count, wrote, ln.g, ln.b, ln.row_sem, dp.ln_sig, s_last);
        if (dp.sig && wrote) {
            int32_t u0, u1;
            layer_unit_range(r0, r1, &u0, &u1);
            layer_signal(dp.sig, u0, u1);
        }
    }
}

/* The tile layer_gemm takes for an m x n x k GEMM: 64x64 (k-tile 64) when they give every
 * block an item, else 32x32 (k-tile 128), as cs_k_gemm_pick; with 3 blocks per SM (P == 3: 168
 * registers, 48 KB) 32x32 always. Returns the tile's side. */
template <int P> __device__ __forceinline__ int layer_tile(const cs_k_layer_args &a, int32_t m, int32_t n, int32_t k) {
    const size_t t64 = (size_t)((m + 63) / 64) * ((n + 63) / 64);
    return P < 3 && t64 * cs_gemm_splits(k, a.k_chunk) >= gridDim.x ? 64 : 32;
}

enum { LAYER_QKV, LAYER_O, LAYER_FC1, LAYER_FC2 };

/* N and K of GEMM kind `kind` of a layer. */
__device__ __forceinline__ void layer_nk(const cs_k_layer_args &a, int kind, int32_t *n, int32_t *k) {
    *n = kind == LAYER_QKV ? 3 * a.d : kind == LAYER_FC1 ? a.f : a.d;
    *k = kind == LAYER_FC2 ? a.f : a.d;
}

/* Flow mode's order of the kinds' split-K regions: the longest K first (FC2's chunks matter
 * most), so the ones left to registers when the workspace runs out are the cheapest. */
__device__ __forceinline__ int layer_split_rank(int kind) {
    return kind == LAYER_FC2 ? 0 : kind == LAYER_QKV ? 1 : kind == LAYER_O ? 2 : 3;
}

/* What GEMM kind `kind` over m rows needs to split K across blocks: the partials' floats and
 * the tiles' counters (0, 0 when it does not split K). */
template <int P>
__device__ __forceinline__ void layer_split_need(const cs_k_layer_args &a, int kind, int32_t m, size_t *floats,
                                                 size_t *tiles) {
    int32_t n, k;
    layer_nk(a, kind, &n, &k);
    const int s = cs_gemm_splits(k, a.k_chunk), t = layer_tile<P>(a, m, n, k);
    *floats = s > 1 ? (size_t)s * m * n : 0;
    *tiles = s > 1 ? (size_t)((m + t - 1) / t) * ((n + t - 1) / t) : 0;
}

/* Where GEMM kind `kind` over m rows keeps its split-K partials and tile counters: at the start
 * of split_ws / split_sem with barriers (one GEMM runs at a time), after the regions of the
 * kinds ranked before it in flow mode (the four run at once on different rows). False: they do
 * not fit, the chunks are added in registers (same bits). */
template <int P>
__device__ __forceinline__ bool layer_split_at(const cs_k_layer_args &a, int kind, int32_t m, size_t *ws_off,
                                               size_t *sem_off) {
    *ws_off = *sem_off = 0;
    size_t floats, tiles;
    for (int j = 0; a.flow && j < 4; j++) {
        if (layer_split_rank(j) >= layer_split_rank(kind)) continue;
        layer_split_need<P>(a, j, a.m, &floats, &tiles);
        *ws_off += floats;
        *sem_off += tiles;
    }
    layer_split_need<P>(a, kind, m, &floats, &tiles);
    return floats && a.split_ws && *ws_off + floats <= a.split_ws_floats && *sem_off + tiles <= a.split_sems;
}

/* GEMM kind `kind` of a layer (weights w, bias, out, m rows) over the grid; ln: the LayerNorm
 * after it (O, FC2); dp: flow mode's waits and signals. The tile never changes the bits. */
template <typename T, int P>
__device__ __forceinline__ void layer_gemm(const cs_k_layer_args &a, int kind, const void *x, const void *w,
                                           const float *bias, void *out, int32_t m, cs_k_epilogue epi,
                                           unsigned char *smem, int *s_last, const layer_ln_next &ln,
                                           const layer_dep &dp) {
    cs_k_gemm_args g = {};
    int32_t n, k;
    layer_nk(a, kind, &n, &k);
    g.x = x, g.w = w, g.bias = bias, g.out = out, g.m = m, g.n = n, g.k = k;
    g.dtype = a.dtype, g.epi = epi, g.act = a.act, g.k_chunk = a.k_chunk;
    size_t ws_off, sem_off;
    if (layer_split_at<P>(a, kind, m, &ws_off, &sem_off)) {
        g.split_ws = a.split_ws + ws_off;
        g.split_sem = a.split_sem + sem_off;
    }
    if constexpr (P == 3)
        layer_gemm_tiles<T, P, 32, 32, 128, 3>(a, g, smem, s_last, ln, dp);
    else if (layer_tile<P>(a, m, n, k) == 64)
        layer_gemm_tiles<T, P, 64, 64, 64, 4>(a, g, smem, s_last, ln, dp);
    else
        layer_gemm_tiles<T, P, 32, 32, 128, 4>(a, g, smem, s_last, ln, dp);
}

/* Column tiles of GEMM kind `kind` over all a.m rows: what a row's counter gains per layer. */
template <int P> __device__ __forceinline__ unsigned layer_col_tiles(const cs_k_layer_args &a, int kind) {
    int32_t n, k;
    layer_nk(a, kind, &n, &k);
    const int t = layer_tile<P>(a, a.m, n, k);
    return (unsigned)((n + t - 1) / t);
}

/* Whether attention takes a block per query tile: few (sequence, head) pairs, as
 * cs_k_attention does. */
__device__ __forceinline__ int layer_attn_split(const cs_k_layer_args &a, int last_only) {
    return !last_only && a.n_seq * a.n_heads < (int)gridDim.x;
}

/* Attention over the packing into a.att; last_only: each sequence's last row only, into row
 * seq of a.att, and the pooled rows of h copied to a.h_pool meanwhile (the separate path's
 * gather_rows). dp (flow mode, never last_only): each item waits for its sequence's rows of
 * qkv and signals its sequence's counter. */
template <typename T, int P>
__device__ __noinline__ void layer_attention(const cs_k_layer_args &a, unsigned char *smem, int last_only,
                                             const layer_dep &dp) {
    T *sQ = reinterpret_cast<T *>(smem);
    T *sK = sQ + CS_K_ATTN_MAX_T * ATT_LD, *sV = sK + CS_K_ATTN_MAX_T * ATT_LD;
    const int pairs = a.n_seq * a.n_heads;
    const int split = layer_attn_split(a, last_only);
    const int items = pairs * (split ? ATT_TILES : 1);
    for (int item = blockIdx.x; item < items; item += gridDim.x) {
        const int pair = item % pairs, zt = item / pairs, seq = pair / a.n_heads;
        layer_wait_rows(a, dp, a.offsets[seq], a.offsets[seq + 1]);
        __syncthreads();
        cs_attn_block<T>(static_cast<T *>(a.att), static_cast<const T *>(a.qkv), a.offsets, a.d, a.scale,
                         last_only, split, seq, pair % a.n_heads, zt, sQ, sK, sV);
        if (dp.sig) layer_signal(dp.sig, seq, seq + 1);
    }
    if (!last_only) return;
    const size_t d4 = (size_t)a.d / 4, n4 = (size_t)a.n_pool * d4;
    for (size_t i = (size_t)blockIdx.x * LAYER_THREADS + threadIdx.x; i < n4; i += (size_t)gridDim.x * LAYER_THREADS) {
        const size_t r = i / d4, c = i - r * d4;
        reinterpret_cast<float4 *>(a.h_pool)[i] =
            reinterpret_cast<const float4 *>(a.h)[(size_t)a.pool_rows[r] * d4 + c];
    }
}

/* Ask L2 for the four weight matrices of layer w. */
template <typename T>
__device__ __forceinline__ void layer_prefetch_weights(const cs_k_layer_args &a, const cs_k_layer_weights &w) {
    const size_t dd = (size_t)a.d * a.d * sizeof(T), df = (size_t)a.d * a.f * sizeof(T);
    layer_prefetch(w.w_qkv, 3 * dd);
    layer_prefetch(w.w_o, dd);
    layer_prefetch(w.w_fc1, df);
    layer_prefetch(w.w_fc2, df);
}

/* Between two phases: a grid barrier, or in flow mode only the trace's stamps (the phases'
 * items wait for what they read instead). */
__device__ __forceinline__ void layer_sync(const cs_k_layer_args &a, int i, bool barrier) {
    if (barrier) layer_grid_sync(a, i);
    else layer_stamp(a, i);
}

/* Layer l: QKV, attention, O + residual (+ LN2 of each finished row block), FC1 + act, FC2 +
 * residual (+ the next layer's LN1 the same way), a barrier after each but the last (flow
 * mode: none, but before a pooled-only last layer); LN1 of the first layer is the caller's.
 * Barrier numbers (the trace's rows) from 2 + 5 l.
 * last_only (the run's last layer, pooled rows only; encoder.c's layer_last_only): QKV over
 * all rows, attention for each sequence's last row, and O, LN2, FC1, FC2 on those n_pool rows
 * only, the residual taken from h into h_pool. */
template <typename T, int P>
__device__ __noinline__ void layer_run(const cs_k_layer_args &a, int l, unsigned char *smem, int *s_last) {
    const cs_k_layer_weights &w = a.layers[l];
    const cs_k_layer_weights *next = l + 1 < a.n_layers ? &a.layers[l + 1] : nullptr;
    const int last_only = a.last_only && !next;
    const int32_t m = last_only ? a.n_pool : a.m;
    float *h = last_only ? a.h_pool : a.h;
    const int b0 = 2 + 5 * l;
    const bool flow = a.flow && !last_only, bar = !flow;
    const bool next_bar = !a.flow || (a.last_only && l + 2 == a.n_layers);
    const layer_flow f = layer_flow_of(a);
    const unsigned L = (unsigned)l + 1u;
    unsigned *sem_o = a.row_sem, *sem_f = a.row_sem + CS_K_LAYER_ROW_SEMS(a.m);
    layer_dep d_qkv = {}, d_att = {}, d_o = {}, d_fc1 = {}, d_fc2 = {};
    if (flow) {
        const unsigned per_seq = (unsigned)a.n_heads * (layer_attn_split(a, 0) ? ATT_TILES : 1);
        d_qkv = {l > 0 ? f.ln1 : nullptr, (unsigned)l, 0, f.qkv, nullptr};
        d_att = {f.qkv, L * layer_col_tiles<P>(a, LAYER_QKV), 0, f.att, nullptr};
        d_o = {f.att, L * per_seq, 1, nullptr, f.ln2};
        d_fc1 = {f.ln2, L, 0, f.fc1, nullptr};
        d_fc2 = {f.fc1, L * layer_col_tiles<P>(a, LAYER_FC1), 0, nullptr, next ? f.ln1 : nullptr};
    }
    layer_gemm<T, P>(a, LAYER_QKV, a.a, w.w_qkv, w.b_qkv, a.qkv, a.m, CS_K_EPI_BIAS, smem, s_last, {}, d_qkv);
    layer_sync(a, b0, bar);
    layer_attention<T, P>(a, smem, last_only, d_att);
    layer_sync(a, b0 + 1, bar);
    layer_gemm<T, P>(a, LAYER_O, a.att, w.w_o, w.b_o, h, m, CS_K_EPI_BIAS_RESID, smem, s_last,
                     {w.ln2_g, w.ln2_b, sem_o}, d_o);
    layer_sync(a, b0 + 2, bar);
    layer_gemm<T, P>(a, LAYER_FC1, a.a, w.w_fc1, w.b_fc1, a.mlp, m, CS_K_EPI_BIAS_ACT, smem, s_last, {}, d_fc1);
    layer_sync(a, b0 + 3, bar);
    layer_gemm<T, P>(a, LAYER_FC2, a.mlp, w.w_fc2, w.b_fc2, h, m, CS_K_EPI_BIAS_RESID, smem, s_last,
                     {next ? next->ln1_g : nullptr, next ? next->ln1_b : nullptr, sem_f}, d_fc2);
    if (next) layer_sync(a, b0 + 4, next_bar);
}

/* P: resident blocks per SM the kernel is built for (2: 255 registers, 64 KB of stages; 3: 168
 * registers, 48 KB); it also runs 1 per SM. (A 4-per-SM build, 128 registers, spilled 240-300
 * bytes in every phase: not kept.) */
template <typename T, int P>
static __global__ void __launch_bounds__(LAYER_THREADS, P) layer_kernel(cs_k_layer_args a) {
    CS_DYN_SMEM(smem, 128);
    int *s_last = reinterpret_cast<int *>(smem + layer_gemm_smem(P));
    layer_trace_start(a);
    if (a.prefetch) layer_prefetch_weights<T>(a, a.layers[0]);
    layer_ln<T, P>(a, a.layers[0].ln1_g, a.layers[0].ln1_b);
    layer_flow_zero(a);
    layer_grid_sync(a, 1);
    for (int l = 0; l < a.n_layers; l++) {
        /* prefetch 1: each layer's weights as it starts; 2: the next layer's, so they stream
         * in during this one (two layers must fit L2: the host decides) */
        if (a.prefetch == 1 && l > 0) layer_prefetch_weights<T>(a, a.layers[l]);
        if (a.prefetch == 2 && l + 1 < a.n_layers) layer_prefetch_weights<T>(a, a.layers[l + 1]);
        layer_run<T, P>(a, l, smem, s_last);
    }
    layer_stamp(a, 5 * a.n_layers + 1);
}

template <int P> static cudaError_t layer_set_smem() {
    cudaError_t e = cudaFuncSetAttribute(layer_kernel<__half, P>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                         layer_smem(P));
    if (e == cudaSuccess)
        e = cudaFuncSetAttribute(layer_kernel<__nv_bfloat16, P>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                 layer_smem(P));
    return e;
}

extern "C" cudaError_t cs_k_layer_setup(int per_sm_max, int *blocks) {
    int dev = 0, n_sm = 0, per_sm = 0, coop = 0;
    if (per_sm_max != 1 && per_sm_max != 3) per_sm_max = 2;
    cudaError_t e = cudaGetDevice(&dev);
    if (e == cudaSuccess) e = cudaDeviceGetAttribute(&n_sm, cudaDevAttrMultiProcessorCount, dev);
    if (e == cudaSuccess) e = cudaDeviceGetAttribute(&coop, cudaDevAttrCooperativeLaunch, dev);
    if (e == cudaSuccess) e = layer_set_smem<2>();
    if (e == cudaSuccess) e = layer_set_smem<3>();
    if (e == cudaSuccess)
        e = per_sm_max == 3 ? cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, layer_kernel<__half, 3>,
                                                                            LAYER_THREADS, layer_smem(3))
                            : cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, layer_kernel<__half, 2>,
                                                                            LAYER_THREADS, layer_smem(2));
    if (e != cudaSuccess) return e;
    if (!coop || per_sm < 1) return cudaErrorCooperativeLaunchTooLarge;
    *blocks = n_sm * (per_sm < per_sm_max ? per_sm : per_sm_max);
    return cudaSuccess;
}

template <typename T, int P>
static cudaError_t layer_launch(const cs_k_layer_args *a, int blocks, cudaStream_t stream) {
#ifdef CS_EMU
    return cs_emu_launch_cooperative(reinterpret_cast<const void *>(layer_kernel<T, P>), dim3(blocks),
                                     dim3(LAYER_THREADS), layer_smem(P), stream,
                                     [args = *a]() { layer_kernel<T, P>(args); });
#else
    cudaLaunchAttribute at[1];
    at[0].id = cudaLaunchAttributeCooperative;
    at[0].val.cooperative = 1;
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = dim3(blocks);
    cfg.blockDim = dim3(LAYER_THREADS);
    cfg.dynamicSmemBytes = layer_smem(P);
    cfg.stream = stream;
    cfg.attrs = at;
    cfg.numAttrs = 1;
    return cudaLaunchKernelEx(&cfg, layer_kernel<T, P>, *a);
#endif
}

extern "C" cudaError_t cs_k_layer(const cs_k_layer_args *a, int blocks, cudaStream_t stream) {
    if (a->m < 0 || a->d <= 0 || a->n_heads <= 0 || a->d % a->n_heads || a->d / a->n_heads != CS_K_ATTN_HEAD_DIM ||
        a->d % 64 || a->d > LN_MAX_V * 128 || a->f <= 0 || a->f % 8 || blocks < 1 || !a->bar ||
        !a->offsets || !a->layers || !a->row_sem || (a->flow && !a->flow_sem) || a->n_layers < 0 || a->k_chunk < 0 || a->k_chunk % 128)
        return cudaErrorInvalidValue;
    if (a->last_only && (a->n_pool != a->n_seq || !a->pool_rows || !a->h_pool || (uintptr_t)a->h_pool % 16))
        return cudaErrorInvalidValue;
    if (((uintptr_t)a->a | (uintptr_t)a->qkv | (uintptr_t)a->att | (uintptr_t)a->mlp | (uintptr_t)a->h) % 16)
        return cudaErrorInvalidValue;
    if (a->m == 0 || a->n_layers == 0) return cudaSuccess;
    const int three = a->per_sm == 3;
    if (a->dtype == CLIPSKIP_DTYPE_F16)
        return three ? layer_launch<__half, 3>(a, blocks, stream) : layer_launch<__half, 2>(a, blocks, stream);
    if (a->dtype == CLIPSKIP_DTYPE_BF16)
        return three ? layer_launch<__nv_bfloat16, 3>(a, blocks, stream)
                     : layer_launch<__nv_bfloat16, 2>(a, blocks, stream);
    return cudaErrorInvalidValue;
}
