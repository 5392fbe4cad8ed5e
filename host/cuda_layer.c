/* CUDA backend: the fused layer kernel (kernels/layer.cu, cs_k_layer): the full layers of a
 * small pass's run in one cooperative launch instead of seven per layer. An experiment until a
 * device run measures it:
 *   CLIPSKIP_CUDA_FUSED_LAYER=N   full layers of passes of at most N prompts (N x 77 token rows)
 *                                 run fused. 0 or unset: off. Same bits as the separate kernels
 *                                 under the same CLIPSKIP_CUDA_K_CHUNK (the kernel runs their
 *                                 device functions), so batch invariance holds across the two.
 *   CLIPSKIP_CUDA_FUSED_BLOCKS=1|3  one block per multiprocessor instead of two (the grid
 *                                 barrier's arrivals halve), or three (the kernel built for 168
 *                                 registers and 32x32 tiles: 1.5x the items in flight); for the
 *                                 A/B in check.sh.
 *   CLIPSKIP_CUDA_FUSED_SYNC=flow  inside the layers, each item waits for the items it reads
 *                                 (per-row counters, kernels/layer_flow.cuh) instead of the grid
 *                                 for a barrier after each phase; same bits. Default barrier.
 *   CLIPSKIP_CUDA_FUSED_PREFETCH=0  the fused kernel does not ask L2 for the weights (for the
 *                                 A/B in tests/gpu/check.sh). By default it asks for each
 *                                 layer's at the start of the layer before, where two layers'
 *                                 weights fit in 3/4 of L2 (CLIP-L: 2 x 14 MB of an H100's 50 MB),
 *                                 else for each layer's as it starts.
 * Declined (the encoder issues the seven ops per layer): head width other than 64, the
 * cuBLASLt path, passes over the limit; and from the first launch CUDA refuses as too large
 * on (cu_fused_refused), for the encoder's life. A pooled-only last layer runs in the same
 * launch. */
#ifdef CLIPSKIP_WITH_CUDA
#include "cuda_priv.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CU_LAYER_MAX_PROMPTS 4096

/* The fused kernel's counters in layer_bar, for passes of up to rows rows: the grid barrier's
 * counter, O's and FC2's row-block counters (row_sem, from 1), then flow mode's (flow_sem, from
 * here; a sequence has a row at least, so rows bounds the sequences of a pass). */
static size_t cu_flow_sems_at(int32_t rows) { return 1 + 2 * (size_t)CS_K_LAYER_ROW_SEMS(rows); }

clipskip_status cs_cu_fused_init(cs_backend *be) {
    be->fused_rows = 0;
    const char *v = getenv("CLIPSKIP_CUDA_FUSED_LAYER");
    if (!v || !*v || !strcmp(v, "0")) return CLIPSKIP_OK;
    char *end = NULL;
    const long n = strtol(v, &end, 10);
    if (*end || n < 0 || n > CU_LAYER_MAX_PROMPTS)
        return cs_fail(CLIPSKIP_ERR_INVALID_ARG, "cuda: CLIPSKIP_CUDA_FUSED_LAYER=%s: want a number of "
                       "prompts, 0 (off) to %d", v, CU_LAYER_MAX_PROMPTS);
    const char *nb = getenv("CLIPSKIP_CUDA_FUSED_BLOCKS");
    if (nb && *nb && strcmp(nb, "1") && strcmp(nb, "2") && strcmp(nb, "3"))
        return cs_fail(CLIPSKIP_ERR_INVALID_ARG, "cuda: CLIPSKIP_CUDA_FUSED_BLOCKS=%s: want 1, 2 or 3 (blocks "
                       "per multiprocessor)", nb);
    const char *sy = getenv("CLIPSKIP_CUDA_FUSED_SYNC");
    if (sy && *sy && strcmp(sy, "barrier") && strcmp(sy, "flow"))
        return cs_fail(CLIPSKIP_ERR_INVALID_ARG, "cuda: CLIPSKIP_CUDA_FUSED_SYNC=%s: want barrier or flow", sy);
    be->fused_flow = sy && !strcmp(sy, "flow");
    be->layer_per_sm = nb && *nb ? atoi(nb) : 2;
    CU_TRY(be, cs_k_layer_setup(be->layer_per_sm, &be->layer_blocks));
    const int32_t rows = (int32_t)n * CLIPSKIP_CONTEXT;
    const size_t sems = cu_flow_sems_at(rows) + CS_K_LAYER_FLOW_SEMS(rows, rows);
    CU_TRY(be, cudaMalloc((void **)&be->layer_bar, sems * sizeof(unsigned)));
    CU_TRY(be, cudaMemsetAsync(be->layer_bar, 0, sems * sizeof(unsigned), be->stream));
    be->layer_sems = sems;
    be->fused_rows = rows;
    const char *pf = getenv("CLIPSKIP_CUDA_FUSED_PREFETCH");
    be->fused_prefetch = !(pf && !strcmp(pf, "0")); /* 1 here; 2 per tower in the launch */
    return CLIPSKIP_OK;
}

clipskip_status cs_cu_fused_weights(cs_backend *be) {
    if (!be->fused_rows) return CLIPSKIP_OK;
    for (int i = 0; i < be->n_towers; i++) {
        cs_cu_tower *t = &be->towers[i];
        cs_k_layer_weights *w = cs_calloc((size_t)t->n_layers, sizeof *w);
        if (!w) return cs_fail(CLIPSKIP_ERR_NOMEM, "cuda: out of host memory for %d layers", t->n_layers);
        for (int l = 0; l < t->n_layers; l++) {
            const cs_cu_layer *L = &t->layers[l];
            w[l] = (cs_k_layer_weights){L->ln1_g, L->ln1_b, L->ln2_g, L->ln2_b, L->qkv.w, L->o.w, L->fc1.w,
                                        L->fc2.w, L->qkv.b, L->o.b, L->fc1.b, L->fc2.b};
        }
        const size_t bytes = (size_t)t->n_layers * sizeof *w;
        cudaError_t e = cudaMalloc((void **)&t->fused, bytes);
        if (e == cudaSuccess) e = cudaMemcpy(t->fused, w, bytes, cudaMemcpyHostToDevice);
        free(w);
        CU_TRY(be, e);
    }
    return CLIPSKIP_OK;
}

void cs_cu_fused_free(cs_backend *be) {
    if (be->layer_bar) cudaFree(be->layer_bar);
    be->layer_bar = NULL;
    be->fused_rows = 0;
    for (int i = 0; i < be->n_towers; i++) {
        if (be->towers[i].fused) cudaFree(be->towers[i].fused);
        be->towers[i].fused = NULL;
    }
}

size_t cs_cu_fused_bytes(const cs_backend *be) {
    size_t n = be->layer_bar ? be->layer_sems * sizeof(unsigned) : 0;
    for (int i = 0; i < be->n_towers; i++)
        if (be->towers[i].fused) n += (size_t)be->towers[i].n_layers * sizeof(cs_k_layer_weights);
    return n;
}

/* CUDA refused the cooperative grid although the occupancy query allowed it: fewer
 * multiprocessors than the device reports are this process's (an MPS client's limit, a
 * partitioned device). That holds for the process's life, so the fused kernel is turned off and
 * the separate kernels run, now and after; the device name says so (bench tables and JSON
 * record it). The launch is the first op of its graph region (encoder.c run_layers), so a
 * capture under way holds nothing else of the region yet (at most the copy of the pooled rows'
 * indices): it is dropped and the region's ops run directly; the key is captured again the
 * next time it is seen. */
static clipskip_status cu_fused_refused(cs_backend *be) {
    (void)cudaGetLastError();
    cs_cu_graph_abort(be);
    be->fused_rows = 0;
    const size_t n = strlen(be->name);
    snprintf(be->name + n, sizeof be->name - n, " [fused layers off: a cooperative grid of %d blocks "
             "was refused]", be->layer_blocks);
    return CLIPSKIP_OK;
}

/* Bytes of one layer's four weight matrices. */
static size_t cu_layer_bytes(const cs_backend *be, const cs_cu_tower *t) {
    return (size_t)(4 * t->d + 2 * t->f) * (size_t)t->d * cs_dtype_size(be->cdt);
}

clipskip_status cs_cu_fused_layers(cs_backend *be, const cs_cu_tower *t, int l0, int l1, int last_only,
                                   const cs_cu_fused_bufs *b, int *done) {
    *done = 0;
    const int32_t m = b->m;
    if (!be->fused_rows || !t->fused || m < 1 || m > be->fused_rows || m > b->mlp_rows ||
        be->gemm_path == CLIPSKIP_GEMM_CUBLASLT || t->d / t->heads != CS_K_ATTN_HEAD_DIM || m != be->n_tokens ||
        (last_only && b->n != be->n_seq))
        return CLIPSKIP_OK;
    if (l0 < 0 || l1 > t->n_layers || l0 > l1)
        return cs_fail(CLIPSKIP_ERR_INVALID_ARG, "cuda: layers %d..%d (tower has %d)", l0, l1 - 1,
                       t->n_layers);
    const void *bufs[] = {b->h, b->h_alt, b->a, b->qkv, b->att, b->mlp};
    for (int i = 0; i < 6; i++) cs_cu_graph_note(be, bufs[i]);
    const int32_t *d_idx = NULL;
    if (last_only) CS_TRY(cs_cu_put_ints(be, &be->st_idx, b->idx, (size_t)b->n, &d_idx));
    /* the next layer's weights ahead where two layers fit 3/4 of L2 (cs_k_layer_args.prefetch) */
    const int ahead = 2 * cu_layer_bytes(be, t) <= be->l2_bytes / 4 * 3;
    cs_k_layer_args k = {
        .dtype = be->cdt, .act = t->act, .m = m, .d = t->d, .n_heads = t->heads, .f = t->f,
        .n_seq = be->n_seq, .offsets = be->d_off, .scale = 1.0f / sqrtf((float)(t->d / t->heads)),
        .eps = CS_CU_LN_EPS, .h = b->h, .a = b->a, .qkv = b->qkv, .att = b->att, .mlp = b->mlp,
        .layers = t->fused + l0, .n_layers = l1 - l0,
        .last_only = last_only, .n_pool = last_only ? b->n : 0, .pool_rows = d_idx,
        .h_pool = last_only ? b->h_alt : NULL,
        .k_chunk = be->k_chunk, .split_ws = be->split_ws, .split_ws_floats = be->split_ws_floats,
        .split_sem = be->split_sem, .split_sems = be->split_sems, .bar = be->layer_bar,
        .row_sem = be->layer_bar + 1, .flow = be->fused_flow,
        .flow_sem = be->layer_bar + cu_flow_sems_at(be->fused_rows), .per_sm = be->layer_per_sm,
        .prefetch = be->fused_prefetch ? (ahead ? 2 : 1) : 0};
    const cudaError_t e = cs_k_layer(&k, be->layer_blocks, be->stream);
    if (e == cudaErrorCooperativeLaunchTooLarge) return cu_fused_refused(be);
    CU_TRY(be, e);
    *done = 1;
    return CLIPSKIP_OK;
}
#endif
