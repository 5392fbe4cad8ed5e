/* Per-thread last-error detail and small shared utilities (dtype conversion, allocation). */
#include "internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CS_ERR_CAP 1024

/* Per thread, like errno: an encoder or model is not needed to read the detail of a failed
 * load, and two threads never see each other's messages. */
static _Thread_local char t_err[CS_ERR_CAP];
static _Thread_local clipskip_status t_status;

const char *clipskip_version(void) { return CLIPSKIP_VERSION_STRING; }

const char *clipskip_status_str(clipskip_status s) {
    switch (s) {
    case CLIPSKIP_OK: return "ok";
    case CLIPSKIP_ERR_INVALID_ARG: return "invalid argument";
    case CLIPSKIP_ERR_IO: return "i/o error";
    case CLIPSKIP_ERR_FORMAT: return "malformed file";
    case CLIPSKIP_ERR_UNSUPPORTED: return "unsupported";
    case CLIPSKIP_ERR_SHAPE: return "wrong tensor shape";
    case CLIPSKIP_ERR_NOMEM: return "out of memory";
    case CLIPSKIP_ERR_BACKEND: return "backend error";
    case CLIPSKIP_ERR_TEXT: return "invalid text";
    case CLIPSKIP_ERR_TOO_LARGE: return "input too large";
    }
    return "unknown status";
}

const char *clipskip_last_error(void) { return t_err; }
clipskip_status clipskip_last_status(void) { return t_status; }

void cs_error_clear(void) {
    t_err[0] = 0;
    t_status = CLIPSKIP_OK;
}

clipskip_status cs_fail(clipskip_status s, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t_err, sizeof t_err, fmt, ap);
    va_end(ap);
    t_status = s;
    return s;
}

void cs_error_prefix(const char *fmt, ...) {
    char pre[CS_ERR_CAP], old[CS_ERR_CAP];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(pre, sizeof pre, fmt, ap);
    va_end(ap);
    memcpy(old, t_err, sizeof old);
    /* Truncation of an over-long message is acceptable: the start names the place. */
    size_t n = strlen(pre);
    if (n >= sizeof t_err) n = sizeof t_err - 1;
    memcpy(t_err, pre, n);
    size_t rest = strlen(old);
    if (rest > sizeof t_err - 1 - n) rest = sizeof t_err - 1 - n;
    memcpy(t_err + n, old, rest);
    t_err[n + rest] = 0;
}

void cs_warn(int verbose, const char *fmt, ...) {
    if (!verbose) return;
    va_list ap;
    va_start(ap, fmt);
    fputs("clipskip: warning: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

void *cs_malloc(size_t bytes) {
    void *p = malloc(bytes ? bytes : 1);
    if (!p) cs_fail(CLIPSKIP_ERR_NOMEM, "out of host memory allocating %zu bytes", bytes);
    return p;
}

void *cs_calloc(size_t n, size_t size) {
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) cs_fail(CLIPSKIP_ERR_NOMEM, "out of host memory allocating %zu x %zu bytes", n, size);
    return p;
}

uint64_t cs_hash_bytes(const void *p, size_t n) {
    const uint8_t *s = p;
    uint64_t h = 0x243F6A8885A308D3ull ^ (n * 0x9E3779B97F4A7C15ull);
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, s, 8);
        h = (h ^ w) * 0xBF58476D1CE4E5B9ull;
        h ^= h >> 31;
        s += 8;
        n -= 8;
    }
    uint64_t w = 0;
    memcpy(&w, s, n);
    h = (h ^ w) * 0x94D049BB133111EBull;
    h ^= h >> 29;
    h *= 0xBF58476D1CE4E5B9ull;
    h ^= h >> 32;
    return h;
}

int cs_cpu_count(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}
