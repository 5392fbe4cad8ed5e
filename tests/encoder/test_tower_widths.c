/* Towers of different widths in one model (SDXL: 768 and 1280): each tower of the two-tower
 * model gives, bitwise, what the same tower gives as a model of its own, with rows at mixed
 * clip skips (so passes repack their rows between layers), pooled output (the EOS gather) and
 * a pooled-only row (the last layer run for EOS rows only); and both towers at once
 * (CLIPSKIP_TOWER_ALL) put each tower's hidden states in its own columns. Every path gathers
 * rows of the residual stream, whose row width is the running tower's, not the widest one's.
 * CPU backend; random towers, no fixture. */
#include "encoder_internal.h"
#include "gpu/gpu_test_model.h"
#include "test_util.h"

#define B 5
#define T CLIPSKIP_CONTEXT

typedef struct {
    float *hidden, *pooled, *embeds;
} outs;

static outs encode(clipskip_model *m, int tower, const int32_t *ids, const clipskip_row_options *rows,
                   int32_t hd, int32_t pd, int32_t ed) {
    clipskip_encoder_params p = clipskip_encoder_default_params();
    p.backend = CLIPSKIP_BACKEND_CPU;
    p.compute_dtype = CLIPSKIP_DTYPE_F32;
    p.max_batch = 8;
    clipskip_encoder *e = NULL;
    REQUIRE(clipskip_encoder_init(m, &p, &e) == CLIPSKIP_OK);
    clipskip_encode_options o = clipskip_encode_default_options();
    o.tower = tower;
    o.outputs = CLIPSKIP_OUT_HIDDEN | CLIPSKIP_OUT_POOLED | (ed ? CLIPSKIP_OUT_TEXT_EMBEDS : 0);
    o.per_row = rows;
    outs r = {calloc((size_t)B * T * hd, 4), calloc((size_t)B * pd, 4), calloc((size_t)B * (ed ? ed : 1), 4)};
    clipskip_outputs out = {r.hidden, r.pooled, ed ? r.embeds : NULL};
    CHECK_OK(clipskip_encode_ids(e, ids, B, &o, &out));
    clipskip_encoder_free(e);
    return r;
}

static void outs_free(outs *o) { free(o->hidden), free(o->pooled), free(o->embeds); }

/* Columns [col, col + d) of each token row of a (B, 77, stride) array equal (B, 77, d) b. */
static int same_cols(const float *a, int32_t stride, int32_t col, const float *b, int32_t d) {
    for (size_t r = 0; r < (size_t)B * T; r++)
        if (memcmp(a + r * stride + col, b + r * d, (size_t)d * 4)) return 0;
    return 1;
}

int main(void) {
    tm_rng_state = 20261127;
    const tm_shape s0 = {4, 32, 2, 64, 1000, 0, CLIPSKIP_ACT_QUICK_GELU, CLIPSKIP_DTYPE_F32, 1};
    const tm_shape s1 = {4, 64, 2, 128, 1000, 16, CLIPSKIP_ACT_GELU, CLIPSKIP_DTYPE_F32, 1};
    clipskip_model *a = tm_make(&s0), *b = tm_make(&s1);
    clipskip_model two = tm_two_towers(a, b);

    int32_t ids[B * T];
    for (int r = 0; r < B; r++)
        for (int p = 0; p < T; p++) {
            const int eos = 4 + 3 * r;
            ids[r * T + p] = p == 0 ? CLIPSKIP_BOS % 1000 : p == eos ? 999 : p > eos ? 0 : 10 + p + r;
        }
    /* mixed depths, one row pooled-only-ish deep (skip 1 everywhere would never repack) */
    const clipskip_row_options rows[B] = {{3, CLIPSKIP_FINAL_LN_OFF}, {2, CLIPSKIP_FINAL_LN_ON},
                                          {1, CLIPSKIP_FINAL_LN_OFF}, {4, CLIPSKIP_FINAL_LN_OFF},
                                          {2, CLIPSKIP_FINAL_LN_OFF}};
    outs alone0 = encode(a, 0, ids, rows, 32, 32, 0), alone1 = encode(b, 0, ids, rows, 64, 64, 16);
    outs in0 = encode(&two, 0, ids, rows, 32, 32, 0), in1 = encode(&two, 1, ids, rows, 64, 64, 16);
    const int ok0 = !memcmp(alone0.hidden, in0.hidden, (size_t)B * T * 32 * 4) &&
                    !memcmp(alone0.pooled, in0.pooled, (size_t)B * 32 * 4);
    const int ok1 = !memcmp(alone1.hidden, in1.hidden, (size_t)B * T * 64 * 4) &&
                    !memcmp(alone1.pooled, in1.pooled, (size_t)B * 64 * 4) &&
                    !memcmp(alone1.embeds, in1.embeds, (size_t)B * 16 * 4);
    printf("tower 0 (D 32) of a 32+64 model == alone: %s\n", ok0 ? "yes" : "NO");
    printf("tower 1 (D 64) of a 32+64 model == alone: %s\n", ok1 ? "yes" : "NO");
    CHECK(ok0);
    CHECK(ok1);

    outs all = encode(&two, CLIPSKIP_TOWER_ALL, ids, rows, 96, 64, 16);
    const int ok_all = same_cols(all.hidden, 96, 0, alone0.hidden, 32) &&
                       same_cols(all.hidden, 96, 32, alone1.hidden, 64) &&
                       !memcmp(all.pooled, alone1.pooled, (size_t)B * 64 * 4);
    printf("both towers (96 columns) == each alone: %s\n", ok_all ? "yes" : "NO");
    CHECK(ok_all);

    outs_free(&alone0), outs_free(&alone1), outs_free(&in0), outs_free(&in1), outs_free(&all);
    tm_free(a);
    tm_free(b);
    TEST_DONE("test_tower_widths");
}
