/* bench_store.c - `make bench`: the results store's append time as it grows.
 *
 * Appends QID_BENCH_STORE_ROWS rows (default 20000) of 4 windows each, as
 * `qid run` stores a task, to a new store in QID_BENCH_STORE_DIR (default
 * /dev/shm when it exists, else /tmp: on tmpfs an fsync costs nothing, so
 * what is timed is qid's and HDF5's own work, not the disk) and prints the
 * mean append time of each 1000 rows, the ratio of the last thousand to the
 * first, and the process's resident memory after the first and the last
 * thousand. tools/soak.sh runs the same on disk through `qid run` at 3
 * ranks (docs/benchmarks.md § Soak). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"
#include "divergence.h"
#include "error.h"
#include "results.h"

static long rss_kib(void)
{
    long pages = 0, resident = -1;
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f) return -1;
    int n = fscanf(f, "%ld %ld", &pages, &resident);
    fclose(f);
    return n == 2 ? resident * (sysconf(_SC_PAGESIZE) / 1024) : -1;
}

int main(void)
{
    size_t rows = env_size("QID_BENCH_STORE_ROWS", 20000);
    const char *dir = getenv("QID_BENCH_STORE_DIR");
    if (!dir) dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    char path[512];
    snprintf(path, sizeof path, "%s/qid-bench-store-%ld.h5", dir, (long)getpid());
    qid_h5_silence();
    qid_error e;
    qid_error_clear(&e);
    qid_results *r = qid_results_open(path, NULL, &e);
    if (!r) {
        fprintf(stderr, "bench_store: %s\n", e.msg);
        return 1;
    }
    double nll[4] = {120.5, 118.25, 121.0, 119.75};
    int32_t tok[4] = {128, 128, 128, 127};
    double block_s = 0, first = 0, last = 0;
    long rss_first = 0;
    printf("store: %zu appends of 4-window rows to %s (mean ms an append per 1000 rows)\n", rows, path);
    for (size_t i = 0; i < rows; i++) {
        char key[160];
        snprintf(key, sizeof key,
                 "suite/run%03zu/step%05zu.h5|rtn|int%zu-g16-sym|-|-|eval=eval.h5,windows=4,seq_len=auto,scoring=all",
                 i % 97, i / 29, 2 + i % 7);
        qid_result row = {.key = key,
                          .checkpoint = key,
                          .model = "bench",
                          .ckpt_sha256 = "00",
                          .params = 12768,
                          .tokens_seen = 2048,
                          .step = 4,
                          .lr_frac = 1,
                          .method = "rtn",
                          .format = "int4-g16-sym",
                          .bits = 5,
                          .elem_bits = 4,
                          .block = 16,
                          .options = "-",
                          .calib = "-",
                          .calib_chunk = -1,
                          .eval_protocol = "windows=4",
                          .eval_sha256 = "11",
                          .loss = 0.94,
                          .loss16 = 0.93,
                          .qid = 0.01,
                          .qid_se = 0.001,
                          .sqnr_db = 20,
                          .kl = NAN,
                          .tokens = 511,
                          .windows = 4,
                          .seconds = 0.01,
                          .rank = 1 + (int32_t)(i % 2),
                          .status = QID_RESULT_OK,
                          .error = "",
                          .finished_utc = "2026-12-05T08:00:00Z",
                          .window_nll = nll,
                          .window_tokens = tok,
                          .windows_used = 4,
                          .stop_rule = ""};
        qid_divergence_none(&row.div);
        double t0 = now();
        if (qid_results_append(r, &row, &e)) {
            fprintf(stderr, "bench_store: row %zu: %s\n", i, e.msg);
            return 1;
        }
        block_s += now() - t0;
        if ((i + 1) % 1000 == 0) {
            if (i + 1 == 1000) {
                first = block_s;
                rss_first = rss_kib();
            }
            last = block_s;
            printf("  rows %6zu-%-6zu %.3f ms\n", i - 998, i + 1, block_s);
            block_s = 0;
        }
    }
    long rss_last = rss_kib();
    if (qid_results_close(r, &e)) {
        fprintf(stderr, "bench_store: close: %s\n", e.msg);
        return 1;
    }
    unlink(path);
    char lock[600];
    snprintf(lock, sizeof lock, "%s.lock", path);
    unlink(lock);
    printf("store: last 1000 / first 1000 = %.2f; resident memory %.1f MiB after 1000 rows, %.1f MiB after %zu\n",
           first > 0 ? last / first : NAN, rss_first / 1024.0, rss_last / 1024.0, rows);
    return 0;
}
