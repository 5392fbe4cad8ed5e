/* Output files: atomic temp-file-and-rename writing, and the .npy writer. */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void atomic_free(cs_atomic_file *a) {
    free(a->path);
    free(a->tmp);
    a->path = a->tmp = NULL;
    a->fd = -1;
}

clipskip_status cs_atomic_open(cs_atomic_file *a, const char *path) {
    a->fd = -1;
    a->path = strdup(path);
    size_t n = strlen(path) + 32;
    a->tmp = malloc(n);
    if (!a->path || !a->tmp) {
        atomic_free(a);
        return cs_fail(CLIPSKIP_ERR_NOMEM, "%s: out of memory", path);
    }
    snprintf(a->tmp, n, "%s.tmp.%ld", path, (long)getpid());
    a->fd = open(a->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (a->fd < 0) {
        clipskip_status st = cs_fail(CLIPSKIP_ERR_IO, "%s: cannot create %s: %s", path, a->tmp,
                                     strerror(errno));
        atomic_free(a);
        return st;
    }
    return CLIPSKIP_OK;
}

clipskip_status cs_atomic_write(cs_atomic_file *a, const void *buf, size_t n) {
    const char *p = buf;
    while (n) {
        ssize_t w = write(a->fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            clipskip_status st = cs_fail(CLIPSKIP_ERR_IO, "%s: write failed: %s (nothing written "
                                         "under that name)", a->path,
                                         w < 0 ? strerror(errno) : "no progress");
            cs_atomic_abort(a);
            return st;
        }
        p += w;
        n -= (size_t)w;
    }
    return CLIPSKIP_OK;
}

void cs_atomic_abort(cs_atomic_file *a) {
    if (a->fd >= 0) close(a->fd);
    if (a->tmp) unlink(a->tmp);
    atomic_free(a);
}

clipskip_status cs_atomic_commit(cs_atomic_file *a) {
    const char *what = NULL;
    if (fsync(a->fd) != 0) what = "fsync";
    if (close(a->fd) != 0 && !what) what = "close";
    a->fd = -1;
    if (!what && rename(a->tmp, a->path) != 0) what = "rename";
    if (what) {
        clipskip_status st = cs_fail(CLIPSKIP_ERR_IO, "%s: %s failed: %s (nothing written under "
                                     "that name)", a->path, what, strerror(errno));
        cs_atomic_abort(a);
        return st;
    }
    atomic_free(a);
    return CLIPSKIP_OK;
}

size_t cs_npy_header(char hdr[CS_NPY_HEADER_MAX], clipskip_dtype dtype, int ndim,
                     const int64_t *shape) {
    char dims[160] = "";
    size_t used = 0;
    for (int i = 0; i < ndim && used < sizeof dims; i++) /* numpy's own spelling: (5,) (2, 77) */
        used += (size_t)snprintf(dims + used, sizeof dims - used, "%s%lld%s", i ? ", " : "",
                                 (long long)shape[i], ndim == 1 ? "," : "");
    int len = snprintf(hdr + 10, CS_NPY_HEADER_MAX - 10,
                       "{'descr': '%s', 'fortran_order': False, 'shape': (%s), }",
                       dtype == CLIPSKIP_DTYPE_F32 ? "<f4" : "<f2", dims);
    /* magic(6) version(2) header length(2) + header, spaces to a multiple of 64, '\n' last */
    size_t total = (10 + (size_t)len + 1 + 63) / 64 * 64;
    memcpy(hdr, "\x93NUMPY\x01\x00", 8);
    hdr[8] = (char)((total - 10) & 0xff);
    hdr[9] = (char)((total - 10) >> 8);
    memset(hdr + 10 + len, ' ', total - 10 - (size_t)len);
    hdr[total - 1] = '\n';
    return total;
}

clipskip_status cs_npy_write(const char *path, const void *data, clipskip_dtype dtype,
                             int ndim, const int64_t *shape) {
    if (dtype != CLIPSKIP_DTYPE_F32 && dtype != CLIPSKIP_DTYPE_F16)
        return cs_fail(CLIPSKIP_ERR_INVALID_ARG, "%s: .npy holds F32 or F16 here, not %s", path,
                       cs_dtype_name(dtype));
    char hdr[CS_NPY_HEADER_MAX];
    size_t total = cs_npy_header(hdr, dtype, ndim, shape), n = 1;
    for (int i = 0; i < ndim; i++) n *= (size_t)shape[i];
    cs_atomic_file f;
    CS_TRY(cs_atomic_open(&f, path));
    CS_TRY(cs_atomic_write(&f, hdr, total));
    CS_TRY(cs_atomic_write(&f, data, n * cs_dtype_size(dtype)));
    return cs_atomic_commit(&f);
}
