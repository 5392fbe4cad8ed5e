/* cs_st_write: round trip through the reader, header layout (8-byte aligned, space padded),
 * argument errors, and failures that must leave no file under the final name.
 * With an argument, also writes the round-trip sample there (read back by py_check.py). */
#include "clipskip.h"
#include "internal.h"
#include "safetensors.h"
#include "test_util.h"

#include <errno.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

static float f32v[6] = {1.5f, -2.0f, 3.25f, 0.0f, -0.0f, 1e-7f};
static uint16_t f16v[3], bf16v[5];
static float scalar = 42.0f;

static int sample(cs_st_out_tensor *t, cs_st_meta *m) {
    for (int i = 0; i < 3; i++) f16v[i] = cs_f32_to_f16(0.5f * (float)i - 0.25f);
    for (int i = 0; i < 5; i++) bf16v[i] = cs_f32_to_bf16(100.0f * (float)i + 0.5f);
    cs_st_out_tensor ts[] = {
        {"z.f16", CLIPSKIP_DTYPE_F16, 1, {3}, f16v}, /* odd byte size: 6 */
        {"a.f32", CLIPSKIP_DTYPE_F32, 2, {2, 3}, f32v},
        {"m.bf16", CLIPSKIP_DTYPE_BF16, 1, {5}, bf16v},
        {"scalar", CLIPSKIP_DTYPE_F32, 0, {0}, &scalar},
        {"empty", CLIPSKIP_DTYPE_F32, 2, {0, 4}, NULL},
    };
    memcpy(t, ts, sizeof ts);
    m[0] = (cs_st_meta){"format", "pt"};
    m[1] = (cs_st_meta){"prompts", "[\"caf\xc3\xa9\", \"a \\\"q\\\"\"]"};
    return 5;
}

static int file_exists(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0;
}

static void tmp_name(char *buf, size_t cap, const char *path) {
    snprintf(buf, cap, "%s.tmp.%ld", path, (long)getpid());
}

static void test_round_trip(const char *path) {
    cs_st_out_tensor t[5];
    cs_st_meta m[2];
    int n = sample(t, m);
    CHECK_OK(cs_st_write(path, t, n, m, 2));
    char tmp[4200];
    tmp_name(tmp, sizeof tmp, path);
    CHECK(!file_exists(tmp));
    cs_safetensors *st = NULL;
    CHECK_OK(cs_st_open(path, 0, &st));
    REQUIRE(st);
    CHECK(st->n_tensors == n && st->trailing_bytes == 0);
    for (int i = 0; i < n; i++) {
        const cs_st_tensor *r = cs_st_find(st, t[i].name);
        REQUIRE(r);
        CHECK(cs_st_to_clipskip_dtype(r->dtype) == (int)t[i].dtype && r->ndim == t[i].ndim);
        size_t bytes = cs_dtype_size(t[i].dtype);
        for (int d = 0; d < t[i].ndim; d++) {
            CHECK(r->shape[d] == t[i].shape[d]);
            bytes *= (size_t)t[i].shape[d];
        }
        CHECK(r->end - r->begin == bytes);
        CHECK(bytes == 0 || memcmp(r->data, t[i].data, bytes) == 0);
        CHECK(r->begin % cs_dtype_size(t[i].dtype) == 0); /* aligned within the data section */
    }
    CHECK(strcmp(cs_st_meta_get(st, "format"), "pt") == 0);
    CHECK(strcmp(cs_st_meta_get(st, "prompts"), m[1].value) == 0);
    /* header: length % 8 == 0, padded with spaces, data section 8-byte aligned in the file */
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--) hl = (hl << 8) | st->map[i];
    CHECK(hl % 8 == 0);
    CHECK(st->map[8 + hl - 1] == ' ' || st->map[8 + hl - 1] == '}');
    CHECK((size_t)(st->data - st->map) % 8 == 0);
    /* F32 first (larger item size), then 2-byte types by name */
    const cs_st_tensor *a = cs_st_find(st, "a.f32"), *mb = cs_st_find(st, "m.bf16"),
                       *z = cs_st_find(st, "z.f16");
    CHECK(a && mb && z && a->begin < mb->begin && mb->begin < z->begin);
    cs_st_close(st);
    /* overwriting an existing file replaces it */
    CHECK_OK(cs_st_write(path, t, 1, NULL, 0));
    CHECK_OK(cs_st_open(path, 0, &st));
    CHECK(st && st->n_tensors == 1 && st->n_meta == 0);
    cs_st_close(st);
}

static void test_arg_errors(const char *dir) {
    char path[4096];
    snprintf(path, sizeof path, "%s/args.safetensors", dir);
    cs_st_out_tensor t[2] = {{"a", CLIPSKIP_DTYPE_F32, 1, {1}, f32v},
                             {"a", CLIPSKIP_DTYPE_F16, 1, {1}, f16v}};
    CHECK_ERR(cs_st_write(path, t, 2, NULL, 0), CLIPSKIP_ERR_INVALID_ARG,
              "tensor 'a': expected unique names");
    t[1].name = "__metadata__";
    CHECK_ERR(cs_st_write(path, t, 2, NULL, 0), CLIPSKIP_ERR_INVALID_ARG, "__metadata__");
    t[1] = (cs_st_out_tensor){"b", CLIPSKIP_DTYPE_F32, 1, {-1}, f32v};
    CHECK_ERR(cs_st_write(path, t, 2, NULL, 0), CLIPSKIP_ERR_INVALID_ARG,
              "tensor 'b': shape: expected dimensions >= 0");
    t[1] = (cs_st_out_tensor){"b", CLIPSKIP_DTYPE_F32, 1, {2}, NULL};
    CHECK_ERR(cs_st_write(path, t, 2, NULL, 0), CLIPSKIP_ERR_INVALID_ARG,
              "tensor 'b': data is NULL");
    cs_st_meta m[2] = {{"k", "1"}, {"k", "2"}};
    CHECK_ERR(cs_st_write(path, t, 1, m, 2), CLIPSKIP_ERR_INVALID_ARG,
              "__metadata__: expected unique");
    CHECK_ERR(cs_st_write(NULL, t, 1, NULL, 0), CLIPSKIP_ERR_INVALID_ARG, "NULL");
    CHECK(!file_exists(path));
}

/* Failures name the path and the errno text and leave nothing under the final name. */
static void test_io_errors(const char *dir) {
    cs_st_out_tensor t[5];
    cs_st_meta m[2];
    int n = sample(t, m);
    char path[4096], tmp[4200];
    snprintf(path, sizeof path, "%s/no-such-dir/x.safetensors", dir);
    CHECK_ERR(cs_st_write(path, t, n, m, 2), CLIPSKIP_ERR_IO, "No such file or directory");
    CHECK(strstr(clipskip_last_error(), path) != NULL);
    /* the final name is a directory: rename fails, the temp file is removed */
    snprintf(path, sizeof path, "%s/is-a-dir", dir);
    REQUIRE(mkdir(path, 0755) == 0);
    tmp_name(tmp, sizeof tmp, path);
    CHECK_ERR(cs_st_write(path, t, n, m, 2), CLIPSKIP_ERR_IO, "rename");
    CHECK(strstr(clipskip_last_error(), "Is a directory") != NULL);
    CHECK(!file_exists(tmp));
    rmdir(path);
    /* the disk fills up mid-write: a file size limit (EFBIG) stands in for ENOSPC, which a
     * test cannot cause without a small file system; both take the same write-error path */
    snprintf(path, sizeof path, "%s/full.safetensors", dir);
    tmp_name(tmp, sizeof tmp, path);
    static float big[4096];
    cs_st_out_tensor bt = {"big", CLIPSKIP_DTYPE_F32, 1, {4096}, big};
    struct rlimit old, lim;
    REQUIRE(getrlimit(RLIMIT_FSIZE, &old) == 0);
    lim = old;
    lim.rlim_cur = 1000;
    signal(SIGXFSZ, SIG_IGN);
    REQUIRE(setrlimit(RLIMIT_FSIZE, &lim) == 0);
    clipskip_status s = cs_st_write(path, &bt, 1, NULL, 0);
    setrlimit(RLIMIT_FSIZE, &old);
    CHECK(s == CLIPSKIP_ERR_IO);
    CHECK(strstr(clipskip_last_error(), "File too large") != NULL);
    CHECK(strstr(clipskip_last_error(), path) != NULL);
    CHECK(!file_exists(path) && !file_exists(tmp));
}

int main(int argc, char **argv) {
    char dir[] = "/tmp/cs_st_writer_XXXXXX";
    REQUIRE(mkdtemp(dir));
    char path[4096];
    snprintf(path, sizeof path, "%s/rt.safetensors", dir);
    test_round_trip(path);
    unlink(path);
    test_arg_errors(dir);
    test_io_errors(dir);
    if (argc > 1) { /* the sample for the Python check */
        cs_st_out_tensor t[5];
        cs_st_meta m[2];
        int n = sample(t, m);
        CHECK_OK(cs_st_write(argv[1], t, n, m, 2));
    }
    rmdir(dir);
    TEST_DONE("st_writer");
}
