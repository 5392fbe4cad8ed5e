#include "dataset_shard.h"

#include "internal.h"
#include "safetensors.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define T CLIPSKIP_CONTEXT

static size_t out_esz(const cs_run *r) { return cs_dtype_size(r->opt.out_dtype); }

cs_shard *cs_shard_new(const cs_run *r) {
    cs_shard *s = calloc(1, sizeof *s);
    size_t n = (size_t)r->shard_size;
    if (!s) return NULL;
    s->line = calloc(n, sizeof *s->line);
    s->row = calloc(n, sizeof *s->row);
    s->tokens = calloc(n, sizeof *s->tokens);
    s->truncated = calloc(n, sizeof *s->truncated);
    s->why = calloc(n, sizeof *s->why);
    s->uniq = calloc(n, sizeof *s->uniq);
    for (s->hcap = 16; s->hcap < 2 * n; s->hcap *= 2) {}
    s->htab = calloc(s->hcap, sizeof *s->htab);
    int ok = s->line && s->row && s->tokens && s->truncated && s->why && s->uniq && s->htab;
    for (int t = r->t0; t < r->t1; t++)
        ok = ok && (s->ids[t - r->t0] = malloc(n * T * sizeof(int32_t)));
    if (!ok) {
        cs_shard_free(s);
        return NULL;
    }
    return s;
}

void cs_shard_free(cs_shard *s) {
    if (!s) return;
    for (size_t i = 0; s->why && i < (size_t)s->n_records; i++) free(s->why[i]);
    free(s->line), free(s->row), free(s->tokens), free(s->truncated), free(s->why), free(s->uniq);
    free(s->htab);
    for (int t = 0; t < CS_SHARD_MAX_TOWERS; t++) free(s->ids[t]);
    clipskip_host_free(s->out_enc, s->hidden);
    clipskip_host_free(s->out_enc, s->pooled);
    clipskip_host_free(s->out_enc, s->embeds);
    free(s);
}

void cs_shard_reset(cs_shard *s, const cs_run *r, uint64_t index) {
    for (int i = 0; i < s->n_records; i++) {
        free(s->why[i]);
        s->why[i] = NULL;
    }
    s->index = index;
    s->first_record = index * (uint64_t)r->shard_size;
    s->n_records = s->n_rows = s->n_unique = 0;
    s->done_before = 0;
    memset(s->htab, 0, s->hcap * sizeof *s->htab);
}

void cs_shard_manifest_path(const cs_run *r, uint64_t index, char *buf, size_t cap) {
    snprintf(buf, cap, "%s/shard-%06llu.manifest.csv", r->dir, (unsigned long long)index);
}

/* ------------------------------------------------------------------ records */

static int same_ids(const cs_shard *s, const cs_run *r, int32_t a, int32_t b) {
    for (int t = 0; t < r->t1 - r->t0; t++)
        if (memcmp(s->ids[t] + (size_t)a * T, s->ids[t] + (size_t)b * T, T * sizeof(int32_t))) return 0;
    return 1;
}

/* The earlier unique row with the same ids in every tower as row cand, or -1 after entering
 * cand in the table. */
static int32_t find_duplicate(cs_shard *s, const cs_run *r, int32_t cand) {
    /* the first tower's ids: equal rows have equal ids in every tower, same_ids checks all */
    uint64_t h = cs_hash_bytes(s->ids[0] + (size_t)cand * T, T * sizeof(int32_t));
    for (size_t i = h & (s->hcap - 1);; i = (i + 1) & (s->hcap - 1)) {
        if (!s->htab[i]) {
            s->htab[i] = cand + 1;
            return -1;
        }
        if (same_ids(s, r, s->htab[i] - 1, cand)) return s->htab[i] - 1;
    }
}

static int skip_record(cs_shard *s, const cs_run *r, int i, const char *why, const char *input_name) {
    if (!r->skip_errors) {
        fprintf(stderr, "clipskip encode: %s:%llu: %s (--on-error skip records such lines in the "
                        "manifest and goes on)\n", input_name, (unsigned long long)s->line[i], why);
        return -1;
    }
    s->why[i] = strdup(why);
    s->row[i] = -1;
    return 0;
}

int cs_shard_add(cs_shard *s, const cs_run *r, const cs_ds_record *rec, const char *input_name) {
    int i = s->n_records++;
    s->line[i] = rec->line;
    s->tokens[i] = s->truncated[i] = 0;
    if (s->done_before) return 0; /* only counted: the shard is on disk already */
    if (rec->error) return skip_record(s, r, i, rec->error, input_name);
    int32_t cand = s->n_unique;
    const clipskip_tokenizer *tok = clipskip_model_tokenizer(r->model);
    for (int t = r->t0; t < r->t1; t++) {
        clipskip_tower_info in;
        clipskip_model_tower_info(r->model, t, &in);
        clipskip_clean clean = r->opt.clean < 0 ? in.default_clean : (clipskip_clean)r->opt.clean;
        clipskip_token_info info;
        clipskip_status st = clipskip_tokenize(tok, rec->text, rec->len, clean, in.pad_id,
                                               s->ids[t - r->t0] + (size_t)cand * T, &info);
        if (st != CLIPSKIP_OK) return skip_record(s, r, i, clipskip_last_error(), input_name);
        s->tokens[i] = info.n_tokens;
        s->truncated[i] = info.truncated;
    }
    int32_t dup = find_duplicate(s, r, cand);
    s->row[i] = s->n_rows;
    s->uniq[s->n_rows++] = dup >= 0 ? dup : cand;
    if (dup < 0) s->n_unique++;
    return 0;
}

/* ------------------------------------------------------------------ encoding */

/* The shard's output buffers, once: clipskip_host_alloc memory (pinned on CUDA), which the
 * device copies into directly; the same three shards are reused for the whole run, so the
 * pinning is paid once (measured on an H100 at batch 256: 14.5 ms per call into pinned
 * memory, 17.9 into malloc'd memory). */
static clipskip_status ensure_outputs(cs_shard *s, const cs_run *r, clipskip_encoder *enc) {
    size_t n = (size_t)r->shard_size, esz = out_esz(r);
    unsigned o = r->opt.outputs;
    if (s->out_enc && s->out_enc != enc) return cs_fail(CLIPSKIP_ERR_INVALID_ARG, "shard: outputs "
                                                        "belong to another encoder");
    s->out_enc = enc;
    if ((o & CLIPSKIP_OUT_HIDDEN) && !s->hidden && !(s->hidden = clipskip_host_alloc(enc, n * T * r->hid_dim * esz)))
        return clipskip_last_status();
    if ((o & CLIPSKIP_OUT_POOLED) && !s->pooled && !(s->pooled = clipskip_host_alloc(enc, n * r->pool_dim * esz)))
        return clipskip_last_status();
    if ((o & CLIPSKIP_OUT_TEXT_EMBEDS) && !s->embeds &&
        !(s->embeds = clipskip_host_alloc(enc, n * r->emb_dim * esz)))
        return clipskip_last_status();
    return CLIPSKIP_OK;
}

clipskip_status cs_shard_encode(cs_shard *s, const cs_run *r, clipskip_encoder *enc, int batch) {
    CS_TRY(ensure_outputs(s, r, enc));
    size_t esz = out_esz(r);
    for (int32_t u = 0; u < s->n_unique; u += batch) {
        if (r->stop && *r->stop) return CLIPSKIP_OK; /* the caller sees the flag, drops the shard */
        int32_t n = s->n_unique - u < batch ? s->n_unique - u : batch;
        const int32_t *ids[CS_SHARD_MAX_TOWERS];
        for (int t = r->t0; t < r->t1; t++) ids[t - r->t0] = s->ids[t - r->t0] + (size_t)u * T;
        clipskip_outputs out = {
            s->hidden ? s->hidden + (size_t)u * T * r->hid_dim * esz : NULL,
            s->pooled ? s->pooled + (size_t)u * r->pool_dim * esz : NULL,
            s->embeds ? s->embeds + (size_t)u * r->emb_dim * esz : NULL};
        CS_TRY(clipskip_encode_tower_ids(enc, ids, n, &r->opt, &out));
    }
    return CLIPSKIP_OK;
}

/* ------------------------------------------------------------------ files */

/* rows (n_rows, width) of an output, expanded from the unique rows when there were duplicates;
 * *owned tells the caller to free the result. */
static const char *row_major(const cs_shard *s, const char *uniq, size_t row_bytes, int *owned) {
    *owned = 0;
    if (s->n_unique == s->n_rows) return uniq; /* no duplicates: uniq[i] is row i */
    char *p = cs_malloc((size_t)s->n_rows * row_bytes + 1);
    if (!p) return NULL;
    for (int i = 0; i < s->n_rows; i++) memcpy(p + i * row_bytes, uniq + (size_t)s->uniq[i] * row_bytes, row_bytes);
    *owned = 1;
    return p;
}

typedef struct {
    const char *name;
    const char *data;
    int32_t dim;       /* 0: (n, 77, D) hidden */
    int32_t width;
} shard_output;

static clipskip_status write_npy_outputs(const cs_shard *s, const cs_run *r, const shard_output *o, int n) {
    char path[4200];
    for (int k = 0; k < n; k++) {
        snprintf(path, sizeof path, "%s/shard-%06llu.%s.npy", r->dir, (unsigned long long)s->index, o[k].name);
        int64_t shape[3] = {s->n_rows, o[k].dim ? o[k].dim : T, o[k].width};
        CS_TRY(cs_npy_write(path, o[k].data, r->opt.out_dtype, o[k].dim ? 2 : 3, shape));
    }
    return CLIPSKIP_OK;
}

static clipskip_status write_st_outputs(const cs_shard *s, const cs_run *r, const shard_output *o, int n) {
    char path[4200], first[32], count[32], rows[32], skip[16], tower[16];
    snprintf(path, sizeof path, "%s/shard-%06llu.safetensors", r->dir, (unsigned long long)s->index);
    cs_st_out_tensor t[3];
    for (int k = 0; k < n; k++)
        t[k] = o[k].dim ? (cs_st_out_tensor){o[k].name, r->opt.out_dtype, 2, {s->n_rows, o[k].width}, o[k].data}
                        : (cs_st_out_tensor){o[k].name, r->opt.out_dtype, 3, {s->n_rows, T, o[k].width}, o[k].data};
    snprintf(first, sizeof first, "%llu", (unsigned long long)s->first_record);
    snprintf(count, sizeof count, "%d", s->n_records);
    snprintf(rows, sizeof rows, "%d", s->n_rows);
    snprintf(skip, sizeof skip, "%d", r->opt.row.clip_skip);
    snprintf(tower, sizeof tower, "%d", r->opt.tower);
    static const char *ln[] = {"auto", "on", "off"};
    cs_st_meta meta[] = {{"format", "clipskip-shard"}, {"clipskip_version", (char *)clipskip_version()},
                         {"model", (char *)r->model_name}, {"clip_skip", skip},
                         {"final_ln", (char *)ln[r->opt.row.final_ln]},
                         {"tower", r->opt.tower == CLIPSKIP_TOWER_ALL ? "all" : tower},
                         {"first_record", first}, {"records", count}, {"rows", rows}};
    return cs_st_write(path, t, n, meta, (int)(sizeof meta / sizeof meta[0]));
}

/* One CSV field: quoted, with inner quotes doubled and line breaks as spaces. */
static void csv_quoted(char *dst, size_t cap, const char *s) {
    size_t k = 0;
    dst[k++] = '"';
    for (; *s && k + 3 < cap; s++) {
        if (*s == '"') dst[k++] = '"';
        dst[k++] = (*s == '\n' || *s == '\r') ? ' ' : *s;
    }
    dst[k++] = '"';
    dst[k] = 0;
}

static clipskip_status write_manifest(const cs_shard *s, const cs_run *r) {
    char path[4200], line[1400], why[1100];
    cs_shard_manifest_path(r, s->index, path, sizeof path);
    cs_atomic_file f;
    CS_TRY(cs_atomic_open(&f, path));
    const char *head = "record,line,shard,row,tokens,truncated,status\n";
    CS_TRY(cs_atomic_write(&f, head, strlen(head)));
    for (int i = 0; i < s->n_records; i++) {
        int n;
        if (s->row[i] >= 0) {
            n = snprintf(line, sizeof line, "%llu,%llu,%llu,%d,%d,%d,ok\n",
                         (unsigned long long)(s->first_record + i), (unsigned long long)s->line[i],
                         (unsigned long long)s->index, s->row[i], s->tokens[i], s->truncated[i]);
        } else {
            csv_quoted(why, sizeof why, s->why[i] ? s->why[i] : "skipped");
            n = snprintf(line, sizeof line, "%llu,%llu,%llu,,,,%s\n",
                         (unsigned long long)(s->first_record + i), (unsigned long long)s->line[i],
                         (unsigned long long)s->index, why);
        }
        CS_TRY(cs_atomic_write(&f, line, (size_t)n));
    }
    return cs_atomic_commit(&f);
}

clipskip_status cs_shard_write(const cs_shard *s, const cs_run *r) {
    size_t esz = out_esz(r);
    shard_output o[3];
    int n = 0, owned[3] = {0};
    clipskip_status st = CLIPSKIP_OK;
    if (s->hidden) o[n++] = (shard_output){"hidden_states", s->hidden, 0, r->hid_dim};
    if (s->pooled) o[n++] = (shard_output){"pooled", s->pooled, r->pool_dim, r->pool_dim};
    if (s->embeds) o[n++] = (shard_output){"text_embeds", s->embeds, r->emb_dim, r->emb_dim};
    for (int k = 0; k < n; k++) {
        size_t row_bytes = (o[k].dim ? 1 : T) * (size_t)o[k].width * esz;
        o[k].data = row_major(s, o[k].data, row_bytes, &owned[k]);
        if (!o[k].data) st = CLIPSKIP_ERR_NOMEM;
    }
    if (st == CLIPSKIP_OK && s->n_rows > 0)
        st = r->npy ? write_npy_outputs(s, r, o, n) : write_st_outputs(s, r, o, n);
    for (int k = 0; k < n; k++)
        if (owned[k]) free((void *)o[k].data);
    return st == CLIPSKIP_OK ? write_manifest(s, r) : st;
}
