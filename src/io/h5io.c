/* h5io.c - checked HDF5 helpers shared by the qid file formats: typed
 * attributes, format/schema checks, 16-bit float types and conversions, and
 * crash-safe file creation (temporary name, fsync, rename).
 *
 * Does not: define any format's layout, or use the MPI-IO driver. */
#include "h5io.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- dtypes -------------------------------------------------------------- */

const char *qid_dtype_name(qid_dtype dt)
{
    switch (dt) {
    case QID_DTYPE_F32: return "float32";
    case QID_DTYPE_F16: return "float16";
    case QID_DTYPE_BF16: return "bfloat16";
    }
    return "?";
}

int qid_dtype_parse(const char *name)
{
    if (strcmp(name, "float32") == 0) return QID_DTYPE_F32;
    if (strcmp(name, "float16") == 0) return QID_DTYPE_F16;
    if (strcmp(name, "bfloat16") == 0) return QID_DTYPE_BF16;
    return -1;
}

size_t qid_dtype_size(qid_dtype dt) { return dt == QID_DTYPE_F32 ? 4 : 2; }

hid_t qid_h5_dtype_type(qid_dtype dt)
{
    hid_t t = H5I_INVALID_HID;
    QID_H5_CHECK(t = H5Tcopy(H5T_IEEE_F32LE));
    if (dt == QID_DTYPE_F32) return t;
    if (dt == QID_DTYPE_F16) {
        QID_H5_CHECK(H5Tset_fields(t, 15, 10, 5, 0, 10));
        QID_H5_CHECK(H5Tset_precision(t, 16));
        QID_H5_CHECK(H5Tset_size(t, 2));
        QID_H5_CHECK(H5Tset_ebias(t, 15));
    } else {
        QID_H5_CHECK(H5Tset_fields(t, 15, 7, 8, 0, 7));
        QID_H5_CHECK(H5Tset_precision(t, 16));
        QID_H5_CHECK(H5Tset_size(t, 2));
        QID_H5_CHECK(H5Tset_ebias(t, 127));
    }
    return t;
}

static float f32_from_bits(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static uint32_t f32_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

void qid_f16_to_f32(const uint16_t *restrict in, float *restrict out, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint32_t h = in[i], sign = (h & 0x8000u) << 16, exp = (h >> 10) & 31, man = h & 0x3ff;
        uint32_t u;
        if (exp == 31) {
            u = sign | 0x7f800000u | (man << 13);
        } else if (exp != 0) {
            u = sign | ((exp + 112) << 23) | (man << 13);
        } else if (man == 0) {
            u = sign;
        } else { /* subnormal: man * 2^-24, exact in float */
            float v = (float)man * 0x1p-24f;
            u = sign | f32_bits(v);
        }
        out[i] = f32_from_bits(u);
    }
}

void qid_bf16_to_f32(const uint16_t *restrict in, float *restrict out, size_t n)
{
    for (size_t i = 0; i < n; i++)
        out[i] = f32_from_bits((uint32_t)in[i] << 16);
}

uint16_t qid_f32_to_bf16(float x)
{
    uint32_t u = f32_bits(x);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40); /* quiet NaN */
    u += 0x7fffu + ((u >> 16) & 1);
    return (uint16_t)(u >> 16);
}

uint16_t qid_f32_to_f16(float x)
{
    uint32_t u = f32_bits(x), sign = (u >> 16) & 0x8000u;
    uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u) return (uint16_t)(sign | 0x7e00u);
    if (a >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u); /* rounds to >= 65520: inf */
    if (a < 0x38800000u) {                                   /* below 2^-14: subnormal or zero */
        float v = f32_from_bits(a) * 0x1p24f;                /* exact scaling, then RNE to integer */
        return (uint16_t)(sign | (uint32_t)nearbyintf(v));
    }
    uint32_t r = a + 0xfffu + ((a >> 13) & 1); /* round mantissa to 10 bits, nearest even */
    return (uint16_t)(sign | ((r - 0x38000000u) >> 13));
}

/* ---- creating files safely ---------------------------------------------- */

hid_t qid_h5_create_tmp(const char *path, char **tmp_path, qid_error *err)
{
    size_t n = strlen(path) + 32;
    char *tmp = qid_malloc(n, "a temporary file name");
    snprintf(tmp, n, "%s.tmp.%ld", path, (long)getpid());
    hid_t fid = H5I_INVALID_HID;
    QID_H5_TRY(err, fid = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT), "cannot create '%s'", tmp);
    *tmp_path = tmp;
    return fid;
fail:
    unlink(tmp); /* a create that failed on a full disk leaves the file */
    free(tmp);
    *tmp_path = NULL;
    return H5I_INVALID_HID;
}

/* fsyncs path (a directory when dir is set); returns 0 or the errno of a
 * failed fsync (a file system that reports a full disk only there, as NFS
 * can). A directory that cannot be opened is not an error. */
static int fsync_path(const char *path, int dir)
{
    int fd = open(path, dir ? O_RDONLY | O_DIRECTORY : O_RDONLY), e = 0;
    if (fd < 0) return dir ? 0 : errno;
    if (fsync(fd) != 0) e = errno;
    if (close(fd) != 0 && !e) e = errno;
    return dir ? 0 : e;
}

int qid_h5_commit(hid_t fid, char *tmp_path, const char *path, qid_error *err)
{
    int rc = QID_OK;
    QID_H5_TRY(err, H5Fflush(fid, H5F_SCOPE_GLOBAL), "cannot flush '%s'", tmp_path);
    hid_t f = fid;
    fid = H5I_INVALID_HID;
    QID_H5_TRY(err, H5Fclose(f), "cannot close '%s'", tmp_path);
    int e = fsync_path(tmp_path, 0);
    if (e) {
        rc = qid_error_set(err, QID_E_IO, "cannot write '%s': %s", tmp_path, strerror(e));
        qid_h5_discard(H5I_INVALID_HID, tmp_path);
        return rc;
    }
    if (rename(tmp_path, path) != 0) {
        rc = qid_error_set(err, QID_E_IO, "cannot rename '%s' to '%s': %s", tmp_path, path, strerror(errno));
        unlink(tmp_path);
        free(tmp_path);
        return rc;
    }
    char *dcopy = qid_strdup(path);
    fsync_path(dirname(dcopy), 1);
    free(dcopy);
    free(tmp_path);
    return QID_OK;
fail:
    qid_h5_discard(fid, tmp_path);
    return err ? err->code : QID_E_HDF5;
}

void qid_h5_discard(hid_t fid, char *tmp_path)
{
    /* Emptied first: on a full disk the close's last flush then has the
     * space the file held, and succeeds (its contents no longer matter). */
    if (tmp_path) (void)truncate(tmp_path, 0);
    if (fid >= 0) {
        H5E_BEGIN_TRY { H5Fclose(fid); }
        H5E_END_TRY;
    }
    if (tmp_path) {
        unlink(tmp_path);
        free(tmp_path);
    }
}

/* ---- attributes ----------------------------------------------------------- */

const char *qid_h5_file_name(hid_t obj, char *buf, size_t len)
{
    ssize_t n = H5Fget_name(obj, buf, len);
    if (n < 0) snprintf(buf, len, "?");
    return buf;
}

static int attr_write(hid_t obj, const char *name, hid_t type, const void *value, qid_error *err)
{
    hid_t space = H5I_INVALID_HID, attr = H5I_INVALID_HID;
    char fname[512];
    QID_H5_TRY(err, space = H5Screate(H5S_SCALAR), "cannot create a dataspace");
    if (H5Aexists(obj, name) > 0) QID_H5_TRY(err, H5Adelete(obj, name), "cannot replace attribute '%s'", name);
    QID_H5_TRY(err, attr = H5Acreate2(obj, name, type, space, H5P_DEFAULT, H5P_DEFAULT),
               "cannot create attribute '%s' in '%s'", name, qid_h5_file_name(obj, fname, sizeof fname));
    QID_H5_TRY(err, H5Awrite(attr, type, value), "cannot write attribute '%s' in '%s'", name,
               qid_h5_file_name(obj, fname, sizeof fname));
    H5Aclose(attr);
    H5Sclose(space);
    return QID_OK;
fail:
    if (attr >= 0) H5Aclose(attr);
    if (space >= 0) H5Sclose(space);
    return err ? err->code : QID_E_HDF5;
}

int qid_h5_attr_write_str(hid_t obj, const char *name, const char *value, qid_error *err)
{
    hid_t t = H5I_INVALID_HID;
    QID_H5_CHECK(t = H5Tcopy(H5T_C_S1));
    QID_H5_CHECK(H5Tset_size(t, H5T_VARIABLE));
    QID_H5_CHECK(H5Tset_cset(t, H5T_CSET_UTF8));
    int rc = attr_write(obj, name, t, &value, err);
    H5Tclose(t);
    return rc;
}

int qid_h5_attr_write_i64(hid_t obj, const char *name, int64_t value, qid_error *err)
{
    return attr_write(obj, name, H5T_STD_I64LE, &value, err);
}

int qid_h5_attr_write_f64(hid_t obj, const char *name, double value, qid_error *err)
{
    return attr_write(obj, name, H5T_IEEE_F64LE, &value, err);
}

int qid_h5_attr_exists(hid_t obj, const char *name)
{
    htri_t e = H5Aexists(obj, name);
    return e > 0;
}

static hid_t attr_open(hid_t obj, const char *where, const char *name, qid_error *err)
{
    char fname[512];
    if (!qid_h5_attr_exists(obj, name)) {
        qid_error_set(err, QID_E_FORMAT, "attribute '%s' missing on '%s' in '%s'", name, where,
                      qid_h5_file_name(obj, fname, sizeof fname));
        return H5I_INVALID_HID;
    }
    hid_t attr = H5I_INVALID_HID;
    QID_H5_TRY(err, attr = H5Aopen(obj, name, H5P_DEFAULT), "cannot open attribute '%s' on '%s' in '%s'", name, where,
               qid_h5_file_name(obj, fname, sizeof fname));
    hid_t space = H5Aget_space(attr);
    hssize_t npoints = space >= 0 ? H5Sget_simple_extent_npoints(space) : -1;
    if (space >= 0) H5Sclose(space);
    if (npoints != 1) {
        qid_error_set(err, QID_E_FORMAT, "attribute '%s' on '%s' in '%s' is not a single value", name, where,
                      qid_h5_file_name(obj, fname, sizeof fname));
        H5Aclose(attr);
        return H5I_INVALID_HID;
    }
    return attr;
fail:
    return H5I_INVALID_HID;
}

int qid_h5_attr_read_strdup(hid_t obj, const char *where, const char *name, char **out, qid_error *err)
{
    char fname[512];
    hid_t attr = attr_open(obj, where, name, err), ftype = H5I_INVALID_HID, mtype = H5I_INVALID_HID;
    *out = NULL;
    if (attr < 0) return err ? err->code : QID_E_FORMAT;
    QID_H5_TRY(err, ftype = H5Aget_type(attr), "cannot read the type of attribute '%s'", name);
    if (H5Tget_class(ftype) != H5T_STRING) {
        qid_error_set(err, QID_E_FORMAT, "attribute '%s' on '%s' in '%s' is not a string", name, where,
                      qid_h5_file_name(obj, fname, sizeof fname));
        goto fail;
    }
    QID_H5_TRY(err, mtype = H5Tcopy(H5T_C_S1), "cannot copy a string type");
    QID_H5_TRY(err, H5Tset_cset(mtype, H5Tget_cset(ftype)), "cannot set a string character set");
    if (H5Tis_variable_str(ftype) > 0) {
        char *v = NULL;
        QID_H5_TRY(err, H5Tset_size(mtype, H5T_VARIABLE), "cannot size a string type");
        QID_H5_TRY(err, H5Aread(attr, mtype, &v), "cannot read attribute '%s' on '%s' in '%s'", name, where,
                   qid_h5_file_name(obj, fname, sizeof fname));
        *out = qid_strdup(v ? v : "");
        H5free_memory(v);
    } else {
        size_t n = H5Tget_size(ftype);
        char *v = qid_calloc(n + 1, 1, "a string attribute");
        QID_H5_TRY(err, H5Tset_size(mtype, n + 1), "cannot size a string type");
        if (H5Aread(attr, mtype, v) < 0) {
            free(v);
            qid_h5_error_set(err, qid_h5_take_stack(), "H5Aread", __FILE__, __LINE__,
                             "cannot read attribute '%s' on '%s' in '%s'", name, where,
                             qid_h5_file_name(obj, fname, sizeof fname));
            goto fail;
        }
        *out = v;
    }
    H5Tclose(mtype);
    H5Tclose(ftype);
    H5Aclose(attr);
    return QID_OK;
fail:
    if (mtype >= 0) H5Tclose(mtype);
    if (ftype >= 0) H5Tclose(ftype);
    H5Aclose(attr);
    return err ? err->code : QID_E_FORMAT;
}

int qid_h5_attr_read_str(hid_t obj, const char *where, const char *name, char *buf, size_t len, qid_error *err)
{
    char *v = NULL, fname[512];
    int rc = qid_h5_attr_read_strdup(obj, where, name, &v, err);
    if (rc) return rc;
    if (strlen(v) >= len) {
        free(v);
        return qid_error_set(err, QID_E_FORMAT, "attribute '%s' on '%s' in '%s' is longer than %zu characters", name,
                             where, qid_h5_file_name(obj, fname, sizeof fname), len - 1);
    }
    memcpy(buf, v, strlen(v) + 1);
    free(v);
    return QID_OK;
}

static int attr_read_num(hid_t obj, const char *where, const char *name, hid_t mtype, int want_int, void *value,
                         qid_error *err)
{
    char fname[512];
    hid_t attr = attr_open(obj, where, name, err), ftype = H5I_INVALID_HID;
    if (attr < 0) return err ? err->code : QID_E_FORMAT;
    QID_H5_TRY(err, ftype = H5Aget_type(attr), "cannot read the type of attribute '%s'", name);
    H5T_class_t cls = H5Tget_class(ftype);
    if (!(cls == H5T_INTEGER || (!want_int && cls == H5T_FLOAT))) {
        qid_error_set(err, QID_E_FORMAT, "attribute '%s' on '%s' in '%s' is not %s", name, where,
                      qid_h5_file_name(obj, fname, sizeof fname), want_int ? "an integer" : "a number");
        goto fail;
    }
    QID_H5_TRY(err, H5Aread(attr, mtype, value), "cannot read attribute '%s' on '%s' in '%s'", name, where,
               qid_h5_file_name(obj, fname, sizeof fname));
    H5Tclose(ftype);
    H5Aclose(attr);
    return QID_OK;
fail:
    if (ftype >= 0) H5Tclose(ftype);
    H5Aclose(attr);
    return err ? err->code : QID_E_FORMAT;
}

int qid_h5_attr_read_i64(hid_t obj, const char *where, const char *name, int64_t *value, qid_error *err)
{
    return attr_read_num(obj, where, name, H5T_NATIVE_INT64, 1, value, err);
}

int qid_h5_attr_read_f64(hid_t obj, const char *where, const char *name, double *value, qid_error *err)
{
    return attr_read_num(obj, where, name, H5T_NATIVE_DOUBLE, 0, value, err);
}

/* ---- self-description ---------------------------------------------------- */

int qid_h5_write_format(hid_t fid, const char *format, int64_t version, qid_error *err)
{
    int rc = qid_h5_attr_write_str(fid, "format", format, err);
    if (!rc) rc = qid_h5_attr_write_i64(fid, "schema_version", version, err);
    return rc;
}

int qid_h5_read_format(hid_t fid, char *buf, size_t len, qid_error *err)
{
    buf[0] = '\0';
    if (!qid_h5_attr_exists(fid, "format")) return QID_OK;
    return qid_h5_attr_read_str(fid, "/", "format", buf, len, err);
}

int qid_h5_check_readable(const char *path, qid_error *err)
{
    if (access(path, R_OK) != 0) return qid_error_set(err, QID_E_IO, "cannot open '%s': %s", path, strerror(errno));
    if (H5Fis_hdf5(path) <= 0)
        return qid_error_set(err, QID_E_FORMAT, "'%s' is not an HDF5 file (truncated or another format?)", path);
    return QID_OK;
}

int qid_h5_check_format(hid_t fid, const char *path, const char *format, int64_t max_version, int64_t *version,
                        qid_error *err)
{
    char got[64];
    int64_t v = 0;
    if (qid_h5_read_format(fid, got, sizeof got, err)) return err ? err->code : QID_E_FORMAT;
    if (!got[0])
        return qid_error_set(err, QID_E_FORMAT, "'%s' has no 'format' attribute: not a qid file (expected %s)", path,
                             format);
    if (strcmp(got, format) != 0)
        return qid_error_set(err, QID_E_FORMAT, "'%s' is a %s file, expected %s", path, got, format);
    if (qid_h5_attr_read_i64(fid, "/", "schema_version", &v, err)) return err ? err->code : QID_E_FORMAT;
    if (v < 1 || v > max_version)
        return qid_error_set(
            err, QID_E_FORMAT, "'%s' has %s schema_version %lld, this qid reads versions 1..%lld (hint: %s)", path,
            format, (long long)v, (long long)max_version,
            v > max_version ? "upgrade qid, or re-create the file with this version" : "the file is corrupt");
    if (version) *version = v;
    return QID_OK;
}

hid_t qid_h5_open_format(const char *path, const char *format, int64_t max_version, int64_t *version, qid_error *err)
{
    hid_t fid = H5I_INVALID_HID;
    if (qid_h5_check_readable(path, err)) return H5I_INVALID_HID;
    QID_H5_TRY(err, fid = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT), "cannot open '%s'", path);
    if (qid_h5_check_format(fid, path, format, max_version, version, err)) goto fail;
    return fid;
fail:
    if (fid >= 0) H5Fclose(fid);
    return H5I_INVALID_HID;
}

int qid_h5_check_storage(hid_t dset, const char *what, const char *path, uint64_t n_elems, int partial_chunk,
                         qid_error *err)
{
    hid_t type = H5Dget_type(dset), dcpl = H5Dget_create_plist(dset);
    uint64_t elem = type >= 0 ? (uint64_t)H5Tget_size(type) : 0, chunk_bytes = 0;
    int filtered = 0;
    if (dcpl >= 0) {
        filtered = H5Pget_nfilters(dcpl) > 0;
        hsize_t chunk[H5S_MAX_RANK];
        int nd = H5Pget_layout(dcpl) == H5D_CHUNKED ? H5Pget_chunk(dcpl, H5S_MAX_RANK, chunk) : 0;
        if (nd > 0) {
            chunk_bytes = elem;
            for (int i = 0; i < nd; i++)
                chunk_bytes = chunk[i] && chunk_bytes > UINT64_MAX / chunk[i] ? UINT64_MAX : chunk_bytes * chunk[i];
        }
    }
    if (type >= 0) H5Tclose(type);
    if (dcpl >= 0) H5Pclose(dcpl);
    uint64_t need = elem && n_elems > UINT64_MAX / elem ? UINT64_MAX : n_elems * elem;
    uint64_t have = (uint64_t)H5Dget_storage_size(dset);
    if (filtered) have = have > UINT64_MAX / 1100 ? UINT64_MAX : have * 1100;
    const uint64_t max_slack = 16u << 20; /* the part of one chunk a killed writer left unwritten */
    uint64_t slack = !partial_chunk ? 0 : chunk_bytes < max_slack ? chunk_bytes : max_slack;
    have = have > UINT64_MAX - slack ? UINT64_MAX : have + slack;
    if (need <= have) return QID_OK;
    return qid_error_set(err, QID_E_FORMAT,
                         "'%s' in '%s' claims %" PRIu64 " elements (%" PRIu64 " bytes) but holds %" PRIu64
                         " bytes of data (a truncated or damaged file)",
                         what, path, n_elems, need, (uint64_t)H5Dget_storage_size(dset));
}
