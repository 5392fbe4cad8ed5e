/* Every reader rule of host/safetensors.h, each on a buffer built here: the status and the
 * message (file, tensor, rule, expected vs found). */
#include "clipskip.h"
#include "safetensors.h"
#include "test_util.h"

#include <stdint.h>

#define FILE_NAME "t.safetensors"

/* 8-byte length + header + data_len bytes (data byte i = i & 0xff). Caller frees. */
static uint8_t *make_buf(const char *header, size_t data_len, size_t *size) {
    size_t n = strlen(header);
    uint8_t *b = malloc(8 + n + data_len + 1);
    REQUIRE(b);
    for (int i = 0; i < 8; i++) b[i] = (uint8_t)((uint64_t)n >> (8 * i));
    memcpy(b + 8, header, n);
    for (size_t i = 0; i < data_len; i++) b[8 + n + i] = (uint8_t)i;
    *size = 8 + n + data_len;
    return b;
}

/* Parse header + data; expect status s and every substring in subs. */
static void expect(const char *header, size_t data_len, clipskip_status s, const char *sub1,
                   const char *sub2, int line) {
    size_t size;
    uint8_t *b = make_buf(header, data_len, &size);
    cs_safetensors *st = NULL;
    clipskip_status got = cs_st_parse(b, size, FILE_NAME, 0, &st);
    const char *msg = clipskip_last_error();
    if (got != s || !strstr(msg, FILE_NAME) || (sub1 && !strstr(msg, sub1)) ||
        (sub2 && !strstr(msg, sub2))) {
        fprintf(stderr, "line %d: header %s\n  expected %s with \"%s\" and \"%s\"\n  got %s: %s\n",
                line, header, clipskip_status_str(s), sub1 ? sub1 : "", sub2 ? sub2 : "",
                clipskip_status_str(got), got ? msg : "(ok)");
        cs_test_failures++;
    }
    if ((got == CLIPSKIP_OK) != (st != NULL)) {
        fprintf(stderr, "line %d: out must be set exactly on success\n", line);
        cs_test_failures++;
    }
    cs_st_close(st);
    free(b);
}
#define EXPECT(h, n, s, a, b) expect(h, n, s, a, b, __LINE__)
#define FMT CLIPSKIP_ERR_FORMAT
#define UNS CLIPSKIP_ERR_UNSUPPORTED

static void test_file_and_header_rules(void) {
    uint8_t small[7] = {0};
    cs_safetensors *st = NULL;
    CHECK_ERR(cs_st_parse(small, sizeof small, FILE_NAME, 0, &st), FMT,
              "file size: expected at least 8 bytes");
    CHECK(st == NULL);
    uint8_t big[16] = {0};
    uint64_t n = 100u * 1024u * 1024u + 1;
    for (int i = 0; i < 8; i++) big[i] = (uint8_t)(n >> (8 * i));
    CHECK_ERR(cs_st_parse(big, sizeof big, FILE_NAME, 0, &st), FMT,
              "header length: expected at most 104857600 bytes, found 104857601");
    n = 9; /* one byte past the end of a 16-byte file */
    for (int i = 0; i < 8; i++) big[i] = (uint8_t)(n >> (8 * i));
    CHECK_ERR(cs_st_parse(big, sizeof big, FILE_NAME, 0, &st), FMT,
              "header length: expected at most 8 (file size - 8), found 9");

    EXPECT("", 0, FMT, "expected a JSON object starting with '{'", "empty header");
    EXPECT(" {}", 0, FMT, "starting with '{'", NULL);
    EXPECT("[1]", 0, FMT, "starting with '{'", NULL);
    EXPECT("{\"a\xff\": 1}", 0, FMT, "expected valid UTF-8", "file offset 11");
    EXPECT("{\"\xc0\x80\": 1}", 0, FMT, "expected valid UTF-8", NULL);     /* overlong NUL */
    EXPECT("{\"\xed\xa0\x80\": 1}", 0, FMT, "expected valid UTF-8", NULL); /* surrogate */
    EXPECT("{\"a\x01\": 1}", 0, FMT, "control characters", "0x01");
    size_t size;
    uint8_t *b = make_buf("{\"a\":{}}  ", 0, &size);
    b[8 + 8] = 0; /* a NUL inside the header (padding) */
    CHECK_ERR(cs_st_parse(b, size, FILE_NAME, 0, &st), FMT, "byte 0x00 at file offset 16");
    free(b);
    EXPECT("{\"a\": }", 0, FMT, "expected valid JSON", "syntax error near file offset");
    EXPECT("{} x", 0, FMT, "expected only whitespace after the top-level object", NULL);
    EXPECT("{}{}", 0, FMT, "expected only whitespace", NULL);
}

static void test_entry_rules(void) {
    EXPECT("{\"w\": 1}", 0, FMT, "tensor 'w': entry: expected an object, found a number", NULL);
    EXPECT("{\"w\": {\"shape\": [1], \"data_offsets\": [0, 4]}}", 4, FMT,
           "tensor 'w': dtype: expected a field, found none", NULL);
    EXPECT("{\"w\": {\"dtype\": \"F32\", \"data_offsets\": [0, 4]}}", 4, FMT,
           "tensor 'w': shape: expected a field", NULL);
    EXPECT("{\"w\": {\"dtype\": \"F32\", \"shape\": [1]}}", 4, FMT,
           "tensor 'w': data_offsets: expected a field", NULL);
    EXPECT("{\"w\": {\"dtype\": \"F32\", \"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, "
           "4]}}",
           4, FMT, "tensor 'w': dtype: expected one field, found it twice", NULL);
    EXPECT("{\"w\": {\"dtype\": 3, \"shape\": [1], \"data_offsets\": [0, 4]}}", 4, FMT,
           "tensor 'w': dtype: expected a string, found a number", NULL);
    EXPECT("{\"w\": {\"dtype\": \"F4\", \"shape\": [1], \"data_offsets\": [0, 4]}}", 4, UNS,
           "tensor 'w': dtype: expected one of F32, F16, BF16", "found 'F4'");
    EXPECT("{\"w\": {\"dtype\": \"F32\", \"shape\": 1, \"data_offsets\": [0, 4]}}", 4, FMT,
           "tensor 'w': shape: expected an array of integers, found a number", NULL);
    EXPECT("{\"w\": {\"dtype\": \"F32\", \"shape\": [-1], \"data_offsets\": [0, 4]}}", 4, FMT,
           "tensor 'w': shape: expected dimension 0 to be an integer", "another number");
    EXPECT("{\"w\": {\"dtype\": \"F32\", \"shape\": [1, 1.5], \"data_offsets\": [0, 4]}}", 4, FMT,
           "shape: expected dimension 1 to be an integer", NULL);
    EXPECT("{\"w\": {\"dtype\": \"F32\", \"shape\": [\"1\"], \"data_offsets\": [0, 4]}}", 4, FMT,
           "expected dimension 0 to be an integer in 0..2^53, found a string", NULL);
    EXPECT(
        "{\"w\": {\"dtype\": \"F32\", \"shape\": [1,1,1,1,1,1,1,1,1], \"data_offsets\": [0, 4]}}",
        4, UNS, "tensor 'w': shape: expected at most 8 dimensions, found 9", NULL);
    EXPECT("{\"w\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0]}}", 4, FMT,
           "tensor 'w': data_offsets: expected [begin, end]", NULL);
    EXPECT("{\"w\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, -4]}}", 4, FMT,
           "data_offsets: expected [begin, end]", NULL);
    EXPECT("{\"w\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": {}}}", 4, FMT,
           "data_offsets: expected [begin, end], two integers in 0..2^53, found an object", NULL);
    EXPECT("{\"w\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [4, 0]}}", 4, FMT,
           "tensor 'w': data_offsets: expected begin <= end, found [4, 0]", NULL);
}

static void test_size_rules(void) {
    /* 2^53 * 2^11 elements: the element count overflows 64 bits */
    EXPECT("{\"w\": {\"dtype\": \"U8\", \"shape\": [9007199254740992, 2048], \"data_offsets\": [0, "
           "0]}}",
           0, FMT, "tensor 'w': shape: expected an element count below 2^64", NULL);
    /* 2^62 elements of 4 bytes: the byte size overflows */
    EXPECT("{\"w\": {\"dtype\": \"F32\", \"shape\": [2147483648, 2147483648], \"data_offsets\": "
           "[0, 0]}}",
           0, FMT, "tensor 'w': shape: expected a byte size below 2^64", NULL);
    EXPECT("{\"w\": {\"dtype\": \"F32\", \"shape\": [2, 3], \"data_offsets\": [0, 20]}}", 20, FMT,
           "tensor 'w': data_offsets: expected end - begin = 24 bytes (shape [2, 3] x F32)",
           "found 20");
    EXPECT("{\"w\": {\"dtype\": \"BF16\", \"shape\": [3], \"data_offsets\": [0, 4]}}", 4, FMT,
           "expected end - begin = 6 bytes (shape [3] x BF16), found 4", NULL);
}

static void test_layout_rules(void) {
    const char *a4 = "\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]}";
    char h[512];
    /* first tensor not at 0 */
    EXPECT("{\"w\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [4, 8]}}", 8, FMT,
           "tensor 'w': data_offsets: expected begin = 0 (tensors contiguous from 0), found 4",
           "leaves a gap");
    snprintf(h, sizeof h,
             "{%s, \"b\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [8, 12]}}", a4);
    EXPECT(h, 12, FMT, "tensor 'b': data_offsets: expected begin = 4", "leaves a gap");
    snprintf(h, sizeof h,
             "{%s, \"b\": {\"dtype\": \"F16\", \"shape\": [2], \"data_offsets\": [2, 6]}}", a4);
    EXPECT(h, 6, FMT, "tensor 'b': data_offsets: expected begin = 4",
           "overlaps the previous tensor");
    snprintf(h, sizeof h,
             "{%s, \"b\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]}}", a4);
    EXPECT(h, 8, FMT, "data_offsets: expected begin = 4", "overlaps");
    EXPECT("{\"w\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]}}", 4, FMT,
           "tensor 'w': data_offsets: expected end <= 4 (the data section's size), found 8", NULL);
    snprintf(h, sizeof h, "{%s, %s}", a4, a4);
    EXPECT(h, 4, FMT, "tensor 'a': name: expected unique tensor names, found it twice", NULL);
    /* order in the header does not matter, only the offsets */
    snprintf(h, sizeof h,
             "{\"b\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [4, 8]}, %s}", a4);
    EXPECT(h, 8, CLIPSKIP_OK, NULL, NULL);
}

static void test_metadata_rules(void) {
    EXPECT("{\"__metadata__\": [1]}", 0, FMT,
           "__metadata__: expected an object of strings, found an array", NULL);
    EXPECT("{\"__metadata__\": {\"k\": 1}}", 0, FMT,
           "__metadata__: key 'k': expected a string value, found a number", NULL);
    EXPECT("{\"__metadata__\": {\"k\": \"a\", \"k\": \"b\"}}", 0, FMT,
           "__metadata__: key 'k': expected unique keys", NULL);
    EXPECT("{\"__metadata__\": {}, \"__metadata__\": {}}", 0, FMT,
           "__metadata__: expected at most one, found it twice", NULL);
    EXPECT("{\"__metadata__\": null}", 0, CLIPSKIP_OK, NULL, NULL);
}

/* A valid file: every dtype, a 0-d and an empty tensor, lookups, metadata, trailing bytes. */
static void test_valid(void) {
    static const struct {
        const char *dt;
        int size;
    } DT[] = {
        {"F32", 4},     {"F16", 2},     {"BF16", 2}, {"F64", 8}, {"I64", 8},
        {"I32", 4},     {"I16", 2},     {"I8", 1},   {"U8", 1},  {"BOOL", 1},
        {"F8_E4M3", 1}, {"F8_E5M2", 1}, {"U16", 2},  {"U32", 4}, {"U64", 8},
    };
    char h[4096];
    int n =
        snprintf(h, sizeof h, "{\"__metadata__\": {\"format\": \"pt\", \"x\": \"caf\xc3\xa9\"}");
    uint64_t off = 0;
    for (size_t i = 0; i < sizeof DT / sizeof DT[0]; i++) { /* largest first keeps alignment */
        n += snprintf(
            h + n, sizeof h - (size_t)n,
            ", \"t_%s\": {\"dtype\": \"%s\", \"shape\": [2, 4], \"data_offsets\": [%llu, %llu]}",
            DT[i].dt, DT[i].dt, (unsigned long long)off,
            (unsigned long long)(off + 8u * (unsigned)DT[i].size));
        off += 8u * (unsigned)DT[i].size;
    }
    n += snprintf(
        h + n, sizeof h - (size_t)n,
        ", \"scalar\": {\"dtype\": \"U8\", \"shape\": [], \"data_offsets\": [%llu, %llu]}"
        ", \"empty\": {\"dtype\": \"F32\", \"shape\": [0, 5], \"data_offsets\": [%llu, %llu]}}   ",
        (unsigned long long)off, (unsigned long long)off + 1, (unsigned long long)off + 1,
        (unsigned long long)off + 1);
    size_t size;
    uint8_t *b = make_buf(h, off + 1 + 4, &size); /* + 4 trailing bytes */
    cs_safetensors *st = NULL;
    CHECK_OK(cs_st_parse(b, size, FILE_NAME, 0, &st));
    REQUIRE(st);
    CHECK(st->n_tensors == (int)(sizeof DT / sizeof DT[0]) + 2);
    CHECK(st->trailing_bytes == 4);
    CHECK(st->data == b + 8 + strlen(h));
    for (size_t i = 0; i < sizeof DT / sizeof DT[0]; i++) {
        char name[32];
        snprintf(name, sizeof name, "t_%s", DT[i].dt);
        const cs_st_tensor *t = cs_st_find(st, name);
        REQUIRE(t);
        CHECK(strcmp(cs_st_dtype_name(t->dtype), DT[i].dt) == 0);
        CHECK(cs_st_dtype_size(t->dtype) == (size_t)DT[i].size);
        CHECK(t->ndim == 2 && t->shape[0] == 2 && t->shape[1] == 4);
        CHECK(t->end - t->begin == 8u * (unsigned)DT[i].size);
        CHECK((uintptr_t)t->data % (uintptr_t)DT[i].size == 0); /* in place or copied */
        CHECK(memcmp(t->data, st->data + t->begin, t->end - t->begin) == 0);
        CHECK(cs_st_to_clipskip_dtype(t->dtype) == (i == 0   ? CLIPSKIP_DTYPE_F32
                                                    : i == 1 ? CLIPSKIP_DTYPE_F16
                                                    : i == 2 ? CLIPSKIP_DTYPE_BF16
                                                             : -1));
    }
    const cs_st_tensor *s = cs_st_find(st, "scalar"), *e = cs_st_find(st, "empty");
    REQUIRE(s && e);
    CHECK(s->ndim == 0 && s->end - s->begin == 1);
    CHECK(e->ndim == 2 && e->shape[0] == 0 && e->begin == e->end);
    CHECK(cs_st_find(st, "t_F3") == NULL && cs_st_find(st, "") == NULL);
    CHECK(cs_st_meta_get(st, "format") && strcmp(cs_st_meta_get(st, "format"), "pt") == 0);
    CHECK(cs_st_meta_get(st, "x") && strcmp(cs_st_meta_get(st, "x"), "caf\xc3\xa9") == 0);
    CHECK(cs_st_meta_get(st, "missing") == NULL);
    for (int i = 1; i < st->n_tensors; i++) /* sorted by name for lookup */
        CHECK(strcmp(st->tensors[i - 1].name, st->tensors[i].name) < 0);
    cs_st_close(st);
    free(b);
}

/* A header of odd length puts the data section off 8-byte alignment: tensors are copied to
 * aligned memory with the same bytes. */
static void test_misaligned(void) {
    const char *h = "{\"w\": {\"dtype\": \"F32\", \"shape\": [3], \"data_offsets\": [0, 12]},"
                    "\"h\": {\"dtype\": \"F16\", \"shape\": [1], \"data_offsets\": [12, 14]}} ";
    size_t size, hl = strlen(h);
    uint8_t *raw = make_buf(h, 14, &size);
    uint8_t *store = malloc(size + 8), *b = store;
    while ((uintptr_t)(b + 8 + hl) % 4 != 1) b++; /* data section at an odd address */
    memcpy(b, raw, size);
    cs_safetensors *st = NULL;
    CHECK_OK(cs_st_parse(b, size, FILE_NAME, 0, &st));
    REQUIRE(st);
    const cs_st_tensor *w = cs_st_find(st, "w"), *hh = cs_st_find(st, "h");
    REQUIRE(w && hh);
    CHECK((uintptr_t)w->data % 4 == 0 && (uintptr_t)hh->data % 2 == 0);
    CHECK(memcmp(w->data, b + 8 + hl, 12) == 0 && memcmp(hh->data, b + 8 + hl + 12, 2) == 0);
    cs_st_close(st);
    free(store);
    free(raw);
}

static void test_open_errors(void) {
    cs_safetensors *st = NULL;
    CHECK_ERR(cs_st_open("/nonexistent/x.safetensors", 0, &st), CLIPSKIP_ERR_IO,
              "/nonexistent/x.safetensors: open: No such file or directory");
    CHECK_ERR(cs_st_open(CS_TEST_DATA, 0, &st), CLIPSKIP_ERR_IO, "not a regular file");
    CHECK_ERR(cs_st_open(CS_TEST_DATA "/models/bad/truncated.safetensors", 0, &st), FMT,
              "final_layer_norm.weight': data_offsets: expected end <= ");
    CHECK_OK(cs_st_open(CS_TEST_DATA "/models/bad/trailing-bytes.safetensors", 0, &st));
    CHECK(st && st->trailing_bytes == 4);
    cs_st_close(st);
    CHECK_OK(cs_st_open(CS_TEST_DATA "/models/sd1.safetensors", 0, &st));
    CHECK(st && st->trailing_bytes == 0 && (uintptr_t)st->data % 8 == 0);
    cs_st_close(st);
}

int main(void) {
    test_file_and_header_rules();
    test_entry_rules();
    test_size_rules();
    test_layout_rules();
    test_metadata_rules();
    test_valid();
    test_misaligned();
    test_open_errors();
    TEST_DONE("st_reader");
}
