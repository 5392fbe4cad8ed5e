/* The backend operation table: the only thing encoder.c calls to compute.
 *
 * Both backends (backend_cpu.c, backend_cuda.c) implement the same operations with the same
 * meaning; encoder.c holds the one layer loop (plan depth, run layers, exit early, take
 * outputs) and never touches device memory itself.
 *
 * Token rows are packed: a pass holds n_seq sequences of lengths len[0..n_seq-1] (77, or
 * eos+1 for rows that only still need their pooled vector), stored one after another, M =
 * sum(len) rows. Per-token ops (LayerNorm, GEMM) see an (M, width) matrix; attention uses the
 * current packing set by set_seqs. Buffers are opaque (host or device memory) and typed by
 * kind: RESID holds the residual stream h, ACT everything else; the backend picks each kind's
 * element type (CPU: fp32 both; CUDA: fp32 residual, fp16/bf16 activations) and says its size
 * in elem_bytes so the encoder can address row offsets. */
#ifndef CLIPSKIP_BACKEND_H
#define CLIPSKIP_BACKEND_H

#include "clipskip.h"
#include "model.h"

typedef enum { CS_BUF_RESID = 0, CS_BUF_ACT = 1 } cs_buf_kind;

/* Weights of one layer (or of the tower for PROJ) a GEMM multiplies by: nn.Linear layout
 * (N, K), y = x @ W^T. */
typedef enum {
    CS_W_QKV = 0,  /* (3D, D) q, k, v stacked; bias (3D) */
    CS_W_O = 1,    /* (D, D), bias (D) */
    CS_W_FC1 = 2,  /* (F, D), bias (F) */
    CS_W_FC2 = 3,  /* (D, F), bias (D) */
    CS_W_PROJ = 4  /* (E, D), no bias; layer ignored */
} cs_weight_id;

typedef enum {
    CS_LN_1 = 0,   /* layer's ln1 (before attention) */
    CS_LN_2 = 1,   /* layer's ln2 (before MLP) */
    CS_LN_FINAL = 2 /* tower's final LayerNorm; layer ignored */
} cs_ln_id;

typedef enum {
    CS_EPI_NONE = 0,      /* out = x W^T                        (PROJ) */
    CS_EPI_BIAS = 1,      /* out = x W^T + b                    (QKV) */
    CS_EPI_BIAS_ACT = 2,  /* out = act(x W^T + b), tower's act  (FC1) */
    CS_EPI_BIAS_RESID = 3 /* out(RESID) += x W^T + b            (O, FC2) */
} cs_epilogue;

typedef struct cs_backend cs_backend; /* each backend's own state */

/* Identifies a run of layers with one packing, for backends that capture and replay
 * (CUDA graphs). Equal keys mean an identical launch sequence over identical buffers. */
typedef struct {
    int32_t tower, layer_begin, layer_end;
    int32_t n_seq, n_tokens;
    uint64_t lens_hash;   /* hash of the len[] array */
    int32_t last_only;    /* the run ends with a pooled-only last layer (EOS rows only) */
    uint64_t buffers;     /* hash of the activation buffer addresses the ops will be given */
} cs_graph_key;

typedef struct cs_backend_ops {
    const char *name;
    clipskip_backend kind;
    /* Convert and upload every tower's weights once. */
    clipskip_status (*init)(const clipskip_model *model, const clipskip_encoder_params *p,
                            cs_backend **out);
    void (*free)(cs_backend *be);
    /* Element size of each buffer kind, in bytes. */
    size_t (*elem_bytes)(const cs_backend *be, cs_buf_kind kind);
    /* Rows per MLP chunk: the encoder runs FC1/FC2 over at most this many token rows at a
     * time so the (rows, F) intermediate stays bounded. */
    int32_t (*mlp_chunk_rows)(const cs_backend *be);
    const char *(*device_name)(const cs_backend *be);
    void (*memory)(const cs_backend *be, size_t *weights, size_t *activations);

    /* Optional: host memory the device copies into directly (clipskip_host_alloc); NULL ops
     * mean ordinary aligned memory. */
    void *(*host_alloc)(cs_backend *be, size_t bytes);
    void (*host_free)(cs_backend *be, void *p);
    /* Buffer of n elements of the kind (contents undefined). NULL + error on failure. */
    void *(*alloc)(cs_backend *be, cs_buf_kind kind, size_t n);
    void (*release)(cs_backend *be, void *buf);
    /* Address of element off of buf (pointer arithmetic with elem_bytes). */

    /* Current packing: n_seq sequences of len[i] tokens, offsets are the prefix sums. */
    clipskip_status (*set_seqs)(cs_backend *be, int32_t n_seq, const int32_t *len);

    /* h(M, D) RESID = tok_emb[ids[i]] + pos_emb[pos[i]], M = n token rows (host arrays). */
    clipskip_status (*embed)(cs_backend *be, int tower, const int32_t *ids, const int32_t *pos,
                             int32_t m, void *h);
    /* out(M, D) ACT = LN(in RESID), fp32 statistics, eps 1e-5: out row i from in row i, or from
     * in row idx[i] when idx (host array of M row numbers) is given (the final LN of the pooled
     * output reads the EOS rows in place: no gather first). */
    clipskip_status (*layernorm)(cs_backend *be, int tower, int layer, cs_ln_id which,
                                 const void *in, void *out, int32_t m, const int32_t *idx);
    /* out(M, N) = epilogue(x(M, K) ACT @ W^T): see cs_epilogue for out's kind. */
    clipskip_status (*gemm)(cs_backend *be, int tower, int layer, cs_weight_id w,
                            cs_epilogue epi, const void *x, void *out, int32_t m);
    /* Optional (NULL: the encoder issues the ops): the pre-LN layers l0..l1-1 over all m rows of
     * the current packing, exactly what encoder.c issues for them (layer_full; with last_only,
     * layer_last_only for layer l1-1: its result rows, one per sequence, into h_alt, from the
     * rows idx[0..n-1] of h, a host array), on the same buffers (h, h_alt RESID; a, qkv, att
     * ACT of m rows; mlp ACT of m rows), in fewer launches. *done = 0: the backend declined
     * (the encoder then issues the ops). */
    clipskip_status (*layers)(cs_backend *be, int tower, int l0, int l1, int last_only, void *h, void *h_alt,
                              const int32_t *idx, int32_t n, void *a, void *qkv, void *att, void *mlp,
                              int32_t m, int *done);
    /* Causal multi-head attention over the current packing. qkv (M, 3D) ACT, q|k|v per row,
     * heads contiguous inside each. out ACT: (M, D) heads merged, or with last_only (n_seq, D)
     * holding only each sequence's last query row. Scale Dh^-0.5, fp32 softmax. */
    clipskip_status (*attention)(cs_backend *be, int tower, const void *qkv, void *out,
                                 int last_only);
    /* dst rows i = src rows idx[i] (width elements each, same kind), n rows; idx host array.
     * src and dst must not overlap. */
    clipskip_status (*gather_rows)(cs_backend *be, cs_buf_kind kind, const void *src, void *dst,
                                   int32_t width, const int32_t *idx, int32_t n);
    /* Copy n elements of buf (kind) starting at element off into host memory dst as dtype
     * (F32 or F16). May be asynchronous: dst is valid after finish(). */
    clipskip_status (*download)(cs_backend *be, cs_buf_kind kind, const void *buf, size_t off,
                                size_t n, void *dst, clipskip_dtype dtype);
    /* Wait for all queued work and downloads; report any deferred device error. */
    clipskip_status (*finish)(cs_backend *be);

    /* Optional (NULL: no device timer): device-measured seconds of the work the last finish()
     * waited for, from the first op issued after the finish() before it (CUDA events). */
    double (*device_seconds)(cs_backend *be);
    /* Optional: measure this device's dense matrix rate (FLOP/s in the compute dtype, a large
     * GEMM) and memory bandwidth (bytes read + written per second, a large copy). */
    clipskip_status (*measure_peak)(cs_backend *be, double *flops_per_s, double *bytes_per_s);

    /* Optional (NULL on CPU): before a run of layers with one packing. Returns 1 when the
     * backend replayed a recorded sequence for this key (the encoder then skips the ops up to
     * graph_end), 0 when the encoder must issue them (the backend may be recording), <0 on
     * error. */
    int (*graph_begin)(cs_backend *be, const cs_graph_key *key);
    clipskip_status (*graph_end)(cs_backend *be, const cs_graph_key *key);
} cs_backend_ops;

extern const cs_backend_ops cs_backend_cpu;
#ifdef CLIPSKIP_WITH_CUDA
extern const cs_backend_ops cs_backend_cuda;
/* 1 when a CUDA device is usable (driver present, device count > 0). */
int cs_cuda_available(void);
/* Tests and tools: n fp32 host values into buf (kind) from element off, converted to the
 * kind's element type (RESID fp32, ACT F16/BF16); synchronous. Not allowed inside a graph
 * region. (The CPU backend needs no such call: its buffers are host fp32 memory.) */
clipskip_status cs_cuda_upload_f32(cs_backend *be, cs_buf_kind kind, void *buf, size_t off,
                                   size_t n, const float *src);
#endif

#endif
