/* job_internal.h - what the job-file modules share and nothing else uses:
 * a growing string (job_text.c), quoting user text in messages and
 * trimming blanks (job_text.c), and paths in their two forms (job_path.c:
 * the key form relative to the job's directory, and the form to open).
 *
 * Users: jobfile.c (parsing), job_grid.c (expansion, keys, costs).
 *
 * Does not: parse or expand jobs; the public contract is jobfile.h. */
#ifndef QID_JOB_INTERNAL_H
#define QID_JOB_INTERNAL_H

#include <stddef.h>

#include "jobfile.h"

static inline int job_is_blank(int c) { return c == ' ' || c == '\t'; }
static inline int job_is_digit(int c) { return c >= '0' && c <= '9'; }

/* ---- a growing NUL-terminated string (dies only when out of memory) ---- */

typedef struct job_sbuf {
    char *s; /* NULL until something is written */
    size_t len, cap;
} job_sbuf;

void job_sb_putn(job_sbuf *b, const char *s, size_t n);
void job_sb_puts(job_sbuf *b, const char *s);
void job_sb_printf(job_sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Hands over the string (an empty one when nothing was written); b is
 * empty again. */
char *job_sb_take(job_sbuf *b);

/* ---- user text in messages ----------------------------------------------- */

/* Longest quoted user text, in bytes, before it is cut with "...". */
#define JOB_CLIP_BYTES 60
typedef struct job_clipbuf {
    char s[JOB_CLIP_BYTES + 4];
} job_clipbuf;

/* s, or its first JOB_CLIP_BYTES bytes (cut at a UTF-8 character boundary)
 * and "..." in c. The result lives as long as s and c. */
const char *job_clip(const char *s, job_clipbuf *c);

/* Trims blanks (space, tab) at both ends of s in place; returns the new
 * start. */
char *job_trim(char *s);

/* ---- paths ----------------------------------------------------------------- */

int job_path_is_abs(const char *p);
/* The directory part of a file name: "." when there is none; malloc'd. */
char *job_path_dir(const char *file);
/* Lexical normalization: no empty or "." components, "x/.." removed, ".."
 * above the root dropped, leading ".." of a relative path kept; "" -> ".".
 * malloc'd. */
char *job_path_normalize(const char *p);
/* The key form of `written`, found in a file whose own key-form directory
 * is base ("." for the job file itself); malloc'd. */
char *job_path_rel(const char *base, const char *written);
/* The openable form of a key-form path, for a job in directory dir;
 * malloc'd. */
char *job_path_open(const char *dir, const char *rel);
/* Both forms of `written` into jp (base as job_path_rel). */
void job_path_set(qid_job_path *jp, const char *dir, const char *base, const char *written);
/* Frees both forms; jp is zeroed. */
void job_path_free(qid_job_path *jp);

#endif
