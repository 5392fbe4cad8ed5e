/* clipskip's CUDA emulator, runtime side: one emulated device (compute capability CS_EMU_CC,
 * default 90 so that the PDL host paths run, though no sm_90 instruction is emulated and the
 * wgmma tiles report unusable; CS_EMU_SMS multiprocessors, default 8; CS_EMU_MEM_MB of memory,
 * default 4096) whose memory is host memory. Work queued on a stream runs LATE: only when something waits for it (stream or event
 * synchronize, a blocking copy, cudaFree, device synchronize, or another stream's wait on an
 * event), which is the latest moment CUDA allows, so host code that reuses a buffer before the
 * device is done with it reads or writes the wrong data here too. Pageable copies behave as
 * CUDA documents (synchronous for the host); pinned ones run in stream order. Graph capture
 * records a stream's work instead of queueing it, and a graph launch queues the recording.
 * Device errors are sticky: after a kernel fault every call returns the error.
 * One global lock: host threads may call in concurrently. */
#include "emu_internal.h"

#include <cuda.h>

#include <chrono>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <vector>

struct CUstream_st {
    std::deque<std::function<void()>> q;
    uint64_t queued = 0, done = 0; /* ops ever queued / run */
    unsigned flags = 0;
    std::vector<std::function<void()>> *capture = nullptr; /* recording a graph */
    bool capture_broken = false;
};
struct CUevent_st {
    CUstream_st *s = nullptr;
    uint64_t pos = 0; /* s's op count that completes the last record */
    bool recorded = false, timing = true;
    double t = 0;
};
struct CUgraph_st {
    std::vector<std::function<void()>> ops;
};
struct CUgraphExec_st { /* shared: a queued launch keeps the recording after the exec is destroyed */
    std::shared_ptr<const std::vector<std::function<void()>>> ops;
};

namespace {

struct Alloc {
    size_t bytes;
    bool device;
};

std::recursive_mutex g_mu;
std::map<uintptr_t, Alloc> g_allocs;
std::set<CUstream_st *> g_streams;
std::map<const void *, int> g_smem_limit;
CUstream_st g_legacy;
size_t g_used = 0;
cudaError_t g_sticky = cudaSuccess, g_last = cudaSuccess;
int g_faults = 0;

typedef std::lock_guard<std::recursive_mutex> Lock;

size_t env_size(const char *name, size_t def) {
    const char *v = getenv(name);
    return v && *v ? strtoull(v, NULL, 10) : def;
}
size_t mem_cap() { return env_size("CS_EMU_MEM_MB", 4096) << 20; }

double now_ms() {
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

cudaError_t ret(cudaError_t e) {
    if (g_sticky != cudaSuccess) e = g_sticky;
    if (e != cudaSuccess) g_last = e;
    return e;
}

CUstream_st *stream_of(cudaStream_t s) {
    return !s || s == cudaStreamLegacy || s == cudaStreamPerThread ? &g_legacy : s;
}

/* Run s's queued ops until `upto` of them have run. */
void drain(CUstream_st *s, uint64_t upto) {
    while (s->done < upto && !s->q.empty()) {
        std::function<void()> op = std::move(s->q.front());
        s->q.pop_front();
        s->done++;
        op();
    }
}
void drain_all(bool blocking_only) {
    for (CUstream_st *s : g_streams)
        if (!blocking_only || !(s->flags & cudaStreamNonBlocking)) drain(s, s->queued);
    drain(&g_legacy, g_legacy.queued);
}

/* The live allocation (cudaMalloc or cudaHostAlloc) holding all of [p, p + n), or NULL. */
const Alloc *alloc_of(const void *p, size_t n) {
    auto it = g_allocs.upper_bound((uintptr_t)p);
    if (it == g_allocs.begin()) return nullptr;
    --it;
    return (uintptr_t)p + n <= it->first + it->second.bytes ? &it->second : nullptr;
}

bool pinned(const void *p, size_t n) {
    const Alloc *a = alloc_of(p, n);
    return a && !a->device;
}

bool any_capture() {
    for (CUstream_st *s : g_streams)
        if (s->capture) return true;
    return false;
}

/* CS_EMU_SCHED=lazy: queued work runs only when waited for. Otherwise (default) each
 * submission also runs, with probability 1/2, the oldest op of a random stream: a legal order
 * that differs from run to run (CS_EMU_SEED), so a missing wait between two streams shows. */
void random_progress() {
    static int lazy = -1;
    if (lazy < 0) lazy = getenv("CS_EMU_SCHED") && !strcmp(getenv("CS_EMU_SCHED"), "lazy");
    if (lazy) return;
    const uint64_t r = cs_emu_rand();
    if (!(r & 1)) return;
    std::vector<CUstream_st *> busy;
    for (CUstream_st *s : g_streams)
        if (s->done < s->queued) busy.push_back(s);
    if (busy.empty()) return;
    CUstream_st *s = busy[(r >> 8) % busy.size()];
    drain(s, s->done + 1);
}

/* Queue op on s: recorded when s captures, run at once on the legacy stream (after the
 * blocking streams' work), else queued. */
cudaError_t submit(cudaStream_t st, std::function<void()> op) {
    CUstream_st *s = stream_of(st);
    if (s->capture) {
        s->capture->push_back(std::move(op));
        return cudaSuccess;
    }
    if (s == &g_legacy) {
        if (any_capture()) return cudaErrorStreamCaptureImplicit;
        drain_all(true);
        op();
        return cudaSuccess;
    }
    if (!(s->flags & cudaStreamNonBlocking)) drain(&g_legacy, g_legacy.queued);
    s->q.push_back(std::move(op));
    s->queued++;
    random_progress();
    return cudaSuccess;
}

/* A call that is not allowed while s captures breaks the capture (CUDA: the capture is
 * invalidated and the call fails). */
cudaError_t capture_forbidden(CUstream_st *s) {
    if (!s->capture) return cudaSuccess;
    s->capture_broken = true;
    return cudaErrorStreamCaptureUnsupported;
}

} // namespace

int cs_emu_faulted(void) { return g_sticky != cudaSuccess; }

size_t cs_emu_smem_optin(void) {
    const int cc = (int)env_size("CS_EMU_CC", 90);
    return cc >= 90 ? 227 * 1024 : cc == 80 ? 163 * 1024 : 99 * 1024;
}

int cs_emu_in_device_alloc(const void *p, size_t n) {
    const Alloc *a = alloc_of(p, n);
    return a && a->device;
}

void cs_emu_fault(cudaError_t e, const char *fmt, ...) {
    if (g_faults++ < 5) {
        va_list ap;
        va_start(ap, fmt);
        fprintf(stderr, "cuda emulator: ");
        vfprintf(stderr, fmt, ap);
        fprintf(stderr, "\n");
        va_end(ap);
    }
    if (g_sticky == cudaSuccess) g_sticky = e;
}

static cudaError_t launch(const void *kernel, dim3 grid, dim3 block, size_t smem, cudaStream_t s,
                          std::function<void()> fn, bool coop) {
    Lock l(g_mu);
    const size_t threads = (size_t)block.x * block.y * block.z;
    if (!grid.x || !grid.y || !grid.z || grid.y > 65535 || grid.z > 65535 || !threads ||
        threads > 1024 || block.z > 64)
        return ret(cudaErrorInvalidValue);
    auto lim = g_smem_limit.find(kernel);
    const size_t limit = lim == g_smem_limit.end() ? 48 * 1024 : (size_t)lim->second;
    if (smem > limit) {
        fprintf(stderr, "cuda emulator: launch with %zu bytes of dynamic shared memory, limit %zu "
                        "(cudaFuncSetAttribute)\n", smem, limit);
        return ret(cudaErrorInvalidValue);
    }
    if (coop) { /* every block resident at once, as CUDA checks for a cooperative launch */
        struct cudaDeviceProp p;
        int per_sm = 0;
        cudaGetDeviceProperties(&p, 0);
        cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, (int)threads, smem);
        /* CS_EMU_COOP_SMS: the multiprocessors this process may fill, fewer than the device
         * reports (an MPS client's limit): such launches are refused though the queries allow them */
        const size_t sms = env_size("CS_EMU_COOP_SMS", (size_t)p.multiProcessorCount);
        if ((size_t)grid.x * grid.y * grid.z > (size_t)per_sm * sms)
            return ret(cudaErrorCooperativeLaunchTooLarge);
    }
    if (g_sticky != cudaSuccess) return ret(g_sticky);
    cudaError_t e = submit(s, [=]() {
        if (g_sticky == cudaSuccess) cs_emu_run_grid(kernel, grid, block, smem, fn, coop);
    });
    return ret(e);
}

cudaError_t cs_emu_launch(const void *kernel, dim3 grid, dim3 block, size_t smem, cudaStream_t s,
                          std::function<void()> fn) {
    return launch(kernel, grid, block, smem, s, std::move(fn), false);
}

cudaError_t cs_emu_launch_cooperative(const void *kernel, dim3 grid, dim3 block, size_t smem, cudaStream_t s,
                                      std::function<void()> fn) {
    return launch(kernel, grid, block, smem, s, std::move(fn), true);
}

extern "C" {

const char *cudaGetErrorName(cudaError_t e) {
    switch (e) {
#define N(x) case x: return #x;
        N(cudaSuccess) N(cudaErrorInvalidValue) N(cudaErrorMemoryAllocation)
        N(cudaErrorInitializationError) N(cudaErrorInvalidDeviceFunction) N(cudaErrorNoDevice)
        N(cudaErrorInvalidDevice) N(cudaErrorECCUncorrectable) N(cudaErrorInvalidResourceHandle)
        N(cudaErrorNotReady) N(cudaErrorIllegalAddress) N(cudaErrorLaunchTimeout)
        N(cudaErrorContextIsDestroyed) N(cudaErrorAssert) N(cudaErrorHardwareStackError)
        N(cudaErrorIllegalInstruction) N(cudaErrorMisalignedAddress) N(cudaErrorInvalidAddressSpace)
        N(cudaErrorInvalidPc) N(cudaErrorLaunchFailure) N(cudaErrorNotSupported)
        N(cudaErrorStreamCaptureUnsupported) N(cudaErrorStreamCaptureInvalidated)
        N(cudaErrorStreamCaptureUnmatched) N(cudaErrorStreamCaptureImplicit) N(cudaErrorUnknown)
#undef N
    }
    return "cudaErrorUnknown";
}
const char *cudaGetErrorString(cudaError_t e) { return cudaGetErrorName(e); }

cudaError_t cudaGetLastError(void) {
    Lock l(g_mu);
    cudaError_t e = g_sticky != cudaSuccess ? g_sticky : g_last;
    g_last = cudaSuccess;
    return e;
}
cudaError_t cudaPeekAtLastError(void) {
    Lock l(g_mu);
    return g_sticky != cudaSuccess ? g_sticky : g_last;
}

cudaError_t cudaGetDeviceCount(int *n) {
    *n = getenv("CS_EMU_NO_DEVICE") ? 0 : 1;
    return *n ? cudaSuccess : cudaErrorNoDevice;
}
cudaError_t cudaGetDevice(int *dev) {
    *dev = 0;
    return cudaSuccess;
}
cudaError_t cudaSetDevice(int dev) { return dev == 0 ? cudaSuccess : cudaErrorInvalidDevice; }

cudaError_t cudaGetDeviceProperties(struct cudaDeviceProp *p, int dev) {
    if (dev != 0) return cudaErrorInvalidDevice;
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "CUDA emulator on the CPU (clipskip tests/emu)");
    p->totalGlobalMem = mem_cap();
    p->sharedMemPerBlock = 48 * 1024;
    p->sharedMemPerBlockOptin = cs_emu_smem_optin();
    const int cc = (int)env_size("CS_EMU_CC", 90); /* 90: the PDL host paths run too */
    p->major = cc / 10;
    p->minor = cc % 10;
    p->multiProcessorCount = (int)env_size("CS_EMU_SMS", 8);
    p->l2CacheSize = 4 << 20;
    return cudaSuccess;
}

cudaError_t cudaDeviceGetAttribute(int *v, enum cudaDeviceAttr a, int dev) {
    struct cudaDeviceProp p;
    cudaError_t e = cudaGetDeviceProperties(&p, dev);
    if (e != cudaSuccess) return e;
    switch (a) {
    case cudaDevAttrMultiProcessorCount: *v = p.multiProcessorCount; return cudaSuccess;
    case cudaDevAttrCooperativeLaunch: *v = 1; return cudaSuccess;
    case cudaDevAttrComputeCapabilityMajor: *v = p.major; return cudaSuccess;
    case cudaDevAttrComputeCapabilityMinor: *v = p.minor; return cudaSuccess;
    case cudaDevAttrMaxSharedMemoryPerBlockOptin: *v = (int)p.sharedMemPerBlockOptin; return cudaSuccess;
    }
    return cudaErrorInvalidValue;
}

cudaError_t cudaDeviceSynchronize(void) {
    Lock l(g_mu);
    if (any_capture()) return ret(cudaErrorStreamCaptureUnsupported);
    drain_all(false);
    return ret(cudaSuccess);
}
cudaError_t cudaDeviceReset(void) { return cudaDeviceSynchronize(); }

cudaError_t cudaMemGetInfo(size_t *free_bytes, size_t *total) {
    Lock l(g_mu);
    *total = mem_cap();
    *free_bytes = g_used < *total ? *total - g_used : 0;
    return ret(cudaSuccess);
}

cudaError_t cudaMalloc(void **p, size_t bytes) {
    Lock l(g_mu);
    *p = NULL;
    if (g_sticky != cudaSuccess) return ret(g_sticky);
    const size_t r = (bytes + 255) & ~(size_t)255;
    if (g_used + r > mem_cap()) return ret(cudaErrorMemoryAllocation);
    void *q = r ? aligned_alloc(256, r) : NULL;
    if (r && !q) return ret(cudaErrorMemoryAllocation);
    if (q) {
        memset(q, 0xff, r); /* NaN in every float type: reads of unwritten memory show */
        g_allocs[(uintptr_t)q] = Alloc{bytes, true};
        g_used += r;
    }
    *p = q;
    return cudaSuccess;
}

cudaError_t cudaFree(void *p) {
    Lock l(g_mu);
    if (!p) return ret(cudaSuccess);
    drain_all(false); /* cudaFree synchronizes the device */
    auto it = g_allocs.find((uintptr_t)p);
    if (it == g_allocs.end() || !it->second.device) return ret(cudaErrorInvalidValue);
    g_used -= (it->second.bytes + 255) & ~(size_t)255;
    g_allocs.erase(it);
    free(p);
    return ret(cudaSuccess);
}

cudaError_t cudaHostAlloc(void **p, size_t bytes, unsigned int flags) {
    Lock l(g_mu);
    (void)flags;
    *p = NULL;
    if (env_size("CS_EMU_NO_PINNED", 0)) return ret(cudaErrorMemoryAllocation);
    void *q = malloc(bytes ? bytes : 1);
    if (!q) return ret(cudaErrorMemoryAllocation);
    g_allocs[(uintptr_t)q] = Alloc{bytes ? bytes : 1, false};
    *p = q;
    return ret(cudaSuccess);
}
cudaError_t cudaMallocHost(void **p, size_t bytes) { return cudaHostAlloc(p, bytes, 0); }

cudaError_t cudaFreeHost(void *p) {
    Lock l(g_mu);
    if (!p) return ret(cudaSuccess);
    drain_all(false);
    auto it = g_allocs.find((uintptr_t)p);
    if (it == g_allocs.end() || it->second.device) return ret(cudaErrorInvalidValue);
    g_allocs.erase(it);
    free(p);
    return ret(cudaSuccess);
}

cudaError_t cudaPointerGetAttributes(struct cudaPointerAttributes *at, const void *p) {
    Lock l(g_mu);
    memset(at, 0, sizeof *at);
    at->type = cudaMemoryTypeUnregistered;
    if (const Alloc *a = alloc_of(p, 1)) {
        at->type = a->device ? cudaMemoryTypeDevice : cudaMemoryTypeHost;
        at->devicePointer = a->device ? (void *)p : NULL;
        at->hostPointer = a->device ? NULL : (void *)p;
    }
    return ret(cudaSuccess);
}

static bool copy_ok(const void *dst, const void *src, size_t n, enum cudaMemcpyKind k) {
    const bool sd = k == cudaMemcpyDeviceToHost || k == cudaMemcpyDeviceToDevice;
    const bool dd = k == cudaMemcpyHostToDevice || k == cudaMemcpyDeviceToDevice;
    if (sd && !cs_emu_in_device_alloc(src, n)) return false;
    if (dd && !cs_emu_in_device_alloc(dst, n)) return false;
    return true;
}

cudaError_t cudaMemcpy(void *dst, const void *src, size_t n, enum cudaMemcpyKind k) {
    Lock l(g_mu);
    if (!n) return ret(cudaSuccess);
    if (!copy_ok(dst, src, n, k)) return ret(cudaErrorInvalidValue);
    if (any_capture()) return ret(cudaErrorStreamCaptureImplicit);
    drain_all(true);
    if (g_sticky != cudaSuccess) return ret(g_sticky);
    memcpy(dst, src, n);
    return ret(cudaSuccess);
}

cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t n, enum cudaMemcpyKind k,
                            cudaStream_t st) {
    Lock l(g_mu);
    if (!n) return ret(cudaSuccess);
    if (!copy_ok(dst, src, n, k)) return ret(cudaErrorInvalidValue);
    CUstream_st *s = stream_of(st);
    const bool host_src = k == cudaMemcpyHostToDevice, host_dst = k == cudaMemcpyDeviceToHost;
    const bool pageable = (host_src && !pinned(src, n)) || (host_dst && !pinned(dst, n));
    if (pageable) {
        /* CUDA: synchronous for the host (after the stream's earlier work) */
        cudaError_t e = capture_forbidden(s);
        if (e != cudaSuccess) return ret(e);
        drain(s, s->queued);
        if (s != &g_legacy && !(s->flags & cudaStreamNonBlocking)) drain(&g_legacy, g_legacy.queued);
        if (g_sticky == cudaSuccess) memcpy(dst, src, n);
        return ret(cudaSuccess);
    }
    return ret(submit(st, [=]() { memcpy(dst, src, n); }));
}

cudaError_t cudaMemsetAsync(void *p, int v, size_t n, cudaStream_t s) {
    Lock l(g_mu);
    if (!n) return ret(cudaSuccess);
    if (!cs_emu_in_device_alloc(p, n)) return ret(cudaErrorInvalidValue);
    return ret(submit(s, [=]() { memset(p, v, n); }));
}

/* on the legacy stream, which runs it at once */
cudaError_t cudaMemset(void *p, int v, size_t n) { return cudaMemsetAsync(p, v, n, NULL); }

cudaError_t cudaStreamCreateWithFlags(cudaStream_t *s, unsigned int flags) {
    Lock l(g_mu);
    CUstream_st *n = new CUstream_st;
    n->flags = flags;
    g_streams.insert(n);
    *s = n;
    return ret(cudaSuccess);
}
cudaError_t cudaStreamCreate(cudaStream_t *s) { return cudaStreamCreateWithFlags(s, 0); }

cudaError_t cudaStreamDestroy(cudaStream_t st) {
    Lock l(g_mu);
    if (!g_streams.count(st)) return ret(cudaErrorInvalidResourceHandle);
    drain(st, st->queued); /* CUDA finishes the stream's work before releasing it */
    g_streams.erase(st);
    delete st->capture;
    delete st;
    return ret(cudaSuccess);
}

cudaError_t cudaStreamSynchronize(cudaStream_t st) {
    Lock l(g_mu);
    CUstream_st *s = stream_of(st);
    cudaError_t e = capture_forbidden(s);
    if (e != cudaSuccess) return ret(e);
    drain(s, s->queued);
    return ret(cudaSuccess);
}

cudaError_t cudaStreamQuery(cudaStream_t st) {
    Lock l(g_mu);
    CUstream_st *s = stream_of(st);
    if (s->done < s->queued) drain(s, s->done + 1); /* progress for a polling caller */
    return ret(s->done < s->queued ? cudaErrorNotReady : cudaSuccess);
}

cudaError_t cudaEventCreateWithFlags(cudaEvent_t *e, unsigned int flags) {
    CUevent_st *n = new CUevent_st;
    n->timing = !(flags & cudaEventDisableTiming);
    *e = n;
    return cudaSuccess;
}
cudaError_t cudaEventCreate(cudaEvent_t *e) { return cudaEventCreateWithFlags(e, 0); }
cudaError_t cudaEventDestroy(cudaEvent_t e) {
    delete e;
    return cudaSuccess;
}

cudaError_t cudaEventRecord(cudaEvent_t ev, cudaStream_t st) {
    Lock l(g_mu);
    CUstream_st *s = stream_of(st);
    if (s->capture) {
        /* fork/join inside a capture is not emulated; the backend does not need it */
        fprintf(stderr, "cuda emulator: cudaEventRecord on a capturing stream is not emulated\n");
        s->capture_broken = true;
        return ret(cudaErrorStreamCaptureUnsupported);
    }
    ev->recorded = true;
    ev->s = s;
    if (s == &g_legacy) {
        drain_all(true);
        ev->t = now_ms();
        ev->pos = s->done;
        return ret(cudaSuccess);
    }
    submit(st, [ev]() { ev->t = now_ms(); });
    ev->pos = s->queued;
    return ret(cudaSuccess);
}

cudaError_t cudaEventSynchronize(cudaEvent_t ev) {
    Lock l(g_mu);
    if (ev->recorded) drain(ev->s, ev->pos);
    return ret(cudaSuccess);
}

cudaError_t cudaEventQuery(cudaEvent_t ev) {
    Lock l(g_mu);
    if (!ev->recorded || ev->s->done >= ev->pos) return ret(cudaSuccess);
    drain(ev->s, ev->s->done + 1);
    return ret(ev->s->done >= ev->pos ? cudaSuccess : cudaErrorNotReady);
}

cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t a, cudaEvent_t b) {
    Lock l(g_mu);
    if (!a->timing || !b->timing) return ret(cudaErrorInvalidResourceHandle);
    if (!a->recorded || !b->recorded) return ret(cudaErrorInvalidResourceHandle);
    if (a->s->done < a->pos || b->s->done < b->pos) return ret(cudaErrorNotReady);
    *ms = (float)(b->t - a->t);
    return ret(cudaSuccess);
}

cudaError_t cudaStreamWaitEvent(cudaStream_t st, cudaEvent_t ev, unsigned int flags) {
    Lock l(g_mu);
    (void)flags;
    if (!ev->recorded) return ret(cudaSuccess);
    CUstream_st *s = stream_of(st), *src = ev->s;
    const uint64_t pos = ev->pos;
    if (s->capture && src != s) {
        fprintf(stderr, "cuda emulator: a capturing stream waiting on another stream's event is "
                        "not emulated\n");
        s->capture_broken = true;
        return ret(cudaErrorStreamCaptureUnsupported);
    }
    if (src == s) return ret(cudaSuccess);
    return ret(submit(st, [src, pos]() { drain(src, pos); }));
}

cudaError_t cudaStreamBeginCapture(cudaStream_t st, enum cudaStreamCaptureMode mode) {
    Lock l(g_mu);
    (void)mode;
    CUstream_st *s = stream_of(st);
    if (s == &g_legacy || s->capture) return ret(cudaErrorInvalidValue);
    s->capture = new std::vector<std::function<void()>>;
    s->capture_broken = false;
    return ret(cudaSuccess);
}

cudaError_t cudaStreamIsCapturing(cudaStream_t st, enum cudaStreamCaptureStatus *status) {
    Lock l(g_mu);
    CUstream_st *s = stream_of(st);
    *status = !s->capture ? cudaStreamCaptureStatusNone
              : s->capture_broken ? cudaStreamCaptureStatusInvalidated
                                  : cudaStreamCaptureStatusActive;
    return ret(cudaSuccess);
}

cudaError_t cudaStreamEndCapture(cudaStream_t st, cudaGraph_t *g) {
    Lock l(g_mu);
    CUstream_st *s = stream_of(st);
    *g = NULL;
    if (!s->capture) return ret(cudaErrorStreamCaptureUnmatched);
    std::vector<std::function<void()>> *ops = s->capture;
    s->capture = nullptr;
    if (s->capture_broken) {
        delete ops;
        return ret(cudaErrorStreamCaptureInvalidated);
    }
    CUgraph_st *n = new CUgraph_st;
    n->ops = std::move(*ops);
    delete ops;
    *g = n;
    return ret(cudaSuccess);
}

cudaError_t cudaGraphInstantiate(cudaGraphExec_t *x, cudaGraph_t g, unsigned long long flags) {
    (void)flags;
    if (!g) return cudaErrorInvalidValue;
    CUgraphExec_st *n = new CUgraphExec_st;
    n->ops = std::make_shared<const std::vector<std::function<void()>>>(g->ops);
    *x = n;
    return cudaSuccess;
}

cudaError_t cudaGraphLaunch(cudaGraphExec_t x, cudaStream_t st) {
    Lock l(g_mu);
    if (!x) return ret(cudaErrorInvalidValue);
    auto ops = x->ops;
    return ret(submit(st, [ops]() {
        for (auto &op : *ops) op();
    }));
}

cudaError_t cudaGraphDestroy(cudaGraph_t g) {
    delete g;
    return cudaSuccess;
}
cudaError_t cudaGraphExecDestroy(cudaGraphExec_t x) {
    Lock l(g_mu);
    delete x; /* no synchronization: launches already queued still run */
    return ret(cudaSuccess);
}

cudaError_t cudaFuncSetAttribute(const void *func, enum cudaFuncAttribute attr, int value) {
    Lock l(g_mu);
    if (attr != cudaFuncAttributeMaxDynamicSharedMemorySize || value < 0 || (size_t)value > cs_emu_smem_optin())
        return ret(cudaErrorInvalidValue);
    g_smem_limit[func] = value;
    return ret(cudaSuccess);
}

cudaError_t cudaOccupancyMaxActiveBlocksPerMultiprocessor(int *n, const void *func, int block_size,
                                                          size_t dynamic_smem) {
    (void)func;
    if (block_size <= 0 || block_size > 1024) return cudaErrorInvalidValue;
    const int by_threads = 2048 / block_size;
    const int by_smem = (int)((cs_emu_smem_optin() + 1024) / (dynamic_smem + 1024));
    *n = by_threads < by_smem ? by_threads : by_smem;
    return cudaSuccess;
}

cudaError_t cudaFuncGetAttributes(struct cudaFuncAttributes *at, const void *func) {
    (void)func;
    memset(at, 0, sizeof *at);
    at->maxThreadsPerBlock = 1024;
    at->numRegs = 255; /* the most a thread can have: setmaxnreg's budget check passes */
    at->ptxVersion = (int)env_size("CS_EMU_CC", 90);
    at->binaryVersion = at->ptxVersion;
    return cudaSuccess;
}

/* The emulator's cuTensorMapEncodeTiled: 2-D, 2-byte elements, 128-byte swizzle (what
 * gemm_wgmma_ws.cu asks for); the map keeps what cs_emu_tma_load_2d needs. */
static CUresult emu_encode_tiled(CUtensorMap *map, CUtensorMapDataType type, cuuint32_t rank, void *global,
                                 const cuuint64_t *dims, const cuuint64_t *strides, const cuuint32_t *box,
                                 const cuuint32_t *elem_strides, CUtensorMapInterleave il,
                                 CUtensorMapSwizzle sw, CUtensorMapL2promotion l2, CUtensorMapFloatOOBfill oob) {
    (void)type, (void)il, (void)l2, (void)oob;
    if (rank != 2 || sw != CU_TENSOR_MAP_SWIZZLE_128B || elem_strides[0] != 1 || elem_strides[1] != 1 ||
        box[0] * 2 != 128 || box[1] == 0 || box[1] > 256 || (uintptr_t)global % 16 || strides[0] % 16)
        return CUDA_ERROR_INVALID_VALUE;
    memset(map, 0, sizeof *map);
    map->opaque[0] = (uintptr_t)global;
    map->opaque[1] = dims[0];
    map->opaque[2] = dims[1];
    map->opaque[3] = strides[0];
    map->opaque[4] = box[0];
    map->opaque[5] = box[1];
    map->opaque[6] = 0x54454e534f524d41ull; /* marks an encoded map */
    return CUDA_SUCCESS;
}

cudaError_t cudaGetDriverEntryPointByVersion(const char *symbol, void **fn, unsigned int version,
                                             unsigned long long flags,
                                             enum cudaDriverEntryPointQueryResult *status) {
    (void)version, (void)flags;
    *fn = NULL;
    *status = cudaDriverEntryPointSymbolNotFound;
    if (!strcmp(symbol, "cuTensorMapEncodeTiled")) {
        *fn = reinterpret_cast<void *>(&emu_encode_tiled);
        *status = cudaDriverEntryPointSuccess;
    }
    return cudaSuccess;
}

} /* extern "C" */
