/* bench_sweep.c - `make bench`: overhead of the sweep's scheduling and
 * results store per task, and the speed-up of a second worker.
 *
 * (a) Tiny tasks. A job of 2C tasks (C copies of the gpt-neox-tiny fixture,
 * imported once, each with its baseline and RTN int8-g16-sym, on 1 window
 * of 16 tokens, so a task is about a millisecond of work) is run with
 * `mpirun -np 1/2/3 build/qid run` (through system()), next to a loop that
 * evaluates every task's checkpoint in this process with qid_eval_file (no
 * MPI, no store, no quantization: RTN of this model takes microseconds).
 * The per-task cost of a run is (T(2C tasks) - T(2 tasks)) / (2C - 2),
 * which removes the fixed start-up (mpirun, MPI_Init, opening the store);
 * times the number of workers, minus the tasks' own mean time as the store
 * records it (the worker's wall time from opening the checkpoint to the
 * loss), it is the scheduler + store overhead per task: the time a worker
 * is not inside a task. (It is also printed against the in-process loop,
 * which is warmer: the same files evaluated twice in one process.) The
 * store's append (flush + fsync of each row) is also timed alone on a fresh
 * store: with one rank it is serial; with workers rank 0 sends the next
 * task before it appends, so only a worker that finishes during an append
 * waits for it.
 *
 * (b) Real tasks. R copies of the same checkpoint x (baseline, RTN
 * int8-g16-sym, RTN int4-g16-sym) on W windows of 64 tokens of a synthetic
 * token set (W chosen so a task takes a few tenths of a second), run with
 * 1 worker (-np 2) and 2 workers (-np 3); tasks/s = (3R - 3) / (T(3R tasks)
 * - T(3 tasks)), and the speed-up of the second worker.
 *
 * Environment: QID_BENCH_CHECKPOINTS (C, default 32), QID_BENCH_REAL (R,
 * default 6), QID_BENCH_WINDOWS (W, default 1500), QID_BENCH_QID (build/qid),
 * QID_BENCH_KEEP (set: keep the work directory and print where).
 * Skips (exit 0) when mpirun or the qid binary is absent. Not a test:
 * prints numbers, asserts nothing about speed. */
#define _GNU_SOURCE
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "error.h"
#include "eval.h"
#include "results.h"

/* Runs a shell command; dies when it fails. */
static void sh(const char *cmd)
{
    if (system(cmd) != 0) qid_die("bench_sweep: command failed: %s", cmd);
}

/* NAME.job over the checkpoints of glob: baseline + RTN formats, windows
 * windows of the token set tokens. */
static void write_job(const char *dir, const char *name, const char *glob, const char *tokens, int windows,
                      const char *formats)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s.job", dir, name);
    FILE *f = fopen(path, "w");
    if (!f) qid_die("bench_sweep: cannot write '%s'", path);
    fprintf(f,
            "# bench_sweep: baseline + rtn %s, %d windows per checkpoint\n"
            "[job]\nresults = %s.h5\n[checkpoints]\nglob = %s\n[eval]\ntokens = %s\nwindows = %d\n"
            "[quantize]\nmethods = rtn\nformats = %s\n",
            formats, windows, name, glob, tokens, windows, formats);
    fclose(f);
}

/* Seconds of `mpirun -np np qid run NAME.job` on a fresh store. */
static double time_run(const char *dir, const char *qid, const char *mpirun, int np, const char *name, double *busy_ms)
{
    char cmd[3 * PATH_MAX];
    snprintf(cmd, sizeof cmd, "cd '%s' && rm -f %s.h5 %s.h5.lock", dir, name, name);
    sh(cmd);
    snprintf(cmd, sizeof cmd, "cd '%s' && %s -np %d '%s' run --progress-every 1000 %s.job >/dev/null 2>%s.log", dir,
             mpirun, np, qid, name, name);
    double t0 = now();
    sh(cmd);
    double t = now() - t0;
    /* rank 0's own account: "... rank 0 spent X ms a task scheduling and storing results" */
    if (busy_ms) {
        *busy_ms = NAN;
        snprintf(cmd, sizeof cmd, "%s/%s.log", dir, name);
        FILE *f = fopen(cmd, "r");
        char line[1024];
        while (f && fgets(line, sizeof line, f)) {
            const char *p = strstr(line, "rank 0 spent ");
            if (p) *busy_ms = strtod(p + strlen("rank 0 spent "), NULL);
        }
        if (f) fclose(f);
    }
    return t;
}

/* Mean of the tasks' own seconds (run by a rank, from reading the
 * checkpoint to the evaluated loss) in the store of job name. */
static double mean_task_seconds(const char *dir, const char *name)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s.h5", dir, name);
    qid_result *rows = NULL;
    size_t n = 0;
    qid_error err;
    qid_error_clear(&err);
    if (qid_results_read(path, &rows, &n, &err)) qid_die("bench_sweep: %s", err.msg);
    double sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += rows[i].seconds;
    qid_results_rows_free(rows, n);
    return n ? sum / (double)n : NAN;
}

/* Seconds per qid_results_append of a row with one window, over n rows. */
static double time_append(const char *dir, int n)
{
    char path[PATH_MAX], key[64];
    snprintf(path, sizeof path, "%s/append.h5", dir);
    qid_error err;
    qid_error_clear(&err);
    qid_results *r = qid_results_open(path, NULL, &err);
    if (!r) qid_die("bench_sweep: %s", err.msg);
    double nll = 40.0;
    int32_t tok = 15;
    qid_result row = {.key = key,
                      .model = "bench",
                      .params = 1,
                      .tokens_seen = 1,
                      .step = 1,
                      .method = "baseline",
                      .bits = 16,
                      .elem_bits = -1,
                      .block = -1,
                      .loss = 2.5,
                      .loss16 = 2.5,
                      .qid = 0,
                      .qid_se = 0,
                      .sqnr_db = NAN,
                      .kl = NAN,
                      .tokens = 15,
                      .windows = 1,
                      .seconds = 0,
                      .rank = 0,
                      .status = QID_RESULT_OK,
                      .window_nll = &nll,
                      .window_tokens = &tok};
    double t0 = now();
    for (int i = 0; i < n; i++) {
        snprintf(key, sizeof key, "bench-%d", i);
        if (qid_results_append(r, &row, &err)) qid_die("bench_sweep: %s", err.msg);
    }
    double t = (now() - t0) / n;
    if (qid_results_close(r, &err)) qid_die("bench_sweep: %s", err.msg);
    return t;
}

int main(void)
{
    qid_h5_silence();
    const char *qid_rel = getenv("QID_BENCH_QID") ? getenv("QID_BENCH_QID") : "build/qid";
    char qid[PATH_MAX], fix[PATH_MAX];
    if (!realpath(qid_rel, qid) || access(qid, X_OK) != 0) {
        printf("bench sweep: skipped (no %s; make first)\n", qid_rel);
        return 0;
    }
    if (system("command -v mpirun >/dev/null 2>&1") != 0) {
        printf("bench sweep: skipped (no mpirun)\n");
        return 0;
    }
    if (!realpath("test/fixtures/hf", fix)) qid_die("bench_sweep: run from the repository root (test/fixtures/hf)");
    const char *mpirun = getuid() == 0 ? "mpirun --oversubscribe --allow-run-as-root" : "mpirun --oversubscribe";
    int n = getenv("QID_BENCH_CHECKPOINTS") ? atoi(getenv("QID_BENCH_CHECKPOINTS")) : 32;
    if (n < 2) n = 2;

    char dir[] = "/tmp/qid-bench-sweep-XXXXXX";
    if (!mkdtemp(dir)) qid_die("bench_sweep: mkdtemp failed");
    char cmd[4 * PATH_MAX];
    snprintf(cmd, sizeof cmd,
             "cd '%s' && mkdir ck one && '%s' import --from safetensors '%s/gpt-neox-tiny' --step 1000 "
             "--tokens-per-step 2048 -o ck/c000.h5 >/dev/null 2>&1 && cp ck/c000.h5 one/c000.h5 && "
             "'%s' tokens --from '%s/tokens.u16' --dtype uint16 --vocab 96 --seq-len 16 -o tok.h5 >/dev/null 2>&1",
             dir, qid, fix, qid, fix);
    sh(cmd);
    for (int i = 1; i < n; i++) {
        snprintf(cmd, sizeof cmd, "cp '%s/ck/c000.h5' '%s/ck/c%03d.h5'", dir, dir, i);
        sh(cmd);
    }
    write_job(dir, "many", "ck/*.h5", "tok.h5", 1, "int8-g16-sym");
    write_job(dir, "one", "one/*.h5", "tok.h5", 1, "int8-g16-sym");

    /* the same tasks in this process: no MPI, no store */
    qid_eval_opts o = {.max_windows = 1, .threads = 1};
    double t_direct = 0;
    for (int rep = 0; rep < 2; rep++) {
        double t0 = now();
        for (int i = 0; i < n; i++) {
            char ck[PATH_MAX + 32];
            snprintf(ck, sizeof ck, "%s/ck/c%03d.h5", dir, i);
            char tok[PATH_MAX + 16];
            snprintf(tok, sizeof tok, "%s/tok.h5", dir);
            qid_eval_result r;
            qid_error err;
            qid_error_clear(&err);
            if (qid_eval_file(ck, tok, &o, &r, &err)) qid_die("bench_sweep: %s", err.msg);
            qid_eval_result_free(&r);
        }
        double t = (now() - t0) / n;
        if (rep == 0 || t < t_direct) t_direct = t;
    }
    double t_append = time_append(dir, 200);

    printf("bench sweep: %d tiny tasks (%d gpt-neox-tiny checkpoints x baseline, rtn int8; 1 window of 16 tokens)\n",
           2 * n, n);
    printf("  in-process loop (qid_eval_file, no MPI, no store): %8.3f ms/task\n", 1e3 * t_direct);
    printf("  results store append (flush + fsync, 1 window):    %8.3f ms/row\n", 1e3 * t_append);
    printf("  %-6s %10s %10s %12s %12s %12s %12s %12s %10s\n", "ranks", "T(1) s", "T(N) s", "per task ms", "task ms",
           "rank 0 ms", "sched ms", "vs loop ms", "tasks/s");
    for (int np = 1; np <= 3; np++) {
        double t1 = INFINITY, tn = INFINITY, task = NAN, busy = NAN;
        for (int rep = 0; rep < 3; rep++) { /* best of 3: a shared machine is noisy */
            t1 = fmin(t1, time_run(dir, qid, mpirun, np, "one", NULL));
            double b = NAN, t = time_run(dir, qid, mpirun, np, "many", &b);
            if (t < tn) tn = t, task = mean_task_seconds(dir, "many");
            if (!(b >= busy)) busy = b; /* the least, NaN-safe */
        }
        double per = (tn - t1) / (2 * n - 2);
        int workers = np > 1 ? np - 1 : 1;
        printf("  %-6d %10.3f %10.3f %12.3f %12.3f %12.3f %12.3f %12.3f %10.1f\n", np, t1, tn, 1e3 * per, 1e3 * task,
               busy, 1e3 * (per * workers - task), 1e3 * (per * workers - t_direct), 1.0 / per);
    }
    printf("  (T(1), T(N): runs of 2 and of all tasks; per task = (T(N) - T(1)) / (N - 2); task = a task's own time\n"
           "   as the store records it (open, quantize, evaluate); rank 0 = rank 0's own account of its time per task\n"
           "   in scheduling and storing (qid run's last line; the store's append included); sched = per task x\n"
           "   workers - task: the time per task a worker is not in a task (scheduling, messages, waiting for\n"
           "   rank 0); vs loop = per task x workers - the in-process loop's time)\n");

    /* (b) real tasks: 1 worker vs 2 workers */
    int nr = getenv("QID_BENCH_REAL") ? atoi(getenv("QID_BENCH_REAL")) : 6;
    int nwin = getenv("QID_BENCH_WINDOWS") ? atoi(getenv("QID_BENCH_WINDOWS")) : 1500;
    if (nr < 2) nr = 2;
    if (nwin < 1) nwin = 1;
    snprintf(cmd, sizeof cmd,
             "cd '%s' && mkdir rck rone && perl -e 'srand(1); print pack(\"v*\", map { int(rand(96)) } 1 .. %d)' "
             ">big.u16 && '%s' tokens --from big.u16 --dtype uint16 --vocab 96 --seq-len 64 -o big.h5 >/dev/null 2>&1 "
             "&& cp ck/c000.h5 rone/r000.h5",
             dir, 64 * nwin, qid);
    sh(cmd);
    for (int i = 0; i < nr; i++) {
        snprintf(cmd, sizeof cmd, "cp '%s/ck/c000.h5' '%s/rck/r%03d.h5'", dir, dir, i);
        sh(cmd);
    }
    write_job(dir, "real", "rck/*.h5", "big.h5", nwin, "int8-g16-sym, int4-g16-sym");
    write_job(dir, "realone", "rone/*.h5", "big.h5", nwin, "int8-g16-sym, int4-g16-sym");
    double rate[4] = {0};
    printf("bench sweep: %d real tasks (%d gpt-neox-tiny checkpoints x baseline, rtn int8, rtn int4; %d windows of "
           "64 tokens)\n",
           3 * nr, nr, nwin);
    printf("  %-8s %10s %10s %14s %10s\n", "workers", "T(3) s", "T(N) s", "per task s", "tasks/s");
    for (int np = 2; np <= 3; np++) {
        double t1 = INFINITY, tn = INFINITY;
        for (int rep = 0; rep < 2; rep++) {
            t1 = fmin(t1, time_run(dir, qid, mpirun, np, "realone", NULL));
            tn = fmin(tn, time_run(dir, qid, mpirun, np, "real", NULL));
        }
        double per = (tn - t1) / (3 * nr - 3);
        rate[np] = 1.0 / per;
        printf("  %-8d %10.3f %10.3f %14.3f %10.2f\n", np - 1, t1, tn, per, rate[np]);
    }
    printf("  speed-up of 2 workers over 1: %.2fx (target >= 1.8x on 2 cores)\n", rate[3] / rate[2]);
    if (getenv("QID_BENCH_KEEP"))
        printf("  kept %s\n", dir);
    else {
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        sh(cmd);
    }
    return 0;
}
