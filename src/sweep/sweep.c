/* sweep.c - `qid run`'s scheduler and protocol (sweep.h): start-up (job,
 * grid, store, tasks already done, baselines of earlier runs), the rank-0
 * dispatch loop with checkpoint affinity and largest-first order, the join
 * of quantized results against their checkpoint's baseline, the progress
 * line, appending each result to the store, the worker loop, and the MPI
 * messages between them.
 *
 * Does not: run a task (sweep_task.c), parse or expand job files
 * (jobfile.c, job_grid.c), write HDF5 itself (results.c), or handle the
 * command line (cmd_run.c). */
#include "sweep.h"

#include <inttypes.h>
#include <math.h>
#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "error.h"
#include "eval.h"
#include "jobfile.h"
#include "results.h"
#include "sweep_internal.h"

enum { TAG_REQUEST = 1, TAG_TASK = 2, TAG_RESULT = 3, TAG_STOP = 4 };

/* start-up flag broadcast by rank 0 */
enum { START_GO = 0, START_FAIL = 1 };

/* 0 -> worker: a task. Followed by path_len bytes of the checkpoint path.
 * A result (worker -> 0) is a sweep_scalars followed by its vectors
 * (sweep_internal.h). */
typedef struct wire_task {
    int64_t id;   /* position in rank 0's (sorted) task list */
    int64_t ckpt; /* checkpoint index */
    int32_t method;
    int32_t quant; /* index into job->quant, -1 for the baseline */
    int32_t path_len;
    int32_t pad;
    int64_t n_base; /* baseline windows that follow the path (adaptive tasks), else 0 */
} wire_task;

/* ---- rank 0: state, join, progress ---------------------------------------- */

/* Quantized tasks are joined against their checkpoint's baseline; the
 * baseline and the probes stand alone. */
static int needs_baseline(qid_job_method m)
{
    return m == QID_JOB_METHOD_RTN || m == QID_JOB_METHOD_GPTQ || m == QID_JOB_METHOD_AWQ;
}

enum { T_PENDING = 0, T_RUNNING = 1, T_DONE = 2, T_SKIPPED = 3 };
enum { B_UNKNOWN = 0, B_OK = 1, B_FAILED = 2 };

typedef struct base_info {
    int state;
    size_t n;
    double *nll;
    int64_t *count;
    double loss;
    char error[QID_ERROR_MAX];
} base_info;

typedef struct sched {
    qid_job *job;
    qid_task *tasks; /* sorted largest first */
    size_t n_tasks;
    int *state; /* per task */
    base_info *base;
    size_t n_ckpts;
    qid_results *store;
    size_t total, done, failed, skipped, running;
    double t_start, last_progress;
    double busy; /* rank 0's seconds in scheduling and storing, not in tasks or naps */
    double progress_every;
    int tty;
    int size;
    /* the store's append time, first and last APPEND_WINDOW rows of this run,
     * and rank 0's resident memory after the first window and at the end:
     * reported when a run appends 2 windows or more (a long run's health) */
    size_t appended;
    double append_first, append_last[1000];
    long rss_first;
} sched;
#define APPEND_WINDOW 1000

/* Resident memory of this process in KiB (Linux /proc), -1 where unknown. */
static long rss_kib(void)
{
    long pages = -1, resident = -1;
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f) return -1;
    int n = fscanf(f, "%ld %ld", &pages, &resident);
    fclose(f);
    long page = sysconf(_SC_PAGESIZE);
    return n == 2 && page > 0 ? resident * (page / 1024) : -1;
}

static void progress(sched *s, int force)
{
    double now = MPI_Wtime();
    if (!force && !s->tty && now - s->last_progress < s->progress_every) return;
    if (!force && s->tty && now - s->last_progress < 0.5) return;
    s->last_progress = now;
    double min = (now - s->t_start) / 60.0;
    double rate = min > 0 ? (double)s->done / min : 0;
    char eta[32] = "?";
    if (rate > 0) {
        double sec = (double)(s->total - s->done) / rate * 60.0;
        snprintf(eta, sizeof eta, "%.0fs", sec);
    }
    if (s->tty)
        fprintf(stderr, "\rqid run: %zu/%zu done, %zu failed, %zu running, %.1f tasks/min, ETA %s   ", s->done,
                s->total, s->failed, s->running, rate, eta);
    else
        qid_info("run: %zu/%zu done, %zu failed, %zu running, %.1f tasks/min, ETA %s", s->done, s->total, s->failed,
                 s->running, rate, eta);
}

/* The options column of a probe row: the key's options, then, for an OK
 * task (o not NULL), ";losses=" and the loss of every (radius, direction)
 * radius-major, comma-separated, %.17g:
 *   radii=0.001,0.01,directions=2,seed=0;losses=3.51,3.52,3.60,3.58
 * (radius 0.001 directions 0, 1, then radius 0.01). Returns malloc'd text. */
static char *probe_options(const char *opts, const sweep_result *o)
{
    size_t n = o ? (size_t)o->r.n_probe : 0;
    size_t cap = strlen(opts) + 16 + 26 * n;
    char *out = qid_malloc(cap, "probe options");
    size_t k = (size_t)snprintf(out, cap, "%s", opts);
    for (size_t i = 0; i < n; i++)
        k += (size_t)snprintf(out + k, cap - k, "%s%.17g", i ? "," : ";losses=", o->probe[i]);
    return out;
}

/* Appends the row of task t with result o (joined with the baseline), or
 * dies when the store cannot be written (tier 1: the run cannot go on). */
static void record(sched *s, size_t t, const sweep_result *o)
{
    const qid_task *task = &s->tasks[t];
    base_info *b = &s->base[task->ckpt];
    qid_result row;
    memset(&row, 0, sizeof row);
    const qid_job_quant *q = task->quant >= 0 ? &s->job->quant[task->quant] : NULL;
    char fin[32], errtxt[QID_ERROR_MAX];
    qid_utc_now(fin, sizeof fin);
    snprintf(errtxt, sizeof errtxt, "%s", o->r.error);
    int status = o->r.status;
    double loss16 = NAN, qid = NAN, se = NAN;
    int32_t *tok32 = NULL;

    char *probe_opts = NULL;
    if (status == QID_RESULT_OK && task->method == QID_JOB_METHOD_BASELINE) {
        loss16 = o->r.loss;
        qid = 0;
        se = 0;
    } else if (task->method == QID_JOB_METHOD_PROBES) {
        probe_opts = probe_options(task->options, status == QID_RESULT_OK ? o : NULL);
    } else if (status == QID_RESULT_OK) {
        qid_error err;
        qid_error_clear(&err);
        qid_eval_paired p;
        QID_CHECK(b->state == B_OK, "task '%s' ran before its baseline", task->key);
        /* the windows the task evaluated (all, or an adaptive task's: count > 0) */
        int bad = (size_t)o->r.windows != b->n;
        size_t k = 0;
        double *pa = qid_malloc(b->n * sizeof *pa + 1, "paired baseline"), *pb = qid_malloc(b->n * sizeof *pb + 1, "");
        int64_t *pc = qid_malloc(b->n * sizeof *pc + 1, "paired counts");
        for (size_t i = 0; !bad && i < b->n; i++) {
            if (o->count[i] == 0) continue;
            bad = o->count[i] != b->count[i];
            pa[k] = b->nll[i], pb[k] = o->nll[i], pc[k] = o->count[i], k++;
        }
        if (bad || k != (size_t)o->r.windows_used)
            qid_error_set(&err, QID_E_INVALID, "windows of '%s' differ from those of its baseline (%" PRId64 " vs %zu)",
                          task->ckpt_path.rel, o->r.windows, b->n);
        else if (qid_eval_paired_diff(pa, pb, pc, k, &p, &err) == QID_OK) {
            loss16 = p.loss_a;
            qid = p.diff;
            se = p.se;
        }
        free(pa);
        free(pb);
        free(pc);
        if (err.code) {
            status = QID_RESULT_FAILED;
            snprintf(errtxt, sizeof errtxt, "%s", err.msg);
        }
    }

    row.key = task->key;
    row.checkpoint = task->ckpt_path.rel;
    row.model = o->r.model[0] ? o->r.model : task->model;
    row.ckpt_sha256 = o->r.ckpt_sha256;
    row.params = o->r.params;
    row.tokens_seen = o->r.tokens_seen;
    row.step = o->r.step;
    row.lr_frac = o->r.lr_frac;
    row.method = qid_job_method_name(task->method);
    row.format = q ? q->format : "";
    row.bits = o->r.bits;
    row.elem_bits = o->r.elem_bits;
    row.block = q ? (int64_t)q->spec.block : -1;
    row.options = probe_opts ? probe_opts : task->options;
    row.calib = task->calib;
    row.calib_chunk = o->r.calib_chunk;
    row.eval_protocol = task->eval;
    row.eval_sha256 = o->r.eval_sha256;
    row.loss = status == QID_RESULT_OK ? o->r.loss : NAN;
    row.loss16 = loss16;
    row.qid = qid;
    row.qid_se = se;
    row.sqnr_db = o->r.sqnr_db;
    row.kl = o->r.kl;
    row.tokens = status == QID_RESULT_OK ? o->r.tokens : -1;
    row.windows = status == QID_RESULT_OK ? o->r.windows : 0;
    row.windows_used = status == QID_RESULT_OK ? o->r.windows_used : 0;
    char rule[256] = "";
    if (status == QID_RESULT_OK && needs_baseline(task->method)) qid_job_stop_rule(s->job, rule, sizeof rule);
    row.stop_rule = rule;
    row.div = o->r.div;
    if (status != QID_RESULT_OK) qid_divergence_none(&row.div);
    row.seconds = o->r.seconds;
    row.rank = o->r.rank;
    row.status = (qid_result_status)status;
    row.error = status == QID_RESULT_OK ? "" : errtxt;
    row.finished_utc = fin;
    if (status == QID_RESULT_OK && o->r.windows > 0) {
        tok32 = qid_malloc((size_t)o->r.windows * sizeof *tok32, "per-window tokens of a row");
        for (int64_t i = 0; i < o->r.windows; i++)
            tok32[i] = (int32_t)o->count[i];
        row.window_nll = o->nll;
        row.window_tokens = tok32;
    }
    qid_error err;
    qid_error_clear(&err);
    double t_append = MPI_Wtime();
    if (qid_results_append(s->store, &row, &err)) qid_die("cannot append the result of '%s': %s", task->key, err.msg);
    t_append = MPI_Wtime() - t_append;
    if (s->appended < APPEND_WINDOW) s->append_first += t_append;
    s->append_last[s->appended % APPEND_WINDOW] = t_append;
    if (++s->appended == APPEND_WINDOW) s->rss_first = rss_kib();
    free(tok32);
    free(probe_opts);

    s->done++;
    if (status != QID_RESULT_OK) {
        s->failed++;
        qid_warn("task failed: %s: %s", task->key, row.error);
    }
    progress(s, 0);
}

/* Takes note of the result o of task t before it is recorded: a baseline's
 * outcome makes its checkpoint's quantized tasks eligible (or orphans). */
static void note_result(sched *s, size_t t, const sweep_result *o)
{
    const qid_task *task = &s->tasks[t];
    base_info *b = &s->base[task->ckpt];
    if (task->method != QID_JOB_METHOD_BASELINE) return;
    if (o->r.status == QID_RESULT_OK) {
        b->state = B_OK;
        b->n = (size_t)o->r.windows;
        b->nll = qid_malloc(b->n * sizeof *b->nll + 1, "baseline per-window NLL");
        b->count = qid_malloc(b->n * sizeof *b->count + 1, "baseline per-window tokens");
        memcpy(b->nll, o->nll, b->n * sizeof *b->nll);
        memcpy(b->count, o->count, b->n * sizeof *b->count);
        b->loss = o->r.loss;
    } else {
        b->state = B_FAILED;
        snprintf(b->error, sizeof b->error, "%s", o->r.error[0] ? o->r.error : "unknown error");
    }
}

/* Tasks of checkpoints whose baseline failed cannot be joined: record them
 * as failed (they are retried by a later run). */
static void fail_orphans(sched *s)
{
    for (size_t t = 0; t < s->n_tasks; t++) {
        if (s->state[t] != T_PENDING || !needs_baseline(s->tasks[t].method)) continue;
        const base_info *b = &s->base[s->tasks[t].ckpt];
        if (b->state != B_FAILED) continue;
        sweep_result o;
        sweep_result_init(&o, 0);
        o.r.status = QID_RESULT_FAILED;
        o.r.elem_bits = s->job->quant[s->tasks[t].quant].spec.bits;
        snprintf(o.r.error, sizeof o.r.error, "baseline failed: %s", b->error);
        s->state[t] = T_DONE;
        record(s, t, &o);
    }
}

/* The next task for a worker holding checkpoint `held`: the first eligible
 * pending task of that checkpoint, else the first eligible one; -1 if none. */
static long pick(const sched *s, int64_t held)
{
    long any = -1;
    for (size_t t = 0; t < s->n_tasks; t++) {
        if (s->state[t] != T_PENDING) continue;
        const qid_task *k = &s->tasks[t];
        if (needs_baseline(k->method) && s->base[k->ckpt].state != B_OK) continue;
        if ((int64_t)k->ckpt == held) return (long)t;
        if (any < 0) any = (long)t;
    }
    return any;
}

/* The baseline per-window NLL an adaptive task of t's checkpoint is run
 * against (NULL when the job is not adaptive or t is not quantized). */
static const base_info *task_base(const sched *s, size_t t)
{
    const qid_task *k = &s->tasks[t];
    if (!s->job->eval.adaptive || !needs_baseline(k->method)) return NULL;
    const base_info *b = &s->base[k->ckpt];
    return b->state == B_OK ? b : NULL;
}

static void send_task(const sched *s, size_t t, int dest)
{
    const qid_task *k = &s->tasks[t];
    const base_info *base = task_base(s, t);
    size_t plen = strlen(k->ckpt_path.path) + 1, nb = base ? base->n : 0;
    size_t bytes = sizeof(wire_task) + plen + nb * sizeof(double);
    unsigned char *buf = qid_malloc(bytes, "task message");
    wire_task w;
    memset(&w, 0, sizeof w);
    w.id = (int64_t)t;
    w.ckpt = (int64_t)k->ckpt;
    w.method = (int32_t)k->method;
    w.quant = k->quant;
    w.path_len = qid_mpi_count(plen, "checkpoint path bytes");
    w.n_base = (int64_t)nb;
    memcpy(buf, &w, sizeof w);
    memcpy(buf + sizeof w, k->ckpt_path.path, plen);
    if (nb) memcpy(buf + sizeof w + plen, base->nll, nb * sizeof(double));
    QID_MPI(MPI_Send(buf, qid_mpi_count(bytes, "task message bytes"), MPI_BYTE, dest, TAG_TASK, MPI_COMM_WORLD));
    free(buf);
}

/* Receives a message whose size is known only from the probe. */
static unsigned char *recv_bytes(int src, int tag, MPI_Status *st, int *count)
{
    QID_MPI(MPI_Probe(src, tag, MPI_COMM_WORLD, st));
    QID_MPI(MPI_Get_count(st, MPI_BYTE, count));
    unsigned char *buf = qid_malloc((size_t)*count + 1, "message");
    QID_MPI(MPI_Recv(buf, *count, MPI_BYTE, st->MPI_SOURCE, st->MPI_TAG, MPI_COMM_WORLD, MPI_STATUS_IGNORE));
    return buf;
}

static void unpack_result(const unsigned char *buf, int count, sweep_result *o)
{
    QID_CHECK((size_t)count >= sizeof(sweep_scalars), "short result message (%d bytes)", count);
    memcpy(&o->r, buf, sizeof o->r);
    size_t n = o->r.windows > 0 ? (size_t)o->r.windows : 0;
    size_t np = o->r.n_probe > 0 ? (size_t)o->r.n_probe : 0;
    QID_CHECK((size_t)count == sizeof(sweep_scalars) + n * (sizeof(double) + sizeof(int64_t)) + np * sizeof(double),
              "result message of %d bytes for %zu windows and %zu probes", count, n, np);
    o->r.error[sizeof o->r.error - 1] = 0;
    o->r.model[sizeof o->r.model - 1] = 0;
    o->r.ckpt_sha256[64] = o->r.eval_sha256[64] = 0;
    o->nll = qid_malloc(n * sizeof *o->nll + 1, "per-window NLL");
    o->count = qid_malloc(n * sizeof *o->count + 1, "per-window tokens");
    memcpy(o->nll, buf + sizeof(sweep_scalars), n * sizeof *o->nll);
    memcpy(o->count, buf + sizeof(sweep_scalars) + n * sizeof *o->nll, n * sizeof *o->count);
    o->probe = qid_malloc(np * sizeof *o->probe + 1, "probe losses");
    memcpy(o->probe, buf + sizeof(sweep_scalars) + n * (sizeof *o->nll + sizeof *o->count), np * sizeof *o->probe);
}

static void send_result(const sweep_result *o)
{
    size_t n = o->r.windows > 0 ? (size_t)o->r.windows : 0;
    size_t np = o->r.n_probe > 0 ? (size_t)o->r.n_probe : 0;
    size_t bytes = sizeof(sweep_scalars) + n * (sizeof(double) + sizeof(int64_t)) + np * sizeof(double);
    unsigned char *buf = qid_malloc(bytes, "result message");
    memcpy(buf, &o->r, sizeof o->r);
    if (n) {
        memcpy(buf + sizeof(sweep_scalars), o->nll, n * sizeof(double));
        memcpy(buf + sizeof(sweep_scalars) + n * sizeof(double), o->count, n * sizeof(int64_t));
    }
    if (np) memcpy(buf + sizeof(sweep_scalars) + n * (sizeof(double) + sizeof(int64_t)), o->probe, np * sizeof(double));
    QID_MPI(MPI_Send(buf, qid_mpi_count(bytes, "result message bytes"), MPI_BYTE, 0, TAG_RESULT, MPI_COMM_WORLD));
    free(buf);
}

/* size == 1: rank 0 runs every task itself, in scheduling order. */
static void run_serial(sched *s, int threads)
{
    int64_t held = -1;
    sweep_cache cache = {0};
    for (;;) {
        double t0 = MPI_Wtime();
        fail_orphans(s);
        long t = pick(s, held);
        s->busy += MPI_Wtime() - t0;
        if (t < 0) break;
        const qid_task *k = &s->tasks[t];
        s->state[t] = T_RUNNING;
        s->running = 1;
        sweep_result o;
        const base_info *base = task_base(s, (size_t)t);
        sweep_task_run(s->job, k, threads, 0, &cache, base ? base->nll : NULL, base ? base->n : 0, &o);
        s->running = 0;
        t0 = MPI_Wtime();
        s->state[t] = T_DONE;
        note_result(s, (size_t)t, &o);
        record(s, (size_t)t, &o);
        sweep_result_free(&o);
        s->busy += MPI_Wtime() - t0;
        held = (int64_t)k->ckpt;
    }
    sweep_cache_close(&cache);
}

/* Answers every waiting worker that can be answered now: its next task, or
 * STOP once every task is recorded. Returns the number of STOPs sent. */
static int dispatch(sched *s, int *waiting, const int64_t *held, long *assigned)
{
    int stopped = 0;
    for (int w = 1; w < s->size; w++) {
        if (!waiting[w]) continue;
        long t = pick(s, held[w]);
        if (t >= 0) {
            s->state[t] = T_RUNNING;
            s->running++;
            assigned[w] = t;
            send_task(s, (size_t)t, w);
            waiting[w] = 0;
        } else if (s->done == s->total && s->running == 0) {
            QID_MPI(MPI_Send(NULL, 0, MPI_BYTE, w, TAG_STOP, MPI_COMM_WORLD));
            waiting[w] = 0;
            stopped++;
        }
    }
    return stopped;
}

/* size > 1: rank 0 only schedules. A result is received, its worker (and
 * any other waiting one) gets its next task, and only then is the result
 * appended (flushed; its fsync completes before the next append writes),
 * so the worker computes while rank 0 writes. Rank 0 polls with MPI_Iprobe and sleeps
 * between polls (Open MPI's blocking receive would spin on a core the
 * workers need), 20 us after a message, doubling to at most 200 us while
 * idle: a result waits at most that long (the timer slack is set to 1 us
 * so a nap is not stretched), and 5000 wake-ups a second cost rank 0 about
 * 1% of a core. */
static void run_scheduler(sched *s)
{
#ifdef __linux__
    /* Linux lets a sleep overrun by its timer slack (50 us by default),
     * which would add that much to every result's wait. */
    (void)prctl(PR_SET_TIMERSLACK, 1000UL, 0UL, 0UL, 0UL);
#endif
    int alive = s->size - 1;
    int *waiting = qid_calloc((size_t)s->size, sizeof *waiting, "waiting workers");
    int64_t *held = qid_malloc((size_t)s->size * sizeof *held, "held checkpoints");
    long *assigned = qid_malloc((size_t)s->size * sizeof *assigned, "assigned tasks");
    for (int w = 0; w < s->size; w++)
        held[w] = -1, assigned[w] = -1;
    long nap_ns = 20000;
    while (alive > 0) {
        int flag = 0;
        MPI_Status st;
        QID_MPI(MPI_Iprobe(MPI_ANY_SOURCE, MPI_ANY_TAG, MPI_COMM_WORLD, &flag, &st));
        if (!flag) {
            progress(s, 0);
            struct timespec ts = {0, nap_ns};
            nanosleep(&ts, NULL);
            if (nap_ns < 200000) nap_ns *= 2;
            continue;
        }
        nap_ns = 20000;
        double t0 = MPI_Wtime();
        int src = st.MPI_SOURCE, count = 0;
        QID_CHECK(src > 0 && src < s->size, "message from rank %d", src);
        if (st.MPI_TAG == TAG_REQUEST) {
            int64_t h = -1;
            QID_MPI(MPI_Recv(&h, 1, MPI_INT64_T, src, TAG_REQUEST, MPI_COMM_WORLD, MPI_STATUS_IGNORE));
            held[src] = h;
            waiting[src] = 1;
        } else if (st.MPI_TAG == TAG_RESULT) {
            unsigned char *buf = recv_bytes(src, TAG_RESULT, &st, &count);
            sweep_result o;
            unpack_result(buf, count, &o);
            free(buf);
            QID_CHECK(o.r.id >= 0 && (size_t)o.r.id < s->n_tasks && o.r.id == assigned[src],
                      "result for task %" PRId64 " from rank %d", o.r.id, src);
            s->state[o.r.id] = T_DONE;
            s->running--;
            assigned[src] = -1;
            held[src] = o.r.ckpt;
            waiting[src] = 1;
            note_result(s, (size_t)o.r.id, &o);
            alive -= dispatch(s, waiting, held, assigned); /* the next task before the append */
            record(s, (size_t)o.r.id, &o);
            sweep_result_free(&o);
        } else {
            qid_die("unexpected message tag %d from rank %d", st.MPI_TAG, src);
        }
        fail_orphans(s);
        alive -= dispatch(s, waiting, held, assigned);
        s->busy += MPI_Wtime() - t0;
    }
    free(waiting);
    free(held);
    free(assigned);
}

/* ---- workers -------------------------------------------------------------- */

static void run_worker(const qid_job *job, int rank, int threads)
{
    int64_t held = -1;
    sweep_cache cache = {0};
    QID_MPI(MPI_Send(&held, 1, MPI_INT64_T, 0, TAG_REQUEST, MPI_COMM_WORLD));
    for (;;) {
        MPI_Status st;
        QID_MPI(MPI_Probe(0, MPI_ANY_TAG, MPI_COMM_WORLD, &st));
        if (st.MPI_TAG == TAG_STOP) {
            QID_MPI(MPI_Recv(NULL, 0, MPI_BYTE, 0, TAG_STOP, MPI_COMM_WORLD, MPI_STATUS_IGNORE));
            sweep_cache_close(&cache);
            return;
        }
        QID_CHECK(st.MPI_TAG == TAG_TASK, "unexpected message tag %d", st.MPI_TAG);
        int count = 0;
        unsigned char *buf = recv_bytes(0, TAG_TASK, &st, &count);
        wire_task w;
        QID_CHECK((size_t)count > sizeof w, "short task message (%d bytes)", count);
        memcpy(&w, buf, sizeof w);
        QID_CHECK(w.n_base >= 0 && w.path_len > 0 &&
                      (size_t)count == sizeof w + (size_t)w.path_len + (size_t)w.n_base * sizeof(double) &&
                      buf[sizeof w + (size_t)w.path_len - 1] == 0,
                  "bad task message");
        double *base = NULL;
        if (w.n_base) {
            base = qid_malloc((size_t)w.n_base * sizeof *base, "baseline per-window NLL");
            memcpy(base, buf + sizeof w + (size_t)w.path_len, (size_t)w.n_base * sizeof *base);
        }
        QID_CHECK(w.quant < (int32_t)job->n_quant, "task with quantizer %d of %zu", w.quant, job->n_quant);
        /* what sweep_task_run reads of a task; the quantizer index means the
         * same here as on rank 0, which parsed the same job text */
        qid_task k = {.index = (size_t)w.id,
                      .ckpt = (size_t)w.ckpt,
                      .ckpt_path.path = (char *)buf + sizeof w,
                      .method = (qid_job_method)w.method,
                      .quant = w.quant};
        sweep_result o;
        sweep_task_run(job, &k, threads, rank, &cache, base, (size_t)w.n_base, &o);
        free(base);
        o.r.id = w.id;
        o.r.ckpt = w.ckpt;
        held = w.ckpt;
        send_result(&o);
        sweep_result_free(&o);
        free(buf);
    }
}

/* ---- start-up ------------------------------------------------------------- */

static int cmp_row_key(const void *a, const void *b)
{
    return strcmp(((const qid_result *)a)->key, ((const qid_result *)b)->key);
}

/* Rank 0 before the go flag: job, grid, store, skipped tasks, baselines
 * from earlier runs. Returns START_*, with err set for START_FAIL. */
static int prepare(sched *s, const qid_sweep_opts *o, qid_job *job, qid_error *err)
{
    if (qid_job_load(o->job_file, job, err)) return START_FAIL;
    if (o->mem_limit > 0) job->mem_limit = o->mem_limit;
    s->job = job;
    if (qid_job_tasks(job, &s->tasks, &s->n_tasks, err)) return START_FAIL;
    qsort(s->tasks, s->n_tasks, sizeof *s->tasks, qid_task_cmp_cost);
    for (size_t t = 0; t < s->n_tasks; t++)
        if (s->tasks[t].ckpt + 1 > s->n_ckpts) s->n_ckpts = s->tasks[t].ckpt + 1;

    /* Rows of earlier runs, read before the store is opened for writing (a
     * reader and the writer cannot share the file in one process): the
     * baselines' per-window NLL that later quantized tasks join against. */
    qid_result *rows = NULL;
    size_t n_rows = 0;
    struct stat sb;
    if (stat(job->results.path, &sb) == 0 && qid_results_read(job->results.path, &rows, &n_rows, err))
        return START_FAIL;
    qid_results_provenance prov = {job->name, job->file, job->text, job->seed, s->size};
    s->store = qid_results_open(job->results.path, &prov, err);
    if (!s->store) {
        qid_results_rows_free(rows, n_rows);
        return START_FAIL;
    }
    if (n_rows) qsort(rows, n_rows, sizeof *rows, cmp_row_key); /* rows is NULL for a new store */

    s->state = qid_calloc(s->n_tasks + 1, sizeof *s->state, "task states");
    s->base = qid_calloc(s->n_ckpts + 1, sizeof *s->base, "baselines");
    for (size_t t = 0; t < s->n_tasks; t++) {
        const qid_task *k = &s->tasks[t];
        if (!qid_results_has(s->store, k->key)) continue;
        if (k->method == QID_JOB_METHOD_BASELINE) {
            /* the last OK row with this key */
            const qid_result *hit = NULL;
            qid_result probe;
            memset(&probe, 0, sizeof probe);
            probe.key = k->key;
            const qid_result *r = bsearch(&probe, rows, n_rows, sizeof *rows, cmp_row_key);
            if (r) {
                while (r > rows && strcmp(r[-1].key, k->key) == 0)
                    r--;
                for (; r < rows + n_rows && strcmp(r->key, k->key) == 0; r++)
                    if (r->status == QID_RESULT_OK && r->window_nll && r->window_tokens) hit = r;
            }
            if (!hit) continue; /* not readable: compute it again */
            base_info *b = &s->base[k->ckpt];
            b->state = B_OK;
            b->n = (size_t)hit->windows;
            b->nll = qid_malloc(b->n * sizeof *b->nll + 1, "baseline per-window NLL");
            b->count = qid_malloc(b->n * sizeof *b->count + 1, "baseline per-window tokens");
            for (size_t i = 0; i < b->n; i++) {
                b->nll[i] = hit->window_nll[i];
                b->count[i] = hit->window_tokens[i];
            }
            b->loss = hit->loss;
        }
        s->state[t] = T_SKIPPED;
        s->skipped++;
    }
    qid_results_rows_free(rows, n_rows);
    s->total = s->n_tasks - s->skipped;
    qid_info("run: job '%s': %zu tasks, %zu already in '%s', %zu to run on %d rank%s", job->name, s->n_tasks,
             s->skipped, job->results.path, s->total, s->size, s->size == 1 ? "" : "s");
    return START_GO;
}

static void sched_free(sched *s)
{
    for (size_t c = 0; c < s->n_ckpts && s->base; c++) {
        free(s->base[c].nll);
        free(s->base[c].count);
    }
    free(s->base);
    free(s->state);
    qid_job_tasks_free(s->tasks, s->n_tasks);
}

int qid_sweep_run(const qid_sweep_opts *o, qid_sweep_summary *sum, qid_error *err)
{
    memset(sum, 0, sizeof *sum);
    int rank = 0, size = 1;
    QID_MPI(MPI_Comm_rank(MPI_COMM_WORLD, &rank));
    QID_MPI(MPI_Comm_size(MPI_COMM_WORLD, &size));

    qid_job job;
    memset(&job, 0, sizeof job);
    sched s;
    memset(&s, 0, sizeof s);
    s.size = size;
    s.progress_every = o->progress_every;
    s.tty = isatty(2);

    int32_t start = START_GO;
    if (rank == 0) start = prepare(&s, o, &job, err);
    QID_MPI(MPI_Bcast(&start, 1, MPI_INT32_T, 0, MPI_COMM_WORLD));
    if (start != START_GO) {
        if (rank == 0) sched_free(&s);
        qid_job_free(&job);
        if (rank != 0) qid_error_clear(err); /* rank 0 says why */
        return QID_E_INVALID;
    }

    /* the job text to the workers, which parse it themselves */
    if (size > 1) {
        int64_t len = rank == 0 ? (int64_t)job.text_len : 0;
        QID_MPI(MPI_Bcast(&len, 1, MPI_INT64_T, 0, MPI_COMM_WORLD));
        char *text = rank == 0 ? job.text : qid_malloc((size_t)len + 1, "job text");
        QID_MPI(MPI_Bcast(text, qid_mpi_count((size_t)len, "job text bytes"), MPI_CHAR, 0, MPI_COMM_WORLD));
        if (rank != 0) {
            qid_error perr;
            qid_error_clear(&perr);
            if (qid_job_parse(text, (size_t)len, o->job_file, &job, &perr))
                qid_die("cannot parse the job text rank 0 sent: %s", perr.msg);
            if (o->mem_limit > 0) job.mem_limit = o->mem_limit;
            free(text);
        }
    }

    if (rank == 0) {
        s.t_start = s.last_progress = MPI_Wtime();
        if (size == 1)
            run_serial(&s, o->threads);
        else
            run_scheduler(&s);
        if (s.tty) fputc('\n', stderr);
        qid_error cerr;
        qid_error_clear(&cerr);
        if (qid_results_close(s.store, &cerr)) qid_die("cannot close the results store: %s", cerr.msg);
        qid_info("run: done: %zu tasks run, %zu failed, %zu skipped (already in the store), %.1f s; rank 0 spent "
                 "%.3f ms a task scheduling and storing results",
                 s.done, s.failed, s.skipped, MPI_Wtime() - s.t_start, s.done ? 1e3 * s.busy / (double)s.done : 0.0);
        if (s.appended >= 2 * APPEND_WINDOW) {
            double last = 0;
            for (size_t i = 0; i < APPEND_WINDOW; i++)
                last += s.append_last[i];
            qid_info("run: store appends: %.3f ms a row over the first %d rows, %.3f ms over the last %d (of %zu); "
                     "rank 0 resident memory %.1f MiB after the first %d, %.1f MiB at the end",
                     1e3 * s.append_first / APPEND_WINDOW, APPEND_WINDOW, 1e3 * last / APPEND_WINDOW, APPEND_WINDOW,
                     s.appended, s.rss_first / 1024.0, APPEND_WINDOW, rss_kib() / 1024.0);
        }
        sum->run = s.done;
        sum->failed = s.failed;
        sum->skipped = s.skipped;
        sched_free(&s);
    } else {
        run_worker(&job, rank, o->threads);
    }
    qid_job_free(&job);
    return QID_OK;
}
