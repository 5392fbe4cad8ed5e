/* clipskip_model_random: the public wrapper over cs_model_random (weights stored fp16, as a
 * downloaded SD checkpoint would be) with the built-in tokenizer, so a random tower encodes
 * text like a loaded one. */
#include "model.h"

clipskip_status clipskip_model_random(clipskip_family family, uint64_t seed,
                                      clipskip_model **out) {
    clipskip_status st = cs_model_random(family, seed, CLIPSKIP_DTYPE_F16, out);
    if (st != CLIPSKIP_OK) return st;
    st = clipskip_tokenizer_load(NULL, &(*out)->tokenizer);
    if (st != CLIPSKIP_OK) {
        clipskip_model_free(*out);
        *out = NULL;
    }
    return st;
}
