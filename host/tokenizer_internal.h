/* The CLIP tokenizer's internals, shared by tokenizer.c (public API, pre-tokenizer),
 * tok_vocab.c (loading), bpe.c (merges, word cache) and text_clean.c (cleanup modes).
 * Not installed. SEMANTICS.md "Tokens" is the contract; docs/tokenizer.md explains it. */
#ifndef CLIPSKIP_TOKENIZER_INTERNAL_H
#define CLIPSKIP_TOKENIZER_INTERNAL_H

#include "internal.h"

#include <stddef.h>
#include <stdint.h>

#define CS_N_MERGES 48894 /* lines 1..48894 of the OpenAI merges file */
#define CS_WIDTH_FIRST 0xFF01 /* ftfy fix_character_width: U+FF01..U+FFEF (and U+3000) */
#define CS_WIDTH_LAST 0xFFEF

/* ---- growable buffers (library-internal; allocation failures set the error) */
/* p may start as caller-provided storage (heap == 0): growing moves it to the heap. */
typedef struct {
    uint8_t *p;
    size_t n, cap;
    int heap;
} cs_bytes;

typedef struct {
    uint32_t *p;
    size_t n, cap;
    int heap;
} cs_u32s;

typedef struct {
    int32_t *p;
    size_t n, cap;
    int32_t inline_buf[128]; /* most prompts never allocate */
} cs_ids;

int cs_bytes_reserve(cs_bytes *b, size_t cap);
int cs_u32s_reserve(cs_u32s *b, size_t cap);
void cs_bytes_free(cs_bytes *b);
void cs_u32s_free(cs_u32s *b);
void cs_ids_init(cs_ids *v);
int cs_ids_push(cs_ids *v, int32_t id);
void cs_ids_free(cs_ids *v);

/* ---- the loaded vocabulary */

/* merges: pair (a, b) of symbol ids -> rank and the id of the merged symbol */
typedef struct {
    uint32_t key; /* a << 16 | b; CS_PAIR_EMPTY when unused */
    uint16_t rank;
    uint16_t merged;
} cs_pair_slot;
#define CS_PAIR_EMPTY 0xFFFFFFFFu

typedef struct cs_word_cache cs_word_cache;

struct clipskip_tokenizer {
    int32_t n_vocab;         /* 49408 */
    /* vocabulary strings as in vocab.json (byte-to-unicode alphabet, "</w>" suffix) */
    char *str_pool;
    uint32_t *str_off;       /* (n_vocab + 1) offsets into str_pool, strings NUL-terminated */
    /* the bytes each id stands for ("</w>" kept as its four ASCII bytes), for decode */
    uint8_t *raw_pool;
    uint32_t *raw_off;       /* (n_vocab + 1) */
    int32_t byte_id[256];    /* symbol of one byte inside a word */
    int32_t byte_eow_id[256];/* symbol of one byte ending a word ("x</w>") */
    cs_pair_slot *pairs;     /* open addressing, pair_mask + 1 slots */
    uint32_t pair_mask;
    uint32_t *str_slots;     /* string -> id hash (id + 1, 0 = empty), str_mask + 1 slots */
    uint32_t str_mask;
    uint32_t width_map[CS_WIDTH_LAST - CS_WIDTH_FIRST + 1][4]; /* NFKC of U+FF01..U+FFEF,
                                                             0-terminated; [0] = 0: unchanged */
    cs_word_cache *cache;    /* merged words; internally locked (bpe.c) */
};

/* The unicode character standing for byte b in vocabulary strings (GPT-2 / CLIP bytes_to_unicode). */
uint32_t cs_byte_to_unicode(uint8_t b);
/* Id of a vocabulary string of n bytes, or -1. */
int32_t cs_vocab_lookup(const clipskip_tokenizer *tok, const char *s, size_t n);
/* Rank and merged id of the pair (a, b); returns 0 when the pair does not merge. */
static inline int cs_pair_get(const clipskip_tokenizer *tok, int32_t a, int32_t b, uint32_t *rank,
                              int32_t *merged) {
    uint32_t key = (uint32_t)a << 16 | (uint32_t)b;
    uint32_t h = (key * 0x9E3779B1u) >> 7;
    for (;;) {
        const cs_pair_slot *s = &tok->pairs[h & tok->pair_mask];
        if (s->key == key) {
            *rank = s->rank;
            *merged = s->merged;
            return 1;
        }
        if (s->key == CS_PAIR_EMPTY) return 0;
        h++;
    }
}

/* tok_vocab.c: fill tok (allocated with calloc) from the built-in vocabulary, a merges file
 * (.txt / .txt.gz) or a folder with vocab.json + merges.txt. */
clipskip_status cs_vocab_load(clipskip_tokenizer *tok, const char *path);
void cs_vocab_free(clipskip_tokenizer *tok);

/* ---- bpe.c */
cs_word_cache *cs_word_cache_new(void);
void cs_word_cache_free(cs_word_cache *c);
/* Append the ids of one pre-token (bytes of the cleaned, lowercased text; never empty). */
int cs_bpe_word(const clipskip_tokenizer *tok, const uint8_t *w, size_t n, cs_ids *out);
/* The same without the cache (tests compare the two merge algorithms through it);
 * force_long selects the long-word (rank bucket) algorithm for any length. */
int cs_bpe_word_uncached(const clipskip_tokenizer *tok, const uint8_t *w, size_t n, cs_ids *out,
                         int force_long);

/* ---- text_clean.c */

/* Check UTF-8 (RFC 3629: no overlongs, surrogates or code points past U+10FFFF) and reject NUL;
 * on failure cs_fail(CLIPSKIP_ERR_TEXT, "... at byte N ...") naming the first bad byte. */
clipskip_status cs_utf8_check(const uint8_t *s, size_t n);
/* Decode valid UTF-8 (checked before) into code points, appending to out. */
int cs_utf8_decode(const uint8_t *s, size_t n, cs_u32s *out);
/* Append the UTF-8 encoding of n code points to out. */
int cs_utf8_encode(const uint32_t *cp, size_t n, cs_bytes *out);

/* The cleanup of one mode, up to and including lowercasing; whitespace is left in place (the
 * pre-tokenizer treats every whitespace character as a separator, so collapsing runs and
 * stripping cannot change a token). Output: UTF-8 in out (cleared first).
 *   CLIPSKIP_CLEAN_HF:       ftfy.fix_text, then Python str.lower (text without special tokens:
 *                            the caller splits those off first, as transformers does)
 *   CLIPSKIP_CLEAN_OPENCLIP: ftfy.fix_text, html.unescape twice, then Python str.lower
 *   CLIPSKIP_CLEAN_HF_FAST:  NFC, then per-character full lowercase (no final sigma) */
clipskip_status cs_clean(const clipskip_tokenizer *tok, clipskip_clean mode, const uint8_t *s,
                         size_t n, cs_bytes *out);

/* Python str.isspace (Zs, or bidirectional class B, S or WS). */
int cs_py_isspace(uint32_t c);

/* Append NFC(in) to out. Linear in n (canonical reordering is a stable counting sort). */
int cs_nfc_append(const uint32_t *in, size_t n, cs_u32s *out);

#endif
