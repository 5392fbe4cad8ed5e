/* config.json beside a diffusers/transformers text encoder: the values clipskip uses. */
#ifndef CLIPSKIP_MODEL_CONFIG_H
#define CLIPSKIP_MODEL_CONFIG_H

#include "clipskip.h"

#include <stdint.h>

typedef struct {
    int present;     /* 0: no config.json (or not a CLIP text config) */
    char path[4200]; /* for messages */
    int64_t hidden_size, intermediate_size, num_hidden_layers, num_attention_heads;
    int64_t vocab_size, max_position_embeddings, projection_dim; /* -1 when absent */
    int hidden_act; /* a clipskip_act, or -1 when absent */
} cs_hf_config;

/* Read dir/config.json. A missing file is not an error (present = 0); a config of another
 * model_type is ignored with a warning. A full CLIPModel config is read from its text_config.
 * Fails on invalid JSON, a non-integer size, a hidden_act other than quick_gelu/gelu, or a
 * layer_norm_eps other than 1e-5. */
clipskip_status cs_hf_config_read(const char *dir, int verbose, cs_hf_config *cfg);

#endif
