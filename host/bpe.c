/* Byte-level BPE: merge one pre-token into vocabulary ids, lowest rank first, and the bounded,
 * thread-safe cache of words already merged.
 *
 * Merge order is the reference's: repeatedly take the pair of lowest rank and merge all its
 * occurrences left to right. Words up to CS_BPE_SMALL symbols do exactly that on an array;
 * longer words (a prompt can hold one multi-megabyte run of letters) use a heap keyed by
 * (rank, position), which pops the same merges in the same order: the vocabulary check at load
 * (every merge's parts exist before it) guarantees a merge never creates a lower-ranked pair.
 *
 * Cache: 64 stripes, each a mutex over 128 sets of 4 entries (32768 words, 2 MiB). A lookup or
 * insert locks one stripe for a few dozen instructions; words longer than CS_CACHE_KEY bytes or
 * merging into more than CS_CACHE_IDS ids are not cached. Entries are replaced round-robin per
 * set, so memory stays bounded whatever the input. */
#include "tokenizer_internal.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------ growable buffers */

/* After a successful call *p is never NULL (need 0 still allocates), so callers may memcpy. */
static int grow(void **p, size_t *cap, int *heap, size_t need, size_t used, size_t elem) {
    if (need <= *cap && *p) return 1;
    size_t c = *cap ? *cap : 64;
    while (c < need) c *= 2;
    void *q = *heap ? realloc(*p, c * elem) : malloc(c * elem);
    if (!q) {
        cs_fail(CLIPSKIP_ERR_NOMEM, "out of host memory allocating %zu bytes", c * elem);
        return 0;
    }
    if (!*heap && used) memcpy(q, *p, used * elem);
    *p = q;
    *cap = c;
    *heap = 1;
    return 1;
}

int cs_bytes_reserve(cs_bytes *b, size_t cap) {
    return grow((void **)&b->p, &b->cap, &b->heap, cap, b->n, 1);
}
int cs_u32s_reserve(cs_u32s *b, size_t cap) {
    return grow((void **)&b->p, &b->cap, &b->heap, cap, b->n, 4);
}
void cs_bytes_free(cs_bytes *b) {
    if (b->heap) free(b->p);
    memset(b, 0, sizeof *b);
}
void cs_u32s_free(cs_u32s *b) {
    if (b->heap) free(b->p);
    memset(b, 0, sizeof *b);
}

void cs_ids_init(cs_ids *v) {
    v->p = v->inline_buf;
    v->n = 0;
    v->cap = sizeof v->inline_buf / sizeof v->inline_buf[0];
}

int cs_ids_push(cs_ids *v, int32_t id) {
    if (v->n == v->cap) {
        size_t c = v->cap * 2;
        int32_t *q = v->p == v->inline_buf ? malloc(c * sizeof *q) : realloc(v->p, c * sizeof *q);
        if (!q) {
            cs_fail(CLIPSKIP_ERR_NOMEM, "out of host memory allocating %zu ids", c);
            return 0;
        }
        if (v->p == v->inline_buf) memcpy(q, v->inline_buf, v->n * sizeof *q);
        v->p = q;
        v->cap = c;
    }
    v->p[v->n++] = id;
    return 1;
}

void cs_ids_free(cs_ids *v) {
    if (v->p != v->inline_buf) free(v->p);
    cs_ids_init(v);
}

/* ------------------------------------------------------------ merging */

#define CS_BPE_SMALL 64
#define CS_NO_RANK 0xFFFFFFFFu

static uint32_t rank_of(const clipskip_tokenizer *tok, int32_t a, int32_t b, int32_t *merged) {
    uint32_t r;
    return cs_pair_get(tok, a, b, &r, merged) ? r : CS_NO_RANK;
}

/* The reference loop on an array: find the lowest-ranked pair, merge every occurrence left to
 * right, repeat. rank[i] caches the rank of (sym[i], sym[i+1]). */
static void merge_small(const clipskip_tokenizer *tok, int32_t *sym, size_t *pn) {
    size_t n = *pn;
    uint32_t rank[CS_BPE_SMALL];
    int32_t mg[CS_BPE_SMALL];
    for (size_t i = 0; i + 1 < n; i++) rank[i] = rank_of(tok, sym[i], sym[i + 1], &mg[i]);
    while (n > 1) {
        uint32_t best = CS_NO_RANK;
        for (size_t i = 0; i + 1 < n; i++)
            if (rank[i] < best) best = rank[i];
        if (best == CS_NO_RANK) break;
        size_t o = 0;
        for (size_t i = 0; i < n;) {
            if (i + 1 < n && rank[i] == best) {
                sym[o++] = mg[i];
                i += 2;
            } else {
                sym[o++] = sym[i++];
            }
        }
        n = o;
        for (size_t i = 0; i + 1 < n; i++) rank[i] = rank_of(tok, sym[i], sym[i + 1], &mg[i]);
    }
    *pn = n;
}

/* Min-heap of (rank << 32 | position). */
typedef struct {
    uint64_t *a;
    size_t n;
} heap64;

static void heap_push(heap64 *h, uint64_t v) {
    size_t i = h->n++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (h->a[p] <= v) break;
        h->a[i] = h->a[p];
        i = p;
    }
    h->a[i] = v;
}

static uint64_t heap_pop(heap64 *h) {
    uint64_t top = h->a[0], v = h->a[--h->n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= h->n) break;
        if (c + 1 < h->n && h->a[c + 1] < h->a[c]) c++;
        if (v <= h->a[c]) break;
        h->a[i] = h->a[c];
        i = c;
    }
    if (h->n) h->a[i] = v;
    return top;
}

/* O(n log n): symbols in a linked list, candidate pairs in a heap, stale entries skipped.
 * Each merge pushes at most two pairs, so the heap never holds more than 3n entries. */
static int merge_heap(const clipskip_tokenizer *tok, int32_t *sym, size_t *pn) {
    size_t n = *pn;
    int32_t *next = malloc(n * sizeof *next), *prev = malloc(n * sizeof *prev);
    heap64 h = {malloc(3 * n * sizeof(uint64_t)), 0};
    if (!next || !prev || !h.a) {
        free(next), free(prev), free(h.a);
        cs_fail(CLIPSKIP_ERR_NOMEM, "out of host memory merging a %zu-byte word", n);
        return 0;
    }
    int32_t mg = 0;
    for (size_t i = 0; i < n; i++) {
        next[i] = i + 1 < n ? (int32_t)(i + 1) : -1;
        prev[i] = (int32_t)i - 1;
        uint32_t r = i + 1 < n ? rank_of(tok, sym[i], sym[i + 1], &mg) : CS_NO_RANK;
        if (r != CS_NO_RANK) heap_push(&h, (uint64_t)r << 32 | i);
    }
    while (h.n) {
        uint64_t top = heap_pop(&h);
        uint32_t r = (uint32_t)(top >> 32);
        int32_t i = (int32_t)(uint32_t)top, j = sym[i] >= 0 ? next[i] : -1;
        if (j < 0 || rank_of(tok, sym[i], sym[j], &mg) != r) continue; /* stale */
        sym[i] = mg;
        sym[j] = -1;
        next[i] = next[j];
        if (next[j] >= 0) prev[next[j]] = i;
        if (prev[i] >= 0) {
            uint32_t rl = rank_of(tok, sym[prev[i]], sym[i], &mg);
            if (rl != CS_NO_RANK) heap_push(&h, (uint64_t)rl << 32 | (uint32_t)prev[i]);
        }
        if (next[i] >= 0) {
            uint32_t rr = rank_of(tok, sym[i], sym[next[i]], &mg);
            if (rr != CS_NO_RANK) heap_push(&h, (uint64_t)rr << 32 | (uint32_t)i);
        }
    }
    size_t o = 0;
    for (size_t i = 0; i < n; i++)
        if (sym[i] >= 0) sym[o++] = sym[i];
    *pn = o;
    free(next), free(prev), free(h.a);
    return 1;
}

int cs_bpe_word_uncached(const clipskip_tokenizer *tok, const uint8_t *w, size_t n, cs_ids *out,
                         int force_heap) {
    int32_t small[CS_BPE_SMALL];
    int32_t *sym = n <= CS_BPE_SMALL ? small : malloc(n * sizeof *sym);
    if (!sym) {
        cs_fail(CLIPSKIP_ERR_NOMEM, "out of host memory merging a %zu-byte word", n);
        return 0;
    }
    for (size_t i = 0; i + 1 < n; i++) sym[i] = tok->byte_id[w[i]];
    sym[n - 1] = tok->byte_eow_id[w[n - 1]];
    int ok = 1;
    if (n <= CS_BPE_SMALL && !force_heap)
        merge_small(tok, sym, &n);
    else
        ok = merge_heap(tok, sym, &n);
    for (size_t i = 0; ok && i < n; i++) ok = cs_ids_push(out, sym[i]);
    if (sym != small) free(sym);
    return ok;
}

/* ------------------------------------------------------------ the word cache */

#define CS_CACHE_STRIPES 64
#define CS_CACHE_SETS 128 /* per stripe */
#define CS_CACHE_WAYS 4
#define CS_CACHE_KEY 38
#define CS_CACHE_IDS 8

typedef struct {
    uint64_t hash; /* 0: empty */
    uint8_t klen, nids;
    uint16_t ids[CS_CACHE_IDS];
    uint8_t key[CS_CACHE_KEY];
} cs_cache_entry; /* 64 bytes */

typedef struct {
    pthread_mutex_t lock;
    uint8_t victim[CS_CACHE_SETS];
    cs_cache_entry e[CS_CACHE_SETS][CS_CACHE_WAYS];
} cs_cache_stripe;

struct cs_word_cache {
    cs_cache_stripe s[CS_CACHE_STRIPES];
};

cs_word_cache *cs_cache_new(void) {
    cs_word_cache *c = NULL;
    if (posix_memalign((void **)&c, 64, sizeof *c) != 0) {
        cs_fail(CLIPSKIP_ERR_NOMEM, "out of host memory allocating the word cache (%zu bytes)",
                sizeof *c);
        return NULL;
    }
    memset(c, 0, sizeof *c);
    for (int i = 0; i < CS_CACHE_STRIPES; i++) pthread_mutex_init(&c->s[i].lock, NULL);
    return c;
}

void cs_cache_free(cs_word_cache *c) {
    if (!c) return;
    for (int i = 0; i < CS_CACHE_STRIPES; i++) pthread_mutex_destroy(&c->s[i].lock);
    free(c);
}

int cs_bpe_word(const clipskip_tokenizer *tok, const uint8_t *w, size_t n, cs_ids *out) {
    if (n > CS_CACHE_KEY || !tok->cache) return cs_bpe_word_uncached(tok, w, n, out, 0);
    uint64_t h = cs_hash_bytes(w, n) | 1;
    cs_cache_stripe *st = &tok->cache->s[h % CS_CACHE_STRIPES];
    size_t set = (h / CS_CACHE_STRIPES) % CS_CACHE_SETS;
    uint16_t ids[CS_CACHE_IDS];
    int nids = -1;
    pthread_mutex_lock(&st->lock);
    for (int k = 0; k < CS_CACHE_WAYS; k++) {
        const cs_cache_entry *e = &st->e[set][k];
        if (e->hash == h && e->klen == n && memcmp(e->key, w, n) == 0) {
            nids = e->nids;
            memcpy(ids, e->ids, sizeof ids);
            break;
        }
    }
    pthread_mutex_unlock(&st->lock);
    if (nids >= 0) {
        for (int k = 0; k < nids; k++)
            if (!cs_ids_push(out, ids[k])) return 0;
        return 1;
    }
    size_t before = out->n;
    if (!cs_bpe_word_uncached(tok, w, n, out, 0)) return 0;
    size_t got = out->n - before;
    if (got > CS_CACHE_IDS) return 1;
    cs_cache_entry e = {.hash = h, .klen = (uint8_t)n, .nids = (uint8_t)got};
    for (size_t k = 0; k < got; k++) e.ids[k] = (uint16_t)out->p[before + k];
    memcpy(e.key, w, n);
    pthread_mutex_lock(&st->lock);
    int way = st->victim[set]++ % CS_CACHE_WAYS;
    for (int k = 0; k < CS_CACHE_WAYS; k++)
        if (st->e[set][k].hash == 0 || st->e[set][k].hash == h) {
            way = k;
            break;
        }
    st->e[set][way] = e;
    pthread_mutex_unlock(&st->lock);
    return 1;
}
