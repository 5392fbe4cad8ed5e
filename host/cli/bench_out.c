/* clipskip bench results: the Markdown table (stdout), the JSON file, and the description of
 * the machine and the build they carry. */
#include "bench.h"
#include "internal.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifdef CS_HAVE_GIT_DESCRIBE_H
#include "cs_git_describe.h" /* generated at build time by bench/CMakeLists.txt */
#endif

/* ------------------------------------------------------------------ machine, build */

static void trim(char *s) {
    size_t n = strlen(s);
    while (n && (s[n - 1] == '\n' || s[n - 1] == ' ' || s[n - 1] == '\r')) s[--n] = 0;
}

const char *cs_bench_commit(void) {
    static char buf[128]; /* filled once per process; the bench is single-threaded */
    const char *env = getenv("CLIPSKIP_COMMIT");
    if (env && *env) return env;
#ifdef CS_GIT_DESCRIBE
    if (strcmp(CS_GIT_DESCRIBE, "unknown")) return CS_GIT_DESCRIBE;
#endif
    FILE *p = popen("git describe --always --dirty 2>/dev/null", "r");
    buf[0] = 0;
    if (p) {
        if (!fgets(buf, sizeof buf, p)) buf[0] = 0;
        pclose(p);
    }
    trim(buf);
    return buf[0] ? buf : "unknown";
}

void cs_bench_loadavg(char *buf, size_t cap) {
    FILE *f = fopen("/proc/loadavg", "r");
    double a = 0, b = 0, c = 0;
    buf[0] = 0;
    if (f && fscanf(f, "%lf %lf %lf", &a, &b, &c) == 3) snprintf(buf, cap, "%.2f %.2f %.2f", a, b, c);
    if (f) fclose(f);
}

/* "model name" of /proc/cpuinfo (x86), else "unknown". */
static void cpu_model(char *buf, size_t cap) {
    FILE *f = fopen("/proc/cpuinfo", "r");
    char line[512];
    snprintf(buf, cap, "unknown");
    while (f && fgets(line, sizeof line, f)) {
        char *colon = strchr(line, ':');
        if (colon && !strncmp(line, "model name", 10)) {
            const char *v = colon + 1;
            while (*v == ' ' || *v == '\t') v++;
            trim(line);
            snprintf(buf, cap, "%s", v);
            break;
        }
    }
    if (f) fclose(f);
}


/* ------------------------------------------------------------------ Markdown */

static void print_header(const cs_bench_run *r, FILE *f) {
    const clipskip_tower_info *in = &r->info;
    char cpu[256];
    cpu_model(cpu, sizeof cpu);
    fprintf(f, "## clipskip bench: %s (%d layers, width %d, %d heads, MLP %d, %s)\n\n", r->model_name,
            in->n_layers, in->d_model, in->n_heads, in->d_mlp, cs_act_name(in->act));
    fprintf(f, "- date %s, commit `%s`\n", r->date, cs_bench_commit());
    fprintf(f, "- machine: %s, %ld cores online; load average %s at start, %s at end\n", cpu,
            sysconf(_SC_NPROCESSORS_ONLN), r->load_start, r->load_end);
    fprintf(f, "- device: %s (backend %s, GEMMs %s, compute %s, output %s into %s memory, %d threads)\n",
            r->device, r->backend, r->gemm, r->compute_dtype, r->out_dtype, r->out_memory, r->threads);
    fprintf(f, "- command: `%s`\n", r->command);
    static const char *const vars[] = {"OMP_NUM_THREADS", "OMP_WAIT_POLICY", "OPENBLAS_NUM_THREADS"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
        if (getenv(vars[i])) fprintf(f, "- environment: %s=%s\n", vars[i], getenv(vars[i]));
    if (r->peak_flops > 0)
        fprintf(f, "- peak measured at start: %.1f GFLOP/s (GEMM, %s), %.1f GB/s (copy, read + write)\n",
                r->peak_flops * 1e-9, r->compute_dtype, r->peak_bw * 1e-9);
    fprintf(f, "- floor = max(FLOPs / peak, bytes / bandwidth); bytes = weights of the layers run "
               "(%.0f B each) + embedding rows + ids + outputs\n", r->weight_bytes);
    fprintf(f, "- FLOPs: QKV, out-proj, MLP GEMMs + attention QK^T and PV counting causal pairs only "
               "(key <= query); LayerNorm/softmax/activation not counted; \"nominal\" = all 77 rows "
               "in every layer run\n");
    fprintf(f, "- memory held: weights %.1f MB, activations %.1f MB (after the largest batch)\n",
            r->mem_weights / 1e6, r->mem_act / 1e6);
    fprintf(f, "- token ids: splitmix64 seed %llu, 10..75 content tokens a row (bench/README.md)\n\n",
            (unsigned long long)r->id_seed);
}

/* The full-depth point (clip skip 1) of p's batch, when p is a hidden-only point at a clip skip
 * above 1 and the run timed one; else NULL. Pooled output runs every layer at any clip skip. */
static const cs_bench_point *full_depth_of(const cs_bench_run *r, const cs_bench_point *p) {
    if (p->pooled || p->skip <= 1) return NULL;
    for (int32_t i = 0; i < r->n_points; i++) {
        const cs_bench_point *q = &r->points[i];
        if (q->batch == p->batch && !q->pooled && q->skip == 1 && q->wall.n) return q;
    }
    return NULL;
}

/* Each clip skip's time over its batch's full-depth time, against the ideal (L - k + 1) / L:
 * issue #5's goal is within 5% of it. */
static void print_scaling(const cs_bench_run *r, FILE *f) {
    int any = 0;
    for (int32_t i = 0; i < r->n_points; i++) {
        const cs_bench_point *p = &r->points[i], *q = full_depth_of(r, p);
        if (!q) continue;
        if (!any++)
            fprintf(f, "Clip-skip scaling (hidden output): p50 over the same batch's full-depth p50, "
                       "against the ideal depth / %d; x ideal <= 1.05 is within 5%%.\n\n"
                       "| batch | clip skip | depth | ideal | p50 / full | x ideal | device p50 / full | x ideal |\n"
                       "|---:|---:|---:|---:|---:|---:|---:|---:|\n", r->info.n_layers);
        const double ideal = (double)p->cost.depth / q->cost.depth, w = p->wall.p50 / q->wall.p50;
        char dev[64] = "- | -";
        if (p->dev.n && q->dev.n) {
            const double d = p->dev.p50 / q->dev.p50;
            snprintf(dev, sizeof dev, "%.3f | %.3f", d, d / ideal);
        }
        fprintf(f, "| %d | %d | %d | %.3f | %.3f | %.3f | %s |\n", p->batch, p->skip, p->cost.depth, ideal, w,
                w / ideal, dev);
    }
    if (any) fprintf(f, "\n");
}

void cs_bench_print_markdown(const cs_bench_run *r, FILE *f) {
    print_header(r, f);
    fprintf(f, "| batch | clip skip | depth | outputs | p50 ms | p90 ms | p99 ms | device p50 ms | calls "
               "| prompts/s | GFLOP/call | nominal GFLOP | TFLOP/s | floor ms | %% of floor |\n");
    fprintf(f, "|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for (int32_t i = 0; i < r->n_points; i++) {
        const cs_bench_point *p = &r->points[i];
        char dev[32] = "-";
        if (p->dev.n) snprintf(dev, sizeof dev, "%.3f", p->dev.p50 * 1e3);
        fprintf(f, "| %d | %d | %d | %s | %.3f | %.3f | %.3f | %s | %d | %.1f | %.2f | %.2f | %.4f | %.3f | %.1f |\n",
                p->batch, p->skip, p->cost.depth, p->pooled ? "hidden+pooled" : "hidden",
                p->wall.p50 * 1e3, p->wall.p90 * 1e3, p->wall.p99 * 1e3, dev, p->wall.n,
                p->prompts_per_s, p->cost.flops * 1e-9, p->cost.flops_nominal * 1e-9, p->tflops,
                p->floor_s * 1e3, p->floor_fraction * 100.0);
    }
    fprintf(f, "\n");
    print_scaling(r, f);
    if (r->tok.available)
        fprintf(f, "Tokenizer alone (%d built-in SD prompts): %.0f prompts/s first pass (empty merge "
                   "cache), %.0f prompts/s repeated.\n\n", r->tok.n_prompts, r->tok.cold_prompts_per_s,
                r->tok.prompts_per_s);
    else if (r->tok.error[0])
        fprintf(f, "Tokenizer alone: not measured (%s).\n\n", r->tok.error);
    if (r->n_e2e) {
        fprintf(f, "Text -> tensor (tokenize + encode, clip skip %d, hidden output):\n\n", r->e2e[0].skip);
        fprintf(f, "| batch | p50 ms | p90 ms | calls | prompts/s |\n|---:|---:|---:|---:|---:|\n");
        for (int32_t i = 0; i < r->n_e2e; i++)
            fprintf(f, "| %d | %.3f | %.3f | %d | %.1f |\n", r->e2e[i].batch, r->e2e[i].wall.p50 * 1e3,
                    r->e2e[i].wall.p90 * 1e3, r->e2e[i].wall.n, r->e2e[i].prompts_per_s);
        fprintf(f, "\n");
    }
    if (r->e2e_error[0]) fprintf(f, "Text -> tensor: not measured (%s).\n\n", r->e2e_error);
}

/* ------------------------------------------------------------------ JSON */

static cJSON *stats_json(const cs_bench_stats *s) {
    if (s->n == 0) return cJSON_CreateNull();
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "n", s->n);
    cJSON_AddNumberToObject(o, "p50", s->p50);
    cJSON_AddNumberToObject(o, "p90", s->p90);
    cJSON_AddNumberToObject(o, "p99", s->p99);
    cJSON_AddNumberToObject(o, "mean", s->mean);
    cJSON_AddNumberToObject(o, "min", s->min);
    cJSON_AddNumberToObject(o, "max", s->max);
    return o;
}

/* vs_full_depth: the point's p50s over the full-depth point's, and the ideal depth ratio. */
static cJSON *scaling_json(const cs_bench_run *r, const cs_bench_point *p) {
    const cs_bench_point *q = full_depth_of(r, p);
    if (!q) return cJSON_CreateNull();
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "ideal", (double)p->cost.depth / q->cost.depth);
    cJSON_AddNumberToObject(o, "latency_p50", p->wall.p50 / q->wall.p50);
    if (p->dev.n && q->dev.n) cJSON_AddNumberToObject(o, "device_p50", p->dev.p50 / q->dev.p50);
    else cJSON_AddNullToObject(o, "device_p50");
    return o;
}

static cJSON *point_json(const cs_bench_run *r, const cs_bench_point *p, int have_peak) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "variant", "clipskip");
    cJSON_AddNumberToObject(o, "batch", p->batch);
    cJSON_AddNumberToObject(o, "clip_skip", p->skip);
    cJSON_AddNumberToObject(o, "depth", p->cost.depth);
    cJSON_AddStringToObject(o, "outputs", p->pooled ? "hidden+pooled" : "hidden");
    cJSON_AddNumberToObject(o, "warmup", p->warmup);
    cJSON_AddItemToObject(o, "latency_s", stats_json(&p->wall));
    cJSON_AddItemToObject(o, "device_s", stats_json(&p->dev));
    cJSON_AddNumberToObject(o, "prompts_per_s", p->prompts_per_s);
    cJSON_AddNumberToObject(o, "flops", p->cost.flops);
    cJSON_AddNumberToObject(o, "flops_nominal", p->cost.flops_nominal);
    cJSON_AddNumberToObject(o, "bytes_floor", p->cost.bytes);
    cJSON_AddNumberToObject(o, "tflops", p->tflops);
    if (have_peak) {
        cJSON_AddNumberToObject(o, "floor_s", p->floor_s);
        cJSON_AddNumberToObject(o, "floor_fraction", p->floor_fraction);
    } else {
        cJSON_AddNullToObject(o, "floor_s");
        cJSON_AddNullToObject(o, "floor_fraction");
    }
    cJSON_AddNumberToObject(o, "activation_bytes", (double)p->act_bytes);
    cJSON_AddItemToObject(o, "vs_full_depth", scaling_json(r, p));
    return o;
}

static cJSON *model_json(const cs_bench_run *r) {
    const clipskip_tower_info *in = &r->info;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", r->model_name);
    cJSON_AddNumberToObject(o, "layers", in->n_layers);
    cJSON_AddNumberToObject(o, "width", in->d_model);
    cJSON_AddNumberToObject(o, "heads", in->n_heads);
    cJSON_AddNumberToObject(o, "mlp", in->d_mlp);
    cJSON_AddStringToObject(o, "act", cs_act_name(in->act));
    cJSON_AddNumberToObject(o, "pad_id", in->pad_id);
    cJSON_AddNumberToObject(o, "params", (double)in->n_params);
    cJSON_AddNumberToObject(o, "matmul_params_per_layer",
                            4.0 * in->d_model * in->d_model + 2.0 * in->d_model * in->d_mlp);
    return o;
}

static cJSON *machine_json(const cs_bench_run *r) {
    char cpu[256];
    cpu_model(cpu, sizeof cpu);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "cpu", cpu);
    cJSON_AddNumberToObject(o, "cores", (double)sysconf(_SC_NPROCESSORS_ONLN));
    cJSON_AddStringToObject(o, "loadavg_start", r->load_start);
    cJSON_AddStringToObject(o, "loadavg_end", r->load_end);
    /* threading settings that change CPU timings a lot on a shared machine */
    static const char *const vars[] = {"OMP_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT",
                                       "OPENBLAS_NUM_THREADS", "CUDA_VISIBLE_DEVICES"};
    cJSON *env = cJSON_AddObjectToObject(o, "env");
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
        if (getenv(vars[i])) cJSON_AddStringToObject(env, vars[i], getenv(vars[i]));
    return o;
}

static cJSON *text_json(const cs_bench_run *r) {
    cJSON *o = cJSON_CreateObject(), *t = cJSON_AddObjectToObject(o, "tokenize");
    cJSON_AddBoolToObject(t, "available", r->tok.available);
    cJSON_AddNumberToObject(t, "prompts", r->tok.n_prompts);
    if (r->tok.available) {
        cJSON_AddNumberToObject(t, "cold_prompts_per_s", r->tok.cold_prompts_per_s);
        cJSON_AddNumberToObject(t, "prompts_per_s", r->tok.prompts_per_s);
    } else {
        cJSON_AddStringToObject(t, "error", r->tok.error[0] ? r->tok.error : "not run (--no-text)");
    }
    cJSON *e = cJSON_AddArrayToObject(o, "end_to_end");
    for (int32_t i = 0; i < r->n_e2e; i++) {
        cJSON *p = cJSON_CreateObject();
        cJSON_AddNumberToObject(p, "batch", r->e2e[i].batch);
        cJSON_AddNumberToObject(p, "clip_skip", r->e2e[i].skip);
        cJSON_AddItemToObject(p, "latency_s", stats_json(&r->e2e[i].wall));
        cJSON_AddNumberToObject(p, "prompts_per_s", r->e2e[i].prompts_per_s);
        cJSON_AddItemToArray(e, p);
    }
    if (r->e2e_error[0]) cJSON_AddStringToObject(o, "end_to_end_error", r->e2e_error);
    return o;
}

static cJSON *run_json(const cs_bench_run *r) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "schema", "clipskip-bench/1");
    cJSON_AddStringToObject(o, "tool", "clipskip");
    cJSON_AddStringToObject(o, "version", clipskip_version());
    cJSON_AddStringToObject(o, "build", clipskip_build_info());
    cJSON_AddStringToObject(o, "date", r->date);
    cJSON_AddStringToObject(o, "command", r->command);
    cJSON_AddStringToObject(o, "commit", cs_bench_commit());
    cJSON_AddItemToObject(o, "machine", machine_json(r));
    cJSON_AddStringToObject(o, "device", r->device);
    cJSON_AddStringToObject(o, "backend", r->backend);
    cJSON_AddNumberToObject(o, "threads", r->threads);
    cJSON_AddStringToObject(o, "compute_dtype", r->compute_dtype);
    cJSON_AddStringToObject(o, "gemm", r->gemm);
    cJSON_AddStringToObject(o, "out_memory", r->out_memory);
    cJSON_AddStringToObject(o, "out_dtype", r->out_dtype);
    cJSON_AddStringToObject(o, "output", "host"); /* the API writes into caller host memory */
    cJSON_AddItemToObject(o, "model", model_json(r));
    cJSON *ids = cJSON_AddObjectToObject(o, "ids");
    cJSON_AddStringToObject(ids, "generator", "splitmix64: n = 10 + next() % 66, id = next() % 49406");
    cJSON_AddNumberToObject(ids, "seed", (double)r->id_seed);
    cJSON *peak = cJSON_AddObjectToObject(o, "peak");
    cJSON_AddNumberToObject(peak, "flops_per_s", r->peak_flops);
    cJSON_AddNumberToObject(peak, "bytes_per_s", r->peak_bw);
    cJSON_AddStringToObject(peak, "how", "clipskip_encoder_measure_peak: large GEMM, large copy");
    cJSON_AddNumberToObject(o, "weight_bytes_per_param", r->weight_bytes);
    cJSON_AddStringToObject(o, "flop_counting", "GEMMs (QKV, out-proj, MLP) + attention QK^T and PV "
                            "over causal pairs (key <= query); LN/softmax/activations not counted");
    cJSON *mem = cJSON_AddObjectToObject(o, "memory");
    cJSON_AddNumberToObject(mem, "weights_bytes", (double)r->mem_weights);
    cJSON_AddNumberToObject(mem, "activation_bytes", (double)r->mem_act);
    cJSON *pts = cJSON_AddArrayToObject(o, "points");
    for (int32_t i = 0; i < r->n_points; i++)
        cJSON_AddItemToArray(pts, point_json(r, &r->points[i], r->peak_flops > 0));
    cJSON_AddItemToObject(o, "text", text_json(r));
    return o;
}

int cs_bench_write_text(const char *path, const char *text) {
    cs_atomic_file af;
    clipskip_status st = cs_atomic_open(&af, path);
    if (st == CLIPSKIP_OK) st = cs_atomic_write(&af, text, strlen(text));
    if (st == CLIPSKIP_OK) st = cs_atomic_commit(&af); /* each step cleans up after a failure */
    if (st != CLIPSKIP_OK) {
        fprintf(stderr, "clipskip bench: %s\n", clipskip_last_error());
        return -1;
    }
    return 0;
}

int cs_bench_write_json(const cs_bench_run *r, const char *path) {
    cJSON *o = run_json(r);
    char *s = o ? cJSON_Print(o) : NULL;
    cJSON_Delete(o);
    if (!s) {
        fprintf(stderr, "clipskip bench: out of memory writing JSON\n");
        return -1;
    }
    size_t n = strlen(s);
    char *t = realloc(s, n + 2);
    if (t) memcpy(t + n, "\n", 2), s = t;
    int rc = cs_bench_write_text(path, s);
    free(s);
    return rc;
}
