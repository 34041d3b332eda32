/* job_text.c - the text helpers of the job-file modules (job_internal.h):
 * a growing string, user text clipped for messages, blank trimming.
 *
 * Does not: know the job-file syntax (jobfile.c) or keys (job_grid.c). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "job_internal.h"

void job_sb_putn(job_sbuf *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->len + n + 1)
            cap *= 2;
        b->s = qid_realloc(b->s, cap, "a job string");
        b->cap = cap;
    }
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = '\0';
}

void job_sb_puts(job_sbuf *b, const char *s) { job_sb_putn(b, s, strlen(s)); }

void job_sb_printf(job_sbuf *b, const char *fmt, ...)
{
    char small[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    QID_CHECK(n >= 0, "vsnprintf failed");
    if ((size_t)n < sizeof small) {
        job_sb_putn(b, small, (size_t)n);
        return;
    }
    char *big = qid_malloc((size_t)n + 1, "a job string");
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    job_sb_putn(b, big, (size_t)n);
    free(big);
}

char *job_sb_take(job_sbuf *b)
{
    char *s = b->s ? b->s : qid_strdup("");
    *b = (job_sbuf){0};
    return s;
}

const char *job_clip(const char *s, job_clipbuf *c)
{
    size_t n = strlen(s);
    if (n <= JOB_CLIP_BYTES) return s;
    size_t k = JOB_CLIP_BYTES;
    while (k > 0 && ((unsigned char)s[k] & 0xC0) == 0x80)
        k--;
    memcpy(c->s, s, k);
    memcpy(c->s + k, "...", 4);
    return c->s;
}

char *job_trim(char *s)
{
    while (job_is_blank(*s))
        s++;
    size_t n = strlen(s);
    while (n > 0 && job_is_blank(s[n - 1]))
        s[--n] = '\0';
    return s;
}
