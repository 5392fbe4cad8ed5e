/* CUDA backend: the operation table of host/backend.h on one device and one stream.
 *
 * State per encoder (cuda_priv.h): device weights (cuda_weights.c), the buffers handed to the
 * encoder, the current packing, pinned staging for host arrays and downloads, the graph cache
 * (cuda_graph.c, whose header comment holds the capture/replay rules) and the cuBLASLt path
 * (cuda_lt.c). Buffers: RESID fp32, ACT in the compute dtype (F16 default, BF16 option).
 *
 * Asynchrony: every op only queues work on the encoder's stream. Host arrays (ids, positions,
 * offsets, gather indices) are copied into pinned staging and sent with cudaMemcpyAsync; a
 * staging buffer is rewritten only after the event recorded behind its last copy has passed.
 * Downloads are converted on the device, copied into pinned staging, and copied into the
 * caller's memory by finish(), which is the one place that waits for the device.
 *
 * Errors: every CUDA and cuBLASLt call and every launch is checked (CU_TRY / LT_TRY); a failure
 * returns CLIPSKIP_ERR_BACKEND naming the statement, file, line, device and CUDA's message, or
 * CLIPSKIP_ERR_NOMEM with the bytes asked. Nothing here exits or prints. */
#ifdef CLIPSKIP_WITH_CUDA
#include "cuda_priv.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CU_DL_SCRATCH_BYTES (16u << 20) /* device conversion scratch for downloads/uploads */
/* Downloads this large are copied by the driver straight into the caller's (pageable) memory,
 * as torch's .cpu() does, instead of device -> pinned staging -> memcpy: one pass over the host
 * bytes instead of two. The first H100 run (2026-11-27) spent ~13 ms of a 14.9 ms batch-256
 * call in the staged path (then one copy per prompt). Smaller ones keep the staging, which lets
 * the host run ahead of the device. */
#define CU_DL_DIRECT_MIN ((size_t)1 << 20)
/* The native GEMM puts row tiles of 128 on grid.y, at most 65535 of them. */
#define CU_GEMM_MAX_ROWS ((int64_t)65535 * 128)

static const char *cu_base(const char *path) {
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

/* Errors after which the CUDA context is unusable (a kernel faulted): every later call of the
 * process on this device fails too, so the message says so instead of naming whatever
 * statement happens to run next. */
static int cu_sticky(cudaError_t e) {
    switch (e) {
    case cudaErrorIllegalAddress: case cudaErrorLaunchFailure: case cudaErrorMisalignedAddress:
    case cudaErrorIllegalInstruction: case cudaErrorHardwareStackError: case cudaErrorAssert:
    case cudaErrorInvalidPc: case cudaErrorInvalidAddressSpace: case cudaErrorLaunchTimeout:
    case cudaErrorECCUncorrectable: case cudaErrorContextIsDestroyed:
        return 1;
    default:
        return 0;
    }
}

static const char cu_dead_msg[] = "the CUDA context is lost (a kernel faulted); no CUDA work can "
                                  "run in this process any more: restart it";

clipskip_status cs_cu_fail(cs_backend *be, cudaError_t e, const char *stmt, const char *file,
                           int line) {
    (void)cudaGetLastError(); /* clear a non-sticky error so the encoder stays usable */
    clipskip_status st = e == cudaErrorMemoryAllocation ? CLIPSKIP_ERR_NOMEM : CLIPSKIP_ERR_BACKEND;
    const int sticky = cu_sticky(e);
    if (be && sticky) be->dead = 1;
    cs_fail(st, "%s failed at %s:%d on device %d: %s%s%s", stmt, cu_base(file), line,
            be ? be->device : -1, cudaGetErrorString(e), sticky ? "; " : "", sticky ? cu_dead_msg : "");
    if (be) cs_cu_graph_abort(be);
    return st;
}

/* Refuses new work on an encoder whose context was lost (see cu_sticky). */
static clipskip_status cu_alive(const cs_backend *be) {
    if (!be->dead) return CLIPSKIP_OK;
    return cs_fail(CLIPSKIP_ERR_BACKEND, "cuda: device %d (%s): %s", be->device, be->name, cu_dead_msg);
}

clipskip_status cs_cu_lt_fail(cs_backend *be, cublasStatus_t e, const char *stmt,
                              const char *file, int line) {
    clipskip_status st = e == CUBLAS_STATUS_ALLOC_FAILED ? CLIPSKIP_ERR_NOMEM : CLIPSKIP_ERR_BACKEND;
    cs_fail(st, "%s failed at %s:%d on device %d: %s", stmt, cu_base(file), line,
            be ? be->device : -1, cublasLtGetStatusString(e));
    if (be) cs_cu_graph_abort(be);
    return st;
}

int cs_cuda_available(void) {
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    (void)cudaGetLastError();
    return e == cudaSuccess && n > 0;
}

static clipskip_status cu_in_region(const char *op) {
    return cs_fail(CLIPSKIP_ERR_INVALID_ARG,
                   "cuda: %s inside a graph region (graph_begin .. graph_end): only layernorm, "
                   "gemm, attention and gather_rows may be recorded", op);
}

/* ---------------------------------------------------------------- staging */

static clipskip_status st_reserve(cs_backend *be, cs_cu_staging *st, size_t bytes, int with_dev) {
    if (st->pending) {
        CU_TRY(be, cudaEventSynchronize(st->done));
        st->pending = 0;
    }
    if (bytes <= st->cap) return CLIPSKIP_OK;
    size_t cap = st->cap * 2 > bytes ? st->cap * 2 : bytes;
    /* a queued kernel may still read the old device copy */
    CU_TRY(be, cudaStreamSynchronize(be->stream));
    if (st->host) cudaFreeHost(st->host);
    if (st->dev) cudaFree(st->dev);
    st->host = st->dev = NULL;
    st->cap = 0;
    CU_TRY(be, cudaHostAlloc(&st->host, cap, cudaHostAllocDefault));
    if (with_dev) CU_TRY(be, cudaMalloc(&st->dev, cap));
    st->cap = cap;
    return CLIPSKIP_OK;
}

static void st_free(cs_cu_staging *st) {
    if (st->host) cudaFreeHost(st->host);
    if (st->dev) cudaFree(st->dev);
    if (st->done) cudaEventDestroy(st->done);
    memset(st, 0, sizeof *st);
}

/* Copy the staged bytes to dev and mark the staging busy until the copy has run. */
static clipskip_status st_send(cs_backend *be, cs_cu_staging *st, void *dev, size_t bytes) {
    CU_TRY(be, cudaMemcpyAsync(dev, st->host, bytes, cudaMemcpyHostToDevice, be->stream));
    CU_TRY(be, cudaEventRecord(st->done, be->stream));
    st->pending = 1;
    return CLIPSKIP_OK;
}

clipskip_status cs_cu_put_ints(cs_backend *be, cs_cu_staging *st, const int32_t *src, size_t n,
                               const int32_t **dev) {
    const size_t bytes = n * sizeof(int32_t);
    if (be->cap) { /* inside a capture: the graph owns these values (cuda_graph.c) */
        cs_cu_graph *g = be->cap;
        if (be->arena_used + bytes > g->arena_cap) {
            cs_cu_graph_abort(be);
            return cs_fail(CLIPSKIP_ERR_TOO_LARGE, "cuda: %zu bytes of host arguments inside one "
                           "graph region exceed its %zu-byte arena", be->arena_used + bytes,
                           g->arena_cap);
        }
        char *h = (char *)g->arena_host + be->arena_used, *d = (char *)g->arena_dev + be->arena_used;
        memcpy(h, src, bytes);
        CU_TRY(be, cudaMemcpyAsync(d, h, bytes, cudaMemcpyHostToDevice, be->stream));
        be->arena_used += (bytes + 255) & ~(size_t)255;
        *dev = (const int32_t *)d;
        return CLIPSKIP_OK;
    }
    CS_TRY(st_reserve(be, st, bytes, 1));
    memcpy(st->host, src, bytes);
    CS_TRY(st_send(be, st, st->dev, bytes));
    *dev = st->dev;
    return CLIPSKIP_OK;
}

/* ---------------------------------------------------------------- buffer registry */

const cs_cu_alloc *cs_cu_find_alloc(const cs_backend *be, const void *p) {
    const char *c = p;
    for (int i = 0; i < be->n_allocs; i++)
        if (c >= be->allocs[i].ptr && c < be->allocs[i].ptr + be->allocs[i].bytes) return &be->allocs[i];
    return NULL;
}

static void *cu_alloc(cs_backend *be, cs_buf_kind kind, size_t n) {
    if (be->cap) {
        cu_in_region("alloc");
        return NULL;
    }
    const size_t es = kind == CS_BUF_RESID ? 4 : cs_dtype_size(be->cdt);
    const size_t bytes = (n ? n : 1) * es;
    if (be->n_allocs == be->cap_allocs) {
        int cap = be->cap_allocs ? 2 * be->cap_allocs : 16;
        cs_cu_alloc *a = realloc(be->allocs, (size_t)cap * sizeof *a);
        if (!a) {
            cs_fail(CLIPSKIP_ERR_NOMEM, "cuda: out of host memory for the buffer registry");
            return NULL;
        }
        be->allocs = a;
        be->cap_allocs = cap;
    }
    void *p = NULL;
    cudaError_t e = cudaSetDevice(be->device);
    if (e == cudaSuccess) e = cudaMalloc(&p, bytes);
    if (e != cudaSuccess) {
        (void)cudaGetLastError();
        size_t fr = 0, tot = 0;
        cudaMemGetInfo(&fr, &tot);
        cs_fail(e == cudaErrorMemoryAllocation ? CLIPSKIP_ERR_NOMEM : CLIPSKIP_ERR_BACKEND,
                "cuda: cudaMalloc of %zu bytes (%zu %s elements) failed on device %d: %s "
                "(%zu of %zu bytes free)", bytes, n, kind == CS_BUF_RESID ? "RESID" : "ACT",
                be->device, cudaGetErrorString(e), fr, tot);
        return NULL;
    }
    be->allocs[be->n_allocs++] = (cs_cu_alloc){p, bytes, ++be->next_serial};
    be->alloc_bytes += bytes;
    return p;
}

static void cu_release(cs_backend *be, void *buf) {
    if (!buf) return;
    for (int i = 0; i < be->n_allocs; i++) {
        if (be->allocs[i].ptr != buf) continue;
        if (be->cap) cs_cu_graph_abort(be);
        cs_cu_graph_evict(be, be->allocs[i].serial); /* its graphs would touch freed memory */
        cudaSetDevice(be->device);
        cudaStreamSynchronize(be->stream); /* queued kernels may still use it */
        cudaFree(buf);
        be->alloc_bytes -= be->allocs[i].bytes;
        be->allocs[i] = be->allocs[--be->n_allocs];
        return;
    }
}

/* ---------------------------------------------------------------- init / free */

static void cu_free(cs_backend *be) {
    if (!be) return;
    cudaSetDevice(be->device);
    if (be->cap) cs_cu_graph_abort(be);
    if (be->stream) cudaStreamSynchronize(be->stream);
    cs_cu_outbox_free(be);
    cs_cu_graph_free_all(be);
    cs_cu_lt_free(be);
    cs_cu_gemm_free(be);
    cs_cu_fused_free(be);
    for (int i = 0; i < be->n_allocs; i++) cudaFree(be->allocs[i].ptr);
    free(be->allocs);
    st_free(&be->st_embed);
    st_free(&be->st_idx);
    st_free(&be->st_off);
    if (be->d_off) cudaFree(be->d_off);
    free(be->h_off);
    if (be->dl_scratch) cudaFree(be->dl_scratch);
    if (be->dl_host) cudaFreeHost(be->dl_host);
    free(be->pend);
    cs_cu_weights_free(be);
    if (be->ev_start) cudaEventDestroy(be->ev_start);
    if (be->ev_stop) cudaEventDestroy(be->ev_stop);
    if (be->stream) cudaStreamDestroy(be->stream);
    (void)cudaGetLastError();
    free(be);
}

static clipskip_status cu_open_device(cs_backend *be) {
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess || n == 0) {
        (void)cudaGetLastError();
        return cs_fail(CLIPSKIP_ERR_BACKEND, "cuda: no usable CUDA device (cudaGetDeviceCount: %s, "
                       "%d devices)", cudaGetErrorString(e), n);
    }
    if (be->device < 0 || be->device >= n)
        return cs_fail(CLIPSKIP_ERR_INVALID_ARG, "cuda: device %d requested, valid 0..%d",
                       be->device, n - 1);
    struct cudaDeviceProp prop;
    CU_TRY(be, cudaSetDevice(be->device));
    CU_TRY(be, cudaGetDeviceProperties(&prop, be->device));
    be->n_sm = prop.multiProcessorCount;
    be->l2_bytes = prop.l2CacheSize > 0 ? (size_t)prop.l2CacheSize : 0;
    be->cc_major = prop.major;
    be->cc_minor = prop.minor;
    snprintf(be->name, sizeof be->name, "%s", prop.name);
    if (prop.major < 8)
        return cs_fail(CLIPSKIP_ERR_UNSUPPORTED, "cuda: %s is compute capability %d.%d; the "
                       "kernels need 8.0 or newer (A100, RTX 30/40, H100)", prop.name,
                       prop.major, prop.minor);
    CU_TRY(be, cudaStreamCreateWithFlags(&be->stream, cudaStreamNonBlocking));
    CU_TRY(be, cudaEventCreate(&be->ev_start));
    CU_TRY(be, cudaEventCreate(&be->ev_stop));
    CU_TRY(be, cs_k_gemm_setup());
    CS_TRY(cs_cu_gemm_init(be));
    return cs_cu_fused_init(be);
}

static clipskip_status cu_init_buffers(cs_backend *be) {
    const size_t rows = (size_t)be->max_batch * CLIPSKIP_CONTEXT;
    cs_cu_staging *st[3] = {&be->st_embed, &be->st_idx, &be->st_off};
    for (int i = 0; i < 3; i++) CU_TRY(be, cudaEventCreateWithFlags(&st[i]->done, cudaEventDisableTiming));
    CS_TRY(st_reserve(be, &be->st_embed, 2 * rows * sizeof(int32_t), 1));
    CS_TRY(st_reserve(be, &be->st_idx, rows * sizeof(int32_t), 1));
    be->seq_cap = be->max_batch > 64 ? be->max_batch : 64;
    CS_TRY(st_reserve(be, &be->st_off, ((size_t)be->seq_cap + 1) * sizeof(int32_t), 0));
    be->h_off = cs_calloc((size_t)be->seq_cap + 1, sizeof(int32_t));
    if (!be->h_off) return CLIPSKIP_ERR_NOMEM;
    CU_TRY(be, cudaMalloc((void **)&be->d_off, ((size_t)be->seq_cap + 1) * sizeof(int32_t)));
    be->dl_scratch_bytes = CU_DL_SCRATCH_BYTES;
    CU_TRY(be, cudaMalloc(&be->dl_scratch, be->dl_scratch_bytes));
    return CLIPSKIP_OK;
}

static clipskip_status cu_init(const clipskip_model *model, const clipskip_encoder_params *p,
                               cs_backend **out) {
    *out = NULL;
    if (p->compute_dtype != CLIPSKIP_DTYPE_F16 && p->compute_dtype != CLIPSKIP_DTYPE_BF16)
        return cs_fail(CLIPSKIP_ERR_UNSUPPORTED, "cuda: compute_dtype %s: the CUDA backend "
                       "computes in F16 or BF16", cs_dtype_name(p->compute_dtype));
    if (p->max_batch < 1)
        return cs_fail(CLIPSKIP_ERR_INVALID_ARG, "cuda: max_batch %d, must be >= 1", p->max_batch);
    cs_backend *be = cs_calloc(1, sizeof *be);
    if (!be) return CLIPSKIP_ERR_NOMEM;
    be->device = p->device;
    be->cdt = p->compute_dtype;
    be->gemm_path = p->gemm;
    be->max_batch = p->max_batch;
    const char *g = getenv("CLIPSKIP_CUDA_GRAPHS"); /* "0": never capture (debugging, bench) */
    be->use_graphs = !(g && !strcmp(g, "0"));
    /* "pinned": every download through the pinned staging (the comparison in bench) */
    const char *dl = getenv("CLIPSKIP_CUDA_DOWNLOAD");
    be->dl_direct_min = dl && !strcmp(dl, "pinned") ? SIZE_MAX : CU_DL_DIRECT_MIN;
    clipskip_status st = cu_open_device(be);
    if (st == CLIPSKIP_OK) st = cs_cu_weights_init(be, model);
    if (st == CLIPSKIP_OK) st = cs_cu_fused_weights(be);
    if (st == CLIPSKIP_OK) st = cu_init_buffers(be);
    if (st == CLIPSKIP_OK) st = cs_cu_outbox_init(be);
    if (st == CLIPSKIP_OK && be->gemm_path == CLIPSKIP_GEMM_CUBLASLT) st = cs_cu_lt_init(be);
    if (st != CLIPSKIP_OK) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", clipskip_last_error());
        cu_free(be);
        return cs_fail(st, "%s", msg); /* cleanup must not overwrite the first failure */
    }
    *out = be;
    return CLIPSKIP_OK;
}

/* ---------------------------------------------------------------- small queries */

static size_t cu_elem_bytes(const cs_backend *be, cs_buf_kind kind) {
    return kind == CS_BUF_RESID ? sizeof(float) : cs_dtype_size(be->cdt);
}

/* No chunking needed for memory on a GPU, and whole passes keep the GEMMs large. */
static int32_t cu_mlp_chunk_rows(const cs_backend *be) {
    const int64_t rows = (int64_t)be->max_batch * CLIPSKIP_CONTEXT;
    return rows > (1 << 20) ? (1 << 20) : (int32_t)rows;
}

static const char *cu_device_name(const cs_backend *be) { return be->name; }

static void cu_memory(const cs_backend *be, size_t *weights, size_t *activations) {
    if (weights) *weights = be->weight_bytes;
    if (activations)
        *activations = be->alloc_bytes + be->dl_scratch_bytes + be->lt_ws_bytes +
                       cs_cu_gemm_bytes(be) + cs_cu_fused_bytes(be) + cs_cu_outbox_bytes(be) +
                       be->st_embed.cap + be->st_idx.cap + ((size_t)be->seq_cap + 1) * sizeof(int32_t);
}

/* ---------------------------------------------------------------- packing */

static clipskip_status cu_grow_seqs(cs_backend *be, int32_t n_seq) {
    int32_t cap = be->seq_cap * 2 > n_seq ? be->seq_cap * 2 : n_seq;
    int32_t *h = realloc(be->h_off, ((size_t)cap + 1) * sizeof(int32_t));
    if (!h) return cs_fail(CLIPSKIP_ERR_NOMEM, "cuda: out of host memory for %d offsets", cap);
    be->h_off = h;
    /* graphs hold the old device address: drop them all */
    cs_cu_graph_evict(be, 0);
    CU_TRY(be, cudaStreamSynchronize(be->stream));
    cudaFree(be->d_off);
    be->d_off = NULL;
    CU_TRY(be, cudaMalloc((void **)&be->d_off, ((size_t)cap + 1) * sizeof(int32_t)));
    be->seq_cap = cap;
    return CLIPSKIP_OK;
}

static clipskip_status cu_set_seqs(cs_backend *be, int32_t n_seq, const int32_t *len) {
    if (be->cap) return cu_in_region("set_seqs");
    CS_TRY(cu_alive(be)); /* every pass starts here */
    cs_k_set_pdl(be->pdl); /* this encoder's launch setting for the thread issuing the pass */
    if (n_seq < 0 || (n_seq > 0 && !len))
        return cs_fail(CLIPSKIP_ERR_INVALID_ARG, "cuda: set_seqs: %d sequences", n_seq);
    CU_TRY(be, cudaSetDevice(be->device));
    if (!be->timing) { /* a pass starts with set_seqs: time it from here to finish() */
        CU_TRY(be, cudaEventRecord(be->ev_start, be->stream));
        be->timing = 1;
    }
    if (n_seq > be->seq_cap) CS_TRY(cu_grow_seqs(be, n_seq));
    int64_t off = 0;
    be->h_off[0] = 0;
    for (int32_t i = 0; i < n_seq; i++) {
        if (len[i] < 1 || len[i] > CS_K_ATTN_MAX_T)
            return cs_fail(CLIPSKIP_ERR_INVALID_ARG, "cuda: set_seqs: len[%d] = %d, valid 1..%d",
                           i, len[i], CS_K_ATTN_MAX_T);
        off += len[i];
        if (off > INT32_MAX) return cs_fail(CLIPSKIP_ERR_TOO_LARGE, "cuda: set_seqs: over 2^31 rows");
        be->h_off[i + 1] = (int32_t)off;
    }
    const size_t bytes = ((size_t)n_seq + 1) * sizeof(int32_t);
    CS_TRY(st_reserve(be, &be->st_off, bytes, 0));
    memcpy(be->st_off.host, be->h_off, bytes);
    CS_TRY(st_send(be, &be->st_off, be->d_off, bytes));
    be->n_seq = n_seq;
    be->n_tokens = (int32_t)off;
    return CLIPSKIP_OK;
}

/* ---------------------------------------------------------------- ops */

static clipskip_status cu_tower(const cs_backend *be, int tower, const cs_cu_tower **t) {
    if (tower < 0 || tower >= be->n_towers)
        return cs_fail(CLIPSKIP_ERR_INVALID_ARG, "cuda: tower %d, model has %d", tower, be->n_towers);
    *t = &be->towers[tower];
    return CLIPSKIP_OK;
}

static clipskip_status cu_embed(cs_backend *be, int tower, const int32_t *ids, const int32_t *pos,
                                int32_t m, void *h) {
    const cs_cu_tower *t = NULL;
    CS_TRY(cu_tower(be, tower, &t));
    if (be->cap) return cu_in_region("embed");
    if (m <= 0) return m == 0 ? CLIPSKIP_OK : cs_fail(CLIPSKIP_ERR_INVALID_ARG, "cuda: embed m = %d", m);
    for (int32_t i = 0; i < m; i++) {
        if (ids[i] < 0 || ids[i] >= t->vocab)
            return cs_fail(CLIPSKIP_ERR_INVALID_ARG, "cuda: embed: ids[%d] = %d outside 0..%d", i,
                           ids[i], t->vocab - 1);
        if (pos[i] < 0 || pos[i] >= t->context)
            return cs_fail(CLIPSKIP_ERR_INVALID_ARG, "cuda: embed: pos[%d] = %d outside 0..%d", i,
                           pos[i], t->context - 1);
    }
    CU_TRY(be, cudaSetDevice(be->device));
    cs_cu_staging *st = &be->st_embed;
    CS_TRY(st_reserve(be, st, 2 * (size_t)m * sizeof(int32_t), 1));
    memcpy(st->host, ids, (size_t)m * sizeof(int32_t));
    memcpy((int32_t *)st->host + m, pos, (size_t)m * sizeof(int32_t));
    CS_TRY(st_send(be, st, st->dev, 2 * (size_t)m * sizeof(int32_t)));
    const int32_t *d_ids = st->dev, *d_pos = d_ids + m;
    CU_TRY(be, cs_k_embed(h, t->tok_emb, t->tok_dtype, t->pos_emb, d_ids, d_pos, m, t->d, be->stream));
    return CLIPSKIP_OK;
}

/* Rows available from p to the end of its registry buffer (-1: not a registry buffer). */
static int64_t cu_rows_from(const cs_backend *be, const void *p, size_t row_bytes) {
    const cs_cu_alloc *a = cs_cu_find_alloc(be, p);
    if (!a) return -1;
    return (int64_t)((size_t)(a->ptr + a->bytes - (const char *)p) / row_bytes);
}

/* Every idx[i] names a row of a source holding src_rows rows (-1: unknown, only >= 0 checked). */
static clipskip_status cu_check_rows(const char *op, const int32_t *idx, int32_t n, int64_t src_rows) {
    for (int32_t i = 0; i < n; i++)
        if (idx[i] < 0 || (src_rows >= 0 && idx[i] >= src_rows))
            return cs_fail(CLIPSKIP_ERR_INVALID_ARG, "cuda: %s: idx[%d] = %d outside 0..%lld", op, i,
                           idx[i], (long long)src_rows - 1);
    return CLIPSKIP_OK;
}

static clipskip_status cu_layernorm(cs_backend *be, int tower, int layer, cs_ln_id which,
                                    const void *in, void *out, int32_t m, const int32_t *idx) {
    const cs_cu_tower *t = NULL;
    CS_TRY(cu_tower(be, tower, &t));
    const float *g, *b;
    if (which == CS_LN_FINAL) {
        g = t->lnf_g;
        b = t->lnf_b;
    } else {
        if (layer < 0 || layer >= t->n_layers || (which != CS_LN_1 && which != CS_LN_2))
            return cs_fail(CLIPSKIP_ERR_INVALID_ARG, "cuda: layernorm %d of layer %d (tower has %d)",
                           (int)which, layer, t->n_layers);
        const cs_cu_layer *L = &t->layers[layer];
        g = which == CS_LN_1 ? L->ln1_g : L->ln2_g;
        b = which == CS_LN_1 ? L->ln1_b : L->ln2_b;
    }
    cs_cu_graph_note(be, in);
    cs_cu_graph_note(be, out);
    const int32_t *d_idx = NULL;
    if (idx && m > 0) {
        CS_TRY(cu_check_rows("layernorm", idx, m, cu_rows_from(be, in, (size_t)t->d * sizeof(float))));
        CS_TRY(cs_cu_put_ints(be, &be->st_idx, idx, (size_t)m, &d_idx));
    }
    CU_TRY(be, cs_k_layernorm(out, be->cdt, in, d_idx, g, b, m, t->d, CS_CU_LN_EPS, be->stream));
    return CLIPSKIP_OK;
}

static clipskip_status cu_linear(const cs_cu_tower *t, int layer, cs_weight_id w,
                                 const cs_cu_linear **lin) {
    if (w == CS_W_PROJ) {
        if (!t->proj.w) return cs_fail(CLIPSKIP_ERR_INVALID_ARG, "cuda: tower has no text projection");
        *lin = &t->proj;
        return CLIPSKIP_OK;
    }
    if (layer < 0 || layer >= t->n_layers)
        return cs_fail(CLIPSKIP_ERR_INVALID_ARG, "cuda: gemm layer %d (tower has %d)", layer, t->n_layers);
    const cs_cu_layer *L = &t->layers[layer];
    switch (w) {
    case CS_W_QKV: *lin = &L->qkv; return CLIPSKIP_OK;
    case CS_W_O: *lin = &L->o; return CLIPSKIP_OK;
    case CS_W_FC1: *lin = &L->fc1; return CLIPSKIP_OK;
    case CS_W_FC2: *lin = &L->fc2; return CLIPSKIP_OK;
    default: break;
    }
    return cs_fail(CLIPSKIP_ERR_INVALID_ARG, "cuda: gemm weight id %d", (int)w);
}

static clipskip_status cu_gemm(cs_backend *be, int tower, int layer, cs_weight_id w,
                               cs_epilogue epi, const void *x, void *out, int32_t m) {
    const cs_cu_tower *t = NULL;
    const cs_cu_linear *lin = NULL;
    CS_TRY(cu_tower(be, tower, &t));
    CS_TRY(cu_linear(t, layer, w, &lin));
    static const cs_k_epilogue kepi[4] = {CS_K_EPI_NONE, CS_K_EPI_BIAS, CS_K_EPI_BIAS_ACT,
                                          CS_K_EPI_BIAS_RESID};
    if ((int)epi < 0 || (int)epi > 3) return cs_fail(CLIPSKIP_ERR_INVALID_ARG, "cuda: epilogue %d", (int)epi);
    if (epi != CS_EPI_NONE && !lin->b)
        return cs_fail(CLIPSKIP_ERR_INVALID_ARG, "cuda: epilogue %d on a weight without bias", (int)epi);
    if (m < 0) return cs_fail(CLIPSKIP_ERR_INVALID_ARG, "cuda: gemm m = %d", m);
    if (be->gemm_path != CLIPSKIP_GEMM_CUBLASLT && (int64_t)m > CU_GEMM_MAX_ROWS)
        return cs_fail(CLIPSKIP_ERR_TOO_LARGE, "cuda: a GEMM of %d token rows; the native kernels "
                       "take at most %lld (%lld prompts of 77 tokens): use a smaller max_batch",
                       m, (long long)CU_GEMM_MAX_ROWS, (long long)CU_GEMM_MAX_ROWS / CLIPSKIP_CONTEXT);
    cs_cu_graph_note(be, x);
    cs_cu_graph_note(be, out);
    if (be->gemm_path == CLIPSKIP_GEMM_CUBLASLT)
        return cs_cu_lt_gemm(be, lin, kepi[epi], t->act, x, out, m);
    return cs_cu_gemm_native(be, lin, kepi[epi], t->act, x, out, m);
}

static clipskip_status cu_layers(cs_backend *be, int tower, int l0, int l1, int last_only, void *h,
                                 void *h_alt, const int32_t *idx, int32_t n, void *a, void *qkv, void *att,
                                 void *mlp, int32_t m, int *done) {
    const cs_cu_tower *t = NULL;
    *done = 0;
    CS_TRY(cu_tower(be, tower, &t));
    if (last_only) CS_TRY(cu_check_rows("layers", idx, n, m));
    const cs_cu_fused_bufs b = {h, h_alt, idx, n, a, qkv, att, mlp, m, cu_mlp_chunk_rows(be)};
    return cs_cu_fused_layers(be, t, l0, l1, last_only, &b, done);
}

static clipskip_status cu_attention(cs_backend *be, int tower, const void *qkv, void *out,
                                    int last_only) {
    const cs_cu_tower *t = NULL;
    CS_TRY(cu_tower(be, tower, &t));
    cs_cu_graph_note(be, qkv);
    cs_cu_graph_note(be, out);
    const float scale = 1.0f / sqrtf((float)(t->d / t->heads)); /* Dh^-0.5 */
    CU_TRY(be, cs_k_attention(out, qkv, be->d_off, be->n_seq, t->heads, t->d, scale,
                              last_only != 0, be->cdt, be->stream));
    return CLIPSKIP_OK;
}

static clipskip_status cu_gather_rows(cs_backend *be, cs_buf_kind kind, const void *src, void *dst,
                                      int32_t width, const int32_t *idx, int32_t n) {
    if (n < 0 || width <= 0)
        return cs_fail(CLIPSKIP_ERR_INVALID_ARG, "cuda: gather_rows n = %d, width = %d", n, width);
    if (n == 0) return CLIPSKIP_OK;
    const size_t row_bytes = (size_t)width * cu_elem_bytes(be, kind);
    const int64_t src_rows = cu_rows_from(be, src, row_bytes), dst_rows = cu_rows_from(be, dst, row_bytes);
    if (dst_rows >= 0 && dst_rows < n)
        return cs_fail(CLIPSKIP_ERR_INVALID_ARG, "cuda: gather_rows: %d rows into a buffer of %lld",
                       n, (long long)dst_rows);
    CS_TRY(cu_check_rows("gather_rows", idx, n, src_rows));
    cs_cu_graph_note(be, src);
    cs_cu_graph_note(be, dst);
    const int32_t *d_idx;
    CS_TRY(cs_cu_put_ints(be, &be->st_idx, idx, (size_t)n, &d_idx));
    CU_TRY(be, cs_k_gather_rows(dst, src, row_bytes, d_idx, n, be->stream));
    return CLIPSKIP_OK;
}

/* ---------------------------------------------------------------- downloads */

static clipskip_status cu_flush(cs_backend *be) {
    const cudaError_t e = cudaStreamSynchronize(be->stream);
    if (e != cudaSuccess) { /* the staged bytes are lost with the call; never copy them later */
        be->n_pend = 0;
        be->dl_used = 0;
        return cs_cu_fail(be, e, "cudaStreamSynchronize(be->stream)", __FILE__, __LINE__);
    }
    for (int i = 0; i < be->n_pend; i++)
        memcpy(be->pend[i].dst, be->dl_host + be->pend[i].off, be->pend[i].bytes);
    be->n_pend = 0;
    be->dl_used = 0;
    return CLIPSKIP_OK;
}

static clipskip_status cu_dl_reserve(cs_backend *be, size_t bytes) {
    if (be->n_pend == be->cap_pend) {
        int cap = be->cap_pend ? 2 * be->cap_pend : 16;
        cs_cu_pending *p = realloc(be->pend, (size_t)cap * sizeof *p);
        if (!p) return cs_fail(CLIPSKIP_ERR_NOMEM, "cuda: out of host memory (download list)");
        be->pend = p;
        be->cap_pend = cap;
    }
    if (be->dl_used + bytes <= be->dl_cap) return CLIPSKIP_OK;
    CS_TRY(cu_flush(be)); /* earlier downloads complete now rather than at finish() */
    if (bytes <= be->dl_cap) return CLIPSKIP_OK;
    size_t cap = be->dl_cap * 2 > bytes ? be->dl_cap * 2 : bytes;
    if (be->dl_host) cudaFreeHost(be->dl_host);
    be->dl_host = NULL;
    be->dl_cap = 0;
    CU_TRY(be, cudaHostAlloc((void **)&be->dl_host, cap, cudaHostAllocDefault));
    be->dl_cap = cap;
    return CLIPSKIP_OK;
}

/* Whether p is page-locked host memory (clipskip_host_alloc, or the caller's own cudaHostAlloc):
 * then a copy into it is a true asynchronous DMA and needs no staging. */
static int cu_is_pinned(const void *p) {
    struct cudaPointerAttributes at;
    if (cudaPointerGetAttributes(&at, p) != cudaSuccess) {
        (void)cudaGetLastError();
        return 0;
    }
    return at.type == cudaMemoryTypeHost;
}

static clipskip_status cu_download(cs_backend *be, cs_buf_kind kind, const void *buf, size_t off,
                                   size_t n, void *dst, clipskip_dtype dtype) {
    if (be->cap) return cu_in_region("download");
    if (dtype != CLIPSKIP_DTYPE_F32 && dtype != CLIPSKIP_DTYPE_F16 && dtype != CLIPSKIP_DTYPE_BF16)
        return cs_fail(CLIPSKIP_ERR_INVALID_ARG, "cuda: download as dtype %d", (int)dtype);
    if (n == 0) return CLIPSKIP_OK;
    CU_TRY(be, cudaSetDevice(be->device));
    const clipskip_dtype sdt = kind == CS_BUF_RESID ? CLIPSKIP_DTYPE_F32 : be->cdt;
    const size_t es = cs_dtype_size(sdt), ds = cs_dtype_size(dtype), bytes = n * ds;
    const char *src = (const char *)buf + off * es;
    if (be->ob && cu_is_pinned(dst)) return cs_cu_outbox_download(be, src, sdt, n, dst, dtype);
    /* Large downloads and pinned destinations are copied straight into dst (a pageable copy
     * returns once done); the rest go through the pinned staging that finish() empties. */
    const int direct = bytes >= be->dl_direct_min || cu_is_pinned(dst);
    if (!direct) CS_TRY(cu_dl_reserve(be, bytes));
    char *h = direct ? dst : be->dl_host + be->dl_used;
    if (sdt == dtype) {
        CU_TRY(be, cudaMemcpyAsync(h, src, bytes, cudaMemcpyDeviceToHost, be->stream));
    } else { /* converted through the scratch; stream order keeps each chunk's copy before the
                next chunk's conversion overwrites it */
        const size_t chunk = be->dl_scratch_bytes / ds;
        for (size_t i = 0; i < n; i += chunk) {
            const size_t c = n - i < chunk ? n - i : chunk;
            CU_TRY(be, cs_k_convert(be->dl_scratch, dtype, src + i * es, sdt, c, be->stream));
            CU_TRY(be, cudaMemcpyAsync(h + i * ds, be->dl_scratch, c * ds, cudaMemcpyDeviceToHost,
                                       be->stream));
        }
    }
    if (direct) return CLIPSKIP_OK;
    be->pend[be->n_pend++] = (cs_cu_pending){dst, be->dl_used, bytes};
    be->dl_used += (bytes + 63) & ~(size_t)63;
    return CLIPSKIP_OK;
}

static clipskip_status cu_finish(cs_backend *be) {
    /* A region still open here was left by an op that failed inside it (the encoder calls
     * finish after every failure): drop what it recorded, nothing of it ran. */
    if (be->cap) cs_cu_graph_abort(be);
    CU_TRY(be, cudaSetDevice(be->device));
    int timed = be->timing;
    CS_TRY(cs_cu_outbox_join(be)); /* the overlapped downloads count and are waited for */
    if (timed) CU_TRY(be, cudaEventRecord(be->ev_stop, be->stream));
    be->timing = 0;
    CS_TRY(cu_flush(be));
    float ms = 0.f;
    if (timed) CU_TRY(be, cudaEventElapsedTime(&ms, be->ev_start, be->ev_stop));
    be->dev_seconds = timed ? ms * 1e-3 : 0.0;
    return CLIPSKIP_OK;
}

static double cu_device_seconds(cs_backend *be) { return be->dev_seconds; }

/* Test and tool helper (backend.h): n fp32 host values into buf at element off, converted to
 * the kind's element type; synchronous. */
clipskip_status cs_cuda_upload_f32(cs_backend *be, cs_buf_kind kind, void *buf, size_t off,
                                   size_t n, const float *src) {
    if (be->cap) return cu_in_region("upload");
    CU_TRY(be, cudaSetDevice(be->device));
    const clipskip_dtype ddt = kind == CS_BUF_RESID ? CLIPSKIP_DTYPE_F32 : be->cdt;
    char *dst = (char *)buf + off * cs_dtype_size(ddt);
    const size_t chunk = be->dl_scratch_bytes / sizeof(float);
    for (size_t i = 0; i < n; i += chunk) {
        const size_t c = n - i < chunk ? n - i : chunk;
        CU_TRY(be, cudaMemcpyAsync(be->dl_scratch, src + i, c * sizeof(float),
                                   cudaMemcpyHostToDevice, be->stream));
        CU_TRY(be, cs_k_convert(dst + i * cs_dtype_size(ddt), ddt, be->dl_scratch,
                                CLIPSKIP_DTYPE_F32, c, be->stream));
    }
    CU_TRY(be, cudaStreamSynchronize(be->stream));
    return CLIPSKIP_OK;
}

/* Pinned memory, or (when the system refuses to pin that much) ordinary memory, which the
 * downloads handle too, only slower; cu_host_free tells the two apart. */
static void *cu_host_alloc(cs_backend *be, size_t bytes) {
    void *p = NULL;
    cudaError_t e = cudaSetDevice(be->device);
    if (e == cudaSuccess) e = cudaHostAlloc(&p, bytes, cudaHostAllocPortable);
    if (e == cudaSuccess) return p;
    (void)cudaGetLastError();
    if (e == cudaErrorMemoryAllocation && !posix_memalign(&p, 64, bytes)) return p;
    cs_fail(e == cudaErrorMemoryAllocation ? CLIPSKIP_ERR_NOMEM : CLIPSKIP_ERR_BACKEND,
            "cuda: host memory of %zu bytes: cudaHostAlloc failed (%s)%s", bytes, cudaGetErrorString(e),
            e == cudaErrorMemoryAllocation ? " and so did malloc" : "");
    return NULL;
}

static void cu_host_free(cs_backend *be, void *p) {
    (void)be;
    struct cudaPointerAttributes at;
    if (cudaPointerGetAttributes(&at, p) == cudaSuccess && at.type == cudaMemoryTypeHost) {
        cudaFreeHost(p);
        return;
    }
    (void)cudaGetLastError();
    free(p); /* the ordinary-memory fallback of cu_host_alloc */
}

static int cu_graph_begin(cs_backend *be, const cs_graph_key *key) { return cs_cu_graph_begin(be, key); }
static clipskip_status cu_graph_end(cs_backend *be, const cs_graph_key *key) {
    return cs_cu_graph_end(be, key);
}

const cs_backend_ops cs_backend_cuda = {
    .name = "cuda",
    .kind = CLIPSKIP_BACKEND_CUDA,
    .init = cu_init,
    .free = cu_free,
    .elem_bytes = cu_elem_bytes,
    .mlp_chunk_rows = cu_mlp_chunk_rows,
    .layers = cu_layers,
    .device_name = cu_device_name,
    .memory = cu_memory,
    .host_alloc = cu_host_alloc,
    .host_free = cu_host_free,
    .alloc = cu_alloc,
    .release = cu_release,
    .set_seqs = cu_set_seqs,
    .embed = cu_embed,
    .layernorm = cu_layernorm,
    .gemm = cu_gemm,
    .attention = cu_attention,
    .gather_rows = cu_gather_rows,
    .download = cu_download,
    .finish = cu_finish,
    .device_seconds = cu_device_seconds,
    .measure_peak = cs_cu_measure_peak,
    .graph_begin = cu_graph_begin,
    .graph_end = cu_graph_end,
};
#endif
