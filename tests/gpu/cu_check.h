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

#endif
