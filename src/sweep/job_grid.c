/* job_grid.c - expansion of a parsed job into the task grid (jobfile.h):
 * checkpoints from file/glob/list entries, sorted naturally and
 * deduplicated (by path, then by device and inode), times the quantizer
 * settings, plus a baseline and an optional probe task per checkpoint;
 * each task with its protocol fields, its stable key and a cost estimate.
 *
 * Reads list files, runs glob(3), stats and opens checkpoints and token
 * sets (metadata only) to estimate costs, and reports non-fatal problems
 * through qid_warn.
 *
 * Does not: parse job text (jobfile.c), print the grid (src/cli/run_grid.c), or
 * schedule, run or record tasks (sweep.c, sweep_task.c). */
#include <glob.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "checkpoint.h"
#include "eval.h"
#include "fsutil.h"
#include "job_internal.h"
#include "jobfile.h"
#include "parse.h"
#include "tokens.h"

/* Most tasks a job may expand to. */
#define MAX_TASKS ((size_t)1000000)
/* Window length assumed for cost estimates when a token set cannot be read. */
#define COST_SEQ_LEN QID_TOKENS_DEFAULT_SEQ_LEN

/* Path text inside a key: '\', '|', ',' and '=' escaped with '\'. */
static void put_key_path(job_sbuf *b, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\' || *s == '|' || *s == ',' || *s == '=') job_sb_putn(b, "\\", 1);
        job_sb_putn(b, s, 1);
    }
}

/* ---- expansion ------------------------------------------------------------------- */

/* One checkpoint found by expansion. */
typedef struct ckent {
    char *rel, *path;
    size_t origin; /* 0: the job file; i > 0: list file i - 1 */
    int line;      /* line in the origin */
    int drop;      /* 1: a duplicate, not expanded */
    qid_ckpt_meta meta;
    qid_model_config cfg;
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
    job_sbuf b = {0};
    for (; *s; s++) {
        if (*s == '*' || *s == '?' || *s == '[' || *s == ']' || *s == '\\') job_sb_putn(&b, "\\", 1);
        job_sb_putn(&b, s, 1);
    }
    return job_sb_take(&b);
}

static int expand_glob(expander *x, const qid_job_src *src)
{
    const qid_job *job = x->job;
    job_clipbuf c;
    int rooted = job_path_is_abs(src->value) || strcmp(job->dir, ".") == 0;
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
        qid_warn("%s:%d: glob '%s' matches no file", job->file, src->line, job_clip(src->value, &c));
        globfree(&g);
        return QID_OK;
    }
    if (grc == GLOB_NOSPACE) qid_die("glob '%s': out of memory", job_clip(src->value, &c));
    if (grc != 0) {
        globfree(&g);
        return qid_error_set(x->err, QID_E_IO,
                             "%s:%d: glob '%s' failed reading a directory; expected readable "
                             "directories",
                             job->file, src->line, job_clip(src->value, &c));
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
            rel = job_path_normalize(m);
            path = job_path_open(job->dir, rel);
        } else if (strncmp(m, job->dir, dlen) == 0 && (m[dlen] == '/' || job->dir[dlen - 1] == '/')) {
            rel = job_path_normalize(m + dlen + (m[dlen] == '/'));
            path = job_path_open(job->dir, rel);
        } else { /* not the case with glibc: open what glob found, key it as found */
            rel = job_path_normalize(m);
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
    char *rel = job_path_rel(".", src->value);
    char *path = job_path_open(job->dir, rel);
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
    char *base = job_path_dir(rel);
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
        char *entry = job_trim(line);
        if (*entry && *entry != '#') {
            char *r = job_path_rel(base, entry);
            rc = ck_add(x, r, job_path_open(job->dir, r), origin, lineno);
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
        if (job_is_digit(*s) && job_is_digit(*t)) {
            while (*s == '0' && job_is_digit(s[1]))
                s++;
            while (*t == '0' && job_is_digit(t[1]))
                t++;
            size_t ls = 0, lt = 0;
            while (job_is_digit(s[ls]))
                ls++;
            while (job_is_digit(t[lt]))
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
            job_clipbuf c1, c2;
            qid_warn("%s:%d: checkpoint '%s' is the same file as '%s'; it is run once", origin_name(x, d->origin),
                     d->line, job_clip(d->rel, &c1), job_clip(x->v[refs[keep].idx].rel, &c2));
            d->drop = 1;
        }
    }
    free(refs);
}

static void read_ckpt_meta(expander *x, ckent *e, int exists)
{
    job_clipbuf c;
    if (!exists) {
        qid_warn("%s:%d: checkpoint '%s' does not exist; its tasks will fail at run time", origin_name(x, e->origin),
                 e->line, job_clip(e->path, &c));
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
    e->cfg = ck.cfg;
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

static void put_count(job_sbuf *b, const char *name, int64_t v, const char *zero)
{
    if (v)
        job_sb_printf(b, ",%s=%" PRId64, name, v);
    else
        job_sb_printf(b, ",%s=%s", name, zero);
}

static char *eval_segment(const qid_job *job, int64_t windows, const char *kl)
{
    job_sbuf b = {0};
    job_sb_puts(&b, "eval=");
    put_key_path(&b, job->eval.tokens.rel);
    put_count(&b, "windows", windows, "all");
    put_count(&b, "seq_len", job->eval.seq_len, "auto");
    job_sb_printf(&b, ",scoring=%s", qid_job_scoring_name(job->eval.scoring));
    if (kl) job_sb_printf(&b, ",kl=%s", kl);
    if (kl && job->eval.adaptive) { /* quantized tasks: the rule is part of the protocol */
        char rule[256];
        job_sb_printf(&b, ",windows_rule=%s", qid_job_stop_rule(job, rule, sizeof rule));
    }
    return job_sb_take(&b);
}

/* x in the fewest of 15..17 significant digits that read back as x. */
static void shortest(char *buf, size_t size, double x)
{
    for (int digits = 15; digits <= 17; digits++) {
        snprintf(buf, size, "%.*g", digits, x);
        if (strtod(buf, NULL) == x) return;
    }
}

char *qid_job_stop_rule(const qid_job *job, char *buf, size_t size)
{
    char se[32], rse[32];
    shortest(se, sizeof se, job->eval.target_se);
    shortest(rse, sizeof rse, job->eval.target_rse);
    if (!job->eval.adaptive)
        snprintf(buf, size, "%s", "");
    else
        snprintf(buf, size,
                 "auto,min_windows=%" PRId64 ",block_windows=%" PRId64 ",target_se=%s,target_rse=%s,seed=%" PRIu64,
                 job->eval.min_windows, job->eval.block_windows, se, rse, job->seed);
    return buf;
}

size_t qid_job_eval_bytes(const qid_model_config *cfg, size_t windows, size_t seq_len, int kl)
{
    const size_t per = qid_model_batch_bytes(cfg, 1, seq_len) * (kl ? 2 : 1);
    size_t bw = per ? QID_EVAL_DEFAULT_BATCH_BYTES / per : windows;
    bw = bw < 1 ? 1 : bw > windows ? windows : bw;
    return qid_model_batch_bytes(cfg, bw, seq_len) * (kl ? 2 : 1);
}

void qid_job_mem_estimate(const qid_job *job, const qid_job_quant *q, const qid_model_config *cfg, size_t eval_windows,
                          size_t eval_seq, size_t calib_windows, size_t calib_seq, qid_mem_estimate *e)
{
    qid_quantize_opts qo;
    qid_quantize_opts_default(&qo);
    if (q) {
        qo.spec = q->spec;
        qo.method = q->method == QID_JOB_METHOD_GPTQ  ? QID_QUANTIZE_GPTQ
                    : q->method == QID_JOB_METHOD_AWQ ? QID_QUANTIZE_AWQ
                                                      : QID_QUANTIZE_RTN;
        if (q->method == QID_JOB_METHOD_GPTQ) qo.gptq = q->gptq;
    }
    qo.chunk_bytes = job->calib.chunk_bytes;
    qo.scratch_dir = job->calib.scratch_dir.path;
    const size_t ev =
        qid_job_eval_bytes(cfg, eval_windows ? eval_windows : 1, eval_seq ? eval_seq : 1, q && job->eval.kl);
    qid_quantize_mem_estimate(cfg, &qo, q && qid_job_method_calibrated(q->method) ? calib_windows : 0, calib_seq, ev,
                              e);
    if (!q) { /* the baseline holds no weight copy */
        e->peak -= e->quant;
        e->quant = 0;
    }
}

int64_t qid_job_eval_windows(const qid_job *job, qid_job_method m)
{
    return m == QID_JOB_METHOD_PROBES && job->probes.windows ? job->probes.windows : job->eval.windows;
}

void qid_job_tasks_free(qid_task *tasks, size_t n)
{
    if (!tasks) return;
    for (size_t i = 0; i < n; i++) {
        job_path_free(&tasks[i].ckpt_path);
        free(tasks[i].options);
        free(tasks[i].calib);
        free(tasks[i].eval);
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
            char *rel = job_path_rel(".", s->value);
            rc = ck_add(&x, rel, job_path_open(job->dir, rel), 0, s->line);
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
        has_gptq |= qid_job_method_calibrated(job->quant[q].method);
    token_set_shape("[eval]", &job->eval.tokens, no_fs, &ev_windows, &ev_seq);
    ca_windows = ca_seq = 0;
    if (has_gptq) token_set_shape("[calibration]", &job->calib.tokens, no_fs, &ca_windows, &ca_seq);
    double seq = (double)(job->eval.seq_len ? job->eval.seq_len : ev_seq ? ev_seq : COST_SEQ_LEN);
    double win = (double)(job->eval.windows ? job->eval.windows : ev_windows ? ev_windows : 1);
    if (job->eval.windows && ev_windows && job->eval.windows > ev_windows) win = (double)ev_windows;
    double T = win * seq;
    double T_probe = job->probes.windows ? (double)job->probes.windows * seq : T;
    const int64_t ca_len = job->calib.seq_len ? job->calib.seq_len : ca_seq ? ca_seq : COST_SEQ_LEN;
    double C = (double)job->calib.samples * (double)ca_len;
    double probe_evals = (double)job->probes.n_radii * (double)job->probes.directions;

    /* key fields shared by every checkpoint */
    seg_base = eval_segment(job, qid_job_eval_windows(job, QID_JOB_METHOD_BASELINE), NULL);
    seg_quant = eval_segment(job, qid_job_eval_windows(job, QID_JOB_METHOD_RTN), job->eval.kl ? "yes" : "no");
    seg_probe = eval_segment(job, qid_job_eval_windows(job, QID_JOB_METHOD_PROBES), NULL);
    job_sbuf b = {0};
    if (job->calib.tokens.rel) {
        job_sb_puts(&b, "calib=");
        put_key_path(&b, job->calib.tokens.rel);
        job_sb_printf(&b, ",samples=%" PRId64, job->calib.samples);
        put_count(&b, "seq_len", job->calib.seq_len, "auto");
        job_sb_printf(&b, ",seed=%" PRIu64, job->seed);
    }
    seg_calib = job_sb_take(&b);
    job_sb_puts(&b, "radii=");
    for (size_t i = 0; i < job->probes.n_radii; i++) {
        char r[32];
        qid_format_real(job->probes.radii[i], r, sizeof r);
        job_sb_printf(&b, "%s%s", i ? "," : "", r);
    }
    job_sb_printf(&b, ",directions=%" PRId64 ",seed=%" PRIu64, job->probes.directions, job->seed);
    probe_opts = job_sb_take(&b);

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
            k->mem_peak = -1;
            const char *format = "-", *options = "-", *calib = "-", *eval = seg_quant;
            k->quant = -1;
            if (j == 0) {
                k->method = QID_JOB_METHOD_BASELINE;
                k->cost = P * T;
                eval = seg_base;
            } else if (j == 1 && job->probes.n_radii) {
                k->method = QID_JOB_METHOD_PROBES;
                k->cost = P * T_probe * probe_evals;
                options = probe_opts;
                eval = seg_probe;
            } else {
                k->quant = (int)(j - 1 - (job->probes.n_radii > 0));
                const qid_job_quant *q = &job->quant[k->quant];
                k->method = q->method;
                k->cost = P * T * (job->eval.kl ? 2.0 : 1.0);
                if (qid_job_method_calibrated(q->method)) k->cost += 3.0 * P * C + 2.0 * P * d;
                format = q->format;
                options = q->options;
                if (qid_job_method_calibrated(q->method)) calib = seg_calib;
            }
            if (e->have_meta && k->method != QID_JOB_METHOD_PROBES) {
                qid_mem_estimate me;
                qid_job_mem_estimate(job, k->quant >= 0 ? &job->quant[k->quant] : NULL, &e->cfg, (size_t)win,
                                     (size_t)seq, (size_t)job->calib.samples, (size_t)ca_len, &me);
                k->mem_peak = (int64_t)me.peak;
            }
            k->options = qid_strdup(options);
            k->calib = qid_strdup(calib);
            k->eval = qid_strdup(eval);
            put_key_path(&b, e->rel);
            job_sb_printf(&b, "|%s|%s|%s|%s|%s", qid_job_method_name(k->method), format, options, calib, eval);
            k->key = job_sb_take(&b);
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
