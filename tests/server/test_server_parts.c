/* Parts of the HTTP service tested in-process: the JSON float formatter (every output must
 * read back as the same float), in-memory .npy/.safetensors, the LRU cache's bound and order,
 * and a two-tower (SDXL-shaped) model served in-process: concatenated hidden states and
 * per-tower padding equal the library's own TOWER_ALL encode, bitwise. */
#include "http_test.h"
#include "internal.h"
#include "lru_cache.h"
#include "model.h"
#include "server.h"
#include "st_buffer.h"
#include "test_util.h"

#include <float.h>
#include <math.h>

#define T CLIPSKIP_CONTEXT

static int roundtrips(float f, const char *want) {
    char buf[CS_FLOAT_CHARS + 1];
    int n = cs_format_float(buf, f);
    buf[n] = 0;
    float back = strtof(buf, NULL);
    int ok = n <= CS_FLOAT_CHARS && memcmp(&back, &f, 4) == 0 && (!want || !strcmp(buf, want));
    if (!ok) fprintf(stderr, "format %.9g -> '%s' -> %.9g (want '%s')\n", f, buf, back, want ? want : "round trip");
    return ok;
}

static void test_float_format(void) {
    CHECK(roundtrips(0.f, "0"));
    CHECK(roundtrips(-0.f, "-0"));
    CHECK(roundtrips(1.f, "1"));
    CHECK(roundtrips(-2.5f, "-2.5"));
    CHECK(roundtrips(0.1f, "0.100000001"));
    CHECK(roundtrips(0.125f, "0.125"));
    CHECK(roundtrips(1e-5f, "9.99999975e-6"));
    CHECK(roundtrips(1e-6f, "9.99999997e-7"));
    CHECK(roundtrips(0.0001f, "9.99999975e-5"));
    CHECK(roundtrips(0.001f, "0.00100000005"));
    CHECK(roundtrips(100.f, "100"));
    CHECK(roundtrips(123456792.f, "123456792"));
    CHECK(roundtrips(1e9f, "1e9"));
    CHECK(roundtrips(16777216.f, "16777216"));
    CHECK(roundtrips(FLT_MAX, NULL));
    CHECK(roundtrips(FLT_MIN, NULL));
    CHECK(roundtrips(1.4e-45f, NULL)); /* smallest subnormal */
    CHECK(roundtrips(-9.99999999e-1f, NULL));
    char buf[CS_FLOAT_CHARS];
    CHECK(cs_format_float(buf, NAN) == 4 && !memcmp(buf, "null", 4));
    CHECK(cs_format_float(buf, -INFINITY) == 4 && !memcmp(buf, "null", 4));
    /* every binade, random mantissas: 1M floats */
    uint64_t s = 88172645463325252ull;
    int bad = 0;
    for (int i = 0; i < 1000000; i++) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        uint32_t bits = (uint32_t)s;
        float f;
        memcpy(&f, &bits, 4);
        if (!isfinite(f)) continue;
        bad += !roundtrips(f, NULL);
        if (bad > 5) break;
    }
    CHECK(bad == 0);
}

static void test_buffers(void) {
    float data[6] = {1, -2, 0.5f, 3, 4, 5};
    int64_t shape[2] = {2, 3};
    cs_buf b = {0};
    cs_buf_json_floats(&b, data, CLIPSKIP_DTYPE_F32, 2, shape);
    cs_buf_put(&b, "", 1);
    CHECK(!b.failed && !strcmp(b.data, "[[1,-2,0.5],[3,4,5]]"));
    cs_buf_free(&b);
    cs_buf_json_string(&b, "a\"b\\c\n\x01");
    cs_buf_put(&b, "", 1);
    CHECK(!strcmp(b.data, "\"a\\\"b\\\\c\\n\\u0001\""));
    cs_buf_free(&b);
    CHECK_OK(cs_npy_buffer(&b, data, CLIPSKIP_DTYPE_F32, 2, shape));
    size_t total = 10 + ((size_t)(unsigned char)b.data[8] | (size_t)(unsigned char)b.data[9] << 8);
    CHECK(total % 64 == 0 && b.len == total + 24 && b.data[total - 1] == '\n' &&
          strstr(b.data + 10, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }"));
    CHECK(!memcmp(b.data + total, data, 24));
    cs_buf_free(&b);
    cs_st_out_tensor t[2] = {{"a", CLIPSKIP_DTYPE_F32, 2, {2, 3}, data}, {"b", CLIPSKIP_DTYPE_F32, 1, {2}, data + 4}};
    cs_st_meta meta[1] = {{"k", "v\"q"}};
    CHECK_OK(cs_st_buffer(&b, t, 2, meta, 1));
    http_resp r = {200, NULL, b.data, b.len};
    char dt[8];
    size_t n;
    const float *pa = st_tensor(&r, "a", dt, &n), *pb = st_tensor(&r, "b", dt, &n);
    CHECK(pa && pb && n == 2 && !memcmp(pa, data, 24) && !memcmp(pb, data + 4, 8));
    uint64_t hl;
    memcpy(&hl, b.data, 8);
    CHECK(hl % 8 == 0 && strstr(b.data + 8, "\"__metadata__\":{\"k\":\"v\\\"q\"}"));
    cs_buf_free(&b);
}

static void test_cache(void) {
    char v[100], out[100];
    memset(v, 7, sizeof v);
    cs_cache_part in = {v, sizeof v}, o = {out, sizeof out};
    uint64_t keys[5] = {1, 2, 3, 4, 5};
    cs_cache_stats st;
    cs_cache *one = cs_cache_new(1 << 20);
    cs_cache_put(one, &keys[0], 8, 1, &in, 1);
    cs_cache_get_stats(one, &st);
    cs_cache_free(one);
    size_t per = (size_t)st.bytes; /* one entry: header + key + value */
    CHECK(per >= 8 + sizeof v);
    cs_cache *c = cs_cache_new(3 * per);
    REQUIRE(c);
    for (int i = 0; i < 3; i++) {
        v[0] = (char)i;
        cs_cache_put(c, &keys[i], 8, cs_hash_bytes(&keys[i], 8), &in, 1);
    }
    CHECK(cs_cache_get(c, &keys[0], 8, cs_hash_bytes(&keys[0], 8), &o, 1) && out[0] == 0 && out[1] == 7);
    cs_cache_get_stats(c, &st);
    CHECK(st.entries == 3 && (size_t)st.bytes == 3 * per && st.hits == 1);
    v[0] = 9;
    cs_cache_put(c, &keys[3], 8, cs_hash_bytes(&keys[3], 8), &in, 1); /* evicts the LRU entry: key 2 */
    cs_cache_get_stats(c, &st);
    CHECK((size_t)st.bytes == 3 * per && st.evictions == 1);
    CHECK(cs_cache_get(c, &keys[0], 8, cs_hash_bytes(&keys[0], 8), &o, 1)); /* recently used: kept */
    CHECK(!cs_cache_get(c, &keys[1], 8, cs_hash_bytes(&keys[1], 8), &o, 1));
    CHECK(cs_cache_get(c, &keys[3], 8, cs_hash_bytes(&keys[3], 8), &o, 1) && out[0] == 9);
    cs_cache_part shorter = {out, 50};
    CHECK(!cs_cache_get(c, &keys[3], 8, cs_hash_bytes(&keys[3], 8), &shorter, 1));
    char big[4096];
    cs_cache_part huge = {big, sizeof big};
    cs_cache_put(c, &keys[4], 8, cs_hash_bytes(&keys[4], 8), &huge, 1); /* over the bound: not kept */
    CHECK(!cs_cache_get(c, &keys[4], 8, cs_hash_bytes(&keys[4], 8), &huge, 1));
    cs_cache_free(c);
    cs_cache *off = cs_cache_new(0);
    cs_cache_put(off, &keys[0], 8, 1, &in, 1);
    CHECK(!cs_cache_get(off, &keys[0], 8, 1, &o, 1));
    cs_cache_free(off);
}

/* ------------------------------------------------------------------ two towers in-process */

static int st_equal(const http_resp *r, const char *name, const void *want, size_t n) {
    char dt[8] = "";
    size_t count = 0;
    const void *p = st_tensor(r, name, dt, &count);
    return p && count == n && !strcmp(dt, "F32") && !memcmp(p, want, n * 4);
}

/* /tokenize pads with the tower's pad id; /info lists both towers; clip skip range is the
 * smaller tower's. */
static void check_two_tower_routes(int port) {
    http_resp r;
    REQUIRE(http_request(port, "POST", "/tokenize", NULL, "{\"inputs\":\"a dog\",\"tower\":1}", &r) == 0);
    cJSON *j = cJSON_Parse(r.body), *jid = cJSON_GetObjectItem(cJSON_GetArrayItem(j, 0), "ids");
    CHECK(r.status == 200 && cJSON_GetArraySize(jid) == T && cJSON_GetArrayItem(jid, T - 1)->valueint == 0);
    cJSON_Delete(j);
    http_resp_free(&r);
    REQUIRE(http_request(port, "GET", "/info", NULL, NULL, &r) == 0);
    j = cJSON_Parse(r.body);
    CHECK(cJSON_GetArraySize(cJSON_GetObjectItem(j, "towers")) == 2);
    cJSON_Delete(j);
    http_resp_free(&r);
    REQUIRE(http_request(port, "POST", "/encode", NULL, "{\"inputs\":\"x\",\"clip_skip\":5}", &r) == 0);
    CHECK(r.status == 422 && strstr(r.body, "valid 1..4"));
    http_resp_free(&r);

}

static void test_two_towers(void) {
    clipskip_model *m, *m2;
    REQUIRE(clipskip_model_random(CLIPSKIP_FAMILY_OTHER, 11, &m) == CLIPSKIP_OK);
    REQUIRE(clipskip_model_random(CLIPSKIP_FAMILY_OTHER, 22, &m2) == CLIPSKIP_OK);
    /* tower two borrowed from m2, SDXL-style: pad 0, penultimate, no final LN */
    m->towers[1] = m2->towers[0];
    m->towers[1].info.pad_id = 0;
    m->towers[1].info.default_clip_skip = 2;
    m->towers[1].info.default_final_ln = 0;
    m->n_towers = 2;
    cs_server_params p = cs_server_default_params();
    p.port = 0;
    p.encoder.backend = CLIPSKIP_BACKEND_CPU;
    p.encoder.n_threads = 1;
    p.http_threads = 2;
    cs_server *s;
    REQUIRE(cs_server_start(m, &p, &s) == CLIPSKIP_OK);
    int port = cs_server_port(s), d = 64, e = m->towers[1].info.proj_dim;
    clipskip_encoder_params ep = clipskip_encoder_default_params();
    ep.backend = CLIPSKIP_BACKEND_CPU;
    ep.n_threads = 1;
    clipskip_encoder *enc;
    REQUIRE(clipskip_encoder_init(m, &ep, &enc) == CLIPSKIP_OK);

    const char *texts[] = {"a cat in a hat", ""};
    float *hid = calloc(2 * T * 2 * d, 4), *pool = calloc(2 * d, 4), *emb = calloc(2 * e, 4);
    clipskip_encode_options o = clipskip_encode_default_options();
    o.tower = CLIPSKIP_TOWER_ALL;
    o.row.clip_skip = 3;
    o.outputs = CLIPSKIP_OUT_HIDDEN | CLIPSKIP_OUT_POOLED | CLIPSKIP_OUT_TEXT_EMBEDS;
    clipskip_outputs out = {hid, pool, emb};
    CHECK_OK(clipskip_encode_text(enc, texts, 2, &o, &out, NULL));
    http_resp r;
    REQUIRE(http_request(port, "POST", "/encode", NULL, "{\"inputs\":[\"a cat in a hat\",\"\"],\"clip_skip\":3,"
                         "\"outputs\":[\"hidden\",\"pooled\",\"text_embeds\"],\"format\":\"safetensors\"}", &r) == 0);
    CHECK(r.status == 200);
    CHECK(st_equal(&r, "hidden_states", hid, 2 * T * 2 * d));
    CHECK(st_equal(&r, "pooled", pool, 2 * d));
    CHECK(st_equal(&r, "text_embeds", emb, 2 * e));
    http_resp_free(&r);

    /* tower 1 alone, from ids: its own defaults (penultimate, no final LN) */
    int32_t ids[T];
    REQUIRE(clipskip_tokenize(clipskip_model_tokenizer(m), "a dog", 5, CLIPSKIP_CLEAN_HF, 0, ids, NULL) == CLIPSKIP_OK);
    CHECK(ids[T - 1] == 0);
    o.tower = 1;
    o.row.clip_skip = 0;
    o.outputs = CLIPSKIP_OUT_HIDDEN;
    out = (clipskip_outputs){hid, NULL, NULL};
    CHECK_OK(clipskip_encode_ids(enc, ids, 1, &o, &out));
    char body[2048];
    int n = snprintf(body, sizeof body, "{\"tower\":1,\"format\":\"safetensors\",\"inputs\":[[");
    for (int i = 0; i < T; i++) n += snprintf(body + n, sizeof body - n, "%s%d", i ? "," : "", ids[i]);
    snprintf(body + n, sizeof body - n, "]]}");
    REQUIRE(http_request(port, "POST", "/encode", NULL, body, &r) == 0);
    CHECK(r.status == 200 && st_equal(&r, "hidden_states", hid, T * d));
    http_resp_free(&r);

    check_two_tower_routes(port);
    CHECK(cs_server_shutdown(s) == 0);
    cs_server_free(s);
    clipskip_encoder_free(enc);
    free(hid), free(pool), free(emb);
    memset(&m->towers[1], 0, sizeof m->towers[1]); /* give tower two back to m2 */
    m->n_towers = 1;
    clipskip_model_free(m);
    clipskip_model_free(m2);
}

int main(void) {
    signal(SIGPIPE, SIG_IGN);
    test_float_format();
    test_buffers();
    test_cache();
    test_two_towers();
    TEST_DONE("test_server_parts");
}
