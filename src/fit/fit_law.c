/* fit_law.c - the QiD scaling laws: the table of their forms (Ouyang et al.'s
 * QiD = k * D^beta / (N^alpha * P^gamma), Kumar et al.'s
 * QiD = C * D^gamma_D * N^-gamma_N * exp(-P/gamma_post)), the two-stage fit (weighted log-linear least squares on
 * significant points, then robust Levenberg-Marquardt on all points), bootstrap intervals over whole checkpoints,
 * leave-one-model-size-out validation, per-bit-width and per-factor laws, inversions (tokens to reach a QiD; training
 * level) and predictions with intervals.
 *
 * Parametrisation. Both stages work with centred features, x = t(v) - t(v0),
 * where t is ln for N and D and the form's p_feature for P (ln P for Ouyang's
 * law, P itself for Kumar's), v0 is the data value closest to the mean of
 * t(v), and
 *     ln law = c - alpha*xN + beta*xD - g*xP,
 *     ln k   = c + alpha*ln N0 - beta*ln D0 + g*t(P0),
 * with g = gamma (Ouyang) or 1/gamma_post (Kumar). Every form being linear in
 * (c, alpha, beta, g), one model function and Jacobian serve them all.
 * Centring keeps the least-squares problems well conditioned (ln D ~ 20..26
 * would otherwise be nearly parallel to the intercept), and because v0 is one
 * of the values, a variable that never varies gives an exactly zero column,
 * which LAPACKE reports as info > 0 rather than as a huge coefficient.
 *
 * Does not: read the results store, decide which rows to use (filters are the
 * caller's), or print.
 */
#include "fit.h"

#include <float.h>
#include <lapacke.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fit_internal.h"

const qid_fit_law QID_FIT_LAW_OUYANG = {.k = 0.017, .alpha = 0.2261, .beta = 0.5251, .gamma = 5.4967};

/* ---- the forms ----------------------------------------------------------- */

static double feature_log(double p) { return log(p); }
static double feature_linear(double p) { return p; }

static double ouyang_eval(const qid_fit_law *law, double n, double d, double p, double lr)
{
    (void)lr;
    return law->k * exp(law->beta * log(d) - law->alpha * log(n) - law->gamma * log(p));
}

static double ouyang_lr_eval(const qid_fit_law *law, double n, double d, double p, double lr)
{
    return law->k * exp(law->beta * log(d) - law->alpha * log(n) - law->gamma * log(p) + law->delta * (1.0 - lr));
}

static double ouyang_tokens_for(const qid_fit_law *law, double qid, double n, double p)
{
    if (!(qid > 0) || !(law->k > 0) || law->beta == 0) return NAN;
    return exp((log(qid) + law->alpha * log(n) + law->gamma * log(p) - log(law->k)) / law->beta);
}

static double kumar_eval(const qid_fit_law *law, double n, double d, double p, double lr)
{
    (void)lr;
    return law->k * exp(law->beta * log(d) - law->alpha * log(n) - p / law->gamma);
}

static double kumar_tokens_for(const qid_fit_law *law, double qid, double n, double p)
{
    if (!(qid > 0) || !(law->k > 0) || law->beta == 0 || law->gamma == 0) return NAN;
    return exp((log(qid) + law->alpha * log(n) + p / law->gamma - log(law->k)) / law->beta);
}

/* The weighted least-squares D^beta of a checkpoint's QiD at several P,
 * c[i] being the law at D = 1 (qid_fit_training_level). */
static double level_from(const qid_fit_law *law, const double *c, const double *qid, const double *se, size_t m)
{
    double num = 0, den = 0;
    for (size_t i = 0; i < m; i++) {
        double w = se ? 1.0 / (se[i] * se[i]) : 1.0;
        num += w * c[i] * qid[i];
        den += w * c[i] * c[i];
    }
    double u = num / den;
    return u > 0 && isfinite(u) ? pow(u, 1.0 / law->beta) : NAN;
}

static double ouyang_training_level(const qid_fit_law *law, const double *qid, const double *se, double n,
                                    const double *p, size_t m)
{
    if (m == 0 || !(law->k > 0) || law->beta == 0) return NAN;
    double num = 0, den = 0;
    for (size_t i = 0; i < m; i++) {
        double c = law->k * pow(n, -law->alpha) * pow(p[i], -law->gamma);
        double w = se ? 1.0 / (se[i] * se[i]) : 1.0;
        num += w * c * qid[i];
        den += w * c * c;
    }
    double u = num / den;
    return u > 0 && isfinite(u) ? pow(u, 1.0 / law->beta) : NAN;
}

static double kumar_training_level(const qid_fit_law *law, const double *qid, const double *se, double n,
                                   const double *p, size_t m)
{
    if (m == 0 || !(law->k > 0) || law->beta == 0 || law->gamma == 0) return NAN;
    double *c = qid_malloc(qid_mul_size(m, sizeof *c), "fit: training level");
    for (size_t i = 0; i < m; i++)
        c[i] = law->k * pow(n, -law->alpha) * exp(-p[i] / law->gamma);
    double t = level_from(law, c, qid, se, m);
    free(c);
    return t;
}

const qid_fit_form qid_fit_forms[QID_FIT_N_FORMS] = {
    [QID_FIT_FORM_OUYANG] = {.name = "ouyang",
                             .text = "QiD = k * D^beta / (N^alpha * P^gamma)",
                             .source = "Ouyang et al. (2024)",
                             .n_coef = 4,
                             .coef = {"k", "alpha", "beta", "gamma"},
                             .columns = "k,alpha,beta,gamma",
                             .p_feature = feature_log,
                             .p_reciprocal = 0,
                             .min_bits = 2,
                             .eval = ouyang_eval,
                             .tokens_for = ouyang_tokens_for,
                             .training_level = ouyang_training_level},
    [QID_FIT_FORM_KUMAR] = {.name = "kumar",
                            .text = "QiD = C * D^gamma_D * N^-gamma_N * exp(-P/gamma_post)",
                            .source = "Kumar et al. (2025), arXiv 2411.04330",
                            .n_coef = 4,
                            .coef = {"C", "gamma_N", "gamma_D", "gamma_post"},
                            .columns = "C,gamma_N,gamma_D,gamma_post",
                            .p_feature = feature_linear,
                            .p_reciprocal = 1,
                            .min_bits = 2,
                            .eval = kumar_eval,
                            .tokens_for = kumar_tokens_for,
                            .training_level = kumar_training_level},
    [QID_FIT_FORM_OUYANG_LR] = {.name = "ouyang-lr",
                                .text = "QiD = k * D^beta / (N^alpha * P^gamma) * exp(delta * (1 - lr/lr_peak))",
                                .source = "Ouyang et al. (2024) with a learning-rate factor after Catalan-Tatjer et "
                                          "al. (2025), arXiv 2510.06213",
                                .n_coef = 5,
                                .coef = {"k", "alpha", "beta", "gamma", "delta"},
                                .columns = "k,alpha,beta,gamma,delta",
                                .p_feature = feature_log,
                                .p_reciprocal = 0,
                                .min_bits = 2,
                                .eval = ouyang_lr_eval,
                                /* D and the learning rate at D are tied by a schedule the law does not know: no
                                 * inversion in D alone */
                                .tokens_for = NULL,
                                .training_level = NULL},
};

const qid_fit_form *qid_fit_form_of(int form)
{
    return &qid_fit_forms[form >= 0 && form < QID_FIT_N_FORMS ? form : QID_FIT_FORM_OUYANG];
}

int qid_fit_form_find(const char *name)
{
    for (int f = 0; name && f < QID_FIT_N_FORMS; f++)
        if (strcmp(qid_fit_forms[f].name, name) == 0) return f;
    return -1;
}

const char *qid_fit_form_list(void) { return "ouyang, kumar, ouyang-lr"; }

#define NC QID_FIT_MAX_COEF

/* Parameter order inside theta: the free ones of (c, alpha, beta, g, delta). */
static const unsigned free_bits[NC] = {QID_FIT_FREE_K, QID_FIT_FREE_ALPHA, QID_FIT_FREE_BETA, QID_FIT_FREE_GAMMA,
                                       QID_FIT_FREE_DELTA};

static size_t count_free(unsigned mask)
{
    size_t p = 0;
    for (int j = 0; j < NC; j++)
        if (mask & free_bits[j]) p++;
    return p;
}

/* The free mask a form can have: delta only in the learning-rate form. */
static unsigned form_mask(int form)
{
    return qid_fit_form_of(form)->n_coef == NC ? QID_FIT_FREE_ALL : QID_FIT_FREE_ALL & ~QID_FIT_FREE_DELTA;
}

const char *const qid_fit_law_names[NC] = {"k", "alpha", "beta", "gamma", "delta"};

double qid_fit_law_coef(const qid_fit_law *law, int j)
{
    const double v[NC] = {law->k, law->alpha, law->beta, law->gamma, law->delta};
    return j >= 0 && j < NC ? v[j] : NAN;
}

void qid_fit_law_set_coef(qid_fit_law *law, int j, double v)
{
    double *slot[NC] = {&law->k, &law->alpha, &law->beta, &law->gamma, &law->delta};
    if (j >= 0 && j < NC) *slot[j] = v;
}

double qid_fit_law_eval(const qid_fit_law *law, double n, double d, double p)
{
    return qid_fit_form_of(law->form)->eval(law, n, d, p, law->lr);
}

double qid_fit_law_eval_obs(const qid_fit_law *law, const qid_fit_obs *o)
{
    return qid_fit_form_of(law->form)->eval(law, o->n, o->d, o->p, o->lr);
}

double qid_fit_tokens_for(const qid_fit_law *law, double qid, double n, double p)
{
    const qid_fit_form *f = qid_fit_form_of(law->form);
    return f->tokens_for ? f->tokens_for(law, qid, n, p) : NAN;
}

/* ---- validation ---------------------------------------------------------- */

static int check_obs(const qid_fit_obs *obs, size_t n, qid_error *err)
{
    for (size_t i = 0; i < n; i++) {
        const qid_fit_obs *o = &obs[i];
        if (!(isfinite(o->n) && o->n > 0) || !(isfinite(o->d) && o->d > 0) || !(isfinite(o->p) && o->p > 0))
            return qid_error_set(err, QID_E_INVALID,
                                 "observation %zu (checkpoint %d): N, D and P must be positive and finite "
                                 "(N=%g D=%g P=%g)",
                                 i, o->ckpt, o->n, o->d, o->p);
        if (!(isfinite(o->se) && o->se > 0))
            return qid_error_set(err, QID_E_INVALID,
                                 "observation %zu (checkpoint %d): the standard error of QiD must be positive and "
                                 "finite (se=%g)",
                                 i, o->ckpt, o->se);
        if (!isfinite(o->qid))
            return qid_error_set(err, QID_E_INVALID, "observation %zu (checkpoint %d): QiD is not finite", i, o->ckpt);
    }
    return QID_OK;
}

static int check_opts(const qid_fit_opts *o, qid_error *err)
{
    if (!(o->free & QID_FIT_FREE_K))
        return qid_error_set(err, QID_E_INVALID, "fit options: k must be a free parameter");
    if (o->form < 0 || o->form >= QID_FIT_N_FORMS)
        return qid_error_set(err, QID_E_INVALID, "fit options: no law form %d (forms: %s)", o->form,
                             qid_fit_form_list());
    if (!(o->huber_c > 0) || !(o->z >= 0) || o->max_iter < 1 || !(o->level > 0 && o->level < 1))
        return qid_error_set(err, QID_E_INVALID,
                             "fit options: need huber_c > 0, z >= 0, max_iter >= 1 and 0 < level < 1 "
                             "(got %g, %g, %d, %g)",
                             o->huber_c, o->z, o->max_iter, o->level);
    return QID_OK;
}

static int significant(const qid_fit_obs *o, double z) { return o->qid > 0 && o->qid > z * o->se; }

/* ---- workspace ------------------------------------------------------------ */

typedef struct law_ws {
    size_t m_max;
    qid_fit_lm_work lm;
    double *buf;
    double *xn, *xd, *xp, *xl; /* centred features, m_max each */
    double *y, *s;             /* loglin: ln qid and weights; LM: qid and se */
    double *a;                 /* loglin design, m_max x NC */
    double *tmp;               /* m_max scratch */
} law_ws;

static void law_ws_init(law_ws *w, size_t m_max)
{
    size_t m = m_max ? m_max : 1;
    w->m_max = m;
    qid_fit_lm_work_init(&w->lm, m, NC);
    w->buf = qid_malloc(qid_mul_size((7 + NC) * m, sizeof(double)), "fit: law workspace");
    w->xn = w->buf;
    w->xd = w->xn + m;
    w->xp = w->xd + m;
    w->xl = w->xp + m;
    w->y = w->xl + m;
    w->s = w->y + m;
    w->a = w->s + m;
    w->tmp = w->a + NC * m;
}

static void law_ws_free(law_ws *w)
{
    qid_fit_lm_work_free(&w->lm);
    free(w->buf);
    memset(w, 0, sizeof *w);
}

/* ---- the model for the engine ------------------------------------------- */

typedef struct law_ctx {
    size_t m;
    const double *xn, *xd, *xp, *xl;
    unsigned free;
    double fixed[NC]; /* (c unused), alpha, beta, g, delta when not free */
} law_ctx;

/* theta (free subset) -> full (c, alpha, beta, g, delta). */
static void unpack(const law_ctx *cx, const double *theta, double full[NC])
{
    size_t t = 0;
    for (int j = 0; j < NC; j++)
        full[j] = (cx->free & free_bits[j]) ? theta[t++] : cx->fixed[j];
}

static void law_model(const double *theta, const void *ctx, double *f, double *jac)
{
    const law_ctx *cx = ctx;
    double v[NC];
    unpack(cx, theta, v);
    size_t p = count_free(cx->free);
    for (size_t i = 0; i < cx->m; i++) {
        double e = v[0] - v[1] * cx->xn[i] + v[2] * cx->xd[i] - v[3] * cx->xp[i] + v[4] * cx->xl[i];
        double fi = exp(fmin(e, 709.0));
        f[i] = fi;
        if (!jac) continue;
        double *row = jac + i * p;
        size_t t = 0;
        if (cx->free & QID_FIT_FREE_K) row[t++] = fi;
        if (cx->free & QID_FIT_FREE_ALPHA) row[t++] = -fi * cx->xn[i];
        if (cx->free & QID_FIT_FREE_BETA) row[t++] = fi * cx->xd[i];
        if (cx->free & QID_FIT_FREE_GAMMA) row[t++] = -fi * cx->xp[i];
        if (cx->free & QID_FIT_FREE_DELTA) row[t++] = fi * cx->xl[i];
    }
}

/* ---- the two stages ------------------------------------------------------ */

/* A variable of the law as a function of a point: ln N, ln D, the form's
 * feature of P, or the learning-rate feature 1 - r. */
typedef double (*law_var)(const qid_fit_obs *o, const qid_fit_form *f);
static double var_n(const qid_fit_obs *o, const qid_fit_form *f) { return (void)f, log(o->n); }
static double var_d(const qid_fit_obs *o, const qid_fit_form *f) { return (void)f, log(o->d); }
static double var_p(const qid_fit_obs *o, const qid_fit_form *f)
{
    return f->p_feature == feature_log ? log(o->p) : f->p_feature(o->p);
}
static double var_lr(const qid_fit_obs *o, const qid_fit_form *f) { return (void)f, 1.0 - o->lr; }

/* The value of x over the points that is closest to its mean: the centre of
 * its centred feature (a data value, so a constant variable gives an exactly
 * zero column). */
static double ref_value(const qid_fit_obs *obs, size_t n, law_var x, const qid_fit_form *f)
{
    double mean = 0;
    for (size_t i = 0; i < n; i++)
        mean += x(&obs[i], f);
    mean /= (double)n;
    double best = 0, bestd = INFINITY;
    for (size_t i = 0; i < n; i++) {
        double v = x(&obs[i], f);
        if (fabs(v - mean) < bestd) {
            bestd = fabs(v - mean);
            best = v;
        }
    }
    return best;
}

/* "N has 1 distinct value, D 12, P 3" over all points, or the significant ones. */
static void distinct_hint(const qid_fit_obs *obs, size_t n, double z, int sig_only, double *tmp, char *buf, size_t len)
{
    size_t cnt[3];
    for (int v = 0; v < 3; v++) {
        size_t m = 0;
        for (size_t i = 0; i < n; i++) {
            if (sig_only && !significant(&obs[i], z)) continue;
            tmp[m++] = v == 0 ? obs[i].n : v == 1 ? obs[i].d : obs[i].p;
        }
        cnt[v] = qid_fit_count_distinct(tmp, m);
    }
    snprintf(buf, len, "N has %zu distinct value%s, D %zu, P %zu", cnt[0], cnt[0] == 1 ? "" : "s", cnt[1], cnt[2]);
}

/* Full (c, alpha, beta, g, delta) in centred terms <-> the law of form
 * `form` (g = gamma, or 1/gamma for a form with p_reciprocal; ref[3] the
 * reference of the learning-rate feature 1 - r, 0 in the other forms). The
 * law's r for predictions (law->lr) is the caller's. */
static void to_law(const double v[NC], const double ref[4], int form, qid_fit_law *law)
{
    law->alpha = v[1];
    law->beta = v[2];
    law->gamma = qid_fit_form_of(form)->p_reciprocal ? 1.0 / v[3] : v[3];
    law->delta = v[4];
    law->k = exp(v[0] + v[1] * ref[0] - v[2] * ref[1] + v[3] * ref[2] - v[4] * ref[3]);
    law->form = form;
}

static void from_law(const qid_fit_law *law, const double ref[4], double v[NC])
{
    double g = qid_fit_form_of(law->form)->p_reciprocal ? 1.0 / law->gamma : law->gamma;
    double delta = qid_fit_form_of(law->form)->n_coef == NC ? law->delta : 0.0;
    v[0] = log(law->k) - law->alpha * ref[0] + law->beta * ref[1] - g * ref[2] + delta * ref[3];
    v[1] = law->alpha;
    v[2] = law->beta;
    v[3] = g;
    v[4] = delta;
}

/* "N has 1 distinct value, D 12, P 3" over the significant points, into buf
 * (returned, so it can be an argument evaluated only on failure). */
static const char *sig_hint(const qid_fit_obs *obs, size_t n, double z, double *tmp, char *buf, size_t len)
{
    distinct_hint(obs, n, z, 1, tmp, buf, len);
    return buf;
}

/* The learning-rate form needs every point's r in [0, 1] and at least two
 * distinct values of it; *lr_min is the smallest (the r of its predictions). */
static int check_lr(const qid_fit_obs *obs, size_t n, const qid_fit_form *form, double *tmp, double *lr_min,
                    qid_error *err)
{
    size_t missing = 0;
    for (size_t i = 0; i < n; i++) {
        if (!(obs[i].lr >= 0 && obs[i].lr <= 1)) {
            missing++;
            continue;
        }
        tmp[i - missing] = obs[i].lr;
        *lr_min = fmin(*lr_min, obs[i].lr);
    }
    if (missing)
        return qid_error_set(err, QID_E_INVALID,
                             "the %s law needs the learning rate at every checkpoint: %zu of %zu points have none "
                             "(hint: qid import --schedule records it; qid train does)",
                             form->name, missing, n);
    size_t distinct = qid_fit_count_distinct(tmp, n);
    if (distinct < 2)
        return qid_error_set(err, QID_E_INVALID,
                             "the %s law needs checkpoints at different learning rates: all %zu points have lr %g of "
                             "the peak",
                             form->name, n, obs[0].lr);
    return QID_OK;
}

/* Stage 1 into theta (free subset). */
static int loglin(const qid_fit_obs *obs, size_t n, const qid_fit_opts *o, const law_ctx *cx, law_ws *w, double *theta,
                  size_t *n_sig_out, qid_error *err)
{
    size_t p = count_free(o->free), m = 0;
    double maxz = -INFINITY;
    for (size_t i = 0; i < n; i++) {
        maxz = fmax(maxz, obs[i].qid / obs[i].se);
        m += (size_t)significant(&obs[i], o->z);
    }
    *n_sig_out = m;
    if (m == 0)
        return qid_error_set(err, QID_E_INVALID,
                             "no point has QiD significantly above zero (qid > %g*se) among %zu points "
                             "(largest qid/se %.3g): nothing to fit a power law to",
                             o->z, n, maxz);
    if (m < p + 1)
        return qid_error_set(err, QID_E_INVALID,
                             "too few significant points: %zu with qid > %g*se, need at least %zu to fit %zu "
                             "parameters",
                             m, o->z, p + 1, p);
    /* Column-major m x p design of rows weighted by qid/se (1 / sd of ln qid):
     * ln qid = c - alpha xN + beta xD - gamma xP, fixed terms moved left. */
    double *a = w->a;
    size_t r = 0;
    for (size_t i = 0; i < n; i++) {
        if (!significant(&obs[i], o->z)) continue;
        double wt = obs[i].qid / obs[i].se;
        double y = log(obs[i].qid);
        if (!(cx->free & QID_FIT_FREE_ALPHA)) y += cx->fixed[1] * cx->xn[i];
        if (!(cx->free & QID_FIT_FREE_BETA)) y -= cx->fixed[2] * cx->xd[i];
        if (!(cx->free & QID_FIT_FREE_GAMMA)) y += cx->fixed[3] * cx->xp[i];
        if (!(cx->free & QID_FIT_FREE_DELTA)) y -= cx->fixed[4] * cx->xl[i];
        size_t t = 0;
        a[t++ * m + r] = wt;
        if (o->free & QID_FIT_FREE_ALPHA) a[t++ * m + r] = -wt * cx->xn[i];
        if (o->free & QID_FIT_FREE_BETA) a[t++ * m + r] = wt * cx->xd[i];
        if (o->free & QID_FIT_FREE_GAMMA) a[t++ * m + r] = -wt * cx->xp[i];
        if (o->free & QID_FIT_FREE_DELTA) a[t++ * m + r] = wt * cx->xl[i];
        w->y[r++] = wt * y;
    }
    /* Unit-norm columns so the rank check means something. */
    double cscale[NC];
    for (size_t j = 0; j < p; j++) {
        double s = 0;
        for (size_t i = 0; i < m; i++)
            s += a[j * m + i] * a[j * m + i];
        cscale[j] = s > 0 ? sqrt(s) : 1.0;
        for (size_t i = 0; i < m; i++)
            a[j * m + i] /= cscale[j];
    }
    char hint[160];
    lapack_int info = 0;
    QID_LAPACKE_TRY(
        err, info,
        LAPACKE_dgels(LAPACK_COL_MAJOR, 'N', (lapack_int)m, (lapack_int)p, 1, a, (lapack_int)m, w->y, (lapack_int)m),
        "log-linear fit on %zu significant points: singular design (%s; every free exponent needs "
        "at least 2)",
        m, sig_hint(obs, n, o->z, w->tmp, hint, sizeof hint));
    double rcond = 0;
    QID_LAPACKE(info, LAPACKE_dtrcon(LAPACK_COL_MAJOR, '1', 'U', 'N', (lapack_int)p, a, (lapack_int)m, &rcond));
    if (!(rcond > 1e-10))
        return qid_error_set(err, QID_E_NUMERIC,
                             "log-linear fit on %zu significant points: rank-deficient design (reciprocal condition "
                             "%.2g; %s): a free variable is a combination of the others",
                             m, rcond, sig_hint(obs, n, o->z, w->tmp, hint, sizeof hint));
    for (size_t j = 0; j < p; j++)
        theta[j] = w->y[j] / cscale[j];
    return QID_OK;
fail:
    return err ? err->code : QID_E_NUMERIC;
}

/* Fits obs[0..n) with w sized for n. start == NULL: both stages; otherwise
 * stage 2 from start. */
static int law_fit_ws(const qid_fit_obs *obs, size_t n, const qid_fit_opts *o_in, const qid_fit_law *start,
                      qid_fit_result *res, law_ws *w, qid_error *err)
{
    int rc = check_opts(o_in, err);
    if (rc) return rc;
    if (n == 0) return qid_error_set(err, QID_E_INVALID, "no points to fit");
    rc = check_obs(obs, n, err);
    if (rc) return rc;
    QID_CHECK(n <= w->m_max, "workspace for %zu points, %zu given", w->m_max, n);
    qid_fit_opts oe = *o_in;
    oe.free &= form_mask(oe.form);
    const qid_fit_opts *o = &oe;
    size_t p = count_free(o->free);
    const qid_fit_form *form = qid_fit_form_of(o->form);
    const int with_lr = form->n_coef == NC;
    double lr_min = INFINITY;
    if (with_lr && (rc = check_lr(obs, n, form, w->tmp, &lr_min, err))) return rc;
    double ref[4] = {ref_value(obs, n, var_n, form), ref_value(obs, n, var_d, form), ref_value(obs, n, var_p, form),
                     with_lr ? ref_value(obs, n, var_lr, form) : 0.0};
    for (size_t i = 0; i < n; i++) {
        w->xn[i] = var_n(&obs[i], form) - ref[0];
        w->xd[i] = var_d(&obs[i], form) - ref[1];
        w->xp[i] = var_p(&obs[i], form) - ref[2];
        w->xl[i] = with_lr ? var_lr(&obs[i], form) - ref[3] : 0.0;
    }
    law_ctx cx = {.m = n, .xn = w->xn, .xd = w->xd, .xp = w->xp, .xl = w->xl, .free = o->free};
    cx.fixed[1] = o->fixed.alpha;
    cx.fixed[2] = o->fixed.beta;
    cx.fixed[3] = form->p_reciprocal ? 1.0 / o->fixed.gamma : o->fixed.gamma;
    cx.fixed[4] = with_lr ? o->fixed.delta : 0.0;

    double theta[NC], full[NC];
    size_t n_sig = 0;
    qid_fit_law start_law;
    if (!start) {
        rc = loglin(obs, n, o, &cx, w, theta, &n_sig, err);
        if (rc) return rc;
        unpack(&cx, theta, full);
        to_law(full, ref, o->form, &start_law);
    } else {
        for (size_t i = 0; i < n; i++)
            n_sig += significant(&obs[i], o->z);
        if (!(start->k > 0 && isfinite(start->k)))
            return qid_error_set(err, QID_E_INVALID, "refinement: the start law needs k > 0 (got %g)", start->k);
        start_law = *start;
        start_law.form = o->form;
        qid_fit_law s = start_law;
        /* Fixed parameters come from opts, whatever the start says. */
        if (!(o->free & QID_FIT_FREE_ALPHA)) s.alpha = o->fixed.alpha;
        if (!(o->free & QID_FIT_FREE_BETA)) s.beta = o->fixed.beta;
        if (!(o->free & QID_FIT_FREE_GAMMA)) s.gamma = o->fixed.gamma;
        if (!(o->free & QID_FIT_FREE_DELTA)) s.delta = o->fixed.delta;
        from_law(&s, ref, full);
        size_t t = 0;
        for (int j = 0; j < NC; j++)
            if (o->free & free_bits[j]) theta[t++] = full[j];
    }
    if (n < p) return qid_error_set(err, QID_E_INVALID, "too few points: %zu for %zu parameters", n, p);

    /* Stage 2: all points, linear space, weighted by the standard errors. */
    for (size_t i = 0; i < n; i++) {
        w->y[i] = obs[i].qid;
        w->s[i] = obs[i].se;
    }
    qid_fit_lm pb = {.m = n,
                     .p = p,
                     .model = law_model,
                     .ctx = &cx,
                     .y = w->y,
                     .s = w->s,
                     .huber_c = o->huber_c,
                     .fixed_scale = o->fixed_scale,
                     .max_iter = o->max_iter,
                     .xtol = o->xtol,
                     .gtol = o->gtol};
    const char *names[NC];
    for (int j = 0, t = 0; j < form->n_coef; j++)
        if (o->free & free_bits[j]) names[t++] = form->coef[j];
    pb.names = names;
    char what[64];
    snprintf(what, sizeof what, "robust refinement on %zu points", n);
    qid_fit_conv conv;
    qid_fit_lm_out lo;
    rc = qid_fit_lm_run(&pb, theta, &conv, &lo, &w->lm, what, err);
    if (rc) {
        /* Say what the data look like (only now: counting costs sorts). */
        char hint[160], msg[QID_ERROR_MAX];
        distinct_hint(obs, n, o->z, 0, w->tmp, hint, sizeof hint);
        snprintf(msg, sizeof msg, "%s", err ? err->msg : "");
        return qid_error_set(err, rc, "%s (%s)", msg, hint);
    }
    unpack(&cx, theta, full);
    qid_fit_law law;
    to_law(full, ref, o->form, &law);
    law.lr = with_lr ? lr_min : NAN;
    start_law.lr = law.lr;
    if (!(isfinite(law.k) && law.k > 0 && isfinite(law.alpha) && isfinite(law.beta) && isfinite(law.gamma) &&
          isfinite(law.delta)))
        return qid_error_set(err, QID_E_NUMERIC, "%s: the refinement diverged (k=%g alpha=%g beta=%g gamma=%g)", what,
                             law.k, law.alpha, law.beta, law.gamma);

    /* Goodness of fit. */
    double ss = 0, mean = 0, sst = 0, sse = 0;
    size_t ms = 0;
    for (size_t i = 0; i < n; i++) {
        double f = qid_fit_law_eval_obs(&law, &obs[i]);
        ss += (obs[i].qid - f) * (obs[i].qid - f);
        if (significant(&obs[i], o->z)) {
            mean += log(obs[i].qid);
            ms++;
        }
    }
    if (ms) mean /= (double)ms;
    for (size_t i = 0; i < n; i++) {
        if (!significant(&obs[i], o->z)) continue;
        double l = log(obs[i].qid), lf = log(qid_fit_law_eval_obs(&law, &obs[i]));
        sst += (l - mean) * (l - mean);
        sse += (l - lf) * (l - lf);
    }
    memset(res, 0, sizeof *res);
    res->law = law;
    res->start = start_law;
    res->n_points = n;
    res->n_significant = n_sig;
    res->n_downweighted = lo.n_down;
    res->scale = lo.scale;
    res->r2_log = (ms >= 2 && sst > 0) ? 1.0 - sse / sst : NAN;
    res->rmse = sqrt(ss / (double)n);
    res->conv = conv;
    return QID_OK;
}

static qid_fit_opts opts_or_default(const qid_fit_opts *opts)
{
    qid_fit_opts o;
    if (opts)
        o = *opts;
    else
        qid_fit_opts_init(&o);
    return o;
}

int qid_fit_law_fit(const qid_fit_obs *obs, size_t n, const qid_fit_opts *opts, qid_fit_result *res, qid_error *err)
{
    qid_fit_opts o = opts_or_default(opts);
    law_ws w;
    law_ws_init(&w, n);
    int rc = law_fit_ws(obs, n, &o, NULL, res, &w, err);
    law_ws_free(&w);
    return rc;
}

int qid_fit_law_refine(const qid_fit_obs *obs, size_t n, const qid_fit_law *start, const qid_fit_opts *opts,
                       qid_fit_result *res, qid_error *err)
{
    qid_fit_opts o = opts_or_default(opts);
    law_ws w;
    law_ws_init(&w, n);
    int rc = law_fit_ws(obs, n, &o, start, res, &w, err);
    law_ws_free(&w);
    return rc;
}

/* ---- bootstrap ------------------------------------------------------------ */

typedef struct id_index {
    int id;
    size_t i;
} id_index;

static int cmp_id_index(const void *pa, const void *pb)
{
    const id_index *a = pa, *b = pb;
    if (a->id != b->id) return (a->id > b->id) - (a->id < b->id);
    return (a->i > b->i) - (a->i < b->i);
}

/* Groups obs by an int key (ckpt or group): order[n] holds obs indices sorted
 * by key, start[0..n_keys] the offsets. Returns n_keys; *start_out and
 * *order_out are malloc'd. */
static size_t index_by(const qid_fit_obs *obs, size_t n, int by_group, size_t **order_out, size_t **start_out,
                       int **keys_out)
{
    id_index *t = qid_malloc(qid_mul_size(n ? n : 1, sizeof *t), "fit: key index");
    for (size_t i = 0; i < n; i++)
        t[i] = (id_index){by_group ? obs[i].group : obs[i].ckpt, i};
    qsort(t, n, sizeof *t, cmp_id_index);
    size_t *order = qid_malloc(qid_mul_size(n ? n : 1, sizeof *order), "fit: key order");
    size_t *start = qid_malloc(qid_mul_size(n + 1, sizeof *start), "fit: key offsets");
    int *keys = qid_malloc(qid_mul_size(n ? n : 1, sizeof *keys), "fit: keys");
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        order[i] = t[i].i;
        if (i == 0 || t[i].id != t[i - 1].id) {
            keys[k] = t[i].id;
            start[k++] = i;
        }
    }
    start[k] = n;
    free(t);
    *order_out = order;
    *start_out = start;
    if (keys_out)
        *keys_out = keys;
    else
        free(keys);
    return k;
}

void qid_fit_boot_free(qid_fit_boot *boot)
{
    if (!boot) return;
    free(boot->draws);
    memset(boot, 0, sizeof *boot);
}

int qid_fit_law_bootstrap(const qid_fit_obs *obs, size_t n, const qid_fit_opts *opts, qid_fit_boot *boot,
                          qid_error *err)
{
    memset(boot, 0, sizeof *boot);
    qid_fit_opts o = opts_or_default(opts);
    qid_fit_result full;
    int rc = qid_fit_law_fit(obs, n, &o, &full, err);
    if (rc) return qid_error_wrap(err, rc, "bootstrap: the fit on all %zu points fails", n);
    if (o.n_boot < 10)
        return qid_error_set(err, QID_E_INVALID, "bootstrap: need at least 10 draws (got %zu)", o.n_boot);
    size_t *order, *start;
    size_t n_ck = index_by(obs, n, 0, &order, &start, NULL);
    if (n_ck < 2) {
        free(order);
        free(start);
        return qid_error_set(err, QID_E_INVALID, "bootstrap: need at least 2 checkpoints to resample (got %zu)", n_ck);
    }
    size_t max_per = 0;
    for (size_t c = 0; c < n_ck; c++)
        if (start[c + 1] - start[c] > max_per) max_per = start[c + 1] - start[c];
    size_t m_max = qid_mul_size(n_ck, max_per);
    qid_fit_obs *sample = qid_malloc(qid_mul_size(m_max, sizeof *sample), "fit: bootstrap sample");
    law_ws w;
    law_ws_init(&w, m_max);
    boot->draws = qid_malloc(qid_mul_size(o.n_boot, sizeof *boot->draws), "fit: bootstrap draws");
    boot->level = o.level;
    boot->lo.form = boot->hi.form = o.form;
    qid_error first;
    qid_error_clear(&first);
    for (size_t b = 0; b < o.n_boot; b++) {
        qid_rng rng;
        qid_rng_seed(&rng, o.seed, b);
        size_t m = 0;
        for (size_t j = 0; j < n_ck; j++) {
            size_t c = (size_t)qid_rng_below(&rng, n_ck);
            for (size_t t = start[c]; t < start[c + 1]; t++)
                sample[m++] = obs[order[t]];
        }
        qid_fit_result r;
        qid_error e;
        qid_error_clear(&e);
        if (law_fit_ws(sample, m, &o, NULL, &r, &w, &e) == QID_OK) {
            boot->draws[boot->n_draws++] = r.law;
        } else {
            if (!boot->n_failed) first = e;
            boot->n_failed++;
        }
    }
    law_ws_free(&w);
    free(sample);
    free(order);
    free(start);
    if (boot->n_draws < 2 || boot->n_failed * 2 > o.n_boot) {
        size_t nf = boot->n_failed;
        qid_fit_boot_free(boot);
        return qid_error_set(err, QID_E_NUMERIC, "bootstrap: %zu of %zu draws failed (first: %s)", nf, o.n_boot,
                             first.msg);
    }
    double *v = qid_malloc(qid_mul_size(boot->n_draws, sizeof *v), "fit: bootstrap quantiles");
    double a = (1.0 - o.level) / 2;
    for (int j = 0; j < QID_FIT_MAX_COEF; j++) {
        for (size_t b = 0; b < boot->n_draws; b++)
            v[b] = qid_fit_law_coef(&boot->draws[b], j);
        qid_fit_law_set_coef(&boot->lo, j, qid_fit_quantile_sorted(v, boot->n_draws, a));
        qid_fit_law_set_coef(&boot->hi, j, qid_fit_quantile_sorted(v, boot->n_draws, 1.0 - a));
    }
    /* Every draw predicts at the full fit's r (the learning-rate form), not
     * at the smallest r its sample happened to hold. */
    for (size_t b = 0; b < boot->n_draws; b++)
        boot->draws[b].lr = full.law.lr;
    boot->lo.lr = boot->hi.lr = full.law.lr;
    free(v);
    return QID_OK;
}

void qid_fit_predict_ci(const qid_fit_boot *boot, const double *n, const double *d, const double *p, size_t m,
                        double level, double *mid, double *lo, double *hi)
{
    QID_CHECK(boot->n_draws >= 2, "a bootstrap with %zu draws", boot->n_draws);
    double *v = qid_malloc(qid_mul_size(boot->n_draws, sizeof *v), "fit: prediction quantiles");
    double a = (1.0 - level) / 2;
    for (size_t i = 0; i < m; i++) {
        for (size_t b = 0; b < boot->n_draws; b++)
            v[b] = qid_fit_law_eval(&boot->draws[b], n[i], d[i], p[i]);
        lo[i] = qid_fit_quantile_sorted(v, boot->n_draws, a);
        hi[i] = qid_fit_quantile_sorted(v, boot->n_draws, 1.0 - a);
        if (mid) mid[i] = qid_fit_quantile_sorted(v, boot->n_draws, 0.5);
    }
    free(v);
}

double qid_fit_training_level(const qid_fit_law *law, const double *qid, const double *se, double n, const double *p,
                              size_t m)
{
    const qid_fit_form *f = qid_fit_form_of(law->form);
    return f->training_level ? f->training_level(law, qid, se, n, p, m) : NAN;
}

void qid_fit_tokens_for_ci(const qid_fit_boot *boot, const double *qid, const double *n, const double *p, size_t m,
                           double level, double *mid, double *lo, double *hi)
{
    QID_CHECK(boot->n_draws >= 2, "a bootstrap with %zu draws", boot->n_draws);
    double *v = qid_malloc(qid_mul_size(boot->n_draws, sizeof *v), "fit: inversion quantiles");
    double a = (1.0 - level) / 2;
    for (size_t i = 0; i < m; i++) {
        size_t k = 0;
        for (size_t b = 0; b < boot->n_draws; b++) {
            double t = qid_fit_tokens_for(&boot->draws[b], qid[i], n[i], p[i]);
            if (isfinite(t)) v[k++] = t;
        }
        if (k < 2) {
            lo[i] = hi[i] = NAN;
            if (mid) mid[i] = NAN;
            continue;
        }
        lo[i] = qid_fit_quantile_sorted(v, k, a);
        hi[i] = qid_fit_quantile_sorted(v, k, 1.0 - a);
        if (mid) mid[i] = qid_fit_quantile_sorted(v, k, 0.5);
    }
    free(v);
}

/* ---- leave one model size out --------------------------------------------- */

void qid_fit_lomo_free(qid_fit_lomo *lomo)
{
    if (!lomo) return;
    free(lomo->rows);
    memset(lomo, 0, sizeof *lomo);
}

int qid_fit_law_lomo(const qid_fit_obs *obs, size_t n, const qid_fit_opts *opts, qid_fit_lomo *out, qid_error *err)
{
    memset(out, 0, sizeof *out);
    qid_fit_opts o = opts_or_default(opts);
    int rc = check_opts(&o, err);
    if (!rc) rc = check_obs(obs, n, err);
    if (rc) return rc;
    size_t *order, *start;
    int *keys;
    size_t n_g = index_by(obs, n, 1, &order, &start, &keys);
    if (n_g < 2) {
        free(order);
        free(start);
        free(keys);
        return qid_error_set(err, QID_E_INVALID,
                             "leave-one-model-size-out: need at least 2 model-size groups (got %zu)", n_g);
    }
    qid_fit_obs *train = qid_malloc(qid_mul_size(n, sizeof *train), "fit: leave-one-out training set");
    law_ws w;
    law_ws_init(&w, n);
    out->rows = qid_calloc(n_g, sizeof *out->rows, "fit: leave-one-out rows");
    out->n_groups = n_g;
    double ss_all = 0;
    size_t n_all = 0;
    for (size_t g = 0; g < n_g; g++) {
        qid_fit_lomo_row *row = &out->rows[g];
        row->group = keys[g];
        row->n_points = start[g + 1] - start[g];
        double ln = 0;
        for (size_t t = start[g]; t < start[g + 1]; t++)
            ln += log(obs[order[t]].n);
        row->n = exp(ln / (double)row->n_points);
        size_t m = 0;
        for (size_t h = 0; h < n_g; h++)
            if (h != g)
                for (size_t t = start[h]; t < start[h + 1]; t++)
                    train[m++] = obs[order[t]];
        qid_fit_result r;
        qid_error e;
        row->status = law_fit_ws(train, m, &o, NULL, &r, &w, &e);
        if (row->status) {
            row->rmse = row->mean_abs_log = NAN;
            out->n_failed++;
            continue;
        }
        double ss = 0, al = 0;
        size_t na = 0;
        for (size_t t = start[g]; t < start[g + 1]; t++) {
            const qid_fit_obs *x = &obs[order[t]];
            double f = qid_fit_law_eval_obs(&r.law, x);
            ss += (x->qid - f) * (x->qid - f);
            if (significant(x, o.z)) {
                al += fabs(log(f / x->qid));
                na++;
            }
        }
        row->rmse = sqrt(ss / (double)row->n_points);
        row->mean_abs_log = na ? al / (double)na : NAN;
        ss_all += ss;
        n_all += row->n_points;
    }
    out->rmse = n_all ? sqrt(ss_all / (double)n_all) : NAN;
    law_ws_free(&w);
    free(train);
    free(order);
    free(start);
    free(keys);
    return QID_OK;
}

/* ---- per-bit-width and per-factor laws ----------------------------------- */

/* The variables that are constant within a group of `by`: bit 0 N, 1 D, 2 P. */
static unsigned by_constant(enum qid_fit_by by)
{
    switch (by) {
    case QID_FIT_BY_BITS: return 4u;
    case QID_FIT_BY_FACTOR_D: return 1u | 4u;
    case QID_FIT_BY_FACTOR_N: return 2u | 4u;
    case QID_FIT_BY_FACTOR_P: return 1u | 2u;
    }
    return 0;
}

static unsigned by_free(enum qid_fit_by by)
{
    switch (by) {
    case QID_FIT_BY_BITS: return QID_FIT_FREE_K | QID_FIT_FREE_ALPHA | QID_FIT_FREE_BETA;
    case QID_FIT_BY_FACTOR_D: return QID_FIT_FREE_K | QID_FIT_FREE_BETA;
    case QID_FIT_BY_FACTOR_N: return QID_FIT_FREE_K | QID_FIT_FREE_ALPHA;
    case QID_FIT_BY_FACTOR_P: return QID_FIT_FREE_K | QID_FIT_FREE_GAMMA;
    }
    return QID_FIT_FREE_K;
}

static double obs_var(const qid_fit_obs *o, int v) { return v == 0 ? o->n : v == 1 ? o->d : o->p; }

typedef struct val_index {
    double v;
    size_t i;
} val_index;

static int cmp_val_index(const void *pa, const void *pb)
{
    const val_index *a = pa, *b = pb;
    if (a->v != b->v) return a->v < b->v ? -1 : 1;
    return (a->i > b->i) - (a->i < b->i);
}

typedef struct key3 {
    size_t k[3];
    size_t i;
} key3;

static int cmp_key3(const void *pa, const void *pb)
{
    const key3 *a = pa, *b = pb;
    for (int j = 0; j < 3; j++)
        if (a->k[j] != b->k[j]) return a->k[j] < b->k[j] ? -1 : 1;
    return (a->i > b->i) - (a->i < b->i);
}

static int same_key(const key3 *a, const key3 *b)
{
    return a->k[0] == b->k[0] && a->k[1] == b->k[1] && a->k[2] == b->k[2];
}

double qid_fit_group_exponent(const qid_fit_group *g, enum qid_fit_by by)
{
    switch (by) {
    case QID_FIT_BY_BITS:
    case QID_FIT_BY_FACTOR_D: return g->fit.law.beta;
    case QID_FIT_BY_FACTOR_N: return g->fit.law.alpha;
    case QID_FIT_BY_FACTOR_P: return g->fit.law.gamma;
    }
    return NAN;
}

int qid_fit_groups(const qid_fit_obs *obs, size_t n, enum qid_fit_by by, const qid_fit_opts *opts, qid_fit_group **out,
                   size_t *n_out, qid_error *err)
{
    *out = NULL;
    *n_out = 0;
    if (n == 0) return qid_error_set(err, QID_E_INVALID, "no points to group");
    qid_fit_opts o = opts_or_default(opts);
    o.free = by_free(by);
    o.fixed = (qid_fit_law){.form = QID_FIT_FORM_OUYANG};
    o.form = QID_FIT_FORM_OUYANG; /* gamma 0 or alone: the groups are power laws whatever the unified form */
    int rc = check_opts(&o, err);
    if (!rc) rc = check_obs(obs, n, err);
    if (rc) return rc;
    unsigned cons = by_constant(by);
    /* Canonical ids per variable (values equal within 1e-9 share one). */
    key3 *key = qid_calloc(n, sizeof *key, "fit: group keys");
    val_index *vi = qid_malloc(qid_mul_size(n, sizeof *vi), "fit: group values");
    for (int v = 0; v < 3; v++) {
        if (!(cons & (1u << v))) continue;
        for (size_t i = 0; i < n; i++)
            vi[i] = (val_index){obs_var(&obs[i], v), i};
        qsort(vi, n, sizeof *vi, cmp_val_index);
        size_t id = 0;
        for (size_t i = 0; i < n; i++) {
            if (i > 0 && !qid_fit_same(vi[i].v, vi[i - 1].v)) id++;
            key[vi[i].i].k[v] = id;
        }
    }
    for (size_t i = 0; i < n; i++)
        key[i].i = i;
    qsort(key, n, sizeof *key, cmp_key3);
    size_t n_g = 0;
    for (size_t i = 0; i < n; i++)
        if (i == 0 || !same_key(&key[i], &key[i - 1])) n_g++;
    qid_fit_group *g = qid_calloc(n_g, sizeof *g, "fit: groups");
    qid_fit_obs *sub = qid_malloc(qid_mul_size(n, sizeof *sub), "fit: group points");
    law_ws w;
    law_ws_init(&w, n);
    size_t gi = 0;
    for (size_t i = 0; i < n;) {
        size_t j = i;
        while (j < n && same_key(&key[j], &key[i]))
            j++;
        qid_fit_group *gr = &g[gi++];
        for (size_t t = i; t < j; t++)
            sub[t - i] = obs[key[t].i];
        size_t m = j - i;
        gr->n_points = m;
        double *cv[3] = {&gr->n, &gr->d, &gr->p};
        for (int v = 0; v < 3; v++)
            *cv[v] = (cons & (1u << v)) ? obs_var(&sub[0], v) : NAN;
        qid_error e;
        qid_error_clear(&e);
        gr->status = law_fit_ws(sub, m, &o, NULL, &gr->fit, &w, &e);
        if (gr->status) snprintf(gr->msg, sizeof gr->msg, "%s", e.msg);
        i = j;
    }
    law_ws_free(&w);
    free(sub);
    free(vi);
    free(key);
    *out = g;
    *n_out = n_g;
    return QID_OK;
}

double qid_fit_groups_median(const qid_fit_group *g, size_t n_groups, enum qid_fit_by by, size_t min_points,
                             size_t *n_used)
{
    double *v = qid_malloc(qid_mul_size(n_groups ? n_groups : 1, sizeof *v), "fit: group exponents");
    size_t k = 0;
    for (size_t i = 0; i < n_groups; i++)
        if (g[i].status == QID_OK && g[i].n_points >= min_points) v[k++] = qid_fit_group_exponent(&g[i], by);
    double med = qid_fit_quantile_sorted(v, k, 0.5);
    free(v);
    if (n_used) *n_used = k;
    return med;
}
