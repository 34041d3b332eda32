/* error.c - status messages, logging, checked allocation and the HDF5/MPI/
 * LAPACKE failure reporters behind the macros in error.h.
 *
 * Does not: decide what is fatal (callers do), or buffer log output (every
 * line goes straight to stderr so a killed job's log is complete). */
#include "error.h"

#include <ctype.h>
#include <errno.h>
#include <hdf5.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int log_rank = -1;
static int log_level = QID_LOG_INFO;
static struct timespec log_start;
static int log_started;

static double now_seconds(const struct timespec *t) { return (double)t->tv_sec + 1e-9 * (double)t->tv_nsec; }

double qid_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

double qid_elapsed(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    if (!log_started) {
        log_start = t;
        log_started = 1;
    }
    return now_seconds(&t) - now_seconds(&log_start);
}

void qid_utc_now(char *buf, size_t len)
{
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

void qid_log_set_rank(int rank) { log_rank = rank; }
void qid_log_set_level(int level) { log_level = level; }

static void log_prefix(char *buf, size_t len)
{
    double t = qid_elapsed();
    if (log_rank >= 0)
        snprintf(buf, len, "qid: [rank %d %.1fs] ", log_rank, t);
    else
        snprintf(buf, len, "qid: ");
}

static const char *level_word(int level)
{
    switch (level) {
    case QID_LOG_ERROR: return "error: ";
    case QID_LOG_WARN: return "warning: ";
    case QID_LOG_DEBUG: return "debug: ";
    default: return "";
    }
}

void qid_log(int level, const char *fmt, ...)
{
    if (level > log_level) return;
    char prefix[64], text[2048];
    log_prefix(prefix, sizeof prefix);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s%s%s\n", prefix, level_word(level), text);
    fflush(stderr);
}

void qid_error_clear(qid_error *err)
{
    if (!err) return;
    err->code = QID_OK;
    err->msg[0] = '\0';
}

/* An error is one line whatever a file put into it (an attribute, a name, a
 * token quoted in the message): control characters are written as \n, \r,
 * \t or \xHH, cut at the buffer's end. */
static void one_line(char *msg, size_t cap)
{
    char out[QID_ERROR_MAX];
    size_t o = 0;
    int changed = 0;
    for (const unsigned char *p = (const unsigned char *)msg; *p && o + 1 < sizeof out; p++) {
        if (*p >= 0x20 && *p != 0x7f) {
            out[o++] = (char)*p;
            continue;
        }
        char esc[8];
        int k = *p == '\n'   ? snprintf(esc, sizeof esc, "\\n")
                : *p == '\r' ? snprintf(esc, sizeof esc, "\\r")
                : *p == '\t' ? snprintf(esc, sizeof esc, "\\t")
                             : snprintf(esc, sizeof esc, "\\x%02x", *p);
        if (o + (size_t)k >= sizeof out) break;
        memcpy(out + o, esc, (size_t)k);
        o += (size_t)k;
        changed = 1;
    }
    if (!changed) return;
    out[o] = '\0';
    snprintf(msg, cap, "%s", out);
}

static int error_vset(qid_error *err, int code, const char *fmt, va_list ap)
{
    if (!err) return code;
    err->code = code;
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    one_line(err->msg, sizeof err->msg);
    return code;
}

int qid_error_set(qid_error *err, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    error_vset(err, code, fmt, ap);
    va_end(ap);
    return code;
}

int qid_error_wrap(qid_error *err, int code, const char *fmt, ...)
{
    if (!err) return code;
    char cause[QID_ERROR_MAX], head[QID_ERROR_MAX];
    snprintf(cause, sizeof cause, "%s", err->msg);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(head, sizeof head, fmt, ap);
    va_end(ap);
    err->code = code;
    if (cause[0])
        snprintf(err->msg, sizeof err->msg, "%s: %s", head, cause);
    else
        snprintf(err->msg, sizeof err->msg, "%s", head);
    one_line(err->msg, sizeof err->msg);
    return code;
}

const char *qid_status_name(int code)
{
    switch (code) {
    case QID_OK: return "ok";
    case QID_E_IO: return "io";
    case QID_E_FORMAT: return "format";
    case QID_E_INVALID: return "invalid";
    case QID_E_NUMERIC: return "numeric";
    case QID_E_USAGE: return "usage";
    case QID_E_HDF5: return "hdf5";
    default: return "unknown";
    }
}

static int mpi_running(void)
{
    int init = 0, fin = 0;
    MPI_Initialized(&init);
    MPI_Finalized(&fin);
    return init && !fin;
}

static _Noreturn void die_now(void)
{
    fflush(stdout);
    fflush(stderr);
    if (mpi_running()) MPI_Abort(MPI_COMM_WORLD, 1);
    exit(1);
}

_Noreturn void qid_die_at(const char *file, int line, const char *func, const char *fmt, ...)
{
    char prefix[64], text[2048];
    log_prefix(prefix, sizeof prefix);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    fprintf(stderr, "%sfatal: %s (at %s:%d in %s)\n", prefix, text, file, line, func);
    die_now();
}

/* ---- memory ------------------------------------------------------------ */

void *qid_malloc_at(size_t bytes, const char *label, const char *file, int line)
{
    void *p = malloc(bytes ? bytes : 1);
    if (!p) qid_die_at(file, line, "qid_malloc", "out of memory allocating %zu bytes for %s", bytes, label);
    return p;
}

void *qid_calloc_at(size_t n, size_t size, const char *label, const char *file, int line)
{
    size_t bytes = qid_mul_size(n, size);
    void *p = calloc(bytes ? bytes : 1, 1);
    if (!p) qid_die_at(file, line, "qid_calloc", "out of memory allocating %zu bytes for %s", bytes, label);
    return p;
}

void *qid_realloc_at(void *old, size_t bytes, const char *label, const char *file, int line)
{
    void *p = realloc(old, bytes ? bytes : 1);
    if (!p) qid_die_at(file, line, "qid_realloc", "out of memory reallocating %zu bytes for %s", bytes, label);
    return p;
}

char *qid_strdup_at(const char *s, const char *file, int line)
{
    size_t n = strlen(s) + 1;
    char *p = qid_malloc_at(n, "a string", file, line);
    memcpy(p, s, n);
    return p;
}

size_t qid_mul_size(size_t n, size_t size)
{
    if (size && n > (size_t)-1 / size) qid_die("size overflow: %zu * %zu", n, size);
    return n * size;
}

/* The function name of a captured call text: "d = H5Dopen2(f, ...)" -> "H5Dopen2". */
static void call_name(const char *call, char *fn, size_t len)
{
    const char *paren = strchr(call, '(');
    const char *end = paren ? paren : call + strlen(call), *start = end;
    while (start > call && (isalnum((unsigned char)start[-1]) || start[-1] == '_'))
        start--;
    size_t n = (size_t)(end - start) < len - 1 ? (size_t)(end - start) : len - 1;
    memcpy(fn, start, n);
    fn[n] = '\0';
}

static const char *base_name(const char *file)
{
    const char *slash = strrchr(file, '/');
    return slash ? slash + 1 : file;
}

/* ---- HDF5 -------------------------------------------------------------- */

void qid_h5_silence(void) { H5Eset_auto2(H5E_DEFAULT, NULL, NULL); }

typedef struct {
    char *buf;
    size_t len;
} h5_walk_ctx;

/* A system call's failure as HDF5's file drivers describe it ("file write
 * failed: time = <ctime, with its newline>, filename = ..., errno = 28,
 * error message = 'No space left on device', buf = ..."), shortened to what
 * failed and why ("file write failed: No space left on device"); 0 when desc
 * is not such a message. The rest (the time, a buffer address, offsets)
 * would make the one-line error two lines long and say nothing a user can
 * act on; the file name is in qid's own context. */
static int h5_system_error(const char *desc, char *buf, size_t len)
{
    static const char key[] = "error message = '";
    const char *why = strstr(desc, key);
    if (!why || !strstr(desc, "errno = ")) return 0;
    why += sizeof key - 1;
    const char *end = strchr(why, '\'');
    size_t what = strcspn(desc, ":,");
    int code = atoi(strstr(desc, "errno = ") + 8);
    /* HDF5's own lock (flock) on a file system without it: HDF5 ignores
     * ENOSYS, any other refusal fails every open (hdf5-schema/results.md) */
    const char *hint = strncmp(desc, "unable to lock file", 19) == 0 && code != EWOULDBLOCK
                           ? " (this file system refuses file locks: set HDF5_USE_FILE_LOCKING=FALSE)"
                           : "";
    snprintf(buf, len, "%.*s: %.*s%s", (int)what, desc, (int)(end ? (size_t)(end - why) : strlen(why)), why, hint);
    return 1;
}

/* H5E_WALK_UPWARD visits the innermost (most specific) error first: keep it. */
static herr_t h5_walk_first(unsigned n, const H5E_error2_t *e, void *data)
{
    h5_walk_ctx *ctx = data;
    if (n != 0 || !e->desc) return 0;
    if (h5_system_error(e->desc, ctx->buf, ctx->len)) return 0;
    char minor[128] = "";
    H5Eget_msg(e->min_num, NULL, minor, sizeof minor);
    if (minor[0] && strcmp(minor, e->desc) != 0)
        snprintf(ctx->buf, ctx->len, "%s (%s)", e->desc, minor);
    else
        snprintf(ctx->buf, ctx->len, "%s", e->desc);
    return 0;
}

long long qid_h5_take_stack(void) { return (long long)H5Eget_current_stack(); }

void qid_h5_last_message(long long stack, char *buf, size_t len)
{
    if (len == 0) return;
    buf[0] = '\0';
    h5_walk_ctx ctx = {buf, len};
    H5Ewalk2(stack > 0 ? (hid_t)stack : H5E_DEFAULT, H5E_WALK_UPWARD, h5_walk_first, &ctx);
}

int qid_h5_error_set(qid_error *err, long long stack, const char *call, const char *file, int line, const char *fmt,
                     ...)
{
    char context[512], h5msg[512], fn[64];
    qid_h5_last_message(stack, h5msg, sizeof h5msg);
    if (stack > 0) H5Eclose_stack((hid_t)stack);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(context, sizeof context, fmt, ap);
    va_end(ap);
    call_name(call, fn, sizeof fn);
    return qid_error_set(err, QID_E_HDF5, "%s: %s (%s at %s:%d)", context, h5msg[0] ? h5msg : "HDF5 call failed", fn,
                         base_name(file), line);
}

_Noreturn void qid_h5_die(const char *call, const char *file, int line, const char *func)
{
    char h5msg[512];
    qid_h5_last_message(0, h5msg, sizeof h5msg);
    fprintf(stderr, "qid: HDF5 error stack follows\n");
    H5Eprint2(H5E_DEFAULT, stderr);
    qid_die_at(file, line, func, "%s failed: %s", call, h5msg[0] ? h5msg : "(no HDF5 message)");
}

/* ---- MPI --------------------------------------------------------------- */

_Noreturn void qid_mpi_die(int rc, const char *call, const char *file, int line, const char *func)
{
    char msg[MPI_MAX_ERROR_STRING + 1];
    int len = 0;
    if (MPI_Error_string(rc, msg, &len) != MPI_SUCCESS) snprintf(msg, sizeof msg, "MPI error %d", rc);
    msg[len < MPI_MAX_ERROR_STRING ? len : MPI_MAX_ERROR_STRING] = '\0';
    qid_die_at(file, line, func, "%s failed: %s", call, msg);
}

int qid_mpi_count(size_t n, const char *what)
{
    if (n > (size_t)2147483647) qid_die("%s count %zu does not fit an MPI int", what, n);
    return (int)n;
}

/* ---- LAPACKE ----------------------------------------------------------- */

int qid_lapacke_error_set(qid_error *err, const char *call, int info, const char *file, int line, const char *fmt, ...)
{
    char context[512], fn[64];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(context, sizeof context, fmt, ap);
    va_end(ap);
    call_name(call, fn, sizeof fn);
    return qid_error_set(err, QID_E_NUMERIC, "%s: %s returned info=%d (at %s:%d)", context, fn, info, base_name(file),
                         line);
}
