/* clipskip encode --out-dir: datasets of any size, streamed into sharded files.
 *
 * reader + tokenizer thread ──(two shard slots)──▶ encoder (this thread) ──▶ shard writer
 *
 * Shard k holds input records k*S .. k*S+S-1 (S = --shard-size), so its contents are a pure
 * function of those records and the options: a rerun with --resume skips shards whose
 * manifest exists and produces byte-identical files. Within a shard, identical token
 * sequences are encoded once. Files (all written to a temporary name and renamed):
 *   clipskip-run.json                 the options (a resume must match them)
 *   shard-000000.safetensors          hidden_states / pooled / text_embeds of the shard's rows
 *     (or shard-000000.<output>.npy)
 *   shard-000000.manifest.csv         record,line,shard,row,tokens,truncated,status
 *   manifest.csv                      all shards' manifests, written once the input is done */
#ifndef CLIPSKIP_CLI_ENCODE_DATASET_H
#define CLIPSKIP_CLI_ENCODE_DATASET_H

#include "clipskip.h"

typedef struct {
    const char *dir, *input, *input_format, *field, *column, *model_name;
    int shard_size, npy, resume, skip_errors, quiet, batch;
} cs_dataset_args;

/* Returns a CS_EXIT_* code; messages on stderr. */
int cs_encode_dataset(const cs_dataset_args *a, clipskip_model *m, clipskip_encoder *enc,
                      const clipskip_encode_options *o);

#endif
