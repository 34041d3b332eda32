/* fsutil.h - small file-system helpers: reading a bounded text file whole,
 * hashing a file, joining and splitting paths, and the one check that an
 * output may be written ("exists (use --force to replace it)").
 *
 * Does not: touch HDF5 (h5io.h does). */
#ifndef QID_FSUTIL_H
#define QID_FSUTIL_H

#include <stddef.h>
#include <stdio.h>

#include "error.h"

/* Reads path into a malloc'd NUL-terminated buffer (*len bytes, not counting
 * the NUL). Files larger than max_bytes are rejected with QID_E_INVALID. */
int qid_read_text_file(const char *path, size_t max_bytes, char **out, size_t *len, qid_error *err);

/* SHA-256 of a file's bytes as 64 hex digits. */
int qid_sha256_file(const char *path, char hex[65], qid_error *err);

/* s (NULL: "") as one RFC 4180 CSV field: as it is, or quoted with its
 * quotes doubled when it holds a comma, a quote, a line break, or a leading
 * or trailing blank. The one CSV writer of `qid results --csv` and the
 * report's tables. */
void qid_csv_field(FILE *out, const char *s);

/* Copies the bytes of src into a new file dst (created with O_EXCL and
 * src's permission bits) and fsyncs it. On failure (a full disk among them)
 * removes dst and sets a one-line error naming the file that failed. */
int qid_copy_file(const char *src, const char *dst, qid_error *err);

/* "dir/name" into a malloc'd string. */
char *qid_path_join(const char *dir, const char *name);

/* 1 if path names an existing file or directory. */
int qid_path_exists(const char *path);

/* The last component of path: what follows its last '/' (path itself when
 * it has none). Points into path. */
const char *qid_path_base(const char *path);

/* The check every writer makes before it writes path: QID_OK when nothing
 * is there or force is set; otherwise QID_E_INVALID with "output '<path>'
 * exists (use --force to replace it)". */
int qid_output_check(const char *path, int force, qid_error *err);

#endif
