#include "common.h"

#include <stdio.h>
#include <time.h>

void cs_cli_error(const char *cmd, clipskip_status st) {
    fprintf(stderr, "clipskip %s: %s: %s\n", cmd, clipskip_status_str(st), clipskip_last_error());
}

double cs_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

clipskip_model *cs_cli_open_model(const char *cmd, const char *path, int random_choice,
                                  const char *vocab, int verbose) {
    static const clipskip_family fam[] = {CLIPSKIP_FAMILY_OTHER, CLIPSKIP_FAMILY_CLIP_L,
                                          CLIPSKIP_FAMILY_OPENCLIP_H, CLIPSKIP_FAMILY_OPENCLIP_BIGG,
                                          CLIPSKIP_FAMILY_OTHER};
    clipskip_model *m = NULL;
    clipskip_status st;
    if (path && random_choice > 0) {
        fprintf(stderr, "clipskip %s: give --model or --random, not both\n", cmd);
        return NULL;
    }
    if (random_choice > 0) {
        st = clipskip_model_random(fam[random_choice], 1234, &m);
    } else if (path) {
        clipskip_model_params p = clipskip_model_default_params();
        p.tokenizer_path = vocab;
        p.verbose = verbose;
        st = clipskip_model_load(path, &p, &m);
    } else {
        fprintf(stderr, "clipskip %s: no model: give --model FILE.safetensors or --random "
                        "vit-l|vit-h|vit-bigg\n", cmd);
        return NULL;
    }
    if (st != CLIPSKIP_OK) {
        cs_cli_error(cmd, st);
        return NULL;
    }
    return m;
}
