/* CUDA backend: the fused layer (kernels/layer.cu, cs_k_layer), one cooperative launch per
 * layer for small passes instead of seven. An experiment until a device run measures it:
 *   CLIPSKIP_CUDA_FUSED_LAYER=N   full layers of passes of at most N prompts (N x 77 token rows)
 *                                 run fused. 0 or unset: off. Same bits as the separate kernels
 *                                 under the same CLIPSKIP_CUDA_K_CHUNK (the kernel runs their
 *                                 device functions), so batch invariance holds across the two.
 *   CLIPSKIP_CUDA_FUSED_PREFETCH=0  the fused kernel does not ask L2 for the layer's weights at
 *                                 its start (on by default; for the A/B in tests/gpu/check.sh).
 * Declined (the encoder issues the seven ops): head width other than 64, the cuBLASLt path,
 * passes over the limit, and the pooled-only last layer. */
#ifdef CLIPSKIP_WITH_CUDA
#include "cuda_priv.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define CU_LAYER_MAX_PROMPTS 4096

clipskip_status cs_cu_fused_init(cs_backend *be) {
    be->fused_rows = 0;
    const char *v = getenv("CLIPSKIP_CUDA_FUSED_LAYER");
    if (!v || !*v || !strcmp(v, "0")) return CLIPSKIP_OK;
    char *end = NULL;
    const long n = strtol(v, &end, 10);
    if (*end || n < 0 || n > CU_LAYER_MAX_PROMPTS)
        return cs_fail(CLIPSKIP_ERR_INVALID_ARG, "cuda: CLIPSKIP_CUDA_FUSED_LAYER=%s: want a number of "
                       "prompts, 0 (off) to %d", v, CU_LAYER_MAX_PROMPTS);
    CU_TRY(be, cs_k_layer_setup(&be->layer_blocks));
    CU_TRY(be, cudaMalloc((void **)&be->layer_bar, 2 * sizeof(unsigned)));
    CU_TRY(be, cudaMemsetAsync(be->layer_bar, 0, 2 * sizeof(unsigned), be->stream));
    be->fused_rows = (int32_t)n * CLIPSKIP_CONTEXT;
    const char *pf = getenv("CLIPSKIP_CUDA_FUSED_PREFETCH");
    be->fused_prefetch = !(pf && !strcmp(pf, "0"));
    return CLIPSKIP_OK;
}

void cs_cu_fused_free(cs_backend *be) {
    if (be->layer_bar) cudaFree(be->layer_bar);
    be->layer_bar = NULL;
    be->fused_rows = 0;
}

size_t cs_cu_fused_bytes(const cs_backend *be) { return be->layer_bar ? 2 * sizeof(unsigned) : 0; }

clipskip_status cs_cu_fused_layer(cs_backend *be, const cs_cu_tower *t, int layer, void *h, void *a, void *qkv,
                            void *att, void *mlp, int32_t m, int32_t mlp_rows, int *done) {
    *done = 0;
    if (!be->fused_rows || m < 1 || m > be->fused_rows || m > mlp_rows ||
        be->gemm_path == CLIPSKIP_GEMM_CUBLASLT || t->d / t->heads != CS_K_ATTN_HEAD_DIM || m != be->n_tokens)
        return CLIPSKIP_OK;
    if (layer < 0 || layer >= t->n_layers)
        return cs_fail(CLIPSKIP_ERR_INVALID_ARG, "cuda: layer %d (tower has %d)", layer, t->n_layers);
    const cs_cu_layer *L = &t->layers[layer];
    const void *bufs[] = {h, a, qkv, att, mlp};
    for (int i = 0; i < 5; i++) cs_cu_graph_note(be, bufs[i]);
    cs_k_layer_args k = {
        .dtype = be->cdt, .act = t->act, .m = m, .d = t->d, .n_heads = t->heads, .f = t->f,
        .n_seq = be->n_seq, .offsets = be->d_off, .scale = 1.0f / sqrtf((float)(t->d / t->heads)),
        .eps = CS_CU_LN_EPS, .h = h, .a = a, .qkv = qkv, .att = att, .mlp = mlp,
        .ln1_g = L->ln1_g, .ln1_b = L->ln1_b, .ln2_g = L->ln2_g, .ln2_b = L->ln2_b,
        .w_qkv = L->qkv.w, .w_o = L->o.w, .w_fc1 = L->fc1.w, .w_fc2 = L->fc2.w,
        .b_qkv = L->qkv.b, .b_o = L->o.b, .b_fc1 = L->fc1.b, .b_fc2 = L->fc2.b,
        .k_chunk = be->k_chunk, .split_ws = be->split_ws, .split_ws_floats = be->split_ws_floats,
        .split_sem = be->split_sem, .split_sems = be->split_sems, .bar = be->layer_bar,
        .prefetch = be->fused_prefetch};
    CU_TRY(be, cs_k_layer(&k, be->layer_blocks, be->stream));
    *done = 1;
    return CLIPSKIP_OK;
}
#endif
