/* Row gather: dst row i = src row idx[i]. One block per output row, the widest word the row
 * size and both pointers allow. */
#include "common.cuh"

template <typename W>
static __global__ void gather_kernel(W *dst, const W *src, size_t row_words, const int32_t *idx) {
    cs_pdl_wait();
    cs_pdl_trigger();
    const size_t i = blockIdx.x;
    const W *s = src + (size_t)idx[i] * row_words;
    W *o = dst + i * row_words;
    for (size_t k = threadIdx.x; k < row_words; k += blockDim.x) o[k] = s[k];
}

extern "C" cudaError_t cs_k_gather_rows(void *dst, const void *src, size_t row_bytes,
                                        const int32_t *idx, int32_t n, cudaStream_t stream) {
    if (n < 0) return cudaErrorInvalidValue;
    if (n == 0 || row_bytes == 0) return cudaSuccess;
    const uintptr_t al = (uintptr_t)dst | (uintptr_t)src | (uintptr_t)row_bytes;
    const dim3 grid((unsigned)n), block(128);
    if (al % 16 == 0)
        return cs_launch(gather_kernel<uint4>, grid, block, 0, stream, static_cast<uint4 *>(dst),
                         static_cast<const uint4 *>(src), row_bytes / 16, idx);
    if (al % 4 == 0)
        return cs_launch(gather_kernel<uint32_t>, grid, block, 0, stream, static_cast<uint32_t *>(dst),
                         static_cast<const uint32_t *>(src), row_bytes / 4, idx);
    if (al % 2 == 0)
        return cs_launch(gather_kernel<uint16_t>, grid, block, 0, stream, static_cast<uint16_t *>(dst),
                         static_cast<const uint16_t *>(src), row_bytes / 2, idx);
    return cs_launch(gather_kernel<uint8_t>, grid, block, 0, stream, static_cast<uint8_t *>(dst),
                     static_cast<const uint8_t *>(src), row_bytes, idx);
}
