/* Hash table (chained, power-of-two buckets) + doubly linked recency list, under one mutex. */
#include "lru_cache.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

typedef struct entry {
    struct entry *chain;        /* next in the bucket */
    struct entry *prev, *next;  /* recency list: head = most recent */
    uint64_t hash;
    size_t klen, vlen;
    unsigned char data[];       /* key, then value */
} entry;

struct cs_cache {
    pthread_mutex_t mu;
    size_t max_bytes, bytes;
    entry **buckets;
    size_t n_buckets, n_entries;
    entry *head, *tail;
    uint64_t hits, misses, evictions;
};

static size_t entry_bytes(const entry *e) { return sizeof *e + e->klen + e->vlen; }

cs_cache *cs_cache_new(size_t max_bytes) {
    cs_cache *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->n_buckets = 1024;
    c->buckets = calloc(c->n_buckets, sizeof *c->buckets);
    if (!c->buckets) {
        free(c);
        return NULL;
    }
    c->max_bytes = max_bytes;
    pthread_mutex_init(&c->mu, NULL);
    return c;
}

void cs_cache_free(cs_cache *c) {
    if (!c) return;
    for (entry *e = c->head, *n; e; e = n) {
        n = e->next;
        free(e);
    }
    free(c->buckets);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

static entry **find_slot(cs_cache *c, const void *key, size_t klen, uint64_t hash) {
    entry **s = &c->buckets[hash & (c->n_buckets - 1)];
    for (; *s; s = &(*s)->chain)
        if ((*s)->hash == hash && (*s)->klen == klen && !memcmp((*s)->data, key, klen)) break;
    return s;
}

static void list_unlink(cs_cache *c, entry *e) {
    if (e->prev) e->prev->next = e->next; else c->head = e->next;
    if (e->next) e->next->prev = e->prev; else c->tail = e->prev;
    e->prev = e->next = NULL;
}

static void list_push_front(cs_cache *c, entry *e) {
    e->prev = NULL;
    e->next = c->head;
    if (c->head) c->head->prev = e; else c->tail = e;
    c->head = e;
}

static size_t parts_len(const cs_cache_part *parts, int n) {
    size_t len = 0;
    for (int i = 0; i < n; i++) len += parts[i].len;
    return len;
}

int cs_cache_get(cs_cache *c, const void *key, size_t klen, uint64_t hash,
                 const cs_cache_part *parts, int n_parts) {
    pthread_mutex_lock(&c->mu);
    entry *e = *find_slot(c, key, klen, hash);
    int hit = e && e->vlen == parts_len(parts, n_parts);
    if (hit) {
        const unsigned char *v = e->data + e->klen;
        for (int i = 0; i < n_parts; i++) memcpy(parts[i].ptr, v, parts[i].len), v += parts[i].len;
        list_unlink(c, e);
        list_push_front(c, e);
        c->hits++;
    } else {
        c->misses++;
    }
    pthread_mutex_unlock(&c->mu);
    return hit;
}

static void grow(cs_cache *c) {
    size_t n = c->n_buckets * 2;
    entry **b = calloc(n, sizeof *b);
    if (!b) return; /* longer chains, still correct */
    for (size_t i = 0; i < c->n_buckets; i++)
        for (entry *e = c->buckets[i], *nx; e; e = nx) {
            nx = e->chain;
            e->chain = b[e->hash & (n - 1)];
            b[e->hash & (n - 1)] = e;
        }
    free(c->buckets);
    c->buckets = b;
    c->n_buckets = n;
}

static void evict_one(cs_cache *c) {
    entry *e = c->tail;
    entry **s = find_slot(c, e->data, e->klen, e->hash);
    *s = e->chain;
    list_unlink(c, e);
    c->bytes -= entry_bytes(e);
    c->n_entries--;
    c->evictions++;
    free(e);
}

void cs_cache_put(cs_cache *c, const void *key, size_t klen, uint64_t hash,
                  const cs_cache_part *parts, int n_parts) {
    size_t vlen = parts_len(parts, n_parts), need = sizeof(entry) + klen + vlen;
    if (need > c->max_bytes) return;
    entry *e = malloc(need); /* outside the lock: the copy is the slow part */
    if (!e) return;
    e->hash = hash, e->klen = klen, e->vlen = vlen;
    memcpy(e->data, key, klen);
    unsigned char *v = e->data + klen;
    for (int i = 0; i < n_parts; i++) memcpy(v, parts[i].ptr, parts[i].len), v += parts[i].len;
    pthread_mutex_lock(&c->mu);
    entry **s = find_slot(c, key, klen, hash);
    if (*s) { /* another request stored it first */
        pthread_mutex_unlock(&c->mu);
        free(e);
        return;
    }
    while (c->bytes + need > c->max_bytes && c->tail) evict_one(c);
    s = find_slot(c, key, klen, hash); /* eviction may have changed the chain */
    e->chain = NULL;
    *s = e;
    list_push_front(c, e);
    c->bytes += need;
    if (++c->n_entries > c->n_buckets) grow(c);
    pthread_mutex_unlock(&c->mu);
}

void cs_cache_get_stats(cs_cache *c, cs_cache_stats *out) {
    pthread_mutex_lock(&c->mu);
    *out = (cs_cache_stats){(int64_t)c->n_entries, (int64_t)c->bytes, (int64_t)c->max_bytes,
                            c->hits, c->misses, c->evictions};
    pthread_mutex_unlock(&c->mu);
}
