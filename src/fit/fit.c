/* fit.c - the shared core of the regression stage: default options, the Levenberg-Marquardt engine with Huber/IRLS
 * weights (every step a LAPACKE_dgels solve), order statistics, the Pareto frontier helper, and the lists of notes and
 * warnings. Randomness comes from rng.h.
 *
 * The laws live in fit_law.c (QiD) and fit_loss16.c (16-bit loss), the
 * predictor in fit_forest.c. This file knows nothing about any particular
 * model: the engine takes a callback that fills the model and its Jacobian.
 *
 * Does not: allocate inside the iterations (qid_fit_lm_work is sized once),
 * print, or touch global state.
 */
#include "fit.h"

#include <float.h>
#include <lapacke.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fit_internal.h"

/* ---- options ------------------------------------------------------------ */

void qid_fit_opts_init(qid_fit_opts *o)
{
    memset(o, 0, sizeof *o);
    o->z = 2.0;
    o->huber_c = 1.345;
    o->fixed_scale = 0;
    o->max_iter = 200;
    o->xtol = 1e-9;
    o->gtol = 1e-9;
    o->free = QID_FIT_FREE_ALL;
    o->n_boot = 1000;
    o->seed = 1;
    o->level = 0.95;
}

/* ---- order statistics --------------------------------------------------- */

static int cmp_double(const void *pa, const void *pb)
{
    double a = *(const double *)pa, b = *(const double *)pb;
    if (isnan(a)) return isnan(b) ? 0 : 1;
    if (isnan(b)) return -1;
    return (a > b) - (a < b);
}

void qid_fit_sort_doubles(double *v, size_t m) { qsort(v, m, sizeof *v, cmp_double); }

double qid_fit_quantile_sorted(double *v, size_t m, double q)
{
    if (m == 0) return NAN;
    qid_fit_sort_doubles(v, m);
    if (q <= 0) return v[0];
    if (q >= 1) return v[m - 1];
    double h = q * (double)(m - 1);
    size_t lo = (size_t)floor(h);
    size_t hi = lo + 1 < m ? lo + 1 : lo;
    return v[lo] + (h - (double)lo) * (v[hi] - v[lo]);
}

/* The k-th smallest of v[0..m) (k < m, no NaN), partially reordering v:
 * quickselect (Hoare partition, median-of-three pivot); no allocation. */
static double select_kth(double *v, size_t m, size_t k)
{
    size_t lo = 0, hi = m - 1;
    while (lo < hi) {
        double a = v[lo], b = v[lo + (hi - lo) / 2], c = v[hi];
        double pivot = a < b ? (b < c ? b : (a < c ? c : a)) : (a < c ? a : (b < c ? c : b));
        size_t i = lo, j = hi;
        for (;;) {
            while (v[i] < pivot)
                i++;
            while (v[j] > pivot)
                j--;
            if (i >= j) break;
            double t = v[i];
            v[i] = v[j];
            v[j] = t;
            i++;
            j--;
        }
        /* v[lo..j] <= pivot <= v[j+1..hi] */
        if (k <= j)
            hi = j;
        else
            lo = j + 1;
    }
    return v[k];
}

double qid_fit_mad_scale(const double *r, size_t m, double *tmp)
{
    if (m == 0) return 0.0;
    for (size_t i = 0; i < m; i++)
        tmp[i] = fabs(r[i]);
    double med = select_kth(tmp, m, m / 2);
    if (m % 2 == 0) {
        /* The other middle value is the largest of the lower half. */
        double lower = tmp[0];
        for (size_t i = 1; i < m / 2; i++)
            lower = fmax(lower, tmp[i]);
        med = 0.5 * (med + lower);
    }
    return 1.482602218505602 * med;
}

int qid_fit_same(double a, double b) { return fabs(a - b) <= 1e-9 * fmax(fabs(a), fabs(b)); }

size_t qid_fit_count_distinct(double *v, size_t m)
{
    if (m == 0) return 0;
    qid_fit_sort_doubles(v, m);
    size_t k = 1;
    for (size_t i = 1; i < m; i++)
        if (!qid_fit_same(v[i], v[i - 1])) k++;
    return k;
}

double qid_fit_huber_weight(double u, double c)
{
    double a = fabs(u);
    return a <= c ? 1.0 : c / a;
}

/* ---- Levenberg-Marquardt with Huber/IRLS weights ----------------------- */

void qid_fit_lm_work_init(qid_fit_lm_work *w, size_t m_max, size_t p_max)
{
    size_t m = m_max, p = p_max;
    /* f, r, w, b(m+p), f_try, r_try, tmp: m each; jac, a((m+p) x p); theta_try, dscale: p */
    size_t total = 6 * m + (m + p) + m * p + (m + p) * p + 2 * p;
    w->m_max = m;
    w->p_max = p;
    w->buf = qid_malloc(qid_mul_size(total, sizeof(double)), "fit: Levenberg-Marquardt workspace");
    double *q = w->buf;
    w->f = q, q += m;
    w->r = q, q += m;
    w->w = q, q += m;
    w->f_try = q, q += m;
    w->r_try = q, q += m;
    w->tmp = q, q += m;
    w->b = q, q += m + p;
    w->jac = q, q += m * p;
    w->a = q, q += (m + p) * p;
    w->theta_try = q, q += p;
    w->dscale = q;
}

void qid_fit_lm_work_free(qid_fit_lm_work *w)
{
    if (!w) return;
    free(w->buf);
    memset(w, 0, sizeof *w);
}

/* Standardized residuals r_i = (y_i - f_i)/s_i. */
static void residuals(const qid_fit_lm *pb, const double *f, double *r)
{
    for (size_t i = 0; i < pb->m; i++)
        r[i] = (pb->y[i] - f[i]) / (pb->s ? pb->s[i] : 1.0);
}

/* Robust objective at fixed scale: sum scale^2 rho(r_i / scale). Non-finite
 * residuals give +inf (the step is rejected). */
static double objective(const double *r, size_t m, double scale, double c)
{
    double sum = 0;
    for (size_t i = 0; i < m; i++) {
        double u = r[i] / scale;
        if (!isfinite(u)) return INFINITY;
        double a = fabs(u);
        sum += a <= c ? 0.5 * u * u : c * a - 0.5 * c * c;
    }
    return sum * scale * scale;
}

static double residual_scale(const qid_fit_lm *pb, const double *r, double *tmp)
{
    if (pb->fixed_scale || isinf(pb->huber_c)) return 1.0;
    double s = qid_fit_mad_scale(r, pb->m, tmp);
    double amax = 0;
    for (size_t i = 0; i < pb->m; i++)
        amax = fmax(amax, fabs(r[i]));
    return fmax(s, fmax(1e-12 * amax, DBL_MIN));
}

static double norm2(const double *v, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += v[i] * v[i];
    return sqrt(s);
}

int qid_fit_lm_run(const qid_fit_lm *pb, double *theta, qid_fit_conv *conv, qid_fit_lm_out *out, qid_fit_lm_work *w,
                   const char *what, qid_error *err)
{
    const size_t m = pb->m, p = pb->p;
    QID_CHECK(m <= w->m_max && p <= w->p_max && p > 0, "workspace %zu x %zu for %zu x %zu", w->m_max, w->p_max, m, p);
    memset(conv, 0, sizeof *conv);
    const double c = pb->huber_c;
    double lambda = 1e-3;
    double scale = 1.0, step = INFINITY, grad = INFINITY;
    int converged = 0, iter = 0;
    lapack_int info = 0;
    for (size_t j = 0; j < p; j++)
        w->dscale[j] = 0;

    pb->model(theta, pb->ctx, w->f, w->jac);
    residuals(pb, w->f, w->r);
    for (iter = 0; iter < pb->max_iter; iter++) {
        /* IRLS: scale and weights at the current point. */
        scale = residual_scale(pb, w->r, w->tmp);
        double fcur = objective(w->r, m, scale, c);
        if (!isfinite(fcur)) return qid_error_set(err, QID_E_NUMERIC, "%s: the start gives non-finite residuals", what);
        double wr2 = 0;
        for (size_t i = 0; i < m; i++) {
            w->w[i] = qid_fit_huber_weight(w->r[i] / scale, c);
            wr2 += w->w[i] * w->r[i] * w->r[i];
        }
        /* Marquardt scaling (kept at its running maximum, as MINPACK) and
         * the gradient cosine. */
        grad = 0;
        for (size_t j = 0; j < p; j++) {
            double dj = 0, gj = 0;
            for (size_t i = 0; i < m; i++) {
                double si = pb->s ? pb->s[i] : 1.0;
                double jij = w->jac[i * p + j] / si;
                dj += w->w[i] * jij * jij;
                gj += w->w[i] * w->r[i] * jij;
            }
            dj = sqrt(dj);
            if (dj > w->dscale[j]) w->dscale[j] = dj;
            if (dj > 0 && wr2 > 0) grad = fmax(grad, fabs(gj) / (dj * sqrt(wr2)));
            /* A column that is zero at the start stays zero: the step would
             * be singular, and a zero gradient must not pass for convergence. */
            if (iter == 0 && dj == 0) {
                char name[32];
                snprintf(name, sizeof name, "%s", pb->names ? pb->names[j] : "");
                if (!pb->names) snprintf(name, sizeof name, "%zu of %zu", j + 1, p);
                return qid_error_set(err, QID_E_NUMERIC,
                                     "%s: Levenberg-Marquardt step is singular (parameter %s has no effect on any "
                                     "point)",
                                     what, name);
            }
        }
        if (grad < pb->gtol) {
            converged = 1;
            break;
        }
        /* Damped steps until one decreases the objective. */
        int accepted = 0;
        for (;;) {
            /* Column-major (m + p) x p, so LAPACKE need not transpose. */
            double *a = w->a, *b = w->b;
            const size_t lda = m + p;
            for (size_t i = 0; i < m; i++) {
                double si = pb->s ? pb->s[i] : 1.0;
                double sw = sqrt(w->w[i]);
                for (size_t j = 0; j < p; j++)
                    a[j * lda + i] = sw * w->jac[i * p + j] / si;
                b[i] = sw * w->r[i];
            }
            double sl = sqrt(lambda);
            for (size_t k = 0; k < p; k++) {
                for (size_t j = 0; j < p; j++)
                    a[j * lda + m + k] = k == j ? sl * w->dscale[j] : 0.0;
                b[m + k] = 0;
            }
            QID_LAPACKE_TRY(err, info,
                            LAPACKE_dgels(LAPACK_COL_MAJOR, 'N', (lapack_int)lda, (lapack_int)p, 1, a, (lapack_int)lda,
                                          b, (lapack_int)lda),
                            "%s: Levenberg-Marquardt step is singular (a parameter has no effect on any point)", what);
            for (size_t j = 0; j < p; j++)
                w->theta_try[j] = theta[j] + b[j];
            step = norm2(b, p) / (norm2(theta, p) + pb->xtol);
            pb->model(w->theta_try, pb->ctx, w->f_try, NULL);
            residuals(pb, w->f_try, w->r_try);
            double ftry = objective(w->r_try, m, scale, c);
            if (ftry < fcur) {
                memcpy(theta, w->theta_try, p * sizeof *theta);
                accepted = 1;
                lambda = fmax(lambda * 0.1, 1e-12);
                break;
            }
            if (step < pb->xtol) break; /* no decrease, and nowhere left to go */
            lambda *= 10;
            if (lambda > 1e30) break;
        }
        if (!accepted) {
            converged = step < pb->xtol;
            break;
        }
        pb->model(theta, pb->ctx, w->f, w->jac);
        residuals(pb, w->f, w->r);
        if (step < pb->xtol) {
            converged = 1;
            iter++;
            break;
        }
    }
    scale = residual_scale(pb, w->r, w->tmp);
    size_t n_down = 0;
    for (size_t i = 0; i < m; i++)
        if (qid_fit_huber_weight(w->r[i] / scale, c) < 1.0) n_down++;
    conv->iterations = iter;
    conv->step = step;
    conv->grad = grad;
    conv->lambda = lambda;
    conv->converged = converged;
    if (out) {
        out->scale = scale;
        out->n_down = n_down;
    }
    return QID_OK;
fail:
    return err ? err->code : QID_E_NUMERIC;
}

/* ---- Pareto frontier ---------------------------------------------------- */

double qid_fit_candidate_bytes(const qid_fit_candidate *c) { return c->params * c->bits / 8.0; }

typedef struct pareto_key {
    double mem, loss;
    size_t i;
} pareto_key;

static int cmp_pareto(const void *pa, const void *pb)
{
    const pareto_key *a = pa, *b = pb;
    if (a->mem != b->mem) return a->mem < b->mem ? -1 : 1;
    if (a->loss != b->loss) return a->loss < b->loss ? -1 : 1;
    return (a->i > b->i) - (a->i < b->i);
}

size_t qid_fit_pareto(const qid_fit_candidate *c, size_t n, double budget_bytes, size_t *idx)
{
    pareto_key *k = qid_malloc(qid_mul_size(n ? n : 1, sizeof *k), "fit: Pareto candidates");
    size_t m = 0;
    int has_budget = budget_bytes > 0 && isfinite(budget_bytes);
    for (size_t i = 0; i < n; i++) {
        double mem = qid_fit_candidate_bytes(&c[i]);
        if (!isfinite(mem) || !isfinite(c[i].loss) || mem < 0) continue;
        if (has_budget && mem > budget_bytes) continue;
        k[m++] = (pareto_key){mem, c[i].loss, i};
    }
    qsort(k, m, sizeof *k, cmp_pareto);
    size_t out = 0;
    double best = INFINITY;
    for (size_t j = 0; j < m; j++) {
        /* Sorted by memory then loss: a candidate is non-dominated iff its
         * loss is strictly below every loss seen at lower or equal memory. */
        if (k[j].loss < best) {
            idx[out++] = k[j].i;
            best = k[j].loss;
        }
    }
    free(k);
    return out;
}

/* ---- notes and warnings ------------------------------------------------- */

static void list_vadd(char *buf, size_t cap, const char *fmt, va_list ap) __attribute__((format(printf, 3, 0)));
static void list_vadd(char *buf, size_t cap, const char *fmt, va_list ap)
{
    size_t len = strlen(buf);
    if (len && len + 2 < cap) strcat(buf, "; "), len += 2;
    if (len < cap) vsnprintf(buf + len, cap - len, fmt, ap);
}

void qid_fit_list_add(char *buf, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    list_vadd(buf, cap, fmt, ap);
    va_end(ap);
}

void qid_fit_warn_add(char *buf, size_t cap, size_t *count, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    list_vadd(buf, cap, fmt, ap);
    va_end(ap);
    (*count)++;
}
