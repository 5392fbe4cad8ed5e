/* A small blocking thread pool for the CPU backend's row-parallel loops.
 *
 * Idle workers sleep on a condition variable instead of spinning, so they do not fight
 * OpenBLAS's own threads for the cores between GEMMs (libgomp's spinning cost ~20% here).
 * Tasks are claimed from an atomic counter; which thread runs a task never changes its
 * arithmetic, so results do not depend on the thread count. */
#ifndef CLIPSKIP_THREADPOOL_H
#define CLIPSKIP_THREADPOOL_H

#include <stdint.h>

typedef struct cs_pool cs_pool;
typedef void (*cs_task_fn)(void *ctx, int64_t task);

/* n_threads total, the calling thread included (n_threads - 1 workers). NULL on failure. */
cs_pool *cs_pool_new(int n_threads);
void cs_pool_free(cs_pool *p);
int cs_pool_threads(const cs_pool *p);
/* Run fn(ctx, t) for t in 0..n_tasks-1 and return when all are done. Not reentrant. */
void cs_pool_run(cs_pool *p, int64_t n_tasks, cs_task_fn fn, void *ctx);

#endif
