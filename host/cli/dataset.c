#include "dataset.h"
#include "internal.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

struct cs_dataset {
    FILE *f;
    char *name;
    cs_ds_format fmt;
    char *key;           /* JSONL field */
    int column;          /* CSV/TSV 0-based column */
    char *line;          /* getline buffer */
    size_t line_cap;
    char *out;           /* current record (CSV field / JSON string) */
    size_t out_len, out_cap;
    uint64_t line_no, bytes, size;
};

static int ends_with(const char *s, const char *suf) {
    size_t n = strlen(s), k = strlen(suf);
    return n >= k && !strcmp(s + n - k, suf);
}

static int parse_format(const char *name, const char *path, cs_ds_format *fmt) {
    static const char *const names[] = {"lines", "jsonl", "csv", "tsv"};
    if (!name || !strcmp(name, "auto")) {
        const char *p = path ? path : "";
        *fmt = ends_with(p, ".jsonl") || ends_with(p, ".json") ? CS_DS_JSONL
               : ends_with(p, ".csv")                        ? CS_DS_CSV
               : ends_with(p, ".tsv")                        ? CS_DS_TSV
                                                             : CS_DS_LINES;
        return 0;
    }
    for (int i = 0; i < 4; i++)
        if (!strcmp(name, names[i])) {
            *fmt = (cs_ds_format)i;
            return 0;
        }
    fprintf(stderr, "clipskip: --input-format must be auto, lines, jsonl, csv or tsv, not '%s'\n", name);
    return -1;
}

/* One physical line into ds->line without its "\n" / "\r\n"; returns its length or -1. */
static ssize_t read_line(cs_dataset *ds) {
    ssize_t n = getline(&ds->line, &ds->line_cap, ds->f);
    if (n < 0) return -1;
    ds->bytes += (uint64_t)n;
    ds->line_no++;
    if (n > 0 && ds->line[n - 1] == '\n') ds->line[--n] = 0;
    if (n > 0 && ds->line[n - 1] == '\r') ds->line[--n] = 0;
    return n;
}

static int out_put(cs_dataset *ds, const char *p, size_t n) {
    if (ds->out_len + n + 1 > ds->out_cap) {
        size_t cap = (ds->out_len + n + 1) * 2;
        char *o = realloc(ds->out, cap);
        if (!o) return -1;
        ds->out = o;
        ds->out_cap = cap;
    }
    memcpy(ds->out + ds->out_len, p, n);
    ds->out_len += n;
    ds->out[ds->out_len] = 0;
    return 0;
}

/* ---- CSV / TSV: one record's fields; the wanted column goes to out. Quoted fields may span
 * lines. Returns 1 record, 0 EOF, -1 I/O error; *err for a malformed record. */
static int csv_record(cs_dataset *ds, int want, int *n_fields, const char **err) {
    char delim = ds->fmt == CS_DS_TSV ? '\t' : ',';
    ds->out_len = 0;
    if (ds->out) ds->out[0] = 0;
    *err = NULL;
    ssize_t n = read_line(ds);
    if (n < 0) return ferror(ds->f) ? -1 : 0;
    int col = 0, quoted = 0, at_start = 1;
    for (;;) {
        const char *p = ds->line, *end = ds->line + n;
        while (p < end) {
            char c = *p++;
            if (quoted) {
                if (c == '"' && p < end && *p == '"') c = *p++;
                else if (c == '"') { quoted = 0; continue; }
            } else if (c == '"' && at_start) {
                quoted = 1, at_start = 0;
                continue;
            } else if (c == delim) {
                col++, at_start = 1;
                continue;
            }
            at_start = 0;
            if (col == want && out_put(ds, &c, 1)) return -1;
        }
        if (!quoted) break;
        if (col == want && out_put(ds, "\n", 1)) return -1; /* newline inside a quoted field */
        n = read_line(ds);
        if (n < 0) {
            *err = "unterminated quoted field at end of input";
            break;
        }
    }
    *n_fields = col + 1;
    if (!ds->out && out_put(ds, "", 0)) return -1;
    return 1;
}

static int csv_header(cs_dataset *ds, const char *column) {
    char *end;
    long idx = strtol(column, &end, 10);
    int n_fields = 0;
    const char *err;
    if (*column && !*end && idx >= 1) { /* 1-based index; the header row is skipped */
        ds->column = (int)idx - 1;
        return csv_record(ds, -1, &n_fields, &err) < 0 ? -1 : 0;
    }
    for (int c = 0;; c++) { /* find the named column: rescan the header per column (small) */
        if (c > 0) {
            rewind(ds->f);
            ds->bytes = ds->line_no = 0;
        }
        if (csv_record(ds, c, &n_fields, &err) <= 0 || c >= n_fields) break;
        if (!strcmp(ds->out, column)) {
            ds->column = c;
            return 0;
        }
    }
    fprintf(stderr, "clipskip: %s: no column '%s' in the header row (give --column NAME or "
                    "a 1-based index)\n", ds->name, column);
    return -1;
}

/* ---- JSONL */
static void json_record(cs_dataset *ds, ssize_t n, cs_ds_record *rec) {
    cJSON *j = cs_json_parse(ds->line, (size_t)n, NULL);
    const cJSON *v = j ? cJSON_GetObjectItemCaseSensitive(j, ds->key) : NULL;
    ds->out_len = 0;
    if (!j || !cJSON_IsObject(j)) rec->error = "not a JSON object";
    else if (!v) rec->error = "the caption field is missing";
    else if (!cJSON_IsString(v)) rec->error = "the caption field is not a string";
    else if (out_put(ds, v->valuestring, strlen(v->valuestring))) rec->error = "out of memory";
    if (!rec->error) rec->text = ds->out, rec->len = ds->out_len;
    cJSON_Delete(j);
}

int cs_ds_next(cs_dataset *ds, cs_ds_record *rec) {
    memset(rec, 0, sizeof *rec);
    if (ds->fmt == CS_DS_CSV || ds->fmt == CS_DS_TSV) {
        int n_fields = 0;
        uint64_t start = ds->line_no + 1;
        int r = csv_record(ds, ds->column, &n_fields, &rec->error);
        if (r <= 0) return r;
        rec->line = start;
        if (!rec->error && n_fields <= ds->column) rec->error = "the row has no such column";
        if (!rec->error) rec->text = ds->out, rec->len = ds->out_len;
        return 1;
    }
    ssize_t n = read_line(ds);
    if (n < 0) {
        if (!ferror(ds->f)) return 0;
        fprintf(stderr, "clipskip: %s: read error after line %llu: %s\n", ds->name,
                (unsigned long long)ds->line_no, strerror(errno));
        return -1;
    }
    rec->line = ds->line_no;
    if (ds->fmt == CS_DS_JSONL) {
        json_record(ds, n, rec);
    } else {
        rec->text = ds->line;
        rec->len = (size_t)n; /* may hold a NUL byte: the tokenizer reports it with its offset */
    }
    return 1;
}

cs_dataset *cs_ds_open(const char *path, const char *format_name, const char *field,
                       const char *column) {
    cs_dataset *ds = calloc(1, sizeof *ds);
    if (!ds) return NULL;
    int is_stdin = !path || !strcmp(path, "-");
    ds->name = strdup(is_stdin ? "<stdin>" : path);
    ds->key = strdup(field ? field : "caption");
    if (parse_format(format_name, is_stdin ? NULL : path, &ds->fmt)) goto fail;
    ds->f = is_stdin ? stdin : fopen(path, "rb");
    if (!ds->f) {
        fprintf(stderr, "clipskip: cannot open %s: %s\n", path, strerror(errno));
        goto fail;
    }
    struct stat sb;
    if (!is_stdin && fstat(fileno(ds->f), &sb) == 0 && S_ISREG(sb.st_mode)) ds->size = (uint64_t)sb.st_size;
    if ((ds->fmt == CS_DS_CSV || ds->fmt == CS_DS_TSV)) {
        if (is_stdin && !(column && strtol(column, NULL, 10) >= 1)) {
            fprintf(stderr, "clipskip: CSV from stdin needs --column as a 1-based index\n");
            goto fail;
        }
        if (csv_header(ds, column ? column : "caption")) goto fail;
    }
    return ds;
fail:
    cs_ds_close(ds);
    return NULL;
}

void cs_ds_progress(const cs_dataset *ds, uint64_t *done, uint64_t *total) {
    *done = ds->bytes;
    *total = ds->size;
}

const char *cs_ds_name(const cs_dataset *ds) { return ds->name; }

void cs_ds_close(cs_dataset *ds) {
    if (!ds) return;
    if (ds->f && ds->f != stdin) fclose(ds->f);
    free(ds->name), free(ds->key), free(ds->line), free(ds->out);
    free(ds);
}
