/* Element conversions (weight upload, downloads, test uploads), the transposing conversion of
 * an OpenCLIP (D, E) text projection into (E, D), and the elementwise activation the cuBLASLt
 * path applies after its bias epilogue. */
#include "common.cuh"

#define CV_BLOCKS_MAX 8192u

template <typename TD, typename TS>
static __global__ void convert_kernel(TD *dst, const TS *src, size_t n) {
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        dst[i] = cs_from_f32<TD>(cs_to_f32<TS>(src[i]));
}

/* 32 x 32 tiles through shared memory (+1 column against bank conflicts). */
template <typename TD, typename TS>
static __global__ void transpose_kernel(TD *dst, const TS *src, int64_t rows, int64_t cols) {
    __shared__ float tile[32][33];
    const int64_t r0 = (int64_t)blockIdx.y * 32, c0 = (int64_t)blockIdx.x * 32;
    for (int i = threadIdx.y; i < 32; i += blockDim.y) {
        const int64_t r = r0 + i, c = c0 + threadIdx.x;
        if (r < rows && c < cols) tile[i][threadIdx.x] = cs_to_f32<TS>(src[r * cols + c]);
    }
    __syncthreads();
    for (int i = threadIdx.y; i < 32; i += blockDim.y) {
        const int64_t c = c0 + i, r = r0 + threadIdx.x; /* dst row c, column r */
        if (r < rows && c < cols) dst[c * rows + r] = cs_from_f32<TD>(tile[threadIdx.x][i]);
    }
}

template <typename T>
static __global__ void activation_kernel(T *x, clipskip_act act, size_t n) {
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        x[i] = cs_from_f32<T>(cs_act(cs_to_f32<T>(x[i]), act));
}

static unsigned cv_blocks(size_t n) {
    const size_t b = n / 256 + 1;
    return b < CV_BLOCKS_MAX ? (unsigned)b : CV_BLOCKS_MAX;
}

template <typename TD>
static cudaError_t convert_from(TD *dst, const void *src, clipskip_dtype st, size_t n,
                                cudaStream_t s) {
    const dim3 grid(cv_blocks(n)), block(256);
    switch (st) {
    case CLIPSKIP_DTYPE_F32:
        return cs_launch_plain(convert_kernel<TD, float>, grid, block, 0, s, dst,
                               static_cast<const float *>(src), n);
    case CLIPSKIP_DTYPE_F16:
        return cs_launch_plain(convert_kernel<TD, __half>, grid, block, 0, s, dst,
                               static_cast<const __half *>(src), n);
    case CLIPSKIP_DTYPE_BF16:
        return cs_launch_plain(convert_kernel<TD, __nv_bfloat16>, grid, block, 0, s, dst,
                               static_cast<const __nv_bfloat16 *>(src), n);
    default: return cudaErrorInvalidValue;
    }
}

extern "C" cudaError_t cs_k_convert(void *dst, clipskip_dtype dst_dtype, const void *src,
                                    clipskip_dtype src_dtype, size_t n, cudaStream_t stream) {
    if (n == 0) return cudaSuccess;
    switch (dst_dtype) {
    case CLIPSKIP_DTYPE_F32: return convert_from(static_cast<float *>(dst), src, src_dtype, n, stream);
    case CLIPSKIP_DTYPE_F16: return convert_from(static_cast<__half *>(dst), src, src_dtype, n, stream);
    case CLIPSKIP_DTYPE_BF16:
        return convert_from(static_cast<__nv_bfloat16 *>(dst), src, src_dtype, n, stream);
    }
    return cudaErrorInvalidValue;
}

template <typename TD>
static cudaError_t transpose_from(TD *dst, const void *src, clipskip_dtype st, int64_t rows,
                                  int64_t cols, cudaStream_t s) {
    const dim3 grid((unsigned)((cols + 31) / 32), (unsigned)((rows + 31) / 32)), block(32, 8);
    if (grid.y > 65535u) return cudaErrorInvalidValue;
    switch (st) {
    case CLIPSKIP_DTYPE_F32:
        return cs_launch_plain(transpose_kernel<TD, float>, grid, block, 0, s, dst,
                               static_cast<const float *>(src), rows, cols);
    case CLIPSKIP_DTYPE_F16:
        return cs_launch_plain(transpose_kernel<TD, __half>, grid, block, 0, s, dst,
                               static_cast<const __half *>(src), rows, cols);
    case CLIPSKIP_DTYPE_BF16:
        return cs_launch_plain(transpose_kernel<TD, __nv_bfloat16>, grid, block, 0, s, dst,
                               static_cast<const __nv_bfloat16 *>(src), rows, cols);
    default: return cudaErrorInvalidValue;
    }
}

extern "C" cudaError_t cs_k_transpose_convert(void *dst, clipskip_dtype dst_dtype, const void *src,
                                              clipskip_dtype src_dtype, int64_t rows, int64_t cols,
                                              cudaStream_t stream) {
    if (rows <= 0 || cols <= 0) return rows == 0 || cols == 0 ? cudaSuccess : cudaErrorInvalidValue;
    switch (dst_dtype) {
    case CLIPSKIP_DTYPE_F32:
        return transpose_from(static_cast<float *>(dst), src, src_dtype, rows, cols, stream);
    case CLIPSKIP_DTYPE_F16:
        return transpose_from(static_cast<__half *>(dst), src, src_dtype, rows, cols, stream);
    case CLIPSKIP_DTYPE_BF16:
        return transpose_from(static_cast<__nv_bfloat16 *>(dst), src, src_dtype, rows, cols, stream);
    }
    return cudaErrorInvalidValue;
}

extern "C" cudaError_t cs_k_activation(void *x, clipskip_dtype dtype, clipskip_act act, size_t n,
                                       cudaStream_t stream) {
    if (n == 0) return cudaSuccess;
    const dim3 grid(cv_blocks(n)), block(256);
    if (dtype == CLIPSKIP_DTYPE_F16)
        return cs_launch_plain(activation_kernel<__half>, grid, block, 0, stream,
                               static_cast<__half *>(x), act, n);
    if (dtype == CLIPSKIP_DTYPE_BF16)
        return cs_launch_plain(activation_kernel<__nv_bfloat16>, grid, block, 0, stream,
                               static_cast<__nv_bfloat16 *>(x), act, n);
    return cudaErrorInvalidValue;
}
