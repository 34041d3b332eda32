/* results_cmd.c - `qid results`: a results store as a table or CSV.
 *
 * The columns are one table (name, kind, offset into qid_result) in the
 * order of /tasks (hdf5-schema/results.md), so the CSV header matches the
 * dataset's field names one for one. Numbers not computed (NaN) print as
 * "-" in the table and "nan" in CSV (pandas and Python's float() read it);
 * an empty string prints as "-" in the table. CSV doubles use %.17g, so
 * they read back bit-exact.
 *
 * Does not: write the store, or choose between a failed row and a later OK
 * row of the same key unless asked (--latest). */
#include "results_cmd.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "error.h"
#include "results.h"

static const char *const default_columns[] = {"model", "step",   "tokens_seen", "method", "format", "bits",
                                              "loss",  "loss16", "qid",         "qid_se", "status"};
#define N_DEFAULT (sizeof default_columns / sizeof default_columns[0])

typedef struct filters {
    const char *model, *method, *format;
    int have_bits;
    double bits;
    int status; /* -1: any */
    int latest;
} filters;

static void usage(FILE *out)
{
    fprintf(out, "usage: qid results STORE [--csv] [--model M] [--method M] [--format F] [--bits B]\n"
                 "                   [--status ok|failed] [--latest] [--columns a,b,...]\n"
                 "\n"
                 "Prints the rows of a results store (written by 'qid run'; it may be running)\n"
                 "sorted by model, tokens_seen, method, format: an aligned table, or CSV.\n"
                 "Filters combine with AND.\n"
                 "\n"
                 "options:\n"
                 "  --csv             RFC 4180 CSV, a header line and every column of /tasks\n"
                 "  --model M         rows of model M\n"
                 "  --method M        baseline, rtn, gptq or probes\n"
                 "  --format F        quantizer format, e.g. int4-g128-sym\n"
                 "  --bits B          element bits (P) or storage bits per weight equal to B\n"
                 "  --status S        ok or failed\n"
                 "  --latest          per task key only the row that counts: its last OK row,\n"
                 "                    else its last row (a failed task retried by a resumed run\n"
                 "                    otherwise shows both)\n"
                 "  --columns a,b,... these columns, in this order (names as in --csv's header)\n"
                 "  -h, --help        this help\n"
                 "\n"
                 "Table columns by default: model step tokens_seen method format bits loss loss16\n"
                 "qid qid_se status, and error when a shown row failed. NaN prints as '-' in\n"
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

static int keep_row(const qid_result *r, const filters *f)
{
    if (f->model && strcmp(r->model ? r->model : "", f->model) != 0) return 0;
    if (f->method && strcmp(r->method ? r->method : "", f->method) != 0) return 0;
    if (f->format && strcmp(r->format ? r->format : "", f->format) != 0) return 0;
    if (f->status >= 0 && (int)r->status != f->status) return 0;
    if (f->have_bits && !((double)r->elem_bits == f->bits || fabs(r->bits - f->bits) < 1e-9)) return 0;
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

static void csv_field(FILE *out, const char *s)
{
    if (strpbrk(s, ",\"\r\n") == NULL && s[0] != ' ' && (s[0] == '\0' || s[strlen(s) - 1] != ' ')) {
        fputs(s, out);
        return;
    }
    fputc('"', out);
    for (; *s; s++) {
        if (*s == '"') fputc('"', out);
        fputc(*s, out);
    }
    fputc('"', out);
}

static void print_csv(FILE *out, const qid_result *rows, const size_t *shown, size_t n_shown,
                      const qid_result_column **cols, size_t n_cols)
{
    char buf[64];
    for (size_t j = 0; j < n_cols; j++) {
        if (j) fputc(',', out);
        csv_field(out, cols[j]->name);
    }
    fputc('\n', out);
    for (size_t i = 0; i < n_shown; i++) {
        for (size_t j = 0; j < n_cols; j++) {
            if (j) fputc(',', out);
            csv_field(out, cell(cols[j], &rows[shown[i]], 1, buf, sizeof buf));
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

static int parse_double(const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v)) return -1;
    *out = v;
    return 0;
}

enum { OPT_CSV = 256, OPT_MODEL, OPT_METHOD, OPT_FORMAT, OPT_BITS, OPT_STATUS, OPT_LATEST, OPT_COLUMNS };

int qid_results_main(int argc, char **argv)
{
    static const struct option longopts[] = {{"csv", no_argument, 0, OPT_CSV},
                                             {"model", required_argument, 0, OPT_MODEL},
                                             {"method", required_argument, 0, OPT_METHOD},
                                             {"format", required_argument, 0, OPT_FORMAT},
                                             {"bits", required_argument, 0, OPT_BITS},
                                             {"status", required_argument, 0, OPT_STATUS},
                                             {"latest", no_argument, 0, OPT_LATEST},
                                             {"columns", required_argument, 0, OPT_COLUMNS},
                                             {"help", no_argument, 0, 'h'},
                                             {0, 0, 0, 0}};
    filters f = {.status = -1};
    int csv = 0, c;
    const char *column_list = NULL;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case OPT_CSV: csv = 1; break;
        case OPT_MODEL: f.model = optarg; break;
        case OPT_METHOD: f.method = optarg; break;
        case OPT_FORMAT: f.format = optarg; break;
        case OPT_LATEST: f.latest = 1; break;
        case OPT_COLUMNS: column_list = optarg; break;
        case OPT_BITS:
            if (parse_double(optarg, &f.bits)) {
                fprintf(stderr, "qid results: error: --bits wants a number, not '%s'\n", optarg);
                return 2;
            }
            f.have_bits = 1;
            break;
        case OPT_STATUS:
            if (strcasecmp(optarg, "ok") == 0)
                f.status = QID_RESULT_OK;
            else if (strcasecmp(optarg, "failed") == 0)
                f.status = QID_RESULT_FAILED;
            else {
                fprintf(stderr, "qid results: error: --status wants ok or failed, not '%s'\n", optarg);
                return 2;
            }
            break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind >= argc) {
        fprintf(stderr, "qid results: error: no results store given\n");
        usage(stderr);
        return 2;
    }
    if (optind + 1 < argc) {
        fprintf(stderr, "qid results: error: one results store at a time ('%s' is extra)\n", argv[optind + 1]);
        return 2;
    }
    const qid_result_column *cols[QID_RESULT_N_COLUMNS + 1];
    size_t n_cols = 0;
    if (column_list) {
        n_cols = parse_columns(column_list, cols, QID_RESULT_N_COLUMNS);
        if (n_cols == 0) return 2;
    }

    qid_error err;
    qid_error_clear(&err);
    qid_result *rows = NULL;
    size_t n = 0;
    if (qid_results_read(argv[optind], &rows, &n, &err)) {
        fprintf(stderr, "qid results: error: %s\n", err.msg);
        return 1;
    }
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

    if (!column_list) {
        if (csv) {
            for (size_t i = 0; i < QID_RESULT_N_COLUMNS; i++)
                cols[n_cols++] = &qid_result_columns[i];
        } else {
            for (size_t i = 0; i < N_DEFAULT; i++)
                cols[n_cols++] = find_column(default_columns[i], strlen(default_columns[i]));
            if (any_failed) cols[n_cols++] = find_column("error", 5);
        }
    }
    if (csv)
        print_csv(stdout, rows, shown, n_shown, cols, n_cols);
    else
        print_table(stdout, rows, shown, n_shown, cols, n_cols);
    int rc = fflush(stdout) == 0 ? 0 : 1;
    if (rc) fprintf(stderr, "qid results: error: cannot write the output: %s\n", strerror(errno));
    free(shown);
    free(keep);
    qid_results_rows_free(rows, n);
    return rc;
}
