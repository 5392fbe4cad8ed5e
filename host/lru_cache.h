/* Exact-match LRU cache of encoder results, bounded in bytes, shared by threads (one mutex).
 * Keys and values are opaque bytes; the service keys a prompt's result by (token ids of each
 * tower, clip skip, final LN, outputs, dtype, tower) and stores its output rows, so a hit is a
 * byte copy of what the backend wrote for the miss. */
#ifndef CLIPSKIP_LRU_CACHE_H
#define CLIPSKIP_LRU_CACHE_H

#include <stddef.h>
#include <stdint.h>

typedef struct cs_cache cs_cache;

/* A value is stored as the concatenation of its parts (e.g. hidden row, pooled row). */
typedef struct {
    void *ptr;
    size_t len;
} cs_cache_part;

typedef struct {
    int64_t entries, bytes, capacity;
    uint64_t hits, misses, evictions;
} cs_cache_stats;

/* max_bytes 0: a cache that stores nothing (every lookup misses). NULL on allocation failure. */
cs_cache *cs_cache_new(size_t max_bytes);
void cs_cache_free(cs_cache *c);
/* hash: of the key, cs_hash_bytes (internal.h). On a hit, copies the value into parts (whose
 * lengths must sum to the stored length), moves the entry to the front and returns 1;
 * otherwise 0. Counts the hit or miss. */
int cs_cache_get(cs_cache *c, const void *key, size_t klen, uint64_t hash,
                 const cs_cache_part *parts, int n_parts);
/* Stores a copy (no-op when the key is present or the entry alone exceeds the bound), evicting
 * least recently used entries to stay within max_bytes. */
void cs_cache_put(cs_cache *c, const void *key, size_t klen, uint64_t hash,
                  const cs_cache_part *parts, int n_parts);
void cs_cache_get_stats(cs_cache *c, cs_cache_stats *out);

#endif
