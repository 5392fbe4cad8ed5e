/* Prometheus text exposition of the service's counters and histograms. */
#include "metrics.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

static const double BATCH_BOUNDS[] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024};
/* 100 µs .. 30 s: a GPU batch-1 encode is ~0.1 ms, a CPU ViT-L batch is seconds */
static const double TIME_BOUNDS[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
                                     0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30};
#define N_OF(a) ((int)(sizeof(a) / sizeof((a)[0])))

static const char *ROUTES[CS_N_ROUTES] = {"encode", "tokenize", "health", "info", "metrics", "other"};
static const char *OUTCOMES[CS_N_OUTCOMES] = {"ok", "validation", "payload_too_large", "overloaded",
                                              "backend", "unhealthy", "unauthorized", "not_found"};

const char *cs_outcome_name(cs_outcome o) { return OUTCOMES[o]; }
const char *cs_route_name(cs_route r) { return ROUTES[r]; }

void cs_metrics_init(cs_metrics *m) {
    memset(m, 0, sizeof *m);
    pthread_mutex_init(&m->mu, NULL);
    for (int h = 0; h < CS_N_HISTS; h++) {
        m->d.hist[h].bounds = h == CS_H_BATCH_PROMPTS ? BATCH_BOUNDS : TIME_BOUNDS;
        m->d.hist[h].n = h == CS_H_BATCH_PROMPTS ? N_OF(BATCH_BOUNDS) : N_OF(TIME_BOUNDS);
    }
}

void cs_metrics_destroy(cs_metrics *m) { pthread_mutex_destroy(&m->mu); }

void cs_metrics_request(cs_metrics *m, cs_route r, cs_outcome o) {
    pthread_mutex_lock(&m->mu);
    m->d.requests[r][o]++;
    pthread_mutex_unlock(&m->mu);
}

static void hist_add(cs_histogram *h, double v) {
    int i = 0;
    while (i < h->n && v > h->bounds[i]) i++;
    h->counts[i]++;
    h->sum += v;
    h->count++;
}

void cs_metrics_observe(cs_metrics *m, cs_hist_id h, double v) {
    pthread_mutex_lock(&m->mu);
    hist_add(&m->d.hist[h], v);
    pthread_mutex_unlock(&m->mu);
}

void cs_metrics_batch(cs_metrics *m, int64_t prompts, int calls, double seconds, int failures) {
    pthread_mutex_lock(&m->mu);
    m->d.prompts += (uint64_t)prompts;
    m->d.batches++;
    m->d.encode_calls += (uint64_t)calls;
    m->d.backend_errors += (uint64_t)failures;
    hist_add(&m->d.hist[CS_H_BATCH_PROMPTS], (double)prompts);
    hist_add(&m->d.hist[CS_H_INFERENCE_S], seconds);
    pthread_mutex_unlock(&m->mu);
}

void cs_metrics_add(cs_metrics *m, uint64_t *counter, uint64_t n) {
    pthread_mutex_lock(&m->mu);
    *counter += n;
    pthread_mutex_unlock(&m->mu);
}

int64_t cs_process_rss(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    long pages = 0, rss = 0;
    if (!f) return 0;
    int ok = fscanf(f, "%ld %ld", &pages, &rss) == 2;
    fclose(f);
    return ok ? (int64_t)rss * sysconf(_SC_PAGESIZE) : 0;
}

static void metric_head(cs_buf *b, const char *name, const char *type, const char *help) {
    cs_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void render_hist(cs_buf *b, const char *name, const char *help, const cs_histogram *h) {
    metric_head(b, name, "histogram", help);
    uint64_t cum = 0;
    for (int i = 0; i < h->n; i++) {
        cum += h->counts[i];
        cs_buf_printf(b, "%s_bucket{le=\"%g\"} %llu\n", name, h->bounds[i], (unsigned long long)cum);
    }
    cs_buf_printf(b, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %.9g\n%s_count %llu\n", name,
                  (unsigned long long)h->count, name, h->sum, name, (unsigned long long)h->count);
}

static void render_counter(cs_buf *b, const char *name, const char *help, uint64_t v) {
    metric_head(b, name, "counter", help);
    cs_buf_printf(b, "%s %llu\n", name, (unsigned long long)v);
}

static void render_gauge(cs_buf *b, const char *name, const char *help, int64_t v) {
    metric_head(b, name, "gauge", help);
    cs_buf_printf(b, "%s %lld\n", name, (long long)v);
}

static void render_requests(cs_buf *b, const cs_metrics_data *m) {
    metric_head(b, "clipskip_requests_total", "counter", "HTTP requests answered, by route and outcome");
    for (int r = 0; r < CS_N_ROUTES; r++)
        for (int o = 0; o < CS_N_OUTCOMES; o++)
            if (m->requests[r][o] || (r == CS_ROUTE_ENCODE))
                cs_buf_printf(b, "clipskip_requests_total{route=\"%s\",outcome=\"%s\"} %llu\n",
                              ROUTES[r], OUTCOMES[o], (unsigned long long)m->requests[r][o]);
}

static void render_gauges(cs_buf *b, const cs_metrics_gauges *g) {
    render_gauge(b, "clipskip_queue_requests", "requests waiting for the batcher", g->queue_requests);
    render_gauge(b, "clipskip_queue_prompts", "prompts waiting for the batcher", g->queue_prompts);
    render_gauge(b, "clipskip_requests_in_flight", "HTTP requests received and not yet completed", g->in_flight);
    render_gauge(b, "clipskip_cache_entries", "prompts held by the result cache", g->cache_entries);
    render_gauge(b, "clipskip_cache_bytes", "bytes held by the result cache", g->cache_bytes);
    render_gauge(b, "clipskip_cache_capacity_bytes", "result cache bound (--cache-mb)", g->cache_capacity);
    render_counter(b, "clipskip_cache_hits_total", "prompts answered from the cache", g->cache_hits);
    render_counter(b, "clipskip_cache_misses_total", "prompts sent to the backend after a cache lookup", g->cache_misses);
    render_counter(b, "clipskip_cache_evictions_total", "cache entries evicted to stay under the bound", g->cache_evictions);
    metric_head(b, "clipskip_device_memory_bytes", "gauge", "memory the encoder holds (device memory on CUDA)");
    cs_buf_printf(b, "clipskip_device_memory_bytes{kind=\"weights\"} %lld\n", (long long)g->weight_bytes);
    cs_buf_printf(b, "clipskip_device_memory_bytes{kind=\"activations\"} %lld\n", (long long)g->activation_bytes);
    render_gauge(b, "clipskip_healthy", "1 when the last backend call succeeded", g->healthy);
    render_gauge(b, "process_resident_memory_bytes", "resident set size of the server", cs_process_rss());
}

void cs_metrics_render(cs_metrics *m, const cs_metrics_gauges *g, cs_buf *b) {
    pthread_mutex_lock(&m->mu);
    cs_metrics_data snap = m->d; /* copy, render without the lock */
    pthread_mutex_unlock(&m->mu);
    render_requests(b, &snap);
    render_counter(b, "clipskip_client_disconnects_total", "replies not delivered: the client closed the connection first", snap.disconnects);
    render_counter(b, "clipskip_prompts_total", "prompts encoded by the backend", snap.prompts);
    render_counter(b, "clipskip_batches_total", "batches taken from the queue", snap.batches);
    render_counter(b, "clipskip_encode_calls_total", "encoder calls (one per group of compatible requests and tower)", snap.encode_calls);
    render_counter(b, "clipskip_backend_errors_total", "encoder calls that failed", snap.backend_errors);
    render_counter(b, "clipskip_health_probes_total", "backend probes run for /health", snap.probes);
    render_gauges(b, g);
    render_hist(b, "clipskip_batch_size", "prompts per batch taken from the queue", &snap.hist[CS_H_BATCH_PROMPTS]);
    render_hist(b, "clipskip_queue_duration_seconds", "time a request waited for its batch", &snap.hist[CS_H_QUEUE_S]);
    render_hist(b, "clipskip_tokenize_duration_seconds", "tokenization time per request", &snap.hist[CS_H_TOKENIZE_S]);
    render_hist(b, "clipskip_inference_duration_seconds", "backend time per batch", &snap.hist[CS_H_INFERENCE_S]);
    render_hist(b, "clipskip_request_duration_seconds", "/encode time from arrival to reply", &snap.hist[CS_H_TOTAL_S]);
}
