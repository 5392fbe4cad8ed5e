/* The CPU encoder against HF transformers goldens (weights/make_fixtures.py), for every
 * committed golden tower, every clip skip, final LN on and off, pooled and projected, fp32 and
 * fp16 outputs, text and id inputs, SDXL's concatenated towers.
 *
 * Tolerance (fp32): |got - ref| <= atol + rtol * |ref| with atol = rtol = 1e-5. Both sides
 * compute in fp32 from the same stored weights; they differ only in summation order (OpenBLAS
 * vs torch GEMMs, softmax, LayerNorm), which moves values of magnitude ~1-10 by ~1e-6 after a
 * few layers. fp16 outputs: rtol 1e-3 (half a unit in the last place of fp16 is 4.9e-4).
 * The reference for final-LN'd hidden states below full depth is LN(hidden_states[d]) computed
 * here in double with the tower's final LayerNorm weights (HF applies the same module). */
#include "encoder_internal.h"
#include "internal.h"
#include "safetensors.h"
#include "test_util.h"

#include <cjson/cJSON.h>
#include <math.h>

#define T CLIPSKIP_CONTEXT
#define ATOL 1e-5
#define RTOL 1e-5

typedef struct {
    const char *goldens, *model;
    int tower;
} golden_case;

static const golden_case CASES[] = {
    {"sd1.goldens.safetensors", "sd1.safetensors", 0},
    {"sd2.goldens.safetensors", "sd2.safetensors", 0},
    {"sdxl.tower0.goldens.safetensors", "sdxl.safetensors", 0},
    {"sdxl.tower1.goldens.safetensors", "sdxl.safetensors", 1},
    {"diffusers/text_encoder_2.goldens.safetensors", "diffusers/text_encoder_2/model.safetensors", 0},
};

static double worst = 0;      /* largest err / (atol + rtol|ref|) seen over all comparisons */
static double worst_frob = 0; /* largest ||got - ref|| / ||ref|| (ARCHITECTURE.md's measure) */

/* Max over elements of |got - ref| / (atol + rtol |ref|); <= 1 passes. */
static double rel_err(const float *got, const float *ref, size_t n, double atol, double rtol) {
    double e = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - ref[i]) / (atol + rtol * fabs(ref[i]));
        if (!(d <= e)) e = d; /* NaN propagates as a failure */
    }
    return e;
}

static void expect_close(const char *what, const float *got, const float *ref, size_t n,
                         double atol, double rtol) {
    double e = rel_err(got, ref, n, atol, rtol), num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        num += ((double)got[i] - ref[i]) * ((double)got[i] - ref[i]);
        den += (double)ref[i] * ref[i];
    }
    double frob = den > 0 ? sqrt(num / den) : sqrt(num);
    if (atol == ATOL && !(frob <= worst_frob)) worst_frob = frob; /* fp32 comparisons only */
    if (!(e <= 1.0)) {
        fprintf(stderr, "  %s: error %.3g x tolerance\n", what, e);
        cs_test_failures++;
    }
    if (!(e <= worst)) worst = e;
}

static const float *tensor(const cs_safetensors *g, const char *name) {
    const cs_st_tensor *t = cs_st_find(g, name);
    return t && t->dtype == CS_ST_F32 ? t->data : NULL;
}

/* ref(B, T, D) = final_ln(h) in double. */
static void final_ln_ref(float *out, const float *h, const cs_tower *tw, size_t rows) {
    int d = tw->info.d_model;
    float *w = malloc(d * sizeof *w), *b = malloc(d * sizeof *b);
    cs_convert_to_f32(w, tw->lnf_w.data, tw->lnf_w.dtype, d);
    cs_convert_to_f32(b, tw->lnf_b.data, tw->lnf_b.dtype, d);
    for (size_t r = 0; r < rows; r++) {
        const float *x = h + r * d;
        double mean = 0, var = 0;
        for (int c = 0; c < d; c++) mean += x[c];
        mean /= d;
        for (int c = 0; c < d; c++) var += (x[c] - mean) * (x[c] - mean);
        var /= d;
        for (int c = 0; c < d; c++)
            out[r * d + c] = (float)((x[c] - mean) / sqrt(var + 1e-5) * w[c] + b[c]);
    }
    free(w), free(b);
}

/* Every clip skip, final LN off/on, hidden + pooled + text_embeds, from ids. */
static void check_depths(clipskip_encoder *enc, const clipskip_model *m, int tower,
                         const cs_safetensors *g, const int32_t *ids, int n) {
    const cs_tower *tw = &m->towers[tower];
    int L = tw->info.n_layers, d = tw->info.d_model, e = tw->info.proj_dim;
    const float *hs = tensor(g, "hidden_states"), *pooled = tensor(g, "pooled"),
                *embeds = tensor(g, "text_embeds");
    REQUIRE(hs && pooled);
    size_t per = (size_t)n * T * d;
    float *hid = malloc(per * 4), *pool = malloc((size_t)n * d * 4), *emb = malloc((size_t)n * (e + 1) * 4),
          *ref = malloc(per * 4);
    for (int skip = 1; skip <= L; skip++)
        for (int ln = 0; ln < 2; ln++) {
            clipskip_encode_options o = clipskip_encode_default_options();
            o.tower = tower;
            o.row.clip_skip = skip;
            o.row.final_ln = ln ? CLIPSKIP_FINAL_LN_ON : CLIPSKIP_FINAL_LN_OFF;
            o.outputs = CLIPSKIP_OUT_HIDDEN | CLIPSKIP_OUT_POOLED | (embeds ? CLIPSKIP_OUT_TEXT_EMBEDS : 0);
            clipskip_outputs out = {hid, pool, emb};
            CHECK_OK(clipskip_encode_ids(enc, ids, n, &o, &out));
            const float *h_ref = hs + (size_t)(L - skip + 1) * per;
            if (ln) final_ln_ref(ref, h_ref, tw, (size_t)n * T);
            char what[96];
            snprintf(what, sizeof what, "tower %d skip %d final-ln %s hidden", tower, skip, ln ? "on" : "off");
            expect_close(what, hid, ln ? ref : h_ref, per, ATOL, RTOL);
            expect_close("pooled", pool, pooled, (size_t)n * d, ATOL, RTOL);
            if (embeds) expect_close("text_embeds", emb, embeds, (size_t)n * e, ATOL, RTOL);
        }
    /* pooled only: the EOS-rows-only tail */
    clipskip_encode_options o = clipskip_encode_default_options();
    o.tower = tower;
    o.outputs = CLIPSKIP_OUT_POOLED | (embeds ? CLIPSKIP_OUT_TEXT_EMBEDS : 0);
    clipskip_outputs out = {NULL, pool, emb};
    CHECK_OK(clipskip_encode_ids(enc, ids, n, &o, &out));
    expect_close("pooled-only pooled", pool, pooled, (size_t)n * d, ATOL, RTOL);
    if (embeds) expect_close("pooled-only text_embeds", emb, embeds, (size_t)n * e, ATOL, RTOL);
    free(hid), free(pool), free(emb), free(ref);
}

/* fp16 output of the full-depth hidden state against the fp32 reference. */
static void check_f16(clipskip_encoder *enc, const clipskip_model *m, int tower,
                      const cs_safetensors *g, const int32_t *ids, int n) {
    const cs_tower *tw = &m->towers[tower];
    size_t per = (size_t)n * T * tw->info.d_model;
    uint16_t *h16 = malloc(per * 2);
    float *h = malloc(per * 4);
    clipskip_encode_options o = clipskip_encode_default_options();
    o.tower = tower;
    o.row.clip_skip = 1;
    o.row.final_ln = CLIPSKIP_FINAL_LN_ON;
    o.out_dtype = CLIPSKIP_DTYPE_F16;
    clipskip_outputs out = {.hidden = h16};
    CHECK_OK(clipskip_encode_ids(enc, ids, n, &o, &out));
    for (size_t i = 0; i < per; i++) h[i] = cs_f16_to_f32(h16[i]);
    expect_close("f16 last_hidden_state", h, tensor(g, "last_hidden_state"), per, 1e-3, 1e-3);
    free(h16), free(h);
}

/* The golden prompts through the tokenizer give the golden ids, and the same outputs. */
static void check_text(clipskip_encoder *enc, const clipskip_model *m, int tower,
                       const cs_safetensors *g, const int32_t *ids, int n) {
    cJSON *arr = cJSON_Parse(cs_st_meta_get(g, "prompts"));
    REQUIRE(arr && cJSON_GetArraySize(arr) == n);
    const char *texts[16];
    for (int i = 0; i < n && i < 16; i++) texts[i] = cJSON_GetArrayItem(arr, i)->valuestring;
    int32_t got[16 * T];
    for (int i = 0; i < n; i++)
        CHECK_OK(clipskip_tokenize(m->tokenizer, texts[i], strlen(texts[i]), CLIPSKIP_CLEAN_HF,
                                   m->towers[tower].info.pad_id, got + i * T, NULL));
    CHECK(memcmp(got, ids, (size_t)n * T * 4) == 0);
    size_t per = (size_t)n * T * m->towers[tower].info.d_model;
    float *a = malloc(per * 4), *b = malloc(per * 4);
    clipskip_encode_options o = clipskip_encode_default_options();
    o.tower = tower;
    clipskip_outputs oa = {.hidden = a}, ob = {.hidden = b};
    CHECK_OK(clipskip_encode_text(enc, texts, n, &o, &oa, NULL));
    CHECK_OK(clipskip_encode_ids(enc, ids, n, &o, &ob));
    CHECK(memcmp(a, b, per * 4) == 0);
    free(a), free(b);
    cJSON_Delete(arr);
}

static void run_case(const golden_case *c) {
    char gpath[1024], mpath[1024];
    /* relative names are fixtures under tests/data/models/ */
    snprintf(gpath, sizeof gpath, "%s%s", c->goldens[0] == '/' ? "" : CS_TEST_DATA "/models/", c->goldens);
    snprintf(mpath, sizeof mpath, "%s%s", c->model[0] == '/' ? "" : CS_TEST_DATA "/models/", c->model);
    cs_safetensors *g;
    clipskip_model *m;
    REQUIRE(cs_st_open(gpath, 0, &g) == CLIPSKIP_OK);
    REQUIRE(clipskip_model_load(mpath, NULL, &m) == CLIPSKIP_OK);
    clipskip_encoder_params ep = clipskip_encoder_default_params();
    ep.backend = CLIPSKIP_BACKEND_CPU;
    clipskip_encoder *enc;
    REQUIRE(clipskip_encoder_init(m, &ep, &enc) == CLIPSKIP_OK);
    const cs_st_tensor *it = cs_st_find(g, "ids");
    REQUIRE(it && it->dtype == CS_ST_I32 && it->shape[1] == T);
    int n = (int)it->shape[0];
    double before = worst;
    worst = 0;
    check_depths(enc, m, c->tower, g, it->data, n);
    check_f16(enc, m, c->tower, g, it->data, n);
    check_text(enc, m, c->tower, g, it->data, n);
    printf("%-45s tower %d, %d layers, %d heads: worst error %.3f x tolerance, worst relative "
           "Frobenius error %.2e\n", c->goldens, c->tower, m->towers[c->tower].info.n_layers,
           m->towers[c->tower].info.n_heads, worst, worst_frob);
    if (before > worst) worst = before;
    clipskip_encoder_free(enc);
    clipskip_model_free(m);
    cs_st_close(g);
}

/* SDXL: both towers in one call, hidden concatenated (no final LN, penultimate), pooled and
 * text_embeds from tower two. */
static void check_sdxl_concat(void) {
    char p0[512], p1[512], mp[512];
    snprintf(p0, sizeof p0, "%s/models/sdxl.tower0.goldens.safetensors", CS_TEST_DATA);
    snprintf(p1, sizeof p1, "%s/models/sdxl.tower1.goldens.safetensors", CS_TEST_DATA);
    snprintf(mp, sizeof mp, "%s/models/sdxl.safetensors", CS_TEST_DATA);
    cs_safetensors *g0, *g1;
    clipskip_model *m;
    clipskip_encoder *enc;
    REQUIRE(cs_st_open(p0, 0, &g0) == CLIPSKIP_OK && cs_st_open(p1, 0, &g1) == CLIPSKIP_OK);
    REQUIRE(clipskip_model_load(mp, NULL, &m) == CLIPSKIP_OK);
    REQUIRE(clipskip_encoder_init(m, NULL, &enc) == CLIPSKIP_OK);
    int d0 = m->towers[0].info.d_model, d1 = m->towers[1].info.d_model, e = m->towers[1].info.proj_dim;
    int L0 = m->towers[0].info.n_layers, L1 = m->towers[1].info.n_layers;
    cJSON *arr = cJSON_Parse(cs_st_meta_get(g0, "prompts"));
    int n = cJSON_GetArraySize(arr);
    const char *texts[16];
    for (int i = 0; i < n; i++) texts[i] = cJSON_GetArrayItem(arr, i)->valuestring;
    float *hid = malloc((size_t)n * T * (d0 + d1) * 4), *pool = malloc((size_t)n * d1 * 4),
          *emb = malloc((size_t)n * e * 4);
    clipskip_encode_options o = clipskip_encode_default_options(); /* defaults: skip 2, no LN */
    o.tower = CLIPSKIP_TOWER_ALL;
    o.outputs = CLIPSKIP_OUT_HIDDEN | CLIPSKIP_OUT_POOLED | CLIPSKIP_OUT_TEXT_EMBEDS;
    clipskip_outputs out = {hid, pool, emb};
    CHECK_OK(clipskip_encode_text(enc, texts, n, &o, &out, NULL));
    const float *h0 = tensor(g0, "hidden_states") + (size_t)(L0 - 1) * n * T * d0;
    const float *h1 = tensor(g1, "hidden_states") + (size_t)(L1 - 1) * n * T * d1;
    float *ref = malloc((size_t)n * T * (d0 + d1) * 4);
    for (size_t r = 0; r < (size_t)n * T; r++) {
        memcpy(ref + r * (d0 + d1), h0 + r * d0, d0 * 4);
        memcpy(ref + r * (d0 + d1) + d0, h1 + r * d1, d1 * 4);
    }
    expect_close("sdxl context (B,77,D0+D1)", hid, ref, (size_t)n * T * (d0 + d1), ATOL, RTOL);
    expect_close("sdxl pooled", pool, tensor(g1, "pooled"), (size_t)n * d1, ATOL, RTOL);
    expect_close("sdxl text_embeds", emb, tensor(g1, "text_embeds"), (size_t)n * e, ATOL, RTOL);
    printf("sdxl both towers in one call: context (%d,77,%d), pooled (%d,%d) checked\n", n, d0 + d1, n, e);
    free(hid), free(pool), free(emb), free(ref);
    cJSON_Delete(arr);
    clipskip_encoder_free(enc);
    clipskip_model_free(m);
    cs_st_close(g0), cs_st_close(g1);
}

/* No arguments: every committed fixture. With GOLDENS MODEL TOWER (absolute paths): that one
 * case, e.g. the full ViT-L-shaped tower from `make_fixtures.py --full` (not committed). */
int main(int argc, char **argv) {
    if (argc == 4) {
        golden_case c = {argv[1], argv[2], atoi(argv[3])};
        run_case(&c);
        TEST_DONE("test_golden (one case)");
    }
    for (size_t i = 0; i < sizeof CASES / sizeof CASES[0]; i++) run_case(&CASES[i]);
    check_sdxl_concat();
    printf("worst error over all goldens: %.3f x tolerance (atol %g, rtol %g)\n", worst, ATOL, RTOL);
    TEST_DONE("test_golden");
}
