/* The HTTP side of clipskip serve: libmicrohttpd daemon (thread pool, suspend/resume while a
 * request waits for the batcher), routing, auth, body limits, replies, /health, /info,
 * /metrics, and the graceful shutdown. /encode and /tokenize live in server_encode.c. */
#include "server_internal.h"

#include "internal.h"

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <netdb.h>
#include <sys/socket.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define HEALTH_FRESH_S 5.0 /* /health trusts a successful encode this recent without a probe */

cs_server_params cs_server_default_params(void) {
    cs_server_params p = {
        .host = "127.0.0.1",
        .port = 8080,
        .http_threads = 4,
        .max_batch_prompts = 64,
        .max_wait_us = 1000,
        .max_client_batch = 32,
        .max_concurrent_requests = 512,
        .payload_limit = 2000000,
        .cache_bytes = (size_t)256 << 20,
        .shutdown_timeout_s = 30.0,
        .encoder = clipskip_encoder_default_params(),
    };
    return p;
}

void cs_server_log(cs_server *s, const char *fmt, ...) {
    if (!s->p.log) return;
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    s->p.log(s->p.log_user, line);
}

static void mhd_logger(void *cls, const char *fmt, va_list ap) {
    cs_server *s = cls;
    if (!s->p.log) return;
    char line[1024];
    vsnprintf(line, sizeof line, fmt, ap);
    size_t n = strlen(line);
    while (n && (line[n - 1] == '\n' || line[n - 1] == '\r')) line[--n] = 0;
    s->p.log(s->p.log_user, line);
}

/* ------------------------------------------------------------------ replies */

void cs_req_header(cs_req *r, const char *name, const char *fmt, ...) {
    if (r->n_hdrs >= CS_MAX_REPLY_HEADERS) return;
    snprintf(r->hdr_name[r->n_hdrs], sizeof r->hdr_name[0], "%s", name);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->hdr_value[r->n_hdrs], sizeof r->hdr_value[0], fmt, ap);
    va_end(ap);
    r->n_hdrs++;
}

static cs_outcome outcome_of(unsigned status) {
    switch (status) {
    case 200: return CS_OUT_OK;
    case 401: return CS_OUT_UNAUTHORIZED;
    case 404: return CS_OUT_NOT_FOUND;
    case 413: return CS_OUT_PAYLOAD;
    case 424: return CS_OUT_BACKEND;
    case 429: return CS_OUT_OVERLOADED;
    case 503: return CS_OUT_UNHEALTHY;
    default: return CS_OUT_VALIDATION;
    }
}

enum MHD_Result cs_reply(cs_req *r, unsigned status, const char *content_type, char *body,
                         size_t len) {
    struct MHD_Response *resp =
        body ? MHD_create_response_from_buffer_with_free_callback(len, body, free)
             : MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    if (!resp) {
        free(body);
        return MHD_NO; /* MHD closes the connection */
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    for (int i = 0; i < r->n_hdrs; i++) MHD_add_response_header(resp, r->hdr_name[i], r->hdr_value[i]);
    if (atomic_load(&r->srv->stopping)) MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
    enum MHD_Result ok = MHD_queue_response(r->conn, status, resp);
    MHD_destroy_response(resp);
    r->replied = 1;
    cs_metrics_request(&r->srv->metrics, r->route, outcome_of(status));
    return ok;
}

enum MHD_Result cs_reply_error(cs_req *r, unsigned status, const char *error_type,
                               const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    cs_buf b = {0};
    cs_buf_puts(&b, "{\"error\":");
    cs_buf_json_string(&b, msg);
    cs_buf_puts(&b, ",\"error_type\":");
    cs_buf_json_string(&b, error_type);
    cs_buf_puts(&b, "}");
    if (b.failed) {
        cs_buf_free(&b);
        return MHD_NO;
    }
    size_t len;
    char *body = cs_buf_take(&b, &len);
    return cs_reply(r, status, "application/json", body, len);
}

/* ------------------------------------------------------------------ batcher hand-off */

enum MHD_Result cs_req_submit(cs_req *r, cs_job *job) {
    job->done = cs_req_job_done;
    job->user = r;
    r->waiting = 1;
    MHD_suspend_connection(r->conn); /* before submit: done() may resume at once */
    if (cs_batcher_submit(r->srv->batcher, job) != CLIPSKIP_OK) {
        job->status = CLIPSKIP_ERR_BACKEND;
        snprintf(job->error, sizeof job->error, "%s", clipskip_last_error());
        job->t_start = job->t_done = job->t_queued;
        cs_req_job_done(job);
    }
    return MHD_YES;
}

void cs_req_job_done(cs_job *job) {
    cs_req *r = job->user;
    struct MHD_Connection *c = r->conn;
    atomic_store(&r->job_done, 1);
    MHD_resume_connection(c); /* r may be freed by an HTTP thread from here on */
}

int cs_req_admit(cs_req *r) {
    cs_server *s = r->srv;
    pthread_mutex_lock(&s->mu);
    int ok = s->admitted < s->p.max_concurrent_requests;
    s->admitted += ok;
    pthread_mutex_unlock(&s->mu);
    r->admitted = ok;
    return ok;
}

/* ------------------------------------------------------------------ small routes */

static enum MHD_Result route_health(cs_req *r) {
    cs_server *s = r->srv;
    if (atomic_load(&s->stopping)) return cs_reply_error(r, 503, "unhealthy", "the server is shutting down");
    if (r->waiting) { /* the probe came back */
        if (r->probe.status != CLIPSKIP_OK)
            return cs_reply_error(r, 503, "unhealthy", "backend probe failed: %s", r->probe.error);
        return cs_reply(r, 200, "application/json", strdup("{\"status\":\"ok\"}"), 15);
    }
    cs_batcher_state st;
    cs_batcher_get_state(s->batcher, &st);
    if (st.healthy && cs_monotonic() - st.last_ok < HEALTH_FRESH_S)
        return cs_reply(r, 200, "application/json", strdup("{\"status\":\"ok\"}"), 15);
    /* idle or failing: one row at the shallowest depth of tower 0 through the queue */
    r->probe_out = malloc((size_t)CLIPSKIP_CONTEXT * s->info[0].d_model * sizeof(float));
    if (!r->probe_out) return cs_reply_error(r, 503, "unhealthy", "out of memory for the probe");
    r->probe_ids[0] = CLIPSKIP_BOS, r->probe_ids[1] = CLIPSKIP_EOS;
    for (int i = 2; i < CLIPSKIP_CONTEXT; i++) r->probe_ids[i] = s->info[0].pad_id;
    cs_job *j = &r->probe;
    memset(j, 0, sizeof *j);
    j->n_rows = 1;
    j->ids[0] = r->probe_ids;
    j->row = (clipskip_row_options){s->info[0].n_layers, CLIPSKIP_FINAL_LN_AUTO};
    j->outputs = CLIPSKIP_OUT_HIDDEN;
    j->dtype = CLIPSKIP_DTYPE_F32;
    j->tower = 0;
    j->hidden = (char *)r->probe_out;
    j->probe = 1;
    return cs_req_submit(r, j);
}

static cJSON *tower_json(const clipskip_tower_info *in) {
    static const char *clean[] = {"hf", "openclip", "hf-fast"};
    cJSON *t = cJSON_CreateObject();
    cJSON_AddStringToObject(t, "family", cs_family_name(in->family));
    cJSON_AddStringToObject(t, "layout", in->layout ? in->layout : "");
    cJSON_AddNumberToObject(t, "n_layers", in->n_layers);
    cJSON_AddNumberToObject(t, "d_model", in->d_model);
    cJSON_AddNumberToObject(t, "n_heads", in->n_heads);
    cJSON_AddNumberToObject(t, "d_mlp", in->d_mlp);
    cJSON_AddNumberToObject(t, "proj_dim", in->proj_dim);
    cJSON_AddStringToObject(t, "act", in->act == CLIPSKIP_ACT_GELU ? "gelu" : "quick_gelu");
    cJSON_AddStringToObject(t, "dtype", cs_dtype_name(in->file_dtype));
    cJSON_AddNumberToObject(t, "n_params", (double)in->n_params);
    cJSON_AddNumberToObject(t, "pad_id", in->pad_id);
    cJSON_AddNumberToObject(t, "default_clip_skip", in->default_clip_skip);
    cJSON_AddBoolToObject(t, "default_final_ln", in->default_final_ln);
    cJSON_AddStringToObject(t, "default_clean", in->default_clean <= 2 ? clean[in->default_clean] : "hf");
    return t;
}

static enum MHD_Result route_info(cs_req *r) {
    static const char *pipelines[] = {"tower", "sd1", "sd2", "sdxl", "sdxl-refiner"};
    cs_server *s = r->srv;
    cs_batcher_state st;
    cs_batcher_get_state(s->batcher, &st);
    clipskip_pipeline pl = clipskip_model_pipeline(s->model);
    cJSON *o = cJSON_CreateObject(), *towers = cJSON_AddArrayToObject(o, "towers");
    cJSON_AddStringToObject(o, "model_id", s->model_id ? s->model_id : "");
    cJSON_AddStringToObject(o, "model_dtype", cs_dtype_name(s->info[0].file_dtype));
    cJSON_AddStringToObject(o, "pipeline", pl >= 0 && pl <= CLIPSKIP_PIPELINE_SDXL_REFINER ? pipelines[pl] : "tower");
    for (int t = 0; t < s->n_towers; t++) cJSON_AddItemToArray(towers, tower_json(&s->info[t]));
    cJSON_AddStringToObject(o, "backend", cs_batcher_backend(s->batcher));
    cJSON_AddStringToObject(o, "device", cs_batcher_device(s->batcher));
    cJSON_AddNumberToObject(o, "weight_bytes", (double)st.weight_bytes);
    cJSON_AddNumberToObject(o, "activation_bytes", (double)st.activation_bytes);
    cJSON_AddNumberToObject(o, "max_input_length", CLIPSKIP_CONTEXT);
    cJSON_AddNumberToObject(o, "max_batch_prompts", s->p.max_batch_prompts);
    cJSON_AddNumberToObject(o, "max_wait_us", s->p.max_wait_us);
    cJSON_AddNumberToObject(o, "max_client_batch_size", s->p.max_client_batch);
    cJSON_AddNumberToObject(o, "max_concurrent_requests", s->p.max_concurrent_requests);
    cJSON_AddNumberToObject(o, "payload_limit", (double)s->p.payload_limit);
    cJSON_AddNumberToObject(o, "cache_bytes", (double)s->p.cache_bytes);
    cJSON_AddNumberToObject(o, "http_threads", s->p.http_threads);
    cJSON_AddBoolToObject(o, "auth", s->api_key != NULL);
    cJSON_AddStringToObject(o, "version", clipskip_version());
    cJSON_AddStringToObject(o, "build", clipskip_build_info());
    char *js = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (!js) return cs_reply_error(r, 503, "unhealthy", "out of memory");
    /* cJSON's allocator is malloc here (default hooks), so free() in MHD is right */
    return cs_reply(r, 200, "application/json", js, strlen(js));
}

static enum MHD_Result route_metrics(cs_req *r) {
    cs_server *s = r->srv;
    cs_batcher_state st;
    cs_cache_stats cst;
    cs_batcher_get_state(s->batcher, &st);
    cs_cache_get_stats(s->cache, &cst);
    pthread_mutex_lock(&s->mu);
    int64_t in_flight = s->in_flight;
    pthread_mutex_unlock(&s->mu);
    cs_metrics_gauges g = {st.queue_requests, st.queue_prompts, in_flight, cst.entries, cst.bytes,
                           cst.capacity, cst.hits, cst.misses, cst.evictions, st.weight_bytes,
                           st.activation_bytes, st.healthy};
    cs_buf b = {0};
    cs_metrics_render(&s->metrics, &g, &b);
    if (b.failed) {
        cs_buf_free(&b);
        return MHD_NO;
    }
    size_t len;
    char *body = cs_buf_take(&b, &len);
    return cs_reply(r, 200, "text/plain; version=0.0.4; charset=utf-8", body, len);
}

/* ------------------------------------------------------------------ routing */

typedef struct {
    const char *path, *method;
    cs_route route;
} route_def;

static const route_def ROUTES[] = {
    {"/encode", "POST", CS_ROUTE_ENCODE},   {"/tokenize", "POST", CS_ROUTE_TOKENIZE},
    {"/health", "GET", CS_ROUTE_HEALTH},    {"/info", "GET", CS_ROUTE_INFO},
    {"/metrics", "GET", CS_ROUTE_METRICS},
};
#define N_ROUTES (sizeof ROUTES / sizeof ROUTES[0])

/* Constant-time comparison: the time taken does not tell how much of the key matched. */
static int key_matches(const char *given, const char *key) {
    size_t n = strlen(key), m = strlen(given);
    unsigned diff = (unsigned)(n ^ m);
    for (size_t i = 0; i < n; i++) diff |= (unsigned char)key[i] ^ (unsigned char)(i < m ? given[i] : 0);
    return diff == 0;
}

static int authorized(cs_req *r) {
    const char *key = r->srv->api_key;
    if (!key || r->route == CS_ROUTE_HEALTH) return 1;
    const char *h = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    return h && strncmp(h, "Bearer ", 7) == 0 && key_matches(h + 7, key);
}

/* Headers are in: route, method, auth, declared body size. May answer at once. */
static enum MHD_Result first_call(cs_req *r, const char *url, const char *method) {
    const route_def *d = NULL;
    for (size_t i = 0; i < N_ROUTES && !d; i++)
        if (!strcmp(url, ROUTES[i].path)) d = &ROUTES[i];
    if (!d) {
        r->route = CS_ROUTE_OTHER;
        return cs_reply_error(r, 404, "not_found", "no route %s (POST /encode, POST /tokenize, GET /health, GET /info, GET /metrics)", url);
    }
    r->route = d->route;
    int head_ok = !strcmp(d->method, "GET") && !strcmp(method, "HEAD");
    if (strcmp(method, d->method) && !head_ok) {
        cs_req_header(r, MHD_HTTP_HEADER_ALLOW, "%s", d->method);
        return cs_reply_error(r, 405, "validation", "%s takes %s, not %s", d->path, d->method, method);
    }
    if (atomic_load(&r->srv->stopping))
        return cs_reply_error(r, 503, "unhealthy", "the server is shutting down");
    if (!authorized(r)) {
        cs_req_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
        return cs_reply_error(r, 401, "unauthorized", "missing or wrong API key: send the header 'Authorization: Bearer <key>'");
    }
    const char *cl = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (cl && strtoull(cl, NULL, 10) > r->srv->p.payload_limit)
        return cs_reply_error(r, 413, "validation", "body of %s bytes is over the payload limit of %zu bytes (--payload-limit)",
                              cl, r->srv->p.payload_limit);
    return MHD_YES;
}

static void upload(cs_req *r, const char *data, size_t n) {
    if (r->too_large || r->body.len + n > r->srv->p.payload_limit) {
        r->too_large = 1; /* chunked bodies: keep reading, answer 413 at the end */
        return;
    }
    cs_buf_put(&r->body, data, n);
}

/* The whole request is in. */
static enum MHD_Result dispatch(cs_req *r) {
    if (r->too_large)
        return cs_reply_error(r, 413, "validation", "body is over the payload limit of %zu bytes (--payload-limit)",
                              r->srv->p.payload_limit);
    if (r->body.failed) return cs_reply_error(r, 503, "unhealthy", "out of memory for the request body");
    switch (r->route) {
    case CS_ROUTE_ENCODE: return r->waiting ? cs_route_encode_finish(r) : cs_route_encode(r);
    case CS_ROUTE_TOKENIZE: return cs_route_tokenize(r);
    case CS_ROUTE_HEALTH: return route_health(r);
    case CS_ROUTE_INFO: return route_info(r);
    case CS_ROUTE_METRICS: return route_metrics(r);
    default: return cs_reply_error(r, 404, "not_found", "no such route");
    }
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *conn, const char *url,
                                 const char *method, const char *version,
                                 const char *upload_data, size_t *upload_size, void **con_cls) {
    cs_server *s = cls;
    cs_req *r = *con_cls;
    if (!r) {
        r = calloc(1, sizeof *r);
        if (!r) return MHD_NO;
        r->srv = s, r->conn = conn, r->t_arrival = cs_monotonic();
        pthread_mutex_lock(&s->mu);
        s->in_flight++;
        pthread_mutex_unlock(&s->mu);
        *con_cls = r;
        return first_call(r, url, method);
    }
    if (*upload_size) {
        upload(r, upload_data, *upload_size);
        *upload_size = 0;
        return MHD_YES;
    }
    if (r->waiting && !atomic_load(&r->job_done)) return MHD_YES; /* not expected: resumed early */
    return dispatch(r);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe) {
    cs_server *s = cls;
    cs_req *r = *con_cls;
    if (!r) return;
    *con_cls = NULL;
    if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK && toe != MHD_REQUEST_TERMINATED_DAEMON_SHUTDOWN)
        cs_metrics_add(&s->metrics, &s->metrics.d.disconnects, 1);
    cs_encode_req_free(r->enc);
    cs_buf_free(&r->body);
    free(r->probe_out);
    pthread_mutex_lock(&s->mu);
    s->admitted -= r->admitted;
    if (--s->in_flight == 0) pthread_cond_broadcast(&s->idle);
    pthread_mutex_unlock(&s->mu);
    free(r);
}

/* ------------------------------------------------------------------ lifecycle */

static clipskip_status bind_address(const char *host, int port, struct sockaddr_storage *ss,
                                    int *ipv6) {
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    char ps[16];
    snprintf(ps, sizeof ps, "%d", port);
    int rc = getaddrinfo(host, ps, &hints, &res);
    if (rc != 0 || !res)
        return cs_fail(CLIPSKIP_ERR_INVALID_ARG, "serve: cannot resolve host '%s': %s", host, gai_strerror(rc));
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    *ipv6 = res->ai_family == AF_INET6;
    freeaddrinfo(res);
    return CLIPSKIP_OK;
}

static clipskip_status start_daemon(cs_server *s) {
    struct sockaddr_storage ss;
    int ipv6 = 0;
    CS_TRY(bind_address(s->host, s->p.port, &ss, &ipv6));
    /* poll, not epoll: with libmicrohttpd 0.9.75's epoll mode, a client that sent part of a
     * body and closed stayed in CLOSE-WAIT with its request in flight (about 1 in 8 in a
     * loop of such clients; tests/server test_disconnect), so shutdown waited for it. */
    unsigned flags = MHD_USE_POLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG |
                     (ipv6 ? MHD_USE_IPv6 : 0);
    s->daemon = MHD_start_daemon(
        flags, (uint16_t)s->p.port, NULL, NULL, on_access, s,
        MHD_OPTION_EXTERNAL_LOGGER, mhd_logger, s, /* first, so every message goes through it */
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
        MHD_OPTION_THREAD_POOL_SIZE, (unsigned)s->p.http_threads,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)60,
        MHD_OPTION_END);
    if (!s->daemon)
        return cs_fail(CLIPSKIP_ERR_IO, "serve: cannot listen on %s port %d: %s", s->host, s->p.port,
                       errno ? strerror(errno) : "libmicrohttpd refused to start");
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
    s->port = di ? di->port : s->p.port;
    return CLIPSKIP_OK;
}

static clipskip_status check_params(const cs_server_params *p) {
    if (p->http_threads < 1 || p->http_threads > 1024)
        return cs_fail(CLIPSKIP_ERR_INVALID_ARG, "serve: http threads %d (1..1024)", p->http_threads);
    if (p->max_client_batch < 1 || p->max_concurrent_requests < 1 || p->max_batch_prompts < 1)
        return cs_fail(CLIPSKIP_ERR_INVALID_ARG, "serve: max client batch %d, max concurrent requests %d, "
                       "max batch prompts %d must be >= 1", p->max_client_batch,
                       p->max_concurrent_requests, p->max_batch_prompts);
    if (p->port < 0 || p->port > 65535) return cs_fail(CLIPSKIP_ERR_INVALID_ARG, "serve: port %d (0..65535)", p->port);
    return CLIPSKIP_OK;
}

static clipskip_status server_init(cs_server *s, const clipskip_model *m, const cs_server_params *p) {
    s->model = m, s->p = *p, s->listen_fd = -1;
    CS_TRY(check_params(p));
    s->host = strdup(p->host ? p->host : "127.0.0.1");
    s->api_key = p->api_key && *p->api_key ? strdup(p->api_key) : NULL;
    s->model_id = p->model_id ? strdup(p->model_id) : NULL;
    s->cache = cs_cache_new(p->cache_bytes);
    if (!s->host || !s->cache || (p->api_key && *p->api_key && !s->api_key))
        return cs_fail(CLIPSKIP_ERR_NOMEM, "serve: out of memory");
    s->tok = clipskip_model_tokenizer(m);
    s->n_towers = clipskip_model_n_towers(m);
    if (s->n_towers < 1 || s->n_towers > CS_JOB_MAX_TOWERS)
        return cs_fail(CLIPSKIP_ERR_UNSUPPORTED, "serve: the model has %d towers (1..%d supported)", s->n_towers, CS_JOB_MAX_TOWERS);
    for (int t = 0; t < s->n_towers; t++) CS_TRY(clipskip_model_tower_info(m, t, &s->info[t]));
    cs_batcher_params bp = {p->max_batch_prompts, p->max_wait_us, p->encoder};
    if (bp.encoder.max_batch <= 0 || bp.encoder.max_batch == clipskip_encoder_default_params().max_batch)
        bp.encoder.max_batch = p->max_batch_prompts > p->max_client_batch ? p->max_batch_prompts : p->max_client_batch;
    CS_TRY(cs_batcher_start(m, &bp, &s->metrics, &s->batcher));
    return start_daemon(s);
}

clipskip_status cs_server_start(const clipskip_model *model, const cs_server_params *p,
                                cs_server **out) {
    if (!model || !p || !out) return cs_fail(CLIPSKIP_ERR_INVALID_ARG, "serve: NULL argument");
    *out = NULL;
    cs_server *s = cs_calloc(1, sizeof *s);
    if (!s) return CLIPSKIP_ERR_NOMEM;
    cs_metrics_init(&s->metrics);
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->idle, NULL);
    clipskip_status st = server_init(s, model, p);
    if (st != CLIPSKIP_OK) {
        s->shut_down = 1; /* nothing was served */
        cs_server_free(s);
        return st;
    }
    cs_server_log(s, "listening on %s:%d (%s, %s)", s->host, s->port, cs_batcher_backend(s->batcher),
                  cs_batcher_device(s->batcher));
    *out = s;
    return CLIPSKIP_OK;
}

int cs_server_port(const cs_server *s) { return s->port; }

static int wait_idle(cs_server *s, double timeout_s) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    double end = (double)ts.tv_sec + ts.tv_nsec * 1e-9 + timeout_s;
    ts.tv_sec = (time_t)end;
    ts.tv_nsec = (long)((end - (double)ts.tv_sec) * 1e9);
    pthread_mutex_lock(&s->mu);
    while (s->in_flight > 0)
        if (pthread_cond_timedwait(&s->idle, &s->mu, &ts) == ETIMEDOUT) break;
    int left = (int)s->in_flight;
    pthread_mutex_unlock(&s->mu);
    return left;
}

int cs_server_shutdown(cs_server *s) {
    if (s->shut_down) return 0;
    s->shut_down = 1;
    atomic_store(&s->stopping, 1);
    int left = 0;
    if (s->daemon) {
        s->listen_fd = MHD_quiesce_daemon(s->daemon); /* no new connections */
        /* Stop listening now, so new clients are refused instead of waiting in the backlog;
         * the descriptor itself stays open until after MHD_stop_daemon, as MHD requires. */
        if (s->listen_fd >= 0) shutdown(s->listen_fd, SHUT_RDWR);
        cs_batcher_drain(s->batcher);
        cs_server_log(s, "shutting down: answering requests in flight");
        left = wait_idle(s, s->p.shutdown_timeout_s);
        if (left) cs_server_log(s, "%d request(s) still unanswered after %.0f s", left, s->p.shutdown_timeout_s);
    }
    cs_batcher_stop(s->batcher); /* finishes the queue: no connection stays suspended */
    if (s->daemon) MHD_stop_daemon(s->daemon);
    s->daemon = NULL;
    if (s->listen_fd >= 0) close(s->listen_fd);
    s->listen_fd = -1;
    return left;
}

void cs_server_free(cs_server *s) {
    if (!s) return;
    cs_server_shutdown(s);
    cs_batcher_free(s->batcher);
    cs_cache_free(s->cache);
    cs_metrics_destroy(&s->metrics);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->idle);
    free(s->host), free(s->api_key), free(s->model_id);
    free(s);
}

void cs_server_inject_failures(cs_server *s, int n) { cs_batcher_inject_failures(s->batcher, n); }
