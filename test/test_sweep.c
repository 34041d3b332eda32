/* test_sweep.c - helper of test/cmd_run.t, which runs `qid run` under mpirun.
 *
 *   sweep.t dump STORE    one line per row, sorted by key:
 *                         "key<TAB>status<TAB>loss<TAB>qid<TAB>error" (%.17g)
 *   sweep.t check STORE   checks the join of every OK row: a baseline row of
 *                         the same checkpoint and eval protocol exists with
 *                         loss16 = its loss, qid = loss - loss16 (|diff| <=
 *                         1e-12, the rounding of one subtraction of losses
 *                         ~5), qid_se finite or NaN for one window, window
 *                         vectors present, and qid, qid_se and loss16
 *                         recomputed from the stored vectors over the
 *                         windows with tokens (all, or those an adaptive row
 *                         used: windows_used of them) to 1e-12; prints each
 *                         problem, exits 1 if any
 *   sweep.t poison CKPT   writes NaN into the first element of
 *                         /layers/0/attn.qkv.weight (a checkpoint with NaN
 *                         weights for the failure test)
 *   sweep.t               (prove) TAP: dump and check on a store written here
 *                         through results.h, one good and one bad join.
 */
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "results.h"
#include "tap.h"

static int cmp_key(const void *a, const void *b)
{
    return strcmp(((const qid_result *)a)->key, ((const qid_result *)b)->key);
}

static int dump(const char *path, FILE *out)
{
    qid_result *rows = NULL;
    size_t n = 0;
    qid_error err;
    qid_error_clear(&err);
    if (qid_results_read(path, &rows, &n, &err)) {
        fprintf(stderr, "dump: %s\n", err.msg);
        return 1;
    }
    qsort(rows, n, sizeof *rows, cmp_key);
    for (size_t i = 0; i < n; i++)
        fprintf(out, "%s\t%s\t%.17g\t%.17g\t%s\n", rows[i].key, rows[i].status == QID_RESULT_OK ? "ok" : "failed",
                rows[i].loss, rows[i].qid, rows[i].error);
    qid_results_rows_free(rows, n);
    return 0;
}

static int check(const char *path, FILE *out)
{
    qid_result *rows = NULL;
    size_t n = 0;
    qid_error err;
    qid_error_clear(&err);
    if (qid_results_read(path, &rows, &n, &err)) {
        fprintf(out, "check: %s\n", err.msg);
        return 1;
    }
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
        const qid_result *r = &rows[i];
        if (r->status != QID_RESULT_OK || strcmp(r->method, "probes") == 0) continue; /* probes: no join */
        if (!r->window_nll || r->windows <= 0) fprintf(out, "%s: no window vectors\n", r->key), bad++;
        const qid_result *b = NULL;
        for (size_t j = 0; j < n; j++)
            if (rows[j].status == QID_RESULT_OK && strcmp(rows[j].method, "baseline") == 0 &&
                strcmp(rows[j].checkpoint, r->checkpoint) == 0)
                b = &rows[j];
        if (!b) {
            fprintf(out, "%s: no baseline row\n", r->key), bad++;
            continue;
        }
        if (r->loss16 != b->loss && r->windows_used == r->windows)
            fprintf(out, "%s: loss16 %.17g != baseline loss %.17g\n", r->key, r->loss16, b->loss), bad++;
        if (!(fabs(r->qid - (r->loss - r->loss16)) <= 1e-12))
            fprintf(out, "%s: qid %.17g != loss - loss16 %.17g\n", r->key, r->qid, r->loss - r->loss16), bad++;
        if (!isfinite(r->qid_se) && r->windows > 1) fprintf(out, "%s: qid_se %g\n", r->key, r->qid_se), bad++;
        if (strcmp(r->method, "baseline") == 0 || !r->window_nll || !b->window_nll || b->windows != r->windows)
            continue;
        /* recomputed from the stored vectors: the windows with tokens (all, or an adaptive row's) */
        double sa = 0, sd = 0, sn = 0, ss = 0;
        int64_t used = 0;
        for (int64_t w = 0; w < r->windows; w++)
            if (r->window_tokens[w] > 0) {
                sa += b->window_nll[w];
                sd += r->window_nll[w] - b->window_nll[w];
                sn += r->window_tokens[w];
                used++;
            }
        double q = sd / sn;
        for (int64_t w = 0; w < r->windows; w++)
            if (r->window_tokens[w] > 0) {
                double e = (r->window_nll[w] - b->window_nll[w]) - q * r->window_tokens[w];
                ss += e * e;
            }
        double se = used > 1 ? sqrt((double)used / (double)(used - 1) * ss) / sn : NAN;
        if (used != r->windows_used)
            fprintf(out, "%s: %lld windows have tokens, windows_used %lld\n", r->key, (long long)used,
                    (long long)r->windows_used),
                bad++;
        if (!(fabs(q - r->qid) <= 1e-12 && (fabs(se - r->qid_se) <= 1e-12 * se || (isnan(se) && isnan(r->qid_se))) &&
              fabs(sa / sn - r->loss16) <= 1e-12))
            fprintf(out, "%s: qid %.17g +- %.17g, loss16 %.17g; from the vectors %.17g +- %.17g, %.17g\n", r->key,
                    r->qid, r->qid_se, r->loss16, q, se, sa / sn),
                bad++;
    }
    qid_results_rows_free(rows, n);
    return bad ? 1 : 0;
}

static int poison(const char *path)
{
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    if (f < 0) return 1;
    hid_t d = H5Dopen2(f, "/layers/0/attn.qkv.weight", H5P_DEFAULT);
    hid_t fs = d < 0 ? -1 : H5Dget_space(d);
    hsize_t start[2] = {0, 0}, count[2] = {1, 1};
    hid_t ms = H5Screate_simple(1, count, NULL);
    float nan = NAN;
    int rc = fs < 0 || H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, count, NULL) < 0 ||
             H5Dwrite(d, H5T_NATIVE_FLOAT, ms, fs, H5P_DEFAULT, &nan) < 0;
    H5Sclose(ms);
    if (fs >= 0) H5Sclose(fs);
    if (d >= 0) H5Dclose(d);
    H5Fclose(f);
    return rc;
}

static void add(qid_results *s, const char *key, const char *method, double loss, double loss16, double qid)
{
    double nll[2] = {loss * 15, loss * 15};
    int32_t tok[2] = {15, 15};
    qid_result r;
    memset(&r, 0, sizeof r);
    r.key = key;
    r.checkpoint = "ck/a.h5";
    r.model = r.ckpt_sha256 = r.format = r.options = r.calib = r.eval_protocol = r.eval_sha256 = r.error = "";
    r.finished_utc = "2024-01-01T00:00:00Z";
    r.method = method;
    r.params = r.tokens_seen = r.step = -1;
    r.loss = loss;
    r.loss16 = loss16;
    r.qid = qid;
    r.qid_se = 0; /* both windows alike */
    r.sqnr_db = r.kl = r.bits = NAN;
    r.windows = r.windows_used = 2;
    r.stop_rule = "";
    r.tokens = 30;
    r.window_nll = nll;
    r.window_tokens = tok;
    qid_error err;
    qid_error_clear(&err);
    if (qid_results_append(s, &r, &err)) bail("append: %s", err.msg);
}

int main(int argc, char **argv)
{
    qid_h5_silence();
    if (argc == 3 && strcmp(argv[1], "dump") == 0) return dump(argv[2], stdout);
    if (argc == 3 && strcmp(argv[1], "check") == 0) return check(argv[2], stdout);
    if (argc == 3 && strcmp(argv[1], "poison") == 0) return poison(argv[2]);
    if (argc != 1) {
        fprintf(stderr, "usage: %s [dump|check STORE]\n", argv[0]);
        return 2;
    }
    plan(4);
    char path[1024], out[1024];
    snprintf(path, sizeof path, "%s/s.h5", tap_tmpdir());
    snprintf(out, sizeof out, "%s/out.txt", tap_tmpdir());
    qid_results_provenance prov = {"t", "t.job", "", 0, 1};
    qid_error err;
    qid_error_clear(&err);
    qid_results *s = qid_results_open(path, &prov, &err);
    if (!s) bail("open: %s", err.msg);
    add(s, "b", "baseline", 2.0, 2.0, 0.0);
    add(s, "a", "rtn", 2.5, 2.0, 0.5);
    if (qid_results_close(s, &err)) bail("close: %s", err.msg);
    FILE *f = fopen(out, "w");
    is_int(0, check(path, f), "check accepts a consistent join");
    is_int(0, dump(path, f), "dump reads the store");
    fclose(f);
    char *text = tap_read_file(out, NULL);
    like(text, "a\tok\t2.5\t0.5\t\nb\tok\t2\t0\t\n", "dump: rows sorted by key, loss and qid");
    free(text);

    s = qid_results_open(path, &prov, &err);
    if (!s) bail("reopen: %s", err.msg);
    add(s, "c", "rtn", 2.5, 2.0, 0.4);
    if (qid_results_close(s, &err)) bail("close: %s", err.msg);
    f = fopen("/dev/null", "w");
    is_int(1, check(path, f), "check rejects qid != loss - loss16");
    fclose(f);
    return 0;
}
