/* clipskip serve, end to end: the real program on a loopback port (CPU backend, the tiny
 * random tower of `--random tiny`, no fixture file), spoken to over HTTP. Every reply with
 * numbers is compared bitwise with direct library calls made here on the same inputs (the
 * same random model: clipskip_model_random(OTHER, 1234), the seed host/cli/common.c uses).
 * Covers every route, every error code, mixed clip skips in one batch, the cache, client
 * disconnects, 429, backend faults (424/503) and SIGTERM with requests in flight.
 * argv[1]: the clipskip program. */
#include "http_test.h"
#include "test_util.h"

#define T CLIPSKIP_CONTEXT
#define CLI_SEED 1234 /* host/cli/common.c: --random uses this seed */

typedef struct {
    clipskip_model *m;
    clipskip_encoder *enc;
    const clipskip_tokenizer *tok;
    clipskip_tower_info in;
} ref_t;

static const char *EXE;
static ref_t R;

static void ref_ids(const char *text, int32_t *ids) {
    REQUIRE(clipskip_tokenize(R.tok, text, strlen(text), R.in.default_clean, R.in.pad_id, ids, NULL) == CLIPSKIP_OK);
}

typedef struct {
    float *hidden, *pooled, *embeds;
    uint16_t *hidden16;
} ref_out;

/* Direct library encode of n id rows, one clip skip / final LN, every output, f32 + f16 hidden. */
static ref_out ref_encode(const int32_t *ids, int n, int skip, clipskip_final_ln fl) {
    int d = R.in.d_model, e = R.in.proj_dim;
    ref_out r = {calloc((size_t)n * T * d, 4), calloc((size_t)n * d, 4), calloc((size_t)n * e, 4),
                 calloc((size_t)n * T * d, 2)};
    clipskip_encode_options o = clipskip_encode_default_options();
    o.row = (clipskip_row_options){skip, fl};
    o.outputs = CLIPSKIP_OUT_HIDDEN | CLIPSKIP_OUT_POOLED | CLIPSKIP_OUT_TEXT_EMBEDS;
    clipskip_outputs out = {r.hidden, r.pooled, r.embeds};
    CHECK_OK(clipskip_encode_ids(R.enc, ids, n, &o, &out));
    o.outputs = CLIPSKIP_OUT_HIDDEN;
    o.out_dtype = CLIPSKIP_DTYPE_F16;
    clipskip_outputs out16 = {r.hidden16, NULL, NULL};
    CHECK_OK(clipskip_encode_ids(R.enc, ids, n, &o, &out16));
    return r;
}

static void ref_free(ref_out *r) { free(r->hidden), free(r->pooled), free(r->embeds), free(r->hidden16); }

static ref_out ref_texts(const char *const *texts, int n, int skip, clipskip_final_ln fl) {
    int32_t *ids = malloc((size_t)n * T * 4);
    for (int i = 0; i < n; i++) ref_ids(texts[i], ids + i * T);
    ref_out r = ref_encode(ids, n, skip, fl);
    free(ids);
    return r;
}

/* A safetensors reply holds exactly these bytes under name. */
static int st_equals(const http_resp *r, const char *name, const void *want, size_t n, const char *dt) {
    char got_dt[8] = "";
    size_t count = 0;
    const void *p = st_tensor(r, name, got_dt, &count);
    return p && count == n && !strcmp(got_dt, dt) && !memcmp(p, want, n * (strcmp(dt, "F32") ? 2 : 4));
}

static int post(int port, const char *path, const char *body, http_resp *r) {
    return http_request(port, "POST", path, NULL, body, r);
}

/* ------------------------------------------------------------------ routes */

static void test_health_info(int port) {
    http_resp r;
    REQUIRE(http_request(port, "GET", "/health", NULL, NULL, &r) == 0);
    CHECK(r.status == 200 && strstr(r.body, "\"ok\""));
    http_resp_free(&r);
    REQUIRE(http_request(port, "GET", "/info", NULL, NULL, &r) == 0);
    CHECK(r.status == 200);
    cJSON *j = cJSON_Parse(r.body), *t0 = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "towers"), 0);
    CHECK(j && t0);
    if (t0) {
        CHECK(cJSON_GetObjectItem(t0, "n_layers")->valueint == R.in.n_layers);
        CHECK(cJSON_GetObjectItem(t0, "d_model")->valueint == R.in.d_model);
    }
    CHECK(j && !strcmp(cJSON_GetObjectItem(j, "backend")->valuestring, "cpu"));
    CHECK(j && !strcmp(cJSON_GetObjectItem(j, "version")->valuestring, clipskip_version()));
    CHECK(j && cJSON_GetObjectItem(j, "max_client_batch_size")->valueint == 8);
    cJSON_Delete(j);
    http_resp_free(&r);
}

static void test_tokenize(int port) {
    char longp[2048] = "";
    for (int i = 0; i < 100; i++) strcat(longp, "word ");
    char body[4096];
    snprintf(body, sizeof body, "{\"inputs\":[\"a photo of a cat\",\"\",\"%s\"]}", longp);
    const char *texts[] = {"a photo of a cat", "", longp};
    http_resp r;
    REQUIRE(post(port, "/tokenize", body, &r) == 0);
    CHECK(r.status == 200);
    cJSON *j = cJSON_Parse(r.body);
    CHECK(cJSON_GetArraySize(j) == 3);
    for (int i = 0; i < 3 && j; i++) {
        int32_t ids[T];
        clipskip_token_info info;
        REQUIRE(clipskip_tokenize(R.tok, texts[i], strlen(texts[i]), R.in.default_clean, R.in.pad_id, ids, &info) == CLIPSKIP_OK);
        cJSON *o = cJSON_GetArrayItem(j, i), *jid = cJSON_GetObjectItem(o, "ids"), *jt = cJSON_GetObjectItem(o, "tokens");
        CHECK(cJSON_GetArraySize(jid) == T);
        int same = 1;
        for (int p = 0; p < T; p++) same &= cJSON_GetArrayItem(jid, p)->valueint == ids[p];
        CHECK(same);
        CHECK(cJSON_GetObjectItem(o, "eos_pos")->valueint == info.eos_pos);
        CHECK(cJSON_GetObjectItem(o, "truncated")->valueint == info.truncated);
        CHECK(cJSON_GetArraySize(jt) == info.eos_pos + 1);
        for (int p = 0; p <= info.eos_pos; p++)
            CHECK(!strcmp(cJSON_GetArrayItem(jt, p)->valuestring, clipskip_token_str(R.tok, ids[p])));
        if (i == 2) CHECK(info.truncated > 0);
    }
    cJSON_Delete(j);
    http_resp_free(&r);
}

/* Text in, every output, safetensors / npy / json: each equals the direct encode. */
static void test_encode_formats(int port) {
    const char *texts[] = {"a photo of a cat", "", "an astronaut riding a horse on mars"};
    int d = R.in.d_model, e = R.in.proj_dim;
    ref_out want = ref_texts(texts, 3, 2, CLIPSKIP_FINAL_LN_OFF);
    const char *in = "\"inputs\":[\"a photo of a cat\",\"\",\"an astronaut riding a horse on mars\"],\"clip_skip\":2,\"final_ln\":\"off\"";
    char body[1024];
    http_resp r;
    snprintf(body, sizeof body, "{%s,\"outputs\":[\"hidden\",\"pooled\",\"text_embeds\"],\"format\":\"safetensors\"}", in);
    REQUIRE(post(port, "/encode", body, &r) == 0);
    CHECK(r.status == 200);
    CHECK(!strcmp(http_header(&r, "content-type"), "application/x-safetensors"));
    CHECK(st_equals(&r, "hidden_states", want.hidden, (size_t)3 * T * d, "F32"));
    CHECK(st_equals(&r, "pooled", want.pooled, (size_t)3 * d, "F32"));
    CHECK(st_equals(&r, "text_embeds", want.embeds, (size_t)3 * e, "F32"));
    CHECK(http_header(&r, "x-queue-time") && http_header(&r, "x-inference-time") &&
          http_header(&r, "x-total-time") && http_header(&r, "x-tokenization-time"));
    http_resp_free(&r);

    snprintf(body, sizeof body, "{%s,\"format\":\"npy\",\"dtype\":\"f16\"}", in);
    REQUIRE(post(port, "/encode", body, &r) == 0);
    char hdr[256] = "";
    const void *data = npy_data(&r, hdr, sizeof hdr);
    CHECK(r.status == 200 && data && strstr(hdr, "'<f2'") && strstr(hdr, "(3, 77, 64)"));
    CHECK(data && r.body_len - (size_t)((const char *)data - r.body) == (size_t)3 * T * d * 2 &&
          !memcmp(data, want.hidden16, (size_t)3 * T * d * 2));
    http_resp_free(&r);

    snprintf(body, sizeof body, "{%s,\"outputs\":[\"pooled\",\"hidden\"]}", in);
    REQUIRE(post(port, "/encode", body, &r) == 0);
    CHECK(r.status == 200);
    size_t nh = (size_t)3 * T * d;
    float *got = malloc(nh * 4);
    const char *ph = json_array_of(r.body, "hidden"), *pp = json_array_of(r.body, "pooled");
    CHECK(ph && json_floats(ph, got, nh) == nh && !memcmp(got, want.hidden, nh * 4));
    CHECK(pp && json_floats(pp, got, nh) == (size_t)3 * d && !memcmp(got, want.pooled, (size_t)3 * d * 4));
    CHECK(strstr(r.body, "\"truncated\":[0,0,0]"));
    free(got);
    http_resp_free(&r);
    ref_free(&want);
}

/* syntax a1111: a long prompt (2 chunks) and a short one with emphasis; every output equals
 * clipskip_encode_prompts bitwise in f32 and f16, from the backend and again from the cache. */
static void test_encode_a1111(int port) {
    char longp[1024] = "", body[2048];
    for (int i = 0; i < 30; i++) strcat(longp, "a (red:1.3) cat, ");
    const char *texts[] = {longp, "a [dog] on a (hill)"};
    int d = R.in.d_model, e = R.in.proj_dim, nc = 0;
    clipskip_encode_options o = clipskip_encode_default_options();
    o.row = (clipskip_row_options){2, CLIPSKIP_FINAL_LN_OFF};
    o.outputs = CLIPSKIP_OUT_HIDDEN | CLIPSKIP_OUT_POOLED | CLIPSKIP_OUT_TEXT_EMBEDS;
    CHECK_OK(clipskip_prompt_chunks(R.m, longp, &o, CLIPSKIP_PROMPT_A1111, &nc));
    CHECK(nc == 2);
    float *h = calloc((size_t)2 * nc * T * d, 4), *pl = calloc((size_t)2 * d, 4), *em = calloc((size_t)2 * e, 4);
    uint16_t *h16 = calloc((size_t)2 * nc * T * d, 2);
    clipskip_outputs out = {h, pl, em}, out16 = {h16, NULL, NULL};
    CHECK_OK(clipskip_encode_prompts(R.enc, texts, 2, &o, CLIPSKIP_PROMPT_A1111, nc, &out));
    o.outputs = CLIPSKIP_OUT_HIDDEN;
    o.out_dtype = CLIPSKIP_DTYPE_F16;
    CHECK_OK(clipskip_encode_prompts(R.enc, texts, 2, &o, CLIPSKIP_PROMPT_A1111, nc, &out16));
    for (int rep = 0; rep < 2; rep++) { /* the second time from the cache */
        http_resp r;
        snprintf(body, sizeof body, "{\"inputs\":[\"%s\",\"%s\"],\"syntax\":\"a1111\",\"clip_skip\":2,"
                 "\"final_ln\":\"off\",\"outputs\":[\"hidden\",\"pooled\",\"text_embeds\"],\"format\":\"safetensors\"}",
                 texts[0], texts[1]);
        REQUIRE(post(port, "/encode", body, &r) == 0);
        CHECK(r.status == 200 && st_equals(&r, "hidden_states", h, (size_t)2 * nc * T * d, "F32"));
        CHECK(st_equals(&r, "pooled", pl, (size_t)2 * d, "F32") && st_equals(&r, "text_embeds", em, (size_t)2 * e, "F32"));
        CHECK(!rep || atoi(http_header(&r, "x-cache-hits")) == 2 * nc);
        http_resp_free(&r);
        snprintf(body, sizeof body, "{\"inputs\":[\"%s\",\"%s\"],\"syntax\":\"a1111\",\"clip_skip\":2,"
                 "\"final_ln\":\"off\",\"format\":\"npy\",\"dtype\":\"f16\"}", texts[0], texts[1]);
        REQUIRE(post(port, "/encode", body, &r) == 0);
        char hdr[256] = "";
        const void *data = npy_data(&r, hdr, sizeof hdr);
        CHECK(r.status == 200 && data && strstr(hdr, "(2, 154, 64)") && !memcmp(data, h16, (size_t)2 * nc * T * d * 2));
        http_resp_free(&r);
    }
    free(h), free(pl), free(em), free(h16);
}

/* Token ids in (the /tokenize output of a prompt), layer -3 (= clip skip 3), final LN on. */
static void test_encode_ids(int port) {
    int32_t ids[2 * T];
    ref_ids("a red bicycle", ids);
    ref_ids("", ids + T);
    ref_out want = ref_encode(ids, 2, 3, CLIPSKIP_FINAL_LN_ON);
    char body[4096];
    int n = snprintf(body, sizeof body, "{\"inputs\":[");
    for (int i = 0; i < 2; i++)
        for (int p = 0; p < T; p++)
            n += snprintf(body + n, sizeof body - n, "%s%d%s", p ? "," : (i ? ",[" : "["), ids[i * T + p], p == T - 1 ? "]" : "");
    snprintf(body + n, sizeof body - n, "],\"layer\":-3,\"final_ln\":true,\"outputs\":\"pooled\",\"format\":\"safetensors\"}");
    http_resp r;
    REQUIRE(post(port, "/encode", body, &r) == 0);
    CHECK(r.status == 200 && st_equals(&r, "pooled", want.pooled, (size_t)2 * R.in.d_model, "F32"));
    CHECK(!http_header(&r, "x-tokenization-time"));
    http_resp_free(&r);
    ref_free(&want);
}

static long metric(int port, const char *line_prefix) {
    http_resp r;
    long v = -1;
    if (http_request(port, "GET", "/metrics", NULL, NULL, &r) == 0) {
        char pat[256];
        snprintf(pat, sizeof pat, "\n%s ", line_prefix);
        const char *p = strstr(r.body, pat);
        if (p) v = strtol(p + strlen(pat), NULL, 10);
    }
    http_resp_free(&r);
    return v;
}

/* Second request: every prompt from the cache, same bytes; a mixed one: one hit, one miss. */
static void test_cache(int port) {
    const char *body = "{\"inputs\":[\"a cached prompt\",\"\"],\"clip_skip\":1,\"outputs\":[\"hidden\",\"pooled\"],\"format\":\"safetensors\"}";
    long hits0 = metric(port, "clipskip_cache_hits_total");
    http_resp a, b, c;
    REQUIRE(post(port, "/encode", body, &a) == 0 && post(port, "/encode", body, &b) == 0);
    CHECK(a.status == 200 && b.status == 200);
    CHECK(http_header_long(&b, "x-cache-hits") == 2 && !http_header(&b, "x-batch-id"));
    CHECK(a.body_len == b.body_len && !memcmp(a.body, b.body, a.body_len));
    CHECK(metric(port, "clipskip_cache_hits_total") >= hits0 + 2);
    const char *texts[] = {"a fresh prompt", "a cached prompt"};
    ref_out want = ref_texts(texts, 2, 1, CLIPSKIP_FINAL_LN_AUTO);
    REQUIRE(post(port, "/encode", "{\"inputs\":[\"a fresh prompt\",\"a cached prompt\"],\"clip_skip\":1,\"outputs\":[\"hidden\",\"pooled\"],\"format\":\"safetensors\"}", &c) == 0);
    CHECK(c.status == 200 && http_header_long(&c, "x-cache-hits") == 1);
    CHECK(st_equals(&c, "hidden_states", want.hidden, (size_t)2 * T * R.in.d_model, "F32"));
    CHECK(st_equals(&c, "pooled", want.pooled, (size_t)2 * R.in.d_model, "F32"));
    ref_free(&want);
    /* the same prompt at another clip skip, final LN or dtype is another key: never a hit */
    const char *again[] = {"a cached prompt"};
    want = ref_texts(again, 1, 3, CLIPSKIP_FINAL_LN_OFF);
    http_resp d, f;
    REQUIRE(post(port, "/encode", "{\"inputs\":[\"a cached prompt\"],\"clip_skip\":3,\"final_ln\":\"off\",\"outputs\":[\"hidden\",\"pooled\"],\"format\":\"safetensors\"}", &d) == 0);
    CHECK(d.status == 200 && http_header_long(&d, "x-cache-hits") == 0);
    CHECK(st_equals(&d, "hidden_states", want.hidden, (size_t)T * R.in.d_model, "F32"));
    REQUIRE(post(port, "/encode", "{\"inputs\":[\"a cached prompt\"],\"clip_skip\":1,\"dtype\":\"f16\",\"outputs\":[\"hidden\",\"pooled\"],\"format\":\"safetensors\"}", &f) == 0);
    CHECK(f.status == 200 && http_header_long(&f, "x-cache-hits") == 0);
    http_resp_free(&a), http_resp_free(&b), http_resp_free(&c), http_resp_free(&d), http_resp_free(&f);
    ref_free(&want);
}

typedef struct {
    unsigned status;
    const char *type, *substr, *method, *path, *body, *extra;
} err_case;

static void test_errors(int port) {
    char many[512] = "{\"inputs\":[";
    for (int i = 0; i < 9; i++) strcat(many, i ? ",\"x\"" : "\"x\"");
    strcat(many, "]}");
    const err_case cases[] = {
        {422, "validation", "body: malformed JSON", "POST", "/encode", "{\"inputs\": [", NULL},
        {422, "validation", "body: expected a JSON object", "POST", "/encode", "[1,2]", NULL},
        {422, "validation", "body: empty", "POST", "/encode", "", NULL},
        {422, "validation", "inputs: missing", "POST", "/encode", "{}", NULL},
        {422, "validation", "unknown field 'clipskip'", "POST", "/encode", "{\"inputs\":\"x\",\"clipskip\":2}", NULL},
        {422, "validation", "clip_skip: 5 out of range: valid 1..4", "POST", "/encode", "{\"inputs\":\"x\",\"clip_skip\":5}", NULL},
        {422, "validation", "clip_skip: expected an integer", "POST", "/encode", "{\"inputs\":\"x\",\"clip_skip\":\"2\"}", NULL},
        {422, "validation", "layer: clip_skip 2 and layer -3 disagree", "POST", "/encode", "{\"inputs\":\"x\",\"clip_skip\":2,\"layer\":-3}", NULL},
        {422, "validation", "final_ln:", "POST", "/encode", "{\"inputs\":\"x\",\"final_ln\":\"maybe\"}", NULL},
        {422, "validation", "outputs[1]:", "POST", "/encode", "{\"inputs\":\"x\",\"outputs\":[\"hidden\",\"pooledd\"]}", NULL},
        {422, "validation", "format: npy holds one array", "POST", "/encode", "{\"inputs\":\"x\",\"outputs\":[\"hidden\",\"pooled\"],\"format\":\"npy\"}", NULL},
        {422, "validation", "format:", "POST", "/encode", "{\"inputs\":\"x\",\"format\":\"xml\"}", NULL},
        {422, "validation", "dtype:", "POST", "/encode", "{\"inputs\":\"x\",\"dtype\":\"bf16\"}", NULL},
        {422, "validation", "tower:", "POST", "/encode", "{\"inputs\":\"x\",\"tower\":1}", NULL},
        {422, "validation", "inputs: 9 inputs, more than the 8", "POST", "/encode", many, NULL},
        {422, "validation", "inputs: empty list", "POST", "/encode", "{\"inputs\":[]}", NULL},
        {422, "validation", "inputs[1]: expected a string", "POST", "/encode", "{\"inputs\":[\"a\",[1]]}", NULL},
        {422, "validation", "inputs[0]: 3 token ids; exactly 77", "POST", "/encode", "{\"inputs\":[[49406,1,49407]]}", NULL},
        {422, "validation", "inputs[0]: expected a string or a list of 77 token ids, found a number", "POST", "/encode", "{\"inputs\":[5]}", NULL},
        {422, "validation", "NUL characters", "POST", "/encode", "{\"inputs\":\"a\\u0000b\"}", NULL},
        {422, "validation", "syntax: expected \"plain\" or \"a1111\"", "POST", "/encode", "{\"inputs\":\"x\",\"syntax\":\"comfy\"}", NULL},
        {422, "validation", "inputs[0]: prompt weight '1.2.3' at byte 3 is not a number", "POST", "/encode", "{\"inputs\":\"(x:1.2.3)\",\"syntax\":\"a1111\"}", NULL},
        {422, "validation", "unknown field 'clip_skip'", "POST", "/tokenize", "{\"inputs\":\"x\",\"clip_skip\":1}", NULL},
        {404, "not_found", "no route /nowhere", "GET", "/nowhere", NULL, NULL},
        {405, "validation", "/encode takes POST", "GET", "/encode", NULL, NULL},
        {405, "validation", "/health takes GET", "POST", "/health", "{}", NULL},
        {413, "validation", "over the payload limit", "POST", "/encode", NULL, "Content-Length: 100001\r\n"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const err_case *c = &cases[i];
        http_resp r;
        int rc;
        if (c->extra) { /* declared size over the limit: answered before the body is sent */
            int fd = http_connect(port);
            rc = fd < 0 || http_send(fd, c->method, c->path, c->extra, NULL, 0) || http_read(fd, &r, 30);
            if (fd >= 0) close(fd);
        } else {
            rc = http_request(port, c->method, c->path, NULL, c->body, &r);
        }
        REQUIRE(rc == 0);
        cJSON *j = cJSON_Parse(r.body);
        const cJSON *err = cJSON_GetObjectItem(j, "error"), *typ = cJSON_GetObjectItem(j, "error_type");
        int ok = r.status == (int)c->status && err && typ && !strcmp(typ->valuestring, c->type) &&
                 strstr(err->valuestring, c->substr);
        if (!ok) fprintf(stderr, "error case %zu (%s %s): want %u %s '%s', got %d %s\n", i, c->method, c->path, c->status, c->type, c->substr, r.status, r.body);
        CHECK(ok);
        cJSON_Delete(j);
        http_resp_free(&r);
    }
}

/* A chunked body (no Content-Length) that grows past the limit: 413 after reading it. */
static void test_chunked_413(int port) {
    int fd = http_connect(port);
    REQUIRE(fd >= 0);
    REQUIRE(http_send(fd, "POST", "/encode", "Transfer-Encoding: chunked\r\n", NULL, 0) == 0);
    char chunk[20000];
    memset(chunk, ' ', sizeof chunk);
    char head[32];
    int ok = 1;
    for (int i = 0; i < 6 && ok; i++) { /* 120 kB > 100 kB limit */
        int n = snprintf(head, sizeof head, "%zx\r\n", sizeof chunk);
        ok = !write_all(fd, head, (size_t)n) && !write_all(fd, chunk, sizeof chunk) && !write_all(fd, "\r\n", 2);
    }
    ok = ok && !write_all(fd, "0\r\n\r\n", 5);
    http_resp r;
    CHECK(ok && http_read(fd, &r, 30) == 0 && r.status == 413);
    http_resp_free(&r);
    close(fd);
}

/* Clients that vanish: some after sending a whole request (their job is queued or running),
 * some in the middle of the body; a request running alongside gets the right answer, nothing
 * stays in flight afterwards, the server serves on. Repeated: half-closed connections were
 * once left in flight by a polling mode, only now and then. */
static void test_disconnect(int port) {
    const char *body = "{\"inputs\":[\"gone before the reply\",\"x y\"],\"format\":\"npy\"}";
    const char *partial = "POST /encode HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\n\r\n{\"inputs\":\"tru";
    const char *sb = "{\"inputs\":[\"a survivor\"],\"format\":\"npy\",\"clip_skip\":4}";
    const char *texts[] = {"a survivor"};
    ref_out want = ref_texts(texts, 1, 4, CLIPSKIP_FINAL_LN_AUTO);
    for (int round = 0; round < 60; round++) {
        int gone = http_connect(port), half = http_connect(port), stay = http_connect(port);
        REQUIRE(gone >= 0 && half >= 0 && stay >= 0);
        CHECK(http_send(gone, "POST", "/encode", NULL, body, strlen(body)) == 0);
        CHECK(write_all(half, partial, strlen(partial)) == 0);
        CHECK(http_send(stay, "POST", "/encode", NULL, sb, strlen(sb)) == 0);
        close(gone);
        close(half);
        http_resp r;
        CHECK(http_read(stay, &r, 30) == 0 && r.status == 200);
        close(stay);
        char hdr[256];
        const void *data = npy_data(&r, hdr, sizeof hdr);
        CHECK(data && !memcmp(data, want.hidden, (size_t)T * R.in.d_model * 4));
        http_resp_free(&r);
    }
    ref_free(&want);
    long in_flight = -1;
    double t0 = ht_now();
    for (int i = 0; i < 800 && in_flight != 1; i++, ht_sleep_ms(25))
        in_flight = metric(port, "clipskip_requests_in_flight"); /* 1: this /metrics request */
    if (in_flight != 1 || ht_now() - t0 > 1)
        fprintf(stderr, "in flight after the disconnects: %ld (after %.1f s)\n", in_flight, ht_now() - t0);
    CHECK(in_flight == 1);
    CHECK(metric(port, "clipskip_queue_requests") == 0);
}

static void test_main_server(void) {
    const char *args[] = {"--random", "tiny", "--backend", "cpu", "--threads", "1", "--max-wait-us", "1000",
                          "--max-client-batch", "8", "--payload-limit", "100000", "--cache-mb", "8", NULL};
    server_proc sp;
    REQUIRE(server_spawn(&sp, EXE, args, NULL) == 0);
    test_health_info(sp.port);
    test_tokenize(sp.port);
    test_encode_formats(sp.port);
    test_encode_ids(sp.port);
    test_encode_a1111(sp.port);
    test_cache(sp.port);
    test_errors(sp.port);
    test_chunked_413(sp.port);
    test_disconnect(sp.port);
    CHECK(metric(sp.port, "clipskip_requests_total{route=\"encode\",outcome=\"payload_too_large\"}") >= 2);
    CHECK(metric(sp.port, "clipskip_batch_size_count") > 0);
    CHECK(server_stop(&sp, SIGTERM, 60) == 0);
}

/* ------------------------------------------------------------------ batching */

typedef struct {
    const char *body;
    const char *texts[2];
    int n, skip;
    clipskip_final_ln fl;
    int pooled_only;
} batch_req;

static void send_all(int port, const batch_req *q, int n, int *fds) {
    for (int i = 0; i < n; i++) {
        fds[i] = http_connect(port);
        REQUIRE(fds[i] >= 0 && http_send(fds[i], "POST", "/encode", NULL, q[i].body, strlen(q[i].body)) == 0);
    }
}

static int matches(const http_resp *r, const batch_req *q) {
    ref_out want = ref_texts(q->texts, q->n, q->skip, q->fl);
    int d = R.in.d_model, ok = r->status == 200 && st_equals(r, "pooled", want.pooled, (size_t)q->n * d, "F32");
    if (!q->pooled_only) ok = ok && st_equals(r, "hidden_states", want.hidden, (size_t)q->n * T * d, "F32");
    ref_free(&want);
    return ok;
}

/* Requests with different clip skips and final LN ride one batch and one encoder call; a
 * request asking other outputs rides the same batch in its own call. Each reply equals a
 * separate direct encode with that request's options. */
static void test_mixed_batch(void) {
    const char *args[] = {"--random", "tiny", "--backend", "cpu", "--threads", "1", "--max-wait-us", "700000",
                          "--cache-mb", "0", NULL};
    server_proc sp;
    REQUIRE(server_spawn(&sp, EXE, args, NULL) == 0);
    const batch_req q[] = {
        {"{\"inputs\":[\"a b\",\"c\"],\"clip_skip\":1,\"final_ln\":\"on\",\"outputs\":[\"hidden\",\"pooled\"],\"format\":\"safetensors\"}", {"a b", "c"}, 2, 1, CLIPSKIP_FINAL_LN_ON, 0},
        {"{\"inputs\":[\"d\"],\"clip_skip\":2,\"final_ln\":\"off\",\"outputs\":[\"hidden\",\"pooled\"],\"format\":\"safetensors\"}", {"d"}, 1, 2, CLIPSKIP_FINAL_LN_OFF, 0},
        {"{\"inputs\":[\"a b\"],\"clip_skip\":4,\"outputs\":[\"hidden\",\"pooled\"],\"format\":\"safetensors\"}", {"a b"}, 1, 4, CLIPSKIP_FINAL_LN_AUTO, 0},
        {"{\"inputs\":[\"e f g\"],\"layer\":-3,\"outputs\":[\"hidden\",\"pooled\"],\"format\":\"safetensors\"}", {"e f g"}, 1, 3, CLIPSKIP_FINAL_LN_AUTO, 0},
        {"{\"inputs\":[\"h\"],\"clip_skip\":2,\"outputs\":[\"pooled\"],\"format\":\"safetensors\"}", {"h"}, 1, 2, CLIPSKIP_FINAL_LN_AUTO, 1},
    };
    enum { NQ = sizeof q / sizeof q[0] };
    long calls0 = metric(sp.port, "clipskip_encode_calls_total");
    int fds[NQ];
    send_all(sp.port, q, NQ, fds);
    long batch = -1;
    for (int i = 0; i < NQ; i++) {
        http_resp r;
        REQUIRE(http_read(fds[i], &r, 60) == 0);
        close(fds[i]);
        if (i == 0) batch = http_header_long(&r, "x-batch-id");
        CHECK(http_header_long(&r, "x-batch-id") == batch);
        CHECK(http_header_long(&r, "x-batch-size") == 6);
        if (!matches(&r, &q[i])) fprintf(stderr, "mixed batch: request %d differs from its direct encode\n", i);
        CHECK(matches(&r, &q[i]));
        http_resp_free(&r);
    }
    CHECK(metric(sp.port, "clipskip_encode_calls_total") == calls0 + 2);
    CHECK(server_stop(&sp, SIGINT, 60) == 0);
}

/* --max-concurrent-requests 3: a 4th request gets 429 while three wait in the queue; then
 * SIGTERM: the three are answered at once (correctly), a request still being uploaded at the
 * signal is answered too, new connections are refused meanwhile, exit 0. */
static void test_overload_and_shutdown(void) {
    const char *args[] = {"--random", "tiny", "--backend", "cpu", "--threads", "1", "--max-wait-us", "4000000",
                          "--max-concurrent-requests", "3", "--cache-mb", "0", NULL};
    server_proc sp;
    REQUIRE(server_spawn(&sp, EXE, args, NULL) == 0);
    const batch_req q[] = {
        {"{\"inputs\":[\"in flight one\"],\"clip_skip\":2,\"outputs\":[\"hidden\",\"pooled\"],\"format\":\"safetensors\"}", {"in flight one"}, 1, 2, CLIPSKIP_FINAL_LN_AUTO, 0},
        {"{\"inputs\":[\"in flight two\",\"\"],\"outputs\":[\"hidden\",\"pooled\"],\"format\":\"safetensors\"}", {"in flight two", ""}, 2, 0, CLIPSKIP_FINAL_LN_AUTO, 0},
        {"{\"inputs\":[\"in flight three\"],\"clip_skip\":3,\"final_ln\":\"off\",\"outputs\":[\"hidden\",\"pooled\"],\"format\":\"safetensors\"}", {"in flight three"}, 1, 3, CLIPSKIP_FINAL_LN_OFF, 0},
    };
    int fds[3];
    double t0 = ht_now();
    send_all(sp.port, q, 3, fds);
    ht_sleep_ms(500); /* the three are received and admitted */
    http_resp r;
    REQUIRE(post(sp.port, "/encode", "{\"inputs\":\"one too many\"}", &r) == 0);
    CHECK(r.status == 429 && strstr(r.body, "\"overloaded\""));
    http_resp_free(&r);
    CHECK(ht_now() - t0 < 3.5); /* the three are still queued (max wait 4 s) */
    /* a fourth client is in the middle of sending its body when the signal comes */
    const char *body = "{\"inputs\":\"late but received\"}";
    char head[160];
    snprintf(head, sizeof head, "POST /tokenize HTTP/1.1\r\nHost: x\r\nContent-Length: %zu\r\n\r\n", strlen(body));
    int slow = http_connect(sp.port);
    REQUIRE(slow >= 0 && write_all(slow, head, strlen(head)) == 0 && write_all(slow, body, 10) == 0);
    ht_sleep_ms(100);
    kill(sp.pid, SIGTERM);
    for (int i = 0; i < 3; i++) {
        REQUIRE(http_read(fds[i], &r, 60) == 0);
        close(fds[i]);
        CHECK(matches(&r, &q[i]));
        http_resp_free(&r);
    }
    CHECK(ht_now() - t0 < 3.9); /* answered at the signal, not at the end of the wait */
    int fd = http_connect(sp.port); /* still shutting down (the slow client): refused */
    CHECK(fd < 0);
    if (fd >= 0) close(fd);
    CHECK(write_all(slow, body + 10, strlen(body) - 10) == 0);
    CHECK(http_read(slow, &r, 60) == 0 && r.status == 200 && strstr(r.body, "\"ids\""));
    http_resp_free(&r);
    close(slow);
    CHECK(server_stop(&sp, 0, 60) == 0);
}

static void test_auth(void) {
    const char *args[] = {"--random", "tiny", "--backend", "cpu", "--threads", "1", "--api-key", "sekrit", NULL};
    server_proc sp;
    REQUIRE(server_spawn(&sp, EXE, args, NULL) == 0);
    http_resp r;
    REQUIRE(http_request(sp.port, "GET", "/info", NULL, NULL, &r) == 0);
    CHECK(r.status == 401 && strstr(r.body, "\"unauthorized\"") && http_header(&r, "www-authenticate"));
    http_resp_free(&r);
    REQUIRE(http_request(sp.port, "POST", "/encode", "Authorization: Bearer sekrit2\r\n", "{\"inputs\":\"x\"}", &r) == 0);
    CHECK(r.status == 401);
    http_resp_free(&r);
    REQUIRE(http_request(sp.port, "POST", "/encode", "Authorization: Bearer sekrit\r\n", "{\"inputs\":\"x\"}", &r) == 0);
    CHECK(r.status == 200);
    http_resp_free(&r);
    REQUIRE(http_request(sp.port, "GET", "/health", NULL, NULL, &r) == 0);
    CHECK(r.status == 200);
    http_resp_free(&r);
    CHECK(server_stop(&sp, SIGTERM, 60) == 0);
}

/* Backend faults (test hook): 424 for the request, 503 from /health while the probe fails,
 * then the service recovers by itself. */
static void test_backend_faults(void) {
    const char *args[] = {"--random", "tiny", "--backend", "cpu", "--threads", "1", "--cache-mb", "0", NULL};
    server_proc sp;
    REQUIRE(server_spawn(&sp, EXE, args, "CLIPSKIP_SERVE_INJECT_FAILURES=2") == 0);
    http_resp r;
    REQUIRE(post(sp.port, "/encode", "{\"inputs\":\"x\"}", &r) == 0);
    CHECK(r.status == 424 && strstr(r.body, "\"backend\"") && strstr(r.body, "injected"));
    http_resp_free(&r);
    REQUIRE(http_request(sp.port, "GET", "/health", NULL, NULL, &r) == 0);
    CHECK(r.status == 503 && strstr(r.body, "\"unhealthy\""));
    http_resp_free(&r);
    REQUIRE(http_request(sp.port, "GET", "/health", NULL, NULL, &r) == 0);
    CHECK(r.status == 200);
    http_resp_free(&r);
    const batch_req q = {"{\"inputs\":[\"x\"],\"outputs\":[\"hidden\",\"pooled\"],\"format\":\"safetensors\"}", {"x"}, 1, 0, CLIPSKIP_FINAL_LN_AUTO, 0};
    REQUIRE(post(sp.port, "/encode", q.body, &r) == 0);
    CHECK(matches(&r, &q));
    http_resp_free(&r);
    CHECK(metric(sp.port, "clipskip_backend_errors_total") == 2);
    CHECK(metric(sp.port, "clipskip_health_probes_total") == 2);
    CHECK(server_stop(&sp, SIGTERM, 60) == 0);

    /* one failure in a shared call: each request is retried alone, both succeed */
    const char *args2[] = {"--random", "tiny", "--backend", "cpu", "--threads", "1", "--cache-mb", "0",
                           "--max-wait-us", "500000", NULL};
    REQUIRE(server_spawn(&sp, EXE, args2, "CLIPSKIP_SERVE_INJECT_FAILURES=1") == 0);
    const batch_req two[] = {
        {"{\"inputs\":[\"p\"],\"clip_skip\":2,\"outputs\":[\"hidden\",\"pooled\"],\"format\":\"safetensors\"}", {"p"}, 1, 2, CLIPSKIP_FINAL_LN_AUTO, 0},
        {"{\"inputs\":[\"q r\"],\"outputs\":[\"hidden\",\"pooled\"],\"format\":\"safetensors\"}", {"q r"}, 1, 0, CLIPSKIP_FINAL_LN_AUTO, 0},
    };
    int fds[2];
    send_all(sp.port, two, 2, fds);
    for (int i = 0; i < 2; i++) {
        REQUIRE(http_read(fds[i], &r, 60) == 0);
        close(fds[i]);
        CHECK(matches(&r, &two[i]));
        http_resp_free(&r);
    }
    CHECK(metric(sp.port, "clipskip_backend_errors_total") == 1);
    CHECK(metric(sp.port, "clipskip_encode_calls_total") == 3);
    CHECK(server_stop(&sp, SIGTERM, 60) == 0);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: test_server PATH_TO_CLIPSKIP\n");
        return 2;
    }
    EXE = argv[1];
    signal(SIGPIPE, SIG_IGN);
    REQUIRE(clipskip_model_random(CLIPSKIP_FAMILY_OTHER, CLI_SEED, &R.m) == CLIPSKIP_OK);
    REQUIRE(clipskip_model_tower_info(R.m, 0, &R.in) == CLIPSKIP_OK);
    R.tok = clipskip_model_tokenizer(R.m);
    clipskip_encoder_params ep = clipskip_encoder_default_params();
    ep.backend = CLIPSKIP_BACKEND_CPU;
    ep.n_threads = 1;
    REQUIRE(clipskip_encoder_init(R.m, &ep, &R.enc) == CLIPSKIP_OK);
    test_main_server();
    test_mixed_batch();
    test_overload_and_shutdown();
    test_auth();
    test_backend_faults();
    clipskip_encoder_free(R.enc);
    clipskip_model_free(R.m);
    TEST_DONE("test_server");
}
