/* The bench's plot: latency vs clip skip (a line per batch size) and throughput vs batch
 * size (a line per clip skip), host wall p50. Dashed: hidden + pooled output. */
#include "bench.h"
#include "svg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SERIES (2 * CS_BENCH_MAX_POINTS_LIST)

typedef struct {
    cs_svg_series s[MAX_SERIES];
    char labels[MAX_SERIES][48];
    double *xy;  /* backing store of every series' x and y */
    int32_t n, used;
} series_set;

/* Series of points sharing key (batch for the latency panel, skip for throughput). */
static void add_series(series_set *ss, const cs_bench_run *r, int by_batch, int32_t key,
                       int pooled, int color) {
    if (ss->n == MAX_SERIES) return;
    cs_svg_series *s = &ss->s[ss->n];
    double *x = ss->xy + ss->used, *y = x + r->n_points;
    int32_t n = 0;
    for (int32_t i = 0; i < r->n_points; i++) {
        const cs_bench_point *p = &r->points[i];
        if (p->pooled != pooled || (by_batch ? p->batch : p->skip) != key) continue;
        x[n] = by_batch ? p->skip : p->batch;
        y[n] = by_batch ? p->wall.p50 * 1e3 : p->prompts_per_s;
        n++;
    }
    if (n == 0) return;
    snprintf(ss->labels[ss->n], sizeof ss->labels[0], "%s %d%s", by_batch ? "batch" : "skip", key,
             pooled ? " +pooled" : "");
    *s = (cs_svg_series){ss->labels[ss->n], n, x, y, pooled, color};
    ss->used += 2 * r->n_points;
    ss->n++;
}

/* One series per distinct key (first-seen order; a key keeps its colour in both output
 * modes), hidden before hidden+pooled. More than MAX_LINES keys: the first two and the rest
 * evenly spread to the last, so the legend stays readable (bigG has 32 skips). */
#define MAX_LINES 8
static void build(series_set *ss, const cs_bench_run *r, int by_batch) {
    int32_t keys[CS_BENCH_MAX_POINTS_LIST], n_keys = 0;
    for (int32_t i = 0; i < r->n_points; i++) {
        int32_t key = by_batch ? r->points[i].batch : r->points[i].skip, seen = 0;
        for (int32_t j = 0; j < n_keys; j++) seen |= keys[j] == key;
        if (!seen && n_keys < CS_BENCH_MAX_POINTS_LIST) keys[n_keys++] = key;
    }
    int32_t lines = n_keys < MAX_LINES ? n_keys : MAX_LINES;
    for (int pooled = 0; pooled < 2; pooled++)
        for (int32_t k = 0; k < lines; k++) {
            /* the first two keys always (skip 1 and 2: the SD defaults), the rest spread */
            int32_t idx = lines == n_keys || k < 2
                              ? k
                              : 2 + (int32_t)((double)(k - 2) * (n_keys - 3) / (lines - 3) + 0.5);
            add_series(ss, r, by_batch, keys[idx], pooled, k);
        }
}

int cs_bench_write_svg(const cs_bench_run *r, const char *path) {
    series_set *lat = calloc(1, sizeof *lat), *thr = calloc(1, sizeof *thr);
    size_t per_set = (size_t)MAX_SERIES * 2 * (r->n_points ? r->n_points : 1);
    int rc = -1;
    if (lat && thr && (lat->xy = malloc(per_set * sizeof(double))) &&
        (thr->xy = malloc(per_set * sizeof(double)))) {
        build(lat, r, 1);
        build(thr, r, 0);
        char title[256], ylat[64];
        snprintf(title, sizeof title, "clipskip bench %s (%d layers x %d), %s, %s", r->model_name,
                 r->info.n_layers, r->info.d_model, r->device, r->date);
        snprintf(ylat, sizeof ylat, "latency of one call, host wall p50 (ms)");
        cs_svg_panel panels[2] = {
            {"Latency vs clip skip", "clip skip (1 = all layers)", ylat, 0, 1, 0, lat->s, lat->n, "batch size"},
            {"Throughput vs batch size", "batch size (prompts per call)", "throughput (prompts/s)", 1, 1, 1,
             thr->s, thr->n, "clip skip"},
        };
        char *svg = cs_svg_render(title, panels, 2);
        if (svg) rc = cs_bench_write_text(path, svg);
        else fprintf(stderr, "clipskip bench: out of memory writing the plot\n");
        free(svg);
    } else {
        fprintf(stderr, "clipskip bench: out of memory writing the plot\n");
    }
    if (lat) free(lat->xy);
    if (thr) free(thr->xy);
    free(lat), free(thr);
    return rc;
}
