/* test_results.c - the results store (results.c): creation with provenance,
 * 50 rows appended with window vectors and read back exactly after a
 * reopen (strings, UTF-8, NaN, -1, window vectors through their offsets),
 * resume (has) for OK and failed keys, the lock against a second writer in
 * another process (which also reads the store through SWMR while it is
 * being written), the automatic repair after a writer killed with SIGKILL,
 * format and schema-version errors that leave the file untouched, the
 * golden `h5dump -H` listing and the schema document.
 *
 * The same program has helper modes for test/results_kill.t:
 *   results.t --writer PATH N DELAY_MS [DIE_AT_WRITE]
 *       opens PATH, appends rows 0..N-1 that it does not hold yet, printing
 *       "durable KEY" after each append returns, sleeping DELAY_MS between
 *       them; with DIE_AT_WRITE=K it sends itself SIGKILL just before its
 *       K-th pwrite(2) after opening (a kill in the middle of a flush), with
 *       K<0 before its |K|-th pwrite counting from the open (creation,
 *       repair).
 *   results.t --check PATH N
 *       opens PATH for appending (the repair), closes it, reads every row,
 *       checks each against the row the writer makes for its key, prints
 *       the keys; exit 1 on any difference.
 *   results.t --read PATH N
 *       the same checks through qid_results_read only (no lock, no repair).
 *   results.t --create PATH
 *       a fresh empty store (the golden listing is made from one).
 *
 * Does not: run under MPI (results stores are written by rank 0 only). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "h5io.h"
#include "results.h"
#include "tap.h"
#include "version.h"

/* ---- kill injection for --writer: pwrite(2) interposed for HDF5 --------------- */

static long die_at_write; /* 0: never */
static long writes_seen;
static int counting;

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off)
{
    if (counting && die_at_write > 0 && ++writes_seen >= die_at_write) raise(SIGKILL);
    return syscall(SYS_pwrite64, fd, buf, n, off);
}

/* ---- deterministic rows ------------------------------------------------------- */

typedef struct test_row {
    qid_result r;
    char key[160], checkpoint[96], model[32], sha[65], calib[64], protocol[64], error[128], finished[32];
    double nll[8];
    int32_t tok[8];
} test_row;

static const char *const methods[] = {"baseline", "rtn", "gptq", "probes"};
static const char *const models[] = {"pythia-14m", "mod\xc3\xa8le-\xc3\xbc", "llama-tiny"};
#define EVAL_SHA "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
#define GPTQ_OPT "damp=0.01,block_size=128,act_order=no,static_groups=no,micro_block=0"

/* Row i; with failures, rows 4, 13, 22, ... are failed tasks. */
static void make_row(int i, int failures, test_row *t)
{
    memset(t, 0, sizeof *t);
    qid_result *r = &t->r;
    int m = i % 4;
    int failed = failures && i % 9 == 4;
    int64_t step = i % 13 == 0 ? -1 : (int64_t)i * 1000;
    snprintf(t->model, sizeof t->model, "%s", models[i % 3]);
    snprintf(t->checkpoint, sizeof t->checkpoint, "ckpts/%s/step%lld.h5", t->model, (long long)step);
    for (int k = 0; k < 32; k++)
        snprintf(t->sha + 2 * k, 3, "%02x", (unsigned)((i * 37 + k * 11) & 0xff));
    const char *format = m == 1 ? "mxfp4" : m == 2 ? "int3-g128" : "";
    const char *opts = m == 2 ? GPTQ_OPT : "-";
    snprintf(t->key, sizeof t->key, "task-%04d %s %s %s %s", i, t->checkpoint, methods[m], format, opts);
    int64_t windows = i % 7;
    snprintf(t->protocol, sizeof t->protocol, "windows=%lld,seq_len=2048,scoring=all", (long long)windows);
    snprintf(t->calib, sizeof t->calib, "%s", m == 2 ? "calib.h5:128x2048,seed=7" : "");
    snprintf(t->finished, sizeof t->finished, "2024-05-01T12:%02d:%02dZ", i / 60, i % 60);
    r->key = t->key;
    r->checkpoint = t->checkpoint;
    r->model = t->model;
    r->ckpt_sha256 = t->sha;
    r->params = 85056000 + i;
    r->tokens_seen = step < 0 ? -1 : step * 2097152;
    r->step = step;
    r->lr_frac = step < 0 ? NAN : 1.0 / (1 + i);
    r->method = methods[m];
    r->format = format;
    r->bits = m == 0 ? 16.0 : m == 1 ? 4.25 : m == 2 ? 3.0 + 1.0 / 8 : NAN;
    r->elem_bits = m == 0 ? 16 : m == 1 ? 4 : m == 2 ? 3 : -1;
    r->block = m == 1 ? 32 : m == 2 ? 128 : -1;
    r->options = opts;
    r->calib = t->calib;
    r->eval_protocol = t->protocol;
    r->eval_sha256 = EVAL_SHA;
    r->loss = 3.0 + i / 7.0;
    r->loss16 = 3.0 + i / 11.0;
    r->qid = r->loss - r->loss16;
    r->qid_se = 1.0 / (i + 3);
    r->sqnr_db = m == 1 || m == 2 ? 10 * log10(i + 2.0) : NAN;
    r->kl = i % 2 ? NAN : 0.001 * i;
    r->windows = windows;
    r->tokens = windows * 2047;
    r->seconds = 0.5 + i * 0.25;
    r->rank = i % 4;
    r->status = QID_RESULT_OK;
    r->error = "";
    r->finished_utc = t->finished;
    for (int j = 0; j < windows; j++) {
        t->nll[j] = r->loss * (2047 - j) + j / 3.0;
        t->tok[j] = 2047 - j;
    }
    /* rows with no windows still pass a (non-NULL) vector now and then */
    r->window_nll = windows > 0 || i % 2 ? t->nll : NULL;
    r->window_tokens = windows > 0 || i % 2 ? t->tok : NULL;
    if (failed) {
        r->loss = r->loss16 = r->qid = r->qid_se = r->sqnr_db = r->kl = NAN;
        r->tokens = r->windows = -1;
        r->status = QID_RESULT_FAILED;
        snprintf(t->error, sizeof t->error, "cannot open checkpoint '%s': truncated file%s", t->checkpoint,
                 i == 22 ? " \xff\xfe" : "");
        r->error = t->error;
        r->window_nll = NULL;
        r->window_tokens = NULL;
    }
}

static int key_index(const char *key)
{
    int i = -1;
    if (sscanf(key, "task-%d ", &i) != 1) return -1;
    return i;
}

static int same_double(double a, double b) { return memcmp(&a, &b, sizeof a) == 0; }

/* Compares a row read back with the row written (window vectors by value);
 * on a difference writes which field into why and returns 0. */
static int same_row(const qid_result *w, const qid_result *g, char *why, size_t len)
{
#define STR(f)                                                                                                         \
    do {                                                                                                               \
        if (strcmp(w->f ? w->f : "", g->f)) {                                                                          \
            snprintf(why, len, #f ": wanted '%s', read '%s'", w->f ? w->f : "", g->f);                                 \
            return 0;                                                                                                  \
        }                                                                                                              \
    } while (0)
#define NUM(f)                                                                                                         \
    do {                                                                                                               \
        if (w->f != g->f) {                                                                                            \
            snprintf(why, len, #f ": wanted %lld, read %lld", (long long)w->f, (long long)g->f);                       \
            return 0;                                                                                                  \
        }                                                                                                              \
    } while (0)
#define DBL(f)                                                                                                         \
    do {                                                                                                               \
        if (!same_double(w->f, g->f)) {                                                                                \
            snprintf(why, len, #f ": wanted %.17g, read %.17g", w->f, g->f);                                           \
            return 0;                                                                                                  \
        }                                                                                                              \
    } while (0)
    STR(key);
    STR(checkpoint);
    STR(model);
    STR(ckpt_sha256);
    STR(method);
    STR(format);
    STR(options);
    STR(calib);
    STR(eval_protocol);
    STR(eval_sha256);
    STR(finished_utc);
    NUM(params);
    NUM(tokens_seen);
    NUM(step);
    NUM(elem_bits);
    NUM(block);
    NUM(tokens);
    NUM(windows);
    NUM(rank);
    NUM(status);
    DBL(bits);
    DBL(lr_frac);
    DBL(loss);
    DBL(loss16);
    DBL(qid);
    DBL(qid_se);
    DBL(sqnr_db);
    DBL(kl);
    DBL(seconds);
#undef STR
#undef NUM
#undef DBL
    /* the error text is stored as UTF-8: invalid bytes become '?' */
    char err[256];
    snprintf(err, sizeof err, "%s", w->error ? w->error : "");
    for (char *p = err; *p; p++)
        if ((unsigned char)*p >= 0xf5 || (unsigned char)*p == 0xc0 || (unsigned char)*p == 0xc1) *p = '?';
    if (strcmp(err, g->error)) {
        snprintf(why, len, "error: wanted '%s', read '%s'", err, g->error);
        return 0;
    }
    int64_t k = w->window_nll && w->windows > 0 ? w->windows : 0;
    if (!k) {
        if (g->nll_offset != -1 || g->window_nll || g->window_tokens) {
            snprintf(why, len, "a row without windows has nll_offset %lld", (long long)g->nll_offset);
            return 0;
        }
        return 1;
    }
    if (g->nll_offset < 0 || !g->window_nll || !g->window_tokens) {
        snprintf(why, len, "window vectors missing (nll_offset %lld)", (long long)g->nll_offset);
        return 0;
    }
    for (int64_t j = 0; j < k; j++)
        if (!same_double(w->window_nll[j], g->window_nll[j]) || w->window_tokens[j] != g->window_tokens[j]) {
            snprintf(why, len, "window %lld: wanted %.17g/%d, read %.17g/%d", (long long)j, w->window_nll[j],
                     w->window_tokens[j], g->window_nll[j], g->window_tokens[j]);
            return 0;
        }
    return 1;
}

static int append_row(qid_results *r, int i, int failures)
{
    test_row t;
    qid_error e;
    make_row(i, failures, &t);
    qid_error_clear(&e);
    int rc = qid_results_append(r, &t.r, &e);
    if (rc) diag("append of row %d: %s", i, e.msg);
    return rc;
}

/* ---- stderr capture ---------------------------------------------------------------- */

/* stderr of the calls between capture_start and capture_end (malloc'd),
 * with qid's warnings shown meanwhile. */
static void capture_start(void)
{
    tap_capture_begin();
    qid_log_set_level(QID_LOG_WARN);
}

static char *capture_end(void)
{
    qid_log_set_level(QID_LOG_ERROR);
    return tap_capture_end();
}

/* ---- helpers ------------------------------------------------------------------------ */

static char *tmp(const char *name)
{
    static char buf[8][1024];
    static int k;
    char *b = buf[k++ % 8];
    snprintf(b, sizeof buf[0], "%s/%s", tap_tmpdir(), name);
    return b;
}

static int sb_flags(const char *path)
{
    unsigned char sb[12] = {0};
    int fd = open(path, O_RDONLY);
    if (fd < 0) return -1;
    ssize_t got = read(fd, sb, sizeof sb);
    close(fd);
    return got == (ssize_t)sizeof sb ? sb[11] : -1;
}

/* 1 if a plain (non-SWMR) read-only open succeeds, as h5dump's does. */
static int plain_open_works(const char *path)
{
    hid_t fid;
    H5E_BEGIN_TRY { fid = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT); }
    H5E_END_TRY;
    if (fid < 0) return 0;
    H5Fclose(fid);
    return 1;
}

static const qid_results_provenance test_prov = {
    .job_name = "tiny",
    .job_file = "jobs/tiny.job",
    .job_text = "[job]\nname = tiny\nresults = r.h5\nseed = 7\n# caf\xc3\xa9\n",
    .seed = 7,
    .mpi_ranks = 3,
};

/* ---- the tests ---------------------------------------------------------------------- */

#define N_ROWS 50

static void test_roundtrip(const char *path)
{
    qid_error e;
    qid_error_clear(&e);
    qid_results *r = qid_results_open(path, &test_prov, &e);
    if (!ok(r != NULL, "a new store is created")) bail("cannot create a store: %s", e.msg);
    char lock[1100];
    snprintf(lock, sizeof lock, "%s.lock", path);
    char *text = tap_read_file(lock, NULL);
    char want[300], host[256];
    gethostname(host, sizeof host);
    host[255] = '\0';
    snprintf(want, sizeof want, "%ld %s\n", (long)getpid(), host);
    is_string(want, text, "the lock file names the holder: pid and host");
    free(text);
    ok(!qid_results_has(r, "task-0000"), "an empty store has no keys");

    int fails = 0;
    for (int i = 0; i < N_ROWS; i++)
        fails += append_row(r, i, 1) != 0;
    is_int(0, fails, "%d rows append without error", N_ROWS);
    test_row t0, t4;
    make_row(0, 1, &t0);
    make_row(4, 1, &t4);
    ok(qid_results_has(r, t0.r.key), "has: an OK row appended in this session");
    ok(!qid_results_has(r, t4.r.key), "has: a failed row is not done (it is retried)");
    ok(!qid_results_has(r, "task-9999 nothing"), "has: an unknown key");
    ok(!qid_results_has(r, ""), "has: the empty key");

    /* invalid rows are refused and leave the store as it was */
    test_row bad;
    make_row(60, 0, &bad);
    bad.r.key = "";
    qid_error_clear(&e);
    is_int(QID_E_INVALID, qid_results_append(r, &bad.r, &e), "a row without a key is refused");
    make_row(61, 0, &bad);
    bad.r.window_tokens = NULL;
    qid_error_clear(&e);
    is_int(QID_E_INVALID, qid_results_append(r, &bad.r, &e), "window NLLs without token counts are refused");
    like(e.msg, "has window NLLs but no window token counts", "... with a message naming what is missing");
    qid_error_clear(&e);
    is_int(QID_OK, qid_results_close(r, &e), "close");
    text = tap_read_file(lock, NULL);
    is_string("", text, "close empties the lock file (the lock is released)");
    free(text);
    is_int(0, sb_flags(path), "after close the superblock status flags are clear");
    ok(plain_open_works(path), "after close a plain read-only open works (h5dump, h5py)");

    /* reopen: resume state comes from the file */
    qid_error_clear(&e);
    r = qid_results_open(path, &test_prov, &e);
    if (!ok(r != NULL, "reopen for appending")) bail("cannot reopen: %s", e.msg);
    int ok_rows = 0, has_ok = 0, has_failed = 0;
    for (int i = 0; i < N_ROWS; i++) {
        test_row t;
        make_row(i, 1, &t);
        if (t.r.status == QID_RESULT_OK) {
            ok_rows++;
            has_ok += qid_results_has(r, t.r.key);
        } else {
            has_failed += qid_results_has(r, t.r.key);
        }
    }
    is_int(ok_rows, has_ok, "after reopen has() is 1 for all %d OK keys", ok_rows);
    is_int(0, has_failed, "after reopen has() is 0 for all %d failed keys", N_ROWS - ok_rows);
    /* the retry of failed task 4 succeeds: a second row with the same key */
    test_row retry;
    make_row(4, 0, &retry);
    qid_error_clear(&e);
    is_int(QID_OK, qid_results_append(r, &retry.r, &e), "the retried task 4 appends after the reopen");
    ok(qid_results_has(r, t4.r.key), "has: the retried key is now done");
    qid_error_clear(&e);
    is_int(QID_OK, qid_results_close(r, &e), "close again");

    /* read back every field */
    qid_result *rows = NULL;
    size_t n = 0;
    qid_error_clear(&e);
    is_int(QID_OK, qid_results_read(path, &rows, &n, &e), "read the store");
    if (!is_int(N_ROWS + 1, (long long)n, "%d rows read back (50 + the retry)", N_ROWS + 1))
        bail("wrong row count: %s", e.msg);
    int bad_rows = 0;
    int64_t offset = 0;
    int offsets_ok = 1;
    for (int i = 0; i <= N_ROWS; i++) {
        test_row t;
        make_row(i < N_ROWS ? i : 4, i < N_ROWS, &t);
        char why[400];
        if (!same_row(&t.r, &rows[i], why, sizeof why)) {
            if (bad_rows++ < 5) diag("row %d: %s", i, why);
        }
        int64_t k = t.r.window_nll && t.r.windows > 0 ? t.r.windows : 0;
        if (k && rows[i].nll_offset != offset) offsets_ok = 0;
        offset += k;
    }
    is_int(0, bad_rows, "every field of every row reads back exactly (strings, NaN, -1, window vectors)");
    ok(offsets_ok, "nll_offset: window vectors lie end to end in row order");
    is_string("mod\xc3\xa8le-\xc3\xbc", rows[1].model, "a UTF-8 model name reads back unchanged");
    like(rows[22].error, "truncated file ??", "invalid UTF-8 in an error text is stored as '?'");
    is_int(QID_RESULT_FAILED, rows[4].status, "row 4 is the failed attempt");
    is_int(QID_RESULT_OK, rows[N_ROWS].status, "the last row is its successful retry");
    ok(isnan(rows[4].loss) && isnan(rows[4].qid_se) && rows[4].windows == -1 && rows[4].tokens == -1,
       "a failed row keeps NaN losses and -1 counts");
    is_int(-1, rows[0].step, "step -1 reads back as -1");
    ok(isnan(rows[3].bits) && rows[3].elem_bits == -1, "a probes row: NaN bits, elem_bits -1");
    is_int(6, rows[6].windows, "row 6 has 6 windows");
    is_double(rows[6].loss * 2042 + 5 / 3.0, rows[6].window_nll[5], 0, "window NLL 5 of row 6, bit for bit");
    is_int(2042, rows[6].window_tokens[5], "window token count 5 of row 6");
    ok(rows[7].nll_offset == -1 && rows[7].window_nll == NULL, "a row with 0 windows has nll_offset -1 and no vectors");
    qid_results_rows_free(rows, n);
}

static void test_provenance(const char *path)
{
    hid_t fid = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT), g = H5I_INVALID_HID;
    if (!ok(fid >= 0, "the store opens with plain HDF5")) return;
    char *s = NULL, host[256], libs[1024];
    int64_t v = 0;
    qid_error e;
    qid_h5_attr_read_strdup(fid, "/", "format", &s, &e);
    is_string(QID_RESULTS_FORMAT, s, "root attribute format");
    free(s);
    qid_h5_attr_read_i64(fid, "/", "schema_version", &v, &e);
    is_int(QID_RESULTS_SCHEMA_VERSION, v, "root attribute schema_version");
    qid_h5_attr_read_strdup(fid, "/", "created_by", &s, &e);
    is_string("qid " QID_VERSION, s, "root attribute created_by");
    free(s);
    g = H5Gopen2(fid, "provenance", H5P_DEFAULT);
    ok(g >= 0, "/provenance exists");
    const struct {
        const char *name, *want;
    } strs[] = {
        {"job_name", test_prov.job_name},   {"job_file", test_prov.job_file}, {"job_text", test_prov.job_text},
        {"qid_version", qid_version()},     {"git_revision", qid_git_rev()},  {"compiler", qid_compiler()},
        {"build_flags", qid_build_flags()},
    };
    for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++) {
        s = NULL;
        qid_h5_attr_read_strdup(g, "/provenance", strs[i].name, &s, &e);
        is_string(strs[i].want, s ? s : "(missing)", "/provenance %s", strs[i].name);
        free(s);
    }
    qid_library_versions(libs, sizeof libs);
    qid_h5_attr_read_strdup(g, "/provenance", "library_versions", &s, &e);
    is_string(libs, s, "/provenance library_versions");
    free(s);
    gethostname(host, sizeof host);
    host[255] = '\0';
    qid_h5_attr_read_strdup(g, "/provenance", "hostname", &s, &e);
    is_string(host, s, "/provenance hostname");
    free(s);
    qid_h5_attr_read_strdup(g, "/provenance", "start_utc", &s, &e);
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    const char *end = s ? strptime(s, "%Y-%m-%dT%H:%M:%SZ", &tm) : NULL;
    ok(end && !*end && tm.tm_year >= 124, "/provenance start_utc is ISO 8601 UTC (%s)", s ? s : "missing");
    free(s);
    v = 0;
    qid_h5_attr_read_i64(g, "/provenance", "seed", &v, &e);
    is_int(7, v, "/provenance seed");
    qid_h5_attr_read_i64(g, "/provenance", "mpi_ranks", &v, &e);
    is_int(3, v, "/provenance mpi_ranks");
    H5Gclose(g);
    H5G_info_t info;
    g = H5Gopen2(fid, "fits", H5P_DEFAULT);
    ok(g >= 0 && H5Gget_info(g, &info) >= 0 && info.nlinks == 0, "/fits exists and is empty");
    if (g >= 0) H5Gclose(g);
    H5Fclose(fid);
}

/* A child holds the store (and appends rows 100..102) while the parent tries
 * to open it, and reads it through SWMR. */
static void test_lock(const char *path)
{
    int up[2], down[2];
    if (pipe(up) || pipe(down)) bail("pipe: %s", strerror(errno));
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) bail("fork: %s", strerror(errno));
    if (pid == 0) {
        qid_error e;
        char c = 'x';
        qid_results *r = qid_results_open(path, NULL, &e);
        if (!r) _exit(2);
        for (int i = 100; i < 103; i++)
            if (append_row(r, i, 0)) _exit(3);
        if (write(up[1], &c, 1) != 1 || read(down[0], &c, 1) != 1) _exit(4);
        _exit(qid_results_close(r, &e) ? 5 : 0);
    }
    char c;
    int ready = read(up[0], &c, 1) == 1;
    ok(ready, "a child process holds the store");
    qid_error e;
    qid_error_clear(&e);
    qid_results *r = qid_results_open(path, NULL, &e);
    ok(r == NULL, "a second writer cannot open it");
    char want[600], host[256];
    gethostname(host, sizeof host);
    host[255] = '\0';
    snprintf(want, sizeof want, "results store '%s' is locked by pid %ld on %s (another qid run is writing it)", path,
             (long)pid, host);
    is_string(want, e.msg, "the error names the holder's pid and host");
    is_int(QID_E_INVALID, e.code, "... with code QID_E_INVALID");
    if (r) qid_results_close(r, &e);

    qid_result *rows = NULL;
    size_t n = 0;
    qid_error_clear(&e);
    int rc = qid_results_read(path, &rows, &n, &e);
    is_int(QID_OK, rc, "the store reads (SWMR) while another process writes it");
    if (rc) diag("%s", e.msg);
    is_int(N_ROWS + 4, (long long)n, "... and shows the child's 3 durable rows");
    ok(n == N_ROWS + 4 && key_index(rows[n - 1].key) == 102, "... the last being row 102");
    qid_results_rows_free(rows, n);

    if (write(down[1], &c, 1) != 1) bail("pipe write");
    int status = 0;
    waitpid(pid, &status, 0);
    is_int(0, WIFEXITED(status) ? WEXITSTATUS(status) : 100 + WTERMSIG(status), "the child closed the store");
    close(up[0]);
    close(up[1]);
    close(down[0]);
    close(down[1]);
    qid_error_clear(&e);
    r = qid_results_open(path, NULL, &e);
    ok(r != NULL, "once released, the store opens");
    test_row t;
    make_row(101, 0, &t);
    ok(r && qid_results_has(r, t.r.key), "... and holds the child's rows");
    if (r) qid_results_close(r, &e);
}

/* A child appends two rows and is killed with SIGKILL before closing. */
/* A reader in another process that has the store open (h5py, h5dump, qid
 * results: HDF5's default, shared file lock) does not stop a run from
 * opening it to append. */
static void test_reader_open(const char *path)
{
    int up[2], down[2];
    if (pipe(up) || pipe(down)) bail("pipe: %s", strerror(errno));
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) bail("fork: %s", strerror(errno));
    if (pid == 0) {
        char c = 'x';
        hid_t fid = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
        if (fid < 0) _exit(2);
        if (write(up[1], &c, 1) != 1 || read(down[0], &c, 1) != 1) _exit(3);
        _exit(H5Fclose(fid) < 0 ? 4 : 0);
    }
    char c = 'x';
    ok(read(up[0], &c, 1) == 1, "a reader in another process holds the store open");
    qid_error e;
    qid_error_clear(&e);
    qid_results *r = qid_results_open(path, NULL, &e);
    ok(r != NULL, "a writer opens it while the reader holds it");
    if (!r) diag("%s", e.msg);
    int appended = r && append_row(r, 200, 0) == QID_OK;
    ok(appended, "... and appends a row");
    if (r) qid_results_close(r, &e);
    if (write(down[1], &c, 1) != 1) bail("pipe write: %s", strerror(errno));
    int status = 0;
    waitpid(pid, &status, 0);
    qid_result *rows = NULL;
    size_t n = 0;
    qid_error_clear(&e);
    ok(qid_results_read(path, &rows, &n, &e) == QID_OK && n > 0 && key_index(rows[n - 1].key) == 200 &&
           WIFEXITED(status) && WEXITSTATUS(status) == 0,
       "the row is there afterwards, and the reader closed cleanly");
    qid_results_rows_free(rows, n);
    close(up[0]), close(up[1]), close(down[0]), close(down[1]);
}

static void test_killed_writer(const char *path)
{
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) bail("fork: %s", strerror(errno));
    if (pid == 0) {
        qid_error e;
        qid_results *r = qid_results_open(path, NULL, &e);
        if (!r) _exit(2);
        append_row(r, 200, 0);
        append_row(r, 201, 0);
        raise(SIGKILL);
        _exit(3);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    ok(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "the writer was killed with SIGKILL");
    ok(sb_flags(path) > 0, "it left the superblock status flags set (flags %d)", sb_flags(path));
    ok(!plain_open_works(path), "so HDF5 refuses a plain read-only open (what h5clear -s repairs)");
    qid_result *rows = NULL;
    size_t n = 0;
    qid_error e;
    qid_error_clear(&e);
    is_int(QID_OK, qid_results_read(path, &rows, &n, &e), "qid_results_read still reads it (SWMR reader)");
    ok(n == N_ROWS + 6 && key_index(rows[n - 1].key) == 201, "... with both durable rows of the killed writer");
    qid_results_rows_free(rows, n);

    capture_start();
    qid_error_clear(&e);
    qid_results *r = qid_results_open(path, NULL, &e);
    char *log = capture_end();
    ok(r != NULL, "reopening for appending repairs it");
    if (!r) diag("%s", e.msg);
    like(log, "was not closed by its last writer (killed?): cleared its open-for-writing flags",
         "... and says so on stderr");
    free(log);
    test_row t;
    make_row(201, 0, &t);
    ok(r && qid_results_has(r, t.r.key), "the killed writer's last durable row is done");
    ok(r && append_row(r, 202, 0) == 0, "appending continues after the repair");
    qid_error_clear(&e);
    is_int(QID_OK, r ? qid_results_close(r, &e) : -1, "close after the repair");
    is_int(0, sb_flags(path), "the status flags are clear again");
    ok(plain_open_works(path), "a plain read-only open works again");
}

static void make_file_with_format(const char *path, const char *format, int64_t version, int latest)
{
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (latest) H5Pset_libver_bounds(fapl, H5F_LIBVER_LATEST, H5F_LIBVER_LATEST);
    hid_t fid = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
    qid_error e;
    if (fid < 0) bail("cannot create %s", path);
    if (format && qid_h5_write_format(fid, format, version, &e)) bail("%s", e.msg);
    H5Fclose(fid);
    H5Pclose(fapl);
}

/* Both entry points fail with want_code and a message containing want; the
 * file's bytes are unchanged. */
static void expect_error(const char *path, int want_code, const char *want, const char *what)
{
    size_t len0 = 0, len1 = 0;
    char *before = tap_exists(path) ? tap_read_file(path, &len0) : NULL;
    qid_result *rows = NULL;
    size_t n = 0;
    qid_error e;
    qid_error_clear(&e);
    int rc = qid_results_read(path, &rows, &n, &e);
    ok(rc == want_code && strstr(e.msg, want) != NULL, "read of %s fails: %s", what, e.msg);
    qid_error_clear(&e);
    qid_results *r = qid_results_open(path, NULL, &e);
    ok(r == NULL && e.code == want_code && strstr(e.msg, want) != NULL, "open of %s fails: %s", what, e.msg);
    if (r) qid_results_close(r, &e);
    if (before) {
        char *after = tap_read_file(path, &len1);
        ok(len0 == len1 && memcmp(before, after, len0) == 0, "%s is left unchanged", what);
        free(after);
        free(before);
    }
}

static void test_format_errors(const char *good)
{
    char p[1100];
    snprintf(p, sizeof p, "%s", tmp("text.h5"));
    tap_write_file(p, "hello, not HDF5\n", 16);
    expect_error(p, QID_E_FORMAT, "is not an HDF5 file", "a text file");

    snprintf(p, sizeof p, "%s", tmp("ckpt.h5"));
    make_file_with_format(p, "qid-checkpoint", 1, 1);
    char want[1200];
    snprintf(want, sizeof want, "'%s' is a qid-checkpoint file, expected qid-results", p);
    expect_error(p, QID_E_FORMAT, want, "a checkpoint file");

    snprintf(p, sizeof p, "%s", tmp("plain.h5"));
    make_file_with_format(p, NULL, 0, 0);
    expect_error(p, QID_E_FORMAT, "has no 'format' attribute: not a qid file (expected qid-results)",
                 "an HDF5 file without format");

    /* a store from a newer qid: copy the good one and bump schema_version */
    snprintf(p, sizeof p, "%s", tmp("v2.h5"));
    size_t len;
    char *bytes = tap_read_file(good, &len);
    tap_write_file(p, bytes, len);
    free(bytes);
    hid_t fid = H5Fopen(p, H5F_ACC_RDWR, H5P_DEFAULT);
    qid_error e;
    if (fid < 0 || qid_h5_attr_write_i64(fid, "schema_version", QID_RESULTS_SCHEMA_VERSION + 1, &e))
        bail("cannot bump schema_version");
    H5Fclose(fid);
    expect_error(p, QID_E_FORMAT, "has qid-results schema_version 4, this qid reads versions 1..3 (hint: upgrade qid",
                 "a schema_version 4 store");

    qid_result *rows = NULL;
    size_t n = 0;
    qid_error_clear(&e);
    is_int(QID_E_IO, qid_results_read(tmp("absent.h5"), &rows, &n, &e), "read of a missing store: QID_E_IO");
    like(e.msg, "absent.h5': No such file or directory", "... naming the file");
    qid_error_clear(&e);
    qid_results *r = qid_results_open("/nonexistent-dir/x.h5", NULL, &e);
    ok(r == NULL && e.code == QID_E_IO, "open in a missing directory: QID_E_IO");
    like(e.msg, "cannot open lock file '/nonexistent-dir/x.h5.lock'", "... naming the lock file");
}

static void create_empty(const char *path)
{
    qid_error e;
    qid_results *r = qid_results_open(path, &test_prov, &e);
    if (!r || qid_results_close(r, &e)) bail("cannot create %s: %s", path, e.msg);
}

static void test_golden(void)
{
    const char *path = tmp("results.h5");
    create_empty(path);
    if (system("h5dump --version >/dev/null 2>&1") != 0) {
        skip("h5dump not installed (hdf5-tools)");
        skip("h5dump not installed (hdf5-tools)");
        return;
    }
    char cmd[1300];
    snprintf(cmd, sizeof cmd, "h5dump -H '%s' | sed '1s/.*/HDF5 \"results.h5\" {/' > '%s'", path, tmp("listing"));
    is_int(0, system(cmd), "h5dump -H of a fresh store");
    char *got = tap_read_file(tmp("listing"), NULL);
    char *want = tap_read_file("hdf5-schema/results.h5dump", NULL);
    if (!is_string(want, got, "h5dump -H matches hdf5-schema/results.h5dump")) {
        snprintf(cmd, sizeof cmd, "diff -u hdf5-schema/results.h5dump '%s' | head -40 | sed 's/^/# /'", tmp("listing"));
        if (system(cmd) != 0) diag("(diff failed)");
    }
    free(got);
    free(want);
}

/* Every /tasks column is described in hdf5-schema/results.md. */
static void test_schema_doc(void)
{
    const char *path = tmp("results.h5");
    char *doc = tap_read_file("hdf5-schema/results.md", NULL);
    hid_t fid = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT), d = H5Dopen2(fid, "tasks", H5P_DEFAULT);
    hid_t t = H5Dget_type(d);
    int members = H5Tget_nmembers(t), missing = 0;
    for (int i = 0; i < members; i++) {
        char *name = H5Tget_member_name(t, (unsigned)i), row[128];
        snprintf(row, sizeof row, "| `%s` |", name);
        if (!strstr(doc, row)) {
            diag("column '%s' is not in the /tasks table of results.md", name);
            missing++;
        }
        H5free_memory(name);
    }
    is_int(QID_RESULT_N_COLUMNS, members, "/tasks has every column");
    is_int(0, missing, "results.md describes every /tasks column");
    H5Tclose(t);
    H5Dclose(d);
    H5Fclose(fid);
    free(doc);
}

/* Thousands of keys: has() after a reopen. */
static void test_many_keys(void)
{
    enum { MANY = 3000 };
    const char *path = tmp("many.h5");
    qid_error e;
    qid_results *r = qid_results_open(path, NULL, &e);
    if (!r) bail("%s", e.msg);
    int fails = 0;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 0; i < MANY; i++) {
        test_row t;
        make_row(i, 0, &t);
        t.r.window_nll = NULL; /* keys only: keep the file small */
        fails += qid_results_append(r, &t.r, &e) != 0;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double ms = ((double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6) / MANY;
    diag("durable append: %.3f ms per row (flush + fsync)", ms);
    is_int(0, fails, "%d rows append", MANY);
    qid_results_close(r, &e);
    r = qid_results_open(path, NULL, &e);
    int found = 0, absent = 0;
    for (int i = 0; i < 2 * MANY; i++) {
        test_row t;
        make_row(i, 0, &t);
        if (i < MANY)
            found += qid_results_has(r, t.r.key);
        else
            absent += qid_results_has(r, t.r.key);
    }
    is_int(MANY, found, "after reopen has() finds all %d keys", MANY);
    is_int(0, absent, "... and none of %d others", MANY);
    qid_results_close(r, &e);
}

/* ---- helper modes for results_kill.t ------------------------------------------------- */

static int mode_writer(const char *path, int n, int delay_ms, long die_at)
{
    qid_error e;
    die_at_write = die_at < 0 ? -die_at : die_at;
    counting = die_at < 0; /* negative: count the writes of the open (creation, repair) too */
    qid_results *r = qid_results_open(path, &test_prov, &e);
    if (!r) {
        fprintf(stderr, "writer: %s\n", e.msg);
        return 1;
    }
    printf("open\n");
    fflush(stdout);
    counting = 1;
    for (int i = 0; i < n; i++) {
        test_row t;
        make_row(i, 0, &t);
        if (qid_results_has(r, t.r.key)) continue;
        if (qid_results_append(r, &t.r, &e)) {
            fprintf(stderr, "writer: %s\n", e.msg);
            return 1;
        }
        printf("durable %s\n", t.r.key);
        fflush(stdout);
        if (delay_ms) usleep((useconds_t)delay_ms * 1000);
    }
    counting = 0;
    if (qid_results_close(r, &e)) {
        fprintf(stderr, "writer: %s\n", e.msg);
        return 1;
    }
    printf("closed\n");
    return 0;
}

/* Checks every row of path against make_row; prints the keys. */
static int verify_rows(const char *path, int n_max)
{
    qid_result *rows = NULL;
    size_t n = 0;
    qid_error e;
    if (qid_results_read(path, &rows, &n, &e)) {
        fprintf(stderr, "check: %s\n", e.msg);
        return 1;
    }
    char *seen = calloc((size_t)n_max, 1);
    int bad = 0;
    for (size_t i = 0; i < n && !bad; i++) {
        int k = key_index(rows[i].key);
        test_row t;
        char why[400];
        if (k < 0 || k >= n_max) {
            fprintf(stderr, "check: row %zu has key '%s'\n", i, rows[i].key);
            bad = 1;
        } else if (seen[k]++) {
            fprintf(stderr, "check: key of row %d stored twice\n", k);
            bad = 1;
        } else {
            make_row(k, 0, &t);
            if (!same_row(&t.r, &rows[i], why, sizeof why)) {
                fprintf(stderr, "check: row %zu (%s): %s\n", i, rows[i].key, why);
                bad = 1;
            }
        }
        if (!bad) printf("%s\n", rows[i].key);
    }
    free(seen);
    qid_results_rows_free(rows, n);
    return bad;
}

static int mode_check(const char *path, int n_max)
{
    qid_error e;
    qid_results *r = qid_results_open(path, NULL, &e);
    if (!r) {
        fprintf(stderr, "check: %s\n", e.msg);
        return 1;
    }
    if (qid_results_close(r, &e)) {
        fprintf(stderr, "check: %s\n", e.msg);
        return 1;
    }
    return verify_rows(path, n_max);
}

int main(int argc, char **argv)
{
    qid_h5_silence();
    if (argc >= 2 && argv[1][0] == '-') {
        qid_log_set_level(QID_LOG_WARN);
        if (argc >= 5 && strcmp(argv[1], "--writer") == 0)
            return mode_writer(argv[2], atoi(argv[3]), atoi(argv[4]), argc >= 6 ? atol(argv[5]) : 0);
        if (argc == 4 && strcmp(argv[1], "--check") == 0) return mode_check(argv[2], atoi(argv[3]));
        if (argc == 4 && strcmp(argv[1], "--read") == 0) return verify_rows(argv[2], atoi(argv[3]));
        if (argc == 3 && strcmp(argv[1], "--create") == 0) {
            create_empty(argv[2]);
            return 0;
        }
        fprintf(stderr,
                "usage: %s [--writer PATH N DELAY_MS [DIE_AT_WRITE] | --check PATH N | --read PATH N | "
                "--create PATH]\n",
                argv[0]);
        return 2;
    }
    plan(103);
    qid_log_set_level(QID_LOG_ERROR);
    const char *path = tmp("store.h5");
    test_roundtrip(path);
    test_provenance(path);
    test_lock(path);
    test_killed_writer(path);
    test_reader_open(path);
    test_format_errors(path);
    test_golden();
    test_schema_doc();
    test_many_keys();
    return 0;
}
