/* CUDA backend: the native GEMM path (kernels/gemm.cu) — which tile each GEMM gets, and the
 * fixed split of K — and the launch experiments.
 *
 * Experiment switches, read once when the backend opens (tests/gpu/check.sh times them):
 *   CLIPSKIP_CUDA_GEMM_LARGE_TILE=NAME  where the pick is the 128x128 tile, use tile NAME
 *                                       (cs_k_gemm_tile_name, e.g. wgmma128x256k64p) instead.
 *   CLIPSKIP_CUDA_K_CHUNK=N             every GEMM sums K in fixed chunks of N (a multiple of
 *                                       128): one partial per chunk, added in chunk order. The
 *                                       bits then depend on N, never on the batch, so rows stay
 *                                       batch-invariant under one N (not across different N).
 *                                       Small GEMMs run each chunk on its own block (partials
 *                                       through a 32 MB device workspace), which is what gives
 *                                       batch 1 more blocks than its tiles alone; large ones add
 *                                       the chunks in registers.
 *   CLIPSKIP_CUDA_PDL=1                 programmatic dependent launch (kernels.h: cs_k_set_pdl),
 *                                       compute capability 9.0+ only; for this encoder only.
 * None changes a result's tolerance against the CPU backend; PDL changes no bit. */
#ifdef CLIPSKIP_WITH_CUDA
#include "cuda_priv.h"

#include <stdlib.h>
#include <string.h>


static clipskip_status gemm_large_tile(cs_backend *be) {
    be->large_tile = -1;
    const char *lt = getenv("CLIPSKIP_CUDA_GEMM_LARGE_TILE");
    if (!lt || !*lt) return CLIPSKIP_OK;
    for (int t = 0; t < CS_K_GEMM_N_TILES; t++)
        if (!strcmp(lt, cs_k_gemm_tile_name(t))) be->large_tile = t;
    if (be->large_tile < 0 || !cs_k_gemm_tile_usable(be->large_tile))
        return cs_fail(CLIPSKIP_ERR_INVALID_ARG, "cuda: CLIPSKIP_CUDA_GEMM_LARGE_TILE=%s is %s on %s",
                       lt, be->large_tile < 0 ? "not a GEMM tile name" : "not usable", be->name);
    return CLIPSKIP_OK;
}

static clipskip_status gemm_k_chunk(cs_backend *be) {
    be->k_chunk = 0;
    const char *kc = getenv("CLIPSKIP_CUDA_K_CHUNK");
    if (!kc || !*kc) return CLIPSKIP_OK;
    char *end = NULL;
    const long v = strtol(kc, &end, 10);
    if (*end || v <= 0 || v % 128 || v > (1 << 20))
        return cs_fail(CLIPSKIP_ERR_INVALID_ARG, "cuda: CLIPSKIP_CUDA_K_CHUNK=%s: want a positive "
                       "multiple of 128 (the k-tiles of the GEMM tiles), e.g. 384", kc);
    if (be->large_tile >= 0 && !cs_k_gemm_chunk_ok(be->large_tile, (int32_t)v, 0))
        return cs_fail(CLIPSKIP_ERR_INVALID_ARG, "cuda: CLIPSKIP_CUDA_K_CHUNK=%s does not fit the tile "
                       "CLIPSKIP_CUDA_GEMM_LARGE_TILE=%s (k-tiles of the chunk, or no split of K; of "
                       "the wgmma tiles only %s has one)", kc, cs_k_gemm_tile_name(be->large_tile),
                       cs_k_gemm_tile_name(CS_K_GEMM_TILE_WGMMA_WS));
    be->k_chunk = (int32_t)v;
    CU_TRY(be, cudaMalloc((void **)&be->split_ws, CS_K_GEMM_SPLIT_WS_FLOATS * sizeof(float)));
    be->split_ws_floats = CS_K_GEMM_SPLIT_WS_FLOATS;
    CU_TRY(be, cudaMalloc((void **)&be->split_sem, CS_K_GEMM_SPLIT_SEMS * sizeof(unsigned)));
    /* on the encoder's stream: it does not synchronize with the legacy stream cudaMemset uses */
    CU_TRY(be, cudaMemsetAsync(be->split_sem, 0, CS_K_GEMM_SPLIT_SEMS * sizeof(unsigned), be->stream));
    be->split_sems = CS_K_GEMM_SPLIT_SEMS;
    return CLIPSKIP_OK;
}

static clipskip_status launch_pdl(cs_backend *be) {
    const char *v = getenv("CLIPSKIP_CUDA_PDL");
    if (!v || !*v || !strcmp(v, "0")) return CLIPSKIP_OK;
    if (strcmp(v, "1"))
        return cs_fail(CLIPSKIP_ERR_INVALID_ARG, "cuda: CLIPSKIP_CUDA_PDL=%s: want 0 or 1", v);
    if (be->cc_major < 9)
        return cs_fail(CLIPSKIP_ERR_UNSUPPORTED, "cuda: CLIPSKIP_CUDA_PDL=1 needs compute capability "
                       "9.0 or newer (%s is %d.%d)", be->name, be->cc_major, be->cc_minor);
    if (!cs_k_pdl_usable()) /* e.g. built for sm_80-89 only: PTX JIT-compiled, waits compiled out */
        return cs_fail(CLIPSKIP_ERR_UNSUPPORTED, "cuda: CLIPSKIP_CUDA_PDL=1 needs kernels built for "
                       "sm_90 or newer (CMAKE_CUDA_ARCHITECTURES); this build runs older code on %s",
                       be->name);
    be->pdl = 1; /* cu_set_seqs applies it to the thread at the start of each pass */
    return CLIPSKIP_OK;
}

clipskip_status cs_cu_gemm_init(cs_backend *be) {
    CS_TRY(gemm_large_tile(be));
    CS_TRY(launch_pdl(be));
    return gemm_k_chunk(be);
}

void cs_cu_gemm_free(cs_backend *be) {
    if (be->split_ws) cudaFree(be->split_ws);
    if (be->split_sem) cudaFree(be->split_sem);
    be->split_ws = NULL;
    be->split_sem = NULL;
    be->split_ws_floats = be->split_sems = 0;
}

size_t cs_cu_gemm_bytes(const cs_backend *be) {
    return be->split_ws_floats * sizeof(float) + be->split_sems * sizeof(unsigned);
}

clipskip_status cs_cu_gemm_native(cs_backend *be, const cs_cu_linear *lin, cs_k_epilogue epi,
                                  clipskip_act act, const void *x, void *out, int32_t m) {
    cs_k_gemm_args a = {.x = x, .w = lin->w, .bias = lin->b, .out = out, .m = m, .n = lin->n,
                        .k = lin->k, .dtype = be->cdt, .epi = epi, .act = act};
    int tile = cs_k_gemm_pick(m, lin->n, 1, be->n_sm);
    if (be->large_tile >= 0 && tile == CS_K_GEMM_TILE_128x128) tile = be->large_tile;
    a.k_chunk = be->k_chunk;
    if (be->k_chunk > 0 && cs_k_gemm_split_across(m, lin->n, lin->k, be->k_chunk, be->split_ws_floats,
                                                  be->split_sems, be->n_sm, &tile)) {
        a.split_ws = be->split_ws;
        a.split_sem = be->split_sem;
    }
    CU_TRY(be, cs_k_gemm(&a, be->n_sm, tile, be->stream));
    return CLIPSKIP_OK;
}
#endif
