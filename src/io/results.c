/* results.c - the qid results store (hdf5-schema/results.md): creation with
 * /provenance, appending rows durably under SWMR, resuming (the set of
 * finished keys), the store's lock, the repair after a killed writer, and
 * reading every row back with its window vectors.
 *
 * How a row becomes durable (qid_results_append):
 *   1. its window vectors are appended to /window_nll and /window_tokens and
 *      the file is flushed, so they are on disk before any row points at them;
 *   2. the row is appended to /tasks, the file is flushed, and its fsync
 *      starts on the handle's syncer thread; the next append (or the close)
 *      first waits for that fsync, so each row is on disk before the next
 *      one is written, and the caller's work until then (the sweep's next
 *      task) overlaps the disk's.
 * A kill -9 therefore leaves every earlier row intact; at worst the row being
 * written is half there (its extent written but not its data, or a string
 * not yet), or lies past the extent with strings that never reached the
 * file, or there are window entries no row points at. In SWMR mode HDF5
 * orders its metadata writes so that the file stays readable; the kill also
 * leaves the superblock's "open for writing" flags. qid_results_open,
 * holding the lock, clears them as `h5clear -s` does (HDF5's private
 * file-access property "clear_status_flags", or the h5clear program when
 * that property is missing), moves the end-of-allocation mark past
 * everything the killed writer may have allocated, drops an unfinished last
 * row, zeroes the slots past the last row (clean_tail), drops unreferenced
 * window entries, and only then starts SWMR writing again. test/results_kill.t
 * and the --writer mode of test/test_results.c kill writers at every write.
 *
 * A full disk: HDF5 writes a grown metadata block (a global heap collection
 * extended in place) with one pwrite, and a file system out of space takes
 * part of it, which leaves a header that claims more than the file holds and
 * every row whose strings live there unreadable. So before each append the
 * file's blocks up to RESERVE_BYTES past its end are allocated (fallocate,
 * keeping the size; RESERVE_GRANT at a time); when that fails for want of
 * space the append fails before anything is written and the store stays as
 * it was. The close gives the blocks past the end back. File systems
 * without fallocate go without (hdf5-schema/results.md, "Full disks").
 *
 * Does not: evaluate, schedule, join baselines (callers fill qid/qid_se), or
 * fit laws; /fits entries are written by qid_results_write_fit for `qid fit`.
 * Nothing here is collective or thread-safe (the syncer thread only calls
 * fsync on the file descriptor, never HDF5). */
/* fallocate(2) and FALLOC_FL_KEEP_SIZE */
#define _GNU_SOURCE
#include "results.h"

#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <libgen.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fsutil.h"
#include "h5io.h"
#include "version.h"

extern char **environ;

/* Rows per chunk of /tasks, entries per chunk of the window datasets. */
#define TASKS_CHUNK  64
#define WINDOW_CHUNK 4096

/* Bytes of each of the type-conversion and background buffers that appends
 * hand HDF5 (H5Pset_buffer). Without them H5Dwrite allocates and zeroes its
 * default 1 MiB buffers on every write of a /tasks row (the compound needs
 * conversion), which was most of the cost of an append. A row is a few
 * hundred bytes; HDF5 converts in strips when a write is larger. */
#define XFER_BUF_BYTES 65536

/* Bytes reserved ahead of HDF5 at each append, besides the row's window
 * vectors (three times their size): more than any one append allocates for
 * metadata, a /tasks chunk and a window chunk. */
#define RESERVE_BYTES (1 << 20)
/* Bytes allocated past the end at a time, so that most appends make no
 * fallocate call. */
#define RESERVE_GRANT (8 << 20)

/* HDF5's private file-access property that h5clear sets to clear the
 * superblock status flags on open (H5Fprivate.h, HDF5 1.10 and later). */
#define CLEAR_STATUS_FLAGS_PROP "clear_status_flags"

_Static_assert(sizeof(qid_result_status) == sizeof(int), "qid_result_status is stored through an int enum type");

/* ---- the /tasks columns: one table, the single source of the row layout ---- */

#define COL(member, kind)                                                                                              \
    {                                                                                                                  \
#member, kind, offsetof(qid_result, member)                                                                    \
    }
/* a column of the divergence report, named as its member */
#define DIV(member)                                                                                                    \
    {                                                                                                                  \
#member, QID_COL_F64, offsetof(qid_result, div.member)                                                         \
    }
const qid_result_column qid_result_columns[QID_RESULT_N_COLUMNS] = {
    COL(key, QID_COL_STR),
    COL(checkpoint, QID_COL_STR),
    COL(model, QID_COL_STR),
    COL(ckpt_sha256, QID_COL_STR),
    COL(params, QID_COL_I64),
    COL(tokens_seen, QID_COL_I64),
    COL(step, QID_COL_I64),
    COL(lr_frac, QID_COL_F64),
    COL(method, QID_COL_STR),
    COL(format, QID_COL_STR),
    COL(bits, QID_COL_F64),
    COL(elem_bits, QID_COL_I32),
    COL(block, QID_COL_I64),
    COL(options, QID_COL_STR),
    COL(calib, QID_COL_STR),
    COL(calib_chunk, QID_COL_I64),
    COL(eval_protocol, QID_COL_STR),
    COL(eval_sha256, QID_COL_STR),
    COL(loss, QID_COL_F64),
    COL(loss16, QID_COL_F64),
    COL(qid, QID_COL_F64),
    COL(qid_se, QID_COL_F64),
    COL(sqnr_db, QID_COL_F64),
    COL(kl, QID_COL_F64),
    COL(tokens, QID_COL_I64),
    COL(windows, QID_COL_I64),
    COL(seconds, QID_COL_F64),
    COL(rank, QID_COL_I32),
    COL(status, QID_COL_STATUS),
    COL(error, QID_COL_STR),
    COL(finished_utc, QID_COL_STR),
    COL(nll_offset, QID_COL_I64),
    /* schema 3 */
    COL(windows_used, QID_COL_I64),
    COL(stop_rule, QID_COL_STR),
    DIV(kl_se),
    DIV(kl_median),
    DIV(kl_p99_9),
    DIV(kl_p99),
    DIV(kl_p95),
    DIV(kl_p90),
    DIV(kl_p10),
    DIV(kl_p5),
    DIV(kl_p1),
    DIV(kl_max),
    DIV(top1),
    DIV(top1_se),
    DIV(dp_mean),
    DIV(dp_se),
    DIV(dp_rms),
    DIV(dp_rms_se),
    DIV(dp_max),
    DIV(dp_p99_9),
    DIV(dp_p99),
    DIV(dp_p95),
    DIV(dp_p90),
    DIV(dp_p75),
    DIV(dp_median),
    DIV(dp_p25),
    DIV(dp_p10),
    DIV(dp_p5),
    DIV(dp_p1),
    DIV(dp_p0_1),
    DIV(dp_min),
    DIV(ln_ppl_ratio),
    DIV(ln_ppl_ratio_se),
};
#undef DIV
#undef COL
#define N_COLUMNS QID_RESULT_N_COLUMNS
_Static_assert(sizeof qid_result_columns / sizeof qid_result_columns[0] == QID_RESULT_N_COLUMNS,
               "QID_RESULT_N_COLUMNS is the number of /tasks columns");

static const char **str_field(qid_result *row, const qid_result_column *c)
{
    return (const char **)((char *)row + c->offset);
}

static hid_t str_type(void)
{
    hid_t t = H5I_INVALID_HID;
    QID_H5_CHECK(t = H5Tcopy(H5T_C_S1));
    QID_H5_CHECK(H5Tset_size(t, H5T_VARIABLE));
    QID_H5_CHECK(H5Tset_cset(t, H5T_CSET_UTF8));
    return t;
}

/* The status enum over a file (int8) or memory (int) base type. */
static hid_t status_type(int in_file)
{
    hid_t t = H5I_INVALID_HID;
    if (in_file) {
        int8_t ok = QID_RESULT_OK, failed = QID_RESULT_FAILED;
        QID_H5_CHECK(t = H5Tenum_create(H5T_STD_I8LE));
        QID_H5_CHECK(H5Tenum_insert(t, "OK", &ok));
        QID_H5_CHECK(H5Tenum_insert(t, "FAILED", &failed));
    } else {
        int ok = QID_RESULT_OK, failed = QID_RESULT_FAILED;
        QID_H5_CHECK(t = H5Tenum_create(H5T_NATIVE_INT));
        QID_H5_CHECK(H5Tenum_insert(t, "OK", &ok));
        QID_H5_CHECK(H5Tenum_insert(t, "FAILED", &failed));
    }
    return t;
}

static hid_t column_type(qid_result_col_kind k, int in_file)
{
    hid_t t = H5I_INVALID_HID;
    switch (k) {
    case QID_COL_STR: return str_type();
    case QID_COL_I64: QID_H5_CHECK(t = H5Tcopy(in_file ? H5T_STD_I64LE : H5T_NATIVE_INT64)); return t;
    case QID_COL_I32: QID_H5_CHECK(t = H5Tcopy(in_file ? H5T_STD_I32LE : H5T_NATIVE_INT32)); return t;
    case QID_COL_F64: QID_H5_CHECK(t = H5Tcopy(in_file ? H5T_IEEE_F64LE : H5T_NATIVE_DOUBLE)); return t;
    case QID_COL_STATUS: return status_type(in_file);
    }
    qid_die("unknown column kind %d", (int)k);
}

/* The packed compound type of /tasks rows in the file. */
static hid_t row_file_type(void)
{
    size_t size = 0;
    for (size_t i = 0; i < QID_RESULT_N_COLUMNS; i++) {
        hid_t t = column_type(qid_result_columns[i].kind, 1);
        size += H5Tget_size(t);
        H5Tclose(t);
    }
    hid_t row = H5I_INVALID_HID;
    QID_H5_CHECK(row = H5Tcreate(H5T_COMPOUND, size));
    size_t off = 0;
    for (size_t i = 0; i < QID_RESULT_N_COLUMNS; i++) {
        hid_t t = column_type(qid_result_columns[i].kind, 1);
        QID_H5_CHECK(H5Tinsert(row, qid_result_columns[i].name, off, t));
        off += H5Tget_size(t);
        H5Tclose(t);
    }
    return row;
}

/* The memory type: qid_result itself (the window pointers are not columns). */
static hid_t row_mem_type(void)
{
    hid_t row = H5I_INVALID_HID;
    QID_H5_CHECK(row = H5Tcreate(H5T_COMPOUND, sizeof(qid_result)));
    for (size_t i = 0; i < QID_RESULT_N_COLUMNS; i++) {
        hid_t t = column_type(qid_result_columns[i].kind, 0);
        QID_H5_CHECK(H5Tinsert(row, qid_result_columns[i].name, qid_result_columns[i].offset, t));
        H5Tclose(t);
    }
    return row;
}

/* The columns read when a store is opened for appending. */
typedef struct key_row {
    char *key;
    int status;
    int64_t windows;
    int64_t nll_offset;
} key_row;

static hid_t key_row_type(void)
{
    hid_t row = H5I_INVALID_HID, s = str_type(), st = status_type(0);
    QID_H5_CHECK(row = H5Tcreate(H5T_COMPOUND, sizeof(key_row)));
    QID_H5_CHECK(H5Tinsert(row, "key", offsetof(key_row, key), s));
    QID_H5_CHECK(H5Tinsert(row, "status", offsetof(key_row, status), st));
    QID_H5_CHECK(H5Tinsert(row, "windows", offsetof(key_row, windows), H5T_NATIVE_INT64));
    QID_H5_CHECK(H5Tinsert(row, "nll_offset", offsetof(key_row, nll_offset), H5T_NATIVE_INT64));
    H5Tclose(s);
    H5Tclose(st);
    return row;
}

/* ---- a set of strings (the OK keys) ------------------------------------------ */

typedef struct keyset {
    char **slot; /* open addressing, linear probing; NULL = empty */
    size_t cap;  /* a power of two, or 0 */
    size_t n;
} keyset;

static uint64_t fnv1a(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ull;
    }
    return h;
}

static size_t keyset_find(const keyset *ks, const char *key)
{
    size_t i = (size_t)fnv1a(key) & (ks->cap - 1);
    while (ks->slot[i] && strcmp(ks->slot[i], key) != 0)
        i = (i + 1) & (ks->cap - 1);
    return i;
}

static int keyset_has(const keyset *ks, const char *key) { return ks->cap && ks->slot[keyset_find(ks, key)] != NULL; }

static void keyset_add(keyset *ks, const char *key)
{
    if (2 * (ks->n + 1) > ks->cap) {
        keyset bigger = {NULL, ks->cap ? 2 * ks->cap : 256, 0};
        bigger.slot = qid_calloc(bigger.cap, sizeof(char *), "the set of finished task keys");
        for (size_t i = 0; i < ks->cap; i++)
            if (ks->slot[i]) {
                bigger.slot[keyset_find(&bigger, ks->slot[i])] = ks->slot[i];
                bigger.n++;
            }
        free(ks->slot);
        *ks = bigger;
    }
    size_t i = keyset_find(ks, key);
    if (ks->slot[i]) return;
    ks->slot[i] = qid_strdup(key);
    ks->n++;
}

static void keyset_free(keyset *ks)
{
    for (size_t i = 0; i < ks->cap; i++)
        free(ks->slot[i]);
    free(ks->slot);
    *ks = (keyset){0};
}

/* ---- small helpers -------------------------------------------------------------- */

/* The store's lock (see "the lock" below). */
typedef struct store_lock {
    int fd;          /* PATH.lock, flock'd or fcntl-locked; -1 when none */
    char *excl_path; /* PATH.lock.excl when that is the lock; NULL otherwise */
} store_lock;

struct qid_results {
    char *path;
    store_lock lock;
    hid_t fid, tasks, wnll, wtok; /* the file and its three datasets */
    hid_t mtype;                  /* row_mem_type() */
    hid_t dxpl;                   /* transfer property list with our conversion buffers */
    void *tconv, *bkg;            /* XFER_BUF_BYTES each, owned by the handle */
    int fd;                       /* the file's descriptor (sec2 driver), for fsync */
    /* the syncer thread: fsyncs fd when asked, while the caller goes on */
    pthread_t sync_thread;
    pthread_mutex_t sync_mu;
    pthread_cond_t sync_cv;
    int sync_started, sync_pending, sync_stop, sync_errno;
    hsize_t n_rows;    /* extent of /tasks */
    hsize_t n_windows; /* where the next window vectors go */
    keyset ok_keys;
    int broken;         /* a write failed half-way: refuse further appends */
    off_t reserved_end; /* blocks are allocated up to here (0: not yet) */
    int no_fallocate;   /* the file system has none */
};

static char *str_cat(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    char *s = qid_malloc(la + lb + 1, "a file name");
    memcpy(s, a, la);
    memcpy(s + la, b, lb + 1);
    return s;
}

static void host_name(char *buf, size_t len)
{
    if (gethostname(buf, len) != 0) snprintf(buf, len, "unknown-host");
    buf[len - 1] = '\0';
}

static void fsync_dir_of(const char *path)
{
    char *copy = qid_strdup(path);
    int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
    free(copy);
}

/* Length of the valid UTF-8 sequence at s (1..4), or 0 when it is not one. */
static size_t utf8_seq(const unsigned char *s)
{
    unsigned c = s[0];
    if (c < 0x80) return 1;
    size_t n = c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ? 3 : c >= 0xf0 && c <= 0xf4 ? 4 : 0;
    if (!n) return 0;
    for (size_t i = 1; i < n; i++)
        if ((s[i] & 0xc0) != 0x80) return 0;
    if (c == 0xe0 && s[1] < 0xa0) return 0; /* overlong */
    if (c == 0xed && s[1] > 0x9f) return 0; /* surrogate */
    if (c == 0xf0 && s[1] < 0x90) return 0; /* overlong */
    if (c == 0xf4 && s[1] > 0x8f) return 0; /* above U+10FFFF */
    return n;
}

/* NULL when s is valid UTF-8, else a malloc'd copy with each invalid byte
 * replaced by '?' (the columns are declared UTF-8). */
static char *utf8_repair(const char *s)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0, n;
    while (u[i] && (n = utf8_seq(u + i)) != 0)
        i += n;
    if (!u[i]) return NULL;
    char *out = qid_strdup(s);
    for (i = 0; u[i];) {
        n = utf8_seq(u + i);
        if (n) {
            i += n;
        } else {
            out[i] = '?';
            i++;
        }
    }
    return out;
}

/* ---- the lock ------------------------------------------------------------------ */

/* The store's lock (hdf5-schema/results.md, "The lock"): flock on PATH.lock;
 * where the file system refuses flock (Lustre mounted without -o flock
 * answers ENOSYS), a POSIX record lock (fcntl) on the same file; where it
 * refuses both, PATH.lock.excl created with O_EXCL and holding "pid host",
 * removed at release, broken when its holder is a process of this host that
 * no longer exists. */

/* errno values of a lock call that mean "no locks of this kind here". */
static int lock_unsupported(int e)
{
    return e == ENOSYS || e == EOPNOTSUPP || e == ENOTSUP || e == ENOLCK || e == EINVAL;
}

/* "pid host" from the start of fd's file into *pid and host; 0 when it holds none. */
static int read_holder(int fd, long *pid, char host[256])
{
    char text[300] = "";
    ssize_t got = pread(fd, text, sizeof text - 1, 0);
    text[got > 0 ? got : 0] = '\0';
    host[0] = '\0';
    return sscanf(text, "%ld %255s", pid, host) == 2;
}

static void write_holder(int fd, const char *lock_path)
{
    char host[256], text[320];
    host_name(host, sizeof host);
    int len = snprintf(text, sizeof text, "%ld %s\n", (long)getpid(), host);
    if (ftruncate(fd, 0) != 0 || pwrite(fd, text, (size_t)len, 0) != len)
        qid_warn("cannot write the holder into lock file '%s': %s", lock_path, strerror(errno));
}

static int locked_error(const char *path, int fd, const char *lock_path, qid_error *err)
{
    char host[256];
    long pid = 0;
    if (read_holder(fd, &pid, host))
        return qid_error_set(err, QID_E_INVALID,
                             "results store '%s' is locked by pid %ld on %s (another qid run is writing it)", path, pid,
                             host);
    return qid_error_set(err, QID_E_INVALID,
                         "results store '%s' is locked by another process (another qid run is writing it; see '%s')",
                         path, lock_path);
}

/* 1 when "pid host" names a process of this host that no longer exists. */
static int holder_dead(long pid, const char *host)
{
    char me[256];
    host_name(me, sizeof me);
    return strcmp(host, me) == 0 && pid > 0 && pid != (long)getpid() && kill((pid_t)pid, 0) != 0 && errno == ESRCH;
}

/* The lock where the file system has no file locks: PATH.lock.excl, created
 * with O_EXCL. A stale one (its holder a dead process of this host) is
 * renamed aside before it is removed, so that of two runs breaking it at
 * once only one removes it; the other finds the first one's new lock. */
static int lock_take_excl(const char *path, const char *why, store_lock *lock, qid_error *err)
{
    char *excl = str_cat(path, ".lock.excl");
    int rc = -1;
    for (int attempt = 0; attempt < 3 && rc < 0; attempt++) {
        int fd = open(excl, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (fd >= 0) {
            write_holder(fd, excl);
            (void)fsync(fd);
            close(fd);
            fsync_dir_of(excl);
            qid_log(QID_LOG_DEBUG, "results store '%s': no file locks here (%s); holding lock file '%s'", path, why,
                    excl);
            lock->excl_path = excl;
            return QID_OK;
        }
        if (errno != EEXIST) {
            rc = qid_error_set(err, QID_E_IO, "cannot create lock file '%s' for results store '%s': %s", excl, path,
                               strerror(errno));
            break;
        }
        char host[256];
        long pid = 0;
        int held = -1, have = 0;
        if ((fd = open(excl, O_RDONLY | O_CLOEXEC)) >= 0) {
            have = read_holder(fd, &pid, host);
            close(fd);
        } else if (errno == ENOENT) {
            continue; /* released meanwhile */
        }
        if (have && holder_dead(pid, host)) {
            char aside[sizeof ".stale." + 32];
            snprintf(aside, sizeof aside, ".stale.%ld", (long)getpid());
            char *stale = str_cat(excl, aside);
            if (rename(excl, stale) == 0) {
                long pid2 = 0;
                char host2[256];
                int sfd = open(stale, O_RDONLY | O_CLOEXEC), same = 0;
                if (sfd >= 0) {
                    same = read_holder(sfd, &pid2, host2) && pid2 == pid && strcmp(host2, host) == 0;
                    close(sfd);
                }
                if (!same && link(stale, excl) != 0) /* another run's fresh lock: put it back */
                    qid_warn("cannot put lock file '%s' back: %s", excl, strerror(errno));
                unlink(stale);
                if (same)
                    qid_warn("removed the stale lock file '%s' of results store '%s' (pid %ld on %s no longer runs)",
                             excl, path, pid, host);
                held = !same;
            }
            free(stale);
            if (held != 1) continue;
        }
        if (have)
            rc = qid_error_set(err, QID_E_INVALID,
                               "results store '%s' is locked by pid %ld on %s (lock file '%s'; this file system has "
                               "no file locks): if no qid run is writing it, remove that file",
                               path, pid, host, excl);
        else
            rc = qid_error_set(err, QID_E_INVALID,
                               "results store '%s' is locked (lock file '%s'; this file system has no file locks): "
                               "if no qid run is writing it, remove that file",
                               path, excl);
    }
    if (rc < 0)
        rc = qid_error_set(err, QID_E_INVALID, "results store '%s': cannot take lock file '%s' (it keeps changing)",
                           path, excl);
    free(excl);
    return rc;
}

/* Takes the store's lock (exclusive, never waiting) and records "pid host"
 * in it. Returns QID_OK, or a status with err set: held by another run, or
 * the lock file cannot be made (a read-only directory). */
static int lock_take(const char *path, store_lock *lock, qid_error *err)
{
    char *lock_path = str_cat(path, ".lock");
    char why[160];
    int rc = QID_OK;
    lock->fd = -1;
    lock->excl_path = NULL;
    int fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        rc = qid_error_set(err, QID_E_IO, "cannot open lock file '%s' for results store '%s': %s", lock_path, path,
                           strerror(errno));
        free(lock_path);
        return rc;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) == 0) goto held;
    int e = errno;
    if (e == EWOULDBLOCK) {
        rc = locked_error(path, fd, lock_path, err);
        goto out;
    }
    if (!lock_unsupported(e)) {
        rc = qid_error_set(err, QID_E_IO, "cannot lock '%s': %s", lock_path, strerror(e));
        goto out;
    }
    snprintf(why, sizeof why, "flock: %s", strerror(e));
    /* a POSIX record lock: released when this process closes any descriptor
     * of PATH.lock, and only this module opens it */
    struct flock fl;
    memset(&fl, 0, sizeof fl);
    fl.l_type = F_WRLCK;
    fl.l_whence = SEEK_SET;
    if (fcntl(fd, F_SETLK, &fl) == 0) {
        qid_log(QID_LOG_DEBUG, "results store '%s': %s; locked with fcntl instead", path, why);
        goto held;
    }
    e = errno;
    if (e == EACCES || e == EAGAIN) {
        rc = locked_error(path, fd, lock_path, err);
        goto out;
    }
    if (!lock_unsupported(e)) {
        rc = qid_error_set(err, QID_E_IO, "cannot lock '%s': %s", lock_path, strerror(e));
        goto out;
    }
    size_t used = strlen(why);
    snprintf(why + used, sizeof why - used, ", fcntl: %s", strerror(e));
    close(fd);
    free(lock_path);
    return lock_take_excl(path, why, lock, err);
held:
    write_holder(fd, lock_path);
    lock->fd = fd;
    free(lock_path);
    return QID_OK;
out:
    close(fd);
    free(lock_path);
    return rc;
}

static void lock_release(store_lock *lock)
{
    if (lock->excl_path) {
        unlink(lock->excl_path);
        free(lock->excl_path);
        lock->excl_path = NULL;
    }
    if (lock->fd < 0) return;
    (void)ftruncate(lock->fd, 0); /* no holder; the file itself stays (removing it would race) */
    close(lock->fd);              /* releases the flock (or the fcntl lock) */
    lock->fd = -1;
}

/* ---- opening, checking ----------------------------------------------------------- */

/* HDF5 1.10.7 / 1.12.1 and later can be told not to flock the file. */
#if H5_VERS_MAJOR > 1 ||                                                                                               \
    (H5_VERS_MAJOR == 1 && (H5_VERS_MINOR > 12 || (H5_VERS_MINOR == 12 && H5_VERS_RELEASE >= 1) ||                     \
                            (H5_VERS_MINOR == 10 && H5_VERS_RELEASE >= 7)))
#define HAVE_FILE_LOCKING_PROP 1
#endif

/* The access properties of every open for writing. Writers do not take
 * HDF5's own file lock: PATH.lock already keeps writers apart, and HDF5's
 * lock would make a run fail to open its store ("unable to lock file,
 * errno = 11") merely because a reader (qid results, h5py, h5dump) has it
 * open at that moment. */
static hid_t fapl_latest(void)
{
    hid_t fapl = H5I_INVALID_HID;
    QID_H5_CHECK(fapl = H5Pcreate(H5P_FILE_ACCESS));
    QID_H5_CHECK(H5Pset_libver_bounds(fapl, H5F_LIBVER_LATEST, H5F_LIBVER_LATEST));
#ifdef HAVE_FILE_LOCKING_PROP
    QID_H5_CHECK(H5Pset_file_locking(fapl, 0, 1));
#endif
    return fapl;
}

/* The superblock's file-consistency flags (nonzero: a writer had the file
 * open and did not close it), or -1 when they cannot be read (not an HDF5
 * file at offset 0, or a superblock version without them). */
static int status_flags(const char *path)
{
    static const unsigned char sig[8] = {0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n'};
    unsigned char sb[12];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    ssize_t got = pread(fd, sb, sizeof sb, 0);
    close(fd);
    if (got != (ssize_t)sizeof sb || memcmp(sb, sig, 8) != 0 || sb[8] < 2) return -1;
    return sb[11];
}

/* Checks the root attributes format and schema_version of an open file. */
static int check_format(hid_t fid, const char *path, qid_error *err)
{
    return qid_h5_check_format(fid, path, QID_RESULTS_FORMAT, QID_RESULTS_SCHEMA_VERSION, NULL, err);
}

/* Opens path read-only, as a SWMR reader when HDF5 allows it (the file has
 * SWMR-capable metadata and no writer, or a SWMR writer, alive or killed),
 * otherwise plainly; quietly returns H5I_INVALID_HID when neither works. */
static hid_t open_ro(const char *path)
{
    hid_t fid = H5I_INVALID_HID;
    H5E_BEGIN_TRY
    {
        fid = H5Fopen(path, H5F_ACC_RDONLY | H5F_ACC_SWMR_READ, H5P_DEFAULT);
        if (fid < 0) fid = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    }
    H5E_END_TRY;
    return fid;
}

/* open_ro and the format and schema-version checks, with a one-line error
 * when the file cannot be opened or is not a store this qid reads. */
static hid_t open_read(const char *path, qid_error *err)
{
    hid_t fid = H5I_INVALID_HID;
    if (qid_h5_check_readable(path, err)) return H5I_INVALID_HID;
    if ((fid = open_ro(path)) < 0) /* for HDF5's own message */
        return qid_h5_open_format(path, QID_RESULTS_FORMAT, QID_RESULTS_SCHEMA_VERSION, NULL, err);
    if (check_format(fid, path, err)) {
        H5Fclose(fid);
        return H5I_INVALID_HID;
    }
    return fid;
}

static int write_provenance(hid_t fid, const qid_results_provenance *prov, const char *path, qid_error *err)
{
    hid_t g = H5I_INVALID_HID;
    char libs[1024], host[256], now[32];
    qid_results_provenance none = {"", "", "", 0, -1};
    if (!prov) prov = &none;
    if (prov->seed > (uint64_t)INT64_MAX)
        return qid_error_set(err, QID_E_INVALID, "seed %llu of results store '%s' is above 2^63-1",
                             (unsigned long long)prov->seed, path);
    qid_library_versions(libs, sizeof libs);
    host_name(host, sizeof host);
    qid_utc_now(now, sizeof now);
    QID_H5_TRY(err, g = H5Gcreate2(fid, "provenance", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
               "cannot create '/provenance' in '%s'", path);
    const struct {
        const char *name, *value;
    } strs[] = {
        {"qid_version", qid_version()},
        {"git_revision", qid_git_rev()},
        {"compiler", qid_compiler()},
        {"build_flags", qid_build_flags()},
        {"library_versions", libs},
        {"job_name", prov->job_name ? prov->job_name : ""},
        {"job_file", prov->job_file ? prov->job_file : ""},
        {"job_text", prov->job_text ? prov->job_text : ""},
        {"hostname", host},
        {"start_utc", now},
    };
    for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++) {
        char *fixed = utf8_repair(strs[i].value);
        int rc = qid_h5_attr_write_str(g, strs[i].name, fixed ? fixed : strs[i].value, err);
        free(fixed);
        if (rc) goto fail;
    }
    if (qid_h5_attr_write_i64(g, "seed", (int64_t)prov->seed, err)) goto fail;
    if (qid_h5_attr_write_i64(g, "mpi_ranks", prov->mpi_ranks, err)) goto fail;
    H5Gclose(g);
    return QID_OK;
fail:
    if (g >= 0) H5Gclose(g);
    return err ? err->code : QID_E_HDF5;
}

static int create_dataset(hid_t fid, const char *name, hid_t type, hsize_t chunk, const char *path, qid_error *err)
{
    hid_t space = H5I_INVALID_HID, dcpl = H5I_INVALID_HID, d = H5I_INVALID_HID;
    hsize_t dims = 0, maxdims = H5S_UNLIMITED;
    QID_H5_TRY(err, space = H5Screate_simple(1, &dims, &maxdims), "cannot create a dataspace");
    QID_H5_TRY(err, dcpl = H5Pcreate(H5P_DATASET_CREATE), "cannot create a property list");
    QID_H5_TRY(err, H5Pset_chunk(dcpl, 1, &chunk), "cannot set the chunk size of '%s'", name);
    QID_H5_TRY(err, d = H5Dcreate2(fid, name, type, space, H5P_DEFAULT, dcpl, H5P_DEFAULT),
               "cannot create '%s' in '%s'", name, path);
    H5Dclose(d);
    H5Pclose(dcpl);
    H5Sclose(space);
    return QID_OK;
fail:
    if (dcpl >= 0) H5Pclose(dcpl);
    if (space >= 0) H5Sclose(space);
    return err ? err->code : QID_E_HDF5;
}

/* Creates the empty store at PATH.tmp (we hold the lock, so a stale one is a
 * killed creator's), then renames it to path: a kill during creation leaves
 * no half-made store. */
static int create_store(const char *path, const qid_results_provenance *prov, qid_error *err)
{
    char *tmp = str_cat(path, ".tmp");
    hid_t fapl = fapl_latest(), fid = H5I_INVALID_HID, g = H5I_INVALID_HID, t = H5I_INVALID_HID;
    char created_by[64];
    int rc;
    unlink(tmp);
    QID_H5_TRY(err, fid = H5Fcreate(tmp, H5F_ACC_EXCL, H5P_DEFAULT, fapl), "cannot create results store '%s'", tmp);
    if (qid_h5_write_format(fid, QID_RESULTS_FORMAT, QID_RESULTS_SCHEMA_VERSION, err)) goto fail;
    snprintf(created_by, sizeof created_by, "qid %s", qid_version());
    if (qid_h5_attr_write_str(fid, "created_by", created_by, err)) goto fail;
    if (write_provenance(fid, prov, path, err)) goto fail;
    t = row_file_type();
    rc = create_dataset(fid, "tasks", t, TASKS_CHUNK, path, err);
    H5Tclose(t);
    if (rc) goto fail;
    if (create_dataset(fid, "window_nll", H5T_IEEE_F64LE, WINDOW_CHUNK, path, err)) goto fail;
    if (create_dataset(fid, "window_tokens", H5T_STD_I32LE, WINDOW_CHUNK, path, err)) goto fail;
    QID_H5_TRY(err, g = H5Gcreate2(fid, "fits", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), "cannot create '/fits' in '%s'",
               path);
    H5Gclose(g);
    g = H5I_INVALID_HID;
    QID_H5_TRY(err, H5Fflush(fid, H5F_SCOPE_GLOBAL), "cannot flush '%s'", tmp);
    hid_t f = fid;
    fid = H5I_INVALID_HID;
    QID_H5_TRY(err, H5Fclose(f), "cannot close '%s'", tmp);
    int fd = open(tmp, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
    if (rename(tmp, path) != 0) {
        qid_error_set(err, QID_E_IO, "cannot rename '%s' to '%s': %s", tmp, path, strerror(errno));
        goto fail;
    }
    fsync_dir_of(path);
    H5Pclose(fapl);
    free(tmp);
    return QID_OK;
fail:
    if (g >= 0) H5Gclose(g);
    if (fid >= 0) {
        H5E_BEGIN_TRY { H5Fclose(fid); }
        H5E_END_TRY;
    }
    H5Pclose(fapl);
    unlink(tmp);
    free(tmp);
    return err ? err->code : QID_E_HDF5;
}

/* The fallback repair: runs `h5clear -s path` (hdf5-tools). */
static int run_h5clear(const char *path, qid_error *err)
{
    char *argv[] = {"h5clear", "-s", (char *)path, NULL};
    pid_t pid;
    int rc = posix_spawnp(&pid, "h5clear", NULL, NULL, argv, environ), status = 0;
    if (rc != 0)
        return qid_error_set(err, QID_E_IO,
                             "cannot run 'h5clear -s %s' to clear the flags a killed writer left: %s (install "
                             "hdf5-tools)",
                             path, strerror(rc));
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return qid_error_set(err, QID_E_IO, "'h5clear -s %s' failed (status %d)", path, status);
    return QID_OK;
}

/* Opens an existing store read-write. flags: its superblock status flags;
 * when nonzero (a writer was killed; we hold the lock, so it is not alive),
 * clears them on open and sets *repaired. */
static hid_t open_rdwr(const char *path, int flags, int *repaired, qid_error *err)
{
    hid_t fapl = fapl_latest(), fid = H5I_INVALID_HID;
    *repaired = 0;
    if (flags > 0) {
        hbool_t clear = 1;
        herr_t set;
        H5E_BEGIN_TRY { set = H5Pset(fapl, CLEAR_STATUS_FLAGS_PROP, &clear); }
        H5E_END_TRY;
        if (set < 0) {
            qid_warn("this HDF5 has no '%s' file-access property; clearing the flags of '%s' with h5clear -s",
                     CLEAR_STATUS_FLAGS_PROP, path);
            if (run_h5clear(path, err)) goto fail;
        }
        *repaired = 1;
    }
    QID_H5_TRY(err, fid = H5Fopen(path, H5F_ACC_RDWR, fapl), "cannot open results store '%s' for appending", path);
    H5Pclose(fapl);
    return fid;
fail:
    H5Pclose(fapl);
    return H5I_INVALID_HID;
}

static hsize_t extent_of(hid_t d)
{
    hsize_t n = 0;
    hid_t s = H5Dget_space(d);
    if (s >= 0) {
        if (H5Sget_simple_extent_dims(s, &n, NULL) != 1) n = 0;
        H5Sclose(s);
    }
    return n;
}

/* Why a row read back is not a finished row, or NULL when it is one. */
static const char *row_problem(const char *key, int status, int64_t windows, int64_t nll_offset, hsize_t n_nll,
                               hsize_t n_tok)
{
    if (!key || !key[0]) return "it has no key";
    if (status != QID_RESULT_OK && status != QID_RESULT_FAILED) return "its status is neither OK nor FAILED";
    if (nll_offset < -1) return "its nll_offset is negative";
    if (nll_offset >= 0) {
        hsize_t end = (hsize_t)nll_offset + (hsize_t)(windows > 0 ? windows : 0);
        if (windows <= 0 || end > n_nll || end > n_tok) return "its window vectors lie beyond /window_nll";
    }
    return NULL;
}

/* The extents of /tasks and the window vectors against the data the file
 * holds: rows and window entries are allocated from them. */
static int check_extents(hid_t tasks, hid_t wnll, hid_t wtok, hsize_t n, hsize_t n_nll, hsize_t n_tok, const char *path,
                         qid_error *err)
{
    if (qid_h5_check_storage(tasks, "/tasks", path, n, 1, err)) return QID_E_FORMAT;
    if (qid_h5_check_storage(wnll, "/window_nll", path, n_nll, 1, err)) return QID_E_FORMAT;
    return qid_h5_check_storage(wtok, "/window_tokens", path, n_tok, 1, err);
}

/* 1 if row i of /tasks reads back as a finished row (all its strings too). */
static int row_is_finished(hid_t tasks, hid_t mtype, hsize_t i, hsize_t n_nll, hsize_t n_tok, const char **why)
{
    qid_result row;
    memset(&row, 0, sizeof row);
    hid_t fs = H5Dget_space(tasks), ms = H5I_INVALID_HID;
    hsize_t one = 1;
    herr_t rc = -1;
    if (fs >= 0 && H5Sselect_hyperslab(fs, H5S_SELECT_SET, &i, NULL, &one, NULL) >= 0 &&
        (ms = H5Screate_simple(1, &one, NULL)) >= 0) {
        H5E_BEGIN_TRY { rc = H5Dread(tasks, mtype, ms, fs, H5P_DEFAULT, &row); }
        H5E_END_TRY;
    }
    *why = rc < 0 ? "it cannot be read (a string was not written)" : NULL;
    if (rc >= 0) {
        *why = row_problem(row.key, (int)row.status, row.windows, row.nll_offset, n_nll, n_tok);
        if (!*why)
            for (size_t c = 0; c < QID_RESULT_N_COLUMNS; c++) /* stop_rule: not in stores before version 3 */
                if (qid_result_columns[c].kind == QID_COL_STR && !*str_field(&row, &qid_result_columns[c]) &&
                    qid_result_columns[c].offset != offsetof(qid_result, stop_rule))
                    *why = "a string is missing";
        H5Dvlen_reclaim(mtype, ms, H5P_DEFAULT, &row);
    }
    if (ms >= 0) H5Sclose(ms);
    if (fs >= 0) H5Sclose(fs);
    return *why == NULL;
}

static int set_extent(hid_t d, hsize_t n, const char *name, const char *path, qid_error *err)
{
    QID_H5_TRY(err, H5Dset_extent(d, &n), "cannot resize '%s' in '%s'", name, path);
    return QID_OK;
fail:
    return err ? err->code : QID_E_HDF5;
}

/* After a kill: clears the slots of /tasks past its last row, n, in n's
 * chunk. A writer killed in the middle of an append can leave its row there,
 * beyond the extent, with strings that never reached the file; when the next
 * append overwrites that slot HDF5 first frees the old strings, and fails.
 * Zero bytes are the fill value (null strings, zero numbers). A chunk wholly
 * beyond the extent is removed instead (extend to n+1, shrink back). Uses
 * direct chunk I/O, so no string in the slots is ever looked at. */
static int clean_tail(hid_t tasks, hsize_t n, const char *path, qid_error *err)
{
    hsize_t start = n / TASKS_CHUNK * TASKS_CHUNK, bytes = 0;
    unsigned char *buf = NULL;
    uint32_t filters = 0;
    herr_t rc = -1;
    if (start == n) {
        if (set_extent(tasks, n + 1, "/tasks", path, err)) return err ? err->code : QID_E_HDF5;
        return set_extent(tasks, n, "/tasks", path, err);
    }
    H5E_BEGIN_TRY { rc = H5Dget_chunk_storage_size(tasks, &start, &bytes); }
    H5E_END_TRY;
    if (rc < 0 || bytes == 0) return QID_OK; /* not allocated: nothing there */
    if (bytes % TASKS_CHUNK)
        return qid_error_set(err, QID_E_FORMAT, "a chunk of '/tasks' in '%s' has %llu bytes, not a multiple of %d rows",
                             path, (unsigned long long)bytes, TASKS_CHUNK);
    size_t row_bytes = (size_t)(bytes / TASKS_CHUNK), first = (size_t)(n - start);
    buf = qid_malloc((size_t)bytes, "a chunk of /tasks");
    QID_H5_TRY(err, H5Dread_chunk(tasks, H5P_DEFAULT, &start, &filters, buf), "cannot read a chunk of '/tasks' in '%s'",
               path);
    memset(buf + first * row_bytes, 0, (TASKS_CHUNK - first) * row_bytes);
    QID_H5_TRY(err, H5Dwrite_chunk(tasks, H5P_DEFAULT, filters, &start, (size_t)bytes, buf),
               "cannot write a chunk of '/tasks' in '%s'", path);
    free(buf);
    return QID_OK;
fail:
    free(buf);
    return err ? err->code : QID_E_HDF5;
}

/* With the file open read-write and not yet in SWMR mode: drops an
 * unfinished last row; after a kill (repaired) or such a drop, also clears
 * the slots past the last row and drops window entries no row points at;
 * loads the OK keys; sets n_rows and n_windows. */
static int load_store(qid_results *r, int repaired, qid_error *err)
{
    hid_t tasks = H5I_INVALID_HID, wnll = H5I_INVALID_HID, wtok = H5I_INVALID_HID, ktype = key_row_type();
    key_row *kr = NULL;
    hsize_t n = 0;
    const char *why = NULL;
    QID_H5_TRY(err, tasks = H5Dopen2(r->fid, "tasks", H5P_DEFAULT), "cannot open '/tasks' in '%s'", r->path);
    QID_H5_TRY(err, wnll = H5Dopen2(r->fid, "window_nll", H5P_DEFAULT), "cannot open '/window_nll' in '%s'", r->path);
    QID_H5_TRY(err, wtok = H5Dopen2(r->fid, "window_tokens", H5P_DEFAULT), "cannot open '/window_tokens' in '%s'",
               r->path);
    n = extent_of(tasks);
    hsize_t n_nll = extent_of(wnll), n_tok = extent_of(wtok);
    if (check_extents(tasks, wnll, wtok, n, n_nll, n_tok, r->path, err)) goto fail;

    if (n > 0 && !row_is_finished(tasks, r->mtype, n - 1, n_nll, n_tok, &why)) {
        /* only the row being appended can be unfinished: a writer killed in
         * the middle of it, or one whose write failed part-way */
        const char *why_prev = NULL;
        if (n > 1 && !row_is_finished(tasks, r->mtype, n - 2, n_nll, n_tok, &why_prev)) {
            qid_error_set(err, QID_E_FORMAT,
                          "row %llu of '/tasks' in '%s' is damaged (%s), which a killed writer cannot cause: restore "
                          "the store from a copy",
                          (unsigned long long)(n - 2), r->path, why_prev);
            goto fail;
        }
        if (set_extent(tasks, n - 1, "/tasks", r->path, err)) goto fail;
        n--;
        repaired = 1;
        qid_warn("dropped the last row of '/tasks' in '%s': its writer had not finished it (%s); its task will run "
                 "again",
                 r->path, why);
    }
    if (repaired) {
        /* a fresh handle (no cached chunks) for the direct chunk I/O, and
         * another one after it for reading */
        H5Dclose(tasks);
        QID_H5_TRY(err, tasks = H5Dopen2(r->fid, "tasks", H5P_DEFAULT), "cannot open '/tasks' in '%s'", r->path);
        if (clean_tail(tasks, n, r->path, err)) goto fail;
        H5Dclose(tasks);
        QID_H5_TRY(err, tasks = H5Dopen2(r->fid, "tasks", H5P_DEFAULT), "cannot open '/tasks' in '%s'", r->path);
    }

    kr = qid_calloc(n ? n : 1, sizeof *kr, "the keys of a results store");
    if (n > 0) {
        hsize_t end = 0;
        const char *bad = NULL;
        size_t bad_row = 0;
        QID_H5_TRY(err, H5Dread(tasks, ktype, H5S_ALL, H5S_ALL, H5P_DEFAULT, kr),
                   "cannot read the keys in '/tasks' of '%s'", r->path);
        for (hsize_t i = 0; i < n; i++) {
            const char *w = row_problem(kr[i].key, kr[i].status, kr[i].windows, kr[i].nll_offset, n_nll, n_tok);
            if (w && !bad) {
                bad = w;
                bad_row = (size_t)i;
            }
            if (w) continue;
            if (kr[i].status == QID_RESULT_OK) keyset_add(&r->ok_keys, kr[i].key);
            if (kr[i].nll_offset >= 0 && (hsize_t)(kr[i].nll_offset + kr[i].windows) > end)
                end = (hsize_t)(kr[i].nll_offset + kr[i].windows);
        }
        hid_t all = H5Dget_space(tasks);
        if (all >= 0) {
            H5Dvlen_reclaim(ktype, all, H5P_DEFAULT, kr);
            H5Sclose(all);
        }
        if (bad) {
            qid_error_set(err, QID_E_FORMAT,
                          "row %zu of '/tasks' in '%s' is damaged (%s): restore the store from a copy", bad_row,
                          r->path, bad);
            goto fail;
        }
        if (repaired && (n_nll > end || n_tok > end)) {
            if (set_extent(wnll, end, "/window_nll", r->path, err)) goto fail;
            if (set_extent(wtok, end, "/window_tokens", r->path, err)) goto fail;
            n_nll = n_tok = end;
        }
    } else if (repaired && (n_nll > 0 || n_tok > 0)) {
        if (set_extent(wnll, 0, "/window_nll", r->path, err)) goto fail;
        if (set_extent(wtok, 0, "/window_tokens", r->path, err)) goto fail;
        n_nll = n_tok = 0;
    }
    r->n_rows = n;
    r->n_windows = n_nll > n_tok ? n_nll : n_tok;
    free(kr);
    H5Dclose(wtok);
    H5Dclose(wnll);
    H5Dclose(tasks);
    H5Tclose(ktype);
    return QID_OK;
fail:
    free(kr);
    if (wtok >= 0) H5Dclose(wtok);
    if (wnll >= 0) H5Dclose(wnll);
    if (tasks >= 0) H5Dclose(tasks);
    H5Tclose(ktype);
    return err ? err->code : QID_E_HDF5;
}

/* ---- the syncer thread -------------------------------------------------------------- */

static void *syncer_main(void *arg)
{
    qid_results *r = arg;
    pthread_mutex_lock(&r->sync_mu);
    for (;;) {
        while (!r->sync_pending && !r->sync_stop)
            pthread_cond_wait(&r->sync_cv, &r->sync_mu);
        if (!r->sync_pending) break; /* stop, nothing left to sync */
        pthread_mutex_unlock(&r->sync_mu);
        int e = fsync(r->fd) == 0 ? 0 : errno;
        pthread_mutex_lock(&r->sync_mu);
        if (e && !r->sync_errno) r->sync_errno = e;
        r->sync_pending = 0;
        pthread_cond_broadcast(&r->sync_cv);
    }
    pthread_mutex_unlock(&r->sync_mu);
    return NULL;
}

/* Asks the syncer for an fsync of everything written so far (starting the
 * thread the first time; without one, fsyncs right here). */
static void sync_start(qid_results *r)
{
    if (!r->sync_started) {
        pthread_mutex_init(&r->sync_mu, NULL);
        pthread_cond_init(&r->sync_cv, NULL);
        if (pthread_create(&r->sync_thread, NULL, syncer_main, r) != 0) {
            pthread_cond_destroy(&r->sync_cv);
            pthread_mutex_destroy(&r->sync_mu);
            if (fsync(r->fd) != 0 && !r->sync_errno) r->sync_errno = errno;
            return;
        }
        r->sync_started = 1;
    }
    pthread_mutex_lock(&r->sync_mu);
    r->sync_pending = 1;
    pthread_cond_broadcast(&r->sync_cv);
    pthread_mutex_unlock(&r->sync_mu);
}

/* Waits for the fsync asked for last; returns its errno (0: durable), and
 * forgets it. */
static int sync_wait(qid_results *r)
{
    int e;
    if (r->sync_started) {
        pthread_mutex_lock(&r->sync_mu);
        while (r->sync_pending)
            pthread_cond_wait(&r->sync_cv, &r->sync_mu);
        e = r->sync_errno;
        r->sync_errno = 0;
        pthread_mutex_unlock(&r->sync_mu);
    } else {
        e = r->sync_errno;
        r->sync_errno = 0;
    }
    return e;
}

/* Waits for the last fsync and ends the thread; returns the fsync's errno. */
static int sync_end(qid_results *r)
{
    int e = sync_wait(r);
    if (!r->sync_started) return e;
    pthread_mutex_lock(&r->sync_mu);
    r->sync_stop = 1;
    pthread_cond_broadcast(&r->sync_cv);
    pthread_mutex_unlock(&r->sync_mu);
    pthread_join(r->sync_thread, NULL);
    pthread_cond_destroy(&r->sync_cv);
    pthread_mutex_destroy(&r->sync_mu);
    r->sync_started = 0;
    return e;
}

static void results_free(qid_results *r)
{
    if (!r) return;
    (void)sync_end(r);
    if (r->wtok >= 0) H5Dclose(r->wtok);
    if (r->wnll >= 0) H5Dclose(r->wnll);
    if (r->tasks >= 0) H5Dclose(r->tasks);
    if (r->fid >= 0) {
        H5E_BEGIN_TRY { H5Fclose(r->fid); }
        H5E_END_TRY;
    }
    if (r->mtype >= 0) H5Tclose(r->mtype);
    if (r->dxpl >= 0) H5Pclose(r->dxpl);
    free(r->tconv);
    free(r->bkg);
    lock_release(&r->lock);
    keyset_free(&r->ok_keys);
    free(r->path);
    free(r);
}

qid_results *qid_results_open(const char *path, const qid_results_provenance *prov, qid_error *err)
{
    qid_results *r = qid_calloc(1, sizeof *r, "a results store handle");
    r->path = qid_strdup(path);
    r->fid = r->tasks = r->wnll = r->wtok = H5I_INVALID_HID;
    r->mtype = row_mem_type();
    r->tconv = qid_malloc(XFER_BUF_BYTES, "a results store's conversion buffer");
    r->bkg = qid_malloc(XFER_BUF_BYTES, "a results store's background buffer");
    r->dxpl = H5Pcreate(H5P_DATASET_XFER);
    if (r->dxpl < 0 || H5Pset_buffer(r->dxpl, XFER_BUF_BYTES, r->tconv, r->bkg) < 0)
        qid_die("cannot make an HDF5 transfer property list for '%s'", path);
    r->fd = -1;
    r->lock.fd = -1;
    int repaired = 0, created = 0;
    void *handle = NULL;
    hid_t fapl = H5I_INVALID_HID;

    if (lock_take(path, &r->lock, err)) goto fail;

    if (access(path, F_OK) != 0) {
        if (errno != ENOENT) {
            qid_error_set(err, QID_E_IO, "cannot open results store '%s': %s", path, strerror(errno));
            goto fail;
        }
        if (create_store(path, prov, err)) goto fail;
        created = 1;
    }

    int flags = created ? 0 : status_flags(path);
    if (!created) {
        /* Check what the file is before changing anything in it. A file a
         * killed SWMR writer left opens as a SWMR reader; one whose writer
         * was killed before it started SWMR (status flags set, but not as a
         * SWMR writer sets them) does not, and is checked after the repair. */
        hid_t ro = flags > 0 ? open_ro(path) : open_read(path, err);
        if (ro < 0 && flags <= 0) goto fail;
        if (ro >= 0) {
            int rc = check_format(ro, path, err);
            H5Fclose(ro);
            if (rc) goto fail;
        }
    }
    if ((r->fid = open_rdwr(path, flags, &repaired, err)) < 0) goto fail;
    int64_t version = 0;
    if (qid_h5_check_format(r->fid, path, QID_RESULTS_FORMAT, QID_RESULTS_SCHEMA_VERSION, &version, err)) goto fail;
    if (version < QID_RESULTS_SCHEMA_VERSION)
        qid_warn("results store '%s' has schema_version %lld: new rows keep only its columns (the columns added "
                 "since are not stored in it; start a new store to have them)",
                 path, (long long)version);
    if (repaired) {
        /* Nothing the killed writer allocated past the recorded end of the
         * file may be handed out again (h5clear --increment=0). */
        QID_H5_TRY(err, H5Fincrement_filesize(r->fid, 0), "cannot update the end of file of '%s'", path);
        qid_warn("results store '%s' was not closed by its last writer (killed?): cleared its open-for-writing flags "
                 "(as h5clear -s does)",
                 path);
    } else if (prov && !created && prov->job_text) {
        char *old = NULL;
        hid_t g = H5I_INVALID_HID;
        H5E_BEGIN_TRY { g = H5Gopen2(r->fid, "provenance", H5P_DEFAULT); }
        H5E_END_TRY;
        if (g >= 0 && qid_h5_attr_read_strdup(g, "/provenance", "job_text", &old, NULL) == QID_OK &&
            strcmp(old, prov->job_text) != 0)
            qid_warn("the job text differs from the one that created '%s' (/provenance keeps the first)", path);
        free(old);
        if (g >= 0) H5Gclose(g);
    }
    if (load_store(r, repaired, err)) goto fail;

    QID_H5_TRY(err, H5Fstart_swmr_write(r->fid), "cannot start SWMR writing of '%s'", path);
    QID_H5_TRY(err, r->tasks = H5Dopen2(r->fid, "tasks", H5P_DEFAULT), "cannot open '/tasks' in '%s'", path);
    QID_H5_TRY(err, r->wnll = H5Dopen2(r->fid, "window_nll", H5P_DEFAULT), "cannot open '/window_nll' in '%s'", path);
    QID_H5_TRY(err, r->wtok = H5Dopen2(r->fid, "window_tokens", H5P_DEFAULT), "cannot open '/window_tokens' in '%s'",
               path);
    QID_H5_TRY(err, fapl = H5Fget_access_plist(r->fid), "cannot get the access properties of '%s'", path);
    QID_H5_TRY(err, H5Fget_vfd_handle(r->fid, fapl, &handle), "cannot get the file descriptor of '%s'", path);
    r->fd = *(int *)handle;
    H5Pclose(fapl);
    return r;
fail:
    if (fapl >= 0) H5Pclose(fapl);
    results_free(r);
    return NULL;
}

int qid_results_has(const qid_results *r, const char *key) { return r && key && keyset_has(&r->ok_keys, key); }

/* Appends count entries of buf (memory type mtype) at offset first of d. */
static int append_vec(hid_t d, hid_t mtype, hid_t dxpl, hsize_t first, hsize_t count, const void *buf, const char *name,
                      const char *path, qid_error *err)
{
    hid_t fs = H5I_INVALID_HID, ms = H5I_INVALID_HID;
    hsize_t n = first + count;
    QID_H5_TRY(err, H5Dset_extent(d, &n), "cannot extend '%s' in '%s'", name, path);
    QID_H5_TRY(err, fs = H5Dget_space(d), "cannot get the dataspace of '%s'", name);
    QID_H5_TRY(err, H5Sselect_hyperslab(fs, H5S_SELECT_SET, &first, NULL, &count, NULL), "cannot select in '%s'", name);
    QID_H5_TRY(err, ms = H5Screate_simple(1, &count, NULL), "cannot create a dataspace");
    QID_H5_TRY(err, H5Dwrite(d, mtype, ms, fs, dxpl, buf), "cannot write to '%s' in '%s'", name, path);
    H5Sclose(ms);
    H5Sclose(fs);
    return QID_OK;
fail:
    if (ms >= 0) H5Sclose(ms);
    if (fs >= 0) H5Sclose(fs);
    return err ? err->code : QID_E_HDF5;
}

/* Allocates the blocks an append of `entries` window entries may write
 * (see the top of the file): at least RESERVE_BYTES (and three times the
 * vectors) past the end of the file must be allocated; when they are not,
 * up to RESERVE_GRANT past it are, or just what is needed when the disk has
 * no room for more. Rarely a system call: most appends find their blocks
 * allocated already. QID_OK also where the file system has no fallocate;
 * an error (nothing written) when it has no space. */
static int reserve_space(qid_results *r, hsize_t entries, qid_error *err)
{
#ifdef FALLOC_FL_KEEP_SIZE
    hsize_t size = 0;
    if (r->no_fallocate || H5Fget_filesize(r->fid, &size) < 0) return QID_OK;
    off_t ahead = (off_t)RESERVE_BYTES + (off_t)(3 * entries * (sizeof(double) + sizeof(int32_t)));
    off_t end = (off_t)size + ahead;
    if (end <= r->reserved_end) return QID_OK;
    /* the first time also the blocks below the end: holes HDF5 left */
    off_t from = r->reserved_end ? r->reserved_end : ((off_t)size > ahead ? (off_t)size - ahead : 0);
    if (from > (off_t)size) from = (off_t)size;
    off_t grant = (off_t)size + RESERVE_GRANT > end ? (off_t)size + RESERVE_GRANT : end;
    int rc = fallocate(r->fd, FALLOC_FL_KEEP_SIZE, from, grant - from);
    if (rc != 0 && (errno == ENOSPC || errno == EDQUOT))
        rc = fallocate(r->fd, FALLOC_FL_KEEP_SIZE, from, (grant = end) - from);
    if (rc != 0) {
        int e = errno;
        if (e == EOPNOTSUPP || e == ENOSYS || e == EINVAL) {
            r->no_fallocate = 1;
            return QID_OK;
        }
        return qid_error_set(err, QID_E_IO, "cannot reserve %lld bytes for the next row of results store '%s': %s",
                             (long long)ahead, r->path, strerror(e));
    }
    r->reserved_end = grant;
#else
    (void)r;
    (void)entries;
    (void)err;
#endif
    return QID_OK;
}

int qid_results_append(qid_results *r, const qid_result *row, qid_error *err)
{
    if (r->broken)
        return qid_error_set(err, QID_E_IO, "results store '%s' refuses appends after an earlier write error", r->path);
    if (!row->key || !row->key[0])
        return qid_error_set(err, QID_E_INVALID, "a row for results store '%s' has no key", r->path);
    if (row->status != QID_RESULT_OK && row->status != QID_RESULT_FAILED)
        return qid_error_set(err, QID_E_INVALID, "row '%s' has status %d, neither OK nor FAILED", row->key,
                             (int)row->status);
    hsize_t entries = row->window_nll && row->windows > 0 ? (hsize_t)row->windows : 0;
    if (entries && !row->window_tokens)
        return qid_error_set(err, QID_E_INVALID, "row '%s' has window NLLs but no window token counts", row->key);

    /* the previous row's fsync, before anything of this row is written */
    int e = sync_wait(r);
    if (e) {
        r->broken = 1;
        return qid_error_set(err, QID_E_IO, "cannot fsync results store '%s': %s (the last row may not be on disk)",
                             r->path, strerror(e));
    }

    if (reserve_space(r, entries, err)) return err ? err->code : QID_E_IO;

    qid_result w = *row;
    char *owned[N_COLUMNS] = {0};
    for (size_t c = 0; c < QID_RESULT_N_COLUMNS; c++) {
        if (qid_result_columns[c].kind != QID_COL_STR) continue;
        const char **s = str_field(&w, &qid_result_columns[c]);
        if (!*s) *s = "";
        if ((owned[c] = utf8_repair(*s)) != NULL) *s = owned[c];
    }
    w.nll_offset = entries ? (int64_t)r->n_windows : -1;
    w.window_nll = NULL;
    w.window_tokens = NULL;

    int rc = QID_OK;
    r->broken = 1; /* until the row is durable */
    if (entries) {
        if ((rc = append_vec(r->wnll, H5T_NATIVE_DOUBLE, r->dxpl, r->n_windows, entries, row->window_nll, "/window_nll",
                             r->path, err)))
            goto done;
        if ((rc = append_vec(r->wtok, H5T_NATIVE_INT32, r->dxpl, r->n_windows, entries, row->window_tokens,
                             "/window_tokens", r->path, err)))
            goto done;
        /* the vectors reach the file before the row that points at them */
        QID_H5_TRY(err, H5Fflush(r->fid, H5F_SCOPE_LOCAL), "cannot flush '%s'", r->path);
        r->n_windows += entries;
    }
    if ((rc = append_vec(r->tasks, r->mtype, r->dxpl, r->n_rows, 1, &w, "/tasks", r->path, err))) goto done;
    QID_H5_TRY(err, H5Fflush(r->fid, H5F_SCOPE_LOCAL), "cannot flush '%s'", r->path);
    sync_start(r); /* waited for by the next append or the close */
    r->n_rows++;
    r->broken = 0;
    if (row->status == QID_RESULT_OK) keyset_add(&r->ok_keys, row->key);
    goto done;
fail:
    rc = err ? err->code : QID_E_HDF5;
done:
    for (size_t c = 0; c < QID_RESULT_N_COLUMNS; c++)
        free(owned[c]);
    return rc;
}

int qid_results_close(qid_results *r, qid_error *err)
{
    int rc = QID_OK;
    if (!r) return QID_OK;
    int e = sync_end(r);
    if (e) rc = qid_error_set(err, QID_E_IO, "cannot fsync results store '%s': %s", r->path, strerror(e));
    if (H5Fflush(r->fid, H5F_SCOPE_LOCAL) < 0 && !rc)
        rc = qid_h5_error_set(err, qid_h5_take_stack(), "H5Fflush", __FILE__, __LINE__, "cannot flush '%s'", r->path);
    H5Dclose(r->wtok);
    H5Dclose(r->wnll);
    H5Dclose(r->tasks);
    r->tasks = r->wnll = r->wtok = H5I_INVALID_HID;
    hid_t f = r->fid;
    r->fid = H5I_INVALID_HID;
    if (H5Fclose(f) < 0 && !rc)
        rc = qid_h5_error_set(err, qid_h5_take_stack(), "H5Fclose", __FILE__, __LINE__, "cannot close '%s'", r->path);
    int fd = open(r->path, O_RDWR | O_CLOEXEC); /* the cleared status flags, durably */
    if (fd >= 0) {
        struct stat st;
        if (fstat(fd, &st) == 0) (void)ftruncate(fd, st.st_size); /* the blocks reserved past the end */
        if (fsync(fd) != 0 && !rc)
            rc = qid_error_set(err, QID_E_IO, "cannot fsync results store '%s': %s", r->path, strerror(errno));
        close(fd);
    }
    results_free(r);
    return rc;
}

/* ---- reading ---------------------------------------------------------------------- */

static herr_t read_vec(hid_t d, hid_t mtype, hsize_t first, hsize_t count, void *buf)
{
    herr_t rc = -1;
    hid_t fs = H5Dget_space(d), ms = H5I_INVALID_HID;
    if (fs >= 0 && H5Sselect_hyperslab(fs, H5S_SELECT_SET, &first, NULL, &count, NULL) >= 0 &&
        (ms = H5Screate_simple(1, &count, NULL)) >= 0)
        rc = H5Dread(d, mtype, ms, fs, H5P_DEFAULT, buf);
    if (ms >= 0) H5Sclose(ms);
    if (fs >= 0) H5Sclose(fs);
    return rc;
}

static int read_once(const char *path, qid_result **rows_out, size_t *n_out, qid_error *err)
{
    hid_t fid = H5I_INVALID_HID, tasks = H5I_INVALID_HID, wnll = H5I_INVALID_HID, wtok = H5I_INVALID_HID;
    hid_t mtype = row_mem_type(), ms = H5I_INVALID_HID, fs = H5I_INVALID_HID;
    qid_result *raw = NULL, *rows = NULL;
    hsize_t n = 0, got = 0;
    size_t done = 0;
    *rows_out = NULL;
    *n_out = 0;

    if ((fid = open_read(path, err)) < 0) goto fail;
    QID_H5_TRY(err, tasks = H5Dopen2(fid, "tasks", H5P_DEFAULT), "cannot open '/tasks' in '%s'", path);
    QID_H5_TRY(err, wnll = H5Dopen2(fid, "window_nll", H5P_DEFAULT), "cannot open '/window_nll' in '%s'", path);
    QID_H5_TRY(err, wtok = H5Dopen2(fid, "window_tokens", H5P_DEFAULT), "cannot open '/window_tokens' in '%s'", path);
    n = extent_of(tasks);
    hsize_t n_nll = extent_of(wnll), n_tok = extent_of(wtok);
    if (check_extents(tasks, wnll, wtok, n, n_nll, n_tok, path, err)) goto fail;
    int writing = status_flags(path) > 0;

    /* While a writer is appending, or after it was killed, the last row may
     * be unfinished: skip it then (and only then). */
    const char *why = NULL;
    if (n > 0 && writing && !row_is_finished(tasks, mtype, n - 1, n_nll, n_tok, &why)) {
        qid_log(QID_LOG_DEBUG, "'%s': skipping the unfinished last row of '/tasks' (%s)", path, why);
        n--;
    }
    raw = qid_calloc(n ? n : 1, sizeof *raw, "the rows of a results store");
    /* A column the file lacks (a store of an older schema: lr_frac came in
     * version 2) is left alone by the compound conversion: it reads as NaN. */
    for (size_t i = 0; i < (size_t)n; i++)
        for (size_t c = 0; c < QID_RESULT_N_COLUMNS; c++)
            if (qid_result_columns[c].kind == QID_COL_F64)
                *(double *)((char *)&raw[i] + qid_result_columns[c].offset) = NAN;
    for (size_t i = 0; i < (size_t)n; i++) { /* no such columns before version 3 */
        raw[i].windows_used = -1;
        raw[i].calib_chunk = -1;
    }
    if (n > 0) {
        QID_H5_TRY(err, fs = H5Dget_space(tasks), "cannot get the dataspace of '/tasks'");
        QID_H5_TRY(err, H5Sselect_hyperslab(fs, H5S_SELECT_SET, (hsize_t[]){0}, NULL, &n, NULL),
                   "cannot select in '/tasks'");
        QID_H5_TRY(err, ms = H5Screate_simple(1, &n, NULL), "cannot create a dataspace");
        QID_H5_TRY(err, H5Dread(tasks, mtype, ms, fs, H5P_DEFAULT, raw), "cannot read '/tasks' in '%s'", path);
        got = n;
    }
    rows = qid_calloc(n ? n : 1, sizeof *rows, "the rows of a results store");
    for (size_t i = 0; i < (size_t)n; i++) {
        qid_result *o = &rows[i];
        *o = raw[i];
        for (size_t c = 0; c < QID_RESULT_N_COLUMNS; c++)
            if (qid_result_columns[c].kind == QID_COL_STR) {
                const char **s = str_field(o, &qid_result_columns[c]);
                *s = qid_strdup(*s ? *s : "");
            }
        o->window_nll = NULL;
        o->window_tokens = NULL;
        if (o->windows_used < 0) o->windows_used = o->windows;
        done = i + 1; /* rows[0..done) own their memory */
        const char *w = row_problem(o->key, (int)o->status, o->windows, o->nll_offset, n_nll, n_tok);
        if (w) {
            qid_error_set(err, QID_E_FORMAT, "row %zu of '/tasks' in '%s' is damaged (%s)", i, path, w);
            goto fail;
        }
        if (o->nll_offset >= 0) {
            size_t k = (size_t)o->windows;
            double *nll = qid_malloc(qid_mul_size(k, sizeof *nll), "a row's window NLLs");
            int32_t *tok = qid_malloc(qid_mul_size(k, sizeof *tok), "a row's window token counts");
            o->window_nll = nll;
            o->window_tokens = tok;
            QID_H5_TRY(err, read_vec(wnll, H5T_NATIVE_DOUBLE, (hsize_t)o->nll_offset, k, nll),
                       "cannot read '/window_nll' in '%s'", path);
            QID_H5_TRY(err, read_vec(wtok, H5T_NATIVE_INT32, (hsize_t)o->nll_offset, k, tok),
                       "cannot read '/window_tokens' in '%s'", path);
        }
    }
    if (got) H5Dvlen_reclaim(mtype, ms, H5P_DEFAULT, raw);
    free(raw);
    if (ms >= 0) H5Sclose(ms);
    if (fs >= 0) H5Sclose(fs);
    H5Dclose(wtok);
    H5Dclose(wnll);
    H5Dclose(tasks);
    H5Fclose(fid);
    H5Tclose(mtype);
    *rows_out = rows;
    *n_out = (size_t)n;
    return QID_OK;
fail:
    if (raw && got) H5Dvlen_reclaim(mtype, ms, H5P_DEFAULT, raw);
    free(raw);
    qid_results_rows_free(rows, done);
    if (ms >= 0) H5Sclose(ms);
    if (fs >= 0) H5Sclose(fs);
    if (wtok >= 0) H5Dclose(wtok);
    if (wnll >= 0) H5Dclose(wnll);
    if (tasks >= 0) H5Dclose(tasks);
    if (fid >= 0) H5Fclose(fid);
    H5Tclose(mtype);
    return err ? err->code : QID_E_HDF5;
}

/* A SWMR reader can see metadata a moment ahead of the data the writer is
 * flushing ("actual len exceeds EOA"): such HDF5 errors are retried a few
 * times on a fresh open before they are reported. */
int qid_results_read(const char *path, qid_result **rows_out, size_t *n_out, qid_error *err)
{
    int rc = QID_OK;
    for (int attempt = 0; attempt < 6; attempt++) {
        rc = read_once(path, rows_out, n_out, err);
        if (rc != QID_E_HDF5) break;
        struct timespec pause = {0, 10000000L * (attempt + 1)};
        nanosleep(&pause, NULL);
    }
    return rc;
}

void qid_results_rows_free(qid_result *rows, size_t n)
{
    if (!rows) return;
    for (size_t i = 0; i < n; i++) {
        for (size_t c = 0; c < QID_RESULT_N_COLUMNS; c++)
            if (qid_result_columns[c].kind == QID_COL_STR) free((void *)*str_field(&rows[i], &qid_result_columns[c]));
        free((void *)rows[i].window_nll);
        free((void *)rows[i].window_tokens);
    }
    free(rows);
}

/* ---- /fits ------------------------------------------------------------------------ */

_Static_assert(sizeof(hid_t) == sizeof(int64_t), "qid_results_fit_writer passes hid_t as int64_t");

int qid_results_write_fit(const char *path, const char *name, qid_results_fit_writer write, void *ctx, qid_error *err)
{
    hid_t fapl = H5I_INVALID_HID, fid = H5I_INVALID_HID, fits = H5I_INVALID_HID, g = H5I_INVALID_HID;
    store_lock lock = {-1, NULL};
    int rc = QID_OK;
    char *tmp = NULL;
    if (!name || !name[0] || strchr(name, '/') || strcmp(name, ".") == 0)
        return qid_error_set(err, QID_E_INVALID, "bad fit name '%s' (non-empty, no '/')", name ? name : "");
    if (lock_take(path, &lock, err)) return err ? err->code : QID_E_INVALID;
    if (access(path, F_OK) != 0) {
        rc = qid_error_set(err, QID_E_IO, "cannot open results store '%s': %s", path, strerror(errno));
        goto out;
    }
    if (status_flags(path) > 0) {
        rc = qid_error_set(err, QID_E_INVALID,
                           "results store '%s' was not closed by its last writer (killed?); the next 'qid run' on it "
                           "repairs it (or run 'h5clear -s')",
                           path);
        goto out;
    }
    /* The fit goes into a copy, renamed over the store once it is complete
     * and on disk: a full disk or a kill part-way leaves the store as it was
     * (HDF5 without SWMR does not order its writes, so a failure half-way
     * through an in-place write could leave it unreadable). */
    tmp = qid_malloc(strlen(path) + 32, "a temporary file name");
    sprintf(tmp, "%s.fit.%ld", path, (long)getpid());
    unlink(tmp); /* a killed fit's, with our pid */
    if ((rc = qid_copy_file(path, tmp, err))) {
        free(tmp);
        tmp = NULL;
        goto out;
    }
    fapl = fapl_latest();
    QID_H5_TRY(err, fid = H5Fopen(tmp, H5F_ACC_RDWR, fapl), "cannot open '%s' for writing /fits", tmp);
    if ((rc = check_format(fid, path, err))) goto out;
    htri_t have = 0;
    QID_H5_TRY(err, have = H5Lexists(fid, "fits", H5P_DEFAULT), "cannot look for '/fits' in '%s'", path);
    if (have)
        QID_H5_TRY(err, fits = H5Gopen2(fid, "fits", H5P_DEFAULT), "cannot open '/fits' in '%s'", path);
    else
        QID_H5_TRY(err, fits = H5Gcreate2(fid, "fits", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
                   "cannot create '/fits' in '%s'", path);
    QID_H5_TRY(err, have = H5Lexists(fits, name, H5P_DEFAULT), "cannot look for '/fits/%s' in '%s'", name, path);
    if (have) QID_H5_TRY(err, H5Ldelete(fits, name, H5P_DEFAULT), "cannot replace '/fits/%s' in '%s'", name, path);
    QID_H5_TRY(err, g = H5Gcreate2(fits, name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
               "cannot create '/fits/%s' in '%s'", name, path);
    if ((rc = write(g, ctx, err)) != QID_OK) goto out;
    H5Gclose(g);
    g = H5I_INVALID_HID;
    H5Gclose(fits);
    fits = H5I_INVALID_HID;
    QID_H5_TRY(err, H5Fflush(fid, H5F_SCOPE_GLOBAL), "cannot write '/fits/%s' into '%s'", name, tmp);
    hid_t f = fid;
    fid = H5I_INVALID_HID;
    QID_H5_TRY(err, H5Fclose(f), "cannot write '/fits/%s' into '%s'", name, tmp);
    int fd = open(tmp, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fsync(fd) != 0) {
        rc = qid_error_set(err, QID_E_IO, "cannot write '%s': %s", tmp, strerror(errno));
        if (fd >= 0) close(fd);
        goto out;
    }
    close(fd);
    if (rename(tmp, path) != 0) {
        rc = qid_error_set(err, QID_E_IO, "cannot rename '%s' to '%s': %s", tmp, path, strerror(errno));
        goto out;
    }
    fsync_dir_of(path);
    free(tmp);
    tmp = NULL;
    goto out;
fail:
    rc = err ? err->code : QID_E_HDF5;
out:
    if (g >= 0) H5Gclose(g);
    if (fits >= 0) H5Gclose(fits);
    if (tmp) (void)truncate(tmp, 0); /* room for the close's last flush on a full disk */
    if (fid >= 0) {
        H5E_BEGIN_TRY { H5Fclose(fid); }
        H5E_END_TRY;
    }
    if (tmp) {
        unlink(tmp);
        free(tmp);
    }
    if (fapl >= 0) H5Pclose(fapl);
    lock_release(&lock);
    return rc;
}
