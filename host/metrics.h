/* Service metrics: counters, gauges and histograms shared by the HTTP threads and the
 * batcher (one mutex; updates are a few adds), rendered in Prometheus text format. */
#ifndef CLIPSKIP_METRICS_H
#define CLIPSKIP_METRICS_H

#include "st_buffer.h"

#include <pthread.h>
#include <stdint.h>

typedef enum {
    CS_ROUTE_ENCODE, CS_ROUTE_TOKENIZE, CS_ROUTE_HEALTH, CS_ROUTE_INFO, CS_ROUTE_METRICS,
    CS_ROUTE_OTHER, CS_N_ROUTES
} cs_route;

/* What became of a request: "ok" or the error_type of its reply. */
typedef enum {
    CS_OUT_OK, CS_OUT_VALIDATION, CS_OUT_PAYLOAD, CS_OUT_OVERLOADED, CS_OUT_BACKEND,
    CS_OUT_UNHEALTHY, CS_OUT_UNAUTHORIZED, CS_OUT_NOT_FOUND, CS_N_OUTCOMES
} cs_outcome;

#define CS_HIST_MAX 20

typedef struct {
    const double *bounds; /* upper bounds (le), ascending; +Inf implied */
    int n;
    uint64_t counts[CS_HIST_MAX + 1];
    double sum;
    uint64_t count;
} cs_histogram;

typedef enum {
    CS_H_BATCH_PROMPTS, /* prompts per batch taken from the queue */
    CS_H_QUEUE_S,       /* per request: queued until its batch started */
    CS_H_TOKENIZE_S,    /* per request */
    CS_H_INFERENCE_S,   /* per batch: backend time */
    CS_H_TOTAL_S,       /* per /encode request: arrival until the reply is queued */
    CS_N_HISTS
} cs_hist_id;

typedef struct {
    uint64_t requests[CS_N_ROUTES][CS_N_OUTCOMES];
    uint64_t disconnects;          /* replies the client did not take (closed early) */
    uint64_t prompts, batches, encode_calls, backend_errors, probes;
    cs_histogram hist[CS_N_HISTS];
} cs_metrics_data;

typedef struct {
    pthread_mutex_t mu;
    cs_metrics_data d;             /* under mu */
} cs_metrics;

/* Gauges read at render time from their owners. */
typedef struct {
    int64_t queue_requests, queue_prompts, in_flight;
    int64_t cache_entries, cache_bytes, cache_capacity;
    uint64_t cache_hits, cache_misses, cache_evictions;
    int64_t weight_bytes, activation_bytes;
    int healthy;
} cs_metrics_gauges;

void cs_metrics_init(cs_metrics *m);
void cs_metrics_destroy(cs_metrics *m);
void cs_metrics_request(cs_metrics *m, cs_route r, cs_outcome o);
void cs_metrics_observe(cs_metrics *m, cs_hist_id h, double v);
/* One batch done: prompts, encode calls made, backend seconds, failed encode calls. */
void cs_metrics_batch(cs_metrics *m, int64_t prompts, int calls, double seconds, int failures);
/* counter: a field of m->d, e.g. &m->d.disconnects */
void cs_metrics_add(cs_metrics *m, uint64_t *counter, uint64_t n);
/* The whole exposition (text/plain; version=0.0.4). */
void cs_metrics_render(cs_metrics *m, const cs_metrics_gauges *g, cs_buf *out);
const char *cs_outcome_name(cs_outcome o);
const char *cs_route_name(cs_route r);
/* Resident set size of this process in bytes (from /proc/self/statm), 0 when unknown. */
int64_t cs_process_rss(void);

#endif
