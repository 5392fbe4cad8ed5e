/* The dynamic batcher: one thread owns the clipskip_encoder (encoders are single-threaded) and
 * takes jobs from one queue in arrival order. When the backend is free it takes whole jobs up
 * to max_batch_prompts prompts (the first job always, even a larger one), waiting at most
 * max_wait_us after the oldest job arrived when the queue holds fewer prompts than that.
 *
 * Jobs in a batch may differ in clip skip and final LN: those are per-row options, so they
 * share one encoder call. Outputs, dtype and tower set the shape of the output buffers, so
 * the batch is split into groups of equal (outputs, dtype, tower), one call per group and
 * tower, in order of first appearance. A failed call with several jobs is retried job by job,
 * so one job's failure never fails the others. */
#ifndef CLIPSKIP_BATCHER_H
#define CLIPSKIP_BATCHER_H

#include "clipskip.h"
#include "metrics.h"

#include <stdint.h>

#define CS_JOB_MAX_TOWERS 2

typedef struct cs_job cs_job;
typedef void (*cs_job_done_fn)(cs_job *job);

struct cs_job {
    /* ---- set by the submitter, read-only for the batcher */
    int32_t n_rows;
    const int32_t *ids[CS_JOB_MAX_TOWERS]; /* (n_rows, 77) for each tower of the range, in order */
    clipskip_row_options row;             /* the same for every row of the job */
    uint32_t outputs;                     /* CLIPSKIP_OUT_* */
    clipskip_dtype dtype;                 /* F32 or F16 */
    int32_t tower;                        /* tower index or CLIPSKIP_TOWER_ALL */
    /* destination arrays, job row i goes to row map[i] (map NULL: row i):
     * hidden (N, 77, hidden_dim), pooled (N, pooled_dim), embeds (N, embeds_dim) */
    char *hidden, *pooled, *embeds;
    const int32_t *map;
    int probe;                            /* a /health probe: counted apart */
    cs_job_done_fn done;                  /* called once, from the batcher thread */
    void *user;
    /* ---- set by the batcher before done() */
    clipskip_status status;
    char error[512];
    double t_queued, t_start, t_done;     /* monotonic seconds (cs_monotonic) */
    uint64_t batch_id;
    int32_t batch_prompts;                /* prompts in the whole batch it rode in */
    /* ---- batcher private */
    cs_job *next;
};

typedef struct {
    int max_batch_prompts;
    int max_wait_us;
    clipskip_encoder_params encoder;      /* the encoder is made inside the batcher thread */
} cs_batcher_params;

typedef struct cs_batcher cs_batcher;

/* Start the thread, make the encoder there and run one probe encode; returns after both
 * succeeded (or with their failure). metrics is borrowed. */
clipskip_status cs_batcher_start(const clipskip_model *model, const cs_batcher_params *p,
                                 cs_metrics *metrics, cs_batcher **out);
/* Queue a job (t_queued is set here). Fails with CLIPSKIP_ERR_BACKEND after cs_batcher_stop
 * began. done() may run before this returns. */
clipskip_status cs_batcher_submit(cs_batcher *b, cs_job *job);
/* From now on take batches without waiting for more prompts (shutdown: answer what is
 * queued at once); submissions are still accepted. */
void cs_batcher_drain(cs_batcher *b);
/* Finish every queued job, then end the thread and free the encoder. */
void cs_batcher_stop(cs_batcher *b);
void cs_batcher_free(cs_batcher *b);

typedef struct {
    int64_t queue_requests, queue_prompts;
    int healthy;                 /* last encoder call succeeded */
    double last_ok;              /* cs_monotonic() of the last successful call, 0 if none */
    int64_t weight_bytes, activation_bytes;
} cs_batcher_state;

void cs_batcher_get_state(cs_batcher *b, cs_batcher_state *out);
/* Backend and device as chosen at init ("cpu", "cpu: 2 threads"), valid while b lives. */
const char *cs_batcher_backend(const cs_batcher *b);
const char *cs_batcher_device(const cs_batcher *b);
/* Test hook: the next n encoder calls fail with CLIPSKIP_ERR_BACKEND (as a device fault
 * would), so tests can check the 424 / 503 paths and that the service keeps serving. */
void cs_batcher_inject_failures(cs_batcher *b, int n);

double cs_monotonic(void);

#endif
