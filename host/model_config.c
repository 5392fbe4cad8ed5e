/* config.json of a diffusers text_encoder[_2] / transformers CLIPTextModel folder. */
#include "model_config.h"

#include "internal.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CONFIG_MAX_BYTES (1u << 20) /* real ones are ~1 KB */

static clipskip_status read_text(const char *path, char **out, int *missing) {
    *out = NULL;
    *missing = 0;
    FILE *f = fopen(path, "rb");
    if (!f) {
        if (errno == ENOENT) {
            *missing = 1;
            return CLIPSKIP_OK;
        }
        return cs_fail(CLIPSKIP_ERR_IO, "%s: open: %s", path, strerror(errno));
    }
    char *buf = cs_malloc(CONFIG_MAX_BYTES + 1);
    size_t n = buf ? fread(buf, 1, CONFIG_MAX_BYTES + 1, f) : 0;
    int err = ferror(f);
    fclose(f);
    if (!buf) return CLIPSKIP_ERR_NOMEM;
    if (err || n > CONFIG_MAX_BYTES) {
        free(buf);
        return err ? cs_fail(CLIPSKIP_ERR_IO, "%s: read failed", path)
                   : cs_fail(CLIPSKIP_ERR_TOO_LARGE,
                             "%s: size: expected at most %u bytes, found more", path,
                             CONFIG_MAX_BYTES);
    }
    buf[n] = 0;
    *out = buf;
    return CLIPSKIP_OK;
}

/* An optional integer field: -1 when absent. */
static clipskip_status get_int(const cJSON *o, const char *key, const char *path, int64_t *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    *out = -1;
    if (!v || cJSON_IsNull(v)) return CLIPSKIP_OK;
    double d = cJSON_IsNumber(v) ? v->valuedouble : -1;
    if (!(d >= 0 && d <= 1e9 && d == floor(d)))
        return cs_fail(CLIPSKIP_ERR_FORMAT, "%s: %s: expected an integer in 0..1e9, found %s", path,
                       key, cJSON_IsNumber(v) ? "another number" : "another JSON value");
    *out = (int64_t)d;
    return CLIPSKIP_OK;
}

static clipskip_status read_fields(const cJSON *tc, const cJSON *root, cs_hf_config *cfg) {
    const char *p = cfg->path;
    const struct {
        const char *key;
        int64_t *dst;
        const cJSON *obj;
    } ints[] = {
        {"hidden_size", &cfg->hidden_size, tc},
        {"intermediate_size", &cfg->intermediate_size, tc},
        {"num_hidden_layers", &cfg->num_hidden_layers, tc},
        {"num_attention_heads", &cfg->num_attention_heads, tc},
        {"vocab_size", &cfg->vocab_size, tc},
        {"max_position_embeddings", &cfg->max_position_embeddings, tc},
        /* a full CLIPModel config keeps projection_dim at the top level */
        {"projection_dim", &cfg->projection_dim, tc != root ? root : tc},
    };
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        clipskip_status s = get_int(ints[i].obj, ints[i].key, p, ints[i].dst);
        if (s) return s;
    }
    cfg->hidden_act = -1;
    const cJSON *act = cJSON_GetObjectItemCaseSensitive(tc, "hidden_act");
    if (act) {
        const char *a = cJSON_IsString(act) ? act->valuestring : "";
        if (!strcmp(a, "quick_gelu"))
            cfg->hidden_act = CLIPSKIP_ACT_QUICK_GELU;
        else if (!strcmp(a, "gelu"))
            cfg->hidden_act = CLIPSKIP_ACT_GELU;
        else
            return cs_fail(CLIPSKIP_ERR_UNSUPPORTED,
                           "%s: hidden_act: expected \"quick_gelu\" or \"gelu\", found \"%.40s\"",
                           p, cJSON_IsString(act) ? a : "(not a string)");
    }
    const cJSON *eps = cJSON_GetObjectItemCaseSensitive(tc, "layer_norm_eps");
    if (eps && (!cJSON_IsNumber(eps) || fabs(eps->valuedouble - 1e-5) > 1e-12))
        return cs_fail(CLIPSKIP_ERR_UNSUPPORTED,
                       "%s: layer_norm_eps: expected 1e-05 (every CLIP text tower), found %g", p,
                       cJSON_IsNumber(eps) ? eps->valuedouble : NAN);
    return CLIPSKIP_OK;
}

clipskip_status cs_hf_config_read(const char *dir, int verbose, cs_hf_config *cfg) {
    memset(cfg, 0, sizeof *cfg);
    snprintf(cfg->path, sizeof cfg->path, "%s/config.json", dir);
    char *text;
    int missing;
    clipskip_status s = read_text(cfg->path, &text, &missing);
    if (s || missing) return s;
    cJSON *root = cs_json_parse(text, strlen(text) + 1, NULL);
    free(text);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return cs_fail(CLIPSKIP_ERR_FORMAT, "%s: expected a JSON object (valid JSON)", cfg->path);
    }
    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(root, "model_type");
    const char *type = cJSON_IsString(mt) ? mt->valuestring : NULL;
    const cJSON *tc = root;
    if (type && !strcmp(type, "clip")) tc = cJSON_GetObjectItemCaseSensitive(root, "text_config");
    if (type && strcmp(type, "clip") && strcmp(type, "clip_text_model")) tc = NULL;
    if (!cJSON_IsObject(tc)) {
        cs_warn(verbose, "%s: not a CLIP text model config (model_type '%s'): ignored", cfg->path,
                type ? type : "?");
        cJSON_Delete(root);
        return CLIPSKIP_OK;
    }
    s = read_fields(tc, root, cfg);
    cJSON_Delete(root);
    cfg->present = s == CLIPSKIP_OK;
    return s;
}
