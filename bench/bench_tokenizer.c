/* Tokenizer benchmark: prompts/s and MB/s of clipskip_tokenize (77-id sequences) per cleanup
 * mode, one thread and all cores, word cache cold (a fresh tokenizer, one pass) and warm
 * (median pass after that), on the parity corpus and on its SD-prompt subset (sd_tags,
 * sd_natural, emphasis). With --python PY it runs bench/bench_tokenizer_hf.py under PY for HF's
 * CLIPTokenizerFast (Rust) and Python CLIPTokenizer on the same prompts and prints one table.
 *
 *   build/bench/bench_tokenizer --python build/venv-hf4/bin/python [--threads N] [--json FILE]
 */
#include "clipskip.h"
#include "corpus_io.h"

#include <cjson/cJSON.h>
#include <pthread.h>
#include <time.h>
#include <unistd.h>

typedef struct {
    char name[64];
    int threads;
    char cache[8], subset[8];
    long prompts, bytes;
    double seconds;
} row;

static row ROWS[128];
static int N_ROWS;

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

typedef struct {
    const clipskip_tokenizer *tok;
    const corpus_item *items;
    long begin, end;
    clipskip_clean mode;
    long failed;
} job;

static void *run_job(void *arg) {
    job *j = arg;
    int32_t ids[CLIPSKIP_CONTEXT];
    for (long i = j->begin; i < j->end; i++)
        j->failed += clipskip_tokenize(j->tok, j->items[i].text, j->items[i].len, j->mode, CLIPSKIP_EOS, ids,
                                       NULL) != CLIPSKIP_OK;
    return NULL;
}

/* One pass over items with T threads, each a contiguous slice; returns seconds. */
static double pass(const clipskip_tokenizer *tok, const corpus_item *items, long n, clipskip_clean mode, int T) {
    pthread_t th[256];
    job jobs[256];
    double t0 = now();
    for (int t = 0; t < T; t++) {
        jobs[t] = (job){tok, items, n * t / T, n * (t + 1) / T, mode, 0};
        if (T == 1) run_job(&jobs[t]);
        else pthread_create(&th[t], NULL, run_job, &jobs[t]);
    }
    for (int t = 0; T > 1 && t < T; t++) pthread_join(th[t], NULL);
    double dt = now() - t0;
    for (int t = 0; t < T; t++)
        if (jobs[t].failed) fprintf(stderr, "bench_tokenizer: %ld prompts failed\n", jobs[t].failed);
    return dt;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void add_row(const char *name, int threads, const char *cache, const char *subset, long prompts,
                    long bytes, double seconds) {
    if (N_ROWS == 128) return;
    row *r = &ROWS[N_ROWS++];
    snprintf(r->name, sizeof r->name, "%s", name);
    snprintf(r->cache, sizeof r->cache, "%s", cache);
    snprintf(r->subset, sizeof r->subset, "%s", subset);
    r->threads = threads;
    r->prompts = prompts;
    r->bytes = bytes;
    r->seconds = seconds;
}

static void measure(const char *name, clipskip_clean mode, int T, const char *subset, const corpus_item *items,
                    long n, long bytes, double min_seconds) {
    clipskip_tokenizer *tok;
    if (clipskip_tokenizer_load(NULL, &tok) != CLIPSKIP_OK) {
        fprintf(stderr, "bench_tokenizer: %s\n", clipskip_last_error());
        exit(1);
    }
    double cold = pass(tok, items, n, mode, T), warm[64], total = 0;
    int k = 0;
    while (k < 64 && (total < min_seconds || k < 3)) total += warm[k++] = pass(tok, items, n, mode, T);
    qsort(warm, (size_t)k, sizeof *warm, cmp_double);
    add_row(name, T, "cold", subset, n, bytes, cold);
    add_row(name, T, "warm", subset, n, bytes, warm[k / 2]);
    clipskip_tokenizer_free(tok);
}

static void run_python(const char *python, const char *corpus, int T, double min_seconds) {
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "'%s' '%s/bench/bench_tokenizer_hf.py' --corpus '%s' --threads %d --min-seconds %g",
             python, CS_SOURCE_DIR, corpus, T, min_seconds);
    fprintf(stderr, "bench_tokenizer: running the HF baselines: %s\n", cmd);
    FILE *p = popen(cmd, "r");
    if (!p) return;
    char line[4096];
    while (fgets(line, sizeof line, p)) {
        cJSON *o = cJSON_Parse(line);
        if (!o) continue;
        add_row(cJSON_GetObjectItem(o, "name")->valuestring, cJSON_GetObjectItem(o, "threads")->valueint,
                cJSON_GetObjectItem(o, "cache")->valuestring, cJSON_GetObjectItem(o, "subset")->valuestring,
                (long)cJSON_GetObjectItem(o, "prompts")->valuedouble, (long)cJSON_GetObjectItem(o, "bytes")->valuedouble,
                cJSON_GetObjectItem(o, "seconds")->valuedouble);
        cJSON_Delete(o);
    }
    if (pclose(p) != 0) fprintf(stderr, "bench_tokenizer: the baseline script failed (see above)\n");
}

static const row *rust_ref(const row *r) {
    for (int i = 0; i < N_ROWS; i++)
        if (!strncmp(ROWS[i].name, "HF CLIPTokenizerFast", 20) && ROWS[i].threads == 1 &&
            !strcmp(ROWS[i].cache, r->cache) && !strcmp(ROWS[i].subset, r->subset))
            return &ROWS[i];
    return NULL;
}

static void print_table(const char *corpus, int T) {
    char host[256] = "?";
    gethostname(host, sizeof host);
    printf("\nclipskip %s tokenizer benchmark: %s, %ld CPUs online, threads %d\ncorpus %s\n"
           "77-id sequences (truncate + pad); cold = fresh tokenizer, first pass; warm = median later pass\n\n",
           clipskip_version(), host, sysconf(_SC_NPROCESSORS_ONLN), T, corpus);
    for (int s = 0; s < 2; s++) {
        const char *subset = s ? "sd" : "all";
        int first = 1;
        for (int i = 0; i < N_ROWS; i++) {
            const row *r = &ROWS[i];
            if (strcmp(r->subset, subset)) continue;
            if (first) {
                printf("%s: %ld prompts, %.2f MB%s\n", s ? "SD subset (sd_tags, sd_natural, emphasis)" : "whole corpus",
                       r->prompts, r->bytes / 1e6, s ? "" : " (all categories, incl. long and non-Latin prompts)");
                printf("  %-42s %7s %5s %12s %8s %12s\n", "tokenizer", "threads", "cache", "prompts/s", "MB/s",
                       "vs Rust 1T");
                first = 0;
            }
            const row *ref = rust_ref(r);
            char ratio[32] = "";
            if (ref) snprintf(ratio, sizeof ratio, "%.1fx", ref->seconds / r->seconds);
            printf("  %-42s %7d %5s %12.0f %8.2f %12s\n", r->name, r->threads, r->cache, r->prompts / r->seconds,
                   r->bytes / r->seconds / 1e6, ratio);
        }
        printf("\n");
    }
}

static void write_json(const char *path) {
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; i < N_ROWS; i++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", ROWS[i].name);
        cJSON_AddNumberToObject(o, "threads", ROWS[i].threads);
        cJSON_AddStringToObject(o, "cache", ROWS[i].cache);
        cJSON_AddStringToObject(o, "subset", ROWS[i].subset);
        cJSON_AddNumberToObject(o, "prompts_per_s", ROWS[i].prompts / ROWS[i].seconds);
        cJSON_AddNumberToObject(o, "mb_per_s", ROWS[i].bytes / ROWS[i].seconds / 1e6);
        cJSON_AddItemToArray(a, o);
    }
    char *s = cJSON_Print(a);
    FILE *f = fopen(path, "w");
    if (f && s) fputs(s, f);
    if (f) fclose(f);
    free(s);
    cJSON_Delete(a);
}

int main(int argc, char **argv) {
    const char *corpus = CS_SOURCE_DIR "/tests/data/tokenizer/corpus.txt", *python = NULL, *json = NULL;
    int T = (int)sysconf(_SC_NPROCESSORS_ONLN);
    double min_seconds = 1.0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--corpus") && i + 1 < argc) corpus = argv[++i];
        else if (!strcmp(argv[i], "--python") && i + 1 < argc) python = argv[++i];
        else if (!strcmp(argv[i], "--json") && i + 1 < argc) json = argv[++i];
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) T = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--min-seconds") && i + 1 < argc) min_seconds = atof(argv[++i]);
        else {
            fprintf(stderr, "usage: %s [--python PY] [--corpus FILE] [--threads N] [--min-seconds S] [--json FILE]\n",
                    argv[0]);
            return 2;
        }
    }
    if (T < 1 || T > 256) T = 1;
    corpus_item *all;
    long n = corpus_read(corpus, &all);
    if (n <= 0) return 1;
    corpus_item *sd = malloc((size_t)n * sizeof *sd);
    long nsd = 0, bytes = 0, sdbytes = 0;
    for (long i = 0; i < n; i++) {
        bytes += (long)all[i].len;
        if (!strcmp(all[i].category, "sd_tags") || !strcmp(all[i].category, "sd_natural") ||
            !strcmp(all[i].category, "emphasis")) {
            sd[nsd++] = all[i];
            sdbytes += (long)all[i].len;
        }
    }
    static const char *names[3] = {"clipskip hf (CLIPTokenizer + ftfy rules)", "clipskip openclip",
                                   "clipskip hf-fast"};
    for (int s = 0; s < 2; s++)
        for (int m = 0; m < 3; m++) {
            const int th[2] = {1, T};
            for (int k = 0; k < (T > 1 ? 2 : 1); k++)
                measure(names[m], (clipskip_clean)m, th[k], s ? "sd" : "all", s ? sd : all, s ? nsd : n,
                        s ? sdbytes : bytes, min_seconds);
        }
    if (python) run_python(python, corpus, T, min_seconds);
    print_table(corpus, T);
    if (json) write_json(json);
    free(sd);
    corpus_free(all, n);
    return 0;
}
