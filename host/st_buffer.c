/* In-memory .npy / .safetensors bodies and JSON number output for the HTTP service. */
#include "st_buffer.h"

#include "internal.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ buffer */

int cs_buf_reserve(cs_buf *b, size_t extra) {
    if (b->failed) return -1;
    if (b->len + extra <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + extra) cap *= 2;
    char *p = realloc(b->data, cap);
    if (!p) {
        b->failed = 1;
        return -1;
    }
    b->data = p;
    b->cap = cap;
    return 0;
}

void cs_buf_put(cs_buf *b, const void *p, size_t n) {
    if (n == 0 || cs_buf_reserve(b, n)) return;
    memcpy(b->data + b->len, p, n);
    b->len += n;
}

void cs_buf_puts(cs_buf *b, const char *s) { cs_buf_put(b, s, strlen(s)); }

void cs_buf_printf(cs_buf *b, const char *fmt, ...) {
    char small[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n < sizeof small) {
        cs_buf_put(b, small, (size_t)n);
        return;
    }
    if (cs_buf_reserve(b, (size_t)n + 1)) return;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void cs_buf_json_string(cs_buf *b, const char *s) {
    static const char hex[] = "0123456789abcdef";
    cs_buf_put(b, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        const unsigned char *run = p;
        while (*p >= 0x20 && *p != '"' && *p != '\\') p++;
        cs_buf_put(b, run, (size_t)(p - run));
        if (!*p) break;
        char esc[6] = {'\\', (char)*p, 0, 0, 0, 0};
        size_t n = 2;
        if (*p == '\n') esc[1] = 'n';
        else if (*p == '\t') esc[1] = 't';
        else if (*p == '\r') esc[1] = 'r';
        else if (*p < 0x20) {
            esc[1] = 'u', esc[2] = '0', esc[3] = '0', esc[4] = hex[*p >> 4], esc[5] = hex[*p & 15];
            n = 6;
        }
        cs_buf_put(b, esc, n);
    }
    cs_buf_put(b, "\"", 1);
}

char *cs_buf_take(cs_buf *b, size_t *len) {
    char *p = b->data;
    if (len) *len = b->len;
    memset(b, 0, sizeof *b);
    return p;
}

void cs_buf_free(cs_buf *b) {
    free(b->data);
    memset(b, 0, sizeof *b);
}

/* ------------------------------------------------------------------ floats */

/* 10^-32 .. 10^55: the scale factors 10^(8 - e10) for every finite float (e10 in -45..38). */
static const double P10[] = {
    1e-32, 1e-31, 1e-30, 1e-29, 1e-28, 1e-27, 1e-26, 1e-25, 1e-24, 1e-23,
    1e-22, 1e-21, 1e-20, 1e-19, 1e-18, 1e-17, 1e-16, 1e-15, 1e-14, 1e-13,
    1e-12, 1e-11, 1e-10, 1e-9, 1e-8, 1e-7, 1e-6, 1e-5, 1e-4, 1e-3,
    1e-2, 1e-1, 1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7,
    1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17,
    1e18, 1e19, 1e20, 1e21, 1e22, 1e23, 1e24, 1e25, 1e26, 1e27,
    1e28, 1e29, 1e30, 1e31, 1e32, 1e33, 1e34, 1e35, 1e36, 1e37,
    1e38, 1e39, 1e40, 1e41, 1e42, 1e43, 1e44, 1e45, 1e46, 1e47,
    1e48, 1e49, 1e50, 1e51, 1e52, 1e53, 1e54, 1e55};
#define P10_MIN (-32)

static double pow10_of(int k) { return P10[k - P10_MIN]; }

/* Why 9 digits always read back: 9 significant digits resolve 1e-8 of the value, float
 * spacing is at least 2^-24 (6e-8) of it, so a decimal within half a unit of the 9th digit
 * (double-precision scaling adds ~1e-16 relative on top) lies in f's rounding interval. */
int cs_format_float(char *dst, float f) {
    if (!isfinite(f)) {
        memcpy(dst, "null", 4);
        return 4;
    }
    char *p = dst;
    double a = f;
    if (signbit(f)) *p++ = '-', a = -a;
    if (a == 0.0) {
        *p++ = '0';
        return (int)(p - dst);
    }
    int e2;
    frexp(a, &e2);
    int e10 = (int)floor((e2 - 1) * 0.30102999566398120); /* within one of floor(log10 a) */
    uint64_t m = (uint64_t)llround(a * pow10_of(8 - e10));
    if (m >= 1000000000u) m = (uint64_t)llround(a * pow10_of(8 - ++e10));
    if (m < 100000000u) m = (uint64_t)llround(a * pow10_of(8 - --e10));
    if (m >= 1000000000u) m /= 10, e10++; /* 9.999999995 rounded up to 10.00000000 */
    char dig[9];
    int nd = 9;
    for (int i = 8; i >= 0; i--) dig[i] = (char)('0' + m % 10), m /= 10;
    while (nd > 1 && dig[nd - 1] == '0') nd--;
    if (e10 >= -4 && e10 < 9) { /* %g's choice between the two layouts */
        if (e10 < 0) {
            *p++ = '0', *p++ = '.';
            for (int i = 0; i < -e10 - 1; i++) *p++ = '0';
            memcpy(p, dig, (size_t)nd), p += nd;
        } else {
            for (int i = 0; i <= e10; i++) *p++ = i < nd ? dig[i] : '0';
            if (nd > e10 + 1) {
                *p++ = '.';
                memcpy(p, dig + e10 + 1, (size_t)(nd - e10 - 1)), p += nd - e10 - 1;
            }
        }
        return (int)(p - dst);
    }
    *p++ = dig[0];
    if (nd > 1) {
        *p++ = '.';
        memcpy(p, dig + 1, (size_t)(nd - 1)), p += nd - 1;
    }
    p += sprintf(p, "e%d", e10);
    return (int)(p - dst);
}

static void json_floats_rec(cs_buf *b, const char **src, clipskip_dtype dt, int ndim,
                            const int64_t *shape) {
    cs_buf_put(b, "[", 1);
    if (ndim == 1) {
        /* one reserve per row: at most CS_FLOAT_CHARS + 1 bytes per number */
        if (cs_buf_reserve(b, (size_t)shape[0] * (CS_FLOAT_CHARS + 1) + 2)) return;
        char *p = b->data + b->len;
        for (int64_t i = 0; i < shape[0]; i++) {
            float v;
            if (dt == CLIPSKIP_DTYPE_F16) {
                uint16_t h;
                memcpy(&h, *src, 2);
                v = cs_f16_to_f32(h);
                *src += 2;
            } else {
                memcpy(&v, *src, 4);
                *src += 4;
            }
            if (i) *p++ = ',';
            p += cs_format_float(p, v);
        }
        b->len = (size_t)(p - b->data);
    } else {
        for (int64_t i = 0; i < shape[0]; i++) {
            if (i) cs_buf_put(b, ",", 1);
            json_floats_rec(b, src, dt, ndim - 1, shape + 1);
        }
    }
    cs_buf_put(b, "]", 1);
}

void cs_buf_json_floats(cs_buf *b, const void *data, clipskip_dtype dt, int ndim,
                        const int64_t *shape) {
    const char *src = data;
    json_floats_rec(b, &src, dt, ndim, shape);
}

/* ------------------------------------------------------------------ files in memory */

static size_t elements(int ndim, const int64_t *shape) {
    size_t n = 1;
    for (int i = 0; i < ndim; i++) n *= (size_t)shape[i];
    return n;
}

clipskip_status cs_npy_buffer(cs_buf *b, const void *data, clipskip_dtype dt, int ndim,
                              const int64_t *shape) {
    if (dt != CLIPSKIP_DTYPE_F32 && dt != CLIPSKIP_DTYPE_F16)
        return cs_fail(CLIPSKIP_ERR_INVALID_ARG, "npy: dtype %s not supported (F32, F16)", cs_dtype_name(dt));
    char hdr[CS_NPY_HEADER_MAX];
    size_t total = cs_npy_header(hdr, dt, ndim, shape);
    size_t bytes = elements(ndim, shape) * cs_dtype_size(dt);
    cs_buf_reserve(b, total + bytes);
    cs_buf_put(b, hdr, total);
    cs_buf_put(b, data, bytes);
    return b->failed ? cs_fail(CLIPSKIP_ERR_NOMEM, "npy: out of memory for %zu bytes", total + bytes)
                     : CLIPSKIP_OK;
}

clipskip_status cs_st_buffer(cs_buf *b, const cs_st_out_tensor *t, int n, const cs_st_meta *meta,
                             int n_meta) {
    const cs_st_out_tensor **ts;
    char *hdr;
    size_t hl, data = 0;
    CS_TRY(cs_st_header("safetensors reply", t, n, meta, n_meta, &hdr, &hl, &ts));
    for (int i = 0; i < n; i++) data += cs_st_out_bytes(ts[i]);
    uint8_t len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (uint8_t)((uint64_t)hl >> (8 * i));
    cs_buf_reserve(b, 8 + hl + data);
    cs_buf_put(b, len8, 8);
    cs_buf_put(b, hdr, hl);
    for (int i = 0; i < n; i++) cs_buf_put(b, ts[i]->data, cs_st_out_bytes(ts[i]));
    free(hdr);
    free(ts);
    return b->failed ? cs_fail(CLIPSKIP_ERR_NOMEM, "safetensors: out of memory for %zu bytes",
                               8 + hl + data)
                     : CLIPSKIP_OK;
}
