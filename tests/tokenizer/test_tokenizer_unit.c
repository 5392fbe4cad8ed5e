/* Tokenizer unit tests: vocabulary and special ids, the three vocabulary sources, errors,
 * sequences (padding, truncation, EOS position), decode, the two merge algorithms, the
 * cache under threads, and large inputs. */
#include "clipskip.h"
#include "test_util.h"
#include "tokenizer_internal.h"

#include <cjson/cJSON.h>
#include <pthread.h>
#include <sys/stat.h>
#include <stdint.h>
#include <unistd.h>
#include <zlib.h>

static clipskip_tokenizer *TOK;

static size_t raw(const char *s, clipskip_clean c, int32_t *ids, size_t cap) {
    size_t n = 0;
    CHECK_OK(clipskip_tokenize_raw(TOK, s, strlen(s), c, ids, cap, &n));
    return n;
}

static int same_ids(const clipskip_tokenizer *a, const clipskip_tokenizer *b, const char *s) {
    int32_t x[256], y[256];
    size_t nx = 0, ny = 0;
    if (clipskip_tokenize_raw(a, s, strlen(s), CLIPSKIP_CLEAN_HF, x, 256, &nx) ||
        clipskip_tokenize_raw(b, s, strlen(s), CLIPSKIP_CLEAN_HF, y, 256, &ny))
        return 0;
    return nx == ny && !memcmp(x, y, nx * sizeof *x);
}

static const char *SAMPLES[] = {
    "a photo of a cat", "masterpiece, best quality, 1girl, (long hair:1.2), [smile]",
    "Zdzisław Beksiński, Gustave Doré", "猫耳 少女 桜 🌸✨", "ΟΔΟΣ ΟΔΟΣ.", "don't it's we're",
    "&amp;lt; &quot;hi&quot;", "ﬁne “quote” ＦＵＬＬ", "a <|endoftext|> b", "12345 f/1.8 8k",
};

static void test_vocab(void) {
    CHECK(!strcmp(clipskip_token_str(TOK, CLIPSKIP_BOS), "<|startoftext|>"));
    CHECK(!strcmp(clipskip_token_str(TOK, CLIPSKIP_EOS), "<|endoftext|>"));
    CHECK(!strcmp(clipskip_token_str(TOK, 0), "!"));
    CHECK(!strcmp(clipskip_token_str(TOK, 256), "!</w>"));
    CHECK(!strcmp(clipskip_token_str(TOK, 255), "\xc5\x83")); /* byte 0xAD -> U+0143, last of the 68 */
    CHECK(!strcmp(clipskip_token_str(TOK, 512), "in"));      /* merge 1: "i n" */
    CHECK(clipskip_token_str(TOK, -1) == NULL && clipskip_token_str(TOK, CLIPSKIP_VOCAB) == NULL);
    CHECK(clipskip_token_id(TOK, "cat</w>") == 2368);
    CHECK(clipskip_token_id(TOK, "a</w>") == 320);
    CHECK(clipskip_token_id(TOK, "<|endoftext|>") == CLIPSKIP_EOS);
    CHECK(clipskip_token_id(TOK, "no such token") == -1);
    for (int32_t i = 0; i < CLIPSKIP_VOCAB; i += 97) CHECK(clipskip_token_id(TOK, clipskip_token_str(TOK, i)) == i);
    CHECK(TOK->n_vocab == CLIPSKIP_VOCAB);
    int32_t ids[16];
    CHECK(raw("a photo of a cat", CLIPSKIP_CLEAN_HF, ids, 16) == 5);
    CHECK(ids[0] == 320 && ids[1] == 1125 && ids[2] == 539 && ids[3] == 320 && ids[4] == 2368);
}

static char TMP[64];

static void path_in(char *out, size_t cap, const char *name) { snprintf(out, cap, "%s/%s", TMP, name); }

/* A diffusers-style tokenizer/ folder written from the built-in vocabulary, with optional damage. */
static void write_folder(const char *dir, int drop_vocab, int swap_special, int n_merges, int bad_json) {
    char p[256];
    mkdir(dir, 0700);
    snprintf(p, sizeof p, "%s/vocab.json", dir);
    FILE *f = fopen(p, "w");
    REQUIRE(f);
    if (bad_json) {
        fputs("{\"a\": 1,", f);
    } else {
        cJSON *o = cJSON_CreateObject();
        for (int32_t i = 0; i < CLIPSKIP_VOCAB - drop_vocab; i++) {
            int32_t id = swap_special && i >= CLIPSKIP_BOS ? (i == CLIPSKIP_BOS ? CLIPSKIP_EOS : CLIPSKIP_BOS) : i;
            cJSON_AddItemToObject(o, clipskip_token_str(TOK, i), cJSON_CreateNumber(id));
        }
        char *s = cJSON_PrintUnformatted(o);
        fputs(s, f);
        free(s);
        cJSON_Delete(o);
    }
    fclose(f);
    snprintf(p, sizeof p, "%s/merges.txt", dir);
    f = fopen(p, "w");
    gzFile g = gzopen(CS_WEIGHTS "/bpe_simple_vocab_16e6.txt.gz", "rb");
    REQUIRE(f && g);
    char line[1024];
    gzgets(g, line, sizeof line); /* header */
    fputs("#version: 0.2\n", f);
    for (int r = 0; r < n_merges && gzgets(g, line, sizeof line); r++) fputs(line, f);
    gzclose(g);
    fclose(f);
}

static void test_sources(void) {
    char dir[256], p[256];
    clipskip_tokenizer *t = NULL;
    /* the merges file itself, gzipped and plain */
    CHECK_OK(clipskip_tokenizer_load(CS_WEIGHTS "/bpe_simple_vocab_16e6.txt.gz", &t));
    for (size_t i = 0; t && i < sizeof SAMPLES / sizeof *SAMPLES; i++) CHECK(same_ids(TOK, t, SAMPLES[i]));
    clipskip_tokenizer_free(t);
    path_in(p, sizeof p, "vocab.txt");
    gzFile g = gzopen(CS_WEIGHTS "/bpe_simple_vocab_16e6.txt.gz", "rb");
    FILE *f = fopen(p, "wb");
    char buf[65536];
    int k;
    while ((k = gzread(g, buf, sizeof buf)) > 0) fwrite(buf, 1, (size_t)k, f);
    gzclose(g);
    fclose(f);
    CHECK_OK(clipskip_tokenizer_load(p, &t));
    for (size_t i = 0; t && i < sizeof SAMPLES / sizeof *SAMPLES; i++) CHECK(same_ids(TOK, t, SAMPLES[i]));
    clipskip_tokenizer_free(t);
    /* vocab.json + merges.txt */
    path_in(dir, sizeof dir, "tok_ok");
    write_folder(dir, 0, 0, CS_N_MERGES, 0);
    CHECK_OK(clipskip_tokenizer_load(dir, &t));
    for (size_t i = 0; t && i < sizeof SAMPLES / sizeof *SAMPLES; i++) CHECK(same_ids(TOK, t, SAMPLES[i]));
    for (int32_t i = 0; t && i < CLIPSKIP_VOCAB; i++)
        if (strcmp(clipskip_token_str(t, i), clipskip_token_str(TOK, i))) {
            CHECK(!"token strings differ");
            break;
        }
    clipskip_tokenizer_free(t);
    /* broken sources fail with a message that says what is wrong */
    t = (clipskip_tokenizer *)1;
    CHECK_ERR(clipskip_tokenizer_load("/nonexistent/vocab.txt.gz", &t), CLIPSKIP_ERR_IO, "/nonexistent/vocab.txt.gz");
    CHECK(t == NULL);
    path_in(dir, sizeof dir, "tok_short");
    write_folder(dir, 1, 0, CS_N_MERGES, 0);
    CHECK_ERR(clipskip_tokenizer_load(dir, &t), CLIPSKIP_ERR_FORMAT, "expected 49408 vocabulary entries, found 49407");
    path_in(dir, sizeof dir, "tok_swap");
    write_folder(dir, 0, 1, CS_N_MERGES, 0);
    CHECK_ERR(clipskip_tokenizer_load(dir, &t), CLIPSKIP_ERR_FORMAT, "<|startoftext|> = 49406");
    path_in(dir, sizeof dir, "tok_merges");
    write_folder(dir, 0, 0, 1000, 0);
    CHECK_ERR(clipskip_tokenizer_load(dir, &t), CLIPSKIP_ERR_FORMAT, "expected 48894 merges, found 1000");
    path_in(dir, sizeof dir, "tok_json");
    write_folder(dir, 0, 0, CS_N_MERGES, 1);
    CHECK_ERR(clipskip_tokenizer_load(dir, &t), CLIPSKIP_ERR_FORMAT, "vocab.json: not a JSON object");
    path_in(p, sizeof p, "tok_json/merges.txt");
    unlink(p);
    CHECK_ERR(clipskip_tokenizer_load(dir, &t), CLIPSKIP_ERR_IO, "merges.txt");
    path_in(p, sizeof p, "garbage.gz");
    f = fopen(p, "wb");
    fwrite("\x1f\x8b\x08\x00garbage", 1, 11, f);
    fclose(f);
    CHECK_ERR(clipskip_tokenizer_load(p, &t), CLIPSKIP_ERR_FORMAT, "gzip");
    CHECK_ERR(clipskip_tokenizer_load(NULL, NULL), CLIPSKIP_ERR_INVALID_ARG, "out is NULL");
}

static void test_errors(void) {
    int32_t ids[77];
    clipskip_token_info info;
    CHECK_ERR(clipskip_tokenize(TOK, "ab\xff" "cd", 5, CLIPSKIP_CLEAN_HF, CLIPSKIP_EOS, ids, NULL),
              CLIPSKIP_ERR_TEXT, "invalid UTF-8 at byte 2");
    CHECK_ERR(clipskip_tokenize(TOK, "abc\xe2\x82", 5, CLIPSKIP_CLEAN_HF, CLIPSKIP_EOS, ids, NULL),
              CLIPSKIP_ERR_TEXT, "at byte 3");
    CHECK_ERR(clipskip_tokenize(TOK, "x\xe2\x28\xa1", 4, CLIPSKIP_CLEAN_HF, CLIPSKIP_EOS, ids, NULL),
              CLIPSKIP_ERR_TEXT, "at byte 2"); /* bad continuation byte */
    CHECK_ERR(clipskip_tokenize(TOK, "\xc0\xaf", 2, CLIPSKIP_CLEAN_HF_FAST, CLIPSKIP_EOS, ids, NULL),
              CLIPSKIP_ERR_TEXT, "at byte 0"); /* overlong */
    CHECK_ERR(clipskip_tokenize(TOK, "ok\xed\xa0\x80", 5, CLIPSKIP_CLEAN_OPENCLIP, 0, ids, NULL),
              CLIPSKIP_ERR_TEXT, "at byte 3"); /* UTF-16 surrogate */
    CHECK_ERR(clipskip_tokenize(TOK, "\xf4\x90\x80\x80", 4, CLIPSKIP_CLEAN_HF, 0, ids, NULL),
              CLIPSKIP_ERR_TEXT, "at byte 1"); /* past U+10FFFF */
    CHECK_ERR(clipskip_tokenize(TOK, "a\0b", 3, CLIPSKIP_CLEAN_HF, CLIPSKIP_EOS, ids, NULL),
              CLIPSKIP_ERR_TEXT, "NUL byte at byte 1");
    CHECK_ERR(clipskip_tokenize(NULL, "a", 1, CLIPSKIP_CLEAN_HF, 0, ids, NULL), CLIPSKIP_ERR_INVALID_ARG, "NULL");
    CHECK_ERR(clipskip_tokenize(TOK, NULL, 3, CLIPSKIP_CLEAN_HF, 0, ids, NULL), CLIPSKIP_ERR_INVALID_ARG, "NULL");
    CHECK_ERR(clipskip_tokenize(TOK, "a", 1, (clipskip_clean)7, 0, ids, NULL), CLIPSKIP_ERR_INVALID_ARG, "mode 7");
    CHECK_ERR(clipskip_tokenize(TOK, "a", 1, CLIPSKIP_CLEAN_HF, 49408, ids, NULL), CLIPSKIP_ERR_INVALID_ARG, "pad id 49408");
    CHECK_ERR(clipskip_tokenize(TOK, "a", 1, CLIPSKIP_CLEAN_HF, 0, NULL, NULL), CLIPSKIP_ERR_INVALID_ARG, "ids");
    CHECK_ERR(clipskip_tokenize_raw(TOK, "a", 1, CLIPSKIP_CLEAN_HF, NULL, 4, NULL), CLIPSKIP_ERR_INVALID_ARG, "ids");
    size_t big = (size_t)CLIPSKIP_MAX_PROMPT_BYTES + 1;
    char *s = malloc(big);
    REQUIRE(s);
    memset(s, 'a', big);
    CHECK_ERR(clipskip_tokenize(TOK, s, big, CLIPSKIP_CLEAN_HF, 0, ids, &info), CLIPSKIP_ERR_TOO_LARGE,
              "over the limit");
    free(s);
    /* the status of a failure is kept per thread and cleared by the next success */
    CHECK(clipskip_last_status() == CLIPSKIP_ERR_TOO_LARGE);
    CHECK_OK(clipskip_tokenize(TOK, "ok", 2, CLIPSKIP_CLEAN_HF, 0, ids, &info));
    CHECK(clipskip_last_status() == CLIPSKIP_OK);
}

static void test_sequences(void) {
    int32_t ids[77];
    clipskip_token_info info;
    CHECK_OK(clipskip_tokenize(TOK, "", 0, CLIPSKIP_CLEAN_HF, CLIPSKIP_EOS, ids, &info));
    CHECK(ids[0] == CLIPSKIP_BOS && ids[1] == CLIPSKIP_EOS && ids[76] == CLIPSKIP_EOS);
    CHECK(info.n_tokens == 0 && info.truncated == 0 && info.eos_pos == 1);
    CHECK_OK(clipskip_tokenize(TOK, NULL, 0, CLIPSKIP_CLEAN_OPENCLIP, 0, ids, &info));
    CHECK(ids[0] == CLIPSKIP_BOS && ids[1] == CLIPSKIP_EOS && ids[2] == 0 && ids[76] == 0);
    CHECK_OK(clipskip_tokenize(TOK, " \t\n ", 4, CLIPSKIP_CLEAN_HF_FAST, 0, ids, &info));
    CHECK(info.n_tokens == 0 && ids[1] == CLIPSKIP_EOS);
    /* a photo of a cat: BOS 5 ids EOS, padded */
    CHECK_OK(clipskip_tokenize(TOK, "a photo of a cat", 16, CLIPSKIP_CLEAN_HF, 0, ids, &info));
    CHECK(ids[1] == 320 && ids[5] == 2368 && ids[6] == CLIPSKIP_EOS && ids[7] == 0 && ids[76] == 0);
    CHECK(info.n_tokens == 5 && info.truncated == 0 && info.eos_pos == 6);
    char s[1024] = "";
    for (int k = 0; k < 75; k++) strcat(s, "x ");
    CHECK_OK(clipskip_tokenize(TOK, s, strlen(s), CLIPSKIP_CLEAN_HF, CLIPSKIP_EOS, ids, &info));
    CHECK(info.n_tokens == 75 && info.truncated == 0 && info.eos_pos == 76 && ids[76] == CLIPSKIP_EOS);
    strcat(s, "y ");
    CHECK_OK(clipskip_tokenize(TOK, s, strlen(s), CLIPSKIP_CLEAN_HF, 0, ids, &info));
    CHECK(info.n_tokens == 76 && info.truncated == 1 && info.eos_pos == 76 && ids[76] == CLIPSKIP_EOS);
    CHECK(ids[75] == clipskip_token_id(TOK, "x</w>"));
    for (int k = 0; k < 80; k++) strcat(s, "z ");
    CHECK_OK(clipskip_tokenize(TOK, s, strlen(s), CLIPSKIP_CLEAN_HF, 0, ids, &info));
    CHECK(info.n_tokens == 156 && info.truncated == 81);
    /* the first EOS may come from the prompt: that is where the pooled row is taken */
    CHECK_OK(clipskip_tokenize(TOK, "a <|endoftext|> b", 17, CLIPSKIP_CLEAN_HF, 0, ids, &info));
    CHECK(ids[1] == 320 && ids[2] == CLIPSKIP_EOS && ids[3] == 321 && ids[4] == CLIPSKIP_EOS);
    CHECK(info.eos_pos == 2 && info.n_tokens == 3);
    /* raw: full count, at most cap ids written */
    int32_t r[8] = {-5, -5, -5, -5, -5, -5, -5, -5};
    size_t n = 0;
    CHECK_OK(clipskip_tokenize_raw(TOK, "a photo of a cat", 16, CLIPSKIP_CLEAN_HF, r, 3, &n));
    CHECK(n == 5 && r[0] == 320 && r[2] == 539 && r[3] == -5);
    CHECK_OK(clipskip_tokenize_raw(TOK, "a photo of a cat", 16, CLIPSKIP_CLEAN_HF, NULL, 0, &n));
    CHECK(n == 5);
}

static void test_decode(void) {
    int32_t ids[256];
    char buf[512];
    size_t len;
    size_t n = raw("A photo of a CAT, 8k!!", CLIPSKIP_CLEAN_HF, ids, 256);
    CHECK_OK(clipskip_decode(TOK, ids, n, buf, sizeof buf, &len));
    CHECK(!strcmp(buf, "a photo of a cat , 8 k !!") && len == strlen(buf));
    /* special tokens are dropped; a short buffer gets a NUL-terminated prefix and the full length */
    int32_t seq[77];
    CHECK_OK(clipskip_tokenize(TOK, "hello world", 11, CLIPSKIP_CLEAN_HF, CLIPSKIP_EOS, seq, NULL));
    CHECK_OK(clipskip_decode(TOK, seq, 77, buf, 6, &len));
    CHECK(!strcmp(buf, "hello") && len == 11);
    CHECK_OK(clipskip_decode(TOK, seq, 77, NULL, 0, &len));
    CHECK(len == 11);
    /* bytes that are not UTF-8 on their own: one U+FFFD per maximal invalid subpart (Python's
     * errors="replace") */
    int32_t partial[2] = {TOK->byte_id[0xE2], TOK->byte_eow_id[0x82]};
    CHECK_OK(clipskip_decode(TOK, partial, 2, buf, sizeof buf, &len));
    CHECK(!strcmp(buf, "\xef\xbf\xbd"));
    int32_t bad[3] = {320, 49408, 321};
    CHECK_ERR(clipskip_decode(TOK, bad, 3, buf, sizeof buf, &len), CLIPSKIP_ERR_INVALID_ARG, "ids[1] = 49408");
    /* round trip: decoding and tokenizing again gives the same ids */
    for (size_t i = 0; i < sizeof SAMPLES / sizeof *SAMPLES; i++) {
        if (strstr(SAMPLES[i], "<|")) continue;
        for (int m = 0; m < 3; m++) {
            size_t k = raw(SAMPLES[i], (clipskip_clean)m, ids, 256), k2;
            int32_t again[256];
            CHECK_OK(clipskip_decode(TOK, ids, k, buf, sizeof buf, &len));
            k2 = raw(buf, (clipskip_clean)m, again, 256);
            CHECK(k2 == k && !memcmp(again, ids, k * sizeof *ids));
        }
    }
}

/* The array merge and the long-word (rank bucket) merge agree on every word (random bytes and letters). */
static void test_merge_algorithms(void) {
    uint64_t x = 88172645463325252ull;
    uint8_t w[60];
    int bad = 0;
    for (int it = 0; it < 20000; it++) {
        size_t n = 1 + (x % 59);
        for (size_t i = 0; i < n; i++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            w[i] = it % 3 ? (uint8_t)("etaoinshrdlucmfwypvbgkqjxz"[x % (it % 2 ? 26 : 6)]) : (uint8_t)x;
        }
        cs_ids a, b;
        cs_ids_init(&a);
        cs_ids_init(&b);
        CHECK(cs_bpe_word_uncached(TOK, w, n, &a, 0) && cs_bpe_word_uncached(TOK, w, n, &b, 1));
        bad += a.n != b.n || memcmp(a.p, b.p, a.n * sizeof *a.p);
        cs_ids_free(&a);
        cs_ids_free(&b);
    }
    CHECK(bad == 0);
}

typedef struct {
    int32_t (*ids)[77];
    int n, mode, fail;
} thread_job;

static const char *THREAD_WORDS[] = {"masterpiece", "cat", "Beksiński", "猫", "ΟΔΟΣ", "don't", "&amp;",
                                     "ﬁne", "1girl", "long hair", "🌸", "synthwave", "zdzisław", "(x:1.2)"};

static void thread_prompt(int i, char *s) {
    s[0] = 0;
    for (int k = 0; k < 12; k++) {
        strcat(s, THREAD_WORDS[(i * 7 + k * 3 + k * k * i) % 14]);
        strcat(s, k % 3 ? " " : ", ");
    }
    sprintf(s + strlen(s), "w%dq", i % 5000); /* distinct words: the cache evicts and refills */
}

static void *thread_main(void *arg) {
    thread_job *j = arg;
    char s[512];
    for (int r = 0; r < 3; r++)
        for (int i = 0; i < j->n; i++) {
            int32_t ids[77];
            thread_prompt(i, s);
            if (clipskip_tokenize(TOK, s, strlen(s), (clipskip_clean)(i % 3), 0, ids, NULL) != CLIPSKIP_OK ||
                memcmp(ids, j->ids[i], sizeof ids))
                j->fail++;
        }
    return NULL;
}

static void test_threads(void) {
    enum { N = 6000, T = 8 };
    static int32_t want[N][77];
    char s[512];
    clipskip_tokenizer *fresh;
    REQUIRE(clipskip_tokenizer_load(NULL, &fresh) == CLIPSKIP_OK);
    for (int i = 0; i < N; i++) {
        thread_prompt(i, s);
        CHECK_OK(clipskip_tokenize(fresh, s, strlen(s), (clipskip_clean)(i % 3), 0, want[i], NULL));
    }
    clipskip_tokenizer_free(fresh);
    clipskip_tokenizer *shared;
    REQUIRE(clipskip_tokenizer_load(NULL, &shared) == CLIPSKIP_OK); /* cold cache, filled concurrently */
    clipskip_tokenizer *saved = TOK;
    TOK = shared;
    pthread_t th[T];
    thread_job jobs[T];
    for (int t = 0; t < T; t++) {
        jobs[t] = (thread_job){want, N, t, 0};
        pthread_create(&th[t], NULL, thread_main, &jobs[t]);
    }
    int fails = 0;
    for (int t = 0; t < T; t++) {
        pthread_join(th[t], NULL);
        fails += jobs[t].fail;
    }
    CHECK(fails == 0);
    TOK = saved;
    clipskip_tokenizer_free(shared);
}

/* Large inputs: one multi-megabyte word (rank-bucket merge), a 16 MiB prompt, deeply nested entities. */
static void test_large(void) {
    size_t n = 4u << 20;
    char *s = malloc(CLIPSKIP_MAX_PROMPT_BYTES);
    REQUIRE(s);
    memset(s, 'a', n);
    size_t cnt = 0;
    CHECK_OK(clipskip_tokenize_raw(TOK, s, n, CLIPSKIP_CLEAN_HF, NULL, 0, &cnt));
    CHECK(cnt > 0 && cnt < n);
    static const char pat[] = "masterpiece, best quality, (cat:1.2) Beksi\xc5\x84ski \xe7\x8c\xab ";
    const size_t pl = sizeof pat - 1;
    for (size_t i = 0; i < CLIPSKIP_MAX_PROMPT_BYTES; i++) s[i] = pat[i % pl];
    size_t full = CLIPSKIP_MAX_PROMPT_BYTES - (CLIPSKIP_MAX_PROMPT_BYTES % pl);
    int32_t ids[77];
    clipskip_token_info info;
    CHECK_OK(clipskip_tokenize(TOK, s, full, CLIPSKIP_CLEAN_HF, CLIPSKIP_EOS, ids, &info));
    CHECK(info.truncated > 1000000);
    /* nested HTML entities: 30 levels resolve (ftfy repeats until nothing changes), 40 are refused */
    strcpy(s, "&");
    for (int k = 0; k < 30; k++) strcat(s, "amp;");
    size_t a = raw(s, CLIPSKIP_CLEAN_HF, ids, 77);
    CHECK(a == 1 && ids[0] == clipskip_token_id(TOK, "&</w>"));
    for (int k = 0; k < 10; k++) strcat(s, "amp;");
    CHECK_ERR(clipskip_tokenize(TOK, s, strlen(s), CLIPSKIP_CLEAN_HF, 0, ids, &info), CLIPSKIP_ERR_TEXT,
              "still changing after 32 passes");
    free(s);
}

int main(void) {
    REQUIRE(clipskip_tokenizer_load(NULL, &TOK) == CLIPSKIP_OK);
    snprintf(TMP, sizeof TMP, "/tmp/cs_tok_XXXXXX");
    REQUIRE(mkdtemp(TMP));
    test_vocab();
    test_sources();
    test_errors();
    test_sequences();
    test_decode();
    test_merge_algorithms();
    test_threads();
    test_large();
    clipskip_tokenizer_free(TOK);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", TMP);
    if (system(cmd) != 0) fprintf(stderr, "warning: could not remove %s\n", TMP);
    TEST_DONE("tokenizer_unit");
}
