/* jobfile.h - job files (jobs/NAME.job) for `qid run`: parsing, and expansion
 * into the task grid that the rank-0 scheduler dispatches.
 *
 * A job file is INI-like text (sections, `key = value` lines, `#` comments);
 * jobs/README.md is the reference for every section and key, with defaults.
 * The parser treats the text as untrusted input: lines are bounded, every
 * number is range-checked, unknown sections, keys, methods and formats are
 * rejected, and every error is one line
 *     FILE:LINE: <what is wrong>; expected <what>
 * Relative paths resolve against the directory of the file they are written
 * in (the job file, or a `list =` file).
 *
 * Expansion (qid_job_tasks) resolves globs and list files, sorts and
 * deduplicates the checkpoints, and makes for each checkpoint one 16-bit
 * baseline task, one radial-probe task when [probes] is set, and one task per
 * quantizer setting. Each task has a stable key (the results store skips
 * tasks whose key it already holds) and an estimated relative cost (the
 * scheduler runs the largest first).
 *
 * Does not: run tasks, read results stores, or decide anything about MPI.
 * Nothing here is collective; only rank 0 should expand a job (expansion
 * opens every checkpoint to read its parameter count). Not thread-safe
 * against concurrent changes of the current directory. */
#ifndef QID_JOBFILE_H
#define QID_JOBFILE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "error.h"
#include "gptq.h"
#include "quant.h"
#include "quantize.h"

/* Largest job file, in bytes. */
#define QID_JOB_MAX_BYTES ((size_t)1 << 20)
/* Longest line of a job or list file, in bytes, without the newline. */
#define QID_JOB_MAX_LINE 4096
/* Largest `list =` file, in bytes. */
#define QID_JOB_MAX_LIST_BYTES ((size_t)64 << 20)
/* Most quantizer settings in one job (product and task lines together). */
#define QID_JOB_MAX_QUANT 4096
/* Most checkpoints after expansion. */
#define QID_JOB_MAX_CKPTS 1000000
/* Most radii in [probes]. */
#define QID_JOB_MAX_RADII 64

/* What a task does to its checkpoint. */
typedef enum qid_job_method {
    QID_JOB_METHOD_BASELINE = 0, /* no quantization: the stored (16-bit) weights */
    QID_JOB_METHOD_RTN = 1,      /* round to nearest */
    QID_JOB_METHOD_GPTQ = 2,     /* GPTQ; micro-block GPTQ when micro_block > 0 */
    QID_JOB_METHOD_PROBES = 3,   /* radial loss probes around the 16-bit weights */
    QID_JOB_METHOD_AWQ = 4,      /* AWQ (awq.h); integer formats without -mse */
} qid_job_method;

/* "baseline", "rtn", "gptq", "probes", "awq". */
const char *qid_job_method_name(qid_job_method m);
/* 1 for the methods that need [calibration] (gptq, awq). */
int qid_job_method_calibrated(qid_job_method m);

/* Which predicted tokens of a window count in the loss. */
typedef enum qid_job_scoring {
    QID_JOB_SCORING_ALL = 0,         /* every predicted token (seq_len - 1 per window) */
    QID_JOB_SCORING_SECOND_HALF = 1, /* the second half only, as llama.cpp's perplexity */
} qid_job_scoring;

/* "all", "second-half". */
const char *qid_job_scoring_name(qid_job_scoring s);

/* A path from a job file in two forms. */
typedef struct qid_job_path {
    char *rel;  /* relative to the job file's directory, lexically normalized (no
                   "." or "x/.." parts), or absolute as written: the form used in
                   task keys, so keys do not depend on the current directory */
    char *path; /* the form to open: relative to the current directory, or absolute */
} qid_job_path;

/* One quantizer setting: a method and a format, with GPTQ's options. */
typedef struct qid_job_quant {
    qid_job_method method; /* RTN or GPTQ */
    qid_quant_spec spec;   /* the parsed format */
    char format[64];       /* its canonical name (qid_quant_name) */
    qid_gptq_opts gptq;    /* GPTQ only, zero for RTN: gptq.h's defaults with the job's options
                              (damp = percdamp, block_size = block, act_order, static_groups,
                              micro_block); plain GPTQ (a job's micro_block 0 or 1) is
                              micro_block 1, column by column for every format */
    char options[192];     /* canonical option text used in keys: "-" for RTN, else
                              "damp=0.1,block_size=128,act_order=no,static_groups=no,micro_block=0" */
    int line;              /* line of the job file that asked for it */
} qid_job_quant;

/* One entry of [checkpoints], as written. */
typedef enum qid_job_src_kind {
    QID_JOB_SRC_FILE = 0, /* file = PATH */
    QID_JOB_SRC_GLOB = 1, /* glob = PATTERN (glob(3)) */
    QID_JOB_SRC_LIST = 2, /* list = FILE, one checkpoint path per line */
} qid_job_src_kind;

typedef struct qid_job_src {
    qid_job_src_kind kind;
    char *value; /* the value as written (trimmed) */
    int line;
} qid_job_src;

/* A parsed job. Every pointer is owned by the job and freed by qid_job_free. */
typedef struct qid_job {
    char *file;      /* the job file's name as given (used in messages) */
    char *dir;       /* its directory ("." when it has none) */
    char *text;      /* the whole job text, verbatim (provenance), NUL-terminated */
    size_t text_len; /* its length in bytes */

    /* [job] */
    char *name;           /* default: the file's base name without ".job" */
    qid_job_path results; /* required */
    uint64_t seed;        /* default 0; 0..2^63-1 */
    double mem_limit;     /* bytes per rank: a task predicted to need more fails up front; 0 = none */

    /* [checkpoints]: at least one entry */
    qid_job_src *srcs;
    size_t n_srcs;

    /* [eval] */
    struct {
        qid_job_path tokens; /* required */
        int64_t windows;     /* first N windows of the token set; 0 = all (default) */
        int64_t seq_len;     /* 0 = the token set's window length (default) */
        qid_job_scoring scoring;
        int kl; /* 1: also the KL divergence to the 16-bit model (default 0) */
        /* windows = auto: quantized tasks stop early (eval.h qid_eval_stop);
         * `windows` is then max_windows, which the baseline evaluates */
        int adaptive;
        int64_t min_windows, block_windows; /* defaults QID_JOB_AUTO_MIN_WINDOWS, ..._BLOCK */
        double target_se, target_rse;       /* defaults QID_JOB_AUTO_TARGET_SE, ..._RSE */
        int auto_key_line;                  /* line of the first adaptive key (0: none) */
    } eval;

    /* [calibration]: required when any setting uses GPTQ */
    struct {
        qid_job_path tokens;      /* rel and path NULL when there is no [calibration] tokens */
        int64_t samples;          /* windows drawn with the job seed; default 128 */
        int64_t seq_len;          /* 0 = the token set's window length (default) */
        size_t chunk_bytes;       /* activation budget of a chunk of windows (default
                                     QID_QUANTIZE_DEFAULT_CHUNK_BYTES); 0 = every window at once */
        qid_job_path scratch_dir; /* rel and path NULL: the residual stream in memory (default) */
    } calib;

    /* [quantize]: the product methods x formats in that order, then the task
     * lines in file order, duplicates rejected; at least one */
    qid_job_quant *quant;
    size_t n_quant;

    /* [probes]: off when n_radii is 0 */
    struct {
        double *radii; /* ascending, each in (0, 100], relative to |W| */
        size_t n_radii;
        int64_t directions; /* random unit directions per radius; default 4 */
        int64_t windows;    /* eval windows used by the probes; 0 = as [eval] (default) */
    } probes;
} qid_job;

/* Parses a job from text[0, len) (need not be NUL-terminated; may hold any
 * bytes). `file` names the job in messages and gives the directory relative
 * paths resolve against (file "jobs/x.job": paths relative to "jobs/"); it
 * is not opened. Nothing touches the file system.
 *
 * Returns QID_OK and fills *job, or QID_E_INVALID with err set to one line
 * "FILE:LINE: <what is wrong>; expected <what>" and *job zeroed (nothing to
 * free). Parsing stops at the first bad line; a missing required key is
 * reported at its section's header, or at the last line when the section
 * is absent; a bad combination (gptq without calibration, a micro_block
 * that does not fit the format) at the line that asked for the setting. */
int qid_job_parse(const char *text, size_t len, const char *file, qid_job *job, qid_error *err);

/* Reads `path` (at most QID_JOB_MAX_BYTES) and parses it. Errors as
 * qid_job_parse, plus QID_E_IO / QID_E_INVALID from reading the file. */
int qid_job_load(const char *path, qid_job *job, qid_error *err);

/* Frees everything the job owns and zeroes it. job may be zeroed already. */
void qid_job_free(qid_job *job);

/* ---- the task grid ------------------------------------------------------ */

/* One task: a checkpoint and what to do with it. It owns its strings and
 * refers to its quantizer setting by index, so it means the same with any
 * copy of the job parsed from the same text (every rank's). */
typedef struct qid_task {
    size_t index;           /* position in the grid as expanded */
    size_t ckpt;            /* index of its checkpoint (0.. in sorted order) */
    qid_job_path ckpt_path; /* the checkpoint file */
    qid_job_method method;
    int quant; /* RTN and GPTQ: index of its setting in job->quant; -1 for BASELINE and PROBES */
    /* the protocol, as the key's fields write it (the store's columns) */
    char *options; /* OPTIONS: the setting's options, the probes' "radii=...,directions=D,seed=S", or "-" */
    char *calib;   /* CALIB: "calib=PATH,samples=N,seq_len=L,seed=S" for GPTQ, else "-" */
    char *eval;    /* EVAL: "eval=PATH,windows=W,seq_len=L,scoring=S[,kl=K]" */
    char *key;     /* stable identity, see below: the store's, never read back */
    double cost;   /* estimated relative cost; 0 when params is unknown */
    /* from the checkpoint's metadata, when it could be read at expansion */
    int64_t params;      /* params_total, -1 when unknown (missing or unreadable file) */
    int64_t d_model;     /* -1 when unknown */
    int64_t step;        /* -1 when unknown */
    int64_t tokens_seen; /* -1 when unknown */
    char model[128];     /* "" when unknown */
    int64_t mem_peak;    /* predicted peak bytes per rank (qid_job_mem_estimate), -1 when unknown */
} qid_task;

/* Defaults of windows = auto (jobs/README.md). */
#define QID_JOB_AUTO_MIN_WINDOWS 32
#define QID_JOB_AUTO_BLOCK       32
#define QID_JOB_AUTO_TARGET_SE   0.001
#define QID_JOB_AUTO_TARGET_RSE  0.05

/* The stopping rule of a quantized task of job as its row records it
 * (stop_rule): "" for a fixed window count, else
 * "auto,min_windows=M,block_windows=B,target_se=S,target_rse=R,seed=X"
 * (numbers in the fewest digits that read back exactly). Returns buf. */
char *qid_job_stop_rule(const qid_job *job, char *buf, size_t size);

/* Bytes of a task's evaluation batches (eval.h's default batch of
 * QID_EVAL_DEFAULT_BATCH_BYTES, twice with kl) over `windows` of seq_len. */
size_t qid_job_eval_bytes(const qid_model_config *cfg, size_t windows, size_t seq_len, int kl);

/* Predicted peak memory of a task with quantizer setting q (NULL: the
 * baseline) on a checkpoint of config cfg, evaluating eval_windows of
 * eval_seq tokens with calibration (GPTQ) of calib_windows of calib_seq:
 * qid_quantize_mem_estimate with the job's chunk and scratch directory and
 * the evaluation batches. */
void qid_job_mem_estimate(const qid_job *job, const qid_job_quant *q, const qid_model_config *cfg, size_t eval_windows,
                          size_t eval_seq, size_t calib_windows, size_t calib_seq, qid_mem_estimate *e);

/* Windows a task of method m evaluates: [probes] windows for a probe task
 * when given, else [eval] windows; 0 = every window of the token set. */
int64_t qid_job_eval_windows(const qid_job *job, qid_job_method m);

/* Expansion flags. */
enum {
    /* Touch no file: globs and list files expand to nothing, checkpoints and
     * token sets are not opened (params unknown). For fuzzing and tests. */
    QID_JOB_EXPAND_NO_FS = 1u << 0,
};

/* Expands the job into tasks, in this order: checkpoints sorted by their key
 * path (digit runs compared as numbers, so step2 < step10) and deduplicated
 * (the same normalized path: merged silently; the same file through
 * another name, by device and inode: the name that is not a symbolic link
 * is kept, with a warning); for each, the baseline, then the probe task
 * (when [probes] is set), then the quantizer settings in job order.
 *
 * Key: six '|'-separated fields (characters '\', '|', ',', '=' in paths are
 * escaped with '\'):
 *   CKPT|METHOD|FORMAT|OPTIONS|CALIB|EVAL
 *   ckpt/a.h5|baseline|-|-|-|eval=data/e.h5,windows=all,seq_len=auto,scoring=all
 *   ckpt/a.h5|rtn|mxfp4|-|-|eval=data/e.h5,windows=all,seq_len=auto,scoring=all,kl=no
 *   ckpt/a.h5|gptq|int4-g128-sym|damp=0.1,block_size=128,act_order=no,static_groups=no,
 *       micro_block=0|calib=data/c.h5,samples=128,seq_len=2048,seed=0|eval=...,kl=no
 *   ckpt/a.h5|probes|-|radii=0.001,0.01,directions=4,seed=0|-|eval=data/e.h5,windows=...
 * Paths are the `rel` forms, so a key changes only when something that
 * changes the result changes (and the seed only enters where it is used).
 *
 * Cost (jobs/README.md): P = params_total, T = eval windows x seq_len
 * (from the token set when it can be read), C = calibration samples x
 * seq_len, d = d_model:
 *   baseline P*T; rtn P*T; gptq P*T + 3*P*C + 2*P*d; kl=yes adds P*T to
 *   rtn and gptq; probes P*T_probe*radii*directions.
 *
 * A checkpoint that is missing or unreadable still gets its tasks (with
 * params -1 and cost 0; they fail at run time) and a warning; a glob that
 * matches nothing is a warning. Errors (QID_E_INVALID / QID_E_IO, one line
 * naming the job file and line): an unreadable or malformed list file, no
 * checkpoint at all after expansion (except with QID_JOB_EXPAND_NO_FS),
 * more than QID_JOB_MAX_CKPTS checkpoints or 1,000,000 tasks. Warnings go
 * through qid_warn. The grid is deterministic for a given file system.
 *
 * On success *tasks is a malloc'd array of *n tasks (free with
 * qid_job_tasks_free); on failure *tasks is NULL and *n 0. */
int qid_job_tasks(const qid_job *job, qid_task **tasks, size_t *n, qid_error *err);
int qid_job_tasks_flags(const qid_job *job, unsigned flags, qid_task **tasks, size_t *n, qid_error *err);

/* Frees tasks[0, n) and the array. tasks may be NULL. */
void qid_job_tasks_free(qid_task *tasks, size_t n);

/* qsort comparator: decreasing cost, then increasing index (largest first,
 * deterministic). */
int qid_task_cmp_cost(const void *a, const void *b);

#endif
