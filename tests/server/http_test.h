/* Test helpers for the HTTP service: a tiny blocking HTTP/1.1 client over loopback sockets,
 * starting `clipskip serve` as a child process, and readers for the reply formats (JSON
 * numbers, .npy, .safetensors) so replies can be compared bitwise with direct library calls.
 * Header-only (static functions): each test program includes it once. */
#ifndef CS_HTTP_TEST_H
#define CS_HTTP_TEST_H

#include "clipskip.h"

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define HT_FN static __attribute__((unused)) /* each test uses some of these */

typedef struct {
    int status;
    char *head;      /* status line + headers, NUL-terminated */
    char *body;      /* NUL-terminated for convenience */
    size_t body_len;
} http_resp;

HT_FN double ht_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

HT_FN void ht_sleep_ms(int ms) {
    struct timespec t = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&t, NULL);
}

HT_FN void http_resp_free(http_resp *r) {
    free(r->head), free(r->body);
    memset(r, 0, sizeof *r);
}

HT_FN int http_connect(int port) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0) return -1;
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

HT_FN int write_all(int fd, const void *p, size_t n) {
    const char *c = p;
    while (n) {
        ssize_t w = send(fd, c, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        c += w, n -= (size_t)w;
    }
    return 0;
}

/* Send one request (Connection: close). extra: more header lines, each ending "\r\n". */
HT_FN int http_send(int fd, const char *method, const char *path, const char *extra,
                     const void *body, size_t len) {
    char head[2048];
    int n = snprintf(head, sizeof head, "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n%s",
                     method, path, extra ? extra : "");
    if (body) n += snprintf(head + n, sizeof head - n, "Content-Type: application/json\r\nContent-Length: %zu\r\n", len);
    n += snprintf(head + n, sizeof head - n, "\r\n");
    if (write_all(fd, head, (size_t)n)) return -1;
    return body && len ? write_all(fd, body, len) : 0;
}

/* Read until the server closes; split status, headers, body. 0 on success. */
HT_FN int http_read(int fd, http_resp *r, double timeout_s) {
    memset(r, 0, sizeof *r);
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    double end = ht_now() + timeout_s;
    for (;;) {
        struct pollfd p = {fd, POLLIN, 0};
        int left = (int)((end - ht_now()) * 1000);
        if (left <= 0 || poll(&p, 1, left) <= 0) {
            free(buf);
            return -1; /* timeout */
        }
        if (len + 65536 > cap) buf = realloc(buf, cap *= 2);
        ssize_t k = recv(fd, buf + len, cap - len - 1, 0);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) break;
        len += (size_t)k;
    }
    buf[len] = 0;
    char *sep = strstr(buf, "\r\n\r\n");
    if (!sep || sscanf(buf, "HTTP/1.%*d %d", &r->status) != 1) {
        free(buf);
        return -1;
    }
    size_t hl = (size_t)(sep - buf);
    r->head = strndup(buf, hl);
    r->body_len = len - hl - 4;
    r->body = malloc(r->body_len + 1);
    memcpy(r->body, sep + 4, r->body_len);
    r->body[r->body_len] = 0;
    free(buf);
    return 0;
}

HT_FN int http_request(int port, const char *method, const char *path, const char *extra,
                        const char *body, http_resp *out) {
    int fd = http_connect(port);
    if (fd < 0) return -1;
    int rc = http_send(fd, method, path, extra, body, body ? strlen(body) : 0);
    if (rc == 0) rc = http_read(fd, out, 60.0);
    close(fd);
    return rc;
}

/* Value of a reply header (case-insensitive name), copied into a static buffer, or NULL. */
HT_FN const char *http_header(const http_resp *r, const char *name) {
    static char val[256];
    size_t n = strlen(name);
    for (const char *line = r->head ? strstr(r->head, "\r\n") : NULL; line; line = strstr(line + 2, "\r\n")) {
        const char *h = line + 2;
        if (strncasecmp(h, name, n) == 0 && h[n] == ':') {
            h += n + 1;
            while (*h == ' ') h++;
            size_t k = strcspn(h, "\r\n");
            if (k >= sizeof val) k = sizeof val - 1;
            memcpy(val, h, k);
            val[k] = 0;
            return val;
        }
    }
    return NULL;
}

HT_FN long http_header_long(const http_resp *r, const char *name) {
    const char *v = http_header(r, name);
    return v ? strtol(v, NULL, 10) : -1;
}

/* ------------------------------------------------------------------ the server process */

typedef struct {
    pid_t pid;
    int port;
    char log[256];
} server_proc;

/* Start `exe serve ARGS... --port 0`, wait for its "listening on ...:PORT" log line. */
HT_FN int server_spawn(server_proc *sp, const char *exe, const char *const *args, const char *env) {
    static int seq = 0;
    snprintf(sp->log, sizeof sp->log, "/tmp/cs_test_serve_%d_%d.log", (int)getpid(), seq++);
    const char *argv[64] = {exe, "serve", "--port", "0"};
    int n = 4;
    for (int i = 0; args[i] && n < 62; i++) argv[n++] = args[i];
    argv[n] = NULL;
    sp->pid = fork();
    if (sp->pid == 0) {
        int fd = open(sp->log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(fd, 1), dup2(fd, 2);
        if (env) putenv((char *)env);
        execv(exe, (char *const *)argv);
        _exit(127);
    }
    for (double end = ht_now() + 60; ht_now() < end; ht_sleep_ms(20)) {
        FILE *f = fopen(sp->log, "r");
        char line[512];
        while (f && fgets(line, sizeof line, f)) {
            char *p = strstr(line, "listening on ");
            if (p && (p = strchr(p + 13, ':'))) {
                sp->port = atoi(p + 1);
                fclose(f);
                return 0;
            }
        }
        if (f) fclose(f);
        int st;
        if (waitpid(sp->pid, &st, WNOHANG) == sp->pid) break;
    }
    fprintf(stderr, "server did not start; its log %s:\n", sp->log);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "cat %s >&2", sp->log);
    if (system(cmd)) {}
    return -1;
}

/* Send sig, wait for the exit; returns the exit status (or -1 when killed / timed out). */
HT_FN int server_stop(server_proc *sp, int sig, double timeout_s) {
    if (sig) kill(sp->pid, sig);
    for (double end = ht_now() + timeout_s; ht_now() < end; ht_sleep_ms(10)) {
        int st;
        if (waitpid(sp->pid, &st, WNOHANG) == sp->pid) {
            int code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
            if (code != 0) { /* show why (a sanitizer report, a crash) */
                fprintf(stderr, "server exited with %d; its log %s:\n", code, sp->log);
                char cmd[300];
                snprintf(cmd, sizeof cmd, "tail -c 4000 %s >&2", sp->log);
                if (system(cmd)) {}
            }
            unlink(sp->log);
            return code;
        }
    }
    kill(sp->pid, SIGKILL);
    waitpid(sp->pid, NULL, 0);
    fprintf(stderr, "server %d did not exit in %.0f s (log %s)\n", (int)sp->pid, timeout_s, sp->log);
    return -1;
}

/* ------------------------------------------------------------------ reply formats */

/* All numbers of the JSON array value starting at s ('['), nested or not, read with strtof
 * into out (up to cap); returns the count (null and other non-numbers end the scan). */
HT_FN size_t json_floats(const char *s, float *out, size_t cap) {
    int depth = 0;
    size_t n = 0;
    do {
        if (*s == '[') depth++, s++;
        else if (*s == ']') depth--, s++;
        else if (*s == ',' || *s == ' ') s++;
        else {
            char *end;
            float v = strtof(s, &end);
            if (end == s) return n;
            if (n < cap) out[n] = v;
            n++;
            s = end;
        }
    } while (depth > 0 && *s);
    return n;
}

/* Start of the array of key in a flat JSON object body ("key":[...]). */
HT_FN const char *json_array_of(const char *body, const char *key) {
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":[", key);
    const char *p = strstr(body, pat);
    return p ? p + strlen(pat) - 1 : NULL;
}

/* Data of one tensor of a .safetensors body, its dtype and element count, or NULL. */
HT_FN const void *st_tensor(const http_resp *r, const char *name, char *dtype, size_t *count) {
    if (r->body_len < 8) return NULL;
    uint64_t hl = 0;
    for (int i = 0; i < 8; i++) hl |= (uint64_t)(unsigned char)r->body[i] << (8 * i);
    if (8 + hl > r->body_len) return NULL;
    cJSON *h = cJSON_ParseWithLength(r->body + 8, hl);
    cJSON *t = h ? cJSON_GetObjectItemCaseSensitive(h, name) : NULL;
    if (!t) {
        cJSON_Delete(h);
        return NULL;
    }
    snprintf(dtype, 8, "%s", cJSON_GetObjectItemCaseSensitive(t, "dtype")->valuestring);
    cJSON *off = cJSON_GetObjectItemCaseSensitive(t, "data_offsets");
    size_t b = (size_t)cJSON_GetArrayItem(off, 0)->valuedouble, e = (size_t)cJSON_GetArrayItem(off, 1)->valuedouble;
    *count = (e - b) / (strcmp(dtype, "F32") ? 2 : 4);
    cJSON_Delete(h);
    return 8 + hl + e <= r->body_len ? r->body + 8 + hl + b : NULL;
}

/* Data of a .npy body (format 1.0) and its header text. */
HT_FN const void *npy_data(const http_resp *r, char *header, size_t cap) {
    if (r->body_len < 10 || memcmp(r->body, "\x93NUMPY", 6)) return NULL;
    size_t hl = (unsigned char)r->body[8] | (size_t)(unsigned char)r->body[9] << 8;
    snprintf(header, cap, "%.*s", (int)hl, r->body + 10);
    return r->body + 10 + hl;
}

#endif
