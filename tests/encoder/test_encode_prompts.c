/* clipskip_encode_prompts with A1111 prompts, CPU backend, the tiny random tower:
 *  - a prompt without syntax is clipskip_encode_text's result, bitwise;
 *  - each chunk of a long prompt is the encoding of that chunk's ids alone (encode_ids), and
 *    the empty chunks after a shorter prompt are the encoding of an empty chunk;
 *  - emphasis: the chunk's rows times their weights, times one scale that restores the mean;
 *  - per-prompt row options reach every chunk; f16 output is the f32 one rounded; pooled is the
 *    first chunk's; too few chunks fail naming the prompt; a batch changes nothing. */
#include "internal.h"
#include "prompt_a1111.h"
#include "test_util.h"

#include <math.h>

#define D 64
#define T CLIPSKIP_CONTEXT

static clipskip_model *g_m;
static clipskip_encoder *g_e;

static float *prompts(const char *const *texts, int32_t n, int32_t nc, const clipskip_encode_options *o,
                      float *pooled) {
    float *h = calloc((size_t)n * nc * T * D, sizeof *h);
    clipskip_outputs out = {h, pooled, NULL};
    CHECK_OK(clipskip_encode_prompts(g_e, texts, n, o, CLIPSKIP_PROMPT_A1111, nc, &out));
    return h;
}

/* The hidden states of n rows of ids, encoded as given. */
static float *ids_hidden(const int32_t *ids, int32_t n, const clipskip_encode_options *o) {
    float *h = calloc((size_t)n * T * D, sizeof *h);
    clipskip_outputs out = {h, NULL, NULL};
    clipskip_encode_options hidden_only = *o;
    hidden_only.outputs = CLIPSKIP_OUT_HIDDEN;
    CHECK_OK(clipskip_encode_ids(g_e, ids, n, &hidden_only, &out));
    return h;
}

static cs_chunks chunks_of(const char *text) {
    cs_chunks c;
    clipskip_tower_info ti;
    CHECK_OK(clipskip_model_tower_info(g_m, 0, &ti));
    CHECK_OK(cs_a1111_chunks(clipskip_model_tokenizer(g_m), ti.default_clean, ti.pad_id, text, strlen(text), &c));
    return c;
}

static void test_plain_equal(void) {
    const char *t[] = {"a photo of a cat", "masterpiece, best quality, a dog on a hill"};
    clipskip_encode_options o = clipskip_encode_default_options();
    o.outputs = CLIPSKIP_OUT_HIDDEN | CLIPSKIP_OUT_POOLED;
    float pa[2 * D], pb[2 * D];
    float *a = prompts(t, 2, 1, &o, pa), *b = calloc((size_t)2 * T * D, sizeof *b);
    clipskip_outputs out = {b, pb, NULL};
    CHECK_OK(clipskip_encode_text(g_e, t, 2, &o, &out, NULL));
    CHECK(!memcmp(a, b, (size_t)2 * T * D * 4) && !memcmp(pa, pb, sizeof pa));
    free(a), free(b);
}

static void test_chunks_and_padding(void) {
    char long_text[1024] = "";
    for (int i = 0; i < 40; i++) strcat(long_text, "a red cat, ");
    const char *t[] = {long_text, "a dog"};
    clipskip_encode_options o = clipskip_encode_default_options();
    o.outputs = CLIPSKIP_OUT_HIDDEN | CLIPSKIP_OUT_POOLED;
    int32_t nc = 0;
    CHECK_OK(clipskip_prompt_chunks(g_m, long_text, &o, CLIPSKIP_PROMPT_A1111, &nc));
    CHECK(nc == 3); /* 40 x 4 tokens, cut after commas */
    float pooled[2 * D];
    float *h = prompts(t, 2, nc, &o, pooled);
    cs_chunks c = chunks_of(long_text);
    float *ref = ids_hidden(c.ids, c.n_chunks, &o);
    CHECK(c.n_chunks == 3 && !memcmp(h, ref, (size_t)3 * T * D * 4));
    cs_chunks d = chunks_of("a dog");
    int32_t rows[3 * T]; /* "a dog", then two empty chunks */
    memcpy(rows, d.ids, T * sizeof *rows);
    cs_chunks e = chunks_of("");
    memcpy(rows + T, e.ids, T * sizeof *rows);
    memcpy(rows + 2 * T, e.ids, T * sizeof *rows);
    float *ref2 = ids_hidden(rows, 3, &o);
    CHECK(!memcmp(h + (size_t)3 * T * D, ref2, (size_t)3 * T * D * 4));
    /* pooled: the first chunk's, as encode_ids gives it */
    float p1[D];
    clipskip_outputs out = {NULL, p1, NULL};
    clipskip_encode_options po = o;
    po.outputs = CLIPSKIP_OUT_POOLED;
    CHECK_OK(clipskip_encode_ids(g_e, c.ids, 1, &po, &out));
    CHECK(!memcmp(pooled, p1, sizeof p1));
    /* alone == in the batch; too few chunks fail naming the prompt */
    float *alone = prompts(t + 1, 1, nc, &o, p1);
    CHECK(!memcmp(alone, h + (size_t)3 * T * D, (size_t)3 * T * D * 4));
    float *tmp = calloc((size_t)2 * 2 * T * D, 4);
    clipskip_outputs small = {tmp, NULL, NULL};
    o.outputs = CLIPSKIP_OUT_HIDDEN;
    CHECK_ERR(clipskip_encode_prompts(g_e, t, 2, &o, CLIPSKIP_PROMPT_A1111, 2, &small), CLIPSKIP_ERR_TOO_LARGE,
              "prompt 0: takes 3 chunks");
    free(tmp), free(alone), free(ref2), free(ref), free(h);
    cs_chunks_free(&c), cs_chunks_free(&d), cs_chunks_free(&e);
}

static void test_emphasis(void) {
    const char *t[] = {"a (red:1.5) cat [on] a hill"};
    clipskip_encode_options o = clipskip_encode_default_options();
    float *h = prompts(t, 1, 1, &o, NULL);
    cs_chunks c = chunks_of(t[0]);
    float *z = ids_hidden(c.ids, 1, &o);
    double before = 0, after = 0, s = 0;
    for (int p = 0; p < T; p++)
        for (int j = 0; j < D; j++) before += z[p * D + j], after += (double)(z[p * D + j] * c.mult[p]);
    s = (float)(before / after);
    int exact = 1;
    double mean_w = 0;
    for (int p = 0; p < T; p++)
        for (int j = 0; j < D; j++) {
            exact &= h[p * D + j] == (float)(z[p * D + j] * c.mult[p]) * (float)s;
            mean_w += h[p * D + j];
        }
    CHECK(exact);
    CHECK(fabs(mean_w - before) <= 1e-4 * fabs(before) + 1e-3); /* the mean is kept */
    CHECK(c.mult[2] == 1.5f && c.mult[4] == (float)(1 / 1.1)); /* "red", "on" */
    /* f16 output: the f32 result rounded */
    o.out_dtype = CLIPSKIP_DTYPE_F16;
    uint16_t *h16 = calloc((size_t)T * D, 2);
    clipskip_outputs out = {h16, NULL, NULL};
    CHECK_OK(clipskip_encode_prompts(g_e, t, 1, &o, CLIPSKIP_PROMPT_A1111, 1, &out));
    int same = 1;
    for (int i = 0; i < T * D; i++) same &= h16[i] == cs_f32_to_f16(h[i]);
    CHECK(same);
    free(h16), free(z), free(h);
    cs_chunks_free(&c);
}

static void test_row_options(void) {
    char long_text[1024] = "";
    for (int i = 0; i < 20; i++) strcat(long_text, "green tree, ");
    const char *t[] = {"a cat", long_text};
    clipskip_row_options rows[2] = {{2, CLIPSKIP_FINAL_LN_OFF}, {3, CLIPSKIP_FINAL_LN_ON}};
    clipskip_encode_options o = clipskip_encode_default_options();
    o.per_row = rows;
    float *h = prompts(t, 2, 2, &o, NULL);
    for (int i = 0; i < 2; i++) {
        clipskip_encode_options one = clipskip_encode_default_options();
        one.row = rows[i];
        float *alone = prompts(t + i, 1, 2, &one, NULL);
        CHECK(!memcmp(alone, h + (size_t)i * 2 * T * D, (size_t)2 * T * D * 4));
        free(alone);
    }
    free(h);
}

int main(void) {
    REQUIRE(clipskip_model_random(CLIPSKIP_FAMILY_OTHER, 7, &g_m) == CLIPSKIP_OK);
    clipskip_tower_info ti;
    REQUIRE(clipskip_model_tower_info(g_m, 0, &ti) == CLIPSKIP_OK && ti.d_model == D && ti.pad_id == CLIPSKIP_EOS);
    clipskip_encoder_params p = clipskip_encoder_default_params();
    p.backend = CLIPSKIP_BACKEND_CPU;
    p.max_batch = 4; /* calls of several passes */
    REQUIRE(clipskip_encoder_init(g_m, &p, &g_e) == CLIPSKIP_OK);
    test_plain_equal();
    test_chunks_and_padding();
    test_emphasis();
    test_row_options();
    int32_t nc;
    CHECK_ERR(clipskip_prompt_chunks(g_m, "(a:1..2)", NULL, CLIPSKIP_PROMPT_A1111, &nc), CLIPSKIP_ERR_TEXT,
              "weight '1..2' at byte 3");
    clipskip_encoder_free(g_e);
    clipskip_model_free(g_m);
    TEST_DONE("test_encode_prompts");
}
