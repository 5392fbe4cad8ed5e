/* Byte-level BPE: merge one pre-token into vocabulary ids, lowest rank first, and the bounded,
 * thread-safe cache of words already merged.
 *
 * Merge order is the reference's: repeatedly take the pair of lowest rank and merge all its
 * occurrences left to right. Words up to CS_BPE_SMALL symbols do exactly that on an array;
 * longer words (a prompt can hold one multi-megabyte run of letters) use one bucket of
 * positions per rank, visited in rank order, each sorted by position: the same merges in the
 * same order, because the vocabulary check at load (every merge's parts exist before it)
 * guarantees a merge never creates a pair of lower rank.
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

/* Ascending sort of positions (< 2^24: prompts are at most 16 MiB): LSD radix, 8 bits a pass;
 * insertion sort when short. */
static void sort_positions(int32_t *a, int32_t *tmp, size_t n) {
    if (n < 64) {
        for (size_t i = 1; i < n; i++) {
            int32_t v = a[i];
            size_t j = i;
            for (; j > 0 && a[j - 1] > v; j--) a[j] = a[j - 1];
            a[j] = v;
        }
        return;
    }
    int32_t max = 0;
    for (size_t i = 0; i < n; i++) max = a[i] > max ? a[i] : max;
    for (int shift = 0; shift < 32 && (max >> shift) > 0; shift += 8) {
        size_t count[257] = {0};
        for (size_t i = 0; i < n; i++) count[((uint32_t)a[i] >> shift & 0xFF) + 1]++;
        for (int k = 1; k < 257; k++) count[k] += count[k - 1];
        for (size_t i = 0; i < n; i++) tmp[count[(uint32_t)a[i] >> shift & 0xFF]++] = a[i];
        memcpy(a, tmp, n * sizeof *a);
    }
}

/* Words longer than CS_BPE_SMALL: symbols in a linked list, candidate pairs in one bucket per
 * rank (positions appended as pairs appear, in 64-byte blocks so reading a bucket is mostly
 * sequential). Ranks are visited in increasing order; a bucket is complete when its turn comes,
 * because a merge only creates pairs of higher rank (checked at load), and its positions are
 * sorted so the merges happen left to right, as in the reference. Stale entries (a symbol merged
 * away since) are skipped. Memory is linear (at most 3n entries); time linear apart from sorts. */
#define CS_BLOCK 14
typedef struct {
    int32_t pos[CS_BLOCK];
    int32_t n, next;
} pos_block; /* 64 bytes */

typedef struct {
    pos_block *b;
    size_t n, cap;
    int32_t *head, *tail; /* per rank: first and last block, -1 when empty */
} buckets;

static int bucket_push(buckets *q, uint32_t r, int32_t pos) {
    int32_t t = q->tail[r];
    if (t < 0 || q->b[t].n == CS_BLOCK) {
        if (q->n == q->cap) {
            pos_block *nb = realloc(q->b, 2 * q->cap * sizeof *nb);
            if (!nb) return 0;
            q->b = nb;
            q->cap *= 2;
        }
        int32_t k = (int32_t)q->n++;
        q->b[k].n = 0;
        q->b[k].next = -1;
        if (t < 0) q->head[r] = k;
        else q->b[t].next = k;
        q->tail[r] = t = k;
    }
    q->b[t].pos[q->b[t].n++] = pos;
    return 1;
}

static int merge_buckets(const clipskip_tokenizer *tok, int32_t *sym, size_t *pn) {
    size_t n = *pn;
    int32_t *next = malloc(n * sizeof *next), *prev = malloc(n * sizeof *prev);
    int32_t *batch = malloc(n * sizeof *batch), *tmp = malloc(n * sizeof *tmp);
    buckets q = {malloc((n / 4 + 16) * sizeof(pos_block)), 0, n / 4 + 16,
                 malloc(CS_N_MERGES * sizeof(int32_t)), malloc(CS_N_MERGES * sizeof(int32_t))};
    int ok = next && prev && batch && tmp && q.b && q.head && q.tail;
    int32_t mg = 0;
    if (ok) {
        memset(q.head, 0xFF, CS_N_MERGES * sizeof *q.head);
        memset(q.tail, 0xFF, CS_N_MERGES * sizeof *q.tail);
        for (size_t i = 0; i < n; i++) {
            next[i] = i + 1 < n ? (int32_t)(i + 1) : -1;
            prev[i] = (int32_t)i - 1;
        }
        for (size_t i = 0; ok && i + 1 < n; i++) {
            uint32_t r = rank_of(tok, sym[i], sym[i + 1], &mg);
            if (r != CS_NO_RANK) ok = bucket_push(&q, r, (int32_t)i);
        }
    }
    for (uint32_t r = 0; ok && r < CS_N_MERGES; r++) {
        size_t k = 0;
        for (int32_t x = q.head[r]; x >= 0; x = q.b[x].next)
            for (int32_t j = 0; j < q.b[x].n; j++)
                if (k < n) batch[k++] = q.b[x].pos[j]; /* at most n live positions per rank */
        sort_positions(batch, tmp, k);
        for (size_t b = 0; ok && b < k; b++) {
            int32_t i = batch[b], j = sym[i] >= 0 ? next[i] : -1;
            if (b && batch[b - 1] == i) continue;
            if (j < 0 || rank_of(tok, sym[i], sym[j], &mg) != r) continue; /* stale */
            sym[i] = mg;
            sym[j] = -1;
            next[i] = next[j];
            if (next[j] >= 0) prev[next[j]] = i;
            uint32_t rl = prev[i] >= 0 ? rank_of(tok, sym[prev[i]], sym[i], &mg) : CS_NO_RANK;
            if (rl != CS_NO_RANK) ok = bucket_push(&q, rl, prev[i]);
            uint32_t rr = next[i] >= 0 ? rank_of(tok, sym[i], sym[next[i]], &mg) : CS_NO_RANK;
            if (ok && rr != CS_NO_RANK) ok = bucket_push(&q, rr, i);
        }
    }
    if (ok) {
        size_t o = 0;
        for (size_t i = 0; i < n; i++)
            if (sym[i] >= 0) sym[o++] = sym[i];
        *pn = o;
    } else {
        cs_fail(CLIPSKIP_ERR_NOMEM, "out of host memory merging a %zu-byte word", n);
    }
    free(next), free(prev), free(batch), free(tmp), free(q.b), free(q.head), free(q.tail);
    return ok;
}

int cs_bpe_word_uncached(const clipskip_tokenizer *tok, const uint8_t *w, size_t n, cs_ids *out,
                         int force_long) {
    int32_t small[CS_BPE_SMALL];
    int32_t *sym = n <= CS_BPE_SMALL ? small : malloc(n * sizeof *sym);
    if (!sym) {
        cs_fail(CLIPSKIP_ERR_NOMEM, "out of host memory merging a %zu-byte word", n);
        return 0;
    }
    for (size_t i = 0; i + 1 < n; i++) sym[i] = tok->byte_id[w[i]];
    sym[n - 1] = tok->byte_eow_id[w[n - 1]];
    int ok = 1;
    if (n <= CS_BPE_SMALL && !force_long)
        merge_small(tok, sym, &n);
    else
        ok = merge_buckets(tok, sym, &n);
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

cs_word_cache *cs_word_cache_new(void) {
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

void cs_word_cache_free(cs_word_cache *c) {
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
