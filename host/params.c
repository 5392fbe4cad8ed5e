/* Defaults of every params / options struct of the public API. */
#include "clipskip.h"

clipskip_model_params clipskip_model_default_params(void) {
    clipskip_model_params p = {.tokenizer_path = NULL, .verbose = 0};
    return p;
}

clipskip_encoder_params clipskip_encoder_default_params(void) {
    clipskip_encoder_params p = {
        .backend = CLIPSKIP_BACKEND_AUTO,
        .device = 0,
        .max_batch = 256,
        .n_threads = 0,
        .compute_dtype = CLIPSKIP_DTYPE_F16,
        .gemm = CLIPSKIP_GEMM_NATIVE,
    };
    return p;
}

clipskip_encode_options clipskip_encode_default_options(void) {
    clipskip_encode_options o = {
        .row = {.clip_skip = 0, .final_ln = CLIPSKIP_FINAL_LN_AUTO},
        .per_row = NULL,
        .outputs = CLIPSKIP_OUT_HIDDEN,
        .out_dtype = CLIPSKIP_DTYPE_F32,
        .tower = 0,
        .clean = -1,
    };
    return o;
}
