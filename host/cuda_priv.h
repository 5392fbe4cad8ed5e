/* Private state of the CUDA backend, shared by host/backend_cuda.c (the op table),
 * host/cuda_weights.c (weight conversion and upload), host/cuda_graph.c (graph capture and
 * replay), host/cuda_gemm.c (the native GEMM path) and host/cuda_lt.c (the cuBLASLt
 * comparison path). Only compiled with CUDA. */
#ifndef CLIPSKIP_CUDA_PRIV_H
#define CLIPSKIP_CUDA_PRIV_H
#ifdef CLIPSKIP_WITH_CUDA

#include "backend.h"
#include "internal.h"
#include "kernels.h"

#include <cublasLt.h>
#include <cuda_runtime_api.h>

/* ---- checks: every CUDA / cuBLASLt call and every launch goes through one of these. The
 * failure aborts a capture in progress and returns
 * cs_fail(CLIPSKIP_ERR_BACKEND, "<statement> failed at file:line on device N: <error>")
 * (CLIPSKIP_ERR_NOMEM for an out-of-memory error). */
#define CU_TRY(be, stmt)                                                                   \
    do {                                                                                   \
        cudaError_t cu_e_ = (stmt);                                                        \
        if (cu_e_ != cudaSuccess) return cs_cu_fail((be), cu_e_, #stmt, __FILE__, __LINE__); \
    } while (0)
#define LT_TRY(be, stmt)                                                                   \
    do {                                                                                   \
        cublasStatus_t lt_e_ = (stmt);                                                     \
        if (lt_e_ != CUBLAS_STATUS_SUCCESS)                                                \
            return cs_cu_lt_fail((be), lt_e_, #stmt, __FILE__, __LINE__);                  \
    } while (0)

#define CS_CU_LN_EPS 1e-5f /* every LayerNorm of CLIP */

/* ---- device weights */
typedef struct {
    void *w;        /* (n, k) compute dtype, nn.Linear layout */
    float *b;       /* (n) fp32, NULL when the layer has none */
    void *b_lt;     /* (n) compute dtype copy for cuBLASLt's bias epilogue on ACT outputs */
    int32_t n, k;
} cs_cu_linear;

typedef struct {
    float *ln1_g, *ln1_b, *ln2_g, *ln2_b; /* (D) fp32 */
    cs_cu_linear qkv;                     /* (3D, D): q, k, v stacked; bias (3D) */
    cs_cu_linear o, fc1, fc2;             /* (D, D), (F, D), (D, F) */
} cs_cu_layer;

typedef struct {
    int32_t d, heads, f, n_layers, vocab, context;
    clipskip_act act;
    void *tok_emb;              /* (V, D) kept in the file's dtype: exact, as the CPU upcasts it */
    clipskip_dtype tok_dtype;
    float *pos_emb;             /* (T, D) fp32 */
    float *lnf_g, *lnf_b;       /* (D) fp32 */
    cs_cu_layer *layers;        /* n_layers (host array of device pointers) */
    cs_cu_linear proj;          /* (E, D), no bias; w == NULL when the tower has none */
    cs_k_layer_weights *fused;  /* (n_layers) device copy of the layers' pointers for the fused
                                 * layer kernel; NULL while it is off */
} cs_cu_tower;

/* ---- host arrays going to the device (ids, positions, offsets, gather indices): a pinned
 * host buffer, a device buffer, and an event marking when the last copy out of the pinned
 * buffer ran, so it is never overwritten while a copy still reads it. */
typedef struct {
    void *host, *dev;
    size_t cap;
    cudaEvent_t done;
    int pending;
} cs_cu_staging;

/* ---- device buffers handed to the encoder (registry: memory report, index range checks,
 * and which graphs to drop when one is released) */
typedef struct {
    char *ptr;
    size_t bytes;
    uint64_t serial;
} cs_cu_alloc;

typedef struct {
    void *dst;      /* caller's host buffer */
    size_t off;     /* in the pinned download staging */
    size_t bytes;
} cs_cu_pending;

#define CS_CU_GRAPHS 32       /* graph execs kept per encoder (LRU) */
#define CS_CU_SEEN 64         /* keys remembered for capture-on-second-use */
#define CS_CU_GRAPH_BUFS 64   /* device buffers one graph may reference */
#define CS_CU_LT_PLANS 64
#define CS_CU_OB_SLOTS 8      /* download outbox slots (cuda_outbox.c) */

typedef struct {
    int used;
    cs_graph_key key;
    cudaGraphExec_t exec;
    uint64_t last_use;
    uint64_t bufs[CS_CU_GRAPH_BUFS]; /* serials of the registry buffers its nodes touch */
    int n_bufs;
    void *arena_host, *arena_dev;    /* host arguments captured inside the region */
    size_t arena_cap;
} cs_cu_graph;

typedef struct {
    int used;
    int32_t m, n, k;
    int epi;
    cublasLtMatmulDesc_t op;
    cublasLtMatrixLayout_t la, lb, lc;
    cublasLtMatmulAlgo_t algo;
} cs_cu_lt_plan;

struct cs_backend {
    int device, n_sm, cc_major, cc_minor;
    size_t l2_bytes;             /* the device's L2 cache */
    int dead;                    /* a sticky error was seen: the context is lost */
    char name[256];
    clipskip_dtype cdt;          /* ACT element type: F16 or BF16 */
    clipskip_gemm gemm_path;
    int large_tile;              /* -1, or the GEMM tile that replaces 128x128 (experiments) */
    int32_t k_chunk;             /* 0, or the fixed K chunk of every native GEMM (cuda_gemm.c) */
    int pdl;                     /* programmatic dependent launch (CLIPSKIP_CUDA_PDL=1) */
    int32_t fused_rows;          /* fused layer for passes of at most this many rows (0: off) */
    int layer_blocks;            /* its cooperative grid */
    int layer_per_sm;            /* blocks per SM it was set up for (1, 2, 3) */
    int fused_prefetch;          /* it asks L2 for the weights (cs_k_layer_args.prefetch) */
    int fused_flow;              /* its items wait on per-row counters, not barriers (.flow) */
    unsigned *layer_bar;         /* its grid barrier's counter, then its row-block counters */
    size_t layer_sems;           /* counters in layer_bar */
    float *split_ws;             /* with k_chunk: partials of chunks run on separate blocks */
    size_t split_ws_floats;
    unsigned *split_sem;         /* with k_chunk: per-tile arrival counters, kept at 0 */
    size_t split_sems;
    int max_batch;
    cudaStream_t stream;

    int n_towers;
    cs_cu_tower towers[CS_MAX_TOWERS];
    void *weights;               /* one device arena holding every tower's weights */
    size_t weight_bytes;

    cs_cu_alloc *allocs;         /* encoder buffers */
    int n_allocs, cap_allocs;
    uint64_t next_serial;
    size_t alloc_bytes;

    /* current packing (set_seqs) */
    int32_t n_seq, n_tokens, seq_cap;
    int32_t *h_off;              /* (seq_cap + 1) host prefix sums */
    int32_t *d_off;              /* (seq_cap + 1) device copy the attention kernel reads */

    cs_cu_staging st_embed, st_idx, st_off;

    /* downloads: device conversion scratch, pinned staging, pending host copies */
    void *dl_scratch;
    size_t dl_scratch_bytes;
    char *dl_host;
    size_t dl_cap, dl_used;
    size_t dl_direct_min; /* downloads of at least this many bytes go straight to the caller */
    cs_cu_pending *pend;
    int n_pend, cap_pend;

    /* downloads overlapped with the next pass (cuda_outbox.c, CLIPSKIP_CUDA_OVERLAP=1) */
    cudaStream_t copy_stream;
    char *ob;                    /* CS_CU_OB_SLOTS slots of ob_slot bytes (device), or NULL: off */
    size_t ob_slot;
    cudaEvent_t ob_ready[CS_CU_OB_SLOTS], ob_free[CS_CU_OB_SLOTS], ob_done;
    int ob_next, ob_queued;      /* next slot; copies queued since the last join */

    /* CUDA graphs */
    int use_graphs;
    cs_cu_graph graphs[CS_CU_GRAPHS];
    cs_graph_key seen[CS_CU_SEEN];
    int n_seen, seen_next;
    uint64_t tick;
    cs_cu_graph *cap;            /* entry being captured, NULL when not capturing */
    size_t arena_used;

    /* device timing of a pass: ev_start at its first set_seqs, ev_stop at finish */
    cudaEvent_t ev_start, ev_stop;
    int timing;                  /* ev_start recorded, ev_stop not yet */
    double dev_seconds;          /* of the work the last finish() waited for */

    /* cuBLASLt */
    cublasLtHandle_t lt;
    void *lt_ws;
    size_t lt_ws_bytes;
    cs_cu_lt_plan plans[CS_CU_LT_PLANS];
    int plan_next;
};

/* backend_cuda.c */
clipskip_status cs_cu_fail(cs_backend *be, cudaError_t e, const char *stmt, const char *file,
                           int line);
clipskip_status cs_cu_lt_fail(cs_backend *be, cublasStatus_t e, const char *stmt,
                              const char *file, int line);
/* The device copy of n host int32 values: through the pinned staging st outside a capture,
 * through the capturing graph's own arena inside one (so a replay sees the same values). */
clipskip_status cs_cu_put_ints(cs_backend *be, cs_cu_staging *st, const int32_t *src, size_t n,
                               const int32_t **dev);
/* Registry lookup: the buffer holding p, or NULL. */
const cs_cu_alloc *cs_cu_find_alloc(const cs_backend *be, const void *p);

/* cuda_weights.c */
clipskip_status cs_cu_weights_init(cs_backend *be, const clipskip_model *model);
void cs_cu_weights_free(cs_backend *be);

/* cuda_graph.c */
int cs_cu_graph_begin(cs_backend *be, const cs_graph_key *key);
clipskip_status cs_cu_graph_end(cs_backend *be, const cs_graph_key *key);
/* Inside a capture: remember that the graph touches buffer p (for release()). */
void cs_cu_graph_note(cs_backend *be, const void *p);
/* End a capture in progress and drop what it recorded (after a failed op). */
void cs_cu_graph_abort(cs_backend *be);
/* Drop every graph that references the buffer with this serial (0: every graph). */
void cs_cu_graph_evict(cs_backend *be, uint64_t serial);
void cs_cu_graph_free_all(cs_backend *be);

/* cuda_outbox.c: downloads overlapped with the compute stream (CLIPSKIP_CUDA_OVERLAP=1).
 * init leaves be->ob NULL when the switch is off; download takes page-locked dst only; join
 * makes the compute stream wait for the copies queued so far (finish calls it). */
clipskip_status cs_cu_outbox_init(cs_backend *be);
void cs_cu_outbox_free(cs_backend *be);
size_t cs_cu_outbox_bytes(const cs_backend *be);
clipskip_status cs_cu_outbox_download(cs_backend *be, const char *src, clipskip_dtype sdt, size_t n,
                                      char *dst, clipskip_dtype dtype);
clipskip_status cs_cu_outbox_join(cs_backend *be);

/* cuda_peak.c */
clipskip_status cs_cu_measure_peak(cs_backend *be, double *flops_per_s, double *bytes_per_s);

/* cuda_gemm.c: the native GEMM path, its experiment switches (CLIPSKIP_CUDA_GEMM_LARGE_TILE,
 * CLIPSKIP_CUDA_K_CHUNK; read by init after cs_k_gemm_setup) and their device memory */
clipskip_status cs_cu_gemm_init(cs_backend *be);

/* cuda_layer.c: the fused layer kernel (CLIPSKIP_CUDA_FUSED_LAYER) */
clipskip_status cs_cu_fused_init(cs_backend *be);
/* After cs_cu_weights_init: the per-tower device arrays of layer pointers the kernel reads. */
clipskip_status cs_cu_fused_weights(cs_backend *be);
void cs_cu_fused_free(cs_backend *be);
size_t cs_cu_fused_bytes(const cs_backend *be);
/* The buffers of the backend's layers op (backend.h); mlp_rows: rows the mlp buffer holds. */
typedef struct {
    void *h, *h_alt;
    const int32_t *idx; /* host: the pooled rows of a last-only layer */
    int32_t n;
    void *a, *qkv, *att, *mlp;
    int32_t m, mlp_rows;
} cs_cu_fused_bufs;
/* Layers l0..l1-1 (the last pooled-only with last_only) over the current packing in one
 * launch; *done = 0 when declined (the caller then issues the ops). */
clipskip_status cs_cu_fused_layers(cs_backend *be, const cs_cu_tower *t, int l0, int l1, int last_only,
                                   const cs_cu_fused_bufs *b, int *done);
void cs_cu_gemm_free(cs_backend *be);
size_t cs_cu_gemm_bytes(const cs_backend *be);
clipskip_status cs_cu_gemm_native(cs_backend *be, const cs_cu_linear *lin, cs_k_epilogue epi,
                                  clipskip_act act, const void *x, void *out, int32_t m);

/* cuda_lt.c */
clipskip_status cs_cu_lt_init(cs_backend *be);
void cs_cu_lt_free(cs_backend *be);
clipskip_status cs_cu_lt_gemm(cs_backend *be, const cs_cu_linear *lin, cs_k_epilogue epi,
                              clipskip_act act, const void *x, void *out, int32_t m);

#endif
#endif
