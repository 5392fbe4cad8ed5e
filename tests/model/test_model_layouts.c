/* Every committed fixture layout loads with the expected configuration and defaults; the
 * goldens' metadata agrees with what the loader reads; weight views point at the right bytes. */
#include "clipskip.h"
#include "internal.h"
#include "model.h"
#include "test_util.h"

#define M CS_TEST_DATA "/models/"
#define QG CLIPSKIP_ACT_QUICK_GELU
#define GE CLIPSKIP_ACT_GELU
#define OTHER CLIPSKIP_FAMILY_OTHER

typedef struct {
    clipskip_family family;
    const char *layout, *prefix;
    int L, D, H, F, V, E;
    clipskip_act act;
    clipskip_dtype dtype;
    int skip, final_ln, pad;
} tower_expect;

typedef struct {
    const char *path;
    clipskip_pipeline pipeline;
    int n_towers;
    tower_expect t[2];
} layout_case;

static const layout_case CASES[] = {
    {M "sd1.safetensors",
     CLIPSKIP_PIPELINE_SD1,
     1,
     {{OTHER, "sd1-single-file", "cond_stage_model.transformer.text_model.", 6, 64, 1, 256, 49408,
       0, QG, CLIPSKIP_DTYPE_F32, 1, 1, 49407}}},
    {M "sd1-old.safetensors",
     CLIPSKIP_PIPELINE_SD1,
     1,
     {{OTHER, "sd1-single-file-old", "cond_stage_model.transformer.", 2, 64, 1, 128, 1000, 0, QG,
       CLIPSKIP_DTYPE_F16, 1, 1, 49407}}},
    {M "sd2.safetensors",
     CLIPSKIP_PIPELINE_SD2,
     1,
     {{OTHER, "sd2-single-file", "cond_stage_model.model.", 5, 64, 1, 256, 49408, 64, GE,
       CLIPSKIP_DTYPE_F16, 2, 1, 0}}},
    {M "sdxl.safetensors",
     CLIPSKIP_PIPELINE_SDXL,
     2,
     {{OTHER, "sdxl-single-file", "conditioner.embedders.0.transformer.text_model.", 4, 64, 1, 256,
       49408, 0, QG, CLIPSKIP_DTYPE_F16, 2, 0, 49407},
      {OTHER, "sdxl-single-file", "conditioner.embedders.1.model.", 6, 64, 1, 256, 49408, 48, GE,
       CLIPSKIP_DTYPE_F16, 2, 0, 0}}},
    {M "sdxl-refiner.safetensors",
     CLIPSKIP_PIPELINE_SDXL_REFINER,
     1,
     {{OTHER, "sdxl-refiner-single-file", "conditioner.embedders.0.model.", 3, 64, 1, 128, 1000, 32,
       GE, CLIPSKIP_DTYPE_F16, 2, 0, 0}}},
    /* a folder path: its model.safetensors, with config.json (2 heads) */
    {M "diffusers/text_encoder",
     CLIPSKIP_PIPELINE_TOWER,
     1,
     {{OTHER, "diffusers", "text_model.", 3, 64, 2, 128, 1000, 0, QG, CLIPSKIP_DTYPE_F16, 1, 1,
       49407}}},
    /* config.json: 4 heads of 8 and gelu (HF names alone would say 1 head, quick_gelu) */
    {M "diffusers/text_encoder_2/model.safetensors",
     CLIPSKIP_PIPELINE_TOWER,
     1,
     {{OTHER, "diffusers", "text_model.", 5, 32, 4, 128, 49408, 24, GE, CLIPSKIP_DTYPE_BF16, 2, 0,
       0}}},
    {M "hf-noprefix/model.safetensors",
     CLIPSKIP_PIPELINE_TOWER,
     1,
     {{OTHER, "transformers-no-prefix", "", 2, 64, 4, 128, 1000, 0, QG, CLIPSKIP_DTYPE_F16, 1, 1,
       49407}}},
    {M "openclip.safetensors",
     CLIPSKIP_PIPELINE_TOWER,
     1,
     {{OTHER, "openclip", "", 2, 128, 2, 256, 1000, 64, GE, CLIPSKIP_DTYPE_F16, 2, 1, 0}}},
    {M "tower-bf16.safetensors",
     CLIPSKIP_PIPELINE_TOWER,
     1,
     {{OTHER, "diffusers", "text_model.", 2, 64, 1, 128, 1000, 0, QG, CLIPSKIP_DTYPE_BF16, 1, 1,
       49407}}},
    {M "bad/trailing-bytes.safetensors",
     CLIPSKIP_PIPELINE_SD1,
     1,
     {{OTHER, "sd1-single-file", "cond_stage_model.transformer.text_model.", 2, 64, 1, 96, 16, 0,
       QG, CLIPSKIP_DTYPE_F16, 1, 1, 49407}}},
};

static int64_t expected_params(const tower_expect *e) {
    int64_t D = e->D, F = e->F;
    int64_t layer = 4 * D * D + 2 * D * F + 9 * D + F; /* ln1, q/k/v/o + biases, ln2, fc1, fc2 */
    return (int64_t)e->V * D + 77 * D + e->L * layer + 2 * D + (int64_t)e->E * D;
}

static void check_tower(const char *path, int i, const clipskip_tower_info *t,
                        const tower_expect *e) {
    int ok = t->family == e->family && !strcmp(t->layout, e->layout) &&
             !strcmp(t->prefix, e->prefix) && t->n_layers == e->L && t->d_model == e->D &&
             t->n_heads == e->H && t->d_mlp == e->F && t->vocab == e->V && t->context == 77 &&
             t->proj_dim == e->E && t->act == e->act && t->file_dtype == e->dtype &&
             t->default_clip_skip == e->skip && t->default_final_ln == e->final_ln &&
             t->pad_id == e->pad && t->default_clean == CLIPSKIP_CLEAN_HF &&
             t->n_params == expected_params(e);
    if (!ok) {
        fprintf(stderr,
                "%s tower %d: got family %d layout %s prefix '%s' L %d D %d H %d F %d V %d E %d "
                "act %d dtype %d skip %d ln %d pad %d params %lld (expected %lld)\n",
                path, i, t->family, t->layout, t->prefix, t->n_layers, t->d_model, t->n_heads,
                t->d_mlp, t->vocab, t->proj_dim, t->act, t->file_dtype, t->default_clip_skip,
                t->default_final_ln, t->pad_id, (long long)t->n_params,
                (long long)expected_params(e));
        cs_test_failures++;
    }
}

/* Every view present with its shape; q/k/v separate. */
static void check_views(const cs_tower *tw) {
    int64_t D = tw->info.d_model, F = tw->info.d_mlp;
    CHECK(tw->tok_emb.data && tw->tok_emb.shape[0] == tw->info.vocab && tw->tok_emb.shape[1] == D);
    CHECK(tw->pos_emb.data && tw->pos_emb.shape[0] == 77 && tw->pos_emb.shape[1] == D);
    CHECK(tw->lnf_w.data && tw->lnf_b.data && tw->lnf_w.shape[0] == D);
    for (int l = 0; l < tw->info.n_layers; l++) {
        const cs_layer *L = &tw->layers[l];
        const cs_weight *mats[] = {&L->q_w, &L->k_w, &L->v_w, &L->o_w};
        for (int k = 0; k < 4; k++)
            CHECK(mats[k]->data && mats[k]->ndim == 2 && mats[k]->shape[0] == D &&
                  mats[k]->shape[1] == D && mats[k]->name);
        const cs_weight *vecs[] = {&L->ln1_w, &L->ln1_b, &L->q_b,   &L->k_b,  &L->v_b,
                                   &L->o_b,   &L->ln2_w, &L->ln2_b, &L->fc2_b};
        for (int k = 0; k < 9; k++)
            CHECK(vecs[k]->data && vecs[k]->ndim == 1 && vecs[k]->shape[0] == D);
        CHECK(L->fc1_w.shape[0] == F && L->fc1_w.shape[1] == D && L->fc1_b.shape[0] == F);
        CHECK(L->fc2_w.shape[0] == D && L->fc2_w.shape[1] == F);
        CHECK(L->q_w.data != L->k_w.data && L->k_w.data != L->v_w.data);
    }
    if (tw->info.proj_dim) {
        CHECK(tw->proj.data);
        int64_t E = tw->info.proj_dim;
        if (tw->proj_is_linear)
            CHECK(tw->proj.shape[0] == E && tw->proj.shape[1] == D);
        else
            CHECK(tw->proj.shape[0] == D && tw->proj.shape[1] == E);
    } else {
        CHECK(tw->proj.data == NULL);
    }
}

static void test_layouts(void) {
    for (size_t c = 0; c < sizeof CASES / sizeof CASES[0]; c++) {
        const layout_case *k = &CASES[c];
        clipskip_model *m = NULL;
        CHECK_OK(clipskip_model_load(k->path, NULL, &m));
        if (!m) continue;
        CHECK(clipskip_model_pipeline(m) == k->pipeline);
        CHECK(clipskip_model_n_towers(m) == k->n_towers);
        CHECK(clipskip_model_tokenizer(m) != NULL); /* built-in vocabulary or a tokenizer/ folder */
        for (int i = 0; i < k->n_towers && i < clipskip_model_n_towers(m); i++) {
            clipskip_tower_info t;
            CHECK_OK(clipskip_model_tower_info(m, i, &t));
            check_tower(k->path, i, &t, &k->t[i]);
            check_views(&m->towers[i]);
        }
        clipskip_model_free(m);
    }
}

/* OpenCLIP's fused in_proj becomes three contiguous row blocks; text_projection (D, E) is a
 * parameter, HF's (E, D) a Linear; mixed dtypes keep each tensor's own. */
static void test_views(void) {
    clipskip_model *m;
    CHECK_OK(clipskip_model_load(M "sd2.safetensors", NULL, &m));
    REQUIRE(m);
    const cs_tower *tw = &m->towers[0];
    const cs_st_tensor *in =
        cs_st_find(m->file, "cond_stage_model.model.transformer.resblocks.2.attn.in_proj_weight");
    const cs_st_tensor *inb =
        cs_st_find(m->file, "cond_stage_model.model.transformer.resblocks.2.attn.in_proj_bias");
    REQUIRE(in && inb);
    const cs_layer *L = &tw->layers[2];
    CHECK(L->q_w.data == in->data);
    CHECK((const char *)L->k_w.data == (const char *)in->data + 64 * 64 * 2);
    CHECK((const char *)L->v_w.data == (const char *)in->data + 2 * 64 * 64 * 2);
    CHECK((const char *)L->v_b.data == (const char *)inb->data + 2 * 64 * 2);
    CHECK(strcmp(L->k_w.name, in->name) == 0);
    CHECK(!tw->proj_is_linear && tw->proj.dtype == CLIPSKIP_DTYPE_F16);
    clipskip_model_free(m);

    CHECK_OK(clipskip_model_load(M "diffusers/text_encoder_2/model.safetensors", NULL, &m));
    REQUIRE(m);
    tw = &m->towers[0];
    CHECK(tw->proj_is_linear && tw->proj.dtype == CLIPSKIP_DTYPE_BF16);
    CHECK(tw->tok_emb.dtype == CLIPSKIP_DTYPE_F16 &&
          tw->layers[0].q_w.dtype == CLIPSKIP_DTYPE_BF16);
    CHECK(tw->layers[0].ln1_w.dtype == CLIPSKIP_DTYPE_F32 &&
          tw->pos_emb.dtype == CLIPSKIP_DTYPE_F32);
    CHECK(strcmp(tw->proj.name, "text_projection.weight") == 0);
    clipskip_model_free(m);

    CHECK_OK(clipskip_model_load(M "sd1.safetensors", NULL, &m));
    REQUIRE(m);
    CHECK(m->towers[0].tok_emb.dtype == CLIPSKIP_DTYPE_F16);
    CHECK(m->towers[0].layers[5].fc2_w.dtype == CLIPSKIP_DTYPE_F32);
    /* the stored (corrupted) position_ids exists and is not used by any view */
    CHECK(cs_st_find(m->file, "cond_stage_model.transformer.text_model.embeddings.position_ids"));
    clipskip_model_free(m);
}

/* The goldens' metadata (written by the generator from the HF config) matches the loader. */
static void test_goldens_agree(void) {
    static const char *const G[] = {
        "sd1.goldens.safetensors", "sd2.goldens.safetensors", "sdxl.tower0.goldens.safetensors",
        "sdxl.tower1.goldens.safetensors", "diffusers/text_encoder_2.goldens.safetensors"};
    for (size_t g = 0; g < sizeof G / sizeof G[0]; g++) {
        char path[1024];
        snprintf(path, sizeof path, M "%s", G[g]);
        cs_safetensors *st;
        CHECK_OK(cs_st_open(path, 0, &st));
        if (!st) continue;
        const char *fmt = cs_st_meta_get(st, "format"), *model = cs_st_meta_get(st, "model");
        REQUIRE(fmt && model && !strcmp(fmt, "clipskip-golden"));
        char mpath[1024];
        snprintf(mpath, sizeof mpath, M "%s", model);
        clipskip_model *m;
        CHECK_OK(clipskip_model_load(mpath, NULL, &m));
        if (m) {
            clipskip_tower_info t;
            CHECK_OK(clipskip_model_tower_info(m, atoi(cs_st_meta_get(st, "tower")), &t));
            CHECK(t.n_layers == atoi(cs_st_meta_get(st, "n_layers")));
            CHECK(t.n_heads == atoi(cs_st_meta_get(st, "n_heads")));
            CHECK(t.pad_id == atoi(cs_st_meta_get(st, "pad_id")));
            CHECK(!strcmp(cs_st_meta_get(st, "act"),
                          t.act == CLIPSKIP_ACT_GELU ? "gelu" : "quick_gelu"));
            const cs_st_tensor *ids = cs_st_find(st, "ids"), *hs = cs_st_find(st, "hidden_states");
            const cs_st_tensor *te = cs_st_find(st, "text_embeds");
            REQUIRE(ids && hs);
            CHECK(ids->dtype == CS_ST_I32 && ids->ndim == 2 && ids->shape[1] == 77);
            CHECK(hs->ndim == 4 && hs->shape[0] == t.n_layers + 1 && hs->shape[3] == t.d_model);
            CHECK((te != NULL) == (t.proj_dim != 0));
            if (te) CHECK(te->shape[1] == t.proj_dim);
            const int32_t *id = ids->data;
            for (int64_t b = 0; b < ids->shape[0]; b++) { /* pad after EOS is the tower's */
                int64_t e = 0;
                while (e < 77 && id[b * 77 + e] != CLIPSKIP_EOS) e++;
                CHECK(e < 77 && id[b * 77] == CLIPSKIP_BOS);
                if (e + 1 < 77) CHECK(id[b * 77 + e + 1] == t.pad_id);
            }
            clipskip_model_free(m);
        }
        cs_st_close(st);
    }
}

static void test_api_args(void) {
    clipskip_model *m = NULL;
    CHECK_ERR(clipskip_model_load(NULL, NULL, &m), CLIPSKIP_ERR_INVALID_ARG, "path is NULL");
    CHECK_ERR(clipskip_model_load(M "sd1.safetensors", NULL, NULL), CLIPSKIP_ERR_INVALID_ARG,
              "out");
    CHECK(clipskip_model_n_towers(NULL) == 0);
    CHECK(clipskip_model_tokenizer(NULL) == NULL);
    clipskip_model_free(NULL);
    CHECK_OK(clipskip_model_load(M "sdxl.safetensors", NULL, &m));
    REQUIRE(m);
    clipskip_tower_info t;
    CHECK_ERR(clipskip_model_tower_info(m, 2, &t), CLIPSKIP_ERR_INVALID_ARG,
              "tower 2: expected 0..1");
    CHECK_ERR(clipskip_model_tower_info(m, -1, &t), CLIPSKIP_ERR_INVALID_ARG, "expected 0..1");
    CHECK_ERR(clipskip_model_tower_info(m, 0, NULL), CLIPSKIP_ERR_INVALID_ARG, "NULL");
    int32_t h = -1, p = -1, e = -1;
    CHECK_OK(clipskip_output_dims(m, NULL, &h, &p, &e));
    CHECK(h == 64 && p == 64 && e == 0);
    clipskip_encode_options o = clipskip_encode_default_options();
    o.tower = CLIPSKIP_TOWER_ALL;
    CHECK_OK(clipskip_output_dims(m, &o, &h, &p, &e));
    CHECK(h == 128 && p == 64 && e == 48);
    o.tower = 1;
    CHECK_OK(clipskip_output_dims(m, &o, &h, NULL, &e));
    CHECK(h == 64 && e == 48);
    o.tower = 2;
    CHECK_ERR(clipskip_output_dims(m, &o, &h, &p, &e), CLIPSKIP_ERR_INVALID_ARG,
              "tower: expected 0..1 or CLIPSKIP_TOWER_ALL (-1), found 2");
    o.tower = -2;
    CHECK_ERR(clipskip_output_dims(m, &o, &h, &p, &e), CLIPSKIP_ERR_INVALID_ARG, "found -2");
    CHECK_ERR(clipskip_output_dims(NULL, &o, &h, &p, &e), CLIPSKIP_ERR_INVALID_ARG,
              "model is NULL");
    clipskip_model_free(m);
}

int main(void) {
    test_layouts();
    test_views();
    test_goldens_agree();
    test_api_args();
    TEST_DONE("model_layouts");
}
