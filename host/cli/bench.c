/* clipskip bench: latency and throughput of encode calls over (batch, clip skip), against
 * the floor the device allows (its peak measured at start), with tokenizer and text -> tensor
 * figures; Markdown on stdout, JSON and an SVG plot on request. */
#include "bench.h"
#include "cmds.h"
#include "common.h"
#include "internal.h"
#include "opts.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MIN_SAMPLES 3 /* with --seconds: at least this many timed calls per point */
#define MAX_SAMPLES 100000

/* In run_bench: report a failed library call and leave through `done`. */
#define CS_TRY_EXIT(call)                                                                  \
    do {                                                                                   \
        clipskip_status st_ = (call);                                                      \
        if (st_ != CLIPSKIP_OK) {                                                          \
            cs_cli_error("bench", st_);                                                    \
            goto done;                                                                     \
        }                                                                                  \
    } while (0)

typedef struct {
    const char *model, *batch, *clip_skip, *json, *plot;
    int random, backend, gemm, pageable, dtype, pooled, warmup, iters, threads, quiet, no_text, max_batch;
    int seed;
    double seconds;
} bench_args;

typedef struct {
    int32_t v[CS_BENCH_MAX_POINTS_LIST];
    int32_t n;
} int_list;

static const char *DESCRIPTION =
    "Time encode calls for each (batch size, clip skip): latency p50/p90/p99 of one call (host\n"
    "wall time, and device-event time where the backend has it), prompts/s, TFLOP/s and the\n"
    "fraction of the floor max(FLOPs / peak, bytes / bandwidth), with the device's peak and\n"
    "bandwidth measured at start. Token ids are generated (10..75 tokens a row, fixed seed,\n"
    "see bench/README.md); the tokenizer alone and text -> tensor are timed on built-in SD\n"
    "prompts. Results: a Markdown table on stdout, --json FILE, --plot FILE.svg.\n"
    "--batch default: 1,8 on CPU, 1,8,64,256,1024 on CUDA. --clip-skip all = 1..L.\n"
    "With --seconds each point runs at least 3 timed calls; --iters N runs exactly N.";

/* "1,8,64" -> list; each value in lo..hi. what names the option for messages. */
static int parse_list(const char *s, int32_t lo, int32_t hi, const char *what, int_list *out) {
    out->n = 0;
    const char *p = s;
    while (*p) {
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (end == p || errno || (*end && *end != ',')) {
            fprintf(stderr, "clipskip bench: --%s %s: expected a comma-separated list of "
                            "integers, e.g. 1,8,64\n", what, s);
            return -1;
        }
        if (v < lo || v > hi) {
            if (!strcmp(what, "batch") && v <= 0)
                fprintf(stderr, "clipskip bench: --batch %ld: a batch size must be at least 1 "
                                "prompt\n", v);
            else
                fprintf(stderr, "clipskip bench: --%s %ld out of range: valid %d..%d%s\n", what,
                        v, lo, hi, strcmp(what, "clip-skip") ? "" :
                        " for this model (1 = all layers, 2 = penultimate)");
            return -1;
        }
        if (out->n == CS_BENCH_MAX_POINTS_LIST) {
            fprintf(stderr, "clipskip bench: --%s: at most %d values\n", what,
                    CS_BENCH_MAX_POINTS_LIST);
            return -1;
        }
        out->v[out->n++] = (int32_t)v;
        p = *end ? end + 1 : end;
    }
    if (out->n == 0) {
        fprintf(stderr, "clipskip bench: --%s is empty\n", what);
        return -1;
    }
    return 0;
}

static int parse_skips(const char *s, int32_t layers, int_list *out) {
    if (!strcmp(s, "all")) {
        out->n = 0;
        for (int32_t k = 1; k <= layers && out->n < CS_BENCH_MAX_POINTS_LIST; k++)
            out->v[out->n++] = k;
        return 0;
    }
    return parse_list(s, 1, layers, "clip-skip", out);
}

static void join_command(int argc, char **argv, char *buf, size_t cap) {
    size_t n = (size_t)snprintf(buf, cap, "clipskip");
    for (int i = 0; i < argc && n < cap; i++) {
        int quote = strpbrk(argv[i], " \t\"'") != NULL || !argv[i][0];
        n += (size_t)snprintf(buf + n, cap - n, quote ? " '%s'" : " %s", argv[i]);
    }
}

/* ------------------------------------------------------------------ timing */

typedef struct {
    clipskip_encoder *enc;
    const bench_args *a;
    const int32_t *ids;  /* (max_batch, 77) */
    void *hidden, *pooled;
    double *wall, *dev;  /* MAX_SAMPLES each */
} bench_ctx;

/* Timed calls of fn until --iters or --seconds; fills wall (and dev when available). */
typedef clipskip_status (*call_fn)(bench_ctx *c, const void *arg);

static clipskip_status time_calls(bench_ctx *c, call_fn fn, const void *arg, int warmup,
                                  const char *what, int32_t *n_out, int32_t *n_dev) {
    const bench_args *a = c->a;
    int32_t cap = a->iters > 0 ? a->iters : MAX_SAMPLES, n = 0, nd = 0;
    for (int w = 0; w < warmup; w++) CS_TRY(fn(c, arg));
    double t0 = cs_now(), last = t0;
    while (n < cap) {
        double s = cs_now();
        CS_TRY(fn(c, arg));
        double e = cs_now();
        c->wall[n++] = e - s;
        double d = c->enc ? clipskip_encoder_last_device_seconds(c->enc) : -1.0;
        if (d >= 0) c->dev[nd++] = d;
        if (!a->quiet && e - last > 10.0) {
            fprintf(stderr, "clipskip bench:   %s: %d calls, %.0f s\n", what, n, e - t0);
            last = e;
        }
        if (a->iters <= 0 && e - t0 >= a->seconds && n >= MIN_SAMPLES) break;
    }
    *n_out = n;
    *n_dev = nd;
    return CLIPSKIP_OK;
}

typedef struct {
    int32_t batch;
    clipskip_encode_options o;
} ids_call;

static clipskip_status call_ids(bench_ctx *c, const void *arg) {
    const ids_call *k = arg;
    clipskip_outputs out = {c->hidden, c->pooled, NULL};
    return clipskip_encode_ids(c->enc, c->ids, k->batch, &k->o, &out);
}

static clipskip_encode_options options_for(const bench_args *a, int32_t skip, int pooled) {
    clipskip_encode_options o = clipskip_encode_default_options();
    o.row.clip_skip = skip;
    o.outputs = CLIPSKIP_OUT_HIDDEN | (pooled ? CLIPSKIP_OUT_POOLED : 0);
    o.out_dtype = a->dtype ? CLIPSKIP_DTYPE_F16 : CLIPSKIP_DTYPE_F32;
    return o;
}

/* One (batch, skip, pooled) point: time it and derive the figures against the floor. */
static clipskip_status measure_point(bench_ctx *c, const cs_bench_run *r, cs_bench_point *pt) {
    ids_call k = {pt->batch, options_for(c->a, pt->skip, pt->pooled)};
    char what[64];
    snprintf(what, sizeof what, "batch %d skip %d%s", pt->batch, pt->skip,
             pt->pooled ? " +pooled" : "");
    int32_t n = 0, nd = 0;
    CS_TRY(time_calls(c, call_ids, &k, pt->warmup, what, &n, &nd));
    pt->wall = cs_bench_stats_of(c->wall, n);
    pt->dev = cs_bench_stats_of(c->dev, nd);
    double t = pt->wall.p50;
    pt->prompts_per_s = pt->batch / t;
    pt->tflops = pt->cost.flops / t * 1e-12;
    pt->floor_s = 0;
    if (r->peak_flops > 0 && r->peak_bw > 0) {
        double fc = pt->cost.flops / r->peak_flops, fb = pt->cost.bytes / r->peak_bw;
        pt->floor_s = fc > fb ? fc : fb;
    }
    pt->floor_fraction = pt->floor_s / t;
    clipskip_encoder_memory(c->enc, NULL, &pt->act_bytes);
    return CLIPSKIP_OK;
}

/* Seconds a point should take, from the rate seen so far (s per FLOP). */
static double point_guess(const bench_args *a, const cs_bench_point *pt, double s_per_flop) {
    double call = pt->cost.flops * s_per_flop;
    double timed = a->iters > 0 ? a->iters * call
                                : (a->seconds > MIN_SAMPLES * call ? a->seconds : MIN_SAMPLES * call);
    return pt->warmup * call + timed;
}

static void progress(const bench_args *a, const cs_bench_run *r, int32_t done, double spent,
                     double flops_done) {
    if (a->quiet) return;
    const cs_bench_point *pt = &r->points[done - 1];
    double eta = 0, rate = flops_done > 0 ? spent / flops_done : 0;
    for (int32_t i = done; i < r->n_points; i++) eta += point_guess(a, &r->points[i], rate);
    fprintf(stderr, "clipskip bench: [%d/%d] batch %d skip %d%s: p50 %.3f ms, %.1f prompts/s "
                    "(%.0f s so far, ETA %.0f s)\n", done, r->n_points, pt->batch, pt->skip,
            pt->pooled ? " +pooled" : "", pt->wall.p50 * 1e3, pt->prompts_per_s, spent, eta);
}

static clipskip_status measure_points(bench_ctx *c, cs_bench_run *r) {
    double spent = 0, flops_done = 0;
    for (int32_t i = 0; i < r->n_points; i++) {
        double t = cs_now();
        CS_TRY(measure_point(c, r, &r->points[i]));
        spent += cs_now() - t;
        /* rate per FLOP over whole points (warmup included), for the ETA */
        flops_done += r->points[i].cost.flops * (r->points[i].warmup + r->points[i].wall.n);
        progress(c->a, r, i + 1, spent, flops_done);
    }
    return CLIPSKIP_OK;
}

/* ------------------------------------------------------------------ text */

/* The tokenizer alone: a first pass over the prompts (empty merge cache), then repeated
 * passes for about `seconds`. */
static void measure_tokenizer(const clipskip_model *m, const clipskip_tower_info *in,
                              double seconds, cs_bench_tok *t) {
    const clipskip_tokenizer *tok = clipskip_model_tokenizer(m);
    memset(t, 0, sizeof *t);
    t->n_prompts = cs_bench_n_prompts;
    if (!tok) {
        snprintf(t->error, sizeof t->error, "the model has no tokenizer in this build");
        return;
    }
    int32_t ids[CLIPSKIP_CONTEXT];
    double t0 = cs_now(), t1 = t0;
    long passes = 0;
    do {
        for (int32_t i = 0; i < cs_bench_n_prompts; i++) {
            const char *p = cs_bench_prompts[i];
            clipskip_status st = clipskip_tokenize(tok, p, strlen(p), in->default_clean,
                                                   in->pad_id, ids, NULL);
            if (st != CLIPSKIP_OK) {
                snprintf(t->error, sizeof t->error, "%s: %s", clipskip_status_str(st),
                         clipskip_last_error());
                return;
            }
        }
        double now = cs_now();
        if (passes++ == 0) {
            t->cold_prompts_per_s = cs_bench_n_prompts / (now - t0);
            t1 = now;
        }
    } while (cs_now() - t1 < seconds || passes < 2);
    t->prompts_per_s = (double)cs_bench_n_prompts * (passes - 1) / (cs_now() - t1);
    t->available = 1;
}

typedef struct {
    int32_t batch;
    clipskip_encode_options o;
    const char *const *texts;
} text_call;

static clipskip_status call_text(bench_ctx *c, const void *arg) {
    const text_call *k = arg;
    clipskip_outputs out = {c->hidden, NULL, NULL};
    return clipskip_encode_text(c->enc, k->texts, k->batch, &k->o, &out, NULL);
}

/* Text -> tensor for each batch size at the first clip skip listed (prompts cycled). */
static void measure_e2e(bench_ctx *c, cs_bench_run *r, const int_list *batches, int32_t skip,
                        int warmup) {
    int32_t max_b = 0;
    for (int32_t i = 0; i < batches->n; i++)
        if (batches->v[i] > max_b) max_b = batches->v[i];
    const char **texts = malloc((size_t)max_b * sizeof *texts);
    r->e2e = calloc((size_t)batches->n, sizeof *r->e2e);
    if (!texts || !r->e2e) {
        snprintf(r->e2e_error, sizeof r->e2e_error, "out of memory");
        free(texts);
        return;
    }
    for (int32_t i = 0; i < max_b; i++) texts[i] = cs_bench_prompts[i % cs_bench_n_prompts];
    for (int32_t i = 0; i < batches->n; i++) {
        text_call k = {batches->v[i], options_for(c->a, skip, 0), texts};
        int32_t n = 0, nd = 0;
        clipskip_status st = time_calls(c, call_text, &k, warmup, "text -> tensor", &n, &nd);
        if (st != CLIPSKIP_OK) {
            snprintf(r->e2e_error, sizeof r->e2e_error, "%s: %s", clipskip_status_str(st),
                     clipskip_last_error());
            break;
        }
        cs_bench_e2e *e = &r->e2e[r->n_e2e++];
        e->batch = batches->v[i];
        e->skip = skip;
        e->wall = cs_bench_stats_of(c->wall, n);
        e->prompts_per_s = e->batch / e->wall.p50;
        if (!c->a->quiet)
            fprintf(stderr, "clipskip bench: text -> tensor batch %d: %.1f prompts/s\n", e->batch,
                    e->prompts_per_s);
    }
    free(texts);
}

/* ------------------------------------------------------------------ the run */

static int32_t max_of(const int_list *l) {
    int32_t m = 0;
    for (int32_t i = 0; i < l->n; i++)
        if (l->v[i] > m) m = l->v[i];
    return m;
}

/* Points in run order: batch sizes ascending as given, hidden then hidden+pooled, skips. */
static int plan_points(const bench_args *a, cs_bench_run *r, const int_list *batches,
                       const int_list *skips, const int32_t *eos) {
    cs_bench_shape s = {r->info.n_layers, r->info.d_model, r->info.n_heads, r->info.d_mlp};
    int modes = a->pooled ? 2 : 1;
    double out_bytes = a->dtype ? 2.0 : 4.0;
    r->points = calloc((size_t)batches->n * skips->n * modes, sizeof *r->points);
    if (!r->points) return -1;
    for (int32_t b = 0; b < batches->n; b++)
        for (int mode = 0; mode < modes; mode++)
            for (int32_t k = 0; k < skips->n; k++) {
                cs_bench_point *pt = &r->points[r->n_points++];
                pt->batch = batches->v[b];
                pt->skip = skips->v[k];
                pt->pooled = mode;
                pt->warmup = a->warmup;
                pt->cost = cs_bench_cost_of(&s, eos, pt->batch, pt->skip, mode, r->weight_bytes,
                                            out_bytes);
            }
    return 0;
}

static void describe_run(const bench_args *a, clipskip_encoder *enc, cs_bench_run *r) {
    int cuda = clipskip_encoder_backend(enc) == CLIPSKIP_BACKEND_CUDA;
    r->backend = cuda ? "cuda" : "cpu";
    r->device = clipskip_encoder_device(enc);
    r->compute_dtype = cuda ? "f16" : "f32";
    r->gemm = !cuda ? "openblas" : a->gemm ? "cublaslt" : "native";
    r->out_memory = a->pageable ? "pageable" : cuda ? "pinned" : "host_alloc";
    r->out_dtype = a->dtype ? "f16" : "f32";
    r->weight_bytes = cuda ? 2.0 : 4.0;
    r->threads = a->threads > 0 ? a->threads : (int32_t)sysconf(_SC_NPROCESSORS_ONLN);
    r->id_seed = (uint64_t)a->seed;
    time_t now = time(NULL);
    strftime(r->date, sizeof r->date, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
    if (!a->quiet) fprintf(stderr, "clipskip bench: measuring the device's peak (%s)...\n", r->device);
    if (clipskip_encoder_measure_peak(enc, &r->peak_flops, &r->peak_bw) != CLIPSKIP_OK) {
        fprintf(stderr, "clipskip bench: warning: no peak measurement (%s): floor figures left "
                        "out\n", clipskip_last_error());
        r->peak_flops = r->peak_bw = 0;
    } else if (!a->quiet) {
        fprintf(stderr, "clipskip bench: peak %.1f GFLOP/s, %.1f GB/s\n", r->peak_flops * 1e-9,
                r->peak_bw * 1e-9);
    }
}

static int write_results(const bench_args *a, const cs_bench_run *r) {
    cs_bench_print_markdown(r, stdout);
    fflush(stdout);
    int rc = 0;
    if (a->json && cs_bench_write_json(r, a->json)) rc = -1;
    if (a->plot && cs_bench_write_svg(r, a->plot)) rc = -1;
    return rc;
}

/* Everything after the model is open and the lists are valid. */
static int run_bench(const bench_args *a, const clipskip_model *m, cs_bench_run *r,
                     int_list *batches, const int_list *skips) {
    clipskip_encoder_params ep = clipskip_encoder_default_params();
    ep.backend = (clipskip_backend)a->backend;
    ep.n_threads = a->threads;
    ep.gemm = a->gemm ? CLIPSKIP_GEMM_CUBLASLT : CLIPSKIP_GEMM_NATIVE;
    clipskip_encoder *enc = NULL;
    bench_ctx c = {.a = a};
    int rc = CS_EXIT_FAIL;
    int32_t *ids = NULL, *eos = NULL;
    if (batches->n == 0) { /* the default depends on the backend */
        ep.max_batch = a->max_batch > 0 ? a->max_batch : 1024;
        CS_TRY_EXIT(clipskip_encoder_init(m, &ep, &enc));
        parse_list(clipskip_encoder_backend(enc) == CLIPSKIP_BACKEND_CUDA ? "1,8,64,256,1024" : "1,8",
                   1, 1 << 20, "batch", batches);
        clipskip_encoder_free(enc);
        enc = NULL;
    }
    int32_t max_b = max_of(batches);
    ep.max_batch = a->max_batch > 0 ? a->max_batch : max_b;
    size_t esz = a->dtype ? 2 : 4, d = (size_t)r->info.d_model;
    ids = malloc((size_t)max_b * CLIPSKIP_CONTEXT * sizeof *ids);
    eos = malloc((size_t)max_b * sizeof *eos);
    c.wall = malloc(MAX_SAMPLES * sizeof *c.wall);
    c.dev = malloc(MAX_SAMPLES * sizeof *c.dev);
    if (!ids || !eos || !c.wall || !c.dev) {
        fprintf(stderr, "clipskip bench: out of memory for batch %d\n", max_b);
        goto done;
    }
    cs_bench_make_ids((uint64_t)a->seed, max_b, r->info.pad_id, ids, eos);
    c.ids = ids;
    CS_TRY_EXIT(clipskip_encoder_init(m, &ep, &enc));
    c.enc = enc;
    /* outputs: clipskip_host_alloc (pinned on CUDA) unless --out-memory pageable */
    const size_t hb = (size_t)max_b * CLIPSKIP_CONTEXT * d * esz, pb = (size_t)max_b * d * esz;
    c.hidden = a->pageable ? malloc(hb) : clipskip_host_alloc(enc, hb);
    c.pooled = a->pageable ? malloc(pb) : clipskip_host_alloc(enc, pb);
    if (!c.hidden || !c.pooled) {
        fprintf(stderr, "clipskip bench: no %zu + %zu bytes of %s output memory: %s\n", hb, pb,
                a->pageable ? "pageable" : "host_alloc", clipskip_last_error());
        goto done;
    }
    describe_run(a, enc, r);
    if (plan_points(a, r, batches, skips, eos)) goto done;
    cs_bench_loadavg(r->load_start, sizeof r->load_start);
    CS_TRY_EXIT(measure_points(&c, r));
    clipskip_encoder_memory(enc, &r->mem_weights, &r->mem_act);
    if (!a->no_text) {
        measure_tokenizer(m, &r->info, a->iters > 0 ? 0.2 : a->seconds, &r->tok);
        if (r->tok.available) measure_e2e(&c, r, batches, skips->v[0], a->warmup);
        else snprintf(r->e2e_error, sizeof r->e2e_error, "needs the tokenizer");
    }
    cs_bench_loadavg(r->load_end, sizeof r->load_end);
    rc = write_results(a, r) ? CS_EXIT_FAIL : CS_EXIT_OK;
done:
    if (a->pageable) {
        free(c.hidden), free(c.pooled);
    } else if (enc) {
        clipskip_host_free(enc, c.hidden), clipskip_host_free(enc, c.pooled);
    }
    clipskip_encoder_free(enc);
    free(ids), free(eos), free(c.wall), free(c.dev);
    return rc;
}

/* Open the model, check the lists against it, run. */
static int bench_main(const bench_args *a, int argc, char **argv) {
    int_list batches = {.n = 0}, skips;
    if (a->batch && parse_list(a->batch, 1, 1 << 20, "batch", &batches)) return CS_EXIT_USAGE;
    if (strcmp(a->clip_skip, "all") && parse_list(a->clip_skip, 1, 1 << 20, "clip-skip", &skips))
        return CS_EXIT_USAGE;
    if (a->iters <= 0 && !(a->seconds > 0)) {
        fprintf(stderr, "clipskip bench: --seconds %g: give a positive time per point (or "
                        "--iters N)\n", a->seconds);
        return CS_EXIT_USAGE;
    }
    if (!a->model && a->random == 0) {
        fprintf(stderr, "clipskip bench: no model: give --model FILE.safetensors or --random "
                        "vit-l|vit-h|vit-bigg|tiny\n");
        return CS_EXIT_USAGE;
    }
    if (a->model && a->random > 0) {
        fprintf(stderr, "clipskip bench: give --model or --random, not both\n");
        return CS_EXIT_USAGE;
    }
    clipskip_model *m = cs_cli_open_model("bench", a->model, a->random, NULL, !a->quiet);
    if (!m) return CS_EXIT_FAIL;
    char cmd[4096], name[32];
    join_command(argc, argv, cmd, sizeof cmd);
    cs_bench_run r = {.command = cmd};
    r.model_name = a->model ? a->model : cs_opt_choice_name(CS_RANDOM_CHOICES, a->random, name, sizeof name);
    int rc = CS_EXIT_USAGE;
    if (clipskip_model_tower_info(m, 0, &r.info) != CLIPSKIP_OK) {
        cs_cli_error("bench", clipskip_last_status());
        rc = CS_EXIT_FAIL;
    } else if (parse_skips(a->clip_skip, r.info.n_layers, &skips) == 0) {
        rc = run_bench(a, m, &r, &batches, &skips);
    }
    free(r.points);
    free(r.e2e);
    clipskip_model_free(m);
    return rc;
}

int cs_cmd_bench(int argc, char **argv) {
    bench_args a = {.clip_skip = "all", .warmup = 1, .seconds = 1.0, .seed = CS_BENCH_ID_SEED};
    const cs_opt opts[] = {
        {"model", CS_OPT_STR, &a.model, "FILE", "model .safetensors (tower 0 is timed)", 0, 0, 0},
        {"random", CS_OPT_CHOICE, &a.random, 0, "random weights of a real shape instead of --model", CS_RANDOM_CHOICES, 0, 0},
        {"backend", CS_OPT_CHOICE, &a.backend, 0, "compute backend (auto = CUDA when usable)", CS_BACKEND_CHOICES, 0, 0},
        {"gemm", CS_OPT_CHOICE, &a.gemm, 0, "CUDA GEMMs: the hand-written kernels, or cuBLASLt for comparison (not batch-invariant)", "native|cublaslt", 0, 0},
        {"dtype", CS_OPT_CHOICE, &a.dtype, 0, "output dtype", "f32|f16", 0, 0},
        {"out-memory", CS_OPT_CHOICE, &a.pageable, 0, "where outputs land: clipskip_host_alloc memory (pinned on CUDA) or plain malloc", "pinned|pageable", 0, 0},
        {"batch", CS_OPT_STR, &a.batch, "LIST", "batch sizes, e.g. 1,8,64,256,1024 (default: 1,8 on CPU, 1,8,64,256,1024 on CUDA)", 0, 0, 0},
        {"clip-skip", CS_OPT_STR, &a.clip_skip, "all|LIST", "clip skips to time, e.g. 1,2,6,12 (all = 1..L)", 0, 0, 0},
        {"pooled", CS_OPT_FLAG, &a.pooled, 0, "also time hidden + pooled output (pooled needs all layers, EOS rows only past the skip depth)", 0, 0, 0},
        {"warmup", CS_OPT_INT, &a.warmup, "N", "untimed calls before each point", 0, 0, 1000},
        {"iters", CS_OPT_INT, &a.iters, "N", "timed calls per point (0 = as many as --seconds allows)", 0, 0, MAX_SAMPLES},
        {"seconds", CS_OPT_DOUBLE, &a.seconds, "S", "time per point when --iters is 0 (at least 3 calls)", 0, 0, 0},
        {"max-batch", CS_OPT_INT, &a.max_batch, "N", "rows per device pass (0 = the largest batch: one pass per call)", 0, 0, 1 << 20},
        {"threads", CS_OPT_INT, &a.threads, "N", "CPU threads (0 = all cores)", 0, 0, 4096},
        {"seed", CS_OPT_INT, &a.seed, "N", "seed of the token id generator (bench/README.md)", 0, 0, 0x7fffffff},
        {"no-text", CS_OPT_FLAG, &a.no_text, 0, "skip the tokenizer and text -> tensor figures", 0, 0, 0},
        {"json", CS_OPT_STR, &a.json, "FILE", "write every point's summary, machine, device, commit, command as JSON", 0, 0, 0},
        {"plot", CS_OPT_STR, &a.plot, "FILE.svg", "write the plot: latency vs clip skip, throughput vs batch size", 0, 0, 0},
        {"quiet", CS_OPT_FLAG, &a.quiet, 0, "no progress on stderr", 0, 0, 0},
        {0},
    };
    const cs_cli cli = {"bench", "[options]", DESCRIPTION, opts};
    char **pos = calloc((size_t)argc + 1, sizeof *pos);
    int n_pos, rc = pos ? cs_opts_parse(&cli, argc, argv, pos, &n_pos) : CS_EXIT_FAIL;
    if (rc < 0 && n_pos > 0) {
        fprintf(stderr, "clipskip bench: unexpected argument '%s' (see clipskip bench --help)\n", pos[0]);
        rc = CS_EXIT_USAGE;
    }
    if (rc < 0) rc = bench_main(&a, argc, argv);
    free(pos);
    return rc;
}
