/* The encoder's public calls: backend choice, argument checks, passes, towers, text. */
#include "encoder_internal.h"
#include "internal.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ lifecycle */

static const cs_backend_ops *choose_backend(clipskip_backend want) {
#ifdef CLIPSKIP_WITH_CUDA
    if (want == CLIPSKIP_BACKEND_CUDA || (want == CLIPSKIP_BACKEND_AUTO && cs_cuda_available()))
        return &cs_backend_cuda;
#endif
    if (want == CLIPSKIP_BACKEND_CUDA) return NULL;
    return &cs_backend_cpu;
}

/* CLIPSKIP_PASS_ROWS=N (experiment, tests/gpu/check.sh): passes of at most N rows instead of
 * max_batch. Rows give the same bits in any pass (batch invariance), so this changes only the
 * timing: on CUDA with CLIPSKIP_CUDA_OVERLAP=1 the download of one pass overlaps the compute of
 * the next. */
static clipskip_status pass_rows_env(int32_t *rows) {
    const char *v = getenv("CLIPSKIP_PASS_ROWS");
    if (!v || !*v) return CLIPSKIP_OK;
    char *end = NULL;
    const long n = strtol(v, &end, 10);
    if (*end || n < 1 || n > INT32_MAX)
        return cs_fail(CLIPSKIP_ERR_INVALID_ARG, "CLIPSKIP_PASS_ROWS=%s: want a positive number of rows", v);
    if (n < *rows) *rows = (int32_t)n;
    return CLIPSKIP_OK;
}

clipskip_status clipskip_encoder_init(const clipskip_model *model,
                                      const clipskip_encoder_params *params,
                                      clipskip_encoder **out) {
    if (!model || !out) return cs_fail(CLIPSKIP_ERR_INVALID_ARG, "encoder_init: model and out must not be NULL");
    *out = NULL;
    clipskip_encoder_params p = params ? *params : clipskip_encoder_default_params();
    if (p.max_batch <= 0) p.max_batch = clipskip_encoder_default_params().max_batch;
    if (p.backend < CLIPSKIP_BACKEND_AUTO || p.backend > CLIPSKIP_BACKEND_CUDA)
        return cs_fail(CLIPSKIP_ERR_INVALID_ARG, "encoder_init: unknown backend %d", (int)p.backend);
    if (p.compute_dtype != CLIPSKIP_DTYPE_F16 && p.compute_dtype != CLIPSKIP_DTYPE_BF16 &&
        p.compute_dtype != CLIPSKIP_DTYPE_F32)
        return cs_fail(CLIPSKIP_ERR_INVALID_ARG, "encoder_init: unknown compute dtype %d", (int)p.compute_dtype);
    int32_t pass_rows = p.max_batch;
    CS_TRY(pass_rows_env(&pass_rows));
    const cs_backend_ops *ops = choose_backend(p.backend);
    if (!ops)
        return cs_fail(CLIPSKIP_ERR_BACKEND, "backend cuda requested but this build of clipskip "
                                             "has no CUDA backend (%s)", clipskip_build_info());
    clipskip_encoder *e = cs_calloc(1, sizeof *e);
    if (!e) return CLIPSKIP_ERR_NOMEM;
    e->model = model;
    e->ops = ops;
    e->params = p;
    e->last_device_s = -1.0;
    e->pass_rows = pass_rows;
    for (int t = 0; t < model->n_towers; t++) {
        const clipskip_tower_info *in = &model->towers[t].info;
        if (in->d_model > e->max_d) e->max_d = in->d_model;
        if (in->d_mlp > e->max_f) e->max_f = in->d_mlp;
        if (in->proj_dim > e->max_e) e->max_e = in->proj_dim;
    }
    clipskip_status st = ops->init(model, &p, &e->be);
    if (st != CLIPSKIP_OK) {
        free(e);
        return st;
    }
    *out = e;
    return CLIPSKIP_OK;
}

void clipskip_encoder_free(clipskip_encoder *e) {
    if (!e) return;
    cs_encoder_release_buffers(e);
    e->ops->free(e->be);
    free(e);
}

clipskip_backend clipskip_encoder_backend(const clipskip_encoder *e) {
    return e ? e->ops->kind : CLIPSKIP_BACKEND_AUTO;
}

const char *clipskip_encoder_device(const clipskip_encoder *e) {
    return e ? e->ops->device_name(e->be) : "";
}

void clipskip_encoder_memory(const clipskip_encoder *e, size_t *weight_bytes,
                             size_t *activation_bytes) {
    if (weight_bytes) *weight_bytes = 0;
    if (activation_bytes) *activation_bytes = 0;
    if (e) e->ops->memory(e->be, weight_bytes, activation_bytes);
}

double clipskip_encoder_last_device_seconds(const clipskip_encoder *e) {
    return e ? e->last_device_s : -1.0;
}

void *clipskip_host_alloc(clipskip_encoder *e, size_t bytes) {
    if (!e || bytes == 0) {
        cs_fail(CLIPSKIP_ERR_INVALID_ARG, "host_alloc: %s", e ? "0 bytes" : "NULL encoder");
        return NULL;
    }
    if (e->ops->host_alloc) return e->ops->host_alloc(e->be, bytes);
    void *p = NULL;
    if (posix_memalign(&p, 64, bytes)) {
        cs_fail(CLIPSKIP_ERR_NOMEM, "host_alloc: out of memory for %zu bytes", bytes);
        return NULL;
    }
    return p;
}

void clipskip_host_free(clipskip_encoder *e, void *p) {
    if (!p) return;
    if (e && e->ops->host_free)
        e->ops->host_free(e->be, p);
    else
        free(p);
}

clipskip_status clipskip_encoder_measure_peak(clipskip_encoder *e, double *flops_per_s,
                                              double *bytes_per_s) {
    if (!e || !flops_per_s || !bytes_per_s)
        return cs_fail(CLIPSKIP_ERR_INVALID_ARG, "measure_peak: NULL argument");
    if (!e->ops->measure_peak)
        return cs_fail(CLIPSKIP_ERR_UNSUPPORTED, "backend %s cannot measure its peak", e->ops->name);
    return e->ops->measure_peak(e->be, flops_per_s, bytes_per_s);
}

/* ------------------------------------------------------------------ checks */

/* Towers a call runs: [*t0, *t1). */
clipskip_status cs_tower_range(const clipskip_model *m, int32_t tower, int *t0, int *t1) {
    if (tower == CLIPSKIP_TOWER_ALL) {
        *t0 = 0, *t1 = m->n_towers;
        return CLIPSKIP_OK;
    }
    if (tower < 0 || tower >= m->n_towers)
        return cs_fail(CLIPSKIP_ERR_INVALID_ARG, "tower %d out of range: the model has %d tower%s (0..%d, or -1 for all)",
                       tower, m->n_towers, m->n_towers == 1 ? "" : "s", m->n_towers - 1);
    *t0 = tower, *t1 = tower + 1;
    return CLIPSKIP_OK;
}

static clipskip_status check_row(const clipskip_row_options *r, int32_t row, int32_t max_skip) {
    if (r->clip_skip < 0 || r->clip_skip > max_skip)
        return cs_fail(CLIPSKIP_ERR_INVALID_ARG,
                       "row %d: clip skip %d out of range: valid 1..%d (1 = all layers, 0 = the "
                       "tower's default)", row, r->clip_skip, max_skip);
    if (r->final_ln < CLIPSKIP_FINAL_LN_AUTO || r->final_ln > CLIPSKIP_FINAL_LN_OFF)
        return cs_fail(CLIPSKIP_ERR_INVALID_ARG, "row %d: final_ln %d is not auto/on/off", row,
                       (int)r->final_ln);
    return CLIPSKIP_OK;
}

static clipskip_status check_options(const clipskip_model *m, const clipskip_encode_options *o,
                                     int32_t n_rows, const clipskip_outputs *out, int t0, int t1) {
    if (o->outputs == 0 || (o->outputs & ~7u))
        return cs_fail(CLIPSKIP_ERR_INVALID_ARG, "outputs 0x%x: ask for hidden, pooled and/or text_embeds", o->outputs);
    if (o->out_dtype != CLIPSKIP_DTYPE_F32 && o->out_dtype != CLIPSKIP_DTYPE_F16)
        return cs_fail(CLIPSKIP_ERR_INVALID_ARG, "output dtype %s not supported: use F32 or F16", cs_dtype_name(o->out_dtype));
    if ((o->outputs & CLIPSKIP_OUT_HIDDEN) && !out->hidden)
        return cs_fail(CLIPSKIP_ERR_INVALID_ARG, "hidden output asked but outputs.hidden is NULL");
    if ((o->outputs & CLIPSKIP_OUT_POOLED) && !out->pooled)
        return cs_fail(CLIPSKIP_ERR_INVALID_ARG, "pooled output asked but outputs.pooled is NULL");
    if ((o->outputs & CLIPSKIP_OUT_TEXT_EMBEDS) && !out->text_embeds)
        return cs_fail(CLIPSKIP_ERR_INVALID_ARG, "text_embeds asked but outputs.text_embeds is NULL");
    if ((o->outputs & CLIPSKIP_OUT_TEXT_EMBEDS) && !m->towers[t1 - 1].proj.data)
        return cs_fail(CLIPSKIP_ERR_INVALID_ARG, "text_embeds asked but tower %d has no text projection", t1 - 1);
    int32_t max_skip = 1 << 30;
    for (int t = t0; t < t1; t++)
        if (m->towers[t].info.n_layers < max_skip) max_skip = m->towers[t].info.n_layers;
    if (!o->per_row) return check_row(&o->row, 0, max_skip);
    for (int32_t i = 0; i < n_rows; i++) CS_TRY(check_row(&o->per_row[i], i, max_skip));
    return CLIPSKIP_OK;
}

static clipskip_status check_ids(const int32_t *ids, int32_t n, int32_t vocab) {
    for (size_t i = 0; i < (size_t)n * CLIPSKIP_CONTEXT; i++)
        if (ids[i] < 0 || ids[i] >= vocab)
            return cs_fail(CLIPSKIP_ERR_INVALID_ARG, "token id %d at row %zu position %zu is outside the vocabulary 0..%d",
                           ids[i], i / CLIPSKIP_CONTEXT, i % CLIPSKIP_CONTEXT, vocab - 1);
    return CLIPSKIP_OK;
}

/* ------------------------------------------------------------------ towers and passes */

/* Where one tower's outputs go: hidden rows may be a column block of a wider (concatenated)
 * hidden output, pooled/embeds only for the tower that provides them. */
typedef struct {
    char *hidden;         /* (n, 77, hid_stride) at column hid_col, or NULL */
    int32_t hid_stride, hid_col;
    char *pooled, *embeds;
} tower_dst;

typedef struct {
    cs_row_plan *rows;
    int32_t *lens, *tok, *pos, *idx;
    void *tmp;            /* (max_batch, 77, D) staging for concatenated hidden output */
} pass_mem;

static void pass_mem_free(pass_mem *pm) {
    free(pm->rows), free(pm->lens), free(pm->tok), free(pm->pos), free(pm->idx), free(pm->tmp);
}

static clipskip_status pass_mem_init(pass_mem *pm, int32_t rows, size_t tmp_bytes) {
    size_t toks = (size_t)rows * CLIPSKIP_CONTEXT;
    memset(pm, 0, sizeof *pm);
    pm->rows = cs_malloc(rows * sizeof *pm->rows);
    pm->lens = cs_malloc(rows * sizeof *pm->lens);
    pm->tok = cs_malloc(toks * sizeof *pm->tok);
    pm->pos = cs_malloc(toks * sizeof *pm->pos);
    pm->idx = cs_malloc(toks * sizeof *pm->idx);
    if (tmp_bytes) pm->tmp = cs_malloc(tmp_bytes);
    if (!pm->rows || !pm->lens || !pm->tok || !pm->pos || !pm->idx || (tmp_bytes && !pm->tmp)) {
        pass_mem_free(pm);
        return CLIPSKIP_ERR_NOMEM;
    }
    return CLIPSKIP_OK;
}

/* Copy (n, 77, D) rows into columns [col, col+D) of a (n, 77, stride) output. */
static void scatter_columns(char *dst, const char *src, int32_t n, int32_t d, int32_t stride,
                            int32_t col, size_t esz) {
    for (size_t r = 0; r < (size_t)n * CLIPSKIP_CONTEXT; r++)
        memcpy(dst + (r * stride + col) * esz, src + r * d * esz, d * esz);
}

static clipskip_status encode_tower(clipskip_encoder *e, int tw, const int32_t *ids, int32_t n,
                                    const clipskip_encode_options *o, const tower_dst *dst) {
    const cs_tower *t = &e->model->towers[tw];
    int32_t d = t->info.d_model, mb = e->pass_rows, E = t->info.proj_dim;
    size_t esz = cs_dtype_size(o->out_dtype), row_hid = (size_t)CLIPSKIP_CONTEXT * d;
    int concat = dst->hidden && dst->hid_stride != d;
    CS_TRY(check_ids(ids, n, t->info.vocab));
    pass_mem pm;
    CS_TRY(pass_mem_init(&pm, n < mb ? n : mb, concat ? (size_t)(n < mb ? n : mb) * row_hid * esz : 0));
    clipskip_encode_options po = *o;
    po.outputs = (dst->hidden ? CLIPSKIP_OUT_HIDDEN : 0) | (dst->pooled ? CLIPSKIP_OUT_POOLED : 0) |
                 (dst->embeds ? CLIPSKIP_OUT_TEXT_EMBEDS : 0);
    clipskip_status st = CLIPSKIP_OK;
    for (int32_t r0 = 0; r0 < n && st == CLIPSKIP_OK; r0 += mb) {
        int32_t nr = n - r0 < mb ? n - r0 : mb;
        const int32_t *pid = ids + (size_t)r0 * CLIPSKIP_CONTEXT;
        cs_pass ps = {.n_rows = nr, .rows = pm.rows, .lens = pm.lens, .tok = pm.tok,
                      .pos = pm.pos, .idx = pm.idx, .out_dtype = o->out_dtype};
        if (dst->hidden)
            ps.hidden = concat ? pm.tmp : dst->hidden + (size_t)r0 * row_hid * esz;
        if (dst->pooled) ps.pooled = dst->pooled + (size_t)r0 * d * esz;
        if (dst->embeds) ps.embeds = dst->embeds + (size_t)r0 * E * esz;
        cs_plan_rows(t, pid, nr, &po, r0, pm.rows);
        st = cs_encode_pass(e, &ps, tw, pid);
        /* The next pass is queued while this one runs; the host waits only where it reads the
         * output itself (the concatenation below), after the last pass, or after a failure. */
        if (st == CLIPSKIP_OK && !concat && r0 + nr < n) continue;
        clipskip_status fs = e->ops->finish(e->be); /* wait even after a failure */
        if (st == CLIPSKIP_OK) st = fs;
        if (e->ops->device_seconds) e->last_device_s += e->ops->device_seconds(e->be);
        if (st == CLIPSKIP_OK && concat)
            scatter_columns(dst->hidden + (size_t)r0 * CLIPSKIP_CONTEXT * dst->hid_stride * esz,
                            pm.tmp, nr, d, dst->hid_stride, dst->hid_col, esz);
    }
    pass_mem_free(&pm);
    return st;
}

/* Towers [t0, t1) each with its ids ((t1-t0) arrays of (n, 77)). */
static clipskip_status encode_towers(clipskip_encoder *e, const int32_t *const *ids, int32_t n,
                                     const clipskip_encode_options *o, clipskip_outputs *out,
                                     int t0, int t1) {
    int32_t stride = 0, col = 0;
    e->last_device_s = e->ops->device_seconds ? 0.0 : -1.0;
    for (int t = t0; t < t1; t++) stride += e->model->towers[t].info.d_model;
    for (int t = t0; t < t1; t++) {
        tower_dst dst = {0};
        if (o->outputs & CLIPSKIP_OUT_HIDDEN) {
            dst.hidden = out->hidden;
            dst.hid_stride = stride;
            dst.hid_col = col;
        }
        if (t == t1 - 1 && (o->outputs & CLIPSKIP_OUT_POOLED)) dst.pooled = out->pooled;
        if (t == t1 - 1 && (o->outputs & CLIPSKIP_OUT_TEXT_EMBEDS)) dst.embeds = out->text_embeds;
        col += e->model->towers[t].info.d_model;
        if (!dst.hidden && !dst.pooled && !dst.embeds) continue; /* nothing asked of it */
        CS_TRY(encode_tower(e, t, ids[t - t0], n, o, &dst));
    }
    return CLIPSKIP_OK;
}

/* Checks a call's arguments; a NULL *o becomes the defaults, kept in *dflt. */
static clipskip_status check_call(clipskip_encoder *e, int32_t n_rows,
                                  const clipskip_encode_options **o, clipskip_encode_options *dflt,
                                  clipskip_outputs *out, int *t0, int *t1) {
    if (!e || !out) return cs_fail(CLIPSKIP_ERR_INVALID_ARG, "encode: encoder and outputs must not be NULL");
    if (n_rows < 0) return cs_fail(CLIPSKIP_ERR_INVALID_ARG, "encode: n_rows %d < 0", n_rows);
    if (!*o) {
        *dflt = clipskip_encode_default_options();
        *o = dflt;
    }
    CS_TRY(cs_tower_range(e->model, (*o)->tower, t0, t1));
    return check_options(e->model, *o, n_rows, out, *t0, *t1);
}

clipskip_status clipskip_encode_ids(clipskip_encoder *e, const int32_t *ids, int32_t n_rows,
                                    const clipskip_encode_options *o, clipskip_outputs *out) {
    int t0 = 0, t1 = 0;
    clipskip_encode_options dflt;
    CS_TRY(check_call(e, n_rows, &o, &dflt, out, &t0, &t1));
    if (n_rows == 0) return CLIPSKIP_OK;
    if (!ids) return cs_fail(CLIPSKIP_ERR_INVALID_ARG, "encode_ids: ids is NULL");
    const int32_t *per_tower[CS_MAX_TOWERS] = {ids, ids};
    return encode_towers(e, per_tower, n_rows, o, out, t0, t1);
}

clipskip_status clipskip_encode_tower_ids(clipskip_encoder *e, const int32_t *const *ids,
                                          int32_t n_rows, const clipskip_encode_options *o,
                                          clipskip_outputs *out) {
    int t0 = 0, t1 = 0;
    clipskip_encode_options dflt;
    CS_TRY(check_call(e, n_rows, &o, &dflt, out, &t0, &t1));
    if (n_rows == 0) return CLIPSKIP_OK;
    if (!ids) return cs_fail(CLIPSKIP_ERR_INVALID_ARG, "encode_tower_ids: ids_per_tower is NULL");
    for (int t = t0; t < t1; t++)
        if (!ids[t - t0])
            return cs_fail(CLIPSKIP_ERR_INVALID_ARG, "encode_tower_ids: ids of tower %d is NULL", t);
    return encode_towers(e, ids, n_rows, o, out, t0, t1);
}

/* texts[0..n) into ids; errors name the prompt as base + i. */
static clipskip_status tokenize_all(const clipskip_tokenizer *tok, const cs_tower *t,
                                    const char *const *texts, int32_t n, int32_t base,
                                    int32_t clean, int32_t *ids, clipskip_token_info *info) {
    clipskip_clean c = clean < 0 ? t->info.default_clean : (clipskip_clean)clean;
    for (int32_t i = 0; i < n; i++) {
        if (!texts[i]) return cs_fail(CLIPSKIP_ERR_INVALID_ARG, "prompt %d is NULL", base + i);
        clipskip_status st = clipskip_tokenize(tok, texts[i], strlen(texts[i]), c, t->info.pad_id,
                                               ids + (size_t)i * CLIPSKIP_CONTEXT,
                                               info ? &info[i] : NULL);
        if (st != CLIPSKIP_OK) {
            cs_error_prefix("prompt %d: ", base + i);
            return st;
        }
    }
    return CLIPSKIP_OK;
}

/* One chunk of prompts tokenized for every tower of the call, on any thread. */
typedef struct {
    const clipskip_encoder *e;
    const char *const *texts;
    int32_t first, n, clean;
    int t0, t1;
    int32_t *ids[CS_MAX_TOWERS]; /* (chunk, 77) each, owned by the caller */
    clipskip_token_info *info;   /* NULL, or the call's info array (all rows) */
    clipskip_status st;
    char msg[512]; /* the failure's detail, carried to the calling thread */
} tok_chunk;

/* Point c at rows first .. first + n - 1 (its ids buffers stay). */
static void chunk_at(tok_chunk *c, const clipskip_encoder *e, const char *const *texts,
                     const clipskip_encode_options *o, int t0, int t1, clipskip_token_info *info,
                     int32_t first, int32_t n) {
    c->e = e, c->texts = texts, c->first = first, c->n = n, c->clean = o->clean;
    c->t0 = t0, c->t1 = t1, c->info = info, c->st = CLIPSKIP_OK, c->msg[0] = 0;
}

/* ids buffers of rows (77 ids each) for towers t0..t1-1; free them with chunk_free. */
static clipskip_status chunk_alloc(tok_chunk *c, int32_t rows, int t0, int t1) {
    memset(c, 0, sizeof *c);
    for (int t = t0; t < t1; t++)
        if (!(c->ids[t - t0] = cs_malloc((size_t)rows * CLIPSKIP_CONTEXT * sizeof(int32_t))))
            return CLIPSKIP_ERR_NOMEM;
    return CLIPSKIP_OK;
}

static void chunk_free(tok_chunk *c) {
    for (int t = 0; t < CS_MAX_TOWERS; t++) free(c->ids[t]);
}

static void tokenize_chunk(tok_chunk *c) {
    const clipskip_tokenizer *tok = c->e->model->tokenizer;
    c->st = CLIPSKIP_OK;
    for (int t = c->t0; t < c->t1 && c->st == CLIPSKIP_OK; t++)
        c->st = tokenize_all(tok, &c->e->model->towers[t], c->texts + c->first, c->n, c->first,
                             c->clean, c->ids[t - c->t0],
                             t == c->t1 - 1 && c->info ? c->info + c->first : NULL);
    if (c->st != CLIPSKIP_OK) snprintf(c->msg, sizeof c->msg, "%s", clipskip_last_error());
}

static void *tokenize_chunk_thread(void *arg) {
    tokenize_chunk(arg);
    return NULL;
}

/* Output pointers of rows first.. of the call (the options were checked already). */
static clipskip_outputs outputs_from(const clipskip_encoder *e, const clipskip_outputs *out,
                                     const clipskip_encode_options *o, int32_t first) {
    int32_t hd = 0, pd = 0, ed = 0;
    clipskip_output_dims(e->model, o, &hd, &pd, &ed);
    size_t es = cs_dtype_size(o->out_dtype);
    clipskip_outputs r = {NULL, NULL, NULL};
    if (out->hidden) r.hidden = (char *)out->hidden + (size_t)first * CLIPSKIP_CONTEXT * hd * es;
    if (out->pooled) r.pooled = (char *)out->pooled + (size_t)first * pd * es;
    if (out->text_embeds) r.text_embeds = (char *)out->text_embeds + (size_t)first * ed * es;
    return r;
}

/* A call of more than max_batch prompts: chunk c + 1 is tokenized on a second thread while
 * chunk c is encoded (on CUDA the host would otherwise leave the device idle while it
 * tokenizes). A tokenization failure stops the call after the chunk being encoded; rows of
 * earlier chunks are then already written (outputs are unspecified after a failure). */
static clipskip_status encode_text_overlapped(clipskip_encoder *e, const char *const *texts,
                                              int32_t n_rows, const clipskip_encode_options *o,
                                              clipskip_outputs *out, clipskip_token_info *info,
                                              int t0, int t1) {
    const int32_t chunk = e->params.max_batch;
    tok_chunk c[2];
    clipskip_status st = chunk_alloc(&c[0], chunk, t0, t1);
    clipskip_status st1 = chunk_alloc(&c[1], chunk, t0, t1);
    if (st == CLIPSKIP_OK) st = st1;
    double dev = e->ops->device_seconds ? 0.0 : -1.0;
    for (int32_t first = 0, k = 0; st == CLIPSKIP_OK && first < n_rows; first += chunk, k ^= 1) {
        tok_chunk *cur = &c[k], *next = &c[k ^ 1];
        if (first == 0) { /* the first chunk: nothing to overlap with */
            chunk_at(cur, e, texts, o, t0, t1, info, 0, n_rows < chunk ? n_rows : chunk);
            tokenize_chunk(cur);
            if ((st = cur->st) != CLIPSKIP_OK) break;
        }
        const int32_t nf = first + chunk;
        pthread_t th;
        int threaded = 0;
        if (nf < n_rows) {
            chunk_at(next, e, texts, o, t0, t1, info, nf, n_rows - nf < chunk ? n_rows - nf : chunk);
            threaded = pthread_create(&th, NULL, tokenize_chunk_thread, next) == 0;
            if (!threaded) tokenize_chunk(next); /* no thread: tokenize here, in turn */
        }
        clipskip_encode_options oc = *o;
        if (o->per_row) oc.per_row = o->per_row + first;
        clipskip_outputs oo = outputs_from(e, out, o, first);
        st = encode_towers(e, (const int32_t *const *)cur->ids, cur->n, &oc, &oo, t0, t1);
        if (dev >= 0 && e->last_device_s > 0) dev += e->last_device_s;
        if (threaded) pthread_join(th, NULL);
        if (st == CLIPSKIP_OK && nf < n_rows && next->st != CLIPSKIP_OK)
            st = cs_fail(next->st, "%s", next->msg);
    }
    e->last_device_s = dev;
    chunk_free(&c[0]);
    chunk_free(&c[1]);
    return st;
}

/* Whether a text call overlaps tokenization with encoding: calls of several passes on CUDA, or
 * wherever CLIPSKIP_OVERLAP_TOKENIZE=1 (the tests run the path on the CPU backend that way). */
static int overlap_tokenize(const clipskip_encoder *e, int32_t n_rows) {
    if (n_rows <= e->params.max_batch) return 0;
    const char *v = getenv("CLIPSKIP_OVERLAP_TOKENIZE");
    if (v && *v) return strcmp(v, "0") != 0;
    return e->ops->kind == CLIPSKIP_BACKEND_CUDA;
}

clipskip_status clipskip_encode_text(clipskip_encoder *e, const char *const *texts,
                                     int32_t n_rows, const clipskip_encode_options *o,
                                     clipskip_outputs *out, clipskip_token_info *info) {
    int t0 = 0, t1 = 0;
    clipskip_encode_options dflt;
    CS_TRY(check_call(e, n_rows, &o, &dflt, out, &t0, &t1));
    if (n_rows == 0) return CLIPSKIP_OK;
    if (!texts) return cs_fail(CLIPSKIP_ERR_INVALID_ARG, "encode_text: texts is NULL");
    if (o->clean < -1 || o->clean > CLIPSKIP_CLEAN_HF_FAST)
        return cs_fail(CLIPSKIP_ERR_INVALID_ARG, "unknown text cleanup mode %d", o->clean);
    if (!e->model->tokenizer)
        return cs_fail(CLIPSKIP_ERR_INVALID_ARG, "encode_text: the model has no tokenizer");
    if (overlap_tokenize(e, n_rows)) return encode_text_overlapped(e, texts, n_rows, o, out, info, t0, t1);
    tok_chunk all;
    clipskip_status st = chunk_alloc(&all, n_rows, t0, t1);
    if (st == CLIPSKIP_OK) {
        chunk_at(&all, e, texts, o, t0, t1, info, 0, n_rows);
        tokenize_chunk(&all);
        st = all.st;
    }
    if (st == CLIPSKIP_OK) st = encode_towers(e, (const int32_t *const *)all.ids, n_rows, o, out, t0, t1);
    chunk_free(&all);
    return st;
}
