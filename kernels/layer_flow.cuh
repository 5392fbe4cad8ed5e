/* The fused layer kernel's flow mode (cs_k_layer_args.flow; layer.cu): inside the layers, an
 * item waits only for the items whose output it reads, through counters, instead of for the
 * whole grid at a barrier. Blocks with nothing left in a phase go on to the next, and the
 * phases of different rows overlap.
 *
 * A unit is 32 rows of the packing (a 64-row tile covers two). Per layer l of the launch (0,
 * 1, ...), each counter grows by a fixed amount, so the targets are (l + 1) x that and nothing
 * is reset inside a launch; block 0 zeroes them before the barrier that ends layer 0's LN1.
 *   ln1[u]  +1 when the FC2 hand-off has normalized u's rows for layer l + 1 (LN1)
 *   qkv[u]  +1 per QKV tile stored over u: target (l + 1) x QKV's column tiles
 *   att[s]  +1 per attention item of sequence s done: target (l + 1) x items per sequence
 *   ln2[u]  +1 when the O hand-off has normalized u's rows (LN2)
 *   fc1[u]  +1 per FC1 tile stored over u: target (l + 1) x FC1's column tiles
 * and an item of QKV (l > 0) waits for ln1 >= l of its units, attention of s for qkv of s's
 * units, O for att of every sequence overlapping its rows, FC1 for ln2, FC2 for fc1.
 *
 * Every write then waits, through that chain, for the last read of the same rows in the layer
 * before (kernels/README.md has the case-by-case argument). What the barriers gave for free
 * and flow mode has to arrange: each GEMM kind has its own split-K region and tile counters
 * (layer.cu's layer_split_at), O and FC2 their own LN hand-off counters (the two halves of
 * row_sem), and a pooled-only last layer runs with barriers (its attention writes row s for
 * sequence s, rows another sequence's O tiles may still read).
 *
 * Deadlock-free: a block takes its items phase by phase, layer by layer, and every wait is for
 * items of an earlier phase; all blocks are resident (cooperative launch). A wait over 5 s
 * traps, as the barrier's does. */
#ifndef CLIPSKIP_KERNELS_LAYER_FLOW_CUH
#define CLIPSKIP_KERNELS_LAYER_FLOW_CUH

#define LAYER_UNIT 32

struct layer_flow {
    unsigned *ln1, *qkv, *ln2, *fc1, *att;
};

__host__ __device__ __forceinline__ int32_t layer_units(int32_t m) { return (m + LAYER_UNIT - 1) / LAYER_UNIT; }

/* The counters in flow_sem (kernels.h: CS_K_LAYER_FLOW_SEMS). */
__device__ __forceinline__ layer_flow layer_flow_of(const cs_k_layer_args &a) {
    const int32_t u = layer_units(a.m);
    unsigned *p = a.flow_sem;
    return {p, p + u, p + 2 * u, p + 3 * u, p + 4 * u};
}

/* Block 0, before the first barrier: every flow counter to 0. */
__device__ __forceinline__ void layer_flow_zero(const cs_k_layer_args &a) {
    if (!a.flow || blockIdx.x != 0) return;
    const layer_flow f = layer_flow_of(a);
    const int32_t n = 4 * layer_units(a.m) + a.n_seq;
    for (int32_t i = threadIdx.x; i < n; i += blockDim.x) f.ln1[i] = 0;
}

/* Thread 0, from time t0: until c[i] >= target for every i in [i0, i1). */
__device__ __forceinline__ void layer_wait_all(const unsigned *c, int32_t i0, int32_t i1, unsigned target,
                                               unsigned long long t0) {
    for (int32_t i = i0; i < i1; i++)
        while (layer_ld_acquire(c + i) < target) layer_backoff(t0);
}

/* Units covering rows [r0, r1) of m. */
__device__ __forceinline__ void layer_unit_range(int32_t r0, int32_t r1, int32_t *u0, int32_t *u1) {
    *u0 = r0 / LAYER_UNIT;
    *u1 = (r1 + LAYER_UNIT - 1) / LAYER_UNIT;
}

/* Sequences overlapping rows [r0, r1) (offsets: n_seq + 1 prefix sums covering [0, m)). */
__device__ __forceinline__ void layer_seq_range(const cs_k_layer_args &a, int32_t r0, int32_t r1, int32_t *s0,
                                                int32_t *s1) {
    int32_t lo = 0, hi = a.n_seq; /* the first s with offsets[s + 1] > r0 */
    while (lo < hi) {
        const int32_t mid = (lo + hi) / 2;
        if (a.offsets[mid + 1] > r0) hi = mid;
        else lo = mid + 1;
    }
    int32_t e = lo;
    while (e < a.n_seq && a.offsets[e] < r1) e++;
    *s0 = lo;
    *s1 = e;
}

/* All threads of the block: publish what the block stored (fence, barrier), then add 1 to
 * c[i0 .. i1). */
__device__ __forceinline__ void layer_signal(unsigned *c, int32_t i0, int32_t i1) {
    __threadfence();
    __syncthreads();
    if (threadIdx.x == 0)
        for (int32_t i = i0; i < i1; i++) layer_atom_add_acq_rel(c + i, 1u);
}

#endif
