/* Loading the CLIP vocabulary: the built-in OpenAI merges file, a bpe_simple_vocab_16e6.txt(.gz)
 * file, or a diffusers/HF tokenizer/ folder (vocab.json + merges.txt). Every source ends in the
 * same tables: id -> string, string -> id, (a, b) -> (rank, merged id). */
#include "tokenizer_internal.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <utf8proc.h>
#include <zlib.h>

extern const unsigned char cs_vocab_gz[], cs_vocab_gz_end[];

#define CS_SOT "<|startoftext|>"
#define CS_EOT "<|endoftext|>"
#define CS_MAX_VOCAB_FILE (256u << 20)

/* ------------------------------------------------------------ bytes <-> unicode alphabet */

/* bytes_to_unicode(): the 188 printable bytes ('!'..'~', 0xA1..0xAC, 0xAE..0xFF) stand for
 * themselves, the other 68 map to U+0100.. in byte order. Vocabulary ids 0..255 list the bytes
 * printable ones first (that order), then the others. */
static int byte_is_printable(int b) {
    return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
}

uint32_t cs_byte_to_unicode(uint8_t b) {
    if (byte_is_printable(b)) return b;
    uint32_t n = 0;
    for (int i = 0; i < b; i++) n += !byte_is_printable(i);
    return 256 + n;
}

/* The 256 bytes in vocabulary order. */
static void byte_order(uint8_t order[256]) {
    int k = 0;
    for (int b = 0; b < 256; b++)
        if (byte_is_printable(b)) order[k++] = (uint8_t)b;
    for (int b = 0; b < 256; b++)
        if (!byte_is_printable(b)) order[k++] = (uint8_t)b;
}

/* Inverse of cs_byte_to_unicode (-1 for characters outside the alphabet). */
static int unicode_to_byte(int32_t cp) {
    if (cp < 0x100) return byte_is_printable(cp) ? cp : -1;
    if (cp < 0x100 + 68) {
        int n = cp - 0x100;
        for (int b = 0; b < 256; b++)
            if (!byte_is_printable(b) && n-- == 0) return b;
    }
    return -1;
}

static const char *vocab_str(const clipskip_tokenizer *tok, int32_t id) {
    return tok->str_pool + tok->str_off[id];
}

int32_t cs_vocab_lookup(const clipskip_tokenizer *tok, const char *s, size_t n) {
    if (!tok->str_slots) return -1;
    for (uint64_t h = cs_hash_bytes(s, n);; h++) {
        uint32_t v = tok->str_slots[h & tok->str_mask];
        if (v == 0) return -1;
        int32_t id = (int32_t)v - 1;
        uint32_t len = tok->str_off[id + 1] - tok->str_off[id] - 1;
        if (len == n && memcmp(vocab_str(tok, id), s, n) == 0) return id;
    }
}

/* ------------------------------------------------------------ reading files */

static clipskip_status read_file(const char *path, uint8_t **data, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return cs_fail(CLIPSKIP_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    cs_bytes b = {0};
    for (;;) {
        if (b.n + 65536 > CS_MAX_VOCAB_FILE) {
            fclose(f);
            free(b.p);
            return cs_fail(CLIPSKIP_ERR_FORMAT, "%s: larger than %u MiB, not a vocabulary", path,
                           CS_MAX_VOCAB_FILE >> 20);
        }
        if (!cs_bytes_reserve(&b, b.n + 65536)) {
            fclose(f);
            free(b.p);
            return CLIPSKIP_ERR_NOMEM;
        }
        size_t got = fread(b.p + b.n, 1, 65536, f);
        b.n += got;
        if (got < 65536) break;
    }
    int err = ferror(f);
    fclose(f);
    if (err) {
        free(b.p);
        return cs_fail(CLIPSKIP_ERR_IO, "%s: read failed", path);
    }
    b.p[b.n] = 0; /* the last fread returned < 65536 bytes, so this byte exists */
    *data = b.p;
    *len = b.n;
    return CLIPSKIP_OK;
}

/* gunzip (gzip or zlib framing, detected by inflate) into a new NUL-terminated buffer. */
static clipskip_status gunzip(const char *what, const uint8_t *src, size_t n, uint8_t **out,
                              size_t *out_len) {
    z_stream z;
    memset(&z, 0, sizeof z);
    if (inflateInit2(&z, 32 + MAX_WBITS) != Z_OK)
        return cs_fail(CLIPSKIP_ERR_NOMEM, "%s: zlib inflateInit2 failed", what);
    cs_bytes b = {0};
    z.next_in = (Bytef *)src;
    z.avail_in = (uInt)n;
    int rc = Z_OK;
    while (rc != Z_STREAM_END) {
        if (b.n + 1 + (1u << 20) > CS_MAX_VOCAB_FILE || !cs_bytes_reserve(&b, b.n + (1u << 20) + 1)) {
            inflateEnd(&z);
            free(b.p);
            return b.n + (1u << 20) > CS_MAX_VOCAB_FILE
                       ? cs_fail(CLIPSKIP_ERR_FORMAT, "%s: inflates past %u MiB", what,
                                 CS_MAX_VOCAB_FILE >> 20)
                       : CLIPSKIP_ERR_NOMEM;
        }
        z.next_out = b.p + b.n;
        z.avail_out = 1u << 20;
        rc = inflate(&z, Z_NO_FLUSH);
        b.n = (size_t)(z.next_out - b.p);
        if (rc != Z_OK && rc != Z_STREAM_END) {
            const char *msg = z.msg ? z.msg : "truncated or corrupt data";
            clipskip_status s = cs_fail(CLIPSKIP_ERR_FORMAT, "%s: gzip: %s at input byte %lu", what,
                                        msg, (unsigned long)z.total_in);
            inflateEnd(&z);
            free(b.p);
            return s;
        }
    }
    inflateEnd(&z);
    b.p[b.n] = 0;
    *out = b.p;
    *out_len = b.n;
    return CLIPSKIP_OK;
}

/* ------------------------------------------------------------ building the tables */

typedef struct {
    char **str;         /* n_vocab strings, id order */
    const char *(*merge)[2]; /* CS_N_MERGES pairs (pointers into some buffer) */
} vocab_src;

static clipskip_status build_strings(clipskip_tokenizer *tok, char **str) {
    size_t pool = 0, raw = 0;
    for (int32_t i = 0; i < tok->n_vocab; i++) pool += strlen(str[i]) + 1;
    tok->str_pool = cs_malloc(pool);
    tok->str_off = cs_malloc(sizeof(uint32_t) * (size_t)(tok->n_vocab + 1));
    tok->raw_pool = cs_malloc(pool); /* raw bytes are never longer than the UTF-8 string */
    tok->raw_off = cs_malloc(sizeof(uint32_t) * (size_t)(tok->n_vocab + 1));
    if (!tok->str_pool || !tok->str_off || !tok->raw_pool || !tok->raw_off) return CLIPSKIP_ERR_NOMEM;
    pool = 0;
    for (int32_t i = 0; i < tok->n_vocab; i++) {
        size_t n = strlen(str[i]);
        tok->str_off[i] = (uint32_t)pool;
        memcpy(tok->str_pool + pool, str[i], n + 1);
        pool += n + 1;
        tok->raw_off[i] = (uint32_t)raw;
        const uint8_t *s = (const uint8_t *)str[i];
        for (size_t k = 0; k < n;) {
            utf8proc_int32_t cp;
            utf8proc_ssize_t l = utf8proc_iterate(s + k, (utf8proc_ssize_t)(n - k), &cp);
            if (l <= 0) return cs_fail(CLIPSKIP_ERR_FORMAT, "vocabulary: id %d is not valid UTF-8", i);
            int b = unicode_to_byte(cp);
            if (b >= 0 && i < CLIPSKIP_BOS) {
                tok->raw_pool[raw++] = (uint8_t)b;
            } else { /* special tokens and characters outside the alphabet: their own UTF-8 */
                memcpy(tok->raw_pool + raw, s + k, (size_t)l);
                raw += (size_t)l;
            }
            k += (size_t)l;
        }
    }
    tok->str_off[tok->n_vocab] = (uint32_t)pool;
    tok->raw_off[tok->n_vocab] = (uint32_t)raw;

    tok->str_mask = 1;
    while (tok->str_mask < 2u * (uint32_t)tok->n_vocab) tok->str_mask <<= 1;
    tok->str_slots = cs_calloc(tok->str_mask, sizeof(uint32_t));
    if (!tok->str_slots) return CLIPSKIP_ERR_NOMEM;
    tok->str_mask -= 1;
    for (int32_t i = 0; i < tok->n_vocab; i++) {
        const char *s = vocab_str(tok, i);
        size_t n = tok->str_off[i + 1] - tok->str_off[i] - 1;
        if (cs_vocab_lookup(tok, s, n) >= 0)
            return cs_fail(CLIPSKIP_ERR_FORMAT, "vocabulary: \"%s\" appears twice (ids %d and %d)",
                           s, cs_vocab_lookup(tok, s, n), i);
        uint64_t h = cs_hash_bytes(s, n);
        while (tok->str_slots[h & tok->str_mask]) h++;
        tok->str_slots[h & tok->str_mask] = (uint32_t)i + 1;
    }
    return CLIPSKIP_OK;
}

static clipskip_status check_specials(const clipskip_tokenizer *tok, const char *what) {
    if (tok->n_vocab != CLIPSKIP_VOCAB)
        return cs_fail(CLIPSKIP_ERR_FORMAT, "%s: expected %d vocabulary entries, found %d", what,
                       CLIPSKIP_VOCAB, tok->n_vocab);
    if (strcmp(vocab_str(tok, CLIPSKIP_BOS), CS_SOT) || strcmp(vocab_str(tok, CLIPSKIP_EOS), CS_EOT))
        return cs_fail(CLIPSKIP_ERR_FORMAT,
                       "%s: expected " CS_SOT " = %d and " CS_EOT " = %d, found \"%s\" and \"%s\"",
                       what, CLIPSKIP_BOS, CLIPSKIP_EOS, vocab_str(tok, CLIPSKIP_BOS),
                       vocab_str(tok, CLIPSKIP_EOS));
    return CLIPSKIP_OK;
}

/* Byte symbols, the pair table, and the check that makes the O(n log n) merge exact: every
 * merge uses symbols that exist before it (bytes, or results of lower-ranked merges), so a
 * merge never creates a pair of lower rank than itself. The OpenAI file satisfies it. */
static clipskip_status build_merges(clipskip_tokenizer *tok, const char *what,
                                    const char *(*merge)[2]) {
    uint8_t order[256];
    byte_order(order);
    char s[16];
    for (int i = 0; i < 256; i++) {
        uint8_t b = order[i];
        size_t l = (size_t)utf8proc_encode_char((utf8proc_int32_t)cs_byte_to_unicode(b), (uint8_t *)s);
        tok->byte_id[b] = cs_vocab_lookup(tok, s, l);
        memcpy(s + l, "</w>", 4);
        tok->byte_eow_id[b] = cs_vocab_lookup(tok, s, l + 4);
        if (tok->byte_id[b] < 0 || tok->byte_eow_id[b] < 0)
            return cs_fail(CLIPSKIP_ERR_FORMAT, "%s: byte 0x%02X has no symbol%s in the vocabulary",
                           what, b, tok->byte_id[b] < 0 ? "" : " with </w>");
    }
    int32_t *created = malloc(sizeof(int32_t) * (size_t)tok->n_vocab);
    tok->pair_mask = 1u << 17; /* 131072 slots for 48894 pairs */
    tok->pairs = malloc(sizeof(cs_pair_slot) * tok->pair_mask);
    if (!created || !tok->pairs) {
        free(created);
        return cs_fail(CLIPSKIP_ERR_NOMEM, "out of host memory building the merge table");
    }
    tok->pair_mask -= 1;
    memset(tok->pairs, 0xFF, sizeof(cs_pair_slot) * (tok->pair_mask + 1));
    for (int32_t i = 0; i < tok->n_vocab; i++) created[i] = CS_N_MERGES;
    for (int b = 0; b < 256; b++) created[tok->byte_id[b]] = created[tok->byte_eow_id[b]] = -1;
    clipskip_status st = CLIPSKIP_OK;
    char buf[1024];
    for (int32_t r = 0; r < CS_N_MERGES && st == CLIPSKIP_OK; r++) {
        const char *a = merge[r][0], *b = merge[r][1];
        size_t la = strlen(a), lb = strlen(b);
        int32_t ia = cs_vocab_lookup(tok, a, la), ib = cs_vocab_lookup(tok, b, lb), im = -1;
        if (la + lb < sizeof buf) {
            memcpy(buf, a, la);
            memcpy(buf + la, b, lb);
            im = cs_vocab_lookup(tok, buf, la + lb);
        }
        uint32_t rk;
        int32_t mg;
        if (ia < 0 || ib < 0 || im < 0)
            st = cs_fail(CLIPSKIP_ERR_FORMAT, "%s: merge %d \"%s %s\": %s not in the vocabulary",
                         what, r + 1, a, b, ia < 0 ? "first part" : ib < 0 ? "second part" : "result");
        else if (created[ia] >= r || created[ib] >= r)
            st = cs_fail(CLIPSKIP_ERR_FORMAT,
                         "%s: merge %d \"%s %s\" uses a symbol no earlier merge creates", what,
                         r + 1, a, b);
        else if (cs_pair_get(tok, ia, ib, &rk, &mg))
            st = cs_fail(CLIPSKIP_ERR_FORMAT, "%s: merge %d \"%s %s\" repeats merge %u", what,
                         r + 1, a, b, rk + 1);
        else {
            uint32_t key = (uint32_t)ia << 16 | (uint32_t)ib;
            uint32_t h = (key * 0x9E3779B1u) >> 7;
            while (tok->pairs[h & tok->pair_mask].key != CS_PAIR_EMPTY) h++;
            tok->pairs[h & tok->pair_mask] = (cs_pair_slot){key, (uint16_t)r, (uint16_t)im};
            if (created[im] > r) created[im] = r;
        }
    }
    free(created);
    return st;
}

static clipskip_status build_width_map(clipskip_tokenizer *tok) {
    for (uint32_t c = CS_WIDTH_FIRST; c <= CS_WIDTH_LAST; c++) {
        uint32_t *dst = tok->width_map[c - CS_WIDTH_FIRST];
        uint8_t in[8], *nfkc;
        in[utf8proc_encode_char((utf8proc_int32_t)c, in)] = 0;
        nfkc = utf8proc_NFKC(in);
        if (!nfkc) return cs_fail(CLIPSKIP_ERR_NOMEM, "out of host memory (NFKC)");
        if (strcmp((char *)nfkc, (char *)in) != 0) {
            int k = 0;
            for (const uint8_t *p = nfkc; *p && k < 3;) {
                utf8proc_int32_t cp;
                p += utf8proc_iterate(p, -1, &cp);
                dst[k++] = (uint32_t)cp;
            }
            dst[k] = 0;
        }
        free(nfkc);
    }
    return CLIPSKIP_OK;
}

static clipskip_status finish(clipskip_tokenizer *tok, const char *what, char **str,
                              const char *(*merge)[2]) {
    clipskip_status st = build_strings(tok, str);
    if (st == CLIPSKIP_OK) st = check_specials(tok, what);
    if (st == CLIPSKIP_OK) st = build_merges(tok, what, merge);
    if (st == CLIPSKIP_OK) st = build_width_map(tok);
    return st;
}

/* ------------------------------------------------------------ sources */

/* The first CS_N_MERGES lines of [line, end) as "first second" pairs, split in place (the
 * buffer has a NUL at end). first_line numbers the lines in messages. */
static clipskip_status split_merges(const char *what, char *line, char *end, int first_line,
                                    const char *(*merge)[2]) {
    for (int32_t r = 0; r < CS_N_MERGES; r++) {
        if (line >= end)
            return cs_fail(CLIPSKIP_ERR_FORMAT, "%s: expected %d merges, found %d", what, CS_N_MERGES, r);
        char *nl = memchr(line, '\n', (size_t)(end - line));
        if (!nl) nl = end;
        *nl = 0;
        if (nl > line && nl[-1] == '\r') nl[-1] = 0;
        char *sp = strchr(line, ' ');
        if (!sp || sp == line || !sp[1] || strchr(sp + 1, ' '))
            return cs_fail(CLIPSKIP_ERR_FORMAT, "%s: line %d: expected \"first second\", found \"%.40s\"",
                           what, first_line + r, line);
        *sp = 0;
        merge[r][0] = line;
        merge[r][1] = sp + 1;
        line = nl + 1;
    }
    return CLIPSKIP_OK;
}

/* A merges file: line 0 is a header, lines 1..48894 the merges "a b" (as Python's
 * merges[1:49152-256-2+1]; later lines are not used). Vocabulary: the 256 byte symbols, the
 * same with "</w>", the merge results in rank order, <|startoftext|>, <|endoftext|>. */
static clipskip_status load_merges_text(clipskip_tokenizer *tok, const char *what, char *text,
                                        size_t len) {
    char **str = calloc(CLIPSKIP_VOCAB, sizeof(char *));
    const char *(*merge)[2] = calloc(CS_N_MERGES, sizeof *merge);
    char *sym = malloc(512 * 16 + (size_t)CS_N_MERGES * 2 + len + 64);
    clipskip_status st = CLIPSKIP_OK;
    if (!str || !merge || !sym) {
        st = cs_fail(CLIPSKIP_ERR_NOMEM, "out of host memory reading %s", what);
        goto done;
    }
    uint8_t order[256];
    byte_order(order);
    char *w = sym;
    for (int e = 0; e < 2; e++)
        for (int i = 0; i < 256; i++) {
            str[e * 256 + i] = w;
            w += utf8proc_encode_char((utf8proc_int32_t)cs_byte_to_unicode(order[i]), (uint8_t *)w);
            w += sprintf(w, "%s", e ? "</w>" : "") + 1;
        }
    char *line = memchr(text, '\n', len) ? (char *)memchr(text, '\n', len) + 1 : text + len;
    st = split_merges(what, line, text + len, 2, merge);
    if (st) goto done;
    for (int32_t r = 0; r < CS_N_MERGES; r++) {
        str[512 + r] = w;
        w += sprintf(w, "%s%s", merge[r][0], merge[r][1]) + 1;
    }
    str[CLIPSKIP_BOS] = CS_SOT;
    str[CLIPSKIP_EOS] = CS_EOT;
    tok->n_vocab = CLIPSKIP_VOCAB;
    st = finish(tok, what, str, merge);
done:
    free(str);
    free(merge);
    free(sym);
    return st;
}

static clipskip_status load_text_file(clipskip_tokenizer *tok, const char *path) {
    uint8_t *data, *text;
    size_t len, tlen;
    clipskip_status st = read_file(path, &data, &len);
    if (st) return st;
    if (len >= 2 && data[0] == 0x1F && data[1] == 0x8B) {
        st = gunzip(path, data, len, &text, &tlen);
        free(data);
        if (st) return st;
    } else {
        text = data;
        tlen = len;
    }
    st = load_merges_text(tok, path, (char *)text, tlen);
    free(text);
    return st;
}

/* vocab.json (string -> id, 49408 entries) + merges.txt ("#version" header line, then at
 * least 48894 merges; like transformers, the first 48894 are used). */
static clipskip_status load_folder(clipskip_tokenizer *tok, const char *dir) {
    char vpath[4096], mpath[4096];
    snprintf(vpath, sizeof vpath, "%s/vocab.json", dir);
    snprintf(mpath, sizeof mpath, "%s/merges.txt", dir);
    uint8_t *vdata = NULL, *mdata = NULL;
    size_t vlen, mlen;
    char **str = NULL;
    const char *(*merge)[2] = NULL;
    cJSON *json = NULL;
    clipskip_status st = read_file(vpath, &vdata, &vlen);
    if (st) goto done;
    st = read_file(mpath, &mdata, &mlen);
    if (st) goto done;
    const char *jend = NULL;
    json = cs_json_parse((const char *)vdata, vlen, &jend);
    if (!cJSON_IsObject(json)) {
        st = cs_fail(CLIPSKIP_ERR_FORMAT, "%s: not a JSON object (parse stopped at byte %ld)", vpath,
                     jend ? (long)(jend - (const char *)vdata) : 0L);
        goto done;
    }
    int n = cJSON_GetArraySize(json);
    str = calloc(n > 0 ? (size_t)n : 1, sizeof(char *));
    merge = calloc(CS_N_MERGES, sizeof *merge);
    if (!str || !merge) {
        st = cs_fail(CLIPSKIP_ERR_NOMEM, "out of host memory reading %s", vpath);
        goto done;
    }
    for (cJSON *it = json->child; it; it = it->next) {
        double v = cJSON_IsNumber(it) ? it->valuedouble : -1;
        int id = (int)v;
        if (v != id || id < 0 || id >= n || str[id]) {
            st = cs_fail(CLIPSKIP_ERR_FORMAT, "%s: \"%s\": id must be a unique integer 0..%d", vpath,
                         it->string, n - 1);
            goto done;
        }
        str[id] = it->string;
    }
    tok->n_vocab = n;
    st = build_strings(tok, str);
    if (st == CLIPSKIP_OK) st = check_specials(tok, vpath);
    if (st) goto done;
    /* merges.txt: reuse the text parser's line handling */
    char *line = (char *)mdata, *end = (char *)mdata + mlen;
    if (mlen >= 8 && memcmp(line, "#version", 8) == 0) {
        char *nl = memchr(line, '\n', mlen);
        line = nl ? nl + 1 : end;
    }
    st = split_merges(mpath, line, end, line == (char *)mdata ? 1 : 2, merge);
    if (st) goto done;
    st = build_merges(tok, mpath, merge);
    if (st == CLIPSKIP_OK) st = build_width_map(tok);
done:
    cJSON_Delete(json);
    free(str);
    free(merge);
    free(vdata);
    free(mdata);
    return st;
}

clipskip_status cs_vocab_load(clipskip_tokenizer *tok, const char *path) {
    if (!path) {
        uint8_t *text;
        size_t len;
        clipskip_status st = gunzip("built-in vocabulary", cs_vocab_gz,
                                    (size_t)(cs_vocab_gz_end - cs_vocab_gz), &text, &len);
        if (st) return st;
        st = load_merges_text(tok, "built-in vocabulary", (char *)text, len);
        free(text);
        return st;
    }
    struct stat sb;
    if (stat(path, &sb) != 0) return cs_fail(CLIPSKIP_ERR_IO, "%s: %s", path, strerror(errno));
    if (S_ISDIR(sb.st_mode)) return load_folder(tok, path);
    return load_text_file(tok, path);
}

void cs_vocab_free(clipskip_tokenizer *tok) {
    free(tok->str_pool);
    free(tok->str_off);
    free(tok->raw_pool);
    free(tok->raw_off);
    free(tok->pairs);
    free(tok->str_slots);
}
