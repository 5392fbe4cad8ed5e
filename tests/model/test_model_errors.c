/* The loader's refusals (status and message: file, tensor, expected vs found), config.json
 * handling, and family detection at the real widths (files built here, zeros). */
#include "clipskip.h"
#include "model.h"
#include "test_util.h"
#include "tower_builder.h"

#include <sys/stat.h>
#include <unistd.h>

#define M CS_TEST_DATA "/models/"
#define FMT CLIPSKIP_ERR_FORMAT
#define UNS CLIPSKIP_ERR_UNSUPPORTED
#define SHP CLIPSKIP_ERR_SHAPE

static char g_dir[64];

/* Load path: expect status s and all of the substrings (NULL ends the list). */
static void expect_load(const char *path, clipskip_status s, const char *a, const char *b,
                        const char *c, int line) {
    clipskip_model *m = (clipskip_model *)&m; /* must be reset to NULL on failure */
    clipskip_status got = clipskip_model_load(path, NULL, &m);
    const char *msg = clipskip_last_error();
    const char *subs[] = {a, b, c};
    int ok = got == s && m == NULL;
    for (int i = 0; i < 3; i++) ok = ok && (!subs[i] || strstr(msg, subs[i]));
    if (!ok) {
        fprintf(stderr, "line %d: %s: expected %s with \"%s\" \"%s\" \"%s\"\n  got %s: %s\n", line,
                path, clipskip_status_str(s), a ? a : "", b ? b : "", c ? c : "",
                clipskip_status_str(got), got ? msg : "(ok)");
        cs_test_failures++;
    }
    if (got == CLIPSKIP_OK) clipskip_model_free(m);
}
#define EXPECT(p, s, a, b, c) expect_load(p, s, a, b, c, __LINE__)

static void test_bad_fixtures(void) {
    const char *L = "cond_stage_model.transformer.text_model.encoder.layers.";
    char t[256];
    snprintf(t, sizeof t, "tensor '%s1.mlp.fc2.weight': shape", L);
    EXPECT(M "bad/wrong-shape.safetensors", SHP, "bad/wrong-shape.safetensors", t,
           "expected [D, F] = [64, 96], found [96, 64]");
    snprintf(t, sizeof t, "tensor '%s1.self_attn.v_proj.bias': missing", L);
    EXPECT(M "bad/missing-tensor.safetensors", FMT, t, "sd1-single-file", NULL);
    EXPECT(M "bad/layer-gap.safetensors", FMT, "layer 1: missing",
           "found tensors for layer 2 but none for layer 1", NULL);
    snprintf(t, sizeof t, "tensor '%s0.mlp.fc1.weight': dtype", L);
    EXPECT(M "bad/int-weight.safetensors", UNS, t,
           "expected F32, F16 or BF16 for a weight, found I32", NULL);
    snprintf(t, sizeof t, "tensor '%s0.ls_1.gamma': unexpected in a CLIP text layer", L);
    EXPECT(M "bad/unknown-layer-tensor.safetensors", UNS, t, "not supported", NULL);
    EXPECT(M "bad/three-towers.safetensors", UNS, "expected at most 2 per file, found 3",
           "'x.text_model.'", "'y.text_model.'");
    EXPECT(M "bad/no-text-tower.safetensors", UNS, "no CLIP text tower found",
           "the file holds 4 tensors; top-level prefixes: model (2)", "first_stage_model (1)");
    EXPECT(M "bad/truncated.safetensors", FMT, "final_layer_norm.weight': data_offsets",
           "(the data section's size)", NULL);
    EXPECT(M "bad/pickle.ckpt", UNS, "bad/pickle.ckpt: a PyTorch pickle checkpoint (.ckpt)",
           "arbitrary code", "st.save_file(");
    EXPECT(M "bad/pickle-renamed.safetensors", UNS, "pickle-renamed.safetensors: a PyTorch pickle",
           "zip/pickle content", "torch.load('");
    EXPECT(M "nonexistent.safetensors", CLIPSKIP_ERR_IO,
           "nonexistent.safetensors: open: No such file", NULL, NULL);
    EXPECT(M "bad", CLIPSKIP_ERR_IO, "bad/model.safetensors: open", NULL, NULL);
    EXPECT("x.pt", UNS, "(.pt)", NULL, NULL);
    EXPECT("x.BIN", UNS, "(.BIN)", NULL, NULL);
}

/* A small HF-named tower (D 64, F 96, 2 layers, vocab 8) to break one thing at a time. */
static void small_tower(tb_file *f, int openclip, const char *prefix) {
    tb_init(f, 3 * 64 * 96 * 2);
    tb_tower(f, openclip, prefix, 64, 96, 2, 8, openclip ? 32 : 0);
}

static void write_and_expect(tb_file *f, const char *name, clipskip_status s, const char *a,
                             const char *b, int line) {
    char path[256];
    snprintf(path, sizeof path, "%s/%s", g_dir, name);
    tb_write(f, path);
    tb_free(f);
    expect_load(path, s, a, b, NULL, line);
    unlink(path);
}
#define WRITE_EXPECT(f, n, s, a, b) write_and_expect(f, n, s, a, b, __LINE__)

static void test_shapes(void) {
    tb_file *f = malloc(sizeof *f);
    REQUIRE(f);
    small_tower(f, 0, "text_model.");
    tb_find(f, "text_model.embeddings.position_embedding.weight")->shape[0] = 76;
    WRITE_EXPECT(f, "pos.safetensors", SHP,
                 "tensor 'text_model.embeddings.position_embedding.weight'",
                 "expected [context, D] = [77, 64], found [76, 64]");
    small_tower(f, 0, "text_model.");
    tb_find(f, "text_model.embeddings.token_embedding.weight")->ndim = 1;
    WRITE_EXPECT(f, "tok.safetensors", SHP, "token_embedding.weight': shape: expected [V, D]",
                 "found [8]");
    small_tower(f, 1, "cond_stage_model.model.");
    tb_find(f, "cond_stage_model.model.transformer.resblocks.1.attn.in_proj_weight")->shape[0] =
        128;
    WRITE_EXPECT(f, "inproj.safetensors", SHP, "resblocks.1.attn.in_proj_weight': shape",
                 "expected [3D, D] = [192, 64], found [128, 64]");
    small_tower(f, 1, "");
    tb_find(f, "text_projection")->shape[0] = 32; /* (E, D) where OpenCLIP stores (D, E) */
    tb_find(f, "text_projection")->shape[1] = 64;
    WRITE_EXPECT(f, "proj.safetensors", SHP,
                 "tensor 'text_projection': shape: expected [D, E] = [64, E]", "found [32, 64]");
    small_tower(f, 0, "cond_stage_model.transformer.text_model.");
    tb_find(f, "cond_stage_model.transformer.text_model.final_layer_norm.bias")->shape[0] = 65;
    WRITE_EXPECT(f, "lnf.safetensors", SHP,
                 "final_layer_norm.bias': shape: expected [D] = [64], found [65]", NULL);
    small_tower(f, 0, "");
    tb_remove(f, "encoder.layers.0.mlp.fc1.weight");
    WRITE_EXPECT(f, "fc1.safetensors", FMT, "tensor 'encoder.layers.0.mlp.fc1.weight': missing",
                 "transformers-no-prefix");
    /* D = 100: no 64-wide heads, and no config.json to say otherwise */
    tb_init(f, 3 * 100 * 96 * 2);
    tb_tower(f, 0, "cond_stage_model.transformer.text_model.", 100, 96, 1, 8, 0);
    WRITE_EXPECT(f, "d100.safetensors", UNS, "heads: expected D to be a multiple of 64",
                 "found D = 100");
    /* tensors named like a layer but not a layer index */
    small_tower(f, 0, "text_model.");
    tb_add(f, "text_model.encoder.layers.x.mlp.fc1.weight", 1, 4, 0);
    WRITE_EXPECT(f, "idx.safetensors", UNS,
                 "layers.x.mlp.fc1.weight': unexpected in a CLIP text layer", NULL);
    free(f);
}

/* config.json beside a diffusers file: read, cross-checked, or refused. */
static void config_case(const char *json, clipskip_status s, const char *a, int heads,
                        clipskip_act act, int line) {
    char dir[256], path[300];
    snprintf(dir, sizeof dir, "%s/te", g_dir);
    mkdir(dir, 0755);
    tb_file *f = malloc(sizeof *f);
    REQUIRE(f);
    small_tower(f, 0, "text_model.");
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    tb_write(f, path);
    tb_free(f);
    free(f);
    snprintf(path, sizeof path, "%s/config.json", dir);
    FILE *cf = fopen(path, "w");
    REQUIRE(cf);
    fputs(json, cf);
    fclose(cf);
    if (s != CLIPSKIP_OK) {
        expect_load(dir, s, a, "config.json", NULL, line);
    } else {
        clipskip_model *m;
        CHECK_OK(clipskip_model_load(dir, NULL, &m));
        if (m && (m->towers[0].info.n_heads != heads || m->towers[0].info.act != act)) {
            fprintf(stderr, "line %d: heads %d act %d, expected %d %d\n", line,
                    m->towers[0].info.n_heads, m->towers[0].info.act, heads, act);
            cs_test_failures++;
        }
        clipskip_model_free(m);
    }
    unlink(path);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    unlink(path);
    rmdir(dir);
}
#define CONFIG(j, s, a, h, act) config_case(j, s, a, h, act, __LINE__)

static void test_config(void) {
    const clipskip_act Q = CLIPSKIP_ACT_QUICK_GELU, G = CLIPSKIP_ACT_GELU;
    CONFIG("{\"model_type\": \"clip_text_model\", \"num_attention_heads\": 4, \"hidden_act\": "
           "\"gelu\","
           " \"hidden_size\": 64, \"intermediate_size\": 96, \"num_hidden_layers\": 2,"
           " \"vocab_size\": 8, \"max_position_embeddings\": 77, \"layer_norm_eps\": 1e-05}",
           CLIPSKIP_OK, NULL, 4, G);
    CONFIG("{\"model_type\": \"clip\", \"projection_dim\": 512,"
           " \"text_config\": {\"num_attention_heads\": 2, \"hidden_act\": \"quick_gelu\"}}",
           CLIPSKIP_OK, NULL, 2, Q);
    CONFIG("{\"model_type\": \"t5\", \"num_attention_heads\": 4}", CLIPSKIP_OK, NULL, 1, Q);
    CONFIG("{}", CLIPSKIP_OK, NULL, 1, Q);
    CONFIG("{\"hidden_act\": \"gelu_new\"}", UNS,
           "hidden_act: expected \"quick_gelu\" or \"gelu\", found \"gelu_new\"", 0, Q);
    CONFIG("{\"hidden_size\": 768}", SHP, "hidden_size: expected 64", 0, Q);
    CONFIG("{\"num_hidden_layers\": 3}", SHP,
           "num_hidden_layers: expected 2 (the layers in the file", 0, Q);
    CONFIG("{\"num_attention_heads\": 5}", SHP,
           "num_attention_heads: expected a divisor of D = 64, found 5", 0, Q);
    CONFIG("{\"layer_norm_eps\": 1e-6}", UNS, "layer_norm_eps: expected 1e-05", 0, Q);
    CONFIG("{\"hidden_size\": 64.5}", FMT, "hidden_size: expected an integer", 0, Q);
    CONFIG("{\"hidden_size\": ", FMT, "expected a JSON object", 0, Q);
}

/* The real widths decide the family; defaults follow the pipeline. Files of zeros, few layers
 * and a narrow MLP keep them small (the family depends on D alone). */
static void test_families(void) {
    tb_file *f = malloc(sizeof *f);
    REQUIRE(f);
    char path[256];
    snprintf(path, sizeof path, "%s/fam.safetensors", g_dir);
    clipskip_model *m;
    clipskip_tower_info t0, t1;

    tb_init(f, 3 * 1280 * 1280 * 2);
    tb_tower(f, 0, "conditioner.embedders.0.transformer.text_model.", 768, 64, 2, 8, 0);
    tb_tower(f, 1, "conditioner.embedders.1.model.", 1280, 64, 2, 8, 1280);
    tb_write(f, path);
    tb_free(f);
    CHECK_OK(clipskip_model_load(path, NULL, &m));
    REQUIRE(m);
    CHECK(clipskip_model_pipeline(m) == CLIPSKIP_PIPELINE_SDXL);
    clipskip_model_tower_info(m, 0, &t0);
    clipskip_model_tower_info(m, 1, &t1);
    CHECK(t0.family == CLIPSKIP_FAMILY_CLIP_L && t0.n_heads == 12 &&
          t0.act == CLIPSKIP_ACT_QUICK_GELU);
    CHECK(t0.default_clip_skip == 2 && t0.default_final_ln == 0 && t0.pad_id == 49407);
    CHECK(t1.family == CLIPSKIP_FAMILY_OPENCLIP_BIGG && t1.n_heads == 20 &&
          t1.act == CLIPSKIP_ACT_GELU);
    CHECK(t1.default_clip_skip == 2 && t1.default_final_ln == 0 && t1.pad_id == 0 &&
          t1.proj_dim == 1280);
    clipskip_model_free(m);

    tb_init(f, 3 * 1024 * 1024 * 2); /* HF-named H alone (diffusers SD2 style, no config) */
    tb_tower(f, 0, "text_model.", 1024, 64, 2, 8, 0);
    tb_write(f, path);
    tb_free(f);
    CHECK_OK(clipskip_model_load(path, NULL, &m));
    REQUIRE(m);
    clipskip_model_tower_info(m, 0, &t0);
    CHECK(clipskip_model_pipeline(m) == CLIPSKIP_PIPELINE_TOWER);
    CHECK(t0.family == CLIPSKIP_FAMILY_OPENCLIP_H && t0.n_heads == 16 &&
          t0.act == CLIPSKIP_ACT_GELU);
    CHECK(t0.default_clip_skip == 2 && t0.default_final_ln == 1 && t0.pad_id == 0);
    clipskip_model_free(m);

    tb_init(f, 3 * 1280 * 1280 * 2); /* a diffusers text_encoder_2 (bigG, HF names, projection) */
    tb_tower(f, 0, "text_model.", 1280, 64, 2, 8, 1280);
    tb_write(f, path);
    tb_free(f);
    CHECK_OK(clipskip_model_load(path, NULL, &m));
    REQUIRE(m);
    clipskip_model_tower_info(m, 0, &t0);
    CHECK(t0.family == CLIPSKIP_FAMILY_OPENCLIP_BIGG && t0.default_clip_skip == 2 &&
          t0.default_final_ln == 0 && t0.pad_id == 0);
    clipskip_model_free(m);

    tb_init(f, 3 * 768 * 768 * 2); /* OpenCLIP-named 768 (a LAION ViT-L): gelu, not CLIP-L */
    tb_tower(f, 1, "", 768, 64, 1, 8, 768);
    tb_write(f, path);
    tb_free(f);
    CHECK_OK(clipskip_model_load(path, NULL, &m));
    REQUIRE(m);
    clipskip_model_tower_info(m, 0, &t0);
    CHECK(t0.family == CLIPSKIP_FAMILY_OTHER && t0.act == CLIPSKIP_ACT_GELU && t0.n_heads == 12);
    CHECK(t0.default_clip_skip == 1); /* SD2 role's 2, clamped to the single layer */
    clipskip_model_free(m);

    tb_init(f, 3 * 1024 * 1024 * 2); /* SD2 single file with real H widths */
    tb_tower(f, 1, "cond_stage_model.model.", 1024, 64, 2, 8, 1024);
    tb_write(f, path);
    tb_free(f);
    CHECK_OK(clipskip_model_load(path, NULL, &m));
    REQUIRE(m);
    clipskip_model_tower_info(m, 0, &t0);
    CHECK(clipskip_model_pipeline(m) == CLIPSKIP_PIPELINE_SD2);
    CHECK(t0.family == CLIPSKIP_FAMILY_OPENCLIP_H && t0.default_clip_skip == 2 &&
          t0.default_final_ln == 1 && t0.pad_id == 0);
    clipskip_model_free(m);
    unlink(path);
    free(f);
}

int main(void) {
    snprintf(g_dir, sizeof g_dir, "/tmp/cs_model_XXXXXX");
    REQUIRE(mkdtemp(g_dir));
    test_bad_fixtures();
    test_shapes();
    test_config();
    test_families();
    rmdir(g_dir);
    TEST_DONE("model_errors");
}
