/* Internal helpers shared by host/ files: errors, dtypes, small utilities. Not installed. */
#ifndef CLIPSKIP_INTERNAL_H
#define CLIPSKIP_INTERNAL_H

#include "clipskip.h"

#include <stddef.h>
#include <stdint.h>

#if defined(__GNUC__)
#define CS_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define CS_PRINTF(a, b)
#endif

/* Record the failure for clipskip_last_error() on this thread and return s, so a failing
 * path reads `return cs_fail(CLIPSKIP_ERR_SHAPE, "%s: tensor %s: expected ...", ...);` */
clipskip_status cs_fail(clipskip_status s, const char *fmt, ...) CS_PRINTF(2, 3);
/* Prepend context to the current error message: "file.safetensors: " + old message. */
void cs_error_prefix(const char *fmt, ...) CS_PRINTF(1, 2);
void cs_error_clear(void);

/* Return the status of a failing call from the enclosing function. */
#define CS_TRY(call)                                                                       \
    do {                                                                                   \
        clipskip_status cs_try_st_ = (call);                                               \
        if (cs_try_st_ != CLIPSKIP_OK) return cs_try_st_;                                  \
    } while (0)

/* Warnings go to stderr only when verbose; library never prints otherwise. */
void cs_warn(int verbose, const char *fmt, ...) CS_PRINTF(2, 3);

/* ---- names of public enums, as the CLI, JSON and logs spell them */
const char *cs_family_name(clipskip_family f);   /* "clip-l", "openclip-h", "openclip-bigg", "other" */
const char *cs_pipeline_name(clipskip_pipeline p); /* "sd1", "sd2", "sdxl", "sdxl-refiner", "tower" */
const char *cs_act_name(clipskip_act a);         /* "quick_gelu", "gelu" */
const char *cs_clean_name(clipskip_clean c);     /* "hf", "openclip", "hf-fast" */

/* ---- dtypes */
size_t cs_dtype_size(clipskip_dtype dt);
const char *cs_dtype_name(clipskip_dtype dt); /* "F32", "F16", "BF16" (safetensors spelling) */

float cs_f16_to_f32(uint16_t h);
uint16_t cs_f32_to_f16(float f);  /* round to nearest even, overflow → inf, NaN kept */
float cs_bf16_to_f32(uint16_t h);
uint16_t cs_f32_to_bf16(float f); /* round to nearest even, NaN kept */
/* n elements of src (dtype dt) to fp32. */
void cs_convert_to_f32(float *dst, const void *src, clipskip_dtype dt, size_t n);
/* n fp32 elements to dst (dtype dt). */
void cs_convert_from_f32(void *dst, const float *src, clipskip_dtype dt, size_t n);

/* ---- memory: malloc that records the failure (bytes asked) and returns NULL */
void *cs_malloc(size_t bytes);
void *cs_calloc(size_t n, size_t size);

/* ---- files written atomically: data goes to "<path>.tmp.<pid>", fsync'd, then renamed onto
 * path; on any failure (ENOSPC, EIO, a signal before commit) the temp file is removed and
 * nothing ever appears under the final name half-written. */
typedef struct {
    int fd;
    char *path, *tmp;
} cs_atomic_file;

clipskip_status cs_atomic_open(cs_atomic_file *a, const char *path);
clipskip_status cs_atomic_write(cs_atomic_file *a, const void *buf, size_t n);
clipskip_status cs_atomic_commit(cs_atomic_file *a); /* fsync + rename; frees a */
void cs_atomic_abort(cs_atomic_file *a);             /* unlink temp; frees a */

/* The .npy 1.0 header (magic, version, length, dict padded to a multiple of 64) for an F32 or
 * F16 C-order array; returns its length in bytes (at most CS_NPY_HEADER_MAX). */
#define CS_NPY_HEADER_MAX 256
size_t cs_npy_header(char hdr[CS_NPY_HEADER_MAX], clipskip_dtype dtype, int ndim,
                     const int64_t *shape);
/* .npy (format 1.0, little-endian, C order) of a float array, written atomically. */
clipskip_status cs_npy_write(const char *path, const void *data, clipskip_dtype dtype,
                             int ndim, const int64_t *shape);

/* A fast 64-bit hash of n bytes (word at a time, then mixed); not for adversarial keys. */
uint64_t cs_hash_bytes(const void *p, size_t n);

/* cJSON_ParseWithLengthOpts(text, len, end, 0) under a process-wide lock (host/json.c: cJSON's
 * parse writes a global error record, a data race between threads). */
struct cJSON *cs_json_parse(const char *text, size_t len, const char **end);

/* Number of online CPUs (>= 1). */
int cs_cpu_count(void);

#endif
