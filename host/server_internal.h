/* Shared by server.c (daemon, lifecycle, small routes) and server_encode.c (/encode,
 * /tokenize). Not installed. */
#ifndef CLIPSKIP_SERVER_INTERNAL_H
#define CLIPSKIP_SERVER_INTERNAL_H

#include "batcher.h"
#include "lru_cache.h"
#include "metrics.h"
#include "server.h"
#include "st_buffer.h"

#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>

struct cs_server {
    const clipskip_model *model;
    const clipskip_tokenizer *tok;
    cs_server_params p;
    char *host, *api_key, *model_id;    /* owned copies */
    int n_towers;
    clipskip_tower_info info[CS_JOB_MAX_TOWERS];
    struct MHD_Daemon *daemon;
    int port, listen_fd;
    cs_batcher *batcher;
    cs_cache *cache;
    cs_metrics metrics;
    pthread_mutex_t mu;
    pthread_cond_t idle;                /* in_flight reached 0 */
    int64_t in_flight;                  /* requests received and not completed */
    int64_t admitted;                   /* /encode requests counted against the limit */
    atomic_int stopping;
    int shut_down;
};

#define CS_MAX_REPLY_HEADERS 12

struct cs_encode_req;

/* One HTTP request, from its first access-handler call to MHD's completion callback. */
typedef struct cs_req {
    cs_server *srv;
    struct MHD_Connection *conn;
    cs_route route;
    double t_arrival;
    cs_buf body;
    int too_large;
    int waiting;                        /* a job was submitted and the connection suspended */
    atomic_int job_done;
    int admitted;
    int replied;
    char hdr_name[CS_MAX_REPLY_HEADERS][32], hdr_value[CS_MAX_REPLY_HEADERS][64];
    int n_hdrs;
    struct cs_encode_req *enc;          /* /encode state */
    cs_job probe;                       /* /health probe */
    int32_t probe_ids[CLIPSKIP_CONTEXT];
    float *probe_out;
} cs_req;

/* ---- replies (server.c). Each returns what the access handler returns. */
void cs_req_header(cs_req *r, const char *name, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
/* body is malloc'd and taken over (freed by MHD after sending). */
enum MHD_Result cs_reply(cs_req *r, unsigned status, const char *content_type, char *body,
                         size_t len);
enum MHD_Result cs_reply_error(cs_req *r, unsigned status, const char *error_type,
                               const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;
/* Suspend the connection and queue the job; done() must call cs_req_job_done. */
enum MHD_Result cs_req_submit(cs_req *r, cs_job *job);
void cs_req_job_done(cs_job *job);      /* batcher thread: mark done, resume the connection */
/* Count the request against --max-concurrent-requests; 0 when over the limit. */
int cs_req_admit(cs_req *r);
void cs_server_log(cs_server *s, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* ---- routes (server_encode.c) */
enum MHD_Result cs_route_encode(cs_req *r);        /* body complete */
enum MHD_Result cs_route_encode_finish(cs_req *r); /* after the batcher answered */
enum MHD_Result cs_route_tokenize(cs_req *r);
void cs_encode_req_free(struct cs_encode_req *e);

#endif
