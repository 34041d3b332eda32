/* test_jobfile.c - job files (jobfile.c): the example jobs parse and expand
 * to the expected task counts; every class of parse error with its exact
 * FILE:LINE message; defaults; relative path resolution; glob and list
 * entries in a temporary tree (including a directory with glob
 * metacharacters in its name); sorting with numeric digit runs; deduplication
 * by path and by file identity; missing checkpoints as warnings; stable
 * keys and which settings change them; cost values and ordering; the
 * --dry-run table.
 *
 * Does not: run tasks or MPI (the scheduler's tests do). */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "checkpoint.h"
#include "cli.h"
#include "fsutil.h"
#include "import.h"
#include "jobfile.h"
#include "tap.h"
#include "tokens.h"

#define FIX "test/fixtures/hf"

/* ---- helpers ----------------------------------------------------------------- */

static char *tmp_path(const char *rel) { return qid_path_join(tap_tmpdir(), rel); }

static void mkdirs(const char *path)
{
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *s = buf + 1; *s; s++)
        if (*s == '/') {
            *s = '\0';
            mkdir(buf, 0700);
            *s = '/';
        }
    mkdir(buf, 0700);
}

static void write_text(const char *path, const char *text) { tap_write_file(path, text, strlen(text)); }

static int parse(const char *text, const char *file, qid_job *job, qid_error *err)
{
    qid_error_clear(err);
    return qid_job_parse(text, strlen(text), file, job, err);
}

/* stderr of the calls between capture_start and capture_end (malloc'd),
 * with qid's warnings shown meanwhile. */
static void capture_start(void)
{
    tap_capture_begin();
    qid_log_set_level(QID_LOG_WARN);
}

static char *capture_end(void)
{
    qid_log_set_level(QID_LOG_ERROR);
    return tap_capture_end();
}

static size_t count_substr(const char *s, const char *sub)
{
    size_t n = 0;
    for (const char *p = strstr(s, sub); p; p = strstr(p + 1, sub))
        n++;
    return n;
}

/* A minimal valid job with `extra` appended (sections may follow). */
static const char *base_job = "[job]\nresults = r.h5\n"
                              "[checkpoints]\nfile = a.h5\n"
                              "[eval]\ntokens = e.h5\n";

static char *with_base(const char *extra)
{
    size_t n = strlen(base_job) + strlen(extra) + 1;
    char *s = malloc(n);
    if (!s) bail("out of memory");
    snprintf(s, n, "%s%s", base_job, extra);
    return s;
}

/* ---- the examples ---------------------------------------------------------------- */

static void copy_job(const char *from, const char *to)
{
    size_t len;
    char *text = tap_read_file(from, &len);
    tap_write_file(to, text, len);
    free(text);
}

static void test_examples(void)
{
    qid_job job;
    qid_error err;
    int rc = qid_job_load("jobs/pythia-ouyang.job", &job, &err);
    if (!is_int(QID_OK, rc, "pythia-ouyang.job parses")) diag("%s", err.msg);
    if (rc == QID_OK) {
        is_string("pythia-ouyang", job.name, "ouyang: name");
        is_int(3, (long long)job.n_quant, "ouyang: 3 settings (GPTQ 2/3/4 bit)");
        int all_ok = 1;
        const char *fmts[3] = {"int2-g128-sym", "int3-g128-sym", "int4-g128-sym"};
        for (size_t i = 0; i < job.n_quant && i < 3; i++) {
            const qid_job_quant *q = &job.quant[i];
            all_ok &= q->method == QID_JOB_METHOD_GPTQ && strcmp(q->format, fmts[i]) == 0 && q->gptq.percdamp == 0.1 &&
                      q->gptq.block == 128 && !q->gptq.act_order && q->spec.block == 128 && q->spec.sym &&
                      q->gptq.micro_block == 1;
        }
        ok(all_ok, "ouyang: gptq int2/3/4 g128 sym, damp 0.1, block 128, no act-order");
        ok(job.calib.samples == 128 && job.calib.seq_len == 2048 && job.eval.seq_len == 2048 && job.eval.windows == 0 &&
               job.eval.scoring == QID_JOB_SCORING_ALL,
           "ouyang: 128 calibration samples of 2048, eval windows of 2048");
        is_string("data/wikitext2-train.h5", job.calib.tokens.path, "ouyang: calibration path from the repo root");
        is_string("../data/refinedweb-eval.h5", job.eval.tokens.rel, "ouyang: eval path relative to jobs/");
        is_int(0, (long long)job.probes.n_radii, "ouyang: no probes");
        qid_job_free(&job);
    } else
        for (int i = 0; i < 6; i++)
            skip("pythia-ouyang.job does not parse");

    rc = qid_job_load("jobs/xu-mx.job", &job, &err);
    if (!is_int(QID_OK, rc, "xu-mx.job parses")) diag("%s", err.msg);
    if (rc == QID_OK) {
        is_int(20, (long long)job.n_quant, "xu: 20 settings (10 rtn + 10 micro-block gptq)");
        size_t rtn = 0, gptq_micro = 0;
        for (size_t i = 0; i < job.n_quant; i++) {
            const qid_job_quant *q = &job.quant[i];
            if (q->method == QID_JOB_METHOD_RTN) rtn++;
            if (q->method == QID_JOB_METHOD_GPTQ && q->gptq.micro_block == q->spec.block) gptq_micro++;
        }
        ok(rtn == 10 && gptq_micro == 10, "xu: micro-block = the MX block of each gptq setting (%zu rtn, %zu gptq)",
           rtn, gptq_micro);
        ok(job.probes.n_radii == 2 && job.probes.radii[0] == 0.001 && job.probes.radii[1] == 0.01 &&
               job.probes.directions == 4,
           "xu: probes at radii 0.001, 0.01 with 4 directions");
        qid_job_free(&job);
    } else
        for (int i = 0; i < 2; i++)
            skip("xu-mx.job does not parse");

    rc = qid_job_load("jobs/gguf-llama.job", &job, &err);
    if (!is_int(QID_OK, rc, "gguf-llama.job parses")) diag("%s", err.msg);
    if (rc == QID_OK) {
        size_t gguf = 0;
        for (size_t i = 0; i < job.n_quant; i++)
            gguf += job.quant[i].method == QID_JOB_METHOD_RTN &&
                    qid_quant_traits_of(job.quant[i].spec.type)->kind == QID_QUANT_KIND_GGUF;
        ok(job.n_quant == 10 && gguf == 10, "gguf: 10 RTN settings, all GGUF formats (%zu of %zu)", gguf, job.n_quant);
        qid_job_free(&job);
    } else
        skip("gguf-llama.job does not parse");

    /* expansion in a copy of the repository layout with placeholder files */
    char *root = tmp_path("ex");
    char path[1024];
    const char *ckpts[] = {"ckpt/pythia-160m/step1.h5", "ckpt/pythia-160m/step512.h5", "ckpt/pythia-160m/step143000.h5",
                           "ckpt/pythia-1b/step1.h5",   "ckpt/pythia-1b/step512.h5",   "ckpt/pythia-1b/step143000.h5",
                           "ckpt/xu/llama-7b.h5",       "ckpt/xu/qwen2-0.5b.h5"};
    for (size_t i = 0; i < sizeof ckpts / sizeof ckpts[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", root, ckpts[i]);
        char *slash = strrchr(path, '/');
        *slash = '\0';
        mkdirs(path);
        *slash = '/';
        write_text(path, "not a checkpoint yet\n");
    }
    snprintf(path, sizeof path, "%s/jobs", root);
    mkdirs(path);
    const struct {
        const char *name;
        size_t tasks, ckpts;
    } ex[] = {
        {"pythia-ouyang.job", 6 * (1 + 3), 6}, {"xu-mx.job", 2 * (1 + 1 + 20), 2}, {"gguf-llama.job", 6 * (1 + 10), 6}};
    for (size_t e = 0; e < sizeof ex / sizeof ex[0]; e++) {
        char src[256];
        snprintf(src, sizeof src, "jobs/%s", ex[e].name);
        snprintf(path, sizeof path, "%s/jobs/%s", root, ex[e].name);
        copy_job(src, path);
        qid_task *tasks = NULL;
        size_t n = 0;
        rc = qid_job_load(path, &job, &err);
        if (rc == QID_OK) rc = qid_job_tasks(&job, &tasks, &n, &err);
        if (!is_int(QID_OK, rc, "%s expands", ex[e].name)) diag("%s", err.msg);
        is_int((long long)ex[e].tasks, (long long)n, "%s: %zu checkpoints -> %zu tasks", ex[e].name, ex[e].ckpts,
               ex[e].tasks);
        if (rc == QID_OK && n > 0)
            is_int((long long)ex[e].ckpts - 1, (long long)tasks[n - 1].ckpt, "%s: checkpoint indices", ex[e].name);
        else
            skip("no tasks");
        qid_job_tasks_free(tasks, n);
        qid_job_free(&job);
    }
    free(root);
}

/* ---- windows = auto ---------------------------------------------------------------- */

static void check_auto(void)
{
    qid_job job;
    qid_error err;
    char *text = with_base(
        "windows = auto\nmax_windows = 512\ntarget_se = 0.002\n[quantize]\nmethods = rtn\nformats = int4-g128-sym\n");
    int rc = qid_job_parse(text, strlen(text), "jobs/x.job", &job, &err);
    is_int(QID_OK, rc, "windows = auto parses: %s", rc ? err.msg : "ok");
    ok(job.eval.adaptive && job.eval.windows == 512, "adaptive, at most 512 windows");
    ok(job.eval.min_windows == QID_JOB_AUTO_MIN_WINDOWS && job.eval.block_windows == QID_JOB_AUTO_BLOCK &&
           job.eval.target_rse == QID_JOB_AUTO_TARGET_RSE && job.eval.target_se == 0.002,
       "the defaults where not given");
    char rule[256];
    is_string("auto,min_windows=32,block_windows=32,target_se=0.002,target_rse=0.05,seed=0",
              qid_job_stop_rule(&job, rule, sizeof rule), "the rule as rows record it");
    qid_job_free(&job);
    free(text);
    text = with_base("windows = 64\n[quantize]\nmethods = rtn\nformats = int4-g128-sym\n");
    rc = qid_job_parse(text, strlen(text), "jobs/x.job", &job, &err);
    ok(rc == QID_OK && !job.eval.adaptive && qid_job_stop_rule(&job, rule, sizeof rule)[0] == 0,
       "a fixed window count: no rule");
    qid_job_free(&job);
    free(text);
}

/* ---- parse errors ---------------------------------------------------------------- */

static const struct {
    const char *text; /* appended to base_job unless full */
    int full;
    const char *msg;
} errors[] = {
    /* lexical */
    {"[eval]\n", 0, "jobs/x.job:7: duplicate section [eval] (first on line 5); expected each section once"},
    {"[evaluation]\n", 0,
     "jobs/x.job:7: unknown section [evaluation]; expected one of job, checkpoints, eval, calibration, quantize, "
     "probes"},
    {"[probes\n", 0, "jobs/x.job:7: section header '[probes' has no closing ']'; expected [name] alone on the line"},
    {"results = r.h5\n", 1, "jobs/x.job:1: key 'results' before any section; expected a [section] header first"},
    {"windows 12\n", 0, "jobs/x.job:7: 'windows 12' is not a setting; expected key = value or a [section] header"},
    {"= 12\n", 0, "jobs/x.job:7: missing key before '='; expected key = value"},
    {"windos = 12\n", 0,
     "jobs/x.job:7: unknown key 'windos' in [eval]; expected one of tokens, windows, seq_len, scoring, kl, "
     "min_windows, max_windows, block_windows, target_se, target_rse"},
    {"windows = 12\nwindows = 13\n", 0,
     "jobs/x.job:8: duplicate key 'windows' in [eval] (first on line 7); expected each key once"},
    {"tokens = other.h5\n", 0,
     "jobs/x.job:7: duplicate key 'tokens' in [eval] (first on line 6); expected each key once"},
    {"windows =\n", 0,
     "jobs/x.job:7: empty value for 'windows'; expected all, auto or a whole number 1..1099511627776"},
    {"windows = 1\x01\n", 0, "jobs/x.job:7: control character 0x01 at column 12; expected printable text"},
    {"min_windows = 8\n", 0,
     "jobs/x.job:7: min_windows, max_windows, block_windows, target_se and target_rse need windows = auto in [eval]"},
    {"windows = auto\nmin_windows = 1\n", 0,
     "jobs/x.job:8: '1' is out of range for 'min_windows'; expected a whole number 2..1099511627776"},
    {"windows = auto\ntarget_rse = 2\n", 0,
     "jobs/x.job:8: '2' is out of range for 'target_rse'; expected a number 0..1"},
    /* numbers */
    {"windows = 12x\n", 0,
     "jobs/x.job:7: invalid number '12x' for 'windows' (trailing 'x'); expected all, auto or a whole number "
     "1..1099511627776"},
    {"windows = 0\n", 0,
     "jobs/x.job:7: '0' is out of range for 'windows'; expected all, auto or a whole number "
     "1..1099511627776"},
    {"windows = 99999999999999999999999\n", 0,
     "jobs/x.job:7: '99999999999999999999999' is out of range for 'windows'; expected all, auto or a whole number "
     "1..1099511627776"},
    {"windows = -3\n", 0,
     "jobs/x.job:7: '-3' is out of range for 'windows'; expected all, auto or a whole number 1..1099511627776"},
    {"windows = many\n", 0,
     "jobs/x.job:7: invalid value 'many' for 'windows'; expected all, auto or a whole number 1..1099511627776"},
    {"seq_len = 1\n", 0,
     "jobs/x.job:7: '1' is out of range for 'seq_len'; expected auto or a whole number "
     "2..16777216"},
    {"kl = true\n", 0, "jobs/x.job:7: invalid value 'true' for 'kl'; expected yes or no"},
    {"scoring = half\n", 0, "jobs/x.job:7: invalid value 'half' for 'scoring'; expected all or second-half"},
    {"[job]\nresults = r.h5\nseed = 1.5\n[checkpoints]\nfile = a\n[eval]\ntokens = e\n", 1,
     "jobs/x.job:3: invalid number '1.5' for 'seed' (trailing '.5'); expected a whole number "
     "0..9223372036854775807"},
    {"[quantize]\nmethods = gptq\nformats = int4-g128\ndamp = 1.5\n", 0,
     "jobs/x.job:10: '1.5' is out of range for 'damp'; expected a number 0..1"},
    {"[quantize]\ndamp = inf\n", 0, "jobs/x.job:8: invalid value 'inf' for 'damp'; expected a number 0..1"},
    {"[quantize]\ndamp = 0x1p-3\n", 0,
     "jobs/x.job:8: invalid number '0x1p-3' for 'damp' (trailing 'x1p-3'); expected a number 0..1"},
    {"[quantize]\ndamp = 0.1.2\n", 0,
     "jobs/x.job:8: invalid number '0.1.2' for 'damp' (trailing '.2'); expected a number 0..1"},
    {"[quantize]\nblock_size = 0\n", 0,
     "jobs/x.job:8: '0' is out of range for 'block_size'; expected a whole number "
     "1..65536"},
    /* methods, formats, tasks */
    {"[quantize]\nmethods = gtpq\n", 0, "jobs/x.job:8: unknown method 'gtpq'; expected rtn, gptq or awq"},
    {"[quantize]\nmethods = rtn, baseline\n", 0,
     "jobs/x.job:8: method 'baseline' cannot be asked for; expected rtn, gptq or awq (the baseline always runs, probes "
     "come from [probes])"},
    {"[quantize]\nmethods = rtn, rtn\n", 0,
     "jobs/x.job:8: duplicate method 'rtn' in 'methods'; expected each method once"},
    {"[quantize]\nmethods = rtn,\n", 0,
     "jobs/x.job:8: empty item in the list for 'methods'; expected a comma-separated list of rtn, gptq"},
    {"[quantize]\nmethods = rtn\nformats = int9-g128\n", 0,
     "jobs/x.job:9: unknown format 'int9-g128': integer bits must be 2..8; expected a format such as int4-g128-sym, "
     "mxfp4 or nf4"},
    {"[quantize]\nmethods = rtn\nformats = int4\n", 0,
     "jobs/x.job:9: unknown format 'int4': expected -gG (group of G columns) or -channel after int4"},
    {"[quantize]\nmethods = rtn\nformats = int4-g128, mxfp4, int4-g128-sym\n", 0,
     "jobs/x.job:9: duplicate format 'int4-g128-sym' in 'formats' (the same as 'int4-g128-sym'); expected each "
     "format once"},
    {"[quantize]\nmethods = rtn\n", 0,
     "jobs/x.job:8: 'methods' without 'formats'; expected formats = a comma-separated list of formats in [quantize]"},
    {"[quantize]\nformats = mxfp4\n", 0,
     "jobs/x.job:8: 'formats' without 'methods'; expected methods = rtn, gptq (or one of them, or awq) in [quantize]"},
    {"[quantize]\ntask = rtn\n", 0,
     "jobs/x.job:8: task needs a method and a format; expected METHOD FORMAT "
     "[option=value ...], e.g. task = gptq mxfp4 micro_block=32"},
    {"[quantize]\ntask = rtn mxfp4 damp=0.1\n", 0,
     "jobs/x.job:8: option 'damp' does not apply to rtn; expected no options after an rtn format"},
    {"[calibration]\ntokens = c.h5\n[quantize]\ntask = gptq mxfp4 dmp=0.1\n", 0,
     "jobs/x.job:10: unknown option 'dmp' in task; expected one of damp, block_size, act_order, static_groups, "
     "micro_block"},
    {"[calibration]\ntokens = c.h5\n[quantize]\ntask = gptq mxfp4 micro_block = 32\n", 0,
     "jobs/x.job:10: option 'micro_block' in task has no '='; expected option=value without spaces, e.g. "
     "micro_block=32"},
    {"[calibration]\ntokens = c.h5\n[quantize]\ntask = gptq mxfp4 damp=0.1 damp=0.2\n", 0,
     "jobs/x.job:10: duplicate option 'damp' in task; expected each option once"},
    {"[calibration]\ntokens = c.h5\n[quantize]\ntask = gptq mxfp4 act_order=maybe\n", 0,
     "jobs/x.job:10: invalid value 'maybe' for 'act_order'; expected yes or no"},
    {"[calibration]\ntokens = c.h5\n[quantize]\nmethods = gptq\nformats = int4-g128\ntask = gptq int4-g128-sym "
     "damp=0.01\n",
     0,
     "jobs/x.job:12: duplicate quantizer setting gptq int4-g128-sym "
     "damp=0.01,block_size=128,act_order=no,static_groups=no,micro_block=0 (also from line 11); expected each "
     "setting once"},
    {"[calibration]\ntokens = c.h5\n[quantize]\ntask = gptq mxfp4 micro_block=48\n", 0,
     "jobs/x.job:10: micro_block 48 is not a multiple of the block size 32 of mxfp4; expected a multiple of 32, or 0 "
     "for plain GPTQ"},
    {"[calibration]\ntokens = c.h5\n[quantize]\nmicro_block = 64\nblock_size = 96\ntask = gptq mxfp4\n", 0,
     "jobs/x.job:10: micro_block 64 does not divide block_size 96; expected a divisor of 96"},
    {"[calibration]\ntokens = c.h5\n[quantize]\ntask = gptq int4-channel\ntask = gptq int4-channel micro_block=1\n", 0,
     "jobs/x.job:11: duplicate quantizer setting gptq int4-channel-sym "
     "damp=0.01,block_size=128,act_order=no,static_groups=no,micro_block=0 (also from line 10); expected each "
     "setting once"},
    {"[calibration]\ntokens = c.h5\n[quantize]\nact_order = yes\nmethods = gptq\nformats = int4-g128, mxfp4\n", 0,
     "jobs/x.job:12: act_order with mxfp4 needs static groups; expected static_groups = yes (or act_order = no) for "
     "formats with fixed blocks (MX, NF4, FP4, GGUF)"},
    {"[calibration]\ntokens = c.h5\n[quantize]\nact_order = yes\nmethods = gptq\nformats = q4_0\n", 0,
     "jobs/x.job:12: act_order with q4_0 needs static groups; expected static_groups = yes (or act_order = no) for "
     "formats with fixed blocks (MX, NF4, FP4, GGUF)"},
    {"[calibration]\ntokens = c.h5\n[quantize]\ntask = rtn q4_k_m\ntask = gptq q4_k_m\n", 0,
     "jobs/x.job:11: format q4_k_m has no GPTQ path (its scales come from a search over whole super-blocks of 256 "
     "weights); expected method rtn"},
    {"[quantize]\nmethods = rtn, gptq\nformats = mxfp4\n", 0,
     "jobs/x.job:9: gptq needs calibration data; expected a [calibration] section with tokens = PATH"},
    {"[quantize]\nmethods = rtn, awq\nformats = int4-g128-asym\n", 0,
     "jobs/x.job:9: awq needs calibration data; expected a [calibration] section with tokens = PATH"},
    {"[calibration]\ntokens = c.h5\n[quantize]\nmethods = awq\nformats = int4-g128, mxfp4\n", 0,
     "jobs/x.job:11: awq cannot quantize to mxfp4; expected an integer format without -mse (intB-gG-sym/asym)"},
    {"[calibration]\ntokens = c.h5\n[quantize]\ntask = awq int3-g128-mse\n", 0,
     "jobs/x.job:10: awq cannot quantize to int3-g128-sym-mse; expected an integer format without -mse "
     "(intB-gG-sym/asym)"},
    /* missing required settings */
    {"[job]\nname = x\n[checkpoints]\nfile = a.h5\n[eval]\ntokens = e.h5\n[quantize]\ntask = rtn mxfp4\n", 1,
     "jobs/x.job:1: missing key 'results' in [job]; expected results = PATH of the results store"},
    {"[checkpoints]\nfile = a.h5\n[eval]\ntokens = e.h5\n[quantize]\ntask = rtn mxfp4\n", 1,
     "jobs/x.job:6: missing key 'results' in [job]; expected results = PATH of the results store"},
    {"[job]\nresults = r.h5\n[eval]\ntokens = e.h5\n[quantize]\ntask = rtn mxfp4\n", 1,
     "jobs/x.job:6: no checkpoints; expected at least one file = PATH, glob = PATTERN or list = FILE in "
     "[checkpoints]"},
    {"[job]\nresults = r.h5\n[checkpoints]\nglob = *.h5\n[eval]\nwindows = 4\n[quantize]\ntask = rtn mxfp4\n", 1,
     "jobs/x.job:5: missing key 'tokens' in [eval]; expected tokens = PATH of the evaluation token set"},
    {"", 0, "jobs/x.job:6: no quantizer settings; expected methods and formats, or task lines, in [quantize]"},
    {"[quantize]\n# nothing\n", 0,
     "jobs/x.job:7: no quantizer settings; expected methods and formats, or task lines, in [quantize]"},
    {"[calibration]\nsamples = 64\n[quantize]\ntask = rtn mxfp4\n", 0,
     "jobs/x.job:7: missing key 'tokens' in [calibration]; expected tokens = PATH of the calibration token set"},
    {"[probes]\ndirections = 8\n[quantize]\ntask = rtn mxfp4\n", 0,
     "jobs/x.job:7: missing key 'radii' in [probes]; expected a comma-separated list of radii in (0, 100], e.g. "
     "0.001, 0.01"},
    {"[probes]\nradii = 0.01, 0\n", 0,
     "jobs/x.job:8: '0' is out of range for 'radii'; expected a comma-separated list of radii in (0, 100], e.g. "
     "0.001, 0.01"},
    {"[probes]\nradii = 0.01, 1e-2\n", 0, "jobs/x.job:8: duplicate radius 0.01 in 'radii'; expected each radius once"},
    {"[calibration]\ntokens = c.h5\nchunk = 12QB\n[quantize]\ntask = rtn mxfp4\n", 0,
     "jobs/x.job:9: invalid value '12QB' for 'chunk'; expected all or a byte count, e.g. 256MiB, 1GiB"},
    {"[job]\nresults = r.h5\nmem_limit = lots\n[checkpoints]\nfile = a\n[eval]\ntokens = e\n", 1,
     "jobs/x.job:3: invalid value 'lots' for 'mem_limit'; expected a byte count per rank, e.g. 16GiB, 512MiB, 2e10"},
    {"[job]\nname = my job\n", 1,
     "jobs/x.job:2: invalid name 'my job'; expected a name of letters, digits, '.', '_' and '-' (at most 64)"},
};

static void test_errors(void)
{
    for (size_t i = 0; i < sizeof errors / sizeof errors[0]; i++) {
        char *text = errors[i].full ? strdup(errors[i].text) : with_base(errors[i].text);
        qid_job job;
        qid_error err;
        int rc = parse(text, "jobs/x.job", &job, &err);
        int good = rc == QID_E_INVALID && job.file == NULL && job.quant == NULL;
        if (!is_string(errors[i].msg, err.msg, "error %zu: %.50s", i, errors[i].msg) || !good)
            diag("rc %d, job %s", rc, job.file ? "not zeroed" : "zeroed");
        free(text);
    }

    /* byte-level limits */
    qid_job job;
    qid_error err;
    char *big = malloc(QID_JOB_MAX_LINE + 64);
    if (!big) bail("out of memory");
    memset(big, 'a', QID_JOB_MAX_LINE + 64);
    memcpy(big, "[job]\nname = ", 13);
    big[QID_JOB_MAX_LINE + 1 + 6] = '\0'; /* "[job]\n" + a line of 4097 bytes */
    is_string("jobs/x.job:2: line is 4097 bytes long; expected at most 4096",
              (parse(big, "jobs/x.job", &job, &err), err.msg), "a line over 4096 bytes");
    free(big);
    const char nul[] = "[job]\nresults = r\0.h5\n";
    qid_job_parse(nul, sizeof nul - 1, "jobs/x.job", &job, &err);
    is_string("jobs/x.job:2: NUL byte at column 12; expected text", err.msg, "a NUL byte");
    size_t huge_len = QID_JOB_MAX_BYTES + 1;
    char *huge = calloc(huge_len, 1);
    if (!huge) bail("out of memory");
    memset(huge, '\n', huge_len);
    qid_job_parse(huge, huge_len, "jobs/x.job", &job, &err);
    is_string("jobs/x.job:1: job file is 1048577 bytes; expected at most 1048576", err.msg, "a job over 1 MiB");
    free(huge);
    is_int(QID_E_IO, qid_job_load("jobs/no-such.job", &job, &err), "a missing job file is an I/O error");
    like(err.msg, "cannot open 'jobs/no-such.job'", "and says which");
}

/* ---- defaults, syntax and paths ----------------------------------------------------- */

static void test_defaults(void)
{
    qid_job job;
    qid_error err;
    char *text = with_base("[calibration]\ntokens = c.h5\n[quantize]\nmethods = rtn, gptq\nformats = int4-g128\n");
    if (parse(text, "jobs/sweep-1.job", &job, &err)) bail("defaults: %s", err.msg);
    is_string("sweep-1", job.name, "name defaults to the file name without .job");
    ok(job.seed == 0 && job.eval.windows == 0 && job.eval.seq_len == 0 && job.eval.scoring == QID_JOB_SCORING_ALL &&
           job.eval.kl == 0,
       "eval defaults: all windows, seq_len auto, scoring all, no kl, seed 0");
    ok(job.calib.samples == 128 && job.calib.seq_len == 0 && job.calib.chunk_bytes == ((size_t)256 << 20) &&
           !job.calib.scratch_dir.path && job.mem_limit == 0,
       "calibration defaults: 128 samples, seq_len auto, 256 MiB chunks in memory, no memory limit");
    is_int(2, (long long)job.n_quant, "methods x formats: 2 settings");
    const qid_job_quant *g = &job.quant[1];
    ok(job.quant[0].method == QID_JOB_METHOD_RTN && g->method == QID_JOB_METHOD_GPTQ && g->gptq.percdamp == 0.01 &&
           g->gptq.block == 128 && !g->gptq.act_order && !g->gptq.static_groups && g->gptq.micro_block == 1,
       "product order (rtn first) and GPTQ defaults: damp 0.01, block 128, no act-order");
    is_string("-", job.quant[0].options, "rtn options are '-'");
    is_string("damp=0.01,block_size=128,act_order=no,static_groups=no,micro_block=0", g->options,
              "canonical gptq options");
    is_int(0, (long long)job.probes.n_radii, "no probes by default");
    ok(job.text_len == strlen(text) && memcmp(job.text, text, job.text_len) == 0, "job text kept verbatim");
    qid_job_free(&job);
    free(text);

    /* syntax: comments, blanks, CRLF, BOM, '#' inside a value, section defaults and task overrides */
    const char *t2 = "\xEF\xBB\xBF# header comment\r\n"
                     "  [ job ]  # trailing\r\n"
                     "\tresults\t=\tout#1/r.h5   # comment\r\n"
                     "seed = 42\nmem_limit = 16GiB\n"
                     "[checkpoints]\nfile = my ckpt.h5\n"
                     "[eval]\ntokens = e.h5\nwindows = 100\nseq_len = auto\nscoring = second-half\nkl = yes\n"
                     "[calibration]\ntokens = c.h5\nsamples = 32\nseq_len = 512\nchunk = 1e9\nscratch_dir = tmp\n"
                     "[quantize]\ndamp = 0.1\nact_order = yes\n"
                     "task = gptq int3-g64 block_size=64 micro_block=64\n"
                     "task = gptq mxfp4 damp=0.05 micro_block=1 static_groups=yes\n"
                     "[probes]\nradii = 0.01, 0.001\ndirections = 2\n";
    if (parse(t2, "x.job", &job, &err)) bail("syntax: %s", err.msg);
    is_string("out#1/r.h5", job.results.path, "'#' not after a blank is part of the value; CRLF and BOM ignored");
    is_string("my ckpt.h5", job.srcs[0].value, "spaces inside a path are kept");
    ok(job.seed == 42 && job.eval.windows == 100 && job.eval.scoring == QID_JOB_SCORING_SECOND_HALF &&
           job.eval.kl == 1 && job.calib.samples == 32 && job.calib.seq_len == 512 &&
           job.mem_limit == 16.0 * (1 << 30) && job.calib.chunk_bytes == 1000000000 &&
           strcmp(job.calib.scratch_dir.rel, "tmp") == 0,
       "values set (mem_limit 16GiB, chunk 1e9 bytes, scratch_dir)");
    ok(job.n_quant == 2 && job.quant[0].gptq.percdamp == 0.1 && job.quant[0].gptq.act_order &&
           job.quant[0].gptq.block == 64 && job.quant[0].gptq.micro_block == 64 && job.quant[1].gptq.percdamp == 0.05 &&
           job.quant[1].gptq.act_order && job.quant[1].gptq.block == 128 && job.quant[1].gptq.micro_block == 1 &&
           job.quant[1].gptq.static_groups,
       "section GPTQ options are task defaults, task options override them; micro_block 1 is plain (0)");
    ok(job.probes.n_radii == 2 && job.probes.radii[0] == 0.001 && job.probes.radii[1] == 0.01 &&
           job.probes.directions == 2 && job.probes.windows == 0,
       "radii sorted, directions set, probe windows as eval");
    qid_job_free(&job);

    /* whole numbers in the commands' syntax (parse.h): exponent forms with whole values */
    char *t3 = with_base("windows = 1e3\nseq_len = 2.048e3\n[calibration]\ntokens = c.h5\nsamples = 1.28e2\n"
                         "[quantize]\nmethods = rtn\nformats = int4-g128\n");
    if (parse(t3, "x.job", &job, &err)) bail("exponent forms: %s", err.msg);
    ok(job.eval.windows == 1000 && job.eval.seq_len == 2048 && job.calib.samples == 128,
       "windows = 1e3, seq_len = 2.048e3 and samples = 1.28e2 are whole numbers");
    qid_job_free(&job);
    free(t3);
}

static void test_paths(void)
{
    const struct {
        const char *file, *written, *rel, *path;
    } cases[] = {
        {"jobs/x.job", "../results/r.h5", "../results/r.h5", "results/r.h5"},
        {"jobs/x.job", "r.h5", "r.h5", "jobs/r.h5"},
        {"jobs/x.job", "/abs//dir/./r.h5", "/abs/dir/r.h5", "/abs/dir/r.h5"},
        {"x.job", "./a/../b//c.h5", "b/c.h5", "b/c.h5"},
        {"x.job", "../../up.h5", "../../up.h5", "../../up.h5"},
        {"/srv/q/jobs/x.job", "../c.h5", "../c.h5", "/srv/q/c.h5"},
        {"/x.job", "../c.h5", "../c.h5", "/c.h5"},
        {"a/b/../c/x.job", "../../d.h5", "../../d.h5", "d.h5"},
        {"jobs/x.job", "/../r.h5", "/r.h5", "/r.h5"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char text[512];
        snprintf(text, sizeof text,
                 "[job]\nresults = %s\n[checkpoints]\nfile = a\n[eval]\ntokens = e\n"
                 "[quantize]\ntask = rtn mxfp4\n",
                 cases[i].written);
        qid_job job;
        qid_error err;
        if (parse(text, cases[i].file, &job, &err)) bail("paths: %s", err.msg);
        ok(strcmp(job.results.rel, cases[i].rel) == 0 && strcmp(job.results.path, cases[i].path) == 0,
           "%s in %s: key form %s, opened as %s", cases[i].written, cases[i].file, cases[i].rel, cases[i].path);
        if (strcmp(job.results.rel, cases[i].rel) || strcmp(job.results.path, cases[i].path))
            diag("got %s and %s", job.results.rel, job.results.path);
        qid_job_free(&job);
    }
}

/* ---- keys ---------------------------------------------------------------------------- */

static char **keys_of(const char *text, const char *file, size_t *n)
{
    qid_job job;
    qid_error err;
    if (parse(text, file, &job, &err)) bail("keys: %s", err.msg);
    qid_task *t;
    if (qid_job_tasks_flags(&job, QID_JOB_EXPAND_NO_FS, &t, n, &err)) bail("keys: %s", err.msg);
    char **k = malloc((*n ? *n : 1) * sizeof *k);
    if (!k) bail("out of memory");
    for (size_t i = 0; i < *n; i++)
        k[i] = strdup(t[i].key);
    qid_job_tasks_free(t, *n);
    qid_job_free(&job);
    return k;
}

static void free_keys(char **k, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(k[i]);
    free(k);
}

/* Which of the keys of job a differ in job b (same grid shape). */
static void changed(char **a, char **b, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++)
        out[i] = strcmp(a[i], b[i]) ? 'x' : '.';
    out[n] = '\0';
}

#define KEY_JOB                                                                                                        \
    "[job]\nresults = ../r.h5\n%s\n"                                                                                   \
    "[checkpoints]\nfile = ../ckpt/p|1,b=2.h5\nfile = ../ckpt/a.h5\n"                                                  \
    "[eval]\ntokens = ../data/e.h5\nseq_len = 2048\n%s\n"                                                              \
    "[calibration]\ntokens = ../data/c.h5\n%s\n"                                                                       \
    "[quantize]\ntask = rtn mxfp4\ntask = gptq int4-g128 damp=0.1\n"                                                   \
    "[probes]\nradii = 0.01, 0.001\n"

static char *key_text(const char *job_extra, const char *eval_extra, const char *calib_extra)
{
    char *s = malloc(2048);
    if (!s) bail("out of memory");
    snprintf(s, 2048, KEY_JOB, job_extra, eval_extra, calib_extra);
    return s;
}

static void test_keys(void)
{
    size_t n, n2;
    char *text = key_text("", "", "");
    char **k = keys_of(text, "jobs/x.job", &n);
    if (!is_int(8, (long long)n, "2 checkpoints x (baseline, probes, 2 settings)")) bail("grid shape");
    is_string("../ckpt/a.h5|baseline|-|-|-|eval=../data/e.h5,windows=all,seq_len=2048,scoring=all", k[0],
              "baseline key");
    is_string("../ckpt/a.h5|probes|-|radii=0.001,0.01,directions=4,seed=0|-|eval=../data/e.h5,windows=all,"
              "seq_len=2048,scoring=all",
              k[1], "probes key");
    is_string("../ckpt/a.h5|rtn|mxfp4|-|-|eval=../data/e.h5,windows=all,seq_len=2048,scoring=all,kl=no", k[2],
              "rtn key");
    is_string("../ckpt/a.h5|gptq|int4-g128-sym|damp=0.1,block_size=128,act_order=no,static_groups=no,"
              "micro_block=0|calib=../data/c.h5,samples=128,seq_len=auto,seed=0|eval=../data/e.h5,windows=all,"
              "seq_len=2048,scoring=all,kl=no",
              k[3], "gptq key");
    is_string("../ckpt/p\\|1\\,b\\=2.h5|baseline|-|-|-|eval=../data/e.h5,windows=all,seq_len=2048,scoring=all", k[4],
              "'|', ',' and '=' in paths are escaped");

    /* the same job seen from elsewhere: another directory name, explicit defaults */
    char **k2 = keys_of(text, "/elsewhere/deep/x.job", &n2);
    int same = n2 == n;
    for (size_t i = 0; same && i < n; i++)
        same = strcmp(k[i], k2[i]) == 0;
    ok(same, "keys do not depend on where the job file is");
    free_keys(k2, n2);
    free(text);
    text = key_text("seed = 0", "windows = all\nscoring = all\nkl = no", "samples = 128\nseq_len = auto");
    k2 = keys_of(text, "jobs/x.job", &n2);
    same = n2 == n;
    for (size_t i = 0; same && i < n; i++)
        same = strcmp(k[i], k2[i]) == 0;
    ok(same, "writing the defaults out does not change keys");
    free_keys(k2, n2);
    free(text);

    /* what each change reruns: per checkpoint baseline, probes, rtn, gptq */
    const struct {
        const char *job, *eval, *calib, *pattern, *what;
    } ch[] = {
        {"seed = 7", "", "", ".x.x.x.x", "the seed changes the probes and gptq"},
        {"", "kl = yes", "", "..xx..xx", "kl changes the quantized tasks"},
        {"", "windows = 10", "", "xxxxxxxx", "eval windows change everything"},
        {"", "scoring = second-half", "", "xxxxxxxx", "scoring changes everything"},
        {"", "", "samples = 64", "...x...x", "calibration samples change gptq only"},
    };
    char pattern[16];
    for (size_t i = 0; i < sizeof ch / sizeof ch[0]; i++) {
        text = key_text(ch[i].job, ch[i].eval, ch[i].calib);
        k2 = keys_of(text, "jobs/x.job", &n2);
        changed(k, k2, n, pattern);
        is_string(ch[i].pattern, pattern, "%s", ch[i].what);
        free_keys(k2, n2);
        free(text);
    }
    free_keys(k, n);

    /* unique keys over a bigger grid */
    text = strdup("[job]\nresults = r.h5\n[checkpoints]\nfile = a.h5\nfile = b.h5\nfile = c.h5\n[eval]\ntokens = e\n"
                  "[calibration]\ntokens = c.h5\n[quantize]\nmethods = rtn, gptq\n"
                  "formats = int2-g128, int3-g128, int4-g128, mxfp4, nf4\ntask = gptq mxfp4 micro_block=32\n");
    k = keys_of(text, "x.job", &n);
    int unique = 1;
    for (size_t i = 0; i < n; i++)
        for (size_t j = i + 1; j < n; j++)
            unique &= strcmp(k[i], k[j]) != 0;
    ok(n == 3 * 12 && unique, "3 x (1 + 2 x 5 + 1) = 36 tasks, all keys distinct (%zu)", n);
    free_keys(k, n);
    free(text);
}

/* ---- the file system: globs, lists, dedup, missing files --------------------------------- */

static qid_task *expand(const char *job_path, size_t *n, qid_job *job, int *rc, qid_error *err)
{
    qid_task *t = NULL;
    *n = 0;
    *rc = qid_job_load(job_path, job, err);
    if (*rc == QID_OK) *rc = qid_job_tasks(job, &t, n, err);
    return t;
}

static void test_files(void)
{
    /* a directory whose name has glob metacharacters */
    char *root = tmp_path("fs [1]*?");
    char p[1024];
    const char *files[] = {"ckpt/m/step10.h5", "ckpt/m/step2.h5", "ckpt/m/step100.h5",
                           "ckpt/m/step1.h5",  "ckpt/other/x.h5", "lists/more/y.h5"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(p, sizeof p, "%s/%s", root, files[i]);
        char *slash = strrchr(p, '/');
        *slash = '\0';
        mkdirs(p);
        *slash = '/';
        write_text(p, "placeholder\n");
    }
    snprintf(p, sizeof p, "%s/ckpt/m/dir.h5", root); /* a directory the glob matches: skipped */
    mkdirs(p);
    snprintf(p, sizeof p, "%s/jobs", root);
    mkdirs(p);
    snprintf(p, sizeof p, "%s/lists/l.txt", root);
    write_text(p, "# checkpoints, relative to lists/\n\n  ../ckpt/other/x.h5  \r\nmore/y.h5\n"
                  "../ckpt/m/step2.h5\n../ckpt/m/../m/step10.h5\n");
    char abs_step1[1024];
    snprintf(abs_step1, sizeof abs_step1, "%s/ckpt/m/step1.h5", root);
    snprintf(p, sizeof p, "%s/ckpt/m/link-to-step100.h5", root);
    char target[1024];
    snprintf(target, sizeof target, "%s/ckpt/m/step100.h5", root);
    if (symlink(target, p) != 0) bail("cannot create a symbolic link");

    char job_text[4096];
    snprintf(job_text, sizeof job_text,
             "[job]\nresults = ../r.h5\n[checkpoints]\nglob = ../ckpt/m/*.h5\nlist = ../lists/l.txt\n"
             "file = %s\nfile = ../ckpt/missing.h5\nglob = ../nothing/*.h5\n"
             "[eval]\ntokens = ../e.h5\n[quantize]\ntask = rtn mxfp4\n",
             abs_step1);
    char job_path[1024];
    snprintf(job_path, sizeof job_path, "%s/jobs/j.job", root);
    write_text(job_path, job_text);

    qid_job job;
    qid_error err;
    size_t n;
    int rc;
    capture_start();
    qid_task *t = expand(job_path, &n, &job, &rc, &err);
    char *warnings = capture_end();
    if (!is_int(QID_OK, rc, "glob + list + files expand")) diag("%s", err.msg);
    /* expected checkpoints, in order: */
    const char *want[] = {
        "../ckpt/m/step1.h5", "../ckpt/m/step2.h5", "../ckpt/m/step10.h5", "../ckpt/m/step100.h5",
        "../ckpt/missing.h5", "../ckpt/other/x.h5", "../lists/more/y.h5",
    };
    size_t nw = sizeof want / sizeof want[0];
    is_int((long long)(2 * nw), (long long)n, "%zu checkpoints x 2 tasks", nw);
    int order = n == 2 * nw;
    for (size_t i = 0; order && i < nw; i++)
        order = strcmp(t[2 * i].ckpt_path.rel, want[i]) == 0 && t[2 * i].ckpt == i && t[2 * i + 1].ckpt == i;
    ok(order, "sorted with numeric digit runs (step1 < step2 < step10 < step100), deduplicated");
    if (!order)
        for (size_t i = 0; i < n; i += 2)
            diag("got %s", t[i].ckpt_path.rel);
    int abs_kept = 0;
    for (size_t i = 0; i < n; i++)
        abs_kept |= t[i].ckpt_path.rel[0] == '/';
    ok(!abs_kept, "the absolute spelling of step1.h5 merged with the glob's relative one");
    snprintf(p, sizeof p, "%s/jobs/../ckpt/m/step1.h5", root);
    char *want_path = NULL;
    if (n > 0) want_path = t[0].ckpt_path.path;
    ok(want_path && strstr(want_path, "/fs [1]*?/ckpt/m/step1.h5") && !strstr(want_path, ".."),
       "paths to open are the job directory joined and normalized (%s)", want_path ? want_path : "none");
    like(warnings, "j.job:8: glob '../nothing/*.h5' matches no file", "a glob matching nothing is a warning");
    like(warnings, "j.job:7: checkpoint '", "a missing checkpoint is a warning ...");
    like(warnings, "ckpt/missing.h5' does not exist; its tasks will fail at run time", "... naming the file");
    like(warnings, "checkpoint '../ckpt/m/link-to-step100.h5' is the same file as '../ckpt/m/step100.h5'",
         "a symbolic link to a listed file is dropped, the file kept");
    like(warnings, "j.job:6: checkpoint '/", "the absolute spelling is reported as a duplicate");
    like(warnings, "l.txt:3: ", "warnings from a list file name the list file and line");
    ok(!strstr(warnings, "l.txt:5:") && !strstr(warnings, "l.txt:6:"), "the same path listed twice is merged silently");
    ok(count_substr(warnings, "is not an HDF5 file") == 6, "unreadable checkpoints warn once each (%zu)",
       count_substr(warnings, "is not an HDF5 file"));
    int unknown = 1;
    for (size_t i = 0; i < n; i++)
        unknown &= t[i].params == -1 && t[i].cost == 0 && t[i].model[0] == '\0';
    ok(unknown, "unreadable checkpoints have unknown params and cost 0");
    free(warnings);
    qid_job_tasks_free(t, n);
    qid_job_free(&job);

    /* errors: an unreadable list file, a bad list line, nothing found */
    const struct {
        const char *ckpts, *list, *msg;
    } bad[] = {
        {"list = ../lists/none.txt", NULL,
         "j2.job:4: cannot read list file: cannot open 'ROOT/lists/none.txt': No such file or directory; expected a "
         "file with one checkpoint path per line"},
        {"list = ../lists/bad.txt", "a.h5\nb\x02.h5\n",
         "ROOT/lists/bad.txt:2: control character 0x02 at column 2; expected one path per line"},
        {"glob = ../none/*.h5\nglob = ../none2/*", NULL,
         "j2.job:4: no checkpoint found (every glob and list is empty); expected [checkpoints] entries that name "
         "existing files"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (bad[i].list) {
            snprintf(p, sizeof p, "%s/lists/bad.txt", root);
            write_text(p, bad[i].list);
        }
        snprintf(job_text, sizeof job_text,
                 "[job]\nresults = r.h5\n[checkpoints]\n%s\n[eval]\ntokens = e\n[quantize]\ntask = rtn mxfp4\n",
                 bad[i].ckpts);
        snprintf(job_path, sizeof job_path, "%s/jobs/j2.job", root);
        write_text(job_path, job_text);
        capture_start();
        t = expand(job_path, &n, &job, &rc, &err);
        free(capture_end());
        char want_msg[2048];
        const char *at = strstr(bad[i].msg, "ROOT");
        if (at)
            snprintf(want_msg, sizeof want_msg, "%.*s%s%s", (int)(at - bad[i].msg), bad[i].msg, root, at + 4);
        else
            snprintf(want_msg, sizeof want_msg, "%s", bad[i].msg);
        ok(rc != QID_OK && t == NULL && n == 0, "expansion error %zu fails", i);
        like(err.msg, want_msg, "expansion error %zu: %.60s", i, want_msg);
        qid_job_free(&job);
    }
    free(root);
}

/* ---- costs, with real (tiny) checkpoints and a token set ------------------------------------ */

static void test_costs(void)
{
    char *root = tmp_path("cost");
    char p[1024];
    snprintf(p, sizeof p, "%s/ckpt", root);
    mkdirs(p);
    qid_error err;
    const struct {
        const char *fix, *name;
        int64_t step;
    } ck[] = {{"gpt-neox-tiny", "neox", 100}, {"llama-tiny", "llama", 7}};
    int64_t params[2] = {0, 0}, d_model[2] = {0, 0};
    for (int i = 0; i < 2; i++) {
        char dir[256], out[1024];
        snprintf(dir, sizeof dir, FIX "/%s", ck[i].fix);
        snprintf(out, sizeof out, "%s/ckpt/%s.h5", root, ck[i].name);
        qid_import_opts o = {.dir = dir, .out = out, .model = ck[i].name, .step = ck[i].step, .tokens = -1};
        capture_start();
        int rc = qid_import_safetensors(&o, &err);
        free(capture_end());
        if (rc) bail("import %s: %s", ck[i].fix, err.msg);
        qid_ckpt c;
        if (qid_ckpt_open(out, &c, &err)) bail("open %s: %s", out, err.msg);
        params[i] = c.meta.params_total;
        d_model[i] = c.cfg.d_model;
        qid_ckpt_close(&c);
    }
    /* a token set of 10 windows of 64 bytes */
    char text[64 * 10 + 1];
    for (int i = 0; i < 64 * 10; i++)
        text[i] = (char)('a' + i % 26);
    text[64 * 10] = '\0';
    char src[1024], tok[1024];
    snprintf(src, sizeof src, "%s/text.txt", root);
    snprintf(tok, sizeof tok, "%s/eval.h5", root);
    write_text(src, text);
    qid_tokens_import_opts to = {.input = src, .output = tok, .source = QID_TOKENS_SRC_TEXT, .seq_len = 64};
    if (qid_tokens_import(&to, NULL, &err)) bail("tokens: %s", err.msg);

    char job_text[1024], job_path[1024];
    snprintf(job_text, sizeof job_text,
             "[job]\nresults = r.h5\n[checkpoints]\nglob = ckpt/*.h5\n[eval]\ntokens = eval.h5\n"
             "[calibration]\ntokens = eval.h5\nsamples = 16\n"
             "[quantize]\nmethods = rtn, gptq\nformats = int4-g16\n"
             "[probes]\nradii = 0.01\ndirections = 3\nwindows = 2\n");
    snprintf(job_path, sizeof job_path, "%s/c.job", root);
    write_text(job_path, job_text);
    qid_job job;
    size_t n;
    int rc;
    capture_start();
    qid_task *t = expand(job_path, &n, &job, &rc, &err);
    char *warnings = capture_end();
    if (!is_int(QID_OK, rc, "cost job expands")) bail("%s", err.msg);
    is_string("", warnings, "no warnings when every file is readable");
    free(warnings);
    if (n != 8) bail("cost job: %zu tasks", n);
    /* llama sorts before neox */
    const double T = 10.0 * 64, C = 16.0 * 64;
    for (int c = 0; c < 2; c++) {
        int i = c == 0 ? 1 : 0; /* fixture index of the c-th checkpoint */
        const qid_task *b = &t[4 * c];
        double P = (double)params[i];
        ok(b->params == params[i] && b->d_model == d_model[i] && b->step == ck[i].step &&
               strcmp(b->model, ck[i].name) == 0,
           "%s: params_total %lld, d_model, step and model read from the checkpoint", ck[i].name, (long long)params[i]);
        is_double(P * T, b->cost, 1e-6, "%s: baseline cost = P x windows x seq_len", ck[i].name);
        is_double(P * 2 * 64 * 3, b[1].cost, 1e-6, "%s: probes = P x probe windows x seq_len x radii x directions",
                  ck[i].name);
        is_double(P * T, b[2].cost, 1e-6, "%s: rtn = P T", ck[i].name);
        is_double(P * T + 3 * P * C + 2 * P * (double)d_model[i], b[3].cost, 1e-6, "%s: gptq = P T + 3 P C + 2 P d",
                  ck[i].name);
    }
    /* largest first */
    qid_task *sorted = malloc(n * sizeof *sorted);
    if (!sorted) bail("out of memory");
    memcpy(sorted, t, n * sizeof *t);
    qsort(sorted, n, sizeof *sorted, qid_task_cmp_cost);
    int desc = 1;
    for (size_t i = 1; i < n; i++)
        desc &= sorted[i - 1].cost >= sorted[i].cost;
    int bigger = params[0] > params[1] ? 0 : 1; /* fixture index of the larger model */
    ok(desc && sorted[0].method == QID_JOB_METHOD_GPTQ && strcmp(sorted[0].model, ck[bigger].name) == 0,
       "qid_task_cmp_cost: largest first, the larger model's gptq task on top");
    int gptq_over_rtn = t[3].cost > t[2].cost && t[7].cost > t[6].cost;
    ok(gptq_over_rtn, "gptq costs more than rtn on the same checkpoint");
    free(sorted); /* shallow copy: the strings belong to t */

    /* the dry-run table */
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) bail("open_memstream");
    cli_print_job_grid(&job, t, n, f);
    fclose(f);
    like(buf, "job c (", "grid: job name");
    like(buf, "8 tasks over 2 checkpoints (per checkpoint: baseline, probes, 2 quantizer settings)", "grid: shape");
    like(buf, "ckpt/llama.h5", "grid: a row per task with the checkpoint");
    like(buf, "damp=0.01,block_size=128,act_order=no,static_groups=no,micro_block=0", "grid: options");
    like(buf, "estimated total cost: ", "grid: the total");
    like(buf, "memory", "grid: a memory column");
    like(buf, "predicted peak memory per rank: ", "grid: the largest predicted peak");
    ok(count_substr(buf, "\n") == 8 + 8 + 1 + 4 + 2,
       "grid: header, 8 rows, per-method lines, total and peak (%zu lines)", count_substr(buf, "\n"));
    free(buf);
    qid_job_tasks_free(t, n);
    qid_job_free(&job);
    free(root);
}

/* ---- expansion without the file system (what the fuzzer runs) ---------------------------------- */

static void test_no_fs(void)
{
    qid_job job;
    qid_error err;
    const char *text = "[job]\nresults = r\n[checkpoints]\nfile = step10.h5\nfile = step9.h5\nfile = ./step9.h5\n"
                       "glob = /*\nlist = /etc/passwd\n[eval]\ntokens = e\n[quantize]\ntask = rtn nf4\n";
    if (parse(text, "x.job", &job, &err)) bail("no-fs: %s", err.msg);
    qid_task *t;
    size_t n;
    int rc = qid_job_tasks_flags(&job, QID_JOB_EXPAND_NO_FS, &t, &n, &err);
    ok(rc == QID_OK && n == 4 && strcmp(t[0].ckpt_path.rel, "step9.h5") == 0 &&
           strcmp(t[2].ckpt_path.rel, "step10.h5") == 0,
       "without the file system: files only, sorted and deduplicated, globs and lists ignored");
    qid_job_tasks_free(t, n);
    qid_job_free(&job);

    text = "[job]\nresults = r\n[checkpoints]\nfile = a\n[eval]\ntokens = e\n[quantize]\ntask = rtn nf4\n"
           "[probes]\nradii = 100, 1e-9, 0.25\n";
    if (parse(text, "x.job", &job, &err)) bail("no-fs: %s", err.msg);
    rc = qid_job_tasks_flags(&job, QID_JOB_EXPAND_NO_FS, &t, &n, &err);
    ok(rc == QID_OK && n == 3, "baseline, probes, rtn");
    if (rc == QID_OK && n == 3)
        like(t[1].key, "|radii=1e-09,0.25,100,directions=4,seed=0|",
             "radii in keys: shortest "
             "round-trip text, sorted");
    else
        skip("no grid");
    qid_job_tasks_free(t, n);
    qid_job_free(&job);
    qid_job_free(&job); /* freeing twice is harmless */
    ok(job.file == NULL, "qid_job_free zeroes the job");
}

int main(void)
{
    plan(184);
    qid_h5_silence();
    qid_log_set_level(QID_LOG_ERROR);
    test_examples();
    test_errors();
    test_defaults();
    check_auto();
    test_paths();
    test_keys();
    test_files();
    test_costs();
    test_no_fs();
    return 0;
}
