/* clipskip serve: the HTTP encoding service (libmicrohttpd), its routes and its lifecycle.
 *
 *   POST /encode    prompts or token ids -> hidden / pooled / text_embeds (json|npy|safetensors)
 *   POST /tokenize  prompts -> ids, tokens, EOS position, truncation
 *   GET  /health    200 when the backend answered (a probe runs when it has been idle)
 *   GET  /info      model, towers, backend, device, limits, version
 *   GET  /metrics   Prometheus text
 * Errors use text-embeddings-inference's shape: {"error": "...", "error_type": "..."}.
 * docs/serve.md describes the API for users. */
#ifndef CLIPSKIP_SERVER_H
#define CLIPSKIP_SERVER_H

#include "clipskip.h"

#include <stddef.h>

typedef struct {
    const char *host;            /* bind address (default "127.0.0.1": loopback only) */
    int port;                    /* 0: any free port; cs_server_port() tells which */
    int http_threads;            /* HTTP worker threads: parse, tokenize, format replies */
    int max_batch_prompts;       /* prompts per batch taken from the queue */
    int max_wait_us;             /* longest wait for more prompts when the queue is short */
    int max_client_batch;        /* inputs per request */
    int max_concurrent_requests; /* /encode requests being handled; more get 429 */
    size_t payload_limit;        /* request body bytes; more get 413 */
    size_t cache_bytes;          /* result cache bound; 0 disables the cache */
    const char *api_key;         /* NULL: no authentication; else "Authorization: Bearer KEY" */
    const char *model_id;        /* shown by /info (the model path) */
    double shutdown_timeout_s;   /* longest wait for in-flight replies on shutdown */
    clipskip_encoder_params encoder;
    void (*log)(void *user, const char *line); /* lifecycle and HTTP-layer messages; NULL: none */
    void *log_user;
} cs_server_params;

cs_server_params cs_server_default_params(void);

typedef struct cs_server cs_server;

/* Start the batcher (encoder made and probed on its thread) and the HTTP daemon; the model
 * is borrowed and must outlive the server. */
clipskip_status cs_server_start(const clipskip_model *model, const cs_server_params *p,
                                cs_server **out);
int cs_server_port(const cs_server *s);
/* Graceful stop: stop accepting connections, answer 503 to requests that start from now on,
 * wait until every request already received has been answered (the batcher finishes the
 * queue), then stop the batcher and the daemon. Returns how many requests were still
 * unanswered at shutdown_timeout_s (0 normally). */
int cs_server_shutdown(cs_server *s);
void cs_server_free(cs_server *s); /* shuts down first when still running */
/* Test hook: the next n encoder calls fail as a device fault would (424 to their requests). */
void cs_server_inject_failures(cs_server *s, int n);

#endif
