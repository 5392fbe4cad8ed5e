/* Streaming caption readers for dataset encoding: one record at a time, bounded memory.
 * Formats: plain lines, JSONL (a string field), CSV / TSV (a column by header name or 1-based
 * index; RFC 4180 quoting, quoted fields may span lines; the first row is the header). */
#ifndef CLIPSKIP_CLI_DATASET_H
#define CLIPSKIP_CLI_DATASET_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef enum { CS_DS_LINES, CS_DS_JSONL, CS_DS_CSV, CS_DS_TSV } cs_ds_format;

typedef struct {
    char *text;        /* the caption, NUL-terminated (valid until the next read); NULL on error */
    size_t len;
    uint64_t line;     /* 1-based line where the record starts */
    const char *error; /* why this record has no caption (malformed row, missing field), or NULL */
} cs_ds_record;

typedef struct cs_dataset cs_dataset;

/* path "-" or NULL: stdin. format_name: "auto" (by extension: .jsonl/.json → JSONL, .csv, .tsv,
 * else lines), "lines", "jsonl", "csv", "tsv". field: JSONL key (default "caption"); column:
 * CSV/TSV header name or 1-based index (default "caption"). Prints why on stderr and returns
 * NULL on failure (unreadable file, no such column in the header). */
cs_dataset *cs_ds_open(const char *path, const char *format_name, const char *field,
                       const char *column);
/* 1: a record (maybe with rec->error set), 0: end of input, -1: read error (printed). */
int cs_ds_next(cs_dataset *ds, cs_ds_record *rec);
/* Bytes consumed so far and the input's size (0 when unknown: a pipe). */
void cs_ds_progress(const cs_dataset *ds, uint64_t *done, uint64_t *total);
const char *cs_ds_name(const cs_dataset *ds);
void cs_ds_close(cs_dataset *ds);

#endif
