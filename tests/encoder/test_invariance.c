/* Row independence of the CPU encoder, bitwise: a prompt alone, inside a batch, with other rows
 * at other depths, pooled-only or with hidden states, split across passes: always the same
 * bytes. Two random towers (no fixture needed): a tiny one, batch 64 (GEMMs padded to
 * OpenBLAS's row-invariant size), and ViT-L, batch 6 (GEMMs split by columns over the thread
 * pool, except the few-row ones of the pooled-only last layer, which take the padded path). */
#include "encoder_internal.h"
#include "test_util.h"

#include <stdint.h>

#define B_MAX 64
#define T CLIPSKIP_CONTEXT

/* Deterministic prompts: BOS, n content ids, EOS, pad. */
static void make_ids(int32_t *ids, int rows, uint32_t seed, int32_t pad) {
    for (int r = 0; r < rows; r++) {
        seed = seed * 1664525u + 1013904223u;
        int n = (int)(seed >> 8) % 76; /* 0..75 content tokens */
        int32_t *row = ids + r * T;
        row[0] = CLIPSKIP_BOS;
        for (int p = 1; p <= n; p++) {
            seed = seed * 1664525u + 1013904223u;
            row[p] = (int32_t)((seed >> 8) % 49406);
        }
        row[n + 1] = CLIPSKIP_EOS;
        for (int p = n + 2; p < T; p++) row[p] = pad;
    }
}

typedef struct {
    float *hidden, *pooled, *embeds;
} outs;

static outs encode(clipskip_encoder *enc, const int32_t *ids, int n, clipskip_encode_options *o,
                   int d, int e) {
    outs r = {calloc((size_t)n * T * d, 4), calloc((size_t)n * d, 4), calloc((size_t)n * e, 4)};
    clipskip_outputs out = {r.hidden, r.pooled, r.embeds};
    CHECK_OK(clipskip_encode_ids(enc, ids, n, o, &out));
    return r;
}

static void free_outs(outs *o) { free(o->hidden), free(o->pooled), free(o->embeds); }

static int same(const float *a, const float *b, size_t n) { return memcmp(a, b, n * 4) == 0; }

/* One tower: B rows in passes of max_batch. */
static void check_family(clipskip_family fam, int B, int max_batch) {
    clipskip_model *m;
    REQUIRE(cs_model_random(fam, 7, CLIPSKIP_DTYPE_F32, &m) == CLIPSKIP_OK);
    const int L = m->towers[0].info.n_layers, d = m->towers[0].info.d_model,
              e = m->towers[0].info.proj_dim;
    clipskip_encoder_params ep = clipskip_encoder_default_params();
    ep.backend = CLIPSKIP_BACKEND_CPU;
    ep.max_batch = max_batch;
    clipskip_encoder *enc;
    REQUIRE(clipskip_encoder_init(m, &ep, &enc) == CLIPSKIP_OK);
    printf("tower D=%d, %d layers, batch %d in passes of %d (%s)\n", d, L, B, max_batch,
           clipskip_encoder_device(enc));
    static int32_t ids[B_MAX * T];
    make_ids(ids, B, 12345u, CLIPSKIP_EOS);

    clipskip_row_options per_row[B_MAX];
    for (int i = 0; i < B; i++)
        per_row[i] = (clipskip_row_options){1 + i % L, i % 3 == 0 ? CLIPSKIP_FINAL_LN_ON : CLIPSKIP_FINAL_LN_OFF};
    clipskip_encode_options o = clipskip_encode_default_options();
    o.outputs = CLIPSKIP_OUT_HIDDEN | CLIPSKIP_OUT_POOLED | CLIPSKIP_OUT_TEXT_EMBEDS;
    o.per_row = per_row;
    outs all = encode(enc, ids, B, &o, d, e);

    int bad_alone = 0, bad_pool = 0;
    for (int i = 0; i < B; i++) {
        clipskip_encode_options oi = o;
        oi.per_row = NULL;
        oi.row = per_row[i];
        outs one = encode(enc, ids + i * T, 1, &oi, d, e);
        bad_alone += !same(one.hidden, all.hidden + (size_t)i * T * d, (size_t)T * d);
        bad_pool += !same(one.pooled, all.pooled + (size_t)i * d, d) ||
                    !same(one.embeds, all.embeds + (size_t)i * e, e);
        free_outs(&one);
        /* pooled-only path (EOS rows only after the hidden depth, last layer EOS-only) */
        oi.outputs = CLIPSKIP_OUT_POOLED | CLIPSKIP_OUT_TEXT_EMBEDS;
        outs p = encode(enc, ids + i * T, 1, &oi, d, e);
        bad_pool += !same(p.pooled, all.pooled + (size_t)i * d, d) ||
                    !same(p.embeds, all.embeds + (size_t)i * e, e);
        free_outs(&p);
    }
    printf("mixed-depth batch of %d vs alone: %d hidden rows differ, %d pooled rows differ\n", B,
           bad_alone, bad_pool);
    CHECK(bad_alone == 0);
    CHECK(bad_pool == 0);

    /* CLIPSKIP_PASS_ROWS: passes of fewer rows than max_batch (the next pass queued before
     * the last one is waited for), the same bytes; a bad value refused at init */
    setenv("CLIPSKIP_PASS_ROWS", "5", 1);
    clipskip_encoder *enc5 = NULL;
    REQUIRE(clipskip_encoder_init(m, &ep, &enc5) == CLIPSKIP_OK);
    setenv("CLIPSKIP_PASS_ROWS", "0", 1);
    clipskip_encoder *bad = NULL;
    CHECK(clipskip_encoder_init(m, &ep, &bad) == CLIPSKIP_ERR_INVALID_ARG && !bad);
    unsetenv("CLIPSKIP_PASS_ROWS");
    outs p5 = encode(enc5, ids, B, &o, d, e);
    const int same5 = same(p5.hidden, all.hidden, (size_t)B * T * d) &&
                      same(p5.pooled, all.pooled, (size_t)B * d) && same(p5.embeds, all.embeds, (size_t)B * e);
    printf("passes of 5 rows (CLIPSKIP_PASS_ROWS) vs passes of %d: %s\n", max_batch,
           same5 ? "same bytes" : "DIFFERENT");
    CHECK(same5);
    free_outs(&p5);
    clipskip_encoder_free(enc5);

    /* hidden-only at one depth for the whole batch == the mixed batch's rows at that depth */
    for (int skip = 1; skip <= L; skip++) {
        clipskip_encode_options os = clipskip_encode_default_options();
        os.row.clip_skip = skip;
        os.row.final_ln = CLIPSKIP_FINAL_LN_OFF;
        outs h = encode(enc, ids, B, &os, d, e);
        for (int i = 0; i < B; i++)
            if (per_row[i].clip_skip == skip && per_row[i].final_ln == CLIPSKIP_FINAL_LN_OFF)
                CHECK(same(h.hidden + (size_t)i * T * d, all.hidden + (size_t)i * T * d, (size_t)T * d));
        free_outs(&h);
    }
    /* Outputs are finite and not all zero. */
    double s = 0;
    for (size_t i = 0; i < (size_t)B * T * d; i++) {
        CHECK(all.hidden[i] == all.hidden[i]);
        s += all.hidden[i] * all.hidden[i];
    }
    CHECK(s > 0);
    free_outs(&all);
    clipskip_encoder_free(enc);
    clipskip_model_free(m);
}

int main(void) {
    check_family(CLIPSKIP_FAMILY_OTHER, 64, 16); /* batches of 64 run as 4 passes */
    check_family(CLIPSKIP_FAMILY_CLIP_L, 6, 4);
    TEST_DONE("test_invariance");
}
