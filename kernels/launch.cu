/* Process-wide launch settings of the kernels (common.cuh: cs_launch). */
#include "common.cuh"

int cs_k_pdl_flag = 0;

extern "C" void cs_k_set_pdl(int on) { cs_k_pdl_flag = on != 0; }
extern "C" int cs_k_pdl(void) { return cs_k_pdl_flag; }
