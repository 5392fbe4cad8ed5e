/* CUDA backend: downloads that overlap the next pass's compute (CLIPSKIP_CUDA_OVERLAP=1, an
 * experiment timed by tests/gpu/check.sh; off by default).
 *
 * Without it a download is a device-to-host copy on the compute stream, so the next pass
 * starts only once the PCIe copy is done (~1 ms for a batch of 256 f32 hidden states on an
 * H100). With it, a download into page-locked memory goes in chunks through a small device
 * outbox: the compute stream copies (or converts) a chunk into a free slot, a second stream
 * copies the slot to the host, and the compute stream goes on with the next pass at once.
 * With passes smaller than the call (CLIPSKIP_PASS_ROWS) the PCIe copies of pass i then run
 * under the compute of pass i + 1.
 *
 * Slot protocol (CS_CU_OB_SLOTS slots of ob_slot bytes, used round robin):
 *   compute stream: wait ob_free[k]; fill slot k; record ob_ready[k]
 *   copy stream:    wait ob_ready[k]; slot k -> host; record ob_free[k]
 * A wait on an event never recorded returns at once, so every slot starts free. finish()
 * makes the compute stream wait for the copy stream (ob_done) before its timing event and
 * its synchronize, so the device time and the host's wait cover the copies. */
#ifdef CLIPSKIP_WITH_CUDA
#include "cuda_priv.h"

#include <stdlib.h>
#include <string.h>

#define CS_CU_OB_SLOT_BYTES ((size_t)16 << 20)

clipskip_status cs_cu_outbox_init(cs_backend *be) {
    const char *v = getenv("CLIPSKIP_CUDA_OVERLAP");
    if (!v || !*v || !strcmp(v, "0")) return CLIPSKIP_OK;
    if (strcmp(v, "1"))
        return cs_fail(CLIPSKIP_ERR_INVALID_ARG, "cuda: CLIPSKIP_CUDA_OVERLAP=%s: want 0 or 1", v);
    CU_TRY(be, cudaStreamCreateWithFlags(&be->copy_stream, cudaStreamNonBlocking));
    for (int k = 0; k < CS_CU_OB_SLOTS; k++) {
        CU_TRY(be, cudaEventCreateWithFlags(&be->ob_ready[k], cudaEventDisableTiming));
        CU_TRY(be, cudaEventCreateWithFlags(&be->ob_free[k], cudaEventDisableTiming));
    }
    CU_TRY(be, cudaEventCreateWithFlags(&be->ob_done, cudaEventDisableTiming));
    CU_TRY(be, cudaMalloc((void **)&be->ob, CS_CU_OB_SLOTS * CS_CU_OB_SLOT_BYTES));
    be->ob_slot = CS_CU_OB_SLOT_BYTES;
    return CLIPSKIP_OK;
}

void cs_cu_outbox_free(cs_backend *be) {
    if (be->copy_stream) cudaStreamSynchronize(be->copy_stream);
    if (be->ob) cudaFree(be->ob);
    for (int k = 0; k < CS_CU_OB_SLOTS; k++) {
        if (be->ob_ready[k]) cudaEventDestroy(be->ob_ready[k]);
        if (be->ob_free[k]) cudaEventDestroy(be->ob_free[k]);
    }
    if (be->ob_done) cudaEventDestroy(be->ob_done);
    if (be->copy_stream) cudaStreamDestroy(be->copy_stream);
    be->ob = NULL;
    be->ob_slot = 0;
    be->copy_stream = NULL;
}

size_t cs_cu_outbox_bytes(const cs_backend *be) { return be->ob ? CS_CU_OB_SLOTS * be->ob_slot : 0; }

/* n elements of src (device, sdt) into dst (page-locked host memory) as dtype. */
clipskip_status cs_cu_outbox_download(cs_backend *be, const char *src, clipskip_dtype sdt, size_t n,
                                      char *dst, clipskip_dtype dtype) {
    const size_t es = cs_dtype_size(sdt), ds = cs_dtype_size(dtype), per = be->ob_slot / ds;
    for (size_t i = 0; i < n; i += per) {
        const size_t c = n - i < per ? n - i : per;
        const int k = be->ob_next;
        char *slot = be->ob + (size_t)k * be->ob_slot;
        be->ob_next = (k + 1) % CS_CU_OB_SLOTS;
        CU_TRY(be, cudaStreamWaitEvent(be->stream, be->ob_free[k], 0));
        if (sdt == dtype)
            CU_TRY(be, cudaMemcpyAsync(slot, src + i * es, c * ds, cudaMemcpyDeviceToDevice, be->stream));
        else
            CU_TRY(be, cs_k_convert(slot, dtype, src + i * es, sdt, c, be->stream));
        CU_TRY(be, cudaEventRecord(be->ob_ready[k], be->stream));
        CU_TRY(be, cudaStreamWaitEvent(be->copy_stream, be->ob_ready[k], 0));
        CU_TRY(be, cudaMemcpyAsync(dst + i * ds, slot, c * ds, cudaMemcpyDeviceToHost, be->copy_stream));
        CU_TRY(be, cudaEventRecord(be->ob_free[k], be->copy_stream));
        be->ob_queued = 1;
    }
    return CLIPSKIP_OK;
}

clipskip_status cs_cu_outbox_join(cs_backend *be) {
    if (!be->ob_queued) return CLIPSKIP_OK;
    CU_TRY(be, cudaEventRecord(be->ob_done, be->copy_stream));
    CU_TRY(be, cudaStreamWaitEvent(be->stream, be->ob_done, 0));
    be->ob_queued = 0;
    return CLIPSKIP_OK;
}
#endif
