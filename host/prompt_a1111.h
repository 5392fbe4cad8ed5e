/* AUTOMATIC1111's prompt syntax: emphasis pieces and chunks of 75 tokens (prompt_a1111.c). */
#ifndef CLIPSKIP_PROMPT_A1111_H
#define CLIPSKIP_PROMPT_A1111_H

#include "clipskip.h"

#include <stddef.h>

typedef struct {
    char *text; /* NUL-terminated, len bytes */
    size_t len;
    double weight; /* -1 with text "BREAK": a chunk break */
} cs_wpiece;

typedef struct {
    cs_wpiece *p;
    int n, cap;
} cs_wpieces;

/* text (n bytes) into pieces of equal weight, as webui's parse_prompt_attention. A weight that
 * is not a number fails with CLIPSKIP_ERR_TEXT naming its byte. */
clipskip_status cs_a1111_parse(const char *text, size_t n, cs_wpieces *out);
void cs_wpieces_free(cs_wpieces *w);

typedef struct {
    int32_t *ids;  /* (n_chunks, 77) */
    float *mult;   /* (n_chunks, 77) each position's weight (1 for BOS, EOS, padding) */
    int32_t n_chunks, cap;
} cs_chunks;

/* One prompt's chunks, tokenized with cleanup clean; pad_id after each chunk's first EOS. */
clipskip_status cs_a1111_chunks(const clipskip_tokenizer *tok, clipskip_clean clean, int32_t pad_id,
                                const char *text, size_t len, cs_chunks *out);
void cs_chunks_free(cs_chunks *c);
/* c's chunks (at most n_chunks) into ids / mult ((n_chunks, 77) each), then empty chunks (BOS,
 * EOS, pad_id; weight 1) up to n_chunks, as webui pads a batch. */
void cs_chunks_place(const cs_chunks *c, int32_t n_chunks, int32_t pad_id, int32_t *ids, float *mult);

/* webui's "Original" emphasis on one chunk of one tower: the 77 rows of z (width d, row stride
 * ld floats) times their weights w, then all times (mean before) / (mean after), the means
 * over the chunk's 77 x d values. All weights 1: z unchanged. */
void cs_a1111_emphasize(float *z, size_t ld, int32_t d, const float *w);

#endif
