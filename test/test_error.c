/* test_error.c - the error core (status messages, HDF5 and LAPACKE failure
 * reports, fatal checks in a child process) and the h5io helpers (16-bit
 * float conversions against HDF5's own converter for all 65536 patterns,
 * attributes, format checks, crash-safe creation). */
#include <lapacke.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "error.h"
#include "h5io.h"
#include "tap.h"

/* Runs fn in a child with stderr captured; returns its exit status. */
static int in_child(void (*fn)(void), char *stderr_text, size_t len)
{
    int fds[2];
    if (pipe(fds) != 0) bail("pipe");
    pid_t pid = fork();
    if (pid == 0) { /* the child's TAP output (its exit report) goes nowhere */
        if (!freopen("/dev/null", "w", stdout)) _exit(99);
        dup2(fds[1], 2);
        close(fds[0]);
        fn();
        _exit(0);
    }
    close(fds[1]);
    /* Read to the end: a child whose stderr has more than one write (a
     * sanitizer's warning before qid's message) must not die of SIGPIPE. */
    size_t used = 0;
    ssize_t n;
    char sink[256];
    while ((n = read(fds[0], used + 1 < len ? stderr_text + used : sink,
                     used + 1 < len ? len - 1 - used : sizeof sink)) > 0)
        if (used + 1 < len) used += (size_t)n;
    stderr_text[used] = '\0';
    close(fds[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

static void failing_check(void)
{
    int layers = 3;
    QID_CHECK(layers == 4, "model has %d layers", layers);
}
static void huge_alloc(void) { (void)qid_malloc((size_t)1 << 62, "the test's giant buffer"); }

static int open_missing_dataset(hid_t fid, qid_error *err)
{
    hid_t d = H5I_INVALID_HID;
    QID_H5_TRY(err, d = H5Dopen2(fid, "/layers/3/attn.qkv.weight", H5P_DEFAULT), "cannot open dataset '%s' in '%s'",
               "/layers/3/attn.qkv.weight", "x.h5");
    H5Dclose(d);
    return QID_OK;
fail:
    return err->code;
}

static int factor_indefinite(qid_error *err)
{
    double a[4] = {1, 2, 2, 1}; /* eigenvalues 3 and -1 */
    lapack_int info = 0;
    QID_LAPACKE_TRY(err, info, LAPACKE_dpotrf(LAPACK_ROW_MAJOR, 'U', 2, a, 2), "Cholesky of layer %d's Hessian", 7);
    return QID_OK;
fail:
    return err->code;
}

int main(void)
{
    qid_h5_silence();
    plan(36);
    qid_error err;

    /* status messages */
    qid_error_clear(&err);
    is_int(QID_OK, err.code, "cleared error is OK");
    is_int(QID_E_IO, qid_error_set(&err, QID_E_IO, "cannot open '%s'", "a.h5"), "set returns the code");
    is_string("cannot open 'a.h5'", err.msg, "set formats the message");
    qid_error_wrap(&err, QID_E_FORMAT, "task %d", 5);
    is_string("task 5: cannot open 'a.h5'", err.msg, "wrap prefixes context");
    is_int(QID_E_FORMAT, err.code, "wrap sets the new code");
    is_string("numeric", qid_status_name(QID_E_NUMERIC), "status names");
    is_int(QID_E_USAGE, qid_error_set(NULL, QID_E_USAGE, "dropped"), "a NULL error is allowed");
    is_int(12, (long long)qid_mul_size(3, 4), "qid_mul_size multiplies");
    is_int(7, qid_mpi_count(7, "floats"), "qid_mpi_count narrows small counts");

    /* tier 1 and 2 die with context, in a child */
    char text[4096];
    is_int(1, in_child(failing_check, text, sizeof text), "a failed check exits 1");
    like(text,
         "fatal: check 'layers == 4' failed: model has 3 layers (at test/test_error.c:", "check: message and place");
    is_int(1, in_child(huge_alloc, text, sizeof text), "failed allocation exits 1");
    like(text, "out of memory allocating 4611686018427387904 bytes for the test's giant buffer",
         "allocation: bytes and label");

    /* HDF5 failures become one line with context, HDF5's reason and the call */
    const char *dir = tap_tmpdir();
    char path[4200];
    snprintf(path, sizeof path, "%s/a.h5", dir);
    hid_t fid = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    is_int(QID_E_HDF5, open_missing_dataset(fid, &err), "missing dataset is an HDF5 error");
    like(err.msg, "cannot open dataset '/layers/3/attn.qkv.weight' in 'x.h5': ", "HDF5: context first");
    like(err.msg, "(H5Dopen2 at test_error.c:", "HDF5: call and place");
    ok(strstr(err.msg, "not found") || strstr(err.msg, "doesn't exist") || strstr(err.msg, "does not exist"),
       "HDF5: the library's own reason is kept (%s)", err.msg);
    H5Fclose(fid);

    /* LAPACKE info > 0 is a recoverable numeric error */
    is_int(QID_E_NUMERIC, factor_indefinite(&err), "indefinite Cholesky is a numeric error");
    like(err.msg, "Cholesky of layer 7's Hessian: LAPACKE_dpotrf returned info=2", "LAPACKE: message");

    /* 16-bit floats: every pattern against HDF5's converter */
    hid_t f16 = qid_h5_dtype_type(QID_DTYPE_F16), bf16 = qid_h5_dtype_type(QID_DTYPE_BF16);
    uint16_t *pat = malloc(65536 * 2);
    float *ours = malloc(65536 * 4), *theirs = malloc(65536 * 4);
    long f16_bad = 0, bf16_bad = 0, rt_bad = 0;
    for (int k = 0; k < 2; k++) {
        hid_t t = k ? bf16 : f16;
        for (uint32_t i = 0; i < 65536; i++) {
            pat[i] = (uint16_t)i;
            memcpy((char *)theirs + 2 * i, &pat[i], 2); /* packed; converted in place below */
        }
        H5Tconvert(t, H5T_NATIVE_FLOAT, 65536, theirs, NULL, H5P_DEFAULT);
        if (k)
            qid_bf16_to_f32(pat, ours, 65536);
        else
            qid_f16_to_f32(pat, ours, 65536);
        for (uint32_t i = 0; i < 65536; i++) {
            int same = memcmp(&ours[i], &theirs[i], 4) == 0 || (isnan(ours[i]) && isnan(theirs[i]));
            if (!same && k) bf16_bad++;
            if (!same && !k) f16_bad++;
            uint16_t back = k ? qid_f32_to_bf16(ours[i]) : qid_f32_to_f16(ours[i]);
            if (!isnan(ours[i]) && back != pat[i]) rt_bad++;
        }
    }
    is_int(0, f16_bad, "float16 -> float32 equals HDF5's conversion for all 65536 patterns");
    is_int(0, bf16_bad, "bfloat16 -> float32 equals HDF5's conversion for all 65536 patterns");
    is_int(0, rt_bad, "16-bit -> float32 -> 16-bit is the identity (non-NaN)");
    free(pat);
    free(ours);
    free(theirs);
    H5Tclose(f16);
    H5Tclose(bf16);
    is_int(0x3c00, qid_f32_to_f16(1.0f), "f16(1.0)");
    is_int(0x3c00, qid_f32_to_f16(1.0f + 0x1p-11f), "f16 tie rounds to even (down)");
    is_int(0x3c02, qid_f32_to_f16(1.0f + 3 * 0x1p-11f), "f16 tie rounds to even (up)");
    is_int(0x7c00, qid_f32_to_f16(65520.0f), "f16 overflow -> inf");
    is_int(0x0001, qid_f32_to_f16(0x1p-24f), "f16 smallest subnormal");
    is_int(0x3f80, qid_f32_to_bf16(1.0f + 0x1p-8f), "bf16 tie rounds to even");

    /* attributes and format checks */
    char *tmp = NULL;
    snprintf(path, sizeof path, "%s/f.h5", dir);
    fid = qid_h5_create_tmp(path, &tmp, &err);
    ok(fid >= 0 && tmp && tap_exists(tmp) && !tap_exists(path), "create_tmp writes under a temporary name");
    qid_h5_write_format(fid, "qid-test", 2, &err);
    qid_h5_attr_write_f64(fid, "x", 2.5, &err);
    qid_h5_attr_write_str(fid, "s", "héllo", &err);
    is_int(QID_OK, qid_h5_commit(fid, tmp, path, &err), "commit renames into place");
    int64_t v = 0;
    hid_t g = qid_h5_open_format(path, "qid-test", 2, &v, &err);
    ok(g >= 0 && v == 2, "open_format accepts its own format and version");
    double x = 0;
    char s[16];
    qid_h5_attr_read_f64(g, "/", "x", &x, &err);
    qid_h5_attr_read_str(g, "/", "s", s, sizeof s, &err);
    ok(x == 2.5 && strcmp(s, "héllo") == 0, "attributes read back (UTF-8 kept)");
    is_int(QID_E_FORMAT, qid_h5_attr_read_i64(g, "/", "x", &v, &err), "a float attribute is not an integer");
    is_int(QID_E_FORMAT, qid_h5_attr_read_i64(g, "/", "nope", &v, &err), "missing attribute");
    like(err.msg, "attribute 'nope' missing on '/' in '", "missing attribute: message");
    H5Fclose(g);
    g = qid_h5_open_format(path, "qid-test", 1, &v, &err);
    like(err.msg, "has qid-test schema_version 2, this qid reads versions 1..1 (hint: upgrade qid",
         "newer version hint");
    return 0;
}
