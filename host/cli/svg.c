/* Plain SVG line charts (see svg.h). Coordinates in px; every panel is PW x PH. */
#include "svg.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { PW = 560, PH = 420, TOP = 40, ML = 78, MR = 150, MT = 34, MB = 56 };

static const char *const COLORS[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd",
                                     "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};

typedef struct {
    char *s;
    size_t n, cap;
    int oom;
} sbuf;

static void put(sbuf *b, const char *fmt, ...) {
    if (b->oom) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int k = vsnprintf(b->s + b->n, b->cap - b->n, fmt, ap);
        va_end(ap);
        if (k < 0) {
            b->oom = 1;
            return;
        }
        if ((size_t)k < b->cap - b->n) {
            b->n += (size_t)k;
            return;
        }
        size_t cap = (b->cap + (size_t)k + 1) * 2;
        char *t = realloc(b->s, cap);
        if (!t) {
            b->oom = 1;
            return;
        }
        b->s = t, b->cap = cap;
    }
}

/* XML-escaped text. */
static void put_text(sbuf *b, const char *t) {
    for (; t && *t; t++) {
        switch (*t) {
        case '&': put(b, "&amp;"); break;
        case '<': put(b, "&lt;"); break;
        case '>': put(b, "&gt;"); break;
        case '"': put(b, "&quot;"); break;
        default: put(b, "%c", *t);
        }
    }
}

typedef struct {
    double lo, hi; /* in axis space (log10 of the value when log) */
    int log;
    double px0, px1;
} axis;

static double to_px(const axis *a, double v) {
    double t = a->log ? log10(v) : v;
    return a->px0 + (t - a->lo) / (a->hi - a->lo) * (a->px1 - a->px0);
}

static int usable(const axis *a, double v) { return isfinite(v) && (!a->log || v > 0); }

/* A "nice" tick step (1, 2 or 5 times a power of ten) for about 5 ticks over range. */
static double nice_step(double range) {
    double raw = range / 5.0, p = pow(10.0, floor(log10(raw))), m = raw / p;
    return (m < 1.5 ? 1 : m < 3.5 ? 2 : m < 7.5 ? 5 : 10) * p;
}

/* 1 when every x of the panel is a whole number. */
static int integer_x(const cs_svg_panel *p) {
    for (int32_t s = 0; s < p->n_series; s++)
        for (int32_t i = 0; i < p->series[s].n; i++)
            if (p->series[s].x[i] != floor(p->series[s].x[i])) return 0;
    return 1;
}

/* Range over the data of every series (x when use_x, else y). */
static void fit_axis(axis *a, const cs_svg_panel *p, int use_x) {
    double lo = INFINITY, hi = -INFINITY;
    for (int32_t s = 0; s < p->n_series; s++)
        for (int32_t i = 0; i < p->series[s].n; i++) {
            double v = use_x ? p->series[s].x[i] : p->series[s].y[i];
            if (!usable(a, v)) continue;
            if (v < lo) lo = v;
            if (v > hi) hi = v;
        }
    if (!(lo <= hi)) lo = a->log ? 1 : 0, hi = a->log ? 10 : 1;
    if (a->log && use_x && p->x_at_data) { /* ticks sit on the data: a margin, not decades */
        double pad = 0.06 * (log10(hi) - log10(lo) > 0.5 ? log10(hi) - log10(lo) : 0.5);
        a->lo = log10(lo) - pad;
        a->hi = log10(hi) + pad;
        return;
    }
    if (a->log) {
        a->lo = floor(log10(lo));
        a->hi = ceil(log10(hi));
        if (a->hi <= a->lo) a->hi = a->lo + 1;
        return;
    }
    if (!use_x && lo > 0) lo = 0; /* linear y from 0: the eye reads ratios */
    if (hi <= lo) hi = lo + 1;
    double step = nice_step(hi - lo);
    if (use_x && integer_x(p) && step < 1) step = 1;
    a->lo = floor(lo / step) * step;
    a->hi = ceil(hi / step) * step;
}

/* Distinct x values of the data, ascending (at most cap). */
static int32_t data_ticks(const cs_svg_panel *p, const axis *a, double *t, int32_t cap) {
    int32_t n = 0;
    for (int32_t s = 0; s < p->n_series; s++)
        for (int32_t i = 0; i < p->series[s].n; i++) {
            double v = p->series[s].x[i];
            int32_t j = 0;
            if (!usable(a, v)) continue;
            while (j < n && t[j] < v) j++;
            if ((j < n && t[j] == v) || n == cap) continue;
            memmove(t + j + 1, t + j, (size_t)(n - j) * sizeof *t);
            t[j] = v;
            n++;
        }
    return n;
}

/* Tick values of an axis (at most cap). Steps under 1 are not used on integer data. */
static int32_t ticks(const axis *a, int integer, double *t, int32_t cap) {
    int32_t n = 0;
    if (a->log) {
        int fine = a->hi - a->lo <= 2;
        for (double e = a->lo; e <= a->hi && n < cap; e++) {
            double base = pow(10.0, e);
            t[n++] = base;
            if (fine && e < a->hi && n + 2 <= cap) t[n++] = 2 * base, t[n++] = 5 * base;
        }
        return n;
    }
    double step = nice_step(a->hi - a->lo);
    if (integer && step < 1) step = 1;
    for (double v = a->lo; v <= a->hi + step * 1e-9 && n < cap; v += step) t[n++] = fabs(v) < step * 1e-9 ? 0 : v;
    return n;
}

static void draw_axes(sbuf *b, const cs_svg_panel *p, const axis *ax, const axis *ay, double x0) {
    double t[64];
    int32_t n = p->x_at_data ? data_ticks(p, ax, t, 64) : ticks(ax, integer_x(p), t, 64);
    for (int32_t i = 0; i < n; i++) {
        double x = to_px(ax, t[i]);
        put(b, "<line x1='%.1f' y1='%.1f' x2='%.1f' y2='%.1f' stroke='#e5e5e5'/>\n", x, ay->px0, x, ay->px1);
        put(b, "<text x='%.1f' y='%.1f' text-anchor='middle'>%g</text>\n", x, ay->px0 + 16, t[i]);
    }
    n = ticks(ay, 0, t, 64);
    for (int32_t i = 0; i < n; i++) {
        double y = to_px(ay, t[i]);
        put(b, "<line x1='%.1f' y1='%.1f' x2='%.1f' y2='%.1f' stroke='#e5e5e5'/>\n", ax->px0, y, ax->px1, y);
        put(b, "<text x='%.1f' y='%.1f' text-anchor='end'>%g</text>\n", ax->px0 - 5, y + 4, t[i]);
    }
    put(b, "<rect x='%.1f' y='%.1f' width='%.1f' height='%.1f' fill='none' stroke='#333'/>\n", ax->px0,
        ay->px1, ax->px1 - ax->px0, ay->px0 - ay->px1);
    put(b, "<text x='%.1f' y='%.1f' text-anchor='middle' font-weight='bold'>", (ax->px0 + ax->px1) / 2, ay->px1 - 12);
    put_text(b, p->title);
    put(b, "</text>\n<text x='%.1f' y='%.1f' text-anchor='middle'>", (ax->px0 + ax->px1) / 2, ay->px0 + 38);
    put_text(b, p->xlabel);
    double yc = (ay->px0 + ay->px1) / 2;
    put(b, "</text>\n<text x='%.1f' y='%.1f' text-anchor='middle' transform='rotate(-90 %.1f %.1f)'>",
        x0 + 18, yc, x0 + 18, yc);
    put_text(b, p->ylabel);
    put(b, "</text>\n");
}

static void draw_series(sbuf *b, const cs_svg_series *s, const axis *ax, const axis *ay,
                        const char *color) {
    put(b, "<polyline fill='none' stroke='%s' stroke-width='2'%s points='", color,
        s->dashed ? " stroke-dasharray='6 4'" : "");
    for (int32_t i = 0; i < s->n; i++)
        if (usable(ax, s->x[i]) && usable(ay, s->y[i]))
            put(b, "%.1f,%.1f ", to_px(ax, s->x[i]), to_px(ay, s->y[i]));
    put(b, "'/>\n");
    for (int32_t i = 0; i < s->n; i++)
        if (usable(ax, s->x[i]) && usable(ay, s->y[i]))
            put(b, "<circle cx='%.1f' cy='%.1f' r='3' fill='%s'/>\n", to_px(ax, s->x[i]),
                to_px(ay, s->y[i]), color);
}

static void draw_legend(sbuf *b, const cs_svg_panel *p, double x, double y) {
    if (p->legend_title) {
        put(b, "<text x='%.1f' y='%.1f' font-weight='bold'>", x, y);
        put_text(b, p->legend_title);
        put(b, "</text>\n");
        y += 18;
    }
    for (int32_t s = 0; s < p->n_series; s++, y += 17) {
        const char *c = COLORS[p->series[s].color % 10];
        put(b, "<line x1='%.1f' y1='%.1f' x2='%.1f' y2='%.1f' stroke='%s' stroke-width='2'%s/>\n", x,
            y - 4, x + 22, y - 4, c, p->series[s].dashed ? " stroke-dasharray='6 4'" : "");
        put(b, "<text x='%.1f' y='%.1f'>", x + 28, y);
        put_text(b, p->series[s].label);
        put(b, "</text>\n");
    }
}

char *cs_svg_render(const char *title, const cs_svg_panel *panels, int32_t n) {
    sbuf b = {malloc(8192), 0, 8192, 0};
    if (!b.s) return NULL;
    int w = PW * (n > 0 ? n : 1), h = PH + TOP;
    put(&b, "<?xml version='1.0' encoding='UTF-8'?>\n<svg xmlns='http://www.w3.org/2000/svg' "
            "width='%d' height='%d' viewBox='0 0 %d %d' font-family='sans-serif' font-size='12'>\n"
            "<rect width='100%%' height='100%%' fill='white'/>\n"
            "<text x='%d' y='24' text-anchor='middle' font-size='15' font-weight='bold'>",
        w, h, w, h, w / 2);
    put_text(&b, title);
    put(&b, "</text>\n");
    for (int32_t i = 0; i < n; i++) {
        const cs_svg_panel *p = &panels[i];
        double x0 = (double)PW * i;
        axis ax = {0, 1, p->logx, x0 + ML, x0 + PW - MR}, ay = {0, 1, p->logy, TOP + PH - MB, TOP + MT};
        fit_axis(&ax, p, 1);
        fit_axis(&ay, p, 0);
        put(&b, "<g>\n");
        draw_axes(&b, p, &ax, &ay, x0);
        for (int32_t s = 0; s < p->n_series; s++) draw_series(&b, &p->series[s], &ax, &ay, COLORS[p->series[s].color % 10]);
        draw_legend(&b, p, x0 + PW - MR + 12, TOP + MT + 12);
        put(&b, "</g>\n");
    }
    put(&b, "</svg>\n");
    if (b.oom) {
        free(b.s);
        return NULL;
    }
    return b.s;
}
