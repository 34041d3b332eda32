/* jobfile.c - parsing of job files for `qid run` (format: jobs/README.md,
 * contract: jobfile.h): a strict line parser over untrusted text, with the
 * section and key table, value checks (numbers through parse.h), the
 * quantizer settings (the product methods x formats, then task lines, with
 * GPTQ options in qid_gptq_opts), and the checks across keys after the
 * last line.
 *
 * Never touches the file system (qid_job_load reads the one file) and never
 * prints.
 *
 * Does not: expand checkpoints into tasks, make keys or estimate costs
 * (job_grid.c), print the dry-run table (src/cli/run_grid.c), or schedule, run or
 * record tasks (sweep.c, sweep_task.c). */
#include "jobfile.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "fsutil.h"
#include "gptq.h"
#include "job_internal.h"
#include "parse.h"
#include "quantize.h"
#include "tokens.h"

/* Largest window count a job may ask for (2^40). */
#define MAX_WINDOWS ((int64_t)1 << 40)
/* Longest job name. */
#define MAX_NAME 64
/* Longest format name handed to qid_quant_parse. */
#define MAX_FORMAT 63

/* ---- names ---------------------------------------------------------------- */

const char *qid_job_method_name(qid_job_method m)
{
    switch (m) {
    case QID_JOB_METHOD_BASELINE: return "baseline";
    case QID_JOB_METHOD_RTN: return "rtn";
    case QID_JOB_METHOD_GPTQ: return "gptq";
    case QID_JOB_METHOD_PROBES: return "probes";
    case QID_JOB_METHOD_AWQ: return "awq";
    }
    return "?";
}

int qid_job_method_calibrated(qid_job_method m) { return m == QID_JOB_METHOD_GPTQ || m == QID_JOB_METHOD_AWQ; }

const char *qid_job_scoring_name(qid_job_scoring s) { return s == QID_JOB_SCORING_SECOND_HALF ? "second-half" : "all"; }

/* ---- the key table -------------------------------------------------------- */

enum section { SEC_JOB, SEC_CKPT, SEC_EVAL, SEC_CALIB, SEC_QUANT, SEC_PROBES, SEC_COUNT };
static const char *const section_names[SEC_COUNT] = {"job", "checkpoints", "eval", "calibration", "quantize", "probes"};

enum key {
    K_NAME,
    K_RESULTS,
    K_SEED,
    K_MEM_LIMIT,
    K_FILE,
    K_GLOB,
    K_LIST,
    K_EV_TOKENS,
    K_EV_WINDOWS,
    K_EV_SEQ_LEN,
    K_EV_SCORING,
    K_EV_KL,
    K_EV_MIN_WINDOWS,
    K_EV_MAX_WINDOWS,
    K_EV_BLOCK_WINDOWS,
    K_EV_TARGET_SE,
    K_EV_TARGET_RSE,
    K_CA_TOKENS,
    K_CA_SAMPLES,
    K_CA_SEQ_LEN,
    K_CA_CHUNK,
    K_CA_SCRATCH,
    K_METHODS,
    K_FORMATS,
    K_TASK,
    K_DAMP, /* K_DAMP..K_MICRO_BLOCK are also task options, in this order */
    K_BLOCK_SIZE,
    K_ACT_ORDER,
    K_STATIC_GROUPS,
    K_MICRO_BLOCK,
    K_RADII,
    K_DIRECTIONS,
    K_PR_WINDOWS,
    K_COUNT
};

#define N_GPTQ_OPTS (K_MICRO_BLOCK - K_DAMP + 1)

static const struct keydef {
    enum section sec;
    const char *name;
    int repeat; /* may appear more than once */
    const char *expect;
} keydefs[K_COUNT] = {
    [K_NAME] = {SEC_JOB, "name", 0, "a name of letters, digits, '.', '_' and '-' (at most 64)"},
    [K_RESULTS] = {SEC_JOB, "results", 0, "the path of the results store, e.g. results/x.h5"},
    [K_SEED] = {SEC_JOB, "seed", 0, "a whole number 0..9223372036854775807"},
    [K_MEM_LIMIT] = {SEC_JOB, "mem_limit", 0, "a byte count per rank, e.g. 16GiB, 512MiB, 2e10"},
    [K_FILE] = {SEC_CKPT, "file", 1, "a checkpoint path"},
    [K_GLOB] = {SEC_CKPT, "glob", 1, "a glob(3) pattern, e.g. ckpt/*.h5"},
    [K_LIST] = {SEC_CKPT, "list", 1, "a file listing one checkpoint path per line"},
    [K_EV_TOKENS] = {SEC_EVAL, "tokens", 0, "the path of a token set (qid tokens)"},
    [K_EV_WINDOWS] = {SEC_EVAL, "windows", 0, "all, auto or a whole number 1..1099511627776"},
    [K_EV_SEQ_LEN] = {SEC_EVAL, "seq_len", 0, "auto or a whole number 2..16777216"},
    [K_EV_SCORING] = {SEC_EVAL, "scoring", 0, "all or second-half"},
    [K_EV_KL] = {SEC_EVAL, "kl", 0, "yes or no"},
    [K_EV_MIN_WINDOWS] = {SEC_EVAL, "min_windows", 0, "a whole number 2..1099511627776"},
    [K_EV_MAX_WINDOWS] = {SEC_EVAL, "max_windows", 0, "all or a whole number 2..1099511627776"},
    [K_EV_BLOCK_WINDOWS] = {SEC_EVAL, "block_windows", 0, "a whole number 1..1099511627776"},
    [K_EV_TARGET_SE] = {SEC_EVAL, "target_se", 0, "a number 0..1 (nats/token)"},
    [K_EV_TARGET_RSE] = {SEC_EVAL, "target_rse", 0, "a number 0..1"},
    [K_CA_TOKENS] = {SEC_CALIB, "tokens", 0, "the path of a token set (qid tokens)"},
    [K_CA_SAMPLES] = {SEC_CALIB, "samples", 0, "a whole number 1..1000000"},
    [K_CA_SEQ_LEN] = {SEC_CALIB, "seq_len", 0, "auto or a whole number 2..16777216"},
    [K_CA_CHUNK] = {SEC_CALIB, "chunk", 0, "all or a byte count, e.g. 256MiB, 1GiB"},
    [K_CA_SCRATCH] = {SEC_CALIB, "scratch_dir", 0, "the path of a directory for the scratch file"},
    [K_METHODS] = {SEC_QUANT, "methods", 0, "a comma-separated list of rtn, gptq"},
    [K_FORMATS] = {SEC_QUANT, "formats", 0, "a comma-separated list of formats, e.g. int4-g128-sym, mxfp4"},
    [K_TASK] = {SEC_QUANT, "task", 1, "METHOD FORMAT [option=value ...], e.g. task = gptq mxfp4 micro_block=32"},
    [K_DAMP] = {SEC_QUANT, "damp", 0, "a number 0..1"},
    [K_BLOCK_SIZE] = {SEC_QUANT, "block_size", 0, "a whole number 1..65536"},
    [K_ACT_ORDER] = {SEC_QUANT, "act_order", 0, "yes or no"},
    [K_STATIC_GROUPS] = {SEC_QUANT, "static_groups", 0, "yes or no"},
    [K_MICRO_BLOCK] = {SEC_QUANT, "micro_block", 0, "a whole number 0..65536 (0: plain GPTQ)"},
    [K_RADII] = {SEC_PROBES, "radii", 0, "a comma-separated list of radii in (0, 100], e.g. 0.001, 0.01"},
    [K_DIRECTIONS] = {SEC_PROBES, "directions", 0, "a whole number 1..1024"},
    [K_PR_WINDOWS] = {SEC_PROBES, "windows", 0, "a whole number 1..1099511627776"},
};

/* ---- parser state ---------------------------------------------------------- */

/* A quantizer setting before the section-level GPTQ defaults are applied. */
typedef struct pending {
    qid_job_method method;
    qid_quant_spec spec;
    char format[64];
    qid_gptq_opts gptq;
    unsigned given; /* bit (k - K_DAMP) set when option k was given */
    int line;
} pending;

typedef struct parser {
    qid_job *job;
    qid_error *err;
    const char *file;
    int line;    /* current line, 1-based */
    int sec;     /* current section, -1 before the first */
    int n_lines; /* lines in the file */
    int sec_line[SEC_COUNT];
    int key_line[K_COUNT];
    size_t cap_srcs;
    qid_job_method methods[2];
    size_t n_methods;
    pending *formats; /* [formats] entries (method unused) */
    size_t n_formats;
    pending *tasks; /* task lines */
    size_t n_tasks, cap_tasks;
    qid_gptq_opts gdef; /* section-level GPTQ options */
    size_t cap_quant;
} parser;

/* Sets "FILE:LINE: <text>" and returns QID_E_INVALID. */
__attribute__((format(printf, 3, 4))) static int perr(parser *p, int line, const char *fmt, ...)
{
    char what[QID_ERROR_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return qid_error_set(p->err, QID_E_INVALID, "%s:%d: %s", p->file, line, what);
}

/* ---- values ---------------------------------------------------------------- */

/* Where the number at the start of v ends, for messages: digits after an
 * optional '-' for a whole number; for a decimal one (real) strtod's
 * decimal form, [+-] digits [. digits] or [+-] . digits, then e [+-] digits
 * when digits follow the 'e'. 0 when v does not start with a number. The
 * value itself is read by parse.h. */
static size_t number_end(const char *v, int real)
{
    size_t i = 0, digits = 0;
    if (v[i] == '-' || (real && v[i] == '+')) i++;
    while (job_is_digit(v[i]))
        i++, digits++;
    if (real && v[i] == '.')
        for (i++; job_is_digit(v[i]); i++)
            digits++;
    if (digits == 0) return 0;
    if (real && (v[i] == 'e' || v[i] == 'E')) {
        size_t j = i + 1 + (v[i + 1] == '+' || v[i + 1] == '-');
        if (job_is_digit(v[j])) {
            while (job_is_digit(v[j]))
                j++;
            i = j;
        }
    }
    return i;
}

/* QID_OK when the whole of v is a number (whole or real); else the
 * message "invalid value" (no number) or "invalid number ... (trailing)". */
static int val_syntax(parser *p, const char *key, const char *v, int real, const char *expect)
{
    job_clipbuf c1, c2;
    size_t end = number_end(v, real);
    if (end == 0) return perr(p, p->line, "invalid value '%s' for '%s'; expected %s", job_clip(v, &c1), key, expect);
    if (v[end])
        return perr(p, p->line, "invalid number '%s' for '%s' (trailing '%s'); expected %s", job_clip(v, &c1), key,
                    job_clip(v + end, &c2), expect);
    return QID_OK;
}

static int out_of_range(parser *p, const char *key, const char *v, const char *expect)
{
    job_clipbuf c;
    return perr(p, p->line, "'%s' is out of range for '%s'; expected %s", job_clip(v, &c), key, expect);
}

/* A whole number in parse.h's syntax (1000, 1e3, 2.5e3; jobs/README.md) in
 * [min, max] (min >= 0). Text that is not a whole number is reported at the
 * first character past its digits. */
static int val_int(parser *p, const char *key, const char *v, int64_t min, int64_t max, const char *expect,
                   int64_t *out)
{
    int64_t x;
    if (qid_parse_int(v, INT64_MIN, INT64_MAX, &x) == 0) {
        if (x < min || x > max) return out_of_range(p, key, v, expect);
        *out = x;
        return QID_OK;
    }
    int rc = val_syntax(p, key, v, 0, expect);
    return rc ? rc : out_of_range(p, key, v, expect); /* digits past 2^63 - 1 */
}

/* A decimal number in [min, max], or (min, max] when min_open. Hex, inf and
 * nan are refused. */
static int val_double(parser *p, const char *key, const char *v, double min, int min_open, double max,
                      const char *expect, double *out)
{
    int rc = val_syntax(p, key, v, 1, expect);
    if (rc) return rc;
    double x;
    if (qid_parse_real(v, &x) || x < min || (min_open && x <= min) || x > max) return out_of_range(p, key, v, expect);
    *out = x;
    return QID_OK;
}

static int val_bool(parser *p, const char *key, const char *v, int *out)
{
    job_clipbuf c;
    if (strcmp(v, "yes") == 0)
        *out = 1;
    else if (strcmp(v, "no") == 0)
        *out = 0;
    else
        return perr(p, p->line, "invalid value '%s' for '%s'; expected yes or no", job_clip(v, &c), key);
    return QID_OK;
}

/* A byte count (parse.h: 2e10, 512MiB, 16GiB) below 2^63. */
static int val_bytes(parser *p, const char *key, const char *v, const char *expect, double *out)
{
    job_clipbuf c;
    double b;
    if (qid_parse_bytes(v, &b) || !(b < 9e18))
        return perr(p, p->line, "invalid value '%s' for '%s'; expected %s", job_clip(v, &c), key, expect);
    *out = b;
    return QID_OK;
}

/* A window count or length with a keyword for 0 ("all", "auto"). */
static int val_int_or(parser *p, enum key k, const char *v, const char *word, int64_t min, int64_t max, int64_t *out)
{
    if (strcmp(v, word) == 0) {
        *out = 0;
        return QID_OK;
    }
    return val_int(p, keydefs[k].name, v, min, max, keydefs[k].expect, out);
}

/* Splits v (modified) at commas into trimmed items; *items is malloc'd.
 * More than max items (max > 0) is an error "N <what>; expected at most
 * max". */
static int split_list(parser *p, enum key k, char *v, size_t max, const char *what, char ***items, size_t *n)
{
    size_t cap = 1;
    for (const char *s = v; *s; s++)
        cap += *s == ',';
    char **it = qid_malloc(cap * sizeof *it, "a list");
    size_t m = 0;
    char *s = v;
    for (;;) {
        char *comma = strchr(s, ',');
        if (comma) *comma = '\0';
        char *item = job_trim(s);
        if (!*item) {
            free(it);
            return perr(p, p->line, "empty item in the list for '%s'; expected %s", keydefs[k].name, keydefs[k].expect);
        }
        it[m++] = item;
        if (!comma) break;
        s = comma + 1;
    }
    if (max && m > max) {
        free(it);
        return perr(p, p->line, "%zu %s; expected at most %zu", m, what, max);
    }
    *items = it;
    *n = m;
    return QID_OK;
}

static int parse_method(parser *p, const char *v, const char *where, qid_job_method *m)
{
    job_clipbuf c;
    if (strcmp(v, "rtn") == 0)
        *m = QID_JOB_METHOD_RTN;
    else if (strcmp(v, "gptq") == 0)
        *m = QID_JOB_METHOD_GPTQ;
    else if (strcmp(v, "awq") == 0)
        *m = QID_JOB_METHOD_AWQ;
    else if (strcmp(v, "baseline") == 0 || strcmp(v, "probes") == 0)
        return perr(p, p->line,
                    "method '%s' cannot be asked for%s; expected rtn, gptq or awq (the baseline always runs, "
                    "probes come from [probes])",
                    v, where);
    else
        return perr(p, p->line, "unknown method '%s'%s; expected rtn, gptq or awq", job_clip(v, &c), where);
    return QID_OK;
}

static int parse_format(parser *p, const char *v, qid_quant_spec *spec, char name[64])
{
    job_clipbuf c;
    if (strlen(v) > MAX_FORMAT)
        return perr(p, p->line,
                    "unknown format '%s' (too long); expected a format such as int4-g128-sym, mxfp4 "
                    "or nf4",
                    job_clip(v, &c));
    qid_error qerr;
    qid_error_clear(&qerr);
    if (qid_quant_parse(v, spec, &qerr) != QID_OK) {
        if (strstr(qerr.msg, "expected")) return perr(p, p->line, "%s", qerr.msg);
        return perr(p, p->line, "%s; expected a format such as int4-g128-sym, mxfp4 or nf4", qerr.msg);
    }
    qid_quant_name(spec, name, 64);
    return QID_OK;
}

/* One GPTQ option (k in K_DAMP..K_MICRO_BLOCK) into g. */
static int gptq_opt(parser *p, enum key k, const char *v, qid_gptq_opts *g)
{
    const char *name = keydefs[k].name, *expect = keydefs[k].expect;
    int64_t x;
    int rc;
    switch (k) {
    case K_DAMP: return val_double(p, name, v, 0.0, 0, 1.0, expect, &g->percdamp);
    case K_BLOCK_SIZE:
        if ((rc = val_int(p, name, v, 1, 65536, expect, &x))) return rc;
        g->block = (size_t)x;
        return QID_OK;
    case K_ACT_ORDER: return val_bool(p, name, v, &g->act_order);
    case K_STATIC_GROUPS: return val_bool(p, name, v, &g->static_groups);
    case K_MICRO_BLOCK:
        if ((rc = val_int(p, name, v, 0, 65536, expect, &x))) return rc;
        g->micro_block = (size_t)x;
        return QID_OK;
    default: QID_CHECK(0, "not a GPTQ option: %d", (int)k);
    }
}

/* The job's GPTQ defaults (jobs/README.md: damp 0.01, block_size 128,
 * act_order and static_groups no, micro_block 0 = plain GPTQ): gptq.h's
 * defaults, except micro_block. A job's plain GPTQ (micro_block 0 or 1) is
 * gptq.h's 1, column by column for every format; gptq.h's 0 would mean
 * micro-blocks of the format's block for MX, NF4, FP4 and GGUF. */
static void gptq_defaults(qid_gptq_opts *g)
{
    qid_gptq_opts_default(g);
    g->micro_block = 1;
}

/* ---- key handlers ----------------------------------------------------------- */

static int set_name(parser *p, const char *v)
{
    job_clipbuf c;
    size_t n = strlen(v);
    int good = n <= MAX_NAME;
    for (size_t i = 0; good && i < n; i++) {
        char ch = v[i];
        good = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || job_is_digit(ch) || ch == '.' || ch == '_' ||
               ch == '-';
    }
    if (!good) return perr(p, p->line, "invalid name '%s'; expected %s", job_clip(v, &c), keydefs[K_NAME].expect);
    p->job->name = qid_strdup(v);
    return QID_OK;
}

static void add_src(parser *p, qid_job_src_kind kind, const char *v)
{
    qid_job *job = p->job;
    if (job->n_srcs == p->cap_srcs) {
        p->cap_srcs = p->cap_srcs ? 2 * p->cap_srcs : 8;
        job->srcs = qid_realloc(job->srcs, p->cap_srcs * sizeof *job->srcs, "checkpoint entries");
    }
    job->srcs[job->n_srcs++] = (qid_job_src){.kind = kind, .value = qid_strdup(v), .line = p->line};
}

static int set_methods(parser *p, char *v)
{
    char **items;
    size_t n;
    int rc = split_list(p, K_METHODS, v, 0, NULL, &items, &n);
    if (rc) return rc;
    for (size_t i = 0; i < n && !rc; i++) {
        qid_job_method m = QID_JOB_METHOD_RTN;
        if ((rc = parse_method(p, items[i], "", &m))) break;
        for (size_t j = 0; j < p->n_methods; j++)
            if (p->methods[j] == m) {
                rc = perr(p, p->line, "duplicate method '%s' in 'methods'; expected each method once", items[i]);
                break;
            }
        if (!rc) p->methods[p->n_methods++] = m;
    }
    free(items);
    return rc;
}

static int set_formats(parser *p, char *v)
{
    char **items;
    size_t n;
    int rc = split_list(p, K_FORMATS, v, QID_JOB_MAX_QUANT, "formats", &items, &n);
    if (rc) return rc;
    p->formats = qid_calloc(n, sizeof *p->formats, "formats");
    for (size_t i = 0; i < n && !rc; i++) {
        pending *f = &p->formats[i];
        if ((rc = parse_format(p, items[i], &f->spec, f->format))) break;
        for (size_t j = 0; j < i; j++)
            if (strcmp(p->formats[j].format, f->format) == 0) {
                job_clipbuf c;
                rc =
                    perr(p, p->line, "duplicate format '%s' in 'formats' (the same as '%s'); expected each format once",
                         job_clip(items[i], &c), p->formats[j].format);
                break;
            }
        p->n_formats = i + 1;
    }
    free(items);
    return rc;
}

/* task = METHOD FORMAT [option=value ...] */
static int add_task(parser *p, char *v)
{
    job_clipbuf c;
    char *tok[QID_JOB_MAX_LINE / 2 + 2];
    size_t nt = 0;
    for (char *s = v; *s;) {
        while (job_is_blank(*s))
            s++;
        if (!*s) break;
        tok[nt++] = s;
        while (*s && !job_is_blank(*s))
            s++;
        if (*s) *s++ = '\0';
    }
    if (nt < 2) return perr(p, p->line, "task needs a method and a format; expected %s", keydefs[K_TASK].expect);
    pending t = {.line = p->line};
    int rc;
    if ((rc = parse_method(p, tok[0], " in task", &t.method))) return rc;
    if ((rc = parse_format(p, tok[1], &t.spec, t.format))) return rc;
    for (size_t i = 2; i < nt; i++) {
        char *eq = strchr(tok[i], '=');
        if (eq) *eq = '\0';
        enum key k = K_COUNT;
        for (int j = K_DAMP; j <= K_MICRO_BLOCK; j++)
            if (strcmp(tok[i], keydefs[j].name) == 0) k = (enum key)j;
        if (k == K_COUNT)
            return perr(p, p->line,
                        "unknown option '%s' in task; expected one of damp, block_size, act_order, static_groups, "
                        "micro_block",
                        job_clip(tok[i], &c));
        if (t.method == QID_JOB_METHOD_RTN)
            return perr(p, p->line, "option '%s' does not apply to rtn; expected no options after an rtn format",
                        tok[i]);
        if (!eq)
            return perr(p, p->line, "option '%s' in task has no '='; expected option=value without spaces, e.g. %s=%s",
                        tok[i], tok[i],
                        k == K_DAMP                                ? "0.1"
                        : k == K_ACT_ORDER || k == K_STATIC_GROUPS ? "yes"
                                                                   : "32");
        unsigned bit = 1u << (k - K_DAMP);
        if (t.given & bit) return perr(p, p->line, "duplicate option '%s' in task; expected each option once", tok[i]);
        t.given |= bit;
        if ((rc = gptq_opt(p, k, eq + 1, &t.gptq))) return rc;
    }
    if (p->n_tasks == p->cap_tasks) {
        p->cap_tasks = p->cap_tasks ? 2 * p->cap_tasks : 8;
        p->tasks = qid_realloc(p->tasks, p->cap_tasks * sizeof *p->tasks, "task lines");
    }
    if (p->n_tasks >= QID_JOB_MAX_QUANT)
        return perr(p, p->line, "more than %d task lines; expected at most %d", QID_JOB_MAX_QUANT, QID_JOB_MAX_QUANT);
    p->tasks[p->n_tasks++] = t;
    return QID_OK;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int set_radii(parser *p, char *v)
{
    char **items;
    size_t n;
    int rc = split_list(p, K_RADII, v, QID_JOB_MAX_RADII, "radii", &items, &n);
    if (rc) return rc;
    double *r = qid_malloc(n * sizeof *r, "radii");
    for (size_t i = 0; i < n && !rc; i++)
        rc = val_double(p, "radii", items[i], 0.0, 1, 100.0, keydefs[K_RADII].expect, &r[i]);
    free(items);
    if (rc) {
        free(r);
        return rc;
    }
    qsort(r, n, sizeof *r, cmp_double);
    for (size_t i = 1; i < n; i++)
        if (r[i] == r[i - 1]) {
            char b[32];
            qid_format_real(r[i], b, sizeof b);
            free(r);
            return perr(p, p->line, "duplicate radius %s in 'radii'; expected each radius once", b);
        }
    p->job->probes.radii = r;
    p->job->probes.n_radii = n;
    return QID_OK;
}

/* Applies `key = v` (v modifiable, trimmed, non-empty). */
static int set_key(parser *p, enum key k, char *v)
{
    qid_job *job = p->job;
    const char *name = keydefs[k].name, *expect = keydefs[k].expect;
    int64_t x;
    int rc;
    switch (k) {
    case K_NAME: return set_name(p, v);
    case K_RESULTS: job_path_set(&job->results, job->dir, ".", v); return QID_OK;
    case K_SEED:
        if ((rc = val_int(p, name, v, 0, INT64_MAX, expect, &x))) return rc;
        job->seed = (uint64_t)x;
        return QID_OK;
    case K_MEM_LIMIT: return val_bytes(p, name, v, expect, &job->mem_limit);
    case K_FILE: add_src(p, QID_JOB_SRC_FILE, v); return QID_OK;
    case K_GLOB: add_src(p, QID_JOB_SRC_GLOB, v); return QID_OK;
    case K_LIST: add_src(p, QID_JOB_SRC_LIST, v); return QID_OK;
    case K_EV_TOKENS: job_path_set(&job->eval.tokens, job->dir, ".", v); return QID_OK;
    case K_EV_WINDOWS:
        if (strcmp(v, "auto") == 0) {
            job->eval.adaptive = 1;
            return QID_OK;
        }
        return val_int_or(p, k, v, "all", 1, MAX_WINDOWS, &job->eval.windows);
    case K_EV_MIN_WINDOWS:
    case K_EV_MAX_WINDOWS:
    case K_EV_BLOCK_WINDOWS:
    case K_EV_TARGET_SE:
    case K_EV_TARGET_RSE:
        if (!job->eval.auto_key_line) job->eval.auto_key_line = p->line;
        if (k == K_EV_MIN_WINDOWS) return val_int(p, name, v, 2, MAX_WINDOWS, expect, &job->eval.min_windows);
        if (k == K_EV_MAX_WINDOWS) return val_int_or(p, k, v, "all", 2, MAX_WINDOWS, &job->eval.windows);
        if (k == K_EV_BLOCK_WINDOWS) return val_int(p, name, v, 1, MAX_WINDOWS, expect, &job->eval.block_windows);
        return val_double(p, name, v, 0, 0, 1, expect,
                          k == K_EV_TARGET_SE ? &job->eval.target_se : &job->eval.target_rse);
    case K_EV_SEQ_LEN: return val_int_or(p, k, v, "auto", 2, QID_TOKENS_MAX_SEQ_LEN, &job->eval.seq_len);
    case K_EV_SCORING:
        if (strcmp(v, "all") == 0)
            job->eval.scoring = QID_JOB_SCORING_ALL;
        else if (strcmp(v, "second-half") == 0)
            job->eval.scoring = QID_JOB_SCORING_SECOND_HALF;
        else {
            job_clipbuf c;
            return perr(p, p->line, "invalid value '%s' for 'scoring'; expected %s", job_clip(v, &c), expect);
        }
        return QID_OK;
    case K_EV_KL: return val_bool(p, name, v, &job->eval.kl);
    case K_CA_TOKENS: job_path_set(&job->calib.tokens, job->dir, ".", v); return QID_OK;
    case K_CA_SAMPLES: return val_int(p, name, v, 1, 1000000, expect, &job->calib.samples);
    case K_CA_SEQ_LEN: return val_int_or(p, k, v, "auto", 2, QID_TOKENS_MAX_SEQ_LEN, &job->calib.seq_len);
    case K_CA_CHUNK: {
        if (strcmp(v, "all") == 0) {
            job->calib.chunk_bytes = 0;
            return QID_OK;
        }
        double b;
        if ((rc = val_bytes(p, name, v, expect, &b))) return rc;
        job->calib.chunk_bytes = b < 1 ? 1 : (size_t)b;
        return QID_OK;
    }
    case K_CA_SCRATCH: job_path_set(&job->calib.scratch_dir, job->dir, ".", v); return QID_OK;
    case K_METHODS: return set_methods(p, v);
    case K_FORMATS: return set_formats(p, v);
    case K_TASK: return add_task(p, v);
    case K_DAMP:
    case K_BLOCK_SIZE:
    case K_ACT_ORDER:
    case K_STATIC_GROUPS:
    case K_MICRO_BLOCK: return gptq_opt(p, k, v, &p->gdef);
    case K_RADII: return set_radii(p, v);
    case K_DIRECTIONS: return val_int(p, name, v, 1, 1024, expect, &job->probes.directions);
    case K_PR_WINDOWS: return val_int(p, name, v, 1, MAX_WINDOWS, expect, &job->probes.windows);
    case K_COUNT: break;
    }
    QID_CHECK(0, "unhandled key %d", (int)k);
}

/* "a, b, c": the keys of a section, for messages. */
static void section_keys(enum section s, char *buf, size_t len)
{
    size_t used = 0;
    buf[0] = '\0';
    for (int k = 0; k < K_COUNT; k++) {
        if (keydefs[k].sec != s) continue;
        int w = snprintf(buf + used, len - used, "%s%s", used ? ", " : "", keydefs[k].name);
        if (w < 0 || (size_t)w >= len - used) break;
        used += (size_t)w;
    }
}

/* One line (NUL-terminated, no newline, checked for control bytes). */
static int parse_line(parser *p, char *line)
{
    job_clipbuf c1;
    /* a comment starts at '#' at the start or after a blank */
    for (char *s = line; *s; s++)
        if (*s == '#' && (s == line || job_is_blank(s[-1]))) {
            *s = '\0';
            break;
        }
    char *s = job_trim(line);
    if (!*s) return QID_OK;

    if (*s == '[') {
        size_t n = strlen(s);
        if (s[n - 1] != ']')
            return perr(p, p->line, "section header '%s' has no closing ']'; expected [name] alone on the line",
                        job_clip(s, &c1));
        s[n - 1] = '\0';
        char *name = job_trim(s + 1);
        int sec = -1;
        for (int i = 0; i < SEC_COUNT; i++)
            if (strcmp(name, section_names[i]) == 0) sec = i;
        if (sec < 0)
            return perr(p, p->line,
                        "unknown section [%s]; expected one of job, checkpoints, eval, calibration, quantize, probes",
                        job_clip(name, &c1));
        if (p->sec_line[sec])
            return perr(p, p->line, "duplicate section [%s] (first on line %d); expected each section once",
                        section_names[sec], p->sec_line[sec]);
        p->sec = sec;
        p->sec_line[sec] = p->line;
        return QID_OK;
    }

    char *eq = strchr(s, '=');
    if (!eq)
        return perr(p, p->line, "'%s' is not a setting; expected key = value or a [section] header", job_clip(s, &c1));
    *eq = '\0';
    char *key = job_trim(s), *value = job_trim(eq + 1);
    if (!*key) return perr(p, p->line, "missing key before '='; expected key = value");
    if (p->sec < 0)
        return perr(p, p->line, "key '%s' before any section; expected a [section] header first", job_clip(key, &c1));
    int k = -1;
    for (int i = 0; i < K_COUNT; i++)
        if (keydefs[i].sec == (enum section)p->sec && strcmp(keydefs[i].name, key) == 0) k = i;
    if (k < 0) {
        char keys[256];
        section_keys((enum section)p->sec, keys, sizeof keys);
        return perr(p, p->line, "unknown key '%s' in [%s]; expected one of %s", job_clip(key, &c1),
                    section_names[p->sec], keys);
    }
    if (!keydefs[k].repeat && p->key_line[k])
        return perr(p, p->line, "duplicate key '%s' in [%s] (first on line %d); expected each key once", key,
                    section_names[p->sec], p->key_line[k]);
    if (!*value) return perr(p, p->line, "empty value for '%s'; expected %s", keydefs[k].name, keydefs[k].expect);
    p->key_line[k] = p->line;
    return set_key(p, (enum key)k, value);
}

/* ---- after the last line ------------------------------------------------------ */

static void make_options(qid_job_quant *q)
{
    if (q->method != QID_JOB_METHOD_GPTQ) {
        snprintf(q->options, sizeof q->options, "-");
        return;
    }
    char damp[32];
    qid_format_real(q->gptq.percdamp, damp, sizeof damp);
    /* plain GPTQ (gptq.h's micro_block 1) is written as the job file's 0 */
    snprintf(q->options, sizeof q->options, "damp=%s,block_size=%zu,act_order=%s,static_groups=%s,micro_block=%zu",
             damp, q->gptq.block, q->gptq.act_order ? "yes" : "no", q->gptq.static_groups ? "yes" : "no",
             q->gptq.micro_block == 1 ? 0 : q->gptq.micro_block);
}

/* Checks micro_block against the format's block and block_size; adds q. */
static int add_quant(parser *p, qid_job_quant *q, int line, int micro_line)
{
    qid_job *job = p->job;
    if (q->method == QID_JOB_METHOD_GPTQ && q->gptq.micro_block == 0)
        q->gptq.micro_block = 1; /* the job's 0 is plain GPTQ: gptq.h's 1 */
    if (q->method == QID_JOB_METHOD_AWQ && !qid_awq_spec_ok(&q->spec))
        return perr(p, line, "awq cannot quantize to %s; expected an integer format without -mse (intB-gG-sym/asym)",
                    q->format);
    size_t m = q->gptq.micro_block, b = q->spec.block;
    if (q->method == QID_JOB_METHOD_GPTQ && !qid_quant_traits_of(q->spec.type)->params)
        return perr(p, line, "format %s has no GPTQ path (%s); expected method rtn", q->format, QID_GPTQ_NO_PATH_WHY);
    if (q->method == QID_JOB_METHOD_GPTQ && q->gptq.act_order && !q->gptq.static_groups &&
        qid_quant_traits_of(q->spec.type)->fixed_blocks)
        return perr(p, line,
                    "act_order with %s needs static groups; expected static_groups = yes (or act_order = no) "
                    "for formats with fixed blocks (MX, NF4, FP4, GGUF)",
                    q->format);
    if (q->method == QID_JOB_METHOD_GPTQ && m > 1) {
        if (b && m % b)
            return perr(p, micro_line,
                        "micro_block %zu is not a multiple of the block size %zu of %s; expected a multiple of %zu, "
                        "or 0 for plain GPTQ",
                        m, b, q->format, b);
        if (q->gptq.block % m)
            return perr(p, micro_line, "micro_block %zu does not divide block_size %zu; expected a divisor of %zu", m,
                        q->gptq.block, q->gptq.block);
    }
    make_options(q);
    q->line = line;
    for (size_t i = 0; i < job->n_quant; i++) {
        const qid_job_quant *o = &job->quant[i];
        if (o->method == q->method && strcmp(o->format, q->format) == 0 && strcmp(o->options, q->options) == 0)
            return perr(p, line, "duplicate quantizer setting %s %s %s (also from line %d); expected each setting once",
                        qid_job_method_name(q->method), q->format, q->options, o->line);
    }
    if (job->n_quant >= QID_JOB_MAX_QUANT)
        return perr(p, line, "more than %d quantizer settings; expected at most %d", QID_JOB_MAX_QUANT,
                    QID_JOB_MAX_QUANT);
    if (job->n_quant == p->cap_quant) {
        p->cap_quant = p->cap_quant ? 2 * p->cap_quant : 16;
        job->quant = qid_realloc(job->quant, p->cap_quant * sizeof *job->quant, "quantizer settings");
    }
    job->quant[job->n_quant++] = *q;
    return QID_OK;
}

static int finish(parser *p)
{
    qid_job *job = p->job;
    int last = p->n_lines > 0 ? p->n_lines : 1;
#define AT(sec) (p->sec_line[sec] ? p->sec_line[sec] : last)
    int rc;
    if (!job->results.rel)
        return perr(p, AT(SEC_JOB), "missing key 'results' in [job]; expected results = PATH of the results store");
    if (!job->n_srcs)
        return perr(p, AT(SEC_CKPT),
                    "no checkpoints; expected at least one file = PATH, glob = PATTERN or list = FILE in "
                    "[checkpoints]");
    if (!job->eval.tokens.rel)
        return perr(p, AT(SEC_EVAL),
                    "missing key 'tokens' in [eval]; expected tokens = PATH of the evaluation "
                    "token set");
    if (job->eval.auto_key_line && !job->eval.adaptive)
        return perr(p, job->eval.auto_key_line,
                    "min_windows, max_windows, block_windows, target_se and target_rse need windows = auto in "
                    "[eval]");
    if (p->sec_line[SEC_CALIB] && !job->calib.tokens.rel)
        return perr(p, AT(SEC_CALIB),
                    "missing key 'tokens' in [calibration]; expected tokens = PATH of the "
                    "calibration token set");
    if (p->sec_line[SEC_PROBES] && !job->probes.n_radii)
        return perr(p, AT(SEC_PROBES), "missing key 'radii' in [probes]; expected %s", keydefs[K_RADII].expect);
    if (p->key_line[K_METHODS] && !p->key_line[K_FORMATS])
        return perr(p, p->key_line[K_METHODS], "'methods' without 'formats'; expected formats = %s in [quantize]",
                    "a comma-separated list of formats");
    if (p->key_line[K_FORMATS] && !p->key_line[K_METHODS])
        return perr(p, p->key_line[K_FORMATS],
                    "'formats' without 'methods'; expected methods = rtn, gptq (or one "
                    "of them, or awq) in [quantize]");

    /* the product, then the task lines with the section defaults filled in */
    for (size_t i = 0; i < p->n_methods; i++)
        for (size_t j = 0; j < p->n_formats; j++) {
            qid_job_quant q = {.method = p->methods[i], .spec = p->formats[j].spec};
            memcpy(q.format, p->formats[j].format, sizeof q.format);
            if (q.method == QID_JOB_METHOD_GPTQ) q.gptq = p->gdef;
            int where =
                p->key_line[K_FORMATS] > p->key_line[K_METHODS] ? p->key_line[K_FORMATS] : p->key_line[K_METHODS];
            if ((rc = add_quant(p, &q, where, p->key_line[K_MICRO_BLOCK] ? p->key_line[K_MICRO_BLOCK] : where)))
                return rc;
        }
    for (size_t i = 0; i < p->n_tasks; i++) {
        const pending *t = &p->tasks[i];
        qid_job_quant q = {.method = t->method, .spec = t->spec};
        memcpy(q.format, t->format, sizeof q.format);
        if (q.method == QID_JOB_METHOD_GPTQ) {
            q.gptq = p->gdef;
            if (t->given & (1u << (K_DAMP - K_DAMP))) q.gptq.percdamp = t->gptq.percdamp;
            if (t->given & (1u << (K_BLOCK_SIZE - K_DAMP))) q.gptq.block = t->gptq.block;
            if (t->given & (1u << (K_ACT_ORDER - K_DAMP))) q.gptq.act_order = t->gptq.act_order;
            if (t->given & (1u << (K_STATIC_GROUPS - K_DAMP))) q.gptq.static_groups = t->gptq.static_groups;
            if (t->given & (1u << (K_MICRO_BLOCK - K_DAMP))) q.gptq.micro_block = t->gptq.micro_block;
        }
        int micro_line = t->line;
        if (!(t->given & (1u << (K_MICRO_BLOCK - K_DAMP))) && p->key_line[K_MICRO_BLOCK])
            micro_line = p->key_line[K_MICRO_BLOCK];
        if ((rc = add_quant(p, &q, t->line, micro_line))) return rc;
    }
    if (!job->n_quant)
        return perr(p, AT(SEC_QUANT),
                    "no quantizer settings; expected methods and formats, or task lines, in "
                    "[quantize]");
    for (size_t i = 0; i < job->n_quant; i++)
        if (qid_job_method_calibrated(job->quant[i].method) && !job->calib.tokens.rel)
            return perr(p, job->quant[i].line,
                        "%s needs calibration data; expected a [calibration] section with "
                        "tokens = PATH",
                        qid_job_method_name(job->quant[i].method));
#undef AT

    if (!job->name) {
        const char *base = strrchr(job->file, '/');
        base = base ? base + 1 : job->file;
        size_t n = strlen(base);
        if (n > 4 && strcmp(base + n - 4, ".job") == 0) n -= 4;
        job->name = qid_malloc(n + 1, "a job name");
        memcpy(job->name, base, n);
        job->name[n] = '\0';
    }
    return QID_OK;
}

/* Checks the bytes of one line: no NUL or control characters but tab. */
static int check_bytes(parser *p, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == 0) return perr(p, p->line, "NUL byte at column %zu; expected text", i + 1);
        if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
            return perr(p, p->line, "control character 0x%02x at column %zu; expected printable text", ch, i + 1);
    }
    return QID_OK;
}

int qid_job_parse(const char *text, size_t len, const char *file, qid_job *job, qid_error *err)
{
    memset(job, 0, sizeof *job);
    if (!file) file = "<job>";
    parser p = {.job = job, .err = err, .file = file, .sec = -1};
    gptq_defaults(&p.gdef);
    job->file = qid_strdup(file);
    job->dir = job_path_dir(file);
    job->calib.samples = 128;
    job->calib.chunk_bytes = QID_QUANTIZE_DEFAULT_CHUNK_BYTES;
    job->probes.directions = 4;
    job->eval.min_windows = QID_JOB_AUTO_MIN_WINDOWS;
    job->eval.block_windows = QID_JOB_AUTO_BLOCK;
    job->eval.target_se = QID_JOB_AUTO_TARGET_SE;
    job->eval.target_rse = QID_JOB_AUTO_TARGET_RSE;
    int rc = QID_OK;
    char *line = qid_malloc(QID_JOB_MAX_LINE + 1, "a job line");

    if (len > QID_JOB_MAX_BYTES) {
        rc = perr(&p, 1, "job file is %zu bytes; expected at most %zu", len, QID_JOB_MAX_BYTES);
        goto done;
    }
    size_t pos = 0;
    if (len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0) pos = 3; /* UTF-8 byte order mark */
    while (pos < len) {
        p.line++;
        const char *nl = memchr(text + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - text) : len, n = end - pos;
        if (n > 0 && text[pos + n - 1] == '\r') n--;
        if (n > QID_JOB_MAX_LINE) {
            rc = perr(&p, p.line, "line is %zu bytes long; expected at most %d", n, QID_JOB_MAX_LINE);
            goto done;
        }
        if ((rc = check_bytes(&p, text + pos, n))) goto done;
        memcpy(line, text + pos, n);
        line[n] = '\0';
        if ((rc = parse_line(&p, line))) goto done;
        pos = nl ? end + 1 : len;
    }
    p.n_lines = p.line;
    rc = finish(&p);
    if (rc == QID_OK) {
        job->text = qid_malloc(len + 1, "the job text");
        memcpy(job->text, text, len);
        job->text[len] = '\0';
        job->text_len = len;
    }
done:
    free(line);
    free(p.formats);
    free(p.tasks);
    if (rc != QID_OK) qid_job_free(job);
    return rc;
}

int qid_job_load(const char *path, qid_job *job, qid_error *err)
{
    memset(job, 0, sizeof *job);
    char *text;
    size_t len;
    int rc = qid_read_text_file(path, QID_JOB_MAX_BYTES, &text, &len, err);
    if (rc) return rc;
    rc = qid_job_parse(text, len, path, job, err);
    free(text);
    return rc;
}

void qid_job_free(qid_job *job)
{
    if (!job) return;
    free(job->file);
    free(job->dir);
    free(job->text);
    free(job->name);
    job_path_free(&job->results);
    for (size_t i = 0; i < job->n_srcs; i++)
        free(job->srcs[i].value);
    free(job->srcs);
    job_path_free(&job->eval.tokens);
    job_path_free(&job->calib.tokens);
    job_path_free(&job->calib.scratch_dir);
    free(job->quant);
    free(job->probes.radii);
    memset(job, 0, sizeof *job);
}
