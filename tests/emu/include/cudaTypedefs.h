/* clipskip's CUDA emulator: the driver entry point type gemm_wgmma_ws.cu looks up. */
#ifndef CS_EMU_CUDA_TYPEDEFS_H
#define CS_EMU_CUDA_TYPEDEFS_H

#include "cuda.h"

typedef CUresult (*PFN_cuTensorMapEncodeTiled_v12000)(
    CUtensorMap *map, CUtensorMapDataType type, cuuint32_t rank, void *global, const cuuint64_t *dims,
    const cuuint64_t *strides, const cuuint32_t *box, const cuuint32_t *elem_strides,
    CUtensorMapInterleave il, CUtensorMapSwizzle sw, CUtensorMapL2promotion l2, CUtensorMapFloatOOBfill oob);

#endif
