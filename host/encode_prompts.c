/* clipskip_prompt_chunks / clipskip_encode_prompts: prompts in a front end's syntax (A1111:
 * prompt_a1111.c) as rows of 77 ids, encoded through clipskip_encode_tower_ids, then the
 * emphasis applied to the hidden states. */
#include "encoder_internal.h"
#include "internal.h"
#include "model.h"
#include "prompt_a1111.h"

#include <stdlib.h>
#include <string.h>

static clipskip_clean tower_clean(const clipskip_model *m, int t, const clipskip_encode_options *o) {
    return o && o->clean >= 0 ? (clipskip_clean)o->clean : m->towers[t].info.default_clean;
}

static clipskip_status chunks_of(const clipskip_model *m, int t, const clipskip_encode_options *o,
                                 const char *text, cs_chunks *c) {
    if (!text) return cs_fail(CLIPSKIP_ERR_INVALID_ARG, "prompt is NULL");
    return cs_a1111_chunks(m->tokenizer, tower_clean(m, t, o), m->towers[t].info.pad_id, text, strlen(text), c);
}

clipskip_status clipskip_prompt_chunks(const clipskip_model *m, const char *text, const clipskip_encode_options *o,
                                       clipskip_prompt_style style, int32_t *n_chunks) {
    if (!m || !n_chunks) return cs_fail(CLIPSKIP_ERR_INVALID_ARG, "prompt_chunks: model and n_chunks must not be NULL");
    int t0 = 0, t1 = 0;
    CS_TRY(cs_tower_range(m, o ? o->tower : 0, &t0, &t1));
    *n_chunks = 1;
    for (int t = t0; t < t1; t++) {
        if (style == CLIPSKIP_PROMPT_PLAIN) {
            size_t n;
            if (!text) return cs_fail(CLIPSKIP_ERR_INVALID_ARG, "prompt is NULL");
            CS_TRY(clipskip_tokenize_raw(m->tokenizer, text, strlen(text), tower_clean(m, t, o), NULL, 0, &n));
            continue;
        }
        if (style != CLIPSKIP_PROMPT_A1111)
            return cs_fail(CLIPSKIP_ERR_INVALID_ARG, "prompt style %d is not PLAIN (0) or A1111 (1)", (int)style);
        cs_chunks c;
        CS_TRY(chunks_of(m, t, o, text, &c));
        if (c.n_chunks > *n_chunks) *n_chunks = c.n_chunks;
        cs_chunks_free(&c);
    }
    return CLIPSKIP_OK;
}

/* One tower's ids and weights for n prompts x nc chunks, empty chunks after each prompt's own. */
static clipskip_status tower_rows(const clipskip_model *m, int t, const clipskip_encode_options *o,
                                  const char *const *texts, int32_t n, int32_t nc, int32_t *ids, float *mult) {
    for (int32_t i = 0; i < n; i++) {
        cs_chunks c;
        clipskip_status st = chunks_of(m, t, o, texts[i], &c);
        if (st == CLIPSKIP_OK && c.n_chunks > nc)
            st = cs_fail(CLIPSKIP_ERR_TOO_LARGE, "takes %d chunks of 75 tokens, more than the %d asked for",
                         c.n_chunks, nc);
        if (st != CLIPSKIP_OK) {
            cs_chunks_free(&c); /* empty after a failed cs_a1111_chunks */
            cs_error_prefix("prompt %d: ", i);
            return st;
        }
        const size_t row = (size_t)i * nc * CLIPSKIP_CONTEXT;
        cs_chunks_place(&c, nc, m->towers[t].info.pad_id, ids + row, mult + row);
        cs_chunks_free(&c);
    }
    return CLIPSKIP_OK;
}

/* From row i * nc of src (rows of w floats) to row i of dst, in dtype dt. */
static void first_chunks(void *dst, const float *src, int32_t n, int32_t nc, int32_t w, clipskip_dtype dt) {
    for (int32_t i = 0; i < n; i++)
        cs_convert_from_f32((char *)dst + (size_t)i * w * cs_dtype_size(dt), src + (size_t)i * nc * w, dt, (size_t)w);
}

typedef struct {
    int32_t *ids[CS_MAX_TOWERS];
    float *mult[CS_MAX_TOWERS];
    clipskip_row_options *per_row;
    float *hidden, *pooled, *embeds; /* f32 results (hidden may be the caller's) */
} prompt_bufs;

static void bufs_free(prompt_bufs *b, const clipskip_outputs *out) {
    for (int t = 0; t < CS_MAX_TOWERS; t++) free(b->ids[t]), free(b->mult[t]);
    free(b->per_row);
    if (b->hidden != out->hidden) free(b->hidden);
    free(b->pooled);
    free(b->embeds);
}

static clipskip_status encode_a1111(clipskip_encoder *e, const char *const *texts, int32_t n,
                                    const clipskip_encode_options *o, int32_t nc, clipskip_outputs *out,
                                    prompt_bufs *b) {
    const clipskip_model *m = e->model;
    int t0 = 0, t1 = 0;
    CS_TRY(cs_tower_range(m, o->tower, &t0, &t1));
    int32_t dh, dp, de;
    CS_TRY(clipskip_output_dims(m, o, &dh, &dp, &de));
    const size_t rows = (size_t)n * nc, ids_n = rows * CLIPSKIP_CONTEXT;
    for (int t = t0; t < t1; t++) {
        if (!(b->ids[t - t0] = cs_malloc(ids_n * sizeof(int32_t))) || !(b->mult[t - t0] = cs_malloc(ids_n * sizeof(float))))
            return CLIPSKIP_ERR_NOMEM;
        CS_TRY(tower_rows(m, t, o, texts, n, nc, b->ids[t - t0], b->mult[t - t0]));
    }
    clipskip_encode_options o2 = *o;
    o2.out_dtype = CLIPSKIP_DTYPE_F32;
    if (o->per_row) {
        if (!(b->per_row = cs_malloc(rows * sizeof *b->per_row))) return CLIPSKIP_ERR_NOMEM;
        for (size_t r = 0; r < rows; r++) b->per_row[r] = o->per_row[r / nc];
        o2.per_row = b->per_row;
    }
    const int f32 = o->out_dtype == CLIPSKIP_DTYPE_F32;
    if (out->hidden) b->hidden = f32 ? out->hidden : cs_malloc(ids_n * dh * sizeof(float));
    if (out->pooled) b->pooled = cs_malloc(rows * dp * sizeof(float));
    if (out->text_embeds && de) b->embeds = cs_malloc(rows * de * sizeof(float));
    if ((out->hidden && !b->hidden) || (out->pooled && !b->pooled) || (out->text_embeds && de && !b->embeds))
        return CLIPSKIP_ERR_NOMEM;
    clipskip_outputs o2out = {b->hidden, b->pooled, b->embeds};
    CS_TRY(clipskip_encode_tower_ids(e, (const int32_t *const *)b->ids, (int32_t)rows, &o2, &o2out));
    if (b->hidden) {
        int32_t col = 0;
        for (int t = t0; t < t1; t++) {
            const int32_t d = m->towers[t].info.d_model;
            for (size_t r = 0; r < rows; r++)
                cs_a1111_emphasize(b->hidden + r * CLIPSKIP_CONTEXT * dh + col, (size_t)dh, d,
                                   b->mult[t - t0] + r * CLIPSKIP_CONTEXT);
            col += d;
        }
        if (!f32) cs_convert_from_f32(out->hidden, b->hidden, o->out_dtype, ids_n * dh);
    }
    if (b->pooled) first_chunks(out->pooled, b->pooled, n, nc, dp, o->out_dtype);
    if (b->embeds) first_chunks(out->text_embeds, b->embeds, n, nc, de, o->out_dtype);
    return CLIPSKIP_OK;
}

clipskip_status clipskip_encode_prompts(clipskip_encoder *e, const char *const *texts, int32_t n,
                                        const clipskip_encode_options *opt, clipskip_prompt_style style,
                                        int32_t n_chunks, clipskip_outputs *out) {
    if (!e || !out || (n > 0 && !texts))
        return cs_fail(CLIPSKIP_ERR_INVALID_ARG, "encode_prompts: encoder, texts and outputs must not be NULL");
    if (n_chunks < 1)
        return cs_fail(CLIPSKIP_ERR_INVALID_ARG, "encode_prompts: n_chunks %d < 1", n_chunks);
    clipskip_encode_options dflt = clipskip_encode_default_options();
    const clipskip_encode_options *o = opt ? opt : &dflt;
    if (style == CLIPSKIP_PROMPT_PLAIN) {
        if (n_chunks != 1)
            return cs_fail(CLIPSKIP_ERR_INVALID_ARG, "encode_prompts: PLAIN prompts take 1 chunk, not %d", n_chunks);
        return clipskip_encode_text(e, texts, n, o, out, NULL);
    }
    if (style != CLIPSKIP_PROMPT_A1111)
        return cs_fail(CLIPSKIP_ERR_INVALID_ARG, "prompt style %d is not PLAIN (0) or A1111 (1)", (int)style);
    if (n == 0) return CLIPSKIP_OK;
    if ((int64_t)n * n_chunks > INT32_MAX / CLIPSKIP_CONTEXT)
        return cs_fail(CLIPSKIP_ERR_TOO_LARGE, "encode_prompts: %d prompts x %d chunks is too many rows", n, n_chunks);
    prompt_bufs b;
    memset(&b, 0, sizeof b);
    const clipskip_status st = encode_a1111(e, texts, n, o, n_chunks, out, &b);
    bufs_free(&b, out);
    return st;
}
