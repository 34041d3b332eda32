/* h5io.h - small checked helpers at the HDF5 boundary shared by every qid
 * file format: self-description attributes, typed attribute I/O, the 16-bit
 * float types, and "write to a temporary name, rename at the end" creation.
 *
 * Does not: know any one format's layout (checkpoint.c, tokens.c and the
 * results store do), or open files with the MPI-IO driver.
 *
 * Every function returning int returns QID_OK or a status code and fills err
 * with one line naming the file and object. hid_t results are
 * H5I_INVALID_HID on failure. None of these functions is collective. */
#ifndef QID_H5IO_H
#define QID_H5IO_H

#include <hdf5.h>
#include <stdint.h>

#include "error.h"

/* Element types of stored floating-point tensors. The enum value is stable
 * (it is not written to files: the dtype attribute string is). */
typedef enum qid_dtype {
    QID_DTYPE_F32 = 0,
    QID_DTYPE_F16 = 1,
    QID_DTYPE_BF16 = 2,
} qid_dtype;

/* "float32", "float16", "bfloat16". */
const char *qid_dtype_name(qid_dtype dt);
/* Parses a dtype name; returns -1 when unknown. */
int qid_dtype_parse(const char *name);
size_t qid_dtype_size(qid_dtype dt);
/* A new HDF5 file type for dt (IEEE f32 LE, IEEE f16 LE, or bfloat16 LE as a
 * custom float: sign 15, exponent 7..14 bias 127, mantissa 0..6). Close with
 * H5Tclose. Dies on failure (these cannot fail on a working HDF5). */
hid_t qid_h5_dtype_type(qid_dtype dt);

/* Exact conversions of 16-bit floats to float32 (n elements). */
void qid_f16_to_f32(const uint16_t *restrict in, float *restrict out, size_t n);
void qid_bf16_to_f32(const uint16_t *restrict in, float *restrict out, size_t n);
/* Round-to-nearest-even float32 -> 16-bit (NaN stays NaN, overflow -> Inf). */
uint16_t qid_f32_to_f16(float x);
uint16_t qid_f32_to_bf16(float x);

/* ---- creating files safely --------------------------------------------- */

/* Creates "<path>.tmp.<pid>" (truncating a stale one) and returns its file id;
 * *tmp_path receives a malloc'd copy of the temporary name. */
hid_t qid_h5_create_tmp(const char *path, char **tmp_path, qid_error *err);
/* Flushes and closes fid and renames tmp_path to path. On failure removes the
 * temporary file. Frees tmp_path in every case. */
int qid_h5_commit(hid_t fid, char *tmp_path, const char *path, qid_error *err);
/* Closes fid (if valid) and removes tmp_path, quietly; frees tmp_path. For
 * error paths: nothing half-written is left behind. */
void qid_h5_discard(hid_t fid, char *tmp_path);

/* ---- self-description --------------------------------------------------- */

/* Writes root attributes format=<format> and schema_version=<version>. */
int qid_h5_write_format(hid_t fid, const char *format, int64_t version, qid_error *err);
/* Opens path read-only and checks its format and schema_version: a missing
 * attribute, another format, or a version newer than max_version fail with a
 * hint. Returns the file id or H5I_INVALID_HID. */
hid_t qid_h5_open_format(const char *path, const char *format, int64_t max_version, int64_t *version, qid_error *err);
/* QID_OK if path exists, is readable and is an HDF5 file; otherwise the
 * one-line error ("cannot open ...", "... is not an HDF5 file ..."). */
int qid_h5_check_readable(const char *path, qid_error *err);
/* Checks the format and schema_version attributes of an open file (path for
 * messages), with the same messages and hints as qid_h5_open_format. */
int qid_h5_check_format(hid_t fid, const char *path, const char *format, int64_t max_version, int64_t *version,
                        qid_error *err);
/* Checks that dataset dset (`what` names it, path the file, in messages)
 * holds the data its n_elems elements need, before a reader allocates for
 * them from its extent: an unfiltered dataset must have at least
 * n_elems * element-size bytes of storage, a filtered (compressed) one at
 * least 1/1100 of that (deflate cannot expand more). With partial_chunk
 * (a file appended to in place, which a killed writer may leave with its
 * last chunk unwritten) one chunk of at most 16 MiB may be missing. An extent written in the
 * file's metadata without its data (a damaged or hostile file) fails with
 * QID_E_FORMAT: "'/tasks' in 'F' claims N elements (B bytes) but holds S
 * bytes of data (a truncated or damaged file)". */
int qid_h5_check_storage(hid_t dset, const char *what, const char *path, uint64_t n_elems, int partial_chunk,
                         qid_error *err);
/* Reads the root `format` attribute of any file into buf ("" when absent). */
int qid_h5_read_format(hid_t fid, char *buf, size_t len, qid_error *err);

/* ---- attributes --------------------------------------------------------- */
/* obj is a file or group id; `where` names the object in error messages. */

int qid_h5_attr_write_str(hid_t obj, const char *name, const char *value, qid_error *err);
int qid_h5_attr_write_i64(hid_t obj, const char *name, int64_t value, qid_error *err);
int qid_h5_attr_write_f64(hid_t obj, const char *name, double value, qid_error *err);

/* Readers. A missing attribute is an error naming file/object/attribute. A
 * string longer than len-1 is an error. Integer readers reject non-integer
 * types; the double reader accepts integer and float attributes. */
int qid_h5_attr_read_str(hid_t obj, const char *where, const char *name, char *buf, size_t len, qid_error *err);
/* Same, into a malloc'd string of any length. */
int qid_h5_attr_read_strdup(hid_t obj, const char *where, const char *name, char **out, qid_error *err);
int qid_h5_attr_read_i64(hid_t obj, const char *where, const char *name, int64_t *value, qid_error *err);
int qid_h5_attr_read_f64(hid_t obj, const char *where, const char *name, double *value, qid_error *err);
/* 1 if obj has the attribute, 0 if not (errors count as 0). */
int qid_h5_attr_exists(hid_t obj, const char *name);

/* The file name of an open object, for messages ("?" when unknown). */
const char *qid_h5_file_name(hid_t obj, char *buf, size_t len);

#endif
