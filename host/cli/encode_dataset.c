#include "encode_dataset.h"

#include "common.h"
#include "dataset.h"
#include "dataset_shard.h"
#include "internal.h"
#include "opts.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define N_SHARDS 3 /* one being encoded, up to two read ahead */

typedef struct {
    const cs_run *run;
    cs_dataset *ds;
    int resume;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    cs_shard *free_[N_SHARDS], *full[N_SHARDS];
    int n_free, n_full, full_head;
    int producer_done, failed, stop;
    double host_s;           /* reading + tokenizing, on the reader thread */
    uint64_t bytes_done;     /* input bytes behind the last shard written */
    uint64_t bytes_total;
} pipeline;

/* ------------------------------------------------------------------ the reader thread */

static cs_shard *take_free(pipeline *p) {
    pthread_mutex_lock(&p->mu);
    while (!p->n_free && !p->stop) pthread_cond_wait(&p->cv, &p->mu);
    cs_shard *s = p->stop ? NULL : p->free_[--p->n_free];
    pthread_mutex_unlock(&p->mu);
    return s;
}

static void give(pipeline *p, cs_shard *s, int full) {
    pthread_mutex_lock(&p->mu);
    if (full) p->full[(p->full_head + p->n_full++) % N_SHARDS] = s;
    else p->free_[p->n_free++] = s;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

/* Fill s with the next shard's records: 1 full or partial shard, 0 end of input, -1 failure. */
static int fill_shard(pipeline *p, cs_shard *s, uint64_t index) {
    const cs_run *r = p->run;
    char path[4200];
    cs_shard_reset(s, r, index);
    cs_shard_manifest_path(r, index, path, sizeof path);
    s->done_before = p->resume && access(path, F_OK) == 0;
    while (s->n_records < r->shard_size) {
        cs_ds_record rec;
        int rc = cs_ds_next(p->ds, &rec);
        if (rc < 0) return -1;
        if (rc == 0) break;
        if (cs_shard_add(s, r, &rec, cs_ds_name(p->ds)) < 0) return -1;
    }
    uint64_t total;
    cs_ds_progress(p->ds, &s->bytes_end, &total);
    pthread_mutex_lock(&p->mu);
    p->bytes_total = total;
    pthread_mutex_unlock(&p->mu);
    return s->n_records > 0;
}

static void *reader_main(void *arg) {
    pipeline *p = arg;
    for (uint64_t index = 0;; index++) {
        cs_shard *s = take_free(p);
        if (!s) break;
        double t = cs_now();
        int rc = fill_shard(p, s, index);
        p->host_s += cs_now() - t;
        int last = rc <= 0 || s->n_records < p->run->shard_size;
        give(p, s, rc > 0);
        if (rc < 0) {
            pthread_mutex_lock(&p->mu);
            p->failed = 1;
            pthread_mutex_unlock(&p->mu);
        }
        if (last) break;
    }
    pthread_mutex_lock(&p->mu);
    p->producer_done = 1;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

/* The next filled shard in order, or NULL when the reader is done (or failed). */
static cs_shard *take_full(pipeline *p, double *waited) {
    double t = cs_now();
    pthread_mutex_lock(&p->mu);
    while (!p->n_full && !p->producer_done) pthread_cond_wait(&p->cv, &p->mu);
    cs_shard *s = NULL;
    if (p->n_full) {
        s = p->full[p->full_head];
        p->full_head = (p->full_head + 1) % N_SHARDS;
        p->n_full--;
    }
    pthread_mutex_unlock(&p->mu);
    *waited += cs_now() - t;
    return s;
}

/* ------------------------------------------------------------------ the run directory */

/* The options a resume must match, as JSON text (heap). */
static char *run_json(const cs_dataset_args *a, const cs_run *r) {
    cJSON *j = cJSON_CreateObject();
    struct stat sb;
    cJSON_AddStringToObject(j, "format", "clipskip-run");
    cJSON_AddStringToObject(j, "clipskip_version", clipskip_version());
    cJSON_AddStringToObject(j, "model", a->model_name);
    cJSON_AddStringToObject(j, "input", a->input ? a->input : "-");
    if (a->input && stat(a->input, &sb) == 0 && S_ISREG(sb.st_mode))
        cJSON_AddNumberToObject(j, "input_bytes", (double)sb.st_size);
    cJSON_AddStringToObject(j, "input_format", a->input_format ? a->input_format : "auto");
    cJSON_AddStringToObject(j, "field", a->field ? a->field : "caption");
    cJSON_AddStringToObject(j, "column", a->column ? a->column : "caption");
    cJSON_AddNumberToObject(j, "tower", r->opt.tower);
    cJSON_AddNumberToObject(j, "clip_skip", r->opt.row.clip_skip);
    cJSON_AddNumberToObject(j, "final_ln", r->opt.row.final_ln);
    cJSON_AddNumberToObject(j, "outputs", r->opt.outputs);
    cJSON_AddStringToObject(j, "dtype", cs_dtype_name(r->opt.out_dtype));
    cJSON_AddNumberToObject(j, "clean", r->opt.clean);
    cJSON_AddNumberToObject(j, "shard_size", r->shard_size);
    cJSON_AddStringToObject(j, "shard_format", r->npy ? "npy" : "safetensors");
    cJSON_AddStringToObject(j, "on_error", r->skip_errors ? "skip" : "fail");
    char *s = cJSON_Print(j);
    cJSON_Delete(j);
    return s;
}

static char *read_small_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *buf = calloc(1, 1 << 16);
    if (buf) fread(buf, 1, (1 << 16) - 1, f);
    fclose(f);
    return buf;
}

/* Remove "<name>.tmp.<pid>" files a killed run left behind. */
static void remove_stale_temps(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    char path[4200];
    for (struct dirent *e; (e = readdir(d));) {
        if (!strstr(e->d_name, ".tmp.")) continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        unlink(path);
    }
    closedir(d);
}

/* One run per output directory: <dir>/clipskip.lock, flock'ed for the whole run (the kernel
 * drops the lock when the process dies, so a SIGKILLed run never blocks its --resume), holding
 * the pid for the message a second run gets. Without it a second run would delete the first's
 * temporary files and write the same shards. Returns the descriptor, or -1 after the message. */
static int lock_dir(const char *dir) {
    char path[4200], pid[32] = "";
    snprintf(path, sizeof path, "%s/clipskip.lock", dir);
    const int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        fprintf(stderr, "clipskip encode: cannot create %s: %s\n", path, strerror(errno));
        return -1;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        const ssize_t n = pread(fd, pid, sizeof pid - 1, 0);
        pid[n > 0 ? strcspn(pid, "\n") : 0] = 0;
        fprintf(stderr, "clipskip encode: another clipskip run (pid %s) is writing %s: wait for it "
                        "to end (or stop it), then run again with --resume\n", pid[0] ? pid : "?", dir);
        close(fd);
        return -1;
    }
    snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) != 0 || pwrite(fd, pid, strlen(pid), 0) < 0) { /* the pid is a courtesy */ }
    return fd;
}

/* At the end of the run, whatever its outcome: the lock file goes, then the lock. */
static void unlock_dir(const char *dir, int fd) {
    char path[4200];
    snprintf(path, sizeof path, "%s/clipskip.lock", dir);
    unlink(path);
    close(fd);
}

static int prepare_dir(const cs_dataset_args *a, const cs_run *r, int *lock_fd) {
    char path[4200];
    if (mkdir(a->dir, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "clipskip encode: cannot create --out-dir %s: %s\n", a->dir, strerror(errno));
        return -1;
    }
    if ((*lock_fd = lock_dir(a->dir)) < 0) return -1;
    snprintf(path, sizeof path, "%s/clipskip-run.json", a->dir);
    char *want = run_json(a, r), *have = read_small_file(path);
    int rc = 0;
    if (have && !a->resume) {
        fprintf(stderr, "clipskip encode: %s already holds a run (%s): add --resume to continue "
                        "it, or use an empty directory\n", a->dir, path);
        rc = -1;
    } else if (have && strcmp(have, want)) {
        fprintf(stderr, "clipskip encode: --resume: the options differ from the run in %s:\n"
                        "--- that run\n%s\n--- this command\n%s\n", path, have, want);
        rc = -1;
    } else if (!have) {
        cs_atomic_file f;
        clipskip_status st = cs_atomic_open(&f, path);
        if (st == CLIPSKIP_OK) st = cs_atomic_write(&f, want, strlen(want));
        if (st == CLIPSKIP_OK) st = cs_atomic_commit(&f);
        if (st != CLIPSKIP_OK) {
            cs_cli_error("encode", st);
            rc = -1;
        }
    }
    if (rc == 0) remove_stale_temps(a->dir);
    free(want), free(have);
    return rc;
}

/* manifest.csv: every shard manifest in order, one header. */
static clipskip_status write_full_manifest(const cs_run *r, uint64_t n_shards) {
    char path[4200], line[4096];
    snprintf(path, sizeof path, "%s/manifest.csv", r->dir);
    cs_atomic_file out;
    static const char head[] = "record,line,shard,row,tokens,truncated,status\n";
    CS_TRY(cs_atomic_open(&out, path));
    CS_TRY(cs_atomic_write(&out, head, sizeof head - 1));
    for (uint64_t k = 0; k < n_shards; k++) {
        cs_shard_manifest_path(r, k, path, sizeof path);
        FILE *f = fopen(path, "rb");
        if (!f) {
            clipskip_status st = cs_fail(CLIPSKIP_ERR_IO, "%s: %s", path, strerror(errno));
            cs_atomic_abort(&out);
            return st;
        }
        for (int first = 1; fgets(line, sizeof line, f); first = 0) {
            if (first) continue; /* each shard's header: written once above */
            clipskip_status st = cs_atomic_write(&out, line, strlen(line));
            if (st) {
                fclose(f);
                return st;
            }
        }
        fclose(f);
    }
    return cs_atomic_commit(&out);
}

/* ------------------------------------------------------------------ the encoder thread */

typedef struct {
    uint64_t records, rows, skipped, duplicates, shards, resumed, truncated;
    double encode_s, write_s, waited_s, device_s, t0, last_report;
} run_stats;

static void count_shard(run_stats *st, const cs_shard *s) {
    st->records += (uint64_t)s->n_records;
    st->shards++;
    if (s->done_before) {
        st->resumed++;
        return;
    }
    st->rows += (uint64_t)s->n_rows;
    st->skipped += (uint64_t)(s->n_records - s->n_rows);
    st->duplicates += (uint64_t)(s->n_rows - s->n_unique);
    for (int i = 0; i < s->n_records; i++) st->truncated += s->truncated[i] > 0;
}

static void report_progress(run_stats *st, pipeline *p, int quiet) {
    double now = cs_now();
    if (quiet || now - st->last_report < 2.0) return;
    st->last_report = now;
    pthread_mutex_lock(&p->mu);
    uint64_t total = p->bytes_total;
    pthread_mutex_unlock(&p->mu);
    uint64_t done = p->bytes_done;
    double rate = (double)(st->records) / (now - st->t0);
    if (total) {
        double frac = (double)done / (double)total, eta = frac > 0 ? (now - st->t0) * (1 - frac) / frac : 0;
        fprintf(stderr, "clipskip encode: %llu records (%.1f%% of the input), %.0f records/s, ETA %.0f s\n",
                (unsigned long long)st->records, 100 * frac, rate, eta);
    } else {
        fprintf(stderr, "clipskip encode: %llu records, %.0f records/s\n",
                (unsigned long long)st->records, rate);
    }
}

static void report_summary(const run_stats *st, const pipeline *p, const cs_dataset_args *a) {
    double wall = cs_now() - st->t0;
    fprintf(stderr,
            "clipskip encode: done: %llu records -> %llu rows in %llu shard%s under %s "
            "(%llu resumed, %llu skipped, %llu duplicates encoded once, %llu truncated to 75 tokens: "
            "column truncated of manifest.csv)\n"
            "clipskip encode: %.1f s, %.0f records/s; reader+tokenizer thread %.1f s, encode %.1f s%s, "
            "write %.1f s, encoder waited for input %.1f s (%s-bound)\n",
            (unsigned long long)st->records, (unsigned long long)st->rows,
            (unsigned long long)st->shards, st->shards == 1 ? "" : "s", a->dir,
            (unsigned long long)st->resumed, (unsigned long long)st->skipped,
            (unsigned long long)st->duplicates, (unsigned long long)st->truncated, wall, (double)st->records / wall, p->host_s,
            st->encode_s, st->device_s > 0 ? " (device)" : "", st->write_s, st->waited_s,
            st->waited_s > 0.5 * st->encode_s ? "host" : "encoder");
}

/* Encode and write each filled shard in order; returns 0 or -1 (message printed). */
/* Returns 0 at the end of the input, -1 after a failure (message printed), 1 when a signal
 * stopped it (the shard in progress is dropped: only complete shards are ever on disk). */
static int consume(pipeline *p, clipskip_encoder *enc, int batch, run_stats *st, int quiet) {
    const cs_run *r = p->run;
    for (cs_shard *s; (s = take_full(p, &st->waited_s));) {
        clipskip_status rc = CLIPSKIP_OK;
        if (!s->done_before) {
            double t = cs_now();
            rc = cs_shard_encode(s, r, enc, batch);
            double dev = clipskip_encoder_last_device_seconds(enc);
            if (dev > 0) st->device_s += dev;
            st->encode_s += cs_now() - t;
            if (*r->stop) {
                give(p, s, 0);
                return 1;
            }
            t = cs_now();
            if (rc == CLIPSKIP_OK) rc = cs_shard_write(s, r);
            st->write_s += cs_now() - t;
        }
        if (rc != CLIPSKIP_OK) {
            fprintf(stderr, "clipskip encode: shard %llu (records %llu..%llu): %s: %s\n"
                            "clipskip encode: stopped; the shards before it are complete "
                            "(rerun with --resume)\n",
                    (unsigned long long)s->index, (unsigned long long)s->first_record,
                    (unsigned long long)(s->first_record + s->n_records - 1),
                    clipskip_status_str(rc), clipskip_last_error());
            give(p, s, 0);
            return -1;
        }
        count_shard(st, s);
        p->bytes_done = s->bytes_end; /* only this thread writes it */
        give(p, s, 0);
        report_progress(st, p, quiet);
    }
    return 0;
}

static void stop_reader(pipeline *p) {
    pthread_mutex_lock(&p->mu);
    p->stop = 1;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

/* SIGINT / SIGTERM during a run: finish nothing more, keep the complete shards, say how to go
 * on. The handlers reset themselves, so a second Ctrl-C kills the process at once. */
static volatile sig_atomic_t g_stop_signal;
static void on_stop_signal(int sig) { g_stop_signal = sig; }

static void stop_signals(int on, struct sigaction old[2]) {
    static const int sigs[2] = {SIGINT, SIGTERM};
    for (int i = 0; i < 2; i++) {
        if (!on) {
            sigaction(sigs[i], &old[i], NULL);
            continue;
        }
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_stop_signal;
        sa.sa_flags = SA_RESETHAND;
        sigemptyset(&sa.sa_mask);
        sigaction(sigs[i], &sa, &old[i]);
    }
}

static void report_interrupted(const run_stats *st, const cs_dataset_args *a) {
    fprintf(stderr, "clipskip encode: stopped by %s: %llu complete shard%s (%llu records) in %s; "
                    "run the same command with --resume to continue\n",
            g_stop_signal == SIGINT ? "SIGINT" : "SIGTERM", (unsigned long long)st->shards,
            st->shards == 1 ? "" : "s", (unsigned long long)st->records, a->dir);
}

/* The pipeline over a prepared, locked directory: reader thread, encoder, shard writes. */
static int dataset_run(const cs_dataset_args *a, cs_run *r, clipskip_encoder *enc) {
    pipeline p = {.run = r, .resume = a->resume};
    if (!(p.ds = cs_ds_open(a->input, a->input_format, a->field, a->column))) return CS_EXIT_USAGE;
    pthread_mutex_init(&p.mu, NULL);
    pthread_cond_init(&p.cv, NULL);
    int rc = CS_EXIT_OK;
    for (int i = 0; i < N_SHARDS; i++)
        if ((p.free_[p.n_free] = cs_shard_new(r))) p.n_free++;
    pthread_t reader;
    run_stats st = {.t0 = cs_now()};
    st.last_report = st.t0;
    struct sigaction old[2];
    g_stop_signal = 0;
    r->stop = &g_stop_signal;
    stop_signals(1, old);
    if (p.n_free < N_SHARDS || pthread_create(&reader, NULL, reader_main, &p) != 0) {
        fprintf(stderr, "clipskip encode: out of memory for %d shards of %d rows\n", N_SHARDS, a->shard_size);
        rc = CS_EXIT_FAIL;
    } else {
        const int c = consume(&p, enc, a->batch, &st, a->quiet);
        stop_reader(&p);
        pthread_join(reader, NULL);
        if (c < 0 || p.failed) rc = CS_EXIT_FAIL;
        if (c > 0) {
            report_interrupted(&st, a);
            rc = 128 + g_stop_signal;
        }
    }
    stop_signals(0, old);
    clipskip_status cst;
    if (rc == CS_EXIT_OK && (cst = write_full_manifest(r, st.shards)) != CLIPSKIP_OK) {
        cs_cli_error("encode", cst);
        rc = CS_EXIT_FAIL;
    }
    if (rc == CS_EXIT_OK && !a->quiet) report_summary(&st, &p, a);
    for (int i = 0; i < p.n_free; i++) cs_shard_free(p.free_[i]);
    for (int i = 0; i < p.n_full; i++) cs_shard_free(p.full[(p.full_head + i) % N_SHARDS]);
    cs_ds_close(p.ds);
    pthread_mutex_destroy(&p.mu);
    pthread_cond_destroy(&p.cv);
    return rc;
}

int cs_encode_dataset(const cs_dataset_args *a, clipskip_model *m, clipskip_encoder *enc,
                      const clipskip_encode_options *o) {
    cs_run r = {.dir = a->dir, .model = m, .model_name = a->model_name, .opt = *o,
                .shard_size = a->shard_size, .npy = a->npy, .skip_errors = a->skip_errors};
    r.t0 = o->tower == CLIPSKIP_TOWER_ALL ? 0 : o->tower;
    r.t1 = o->tower == CLIPSKIP_TOWER_ALL ? clipskip_model_n_towers(m) : o->tower + 1;
    clipskip_status cst = clipskip_output_dims(m, o, &r.hid_dim, &r.pool_dim, &r.emb_dim);
    if (cst != CLIPSKIP_OK) {
        cs_cli_error("encode", cst);
        return CS_EXIT_USAGE;
    }
    int lock_fd = -1;
    if (prepare_dir(a, &r, &lock_fd)) {
        if (lock_fd >= 0) unlock_dir(a->dir, lock_fd);
        return CS_EXIT_FAIL;
    }
    const int rc = dataset_run(a, &r, enc);
    unlock_dir(a->dir, lock_fd);
    return rc;
}
