/* Reading the tokenizer corpus (tests/data/tokenizer/corpus.txt) and golden ids (golden.txt.gz):
 * formats written by weights/gen_tokenizer_corpus.py and weights/gen_tokenizer_golden.py. */
#ifndef CS_TEST_CORPUS_IO_H
#define CS_TEST_CORPUS_IO_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

typedef struct {
    char *category;
    char *text; /* unescaped UTF-8 (never holds a NUL) */
    size_t len;
} corpus_item;

static inline size_t put_utf8(char *o, uint32_t c) {
    if (c < 0x80) { o[0] = (char)c; return 1; }
    if (c < 0x800) { o[0] = (char)(0xC0 | c >> 6); o[1] = (char)(0x80 | (c & 0x3F)); return 2; }
    if (c < 0x10000) {
        o[0] = (char)(0xE0 | c >> 12); o[1] = (char)(0x80 | (c >> 6 & 0x3F)); o[2] = (char)(0x80 | (c & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | c >> 18); o[1] = (char)(0x80 | (c >> 12 & 0x3F));
    o[2] = (char)(0x80 | (c >> 6 & 0x3F)); o[3] = (char)(0x80 | (c & 0x3F));
    return 4;
}

/* Unescape \\ \t \n \r \uXXXX \UXXXXXXXX in place; returns the new length or -1. */
static inline long corpus_unescape(char *s) {
    char *o = s;
    for (char *p = s; *p;) {
        if (*p != '\\') { *o++ = *p++; continue; }
        char n = p[1];
        if (n == '\\' || n == 't' || n == 'n' || n == 'r') {
            *o++ = n == 't' ? '\t' : n == 'n' ? '\n' : n == 'r' ? '\r' : '\\';
            p += 2;
        } else if (n == 'u' || n == 'U') {
            int k = n == 'u' ? 4 : 8;
            char hex[9] = {0};
            memcpy(hex, p + 2, (size_t)k);
            if ((int)strlen(hex) != k) return -1;
            o += put_utf8(o, (uint32_t)strtoul(hex, NULL, 16));
            p += 2 + k;
        } else {
            return -1;
        }
    }
    *o = 0;
    return (long)(o - s);
}

/* All prompts of the corpus file; returns the count, or -1 (message printed). */
static inline long corpus_read(const char *path, corpus_item **out) {
    FILE *f = fopen(path, "rb");
    if (!f) { fprintf(stderr, "cannot open %s\n", path); return -1; }
    char *line = NULL;
    size_t cap = 0, n = 0, alloc = 0;
    ssize_t len;
    corpus_item *items = NULL;
    while ((len = getline(&line, &cap, f)) >= 0) {
        if (len && line[len - 1] == '\n') line[--len] = 0;
        if (line[0] == '#') continue;
        char *tab = strchr(line, '\t');
        if (!tab) { fprintf(stderr, "%s: line without a tab\n", path); return -1; }
        *tab = 0;
        if (n == alloc) {
            alloc = alloc ? 2 * alloc : 1024;
            items = realloc(items, alloc * sizeof *items);
        }
        items[n].category = strdup(line);
        items[n].text = strdup(tab + 1);
        long l = corpus_unescape(items[n].text);
        if (l < 0) { fprintf(stderr, "%s: bad escape in prompt %zu\n", path, n); return -1; }
        items[n].len = (size_t)l;
        n++;
    }
    free(line);
    fclose(f);
    *out = items;
    return (long)n;
}

static inline void corpus_free(corpus_item *items, long n) {
    for (long i = 0; i < n; i++) { free(items[i].category); free(items[i].text); }
    free(items);
}

/* Parse "tag id id id" into ids (capacity cap); returns the count (may exceed cap: truncated). */
static inline size_t parse_ids(const char *s, int32_t *ids, size_t cap) {
    size_t n = 0;
    const char *p = strchr(s, ' ');
    while (p && *p) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p) break;
        if (n < cap) ids[n] = (int32_t)v;
        n++;
        p = end;
    }
    return n;
}

#endif
