/* clipskip bench: shared types of the benchmark subcommand.
 *
 *   bench.c        options, checks, the run over (batch, clip skip) points, progress
 *   bench_cost.c   FLOPs and bytes of one encode call from the model shape and the plan
 *   bench_data.c   token ids (the generator bench/baseline_hf.py reproduces), SD prompts,
 *                  sample statistics
 *   bench_out.c    Markdown table, JSON (cJSON), machine / commit description
 *   bench_plot.c   the SVG plot (via svg.c) */
#ifndef CLIPSKIP_CLI_BENCH_H
#define CLIPSKIP_CLI_BENCH_H

#include "clipskip.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define CS_BENCH_MAX_POINTS_LIST 64 /* entries of --batch / --clip-skip */
#define CS_BENCH_ID_SEED 42u        /* default seed of the token id generator */

/* Shape of the tower being timed (from clipskip_tower_info). */
typedef struct {
    int32_t layers, d, heads, f;
} cs_bench_shape;

/* What one encode call costs at the floor. */
typedef struct {
    double flops;         /* multiply-adds x2 of the work the encoder actually runs */
    double flops_nominal; /* the same depth with every row of every layer at 77 tokens */
    double bytes;         /* weights read once + embeddings gathered + ids in + outputs out */
    int32_t depth;        /* layers run (L for pooled output) */
} cs_bench_cost;

/* Cost of encoding rows with these EOS positions (n rows, eos[i] in 0..76) at clip skip
 * skip (1..L), hidden output, plus the pooled vector when pooled. Mirrors encoder.c's plan:
 * layers below the hidden depth run all 77 rows; with pooled output, the layers past it run
 * rows 0..eos only and the last layer computes K/V for those rows but Q, the attention row,
 * the output projection and the MLP for the EOS row only. Attention counts causal pairs
 * (key <= query: T(T+1)/2 per head), LayerNorm/softmax/activations are not counted.
 * weight_bytes: bytes per weight element read by the backend (CPU fp32: 4, CUDA f16: 2). */
cs_bench_cost cs_bench_cost_of(const cs_bench_shape *s, const int32_t *eos, int32_t n,
                               int32_t skip, int pooled, double weight_bytes,
                               double out_bytes);

/* Summary of a set of timings (seconds). Percentiles interpolate linearly between order
 * statistics (numpy's default), the same in baseline_hf.py. */
typedef struct {
    int32_t n;
    double p50, p90, p99, mean, min, max;
} cs_bench_stats;

cs_bench_stats cs_bench_stats_of(double *samples, int32_t n); /* sorts samples */

/* The token ids of the bench (documented in bench/README.md; baseline_hf.py makes the same):
 * a splitmix64 stream from seed; for each row, n = 10 + next() % 66 content tokens
 * (10..75), each id = next() % 49406 (0..49405: never BOS/EOS), then BOS, the n ids, EOS,
 * and pad_id up to 77. Row r is the same whatever the batch size. ids (n_rows, 77); eos
 * (n_rows) gets each row's EOS position. */
void cs_bench_make_ids(uint64_t seed, int32_t n_rows, int32_t pad_id, int32_t *ids,
                       int32_t *eos);

/* Built-in Stable Diffusion prompts for the tokenizer and text -> tensor figures. */
extern const char *const cs_bench_prompts[];
extern const int32_t cs_bench_n_prompts;

/* One measured (batch, clip skip, outputs) point. */
typedef struct {
    int32_t batch, skip, pooled;
    int32_t warmup;
    cs_bench_cost cost;
    cs_bench_stats wall;   /* host wall time of one encode call, seconds */
    cs_bench_stats dev;    /* device-event time; n == 0 when the backend has no timer */
    double prompts_per_s;  /* batch / wall p50 */
    double tflops;         /* cost.flops / wall p50 / 1e12 */
    double floor_s;        /* max(flops / peak, bytes / bandwidth) */
    double floor_fraction; /* floor_s / wall p50 */
    size_t act_bytes;      /* activation memory the encoder holds after the point */
} cs_bench_point;

/* Text figures: tokenizer alone and text -> tensor (when the tokenizer is available). */
typedef struct {
    int available;
    char error[256];
    int32_t n_prompts;
    double cold_prompts_per_s; /* first pass over the prompts, empty merge cache */
    double prompts_per_s;      /* steady state, repeated passes */
} cs_bench_tok;

typedef struct {
    int32_t batch, skip;
    cs_bench_stats wall;
    double prompts_per_s;
} cs_bench_e2e;

/* Everything a run produced, for the writers. */
typedef struct {
    const char *command;      /* the exact command line */
    const char *model_name;   /* "vit-l", or the --model path */
    const char *backend;      /* "cpu" / "cuda" */
    const char *device;
    const char *compute_dtype, *out_dtype;
    const char *gemm;         /* "native" / "cublaslt" (CUDA) or "openblas" (CPU) */
    const char *out_memory;   /* "pinned" / "pageable" / "host_alloc" (CPU) */
    int32_t threads;
    clipskip_tower_info info;
    double peak_flops, peak_bw;
    double weight_bytes;      /* per weight element */
    size_t mem_weights, mem_act;
    uint64_t id_seed;
    cs_bench_point *points;
    int32_t n_points;
    cs_bench_tok tok;
    cs_bench_e2e *e2e;
    int32_t n_e2e;
    char e2e_error[256];
    char load_start[64], load_end[64];
    char date[32];
} cs_bench_run;

/* Markdown on f (stdout). */
void cs_bench_print_markdown(const cs_bench_run *r, FILE *f);
/* JSON (schema clipskip-bench/1, bench/README.md), written atomically. 0 or -1 (message). */
int cs_bench_write_json(const cs_bench_run *r, const char *path);
/* SVG: latency vs clip skip (a line per batch size), throughput vs batch size (a line per
 * clip skip). 0 or -1 (message on stderr). */
int cs_bench_write_svg(const cs_bench_run *r, const char *path);
/* Write text to path atomically. 0 or -1 (message on stderr). */
int cs_bench_write_text(const char *path, const char *text);
/* "git describe" of the build, else of the working directory, else "unknown". */
const char *cs_bench_commit(void);
/* /proc/loadavg's first three fields, or "". */
void cs_bench_loadavg(char *buf, size_t cap);

#endif
