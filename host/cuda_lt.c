/* CUDA backend: the cuBLASLt GEMM path (clipskip_encoder_params.gemm = CLIPSKIP_GEMM_CUBLASLT),
 * kept to compare against the hand-written kernels in the same run.
 *
 * Same semantics as the native epilogues, done this way (cuBLASLt has no quick_gelu and no
 * erf GELU):
 *   NONE       plain matmul, ACT output.
 *   BIAS       CUBLASLT_EPILOGUE_BIAS, ACT output; cuBLASLt wants the bias in the output type,
 *              so QKV and FC1 keep a compute-dtype copy of their fp32 bias (cuda_weights.c).
 *   BIAS_ACT   as BIAS, then cs_k_activation in place: the activation sees the bias-added
 *              value already rounded to F16/BF16 (one extra rounding against the native path).
 *   BIAS_RESID fp32 C = D = the residual stream, beta = 1, fp32 bias: out += x W^T + b.
 * cuBLASLt is column-major: our row-major out (M, N) is its (N, M) = W (N, K) . x^T, i.e.
 * A = W as (K, N) col-major transposed, B = x as (K, M) col-major.
 * Not batch-invariant: the library picks algorithms (and may split K) by shape. */
#ifdef CLIPSKIP_WITH_CUDA
#include "cuda_priv.h"

#define LT_WORKSPACE_BYTES (32u << 20)

static cudaDataType_t lt_type(clipskip_dtype d) {
    return d == CLIPSKIP_DTYPE_F16 ? CUDA_R_16F : d == CLIPSKIP_DTYPE_BF16 ? CUDA_R_16BF : CUDA_R_32F;
}

clipskip_status cs_cu_lt_init(cs_backend *be) {
    LT_TRY(be, cublasLtCreate(&be->lt));
    CU_TRY(be, cudaMalloc(&be->lt_ws, LT_WORKSPACE_BYTES));
    be->lt_ws_bytes = LT_WORKSPACE_BYTES;
    return CLIPSKIP_OK;
}

static void lt_plan_drop(cs_cu_lt_plan *p) {
    if (!p->used) return;
    if (p->op) cublasLtMatmulDescDestroy(p->op);
    if (p->la) cublasLtMatrixLayoutDestroy(p->la);
    if (p->lb) cublasLtMatrixLayoutDestroy(p->lb);
    if (p->lc) cublasLtMatrixLayoutDestroy(p->lc);
    p->op = NULL;
    p->la = p->lb = p->lc = NULL;
    p->used = 0;
}

void cs_cu_lt_free(cs_backend *be) {
    for (int i = 0; i < CS_CU_LT_PLANS; i++) lt_plan_drop(&be->plans[i]);
    if (be->lt_ws) cudaFree(be->lt_ws);
    be->lt_ws = NULL;
    be->lt_ws_bytes = 0;
    if (be->lt) cublasLtDestroy(be->lt);
    be->lt = NULL;
}

static clipskip_status lt_describe(cs_backend *be, cs_cu_lt_plan *p, const void *bias) {
    const cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
    const int resid = p->epi == CS_K_EPI_BIAS_RESID;
    const cublasLtEpilogue_t ep = p->epi == CS_K_EPI_NONE ? CUBLASLT_EPILOGUE_DEFAULT : CUBLASLT_EPILOGUE_BIAS;
    const int32_t bias_type = resid ? CUDA_R_32F : lt_type(be->cdt);
    LT_TRY(be, cublasLtMatmulDescCreate(&p->op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    LT_TRY(be, cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta));
    LT_TRY(be, cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb));
    LT_TRY(be, cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_EPILOGUE, &ep, sizeof ep));
    if (p->epi != CS_K_EPI_NONE) {
        LT_TRY(be, cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE,
                                                  &bias_type, sizeof bias_type));
        LT_TRY(be, cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias,
                                                  sizeof bias));
    }
    LT_TRY(be, cublasLtMatrixLayoutCreate(&p->la, lt_type(be->cdt), (uint64_t)p->k, (uint64_t)p->n, p->k));
    LT_TRY(be, cublasLtMatrixLayoutCreate(&p->lb, lt_type(be->cdt), (uint64_t)p->k, (uint64_t)p->m, p->k));
    LT_TRY(be, cublasLtMatrixLayoutCreate(&p->lc, resid ? CUDA_R_32F : lt_type(be->cdt),
                                          (uint64_t)p->n, (uint64_t)p->m, p->n));
    return CLIPSKIP_OK;
}

static clipskip_status lt_choose(cs_backend *be, cs_cu_lt_plan *p) {
    cublasLtMatmulPreference_t pref = NULL;
    LT_TRY(be, cublasLtMatmulPreferenceCreate(&pref));
    const uint64_t ws = be->lt_ws_bytes;
    const uint32_t align = 16; /* encoder buffers may be offset by whole rows only */
    cublasStatus_t s = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws);
    const cublasLtMatmulPreferenceAttributes_t al[4] = {
        CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
        CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES};
    for (int i = 0; i < 4 && s == CUBLAS_STATUS_SUCCESS; i++)
        s = cublasLtMatmulPreferenceSetAttribute(pref, al[i], &align, sizeof align);
    cublasLtMatmulHeuristicResult_t res;
    int n_res = 0;
    if (s == CUBLAS_STATUS_SUCCESS)
        s = cublasLtMatmulAlgoGetHeuristic(be->lt, p->op, p->la, p->lb, p->lc, p->lc, pref, 1, &res, &n_res);
    cublasLtMatmulPreferenceDestroy(pref);
    if (s != CUBLAS_STATUS_SUCCESS)
        return cs_cu_lt_fail(be, s, "cublasLtMatmulAlgoGetHeuristic(...)", __FILE__, __LINE__);
    if (n_res < 1)
        return cs_fail(CLIPSKIP_ERR_UNSUPPORTED, "cuda: cuBLASLt has no algorithm for (%d, %d, %d) "
                       "epilogue %d on device %d", p->m, p->n, p->k, p->epi, be->device);
    p->algo = res.algo;
    return CLIPSKIP_OK;
}

static clipskip_status lt_plan(cs_backend *be, int32_t m, int32_t n, int32_t k, int epi,
                               const void *bias, cs_cu_lt_plan **out) {
    for (int i = 0; i < CS_CU_LT_PLANS; i++) {
        cs_cu_lt_plan *p = &be->plans[i];
        if (p->used && p->m == m && p->n == n && p->k == k && p->epi == epi) {
            *out = p;
            return CLIPSKIP_OK;
        }
    }
    cs_cu_lt_plan *p = &be->plans[be->plan_next];
    be->plan_next = (be->plan_next + 1) % CS_CU_LT_PLANS;
    lt_plan_drop(p);
    p->used = 1;
    p->m = m;
    p->n = n;
    p->k = k;
    p->epi = epi;
    clipskip_status st = lt_describe(be, p, bias);
    if (st == CLIPSKIP_OK) st = lt_choose(be, p);
    if (st != CLIPSKIP_OK) {
        lt_plan_drop(p);
        return st;
    }
    *out = p;
    return CLIPSKIP_OK;
}

clipskip_status cs_cu_lt_gemm(cs_backend *be, const cs_cu_linear *lin, cs_k_epilogue epi,
                              clipskip_act act, const void *x, void *out, int32_t m) {
    if (m == 0) return CLIPSKIP_OK;
    const int resid = epi == CS_K_EPI_BIAS_RESID;
    const void *bias = epi == CS_K_EPI_NONE ? NULL : resid ? (const void *)lin->b : lin->b_lt;
    if (epi != CS_K_EPI_NONE && !bias)
        return cs_fail(CLIPSKIP_ERR_UNSUPPORTED, "cuda: cuBLASLt path: epilogue %d on a weight "
                       "without a compute-dtype bias copy (only QKV and FC1 have one)", (int)epi);
    cs_cu_lt_plan *p;
    CS_TRY(lt_plan(be, m, lin->n, lin->k, epi, bias, &p));
    if (bias)
        LT_TRY(be, cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias,
                                                  sizeof bias));
    const float alpha = 1.0f, beta = resid ? 1.0f : 0.0f;
    LT_TRY(be, cublasLtMatmul(be->lt, p->op, &alpha, lin->w, p->la, x, p->lb, &beta, out, p->lc,
                              out, p->lc, &p->algo, be->lt_ws, be->lt_ws_bytes, be->stream));
    if (epi == CS_K_EPI_BIAS_ACT)
        CU_TRY(be, cs_k_activation(out, be->cdt, act, (size_t)m * lin->n, be->stream));
    return CLIPSKIP_OK;
}
#endif
