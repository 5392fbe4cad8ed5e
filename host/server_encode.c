/* POST /encode and POST /tokenize: JSON request validation (422 naming the field),
 * tokenization on the HTTP thread, per-prompt cache lookups, the batcher hand-off for the
 * misses, and the reply as JSON, .npy or .safetensors. */
#include "server_internal.h"

#include "internal.h"
#include "prompt_a1111.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum { FMT_JSON, FMT_NPY, FMT_ST } out_format;

#define KEY_HEAD 6 /* int32s before the ids in a cache key */

typedef struct cs_encode_req {
    int32_t n;                          /* inputs */
    int32_t chunks, rows;               /* 77-id chunks per input (syntax a1111; else 1), n x chunks */
    int a1111;                          /* syntax a1111: rows are chunks, run in f32, weighted after */
    clipskip_dtype reply_dtype;         /* a1111: the dtype asked (dtype below is F32 until the reply) */
    float *mult[CS_JOB_MAX_TOWERS];     /* a1111: (rows, 77) weights per tower */
    int is_text;
    const char **texts;                 /* (n) into the parsed JSON (text inputs) */
    cJSON *json;
    int t0, t1;                         /* towers run: [t0, t1) */
    clipskip_row_options row;
    uint32_t outputs;
    clipskip_dtype dtype;
    int32_t tower, clean;
    out_format format;
    int32_t hidden_dim, pooled_dim, embeds_dim;
    int32_t *ids[CS_JOB_MAX_TOWERS];    /* (rows, 77) per tower of the range */
    clipskip_token_info *info;          /* (n) text inputs, last tower */
    char *hidden, *pooled, *embeds;     /* (rows, 77, Dh), (rows, Dp), (rows, E): the reply's arrays */
    int32_t *miss;                      /* (n_miss) rows the backend fills */
    int32_t n_miss;
    int32_t *miss_ids[CS_JOB_MAX_TOWERS]; /* (n_miss, 77) */
    int32_t *keys;                      /* (n, key_ints) cache keys */
    size_t key_ints;
    uint64_t *hashes;
    int cache_hits;
    double tokenize_s;
    cs_job job;
} cs_encode_req;

void cs_encode_req_free(cs_encode_req *e) {
    if (!e) return;
    cJSON_Delete(e->json);
    for (int k = 0; k < CS_JOB_MAX_TOWERS; k++) free(e->ids[k]), free(e->miss_ids[k]), free(e->mult[k]);
    free(e->texts), free(e->info), free(e->hidden), free(e->pooled), free(e->embeds);
    free(e->miss), free(e->keys), free(e->hashes);
    free(e);
}

/* ------------------------------------------------------------------ field parsing */

typedef struct {
    char msg[768];
} verr;

static int bad(verr *v, const char *fmt, ...) CS_PRINTF(2, 3);
static int bad(verr *v, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(v->msg, sizeof v->msg, fmt, ap);
    va_end(ap);
    return -1;
}

static int is_integer(const cJSON *x, double lo, double hi) {
    return cJSON_IsNumber(x) && x->valuedouble == floor(x->valuedouble) && x->valuedouble >= lo &&
           x->valuedouble <= hi;
}

/* Index of s in "a|b|c", or -1. */
static int choice(const char *choices, const char *s) {
    size_t len = strlen(s);
    int i = 0;
    for (const char *p = choices; p; i++) {
        size_t n = strcspn(p, "|");
        if (n == len && !memcmp(p, s, n)) return i;
        p = strchr(p, '|');
        if (p) p++;
    }
    return -1;
}

static int check_fields(const cJSON *root, const char *allowed, verr *v) {
    for (const cJSON *f = root->child; f; f = f->next)
        if (!f->string || choice(allowed, f->string) < 0)
            return bad(v, "unknown field '%s' (this route takes: %s)", f->string ? f->string : "",
                       allowed);
    return 0;
}

static const char *json_type(const cJSON *x) {
    return cJSON_IsString(x) ? "a string" : cJSON_IsNumber(x) ? "a number" : cJSON_IsArray(x) ? "a list"
         : cJSON_IsObject(x) ? "an object" : cJSON_IsBool(x) ? "a boolean" : "null";
}

static int parse_tower(const cs_server *s, const cJSON *root, int multi_ok, int32_t *tower, verr *v) {
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(root, "tower");
    *tower = multi_ok && s->n_towers > 1 ? CLIPSKIP_TOWER_ALL : 0;
    if (!t || cJSON_IsNull(t) || (cJSON_IsString(t) && !strcmp(t->valuestring, "auto"))) return 0;
    if (multi_ok && cJSON_IsString(t) && !strcmp(t->valuestring, "all")) *tower = CLIPSKIP_TOWER_ALL;
    else if (is_integer(t, 0, s->n_towers - 1)) *tower = (int32_t)t->valuedouble;
    else
        return bad(v, "tower: expected 0..%d%s (the model has %d tower%s)", s->n_towers - 1,
                   multi_ok ? ", \"all\" or \"auto\"" : " or \"auto\"", s->n_towers, s->n_towers > 1 ? "s" : "");
    return 0;
}

static int parse_clean(const cJSON *root, int32_t *clean, verr *v) {
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(root, "clean");
    *clean = -1;
    if (!c || cJSON_IsNull(c)) return 0;
    int i = cJSON_IsString(c) ? choice("default|hf|openclip|hf-fast", c->valuestring) : -1;
    if (i < 0) return bad(v, "clean: expected \"default\", \"hf\", \"openclip\" or \"hf-fast\"");
    *clean = i - 1;
    return 0;
}

/* clip_skip (A1111: 1 = all layers), layer (ComfyUI: -1 = last), final_ln. */
static int parse_depth(const cs_server *s, const cJSON *root, cs_encode_req *e, verr *v) {
    int32_t max_skip = 1 << 30;
    for (int t = e->t0; t < e->t1; t++)
        if (s->info[t].n_layers < max_skip) max_skip = s->info[t].n_layers;
    const cJSON *cs = cJSON_GetObjectItemCaseSensitive(root, "clip_skip"),
                *ly = cJSON_GetObjectItemCaseSensitive(root, "layer"),
                *fl = cJSON_GetObjectItemCaseSensitive(root, "final_ln");
    e->row = (clipskip_row_options){0, CLIPSKIP_FINAL_LN_AUTO};
    if (cs && !cJSON_IsNull(cs)) {
        if (!is_integer(cs, 0, max_skip))
            return cJSON_IsNumber(cs)
                       ? bad(v, "clip_skip: %g out of range: valid 1..%d (A1111 convention: 1 = all layers, 2 = penultimate; 0 = the model's default)", cs->valuedouble, max_skip)
                       : bad(v, "clip_skip: expected an integer 0..%d, found %s", max_skip, json_type(cs));
        e->row.clip_skip = (int32_t)cs->valuedouble;
    }
    if (ly && !cJSON_IsNull(ly)) {
        if (!is_integer(ly, -max_skip, -1))
            return bad(v, "layer: expected an integer -%d..-1 (ComfyUI spelling: -1 = last layer, -2 = penultimate)", max_skip);
        int32_t skip = -(int32_t)ly->valuedouble;
        if (e->row.clip_skip && e->row.clip_skip != skip)
            return bad(v, "layer: clip_skip %d and layer %d disagree (layer -N is clip_skip N)", e->row.clip_skip, -skip);
        e->row.clip_skip = skip;
    }
    if (fl && !cJSON_IsNull(fl)) {
        int i = cJSON_IsBool(fl) ? (cJSON_IsTrue(fl) ? 1 : 2) : cJSON_IsString(fl) ? choice("auto|on|off", fl->valuestring) : -1;
        if (i < 0) return bad(v, "final_ln: expected \"auto\", \"on\", \"off\" or a boolean");
        e->row.final_ln = (clipskip_final_ln)i;
    }
    return 0;
}

static int parse_outputs(const cs_server *s, const cJSON *root, cs_encode_req *e, verr *v) {
    const cJSON *o = cJSON_GetObjectItemCaseSensitive(root, "outputs");
    e->outputs = CLIPSKIP_OUT_HIDDEN;
    if (o && !cJSON_IsNull(o)) {
        const cJSON *one = cJSON_IsString(o) ? o : NULL, *item;
        if (!one && !cJSON_IsArray(o)) return bad(v, "outputs: expected a list of \"hidden\", \"pooled\", \"text_embeds\"");
        e->outputs = 0;
        int i = 0;
        for (item = one ? one : o->child; item; item = one ? NULL : item->next, i++) {
            int k = cJSON_IsString(item) ? choice("hidden|pooled|text_embeds", item->valuestring) : -1;
            if (k < 0) return bad(v, "outputs[%d]: expected \"hidden\", \"pooled\" or \"text_embeds\"", i);
            e->outputs |= 1u << k;
        }
        if (!e->outputs) return bad(v, "outputs: empty list; ask for hidden, pooled and/or text_embeds");
    }
    const clipskip_tower_info *last = &s->info[e->t1 - 1];
    if ((e->outputs & CLIPSKIP_OUT_TEXT_EMBEDS) && last->proj_dim == 0)
        return bad(v, "outputs: text_embeds needs a text projection, and tower %d has none", e->t1 - 1);
    e->hidden_dim = 0;
    for (int t = e->t0; t < e->t1; t++) e->hidden_dim += s->info[t].d_model;
    e->pooled_dim = last->d_model, e->embeds_dim = last->proj_dim;
    return 0;
}

static int parse_format(const cJSON *root, cs_encode_req *e, verr *v) {
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(root, "format"),
                *d = cJSON_GetObjectItemCaseSensitive(root, "dtype");
    e->format = FMT_JSON;
    if (f && !cJSON_IsNull(f)) {
        int i = cJSON_IsString(f) ? choice("json|npy|safetensors", f->valuestring) : -1;
        if (i < 0) return bad(v, "format: expected \"json\", \"npy\" or \"safetensors\"");
        e->format = (out_format)i;
    }
    int n_out = !!(e->outputs & 1) + !!(e->outputs & 2) + !!(e->outputs & 4);
    if (e->format == FMT_NPY && n_out > 1)
        return bad(v, "format: npy holds one array; ask for one output or use \"safetensors\"");
    e->dtype = CLIPSKIP_DTYPE_F32;
    if (d && !cJSON_IsNull(d)) {
        int i = cJSON_IsString(d) ? choice("f32|f16|float32|float16", d->valuestring) : -1;
        if (i < 0) return bad(v, "dtype: expected \"f32\" or \"f16\"");
        e->dtype = i % 2 ? CLIPSKIP_DTYPE_F16 : CLIPSKIP_DTYPE_F32;
    }
    return 0;
}

static int parse_syntax(const cJSON *root, cs_encode_req *e, verr *v) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(root, "syntax");
    e->a1111 = 0;
    if (!x || cJSON_IsNull(x)) return 0;
    int i = cJSON_IsString(x) ? choice("plain|a1111", x->valuestring) : -1;
    if (i < 0) return bad(v, "syntax: expected \"plain\" or \"a1111\"");
    e->a1111 = i == 1;
    return 0;
}

/* One list of exactly 77 ids within the vocabulary. */
static int parse_id_row(const cJSON *row, int i, int32_t vocab, int32_t *dst, verr *v) {
    if (!cJSON_IsArray(row) && i == 0) /* the first input sets the kind of all */
        return bad(v, "inputs[0]: expected a string or a list of %d token ids, found %s", CLIPSKIP_CONTEXT, json_type(row));
    if (!cJSON_IsArray(row)) return bad(v, "inputs[%d]: expected a list of token ids like inputs[0], found %s", i, json_type(row));
    int n = cJSON_GetArraySize(row), p = 0;
    if (n != CLIPSKIP_CONTEXT)
        return bad(v, "inputs[%d]: %d token ids; exactly %d are needed (BOS, up to 75 tokens, EOS, padding: POST /tokenize makes them)",
                   i, n, CLIPSKIP_CONTEXT);
    for (const cJSON *x = row->child; x; x = x->next, p++) {
        if (!is_integer(x, 0, vocab - 1))
            return cJSON_IsNumber(x) ? bad(v, "inputs[%d][%d]: token id %g outside the vocabulary 0..%d", i, p, x->valuedouble, vocab - 1)
                                     : bad(v, "inputs[%d][%d]: expected an integer token id, found %s", i, p, json_type(x));
        dst[p] = (int32_t)x->valuedouble;
    }
    return 0;
}

/* Counts the inputs; text inputs keep pointers into the JSON, id inputs are copied. */
static int parse_inputs(const cs_server *s, cJSON *root, cs_encode_req *e, verr *v) {
    cJSON *in = cJSON_GetObjectItemCaseSensitive(root, "inputs");
    if (!in) return bad(v, "inputs: missing (a string, a list of strings, or a list of 77-id lists)");
    if (!cJSON_IsString(in) && !cJSON_IsArray(in))
        return bad(v, "inputs: expected a string, a list of strings or a list of 77-id lists, found %s", json_type(in));
    e->n = cJSON_IsString(in) ? 1 : cJSON_GetArraySize(in);
    if (e->n == 0) return bad(v, "inputs: empty list");
    if (e->n > s->p.max_client_batch)
        return bad(v, "inputs: %d inputs, more than the %d allowed per request (--max-client-batch)", e->n, s->p.max_client_batch);
    cJSON *first = cJSON_IsString(in) ? in : in->child;
    e->is_text = cJSON_IsString(first);
    if (e->is_text && !(e->texts = calloc((size_t)e->n, sizeof *e->texts))) return bad(v, "out of memory");
    if (!e->is_text && !(e->ids[0] = malloc((size_t)e->n * CLIPSKIP_CONTEXT * sizeof(int32_t)))) return bad(v, "out of memory");
    int32_t vocab = s->info[e->t0].vocab;
    for (int t = e->t0; t < e->t1; t++) vocab = s->info[t].vocab < vocab ? s->info[t].vocab : vocab;
    int i = 0;
    for (cJSON *x = first; x; x = cJSON_IsString(in) ? NULL : x->next, i++) {
        if (e->is_text && !cJSON_IsString(x))
            return bad(v, "inputs[%d]: expected a string like inputs[0], found %s", i, json_type(x));
        if (e->is_text) e->texts[i] = x->valuestring;
        else if (parse_id_row(x, i, vocab, e->ids[0] + (size_t)i * CLIPSKIP_CONTEXT, v)) return -1;
    }
    return 0;
}

#define SERVER_MAX_CHUNKS 64 /* 77-id chunks per a1111 input (4,800 tokens) */

/* syntax a1111: each input's chunks for every tower, then rows of n x chunks (the most any
 * input takes; empty chunks after the shorter ones) with their weights. */
static int make_chunks(const cs_server *s, cs_encode_req *e, verr *v) {
    const int nt = e->t1 - e->t0;
    cs_chunks *c = calloc((size_t)e->n * nt, sizeof *c);
    if (!c) return bad(v, "out of memory");
    int rc = 0;
    e->chunks = 1;
    for (int k = 0; !rc && k < nt; k++) {
        const clipskip_tower_info *in = &s->info[e->t0 + k];
        const clipskip_clean clean = e->clean >= 0 ? (clipskip_clean)e->clean : in->default_clean;
        for (int32_t i = 0; !rc && i < e->n; i++) {
            cs_chunks *ci = &c[(size_t)k * e->n + i];
            if (cs_a1111_chunks(s->tok, clean, in->pad_id, e->texts[i], strlen(e->texts[i]), ci))
                rc = bad(v, "inputs[%d]: %s", i, clipskip_last_error());
            else if (ci->n_chunks > SERVER_MAX_CHUNKS)
                rc = bad(v, "inputs[%d]: %d chunks of 75 tokens, more than the %d a request may take", i,
                         ci->n_chunks, SERVER_MAX_CHUNKS);
            else if (ci->n_chunks > e->chunks) e->chunks = ci->n_chunks;
        }
    }
    e->rows = e->n * e->chunks;
    const size_t all = (size_t)e->rows * CLIPSKIP_CONTEXT, per = (size_t)e->chunks * CLIPSKIP_CONTEXT;
    for (int k = 0; !rc && k < nt; k++) {
        if (!(e->ids[k] = malloc(all * sizeof(int32_t))) || !(e->mult[k] = malloc(all * sizeof(float)))) {
            rc = bad(v, "out of memory");
            break;
        }
        for (int32_t i = 0; i < e->n; i++)
            cs_chunks_place(&c[(size_t)k * e->n + i], e->chunks, s->info[e->t0 + k].pad_id, e->ids[k] + i * per,
                            e->mult[k] + i * per);
    }
    for (size_t i = 0; i < (size_t)e->n * nt; i++) cs_chunks_free(&c[i]);
    free(c);
    return rc;
}

/* Token ids of every input for every tower of the range (each tower its pad id / cleanup). */
static int make_ids(const cs_server *s, cs_encode_req *e, verr *v) {
    e->chunks = 1, e->rows = e->n;
    if (e->is_text && !s->tok) return bad(v, "inputs: this model has no tokenizer; send token ids");
    if (e->a1111) return make_chunks(s, e, v);
    size_t bytes = (size_t)e->n * CLIPSKIP_CONTEXT * sizeof(int32_t);
    if (e->is_text && !(e->info = calloc((size_t)e->n, sizeof *e->info))) return bad(v, "out of memory");
    for (int t = e->t0; t < e->t1; t++) {
        int k = t - e->t0;
        if (!e->ids[k] && !(e->ids[k] = malloc(bytes))) return bad(v, "out of memory");
        if (!e->is_text) {
            if (k) memcpy(e->ids[k], e->ids[0], bytes);
            continue;
        }
        const clipskip_tower_info *in = &s->info[t];
        clipskip_clean clean = e->clean >= 0 ? (clipskip_clean)e->clean : in->default_clean;
        for (int32_t i = 0; i < e->n; i++) {
            clipskip_status st = clipskip_tokenize(s->tok, e->texts[i], strlen(e->texts[i]), clean, in->pad_id,
                                                   e->ids[k] + (size_t)i * CLIPSKIP_CONTEXT,
                                                   t == e->t1 - 1 ? &e->info[i] : NULL);
            if (st != CLIPSKIP_OK) return bad(v, "inputs[%d]: %s", i, clipskip_last_error());
        }
    }
    return 0;
}

/* ------------------------------------------------------------------ results and the cache */

static size_t esz_of(const cs_encode_req *e) { return cs_dtype_size(e->dtype); }

static int alloc_results(cs_encode_req *e) {
    size_t n = (size_t)e->rows, esz = esz_of(e);
    if ((e->outputs & CLIPSKIP_OUT_HIDDEN) && !(e->hidden = malloc(n * CLIPSKIP_CONTEXT * e->hidden_dim * esz))) return -1;
    if ((e->outputs & CLIPSKIP_OUT_POOLED) && !(e->pooled = malloc(n * e->pooled_dim * esz))) return -1;
    if ((e->outputs & CLIPSKIP_OUT_TEXT_EMBEDS) && !(e->embeds = malloc(n * e->embeds_dim * esz))) return -1;
    return (e->miss = malloc(n * sizeof *e->miss)) ? 0 : -1;
}

/* The cache value of result row i: its rows of each output asked, in a fixed order. */
static int row_parts(const cs_encode_req *e, int32_t i, cs_cache_part *parts) {
    size_t esz = esz_of(e);
    int n = 0;
    if (e->hidden) {
        size_t len = (size_t)CLIPSKIP_CONTEXT * e->hidden_dim * esz;
        parts[n++] = (cs_cache_part){e->hidden + (size_t)i * len, len};
    }
    if (e->pooled) parts[n++] = (cs_cache_part){e->pooled + (size_t)i * e->pooled_dim * esz, e->pooled_dim * esz};
    if (e->embeds) parts[n++] = (cs_cache_part){e->embeds + (size_t)i * e->embeds_dim * esz, e->embeds_dim * esz};
    return n;
}

/* Key of row i: (version, outputs, dtype, tower, clip skip, final LN, ids of each tower). */
static const int32_t *row_key(cs_encode_req *e, int32_t i) {
    int32_t *k = e->keys + (size_t)i * e->key_ints;
    k[0] = 1, k[1] = (int32_t)e->outputs, k[2] = (int32_t)e->dtype, k[3] = e->tower;
    k[4] = e->row.clip_skip, k[5] = (int32_t)e->row.final_ln;
    for (int t = 0; t < e->t1 - e->t0; t++)
        memcpy(k + KEY_HEAD + t * CLIPSKIP_CONTEXT, e->ids[t] + (size_t)i * CLIPSKIP_CONTEXT,
               CLIPSKIP_CONTEXT * sizeof(int32_t));
    return k;
}

/* Fill the rows found in the cache; list the others in e->miss. */
static int cache_lookup(cs_server *s, cs_encode_req *e) {
    int use = s->p.cache_bytes > 0;
    e->key_ints = KEY_HEAD + (size_t)(e->t1 - e->t0) * CLIPSKIP_CONTEXT;
    if (use && (!(e->keys = malloc((size_t)e->rows * e->key_ints * sizeof(int32_t))) ||
                !(e->hashes = malloc((size_t)e->rows * sizeof *e->hashes))))
        return -1;
    e->n_miss = 0;
    for (int32_t i = 0; i < e->rows; i++) {
        cs_cache_part parts[3];
        int np = row_parts(e, i, parts);
        if (use) {
            const int32_t *k = row_key(e, i);
            e->hashes[i] = cs_hash_bytes(k, e->key_ints * sizeof(int32_t));
            if (cs_cache_get(s->cache, k, e->key_ints * sizeof(int32_t), e->hashes[i], parts, np)) {
                e->cache_hits++;
                continue;
            }
        }
        e->miss[e->n_miss++] = i;
    }
    return 0;
}

static void cache_store(cs_server *s, cs_encode_req *e) {
    if (!e->keys) return;
    for (int32_t m = 0; m < e->n_miss; m++) {
        int32_t i = e->miss[m];
        cs_cache_part parts[3];
        int np = row_parts(e, i, parts);
        cs_cache_put(s->cache, e->keys + (size_t)i * e->key_ints, e->key_ints * sizeof(int32_t),
                     e->hashes[i], parts, np);
    }
}

/* The batcher's job for the rows that missed (ids compacted when some rows hit). */
static int build_job(cs_encode_req *e) {
    cs_job *j = &e->job;
    memset(j, 0, sizeof *j);
    j->n_rows = e->n_miss;
    for (int k = 0; k < e->t1 - e->t0; k++) {
        if (e->n_miss == e->rows) {
            j->ids[k] = e->ids[k];
            continue;
        }
        size_t row = CLIPSKIP_CONTEXT * sizeof(int32_t);
        if (!(e->miss_ids[k] = malloc((size_t)e->n_miss * row))) return -1;
        for (int32_t m = 0; m < e->n_miss; m++)
            memcpy(e->miss_ids[k] + (size_t)m * CLIPSKIP_CONTEXT, e->ids[k] + (size_t)e->miss[m] * CLIPSKIP_CONTEXT, row);
        j->ids[k] = e->miss_ids[k];
    }
    j->map = e->n_miss == e->rows ? NULL : e->miss;
    j->row = e->row, j->outputs = e->outputs, j->dtype = e->dtype, j->tower = e->tower;
    j->hidden = e->hidden, j->pooled = e->pooled, j->embeds = e->embeds;
    return 0;
}

/* ------------------------------------------------------------------ syntax a1111 */

/* Rows 0, c, 2c, ... of (rows, w) floats to rows 0, 1, 2, ... */
static void first_chunk_rows(char *p, int32_t n, int32_t c, int32_t w) {
    for (int32_t i = 1; p && i < n; i++)
        memmove(p + (size_t)i * w * 4, p + (size_t)i * c * w * 4, (size_t)w * 4);
}

/* n f32 values to dtype dt in place (f16 is smaller: front to back overwrites only what was read). */
static void f32_in_place(char *p, size_t n, clipskip_dtype dt) {
    for (size_t i = 0; p && dt == CLIPSKIP_DTYPE_F16 && i < n; i++) {
        float f;
        memcpy(&f, p + 4 * i, 4);
        const uint16_t h = cs_f32_to_f16(f);
        memcpy(p + 2 * i, &h, 2);
    }
}

/* Once the rows are in (f32; the cache holds them unweighted): each chunk weighted per tower,
 * pooled / text_embeds of each input's first chunk moved to its row, all in the dtype asked. */
static void a1111_finish(const cs_server *s, cs_encode_req *e) {
    if (!e->a1111) return;
    const size_t row = (size_t)CLIPSKIP_CONTEXT * e->hidden_dim;
    for (int32_t k = 0, col = 0; e->hidden && k < e->t1 - e->t0; col += s->info[e->t0 + k].d_model, k++)
        for (int32_t r = 0; r < e->rows; r++)
            cs_a1111_emphasize((float *)e->hidden + r * row + col, (size_t)e->hidden_dim, s->info[e->t0 + k].d_model,
                               e->mult[k] + (size_t)r * CLIPSKIP_CONTEXT);
    first_chunk_rows(e->pooled, e->n, e->chunks, e->pooled_dim);
    first_chunk_rows(e->embeds, e->n, e->chunks, e->embeds_dim);
    f32_in_place(e->hidden, (size_t)e->rows * row, e->reply_dtype);
    f32_in_place(e->pooled, (size_t)e->n * e->pooled_dim, e->reply_dtype);
    f32_in_place(e->embeds, (size_t)e->n * e->embeds_dim, e->reply_dtype);
    e->dtype = e->reply_dtype;
}

/* ------------------------------------------------------------------ replies */

static void timing_headers(cs_req *r, const cs_encode_req *e, const cs_job *j) {
    double now = cs_monotonic();
    int ran = j && j->n_rows > 0;
    if (e->is_text) cs_req_header(r, "x-tokenization-time", "%.3f", e->tokenize_s * 1e3);
    cs_req_header(r, "x-queue-time", "%.3f", ran ? (j->t_start - j->t_queued) * 1e3 : 0.0);
    cs_req_header(r, "x-inference-time", "%.3f", ran ? (j->t_done - j->t_start) * 1e3 : 0.0);
    cs_req_header(r, "x-total-time", "%.3f", (now - r->t_arrival) * 1e3);
    cs_req_header(r, "x-cache-hits", "%d", e->cache_hits);
    if (ran) {
        cs_req_header(r, "x-batch-id", "%llu", (unsigned long long)j->batch_id);
        cs_req_header(r, "x-batch-size", "%d", j->batch_prompts);
    }
    if (e->info) {
        int trunc = 0;
        for (int32_t i = 0; i < e->n; i++) trunc += e->info[i].truncated > 0;
        cs_req_header(r, "x-prompts-truncated", "%d", trunc);
    }
    cs_metrics *m = &r->srv->metrics;
    if (e->is_text) cs_metrics_observe(m, CS_H_TOKENIZE_S, e->tokenize_s);
    if (ran) cs_metrics_observe(m, CS_H_QUEUE_S, j->t_start - j->t_queued);
    cs_metrics_observe(m, CS_H_TOTAL_S, now - r->t_arrival);
}

typedef struct {
    const char *name, *json_name;
    const char *data;
    int ndim;
    int64_t shape[3];
} out_array;

static int out_arrays(const cs_encode_req *e, out_array *a) {
    int n = 0;
    int64_t rows = e->n;
    if (e->hidden) a[n++] = (out_array){"hidden_states", "hidden", e->hidden, 3, {rows, (int64_t)CLIPSKIP_CONTEXT * e->chunks, e->hidden_dim}};
    if (e->pooled) a[n++] = (out_array){"pooled", "pooled", e->pooled, 2, {rows, e->pooled_dim}};
    if (e->embeds) a[n++] = (out_array){"text_embeds", "text_embeds", e->embeds, 2, {rows, e->embeds_dim}};
    return n;
}

static void body_json(const cs_encode_req *e, const out_array *a, int n, cs_buf *b) {
    cs_buf_put(b, "{", 1);
    for (int i = 0; i < n; i++) {
        cs_buf_printf(b, "%s\"%s\":", i ? "," : "", a[i].json_name);
        cs_buf_json_floats(b, a[i].data, e->dtype, a[i].ndim, a[i].shape);
    }
    if (e->info) {
        cs_buf_puts(b, ",\"truncated\":[");
        for (int32_t i = 0; i < e->n; i++) cs_buf_printf(b, "%s%d", i ? "," : "", e->info[i].truncated);
        cs_buf_puts(b, "]");
    }
    cs_buf_put(b, "}", 1);
}

static clipskip_status body_safetensors(const cs_server *s, const cs_encode_req *e,
                                        const out_array *a, int n, cs_buf *b) {
    static const char *ln[] = {"auto", "on", "off"};
    cs_st_out_tensor t[3];
    for (int i = 0; i < n; i++) {
        t[i] = (cs_st_out_tensor){a[i].name, e->dtype, a[i].ndim, {0}, a[i].data};
        memcpy(t[i].shape, a[i].shape, sizeof a[i].shape);
    }
    char skip[16], tower[16], trunc[24], chunks[16];
    snprintf(chunks, sizeof chunks, "%d", e->chunks);
    long n_trunc = 0;
    for (int32_t i = 0; e->info && i < e->n; i++) n_trunc += e->info[i].truncated > 0;
    snprintf(skip, sizeof skip, "%d", e->row.clip_skip);
    snprintf(tower, sizeof tower, "%d", e->tower);
    snprintf(trunc, sizeof trunc, "%ld", n_trunc);
    cs_st_meta meta[] = {
        {"format", "clipskip"}, {"clipskip_version", (char *)clipskip_version()},
        {"model", s->model_id ? s->model_id : ""}, {"clip_skip", skip},
        {"clip_skip_convention", "A1111 (1 = all layers; 0 = model default)"},
        {"final_ln", (char *)ln[e->row.final_ln]},
        {"tower", e->tower == CLIPSKIP_TOWER_ALL ? "all" : tower}, {"prompts_truncated", trunc},
        {"syntax", e->a1111 ? "a1111" : "plain"}, {"chunks", chunks}};
    return cs_st_buffer(b, t, n, meta, (int)(sizeof meta / sizeof meta[0]));
}

static enum MHD_Result reply_encode(cs_req *r, cs_encode_req *e, const cs_job *j) {
    a1111_finish(r->srv, e);
    out_array a[3];
    int n = out_arrays(e, a);
    cs_buf b = {0};
    const char *ctype = "application/json";
    clipskip_status st = CLIPSKIP_OK;
    timing_headers(r, e, j);
    if (e->format == FMT_JSON) {
        size_t numbers = 0; /* ~12 bytes each: 9 digits, sign, point, comma */
        for (int i = 0; i < n; i++) numbers += (size_t)(a[i].shape[0] * a[i].shape[1] * (a[i].ndim == 3 ? a[i].shape[2] : 1));
        cs_buf_reserve(&b, numbers * 12 + (size_t)e->n * 16 + 256);
        body_json(e, a, n, &b);
    } else if (e->format == FMT_NPY) {
        ctype = "application/x-npy";
        st = cs_npy_buffer(&b, a[0].data, e->dtype, a[0].ndim, a[0].shape);
    } else {
        ctype = "application/x-safetensors";
        st = body_safetensors(r->srv, e, a, n, &b);
    }
    if (st != CLIPSKIP_OK || b.failed) {
        cs_buf_free(&b);
        return cs_reply_error(r, 503, "unhealthy", "out of memory for the reply");
    }
    cs_encode_req_free(r->enc); /* the reply holds its own copy */
    r->enc = NULL;
    size_t len;
    char *body = cs_buf_take(&b, &len);
    return cs_reply(r, 200, ctype, body, len);
}

/* ------------------------------------------------------------------ routes */

static cJSON *parse_body(cs_req *r, verr *v) {
    const char *end = NULL;
    if (r->body.len == 0) return bad(v, "body: empty; send a JSON object"), NULL;
    cJSON *root = cs_json_parse(r->body.data, r->body.len, &end);
    if (!root) {
        size_t at = end && end >= r->body.data ? (size_t)(end - r->body.data) : 0;
        bad(v, "body: malformed JSON near byte %zu", at);
        return NULL;
    }
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        bad(v, "body: expected a JSON object, found %s", json_type(root));
        return NULL;
    }
    /* cJSON ends strings at an escaped NUL; refuse rather than encode a shortened prompt */
    if (r->body.len >= 6 && memmem(r->body.data, r->body.len, "\\u0000", 6)) {
        cJSON_Delete(root);
        bad(v, "inputs: NUL characters (\\u0000) are not allowed in prompts");
        return NULL;
    }
    return root;
}

static int parse_encode(cs_server *s, cs_encode_req *e, verr *v) {
    cJSON *root = e->json;
    if (check_fields(root, "inputs|clip_skip|layer|final_ln|outputs|format|dtype|tower|clean|syntax", v) ||
        parse_tower(s, root, 1, &e->tower, v))
        return -1;
    e->t0 = e->tower == CLIPSKIP_TOWER_ALL ? 0 : e->tower;
    e->t1 = e->tower == CLIPSKIP_TOWER_ALL ? s->n_towers : e->tower + 1;
    if (parse_clean(root, &e->clean, v) || parse_depth(s, root, e, v) || parse_outputs(s, root, e, v) ||
        parse_format(root, e, v) || parse_syntax(root, e, v) || parse_inputs(s, root, e, v))
        return -1;
    if (e->a1111 && !e->is_text) return bad(v, "syntax: a1111 takes text inputs, not token ids");
    e->reply_dtype = e->dtype;
    if (e->a1111) e->dtype = CLIPSKIP_DTYPE_F32; /* weighted in f32, then the dtype asked */
    double t0 = cs_monotonic();
    int rc = make_ids(s, e, v);
    e->tokenize_s = cs_monotonic() - t0;
    return rc;
}

enum MHD_Result cs_route_encode(cs_req *r) {
    cs_server *s = r->srv;
    if (!cs_req_admit(r))
        return cs_reply_error(r, 429, "overloaded", "%d requests are being handled (--max-concurrent-requests); retry later",
                              s->p.max_concurrent_requests);
    verr v;
    cs_encode_req *e = r->enc = calloc(1, sizeof *e);
    if (!e) return cs_reply_error(r, 503, "unhealthy", "out of memory");
    if (!(e->json = parse_body(r, &v)) || parse_encode(s, e, &v))
        return cs_reply_error(r, 422, "validation", "%s", v.msg);
    cJSON_Delete(e->json); /* texts were tokenized: the tree is no longer needed */
    e->json = NULL;
    free(e->texts);
    e->texts = NULL;
    if (alloc_results(e) || cache_lookup(s, e))
        return cs_reply_error(r, 503, "unhealthy", "out of memory for %d results", e->n);
    if (e->n_miss == 0) return reply_encode(r, e, NULL);
    if (build_job(e)) return cs_reply_error(r, 503, "unhealthy", "out of memory");
    return cs_req_submit(r, &e->job);
}

enum MHD_Result cs_route_encode_finish(cs_req *r) {
    cs_encode_req *e = r->enc;
    if (e->job.status != CLIPSKIP_OK)
        return cs_reply_error(r, 424, "backend", "%s", e->job.error);
    cache_store(r->srv, e);
    return reply_encode(r, e, &e->job);
}

/* One input's tokens: ids (77), the vocabulary strings up to the EOS, counts. */
static void tokens_json(const cs_server *s, const int32_t *ids, const clipskip_token_info *in,
                        cs_buf *b) {
    cs_buf_puts(b, "{\"ids\":[");
    for (int p = 0; p < CLIPSKIP_CONTEXT; p++) cs_buf_printf(b, "%s%d", p ? "," : "", ids[p]);
    cs_buf_puts(b, "],\"tokens\":[");
    for (int p = 0; p <= in->eos_pos && p < CLIPSKIP_CONTEXT; p++) {
        const char *t = clipskip_token_str(s->tok, ids[p]);
        if (p) cs_buf_put(b, ",", 1);
        cs_buf_json_string(b, t ? t : "");
    }
    cs_buf_printf(b, "],\"eos_pos\":%d,\"n_tokens\":%d,\"truncated\":%d}", in->eos_pos, in->n_tokens,
                  in->truncated);
}

enum MHD_Result cs_route_tokenize(cs_req *r) {
    cs_server *s = r->srv;
    verr v;
    cs_encode_req *e = r->enc = calloc(1, sizeof *e);
    if (!e) return cs_reply_error(r, 503, "unhealthy", "out of memory");
    if (!(e->json = parse_body(r, &v)) || check_fields(e->json, "inputs|tower|clean", &v) ||
        parse_tower(s, e->json, 0, &e->tower, &v) || parse_clean(e->json, &e->clean, &v))
        return cs_reply_error(r, 422, "validation", "%s", v.msg);
    e->t0 = e->tower, e->t1 = e->tower + 1;
    if (parse_inputs(s, e->json, e, &v) || (!e->is_text && bad(&v, "inputs: /tokenize takes text")) ||
        make_ids(s, e, &v))
        return cs_reply_error(r, 422, "validation", "%s", v.msg);
    cs_buf b = {0};
    cs_buf_put(&b, "[", 1);
    for (int32_t i = 0; i < e->n; i++) {
        if (i) cs_buf_put(&b, ",", 1);
        tokens_json(s, e->ids[0] + (size_t)i * CLIPSKIP_CONTEXT, &e->info[i], &b);
    }
    cs_buf_put(&b, "]", 1);
    if (b.failed) {
        cs_buf_free(&b);
        return cs_reply_error(r, 503, "unhealthy", "out of memory for the reply");
    }
    size_t len;
    char *body = cs_buf_take(&b, &len);
    return cs_reply(r, 200, "application/json", body, len);
}
