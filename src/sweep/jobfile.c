/* jobfile.c - job files for `qid run` (format: jobs/README.md): a strict
 * line parser over untrusted text, and expansion of a parsed job into the
 * task grid (checkpoints from file/glob/list entries, sorted and
 * deduplicated, times the quantizer settings, plus a baseline and optional
 * probe task per checkpoint), each task with a stable key and a cost
 * estimate, and the `qid run --dry-run` table.
 *
 * Parsing never touches the file system and never prints; expansion reads
 * list files, runs glob(3), stats and opens checkpoints and token sets to
 * estimate costs, and reports non-fatal problems through qid_warn.
 *
 * Does not: schedule, run or record tasks (the scheduler and the results
 * store do), or validate token sets against the job beyond cost estimates. */
#include "jobfile.h"

#include <errno.h>
#include <glob.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "checkpoint.h"
#include "fsutil.h"
#include "tokens.h"

/* Largest window count a job may ask for (2^40). */
#define MAX_WINDOWS ((int64_t)1 << 40)
/* Most tasks a job may expand to. */
#define MAX_TASKS ((size_t)1000000)
/* Longest job name. */
#define MAX_NAME 64
/* Longest format name handed to qid_quant_parse. */
#define MAX_FORMAT 63
/* Window length assumed for cost estimates when a token set cannot be read. */
#define COST_SEQ_LEN QID_TOKENS_DEFAULT_SEQ_LEN

/* ---- small helpers ------------------------------------------------------ */

static int is_blank(int c) { return c == ' ' || c == '\t'; }
static int is_digit(int c) { return c >= '0' && c <= '9'; }

const char *qid_job_method_name(qid_job_method m)
{
    switch (m) {
    case QID_JOB_METHOD_BASELINE: return "baseline";
    case QID_JOB_METHOD_RTN: return "rtn";
    case QID_JOB_METHOD_GPTQ: return "gptq";
    case QID_JOB_METHOD_PROBES: return "probes";
    }
    return "?";
}

const char *qid_job_scoring_name(qid_job_scoring s) { return s == QID_JOB_SCORING_SECOND_HALF ? "second-half" : "all"; }

/* A growing NUL-terminated string. */
typedef struct sbuf {
    char *s;
    size_t len, cap;
} sbuf;

static void sb_putn(sbuf *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->len + n + 1)
            cap *= 2;
        b->s = qid_realloc(b->s, cap, "a job string");
        b->cap = cap;
    }
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = '\0';
}

static void sb_puts(sbuf *b, const char *s) { sb_putn(b, s, strlen(s)); }

__attribute__((format(printf, 2, 3))) static void sb_printf(sbuf *b, const char *fmt, ...)
{
    char small[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    QID_CHECK(n >= 0, "vsnprintf failed");
    if ((size_t)n < sizeof small) {
        sb_putn(b, small, (size_t)n);
        return;
    }
    char *big = qid_malloc((size_t)n + 1, "a job string");
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    sb_putn(b, big, (size_t)n);
    free(big);
}

/* Path text inside a key: '\', '|', ',' and '=' escaped with '\'. */
static void sb_put_key_path(sbuf *b, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\' || *s == '|' || *s == ',' || *s == '=') sb_putn(b, "\\", 1);
        sb_putn(b, s, 1);
    }
}

/* Hands over the string (an empty one when nothing was written). */
static char *sb_take(sbuf *b)
{
    char *s = b->s ? b->s : qid_strdup("");
    *b = (sbuf){0};
    return s;
}

/* The shortest text that reads back as v ("0.1", not "0.10000000000000001";
 * "100", not "1e+02"). */
static void fmt_double(double v, char *buf, size_t len)
{
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, len, "%.*g", prec, v);
        if (strtod(buf, NULL) != v) continue;
        int e = v != 0 ? (int)floor(log10(fabs(v))) : 0;
        if (e >= prec && e < 17) snprintf(buf, len, "%.*g", e + 1, v);
        return;
    }
}

/* User text quoted in a message, cut at a character boundary after 60 bytes. */
#define CLIP_BYTES 60
typedef struct clipbuf {
    char s[CLIP_BYTES + 4];
} clipbuf;

static const char *clip(const char *s, clipbuf *c)
{
    size_t n = strlen(s);
    if (n <= CLIP_BYTES) return s;
    size_t k = CLIP_BYTES;
    while (k > 0 && ((unsigned char)s[k] & 0xC0) == 0x80)
        k--;
    memcpy(c->s, s, k);
    memcpy(c->s + k, "...", 4);
    return c->s;
}

/* Trims blanks at both ends of s in place; returns the new start. */
static char *trim(char *s)
{
    while (is_blank(*s))
        s++;
    size_t n = strlen(s);
    while (n > 0 && is_blank(s[n - 1]))
        s[--n] = '\0';
    return s;
}

/* ---- paths ---------------------------------------------------------------- */

static int path_is_abs(const char *p) { return p[0] == '/'; }

/* The directory part of a file name: "." when there is none. */
static char *path_dir(const char *file)
{
    const char *slash = strrchr(file, '/');
    if (!slash) return qid_strdup(".");
    if (slash == file) return qid_strdup("/");
    size_t n = (size_t)(slash - file);
    char *d = qid_malloc(n + 1, "a path");
    memcpy(d, file, n);
    d[n] = '\0';
    return d;
}

/* Lexical normalization: no empty or "." components, "x/.." removed, ".."
 * above the root dropped, leading ".." of a relative path kept; "" -> ".". */
static char *path_normalize(const char *p)
{
    size_t n = strlen(p);
    int abs = path_is_abs(p);
    const char **seg = qid_malloc((n / 2 + 2) * sizeof *seg, "path components");
    size_t *seg_len = qid_malloc((n / 2 + 2) * sizeof *seg_len, "path components");
    size_t k = 0, i = 0;
    while (i < n) {
        while (i < n && p[i] == '/')
            i++;
        size_t start = i;
        while (i < n && p[i] != '/')
            i++;
        size_t len = i - start;
        if (len == 0 || (len == 1 && p[start] == '.')) continue;
        if (len == 2 && p[start] == '.' && p[start + 1] == '.') {
            if (k > 0 && !(seg_len[k - 1] == 2 && memcmp(seg[k - 1], "..", 2) == 0)) {
                k--;
                continue;
            }
            if (abs) continue;
        }
        seg[k] = p + start;
        seg_len[k] = len;
        k++;
    }
    sbuf b = {0};
    if (abs) sb_putn(&b, "/", 1);
    for (size_t j = 0; j < k; j++) {
        if (j) sb_putn(&b, "/", 1);
        sb_putn(&b, seg[j], seg_len[j]);
    }
    free(seg);
    free(seg_len);
    if (b.len == 0) sb_puts(&b, ".");
    return sb_take(&b);
}

/* a + "/" + b, normalized. */
static char *path_join_norm(const char *a, const char *b)
{
    char *j = qid_path_join(a, b);
    char *n = path_normalize(j);
    free(j);
    return n;
}

/* The key form of `written`, found in a file whose own key-form directory is
 * base ("." for the job file itself). */
static char *path_rel(const char *base, const char *written)
{
    if (path_is_abs(written) || strcmp(base, ".") == 0) return path_normalize(written);
    return path_join_norm(base, written);
}

/* The openable form of a key-form path, for a job in directory dir. */
static char *path_open(const char *dir, const char *rel)
{
    if (path_is_abs(rel) || strcmp(dir, ".") == 0) return qid_strdup(rel);
    return path_join_norm(dir, rel);
}

static void job_path_set(qid_job_path *jp, const char *dir, const char *base, const char *written)
{
    jp->rel = path_rel(base, written);
    jp->path = path_open(dir, jp->rel);
}

static void job_path_free(qid_job_path *jp)
{
    free(jp->rel);
    free(jp->path);
    jp->rel = jp->path = NULL;
}

/* ---- the key table -------------------------------------------------------- */

enum section { SEC_JOB, SEC_CKPT, SEC_EVAL, SEC_CALIB, SEC_QUANT, SEC_PROBES, SEC_COUNT };
static const char *const section_names[SEC_COUNT] = {"job", "checkpoints", "eval", "calibration", "quantize", "probes"};

enum key {
    K_NAME,
    K_RESULTS,
    K_SEED,
    K_FILE,
    K_GLOB,
    K_LIST,
    K_EV_TOKENS,
    K_EV_WINDOWS,
    K_EV_SEQ_LEN,
    K_EV_SCORING,
    K_EV_KL,
    K_CA_TOKENS,
    K_CA_SAMPLES,
    K_CA_SEQ_LEN,
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
    [K_FILE] = {SEC_CKPT, "file", 1, "a checkpoint path"},
    [K_GLOB] = {SEC_CKPT, "glob", 1, "a glob(3) pattern, e.g. ckpt/*.h5"},
    [K_LIST] = {SEC_CKPT, "list", 1, "a file listing one checkpoint path per line"},
    [K_EV_TOKENS] = {SEC_EVAL, "tokens", 0, "the path of a token set (qid tokens)"},
    [K_EV_WINDOWS] = {SEC_EVAL, "windows", 0, "all or a whole number 1..1099511627776"},
    [K_EV_SEQ_LEN] = {SEC_EVAL, "seq_len", 0, "auto or a whole number 2..16777216"},
    [K_EV_SCORING] = {SEC_EVAL, "scoring", 0, "all or second-half"},
    [K_EV_KL] = {SEC_EVAL, "kl", 0, "yes or no"},
    [K_CA_TOKENS] = {SEC_CALIB, "tokens", 0, "the path of a token set (qid tokens)"},
    [K_CA_SAMPLES] = {SEC_CALIB, "samples", 0, "a whole number 1..1000000"},
    [K_CA_SEQ_LEN] = {SEC_CALIB, "seq_len", 0, "auto or a whole number 2..16777216"},
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
    qid_job_gptq gptq;
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
    qid_job_gptq gdef; /* section-level GPTQ options */
    unsigned gdef_given;
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

/* A whole number in [min, max] (min >= 0). */
static int val_int(parser *p, const char *key, const char *v, int64_t min, int64_t max, const char *expect,
                   int64_t *out)
{
    clipbuf c1, c2;
    const char *s = v;
    int neg = 0;
    if (*s == '-' && is_digit(s[1])) {
        neg = 1;
        s++;
    }
    if (!is_digit(*s)) return perr(p, p->line, "invalid value '%s' for '%s'; expected %s", clip(v, &c1), key, expect);
    uint64_t x = 0;
    int over = 0;
    for (; is_digit(*s); s++) {
        unsigned d = (unsigned)(*s - '0');
        if (x > (UINT64_MAX - d) / 10)
            over = 1;
        else
            x = x * 10 + d;
    }
    if (*s)
        return perr(p, p->line, "invalid number '%s' for '%s' (trailing '%s'); expected %s", clip(v, &c1), key,
                    clip(s, &c2), expect);
    if (neg || over || x < (uint64_t)min || x > (uint64_t)max)
        return perr(p, p->line, "'%s' is out of range for '%s'; expected %s", clip(v, &c1), key, expect);
    *out = (int64_t)x;
    return QID_OK;
}

/* A decimal number in [min, max], or (min, max] when min_open. Hex, inf and
 * nan are refused. */
static int val_double(parser *p, const char *key, const char *v, double min, int min_open, double max,
                      const char *expect, double *out)
{
    clipbuf c1, c2;
    size_t ok_chars = strspn(v, "0123456789.eE+-");
    char *end;
    double x = strtod(v, &end);
    if (end > v + ok_chars) end = (char *)v + ok_chars;
    if (end == v) return perr(p, p->line, "invalid value '%s' for '%s'; expected %s", clip(v, &c1), key, expect);
    if (*end)
        return perr(p, p->line, "invalid number '%s' for '%s' (trailing '%s'); expected %s", clip(v, &c1), key,
                    clip(end, &c2), expect);
    if (!isfinite(x) || x < min || (min_open && x <= min) || x > max)
        return perr(p, p->line, "'%s' is out of range for '%s'; expected %s", clip(v, &c1), key, expect);
    *out = x;
    return QID_OK;
}

static int val_bool(parser *p, const char *key, const char *v, int *out)
{
    clipbuf c;
    if (strcmp(v, "yes") == 0)
        *out = 1;
    else if (strcmp(v, "no") == 0)
        *out = 0;
    else
        return perr(p, p->line, "invalid value '%s' for '%s'; expected yes or no", clip(v, &c), key);
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

/* Splits v (modified) at commas into trimmed items; *items is malloc'd. */
static int split_list(parser *p, enum key k, char *v, char ***items, size_t *n)
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
        char *item = trim(s);
        if (!*item) {
            free(it);
            return perr(p, p->line, "empty item in the list for '%s'; expected %s", keydefs[k].name, keydefs[k].expect);
        }
        it[m++] = item;
        if (!comma) break;
        s = comma + 1;
    }
    *items = it;
    *n = m;
    return QID_OK;
}

static int parse_method(parser *p, const char *v, const char *where, qid_job_method *m)
{
    clipbuf c;
    if (strcmp(v, "rtn") == 0)
        *m = QID_JOB_METHOD_RTN;
    else if (strcmp(v, "gptq") == 0)
        *m = QID_JOB_METHOD_GPTQ;
    else if (strcmp(v, "baseline") == 0 || strcmp(v, "probes") == 0)
        return perr(p, p->line,
                    "method '%s' cannot be asked for%s; expected rtn or gptq (the baseline always runs, "
                    "probes come from [probes])",
                    v, where);
    else
        return perr(p, p->line, "unknown method '%s'%s; expected rtn or gptq", clip(v, &c), where);
    return QID_OK;
}

static int parse_format(parser *p, const char *v, qid_quant_spec *spec, char name[64])
{
    clipbuf c;
    if (strlen(v) > MAX_FORMAT)
        return perr(p, p->line,
                    "unknown format '%s' (too long); expected a format such as int4-g128-sym, mxfp4 "
                    "or nf4",
                    clip(v, &c));
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
static int gptq_opt(parser *p, enum key k, const char *v, qid_job_gptq *g)
{
    const char *name = keydefs[k].name, *expect = keydefs[k].expect;
    int64_t x;
    int rc;
    switch (k) {
    case K_DAMP: return val_double(p, name, v, 0.0, 0, 1.0, expect, &g->damp);
    case K_BLOCK_SIZE:
        if ((rc = val_int(p, name, v, 1, 65536, expect, &x))) return rc;
        g->block_size = (size_t)x;
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

static const qid_job_gptq gptq_defaults = {
    .damp = 0.01, .block_size = 128, .act_order = 0, .static_groups = 0, .micro_block = 0};

/* ---- key handlers ----------------------------------------------------------- */

static int set_name(parser *p, const char *v)
{
    clipbuf c;
    size_t n = strlen(v);
    int good = n <= MAX_NAME;
    for (size_t i = 0; good && i < n; i++) {
        char ch = v[i];
        good =
            (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || is_digit(ch) || ch == '.' || ch == '_' || ch == '-';
    }
    if (!good) return perr(p, p->line, "invalid name '%s'; expected %s", clip(v, &c), keydefs[K_NAME].expect);
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
    int rc = split_list(p, K_METHODS, v, &items, &n);
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
    int rc = split_list(p, K_FORMATS, v, &items, &n);
    if (rc) return rc;
    if (n > QID_JOB_MAX_QUANT) {
        free(items);
        return perr(p, p->line, "%zu formats; expected at most %d", n, QID_JOB_MAX_QUANT);
    }
    p->formats = qid_calloc(n, sizeof *p->formats, "formats");
    for (size_t i = 0; i < n && !rc; i++) {
        pending *f = &p->formats[i];
        if ((rc = parse_format(p, items[i], &f->spec, f->format))) break;
        for (size_t j = 0; j < i; j++)
            if (strcmp(p->formats[j].format, f->format) == 0) {
                clipbuf c;
                rc =
                    perr(p, p->line, "duplicate format '%s' in 'formats' (the same as '%s'); expected each format once",
                         clip(items[i], &c), p->formats[j].format);
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
    clipbuf c;
    char *tok[QID_JOB_MAX_LINE / 2 + 2];
    size_t nt = 0;
    for (char *s = v; *s;) {
        while (is_blank(*s))
            s++;
        if (!*s) break;
        tok[nt++] = s;
        while (*s && !is_blank(*s))
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
                        clip(tok[i], &c));
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
    int rc = split_list(p, K_RADII, v, &items, &n);
    if (rc) return rc;
    if (n > QID_JOB_MAX_RADII) {
        free(items);
        return perr(p, p->line, "%zu radii; expected at most %d", n, QID_JOB_MAX_RADII);
    }
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
            fmt_double(r[i], b, sizeof b);
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
    case K_FILE: add_src(p, QID_JOB_SRC_FILE, v); return QID_OK;
    case K_GLOB: add_src(p, QID_JOB_SRC_GLOB, v); return QID_OK;
    case K_LIST: add_src(p, QID_JOB_SRC_LIST, v); return QID_OK;
    case K_EV_TOKENS: job_path_set(&job->eval.tokens, job->dir, ".", v); return QID_OK;
    case K_EV_WINDOWS: return val_int_or(p, k, v, "all", 1, MAX_WINDOWS, &job->eval.windows);
    case K_EV_SEQ_LEN: return val_int_or(p, k, v, "auto", 2, QID_TOKENS_MAX_SEQ_LEN, &job->eval.seq_len);
    case K_EV_SCORING:
        if (strcmp(v, "all") == 0)
            job->eval.scoring = QID_JOB_SCORING_ALL;
        else if (strcmp(v, "second-half") == 0)
            job->eval.scoring = QID_JOB_SCORING_SECOND_HALF;
        else {
            clipbuf c;
            return perr(p, p->line, "invalid value '%s' for 'scoring'; expected %s", clip(v, &c), expect);
        }
        return QID_OK;
    case K_EV_KL: return val_bool(p, name, v, &job->eval.kl);
    case K_CA_TOKENS: job_path_set(&job->calib.tokens, job->dir, ".", v); return QID_OK;
    case K_CA_SAMPLES: return val_int(p, name, v, 1, 1000000, expect, &job->calib.samples);
    case K_CA_SEQ_LEN: return val_int_or(p, k, v, "auto", 2, QID_TOKENS_MAX_SEQ_LEN, &job->calib.seq_len);
    case K_METHODS: return set_methods(p, v);
    case K_FORMATS: return set_formats(p, v);
    case K_TASK: return add_task(p, v);
    case K_DAMP:
    case K_BLOCK_SIZE:
    case K_ACT_ORDER:
    case K_STATIC_GROUPS:
    case K_MICRO_BLOCK: p->gdef_given |= 1u << (k - K_DAMP); return gptq_opt(p, k, v, &p->gdef);
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
    clipbuf c1;
    /* a comment starts at '#' at the start or after a blank */
    for (char *s = line; *s; s++)
        if (*s == '#' && (s == line || is_blank(s[-1]))) {
            *s = '\0';
            break;
        }
    char *s = trim(line);
    if (!*s) return QID_OK;

    if (*s == '[') {
        size_t n = strlen(s);
        if (s[n - 1] != ']')
            return perr(p, p->line, "section header '%s' has no closing ']'; expected [name] alone on the line",
                        clip(s, &c1));
        s[n - 1] = '\0';
        char *name = trim(s + 1);
        int sec = -1;
        for (int i = 0; i < SEC_COUNT; i++)
            if (strcmp(name, section_names[i]) == 0) sec = i;
        if (sec < 0)
            return perr(p, p->line,
                        "unknown section [%s]; expected one of job, checkpoints, eval, calibration, quantize, probes",
                        clip(name, &c1));
        if (p->sec_line[sec])
            return perr(p, p->line, "duplicate section [%s] (first on line %d); expected each section once",
                        section_names[sec], p->sec_line[sec]);
        p->sec = sec;
        p->sec_line[sec] = p->line;
        return QID_OK;
    }

    char *eq = strchr(s, '=');
    if (!eq) return perr(p, p->line, "'%s' is not a setting; expected key = value or a [section] header", clip(s, &c1));
    *eq = '\0';
    char *key = trim(s), *value = trim(eq + 1);
    if (!*key) return perr(p, p->line, "missing key before '='; expected key = value");
    if (p->sec < 0)
        return perr(p, p->line, "key '%s' before any section; expected a [section] header first", clip(key, &c1));
    int k = -1;
    for (int i = 0; i < K_COUNT; i++)
        if (keydefs[i].sec == (enum section)p->sec && strcmp(keydefs[i].name, key) == 0) k = i;
    if (k < 0) {
        char keys[256];
        section_keys((enum section)p->sec, keys, sizeof keys);
        return perr(p, p->line, "unknown key '%s' in [%s]; expected one of %s", clip(key, &c1), section_names[p->sec],
                    keys);
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
    fmt_double(q->gptq.damp, damp, sizeof damp);
    snprintf(q->options, sizeof q->options, "damp=%s,block_size=%zu,act_order=%s,static_groups=%s,micro_block=%zu",
             damp, q->gptq.block_size, q->gptq.act_order ? "yes" : "no", q->gptq.static_groups ? "yes" : "no",
             q->gptq.micro_block);
}

/* Checks micro_block against the format's block and block_size; adds q. */
static int add_quant(parser *p, qid_job_quant *q, int line, int micro_line)
{
    qid_job *job = p->job;
    if (q->gptq.micro_block == 1) q->gptq.micro_block = 0; /* micro-blocks of one column are plain GPTQ */
    size_t m = q->gptq.micro_block, b = q->spec.block;
    if (q->method == QID_JOB_METHOD_GPTQ && q->gptq.act_order && !q->gptq.static_groups &&
        qid_quant_traits_of(q->spec.type)->kind != QID_QUANT_KIND_INT)
        return perr(p, line,
                    "act_order with %s needs static groups; expected static_groups = yes (or act_order = no) "
                    "for MX, NF4 and FP4 formats",
                    q->format);
    if (q->method == QID_JOB_METHOD_GPTQ && m > 0) {
        if (b && m % b)
            return perr(p, micro_line,
                        "micro_block %zu is not a multiple of the block size %zu of %s; expected a multiple of %zu, "
                        "or 0 for plain GPTQ",
                        m, b, q->format, b);
        if (q->gptq.block_size % m)
            return perr(p, micro_line, "micro_block %zu does not divide block_size %zu; expected a divisor of %zu", m,
                        q->gptq.block_size, q->gptq.block_size);
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
                    "of them) in [quantize]");

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
            if (t->given & (1u << (K_DAMP - K_DAMP))) q.gptq.damp = t->gptq.damp;
            if (t->given & (1u << (K_BLOCK_SIZE - K_DAMP))) q.gptq.block_size = t->gptq.block_size;
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
        if (job->quant[i].method == QID_JOB_METHOD_GPTQ && !job->calib.tokens.rel)
            return perr(p, job->quant[i].line,
                        "gptq needs calibration data; expected a [calibration] section with "
                        "tokens = PATH");
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
    parser p = {.job = job, .err = err, .file = file, .sec = -1, .gdef = gptq_defaults};
    job->file = qid_strdup(file);
    job->dir = path_dir(file);
    job->calib.samples = 128;
    job->probes.directions = 4;
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
    free(job->quant);
    free(job->probes.radii);
    memset(job, 0, sizeof *job);
}

/* ---- expansion ------------------------------------------------------------------- */

/* One checkpoint found by expansion. */
typedef struct ckent {
    char *rel, *path;
    size_t origin; /* 0: the job file; i > 0: list file i - 1 */
    int line;      /* line in the origin */
    int drop;      /* 1: a duplicate, not expanded */
    qid_ckpt_meta meta;
    int64_t d_model;
    int have_meta;
} ckent;

typedef struct expander {
    const qid_job *job;
    qid_error *err;
    ckent *v;
    size_t n, cap;
    char **origins; /* list file paths */
    size_t n_origins;
} expander;

static const char *origin_name(const expander *x, size_t origin)
{
    return origin ? x->origins[origin - 1] : x->job->file;
}

static int ck_add(expander *x, char *rel, char *path, size_t origin, int line)
{
    if (x->n >= 4 * (size_t)QID_JOB_MAX_CKPTS) {
        free(rel);
        free(path);
        return qid_error_set(x->err, QID_E_INVALID,
                             "%s:%d: more than %d checkpoint entries; expected at most %d "
                             "checkpoints (split the job)",
                             origin_name(x, origin), line, 4 * QID_JOB_MAX_CKPTS, QID_JOB_MAX_CKPTS);
    }
    if (x->n == x->cap) {
        x->cap = x->cap ? 2 * x->cap : 64;
        x->v = qid_realloc(x->v, x->cap * sizeof *x->v, "checkpoint table");
    }
    x->v[x->n++] = (ckent){.rel = rel, .path = path, .origin = origin, .line = line, .d_model = -1};
    return QID_OK;
}

/* glob(3) metacharacters of a literal directory escaped with '\'. */
static char *glob_escape(const char *s)
{
    sbuf b = {0};
    for (; *s; s++) {
        if (*s == '*' || *s == '?' || *s == '[' || *s == ']' || *s == '\\') sb_putn(&b, "\\", 1);
        sb_putn(&b, s, 1);
    }
    return sb_take(&b);
}

static int expand_glob(expander *x, const qid_job_src *src)
{
    const qid_job *job = x->job;
    clipbuf c;
    int rooted = path_is_abs(src->value) || strcmp(job->dir, ".") == 0;
    char *pattern;
    if (rooted)
        pattern = qid_strdup(src->value);
    else {
        char *esc = glob_escape(job->dir);
        pattern = qid_path_join(esc, src->value);
        free(esc);
    }
    glob_t g;
    memset(&g, 0, sizeof g);
    int grc = glob(pattern, 0, NULL, &g);
    free(pattern);
    if (grc == GLOB_NOMATCH) {
        qid_warn("%s:%d: glob '%s' matches no file", job->file, src->line, clip(src->value, &c));
        globfree(&g);
        return QID_OK;
    }
    if (grc == GLOB_NOSPACE) qid_die("glob '%s': out of memory", clip(src->value, &c));
    if (grc != 0) {
        globfree(&g);
        return qid_error_set(x->err, QID_E_IO,
                             "%s:%d: glob '%s' failed reading a directory; expected readable "
                             "directories",
                             job->file, src->line, clip(src->value, &c));
    }
    size_t dlen = strlen(job->dir);
    int rc = QID_OK;
    for (size_t i = 0; i < g.gl_pathc && !rc; i++) {
        const char *m = g.gl_pathv[i];
        struct stat st;
        if (stat(m, &st) == 0 && S_ISDIR(st.st_mode)) continue;
        /* glob(3) returns the escaped literal directory unescaped, so a match
         * is the job directory, '/', and the part the pattern matched */
        char *rel, *path;
        if (rooted) {
            rel = path_normalize(m);
            path = path_open(job->dir, rel);
        } else if (strncmp(m, job->dir, dlen) == 0 && (m[dlen] == '/' || job->dir[dlen - 1] == '/')) {
            rel = path_normalize(m + dlen + (m[dlen] == '/'));
            path = path_open(job->dir, rel);
        } else { /* not the case with glibc: open what glob found, key it as found */
            rel = path_normalize(m);
            path = qid_strdup(m);
        }
        rc = ck_add(x, rel, path, 0, src->line);
    }
    globfree(&g);
    return rc;
}

static int expand_list(expander *x, const qid_job_src *src)
{
    const qid_job *job = x->job;
    char *rel = path_rel(".", src->value);
    char *path = path_open(job->dir, rel);
    char *text;
    size_t len;
    qid_error rerr;
    qid_error_clear(&rerr);
    if (qid_read_text_file(path, QID_JOB_MAX_LIST_BYTES, &text, &len, &rerr) != QID_OK) {
        free(rel);
        free(path);
        return qid_error_set(x->err, rerr.code,
                             "%s:%d: cannot read list file: %s; expected a file with one "
                             "checkpoint path per line",
                             job->file, src->line, rerr.msg);
    }
    x->origins = qid_realloc(x->origins, (x->n_origins + 1) * sizeof *x->origins, "list file names");
    x->origins[x->n_origins++] = path;
    size_t origin = x->n_origins;
    char *base = path_dir(rel);
    free(rel);
    char *line = qid_malloc(QID_JOB_MAX_LINE + 1, "a list line");
    int rc = QID_OK, lineno = 0;
    for (size_t pos = 0; pos < len && !rc;) {
        lineno++;
        const char *nl = memchr(text + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - text) : len, n = end - pos;
        if (n > 0 && text[pos + n - 1] == '\r') n--;
        if (n > QID_JOB_MAX_LINE) {
            rc = qid_error_set(x->err, QID_E_INVALID, "%s:%d: line is %zu bytes long; expected at most %d", path,
                               lineno, n, QID_JOB_MAX_LINE);
            break;
        }
        for (size_t i = 0; i < n && !rc; i++) {
            unsigned char ch = (unsigned char)text[pos + i];
            if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
                rc = qid_error_set(x->err, QID_E_INVALID,
                                   "%s:%d: control character 0x%02x at column %zu; expected one path per line", path,
                                   lineno, ch, i + 1);
        }
        if (rc) break;
        memcpy(line, text + pos, n);
        line[n] = '\0';
        char *entry = trim(line);
        if (*entry && *entry != '#') {
            char *r = path_rel(base, entry);
            rc = ck_add(x, r, path_open(job->dir, r), origin, lineno);
        }
        pos = nl ? end + 1 : len;
    }
    free(line);
    free(base);
    free(text);
    return rc;
}

/* Compares strings with digit runs as numbers ("step2" < "step10"); equal
 * runs with different leading zeros fall back to strcmp. */
static int natural_cmp(const char *a, const char *b)
{
    const char *s = a, *t = b;
    while (*s && *t) {
        if (is_digit(*s) && is_digit(*t)) {
            while (*s == '0' && is_digit(s[1]))
                s++;
            while (*t == '0' && is_digit(t[1]))
                t++;
            size_t ls = 0, lt = 0;
            while (is_digit(s[ls]))
                ls++;
            while (is_digit(t[lt]))
                lt++;
            if (ls != lt) return ls < lt ? -1 : 1;
            int c = memcmp(s, t, ls);
            if (c) return c;
            s += ls;
            t += lt;
        } else {
            if (*s != *t) return (unsigned char)*s < (unsigned char)*t ? -1 : 1;
            s++;
            t++;
        }
    }
    if (*s || *t) return *s ? 1 : -1;
    return strcmp(a, b);
}

static int cmp_ck(const void *pa, const void *pb)
{
    const ckent *a = pa, *b = pb;
    int c = natural_cmp(a->rel, b->rel);
    if (c) return c;
    if (a->origin != b->origin) return a->origin < b->origin ? -1 : 1;
    return (a->line > b->line) - (a->line < b->line);
}

typedef struct inode_ref {
    dev_t dev;
    ino_t ino;
    size_t idx;
} inode_ref;

static int cmp_inode(const void *pa, const void *pb)
{
    const inode_ref *a = pa, *b = pb;
    if (a->dev != b->dev) return a->dev < b->dev ? -1 : 1;
    if (a->ino != b->ino) return a->ino < b->ino ? -1 : 1;
    return (a->idx > b->idx) - (a->idx < b->idx);
}

static int is_symlink(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0 && S_ISLNK(st.st_mode);
}

/* Marks checkpoints that name the same file (device and inode) as another
 * one as dropped, with a warning. Of each such group the first (in sorted
 * order) that is not a symbolic link is kept, else the first. Sets
 * exists[i] for every entry that names an existing file. */
static void dedup_inodes(expander *x, unsigned char *exists)
{
    inode_ref *refs = qid_malloc((x->n ? x->n : 1) * sizeof *refs, "inode table");
    size_t m = 0;
    for (size_t i = 0; i < x->n; i++) {
        struct stat st;
        exists[i] = 0;
        if (x->v[i].drop || stat(x->v[i].path, &st) != 0) continue;
        exists[i] = 1;
        refs[m++] = (inode_ref){st.st_dev, st.st_ino, i};
    }
    qsort(refs, m, sizeof *refs, cmp_inode);
    for (size_t first = 0, end; first < m; first = end) {
        end = first + 1;
        while (end < m && refs[end].dev == refs[first].dev && refs[end].ino == refs[first].ino)
            end++;
        if (end - first == 1) continue;
        size_t keep = first;
        for (size_t i = first; i < end; i++)
            if (!is_symlink(x->v[refs[i].idx].path)) {
                keep = i;
                break;
            }
        for (size_t i = first; i < end; i++) {
            if (i == keep) continue;
            ckent *d = &x->v[refs[i].idx];
            clipbuf c1, c2;
            qid_warn("%s:%d: checkpoint '%s' is the same file as '%s'; it is run once", origin_name(x, d->origin),
                     d->line, clip(d->rel, &c1), clip(x->v[refs[keep].idx].rel, &c2));
            d->drop = 1;
        }
    }
    free(refs);
}

static void read_ckpt_meta(expander *x, ckent *e, int exists)
{
    clipbuf c;
    if (!exists) {
        qid_warn("%s:%d: checkpoint '%s' does not exist; its tasks will fail at run time", origin_name(x, e->origin),
                 e->line, clip(e->path, &c));
        return;
    }
    qid_ckpt ck;
    qid_error cerr;
    qid_error_clear(&cerr);
    if (qid_ckpt_open(e->path, &ck, &cerr) != QID_OK) {
        qid_warn("%s:%d: %s; its tasks will fail at run time", origin_name(x, e->origin), e->line, cerr.msg);
        return;
    }
    e->meta = ck.meta;
    e->d_model = ck.cfg.d_model;
    e->have_meta = 1;
    qid_ckpt_close(&ck);
}

/* Windows and window length of a token set, for costs; 0 when unknown. */
static void token_set_shape(const char *what, const qid_job_path *tp, int no_fs, int64_t *windows, int64_t *seq_len)
{
    *windows = *seq_len = 0;
    if (no_fs || !tp->path) return;
    qid_tokens t;
    qid_error terr;
    qid_error_clear(&terr);
    if (qid_tokens_open(tp->path, &t, &terr) != QID_OK) {
        qid_warn("cannot read the %s token set for cost estimates (assuming %d-token windows): %s", what, COST_SEQ_LEN,
                 terr.msg);
        return;
    }
    *windows = t.meta.n_windows;
    *seq_len = t.meta.seq_len;
    qid_tokens_close(&t);
}

static void put_count(sbuf *b, const char *name, int64_t v, const char *zero)
{
    if (v)
        sb_printf(b, ",%s=%" PRId64, name, v);
    else
        sb_printf(b, ",%s=%s", name, zero);
}

static char *eval_segment(const qid_job *job, int64_t windows, const char *kl)
{
    sbuf b = {0};
    sb_puts(&b, "eval=");
    sb_put_key_path(&b, job->eval.tokens.rel);
    put_count(&b, "windows", windows, "all");
    put_count(&b, "seq_len", job->eval.seq_len, "auto");
    sb_printf(&b, ",scoring=%s", qid_job_scoring_name(job->eval.scoring));
    if (kl) sb_printf(&b, ",kl=%s", kl);
    return sb_take(&b);
}

void qid_job_tasks_free(qid_task *tasks, size_t n)
{
    if (!tasks) return;
    for (size_t i = 0; i < n; i++) {
        job_path_free(&tasks[i].ckpt_path);
        free(tasks[i].key);
    }
    free(tasks);
}

int qid_job_tasks(const qid_job *job, qid_task **tasks, size_t *n, qid_error *err)
{
    return qid_job_tasks_flags(job, 0, tasks, n, err);
}

int qid_job_tasks_flags(const qid_job *job, unsigned flags, qid_task **tasks, size_t *n, qid_error *err)
{
    *tasks = NULL;
    *n = 0;
    int no_fs = (flags & QID_JOB_EXPAND_NO_FS) != 0;
    expander x = {.job = job, .err = err};
    int rc = QID_OK;
    qid_task *t = NULL;
    size_t nt = 0;
    unsigned char *exists = NULL;
    char *seg_base = NULL, *seg_quant = NULL, *seg_probe = NULL, *seg_calib = NULL, *probe_opts = NULL;

    for (size_t i = 0; i < job->n_srcs && !rc; i++) {
        const qid_job_src *s = &job->srcs[i];
        if (s->kind == QID_JOB_SRC_FILE) {
            char *rel = path_rel(".", s->value);
            rc = ck_add(&x, rel, path_open(job->dir, rel), 0, s->line);
        } else if (no_fs)
            continue;
        else if (s->kind == QID_JOB_SRC_GLOB)
            rc = expand_glob(&x, s);
        else
            rc = expand_list(&x, s);
    }
    if (rc) goto fail;

    /* sort, then drop repeated paths (kept: the first by origin and line) */
    if (x.n) qsort(x.v, x.n, sizeof *x.v, cmp_ck);
    for (size_t i = 1; i < x.n; i++) {
        size_t prev = i - 1;
        while (x.v[prev].drop)
            prev--;
        if (strcmp(x.v[i].rel, x.v[prev].rel) == 0) x.v[i].drop = 1;
    }
    exists = qid_calloc(x.n ? x.n : 1, 1, "checkpoint flags");
    if (!no_fs) dedup_inodes(&x, exists);
    size_t n_ck = 0;
    for (size_t i = 0; i < x.n; i++)
        n_ck += !x.v[i].drop;
    if (n_ck == 0 && !no_fs) {
        rc = qid_error_set(err, QID_E_INVALID,
                           "%s:%d: no checkpoint found (every glob and list is empty); expected "
                           "[checkpoints] entries that name existing files",
                           job->file, job->srcs[0].line);
        goto fail;
    }
    if (n_ck > QID_JOB_MAX_CKPTS) {
        rc = qid_error_set(err, QID_E_INVALID, "%s:%d: %zu checkpoints; expected at most %d (split the job)", job->file,
                           job->srcs[0].line, n_ck, QID_JOB_MAX_CKPTS);
        goto fail;
    }
    size_t per = 1 + (job->probes.n_radii > 0) + job->n_quant;
    if (n_ck > MAX_TASKS / per) {
        rc = qid_error_set(err, QID_E_INVALID,
                           "%s:%d: %zu checkpoints x %zu tasks each is more than %zu tasks; "
                           "expected a smaller job (split it)",
                           job->file, job->srcs[0].line, n_ck, per, MAX_TASKS);
        goto fail;
    }
    if (!no_fs)
        for (size_t i = 0; i < x.n; i++)
            if (!x.v[i].drop) read_ckpt_meta(&x, &x.v[i], exists[i]);

    /* cost factors */
    int64_t ev_windows, ev_seq, ca_windows, ca_seq;
    int has_gptq = 0;
    for (size_t q = 0; q < job->n_quant; q++)
        has_gptq |= job->quant[q].method == QID_JOB_METHOD_GPTQ;
    token_set_shape("[eval]", &job->eval.tokens, no_fs, &ev_windows, &ev_seq);
    ca_windows = ca_seq = 0;
    if (has_gptq) token_set_shape("[calibration]", &job->calib.tokens, no_fs, &ca_windows, &ca_seq);
    double seq = (double)(job->eval.seq_len ? job->eval.seq_len : ev_seq ? ev_seq : COST_SEQ_LEN);
    double win = (double)(job->eval.windows ? job->eval.windows : ev_windows ? ev_windows : 1);
    if (job->eval.windows && ev_windows && job->eval.windows > ev_windows) win = (double)ev_windows;
    double T = win * seq;
    double T_probe = job->probes.windows ? (double)job->probes.windows * seq : T;
    double C = (double)job->calib.samples * (double)(job->calib.seq_len ? job->calib.seq_len
                                                     : ca_seq           ? ca_seq
                                                                        : COST_SEQ_LEN);
    double probe_evals = (double)job->probes.n_radii * (double)job->probes.directions;

    /* key segments shared by every checkpoint */
    seg_base = eval_segment(job, job->eval.windows, NULL);
    seg_quant = eval_segment(job, job->eval.windows, job->eval.kl ? "yes" : "no");
    seg_probe = eval_segment(job, job->probes.windows ? job->probes.windows : job->eval.windows, NULL);
    sbuf b = {0};
    if (job->calib.tokens.rel) {
        sb_puts(&b, "calib=");
        sb_put_key_path(&b, job->calib.tokens.rel);
        sb_printf(&b, ",samples=%" PRId64, job->calib.samples);
        put_count(&b, "seq_len", job->calib.seq_len, "auto");
        sb_printf(&b, ",seed=%" PRIu64, job->seed);
    }
    seg_calib = sb_take(&b);
    sb_puts(&b, "radii=");
    for (size_t i = 0; i < job->probes.n_radii; i++) {
        char r[32];
        fmt_double(job->probes.radii[i], r, sizeof r);
        sb_printf(&b, "%s%s", i ? "," : "", r);
    }
    sb_printf(&b, ",directions=%" PRId64 ",seed=%" PRIu64, job->probes.directions, job->seed);
    probe_opts = sb_take(&b);

    t = qid_calloc(n_ck * per, sizeof *t, "the task grid");
    size_t ck_index = 0;
    for (size_t i = 0; i < x.n; i++) {
        const ckent *e = &x.v[i];
        if (e->drop) continue;
        double P = e->have_meta ? (double)e->meta.params_total : 0.0;
        double d = e->have_meta ? (double)e->d_model : 0.0;
        for (size_t j = 0; j < per; j++) {
            qid_task *k = &t[nt];
            k->index = nt;
            k->ckpt = ck_index;
            k->ckpt_path.rel = qid_strdup(e->rel);
            k->ckpt_path.path = qid_strdup(e->path);
            k->params = e->have_meta ? e->meta.params_total : -1;
            k->d_model = e->have_meta ? e->d_model : -1;
            k->step = e->have_meta ? e->meta.step : -1;
            k->tokens_seen = e->have_meta ? e->meta.tokens_seen : -1;
            if (e->have_meta) snprintf(k->model, sizeof k->model, "%s", e->meta.model);
            sb_put_key_path(&b, e->rel);
            if (j == 0) {
                k->method = QID_JOB_METHOD_BASELINE;
                k->cost = P * T;
                sb_printf(&b, "|baseline|-|-|-|%s", seg_base);
            } else if (j == 1 && job->probes.n_radii) {
                k->method = QID_JOB_METHOD_PROBES;
                k->cost = P * T_probe * probe_evals;
                sb_printf(&b, "|probes|-|%s|-|%s", probe_opts, seg_probe);
            } else {
                const qid_job_quant *q = &job->quant[j - 1 - (job->probes.n_radii > 0)];
                k->method = q->method;
                k->quant = *q;
                k->cost = P * T * (job->eval.kl ? 2.0 : 1.0);
                if (q->method == QID_JOB_METHOD_GPTQ) k->cost += 3.0 * P * C + 2.0 * P * d;
                sb_printf(&b, "|%s|%s|%s|%s|%s", qid_job_method_name(q->method), q->format, q->options,
                          q->method == QID_JOB_METHOD_GPTQ ? seg_calib : "-", seg_quant);
            }
            k->key = sb_take(&b);
            nt++;
        }
        ck_index++;
    }
    *tasks = t;
    *n = nt;
    t = NULL;
    nt = 0;

fail:
    qid_job_tasks_free(t, nt);
    for (size_t i = 0; i < x.n; i++) {
        free(x.v[i].rel);
        free(x.v[i].path);
    }
    free(x.v);
    for (size_t i = 0; i < x.n_origins; i++)
        free(x.origins[i]);
    free(x.origins);
    free(exists);
    free(seg_base);
    free(seg_quant);
    free(seg_probe);
    free(seg_calib);
    free(probe_opts);
    return rc;
}

int qid_task_cmp_cost(const void *pa, const void *pb)
{
    const qid_task *a = pa, *b = pb;
    if (a->cost != b->cost) return a->cost > b->cost ? -1 : 1;
    return (a->index > b->index) - (a->index < b->index);
}

/* ---- qid run --dry-run ------------------------------------------------------------ */

static void fmt_params(int64_t p, char *buf, size_t len)
{
    if (p < 0)
        snprintf(buf, len, "?");
    else if (p >= 1000000000)
        snprintf(buf, len, "%.2fB", (double)p / 1e9);
    else if (p >= 1000000)
        snprintf(buf, len, "%.1fM", (double)p / 1e6);
    else if (p >= 1000)
        snprintf(buf, len, "%.1fk", (double)p / 1e3);
    else
        snprintf(buf, len, "%" PRId64, p);
}

static int width_of(const char *s, int w) { return (int)strlen(s) > w ? (int)strlen(s) : w; }

void qid_job_print_grid(const qid_job *job, const qid_task *tasks, size_t n, FILE *out)
{
    fprintf(out, "job %s (%s), seed %" PRIu64 "\n", job->name, job->file, job->seed);
    fprintf(out, "  results      %s\n", job->results.path);
    fprintf(out, "  eval         %s: windows ", job->eval.tokens.path);
    if (job->eval.windows)
        fprintf(out, "%" PRId64, job->eval.windows);
    else
        fprintf(out, "all");
    fprintf(out, ", seq_len ");
    if (job->eval.seq_len)
        fprintf(out, "%" PRId64, job->eval.seq_len);
    else
        fprintf(out, "auto");
    fprintf(out, ", scoring %s, kl %s\n", qid_job_scoring_name(job->eval.scoring), job->eval.kl ? "yes" : "no");
    if (job->calib.tokens.path) {
        fprintf(out, "  calibration  %s: %" PRId64 " samples, seq_len ", job->calib.tokens.path, job->calib.samples);
        if (job->calib.seq_len)
            fprintf(out, "%" PRId64 "\n", job->calib.seq_len);
        else
            fprintf(out, "auto\n");
    }
    if (job->probes.n_radii) {
        fprintf(out, "  probes       radii");
        for (size_t i = 0; i < job->probes.n_radii; i++) {
            char r[32];
            fmt_double(job->probes.radii[i], r, sizeof r);
            fprintf(out, "%s %s", i ? "," : "", r);
        }
        fprintf(out, "; %" PRId64 " directions; ", job->probes.directions);
        if (job->probes.windows)
            fprintf(out, "%" PRId64 " windows\n", job->probes.windows);
        else
            fprintf(out, "windows as [eval]\n");
    }

    /* checkpoints among the tasks given, and column widths */
    size_t max_ck = 0;
    for (size_t i = 0; i < n; i++)
        if (tasks[i].ckpt + 1 > max_ck) max_ck = tasks[i].ckpt + 1;
    unsigned char *seen = qid_calloc(max_ck ? max_ck : 1, 1, "checkpoint flags");
    size_t n_ck = 0, unknown = 0, per_method[4] = {0};
    double total = 0, cost_method[4] = {0};
    int w_idx = 1, w_ck = 10, w_model = 5, w_params = 6, w_method = 8, w_format = 6, w_opt = 7;
    char buf[64];
    for (size_t i = 0; i < n; i++) {
        const qid_task *k = &tasks[i];
        if (!seen[k->ckpt]) n_ck++;
        seen[k->ckpt] = 1;
        total += k->cost;
        if (k->params < 0) unknown++;
        per_method[k->method & 3]++;
        cost_method[k->method & 3] += k->cost;
        snprintf(buf, sizeof buf, "%zu", k->index + 1);
        w_idx = width_of(buf, w_idx);
        w_ck = width_of(k->ckpt_path.rel, w_ck);
        w_model = width_of(k->model[0] ? k->model : "?", w_model);
        w_format = width_of(k->quant.format[0] ? k->quant.format : "-", w_format);
        w_opt = width_of(k->quant.options[0] ? k->quant.options : "-", w_opt);
    }
    free(seen);
    fprintf(out,
            "  grid         %zu tasks over %zu checkpoints (per checkpoint: baseline%s, %zu quantizer settings)\n\n", n,
            n_ck, job->probes.n_radii ? ", probes" : "", job->n_quant);
    fprintf(out, "%*s  %-*s  %-*s  %*s  %-*s  %-*s  %-*s  %10s  %6s\n", w_idx, "#", w_ck, "checkpoint", w_model,
            "model", w_params, "params", w_method, "method", w_format, "format", w_opt, "options", "cost", "share");
    for (size_t i = 0; i < n; i++) {
        const qid_task *k = &tasks[i];
        char params[32], cost[32], share[32];
        fmt_params(k->params, params, sizeof params);
        if (k->params < 0)
            snprintf(cost, sizeof cost, "?");
        else
            snprintf(cost, sizeof cost, "%.3g", k->cost);
        if (total > 0 && k->params >= 0)
            snprintf(share, sizeof share, "%.1f%%", 100.0 * k->cost / total);
        else
            snprintf(share, sizeof share, "-");
        fprintf(out, "%*zu  %-*s  %-*s  %*s  %-*s  %-*s  %-*s  %10s  %6s\n", w_idx, k->index + 1, w_ck,
                k->ckpt_path.rel, w_model, k->model[0] ? k->model : "?", w_params, params, w_method,
                qid_job_method_name(k->method), w_format, k->quant.format[0] ? k->quant.format : "-", w_opt,
                k->quant.options[0] ? k->quant.options : "-", cost, share);
    }
    fprintf(out, "\n");
    for (int m = 0; m < 4; m++)
        if (per_method[m])
            fprintf(out, "  %-9s %6zu tasks  cost %.3g (%.1f%%)\n", qid_job_method_name((qid_job_method)m),
                    per_method[m], cost_method[m], total > 0 ? 100.0 * cost_method[m] / total : 0.0);
    fprintf(out, "estimated total cost: %.3g parameter-tokens (a forward pass is about 2 FLOP per parameter-token)\n",
            total);
    if (unknown)
        fprintf(out, "%zu tasks of unknown cost: their checkpoints could not be read (they will fail at run time)\n",
                unknown);
}
