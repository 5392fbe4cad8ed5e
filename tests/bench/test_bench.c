/* clipskip bench: the pieces that decide its numbers (FLOPs, bytes, token ids, percentiles)
 * and the program end to end on the tiny tower. argv[1]: the clipskip program. */
#include "bench.h"
#include "test_util.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define NEAR(a, b) (fabs((double)(a) - (double)(b)) <= 1e-9 * fabs((double)(b)) + 1e-12)

/* Values printed by bench/baseline_hf.py's ids_for_rows(42, 64, pad): the two generators
 * must agree or the side-by-side table compares different inputs. */
static void test_ids(void) {
    int32_t ids[64 * CLIPSKIP_CONTEXT], eos[64];
    static const int32_t want_eos[8] = {42, 45, 31, 74, 42, 61, 22, 34};
    static const int32_t want_row0[6] = {49406, 47255, 32900, 40994, 18178, 43754};
    cs_bench_make_ids(42, 64, 49407, ids, eos);
    for (int i = 0; i < 8; i++) CHECK(eos[i] == want_eos[i]);
    for (int i = 0; i < 6; i++) CHECK(ids[i] == want_row0[i]);
    int64_t sum = 0;
    for (int i = 0; i < 64 * CLIPSKIP_CONTEXT; i++) sum += ids[i];
    CHECK(sum == 179975017);
    for (int r = 0; r < 64; r++) {
        CHECK(ids[r * CLIPSKIP_CONTEXT + eos[r]] == CLIPSKIP_EOS);
        CHECK(eos[r] >= 11 && eos[r] <= 76);
    }
    cs_bench_make_ids(42, 64, 0, ids, NULL);
    sum = 0;
    for (int i = 0; i < 64 * CLIPSKIP_CONTEXT; i++) sum += ids[i];
    CHECK(sum == 69303337);
    int32_t one[CLIPSKIP_CONTEXT]; /* row 0 does not depend on how many rows are made */
    cs_bench_make_ids(42, 1, 0, one, NULL);
    CHECK(memcmp(one, ids, sizeof one) == 0);
}

static void test_stats(void) {
    double x[5] = {5, 1, 4, 2, 3};
    cs_bench_stats s = cs_bench_stats_of(x, 5);
    CHECK(s.n == 5 && s.min == 1 && s.max == 5 && NEAR(s.mean, 3));
    CHECK(NEAR(s.p50, 3) && NEAR(s.p90, 4.6) && NEAR(s.p99, 4.96)); /* numpy "linear" */
    double one = 7;
    s = cs_bench_stats_of(&one, 1);
    CHECK(s.p50 == 7 && s.p99 == 7);
}

/* ViT-L at batch 1: the figures bench/README.md derives by hand. */
static void test_cost(void) {
    cs_bench_shape l = {12, 768, 12, 3072};
    const double mm = 4.0 * 768 * 768 + 2.0 * 768 * 3072; /* 7,077,888 matmul weights a layer */
    int32_t eos[3] = {76, 20, 40};
    cs_bench_cost c = cs_bench_cost_of(&l, eos, 1, 1, 0, 4.0, 4.0);
    double layer = 2.0 * 77 * mm + 2.0 * 2.0 * 768 * (77.0 * 78 / 2);
    CHECK(c.depth == 12 && NEAR(c.flops, 12 * layer) && NEAR(c.flops_nominal, c.flops));
    CHECK(c.flops > 13.1e9 && c.flops < 13.2e9);
    double bytes = 12 * (mm + 9 * 768 + 3072) * 4.0 + 77 * 2 * 768 * 4.0 + 77 * 4 + 77 * 768 * 4.0;
    CHECK(NEAR(c.bytes, bytes));
    c = cs_bench_cost_of(&l, eos, 1, 2, 0, 4.0, 4.0); /* skip 2: 11 layers */
    CHECK(c.depth == 11 && NEAR(c.flops, 11 * layer));
    /* hidden at skip 2 + pooled: 11 full layers, then layer 12 for the EOS row only */
    cs_bench_cost p = cs_bench_cost_of(&l, eos + 1, 1, 2, 1, 4.0, 4.0);
    double last = 2.0 * 21 * 3 * 768 * 768 + 4.0 * 768 * 21 + 2.0 * (768.0 * 768 + 2.0 * 768 * 3072);
    CHECK(p.depth == 12 && NEAR(p.flops, 11 * layer + last));
    CHECK(NEAR(p.flops_nominal, 12 * layer));
    /* skip 12 + pooled: layers 2..11 over rows 0..eos */
    p = cs_bench_cost_of(&l, eos + 1, 1, 12, 1, 2.0, 2.0);
    double short_layer = 2.0 * 21 * mm + 4.0 * 768 * (21.0 * 22 / 2);
    CHECK(NEAR(p.flops, layer + 10 * short_layer + last));
    /* batch scales the work (rows independent) */
    cs_bench_cost b = cs_bench_cost_of(&l, eos, 3, 1, 0, 4.0, 4.0);
    CHECK(NEAR(b.flops, 3 * 12 * layer));
}

/* ------------------------------------------------------------------ the program */

/* Run a shell command; its stdout+stderr into out (cap bytes). Returns the exit code. */
static int run(const char *cmd, char *out, size_t cap) {
    char full[4096];
    snprintf(full, sizeof full, "%s 2>&1", cmd);
    FILE *p = popen(full, "r");
    REQUIRE(p != NULL);
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = 0;
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static char *slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    if (s && fread(s, 1, (size_t)n, f) != (size_t)n) n = 0;
    if (s) s[n] = 0;
    fclose(f);
    return s;
}

/* Well-formed XML for what the SVG writer emits: balanced elements with one root <svg>,
 * quoted attributes, entities only among &amp; &lt; &gt; &quot; &apos; &#...; */
static int xml_well_formed(const char *s) {
    char stack[64][32];
    int depth = 0, roots = 0;
    for (const char *p = s; *p;) {
        if (*p == '&') {
            static const char *const ents[] = {"&amp;", "&lt;", "&gt;", "&quot;", "&apos;", "&#"};
            int ok = 0;
            for (int i = 0; i < 6; i++) ok |= !strncmp(p, ents[i], strlen(ents[i]));
            if (!ok) return 0;
            p++;
            continue;
        }
        if (*p != '<') {
            p++;
            continue;
        }
        if (!strncmp(p, "<?", 2) || !strncmp(p, "<!--", 4)) {
            const char *e = strstr(p, p[1] == '?' ? "?>" : "-->");
            if (!e) return 0;
            p = e + 2;
            continue;
        }
        int closing = p[1] == '/';
        const char *name = p + 1 + closing;
        size_t len = strcspn(name, " \t\n/>");
        if (len == 0 || len >= 32) return 0;
        const char *q = name + len;
        char quote = 0;
        for (; *q && (quote || *q != '>'); q++) {
            if (quote && *q == quote) quote = 0;
            else if (!quote && (*q == '\'' || *q == '"')) quote = *q;
            else if (!quote && *q == '<') return 0;
        }
        if (!*q) return 0;
        int self = q[-1] == '/';
        if (closing) {
            if (depth == 0 || strncmp(stack[depth - 1], name, len) || stack[depth - 1][len]) return 0;
            depth--;
        } else if (!self) {
            if (depth == 64) return 0;
            if (depth == 0) roots++;
            memcpy(stack[depth], name, len);
            stack[depth++][len] = 0;
        } else if (depth == 0) {
            roots++;
        }
        p = q + 1;
    }
    return depth == 0 && roots == 1;
}

static void check_point(const cJSON *pt) {
    const cJSON *lat = cJSON_GetObjectItem(pt, "latency_s");
    CHECK(cJSON_IsObject(lat));
    CHECK(cJSON_GetObjectItem(lat, "n") && cJSON_GetObjectItem(lat, "n")->valuedouble == 1);
    double p50 = cJSON_GetNumberValue(cJSON_GetObjectItem(lat, "p50"));
    CHECK(p50 > 0 && p50 == cJSON_GetNumberValue(cJSON_GetObjectItem(lat, "p99")));
    CHECK(cJSON_GetNumberValue(cJSON_GetObjectItem(pt, "flops")) > 0);
    CHECK(cJSON_GetNumberValue(cJSON_GetObjectItem(pt, "flops_nominal")) >=
          cJSON_GetNumberValue(cJSON_GetObjectItem(pt, "flops")));
    CHECK(cJSON_GetNumberValue(cJSON_GetObjectItem(pt, "prompts_per_s")) > 0);
    CHECK(cJSON_IsNumber(cJSON_GetObjectItem(pt, "floor_fraction")));
    CHECK(cJSON_IsNull(cJSON_GetObjectItem(pt, "device_s"))); /* CPU: no device timer */
}

static double p50_of(const cJSON *pt) {
    return cJSON_GetNumberValue(cJSON_GetObjectItem(cJSON_GetObjectItem(pt, "latency_s"), "p50"));
}

/* vs_full_depth: null for clip skip 1 and pooled points; else the depth ratio and the p50 over
 * the same batch's clip-skip-1 hidden point. */
static void check_scaling(const cJSON *pts) {
    const cJSON *pt, *q;
    int n = 0;
    cJSON_ArrayForEach(pt, pts) {
        const cJSON *v = cJSON_GetObjectItem(pt, "vs_full_depth");
        const int skip = (int)cJSON_GetNumberValue(cJSON_GetObjectItem(pt, "clip_skip"));
        const int pooled = !strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(pt, "outputs")), "hidden+pooled");
        if (skip == 1 || pooled) {
            CHECK(cJSON_IsNull(v));
            continue;
        }
        const cJSON *full = NULL;
        cJSON_ArrayForEach(q, pts) {
            if (cJSON_GetNumberValue(cJSON_GetObjectItem(q, "batch")) == cJSON_GetNumberValue(cJSON_GetObjectItem(pt, "batch")) &&
                cJSON_GetNumberValue(cJSON_GetObjectItem(q, "clip_skip")) == 1 &&
                !strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(q, "outputs")), "hidden"))
                full = q;
        }
        CHECK(full && cJSON_IsObject(v));
        if (!full || !v) continue;
        CHECK(cJSON_GetNumberValue(cJSON_GetObjectItem(v, "ideal")) == (4.0 - skip + 1) / 4.0);
        CHECK(fabs(cJSON_GetNumberValue(cJSON_GetObjectItem(v, "latency_p50")) / (p50_of(pt) / p50_of(full)) - 1) < 1e-12);
        CHECK(cJSON_IsNull(cJSON_GetObjectItem(v, "device_p50")));
        n++;
    }
    CHECK(n == 2 * 3); /* batches x skips 2..4 */
}

static void test_program(const char *bin) {
    char dir[] = "/tmp/clipskip_test_bench_XXXXXX", cmd[2048], out[16384];
    REQUIRE(mkdtemp(dir));
    snprintf(cmd, sizeof cmd, "'%s' bench --random tiny --iters 1 --warmup 0 --batch 1,2 --pooled "
             "--threads 1 --quiet --json %s/b.json --plot %s/b.svg", bin, dir, dir);
    int rc = run(cmd, out, sizeof out);
    if (rc) fprintf(stderr, "%s\n", out);
    CHECK(rc == 0);
    CHECK(strstr(out, "| batch | clip skip |") && strstr(out, "| 2 | 4 | 4 | hidden+pooled |"));
    CHECK(strstr(out, "Clip-skip scaling") && strstr(out, "| 2 | 4 | 1 | 0.250 | "));
    char path[256];
    snprintf(path, sizeof path, "%s/b.json", dir);
    char *js = slurp(path);
    cJSON *j = js ? cJSON_Parse(js) : NULL;
    CHECK(j != NULL);
    if (j) {
        CHECK(!strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(j, "schema")), "clipskip-bench/1"));
        CHECK(!strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(j, "backend")), "cpu"));
        CHECK(strstr(cJSON_GetStringValue(cJSON_GetObjectItem(j, "command")), "--random tiny"));
        CHECK(strlen(cJSON_GetStringValue(cJSON_GetObjectItem(j, "commit"))) > 0);
        CHECK(cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "machine"), "cpu")));
        CHECK(cJSON_GetNumberValue(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "peak"), "flops_per_s")) > 0);
        const cJSON *pts = cJSON_GetObjectItem(j, "points");
        CHECK(cJSON_GetArraySize(pts) == 2 * 4 * 2); /* batches x skips 1..4 x {hidden, +pooled} */
        const cJSON *pt;
        cJSON_ArrayForEach(pt, pts) check_point(pt);
        check_scaling(pts);
    }
    cJSON_Delete(j);
    free(js);
    snprintf(path, sizeof path, "%s/b.svg", dir);
    char *svg = slurp(path);
    CHECK(svg && xml_well_formed(svg));
    CHECK(svg && strstr(svg, "<svg") && strstr(svg, "Latency vs clip skip") &&
          strstr(svg, "Throughput vs batch size") && strstr(svg, "(ms)") && strstr(svg, "(prompts/s)"));
    CHECK(svg && strstr(svg, "<polyline") && strstr(svg, "batch 2 +pooled"));
    CHECK(!xml_well_formed("<svg><g></svg></g>") && !xml_well_formed("<svg>a & b</svg>"));
    free(svg);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK(system(cmd) == 0);
}

/* Nonsense is refused with exit code 2 and a message that says what is wrong. */
static void test_refusals(const char *bin) {
    static const char *const cases[][2] = {
        {"--random tiny --batch 0", "batch size must be at least 1"},
        {"--random tiny --batch 1,0,8", "batch size must be at least 1"},
        {"--random tiny --batch 1,,2", "comma-separated list"},
        {"--random tiny --batch eight", "comma-separated list"},
        {"--random tiny --clip-skip 5", "out of range: valid 1..4"},
        {"--random tiny --clip-skip 0", "out of range"},
        {"--random vit-xl", "must be one of"},
        {"", "no model"},
        {"--random tiny --model x.safetensors", "not both"},
        {"--random tiny --iters 0 --seconds 0", "--seconds"},
        {"--random tiny stray", "unexpected argument"},
    };
    char cmd[1024], out[4096];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(cmd, sizeof cmd, "'%s' bench --quiet %s", bin, cases[i][0]);
        int rc = run(cmd, out, sizeof out);
        if (rc != 2 || !strstr(out, cases[i][1])) {
            fprintf(stderr, "bench %s: expected exit 2 with \"%s\", got %d: %s\n", cases[i][0],
                    cases[i][1], rc, out);
            cs_test_failures++;
        }
    }
}

int main(int argc, char **argv) {
    test_ids();
    test_stats();
    test_cost();
    if (argc < 2) {
        fprintf(stderr, "usage: test_bench PATH/TO/clipskip\n");
        return 1;
    }
    test_program(argv[1]);
    test_refusals(argv[1]);
    TEST_DONE("test_bench");
}
