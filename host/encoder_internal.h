/* Encoder state shared by encoder.c (the layer loop) and encode_api.c (the public calls). */
#ifndef CLIPSKIP_ENCODER_INTERNAL_H
#define CLIPSKIP_ENCODER_INTERNAL_H

#include "backend.h"

struct clipskip_encoder {
    const clipskip_model *model;
    const cs_backend_ops *ops;
    cs_backend *be;
    clipskip_encoder_params params;
    int32_t max_d, max_f, max_e;   /* widest D, F, E over the towers: buffers fit every tower */
    size_t cap_tok;                /* packed token rows the buffers hold */
    void *h, *h_alt;               /* (cap_tok, D) RESID: residual stream, repack target */
    void *a;                       /* (cap_tok, max(D, E)) ACT: LayerNorm outputs */
    void *qkv;                     /* (cap_tok, 3D) ACT */
    void *att;                     /* (cap_tok, D) ACT: merged heads */
    void *mlp;                     /* (chunk, F) ACT: MLP intermediate, one chunk at a time */
    double last_device_s;          /* device time of the last call, -1 without a device timer */
    int32_t pass_rows;             /* rows per pass: max_batch, or fewer (CLIPSKIP_PASS_ROWS) */
};

/* What one row of a pass needs and where it currently sits in the packing. */
typedef struct {
    int32_t row;        /* index within the pass */
    int32_t hid_depth;  /* layers before its hidden output is taken; -1: no hidden output */
    int32_t need_depth; /* layers it needs at all (L when pooled output is asked) */
    int32_t eos;        /* position of its EOS token (pooled row) */
    int32_t final_ln;   /* 1: final LayerNorm on its hidden output */
    int32_t len;        /* tokens it still occupies in the packing; 0 once it has left */
    int32_t off;        /* its first row in the packing */
} cs_row_plan;

/* One pass: up to max_batch rows of one tower, with the output destinations of its rows. */
typedef struct {
    int32_t n_rows;
    cs_row_plan *rows;     /* (n_rows) */
    int32_t n_seq, m;      /* active sequences and packed token rows */
    int32_t *lens;         /* (n_rows) lengths of the active sequences */
    int32_t *tok, *pos;    /* (n_rows * 77) packed token ids and positions (embed input) */
    int32_t *idx;          /* (n_rows * 77) row indices for gathers */
    clipskip_dtype out_dtype;
    void *hidden;          /* (n_rows, 77, D) or NULL */
    void *pooled;          /* (n_rows, D) or NULL */
    void *embeds;          /* (n_rows, E) or NULL */
} cs_pass;

/* Fill rows[] for a pass from the call's options (clip skip already validated). */
void cs_plan_rows(const cs_tower *t, const int32_t *ids, int32_t n,
                  const clipskip_encode_options *opt, int32_t row0, cs_row_plan *rows);
/* Run one pass of one tower; outputs land in ps->hidden/pooled/embeds after ops->finish. */
clipskip_status cs_encode_pass(clipskip_encoder *e, cs_pass *ps, int tower, const int32_t *ids);
/* Give every activation buffer back to the backend (the encoder stays usable). */
void cs_encoder_release_buffers(clipskip_encoder *e);
/* The towers a call runs, [*t0, *t1): tower, or all of them for CLIPSKIP_TOWER_ALL; an index
 * out of range fails naming the valid ones. */
clipskip_status cs_tower_range(const clipskip_model *m, int32_t tower, int *t0, int *t1);
/* First EOS position of a 77-id row (or the first largest id when there is no EOS). */
int32_t cs_eos_position(const int32_t *ids);

#endif
