/* clipskip info FILE...: what the loader found in each file (towers, shapes, defaults). */
#include "clipskip.h"
#include "cmds.h"
#include "common.h"
#include "internal.h"
#include "opts.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>

static void print_text(const char *path, const clipskip_model *m) {
    int n = clipskip_model_n_towers(m);
    printf("%s\n  pipeline: %s, %d tower%s\n", path, cs_pipeline_name(clipskip_model_pipeline(m)), n,
           n == 1 ? "" : "s");
    for (int i = 0; i < n; i++) {
        clipskip_tower_info t;
        if (clipskip_model_tower_info(m, i, &t) != CLIPSKIP_OK) continue;
        printf("  tower %d:\n", i);
        printf("    family       %s\n", cs_family_name(t.family));
        printf("    layout       %s (prefix '%s')\n", t.layout, t.prefix);
        printf("    layers       %d\n", t.n_layers);
        printf("    width        %d\n", t.d_model);
        printf("    heads        %d (head dim %d)\n", t.n_heads,
               t.n_heads ? t.d_model / t.n_heads : 0);
        printf("    mlp width    %d\n", t.d_mlp);
        printf("    activation   %s\n", cs_act_name(t.act));
        printf("    vocab        %d\n", t.vocab);
        printf("    context      %d\n", t.context);
        if (t.proj_dim)
            printf("    projection   %d -> %d\n", t.d_model, t.proj_dim);
        else
            printf("    projection   none\n");
        printf("    dtype        %s\n", cs_dtype_name(t.file_dtype));
        printf("    parameters   %lld\n", (long long)t.n_params);
        printf("    clip skip    %d by default (1..%d; 1 = all layers)\n", t.default_clip_skip,
               t.n_layers);
        printf("    final LN     %s by default on the hidden-state output\n",
               t.default_final_ln ? "on" : "off");
        printf("    pad id       %d\n", t.pad_id);
        printf("    cleanup      %s by default\n", cs_clean_name(t.default_clean));
    }
}

static cJSON *tower_json(const clipskip_tower_info *t) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "family", cs_family_name(t->family));
    cJSON_AddStringToObject(o, "layout", t->layout);
    cJSON_AddStringToObject(o, "prefix", t->prefix);
    cJSON_AddNumberToObject(o, "n_layers", t->n_layers);
    cJSON_AddNumberToObject(o, "d_model", t->d_model);
    cJSON_AddNumberToObject(o, "n_heads", t->n_heads);
    cJSON_AddNumberToObject(o, "d_mlp", t->d_mlp);
    cJSON_AddStringToObject(o, "activation", cs_act_name(t->act));
    cJSON_AddNumberToObject(o, "vocab", t->vocab);
    cJSON_AddNumberToObject(o, "context", t->context);
    cJSON_AddNumberToObject(o, "proj_dim", t->proj_dim);
    cJSON_AddStringToObject(o, "dtype", cs_dtype_name(t->file_dtype));
    cJSON_AddNumberToObject(o, "n_params", (double)t->n_params);
    cJSON_AddNumberToObject(o, "default_clip_skip", t->default_clip_skip);
    cJSON_AddBoolToObject(o, "default_final_ln", t->default_final_ln != 0);
    cJSON_AddNumberToObject(o, "pad_id", t->pad_id);
    cJSON_AddStringToObject(o, "default_clean", cs_clean_name(t->default_clean));
    return o;
}

/* --backend: open an encoder for --batch prompts and run one pass of that many full-length rows
 * through every tower (hidden states), so that its activation buffers reach their size for a
 * full batch; then report the device and the memory it holds. */
typedef struct {
    int backend; /* index in "none|" CS_BACKEND_CHOICES: 0 = no encoder */
    int batch;
} info_enc;

static clipskip_status encoder_pass(clipskip_encoder *enc, const clipskip_model *m, int32_t rows) {
    clipskip_encode_options opt = clipskip_encode_default_options();
    opt.outputs = CLIPSKIP_OUT_HIDDEN;
    opt.tower = clipskip_model_n_towers(m) > 1 ? CLIPSKIP_TOWER_ALL : 0;
    int32_t hd = 0;
    clipskip_status st = clipskip_output_dims(m, &opt, &hd, NULL, NULL);
    if (st) return st;
    int32_t *ids = cs_malloc((size_t)rows * CLIPSKIP_CONTEXT * sizeof *ids);
    float *hidden = cs_malloc((size_t)rows * CLIPSKIP_CONTEXT * (size_t)hd * sizeof *hidden);
    if (!ids || !hidden) st = CLIPSKIP_ERR_NOMEM;
    for (size_t i = 0; !st && i < (size_t)rows * CLIPSKIP_CONTEXT; i++)
        ids[i] = i % CLIPSKIP_CONTEXT ? CLIPSKIP_EOS : CLIPSKIP_BOS; /* CLIP's empty prompt */
    clipskip_outputs out = {hidden, NULL, NULL};
    if (!st) st = clipskip_encode_ids(enc, ids, rows, &opt, &out);
    free(ids);
    free(hidden);
    return st;
}

/* Returns 0, or the exit code after printing the error. */
static int encoder_report(const clipskip_model *m, const info_enc *ie, cJSON *json) {
    clipskip_encoder_params p = clipskip_encoder_default_params();
    p.backend = (clipskip_backend)(ie->backend - 1);
    p.max_batch = ie->batch;
    clipskip_encoder *enc = NULL;
    clipskip_status st = clipskip_encoder_init(m, &p, &enc);
    if (!st) st = encoder_pass(enc, m, ie->batch);
    if (st) {
        cs_cli_error("info", st);
        clipskip_encoder_free(enc);
        return CS_EXIT_FAIL;
    }
    size_t wb = 0, ab = 0;
    clipskip_encoder_memory(enc, &wb, &ab);
    const char *be = clipskip_encoder_backend(enc) == CLIPSKIP_BACKEND_CUDA ? "cuda" : "cpu";
    const char *dev = clipskip_encoder_device(enc);
    if (json) {
        cJSON *o = cJSON_AddObjectToObject(json, "encoder");
        cJSON_AddStringToObject(o, "backend", be);
        cJSON_AddStringToObject(o, "device", dev);
        cJSON_AddNumberToObject(o, "max_batch", ie->batch);
        cJSON_AddNumberToObject(o, "weight_bytes", (double)wb);
        cJSON_AddNumberToObject(o, "activation_bytes", (double)ab);
    } else {
        printf("  encoder: %s (%s), max batch %d\n", be, dev, ie->batch);
        printf("    weights      %.1f MB\n", wb / 1e6);
        printf("    activations  %.1f MB after one pass of %d full-length prompts\n", ab / 1e6, ie->batch);
    }
    clipskip_encoder_free(enc);
    return 0;
}

static cJSON *model_json(const char *path, const clipskip_model *m) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "file", path);
    cJSON_AddStringToObject(o, "pipeline", cs_pipeline_name(clipskip_model_pipeline(m)));
    cJSON *towers = cJSON_AddArrayToObject(o, "towers");
    for (int i = 0; i < clipskip_model_n_towers(m); i++) {
        clipskip_tower_info t;
        if (clipskip_model_tower_info(m, i, &t) == CLIPSKIP_OK)
            cJSON_AddItemToArray(towers, tower_json(&t));
    }
    return o;
}

/* Describe one model (and its encoder with --backend); returns 0 or an exit code. */
static int info_one(const char *label, const clipskip_model *m, const info_enc *ie, cJSON *all) {
    cJSON *o = all ? model_json(label, m) : NULL;
    if (o) cJSON_AddItemToArray(all, o);
    else print_text(label, m);
    return ie->backend ? encoder_report(m, ie, o) : 0;
}

int cs_cmd_info(int argc, char **argv) {
    int json = 0, verbose = 1, random = 0;
    info_enc ie = {0, 64};
    const cs_opt opts[] = {
        {"json", CS_OPT_FLAG, &json, NULL, "print one JSON document (an array, one entry per file)",
         NULL, 0, 0},
        {"random", CS_OPT_CHOICE, &random, 0, "describe random weights of a real shape instead of FILE",
         CS_RANDOM_CHOICES, 0, 0},
        {"backend", CS_OPT_CHOICE, &ie.backend, 0, "also open an encoder there (auto = CUDA when usable), "
         "run one full batch and report its device and memory (none: only the file)",
         "none|" CS_BACKEND_CHOICES, 0, 0},
        {"batch", CS_OPT_INT, &ie.batch, "N", "with --backend: the encoder's max batch (its buffers' size)",
         NULL, 1, 65536},
        {NULL, 0, NULL, NULL, NULL, NULL, 0, 0},
    };
    const cs_cli cli = {"info", "[options] FILE...",
                        "Describe the CLIP text tower(s) in each model file: family, shapes, "
                        "activation, dtype, and the default clip skip, final LayerNorm, pad id "
                        "and text cleanup clipskip uses for them. With --backend, also the "
                        "memory an encoder for --batch prompts holds (device memory on CUDA).",
                        opts};
    char **pos = malloc(sizeof(char *) * (size_t)(argc > 0 ? argc : 1));
    int n_pos = 0, rc = pos ? cs_opts_parse(&cli, argc, argv, pos, &n_pos) : CS_EXIT_FAIL;
    if (rc >= 0) {
        free(pos);
        return rc;
    }
    if (n_pos == 0 && !random) {
        fprintf(stderr, "clipskip info: no FILE given (see clipskip info --help)\n");
        free(pos);
        return CS_EXIT_USAGE;
    }
    cJSON *all = json ? cJSON_CreateArray() : NULL;
    rc = CS_EXIT_OK;
    for (int i = 0; i < n_pos || (random && i == 0); i++) {
        char rname[32], cbuf[16];
        if (random)
            snprintf(rname, sizeof rname, "random %s",
                     cs_opt_choice_name(CS_RANDOM_CHOICES, random, cbuf, sizeof cbuf));
        const char *label = random ? rname : pos[i];
        clipskip_model *m = cs_cli_open_model("info", random ? NULL : pos[i], random, NULL, verbose);
        if (!m) {
            rc = CS_EXIT_FAIL;
            continue;
        }
        const int r = info_one(label, m, &ie, all);
        if (r) rc = r;
        clipskip_model_free(m);
        if (random) break;
    }
    if (json) {
        char *s = cJSON_Print(all);
        if (s) puts(s);
        cJSON_free(s);
        cJSON_Delete(all);
    }
    free(pos);
    return rc;
}
