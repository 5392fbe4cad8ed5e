/* Validated, mmap-based safetensors reader and an atomic writer (rules in safetensors.h).
 *
 * Decisions beyond the official implementation, each for a reason:
 * - Trailing bytes after the last tensor are accepted with a warning (the official reader
 *   refuses them): some real SD1.5 checkpoints carry 4, and refusing them helps nobody.
 * - JSON numbers (shape, data_offsets) must be integral, >= 0 and <= 2^53: cJSON stores numbers
 *   as doubles, and 2^53 bytes (8 PiB) is beyond any file. "1.0" is read as 1.
 * - Raw control characters (< 0x20 other than tab, CR, LF) are refused anywhere in the header:
 *   JSON allows them nowhere, and refusing NUL lets the header be parsed as a C string.
 * - The header must start with '{' (as the official reader checks since 0.4).
 * - A tensor whose data is not aligned to its item size in the mapping (only possible in files
 *   not written by the official writer) is copied once into aligned memory; every other
 *   tensor is a zero-copy view into the mapping. */
#include "safetensors.h"

#include "internal.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <utf8proc.h>

#define MAX_JSON_INT 9007199254740992.0 /* 2^53: doubles hold every integer up to here */

/* The public struct plus what only this file needs to release it. */
typedef struct {
    cs_safetensors pub;
    int owns_map;  /* 1: map is our mmap (cs_st_open); 0: the caller's buffer (cs_st_parse) */
    void *aligned; /* copies of misaligned tensors, or NULL */
} st_impl;

static const struct {
    const char *name;
    size_t size;
} DTYPES[CS_ST_N_DTYPES] = {
    [CS_ST_F32] = {"F32", 4},   [CS_ST_F16] = {"F16", 2},         [CS_ST_BF16] = {"BF16", 2},
    [CS_ST_F64] = {"F64", 8},   [CS_ST_I64] = {"I64", 8},         [CS_ST_I32] = {"I32", 4},
    [CS_ST_I16] = {"I16", 2},   [CS_ST_I8] = {"I8", 1},           [CS_ST_U8] = {"U8", 1},
    [CS_ST_BOOL] = {"BOOL", 1}, [CS_ST_F8_E4M3] = {"F8_E4M3", 1}, [CS_ST_F8_E5M2] = {"F8_E5M2", 1},
    [CS_ST_U16] = {"U16", 2},   [CS_ST_U32] = {"U32", 4},         [CS_ST_U64] = {"U64", 8},
};

const char *cs_st_dtype_name(cs_st_dtype dt) {
    return (unsigned)dt < CS_ST_N_DTYPES ? DTYPES[dt].name : "?";
}

size_t cs_st_dtype_size(cs_st_dtype dt) {
    return (unsigned)dt < CS_ST_N_DTYPES ? DTYPES[dt].size : 0;
}

int cs_st_to_clipskip_dtype(cs_st_dtype dt) {
    switch (dt) {
    case CS_ST_F32: return CLIPSKIP_DTYPE_F32;
    case CS_ST_F16: return CLIPSKIP_DTYPE_F16;
    case CS_ST_BF16: return CLIPSKIP_DTYPE_BF16;
    default: return -1;
    }
}

static int dtype_from_name(const char *s, cs_st_dtype *out) {
    for (int i = 0; i < CS_ST_N_DTYPES; i++)
        if (strcmp(s, DTYPES[i].name) == 0) {
            *out = (cs_st_dtype)i;
            return 1;
        }
    return 0;
}

static const char *json_type_name(const cJSON *v) {
    if (cJSON_IsObject(v)) return "an object";
    if (cJSON_IsArray(v)) return "an array";
    if (cJSON_IsString(v)) return "a string";
    if (cJSON_IsNumber(v)) return "a number";
    if (cJSON_IsBool(v)) return "a boolean";
    if (cJSON_IsNull(v)) return "null";
    return "an unknown value";
}

/* "[2, 3]" into buf. */
static const char *shape_str(const int64_t *shape, int ndim, char *buf, size_t cap) {
    size_t n = 0;
    buf[0] = 0;
    n += (size_t)snprintf(buf + n, cap - n, "[");
    for (int i = 0; i < ndim && n < cap; i++)
        n += (size_t)snprintf(buf + n, cap - n, "%s%" PRId64, i ? ", " : "", shape[i]);
    if (n < cap) snprintf(buf + n, cap - n, "]");
    return buf;
}

/* A JSON number that is an exact non-negative integer within 2^53. */
static int json_u64(const cJSON *v, uint64_t *out) {
    if (!cJSON_IsNumber(v)) return 0;
    double d = v->valuedouble;
    if (!isfinite(d) || d < 0 || d > MAX_JSON_INT || d != floor(d)) return 0;
    *out = (uint64_t)d;
    return 1;
}

/* ------------------------------------------------------------------ header checks */

/* Valid UTF-8 and no raw control characters. Offsets in messages are file offsets. */
static clipskip_status check_header_text(const uint8_t *h, size_t n, const char *file) {
    size_t i = 0;
    while (i < n) {
        if (h[i] < 0x80) {
            if (h[i] < 0x20 && h[i] != '\t' && h[i] != '\n' && h[i] != '\r')
                return cs_fail(CLIPSKIP_ERR_FORMAT,
                               "%s: header: JSON text: expected no raw control characters, "
                               "found byte 0x%02x at file offset %zu",
                               file, h[i], i + 8);
            i++;
            continue;
        }
        utf8proc_int32_t cp;
        utf8proc_ssize_t len = utf8proc_iterate(h + i, (utf8proc_ssize_t)(n - i), &cp);
        if (len <= 0)
            return cs_fail(CLIPSKIP_ERR_FORMAT,
                           "%s: header: encoding: expected valid UTF-8, found an invalid "
                           "sequence at file offset %zu (byte 0x%02x)",
                           file, i + 8, h[i]);
        i += (size_t)len;
    }
    return CLIPSKIP_OK;
}

/* Parse the n header bytes as one JSON object followed only by whitespace. */
static clipskip_status parse_header_json(const uint8_t *h, size_t n, const char *file,
                                         cJSON **out) {
    *out = NULL;
    if (n == 0 || h[0] != '{')
        return cs_fail(CLIPSKIP_ERR_FORMAT,
                       "%s: header: start: expected a JSON object starting with '{' at file "
                       "offset 8, found %s",
                       file, n == 0 ? "an empty header" : "another character");
    clipskip_status s = check_header_text(h, n, file);
    if (s) return s;
    /* A NUL-terminated copy: check_header_text refused NUL bytes, so the copy is the whole
     * header, and the parser never reads past our buffer. */
    char *text = cs_malloc(n + 1);
    if (!text) return CLIPSKIP_ERR_NOMEM;
    memcpy(text, h, n);
    text[n] = 0;
    const char *end = NULL;
    cJSON *root = cs_json_parse(text, n + 1, &end);
    size_t pos = end ? (size_t)(end - text) : 0;
    if (!root) {
        free(text);
        return cs_fail(CLIPSKIP_ERR_FORMAT,
                       "%s: header: JSON: expected valid JSON, found a syntax error near file "
                       "offset %zu",
                       file, pos + 8);
    }
    while (pos < n &&
           (text[pos] == ' ' || text[pos] == '\t' || text[pos] == '\n' || text[pos] == '\r'))
        pos++;
    free(text);
    if (pos != n) {
        cJSON_Delete(root);
        return cs_fail(CLIPSKIP_ERR_FORMAT,
                       "%s: header: JSON: expected only whitespace after the top-level object, "
                       "found data at file offset %zu",
                       file, pos + 8);
    }
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return cs_fail(CLIPSKIP_ERR_FORMAT, "%s: header: expected a JSON object", file);
    }
    *out = root;
    return CLIPSKIP_OK;
}

/* ------------------------------------------------------------------ entries */

static int cmp_meta(const void *a, const void *b) {
    return strcmp(((const cs_st_meta *)a)->key, ((const cs_st_meta *)b)->key);
}

static clipskip_status parse_metadata(cs_safetensors *st, const cJSON *v, const char *file) {
    if (cJSON_IsNull(v)) return CLIPSKIP_OK;
    if (!cJSON_IsObject(v))
        return cs_fail(CLIPSKIP_ERR_FORMAT,
                       "%s: __metadata__: expected an object of strings, found %s", file,
                       json_type_name(v));
    int n = cJSON_GetArraySize(v);
    st->meta = cs_calloc((size_t)n, sizeof *st->meta);
    if (!st->meta) return CLIPSKIP_ERR_NOMEM;
    const cJSON *kv;
    cJSON_ArrayForEach(kv, v) {
        if (!cJSON_IsString(kv))
            return cs_fail(CLIPSKIP_ERR_FORMAT,
                           "%s: __metadata__: key '%s': expected a string value, found %s", file,
                           kv->string, json_type_name(kv));
        cs_st_meta *m = &st->meta[st->n_meta];
        m->key = strdup(kv->string);
        m->value = strdup(kv->valuestring);
        if (!m->key || !m->value) {
            free(m->key);
            free(m->value);
            return cs_fail(CLIPSKIP_ERR_NOMEM, "out of host memory reading __metadata__");
        }
        st->n_meta++;
    }
    qsort(st->meta, (size_t)st->n_meta, sizeof *st->meta, cmp_meta);
    for (int i = 1; i < st->n_meta; i++)
        if (strcmp(st->meta[i - 1].key, st->meta[i].key) == 0)
            return cs_fail(CLIPSKIP_ERR_FORMAT,
                           "%s: __metadata__: key '%s': expected unique keys, found it twice", file,
                           st->meta[i].key);
    return CLIPSKIP_OK;
}

/* The three fields of a tensor entry; duplicated fields are refused (serde does too). */
static clipskip_status entry_fields(const cJSON *v, const char *file, const char *name,
                                    const cJSON *f[3]) {
    static const char *const FIELDS[3] = {"dtype", "shape", "data_offsets"};
    f[0] = f[1] = f[2] = NULL;
    if (!cJSON_IsObject(v))
        return cs_fail(CLIPSKIP_ERR_FORMAT, "%s: tensor '%s': entry: expected an object, found %s",
                       file, name, json_type_name(v));
    const cJSON *c;
    cJSON_ArrayForEach(c, v) {
        for (int i = 0; i < 3; i++) {
            if (strcmp(c->string, FIELDS[i]) != 0) continue;
            if (f[i])
                return cs_fail(CLIPSKIP_ERR_FORMAT,
                               "%s: tensor '%s': %s: expected one field, found it twice", file,
                               name, FIELDS[i]);
            f[i] = c;
        }
    }
    for (int i = 0; i < 3; i++)
        if (!f[i])
            return cs_fail(CLIPSKIP_ERR_FORMAT, "%s: tensor '%s': %s: expected a field, found none",
                           file, name, FIELDS[i]);
    return CLIPSKIP_OK;
}

static clipskip_status parse_dtype(const cJSON *v, const char *file, cs_st_tensor *t) {
    if (!cJSON_IsString(v))
        return cs_fail(CLIPSKIP_ERR_FORMAT, "%s: tensor '%s': dtype: expected a string, found %s",
                       file, t->name, json_type_name(v));
    if (!dtype_from_name(v->valuestring, &t->dtype))
        return cs_fail(CLIPSKIP_ERR_UNSUPPORTED,
                       "%s: tensor '%s': dtype: expected one of F32, F16, BF16, F64, I64, I32, "
                       "I16, I8, U8, BOOL, F8_E4M3, F8_E5M2, U16, U32, U64, found '%.40s'",
                       file, t->name, v->valuestring);
    return CLIPSKIP_OK;
}

static clipskip_status parse_shape(const cJSON *v, const char *file, cs_st_tensor *t) {
    if (!cJSON_IsArray(v))
        return cs_fail(CLIPSKIP_ERR_FORMAT,
                       "%s: tensor '%s': shape: expected an array of integers, found %s", file,
                       t->name, json_type_name(v));
    int n = cJSON_GetArraySize(v);
    if (n > CS_ST_MAX_DIMS)
        return cs_fail(CLIPSKIP_ERR_UNSUPPORTED,
                       "%s: tensor '%s': shape: expected at most %d dimensions, found %d", file,
                       t->name, CS_ST_MAX_DIMS, n);
    const cJSON *d;
    int i = 0;
    cJSON_ArrayForEach(d, v) {
        uint64_t u;
        if (!json_u64(d, &u))
            return cs_fail(CLIPSKIP_ERR_FORMAT,
                           "%s: tensor '%s': shape: expected dimension %d to be an integer in "
                           "0..2^53, found %s",
                           file, t->name, i,
                           cJSON_IsNumber(d) ? "another number" : json_type_name(d));
        t->shape[i++] = (int64_t)u;
    }
    t->ndim = n;
    return CLIPSKIP_OK;
}

static clipskip_status parse_offsets(const cJSON *v, const char *file, cs_st_tensor *t) {
    if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) != 2 ||
        !json_u64(cJSON_GetArrayItem(v, 0), &t->begin) ||
        !json_u64(cJSON_GetArrayItem(v, 1), &t->end))
        return cs_fail(CLIPSKIP_ERR_FORMAT,
                       "%s: tensor '%s': data_offsets: expected [begin, end], two integers in "
                       "0..2^53, found %s",
                       file, t->name, cJSON_IsArray(v) ? "another array" : json_type_name(v));
    if (t->end < t->begin)
        return cs_fail(CLIPSKIP_ERR_FORMAT,
                       "%s: tensor '%s': data_offsets: expected begin <= end, found [%" PRIu64
                       ", %" PRIu64 "]",
                       file, t->name, t->begin, t->end);
    return CLIPSKIP_OK;
}

/* shape product * itemsize, overflow-checked, must equal end - begin. */
static clipskip_status check_nbytes(const cs_st_tensor *t, const char *file) {
    char sb[160];
    uint64_t n = 1;
    for (int i = 0; i < t->ndim; i++) {
        uint64_t d = (uint64_t)t->shape[i];
        if (d && n > UINT64_MAX / d)
            return cs_fail(CLIPSKIP_ERR_FORMAT,
                           "%s: tensor '%s': shape: expected an element count below 2^64, found "
                           "%s overflowing it",
                           file, t->name, shape_str(t->shape, t->ndim, sb, sizeof sb));
        n *= d;
    }
    size_t isz = cs_st_dtype_size(t->dtype);
    if (n > UINT64_MAX / isz)
        return cs_fail(CLIPSKIP_ERR_FORMAT,
                       "%s: tensor '%s': shape: expected a byte size below 2^64, found %s x %zu "
                       "bytes overflowing it",
                       file, t->name, shape_str(t->shape, t->ndim, sb, sizeof sb), isz);
    if (n * isz != t->end - t->begin)
        return cs_fail(CLIPSKIP_ERR_FORMAT,
                       "%s: tensor '%s': data_offsets: expected end - begin = %" PRIu64
                       " bytes (shape %s x %s), found %" PRIu64 " ([%" PRIu64 ", %" PRIu64 "])",
                       file, t->name, n * isz, shape_str(t->shape, t->ndim, sb, sizeof sb),
                       cs_st_dtype_name(t->dtype), t->end - t->begin, t->begin, t->end);
    return CLIPSKIP_OK;
}

static clipskip_status parse_tensor(const cJSON *v, const char *file, cs_st_tensor *t) {
    t->name = strdup(v->string);
    if (!t->name) return cs_fail(CLIPSKIP_ERR_NOMEM, "out of host memory reading tensor names");
    const cJSON *f[3];
    clipskip_status s = entry_fields(v, file, t->name, f);
    if (!s) s = parse_dtype(f[0], file, t);
    if (!s) s = parse_shape(f[1], file, t);
    if (!s) s = parse_offsets(f[2], file, t);
    if (!s) s = check_nbytes(t, file);
    return s;
}

/* ------------------------------------------------------------------ layout checks */

static int cmp_name(const void *a, const void *b) {
    return strcmp(((const cs_st_tensor *)a)->name, ((const cs_st_tensor *)b)->name);
}

static int cmp_offset(const void *a, const void *b) {
    const cs_st_tensor *x = *(const cs_st_tensor *const *)a, *y = *(const cs_st_tensor *const *)b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return 0;
}

/* Offsets sorted, contiguous from 0 (no gap, no overlap), every end within the data section.
 * Sets *used to the last end. */
static clipskip_status check_offsets(cs_safetensors *st, const char *file, uint64_t *used) {
    int n = st->n_tensors;
    const cs_st_tensor **by = cs_malloc((size_t)n * sizeof *by);
    if (!by) return CLIPSKIP_ERR_NOMEM;
    for (int i = 0; i < n; i++) by[i] = &st->tensors[i];
    qsort(by, (size_t)n, sizeof *by, cmp_offset);
    clipskip_status s = CLIPSKIP_OK;
    uint64_t expect = 0;
    for (int i = 0; i < n && !s; i++) {
        const cs_st_tensor *t = by[i];
        if (t->end > st->data_size)
            s = cs_fail(CLIPSKIP_ERR_FORMAT,
                        "%s: tensor '%s': data_offsets: expected end <= %zu (the data section's "
                        "size), found %" PRIu64,
                        file, t->name, st->data_size, t->end);
        else if (t->begin != expect)
            s = cs_fail(CLIPSKIP_ERR_FORMAT,
                        "%s: tensor '%s': data_offsets: expected begin = %" PRIu64
                        " (tensors contiguous from 0), found %" PRIu64 " (%s)",
                        file, t->name, expect, t->begin,
                        t->begin < expect ? "overlaps the previous tensor" : "leaves a gap");
        expect = t->end;
    }
    free(by);
    *used = expect;
    return s;
}

/* Point each tensor into the data section; copy the (rare) misaligned ones. */
static clipskip_status set_data(st_impl *im) {
    cs_safetensors *st = &im->pub;
    size_t extra = 0;
    for (int i = 0; i < st->n_tensors; i++) {
        cs_st_tensor *t = &st->tensors[i];
        t->data = st->data + t->begin;
        if ((uintptr_t)t->data % cs_st_dtype_size(t->dtype))
            extra += ((t->end - t->begin) + 7) & ~(size_t)7;
    }
    if (!extra) return CLIPSKIP_OK;
    uint8_t *buf = cs_malloc(extra);
    if (!buf) return CLIPSKIP_ERR_NOMEM;
    im->aligned = buf;
    for (int i = 0; i < st->n_tensors; i++) {
        cs_st_tensor *t = &st->tensors[i];
        if ((uintptr_t)t->data % cs_st_dtype_size(t->dtype) == 0) continue;
        memcpy(buf, t->data, t->end - t->begin);
        t->data = buf;
        buf += ((t->end - t->begin) + 7) & ~(size_t)7;
    }
    return CLIPSKIP_OK;
}

/* ------------------------------------------------------------------ parse */

static clipskip_status parse_entries(cs_safetensors *st, const cJSON *root, const char *file) {
    int n = cJSON_GetArraySize(root), have_meta = 0;
    st->tensors = cs_calloc((size_t)n, sizeof *st->tensors);
    if (!st->tensors) return CLIPSKIP_ERR_NOMEM;
    const cJSON *v;
    cJSON_ArrayForEach(v, root) {
        clipskip_status s;
        if (strcmp(v->string, "__metadata__") == 0) {
            if (have_meta++)
                return cs_fail(CLIPSKIP_ERR_FORMAT,
                               "%s: __metadata__: expected at most one, found it twice", file);
            s = parse_metadata(st, v, file);
        } else {
            s = parse_tensor(v, file, &st->tensors[st->n_tensors++]);
        }
        if (s) return s;
    }
    qsort(st->tensors, (size_t)st->n_tensors, sizeof *st->tensors, cmp_name);
    for (int i = 1; i < st->n_tensors; i++)
        if (strcmp(st->tensors[i - 1].name, st->tensors[i].name) == 0)
            return cs_fail(CLIPSKIP_ERR_FORMAT,
                           "%s: tensor '%s': name: expected unique tensor names, found it twice",
                           file, st->tensors[i].name);
    return CLIPSKIP_OK;
}

static clipskip_status parse_impl(st_impl *im, const char *file, int verbose) {
    cs_safetensors *st = &im->pub;
    if (st->map_size < 8)
        return cs_fail(CLIPSKIP_ERR_FORMAT,
                       "%s: file size: expected at least 8 bytes (the header length), found %zu",
                       file, st->map_size);
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = (n << 8) | st->map[i]; /* little-endian u64 */
    if (n > CS_ST_MAX_HEADER)
        return cs_fail(CLIPSKIP_ERR_FORMAT,
                       "%s: header length: expected at most %u bytes, found %" PRIu64, file,
                       CS_ST_MAX_HEADER, n);
    if (n > st->map_size - 8)
        return cs_fail(CLIPSKIP_ERR_FORMAT,
                       "%s: header length: expected at most %zu (file size - 8), found %" PRIu64,
                       file, st->map_size - 8, n);
    cJSON *root;
    clipskip_status s = parse_header_json(st->map + 8, (size_t)n, file, &root);
    if (s) return s;
    st->data = st->map + 8 + n;
    st->data_size = st->map_size - 8 - (size_t)n;
    s = parse_entries(st, root, file);
    cJSON_Delete(root);
    uint64_t used = 0;
    if (!s) s = check_offsets(st, file, &used);
    if (s) return s;
    st->trailing_bytes = st->data_size - used;
    if (st->trailing_bytes)
        cs_warn(verbose, "%s: %" PRIu64 " trailing bytes after the last tensor (ignored)", file,
                st->trailing_bytes);
    return set_data(im);
}

/* Parse, then hand over im or release it. */
static clipskip_status finish(st_impl *im, const char *file, int verbose, cs_safetensors **out) {
    clipskip_status s = CLIPSKIP_OK;
    im->pub.path = strdup(file);
    if (!im->pub.path) s = cs_fail(CLIPSKIP_ERR_NOMEM, "out of host memory");
    if (!s) s = parse_impl(im, file, verbose);
    if (s) {
        cs_st_close(&im->pub);
        return s;
    }
    *out = &im->pub;
    return CLIPSKIP_OK;
}

clipskip_status cs_st_parse(const uint8_t *buf, size_t size, const char *name, int verbose,
                            cs_safetensors **out) {
    if (!out || (!buf && size) || !name)
        return cs_fail(CLIPSKIP_ERR_INVALID_ARG, "cs_st_parse: NULL argument");
    *out = NULL;
    st_impl *im = cs_calloc(1, sizeof *im);
    if (!im) return CLIPSKIP_ERR_NOMEM;
    im->pub.map = buf;
    im->pub.map_size = size;
    return finish(im, name, verbose, out);
}

clipskip_status cs_st_open(const char *path, int verbose, cs_safetensors **out) {
    if (!path || !out) return cs_fail(CLIPSKIP_ERR_INVALID_ARG, "cs_st_open: NULL argument");
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return cs_fail(CLIPSKIP_ERR_IO, "%s: open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        int e = errno;
        close(fd);
        return cs_fail(CLIPSKIP_ERR_IO, "%s: stat: %s", path, strerror(e));
    }
    if (!S_ISREG(sb.st_mode)) {
        close(fd);
        return cs_fail(CLIPSKIP_ERR_IO, "%s: open: not a regular file", path);
    }
    size_t size = (size_t)sb.st_size;
    if (size < 8) {
        close(fd);
        return cs_fail(CLIPSKIP_ERR_FORMAT,
                       "%s: file size: expected at least 8 bytes (the header length), found %zu",
                       path, size);
    }
    void *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    close(fd);
    if (map == MAP_FAILED) return cs_fail(CLIPSKIP_ERR_IO, "%s: mmap: %s", path, strerror(e));
    st_impl *im = cs_calloc(1, sizeof *im);
    if (!im) {
        munmap(map, size);
        return CLIPSKIP_ERR_NOMEM;
    }
    im->pub.map = map;
    im->pub.map_size = size;
    im->owns_map = 1;
    return finish(im, path, verbose, out);
}

void cs_st_close(cs_safetensors *st) {
    if (!st) return;
    st_impl *im = (st_impl *)st;
    for (int i = 0; i < st->n_tensors; i++) free(st->tensors[i].name);
    free(st->tensors);
    for (int i = 0; i < st->n_meta; i++) {
        free(st->meta[i].key);
        free(st->meta[i].value);
    }
    free(st->meta);
    if (im->owns_map && st->map) munmap((void *)st->map, st->map_size);
    free(im->aligned);
    free(st->path);
    free(im);
}

const cs_st_tensor *cs_st_find(const cs_safetensors *st, const char *name) {
    if (!st || !name || !st->n_tensors) return NULL;
    cs_st_tensor key = {.name = (char *)name};
    return bsearch(&key, st->tensors, (size_t)st->n_tensors, sizeof key, cmp_name);
}

const char *cs_st_meta_get(const cs_safetensors *st, const char *key) {
    if (!st || !key) return NULL;
    for (int i = 0; i < st->n_meta; i++)
        if (strcmp(st->meta[i].key, key) == 0) return st->meta[i].value;
    return NULL;
}

/* ------------------------------------------------------------------ writer */

/* Order as the official writer does: larger item sizes first (so every tensor stays aligned
 * to its item size after the 8-byte-aligned header), then by name. */
static int cmp_out(const void *a, const void *b) {
    const cs_st_out_tensor *x = *(const cs_st_out_tensor *const *)a;
    const cs_st_out_tensor *y = *(const cs_st_out_tensor *const *)b;
    size_t sx = cs_dtype_size(x->dtype), sy = cs_dtype_size(y->dtype);
    if (sx != sy) return sx > sy ? -1 : 1;
    return strcmp(x->name, y->name);
}

static int cmp_out_name(const void *a, const void *b) {
    return strcmp((*(const cs_st_out_tensor *const *)a)->name,
                  (*(const cs_st_out_tensor *const *)b)->name);
}

static clipskip_status out_nbytes(const cs_st_out_tensor *t, const char *path, uint64_t *out) {
    if (!t->name || (unsigned)t->dtype > CLIPSKIP_DTYPE_BF16 || t->ndim < 0 ||
        t->ndim > CS_ST_MAX_DIMS || strcmp(t->name, "__metadata__") == 0)
        return cs_fail(CLIPSKIP_ERR_INVALID_ARG,
                       "%s: tensor '%s': expected a name other than __metadata__, dtype F32/F16/"
                       "BF16 and 0..%d dimensions",
                       path, t->name ? t->name : "(null)", CS_ST_MAX_DIMS);
    uint64_t n = cs_dtype_size(t->dtype);
    for (int i = 0; i < t->ndim; i++) {
        uint64_t d = (uint64_t)t->shape[i];
        if (t->shape[i] < 0 || (d && n > (1ull << 53) / d))
            return cs_fail(CLIPSKIP_ERR_INVALID_ARG,
                           "%s: tensor '%s': shape: expected dimensions >= 0 and a size below "
                           "2^53 bytes, found dimension %d = %" PRId64,
                           path, t->name, i, t->shape[i]);
        n *= d;
    }
    if (n && !t->data)
        return cs_fail(CLIPSKIP_ERR_INVALID_ARG, "%s: tensor '%s': data is NULL", path, t->name);
    *out = n;
    return CLIPSKIP_OK;
}

static cJSON *u64_array(const uint64_t *v, int n) {
    cJSON *a = cJSON_CreateArray();
    char buf[32];
    for (int i = 0; a && i < n; i++) {
        snprintf(buf, sizeof buf, "%" PRIu64, v[i]); /* raw: exact, never in exponent form */
        cJSON *x = cJSON_CreateRaw(buf);
        if (!x || !cJSON_AddItemToArray(a, x)) {
            cJSON_Delete(x);
            cJSON_Delete(a);
            return NULL;
        }
    }
    return a;
}

/* The header JSON, padded with spaces to a multiple of 8 bytes. */
static clipskip_status build_header(const cs_st_out_tensor *const *ts, int n,
                                    const cs_st_meta *meta, int n_meta, const char *path,
                                    char **out, size_t *len) {
    cJSON *root = cJSON_CreateObject(), *m = NULL;
    int ok = root != NULL;
    if (ok && n_meta > 0) {
        ok = (m = cJSON_AddObjectToObject(root, "__metadata__")) != NULL;
        for (int i = 0; ok && i < n_meta; i++)
            ok = meta[i].key && meta[i].value &&
                 !cJSON_GetObjectItemCaseSensitive(m, meta[i].key) &&
                 cJSON_AddStringToObject(m, meta[i].key, meta[i].value);
        if (!ok) {
            cJSON_Delete(root);
            return cs_fail(CLIPSKIP_ERR_INVALID_ARG,
                           "%s: __metadata__: expected unique non-NULL keys and values", path);
        }
    }
    uint64_t off = 0;
    for (int i = 0; ok && i < n; i++) {
        const cs_st_out_tensor *t = ts[i];
        uint64_t nb = 0, shape[CS_ST_MAX_DIMS];
        out_nbytes(t, path, &nb); /* validated by the caller */
        for (int d = 0; d < t->ndim; d++) shape[d] = (uint64_t)t->shape[d];
        uint64_t offs[2] = {off, off + nb};
        cJSON *e = cJSON_AddObjectToObject(root, t->name);
        ok = e && cJSON_AddStringToObject(e, "dtype", cs_dtype_name(t->dtype));
        cJSON *sa = ok ? u64_array(shape, t->ndim) : NULL, *oa = sa ? u64_array(offs, 2) : NULL;
        ok = oa && cJSON_AddItemToObject(e, "shape", sa) &&
             cJSON_AddItemToObject(e, "data_offsets", oa);
        if (!ok) {
            cJSON_Delete(sa);
            cJSON_Delete(oa);
        }
        off += nb;
    }
    char *text = ok ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    if (!text)
        return cs_fail(CLIPSKIP_ERR_NOMEM, "%s: out of host memory building the header", path);
    size_t tl = strlen(text), padded = (tl + 7) & ~(size_t)7;
    char *buf = cs_malloc(padded);
    if (buf) {
        memcpy(buf, text, tl);
        memset(buf + tl, ' ', padded - tl);
    }
    cJSON_free(text);
    if (!buf) return CLIPSKIP_ERR_NOMEM;
    *out = buf;
    *len = padded;
    return CLIPSKIP_OK;
}

/* write(2) until done; returns 0 or an errno value. */
static int write_all(int fd, const void *p, size_t n) {
    const uint8_t *b = p;
    while (n) {
        ssize_t w = write(fd, b, n > (1u << 30) ? (1u << 30) : n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return errno;
        }
        if (w == 0) return EIO;
        b += w;
        n -= (size_t)w;
    }
    return 0;
}

static clipskip_status write_file(const char *path, const char *tmp, const char *hdr, size_t hlen,
                                  const cs_st_out_tensor *const *ts, int n) {
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return cs_fail(CLIPSKIP_ERR_IO, "%s: open of the temporary file %s: %s", path, tmp,
                       strerror(errno));
    uint8_t len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (uint8_t)((uint64_t)hlen >> (8 * i));
    int e = write_all(fd, len8, 8);
    if (!e) e = write_all(fd, hdr, hlen);
    for (int i = 0; i < n && !e; i++) {
        uint64_t nb = 0;
        out_nbytes(ts[i], tmp, &nb);
        e = write_all(fd, ts[i]->data, (size_t)nb);
    }
    const char *what = "write";
    if (!e && fsync(fd) != 0) {
        e = errno;
        what = "fsync";
    }
    if (close(fd) != 0 && !e) {
        e = errno;
        what = "close";
    }
    if (e)
        return cs_fail(CLIPSKIP_ERR_IO, "%s: %s of the temporary file %s: %s", path, what, tmp,
                       strerror(e));
    return CLIPSKIP_OK;
}

clipskip_status cs_st_header(const char *name, const cs_st_out_tensor *tensors, int n,
                             const cs_st_meta *meta, int n_meta, char **hdr, size_t *hlen,
                             const cs_st_out_tensor ***order) {
    if (!name || n < 0 || (n && !tensors) || n_meta < 0 || (n_meta && !meta))
        return cs_fail(CLIPSKIP_ERR_INVALID_ARG, "cs_st_write: NULL or negative argument");
    const cs_st_out_tensor **ts = cs_malloc((size_t)n * sizeof *ts);
    if (!ts) return CLIPSKIP_ERR_NOMEM;
    clipskip_status s = CLIPSKIP_OK;
    for (int i = 0; i < n && !s; i++) {
        uint64_t nb;
        ts[i] = &tensors[i];
        s = out_nbytes(ts[i], name, &nb);
    }
    if (!s) qsort(ts, (size_t)n, sizeof *ts, cmp_out_name);
    for (int i = 1; i < n && !s; i++)
        if (strcmp(ts[i - 1]->name, ts[i]->name) == 0)
            s = cs_fail(CLIPSKIP_ERR_INVALID_ARG,
                        "%s: tensor '%s': expected unique names, found it twice", name,
                        ts[i]->name);
    if (!s) qsort(ts, (size_t)n, sizeof *ts, cmp_out);
    if (!s) s = build_header(ts, n, meta, n_meta, name, hdr, hlen);
    if (s) {
        free(ts);
        return s;
    }
    *order = ts;
    return CLIPSKIP_OK;
}

uint64_t cs_st_out_bytes(const cs_st_out_tensor *t) {
    uint64_t nb = 0;
    out_nbytes(t, "", &nb);
    return nb;
}

clipskip_status cs_st_write(const char *path, const cs_st_out_tensor *tensors, int n,
                            const cs_st_meta *meta, int n_meta) {
    const cs_st_out_tensor **ts = NULL;
    char *hdr = NULL;
    size_t hlen = 0;
    CS_TRY(cs_st_header(path, tensors, n, meta, n_meta, &hdr, &hlen, &ts));
    clipskip_status s;
    char tmp[4096];
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= sizeof tmp) {
        s = cs_fail(CLIPSKIP_ERR_INVALID_ARG, "%.200s...: path too long", path);
    } else {
        s = write_file(path, tmp, hdr, hlen, ts, n);
        if (!s && rename(tmp, path) != 0)
            s = cs_fail(CLIPSKIP_ERR_IO, "%s: rename of the temporary file %s onto it: %s", path,
                        tmp, strerror(errno));
        if (s) unlink(tmp); /* never leave a partial file behind */
    }
    free(hdr);
    free(ts);
    return s;
}
