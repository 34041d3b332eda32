/* test_train.c - qid train (train_grad.h, train.h): the backward pass
 * against PyTorch's gradients of the same tiny GPT-NeoX (fixture from
 * tools/make_train_fixture.py) and against central finite differences,
 * three clipped AdamW steps against torch.optim.AdamW, learning-rate
 * schedules and save steps (exact numbers), a short training run whose loss
 * falls on a learnable stream with `qid eval` giving the loss the trainer
 * logged, determinism (seeds, thread counts), the cache of a rerun, the
 * /train attributes, and bad input (message, and nothing left behind). */
#include <dirent.h>
#include <hdf5.h>
#include <inttypes.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cJSON.h>

#include "checkpoint.h"
#include "eval.h"
#include "h5io.h"
#include "import.h"
#include "tap.h"
#include "tokens.h"
#include "train.h"

#define FIX "test/fixtures/train"
#define PI  3.14159265358979323846

/* ---- helpers -------------------------------------------------------------------- */

static float *read_f32(const char *path, size_t n)
{
    size_t len = 0;
    char *raw = tap_read_file(path, &len);
    if (len != n * sizeof(float)) bail("%s has %zu bytes, wanted %zu", path, len, n * sizeof(float));
    float *f = malloc(len);
    memcpy(f, raw, len);
    free(raw);
    return f;
}

/* A token set of the ids (n) at tap_path(name.h5), windows of seq_len,
 * vocabulary vocab. Returns a malloc'd path. */
static const char *make_tokens(const char *name, const uint16_t *ids, size_t n, int64_t vocab, int64_t seq_len)
{
    char raw[64];
    snprintf(raw, sizeof raw, "%s.u16", name);
    const char *rp = tap_path(raw);
    tap_write_file(rp, ids, n * sizeof *ids);
    char h5[64];
    snprintf(h5, sizeof h5, "%s.h5", name);
    const char *out = tap_path(h5);
    qid_tokens_import_opts o = {
        .input = rp, .output = out, .source = QID_TOKENS_SRC_U16, .vocab_size = vocab, .seq_len = seq_len, .force = 1};
    qid_error err;
    if (qid_tokens_import(&o, NULL, &err)) bail("cannot write token set %s: %s", out, err.msg);
    return strdup(out); /* tap_path's buffers rotate */
}

/* A learnable stream over vocab 16: next = perm[cur] with probability 7/8,
 * else uniform (a first-order Markov chain, entropy rate ~0.67 nats). */
static uint16_t *markov_stream(size_t n, uint64_t seed)
{
    static const uint16_t perm[16] = {5, 11, 2, 14, 9, 0, 7, 12, 3, 15, 1, 8, 13, 6, 10, 4};
    uint16_t *s = malloc(n * sizeof *s);
    tap_seed(seed);
    uint16_t cur = 0;
    for (size_t i = 0; i < n; i++) {
        cur = tap_uniform() < 0.875 ? perm[cur] : (uint16_t)(tap_rand() % 16);
        s[i] = cur;
    }
    return s;
}

static int count_files(const char *dir, const char *contains)
{
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.' && strstr(e->d_name, contains)) n++;
    closedir(d);
    return n;
}

static int dir_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static void ckpt_meta(const char *path, qid_ckpt_meta *meta)
{
    qid_ckpt ck;
    qid_error err;
    if (qid_ckpt_open(path, &ck, &err)) bail("cannot open %s: %s", path, err.msg);
    *meta = ck.meta;
    qid_ckpt_close(&ck);
}

/* ---- the backward pass vs PyTorch; AdamW vs torch.optim.AdamW ---------------------- */

static void test_pytorch(void)
{
    size_t len = 0;
    char *text = tap_read_file(FIX "/fixture.json", &len);
    cJSON *j = cJSON_Parse(text);
    free(text);
    if (!j) bail("cannot parse " FIX "/fixture.json");
    const char *ck = tap_path("train-fixture.h5");
    qid_import_opts io = {.dir = FIX "/model", .out = ck, .step = -1, .tokens = -1, .force = 1};
    qid_error err;
    if (qid_import_safetensors(&io, &err)) bail("cannot import the fixture: %s", err.msg);
    qid_tmodel *m = qid_tmodel_open(ck, &err);
    if (!m) bail("cannot open %s: %s", ck, err.msg);
    const size_t np = (size_t)cJSON_GetObjectItem(j, "n_params")->valuedouble;
    is_int((long long)np, (long long)m->n_params, "fixture: %zu parameters", np);

    /* tokens: 3 windows of 16 */
    const cJSON *tw = cJSON_GetObjectItem(j, "tokens");
    const size_t B = (size_t)cJSON_GetArraySize(tw), T = (size_t)cJSON_GetArraySize(cJSON_GetArrayItem(tw, 0));
    uint32_t *tok = malloc(B * T * sizeof *tok);
    for (size_t w = 0; w < B; w++)
        for (size_t t = 0; t < T; t++)
            tok[w * T + t] = (uint32_t)cJSON_GetArrayItem(cJSON_GetArrayItem(tw, (int)w), (int)t)->valueint;
    qid_tacts *a = qid_tacts_create(&m->cfg, B, T, &err);
    if (!a) bail("workspace: %s", err.msg);
    double loss = 0, loss_fwd = 0;
    if (qid_tmodel_forward(m, a, tok, B, &loss_fwd, NULL, &err)) bail("forward: %s", err.msg);
    if (qid_tmodel_grad(m, a, tok, B, &loss, NULL, &err)) bail("forward and backward: %s", err.msg);
    is_double(loss_fwd, loss, 0, "forward alone and with the backward give the same loss");
    const double ref = cJSON_GetObjectItem(j, "loss_f64")->valuedouble;
    /* tolerance 1e-6 relative: float32 forward passes of the same function */
    is_double(ref, loss, 1e-6 * ref, "loss %.9f = transformers' %.9f (float64 from its float32 logits)", loss, ref);

    /* gradients, per tensor: max |diff| <= 2e-6 max |g| and ||diff|| / ||g|| <= 2e-6 */
    float *g_ref = read_f32(FIX "/grads.f32", np);
    const cJSON *tab = cJSON_GetObjectItem(j, "tensors");
    double worst_rel = 0;
    for (size_t i = 0; i < m->n_specs; i++) {
        const qid_tensor_spec *s = &m->specs[i];
        const cJSON *e = NULL;
        for (int k = 0; k < cJSON_GetArraySize(tab); k++)
            if (strcmp(cJSON_GetObjectItem(cJSON_GetArrayItem(tab, k), "hf")->valuestring, s->hf_name) == 0)
                e = cJSON_GetArrayItem(tab, k);
        if (!e) bail("tensor %s missing from the fixture", s->hf_name);
        const size_t off = (size_t)cJSON_GetObjectItem(e, "offset")->valuedouble;
        const size_t n = (size_t)qid_tensor_numel(s);
        const float *g = m->grad + m->offset[i], *r = g_ref + off;
        double maxd = 0, maxg = 0, dd = 0, gg = 0;
        for (size_t k = 0; k < n; k++) {
            double d = (double)g[k] - r[k];
            maxd = fmax(maxd, fabs(d));
            maxg = fmax(maxg, fabs((double)r[k]));
            dd += d * d;
            gg += (double)r[k] * r[k];
        }
        const double rel = sqrt(dd / gg);
        worst_rel = fmax(worst_rel, rel);
        char path[160];
        qid_tensor_path(s, path, sizeof path);
        ok(maxd <= 2e-6 * maxg && rel <= 2e-6, "gradient of %s vs PyTorch: max |diff| %.2e (max |g| %.3f), rel %.2e",
           path, maxd, maxg, rel);
    }
    diag("worst relative gradient error vs PyTorch: %.2e", worst_rel);

    /* three clipped AdamW steps from the fixture weights with PyTorch's gradients */
    memcpy(m->grad, g_ref, np * sizeof(float));
    qid_adamw *o = qid_adamw_create(
        m, cJSON_GetObjectItem(j, "beta1")->valuedouble, cJSON_GetObjectItem(j, "beta2")->valuedouble,
        cJSON_GetObjectItem(j, "eps")->valuedouble, cJSON_GetObjectItem(j, "weight_decay")->valuedouble);
    const cJSON *lrs = cJSON_GetObjectItem(j, "lrs");
    const double clip = cJSON_GetObjectItem(j, "clip")->valuedouble;
    for (int s = 0; s < cJSON_GetArraySize(lrs); s++) {
        memcpy(m->grad, g_ref, np * sizeof(float));
        const double norm = qid_train_grad_norm(m);
        if (s == 0) {
            const double want = cJSON_GetObjectItem(j, "grad_norm")->valuedouble;
            is_double(want, norm, 1e-6 * want, "global gradient norm %.7f = clip_grad_norm_'s %.7f", norm, want);
            const double coef = qid_train_clip(m, norm, clip);
            is_double(clip / (norm + 1e-6), coef, 1e-7, "clipping coefficient %.7f = max_norm / (norm + 1e-6)", coef);
            is_double(clip, qid_train_grad_norm(m), 1e-6 * clip, "clipped norm = max_norm %.6f", clip);
        } else {
            qid_train_clip(m, norm, clip);
        }
        qid_adamw_step(o, m, cJSON_GetArrayItem(lrs, s)->valuedouble, 1.0f);
    }
    float *p_ref = read_f32(FIX "/adamw.f32", np);
    double maxd = 0;
    size_t at = 0;
    for (size_t k = 0; k < np; k++) {
        double d = fabs((double)m->param[k] - p_ref[k]) / fmax(1.0, fabs((double)p_ref[k]));
        if (d > maxd) maxd = d, at = k;
    }
    /* tolerance 2.5e-7 max(1, |p|): two float32 ulps, updates in torch's order */
    ok(maxd <= 2.5e-7, "3 AdamW steps = torch.optim.AdamW: max |diff| / max(1, |p|) %.2e (element %zu, %.7f)", maxd, at,
       (double)p_ref[at]);
    is_int(3, o->t, "AdamW counted 3 steps");
    /* the trainer's fused form: the clipping factor applied inside the update */
    qid_tmodel *m2 = qid_tmodel_open(ck, &err);
    qid_adamw *o2 = qid_adamw_create(m2, o->beta1, o->beta2, o->eps, o->weight_decay);
    memcpy(m2->grad, g_ref, np * sizeof(float));
    for (int s = 0; s < cJSON_GetArraySize(lrs); s++)
        qid_adamw_step(o2, m2, cJSON_GetArrayItem(lrs, s)->valuedouble,
                       qid_train_clip_coef(qid_train_grad_norm(m2), clip));
    ok(memcmp(m2->param, m->param, np * sizeof(float)) == 0, "clipping fused into the update: bit-identical");
    ok(memcmp(m2->grad, g_ref, np * sizeof(float)) == 0, "... and the gradients are left as they were");
    qid_adamw_free(o2);
    qid_tmodel_free(m2);
    free(p_ref);
    qid_adamw_free(o);
    free(g_ref);
    free(tok);
    qid_tacts_free(a);
    qid_tmodel_free(m);
    cJSON_Delete(j);
}

/* ---- finite differences --------------------------------------------------------------- */

static void test_finite_differences(void)
{
    qid_model_config cfg;
    qid_error err;
    if (qid_tmodel_config(&cfg, 13, 16, 2, 2, 24, 8, &err)) bail("config: %s", err.msg);
    qid_tmodel *m = qid_tmodel_create(&cfg, &err);
    if (!m) bail("%s", err.msg);
    qid_tmodel_init(m, 99, 0.4);
    tap_seed(5);
    for (size_t i = 0; i < m->n_specs; i++) /* non-trivial norms and biases */
        if (m->specs[i].kind == QID_TENSOR_NORM || m->specs[i].kind == QID_TENSOR_BIAS)
            for (int64_t k = 0; k < qid_tensor_numel(&m->specs[i]); k++)
                m->param[m->offset[i] + (size_t)k] += 0.2f * tap_gauss();
    const size_t B = 2, T = 8;
    uint32_t tok[16];
    for (size_t i = 0; i < B * T; i++)
        tok[i] = (uint32_t)(tap_rand() % 13);
    qid_tacts *a = qid_tacts_create(&cfg, B, T, &err);
    double loss;
    if (qid_tmodel_grad(m, a, tok, B, &loss, NULL, &err)) bail("%s", err.msg);
    float *grad = malloc(m->n_params * sizeof *grad);
    memcpy(grad, m->grad, m->n_params * sizeof *grad);
    /* Per tensor: the 3 elements with the largest |gradient| and one more.
     * Central differences with Richardson extrapolation (h = 1e-2 and 5e-3),
     * float32 forward: agreement within 1.5e-3 |g| + 3e-5. */
    const double h = 1e-2;
    double worst = 0;
    for (size_t i = 0; i < m->n_specs; i++) {
        const size_t n = (size_t)qid_tensor_numel(&m->specs[i]), off = m->offset[i];
        size_t pick[4] = {0, 0, 0, (n * 7) / 11};
        for (int r = 0; r < 3; r++) {
            double best = -1;
            for (size_t k = 0; k < n; k++) {
                int taken = 0;
                for (int q = 0; q < r; q++)
                    taken |= pick[q] == k;
                if (!taken && fabs(grad[off + k]) > best) best = fabs(grad[off + k]), pick[r] = k;
            }
        }
        int good = 1;
        double max_err = 0;
        for (int r = 0; r < 4; r++) {
            float *p = m->param + off + pick[r];
            const float p0 = *p;
            double d[2];
            for (int s = 0; s < 2; s++) {
                const double hh = s ? h / 2 : h;
                double lp, lm;
                *p = (float)(p0 + hh);
                qid_tmodel_forward(m, a, tok, B, &lp, NULL, &err);
                const double up = (double)*p - p0;
                *p = (float)(p0 - hh);
                qid_tmodel_forward(m, a, tok, B, &lm, NULL, &err);
                const double dn = p0 - (double)*p;
                d[s] = (lp - lm) / (up + dn);
            }
            *p = p0;
            const double fd = (4 * d[1] - d[0]) / 3, an = grad[off + pick[r]];
            const double e = fabs(fd - an);
            max_err = fmax(max_err, e / (1.5e-3 * fabs(an) + 3e-5));
            if (e > 1.5e-3 * fabs(an) + 3e-5) {
                good = 0;
                diag("%s[%zu]: analytic %.7g, finite differences %.7g", m->specs[i].name, pick[r], an, fd);
            }
        }
        worst = fmax(worst, max_err);
        char path[160];
        qid_tensor_path(&m->specs[i], path, sizeof path);
        ok(good, "finite differences agree on 4 elements of %s (worst |err| / tolerance %.2f)", path, max_err);
    }
    diag("finite differences: worst |err| / (1.5e-3 |g| + 3e-5) = %.2f", worst);
    free(grad);
    qid_tacts_free(a);
    qid_tmodel_free(m);
}

/* ---- schedules and save steps ---------------------------------------------------------- */

static void test_schedules(void)
{
    qid_train_sched s = {.kind = QID_SCHED_COSINE, .lr = 1e-3, .min_lr = 1e-4, .warmup = 10, .steps = 110};
    is_double(1e-4, qid_train_lr(&s, 1), 1e-18, "warm-up: step 1 of 10 -> lr/10");
    is_double(5e-4, qid_train_lr(&s, 5), 1e-18, "warm-up: step 5 -> lr/2");
    is_double(1e-3, qid_train_lr(&s, 10), 1e-18, "warm-up ends at lr");
    is_double(1e-4 + 0.45e-3 * (1 + cos(PI * 0.25)), qid_train_lr(&s, 35), 1e-15, "cosine at a quarter");
    is_double(5.5e-4, qid_train_lr(&s, 60), 1e-15, "cosine half-way: (lr + min_lr) / 2");
    is_double(1e-4, qid_train_lr(&s, 110), 1e-18, "cosine ends at min_lr");
    s.kind = QID_SCHED_CONSTANT;
    is_double(1e-3, qid_train_lr(&s, 110), 0, "constant after warm-up");
    is_double(3e-4, qid_train_lr(&s, 3), 1e-18, "constant: warm-up too");
    s.kind = QID_SCHED_WSD;
    s.decay_frac = 0.2; /* the last 22 of 110 steps decay */
    is_int(88, qid_train_wsd_stable_end(&s), "wsd: stable until step 88");
    is_double(1e-3, qid_train_lr(&s, 88), 0, "wsd: lr at the end of the stable phase");
    is_double(1e-3 - 0.9e-3 * 11.0 / 22.0, qid_train_lr(&s, 99), 1e-15, "wsd: half-way down the decay");
    is_double(1e-4, qid_train_lr(&s, 110), 1e-18, "wsd ends at min_lr");
    s.warmup = 0;
    is_double(1e-3, qid_train_lr(&s, 1), 0, "no warm-up: step 1 at lr");
    is_string("wsd", qid_sched_name(QID_SCHED_WSD), "schedule names");
    is_int(-1, qid_sched_parse("linear"), "unknown schedule");

    int64_t *v = NULL;
    size_t n = qid_train_default_saves(500, 64, &v);
    char buf[256] = "";
    for (size_t i = 0; i < n; i++)
        snprintf(buf + strlen(buf), sizeof buf - strlen(buf), "%s%" PRId64, i ? "," : "", v[i]);
    is_string("1,2,4,8,16,32,64,128,192,256,320,384,448,500", buf, "default saves: log-spaced, every 64, the last");
    free(v);
    n = qid_train_default_saves(256, 64, &v);
    is_int(10, (long long)n, "default saves end at the last step without a duplicate");
    free(v);
}

/* ---- training runs --------------------------------------------------------------------- */

static qid_train_opts small_opts(const char *train, const char *eval, const char *dir)
{
    qid_train_opts o;
    qid_train_opts_default(&o);
    o.train_path = train;
    o.eval_path = eval;
    o.out_dir = dir;
    o.d_model = 32;
    o.n_layers = 2;
    o.n_heads = 4;
    o.seq_len = 32;
    o.batch = 8;
    o.steps = 120;
    o.sched.lr = 1e-2;
    o.sched.warmup = 10;
    o.save_every = 40;
    o.eval_windows = 16;
    o.quiet = 1;
    return o;
}

static void test_training(const char *train, const char *eval)
{
    const char *dir = strdup(tap_path("run-a"));
    qid_train_opts o = small_opts(train, eval, dir);
    qid_train_result r;
    qid_error err;
    int rc = qid_train_run(&o, &r, &err);
    if (!ok(rc == 0, "a 120-step run trains")) diag("%s", err.msg);
    is_int(9, (long long)r.n_saved, "9 checkpoints: steps 1 2 4 8 16 32 40 80 120");
    /* the loss falls: from about ln 16 = 2.77 to near the entropy rate */
    char path[512];
    snprintf(path, sizeof path, "%s/train.tsv", dir);
    size_t len = 0;
    char *tsv = tap_read_file(path, &len);
    int rows = 0;
    double first_eval = NAN, last_train = NAN;
    for (char *line = strtok(tsv, "\n"); line; line = strtok(NULL, "\n")) {
        if (rows++ == 0) {
            is_string("step\ttokens\tlr\ttrain_loss\tgrad_norm\teval_loss\tseconds", line, "train.tsv header");
            continue;
        }
        long long step, tokens;
        double lr, tl, gn;
        char evs[64] = "";
        if (sscanf(line, "%lld\t%lld\t%lf\t%lf\t%lf\t%63[^\t]", &step, &tokens, &lr, &tl, &gn, evs) >= 5) {
            if (step == 1) first_eval = atof(evs);
            last_train = tl;
        }
    }
    free(tsv);
    is_int(121, rows, "train.tsv: header and one row per step");
    diag("eval loss after step 1: %.4f, train loss at step 120: %.4f, eval loss %.4f", first_eval, last_train,
         r.final_eval_loss);
    ok(first_eval > 2.2 && first_eval < 3.1, "eval loss after one step is near ln 16 = 2.77 (%.3f)", first_eval);
    ok(r.final_eval_loss < 0.4 * first_eval, "eval loss falls to %.3f, below 0.4 x that (entropy rate ~0.67)",
       r.final_eval_loss);

    /* qid eval of the last checkpoint gives the logged eval loss */
    snprintf(path, sizeof path, "%s/step120.h5", dir);
    qid_eval_opts eo = {.max_windows = 16, .seq_len = 32};
    qid_eval_result er;
    if (qid_eval_file(path, eval, &eo, &er, &err)) bail("qid eval: %s", err.msg);
    /* tolerance 1e-6 relative: the same function, float32 products of other shapes */
    is_double(r.final_eval_loss, er.loss, 1e-6 * er.loss, "qid eval of step120.h5: %.9f = logged %.9f (rel diff %.1e)",
              er.loss, r.final_eval_loss, fabs(er.loss - r.final_eval_loss) / er.loss);
    qid_eval_result_free(&er);
    qid_ckpt_meta meta;
    ckpt_meta(path, &meta);
    is_int(120, meta.step, "step attribute");
    is_int(120 * 8 * 32, meta.tokens_seen, "tokens_seen = step x batch x seq_len");
    is_string("qid-train", meta.source_format, "source_format qid-train");
    is_string("run-a", meta.model, "model name: the directory's base name");

    /* /train attributes */
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t g = H5Gopen2(f, "train", H5P_DEFAULT);
    char sched[32] = "";
    double ev = 0, lr = 0;
    int64_t total = 0;
    qid_h5_attr_read_str(g, "/train", "schedule", sched, sizeof sched, &err);
    qid_h5_attr_read_f64(g, "/train", "eval_loss", &ev, &err);
    qid_h5_attr_read_f64(g, "/train", "lr_at_step", &lr, &err);
    qid_h5_attr_read_i64(g, "/train", "total_steps", &total, &err);
    H5Gclose(g);
    H5Fclose(f);
    is_string("cosine", sched, "/train schedule");
    is_double(r.final_eval_loss, ev, 0, "/train eval_loss = the logged eval loss");
    is_double(1e-3, lr, 1e-15, "/train lr_at_step: min_lr at the last step of cosine");
    is_int(120, total, "/train total_steps");

    /* a rerun with the same settings does nothing */
    qid_train_result r2;
    rc = qid_train_run(&o, &r2, &err);
    ok(rc == 0 && r2.cached == 1 && r2.n_saved == 9, "rerun: already trained, nothing done");
    /* other settings into the same directory: refused, then replaced with force */
    o.sched.lr = 5e-3;
    rc = qid_train_run(&o, &r2, &err);
    ok(rc == QID_E_INVALID, "other settings into a trained directory are refused");
    like(err.msg, "holds a training with other settings", "... saying so");
    like(err.msg, "--force", "... and how to replace it");
    is_int(9, count_files(dir, "step"), "... and its checkpoints are untouched");
    free((char *)dir);
}

static void test_determinism(const char *train, const char *eval)
{
    qid_train_result r;
    qid_error err;
    const char *names[4] = {"det-1", "det-2", "det-seed", "det-threads"};
    char *dirs[4];
    for (int k = 0; k < 4; k++)
        dirs[k] = strdup(tap_path(names[k]));
    int saved_threads = omp_get_max_threads();
    for (int k = 0; k < 4; k++) {
        qid_train_opts o = small_opts(train, eval, dirs[k]);
        o.steps = 30;
        o.save_every = 10;
        o.sched.kind = QID_SCHED_WSD;
        o.seed = k == 2 ? 77 : 1234;
        o.threads = k == 3 ? 1 : 2;
        if (qid_train_run(&o, &r, &err)) bail("determinism run %d: %s", k, err.msg);
    }
    omp_set_num_threads(saved_threads);
    char p[4][512];
    qid_ckpt_meta m[4];
    for (int k = 0; k < 4; k++) {
        snprintf(p[k], sizeof p[k], "%s/step30.h5", dirs[k]);
        ckpt_meta(p[k], &m[k]);
    }
    is_string(m[0].tensor_sha256, m[1].tensor_sha256, "same seed, same threads: byte-identical tensors");
    ok(strcmp(m[0].tensor_sha256, m[2].tensor_sha256) != 0, "another seed: other tensors");
    is_string(m[0].tensor_sha256, m[3].tensor_sha256, "1 thread and 2 threads: byte-identical tensors");
    for (int k = 0; k < 4; k++)
        free(dirs[k]);
}

/* ---- bad input --------------------------------------------------------------------------- */

static void expect_fail(qid_train_opts *o, const char *what, const char *msg)
{
    qid_train_result r;
    qid_error err;
    qid_error_clear(&err);
    int rc = qid_train_run(o, &r, &err);
    ok(rc != 0, "refused: %s", what);
    like(err.msg, msg, "... %s", msg);
    ok(!dir_exists(o->out_dir) || count_files(o->out_dir, ".h5") == 0, "... and no checkpoint left");
}

static void test_bad_input(const char *train, const char *eval, const char *big_vocab, const char *tiny)
{
    qid_train_opts o = small_opts(train, eval, tap_path("bad"));
    o.vocab = 8;
    expect_fail(&o, "the train set's vocabulary is larger than the model's", "larger than the model's 8");
    o = small_opts(train, big_vocab, tap_path("bad"));
    expect_fail(&o, "the eval set's vocabulary is larger", "eval set");
    o = small_opts(tiny, eval, tap_path("bad"));
    expect_fail(&o, "fewer tokens than one batch of windows", "fewer than one batch of 8 windows of 32 tokens");
    o = small_opts(train, eval, tap_path("bad"));
    o.n_heads = 3;
    expect_fail(&o, "heads not dividing d_model", "3 heads do not divide d_model 32");
    o = small_opts(train, eval, tap_path("bad"));
    o.d_model = 24;
    o.n_heads = 2;
    expect_fail(&o, "odd rotary dimensions", "must be even");
    o = small_opts(train, eval, tap_path("bad"));
    o.max_seq_len = 16;
    expect_fail(&o, "windows longer than the positions", "longer than --max-seq-len 16");
    o = small_opts(train, eval, tap_path("bad"));
    int64_t save[2] = {10, 500};
    o.save = save;
    o.n_save = 2;
    expect_fail(&o, "a save step past the last", "save step 500 is outside 0..120");
    o = small_opts(train, eval, tap_path("bad"));
    o.sched.warmup = 200;
    expect_fail(&o, "warm-up longer than the run", "--warmup 200 is longer than the 120 steps");
    o = small_opts(tap_path("no-such.h5"), eval, tap_path("bad"));
    expect_fail(&o, "a missing train set", "no-such.h5");
    o = small_opts(train, eval, tap_path("bad"));
    o.tokens = 1000;
    expect_fail(&o, "both steps and tokens", "either --steps or --tokens");

    /* divergence: checkpoints written before it are complete, nothing half-written */
    o = small_opts(train, eval, tap_path("diverge"));
    o.sched.lr = 1e9;
    o.sched.warmup = 0;
    o.clip = 0;
    o.save_every = 1;
    qid_train_result r;
    qid_error err;
    int rc = qid_train_run(&o, &r, &err);
    ok(rc == QID_E_NUMERIC, "lr 1e9 diverges");
    like(err.msg, "non-finite", "... with a non-finite message");
    diag("%s", err.msg);
    is_int(0, count_files(tap_path("diverge"), ".tmp"), "... and no temporary file is left");
}

int main(void)
{
    plan_lazy();
    test_schedules();
    test_pytorch();
    test_finite_differences();

    uint16_t *s = markov_stream(40000, 11);
    const char *train = make_tokens("markov-train", s, 32768, 16, 64);
    const char *eval = make_tokens("markov-eval", s + 32768, 7168, 16, 64);
    const char *big = make_tokens("big-vocab", s, 4096, 40, 64);
    const char *tiny = make_tokens("tiny", s, 128, 16, 64);
    free(s);
    test_training(train, eval);
    test_determinism(train, eval);
    test_bad_input(train, eval, big, tiny);
    free((void *)train);
    free((void *)eval);
    free((void *)big);
    free((void *)tiny);
    return 0;
}
