/* Shapes shared by bench_kernels.cu's cases (variants under study would be declared here, each
 * with its validator and timer in bench_kernels.cu). Not part of the library. */
#ifndef CLIPSKIP_BENCH_KERNELS_H
#define CLIPSKIP_BENCH_KERNELS_H

#include "../../kernels/kernels.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    float *out;        /* (m, d) fp32 residual, += the MLP */
    const void *x;     /* (m, d) F16/BF16: LN2 output */
    const void *w1;    /* (f, d) */
    const float *b1;   /* (f) */
    const void *w2;    /* (d, f) */
    const float *b2;   /* (d) */
    int32_t m, d, f;   /* d in {768, 1024}, f % 32 == 0 */
    clipskip_dtype dtype;
    clipskip_act act;
} cs_bk_mlp_args;

#ifdef __cplusplus
}
#endif
#endif
