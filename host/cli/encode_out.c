#include "encode_out.h"

#include "internal.h"
#include "model.h"
#include "safetensors.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CS_META_PROMPTS_MAX (1u << 20) /* prompts go into metadata up to 1 MB of JSON */

clipskip_status cs_encode_result_alloc(cs_encode_result *r, const clipskip_model *m,
                                       const clipskip_encode_options *o, size_t n, int32_t chunks,
                                       const char *syntax) {
    memset(r, 0, sizeof *r);
    r->chunks = chunks;
    r->syntax = syntax;
    CS_TRY(clipskip_output_dims(m, o, &r->hidden_dim, &r->pooled_dim, &r->embeds_dim));
    size_t esz = o->out_dtype == CLIPSKIP_DTYPE_F32 ? 4 : 2;
    r->n = n;
    r->info = cs_calloc(n, sizeof *r->info);
    if (!r->info) return CLIPSKIP_ERR_NOMEM;
    if ((o->outputs & CLIPSKIP_OUT_HIDDEN) &&
        !(r->hidden = cs_malloc(n * CLIPSKIP_CONTEXT * (size_t)chunks * r->hidden_dim * esz)))
        return CLIPSKIP_ERR_NOMEM;
    if ((o->outputs & CLIPSKIP_OUT_POOLED) && !(r->pooled = cs_malloc(n * r->pooled_dim * esz)))
        return CLIPSKIP_ERR_NOMEM;
    if ((o->outputs & CLIPSKIP_OUT_TEXT_EMBEDS) &&
        !(r->embeds = cs_malloc(n * (r->embeds_dim ? r->embeds_dim : 1) * esz)))
        return CLIPSKIP_ERR_NOMEM;
    return CLIPSKIP_OK;
}

void cs_encode_result_free(cs_encode_result *r) {
    free(r->hidden), free(r->pooled), free(r->embeds), free(r->info);
    memset(r, 0, sizeof *r);
}

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

static void meta_add(cs_st_meta *meta, int *n, const char *key, const char *value) {
    meta[*n].key = (char *)key;
    meta[*n].value = (char *)value;
    (*n)++;
}

/* JSON array of the prompts, or NULL when over CS_META_PROMPTS_MAX. */
static char *prompts_json(const cs_prompts *p) {
    size_t total = 0;
    for (size_t i = 0; i < p->n; i++) total += strlen(p->text[i]) + 4;
    if (total > CS_META_PROMPTS_MAX) return NULL;
    cJSON *arr = cJSON_CreateArray();
    for (size_t i = 0; arr && i < p->n; i++) cJSON_AddItemToArray(arr, cJSON_CreateString(p->text[i]));
    char *s = arr ? cJSON_PrintUnformatted(arr) : NULL;
    cJSON_Delete(arr);
    return s;
}

/* The clip skip and final LN each tower ran with ("0"/auto ask for the tower's default, which
 * is what gets recorded): "2" / "off" for one tower, "2,2" / "off,off" for every tower of the
 * file (CLIPSKIP_TOWER_ALL), in tower order, since towers may differ in their defaults. */
static void used_options(const clipskip_model *m, const clipskip_encode_options *o, char *skip,
                         char *lns, size_t cap) {
    const int all = o->tower == CLIPSKIP_TOWER_ALL;
    const int t0 = all ? 0 : o->tower, t1 = all ? clipskip_model_n_towers(m) : o->tower + 1;
    size_t ks = 0, kl = 0;
    skip[0] = lns[0] = '\0';
    for (int t = t0; t < t1; t++) {
        clipskip_tower_info ti;
        clipskip_model_tower_info(m, t, &ti);
        const int sk = o->row.clip_skip ? o->row.clip_skip : ti.default_clip_skip;
        const int on = o->row.final_ln == CLIPSKIP_FINAL_LN_AUTO ? ti.default_final_ln
                                                                 : o->row.final_ln == CLIPSKIP_FINAL_LN_ON;
        const char *sep = t > t0 ? "," : "";
        if (ks < cap) ks += (size_t)snprintf(skip + ks, cap - ks, "%s%d", sep, sk);
        if (kl < cap) kl += (size_t)snprintf(lns + kl, cap - kl, "%s%s", sep, on ? "on" : "off");
    }
}

static clipskip_status write_safetensors(const char *path, const cs_encode_result *r,
                                         const clipskip_model *m, const clipskip_encode_options *o,
                                         const cs_prompts *p) {
    cs_st_out_tensor t[3];
    int nt = 0;
    int64_t n = (int64_t)r->n;
    if (r->hidden) t[nt++] = (cs_st_out_tensor){"hidden_states", o->out_dtype, 3, {n, (int64_t)CLIPSKIP_CONTEXT * r->chunks, r->hidden_dim}, r->hidden};
    if (r->pooled) t[nt++] = (cs_st_out_tensor){"pooled", o->out_dtype, 2, {n, r->pooled_dim}, r->pooled};
    if (r->embeds) t[nt++] = (cs_st_out_tensor){"text_embeds", o->out_dtype, 2, {n, r->embeds_dim}, r->embeds};
    char skip[64], lns[64], tower[32], truncated[32], chunks[32];
    long n_trunc = 0;
    for (size_t i = 0; i < r->n; i++) n_trunc += r->info[i].truncated > 0;
    used_options(m, o, skip, lns, sizeof skip);
    snprintf(tower, sizeof tower, "%d", o->tower);
    snprintf(truncated, sizeof truncated, "%ld", n_trunc);
    snprintf(chunks, sizeof chunks, "%d", r->chunks);
    char *pj = prompts_json(p);
    cs_st_meta meta[12];
    int nm = 0;
    meta_add(meta, &nm, "format", "clipskip");
    meta_add(meta, &nm, "clipskip_version", clipskip_version());
    meta_add(meta, &nm, "model", m->path ? m->path : "");
    meta_add(meta, &nm, "clip_skip", skip);
    meta_add(meta, &nm, "clip_skip_convention", "A1111 (1 = all layers, 2 = penultimate)");
    meta_add(meta, &nm, "final_ln", lns);
    meta_add(meta, &nm, "tower", o->tower == CLIPSKIP_TOWER_ALL ? "all" : tower);
    meta_add(meta, &nm, "prompts_truncated", truncated);
    meta_add(meta, &nm, "syntax", r->syntax);
    meta_add(meta, &nm, "chunks", chunks);
    if (pj) meta_add(meta, &nm, "prompts", pj);
    clipskip_status st = cs_st_write(path, t, nt, meta, nm);
    cJSON_free(pj);
    return st;
}

/* FILE.npy ← hidden (or the first output asked); others to FILE.<name>.npy. */
static clipskip_status write_npy(const char *path, const cs_encode_result *r,
                                 const clipskip_encode_options *o, int quiet) {
    size_t base = strlen(path) - 4;
    char *side = cs_malloc(base + 32);
    if (!side) return CLIPSKIP_ERR_NOMEM;
    const char *first = path;
    int64_t n = (int64_t)r->n;
    clipskip_status st = CLIPSKIP_OK;
    if (r->hidden) {
        int64_t shape[3] = {n, (int64_t)CLIPSKIP_CONTEXT * r->chunks, r->hidden_dim};
        st = cs_npy_write(first, r->hidden, o->out_dtype, 3, shape);
        first = NULL;
    }
    struct { const char *name; char *data; int32_t dim; } more[2] = {
        {"pooled", r->pooled, r->pooled_dim}, {"text_embeds", r->embeds, r->embeds_dim}};
    for (int i = 0; i < 2 && st == CLIPSKIP_OK; i++) {
        if (!more[i].data) continue;
        snprintf(side, base + 32, "%.*s.%s.npy", (int)base, path, more[i].name);
        int64_t shape[2] = {n, more[i].dim};
        st = cs_npy_write(first ? first : side, more[i].data, o->out_dtype, 2, shape);
        if (st == CLIPSKIP_OK && !quiet && !first)
            fprintf(stderr, "clipskip encode: %s written to %s\n", more[i].name, side);
        first = NULL;
    }
    free(side);
    return st;
}

clipskip_status cs_encode_write(const char *path, const cs_encode_result *r,
                                const clipskip_model *m, const clipskip_encode_options *o,
                                const cs_prompts *p, int quiet) {
    if (ends_with(path, ".safetensors")) return write_safetensors(path, r, m, o, p);
    if (ends_with(path, ".npy")) return write_npy(path, r, o, quiet);
    return cs_fail(CLIPSKIP_ERR_INVALID_ARG, "--out %s: name the file .safetensors or .npy", path);
}

static float value_at(const char *buf, size_t i, clipskip_dtype dt) {
    if (dt == CLIPSKIP_DTYPE_F32) {
        float f;
        memcpy(&f, buf + i * 4, 4);
        return f;
    }
    uint16_t h;
    memcpy(&h, buf + i * 2, 2);
    return cs_f16_to_f32(h);
}

static void print_vec(const char *name, const char *buf, size_t off, size_t n, const char *shape,
                      clipskip_dtype dt) {
    double ss = 0;
    for (size_t i = 0; i < n; i++) ss += (double)value_at(buf, off + i, dt) * value_at(buf, off + i, dt);
    printf("  %-13s %-12s norm %-10.4f [%.5f, %.5f, %.5f, %.5f, ...]\n", name, shape, sqrt(ss),
           value_at(buf, off, dt), value_at(buf, off + 1, dt), value_at(buf, off + 2, dt),
           value_at(buf, off + 3, dt));
}

clipskip_status cs_encode_print(const cs_encode_result *r, const clipskip_encode_options *o,
                                const cs_prompts *p) {
    char shape[64];
    for (size_t i = 0; i < r->n; i++) {
        const clipskip_token_info *in = &r->info[i];
        if (!strcmp(r->syntax, "plain")) /* one chunk */
            printf("prompt %zu: \"%.60s%s\" tokens %d, eos at %d%s\n", i, p->text[i],
                   strlen(p->text[i]) > 60 ? "..." : "", in->n_tokens, in->eos_pos,
                   in->truncated ? " (TRUNCATED)" : "");
        else
            printf("prompt %zu: \"%.60s%s\" %s syntax, %d chunk%s of 77 tokens\n", i, p->text[i],
                   strlen(p->text[i]) > 60 ? "..." : "", r->syntax, r->chunks, r->chunks == 1 ? "" : "s");
        if (r->hidden) {
            size_t n = (size_t)CLIPSKIP_CONTEXT * r->chunks * r->hidden_dim;
            snprintf(shape, sizeof shape, "(%d, %d)", CLIPSKIP_CONTEXT * r->chunks, r->hidden_dim);
            print_vec("hidden_states", r->hidden, i * n, n, shape, o->out_dtype);
        }
        if (r->pooled) {
            snprintf(shape, sizeof shape, "(%d)", r->pooled_dim);
            print_vec("pooled", r->pooled, i * r->pooled_dim, r->pooled_dim, shape, o->out_dtype);
        }
        if (r->embeds) {
            snprintf(shape, sizeof shape, "(%d)", r->embeds_dim);
            print_vec("text_embeds", r->embeds, i * r->embeds_dim, r->embeds_dim, shape, o->out_dtype);
        }
    }
    return fflush(stdout) == 0 ? CLIPSKIP_OK : cs_fail(CLIPSKIP_ERR_IO, "stdout: write failed");
}

void cs_encode_report(const cs_encode_result *r, const clipskip_encoder *enc, const cs_prompts *p) {
    size_t n_trunc = 0, n = p->n;
    char where[600];
    for (size_t i = 0; i < r->n; i++) {
        if (!r->info[i].truncated) continue;
        if (n_trunc++ < 5)
            fprintf(stderr, "clipskip encode: warning: %s truncated: %d of %d tokens dropped (75 fit)\n",
                    cs_prompts_where(p, i, where, sizeof where), r->info[i].truncated, r->info[i].n_tokens);
    }
    if (n_trunc > 5) fprintf(stderr, "clipskip encode: warning: %zu prompts truncated in all\n", n_trunc);
    fprintf(stderr, "clipskip encode: %zu prompt%s on %s\n", n, n == 1 ? "" : "s",
            clipskip_encoder_device(enc));
}
