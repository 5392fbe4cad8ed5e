/* Validated, mmap-based safetensors reader and an atomic writer.
 *
 * Reader rules (the official implementation's, each rejection names the tensor and rule):
 * file >= 8 bytes; header length <= 100 MB and within the file; header is valid UTF-8 JSON
 * object; each entry has dtype (known), shape (non-negative ints, product overflow-checked),
 * data_offsets [begin, end] with shape*itemsize == end-begin; offsets sorted, contiguous from
 * 0, no overlap; duplicate names rejected; __metadata__ is string -> string.
 * Trailing bytes after the last tensor: accepted with a warning (some real SD1.5 checkpoints
 * carry 4), the count kept in trailing_bytes. */
#ifndef CLIPSKIP_SAFETENSORS_H
#define CLIPSKIP_SAFETENSORS_H

#include "clipskip.h"

#include <stddef.h>
#include <stdint.h>

#define CS_ST_MAX_HEADER (100u * 1024u * 1024u)
#define CS_ST_MAX_DIMS 8

typedef enum {
    CS_ST_F32, CS_ST_F16, CS_ST_BF16, CS_ST_F64, CS_ST_I64, CS_ST_I32, CS_ST_I16, CS_ST_I8,
    CS_ST_U8, CS_ST_BOOL, CS_ST_F8_E4M3, CS_ST_F8_E5M2, CS_ST_U16, CS_ST_U32, CS_ST_U64,
    CS_ST_N_DTYPES
} cs_st_dtype;

typedef struct {
    char *name;
    cs_st_dtype dtype;
    int32_t ndim;
    int64_t shape[CS_ST_MAX_DIMS];
    uint64_t begin, end;       /* byte offsets into the data section */
    const void *data;          /* begin of the tensor in the mapping */
} cs_st_tensor;

typedef struct {
    char *key, *value;
} cs_st_meta;

typedef struct cs_safetensors {
    char *path;
    const uint8_t *map;        /* whole file */
    size_t map_size;
    const uint8_t *data;       /* start of the data section */
    size_t data_size;
    uint64_t trailing_bytes;
    cs_st_tensor *tensors;     /* sorted by name for lookup */
    int32_t n_tensors;
    cs_st_meta *meta;
    int32_t n_meta;
} cs_safetensors;

/* Open and validate a file. verbose: warnings (trailing bytes) to stderr. */
clipskip_status cs_st_open(const char *path, int verbose, cs_safetensors **out);
/* Same rules over a buffer the caller keeps alive (fuzzer, tests); name used in messages. */
clipskip_status cs_st_parse(const uint8_t *buf, size_t size, const char *name, int verbose,
                            cs_safetensors **out);
void cs_st_close(cs_safetensors *st);
const cs_st_tensor *cs_st_find(const cs_safetensors *st, const char *name);
const char *cs_st_meta_get(const cs_safetensors *st, const char *key);
const char *cs_st_dtype_name(cs_st_dtype dt);
size_t cs_st_dtype_size(cs_st_dtype dt);
/* F32/F16/BF16 map to clipskip_dtype; others return -1. */
int cs_st_to_clipskip_dtype(cs_st_dtype dt);

/* ---- writer: tensors collected, then written to path.tmp.<pid> and renamed onto path, so an
 * interrupted or failed write never leaves a partial file under the final name. */
typedef struct {
    const char *name;
    clipskip_dtype dtype;
    int32_t ndim;
    int64_t shape[CS_ST_MAX_DIMS];
    const void *data;          /* shape product * itemsize bytes */
} cs_st_out_tensor;

clipskip_status cs_st_write(const char *path, const cs_st_out_tensor *tensors, int n,
                            const cs_st_meta *meta, int n_meta);
/* The checked header of such a file (names unique, metadata keys unique, sizes consistent),
 * padded with spaces to a multiple of 8 bytes, in *hdr (heap, hlen bytes); *order (heap) lists
 * the tensors in data order (largest item size first, then by name). name: for messages.
 * Used by cs_st_write and by writers into memory (the server). */
clipskip_status cs_st_header(const char *name, const cs_st_out_tensor *tensors, int n,
                             const cs_st_meta *meta, int n_meta, char **hdr, size_t *hlen,
                             const cs_st_out_tensor ***order);
/* Data bytes of one tensor (shape product * item size; 0 for an invalid shape). */
uint64_t cs_st_out_bytes(const cs_st_out_tensor *t);

#endif
