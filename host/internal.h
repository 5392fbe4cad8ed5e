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

/* Warnings go to stderr only when verbose; library never prints otherwise. */
void cs_warn(int verbose, const char *fmt, ...) CS_PRINTF(2, 3);

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

/* Number of online CPUs (>= 1). */
int cs_cpu_count(void);

#endif
