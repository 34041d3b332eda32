/* fuzz_jobfile.c - libFuzzer target for the job file parser (qid_job_parse)
 * and the task grid built from a parsed job. The input is a whole job file.
 * Built and run by `make fuzz FUZZ_SECONDS=N` (clang with
 * -fsanitize=fuzzer,address,undefined) from the seeds in
 * test/fuzz/seeds-jobfile/. Any crash, sanitizer report or leak is a bug.
 *
 * Checked: an error is QID_E_INVALID with one line "fuzz.job:LINE: ...
 * expected ..."; a parsed job satisfies the invariants the scheduler relies
 * on (required settings present, canonical format names that parse back to
 * the same spec); the grid, expanded with QID_JOB_EXPAND_NO_FS so that no
 * glob, list file or checkpoint is ever touched, has unique keys, one block
 * of tasks per checkpoint, and the same keys when the job file sits in
 * another directory; the dry-run table prints.
 *
 * Does not: read files, run glob(3) or open HDF5 (expansion with the file
 * system is covered by test/test_jobfile.c). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "jobfile.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Largest grid expanded per input (keeps each run fast). */
#define MAX_FUZZ_TASKS 4096

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static void check_error(const qid_error *err, int rc)
{
    if (rc != QID_E_INVALID || err->code != QID_E_INVALID) abort();
    if (!err->msg[0] || strchr(err->msg, '\n') || strchr(err->msg, '\r')) abort();
    if (strncmp(err->msg, "fuzz.job:", 9) != 0) abort();
    const char *s = err->msg + 9;
    if (*s < '1' || *s > '9') abort();
    while (*s >= '0' && *s <= '9')
        s++;
    if (s[0] != ':' || s[1] != ' ') abort();
    if (!strstr(err->msg, "expected")) abort();
}

static void check_job(const qid_job *job, size_t size)
{
    if (job->text_len != size || !job->name || !job->results.rel || !job->results.path) abort();
    if (!job->eval.tokens.rel || !job->eval.tokens.path || job->n_srcs == 0) abort();
    if (job->n_quant == 0 || job->n_quant > QID_JOB_MAX_QUANT) abort();
    for (size_t i = 0; i < job->n_quant; i++) {
        const qid_job_quant *q = &job->quant[i];
        qid_quant_spec again;
        qid_error err;
        if (qid_quant_parse(q->format, &again, &err) != QID_OK) abort();
        if (memcmp(&again, &q->spec, sizeof again) != 0) abort();
        if (q->method != QID_JOB_METHOD_RTN && q->method != QID_JOB_METHOD_GPTQ) abort();
        if (q->method == QID_JOB_METHOD_GPTQ) {
            if (!job->calib.tokens.rel) abort();
            size_t m = q->gptq.micro_block; /* gptq.h's: 1 is plain GPTQ, the job's 0 */
            if (m == 0 || (m > 1 && ((q->spec.block && m % q->spec.block) || q->gptq.block % m))) abort();
        }
    }
    for (size_t i = 1; i < job->probes.n_radii; i++)
        if (!(job->probes.radii[i - 1] < job->probes.radii[i])) abort();
}

/* The sorted keys of the job's grid, or NULL when the grid is too big. */
static char **grid_keys(const qid_job *job, size_t *n, int print)
{
    size_t files = 0;
    for (size_t i = 0; i < job->n_srcs; i++)
        files += job->srcs[i].kind == QID_JOB_SRC_FILE;
    size_t per = 1 + (job->probes.n_radii > 0) + job->n_quant;
    if (files > MAX_FUZZ_TASKS / per) return NULL;

    qid_task *t;
    qid_error err;
    if (qid_job_tasks_flags(job, QID_JOB_EXPAND_NO_FS, &t, n, &err) != QID_OK) abort();
    if (*n % per != 0 || *n / per > files) abort();
    for (size_t i = 0; i < *n; i++) {
        if (t[i].index != i || t[i].ckpt != i / per || t[i].cost != 0 || t[i].params != -1) abort();
        if (!t[i].key || strchr(t[i].key, '\n')) abort();
        if (i % per == 0 && t[i].method != QID_JOB_METHOD_BASELINE) abort();
    }
    if (print) {
        char *buf = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&buf, &len);
        if (f) {
            cli_print_job_grid(job, t, *n, f);
            fclose(f);
        }
        free(buf);
    }
    char **keys = malloc((*n ? *n : 1) * sizeof *keys);
    if (!keys) abort();
    for (size_t i = 0; i < *n; i++) {
        keys[i] = t[i].key;
        t[i].key = NULL;
    }
    qid_job_tasks_free(t, *n);
    qsort(keys, *n, sizeof *keys, cmp_str);
    for (size_t i = 1; i < *n; i++)
        if (strcmp(keys[i - 1], keys[i]) == 0) abort();
    return keys;
}

static void free_keys(char **k, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(k[i]);
    free(k);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int quiet = 0;
    if (!quiet) {
        qid_log_set_level(QID_LOG_ERROR);
        quiet = 1;
    }
    qid_job job;
    qid_error err;
    qid_error_clear(&err);
    int rc = qid_job_parse((const char *)data, size, "fuzz.job", &job, &err);
    if (rc != QID_OK) {
        check_error(&err, rc);
        if (job.file || job.quant || job.srcs) abort(); /* zeroed on failure */
        return 0;
    }
    check_job(&job, size);

    /* the same text from another directory: same outcome, same keys */
    qid_job other;
    if (qid_job_parse((const char *)data, size, "some/where/else/fuzz.job", &other, &err) != QID_OK) abort();
    size_t n1 = 0, n2 = 0;
    char **k1 = grid_keys(&job, &n1, 1);
    char **k2 = k1 ? grid_keys(&other, &n2, 0) : NULL;
    if (k1) {
        if (!k2 || n1 != n2) abort();
        for (size_t i = 0; i < n1; i++)
            if (strcmp(k1[i], k2[i]) != 0) abort();
        free_keys(k1, n1);
        free_keys(k2, n2);
    }
    qid_job_free(&other);
    qid_job_free(&job);
    return 0;
}
