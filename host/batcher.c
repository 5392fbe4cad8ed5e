/* Dynamic batcher: queue, batch formation, grouped encoder calls, scatter to the jobs. */
#include "batcher.h"

#include "internal.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Grow-only buffers the batcher thread reuses from batch to batch. */
typedef struct {
    void *p;
    size_t cap;
} scratch;

struct cs_batcher {
    const clipskip_model *model;
    cs_batcher_params p;
    cs_metrics *metrics;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cond;       /* queue changed or stop asked */
    pthread_cond_t ready_cond; /* init finished */
    int ready, started;
    clipskip_status init_status;
    char init_error[512];
    cs_job *head, *tail;       /* arrival order */
    int64_t q_requests, q_prompts;
    int stopping, draining, healthy, inject;
    double last_ok;
    int64_t weight_bytes, activation_bytes;
    char backend[16], device[128];
    /* ---- batcher thread only */
    clipskip_encoder *enc;
    uint64_t next_batch_id;
    int n_towers;
    clipskip_tower_info info[CS_JOB_MAX_TOWERS];
    scratch jobs, ids, rows, hidden, pooled, embeds;
};

double cs_monotonic(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static void *scratch_get(scratch *s, size_t bytes) {
    if (bytes <= s->cap) return s->p;
    void *p = realloc(s->p, bytes);
    if (!p) return NULL;
    s->p = p;
    s->cap = bytes;
    return p;
}

/* ------------------------------------------------------------------ one encoder call */

static clipskip_status do_encode(cs_batcher *b, const int32_t *ids, int32_t n,
                                 const clipskip_encode_options *o, clipskip_outputs *out) {
    pthread_mutex_lock(&b->mu);
    int inject = b->inject > 0;
    b->inject -= inject;
    pthread_mutex_unlock(&b->mu);
    clipskip_status st = inject ? cs_fail(CLIPSKIP_ERR_BACKEND, "injected backend failure (test hook)")
                                : clipskip_encode_ids(b->enc, ids, n, o, out);
    pthread_mutex_lock(&b->mu);
    b->healthy = st == CLIPSKIP_OK;
    if (st == CLIPSKIP_OK) b->last_ok = cs_monotonic();
    pthread_mutex_unlock(&b->mu);
    return st;
}

/* Copy rows of one tower's output (n, rows_of, d) into each job's destination, at column col
 * of rows that are stride wide. */
static void scatter(cs_job **jobs, int n_jobs, const char *src, size_t esz, int32_t d,
                    int32_t stride, int32_t col, int which) {
    for (int j = 0; j < n_jobs; j++) {
        cs_job *job = jobs[j];
        char *dst = which == 0 ? job->hidden : which == 1 ? job->pooled : job->embeds;
        size_t per = which == 0 ? CLIPSKIP_CONTEXT : 1; /* positions per row */
        for (int32_t i = 0; i < job->n_rows; i++, src += per * (size_t)d * esz) {
            size_t r = (size_t)(job->map ? job->map[i] : i);
            char *row = dst + r * per * (size_t)stride * esz;
            if (stride == d) {
                memcpy(row, src, per * (size_t)d * esz);
                continue;
            }
            for (size_t t = 0; t < per; t++)
                memcpy(row + (t * stride + col) * esz, src + t * d * esz, (size_t)d * esz);
        }
    }
}

/* ------------------------------------------------------------------ one group */

typedef struct {
    const int32_t *ids;
    const clipskip_row_options *per_row;
    int32_t n;
} group_input;

/* ids and row options of tower k of the range for every row of the group. */
static clipskip_status gather(cs_batcher *b, cs_job **jobs, int n_jobs, int k, group_input *in) {
    int same = 1;
    in->n = 0;
    for (int j = 0; j < n_jobs; j++) {
        in->n += jobs[j]->n_rows;
        same &= jobs[j]->row.clip_skip == jobs[0]->row.clip_skip &&
                jobs[j]->row.final_ln == jobs[0]->row.final_ln;
    }
    in->per_row = NULL;
    in->ids = jobs[0]->ids[k];
    if (n_jobs == 1) return CLIPSKIP_OK;
    size_t row_bytes = CLIPSKIP_CONTEXT * sizeof(int32_t);
    int32_t *ids = scratch_get(&b->ids, (size_t)in->n * row_bytes);
    clipskip_row_options *rows = same ? NULL : scratch_get(&b->rows, (size_t)in->n * sizeof *rows);
    if (!ids || (!same && !rows)) return cs_fail(CLIPSKIP_ERR_NOMEM, "batcher: out of memory for %d rows", in->n);
    for (int j = 0, r = 0; j < n_jobs; r += jobs[j]->n_rows, j++) {
        memcpy(ids + (size_t)r * CLIPSKIP_CONTEXT, jobs[j]->ids[k], jobs[j]->n_rows * row_bytes);
        for (int32_t i = 0; rows && i < jobs[j]->n_rows; i++) rows[r + i] = jobs[j]->row;
    }
    in->ids = ids;
    in->per_row = rows;
    return CLIPSKIP_OK;
}

static void tower_range(const cs_batcher *b, int32_t tower, int *t0, int *t1) {
    *t0 = tower == CLIPSKIP_TOWER_ALL ? 0 : tower;
    *t1 = tower == CLIPSKIP_TOWER_ALL ? b->n_towers : tower + 1;
}

/* Output buffers of one call: the job's own arrays when one job fills them as they are,
 * else scratch that scatter() copies from. */
static clipskip_status call_outputs(cs_batcher *b, cs_job *job0, int direct, int32_t n,
                                    uint32_t want, const clipskip_tower_info *in,
                                    clipskip_outputs *out) {
    size_t esz = cs_dtype_size(job0->dtype);
    if (direct) {
        *out = (clipskip_outputs){job0->hidden, job0->pooled, job0->embeds};
        return CLIPSKIP_OK;
    }
    *out = (clipskip_outputs){0};
    if (want & CLIPSKIP_OUT_HIDDEN)
        out->hidden = scratch_get(&b->hidden, (size_t)n * CLIPSKIP_CONTEXT * in->d_model * esz);
    if (want & CLIPSKIP_OUT_POOLED) out->pooled = scratch_get(&b->pooled, (size_t)n * in->d_model * esz);
    if (want & CLIPSKIP_OUT_TEXT_EMBEDS)
        out->text_embeds = scratch_get(&b->embeds, (size_t)n * (in->proj_dim ? in->proj_dim : 1) * esz);
    if (((want & CLIPSKIP_OUT_HIDDEN) && !out->hidden) || ((want & CLIPSKIP_OUT_POOLED) && !out->pooled) ||
        ((want & CLIPSKIP_OUT_TEXT_EMBEDS) && !out->text_embeds))
        return cs_fail(CLIPSKIP_ERR_NOMEM, "batcher: out of memory for the outputs of %d rows", n);
    return CLIPSKIP_OK;
}

/* Jobs of equal (outputs, dtype, tower): one encoder call per tower of the range. */
static clipskip_status encode_group(cs_batcher *b, cs_job **jobs, int n_jobs, int *calls) {
    cs_job *j0 = jobs[0];
    int t0, t1;
    tower_range(b, j0->tower, &t0, &t1);
    int32_t stride = 0, col = 0;
    for (int t = t0; t < t1; t++) stride += b->info[t].d_model;
    size_t esz = cs_dtype_size(j0->dtype);
    for (int t = t0; t < t1; col += b->info[t].d_model, t++) {
        uint32_t want = (j0->outputs & CLIPSKIP_OUT_HIDDEN) |
                        (t == t1 - 1 ? j0->outputs & (CLIPSKIP_OUT_POOLED | CLIPSKIP_OUT_TEXT_EMBEDS) : 0);
        if (!want) continue;
        int direct = n_jobs == 1 && !j0->map && t1 - t0 == 1;
        group_input in;
        clipskip_outputs out;
        CS_TRY(gather(b, jobs, n_jobs, t - t0, &in));
        CS_TRY(call_outputs(b, j0, direct, in.n, want, &b->info[t], &out));
        clipskip_encode_options o = clipskip_encode_default_options();
        o.row = j0->row;
        o.per_row = in.per_row;
        o.outputs = want;
        o.out_dtype = j0->dtype;
        o.tower = t;
        (*calls)++;
        CS_TRY(do_encode(b, in.ids, in.n, &o, &out));
        if (direct) continue;
        int32_t d = b->info[t].d_model;
        if (want & CLIPSKIP_OUT_HIDDEN) scatter(jobs, n_jobs, out.hidden, esz, d, stride, col, 0);
        if (want & CLIPSKIP_OUT_POOLED) scatter(jobs, n_jobs, out.pooled, esz, d, d, 0, 1);
        if (want & CLIPSKIP_OUT_TEXT_EMBEDS)
            scatter(jobs, n_jobs, out.text_embeds, esz, b->info[t].proj_dim, b->info[t].proj_dim, 0, 2);
    }
    return CLIPSKIP_OK;
}

static void set_result(cs_job **jobs, int n, clipskip_status st) {
    for (int j = 0; j < n; j++) {
        jobs[j]->status = st;
        if (st != CLIPSKIP_OK)
            snprintf(jobs[j]->error, sizeof jobs[j]->error, "%s: %s", clipskip_status_str(st),
                     clipskip_last_error());
    }
}

/* A group, retried job by job when the shared call fails. */
static void run_group(cs_batcher *b, cs_job **jobs, int n, int *calls, int *failures) {
    clipskip_status st = encode_group(b, jobs, n, calls);
    *failures += st != CLIPSKIP_OK;
    if (st == CLIPSKIP_OK || n == 1) {
        set_result(jobs, n, st);
        return;
    }
    for (int j = 0; j < n; j++) {
        st = encode_group(b, &jobs[j], 1, calls);
        *failures += st != CLIPSKIP_OK;
        set_result(&jobs[j], 1, st);
    }
}

static int same_group(const cs_job *a, const cs_job *c) {
    return a->outputs == c->outputs && a->dtype == c->dtype && a->tower == c->tower;
}

/* Reorder jobs[0..n) so each group is contiguous (stable: groups in order of first
 * appearance, jobs in arrival order within a group) and run the groups. */
static void run_batch(cs_batcher *b, cs_job **jobs, int n, int *calls, int *failures) {
    for (int g0 = 0; g0 < n;) {
        int g1 = g0 + 1;
        for (int j = g0 + 1; j < n; j++) {
            if (!same_group(jobs[g0], jobs[j])) continue;
            cs_job *moved = jobs[j];
            memmove(&jobs[g1 + 1], &jobs[g1], (size_t)(j - g1) * sizeof *jobs);
            jobs[g1++] = moved;
        }
        run_group(b, jobs + g0, g1 - g0, calls, failures);
        g0 = g1;
    }
}

/* ------------------------------------------------------------------ queue */

static void deadline_ts(double t, struct timespec *ts) {
    ts->tv_sec = (time_t)t;
    ts->tv_nsec = (long)((t - (double)ts->tv_sec) * 1e9);
    if (ts->tv_nsec >= 1000000000L) ts->tv_sec++, ts->tv_nsec -= 1000000000L;
}

/* Block until a batch is due; detach it. NULL when stopping with an empty queue. */
static cs_job *take_batch(cs_batcher *b, int64_t *n_prompts, int *n_jobs) {
    pthread_mutex_lock(&b->mu);
    for (;;) {
        if (!b->head) {
            if (b->stopping) {
                pthread_mutex_unlock(&b->mu);
                return NULL;
            }
            pthread_cond_wait(&b->cond, &b->mu);
            continue;
        }
        double due = b->head->t_queued + b->p.max_wait_us * 1e-6;
        if (b->q_prompts >= b->p.max_batch_prompts || b->stopping || b->draining || cs_monotonic() >= due)
            break;
        struct timespec ts;
        deadline_ts(due, &ts);
        pthread_cond_timedwait(&b->cond, &b->mu, &ts);
    }
    cs_job *first = b->head, *last = first;
    int64_t n = first->n_rows;
    int count = 1;
    while (last->next && n + last->next->n_rows <= b->p.max_batch_prompts) {
        last = last->next;
        n += last->n_rows;
        count++;
    }
    b->head = last->next;
    if (!b->head) b->tail = NULL;
    last->next = NULL;
    b->q_requests -= count;
    b->q_prompts -= n;
    pthread_mutex_unlock(&b->mu);
    *n_prompts = n;
    *n_jobs = count;
    return first;
}

static void process(cs_batcher *b, cs_job *list, int64_t n_prompts, int n_jobs) {
    cs_job **jobs = scratch_get(&b->jobs, (size_t)n_jobs * sizeof *jobs);
    double t0 = cs_monotonic();
    uint64_t id = ++b->next_batch_id;
    int calls = 0, failures = 0, probes = 0, i = 0;
    for (cs_job *j = list; j; j = j->next) {
        j->t_start = t0, j->batch_id = id, j->batch_prompts = (int32_t)n_prompts;
        probes += j->probe;
        if (jobs) jobs[i++] = j;
    }
    if (jobs) {
        run_batch(b, jobs, n_jobs, &calls, &failures);
    } else { /* no memory even for the list: fail every job, keep serving */
        cs_fail(CLIPSKIP_ERR_NOMEM, "batcher: out of memory for a batch of %d requests", n_jobs);
        for (cs_job *j = list; j; j = j->next) set_result(&j, 1, CLIPSKIP_ERR_NOMEM);
    }
    double t1 = cs_monotonic();
    size_t wb = 0, ab = 0;
    clipskip_encoder_memory(b->enc, &wb, &ab);
    pthread_mutex_lock(&b->mu);
    b->weight_bytes = (int64_t)wb, b->activation_bytes = (int64_t)ab;
    pthread_mutex_unlock(&b->mu);
    cs_metrics_batch(b->metrics, n_prompts, calls, t1 - t0, failures);
    if (probes) cs_metrics_add(b->metrics, &b->metrics->d.probes, (uint64_t)probes);
    for (cs_job *j = list, *next; j; j = next) {
        next = j->next; /* done() may free j */
        j->t_done = t1;
        j->done(j);
    }
}

/* ------------------------------------------------------------------ thread and lifecycle */

/* One row at the shallowest depth of tower 0: the backend answers or the server won't start. */
static clipskip_status startup_probe(cs_batcher *b) {
    int32_t ids[CLIPSKIP_CONTEXT];
    ids[0] = CLIPSKIP_BOS, ids[1] = CLIPSKIP_EOS;
    for (int i = 2; i < CLIPSKIP_CONTEXT; i++) ids[i] = b->info[0].pad_id;
    float *h = scratch_get(&b->hidden, (size_t)CLIPSKIP_CONTEXT * b->info[0].d_model * sizeof(float));
    if (!h) return cs_fail(CLIPSKIP_ERR_NOMEM, "batcher: out of memory for the probe");
    clipskip_encode_options o = clipskip_encode_default_options();
    o.row.clip_skip = b->info[0].n_layers;
    clipskip_outputs out = {.hidden = h};
    return do_encode(b, ids, 1, &o, &out);
}

static clipskip_status thread_init(cs_batcher *b) {
    b->n_towers = clipskip_model_n_towers(b->model);
    if (b->n_towers < 1 || b->n_towers > CS_JOB_MAX_TOWERS)
        return cs_fail(CLIPSKIP_ERR_UNSUPPORTED, "batcher: %d towers (1..%d supported)", b->n_towers, CS_JOB_MAX_TOWERS);
    for (int t = 0; t < b->n_towers; t++) CS_TRY(clipskip_model_tower_info(b->model, t, &b->info[t]));
    CS_TRY(clipskip_encoder_init(b->model, &b->p.encoder, &b->enc));
    snprintf(b->backend, sizeof b->backend, "%s",
             clipskip_encoder_backend(b->enc) == CLIPSKIP_BACKEND_CUDA ? "cuda" : "cpu");
    snprintf(b->device, sizeof b->device, "%s", clipskip_encoder_device(b->enc));
    CS_TRY(startup_probe(b));
    size_t wb = 0, ab = 0;
    clipskip_encoder_memory(b->enc, &wb, &ab);
    pthread_mutex_lock(&b->mu);
    b->weight_bytes = (int64_t)wb, b->activation_bytes = (int64_t)ab;
    pthread_mutex_unlock(&b->mu);
    return CLIPSKIP_OK;
}

static void *batcher_main(void *arg) {
    cs_batcher *b = arg;
    clipskip_status st = thread_init(b);
    pthread_mutex_lock(&b->mu);
    b->init_status = st;
    snprintf(b->init_error, sizeof b->init_error, "%s", st ? clipskip_last_error() : "");
    b->ready = 1;
    pthread_cond_broadcast(&b->ready_cond);
    pthread_mutex_unlock(&b->mu);
    if (st != CLIPSKIP_OK) {
        clipskip_encoder_free(b->enc);
        b->enc = NULL;
        return NULL;
    }
    int64_t n_prompts;
    int n_jobs;
    cs_job *list;
    while ((list = take_batch(b, &n_prompts, &n_jobs))) process(b, list, n_prompts, n_jobs);
    clipskip_encoder_free(b->enc);
    b->enc = NULL;
    return NULL;
}

clipskip_status cs_batcher_start(const clipskip_model *model, const cs_batcher_params *p,
                                 cs_metrics *metrics, cs_batcher **out) {
    *out = NULL;
    if (p->max_batch_prompts < 1 || p->max_wait_us < 0)
        return cs_fail(CLIPSKIP_ERR_INVALID_ARG, "batcher: max_batch_prompts %d (>= 1), max_wait_us %d (>= 0)",
                       p->max_batch_prompts, p->max_wait_us);
    cs_batcher *b = cs_calloc(1, sizeof *b);
    if (!b) return CLIPSKIP_ERR_NOMEM;
    b->model = model, b->p = *p, b->metrics = metrics;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&b->mu, NULL);
    pthread_cond_init(&b->cond, &ca);
    pthread_cond_init(&b->ready_cond, NULL);
    pthread_condattr_destroy(&ca);
    if (pthread_create(&b->thread, NULL, batcher_main, b) != 0) {
        cs_batcher_free(b);
        return cs_fail(CLIPSKIP_ERR_NOMEM, "batcher: cannot create its thread");
    }
    b->started = 1;
    pthread_mutex_lock(&b->mu);
    while (!b->ready) pthread_cond_wait(&b->ready_cond, &b->mu);
    pthread_mutex_unlock(&b->mu);
    if (b->init_status != CLIPSKIP_OK) {
        clipskip_status st = cs_fail(b->init_status, "%s", b->init_error);
        cs_batcher_free(b);
        return st;
    }
    *out = b;
    return CLIPSKIP_OK;
}

clipskip_status cs_batcher_submit(cs_batcher *b, cs_job *job) {
    job->next = NULL;
    job->status = CLIPSKIP_OK;
    job->error[0] = 0;
    job->t_queued = cs_monotonic();
    pthread_mutex_lock(&b->mu);
    if (b->stopping) {
        pthread_mutex_unlock(&b->mu);
        return cs_fail(CLIPSKIP_ERR_BACKEND, "the server is shutting down");
    }
    if (b->tail) b->tail->next = job; else b->head = job;
    b->tail = job;
    b->q_requests++;
    b->q_prompts += job->n_rows;
    pthread_cond_signal(&b->cond);
    pthread_mutex_unlock(&b->mu);
    return CLIPSKIP_OK;
}

void cs_batcher_stop(cs_batcher *b) {
    if (!b || !b->started) return;
    pthread_mutex_lock(&b->mu);
    b->stopping = 1;
    pthread_cond_broadcast(&b->cond);
    pthread_mutex_unlock(&b->mu);
    pthread_join(b->thread, NULL);
    b->started = 0;
}

void cs_batcher_drain(cs_batcher *b) {
    pthread_mutex_lock(&b->mu);
    b->draining = 1;
    pthread_cond_broadcast(&b->cond);
    pthread_mutex_unlock(&b->mu);
}

void cs_batcher_free(cs_batcher *b) {
    if (!b) return;
    cs_batcher_stop(b);
    scratch *s[] = {&b->jobs, &b->ids, &b->rows, &b->hidden, &b->pooled, &b->embeds};
    for (size_t i = 0; i < sizeof s / sizeof s[0]; i++) free(s[i]->p);
    pthread_mutex_destroy(&b->mu);
    pthread_cond_destroy(&b->cond);
    pthread_cond_destroy(&b->ready_cond);
    free(b);
}

void cs_batcher_get_state(cs_batcher *b, cs_batcher_state *out) {
    pthread_mutex_lock(&b->mu);
    *out = (cs_batcher_state){b->q_requests, b->q_prompts, b->healthy, b->last_ok,
                              b->weight_bytes, b->activation_bytes};
    pthread_mutex_unlock(&b->mu);
}

const char *cs_batcher_backend(const cs_batcher *b) { return b->backend; }
const char *cs_batcher_device(const cs_batcher *b) { return b->device; }

void cs_batcher_inject_failures(cs_batcher *b, int n) {
    pthread_mutex_lock(&b->mu);
    b->inject = n;
    pthread_mutex_unlock(&b->mu);
}
