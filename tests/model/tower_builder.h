/* Build tower files in C for the loader tests: HF or OpenCLIP names, any prefix and size, every
 * tensor F16 zeros (the loader reads names and shapes, never values). Single-header helper. */
#ifndef CS_TOWER_BUILDER_H
#define CS_TOWER_BUILDER_H

#include "safetensors.h"
#include "test_util.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TB_MAX 1024

typedef struct {
    cs_st_out_tensor t[TB_MAX];
    char names[TB_MAX][200];
    int n;
    void *zeros; /* shared by every tensor */
    size_t zeros_bytes;
} tb_file;

static void tb_init(tb_file *f, size_t max_tensor_bytes) {
    memset(f, 0, sizeof *f);
    f->zeros = calloc(1, max_tensor_bytes);
    f->zeros_bytes = max_tensor_bytes;
    REQUIRE(f->zeros);
}

static void tb_free(tb_file *f) { free(f->zeros); }

/* ndim 0..2; returns the entry so a test can change it before writing. */
static cs_st_out_tensor *tb_add(tb_file *f, const char *name, int ndim, int64_t r, int64_t c) {
    REQUIRE(f->n < TB_MAX);
    snprintf(f->names[f->n], sizeof f->names[0], "%s", name);
    cs_st_out_tensor *t = &f->t[f->n];
    *t = (cs_st_out_tensor){f->names[f->n], CLIPSKIP_DTYPE_F16, ndim, {r, c}, f->zeros};
    REQUIRE((size_t)((ndim > 0 ? r : 1) * (ndim > 1 ? c : 1)) * 2 <= f->zeros_bytes);
    f->n++;
    return t;
}

static cs_st_out_tensor *tb_find(tb_file *f, const char *name) {
    for (int i = 0; i < f->n; i++)
        if (strcmp(f->names[i], name) == 0) return &f->t[i];
    return NULL;
}

static void tb_remove(tb_file *f, const char *name) {
    cs_st_out_tensor *t = tb_find(f, name);
    REQUIRE(t);
    int i = (int)(t - f->t), last = --f->n; /* the last entry moves into the hole */
    memcpy(f->names[i], f->names[last], sizeof f->names[0]);
    f->t[i] = f->t[last];
    f->t[i].name = f->names[i];
}

/* A tower at prefix: HF names (proj: E rows beside text_model., when E > 0) or OpenCLIP names
 * (proj (D, E)). */
static void tb_tower(tb_file *f, int openclip, const char *prefix, int D, int F, int L, int V,
                     int E) {
    char n[200];
#define N(...) (snprintf(n, sizeof n, __VA_ARGS__), n)
    if (!openclip) {
        tb_add(f, N("%sembeddings.token_embedding.weight", prefix), 2, V, D);
        tb_add(f, N("%sembeddings.position_embedding.weight", prefix), 2, 77, D);
        for (int i = 0; i < L; i++) {
            char lp[120];
            snprintf(lp, sizeof lp, "%sencoder.layers.%d.", prefix, i);
            static const char *const v[] = {
                "layer_norm1.weight",    "layer_norm1.bias",        "layer_norm2.weight",
                "layer_norm2.bias",      "self_attn.q_proj.bias",   "self_attn.k_proj.bias",
                "self_attn.v_proj.bias", "self_attn.out_proj.bias", "mlp.fc2.bias"};
            for (size_t k = 0; k < sizeof v / sizeof v[0]; k++)
                tb_add(f, N("%s%s", lp, v[k]), 1, D, 0);
            static const char *const m[] = {"self_attn.q_proj.weight", "self_attn.k_proj.weight",
                                            "self_attn.v_proj.weight", "self_attn.out_proj.weight"};
            for (size_t k = 0; k < sizeof m / sizeof m[0]; k++)
                tb_add(f, N("%s%s", lp, m[k]), 2, D, D);
            tb_add(f, N("%smlp.fc1.weight", lp), 2, F, D);
            tb_add(f, N("%smlp.fc1.bias", lp), 1, F, 0);
            tb_add(f, N("%smlp.fc2.weight", lp), 2, D, F);
        }
        tb_add(f, N("%sfinal_layer_norm.weight", prefix), 1, D, 0);
        tb_add(f, N("%sfinal_layer_norm.bias", prefix), 1, D, 0);
        if (E > 0) {
            size_t pl = strlen(prefix), tl = strlen("text_model.");
            if (pl >= tl && strcmp(prefix + pl - tl, "text_model.") == 0) pl -= tl;
            tb_add(f, N("%.*stext_projection.weight", (int)pl, prefix), 2, E, D);
        }
    } else {
        tb_add(f, N("%stoken_embedding.weight", prefix), 2, V, D);
        tb_add(f, N("%spositional_embedding", prefix), 2, 77, D);
        for (int i = 0; i < L; i++) {
            char lp[120];
            snprintf(lp, sizeof lp, "%stransformer.resblocks.%d.", prefix, i);
            static const char *const v[] = {"ln_1.weight", "ln_1.bias",          "ln_2.weight",
                                            "ln_2.bias",   "attn.out_proj.bias", "mlp.c_proj.bias"};
            for (size_t k = 0; k < sizeof v / sizeof v[0]; k++)
                tb_add(f, N("%s%s", lp, v[k]), 1, D, 0);
            tb_add(f, N("%sattn.in_proj_weight", lp), 2, 3 * D, D);
            tb_add(f, N("%sattn.in_proj_bias", lp), 1, 3 * D, 0);
            tb_add(f, N("%sattn.out_proj.weight", lp), 2, D, D);
            tb_add(f, N("%smlp.c_fc.weight", lp), 2, F, D);
            tb_add(f, N("%smlp.c_fc.bias", lp), 1, F, 0);
            tb_add(f, N("%smlp.c_proj.weight", lp), 2, D, F);
        }
        tb_add(f, N("%sln_final.weight", prefix), 1, D, 0);
        tb_add(f, N("%sln_final.bias", prefix), 1, D, 0);
        if (E > 0) tb_add(f, N("%stext_projection", prefix), 2, D, E);
    }
#undef N
}

static void tb_write(tb_file *f, const char *path) {
    clipskip_status s = cs_st_write(path, f->t, f->n, NULL, 0);
    if (s) fprintf(stderr, "tb_write: %s\n", clipskip_last_error());
    REQUIRE(s == CLIPSKIP_OK);
}

#endif
