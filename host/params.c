/* Defaults of every params / options struct of the public API. */
#include "clipskip.h"
#include "internal.h"

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

const char *cs_family_name(clipskip_family f) {
    switch (f) {
    case CLIPSKIP_FAMILY_CLIP_L: return "clip-l";
    case CLIPSKIP_FAMILY_OPENCLIP_H: return "openclip-h";
    case CLIPSKIP_FAMILY_OPENCLIP_BIGG: return "openclip-bigg";
    case CLIPSKIP_FAMILY_OTHER: break;
    }
    return "other";
}

const char *cs_pipeline_name(clipskip_pipeline p) {
    switch (p) {
    case CLIPSKIP_PIPELINE_SD1: return "sd1";
    case CLIPSKIP_PIPELINE_SD2: return "sd2";
    case CLIPSKIP_PIPELINE_SDXL: return "sdxl";
    case CLIPSKIP_PIPELINE_SDXL_REFINER: return "sdxl-refiner";
    case CLIPSKIP_PIPELINE_TOWER: break;
    }
    return "tower";
}

const char *cs_act_name(clipskip_act a) { return a == CLIPSKIP_ACT_GELU ? "gelu" : "quick_gelu"; }

const char *cs_clean_name(clipskip_clean c) {
    return c == CLIPSKIP_CLEAN_OPENCLIP ? "openclip" : c == CLIPSKIP_CLEAN_HF_FAST ? "hf-fast" : "hf";
}
