/* Device buffers for the kernel tests (test_gpu_invariance.c, test_gpu_layer.c): float values
 * up and down as F32/F16/BF16. Header-only (static functions); include after cu_check.h. */
#ifndef CLIPSKIP_TESTS_DEV_BUF_H
#define CLIPSKIP_TESTS_DEV_BUF_H

#include "internal.h"

#include <cuda_runtime_api.h>
#include <stdlib.h>

/* device copy of n floats as dt (F32/F16/BF16) */
static inline void *dev_put(const float *v, size_t n, clipskip_dtype dt) {
    const size_t es = cs_dtype_size(dt);
    void *h = malloc(n * es), *d = NULL;
    cs_convert_from_f32(h, v, dt, n);
    CU(cudaMalloc(&d, n * es));
    CU(cudaMemcpy(d, h, n * es, cudaMemcpyHostToDevice));
    free(h);
    return d;
}

/* n values of device buffer d (dt) as floats, malloc'd */
static inline float *dev_get(const void *d, size_t n, clipskip_dtype dt) {
    const size_t es = cs_dtype_size(dt);
    void *h = malloc(n * es);
    float *f = malloc(n * sizeof(float));
    CU(cudaMemcpy(h, d, n * es, cudaMemcpyDeviceToHost));
    cs_convert_to_f32(f, h, dt, n);
    free(h);
    return f;
}

#endif
