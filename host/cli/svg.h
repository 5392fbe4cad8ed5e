/* A small, plain SVG line-chart writer: panels side by side, each with labelled axes (linear
 * or log 10), one polyline with markers per series and a legend. */
#ifndef CLIPSKIP_CLI_SVG_H
#define CLIPSKIP_CLI_SVG_H

#include <stdint.h>

typedef struct {
    const char *label;    /* legend text */
    int32_t n;
    const double *x, *y;  /* (n) points; on a log axis, values <= 0 are left out */
    int dashed;
    int color;            /* palette index: series of one key share it (solid and dashed) */
} cs_svg_series;

typedef struct {
    const char *title, *xlabel, *ylabel; /* labels carry their units, e.g. "latency p50 (ms)" */
    int logx, logy;
    int x_at_data;        /* x ticks at the data's x values (e.g. batch sizes), else nice steps */
    const cs_svg_series *series;
    int32_t n_series;
    const char *legend_title;
} cs_svg_panel;

/* The SVG document (malloc'd, NUL-terminated) of n panels under a title, or NULL when out of
 * memory. Text is XML-escaped. */
char *cs_svg_render(const char *title, const cs_svg_panel *panels, int32_t n);

#endif
