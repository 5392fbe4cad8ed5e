/* The encoder: the one layer loop, written once for every backend.
 *
 * Per call: validate, split into passes of at most max_batch rows, and for each tower run
 *   plan   each row's hidden-state depth  L - (clip_skip - 1)  and the depth it needs at all
 *          (L when pooled output is asked: pooled always comes from the full-depth output);
 *   pack   rows that still need all 77 positions keep 77; rows that only still need their
 *          pooled vector keep positions 0..eos (attention is causal, so those rows' values do
 *          not depend on later positions);
 *   run    layers in runs between events (a row's hidden output is due, a row leaves); rows
 *          leave the packing as soon as they are done, layers past the deepest need are never
 *          run (the early exit); when only pooled rows remain for the last layer, that layer
 *          computes only each row's EOS query, output projection and MLP;
 *   take   outputs at their own depth, with or without the final LayerNorm.
 * A row's result is the same whatever else is in the batch: every op is row-local except
 * attention, which is per sequence. */
#include "backend.h"
#include "encoder_internal.h"
#include "internal.h"

#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ buffers */

void cs_encoder_release_buffers(clipskip_encoder *e) {
    void **bufs[] = {&e->h, &e->h_alt, &e->a, &e->qkv, &e->att, &e->mlp};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) {
        e->ops->release(e->be, *bufs[i]);
        *bufs[i] = NULL;
    }
    e->cap_tok = 0;
}

/* Activation buffers for m packed token rows (grown, never shrunk). */
static clipskip_status ensure_buffers(clipskip_encoder *e, size_t m) {
    if (m <= e->cap_tok) return CLIPSKIP_OK;
    cs_encoder_release_buffers(e);
    size_t d = (size_t)e->max_d, chunk = (size_t)e->ops->mlp_chunk_rows(e->be);
    size_t wide = d > (size_t)e->max_e ? d : (size_t)e->max_e; /* a holds (n, E) projections */
    if (chunk > m) chunk = m;
    e->h = e->ops->alloc(e->be, CS_BUF_RESID, m * d);
    e->h_alt = e->h ? e->ops->alloc(e->be, CS_BUF_RESID, m * d) : NULL;
    e->a = e->h_alt ? e->ops->alloc(e->be, CS_BUF_ACT, m * wide) : NULL;
    e->qkv = e->a ? e->ops->alloc(e->be, CS_BUF_ACT, m * 3 * d) : NULL;
    e->att = e->qkv ? e->ops->alloc(e->be, CS_BUF_ACT, m * d) : NULL;
    e->mlp = e->att ? e->ops->alloc(e->be, CS_BUF_ACT, chunk * (size_t)e->max_f) : NULL;
    if (!e->mlp) {
        clipskip_status st = clipskip_last_status();
        cs_encoder_release_buffers(e);
        return st != CLIPSKIP_OK ? st : cs_fail(CLIPSKIP_ERR_NOMEM, "activation buffers");
    }
    e->cap_tok = m;
    return CLIPSKIP_OK;
}

/* Address of element `off` of a buffer of the given kind. */
static void *at(const clipskip_encoder *e, void *buf, cs_buf_kind kind, size_t off) {
    return (char *)buf + off * e->ops->elem_bytes(e->be, kind);
}

/* ------------------------------------------------------------------ plan */

/* Resolve each row's options against this tower. */
void cs_plan_rows(const cs_tower *t, const int32_t *ids, int32_t n,
                  const clipskip_encode_options *opt, int32_t row0, cs_row_plan *rows) {
    const clipskip_tower_info *in = &t->info;
    int want_hidden = (opt->outputs & CLIPSKIP_OUT_HIDDEN) != 0;
    int want_pool = (opt->outputs & (CLIPSKIP_OUT_POOLED | CLIPSKIP_OUT_TEXT_EMBEDS)) != 0;
    for (int32_t i = 0; i < n; i++) {
        const clipskip_row_options *ro = opt->per_row ? &opt->per_row[row0 + i] : &opt->row;
        int32_t skip = ro->clip_skip ? ro->clip_skip : in->default_clip_skip;
        cs_row_plan *r = &rows[i];
        r->row = i;
        r->hid_depth = want_hidden ? in->n_layers - (skip - 1) : -1;
        r->need_depth = want_pool ? in->n_layers : r->hid_depth;
        r->final_ln = ro->final_ln == CLIPSKIP_FINAL_LN_AUTO ? in->default_final_ln
                                                             : ro->final_ln == CLIPSKIP_FINAL_LN_ON;
        r->eos = cs_eos_position(ids + (size_t)i * CLIPSKIP_CONTEXT);
        r->len = want_hidden ? CLIPSKIP_CONTEXT : r->eos + 1;
        r->off = 0;
    }
}

int32_t cs_eos_position(const int32_t *ids) {
    /* First EOS, as HF with eos_token_id 49407. Without any EOS (caller-made ids), HF's
     * legacy argmax(ids): the first largest id. */
    int32_t best = 0;
    for (int32_t p = 0; p < CLIPSKIP_CONTEXT; p++) {
        if (ids[p] == CLIPSKIP_EOS) return p;
        if (ids[p] > ids[best]) best = p;
    }
    return best;
}

/* ------------------------------------------------------------------ packing */

/* Offsets and the len[] array of the active rows (len > 0), in row order. */
static int32_t pack_offsets(cs_pass *ps) {
    int32_t m = 0, n = 0;
    for (int32_t i = 0; i < ps->n_rows; i++) {
        cs_row_plan *r = &ps->rows[i];
        if (!r->len) continue;
        r->off = m;
        m += r->len;
        ps->lens[n++] = r->len;
    }
    ps->n_seq = n;
    ps->m = m;
    return m;
}

/* Row width of tower tw in the RESID buffers: they hold (rows, d_model of the tower being
 * run), packed; max_d only sizes them. */
static int32_t tower_d(const clipskip_encoder *e, int tw) { return e->model->towers[tw].info.d_model; }

/* Move each active row's first len tokens from their old offsets into a fresh packing. */
static clipskip_status repack(clipskip_encoder *e, cs_pass *ps, int tw, const int32_t *old_off) {
    int32_t n = 0;
    for (int32_t i = 0; i < ps->n_rows; i++) {
        const cs_row_plan *r = &ps->rows[i];
        for (int32_t p = 0; p < r->len; p++) ps->idx[n++] = old_off[i] + p;
    }
    clipskip_status st = e->ops->gather_rows(e->be, CS_BUF_RESID, e->h, e->h_alt, tower_d(e, tw),
                                             ps->idx, n);
    if (st) return st;
    void *tmp = e->h;
    e->h = e->h_alt;
    e->h_alt = tmp;
    return e->ops->set_seqs(e->be, ps->n_seq, ps->lens);
}

static uint64_t hash_lens(const int32_t *lens, int32_t n) {
    return cs_hash_bytes(lens, (size_t)n * sizeof *lens);
}

/* ------------------------------------------------------------------ layers */

/* h(rows, D) += fc2(act(fc1(a(rows, D)))) in chunks of mlp_chunk_rows rows. */
static clipskip_status mlp(clipskip_encoder *e, int tw, int l, void *h, int32_t rows) {
    const cs_backend_ops *o = e->ops;
    int32_t chunk = o->mlp_chunk_rows(e->be), d = e->model->towers[tw].info.d_model;
    for (int32_t r0 = 0; r0 < rows; r0 += chunk) {
        int32_t nr = rows - r0 < chunk ? rows - r0 : chunk;
        CS_TRY(o->gemm(e->be, tw, l, CS_W_FC1, CS_EPI_BIAS_ACT, at(e, e->a, CS_BUF_ACT, (size_t)r0 * d),
                    e->mlp, nr));
        CS_TRY(o->gemm(e->be, tw, l, CS_W_FC2, CS_EPI_BIAS_RESID, e->mlp,
                    at(e, h, CS_BUF_RESID, (size_t)r0 * d), nr));
    }
    return CLIPSKIP_OK;
}

/* One pre-LN transformer layer over all m packed rows. */
static clipskip_status layer_full(clipskip_encoder *e, int tw, int l, int32_t m) {
    const cs_backend_ops *o = e->ops;
    CS_TRY(o->layernorm(e->be, tw, l, CS_LN_1, e->h, e->a, m, NULL));
    CS_TRY(o->gemm(e->be, tw, l, CS_W_QKV, CS_EPI_BIAS, e->a, e->qkv, m));
    CS_TRY(o->attention(e->be, tw, e->qkv, e->att, 0));
    CS_TRY(o->gemm(e->be, tw, l, CS_W_O, CS_EPI_BIAS_RESID, e->att, e->h, m));
    CS_TRY(o->layernorm(e->be, tw, l, CS_LN_2, e->h, e->a, m, NULL));
    return mlp(e, tw, l, e->h, m);
}

/* ps->idx = each active sequence's last (EOS) row in the packing; returns how many. */
static int32_t eos_rows(cs_pass *ps) {
    int32_t n = 0;
    for (int32_t i = 0; i < ps->n_rows; i++)
        if (ps->rows[i].len) ps->idx[n++] = ps->rows[i].off + ps->rows[i].len - 1;
    return n;
}

/* The last layer when every active row only needs its pooled vector: K and V for all rows,
 * everything else for each sequence's last (EOS) row only. Result rows in h_alt (n_seq, D). */
static clipskip_status layer_last_only(clipskip_encoder *e, cs_pass *ps, int tw, int l) {
    const cs_backend_ops *o = e->ops;
    const int32_t n = eos_rows(ps);
    CS_TRY(o->layernorm(e->be, tw, l, CS_LN_1, e->h, e->a, ps->m, NULL));
    CS_TRY(o->gemm(e->be, tw, l, CS_W_QKV, CS_EPI_BIAS, e->a, e->qkv, ps->m));
    CS_TRY(o->attention(e->be, tw, e->qkv, e->att, 1));
    CS_TRY(o->gather_rows(e->be, CS_BUF_RESID, e->h, e->h_alt, tower_d(e, tw), ps->idx, n));
    CS_TRY(o->gemm(e->be, tw, l, CS_W_O, CS_EPI_BIAS_RESID, e->att, e->h_alt, n));
    CS_TRY(o->layernorm(e->be, tw, l, CS_LN_2, e->h_alt, e->a, n, NULL));
    return mlp(e, tw, l, e->h_alt, n);
}

/* Layers l0..l1-1 over the current packing; the last one in last-only form when asked. */
static clipskip_status run_layers(clipskip_encoder *e, cs_pass *ps, int tw, int l0, int l1,
                                  int last_only) {
    const cs_backend_ops *o = e->ops;
    const void *bufs[] = {e->h, e->h_alt, e->a, e->qkv, e->att, e->mlp};
    cs_graph_key key = {tw, l0, l1, ps->n_seq, ps->m, hash_lens(ps->lens, ps->n_seq), last_only,
                        cs_hash_bytes(bufs, sizeof bufs)};
    if (o->graph_begin) {
        int r = o->graph_begin(e->be, &key);
        if (r < 0) return clipskip_last_status() ? clipskip_last_status() : CLIPSKIP_ERR_BACKEND;
        if (r == 1) return CLIPSKIP_OK; /* replayed */
    }
    int done = 0; /* the backend ran the whole run in fewer launches */
    if (o->layers && l1 > l0) {
        const int32_t n = last_only ? eos_rows(ps) : 0;
        CS_TRY(o->layers(e->be, tw, l0, l1, last_only, e->h, e->h_alt, ps->idx, n, e->a, e->qkv, e->att,
                         e->mlp, ps->m, &done));
    }
    for (int l = l0; l < l1 && !done; l++) {
        if (last_only && l == l1 - 1)
            CS_TRY(layer_last_only(e, ps, tw, l));
        else
            CS_TRY(layer_full(e, tw, l, ps->m));
    }
    return o->graph_end ? o->graph_end(e->be, &key) : CLIPSKIP_OK;
}

/* ------------------------------------------------------------------ outputs */

/* Hidden states of rows whose depth is l: (77, D) each, final LN'd or not. */
static clipskip_status take_hidden(clipskip_encoder *e, cs_pass *ps, int tw, int l) {
    const cs_backend_ops *o = e->ops;
    int32_t d = e->model->towers[tw].info.d_model;
    int any_ln = 0;
    for (int32_t i = 0; i < ps->n_rows; i++)
        if (ps->rows[i].len && ps->rows[i].hid_depth == l && ps->rows[i].final_ln) any_ln = 1;
    /* One LN over the whole packing: cheaper than a launch per row, a LN is ~1% of a layer. */
    if (any_ln) CS_TRY(o->layernorm(e->be, tw, 0, CS_LN_FINAL, e->h, e->a, ps->m, NULL));
    size_t row_elems = (size_t)CLIPSKIP_CONTEXT * d, esz = cs_dtype_size(ps->out_dtype);
    /* One download per run of rows that sit back to back both in the packing and in the
     * output (the usual case: the whole batch in one copy, not one per prompt). */
    for (int32_t i = 0; i < ps->n_rows;) {
        const cs_row_plan *r = &ps->rows[i];
        if (!r->len || r->hid_depth != l) {
            i++;
            continue;
        }
        int32_t n = 1;
        while (i + n < ps->n_rows) {
            const cs_row_plan *q = &ps->rows[i + n];
            if (!q->len || q->hid_depth != l || q->final_ln != r->final_ln ||
                q->row != r->row + n || q->off != r->off + n * CLIPSKIP_CONTEXT)
                break;
            n++;
        }
        void *dst = (char *)ps->hidden + (size_t)r->row * row_elems * esz;
        if (r->final_ln)
            CS_TRY(o->download(e->be, CS_BUF_ACT, e->a, (size_t)r->off * d, n * row_elems, dst,
                               ps->out_dtype));
        else
            CS_TRY(o->download(e->be, CS_BUF_RESID, e->h, (size_t)r->off * d, n * row_elems, dst,
                               ps->out_dtype));
        i += n;
    }
    return CLIPSKIP_OK;
}

/* Pooled (n, D) and text_embeds (n, E) of all rows (every row is active at depth L when
 * pooled output is asked). gathered: the last-only layer left the EOS rows in h_alt; else the
 * final LN reads each row's EOS from h in place (one launch, no gather). */
static clipskip_status take_pooled(clipskip_encoder *e, cs_pass *ps, int tw, int gathered) {
    const cs_backend_ops *o = e->ops;
    const cs_tower *t = &e->model->towers[tw];
    int32_t d = t->info.d_model, n = ps->n_rows;
    if (gathered) {
        CS_TRY(o->layernorm(e->be, tw, 0, CS_LN_FINAL, e->h_alt, e->a, n, NULL));
    } else {
        for (int32_t i = 0; i < n; i++) ps->idx[i] = ps->rows[i].off + ps->rows[i].eos;
        CS_TRY(o->layernorm(e->be, tw, 0, CS_LN_FINAL, e->h, e->a, n, ps->idx));
    }
    if (ps->pooled)
        CS_TRY(o->download(e->be, CS_BUF_ACT, e->a, 0, (size_t)n * d, ps->pooled, ps->out_dtype));
    if (ps->embeds) {
        CS_TRY(o->gemm(e->be, tw, 0, CS_W_PROJ, CS_EPI_NONE, e->a, e->qkv, n));
        CS_TRY(o->download(e->be, CS_BUF_ACT, e->qkv, 0, (size_t)n * t->info.proj_dim, ps->embeds,
                        ps->out_dtype));
    }
    return CLIPSKIP_OK;
}

/* ------------------------------------------------------------------ the loop */

/* Rows done at depth l leave; rows that only still need pooled shrink to 0..eos.
 * Returns 1 when the packing changed. */
static int retire_rows(cs_pass *ps, int l) {
    int changed = 0;
    for (int32_t i = 0; i < ps->n_rows; i++) {
        cs_row_plan *r = &ps->rows[i];
        if (!r->len) continue;
        if (r->need_depth <= l) {
            r->len = 0;
            changed = 1;
        } else if (r->hid_depth == l && r->len != r->eos + 1) {
            r->len = r->eos + 1;
            changed = 1;
        }
    }
    return changed;
}

/* Next depth at which something happens for an active row. */
static int next_event(const cs_pass *ps, int l, int *pooled_only) {
    int next = 1 << 30;
    *pooled_only = 1;
    for (int32_t i = 0; i < ps->n_rows; i++) {
        const cs_row_plan *r = &ps->rows[i];
        if (!r->len) continue;
        if (r->need_depth < next) next = r->need_depth;
        if (r->hid_depth > l) {
            *pooled_only = 0;
            if (r->hid_depth < next) next = r->hid_depth;
        }
    }
    return next;
}

static clipskip_status embed_pass(clipskip_encoder *e, cs_pass *ps, int tw, const int32_t *ids) {
    int32_t m = pack_offsets(ps), k = 0;
    CS_TRY(ensure_buffers(e, (size_t)ps->n_rows * CLIPSKIP_CONTEXT));
    for (int32_t i = 0; i < ps->n_rows; i++)
        for (int32_t p = 0; p < ps->rows[i].len; p++, k++) {
            ps->tok[k] = ids[(size_t)i * CLIPSKIP_CONTEXT + p];
            ps->pos[k] = p;
        }
    CS_TRY(e->ops->set_seqs(e->be, ps->n_seq, ps->lens));
    return e->ops->embed(e->be, tw, ps->tok, ps->pos, m, e->h);
}

clipskip_status cs_encode_pass(clipskip_encoder *e, cs_pass *ps, int tw, const int32_t *ids) {
    const int L = e->model->towers[tw].info.n_layers;
    CS_TRY(embed_pass(e, ps, tw, ids));
    int gathered = 0;
    for (int l = 0;;) {
        if (ps->hidden) CS_TRY(take_hidden(e, ps, tw, l));
        if (l == L && (ps->pooled || ps->embeds)) CS_TRY(take_pooled(e, ps, tw, gathered));
        int32_t old_off[ps->n_rows > 0 ? ps->n_rows : 1];
        for (int32_t i = 0; i < ps->n_rows; i++) old_off[i] = ps->rows[i].off;
        if (retire_rows(ps, l)) {
            if (pack_offsets(ps) == 0) break;
            CS_TRY(repack(e, ps, tw, old_off));
        }
        if (l == L) break;
        int pooled_only, next = next_event(ps, l, &pooled_only);
        int last_only = next == L && pooled_only;
        CS_TRY(run_layers(e, ps, tw, l, next, last_only));
        gathered = last_only;
        l = next;
    }
    return CLIPSKIP_OK;
}
