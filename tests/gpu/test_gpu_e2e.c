/* End to end through the public API: the CUDA encoder against the CPU encoder.
 *  - every committed fixture (each .safetensors under tests/data/models except goldens and bad),
 *    every tower, every clip skip, final LN on and off, hidden + pooled + text_embeds;
 *  - a random ViT-L-shaped tower (12 x 768, built in memory): CPU vs CUDA F16, BF16 and the
 *    cuBLASLt path; batch invariance (a prompt alone and inside batches of 7, 64 and 513 gives
 *    bitwise identical rows); mixed depths in one batch bitwise equal to each row encoded alone;
 *    the memory report; programmatic dependent launch (sm_90+) changes no bit; running out of
 *    device memory is a CLIPSKIP_ERR_NOMEM the same encoder recovers from.
 * Relative Frobenius error per output tensor <= 2e-3 (ARCHITECTURE.md numerics contract) for
 * F16; BF16 gets 1e-2: its 8-bit mantissa makes one rounding of an activation 2^-9 ~ 2e-3
 * already, and a forward pass rounds every layer's activations several times. NaN never passes.
 * Exit 77 (SKIPPED) when no CUDA device is usable. CS_TEST_DATA in the environment overrides
 * the compiled-in data folder (a build carried to another machine). */
#include "backend.h"
#include "gpu_test_model.h"
#include "kernels.h"
#include "test_util.h"

#include <dirent.h>
#include <sys/stat.h>

#define TOL_F16 2e-3
#define TOL_BF16 1e-2

typedef struct {
    float *hidden, *pooled, *embeds;
    int32_t hd, pd, ed, rows;
} outs;

static clipskip_encoder_params enc_params(clipskip_backend b, clipskip_dtype dt, clipskip_gemm g,
                                          int max_batch) {
    clipskip_encoder_params p = clipskip_encoder_default_params();
    p.backend = b;
    p.compute_dtype = dt;
    p.gemm = g;
    p.max_batch = max_batch;
    return p;
}

static clipskip_encoder *enc_make(const clipskip_model *m, clipskip_backend b, clipskip_dtype dt,
                                  clipskip_gemm g, int max_batch) {
    const clipskip_encoder_params p = enc_params(b, dt, g, max_batch);
    clipskip_encoder *e = NULL;
    CHECK_OK(clipskip_encoder_init(m, &p, &e));
    return e;
}

static void outs_alloc(outs *o, const clipskip_model *m, const clipskip_encode_options *opt, int32_t rows) {
    memset(o, 0, sizeof *o);
    CHECK_OK(clipskip_output_dims(m, opt, &o->hd, &o->pd, &o->ed));
    o->rows = rows;
    o->hidden = calloc((size_t)rows * CLIPSKIP_CONTEXT * (o->hd ? o->hd : 1), sizeof(float));
    o->pooled = calloc((size_t)rows * (o->pd ? o->pd : 1), sizeof(float));
    o->embeds = calloc((size_t)rows * (o->ed ? o->ed : 1), sizeof(float));
}

static void outs_free(outs *o) {
    free(o->hidden);
    free(o->pooled);
    free(o->embeds);
}

static clipskip_status encode(clipskip_encoder *e, const int32_t *ids, int32_t rows,
                              const clipskip_encode_options *opt, outs *o) {
    /* poison: an output the encoder forgets to write must not pass */
    const size_t nh = (size_t)rows * CLIPSKIP_CONTEXT * o->hd, np = (size_t)rows * o->pd,
                 ne = (size_t)rows * o->ed;
    for (size_t i = 0; i < nh; i++) o->hidden[i] = NAN;
    for (size_t i = 0; i < np; i++) o->pooled[i] = NAN;
    for (size_t i = 0; i < ne; i++) o->embeds[i] = NAN;
    clipskip_outputs out = {(opt->outputs & CLIPSKIP_OUT_HIDDEN) ? o->hidden : NULL,
                            (opt->outputs & CLIPSKIP_OUT_POOLED) ? o->pooled : NULL,
                            (opt->outputs & CLIPSKIP_OUT_TEXT_EMBEDS) ? o->embeds : NULL};
    return clipskip_encode_ids(e, ids, rows, opt, &out);
}

static void compare(const char *what, const outs *ref, const outs *got, uint32_t outputs, double tol) {
    const float *r[3] = {ref->hidden, ref->pooled, ref->embeds}, *g[3] = {got->hidden, got->pooled, got->embeds};
    const size_t n[3] = {(size_t)ref->rows * CLIPSKIP_CONTEXT * ref->hd, (size_t)ref->rows * ref->pd,
                         (size_t)ref->rows * ref->ed};
    static const char *names[3] = {"hidden", "pooled", "text_embeds"};
    for (int i = 0; i < 3; i++) {
        if (!(outputs & (1u << i)) || n[i] == 0) continue;
        const double err = tm_rel_err(r[i], g[i], n[i]);
        const int ok = err <= tol;
        if (!ok || getenv("CS_TEST_VERBOSE"))
            printf("  %-5s %s %s: rel err %.3e (tol %.0e)\n", ok ? "ok" : "FAIL", what, names[i], err, tol);
        if (!ok) cs_test_failures++;
    }
}

/* rows of ids for a tower: BOS, content, EOS, pad (random lengths), or random ids when the
 * tower's vocabulary has no BOS/EOS. */
static int32_t *make_ids(const clipskip_tower_info *in, int32_t rows) {
    int32_t *ids = malloc((size_t)rows * CLIPSKIP_CONTEXT * sizeof(int32_t));
    for (int32_t r = 0; r < rows; r++) {
        int32_t *row = ids + (size_t)r * CLIPSKIP_CONTEXT;
        if (in->vocab <= CLIPSKIP_EOS) {
            for (int i = 0; i < CLIPSKIP_CONTEXT; i++) row[i] = tm_int(in->vocab);
            continue;
        }
        const int n = tm_int(CLIPSKIP_MAX_CONTENT + 1);
        row[0] = CLIPSKIP_BOS;
        for (int i = 1; i <= n; i++) row[i] = tm_int(CLIPSKIP_BOS);
        row[n + 1] = CLIPSKIP_EOS;
        for (int i = n + 2; i < CLIPSKIP_CONTEXT; i++) row[i] = in->pad_id;
    }
    return ids;
}

static void fixture_tower(const char *path, const clipskip_model *m, int tower, clipskip_encoder *cpu,
                          clipskip_encoder *gpu, clipskip_encoder *lt) {
    clipskip_tower_info in;
    CHECK_OK(clipskip_model_tower_info(m, tower, &in));
    const int32_t rows = 3;
    int32_t *ids = make_ids(&in, rows);
    clipskip_encode_options opt = clipskip_encode_default_options();
    opt.tower = tower;
    opt.outputs = CLIPSKIP_OUT_HIDDEN | CLIPSKIP_OUT_POOLED | (in.proj_dim ? CLIPSKIP_OUT_TEXT_EMBEDS : 0);
    outs rc, rg;
    outs_alloc(&rc, m, &opt, rows);
    outs_alloc(&rg, m, &opt, rows);
    for (int skip = 1; skip <= in.n_layers; skip++)
        for (int ln = CLIPSKIP_FINAL_LN_ON; ln <= CLIPSKIP_FINAL_LN_OFF; ln++) {
            opt.row.clip_skip = skip;
            opt.row.final_ln = (clipskip_final_ln)ln;
            char what[512];
            snprintf(what, sizeof what, "%s tower %d skip %d final_ln %s", path, tower, skip,
                     ln == CLIPSKIP_FINAL_LN_ON ? "on" : "off");
            CHECK_OK(encode(cpu, ids, rows, &opt, &rc));
            CHECK_OK(encode(gpu, ids, rows, &opt, &rg));
            compare(what, &rc, &rg, opt.outputs, TOL_F16);
            if (lt && skip == 1) {
                CHECK_OK(encode(lt, ids, rows, &opt, &rg));
                strncat(what, " cublaslt", sizeof what - strlen(what) - 1);
                compare(what, &rc, &rg, opt.outputs, TOL_F16);
            }
        }
    printf("  done  %s tower %d (%d layers, D=%d, %d heads)\n", path, tower, in.n_layers, in.d_model, in.n_heads);
    outs_free(&rc);
    outs_free(&rg);
    free(ids);
}

static void test_fixture(const char *path) {
    clipskip_model *m = NULL;
    if (clipskip_model_load(path, NULL, &m) != CLIPSKIP_OK) {
        printf("  note  %s: not loaded (%s), skipped\n", path, clipskip_last_error());
        return;
    }
    clipskip_encoder *cpu = enc_make(m, CLIPSKIP_BACKEND_CPU, CLIPSKIP_DTYPE_F16, CLIPSKIP_GEMM_NATIVE, 8);
    clipskip_encoder *gpu = enc_make(m, CLIPSKIP_BACKEND_CUDA, CLIPSKIP_DTYPE_F16, CLIPSKIP_GEMM_NATIVE, 8);
    clipskip_encoder *lt = /* cuBLASLt is not emulated */
        TM_EMU ? NULL : enc_make(m, CLIPSKIP_BACKEND_CUDA, CLIPSKIP_DTYPE_F16, CLIPSKIP_GEMM_CUBLASLT, 8);
    if (cpu && gpu)
        for (int t = 0; t < clipskip_model_n_towers(m); t++) fixture_tower(path, m, t, cpu, gpu, lt);
    if (lt) clipskip_encoder_free(lt);
    clipskip_encoder_free(gpu);
    clipskip_encoder_free(cpu);
    clipskip_model_free(m);
}

static int ends_with(const char *s, const char *suf) {
    const size_t a = strlen(s), b = strlen(suf);
    return a >= b && !strcmp(s + a - b, suf);
}

/* Every *.safetensors under dir except goldens and the bad/ folders. */
static void scan(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.' || !strcmp(e->d_name, "bad")) continue;
        char p[4096];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        struct stat st;
        if (stat(p, &st) != 0) continue;
        if (S_ISDIR(st.st_mode)) scan(p);
        else if (ends_with(p, ".safetensors") && !strstr(e->d_name, ".goldens.")) test_fixture(p);
    }
    closedir(d);
}

/* ---- the random ViT-L tower */

static void vitl_vs_cpu(const clipskip_model *m, clipskip_encoder *cpu, clipskip_encoder *gpu,
                        clipskip_encoder *bf, clipskip_encoder *lt) {
    const int32_t rows = 3;
    int32_t *ids = make_ids(&m->towers[0].info, rows);
    clipskip_encode_options opt = clipskip_encode_default_options();
    opt.outputs = CLIPSKIP_OUT_HIDDEN | CLIPSKIP_OUT_POOLED | CLIPSKIP_OUT_TEXT_EMBEDS;
    outs rc, rg;
    outs_alloc(&rc, m, &opt, rows);
    outs_alloc(&rg, m, &opt, rows);
    const int skips[3] = {1, 2, 12};
    for (int s = 0; s < 3; s++)
        for (int ln = CLIPSKIP_FINAL_LN_ON; ln <= CLIPSKIP_FINAL_LN_OFF; ln++) {
            opt.row.clip_skip = skips[s];
            opt.row.final_ln = (clipskip_final_ln)ln;
            char what[128];
            CHECK_OK(encode(cpu, ids, rows, &opt, &rc));
            snprintf(what, sizeof what, "vit-l skip %d ln %d f16", skips[s], ln);
            CHECK_OK(encode(gpu, ids, rows, &opt, &rg));
            compare(what, &rc, &rg, opt.outputs, TOL_F16);
            snprintf(what, sizeof what, "vit-l skip %d ln %d bf16", skips[s], ln);
            CHECK_OK(encode(bf, ids, rows, &opt, &rg));
            compare(what, &rc, &rg, opt.outputs, TOL_BF16);
            if (!lt) continue;
            snprintf(what, sizeof what, "vit-l skip %d ln %d cublaslt", skips[s], ln);
            CHECK_OK(encode(lt, ids, rows, &opt, &rg));
            compare(what, &rc, &rg, opt.outputs, TOL_F16);
        }
    printf("  done  vit-l CPU vs CUDA f16 / bf16%s\n", lt ? " / cublaslt" : " (cuBLASLt not emulated)");
    outs_free(&rc);
    outs_free(&rg);
    free(ids);
}

/* Row r of o equals row 0 of a, bitwise, in every output. */
static size_t row_diff(const outs *a, const outs *o, int32_t r) {
    size_t bad = 0;
    bad += memcmp(a->hidden, o->hidden + (size_t)r * CLIPSKIP_CONTEXT * o->hd,
                  (size_t)CLIPSKIP_CONTEXT * o->hd * sizeof(float)) != 0;
    bad += memcmp(a->pooled, o->pooled + (size_t)r * o->pd, (size_t)o->pd * sizeof(float)) != 0;
    bad += memcmp(a->embeds, o->embeds + (size_t)r * o->ed, (size_t)o->ed * sizeof(float)) != 0;
    return bad;
}

/* Every row of got against the same row of ref (same shapes), bitwise, in every output. */
static size_t batch_diff(const outs *ref, const outs *got, int32_t rows) {
    size_t bad = 0;
    for (int32_t r = 0; r < rows; r++) {
        outs one = *ref;
        one.hidden += (size_t)r * CLIPSKIP_CONTEXT * ref->hd;
        one.pooled += (size_t)r * ref->pd;
        one.embeds += (size_t)r * ref->ed;
        bad += row_diff(&one, got, r);
    }
    return bad;
}

static void vitl_batch_invariance(const clipskip_model *m, clipskip_encoder *gpu, int skip, int ln) {
    /* on the emulator's 8 SMs the tile pick reaches 128x128 from 12 prompts on */
    const int32_t sizes[4] = {1, 7, TM_EMU ? 16 : 64, TM_EMU ? 40 : 513},
                  where[4] = {0, 3, TM_EMU ? 10 : 40, TM_EMU ? 30 : 300};
    clipskip_encode_options opt = clipskip_encode_default_options();
    opt.outputs = CLIPSKIP_OUT_HIDDEN | CLIPSKIP_OUT_POOLED | CLIPSKIP_OUT_TEXT_EMBEDS;
    opt.row.clip_skip = skip;
    opt.row.final_ln = (clipskip_final_ln)ln;
    int32_t *ids = make_ids(&m->towers[0].info, 513), *probe = make_ids(&m->towers[0].info, 1);
    outs alone, batch;
    outs_alloc(&alone, m, &opt, 1);
    outs_alloc(&batch, m, &opt, 513);
    CHECK_OK(encode(gpu, probe, 1, &opt, &alone));
    size_t bad = 0;
    for (int s = 0; s < 4; s++) {
        memcpy(ids + (size_t)where[s] * CLIPSKIP_CONTEXT, probe, CLIPSKIP_CONTEXT * sizeof(int32_t));
        batch.rows = sizes[s];
        CHECK_OK(encode(gpu, ids, sizes[s], &opt, &batch));
        bad += row_diff(&alone, &batch, where[s]);
        CHECK_OK(encode(gpu, ids, sizes[s], &opt, &batch)); /* again: now from a captured graph */
        bad += row_diff(&alone, &batch, where[s]);
    }
    printf("  %-5s vit-l batch invariance skip %d final_ln %d: %zu differing outputs (batches 1, 7, %d, %d)\n",
           bad ? "FAIL" : "ok", skip, ln, bad, sizes[2], sizes[3]);
    if (bad) cs_test_failures++;
    outs_free(&alone);
    outs_free(&batch);
    free(ids);
    free(probe);
}

static void vitl_mixed_depths(const clipskip_model *m, clipskip_encoder *gpu) {
    const int32_t rows = 8;
    clipskip_row_options per[8] = {{1, CLIPSKIP_FINAL_LN_ON}, {2, CLIPSKIP_FINAL_LN_OFF}, {3, CLIPSKIP_FINAL_LN_ON},
                                   {12, CLIPSKIP_FINAL_LN_OFF}, {5, CLIPSKIP_FINAL_LN_ON}, {1, CLIPSKIP_FINAL_LN_OFF},
                                   {7, CLIPSKIP_FINAL_LN_ON}, {2, CLIPSKIP_FINAL_LN_ON}};
    int32_t *ids = make_ids(&m->towers[0].info, rows);
    clipskip_encode_options opt = clipskip_encode_default_options();
    opt.outputs = CLIPSKIP_OUT_HIDDEN | CLIPSKIP_OUT_POOLED | CLIPSKIP_OUT_TEXT_EMBEDS;
    opt.per_row = per;
    outs mixed, one;
    outs_alloc(&mixed, m, &opt, rows);
    outs_alloc(&one, m, &opt, 1);
    CHECK_OK(encode(gpu, ids, rows, &opt, &mixed));
    size_t bad = 0;
    for (int32_t r = 0; r < rows; r++) {
        clipskip_encode_options o1 = opt;
        o1.per_row = NULL;
        o1.row = per[r];
        CHECK_OK(encode(gpu, ids + (size_t)r * CLIPSKIP_CONTEXT, 1, &o1, &one));
        bad += row_diff(&one, &mixed, r);
    }
    printf("  %-5s vit-l mixed depths: %zu rows differ from the same row encoded alone\n", bad ? "FAIL" : "ok", bad);
    if (bad) cs_test_failures++;
    outs_free(&mixed);
    outs_free(&one);
    free(ids);
}

/* An F16 CUDA encoder for max_batch rows opened with names[i]=values[i] in the environment
 * (restored after: the experiment switches are read when an encoder opens). NULL when the
 * backend refuses them as unsupported here, which is printed as a skip of `what`. */
static clipskip_encoder *enc_with_env(const clipskip_model *m, int max_batch, const char *what, int n,
                                      const char *const *names, const char *const *values) {
    char saved[4][64];
    int had[4];
    REQUIRE(n <= 4);
    for (int i = 0; i < n; i++) {
        const char *v = getenv(names[i]);
        had[i] = v != NULL;
        snprintf(saved[i], sizeof saved[i], "%s", v ? v : "");
        setenv(names[i], values[i], 1);
    }
    const clipskip_encoder_params p =
        enc_params(CLIPSKIP_BACKEND_CUDA, CLIPSKIP_DTYPE_F16, CLIPSKIP_GEMM_NATIVE, max_batch);
    clipskip_encoder *e = NULL;
    const clipskip_status st = clipskip_encoder_init(m, &p, &e);
    for (int i = 0; i < n; i++) {
        if (had[i]) setenv(names[i], saved[i], 1);
        else unsetenv(names[i]);
    }
    if (st == CLIPSKIP_ERR_UNSUPPORTED) {
        printf("  skip  %s: %s\n", what, clipskip_last_error());
        return NULL;
    }
    CHECK_OK(st);
    return e;
}

/* Downloads overlapped with the next pass (CLIPSKIP_CUDA_OVERLAP=1, passes of 16 rows): into
 * page-locked outputs (the only ones that take the outbox), rows at mixed depths with and
 * without the final LN (so both the f32 residual copies and the converted LN outputs go
 * through it, some in the middle of a pass), the same bits as `gpu`, three times (direct, graphs
 * captured on the second use of a key, replayed). */
static void vitl_overlap_same_bits(const clipskip_model *m, clipskip_encoder *gpu) {
    const int32_t rows = TM_EMU ? 40 : 64; /* passes of 16: two full, one part */
    clipskip_row_options per[64];
    for (int i = 0; i < rows; i++)
        per[i] = (clipskip_row_options){1 + (i * 5) % 12, i % 3 ? CLIPSKIP_FINAL_LN_OFF : CLIPSKIP_FINAL_LN_ON};
    clipskip_encode_options opt = clipskip_encode_default_options();
    opt.outputs = CLIPSKIP_OUT_HIDDEN | CLIPSKIP_OUT_POOLED | CLIPSKIP_OUT_TEXT_EMBEDS;
    opt.per_row = per;
    int32_t *ids = make_ids(&m->towers[0].info, rows);
    outs ref, got;
    outs_alloc(&ref, m, &opt, rows);
    CHECK_OK(encode(gpu, ids, rows, &opt, &ref));
    static const char *const names[] = {"CLIPSKIP_CUDA_OVERLAP", "CLIPSKIP_PASS_ROWS"},
                             *const values[] = {"1", "16"};
    clipskip_encoder *e = enc_with_env(m, rows, "vit-l overlapped downloads", 2, names, values);
    if (e) {
        got = ref; /* the shapes; the buffers are the encoder's page-locked ones */
        got.hidden = clipskip_host_alloc(e, (size_t)rows * CLIPSKIP_CONTEXT * ref.hd * sizeof(float));
        got.pooled = clipskip_host_alloc(e, (size_t)rows * ref.pd * sizeof(float));
        got.embeds = clipskip_host_alloc(e, (size_t)rows * ref.ed * sizeof(float));
        REQUIRE(got.hidden && got.pooled && got.embeds);
        size_t bad = 0;
        for (int run = 0; run < 3; run++) {
            CHECK_OK(encode(e, ids, rows, &opt, &got));
            bad += batch_diff(&ref, &got, rows);
        }
        printf("  %-5s vit-l overlapped downloads (passes of 16, pinned outputs), 3 runs: %zu "
               "differing outputs\n", bad ? "FAIL" : "ok", bad);
        if (bad) cs_test_failures++;
        clipskip_host_free(e, got.hidden);
        clipskip_host_free(e, got.pooled);
        clipskip_host_free(e, got.embeds);
        clipskip_encoder_free(e);
    }
    outs_free(&ref);
    free(ids);
}

/* A batch of `rows` random prompts at clip skip 2 with every output, and `gpu`'s outputs for
 * it (ref): what an encoder opened with an experiment switch must reproduce bit for bit. */
typedef struct {
    int32_t rows;
    clipskip_encode_options opt;
    int32_t *ids;
    outs ref, got;
} same_bits;

static void same_bits_open(same_bits *c, const clipskip_model *m, clipskip_encoder *gpu, int32_t rows) {
    c->rows = rows;
    c->opt = clipskip_encode_default_options();
    c->opt.outputs = CLIPSKIP_OUT_HIDDEN | CLIPSKIP_OUT_POOLED | CLIPSKIP_OUT_TEXT_EMBEDS;
    c->opt.row.clip_skip = 2;
    c->ids = make_ids(&m->towers[0].info, rows);
    outs_alloc(&c->ref, m, &c->opt, rows);
    outs_alloc(&c->got, m, &c->opt, rows);
    CHECK_OK(encode(gpu, c->ids, rows, &c->opt, &c->ref));
}

/* Encodes the batch with e; returns how many outputs differ from ref. */
static size_t same_bits_run(same_bits *c, clipskip_encoder *e) {
    CHECK_OK(encode(e, c->ids, c->rows, &c->opt, &c->got));
    return batch_diff(&c->ref, &c->got, c->rows);
}

static void same_bits_close(same_bits *c) {
    outs_free(&c->ref);
    outs_free(&c->got);
    free(c->ids);
}

/* The launch experiments change when kernels start, never a bit: an encoder opened with
 * CLIPSKIP_CUDA_PDL=1 (programmatic dependent launch, sm_90+) gives the same outputs as `gpu`
 * for a batch of 64, from a direct run and from its captured graph. */
static void vitl_pdl_same_bits(const clipskip_model *m, clipskip_encoder *gpu) {
    same_bits c;
    same_bits_open(&c, m, gpu, TM_EMU ? 16 : 64);
    static const char *const names[] = {"CLIPSKIP_CUDA_PDL"}, *const values[] = {"1"};
    clipskip_encoder *e = enc_with_env(m, c.rows, "vit-l PDL", 1, names, values);
    if (!e) {
        same_bits_close(&c);
        return;
    }
    size_t bad = 0;
    for (int run = 0; run < 2; run++) bad += same_bits_run(&c, e); /* the second from the captured graph */
    printf("  %-5s vit-l PDL on == off, batch %d, direct and graph: %zu differing outputs\n",
           bad ? "FAIL" : "ok", c.rows, bad);
    if (bad) cs_test_failures++;
    /* the setting is the encoder's own: `gpu` still launches with its own (off unless the
     * whole process runs with CLIPSKIP_CUDA_PDL=1, as check.sh's variants may), bitwise the same */
    const char *env_pdl = getenv("CLIPSKIP_CUDA_PDL");
    const int want = env_pdl && !strcmp(env_pdl, "1");
    const size_t bad_off = same_bits_run(&c, gpu);
    const int gpu_pdl = cs_k_pdl();
    const int leaked = gpu_pdl != want || bad_off;
    printf("  %-5s vit-l PDL stays with its encoder: the other encoder runs with it %s (its own "
           "setting: %s), %zu differing outputs\n", leaked ? "FAIL" : "ok", gpu_pdl ? "on" : "off",
           want ? "on" : "off", bad_off);
    if (leaked) cs_test_failures++;
    clipskip_encoder_free(e);
    same_bits_close(&c);
}

/* The fused layer kernel turns itself off when CUDA refuses its cooperative grid (an MPS
 * client's SM limit; the emulator's CS_EMU_COOP_SMS=1 gives that): the first run goes fused,
 * then the limit comes and the second run's launch is refused while its graph is being
 * captured, the third captures the separate kernels, the fourth replays them; every run the
 * same bits as `gpu`, and the device name says the fused kernel is off. Emulator only. */
static void vitl_fused_refused(const clipskip_model *m, clipskip_encoder *gpu) {
    if (!TM_EMU) return;
    same_bits c;
    same_bits_open(&c, m, gpu, 3);
    static const char *const names[] = {"CLIPSKIP_CUDA_FUSED_LAYER"}, *const values[] = {"8"};
    clipskip_encoder *e = enc_with_env(m, c.rows, "vit-l fused layers refused", 1, names, values);
    REQUIRE(e);
    size_t bad = same_bits_run(&c, e);
    const int on_before = strstr(clipskip_encoder_device(e), "fused layers off") == NULL;
    setenv("CS_EMU_COOP_SMS", "1", 1);
    for (int run = 0; run < 3; run++) bad += same_bits_run(&c, e);
    unsetenv("CS_EMU_COOP_SMS");
    const int off_after = strstr(clipskip_encoder_device(e), "fused layers off") != NULL;
    const int ok = !bad && on_before && off_after;
    printf("  %-5s vit-l fused layers refused mid-capture: %zu differing outputs over 4 runs, device "
           "\"%s\"\n", ok ? "ok" : "FAIL", bad, clipskip_encoder_device(e));
    if (!ok) cs_test_failures++;
    clipskip_encoder_free(e);
    same_bits_close(&c);
}

/* Out of device memory is an error the caller can act on: an encoder made for 400000 prompts
 * (their activations alone need well over an H200's 141 GB) fails the full-batch call with
 * CLIPSKIP_ERR_NOMEM, then encodes a small batch bitwise like `gpu` does. Pooled output only,
 * so the host side stays small. */
static void vitl_oom(const clipskip_model *m, clipskip_encoder *gpu) {
    const int32_t big = 400000, small = 2;
    if (getenv("CLIPSKIP_PASS_ROWS")) { /* passes sized by it: the big call fits, and runs */
        printf("  skip  vit-l out of memory: CLIPSKIP_PASS_ROWS is set\n");
        return;
    }
    clipskip_encoder_params p = clipskip_encoder_default_params();
    p.backend = CLIPSKIP_BACKEND_CUDA;
    p.max_batch = big;
    clipskip_encoder *e = NULL;
    clipskip_status st = clipskip_encoder_init(m, &p, &e);
    if (st != CLIPSKIP_OK) { /* refusing at init is acting on it too */
        printf("  %-5s vit-l max_batch %d: init %s: %s\n", st == CLIPSKIP_ERR_NOMEM ? "ok" : "FAIL", big,
               clipskip_status_str(st), clipskip_last_error());
        if (st != CLIPSKIP_ERR_NOMEM) cs_test_failures++;
        return;
    }
    clipskip_encode_options opt = clipskip_encode_default_options();
    opt.outputs = CLIPSKIP_OUT_POOLED;
    int32_t *ids = malloc((size_t)big * CLIPSKIP_CONTEXT * sizeof(int32_t));
    float *pooled = malloc((size_t)big * m->towers[0].info.d_model * sizeof(float));
    REQUIRE(ids && pooled);
    for (size_t i = 0; i < (size_t)big * CLIPSKIP_CONTEXT; i++) {
        const size_t j = i % CLIPSKIP_CONTEXT;
        ids[i] = j == 0 ? CLIPSKIP_BOS : j == CLIPSKIP_CONTEXT - 1 ? CLIPSKIP_EOS : (int32_t)(j * 7);
    }
    clipskip_outputs out = {NULL, pooled, NULL};
    st = clipskip_encode_ids(e, ids, big, &opt, &out);
    printf("  %-5s vit-l %d prompts on one encoder: %s: %s\n", st == CLIPSKIP_ERR_NOMEM ? "ok" : "FAIL", big,
           clipskip_status_str(st), st ? clipskip_last_error() : "(no error)");
    if (st != CLIPSKIP_ERR_NOMEM) cs_test_failures++;
    free(pooled);
    free(ids);
    /* the same encoder, afterwards: a small batch, bitwise as the other encoder gives it */
    opt.outputs = CLIPSKIP_OUT_HIDDEN | CLIPSKIP_OUT_POOLED | CLIPSKIP_OUT_TEXT_EMBEDS;
    int32_t *sids = make_ids(&m->towers[0].info, small);
    outs ref, got;
    outs_alloc(&ref, m, &opt, small);
    outs_alloc(&got, m, &opt, small);
    CHECK_OK(encode(gpu, sids, small, &opt, &ref));
    st = encode(e, sids, small, &opt, &got);
    const size_t bad = st != CLIPSKIP_OK ? 1 : batch_diff(&ref, &got, small);
    printf("  %-5s vit-l after the failed call: %d prompts %s\n", bad ? "FAIL" : "ok", small,
           st ? clipskip_last_error() : bad ? "differ from another encoder's" : "bitwise as another encoder's");
    if (bad) cs_test_failures++;
    outs_free(&ref);
    outs_free(&got);
    free(sids);
    clipskip_encoder_free(e);
}

/* CLIP-L's text tower (random weights). On the emulator (TM_EMU) a tower with its depth (12
 * layers, so every clip skip the checks use exists) but 64 wide with one head (several heads:
 * two_widths_vs_cpu and the fixtures), and no cuBLASLt (not emulated); the labels still say
 * vit-l. */
static void test_vitl(void) {
    const tm_shape s = TM_EMU ? (tm_shape){12, 64, 1, 256, CLIPSKIP_VOCAB, 64, CLIPSKIP_ACT_QUICK_GELU,
                                           CLIPSKIP_DTYPE_F16, 1}
                              : (tm_shape){12, 768, 12, 3072, CLIPSKIP_VOCAB, 768, CLIPSKIP_ACT_QUICK_GELU,
                                           CLIPSKIP_DTYPE_F16, 1};
    clipskip_model *m = tm_make(&s);
    clipskip_encoder *cpu = enc_make(m, CLIPSKIP_BACKEND_CPU, CLIPSKIP_DTYPE_F16, CLIPSKIP_GEMM_NATIVE, 4);
    clipskip_encoder *gpu = enc_make(m, CLIPSKIP_BACKEND_CUDA, CLIPSKIP_DTYPE_F16, CLIPSKIP_GEMM_NATIVE, 513);
    clipskip_encoder *bf = enc_make(m, CLIPSKIP_BACKEND_CUDA, CLIPSKIP_DTYPE_BF16, CLIPSKIP_GEMM_NATIVE, 8);
    clipskip_encoder *lt =
        TM_EMU ? NULL : enc_make(m, CLIPSKIP_BACKEND_CUDA, CLIPSKIP_DTYPE_F16, CLIPSKIP_GEMM_CUBLASLT, 8);
    REQUIRE(cpu && gpu && bf && (lt || TM_EMU));
    CHECK(clipskip_encoder_backend(gpu) == CLIPSKIP_BACKEND_CUDA);
    size_t wb = 0, ab = 0;
    clipskip_encoder_memory(gpu, &wb, &ab);
    /* the matmul weights in F16 at least: 84.9 M for CLIP-L */
    const size_t wmin = (size_t)s.n_layers * (12u * s.d * s.d) * 2u;
    printf("  %-5s vit-l on %s: weights %.1f MB, activations %.1f MB\n", wb >= wmin ? "ok" : "FAIL",
           clipskip_encoder_device(gpu), wb / 1e6, ab / 1e6);
    CHECK(wb >= wmin);
    vitl_vs_cpu(m, cpu, gpu, bf, lt);
    vitl_batch_invariance(m, gpu, 1, CLIPSKIP_FINAL_LN_ON);
    vitl_batch_invariance(m, gpu, 2, CLIPSKIP_FINAL_LN_OFF);
    vitl_mixed_depths(m, gpu);
    vitl_pdl_same_bits(m, gpu);
    vitl_overlap_same_bits(m, gpu);
    vitl_fused_refused(m, gpu);
    vitl_oom(m, gpu);
    if (lt) clipskip_encoder_free(lt);
    clipskip_encoder_free(bf);
    clipskip_encoder_free(gpu);
    clipskip_encoder_free(cpu);
    tm_free(m);
}

/* Towers of different widths in one model, as in real SDXL (768 + 1280): both at once
 * (CLIPSKIP_TOWER_ALL) with rows at mixed clip skips, so passes repack their rows between
 * layers at each tower's own width; CUDA against the CPU encoder. */
static void two_widths_vs_cpu(void) {
    const tm_shape s0 = {3, 64, 1, 256, CLIPSKIP_VOCAB, 0, CLIPSKIP_ACT_QUICK_GELU, CLIPSKIP_DTYPE_F16, 1};
    const tm_shape s1 = {4, 128, 2, 512, CLIPSKIP_VOCAB, 32, CLIPSKIP_ACT_GELU, CLIPSKIP_DTYPE_F16, 1};
    clipskip_model *a = tm_make(&s0), *b = tm_make(&s1);
    clipskip_model two = tm_two_towers(a, b);
    clipskip_encoder *cpu = enc_make(&two, CLIPSKIP_BACKEND_CPU, CLIPSKIP_DTYPE_F16, CLIPSKIP_GEMM_NATIVE, 8);
    clipskip_encoder *gpu = enc_make(&two, CLIPSKIP_BACKEND_CUDA, CLIPSKIP_DTYPE_F16, CLIPSKIP_GEMM_NATIVE, 8);
    REQUIRE(cpu && gpu);
    const int32_t rows = 6;
    clipskip_row_options per[6];
    for (int i = 0; i < rows; i++)
        per[i] = (clipskip_row_options){1 + i % 3, i % 2 ? CLIPSKIP_FINAL_LN_ON : CLIPSKIP_FINAL_LN_OFF};
    clipskip_encode_options opt = clipskip_encode_default_options();
    opt.tower = CLIPSKIP_TOWER_ALL;
    opt.outputs = CLIPSKIP_OUT_HIDDEN | CLIPSKIP_OUT_POOLED | CLIPSKIP_OUT_TEXT_EMBEDS;
    opt.per_row = per;
    int32_t *ids = make_ids(&two.towers[0].info, rows);
    outs rc, rg;
    outs_alloc(&rc, &two, &opt, rows);
    outs_alloc(&rg, &two, &opt, rows);
    CHECK_OK(encode(cpu, ids, rows, &opt, &rc));
    CHECK_OK(encode(gpu, ids, rows, &opt, &rg));
    compare("towers 64 + 128 wide, mixed clip skips", &rc, &rg, opt.outputs, TOL_F16);
    printf("  done  two towers of different widths, CPU vs CUDA (hidden %d wide)\n", rc.hd);
    outs_free(&rc);
    outs_free(&rg);
    free(ids);
    clipskip_encoder_free(gpu);
    clipskip_encoder_free(cpu);
    tm_free(a);
    tm_free(b);
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0); /* lines reach check.sh's log even if it times out */
    if (!cs_cuda_available()) {
        printf("SKIPPED: no usable CUDA device\n");
        return 77;
    }
    tm_seed();
    const char *data = getenv("CS_TEST_DATA") ? getenv("CS_TEST_DATA") : CS_TEST_DATA;
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/models", data);
    printf("fixtures under %s\n", dir);
    scan(dir);
    two_widths_vs_cpu();
    test_vitl();
    TEST_DONE("test_gpu_e2e");
}
