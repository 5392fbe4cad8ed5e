/* The emulated device is an sm_80: the sm_90a wgmma kernels (kernels/gemm_wgmma*.cu) are not
 * built for it, and every wgmma tile reports unusable, as on a real pre-Hopper card. */
#include "emu_internal.h"
#include "kernels.h"

extern "C" cudaError_t cs_k_gemm_wgmma_setup(int usable[CS_K_GEMM_N_TILES]) {
    for (int t = 0; t < CS_K_GEMM_N_TILES; t++) usable[t] = 0;
    return cudaSuccess;
}

extern "C" cudaError_t cs_k_gemm_wgmma(const cs_k_gemm_args *a, int tile, cudaStream_t stream) {
    (void)a, (void)tile, (void)stream;
    return cudaErrorInvalidValue;
}
