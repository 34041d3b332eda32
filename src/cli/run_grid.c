/* run_grid.c - the `qid run --dry-run` table (cli.h, cli_print_job_grid):
 * the job's settings, one row per task with its estimated cost and share,
 * totals per method.
 *
 * Does not: expand the grid (jobfile.h, qid_job_tasks) or decide what is
 * run. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "error.h"
#include "jobfile.h"
#include "parse.h"

static void fmt_params(int64_t p, char *buf, size_t len)
{
    if (p < 0)
        snprintf(buf, len, "?");
    else if (p >= 1000000000)
        snprintf(buf, len, "%.2fB", (double)p / 1e9);
    else if (p >= 1000000)
        snprintf(buf, len, "%.1fM", (double)p / 1e6);
    else if (p >= 1000)
        snprintf(buf, len, "%.1fk", (double)p / 1e3);
    else
        snprintf(buf, len, "%" PRId64, p);
}

/* The format and options columns: the quantizer setting's, "-" for the
 * baseline and the probes. */
static const char *task_format(const qid_job *job, const qid_task *k)
{
    return k->quant >= 0 ? job->quant[k->quant].format : "-";
}

static const char *task_options(const qid_job *job, const qid_task *k)
{
    return k->quant >= 0 ? job->quant[k->quant].options : "-";
}

/* "1.23G", "456M", "?" (unknown). */
static void fmt_mem(int64_t b, char *buf, size_t len)
{
    if (b < 0)
        snprintf(buf, len, "?");
    else if (b >= (int64_t)1 << 30)
        snprintf(buf, len, "%.2fG", (double)b / (double)(1 << 30));
    else
        snprintf(buf, len, "%.0fM", (double)b / (double)(1 << 20));
}

static int width_of(const char *s, int w) { return (int)strlen(s) > w ? (int)strlen(s) : w; }

void cli_print_job_grid(const qid_job *job, const qid_task *tasks, size_t n, FILE *out)
{
    fprintf(out, "job %s (%s), seed %" PRIu64 "\n", job->name, job->file, job->seed);
    fprintf(out, "  results      %s\n", job->results.path);
    fprintf(out, "  eval         %s: windows ", job->eval.tokens.path);
    if (job->eval.windows)
        fprintf(out, "%" PRId64, job->eval.windows);
    else
        fprintf(out, "all");
    fprintf(out, ", seq_len ");
    if (job->eval.seq_len)
        fprintf(out, "%" PRId64, job->eval.seq_len);
    else
        fprintf(out, "auto");
    fprintf(out, ", scoring %s, kl %s\n", qid_job_scoring_name(job->eval.scoring), job->eval.kl ? "yes" : "no");
    if (job->eval.adaptive) {
        char rule[256];
        fprintf(out, "  adaptive     baselines every window, quantized tasks stop early: %s\n",
                qid_job_stop_rule(job, rule, sizeof rule));
        fprintf(out, "               (the costs below are those of every window)\n");
    }
    if (job->calib.tokens.path) {
        fprintf(out, "  calibration  %s: %" PRId64 " samples, seq_len ", job->calib.tokens.path, job->calib.samples);
        if (job->calib.seq_len)
            fprintf(out, "%" PRId64, job->calib.seq_len);
        else
            fprintf(out, "auto");
        char chunk[48];
        const size_t cb = job->calib.chunk_bytes;
        if (cb == 0)
            snprintf(chunk, sizeof chunk, "every window at once");
        else if (cb < ((size_t)1 << 20))
            snprintf(chunk, sizeof chunk, "chunks of %zu bytes", cb);
        else
            snprintf(chunk, sizeof chunk, "chunks of %.0f MiB", (double)cb / (double)(1 << 20));
        fprintf(out, "; %s, residual stream in %s%s\n", chunk,
                job->calib.scratch_dir.path ? "a scratch file in " : "memory",
                job->calib.scratch_dir.path ? job->calib.scratch_dir.path : "");
    }
    if (job->mem_limit > 0) {
        char lim[32];
        fmt_mem((int64_t)job->mem_limit, lim, sizeof lim);
        fprintf(out, "  mem_limit    %sB per rank: tasks predicted to need more fail up front\n", lim);
    }
    if (job->probes.n_radii) {
        fprintf(out, "  probes       radii");
        for (size_t i = 0; i < job->probes.n_radii; i++) {
            char r[32];
            qid_format_real(job->probes.radii[i], r, sizeof r);
            fprintf(out, "%s %s", i ? "," : "", r);
        }
        fprintf(out, "; %" PRId64 " directions; ", job->probes.directions);
        if (job->probes.windows)
            fprintf(out, "%" PRId64 " windows\n", job->probes.windows);
        else
            fprintf(out, "windows as [eval]\n");
    }

    /* checkpoints among the tasks given, and column widths */
    size_t max_ck = 0;
    for (size_t i = 0; i < n; i++)
        if (tasks[i].ckpt + 1 > max_ck) max_ck = tasks[i].ckpt + 1;
    unsigned char *seen = qid_calloc(max_ck ? max_ck : 1, 1, "checkpoint flags");
    size_t n_ck = 0, unknown = 0, per_method[4] = {0};
    double total = 0, cost_method[4] = {0};
    int w_idx = 1, w_ck = 10, w_model = 5, w_params = 6, w_method = 8, w_format = 6, w_opt = 7;
    char buf[64];
    for (size_t i = 0; i < n; i++) {
        const qid_task *k = &tasks[i];
        if (!seen[k->ckpt]) n_ck++;
        seen[k->ckpt] = 1;
        total += k->cost;
        if (k->params < 0) unknown++;
        per_method[k->method & 3]++;
        cost_method[k->method & 3] += k->cost;
        snprintf(buf, sizeof buf, "%zu", k->index + 1);
        w_idx = width_of(buf, w_idx);
        w_ck = width_of(k->ckpt_path.rel, w_ck);
        w_model = width_of(k->model[0] ? k->model : "?", w_model);
        w_format = width_of(task_format(job, k), w_format);
        w_opt = width_of(task_options(job, k), w_opt);
    }
    free(seen);
    fprintf(out,
            "  grid         %zu tasks over %zu checkpoints (per checkpoint: baseline%s, %zu quantizer settings)\n\n", n,
            n_ck, job->probes.n_radii ? ", probes" : "", job->n_quant);
    fprintf(out, "%*s  %-*s  %-*s  %*s  %-*s  %-*s  %-*s  %10s  %6s  %7s\n", w_idx, "#", w_ck, "checkpoint", w_model,
            "model", w_params, "params", w_method, "method", w_format, "format", w_opt, "options", "cost", "share",
            "memory");
    int64_t max_mem = -1;
    size_t over = 0, max_at = 0;
    for (size_t i = 0; i < n; i++) {
        const qid_task *k = &tasks[i];
        char params[32], cost[32], share[32];
        fmt_params(k->params, params, sizeof params);
        if (k->params < 0)
            snprintf(cost, sizeof cost, "?");
        else
            snprintf(cost, sizeof cost, "%.3g", k->cost);
        if (total > 0 && k->params >= 0)
            snprintf(share, sizeof share, "%.1f%%", 100.0 * k->cost / total);
        else
            snprintf(share, sizeof share, "-");
        char mem[32];
        fmt_mem(k->mem_peak, mem, sizeof mem);
        const int is_over = job->mem_limit > 0 && k->mem_peak > (int64_t)job->mem_limit;
        over += is_over;
        if (k->mem_peak > max_mem) {
            max_mem = k->mem_peak;
            max_at = k->index;
        }
        fprintf(out, "%*zu  %-*s  %-*s  %*s  %-*s  %-*s  %-*s  %10s  %6s  %7s%s\n", w_idx, k->index + 1, w_ck,
                k->ckpt_path.rel, w_model, k->model[0] ? k->model : "?", w_params, params, w_method,
                qid_job_method_name(k->method), w_format, task_format(job, k), w_opt, task_options(job, k), cost, share,
                mem, is_over ? "  over the limit" : "");
    }
    fprintf(out, "\n");
    for (int m = 0; m < 4; m++)
        if (per_method[m])
            fprintf(out, "  %-9s %6zu tasks  cost %.3g (%.1f%%)\n", qid_job_method_name((qid_job_method)m),
                    per_method[m], cost_method[m], total > 0 ? 100.0 * cost_method[m] / total : 0.0);
    fprintf(out, "estimated total cost: %.3g parameter-tokens (a forward pass is about 2 FLOP per parameter-token)\n",
            total);
    if (max_mem >= 0) {
        char mem[32];
        fmt_mem(max_mem, mem, sizeof mem);
        fprintf(out, "predicted peak memory per rank: %sB (task %zu)", mem, max_at + 1);
        if (over) fprintf(out, "; %zu tasks over the limit will fail", over);
        fprintf(out, "\n");
    }
    if (unknown)
        fprintf(out, "%zu tasks of unknown cost: their checkpoints could not be read (they will fail at run time)\n",
                unknown);
}
