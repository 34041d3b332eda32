/* job_path.c - paths written in job and list files (job_internal.h): the
 * key form (relative to the job file's directory, lexically normalized, so
 * a task key does not depend on the current directory) and the form to
 * open (relative to the current directory).
 *
 * Does not: touch the file system (no stat, no realpath: symbolic links
 * are left as written); joining uses fsutil.h's qid_path_join. */
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "fsutil.h"
#include "job_internal.h"

int job_path_is_abs(const char *p) { return p[0] == '/'; }

char *job_path_dir(const char *file)
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

char *job_path_normalize(const char *p)
{
    size_t n = strlen(p);
    int abs = job_path_is_abs(p);
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
    job_sbuf b = {0};
    if (abs) job_sb_putn(&b, "/", 1);
    for (size_t j = 0; j < k; j++) {
        if (j) job_sb_putn(&b, "/", 1);
        job_sb_putn(&b, seg[j], seg_len[j]);
    }
    free(seg);
    free(seg_len);
    if (b.len == 0) job_sb_puts(&b, ".");
    return job_sb_take(&b);
}

/* a + "/" + b, normalized. */
static char *path_join_norm(const char *a, const char *b)
{
    char *j = qid_path_join(a, b);
    char *n = job_path_normalize(j);
    free(j);
    return n;
}

char *job_path_rel(const char *base, const char *written)
{
    if (job_path_is_abs(written) || strcmp(base, ".") == 0) return job_path_normalize(written);
    return path_join_norm(base, written);
}

char *job_path_open(const char *dir, const char *rel)
{
    if (job_path_is_abs(rel) || strcmp(dir, ".") == 0) return qid_strdup(rel);
    return path_join_norm(dir, rel);
}

void job_path_set(qid_job_path *jp, const char *dir, const char *base, const char *written)
{
    jp->rel = job_path_rel(base, written);
    jp->path = job_path_open(dir, jp->rel);
}

void job_path_free(qid_job_path *jp)
{
    free(jp->rel);
    free(jp->path);
    jp->rel = jp->path = NULL;
}
