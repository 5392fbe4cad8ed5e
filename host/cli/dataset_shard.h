/* One shard of a dataset run: its records, their token ids (deduplicated), its outputs, and
 * the files it becomes. Used by encode_dataset.c. */
#ifndef CLIPSKIP_CLI_DATASET_SHARD_H
#define CLIPSKIP_CLI_DATASET_SHARD_H

#include "clipskip.h"
#include "dataset.h"

#include <signal.h>
#include <stdint.h>

#define CS_SHARD_MAX_TOWERS 2

/* Everything a shard needs that does not change during the run. */
typedef struct {
    const char *dir;
    const clipskip_model *model;
    const char *model_name;
    clipskip_encode_options opt;
    int t0, t1;                        /* towers the run encodes */
    int32_t hid_dim, pool_dim, emb_dim;
    int shard_size, npy, skip_errors;
    volatile sig_atomic_t *stop;       /* set by SIGINT/SIGTERM: stop between batches (or NULL) */
} cs_run;

typedef struct {
    uint64_t index;                    /* shard number */
    uint64_t first_record;
    int n_records;                     /* records read into this shard */
    int n_rows;                        /* records with a caption (rows in the files) */
    int n_unique;                      /* distinct token sequences among them */
    int done_before;                   /* --resume: its manifest exists, nothing to do */
    uint64_t bytes_end;                /* input bytes read once the shard was filled */
    uint64_t *line;                    /* (n_records) input line of each record */
    int32_t *row;                      /* (n_records) row in the files, -1: skipped */
    int32_t *tokens, *truncated;       /* (n_records) of the last tower */
    char **why;                        /* (n_records) skip reason (heap) or NULL */
    int32_t *uniq;                     /* (n_rows) unique sequence of each row */
    int32_t *htab;                     /* (hcap) open addressing: unique index + 1, 0 = empty */
    size_t hcap;
    int32_t *ids[CS_SHARD_MAX_TOWERS]; /* (n_unique, 77) per tower */
    char *hidden, *pooled, *embeds;    /* (n_unique, ...) encoder outputs */
    clipskip_encoder *out_enc;         /* the encoder whose clipskip_host_alloc holds them */
} cs_shard;

cs_shard *cs_shard_new(const cs_run *r);
void cs_shard_free(cs_shard *s);
/* Empty the shard for shard number index (its first record is index * shard_size). */
void cs_shard_reset(cs_shard *s, const cs_run *r, uint64_t index);
/* Take one record: tokenize it per tower and find its duplicate, or note why it is skipped.
 * Returns 0, or -1 when the record is bad and --on-error is fail (message printed). */
int cs_shard_add(cs_shard *s, const cs_run *r, const cs_ds_record *rec, const char *input_name);
/* Encode the unique sequences (outputs into s->hidden/pooled/embeds) in calls of batch rows. */
clipskip_status cs_shard_encode(cs_shard *s, const cs_run *r, clipskip_encoder *enc, int batch);
/* Write the shard's data files, then its manifest (the mark of a complete shard). */
clipskip_status cs_shard_write(const cs_shard *s, const cs_run *r);
/* Path of shard index's manifest (buffer of cap bytes). */
void cs_shard_manifest_path(const cs_run *r, uint64_t index, char *buf, size_t cap);

#endif
