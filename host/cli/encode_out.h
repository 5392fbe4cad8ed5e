/* Results of clipskip encode: buffers, files, the printed summary. */
#ifndef CLIPSKIP_CLI_ENCODE_OUT_H
#define CLIPSKIP_CLI_ENCODE_OUT_H

#include "clipskip.h"
#include "prompts.h"

typedef struct {
    char *hidden, *pooled, *embeds;      /* (n, 77 * chunks, Dh), (n, Dp), (n, E) in out_dtype */
    int32_t hidden_dim, pooled_dim, embeds_dim;
    int32_t chunks;                      /* 77-token chunks per prompt: 1, or more (--syntax a1111) */
    const char *syntax;                  /* "plain" or "a1111" */
    clipskip_token_info *info;           /* (n) */
    size_t n;
} cs_encode_result;

clipskip_status cs_encode_result_alloc(cs_encode_result *r, const clipskip_model *m,
                                       const clipskip_encode_options *o, size_t n, int32_t chunks,
                                       const char *syntax);
void cs_encode_result_free(cs_encode_result *r);
/* .safetensors (every output + options in metadata) or .npy (+ sibling files). */
clipskip_status cs_encode_write(const char *path, const cs_encode_result *r,
                                const clipskip_model *m, const clipskip_encode_options *o,
                                const cs_prompts *p, int quiet);
/* A few numbers per prompt and output to stdout. */
clipskip_status cs_encode_print(const cs_encode_result *r, const clipskip_encode_options *o,
                                const cs_prompts *p);
/* Truncation warnings (naming each prompt by cs_prompts_where) and the backend used, to stderr. */
void cs_encode_report(const cs_encode_result *r, const clipskip_encoder *enc, const cs_prompts *p);

#endif
