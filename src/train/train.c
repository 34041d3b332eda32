/* train.c - the trainer behind `qid train` (train.h): learning-rate
 * schedules, AdamW, gradient clipping, models from checkpoints, the
 * training loop with its data order, evaluation at saved steps,
 * checkpoints, train.tsv and train.json, and the cache check of a rerun.
 *
 * Does not: compute gradients (train_grad.c) or parse the command line
 * (src/cli/cmd_train.c). */
#include "train.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cJSON.h>

#include "checkpoint.h"
#include "fsutil.h"
#include "h5io.h"
#include "rng.h"
#include "sha256.h"
#include "tokens.h"
#include "version.h"

/* Largest train set read into memory (ids as uint32: 1 GiB). */
#define MAX_TRAIN_TOKENS     ((size_t)1 << 28)
#define DEFAULT_EVAL_WINDOWS 64
/* Data-order streams of the generator start here (tensor i's init uses stream i). */
#define DATA_STREAM ((uint64_t)1 << 32)

/* ---- models from checkpoints ----------------------------------------------------- */

qid_tmodel *qid_tmodel_open(const char *ckpt, qid_error *err)
{
    qid_ckpt ck;
    if (qid_ckpt_open(ckpt, &ck, err)) return NULL;
    qid_tmodel *m = qid_tmodel_create(&ck.cfg, err);
    if (!m) {
        qid_error_wrap(err, QID_E_INVALID, "cannot train '%s'", ckpt);
        qid_ckpt_close(&ck);
        return NULL;
    }
    for (size_t i = 0; i < m->n_specs; i++) {
        float *p = m->param + m->offset[i];
        const size_t n = (size_t)qid_tensor_numel(&m->specs[i]);
        if (qid_ckpt_read_f32(&ck, &m->specs[i], p, err)) goto fail;
        for (size_t k = 0; k < n; k++)
            if (!isfinite(p[k])) {
                char path[160];
                qid_tensor_path(&m->specs[i], path, sizeof path);
                qid_error_set(err, QID_E_NUMERIC, "non-finite weight at element %zu of tensor '%s' in '%s'", k, path,
                              ckpt);
                goto fail;
            }
    }
    qid_ckpt_close(&ck);
    return m;
fail:
    qid_tmodel_free(m);
    qid_ckpt_close(&ck);
    return NULL;
}

/* ---- options ------------------------------------------------------------------------ */

void qid_train_opts_default(qid_train_opts *o)
{
    memset(o, 0, sizeof *o);
    o->batch = 16;
    o->sched.kind = QID_SCHED_COSINE;
    o->sched.lr = 1e-3;
    o->sched.warmup = -1;
    o->sched.decay_frac = 0.2;
    o->min_lr = -1.0;
    o->weight_decay = 0.01;
    o->clip = 1.0;
    o->beta1 = 0.9;
    o->beta2 = 0.95;
    o->eps = 1e-8;
    o->seed = 1234;
    o->save_every = 1000;
    o->progress_every = 30.0;
}

size_t qid_train_default_saves(int64_t steps, int64_t save_every, int64_t **out)
{
    size_t n = 0, cap = 64;
    int64_t *s = qid_malloc(cap * sizeof *s, "save steps");
    if (save_every < 1) save_every = 1;
    for (int64_t k = 1; k < save_every && k <= steps; k *= 2)
        s[n++] = k;
    for (int64_t k = save_every; k <= steps; k += save_every) {
        if (n == cap) s = qid_realloc(s, (cap *= 2) * sizeof *s, "save steps");
        s[n++] = k;
    }
    if (steps >= 1 && (n == 0 || s[n - 1] != steps)) {
        if (n == cap) s = qid_realloc(s, (cap *= 2) * sizeof *s, "save steps");
        s[n++] = steps;
    }
    *out = s;
    return n;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* ---- the run's state ------------------------------------------------------------------ */

typedef struct trainer {
    const qid_train_opts *o;
    qid_model_config cfg;
    qid_train_sched sched;
    char name[128];
    size_t L, B; /* seq_len, windows per step */
    int64_t steps;
    uint32_t *train_ids; /* the train stream, cut into n_train windows of L */
    size_t n_train;
    uint32_t *eval_ids; /* n_eval windows of L */
    size_t n_eval;
    char train_sha[65], eval_sha[65];
    int64_t *save; /* sorted save steps */
    size_t n_save;
    cJSON *settings;     /* the settings object (hashed) */
    char *settings_text; /* its unformatted text */
    char settings_sha[65];
    qid_tmodel *m;
    qid_tacts *acts;
    qid_adamw *opt;
    FILE *tsv;
    int tsv_errno; /* the first failed write of a train.tsv row (a full disk) */
    char tsv_path[1100], json_path[1100];
    cJSON *saved; /* array of saved checkpoints for train.json */
    /* data order */
    int64_t perm_epoch;
    uint32_t *perm;
    uint32_t *batch_ids; /* (B, L) */
    /* progress */
    int tty;
    double t_start, last_progress;
} trainer;

static void sha_hex(const void *data, size_t len, char hex[65])
{
    qid_sha256 h;
    uint8_t d[32];
    qid_sha256_init(&h);
    qid_sha256_update(&h, data, len);
    qid_sha256_final(&h, d);
    qid_sha256_hex(d, hex);
}

/* Reads the windows of a token set as one stream of ids: all of it
 * (max_tokens 0, up to MAX_TRAIN_TOKENS) or the first max_tokens. */
static int read_stream(const char *path, size_t max_tokens, uint32_t **ids, size_t *n_ids, qid_tokens_meta *meta,
                       qid_error *err)
{
    qid_tokens tk;
    *ids = NULL;
    *n_ids = 0;
    int rc = qid_tokens_open(path, &tk, err);
    if (rc) return rc;
    *meta = tk.meta;
    const size_t L0 = (size_t)tk.meta.seq_len, W0 = (size_t)tk.meta.n_windows;
    size_t total = qid_mul_size(W0, L0);
    if (max_tokens == 0 && total > MAX_TRAIN_TOKENS) {
        rc = qid_error_set(err, QID_E_INVALID,
                           "token set '%s' holds %zu tokens; qid train reads its train set into memory and takes at "
                           "most %zu",
                           path, total, MAX_TRAIN_TOKENS);
        goto done;
    }
    if (max_tokens && max_tokens < total) total = max_tokens;
    const size_t stored = (total + L0 - 1) / L0;
    *ids = qid_malloc(qid_mul_size(qid_mul_size(stored, L0), sizeof **ids), "token ids");
    rc = qid_tokens_read(&tk, 0, stored, *ids, err);
    if (rc) {
        free(*ids);
        *ids = NULL;
        goto done;
    }
    *n_ids = total;
done:
    qid_tokens_close(&tk);
    return rc;
}

/* ---- settings, train.json and the cache check ------------------------------------------------ */

static cJSON *settings_json(const trainer *t)
{
    const qid_train_opts *o = t->o;
    const qid_model_config *c = &t->cfg;
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "format", "qid-train-settings");
    cJSON_AddNumberToObject(j, "version", 1);
    cJSON_AddStringToObject(j, "model", t->name);
    cJSON_AddStringToObject(j, "arch", qid_arch_name(c->arch));
    cJSON_AddNumberToObject(j, "vocab_size", (double)c->vocab_size);
    cJSON_AddNumberToObject(j, "d_model", (double)c->d_model);
    cJSON_AddNumberToObject(j, "n_layers", (double)c->n_layers);
    cJSON_AddNumberToObject(j, "n_heads", (double)c->n_heads);
    cJSON_AddNumberToObject(j, "d_ff", (double)c->d_ff);
    cJSON_AddNumberToObject(j, "max_seq_len", (double)c->max_seq_len);
    cJSON_AddNumberToObject(j, "rotary_pct", c->rotary_pct);
    cJSON_AddNumberToObject(j, "seq_len", (double)t->L);
    cJSON_AddNumberToObject(j, "batch_windows", (double)t->B);
    cJSON_AddNumberToObject(j, "steps", (double)t->steps);
    cJSON_AddNumberToObject(j, "tokens_per_step", (double)(t->B * t->L));
    cJSON_AddStringToObject(j, "schedule", qid_sched_name(t->sched.kind));
    cJSON_AddNumberToObject(j, "lr", t->sched.lr);
    cJSON_AddNumberToObject(j, "min_lr", t->sched.min_lr);
    cJSON_AddNumberToObject(j, "warmup_steps", (double)t->sched.warmup);
    cJSON_AddNumberToObject(j, "decay_frac", t->sched.decay_frac);
    cJSON_AddNumberToObject(j, "weight_decay", o->weight_decay);
    cJSON_AddStringToObject(j, "weight_decay_on", "linear weights");
    cJSON_AddNumberToObject(j, "clip", o->clip);
    cJSON_AddNumberToObject(j, "beta1", o->beta1);
    cJSON_AddNumberToObject(j, "beta2", o->beta2);
    cJSON_AddNumberToObject(j, "eps", o->eps);
    cJSON_AddNumberToObject(j, "seed", (double)o->seed);
    cJSON_AddNumberToObject(j, "init_std", o->init_std > 0 ? o->init_std : qid_tmodel_default_init_std(c->d_model));
    cJSON *s = cJSON_AddArrayToObject(j, "save_steps");
    for (size_t i = 0; i < t->n_save; i++)
        cJSON_AddItemToArray(s, cJSON_CreateNumber((double)t->save[i]));
    cJSON_AddStringToObject(j, "train_ids_sha256", t->train_sha);
    cJSON_AddNumberToObject(j, "train_windows", (double)t->n_train);
    if (t->eval_ids) {
        cJSON_AddStringToObject(j, "eval_ids_sha256", t->eval_sha);
        cJSON_AddNumberToObject(j, "eval_windows", (double)t->n_eval);
    } else {
        cJSON_AddNullToObject(j, "eval_ids_sha256");
        cJSON_AddNumberToObject(j, "eval_windows", 0);
    }
    return j;
}

/* Writes text to path through a temporary name, fsync'd and renamed. */
static int write_text_atomic(const char *path, const char *text, qid_error *err)
{
    const size_t n = strlen(path) + 32;
    char *tmp = qid_malloc(n, "a temporary file name");
    snprintf(tmp, n, "%s.tmp.%ld", path, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666), rc = QID_OK;
    if (fd < 0) {
        rc = qid_error_set(err, QID_E_IO, "cannot create '%s': %s", tmp, strerror(errno));
        free(tmp);
        return rc;
    }
    const size_t len = strlen(text);
    size_t done = 0;
    while (done < len) {
        ssize_t k = write(fd, text + done, len - done);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) {
            rc = qid_error_set(err, QID_E_IO, "cannot write '%s': %s", tmp, strerror(errno));
            break;
        }
        done += (size_t)k;
    }
    if (!rc && fsync(fd) != 0) rc = qid_error_set(err, QID_E_IO, "cannot sync '%s': %s", tmp, strerror(errno));
    close(fd);
    if (!rc && rename(tmp, path) != 0)
        rc = qid_error_set(err, QID_E_IO, "cannot rename '%s' to '%s': %s", tmp, path, strerror(errno));
    if (rc) unlink(tmp);
    free(tmp);
    return rc;
}

static int write_train_json(trainer *t, int complete, const qid_train_result *r, qid_error *err)
{
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "format", "qid-train");
    cJSON_AddNumberToObject(j, "version", 1);
    cJSON_AddBoolToObject(j, "complete", complete);
    cJSON_AddStringToObject(j, "settings_sha256", t->settings_sha);
    cJSON_AddItemReferenceToObject(j, "settings", t->settings);
    cJSON_AddStringToObject(j, "train_tokens", t->o->train_path);
    if (t->o->eval_path)
        cJSON_AddStringToObject(j, "eval_tokens", t->o->eval_path);
    else
        cJSON_AddNullToObject(j, "eval_tokens");
    cJSON_AddNumberToObject(j, "threads", omp_get_max_threads());
    cJSON_AddStringToObject(j, "created_by", "qid " QID_VERSION);
    cJSON_AddNumberToObject(j, "params_nonembedding", (double)qid_params_nonembedding(&t->cfg));
    cJSON_AddNumberToObject(j, "params_total", (double)qid_params_total(&t->cfg));
    if (r) {
        cJSON_AddNumberToObject(j, "seconds", r->seconds);
        cJSON_AddNumberToObject(j, "tokens_per_s", r->tokens_per_s);
    }
    cJSON_AddItemReferenceToObject(j, "checkpoints", t->saved);
    char *text = cJSON_Print(j);
    cJSON_Delete(j);
    QID_CHECK(text != NULL, "cannot print train.json");
    size_t n = strlen(text);
    text = qid_realloc(text, n + 2, "train.json text");
    text[n] = '\n';
    text[n + 1] = 0;
    int rc = write_text_atomic(t->json_path, text, err);
    free(text);
    return rc;
}

static int file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* mkdir -p: creates dir and its missing parents. 0 or -1 with errno. */
static int make_dirs(const char *dir)
{
    char *p = qid_strdup(dir);
    int rc = 0;
    for (char *c = p + 1; rc == 0; c++) {
        const char save = *c;
        if (save != '/' && save != 0) continue;
        *c = 0;
        if (mkdir(p, 0777) != 0 && errno != EEXIST) rc = -1;
        *c = save;
        if (!save) break;
    }
    free(p);
    return rc;
}

/* Removes DIR/step<S>.h5 for every S in the old settings' save_steps. */
static void remove_old_checkpoints(const char *dir, const cJSON *old)
{
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(old, "settings"), "save_steps");
    const cJSON *e;
    cJSON_ArrayForEach(e, s)
    {
        if (!cJSON_IsNumber(e)) continue;
        char path[1100];
        snprintf(path, sizeof path, "%s/step%" PRId64 ".h5", dir, (int64_t)e->valuedouble);
        unlink(path);
    }
}

/* What DIR holds: 1 when it already holds this complete training (and
 * *n_ckpt its checkpoints), 0 when the run should go ahead (stale files of
 * an interrupted or replaced run removed), or an error. */
static int check_dir(trainer *t, size_t *n_ckpt, qid_error *err)
{
    const char *dir = t->o->out_dir;
    struct stat st;
    if (stat(dir, &st) != 0) {
        if (make_dirs(dir) != 0)
            return -qid_error_set(err, QID_E_IO, "cannot create directory '%s': %s", dir, strerror(errno));
        return 0;
    }
    if (!S_ISDIR(st.st_mode)) return -qid_error_set(err, QID_E_INVALID, "'%s' exists and is not a directory", dir);
    if (!file_exists(t->json_path)) {
        char probe[1100];
        int found = 0;
        for (size_t i = 0; i < t->n_save && !found; i++) {
            snprintf(probe, sizeof probe, "%s/step%" PRId64 ".h5", dir, t->save[i]);
            found = file_exists(probe);
        }
        if (found && !t->o->force)
            return -qid_error_set(err, QID_E_INVALID,
                                  "'%s' holds checkpoints (%s) but no train.json: not made by this qid train; choose "
                                  "another -o or pass --force to replace them",
                                  dir, probe);
        return 0;
    }
    char *text = NULL;
    size_t len = 0;
    if (qid_read_text_file(t->json_path, (size_t)64 << 20, &text, &len, err)) return -(err ? err->code : QID_E_IO);
    cJSON *old = cJSON_Parse(text);
    free(text);
    const cJSON *h = old ? cJSON_GetObjectItemCaseSensitive(old, "settings_sha256") : NULL;
    const cJSON *complete = old ? cJSON_GetObjectItemCaseSensitive(old, "complete") : NULL;
    int same = cJSON_IsString(h) && strcmp(h->valuestring, t->settings_sha) == 0;
    if (!same && !t->o->force) {
        int rc = -qid_error_set(err, QID_E_INVALID,
                                "'%s' holds a training with other settings (%s %.12s, these settings %.12s): choose "
                                "another -o or pass --force to replace it",
                                dir, old ? "settings_sha256" : "unreadable train.json",
                                cJSON_IsString(h) ? h->valuestring : "-", t->settings_sha);
        cJSON_Delete(old);
        return rc;
    }
    if (same && cJSON_IsTrue(complete)) {
        size_t have = 0;
        for (size_t i = 0; i < t->n_save; i++) {
            char path[1100];
            snprintf(path, sizeof path, "%s/step%" PRId64 ".h5", dir, t->save[i]);
            have += file_exists(path);
        }
        if (have == t->n_save) {
            cJSON_Delete(old);
            *n_ckpt = have;
            return 1;
        }
    }
    if (!t->o->quiet)
        qid_info("train: %s: %s; starting over", dir,
                 same ? "the previous run with these settings did not finish" : "replacing a training (--force)");
    if (old) remove_old_checkpoints(dir, old);
    cJSON_Delete(old);
    unlink(t->json_path);
    return 0;
}

/* ---- checkpoints -------------------------------------------------------------------------- */

static int write_train_group(trainer *t, hid_t file, int64_t step, double train_loss, double eval_loss, qid_error *err)
{
    hid_t gcpl = H5I_INVALID_HID, g = H5I_INVALID_HID;
    int rc = QID_OK;
    QID_H5_TRY(err, gcpl = H5Pcreate(H5P_GROUP_CREATE), "cannot create a property list");
    QID_H5_TRY(err, H5Pset_obj_track_times(gcpl, 0), "cannot set group properties");
    QID_H5_TRY(err, g = H5Gcreate2(file, "train", H5P_DEFAULT, gcpl, H5P_DEFAULT), "cannot create group '/train'");
    const qid_train_opts *o = t->o;
    rc = qid_h5_attr_write_str(g, "schedule", qid_sched_name(t->sched.kind), err);
    if (!rc) rc = qid_h5_attr_write_f64(g, "lr", t->sched.lr, err);
    if (!rc) rc = qid_h5_attr_write_f64(g, "min_lr", t->sched.min_lr, err);
    if (!rc) rc = qid_h5_attr_write_i64(g, "warmup_steps", t->sched.warmup, err);
    if (!rc) rc = qid_h5_attr_write_f64(g, "decay_frac", t->sched.decay_frac, err);
    if (!rc) rc = qid_h5_attr_write_i64(g, "total_steps", t->steps, err);
    if (!rc) rc = qid_h5_attr_write_f64(g, "lr_at_step", step > 0 ? qid_train_lr(&t->sched, step) : 0.0, err);
    if (!rc) rc = qid_h5_attr_write_i64(g, "batch_windows", (int64_t)t->B, err);
    if (!rc) rc = qid_h5_attr_write_i64(g, "seq_len", (int64_t)t->L, err);
    if (!rc) rc = qid_h5_attr_write_i64(g, "tokens_per_step", (int64_t)(t->B * t->L), err);
    if (!rc) rc = qid_h5_attr_write_f64(g, "weight_decay", o->weight_decay, err);
    if (!rc) rc = qid_h5_attr_write_str(g, "weight_decay_on", "linear weights", err);
    if (!rc) rc = qid_h5_attr_write_f64(g, "clip", o->clip, err);
    if (!rc) rc = qid_h5_attr_write_f64(g, "beta1", o->beta1, err);
    if (!rc) rc = qid_h5_attr_write_f64(g, "beta2", o->beta2, err);
    if (!rc) rc = qid_h5_attr_write_f64(g, "eps", o->eps, err);
    if (!rc) rc = qid_h5_attr_write_i64(g, "seed", (int64_t)o->seed, err);
    if (!rc) rc = qid_h5_attr_write_f64(g, "init_std", cJSON_GetObjectItem(t->settings, "init_std")->valuedouble, err);
    if (!rc) rc = qid_h5_attr_write_f64(g, "train_loss", train_loss, err);
    if (!rc) rc = qid_h5_attr_write_f64(g, "eval_loss", eval_loss, err);
    if (!rc) rc = qid_h5_attr_write_i64(g, "eval_windows", (int64_t)t->n_eval, err);
    if (!rc) rc = qid_h5_attr_write_str(g, "train_ids_sha256", t->train_sha, err);
    if (!rc) rc = qid_h5_attr_write_str(g, "settings_sha256", t->settings_sha, err);
    H5Gclose(g);
    H5Pclose(gcpl);
    return rc;
fail:
    if (g >= 0) H5Gclose(g);
    if (gcpl >= 0) H5Pclose(gcpl);
    return err ? err->code : QID_E_HDF5;
}

static int save_checkpoint(trainer *t, int64_t step, double train_loss, double eval_loss, qid_error *err)
{
    char path[1100];
    snprintf(path, sizeof path, "%s/step%" PRId64 ".h5", t->o->out_dir, step);
    qid_ckpt_meta meta;
    memset(&meta, 0, sizeof meta);
    snprintf(meta.model, sizeof meta.model, "%s", t->name);
    meta.step = step;
    meta.tokens_seen = step * (int64_t)(t->B * t->L);
    meta.dtype = QID_DTYPE_F32;
    snprintf(meta.source_format, sizeof meta.source_format, "qid-train");
    meta.lr_frac = step > 0 ? qid_train_lr(&t->sched, step) / t->sched.lr : 0.0;
    qid_sched_spec_format(&t->sched, meta.lr_schedule, sizeof meta.lr_schedule);
    char files[2200], sums[200];
    snprintf(files, sizeof files, "%s%s%s", t->o->train_path, t->o->eval_path ? "\n" : "",
             t->o->eval_path ? t->o->eval_path : "");
    snprintf(sums, sizeof sums, "%s%s%s", t->train_sha, t->eval_ids ? "\n" : "", t->eval_ids ? t->eval_sha : "");
    qid_ckpt_source src = {.files = files, .sha256 = sums, .config_json = t->settings_text, .directory = t->o->out_dir};
    qid_ckpt_writer *w = qid_ckpt_create(path, &t->cfg, &meta, &src, err);
    if (!w) return err ? err->code : QID_E_IO;
    int rc = write_train_group(t, qid_ckpt_writer_file(w), step, train_loss, eval_loss, err);
    for (size_t i = 0; i < t->m->n_specs && !rc; i++)
        rc = qid_ckpt_write_tensor(w, &t->m->specs[i], t->m->param + t->m->offset[i], err);
    if (rc) {
        qid_ckpt_abort(w);
        return qid_error_wrap(err, rc, "cannot write checkpoint '%s'", path);
    }
    if ((rc = qid_ckpt_finish(w, err))) return rc;
    cJSON *e = cJSON_CreateObject();
    char file[64];
    snprintf(file, sizeof file, "step%" PRId64 ".h5", step);
    cJSON_AddNumberToObject(e, "step", (double)step);
    cJSON_AddNumberToObject(e, "tokens", (double)meta.tokens_seen);
    cJSON_AddStringToObject(e, "file", file);
    if (isfinite(train_loss))
        cJSON_AddNumberToObject(e, "train_loss", train_loss);
    else
        cJSON_AddNullToObject(e, "train_loss");
    if (isfinite(eval_loss))
        cJSON_AddNumberToObject(e, "eval_loss", eval_loss);
    else
        cJSON_AddNullToObject(e, "eval_loss");
    cJSON_AddItemToArray(t->saved, e);
    return QID_OK;
}

/* ---- the loop ------------------------------------------------------------------------------- */

/* Mean loss of the model on the eval windows (forward passes of up to B windows). */
static int eval_loss(trainer *t, double *loss, qid_error *err)
{
    double sum = 0.0;
    double *wn = qid_malloc(t->B * sizeof *wn, "eval window NLL");
    int rc = QID_OK;
    for (size_t w0 = 0; w0 < t->n_eval && !rc; w0 += t->B) {
        const size_t nb = t->n_eval - w0 < t->B ? t->n_eval - w0 : t->B;
        double l;
        rc = qid_tmodel_forward(t->m, t->acts, t->eval_ids + w0 * t->L, nb, &l, wn, err);
        for (size_t i = 0; i < nb && !rc; i++)
            sum += wn[i];
    }
    free(wn);
    *loss = sum / (double)(t->n_eval * (t->L - 1));
    return rc;
}

/* The windows of update step (1-based): B consecutive entries of the
 * seeded permutation of the current epoch, continuing into the next. */
static void fill_batch(trainer *t, int64_t step)
{
    for (size_t i = 0; i < t->B; i++) {
        const uint64_t g = (uint64_t)(step - 1) * t->B + i;
        const int64_t epoch = (int64_t)(g / t->n_train);
        if (epoch != t->perm_epoch) {
            qid_rng rng;
            qid_rng_seed(&rng, t->o->seed, DATA_STREAM + (uint64_t)epoch);
            for (size_t k = 0; k < t->n_train; k++)
                t->perm[k] = (uint32_t)k;
            for (size_t k = t->n_train; k > 1; k--) {
                size_t j = (size_t)qid_rng_below(&rng, k);
                uint32_t x = t->perm[k - 1];
                t->perm[k - 1] = t->perm[j];
                t->perm[j] = x;
            }
            t->perm_epoch = epoch;
        }
        const size_t win = t->perm[g % t->n_train];
        memcpy(t->batch_ids + i * t->L, t->train_ids + win * t->L, t->L * sizeof *t->batch_ids);
    }
}

static void fmt_eta(double s, char *buf, size_t len)
{
    if (!(s >= 0) || s > 1e7)
        snprintf(buf, len, "?");
    else if (s < 120)
        snprintf(buf, len, "%.0fs", s);
    else
        snprintf(buf, len, "%.0fm%02.0fs", floor(s / 60), fmod(s, 60));
}

static void progress(trainer *t, int64_t step, double loss, double lr, int force)
{
    if (t->o->quiet) return;
    const double tn = qid_now();
    if (!force && !t->tty && tn - t->last_progress < t->o->progress_every) return;
    if (!force && t->tty && tn - t->last_progress < 0.5) return;
    t->last_progress = tn;
    const double el = tn - t->t_start, tps = el > 0 ? (double)step * (double)(t->B * t->L) / el : 0;
    char eta[32];
    fmt_eta(step > 0 ? el / (double)step * (double)(t->steps - step) : -1, eta, sizeof eta);
    if (t->tty)
        fprintf(stderr, "\rqid train: step %" PRId64 "/%" PRId64 ", loss %.4f, lr %.2e, %.0f tokens/s, ETA %s   ", step,
                t->steps, loss, lr, tps, eta);
    else
        qid_info("train: step %" PRId64 "/%" PRId64 ", loss %.4f, lr %.2e, %.0f tokens/s, ETA %s", step, t->steps, loss,
                 lr, tps, eta);
}

static void note(trainer *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note(trainer *t, const char *fmt, ...)
{
    if (t->o->quiet) return;
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (t->tty) fprintf(stderr, "\r%-100s\r", "");
    qid_info("train: %s", line);
}

static void tsv_row(trainer *t, int64_t step, double lr, double loss, double gnorm, double ev)
{
    char a[32] = "", b[32] = "", c[32] = "";
    if (isfinite(loss)) snprintf(a, sizeof a, "%.9g", loss);
    if (isfinite(gnorm)) snprintf(b, sizeof b, "%.9g", gnorm);
    if (isfinite(ev)) snprintf(c, sizeof c, "%.9g", ev);
    fprintf(t->tsv, "%" PRId64 "\t%" PRId64 "\t%.9g\t%s\t%s\t%s\t%.3f\n", step, step * (int64_t)(t->B * t->L), lr, a, b,
            c, qid_now() - t->t_start);
    if (fflush(t->tsv) != 0 && !t->tsv_errno) t->tsv_errno = errno ? errno : EIO;
}

static int is_saved(const trainer *t, int64_t step, size_t *next)
{
    while (*next < t->n_save && t->save[*next] < step)
        (*next)++;
    return *next < t->n_save && t->save[*next] == step;
}

static int train_loop(trainer *t, qid_train_result *r, qid_error *err)
{
    size_t next = 0;
    int rc = QID_OK;
    double last_loss = NAN, last_eval = NAN;
    if (is_saved(t, 0, &next)) {
        if (t->eval_ids && (rc = eval_loss(t, &last_eval, err))) return rc;
        tsv_row(t, 0, 0.0, NAN, NAN, last_eval);
        if ((rc = save_checkpoint(t, 0, NAN, last_eval, err))) return rc;
        r->n_saved++;
    }
    for (int64_t s = 1; s <= t->steps; s++) {
        fill_batch(t, s);
        double loss;
        if ((rc = qid_tmodel_grad(t->m, t->acts, t->batch_ids, t->B, &loss, NULL, err)))
            return qid_error_wrap(err, rc, "step %" PRId64, s);
        const double gnorm = qid_train_grad_norm(t->m);
        if (!isfinite(loss) || !isfinite(gnorm))
            return qid_error_set(err, QID_E_NUMERIC,
                                 "training diverged at step %" PRId64 ": loss %g, gradient norm %g (lower --lr?)", s,
                                 loss, gnorm);
        const double lr = qid_train_lr(&t->sched, s);
        qid_adamw_step(t->opt, t->m, lr, qid_train_clip_coef(gnorm, t->o->clip));
        last_loss = loss;
        double ev = NAN;
        const int save = is_saved(t, s, &next);
        if (save && t->eval_ids && (rc = eval_loss(t, &ev, err)))
            return qid_error_wrap(err, rc, "eval loss at step %" PRId64, s);
        tsv_row(t, s, lr, loss, gnorm, ev);
        if (save) {
            if ((rc = save_checkpoint(t, s, loss, ev, err))) return rc;
            r->n_saved++;
            last_eval = ev;
            if (t->eval_ids)
                note(t, "step %" PRId64 ": train loss %.4f, eval loss %.4f -> step%" PRId64 ".h5", s, loss, ev, s);
            else
                note(t, "step %" PRId64 ": train loss %.4f -> step%" PRId64 ".h5", s, loss, s);
        }
        progress(t, s, loss, lr, s == t->steps);
    }
    if (t->tty && !t->o->quiet) fputc('\n', stderr);
    r->final_train_loss = last_loss;
    r->final_eval_loss = last_eval;
    return QID_OK;
}

/* ---- setting up ------------------------------------------------------------------------------ */

static int setup(trainer *t, qid_error *err)
{
    const qid_train_opts *o = t->o;
    if (!o->train_path || !o->out_dir)
        return qid_error_set(err, QID_E_USAGE, "a train token set and -o DIR are needed");
    qid_tokens_meta tm, em;
    size_t n_ids = 0;
    int rc = read_stream(o->train_path, 0, &t->train_ids, &n_ids, &tm, err);
    if (rc) return rc;
    const int64_t vocab = o->vocab ? o->vocab : tm.vocab_size;
    if (tm.vocab_size > vocab)
        return qid_error_set(err, QID_E_INVALID,
                             "train set '%s' has a vocabulary of %" PRId64 ", larger than the model's %" PRId64,
                             o->train_path, tm.vocab_size, vocab);
    t->L = (size_t)(o->seq_len ? o->seq_len : tm.seq_len);
    t->B = (size_t)o->batch;
    if (t->L < 2) return qid_error_set(err, QID_E_INVALID, "--seq-len must be at least 2 (got %zu)", t->L);
    if (o->batch < 1) return qid_error_set(err, QID_E_INVALID, "--batch must be at least 1");
    const int64_t max_seq = o->max_seq_len ? o->max_seq_len : (int64_t)t->L;
    if ((int64_t)t->L > max_seq)
        return qid_error_set(err, QID_E_INVALID, "--seq-len %zu is longer than --max-seq-len %" PRId64, t->L, max_seq);
    t->n_train = n_ids / t->L;
    if (t->n_train < t->B)
        return qid_error_set(err, QID_E_INVALID,
                             "train set '%s' holds %zu tokens: fewer than one batch of %zu windows of %zu tokens",
                             o->train_path, n_ids, t->B, t->L);
    if (t->n_train > UINT32_MAX)
        return qid_error_set(err, QID_E_INVALID, "train set '%s' has too many windows", o->train_path);
    sha_hex(t->train_ids, t->n_train * t->L * sizeof *t->train_ids, t->train_sha);
    if (o->d_model <= 0 || o->n_layers <= 0 || o->n_heads <= 0)
        return qid_error_set(err, QID_E_USAGE, "--d-model, --layers and --heads are needed (positive)");
    if ((rc = qid_tmodel_config(&t->cfg, vocab, o->d_model, o->n_layers, o->n_heads, o->d_ff ? o->d_ff : 4 * o->d_model,
                                max_seq, err)))
        return rc;
    if (o->eval_path) {
        const size_t want = (size_t)(o->eval_windows ? o->eval_windows : DEFAULT_EVAL_WINDOWS);
        size_t n = 0;
        if ((rc = read_stream(o->eval_path, qid_mul_size(want, t->L), &t->eval_ids, &n, &em, err))) return rc;
        if (em.vocab_size > vocab)
            return qid_error_set(err, QID_E_INVALID,
                                 "eval set '%s' has a vocabulary of %" PRId64 ", larger than the model's %" PRId64,
                                 o->eval_path, em.vocab_size, vocab);
        t->n_eval = n / t->L;
        if (t->n_eval == 0)
            return qid_error_set(err, QID_E_INVALID, "eval set '%s' holds %zu tokens: fewer than one window of %zu",
                                 o->eval_path, n, t->L);
        sha_hex(t->eval_ids, t->n_eval * t->L * sizeof *t->eval_ids, t->eval_sha);
    }
    /* steps and schedule */
    const int64_t per_step = (int64_t)(t->B * t->L);
    if ((o->steps > 0) == (o->tokens > 0))
        return qid_error_set(err, QID_E_USAGE, "give either --steps or --tokens (positive)");
    t->steps = o->steps > 0 ? o->steps : (o->tokens + per_step - 1) / per_step;
    t->sched = o->sched;
    t->sched.steps = t->steps;
    t->sched.min_lr = o->min_lr >= 0 ? o->min_lr : 0.1 * o->sched.lr;
    if (t->sched.warmup < 0) t->sched.warmup = t->steps / 20;
    if (!(t->sched.lr > 0) || !isfinite(t->sched.lr) || !(t->sched.min_lr >= 0) || t->sched.min_lr > t->sched.lr)
        return qid_error_set(err, QID_E_INVALID, "need 0 <= --min-lr <= --lr, --lr > 0 (got %g, %g)", t->sched.min_lr,
                             t->sched.lr);
    if (t->sched.warmup > t->steps)
        return qid_error_set(err, QID_E_INVALID, "--warmup %" PRId64 " is longer than the %" PRId64 " steps",
                             t->sched.warmup, t->steps);
    if (t->sched.kind == QID_SCHED_WSD &&
        (!(t->sched.decay_frac > 0) || t->sched.decay_frac > 1 || t->sched.warmup >= t->steps))
        return qid_error_set(
            err, QID_E_INVALID,
            "wsd needs 0 < --decay-frac <= 1 and steps after the warm-up (decay-frac %g, warmup %" PRId64 " of %" PRId64
            " steps)",
            t->sched.decay_frac, t->sched.warmup, t->steps);
    if (!(o->beta1 >= 0 && o->beta1 < 1) || !(o->beta2 >= 0 && o->beta2 < 1) || !(o->eps > 0) ||
        !(o->weight_decay >= 0) || !(o->clip >= 0))
        return qid_error_set(
            err, QID_E_INVALID,
            "need 0 <= beta1, beta2 < 1, eps > 0, weight decay >= 0, clip >= 0 (got %g, %g, %g, %g, %g)", o->beta1,
            o->beta2, o->eps, o->weight_decay, o->clip);
    /* saves */
    if (o->save) {
        t->save = qid_malloc((o->n_save + 1) * sizeof *t->save, "save steps");
        memcpy(t->save, o->save, o->n_save * sizeof *t->save);
        qsort(t->save, o->n_save, sizeof *t->save, cmp_i64);
        for (size_t i = 0; i < o->n_save; i++) {
            if (t->save[i] < 0 || t->save[i] > t->steps)
                return qid_error_set(err, QID_E_INVALID, "save step %" PRId64 " is outside 0..%" PRId64, t->save[i],
                                     t->steps);
            if (i == 0 || t->save[i] != t->save[t->n_save - 1]) t->save[t->n_save++] = t->save[i];
        }
    } else {
        t->n_save = qid_train_default_saves(t->steps, o->save_every, &t->save);
    }
    if (o->name)
        snprintf(t->name, sizeof t->name, "%s", o->name);
    else {
        const char *b = strrchr(o->out_dir, '/');
        snprintf(t->name, sizeof t->name, "%s", b && b[1] ? b + 1 : o->out_dir);
    }
    t->settings = settings_json(t);
    t->settings_text = cJSON_PrintUnformatted(t->settings);
    QID_CHECK(t->settings_text != NULL, "cannot print the settings");
    sha_hex(t->settings_text, strlen(t->settings_text), t->settings_sha);
    snprintf(t->json_path, sizeof t->json_path, "%s/train.json", o->out_dir);
    snprintf(t->tsv_path, sizeof t->tsv_path, "%s/train.tsv", o->out_dir);
    return QID_OK;
}

static void trainer_free(trainer *t)
{
    free(t->train_ids);
    free(t->eval_ids);
    free(t->save);
    cJSON_Delete(t->settings);
    free(t->settings_text);
    qid_tmodel_free(t->m);
    qid_tacts_free(t->acts);
    qid_adamw_free(t->opt);
    if (t->tsv) fclose(t->tsv);
    cJSON_Delete(t->saved);
    free(t->perm);
    free(t->batch_ids);
}

int qid_train_run(const qid_train_opts *o, qid_train_result *r, qid_error *err)
{
    memset(r, 0, sizeof *r);
    r->final_train_loss = r->final_eval_loss = NAN;
    trainer t;
    memset(&t, 0, sizeof t);
    t.o = o;
    t.perm_epoch = -1;
    if (o->threads > 0) omp_set_num_threads(o->threads);
    int rc = setup(&t, err);
    if (rc) goto done;
    r->params_nonembedding = qid_params_nonembedding(&t.cfg);
    r->params_total = qid_params_total(&t.cfg);
    snprintf(r->settings_sha256, sizeof r->settings_sha256, "%s", t.settings_sha);
    size_t have = 0;
    int cached = check_dir(&t, &have, err);
    if (cached < 0) {
        rc = -cached;
        goto done;
    }
    if (cached) {
        r->cached = 1;
        r->n_saved = have;
        r->steps = t.steps;
        r->tokens = t.steps * (int64_t)(t.B * t.L);
        goto done;
    }
    if (!(t.m = qid_tmodel_create(&t.cfg, err))) {
        rc = err ? err->code : QID_E_INVALID;
        goto done;
    }
    qid_tmodel_init(t.m, o->seed, cJSON_GetObjectItem(t.settings, "init_std")->valuedouble);
    if (!(t.acts = qid_tacts_create(&t.cfg, t.B, t.L, err))) {
        rc = err ? err->code : QID_E_INVALID;
        goto done;
    }
    t.opt = qid_adamw_create(t.m, o->beta1, o->beta2, o->eps, o->weight_decay);
    t.perm = qid_malloc(qid_mul_size(t.n_train, sizeof *t.perm), "window order");
    t.batch_ids = qid_malloc(qid_mul_size(t.B * t.L, sizeof *t.batch_ids), "batch tokens");
    t.saved = cJSON_CreateArray();
    if ((rc = write_train_json(&t, 0, NULL, err))) goto done;
    if (!(t.tsv = fopen(t.tsv_path, "w"))) {
        rc = qid_error_set(err, QID_E_IO, "cannot create '%s': %s", t.tsv_path, strerror(errno));
        goto done;
    }
    fprintf(t.tsv, "step\ttokens\tlr\ttrain_loss\tgrad_norm\teval_loss\tseconds\n");
    t.tty = isatty(2);
    t.t_start = t.last_progress = qid_now();
    if (!o->quiet)
        qid_info("train: %s: N = %" PRId64 " (%" PRId64 " with embeddings), %" PRId64 " steps of %zu x %zu tokens, %s "
                 "lr %g, %d threads, %.1f MiB of activations",
                 t.name, r->params_nonembedding, r->params_total, t.steps, t.B, t.L, qid_sched_name(t.sched.kind),
                 t.sched.lr, omp_get_max_threads(), (double)qid_tacts_bytes(&t.cfg, t.B, t.L) / 1048576.0);
    rc = train_loop(&t, r, err);
    r->seconds = qid_now() - t.t_start;
    r->steps = t.steps;
    r->tokens = t.steps * (int64_t)(t.B * t.L);
    r->tokens_per_s = r->seconds > 0 ? (double)r->tokens / r->seconds : 0;
    r->gflops = r->seconds > 0 ? qid_tmodel_step_flops(&t.cfg, t.B, t.L) * (double)t.steps / r->seconds / 1e9 : 0;
    if (rc) goto done;
    if (t.tsv_errno || fflush(t.tsv) != 0 || fsync(fileno(t.tsv)) != 0) {
        rc = qid_error_set(err, QID_E_IO, "cannot write '%s': %s", t.tsv_path,
                           strerror(t.tsv_errno ? t.tsv_errno : errno));
        goto done;
    }
    rc = write_train_json(&t, 1, r, err);
done:
    trainer_free(&t);
    return rc;
}
