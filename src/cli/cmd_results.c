/* cmd_results.c - `qid results STORE [--csv] [--model M] [--method M]
 * [--format F] [--bits B] [--status ok|failed] [--latest] [--columns a,b,...]
 * [--divergence]`:
 * the rows of a results store (hdf5-schema/results.md) as an aligned text
 * table or as CSV, filtered and sorted.
 *
 * Prints the rows that pass every filter (AND), sorted by model,
 * tokens_seen, method, format (then step, bits, key, store order), to
 * stdout: an aligned table (default columns model, step, tokens_seen,
 * method, format, bits, loss, loss16, qid, qid_se, windows_used when a
 * shown row stopped early, a short divergence report (kl, kl_median, kl_p99,
 * top1, dp_rms; all of it with --divergence) when one has it, status, and
 * error when a shown row failed) or, with --csv, RFC 4180 CSV with a header line and
 * every column of /tasks in schema order. Exit status 0; 1 when the store
 * cannot be read (one "qid results: error: ..." line on stderr); 2 on bad
 * usage.
 *
 * Reads through qid_results_read (SWMR, no lock), so it works on a store
 * that a `qid run` is writing, and on one left by a killed run; a last row
 * the writer has not finished is not shown.
 *
 * The columns are one table (name, kind, offset into qid_result) in the
 * order of /tasks, so the CSV header matches the dataset's field names one
 * for one. Numbers not computed (NaN) print as "-" in the table and "nan"
 * in CSV (pandas and Python's float() read it); an empty string prints as
 * "-" in the table. CSV doubles use %.17g, so they read back bit-exact.
 *
 * Does not: write or repair the store, recompute QiD, join rows (each row
 * already carries loss16, qid and qid_se), or choose between a failed row
 * and a later OK row of the same key unless asked (--latest). Nothing here
 * uses MPI. */

#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cli.h"
#include "error.h"
#include "fit_obs.h"
#include "fsutil.h"
#include "parse.h"
#include "results.h"

static const char *const default_columns[] = {"model", "step",   "tokens_seen", "method", "format", "bits",
                                              "loss",  "loss16", "qid",         "qid_se", "status"};
#define N_DEFAULT (sizeof default_columns / sizeof default_columns[0])

/* The divergence report: a short form in the default table when a shown
 * row has one, every statistic with --divergence. */
static const char *const short_divergence[] = {"kl", "kl_median", "kl_p99", "top1", "dp_rms"};
#define N_SHORT_DIVERGENCE (sizeof short_divergence / sizeof short_divergence[0])
static const char *const divergence_columns[] = {
    "kl",        "kl_se",  "kl_median", "kl_p99_9", "kl_p99",  "kl_p95",  "kl_p90",       "kl_p10",
    "kl_p5",     "kl_p1",  "kl_max",    "top1",     "top1_se", "dp_mean", "dp_se",        "dp_rms",
    "dp_rms_se", "dp_max", "dp_p99_9",  "dp_p99",   "dp_p95",  "dp_p90",  "dp_p75",       "dp_median",
    "dp_p25",    "dp_p10", "dp_p5",     "dp_p1",    "dp_p0_1", "dp_min",  "ln_ppl_ratio", "ln_ppl_ratio_se"};
#define N_DIVERGENCE (sizeof divergence_columns / sizeof divergence_columns[0])

typedef struct filters {
    const char *models, *method, *format; /* models: comma-separated, as qid fit's --models */
    uint64_t bits_mask;                   /* element bits P (as qid fit's --bits); 0: any */
    double storage_bits;                  /* storage bits per weight; NaN: any */
    int status;                           /* -1: any */
    int latest;
} filters;

static void usage(FILE *out)
{
    fprintf(out, "usage: qid results STORE [--csv] [--models M,...] [--method M] [--format F] [--bits P,...]\n"
                 "                   [--storage-bits B] [--status ok|failed] [--latest] [--columns a,b,...]\n"
                 "                   [--divergence]\n"
                 "\n"
                 "Prints the rows of a results store (written by 'qid run'; it may be running)\n"
                 "sorted by model, tokens_seen, method, format: an aligned table, or CSV.\n"
                 "Filters combine with AND.\n"
                 "\n"
                 "options:\n"
                 "  --csv             RFC 4180 CSV, a header line and every column of /tasks\n"
                 "  --models M,...    rows of these models (--model is the same)\n"
                 "  --method M        baseline, rtn, gptq, awq or probes\n"
                 "  --format F        quantizer format, e.g. int4-g128-sym (int4-g128 is the same)\n"
                 "  --bits P,...      element bits P, as in qid fit (the elem_bits column)\n"
                 "  --storage-bits B  storage bits per weight, scales included (the bits column)\n"
                 "  --status S        ok or failed\n"
                 "  --latest          per task key only the row that counts: its last OK row,\n"
                 "                    else its last row (a failed task retried by a resumed run\n"
                 "                    otherwise shows both)\n"
                 "  --columns a,b,... these columns, in this order (names as in --csv's header)\n"
                 "  --divergence      the whole divergence report (KL, top-1, Delta-p, ln PPL ratio)\n"
                 "  -h, --help        this help\n"
                 "\n"
                 "Table columns by default: model step tokens_seen method format bits loss loss16\n"
                 "qid qid_se status, and error when a shown row failed; windows_used when a shown\n"
                 "row stopped early (windows = auto); kl kl_median kl_p99 top1 dp_rms when one\n"
                 "has the divergence report (kl = yes). NaN prints as '-' in\n"
                 "the table and 'nan' in CSV. Losses are nats per token.\n");
}

static const char *col_str(const qid_result_column *c, const qid_result *r)
{
    const char *s = *(const char *const *)((const char *)r + c->offset);
    return s ? s : "";
}

/* Text of one cell: a pointer to the row's string, or buf filled. The
 * table shows an empty string as "-" (print_table), so every cell is one
 * word except the error text. */
static const char *cell(const qid_result_column *c, const qid_result *r, int csv, char *buf, size_t len)
{
    const char *p = (const char *)r + c->offset;
    switch (c->kind) {
    case QID_COL_STR: return col_str(c, r);
    case QID_COL_I64: snprintf(buf, len, "%lld", (long long)*(const int64_t *)p); return buf;
    case QID_COL_I32: snprintf(buf, len, "%d", (int)*(const int32_t *)p); return buf;
    case QID_COL_F64: {
        double v = *(const double *)p;
        if (isnan(v)) return csv ? "nan" : "-";
        snprintf(buf, len, csv ? "%.17g" : "%.6g", v);
        return buf;
    }
    case QID_COL_STATUS: return r->status == QID_RESULT_OK ? "OK" : "FAILED";
    }
    return "";
}

static const qid_result_column *find_column(const char *name, size_t n)
{
    for (size_t i = 0; i < QID_RESULT_N_COLUMNS; i++)
        if (strlen(qid_result_columns[i].name) == n && strncmp(qid_result_columns[i].name, name, n) == 0)
            return &qid_result_columns[i];
    return NULL;
}

/* Parses "a,b,c" into out (room for max); returns the count, or 0 with a
 * message on stderr for an unknown or empty name. */
static size_t parse_columns(const char *list, const qid_result_column **out, size_t max)
{
    size_t n = 0;
    const char *s = list;
    for (;;) {
        const char *e = strchr(s, ',');
        size_t len = e ? (size_t)(e - s) : strlen(s);
        const qid_result_column *c = find_column(s, len);
        if (!c || n == max) {
            fprintf(stderr, "qid results: error: %s column '%.*s' in --columns (columns:", c ? "too many" : "no",
                    (int)len, s);
            for (size_t i = 0; i < QID_RESULT_N_COLUMNS; i++)
                fprintf(stderr, " %s", qid_result_columns[i].name);
            fprintf(stderr, ")\n");
            return 0;
        }
        out[n++] = c;
        if (!e) break;
        s = e + 1;
    }
    return n;
}

/* --method: the methods a row can have. */
static int take_method(const char *value, void *dest)
{
    static const char *const methods[] = {"baseline", "rtn", "gptq", "awq", "probes"};
    for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++)
        if (strcmp(value, methods[i]) == 0) {
            *(const char **)dest = value;
            return 0;
        }
    return -1;
}

static int keep_row(const qid_result *r, const filters *f)
{
    if (!qid_fit_in_list(f->models, r->model ? r->model : "")) return 0;
    if (f->method && strcmp(r->method ? r->method : "", f->method) != 0) return 0;
    if (f->format && strcmp(r->format ? r->format : "", f->format) != 0) return 0;
    if (f->status >= 0 && (int)r->status != f->status) return 0;
    if (f->bits_mask && !qid_fit_bits_pass(f->bits_mask, r->elem_bits)) return 0;
    if (!isnan(f->storage_bits) && !(fabs(r->bits - f->storage_bits) < 1e-9)) return 0;
    return 1;
}

static int cmp_str(const char *a, const char *b) { return strcmp(a ? a : "", b ? b : ""); }

static int cmp_i64(int64_t a, int64_t b) { return (a > b) - (a < b); }

/* NaN last. */
static int cmp_f64(double a, double b)
{
    if (isnan(a) || isnan(b)) return isnan(a) - isnan(b);
    return (a > b) - (a < b);
}

static const qid_result *sort_rows; /* qsort has no context argument in C17 */

static int cmp_display(const void *pa, const void *pb)
{
    size_t ia = *(const size_t *)pa, ib = *(const size_t *)pb;
    const qid_result *a = &sort_rows[ia], *b = &sort_rows[ib];
    int c;
    if ((c = cmp_str(a->model, b->model))) return c;
    if ((c = cmp_i64(a->tokens_seen, b->tokens_seen))) return c;
    if ((c = cmp_str(a->method, b->method))) return c;
    if ((c = cmp_str(a->format, b->format))) return c;
    if ((c = cmp_i64(a->step, b->step))) return c;
    if ((c = cmp_f64(a->bits, b->bits))) return c;
    if ((c = cmp_str(a->key, b->key))) return c;
    return (ia > ib) - (ia < ib);
}

static int cmp_key(const void *pa, const void *pb)
{
    size_t ia = *(const size_t *)pa, ib = *(const size_t *)pb;
    int c = cmp_str(sort_rows[ia].key, sort_rows[ib].key);
    return c ? c : (ia > ib) - (ia < ib);
}

/* Marks in keep[] (n entries) the row that counts for each key: its last OK
 * row, else its last row; clears the others. */
static void mark_latest(const qid_result *rows, size_t n, unsigned char *keep)
{
    size_t *idx = qid_malloc(qid_mul_size(n, sizeof *idx), "results: key order");
    for (size_t i = 0; i < n; i++)
        idx[i] = i;
    sort_rows = rows;
    qsort(idx, n, sizeof *idx, cmp_key);
    for (size_t g = 0; g < n;) {
        size_t e = g + 1;
        while (e < n && cmp_str(rows[idx[e]].key, rows[idx[g]].key) == 0)
            e++;
        size_t pick = idx[e - 1]; /* last row of the key (store order within the group) */
        for (size_t j = e; j-- > g;)
            if (rows[idx[j]].status == QID_RESULT_OK) {
                pick = idx[j];
                break;
            }
        for (size_t j = g; j < e; j++)
            keep[idx[j]] = idx[j] == pick;
        g = e;
    }
    free(idx);
}

static void print_csv(FILE *out, const qid_result *rows, const size_t *shown, size_t n_shown,
                      const qid_result_column **cols, size_t n_cols)
{
    char buf[64];
    for (size_t j = 0; j < n_cols; j++) {
        if (j) fputc(',', out);
        qid_csv_field(out, cols[j]->name);
    }
    fputc('\n', out);
    for (size_t i = 0; i < n_shown; i++) {
        for (size_t j = 0; j < n_cols; j++) {
            if (j) fputc(',', out);
            qid_csv_field(out, cell(cols[j], &rows[shown[i]], 1, buf, sizeof buf));
        }
        fputc('\n', out);
    }
}

static void print_table(FILE *out, const qid_result *rows, const size_t *shown, size_t n_shown,
                        const qid_result_column **cols, size_t n_cols)
{
    char buf[64];
    size_t *width = qid_calloc(n_cols, sizeof *width, "results: column widths");
    for (size_t j = 0; j < n_cols; j++) {
        width[j] = strlen(cols[j]->name);
        for (size_t i = 0; i < n_shown; i++) {
            size_t w = strlen(cell(cols[j], &rows[shown[i]], 0, buf, sizeof buf));
            if (w > width[j]) width[j] = w;
        }
    }
    for (size_t i = 0; i <= n_shown; i++) {
        size_t pad = 0; /* owed before the next cell, dropped at the line's end */
        for (size_t j = 0; j < n_cols; j++) {
            const char *s = i == 0 ? cols[j]->name : cell(cols[j], &rows[shown[i - 1]], 0, buf, sizeof buf);
            if (!s[0]) s = "-";
            size_t w = strlen(s);
            int right = cols[j]->kind != QID_COL_STR && cols[j]->kind != QID_COL_STATUS;
            if (j) pad += 2;
            if (right) pad += width[j] - w;
            fprintf(out, "%*s%s", (int)pad, "", s);
            pad = right ? 0 : width[j] - w;
        }
        fputc('\n', out);
    }
    free(width);
}

/* --status: "ok" or "failed", any case (cli_opt's fn). */
static int take_status(const char *value, void *dest)
{
    int *status = dest;
    if (strcasecmp(value, "ok") == 0)
        *status = QID_RESULT_OK;
    else if (strcasecmp(value, "failed") == 0)
        *status = QID_RESULT_FAILED;
    else
        return -1;
    return 0;
}

int qid_results_main(int argc, char **argv)
{
    filters f = {.status = -1, .storage_bits = NAN};
    cli_format fa = {.given = 0};
    int csv = 0, divergence = 0;
    const char *column_list = NULL;
    const cli_opt opts[] = {
        CLI_OPT_FLAG("csv", &csv),
        CLI_OPT_STR("models", &f.models),
        CLI_OPT_STR("model", &f.models),
        CLI_OPT_FN("method", &f.method, take_method, "baseline, rtn, gptq, awq or probes"),
        CLI_OPT_FN("format", &fa, cli_take_format, CLI_FORMAT_WANT),
        CLI_OPT_FN("bits", &f.bits_mask, cli_take_bits, "whole element bit widths 1..63, e.g. 2,3,4"),
        CLI_OPT_REAL("storage-bits", &f.storage_bits, 0, INFINITY, CLI_LO_OPEN, "a number of bits per weight > 0"),
        CLI_OPT_FN("status", &f.status, take_status, "ok or failed"),
        CLI_OPT_FLAG("latest", &f.latest),
        CLI_OPT_STR("columns", &column_list),
        CLI_OPT_FLAG("divergence", &divergence),
    };
    const cli_spec spec = {"results", usage, opts, sizeof opts / sizeof opts[0], 1, -1, "no results store given"};
    int n_args = 0, rc = cli_parse(&spec, argc, argv, &n_args);
    char **args = argv + 1; /* the positional arguments */
    const char *store = n_args > 0 ? args[0] : NULL, *extra = n_args > 1 ? args[1] : NULL; /* point into argv */
    if (rc == CLI_HELP) return 0;
    if (rc != CLI_OK) return rc;
    if (extra) return cli_usage_error("results", "one results store at a time ('%s' is extra)", extra);
    if (fa.given) f.format = fa.canon;
    const qid_result_column *cols[QID_RESULT_N_COLUMNS + 1];
    size_t n_cols = 0;
    if (column_list) {
        n_cols = parse_columns(column_list, cols, QID_RESULT_N_COLUMNS);
        if (n_cols == 0) return CLI_USAGE;
    }

    qid_error err;
    qid_error_clear(&err);
    qid_result *rows = NULL;
    size_t n = 0;
    if (qid_results_read(store, &rows, &n, &err)) return cli_fail("results", "%s", err.msg);
    unsigned char *keep = qid_malloc(n ? n : 1, "results: row filter");
    memset(keep, 1, n);
    if (f.latest) mark_latest(rows, n, keep);
    size_t *shown = qid_malloc(qid_mul_size(n ? n : 1, sizeof *shown), "results: shown rows");
    size_t n_shown = 0;
    int any_failed = 0;
    for (size_t i = 0; i < n; i++)
        if (keep[i] && keep_row(&rows[i], &f)) {
            shown[n_shown++] = i;
            any_failed |= rows[i].status != QID_RESULT_OK;
        }
    sort_rows = rows;
    qsort(shown, n_shown, sizeof *shown, cmp_display);
    if (n_shown == 0 && n > 0 && (f.models || f.method || f.format || f.bits_mask)) {
        /* A filter that matches nothing in the store is a mistake worth one line; an empty combination is an
         * answer (a note, and the header). */
        qid_fit_filter ff;
        qid_fit_filter_init(&ff);
        ff.models = f.models, ff.method = f.method, ff.format = f.format, ff.bits_mask = f.bits_mask;
        char why[600];
        if (qid_fit_filter_explain(rows, n, &ff, 1, why, sizeof why)) {
            free(shown), free(keep);
            qid_results_rows_free(rows, n);
            return cli_fail("results", "%s in '%s'", why, store);
        }
        fprintf(stderr, "qid results: note: no row passes the filters together\n");
    }

    if (!column_list) {
        if (csv) {
            for (size_t i = 0; i < QID_RESULT_N_COLUMNS; i++)
                cols[n_cols++] = &qid_result_columns[i];
        } else {
            int any_adaptive = 0, any_div = 0;
            for (size_t i = 0; i < n_shown; i++) {
                any_adaptive |= rows[shown[i]].windows_used < rows[shown[i]].windows;
                any_div |= !isnan(rows[shown[i]].div.kl_median);
            }
            for (size_t i = 0; i < N_DEFAULT - 1; i++) /* all but status */
                cols[n_cols++] = find_column(default_columns[i], strlen(default_columns[i]));
            if (any_adaptive || divergence) cols[n_cols++] = find_column("windows_used", 12);
            const char *const *dc = divergence ? divergence_columns : short_divergence;
            size_t nd = divergence ? N_DIVERGENCE : N_SHORT_DIVERGENCE;
            for (size_t i = 0; (any_div || divergence) && i < nd; i++)
                cols[n_cols++] = find_column(dc[i], strlen(dc[i]));
            cols[n_cols++] = find_column("status", 6);
            if (any_failed) cols[n_cols++] = find_column("error", 5);
        }
    }
    if (csv)
        print_csv(stdout, rows, shown, n_shown, cols, n_cols);
    else
        print_table(stdout, rows, shown, n_shown, cols, n_cols);
    rc = fflush(stdout) == 0 ? 0 : cli_fail("results", "cannot write the output: %s", strerror(errno));
    free(shown);
    free(keep);
    qid_results_rows_free(rows, n);
    return rc;
}
