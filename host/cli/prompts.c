#include "prompts.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int push(cs_prompts *p, char *s) {
    if (p->n == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 64;
        char **t = realloc(p->text, cap * sizeof *t);
        if (!t) return -1;
        p->text = t;
        p->cap = cap;
    }
    p->text[p->n++] = s;
    return 0;
}

static int read_lines(cs_prompts *p, FILE *f, const char *name) {
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    size_t lineno = 0;
    while ((len = getline(&line, &cap, f)) >= 0) {
        lineno++;
        if (len > 0 && line[len - 1] == '\n') line[--len] = 0;
        if (len > 0 && line[len - 1] == '\r') line[--len] = 0;
        if (memchr(line, 0, (size_t)len)) {
            fprintf(stderr, "clipskip: %s:%zu: line holds a NUL byte\n", name, lineno);
            free(line);
            return -1;
        }
        char *copy = strdup(line);
        if (!copy || push(p, copy)) {
            free(copy);
            free(line);
            fprintf(stderr, "clipskip: %s:%zu: out of memory\n", name, lineno);
            return -1;
        }
    }
    free(line);
    if (ferror(f)) {
        fprintf(stderr, "clipskip: %s: read error after line %zu: %s\n", name, lineno, strerror(errno));
        return -1;
    }
    return 0;
}

int cs_prompts_read(cs_prompts *p, char **args, int n_args, const char *file) {
    memset(p, 0, sizeof *p);
    if (n_args > 0 && !file) {
        for (int i = 0; i < n_args; i++)
            if (push(p, args[i])) return -1;
        return 0;
    }
    if (n_args > 0) {
        fprintf(stderr, "clipskip: give prompts as arguments or with --file, not both\n");
        return -1;
    }
    p->owned = 1;
    if (!file || !strcmp(file, "-")) return read_lines(p, stdin, "<stdin>");
    FILE *f = fopen(file, "rb");
    if (!f) {
        fprintf(stderr, "clipskip: cannot open %s: %s\n", file, strerror(errno));
        return -1;
    }
    int rc = read_lines(p, f, file);
    fclose(f);
    return rc;
}

void cs_prompts_free(cs_prompts *p) {
    if (p->owned)
        for (size_t i = 0; i < p->n; i++) free(p->text[i]);
    free(p->text);
    memset(p, 0, sizeof *p);
}
