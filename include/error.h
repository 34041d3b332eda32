/* error.h - the error-handling core every qid module uses.
 *
 * Three tiers (docs/style.md):
 *   1. A broken invariant (a bug, or a library failing in a way we cannot
 *      recover from) -> QID_CHECK / qid_die: one line with rank, elapsed time,
 *      file:line and function, then MPI_Abort when MPI is running (so no rank
 *      is left hanging) or exit(1) otherwise.
 *   2. Out of memory -> qid_malloc/qid_calloc/qid_realloc die with the byte
 *      count and a label saying what the memory was for.
 *   3. A failure of one task or one input file (bad file, non-finite tensor,
 *      LAPACKE info > 0) -> a returned status code with a one-line message in
 *      a qid_error; the caller records it (a failed result) and goes on.
 *
 * Every HDF5, MPI and LAPACKE call goes through a macro below that captures
 * the call text, file, line and function.
 *
 * This module does not print anything except through qid_log/qid_die, and it
 * never decides whether a tier-3 error is fatal: callers do.
 */
#ifndef QID_ERROR_H
#define QID_ERROR_H

#include <stdarg.h>
#include <stddef.h>

/* Status codes of recoverable failures. 0 is success. */
enum qid_status {
    QID_OK = 0,
    QID_E_IO = 1,      /* a file cannot be opened, read or written */
    QID_E_FORMAT = 2,  /* a file is not what it claims to be (bad header, schema) */
    QID_E_INVALID = 3, /* a valid file or argument with values we reject */
    QID_E_NUMERIC = 4, /* non-finite values, failed factorization */
    QID_E_USAGE = 5,   /* bad command line */
    QID_E_HDF5 = 6,    /* an HDF5 call failed */
};

#define QID_ERROR_MAX 1024

/* A recoverable error: its code and one line of text, no trailing newline. */
typedef struct qid_error {
    int code;
    char msg[QID_ERROR_MAX];
} qid_error;

/* Clears err (code QID_OK, empty message). err may be NULL. */
void qid_error_clear(qid_error *err);

/* Sets err to code and the printf-formatted message; returns code so callers
 * can write `return qid_error_set(err, QID_E_IO, ...)`. err may be NULL (the
 * message is then dropped). An existing message is overwritten. */
int qid_error_set(qid_error *err, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Like qid_error_set, but keeps the existing message as the cause:
 * "<new message>: <old message>". Used to add context on the way up. */
int qid_error_wrap(qid_error *err, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Name of a status code ("io", "format", ...). */
const char *qid_status_name(int code);

/* ---- logging ---------------------------------------------------------- */

enum qid_log_level { QID_LOG_ERROR = 0, QID_LOG_WARN = 1, QID_LOG_INFO = 2, QID_LOG_DEBUG = 3 };

/* Sets the MPI rank shown in log prefixes (-1: not under MPI, no prefix). */
void qid_log_set_rank(int rank);
/* Sets the most verbose level printed (default QID_LOG_INFO). */
void qid_log_set_level(int level);
/* Seconds since the process started logging (first call to any log function). */
double qid_elapsed(void);
/* Seconds on the monotonic clock, for measuring durations. */
double qid_now(void);

/* The current UTC time as ISO 8601 ("2026-11-22T23:41:52Z") into buf. */
void qid_utc_now(char *buf, size_t len);

/* Prints one line to stderr: "qid: [rank R 12.3s] warning: text". */
void qid_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define qid_warn(...) qid_log(QID_LOG_WARN, __VA_ARGS__)
#define qid_info(...) qid_log(QID_LOG_INFO, __VA_ARGS__)

/* ---- tier 1: invariants ---------------------------------------------- */

/* Prints "qid: [rank R t] fatal: <msg> (at file:line in func)" and ends the
 * whole job: MPI_Abort(MPI_COMM_WORLD, 1) when MPI is initialised and not
 * finalised, exit(1) otherwise. Never returns. */
_Noreturn void qid_die_at(const char *file, int line, const char *func, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#define qid_die(...) qid_die_at(__FILE__, __LINE__, __func__, __VA_ARGS__)

/* Aborts the job with the condition text when cond is false. */
#define QID_CHECK(cond, ...)                                                                                           \
    do {                                                                                                               \
        if (!(cond)) qid_die_at(__FILE__, __LINE__, __func__, "check '" #cond "' failed: " __VA_ARGS__);               \
    } while (0)

/* ---- tier 2: memory ---------------------------------------------------- */

void *qid_malloc_at(size_t bytes, const char *label, const char *file, int line);
void *qid_calloc_at(size_t n, size_t size, const char *label, const char *file, int line);
void *qid_realloc_at(void *p, size_t bytes, const char *label, const char *file, int line);
char *qid_strdup_at(const char *s, const char *file, int line);

/* Allocations that succeed or end the job with the byte count and label.
 * A request of 0 bytes returns a valid unique pointer. Free with free(). */
#define qid_malloc(bytes, label)     qid_malloc_at((bytes), (label), __FILE__, __LINE__)
#define qid_calloc(n, size, label)   qid_calloc_at((n), (size), (label), __FILE__, __LINE__)
#define qid_realloc(p, bytes, label) qid_realloc_at((p), (bytes), (label), __FILE__, __LINE__)
#define qid_strdup(s)                qid_strdup_at((s), __FILE__, __LINE__)

/* n * size, or qid_die when it overflows size_t. */
size_t qid_mul_size(size_t n, size_t size);

/* ---- HDF5 -------------------------------------------------------------- */

/* Turns off HDF5's automatic error-stack printing (call once at start-up);
 * stacks are printed only when a check fails. */
void qid_h5_silence(void);

/* Fills buf with the innermost HDF5 error description of the stack (a stack
 * id from qid_h5_take_stack, or 0 for the current one), e.g. "file signature
 * not found", or "" if none. */
void qid_h5_last_message(long long stack, char *buf, size_t len);

/* Tier 3: evaluates an HDF5 call that returns hid_t/herr_t/htri_t; when it is
 * negative, sets err (code QID_E_HDF5) to
 *   "<context>: <hdf5's message> (<call> at file:line)"
 * and jumps to the function's `fail:` label. context is printf-formatted. */
#define QID_H5_TRY(err, call, ...)                                                                                     \
    do {                                                                                                               \
        if ((call) < 0) {                                                                                              \
            long long qid_h5_stack_ = qid_h5_take_stack();                                                             \
            qid_h5_error_set((err), qid_h5_stack_, #call, __FILE__, __LINE__, __VA_ARGS__);                            \
            goto fail;                                                                                                 \
        }                                                                                                              \
    } while (0)

/* Tier 1: an HDF5 call that must not fail (closing a handle, writing to a file
 * we created). On failure prints the HDF5 stack and aborts the job. */
#define QID_H5_CHECK(call)                                                                                             \
    do {                                                                                                               \
        if ((call) < 0) qid_h5_die(#call, __FILE__, __LINE__, __func__);                                               \
    } while (0)

/* Takes HDF5's current error stack (before anything else can clear it) and
 * returns its id as a long long (this header does not include hdf5.h). */
long long qid_h5_take_stack(void);
/* Sets err from a stack taken by qid_h5_take_stack, and closes the stack. */
int qid_h5_error_set(qid_error *err, long long stack, const char *call, const char *file, int line, const char *fmt,
                     ...) __attribute__((format(printf, 6, 7)));
_Noreturn void qid_h5_die(const char *call, const char *file, int line, const char *func);

/* ---- MPI --------------------------------------------------------------- */

/* Tier 1: an MPI call (communicator set to MPI_ERRORS_RETURN). On a non-zero
 * return prints MPI's own error string with the call and aborts the job. */
#define QID_MPI(call)                                                                                                  \
    do {                                                                                                               \
        int qid_mpi_rc_ = (call);                                                                                      \
        if (qid_mpi_rc_ != 0) qid_mpi_die(qid_mpi_rc_, #call, __FILE__, __LINE__, __func__);                           \
    } while (0)

_Noreturn void qid_mpi_die(int rc, const char *call, const char *file, int line, const char *func);

/* Narrows a size_t count to the int MPI wants, or dies naming what it counts. */
int qid_mpi_count(size_t n, const char *what);

/* ---- LAPACKE ----------------------------------------------------------- */

/* LAPACKE calls return info: < 0 means an illegal argument (a bug: abort the
 * job), > 0 a numerical failure (e.g. a matrix not positive definite: a
 * tier-3 error). QID_LAPACKE evaluates call into `info_var` and aborts on
 * info < 0; the caller handles info > 0. */
#define QID_LAPACKE(info_var, call)                                                                                    \
    do {                                                                                                               \
        (info_var) = (call);                                                                                           \
        if ((info_var) < 0)                                                                                            \
            qid_die_at(__FILE__, __LINE__, __func__, "%s: illegal value in argument %d", #call, -(int)(info_var));     \
    } while (0)

/* Tier 3 form: like QID_LAPACKE, and when info > 0 sets err (QID_E_NUMERIC)
 * to "<context>: <call> returned info=<n> (file:line)" and jumps to `fail:`. */
#define QID_LAPACKE_TRY(err, info_var, call, ...)                                                                      \
    do {                                                                                                               \
        QID_LAPACKE(info_var, call);                                                                                   \
        if ((info_var) > 0) {                                                                                          \
            qid_lapacke_error_set((err), #call, (int)(info_var), __FILE__, __LINE__, __VA_ARGS__);                     \
            goto fail;                                                                                                 \
        }                                                                                                              \
    } while (0)

int qid_lapacke_error_set(qid_error *err, const char *call, int info, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

#endif
