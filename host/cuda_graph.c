/* CUDA backend: capture the launch sequence of a run of layers into a CUDA graph on first use
 * and replay it after (graph_begin / graph_end of backend.h).
 *
 * The rules, which encoder.c and this file both rely on:
 *  1. A region (graph_begin returning 0 .. graph_end) records only device work on device
 *     buffers: layernorm, gemm, attention and gather_rows. embed, set_seqs, download, alloc
 *     and cs_cuda_upload_f32 fail inside a region with CLIPSKIP_ERR_INVALID_ARG (finish ends
 *     the region and drops it: the encoder calls finish after an op failed inside one), because
 *     their host arguments (ids, lengths, destinations) change from call to call while a replay
 *     repeats what was recorded. set_seqs therefore comes before graph_begin: the attention
 *     nodes read the offsets from one device buffer that set_seqs rewrites, stream-ordered,
 *     before each replay.
 *  2. A host array given inside a region (gather_rows' idx) is copied at capture time into an
 *     arena the graph owns (pinned host + device; a captured memcpy node refreshes the device
 *     copy on every replay). Its values must therefore be a function of the key, e.g. each
 *     sequence's last row computed from the lengths.
 *  3. Equal keys must mean the same buffers: a replay touches the device addresses recorded at
 *     capture. release() of a buffer drops every graph whose nodes touch it, and growing the
 *     offsets buffer drops every graph.
 *  4. A key is captured the second time it is seen; the first run is issued directly, so a
 *     one-off packing never pays for capture and instantiation. From the third run on it is
 *     replayed (graph_begin returns 1 and the encoder skips the ops up to graph_end).
 *  5. At most CS_CU_GRAPHS execs per encoder; the least recently used is dropped first.
 *  6. Capture mode is cudaStreamCaptureModeThreadLocal: encoders on other threads may keep
 *     allocating while this one captures. A failing op inside a region ends and drops the
 *     capture and returns its error; nothing of the region ran.
 *  7. Capturing executes nothing: graph_end instantiates the graph and then launches it, so a
 *     capturing run computes exactly what a replay computes.
 * CLIPSKIP_CUDA_GRAPHS=0 in the environment turns capture off (every run issued directly). */
#ifdef CLIPSKIP_WITH_CUDA
#include "cuda_priv.h"

#include <string.h>

static int key_eq(const cs_graph_key *a, const cs_graph_key *b) {
    return a->tower == b->tower && a->layer_begin == b->layer_begin &&
           a->layer_end == b->layer_end && a->n_seq == b->n_seq && a->n_tokens == b->n_tokens &&
           a->lens_hash == b->lens_hash && a->last_only == b->last_only &&
           a->buffers == b->buffers;
}

static void graph_drop(cs_cu_graph *g) {
    if (g->used && g->exec) cudaGraphExecDestroy(g->exec);
    g->exec = NULL;
    g->used = 0;
    g->n_bufs = 0;
}

void cs_cu_graph_abort(cs_backend *be) {
    if (!be->cap) return;
    cudaGraph_t graph = NULL;
    cudaStreamEndCapture(be->stream, &graph); /* fails when the capture was invalidated */
    if (graph) cudaGraphDestroy(graph);
    (void)cudaGetLastError();
    graph_drop(be->cap);
    be->cap = NULL;
}

void cs_cu_graph_note(cs_backend *be, const void *p) {
    cs_cu_graph *g = be->cap;
    if (!g || g->n_bufs < 0) return;
    const cs_cu_alloc *a = cs_cu_find_alloc(be, p);
    if (!a) return;
    for (int i = 0; i < g->n_bufs; i++)
        if (g->bufs[i] == a->serial) return;
    if (g->n_bufs == CS_CU_GRAPH_BUFS) {
        g->n_bufs = -1; /* too many to track: dropped on any release */
        return;
    }
    g->bufs[g->n_bufs++] = a->serial;
}

void cs_cu_graph_evict(cs_backend *be, uint64_t serial) {
    for (int i = 0; i < CS_CU_GRAPHS; i++) {
        cs_cu_graph *g = &be->graphs[i];
        if (!g->used) continue;
        int hit = serial == 0 || g->n_bufs < 0;
        for (int j = 0; j < g->n_bufs && !hit; j++) hit = g->bufs[j] == serial;
        if (hit) graph_drop(g);
    }
}

void cs_cu_graph_free_all(cs_backend *be) {
    for (int i = 0; i < CS_CU_GRAPHS; i++) {
        cs_cu_graph *g = &be->graphs[i];
        graph_drop(g);
        if (g->arena_host) cudaFreeHost(g->arena_host);
        if (g->arena_dev) cudaFree(g->arena_dev);
        g->arena_host = g->arena_dev = NULL;
        g->arena_cap = 0;
    }
}

/* 1 when the key was seen before; remembers it otherwise. */
static int seen_before(cs_backend *be, const cs_graph_key *key) {
    for (int i = 0; i < be->n_seen; i++)
        if (key_eq(&be->seen[i], key)) return 1;
    be->seen[be->seen_next] = *key;
    be->seen_next = (be->seen_next + 1) % CS_CU_SEEN;
    if (be->n_seen < CS_CU_SEEN) be->n_seen++;
    return 0;
}

/* A free slot, or the least recently used one, emptied. A launch of the graph that last had
 * the slot may still be queued (the encoder does not wait between passes) and its memcpy node
 * would read the arena the new capture is about to overwrite: wait for the stream first (not
 * capturing yet, so allowed; captures are rare: a key's second sighting). */
static clipskip_status graph_slot(cs_backend *be, cs_cu_graph **out) {
    cs_cu_graph *v = NULL;
    for (int i = 0; i < CS_CU_GRAPHS && !v; i++)
        if (!be->graphs[i].used) v = &be->graphs[i];
    if (!v) {
        v = &be->graphs[0];
        for (int i = 1; i < CS_CU_GRAPHS; i++)
            if (be->graphs[i].last_use < v->last_use) v = &be->graphs[i];
    }
    if (v->arena_host) CU_TRY(be, cudaStreamSynchronize(be->stream));
    graph_drop(v);
    *out = v;
    return CLIPSKIP_OK;
}

static clipskip_status graph_arena(cs_backend *be, cs_cu_graph *g) {
    /* the host arrays a region takes (rule 2): the last-only layer's gather indices, one int32
     * per sequence; twice that and a page of slack (cs_cu_put_ints refuses what does not fit) */
    const size_t cap = 2 * (size_t)be->max_batch * sizeof(int32_t) + 4096;
    if (g->arena_cap >= cap) return CLIPSKIP_OK;
    if (g->arena_host) cudaFreeHost(g->arena_host);
    if (g->arena_dev) cudaFree(g->arena_dev);
    g->arena_host = g->arena_dev = NULL;
    g->arena_cap = 0;
    CU_TRY(be, cudaHostAlloc(&g->arena_host, cap, cudaHostAllocDefault));
    CU_TRY(be, cudaMalloc(&g->arena_dev, cap));
    g->arena_cap = cap;
    return CLIPSKIP_OK;
}

int cs_cu_graph_begin(cs_backend *be, const cs_graph_key *key) {
    if (!be->use_graphs || !key) return 0;
    if (be->cap) {
        cs_cu_graph_abort(be);
        cs_fail(CLIPSKIP_ERR_INVALID_ARG, "cuda: graph_begin inside a graph region");
        return -1;
    }
    /* a key that does not describe the current packing is never recorded */
    if (key->n_seq != be->n_seq || key->n_tokens != be->n_tokens) return 0;
    for (int i = 0; i < CS_CU_GRAPHS; i++) {
        cs_cu_graph *g = &be->graphs[i];
        if (!g->used || !key_eq(&g->key, key)) continue;
        cudaError_t e = cudaGraphLaunch(g->exec, be->stream);
        if (e != cudaSuccess) {
            cs_cu_fail(be, e, "cudaGraphLaunch(g->exec, be->stream)", __FILE__, __LINE__);
            return -1;
        }
        g->last_use = ++be->tick;
        return 1;
    }
    if (!seen_before(be, key)) return 0;
    cs_cu_graph *g = NULL;
    if (graph_slot(be, &g) != CLIPSKIP_OK || graph_arena(be, g) != CLIPSKIP_OK) return -1;
    cudaError_t e = cudaStreamBeginCapture(be->stream, cudaStreamCaptureModeThreadLocal);
    if (e != cudaSuccess) {
        cs_cu_fail(be, e, "cudaStreamBeginCapture(be->stream, ThreadLocal)", __FILE__, __LINE__);
        return -1;
    }
    g->key = *key;
    g->n_bufs = 0;
    be->cap = g;
    be->arena_used = 0;
    return 0;
}

clipskip_status cs_cu_graph_end(cs_backend *be, const cs_graph_key *key) {
    (void)key;
    cs_cu_graph *g = be->cap;
    if (!g) return CLIPSKIP_OK; /* the run was issued directly or replayed */
    be->cap = NULL;
    cudaGraph_t graph = NULL;
    cudaError_t e = cudaStreamEndCapture(be->stream, &graph);
    if (e == cudaSuccess) e = cudaGraphInstantiate(&g->exec, graph, 0);
    if (graph) cudaGraphDestroy(graph);
    if (e != cudaSuccess) {
        g->exec = NULL;
        g->n_bufs = 0;
        return cs_cu_fail(be, e, "cudaStreamEndCapture / cudaGraphInstantiate", __FILE__, __LINE__);
    }
    g->used = 1;
    g->last_use = ++be->tick;
    CU_TRY(be, cudaGraphLaunch(g->exec, be->stream)); /* the capture itself ran nothing */
    return CLIPSKIP_OK;
}
#endif
