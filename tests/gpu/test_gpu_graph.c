/* Part of test_gpu_ops: CUDA graph capture/replay and error paths of cs_backend_cuda.
 * A region run directly, captured, and replayed must give bitwise the same results; host-data
 * ops inside a region are refused; releasing a buffer a graph uses forces a new capture; an
 * impossible allocation fails with CLIPSKIP_ERR_NOMEM and leaves the backend usable. */
#include "backend.h"
#include "gpu_test_model.h"
#include "kernels.h"
#include "test_util.h"

typedef tm_pair pair;

static const cs_backend_ops *GPU = &cs_backend_cuda;

typedef struct {
    void *h, *a, *qkv, *att, *last;
    int32_t m, n_seq, d;
    int32_t idx[2];
} region_bufs;

/* One layer's attention half plus the EOS-row gather, as the encoder would record it. */
static int run_region(cs_backend *g, const cs_graph_key *key, region_bufs *b) {
    int r = GPU->graph_begin(g, key);
    if (r < 0) {
        fprintf(stderr, "graph_begin failed: %s\n", clipskip_last_error());
        return r;
    }
    if (r == 0) {
        CHECK_OK(GPU->layernorm(g, 0, 0, CS_LN_1, b->h, b->a, b->m, NULL));
        CHECK_OK(GPU->gemm(g, 0, 0, CS_W_QKV, CS_EPI_BIAS, b->a, b->qkv, b->m));
        CHECK_OK(GPU->attention(g, 0, b->qkv, b->att, 0));
        CHECK_OK(GPU->gemm(g, 0, 0, CS_W_O, CS_EPI_BIAS_RESID, b->att, b->h, b->m));
        CHECK_OK(GPU->gather_rows(g, CS_BUF_RESID, b->h, b->last, b->d, b->idx, b->n_seq));
    }
    CHECK_OK(GPU->graph_end(g, key));
    return r;
}

static float *run_and_fetch(cs_backend *g, const cs_graph_key *key, region_bufs *b, const float *h0,
                            int *r) {
    const size_t nh = (size_t)b->m * b->d, nl = (size_t)b->n_seq * b->d;
    CHECK_OK(cs_cuda_upload_f32(g, CS_BUF_RESID, b->h, 0, nh, h0));
    *r = run_region(g, key, b);
    float *out = malloc((nh + nl) * sizeof(float));
    CHECK_OK(GPU->download(g, CS_BUF_RESID, b->h, 0, nh, out, CLIPSKIP_DTYPE_F32));
    CHECK_OK(GPU->download(g, CS_BUF_RESID, b->last, 0, nl, out + nh, CLIPSKIP_DTYPE_F32));
    CHECK_OK(GPU->finish(g));
    return out;
}

static void expect_same(const char *what, const float *ref, const float *got, size_t n) {
    const int same = memcmp(ref, got, n * sizeof(float)) == 0;
    printf("  %-5s graphs: %s bitwise equal to direct issue\n", same ? "ok" : "FAIL", what);
    if (!same) cs_test_failures++;
}

/* A region's packing (two sequences of 77 and 30 rows, set on the backend), its buffers but
 * b->last, and fresh start values of h (returned); b->last and b->idx are the caller's. */
static const int32_t region_len[2] = {77, 30};

static float *region_open(cs_backend *g, int32_t d_, region_bufs *b) {
    const size_t d = (size_t)d_;
    *b = (region_bufs){0};
    b->n_seq = 2;
    b->m = 107;
    b->d = d_;
    b->h = GPU->alloc(g, CS_BUF_RESID, 107 * d);
    b->a = GPU->alloc(g, CS_BUF_ACT, 107 * d);
    b->qkv = GPU->alloc(g, CS_BUF_ACT, 107 * 3 * d);
    b->att = GPU->alloc(g, CS_BUF_ACT, 107 * d);
    REQUIRE(b->h && b->a && b->qkv && b->att);
    CHECK_OK(GPU->set_seqs(g, 2, region_len));
    float *h0 = malloc(107 * d * sizeof(float));
    REQUIRE(h0);
    tm_fill(h0, 107 * d, 1.0f, 0.0f);
    return h0;
}

static void region_close(cs_backend *g, region_bufs *b) {
    void *bufs[4] = {b->h, b->a, b->qkv, b->att};
    for (int i = 0; i < 4; i++) GPU->release(g, bufs[i]);
}

void test_graphs(pair *p);
void test_graphs(pair *p) {
    cs_backend *g = p->gpu;
    const size_t d = (size_t)p->d;
    region_bufs b;
    float *h0 = region_open(g, p->d, &b);
    b.idx[0] = 76;
    b.idx[1] = 106;
    REQUIRE((b.last = GPU->alloc(g, CS_BUF_RESID, 2 * d)));
    const cs_graph_key key = {0, 0, 1, 2, 107, 0x1234u, 0, 0};
    const size_t n = 109 * d;
    int r1, r2, r3, r4;
    float *ref = run_and_fetch(g, &key, &b, h0, &r1);
    float *cap = run_and_fetch(g, &key, &b, h0, &r2);
    float *rep = run_and_fetch(g, &key, &b, h0, &r3);
    printf("  %-5s graphs: graph_begin returned %d, %d, %d (direct, capture, replay: 0, 0, 1)\n",
           r1 == 0 && r2 == 0 && r3 == 1 ? "ok" : "FAIL", r1, r2, r3);
    if (!(r1 == 0 && r2 == 0 && r3 == 1)) cs_test_failures++;
    expect_same("captured run", ref, cap, n);
    expect_same("replay", ref, rep, n);

    /* release a buffer the graph uses: the next run must capture again, not replay */
    GPU->release(g, b.att);
    b.att = GPU->alloc(g, CS_BUF_ACT, 107 * d);
    REQUIRE(b.att);
    float *again = run_and_fetch(g, &key, &b, h0, &r4);
    printf("  %-5s graphs: after release graph_begin returned %d (expected 0)\n", r4 == 0 ? "ok" : "FAIL", r4);
    if (r4 != 0) cs_test_failures++;
    expect_same("re-captured run", ref, again, n);

    /* host-data ops are refused inside a region */
    const cs_graph_key key2 = {0, 5, 6, 2, 107, 0x99u, 0, 0};
    CHECK(GPU->graph_begin(g, &key2) == 0); /* first sight: direct */
    CHECK_OK(GPU->graph_end(g, &key2));
    CHECK(GPU->graph_begin(g, &key2) == 0); /* second: capturing */
    int32_t ids[1] = {1}, pos[1] = {0};
    CHECK_ERR(GPU->embed(g, 0, ids, pos, 1, b.h), CLIPSKIP_ERR_INVALID_ARG, "graph region");
    CHECK_ERR(GPU->set_seqs(g, 2, region_len), CLIPSKIP_ERR_INVALID_ARG, "graph region");
    float tmp[4];
    CHECK_ERR(GPU->download(g, CS_BUF_RESID, b.h, 0, 4, tmp, CLIPSKIP_DTYPE_F32), CLIPSKIP_ERR_INVALID_ARG,
              "graph region");
    CHECK_OK(GPU->graph_end(g, &key2));
    CHECK_OK(GPU->finish(g));

    free(h0);
    free(ref);
    free(cap);
    free(rep);
    free(again);
    GPU->release(g, b.last);
    region_close(g, &b);
}

/* More keys than graph slots (CS_CU_GRAPHS, 32), with no wait inside a round: the second round
 * captures every key, so its last captures evict slots whose launches may still be queued
 * (the encoder does not wait between passes either); a slot's arena must not be rewritten
 * under such a launch. Three rounds from the same start (direct, capturing and evicting,
 * replaying and re-capturing), each bitwise equal to the first. */
#define EVICT_KEYS 40

static void evict_round(cs_backend *g, region_bufs *b, void **last, const float *h0, float *out) {
    const size_t d = (size_t)b->d, nh = (size_t)b->m * d;
    CHECK_OK(cs_cuda_upload_f32(g, CS_BUF_RESID, b->h, 0, nh, h0));
    for (int i = 0; i < EVICT_KEYS; i++) {
        /* each key its own gather rows (its arena's contents) and output buffer */
        const cs_graph_key key = {0, 0, 1, 2, 107, 0x5000u + (uint64_t)i, 0, (uint64_t)i};
        b->last = last[i];
        b->idx[0] = 76 - i;
        b->idx[1] = 106 - i % 30;
        run_region(g, &key, b);
    }
    for (int i = 0; i < EVICT_KEYS; i++)
        CHECK_OK(GPU->download(g, CS_BUF_RESID, last[i], 0, 2 * d, out + (size_t)i * 2 * d,
                               CLIPSKIP_DTYPE_F32));
    CHECK_OK(GPU->download(g, CS_BUF_RESID, b->h, 0, nh, out + (size_t)EVICT_KEYS * 2 * d,
                           CLIPSKIP_DTYPE_F32));
    CHECK_OK(GPU->finish(g));
}

void test_graph_eviction(pair *p);
void test_graph_eviction(pair *p) {
    cs_backend *g = p->gpu;
    const size_t d = (size_t)p->d;
    region_bufs b;
    float *h0 = region_open(g, p->d, &b);
    void *last[EVICT_KEYS];
    for (int i = 0; i < EVICT_KEYS; i++) REQUIRE((last[i] = GPU->alloc(g, CS_BUF_RESID, 2 * d)));
    const size_t n = ((size_t)EVICT_KEYS * 2 + 107) * d;
    float *ref = malloc(n * sizeof(float)), *got = malloc(n * sizeof(float));
    REQUIRE(ref && got);
    evict_round(g, &b, last, h0, ref);
    for (int round = 1; round < 3; round++) {
        evict_round(g, &b, last, h0, got);
        char what[96];
        snprintf(what, sizeof what, "%d keys over %d slots, round %d (%s)", EVICT_KEYS, 32, round,
                 round == 1 ? "capture, evict" : "replay, re-capture");
        expect_same(what, ref, got, n);
    }
    free(h0);
    free(ref);
    free(got);
    for (int i = 0; i < EVICT_KEYS; i++) GPU->release(g, last[i]);
    region_close(g, &b);
}

void test_errors(pair *p);
void test_errors(pair *p) {
    cs_backend *g = p->gpu;
    /* 2^42 fp32 elements = 16 TiB: must fail cleanly with the bytes asked */
    void *huge = GPU->alloc(g, CS_BUF_RESID, (size_t)1 << 42);
    CHECK(huge == NULL);
    CHECK(clipskip_last_status() == CLIPSKIP_ERR_NOMEM);
    CHECK(strstr(clipskip_last_error(), "17592186044416 bytes") != NULL);
    printf("  %-5s errors: huge alloc -> %s: %s\n", huge == NULL ? "ok" : "FAIL",
           clipskip_status_str(clipskip_last_status()), clipskip_last_error());
    if (huge) GPU->release(g, huge);

    /* still usable afterwards, and bad arguments are refused with the index named */
    void *h = GPU->alloc(g, CS_BUF_RESID, 2 * (size_t)p->d);
    REQUIRE(h);
    int32_t ids[2] = {3, p->vocab}, pos[2] = {0, 1};
    CHECK_ERR(GPU->embed(g, 0, ids, pos, 2, h), CLIPSKIP_ERR_INVALID_ARG, "ids[1]");
    ids[1] = 4;
    CHECK_OK(GPU->embed(g, 0, ids, pos, 2, h));
    const int32_t bad_len[2] = {77, CS_K_ATTN_MAX_T + 1};
    CHECK_ERR(GPU->set_seqs(g, 2, bad_len), CLIPSKIP_ERR_INVALID_ARG, "len[1]");
    int32_t idx[1] = {2};
    void *dst = GPU->alloc(g, CS_BUF_RESID, (size_t)p->d);
    REQUIRE(dst);
    CHECK_ERR(GPU->gather_rows(g, CS_BUF_RESID, h, dst, p->d, idx, 1), CLIPSKIP_ERR_INVALID_ARG, "idx[0]");
    float out[4];
    CHECK_OK(GPU->download(g, CS_BUF_RESID, h, 0, 4, out, CLIPSKIP_DTYPE_F32));
    CHECK_OK(GPU->finish(g));
    CHECK(isfinite(out[0]) && isfinite(out[3]));
    printf("  %-5s errors: backend usable after failures\n", cs_test_failures ? "?" : "ok");
    GPU->release(g, h);
    GPU->release(g, dst);
}
