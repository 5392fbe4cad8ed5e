/* clipskip serve: the HTTP encoding service (host/server.c) as a program: options, model,
 * signals (SIGTERM/SIGINT: graceful shutdown, exit 0). */
#include "cmds.h"
#include "common.h"
#include "opts.h"
#include "server.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct {
    const char *model, *vocab, *host, *api_key;
    int random, port, backend, threads, http_threads, max_batch_prompts, max_wait_us;
    int max_client_batch, max_concurrent, payload_limit, cache_mb, shutdown_timeout, quiet;
} serve_args;

static const char *DESCRIPTION =
    "Serve CLIP text encoding over HTTP with dynamic batching: requests from many clients\n"
    "are batched together (requests with different clip skips share one encoder call), an\n"
    "exact-match LRU cache answers repeated prompts without the backend.\n"
    "Routes: POST /encode, POST /tokenize, GET /health, GET /info, GET /metrics (docs/serve.md).\n"
    "Listens on loopback unless --host says otherwise. --api-key (or the environment variable\n"
    "CLIPSKIP_API_KEY) requires 'Authorization: Bearer KEY' on every route but /health.\n"
    "SIGTERM / SIGINT: stop accepting, answer every request already received, exit 0.";

static void log_line(void *user, const char *line) {
    const serve_args *a = user;
    if (a->quiet) return;
    time_t now = time(NULL);
    struct tm tm;
    char ts[32];
    gmtime_r(&now, &tm);
    strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", &tm);
    fprintf(stderr, "%s clipskip serve: %s\n", ts, line);
}

static int run(serve_args *a) {
    clipskip_model *m = cs_cli_open_model("serve", a->model, a->random, a->vocab, !a->quiet);
    if (!m) return CS_EXIT_FAIL;
    cs_server_params p = cs_server_default_params();
    p.host = a->host, p.port = a->port;
    p.http_threads = a->http_threads;
    p.max_batch_prompts = a->max_batch_prompts, p.max_wait_us = a->max_wait_us;
    p.max_client_batch = a->max_client_batch, p.max_concurrent_requests = a->max_concurrent;
    p.payload_limit = (size_t)a->payload_limit;
    p.cache_bytes = (size_t)a->cache_mb << 20;
    p.api_key = a->api_key ? a->api_key : getenv("CLIPSKIP_API_KEY");
    char random_id[48], name[24];
    snprintf(random_id, sizeof random_id, "random-%s", cs_opt_choice_name(CS_RANDOM_CHOICES, a->random, name, sizeof name));
    p.model_id = a->model ? a->model : random_id;
    p.shutdown_timeout_s = a->shutdown_timeout;
    p.encoder.backend = (clipskip_backend)a->backend;
    p.encoder.n_threads = a->threads;
    p.log = log_line, p.log_user = a;

    /* Block the stop signals before any thread starts, so only sigwait below sees them. */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);
    signal(SIGPIPE, SIG_IGN);
    cs_server *s = NULL;
    clipskip_status st = cs_server_start(m, &p, &s);
    if (st != CLIPSKIP_OK) {
        cs_cli_error("serve", st);
        clipskip_model_free(m);
        return CS_EXIT_FAIL;
    }
    const char *inject = getenv("CLIPSKIP_SERVE_INJECT_FAILURES"); /* test hook, docs/serve.md */
    if (inject && atoi(inject) > 0) cs_server_inject_failures(s, atoi(inject));
    int sig = 0;
    sigwait(&stop, &sig);
    log_line(a, sig == SIGTERM ? "SIGTERM: shutting down" : "SIGINT: shutting down");
    int left = cs_server_shutdown(s);
    cs_server_free(s);
    clipskip_model_free(m);
    if (left) fprintf(stderr, "clipskip serve: %d request(s) were cut off at the shutdown timeout\n", left);
    log_line(a, "stopped");
    return CS_EXIT_OK;
}

int cs_cmd_serve(int argc, char **argv) {
    cs_server_params d = cs_server_default_params();
    serve_args a = {.host = "127.0.0.1", .port = 8080, .http_threads = d.http_threads,
                    .max_batch_prompts = d.max_batch_prompts, .max_wait_us = d.max_wait_us,
                    .max_client_batch = d.max_client_batch, .max_concurrent = d.max_concurrent_requests,
                    .payload_limit = (int)d.payload_limit, .cache_mb = (int)(d.cache_bytes >> 20),
                    .shutdown_timeout = (int)d.shutdown_timeout_s};
    const cs_opt opts[] = {
        {"model", CS_OPT_STR, &a.model, "FILE", "model .safetensors (SD1/SD2/SDXL, diffusers text_encoder, OpenCLIP)", 0, 0, 0},
        {"random", CS_OPT_CHOICE, &a.random, 0, "random weights of a real shape instead of --model (tiny: for tests)", CS_RANDOM_CHOICES, 0, 0},
        {"vocab", CS_OPT_STR, &a.vocab, "PATH", "tokenizer: bpe_simple_vocab_16e6.txt[.gz] or a folder with vocab.json+merges.txt (default built in)", 0, 0, 0},
        {"host", CS_OPT_STR, &a.host, "ADDR", "address to listen on (0.0.0.0 or :: to accept other machines)", 0, 0, 0},
        {"port", CS_OPT_INT, &a.port, "N", "TCP port (0 = any free port, logged at start)", 0, 0, 65535},
        {"backend", CS_OPT_CHOICE, &a.backend, 0, "compute backend (auto = CUDA when usable)", CS_BACKEND_CHOICES, 0, 0},
        {"threads", CS_OPT_INT, &a.threads, "N", "CPU backend threads (0 = all cores)", 0, 0, 4096},
        {"http-threads", CS_OPT_INT, &a.http_threads, "N", "HTTP worker threads: parse, tokenize, format replies", 0, 1, 1024},
        {"max-batch-prompts", CS_OPT_INT, &a.max_batch_prompts, "N", "prompts per batch taken from the queue", 0, 1, 1 << 16},
        {"max-wait-us", CS_OPT_INT, &a.max_wait_us, "US", "longest wait for more prompts when the queue is short", 0, 0, 10000000},
        {"max-client-batch", CS_OPT_INT, &a.max_client_batch, "N", "inputs per request (more: 422)", 0, 1, 1 << 16},
        {"max-concurrent-requests", CS_OPT_INT, &a.max_concurrent, "N", "/encode requests handled at once (more: 429)", 0, 1, 1 << 20},
        {"payload-limit", CS_OPT_INT, &a.payload_limit, "BYTES", "request body limit (more: 413)", 0, 64, 1 << 30},
        {"cache-mb", CS_OPT_INT, &a.cache_mb, "MB", "result cache size in MiB (0 = off)", 0, 0, 1 << 20},
        {"api-key", CS_OPT_STR, &a.api_key, "KEY", "require 'Authorization: Bearer KEY' (default: $CLIPSKIP_API_KEY, else none)", 0, 0, 0},
        {"shutdown-timeout", CS_OPT_INT, &a.shutdown_timeout, "S", "longest wait for in-flight replies at SIGTERM", 0, 0, 86400},
        {"quiet", CS_OPT_FLAG, &a.quiet, 0, "no log lines on stderr", 0, 0, 0},
        {0},
    };
    const cs_cli cli = {"serve", "[options]", DESCRIPTION, opts};
    char **pos = calloc((size_t)argc + 1, sizeof *pos);
    int n_pos = 0, rc = pos ? cs_opts_parse(&cli, argc, argv, pos, &n_pos) : CS_EXIT_FAIL;
    if (rc < 0 && n_pos) {
        fprintf(stderr, "clipskip serve: unexpected argument '%s' (see clipskip serve --help)\n", pos[0]);
        rc = CS_EXIT_USAGE;
    }
    free(pos);
    return rc < 0 ? run(&a) : rc;
}
