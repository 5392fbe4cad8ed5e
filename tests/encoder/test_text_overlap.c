/* clipskip_encode_text over several passes with tokenization on a second thread (the path CUDA
 * takes for calls larger than max_batch; CLIPSKIP_OVERLAP_TOKENIZE=1 forces it here on the CPU
 * backend): the same bytes, token info and errors as tokenizing everything first.
 * CS_TEST_BACKEND=cuda runs it on the CUDA backend, where the overlap is the default path
 * (tests/emu runs it so on the emulated device). */
#include "encoder_internal.h"
#include "test_util.h"

#include <stdlib.h>
#include <string.h>

#define N 11 /* three passes of 4 */

static const char *const prompts[N] = {
    "a photo of a cat", "masterpiece, best quality, 1girl, looking at viewer", "",
    "an astronaut riding a horse on the moon, highly detailed, 8k, trending on artstation, "
    "cinematic lighting, volumetric fog, octane render, unreal engine, sharp focus, intricate "
    "details, award winning photograph, by greg rutkowski and alphonse mucha, golden hour, "
    "a b c d e f g h i j k l m n o p q r s t u v w x y z, 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15",
    "dog", "A bowl of fruit &amp; a glass of wine", "城市夜景", "x", "portrait, oil painting",
    "(red:1.2) car", "the end"};

typedef struct {
    float *hidden, *pooled;
    clipskip_token_info info[N];
    double dev;
} run_out;

static clipskip_status run(clipskip_encoder *enc, const char *const *texts, const char *overlap,
                           int d, run_out *r) {
    setenv("CLIPSKIP_OVERLAP_TOKENIZE", overlap, 1);
    clipskip_row_options per_row[N];
    for (int i = 0; i < N; i++)
        per_row[i] = (clipskip_row_options){1 + i % 3, i % 2 ? CLIPSKIP_FINAL_LN_ON : CLIPSKIP_FINAL_LN_OFF};
    clipskip_encode_options o = clipskip_encode_default_options();
    o.outputs = CLIPSKIP_OUT_HIDDEN | CLIPSKIP_OUT_POOLED;
    o.per_row = per_row;
    clipskip_outputs out = {r->hidden, r->pooled, NULL};
    clipskip_status st = clipskip_encode_text(enc, texts, N, &o, &out, r->info);
    r->dev = clipskip_encoder_last_device_seconds(enc);
    return st;
}

int main(void) {
    clipskip_model *m;
    REQUIRE(clipskip_model_random(CLIPSKIP_FAMILY_OTHER, 3, &m) == CLIPSKIP_OK); /* + tokenizer */
    REQUIRE(clipskip_model_tokenizer(m) != NULL);
    const int d = m->towers[0].info.d_model;
    clipskip_encoder_params ep = clipskip_encoder_default_params();
    const char *be = getenv("CS_TEST_BACKEND");
    const int cuda = be && !strcmp(be, "cuda");
    ep.backend = cuda ? CLIPSKIP_BACKEND_CUDA : CLIPSKIP_BACKEND_CPU;
    ep.max_batch = 4;
    clipskip_encoder *enc;
    REQUIRE(clipskip_encoder_init(m, &ep, &enc) == CLIPSKIP_OK);
    run_out a = {0}, b = {0};
    a.hidden = calloc((size_t)N * CLIPSKIP_CONTEXT * d, 4), a.pooled = calloc((size_t)N * d, 4);
    b.hidden = calloc((size_t)N * CLIPSKIP_CONTEXT * d, 4), b.pooled = calloc((size_t)N * d, 4);
    REQUIRE(a.hidden && a.pooled && b.hidden && b.pooled);

    CHECK_OK(run(enc, prompts, "0", d, &a));
    memset(b.hidden, 0xff, (size_t)N * CLIPSKIP_CONTEXT * d * 4); /* NaN: every row must be written */
    memset(b.pooled, 0xff, (size_t)N * d * 4);
    CHECK_OK(run(enc, prompts, "1", d, &b));
    CHECK(memcmp(a.hidden, b.hidden, (size_t)N * CLIPSKIP_CONTEXT * d * 4) == 0);
    CHECK(memcmp(a.pooled, b.pooled, (size_t)N * d * 4) == 0);
    CHECK(memcmp(a.info, b.info, sizeof a.info) == 0);
    CHECK(a.info[3].truncated > 0); /* the long prompt was truncated and reported, row 3 */
    CHECK(a.info[10].eos_pos > 1);  /* info of the last pass was written */
    CHECK(cuda ? b.dev >= 0.0 : b.dev == -1.0); /* a device timer on CUDA only, overlapped or not */

    /* a bad prompt in the third pass: the same error, naming the same prompt, either way */
    const char *bad[N];
    memcpy(bad, prompts, sizeof bad);
    bad[9] = "caf\xc3"; /* truncated UTF-8 sequence */
    char msg[2][512];
    for (int k = 0; k < 2; k++) {
        clipskip_status st = run(enc, bad, k ? "1" : "0", d, k ? &b : &a);
        CHECK(st == CLIPSKIP_ERR_TEXT);
        snprintf(msg[k], sizeof msg[k], "%s", clipskip_last_error());
        printf("  %s: %s\n", k ? "overlapped" : "up front  ", msg[k]);
        CHECK(strstr(msg[k], "prompt 9") != NULL);
    }
    CHECK(strcmp(msg[0], msg[1]) == 0);
    bad[9] = prompts[9];
    bad[5] = NULL; /* a NULL prompt in the second pass */
    CHECK(run(enc, bad, "1", d, &b) == CLIPSKIP_ERR_INVALID_ARG);
    CHECK(strstr(clipskip_last_error(), "prompt 5") != NULL);
    /* and the encoder is still usable after a failed call, with the same results */
    CHECK_OK(run(enc, prompts, "0", d, &a));
    CHECK_OK(run(enc, prompts, "1", d, &b));
    CHECK(memcmp(a.hidden, b.hidden, (size_t)N * CLIPSKIP_CONTEXT * d * 4) == 0);

    free(a.hidden), free(a.pooled), free(b.hidden), free(b.pooled);
    clipskip_encoder_free(enc);
    clipskip_model_free(m);
    TEST_DONE("test_text_overlap");
}
