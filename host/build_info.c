#include "clipskip.h"

#include <cblas.h>

const char *clipskip_build_info(void) {
#ifdef CLIPSKIP_WITH_CUDA
    return "cpu(openblas)+cuda(sm " CLIPSKIP_CUDA_ARCHS ")";
#else
    return "cpu(openblas), no cuda";
#endif
}
