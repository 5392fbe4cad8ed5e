/* CU(call): a CUDA runtime call that must succeed in a test or benchmark program; on failure
 * prints file:line, the call and the error, and exits 1. (The library itself never exits: it
 * returns a status, host/cuda_priv.h CU_TRY.) Shared by tests/gpu and bench/kernels. */
#ifndef CLIPSKIP_TESTS_CU_CHECK_H
#define CLIPSKIP_TESTS_CU_CHECK_H

#include <cuda_runtime_api.h>
#include <stdio.h>
#include <stdlib.h>

#define CU(x)                                                                                  \
    do {                                                                                       \
        cudaError_t e_ = (x);                                                                  \
        if (e_ != cudaSuccess) {                                                               \
            fprintf(stderr, "%s:%d: %s failed: %s\n", __FILE__, __LINE__, #x, cudaGetErrorString(e_)); \
            exit(1);                                                                           \
        }                                                                                      \
    } while (0)

/* The device a kernel test runs on: 0 with *prop filled, or 77 (SKIPPED, printed) when no CUDA
 * device is usable or it is older than the kernels' sm_80. */
static inline int cu_test_device(struct cudaDeviceProp *prop) {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess || n == 0) {
        printf("SKIPPED: no usable CUDA device\n");
        return 77;
    }
    CU(cudaGetDeviceProperties(prop, 0));
    if (prop->major < 8) {
        printf("SKIPPED: %s is sm_%d%d, kernels need sm_80+\n", prop->name, prop->major, prop->minor);
        return 77;
    }
    printf("device %s, %d SMs\n", prop->name, prop->multiProcessorCount);
    return 0;
}

#endif
