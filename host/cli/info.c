/* clipskip info FILE...: what the loader found in each file (towers, shapes, defaults). */
#include "clipskip.h"
#include "cmds.h"
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

int cs_cmd_info(int argc, char **argv) {
    int json = 0, verbose = 1;
    const cs_opt opts[] = {
        {"json", CS_OPT_FLAG, &json, NULL, "print one JSON document (an array, one entry per file)",
         NULL, 0, 0},
        {NULL, 0, NULL, NULL, NULL, NULL, 0, 0},
    };
    const cs_cli cli = {"info", "[options] FILE...",
                        "Describe the CLIP text tower(s) in each model file: family, shapes, "
                        "activation, dtype, and the default clip skip, final LayerNorm, pad id "
                        "and text cleanup clipskip uses for them.",
                        opts};
    char **pos = malloc(sizeof(char *) * (size_t)(argc > 0 ? argc : 1));
    int n_pos = 0, rc = pos ? cs_opts_parse(&cli, argc, argv, pos, &n_pos) : CS_EXIT_FAIL;
    if (rc >= 0) {
        free(pos);
        return rc;
    }
    if (n_pos == 0) {
        fprintf(stderr, "clipskip info: no FILE given (see clipskip info --help)\n");
        free(pos);
        return CS_EXIT_USAGE;
    }
    cJSON *all = json ? cJSON_CreateArray() : NULL;
    rc = CS_EXIT_OK;
    clipskip_model_params mp = clipskip_model_default_params();
    mp.verbose = verbose;
    for (int i = 0; i < n_pos; i++) {
        clipskip_model *m;
        if (clipskip_model_load(pos[i], &mp, &m) != CLIPSKIP_OK) {
            fprintf(stderr, "clipskip info: %s: %s\n", clipskip_status_str(clipskip_last_status()),
                    clipskip_last_error());
            rc = CS_EXIT_FAIL;
            continue;
        }
        if (json)
            cJSON_AddItemToArray(all, model_json(pos[i], m));
        else
            print_text(pos[i], m);
        clipskip_model_free(m);
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
