/* In-memory output serialisation for the HTTP service: a growable byte buffer, a fast float
 * formatter for JSON, and .npy / .safetensors files built in memory (output.c and cs_st_write
 * write files; these produce the same formats as response bodies). */
#ifndef CLIPSKIP_ST_BUFFER_H
#define CLIPSKIP_ST_BUFFER_H

#include "clipskip.h"
#include "safetensors.h"

#include <stddef.h>
#include <stdint.h>

/* Growable buffer. Appends never fail loudly: an allocation failure sets failed and later
 * appends are ignored, so a writer checks once at the end. */
typedef struct {
    char *data;
    size_t len, cap;
    int failed;
} cs_buf;

int cs_buf_reserve(cs_buf *b, size_t extra); /* 0, or -1 (and failed set) */
void cs_buf_put(cs_buf *b, const void *p, size_t n);
void cs_buf_puts(cs_buf *b, const char *s);
void cs_buf_printf(cs_buf *b, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
/* s as a JSON string literal (quotes, escapes; bytes >= 0x80 copied as they are). */
void cs_buf_json_string(cs_buf *b, const char *s);
/* Hand the memory over (caller frees with free()); the buffer is reset. */
char *cs_buf_take(cs_buf *b, size_t *len);
void cs_buf_free(cs_buf *b);

/* Decimal text of f that reads back (strtof) as exactly f: 9 significant digits, trailing
 * zeros dropped, %g-style layout ("0.125", "-1.5e-07", "3"). NaN and infinities, which JSON
 * cannot hold, come out as "null". Writes at most CS_FLOAT_CHARS bytes, no NUL; returns the
 * count. About 5x faster than snprintf("%.9g") (45 ns against 225 ns a number here). */
#define CS_FLOAT_CHARS 16
int cs_format_float(char *dst, float f);

/* An (shape) array of dt (F32 or F16) as nested JSON arrays of numbers. */
void cs_buf_json_floats(cs_buf *b, const void *data, clipskip_dtype dt, int ndim,
                        const int64_t *shape);

/* A whole .npy file (format 1.0, little-endian, C order) of one F32/F16 array. */
clipskip_status cs_npy_buffer(cs_buf *b, const void *data, clipskip_dtype dt, int ndim,
                              const int64_t *shape);
/* A whole .safetensors file, laid out exactly as cs_st_write lays out a file. */
clipskip_status cs_st_buffer(cs_buf *b, const cs_st_out_tensor *t, int n, const cs_st_meta *meta,
                             int n_meta);

#endif
