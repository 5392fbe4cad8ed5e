/* Launch settings of the kernels (common.cuh: cs_launch), per host thread, and the probe that
 * says whether the loaded code has the PDL instructions. */
#include "common.cuh"

thread_local int cs_k_pdl_flag = 0;

extern "C" void cs_k_set_pdl(int on) { cs_k_pdl_flag = on != 0; }
extern "C" int cs_k_pdl(void) { return cs_k_pdl_flag; }

/* Never launched: its attributes tell which code the device would run. */
static __global__ void pdl_probe_kernel(int *p) {
    cs_pdl_wait();
    if (p) *p = 0;
}

extern "C" int cs_k_pdl_usable(void) {
    cudaFuncAttributes fa;
    if (cudaFuncGetAttributes(&fa, pdl_probe_kernel) != cudaSuccess) {
        (void)cudaGetLastError();
        return 0;
    }
    return fa.ptxVersion >= 90;
}
