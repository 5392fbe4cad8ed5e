#include "prompts.h"

#include "dataset.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int push(cs_prompts *p, char *s, unsigned long long line) {
    if (p->n == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 64;
        char **t = realloc(p->text, cap * sizeof *t);
        if (t) p->text = t;
        unsigned long long *l = p->src ? realloc(p->line, cap * sizeof *l) : NULL;
        if (l) p->line = l;
        if (!t || (p->src && !l)) return -1;
        p->cap = cap;
    }
    if (p->src) p->line[p->n] = line;
    p->text[p->n++] = s;
    return 0;
}

static int read_lines(cs_prompts *p, const char *path) {
    cs_dataset *ds = cs_ds_open(path, "lines", NULL, NULL);
    if (!ds) return -1;
    p->src = strdup(cs_ds_name(ds));
    if (!p->src) {
        fprintf(stderr, "clipskip: %s: out of memory\n", cs_ds_name(ds));
        cs_ds_close(ds);
        return -1;
    }
    cs_ds_record rec;
    int rc;
    while ((rc = cs_ds_next(ds, &rec)) > 0) {
        /* prompts go on as C strings: a NUL would cut one short without a word */
        if (memchr(rec.text, 0, rec.len)) {
            fprintf(stderr, "clipskip: %s:%llu: line holds a NUL byte\n", cs_ds_name(ds),
                    (unsigned long long)rec.line);
            rc = -1;
            break;
        }
        char *copy = strdup(rec.text);
        if (!copy || push(p, copy, rec.line)) {
            free(copy);
            fprintf(stderr, "clipskip: %s:%llu: out of memory\n", cs_ds_name(ds),
                    (unsigned long long)rec.line);
            rc = -1;
            break;
        }
    }
    cs_ds_close(ds);
    return rc < 0 ? -1 : 0;
}

int cs_prompts_read(cs_prompts *p, char **args, int n_args, const char *file) {
    memset(p, 0, sizeof *p);
    if (n_args > 0 && !file) {
        for (int i = 0; i < n_args; i++)
            if (push(p, args[i], 0)) return -1;
        return 0;
    }
    if (n_args > 0) {
        fprintf(stderr, "clipskip: give prompts as arguments or with --file, not both\n");
        return -1;
    }
    return read_lines(p, file);
}

void cs_prompts_free(cs_prompts *p) {
    if (p->src) /* lines read: copies */
        for (size_t i = 0; i < p->n; i++) free(p->text[i]);
    free(p->text);
    free(p->src);
    free(p->line);
    memset(p, 0, sizeof *p);
}

const char *cs_prompts_where(const cs_prompts *p, size_t i, char *buf, size_t cap) {
    if (p->src) snprintf(buf, cap, "%s:%llu", p->src, p->line[i]);
    else snprintf(buf, cap, "prompt %zu", i);
    return buf;
}
