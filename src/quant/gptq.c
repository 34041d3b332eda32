/* gptq.c - GPTQ: the Hessian of a linear layer's inputs, its damped inverse
 * Cholesky factor, and the column sweep with lazy block updates, act-order,
 * groups (on the fly or static) and micro-blocks. gptq.h states the
 * algorithm and where it follows or leaves the reference (IST-DASLab/gptq).
 *
 * Storage of H (n x n doubles, row-major): the accumulated Hessian lives in
 * the lower triangle and the diagonal (dsyrk, uplo lower). A quantize call
 * saves the diagonal, builds the damped (and permuted) matrix in the upper
 * triangle, and factors it there: LAPACK in column-major with uplo 'L' sees
 * exactly the row-major upper triangle, so dpotrf/dpotri/dpotrf leave U, the
 * upper Cholesky factor of H^-1, in row-major order in the upper triangle,
 * and never touch the lower one. Restoring the diagonal then restores H, so
 * a retry at a higher damping and a later call need no copy of H.
 *
 * The sweep works in place on W: every row is independent inside a lazy
 * block (the parameters of a group are per row too), so large blocks spread
 * rows over OpenMP threads; each row's errors go to E (rows x block) for the
 * dgemm that updates the columns after the block.
 *
 * The format is reached only through its row of the traits table (quant.h):
 * `params` for a group's or block's parameters, `quantize_value` for one
 * weight, `fixed_blocks` for how groups are formed; nothing here depends on
 * which family it is.
 *
 * Does not: check the quantized values against a packed layout (quant.h),
 * or decide the calibration data.
 */
#include "gptq.h"

#include <cblas.h>
#include <lapacke.h>
#include <limits.h>
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct qid_gptq_hessian {
    size_t n;            /* input features */
    size_t nsamples;     /* the n of 2/n */
    double *H;           /* n x n: lower triangle + diagonal = accumulated H; upper = workspace */
    double *diag;        /* n: the diagonal saved while the upper triangle is factored */
    double *deff;        /* n: diagonal with dead columns set to 1 */
    double *chunk;       /* QID_GPTQ_CHUNK_ROWS x n: activations widened to double */
    unsigned long stamp; /* bumped by every add and reset */
    /* The cached factorization (valid when have_factor and factor_stamp == stamp). */
    float *U;     /* n x n: upper triangle = float32 U (row-major); lower unused */
    size_t *perm; /* n: column order (identity without act-order) */
    int have_factor;
    unsigned long factor_stamp;
    double key_percdamp, key_growth;
    int key_retries, key_act_order;
    double used_percdamp, used_damp;
    int used_retries;
    size_t dead;
};

#define GPTQ_DAMP_FROM_ZERO 1e-6
#define GPTQ_TILE           64
#define GPTQ_TRAIL_COLS     512 /* columns per product of the lazy-block update */
/* Work (multiply-adds, about) below which a loop runs on one thread: an
 * OpenMP team's idle threads spin for milliseconds after a region and slow
 * the OpenBLAS call that follows, which costs more than a small loop gains. */
#define GPTQ_PAR_MIN ((size_t)1 << 26)

static const char *name_or(const char *what) { return what ? what : "tensor"; }

void qid_gptq_opts_default(qid_gptq_opts *opts)
{
    opts->percdamp = 0.01;
    opts->damp_retries = 4;
    opts->damp_growth = 10.0;
    opts->block = 128;
    opts->micro_block = 0;
    opts->act_order = 0;
    opts->static_groups = 0;
}

/* ---- Hessian --------------------------------------------------------------- */

qid_gptq_hessian *qid_gptq_hessian_create(size_t cols)
{
    QID_CHECK(cols >= 1, "a Hessian needs at least one column");
    qid_gptq_hessian *h = qid_calloc(1, sizeof *h, "gptq hessian");
    h->n = cols;
    h->H = qid_calloc(qid_mul_size(cols, cols), sizeof *h->H, "gptq hessian matrix");
    h->diag = qid_malloc(qid_mul_size(cols, sizeof *h->diag), "gptq hessian diagonal");
    h->deff = qid_malloc(qid_mul_size(cols, sizeof *h->deff), "gptq hessian diagonal");
    h->chunk =
        qid_malloc(qid_mul_size(qid_mul_size(QID_GPTQ_CHUNK_ROWS, cols), sizeof *h->chunk), "gptq activation chunk");
    h->perm = qid_malloc(qid_mul_size(cols, sizeof *h->perm), "gptq permutation");
    return h;
}

void qid_gptq_hessian_free(qid_gptq_hessian *h)
{
    if (!h) return;
    free(h->H);
    free(h->diag);
    free(h->deff);
    free(h->chunk);
    free(h->U);
    free(h->perm);
    free(h);
}

void qid_gptq_hessian_reset(qid_gptq_hessian *h)
{
    memset(h->H, 0, h->n * h->n * sizeof *h->H);
    h->nsamples = 0;
    h->stamp++;
}

size_t qid_gptq_hessian_cols(const qid_gptq_hessian *h) { return h->n; }
size_t qid_gptq_hessian_nsamples(const qid_gptq_hessian *h) { return h->nsamples; }

double qid_gptq_hessian_get(const qid_gptq_hessian *h, size_t i, size_t j)
{
    QID_CHECK(i < h->n && j < h->n, "index (%zu, %zu) outside %zu x %zu", i, j, h->n, h->n);
    return i >= j ? h->H[i * h->n + j] : h->H[j * h->n + i];
}

int qid_gptq_hessian_add(qid_gptq_hessian *h, const float *x, size_t rows, size_t ldx, size_t nsamples,
                         const char *what, qid_error *err)
{
    const size_t n = h->n;
    if (rows == 0) return QID_OK;
    if (ldx < n)
        return qid_error_set(err, QID_E_INVALID, "activation rows of %zu floats for the %zu inputs of '%s'", ldx, n,
                             name_or(what));
    if (n > INT_MAX || ldx > INT_MAX)
        return qid_error_set(err, QID_E_INVALID, "'%s' has %zu inputs, more than BLAS can index", name_or(what), n);
    for (size_t r = 0; r < rows; r++) {
        size_t c = qid_quant_find_nonfinite(x + r * ldx, n);
        if (c < n)
            return qid_error_set(err, QID_E_NUMERIC,
                                 "non-finite activation %g at row %zu, column %zu of the input of '%s'",
                                 (double)x[r * ldx + c], r, c, name_or(what));
    }
    const size_t m = nsamples ? nsamples : rows;
    const double total = (double)h->nsamples + (double)m;
    const double alpha = 2.0 / total;
    double beta = (double)h->nsamples / total;
    for (size_t r0 = 0; r0 < rows; r0 += QID_GPTQ_CHUNK_ROWS) {
        size_t k = rows - r0 < QID_GPTQ_CHUNK_ROWS ? rows - r0 : QID_GPTQ_CHUNK_ROWS;
        for (size_t r = 0; r < k; r++) {
            const float *xr = x + (r0 + r) * ldx;
            double *cr = h->chunk + r * n;
            for (size_t c = 0; c < n; c++)
                cr[c] = xr[c];
        }
        /* H (lower) = beta H + alpha chunk^T chunk; the first chunk rescales the old H. */
        cblas_dsyrk(CblasRowMajor, CblasLower, CblasTrans, (int)n, (int)k, alpha, h->chunk, (int)n, beta, h->H, (int)n);
        beta = 1.0;
    }
    h->nsamples += m;
    h->stamp++;
    return QID_OK;
}

/* ---- factorization --------------------------------------------------------- */

typedef struct gptq_key {
    double d;
    size_t i;
} gptq_key;

/* Descending d; ties keep column order (a stable descending sort). */
static int cmp_desc(const void *a, const void *b)
{
    const gptq_key *x = a, *y = b;
    if (x->d > y->d) return -1;
    if (x->d < y->d) return 1;
    return x->i < y->i ? -1 : (x->i > y->i);
}

/* Fills the upper triangle of h->H (diagonal included) with the damped,
 * permuted Hessian M[i][j] = H[perm i][perm j] + damp [i == j], reading the
 * lower triangle and h->deff. */
static void fill_upper(qid_gptq_hessian *h, int permuted, double damp)
{
    const size_t n = h->n;
    double *H = h->H;
    if (!permuted) {
        for (size_t i0 = 0; i0 < n; i0 += GPTQ_TILE)
            for (size_t j0 = i0; j0 < n; j0 += GPTQ_TILE) {
                size_t i1 = i0 + GPTQ_TILE < n ? i0 + GPTQ_TILE : n, j1 = j0 + GPTQ_TILE < n ? j0 + GPTQ_TILE : n;
                for (size_t i = i0; i < i1; i++)
                    for (size_t j = (j0 > i + 1 ? j0 : i + 1); j < j1; j++)
                        H[i * n + j] = H[j * n + i];
            }
    } else {
        const size_t *p = h->perm;
        for (size_t i = 0; i < n; i++)
            for (size_t j = i + 1; j < n; j++) {
                size_t a = p[i], b = p[j];
                H[i * n + j] = a > b ? H[a * n + b] : H[b * n + a];
            }
    }
    for (size_t i = 0; i < n; i++)
        H[i * n + i] = h->deff[h->perm[i]] + damp;
}

/* 1 when the upper triangle of h->H (row-major) is all finite. */
static int upper_finite(const qid_gptq_hessian *h)
{
    const size_t n = h->n;
    for (size_t i = 0; i < n; i++)
        for (size_t j = i; j < n; j++)
            if (!isfinite(h->H[i * n + j])) return 0;
    return 1;
}

/* One attempt at U = chol(inv(M), upper) for the matrix in the upper
 * triangle; on success the float32 U is in h->U. Returns 0 or the failing
 * step's description in `why`. */
static int try_factor(qid_gptq_hessian *h, char *why, size_t len)
{
    const size_t n = h->n;
    const lapack_int ln = (lapack_int)n;
    lapack_int info;
    QID_LAPACKE(info, LAPACKE_dpotrf(LAPACK_COL_MAJOR, 'L', ln, h->H, ln));
    if (info > 0) {
        snprintf(why, len, "dpotrf(H) info=%d", (int)info);
        return 1;
    }
    QID_LAPACKE(info, LAPACKE_dpotri(LAPACK_COL_MAJOR, 'L', ln, h->H, ln));
    if (info > 0) {
        snprintf(why, len, "dpotri info=%d", (int)info);
        return 1;
    }
    if (!upper_finite(h)) {
        snprintf(why, len, "H^-1 not finite");
        return 1;
    }
    QID_LAPACKE(info, LAPACKE_dpotrf(LAPACK_COL_MAJOR, 'L', ln, h->H, ln));
    if (info > 0) {
        snprintf(why, len, "dpotrf(H^-1) info=%d", (int)info);
        return 1;
    }
    for (size_t i = 0; i < n; i++) {
        const double *src = h->H + i * n;
        float *dst = h->U + i * n;
        for (size_t j = i; j < n; j++) {
            float v = (float)src[j];
            if (!isfinite(v) || (j == i && !(v > 0.0f))) {
                snprintf(why, len, "float32 factor not finite or zero at (%zu, %zu)", i, j);
                return 1;
            }
            dst[j] = v;
        }
    }
    return 0;
}

/* The cached factorization for these options (*reused = 1), or a new one.
 * On failure H is restored and err set. */
static int gptq_factor(qid_gptq_hessian *h, const qid_gptq_opts *o, const char *what, int *reused, qid_error *err)
{
    *reused = h->have_factor && h->factor_stamp == h->stamp && h->key_percdamp == o->percdamp &&
              h->key_growth == o->damp_growth && h->key_retries == o->damp_retries && h->key_act_order == o->act_order;
    if (*reused) return QID_OK;
    const size_t n = h->n;
    h->have_factor = 0;
    if (!h->U) h->U = qid_malloc(qid_mul_size(qid_mul_size(n, n), sizeof *h->U), "gptq inverse Hessian factor");

    /* Dead columns and the mean of the diagonal, summed with Neumaier's
     * compensation (one rounding, whatever torch's summation order). */
    size_t dead = 0;
    double sum = 0.0, comp = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = h->diag[i] = h->H[i * n + i];
        if (d == 0.0) {
            d = 1.0;
            dead++;
        }
        h->deff[i] = d;
        double t = sum + d;
        comp += fabs(sum) >= fabs(d) ? (sum - t) + d : (d - t) + sum;
        sum = t;
    }
    const double mean = (sum + comp) / (double)n;

    for (size_t i = 0; i < n; i++)
        h->perm[i] = i;
    if (o->act_order) {
        gptq_key *keys = qid_malloc(qid_mul_size(n, sizeof *keys), "gptq act-order keys");
        for (size_t i = 0; i < n; i++)
            keys[i] = (gptq_key){h->deff[i], i};
        qsort(keys, n, sizeof *keys, cmp_desc);
        for (size_t i = 0; i < n; i++)
            h->perm[i] = keys[i].i;
        free(keys);
    }

    double pd = o->percdamp;
    int rc = QID_OK;
    for (int attempt = 0;; attempt++) {
        char why[96];
        fill_upper(h, o->act_order, pd * mean);
        if (!try_factor(h, why, sizeof why)) {
            h->used_percdamp = pd;
            h->used_damp = pd * mean;
            h->used_retries = attempt;
            break;
        }
        if (attempt >= o->damp_retries) {
            rc = qid_error_set(err, QID_E_NUMERIC,
                               "gptq: Cholesky of H failed for '%s' at damp %g (%s) after %d retries; "
                               "raise percdamp or add calibration samples",
                               name_or(what), pd, why, attempt);
            break;
        }
        double next = pd > 0.0 ? pd * o->damp_growth : GPTQ_DAMP_FROM_ZERO;
        qid_warn("gptq: Cholesky of H failed for '%s' at damp %g, retrying with %g (%s)", name_or(what), pd, next, why);
        pd = next;
    }
    for (size_t i = 0; i < n; i++)
        h->H[i * n + i] = h->diag[i];
    if (rc) return rc;
    h->dead = dead;
    h->have_factor = 1;
    h->factor_stamp = h->stamp;
    h->key_percdamp = o->percdamp;
    h->key_growth = o->damp_growth;
    h->key_retries = o->damp_retries;
    h->key_act_order = o->act_order;
    return QID_OK;
}

/* ---- the sweep -------------------------------------------------------------- */

/* y[i] -= a * x[i] for i < n: a product and a subtraction, each rounded
 * (no FMA: the reference's arithmetic), vectorized: SSE2 in the generic
 * form, 8 lanes in the AVX2 clone (same results). */
static void axpy_neg_generic(float *restrict y, const float *restrict x, float a, size_t n)
{
#pragma omp simd
    for (size_t i = 0; i < n; i++)
        y[i] -= a * x[i];
}

#if defined(__x86_64__) && defined(__GNUC__)
__attribute__((target("avx2"))) static void axpy_neg_avx2(float *restrict y, const float *restrict x, float a, size_t n)
{
#pragma omp simd
    for (size_t i = 0; i < n; i++)
        y[i] -= a * x[i];
}
#endif

typedef void (*axpy_fn)(float *restrict y, const float *restrict x, float a, size_t n);

static axpy_fn pick_axpy(void)
{
#if defined(__x86_64__) && defined(__GNUC__)
    if (qid_quant_use_avx2()) return axpy_neg_avx2;
#endif
    return axpy_neg_generic;
}

/* The format reaches the sweep only through its traits: params finds a
 * group's or block's parameters, value quantizes one weight with them. */
typedef struct gptq_sweep {
    const qid_quant_spec *spec;
    qid_quant_params_fn params;
    qid_quant_value_fn value;
    size_t g;       /* group or block; 0 = per channel */
    size_t n;       /* columns */
    size_t mb;      /* micro-block */
    const float *U; /* n x n, upper */
    const size_t *perm;
    int act_order;
    int static_groups;            /* tables in stat[] */
    int per_channel;              /* g == 0: parameters in chan[] */
    int stale_groups;             /* groups found on the fly from W at the start of the lazy block */
    const qid_quant_params *chan; /* rows */
    const qid_quant_params *stat; /* rows x ngroups */
    size_t ngroups;
    qid_quant_params *cur; /* rows: parameters of the current group (on the fly) */
    const double *inv_d2;  /* n: 1 / U[i][i]^2 */
    axpy_fn axpy;
} gptq_sweep;

/* Row r, columns [i1, i2) of w (the row, in place): quantize and feed the
 * errors back inside the block. e is (i2 - i1): the row's errors (float32
 * values, stored widened for the dgemm); scratch holds n + 2 (i2 - i1)
 * floats. Returns the row's sum of (w - q)^2 / d^2. */
static double sweep_row(const gptq_sweep *s, size_t r, float *restrict w, size_t i1, size_t i2, double *restrict e,
                        float *restrict scratch)
{
    const size_t n = s->n, b = i2 - i1, g = s->g;
    float *start = scratch;          /* (b) the row at the start of the block */
    float *q = scratch + b;          /* (b) quantized values of a micro-block */
    float *gather = scratch + 2 * b; /* (n) a group as the reference slices it */
    qid_quant_params *cur = s->cur + r;
    if (s->stale_groups) memcpy(start, w + i1, b * sizeof *w);
    double loss = 0.0;
    for (size_t j = 0; j < b; j += s->mb) {
        const size_t k = j + s->mb < b ? j + s->mb : b;
        for (size_t l = j; l < k; l++) {
            const size_t col = i1 + l;
            const qid_quant_params *p = cur;
            if (s->per_channel) {
                p = s->chan + r;
            } else if (s->static_groups) {
                size_t orig = s->act_order ? s->perm[col] : col;
                p = s->stat + r * s->ngroups + orig / g;
            } else if (col % g == 0) {
                size_t len = n - col < g ? n - col : g;
                if (s->stale_groups) {
                    for (size_t c = 0; c < len; c++)
                        gather[c] = col + c < i2 ? start[col + c - i1] : w[col + c];
                    s->params(s->spec, gather, len, cur);
                } else {
                    s->params(s->spec, w + col, len, cur);
                }
            }
            q[l - j] = s->value(s->spec, p, w[col]);
        }
        for (size_t l = j; l < k; l++) {
            const size_t col = i1 + l;
            const float *u = s->U + col * n;
            const float d = u[col], wv = w[col], qv = q[l - j];
            const float err = (wv - qv) / d;
            const double diff = (double)(wv - qv);
            loss += diff * diff * s->inv_d2[col];
            s->axpy(w + col + 1, u + col + 1, err, i2 - col - 1);
            w[col] = qv;
            e[l] = err;
        }
    }
    return loss;
}

/* W[:, i2:] -= E[:, i1:i2] U[i1:i2, i2:] (w is rows x n, E rows x (i2 - i1)).
 * The product of the float32 errors and factor is accumulated in double and
 * rounded to float32 once, then subtracted: the reference's two roundings
 * (float32 product, then the subtraction), without its dependence on the
 * BLAS's summation order. Ud holds (i2 - i1) x (n - i2) doubles, T rows x
 * tcols; the columns go tcols at a time. */
static void trailing_update(float *w, size_t rows, size_t n, size_t i1, size_t i2, const double *E, const float *U,
                            double *Ud, double *T, size_t tcols)
{
    const size_t b = i2 - i1, m = n - i2;
    for (size_t i = 0; i < b; i++)
        for (size_t c = 0; c < m; c++)
            Ud[i * m + c] = U[(i1 + i) * n + i2 + c];
    for (size_t c0 = 0; c0 < m; c0 += tcols) {
        const size_t nc = m - c0 < tcols ? m - c0 : tcols;
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)rows, (int)nc, (int)b, 1.0, E, (int)b, Ud + c0,
                    (int)m, 0.0, T, (int)nc);
        for (size_t r = 0; r < rows; r++) {
            float *wr = w + r * n + i2 + c0;
            const double *tr = T + r * nc;
            for (size_t c = 0; c < nc; c++)
                wr[c] -= (float)tr[c];
        }
    }
}

/* ---- quantize --------------------------------------------------------------- */

static int check_opts(const qid_gptq_opts *o, const qid_quant_spec *spec, const char *what, qid_error *err)
{
    char fmt[64];
    qid_quant_name(spec, fmt, sizeof fmt);
    if (!(o->percdamp >= 0.0) || !isfinite(o->percdamp))
        return qid_error_set(err, QID_E_INVALID, "gptq: percdamp %g for '%s' must be finite and >= 0", o->percdamp,
                             name_or(what));
    if (!(o->damp_growth > 1.0) || !isfinite(o->damp_growth) || o->damp_retries < 0)
        return qid_error_set(err, QID_E_INVALID, "gptq: damping retries %d x %g for '%s' need retries >= 0, growth > 1",
                             o->damp_retries, o->damp_growth, name_or(what));
    if (o->block < 1) return qid_error_set(err, QID_E_INVALID, "gptq: block size 0 for '%s'", name_or(what));
    if (qid_quant_traits_of(spec->type)->fixed_blocks) {
        if (o->micro_block > 1 && o->micro_block % spec->block != 0)
            return qid_error_set(err, QID_E_INVALID,
                                 "gptq: micro-block %zu for '%s' is not a multiple of the block size %zu of format %s",
                                 o->micro_block, name_or(what), spec->block, fmt);
        if (o->act_order && !o->static_groups)
            return qid_error_set(err, QID_E_INVALID,
                                 "gptq: act-order with format %s for '%s' needs static groups (its blocks are "
                                 "contiguous in the original column order)",
                                 fmt, name_or(what));
    }
    return QID_OK;
}

int qid_gptq_quantize(qid_gptq_hessian *h, const qid_quant_spec *spec, const qid_gptq_opts *opts, float *w, size_t rows,
                      size_t cols, const char *what, qid_gptq_stats *stats, qid_error *err)
{
    const double t0 = qid_now();
    qid_gptq_opts o;
    if (opts)
        o = *opts;
    else
        qid_gptq_opts_default(&o);
    const size_t n = h->n;
    if (cols != n)
        return qid_error_set(err, QID_E_INVALID, "gptq: '%s' has %zu columns but its Hessian is %zu x %zu",
                             name_or(what), cols, n, n);
    if (h->nsamples == 0)
        return qid_error_set(err, QID_E_INVALID, "gptq: no calibration samples were added for '%s'", name_or(what));
    if (rows > INT_MAX || n > INT_MAX)
        return qid_error_set(err, QID_E_INVALID, "gptq: '%s' (%zu x %zu) is larger than BLAS can index", name_or(what),
                             rows, n);
    int rc = qid_quant_check_shape(spec, cols, what, err);
    if (rc) return rc;

    const qid_quant_traits *t = qid_quant_traits_of(spec->type);
    if (!t->params) {
        char fmt[64];
        qid_quant_name(spec, fmt, sizeof fmt);
        return qid_error_set(err, QID_E_INVALID, "gptq: format %s has no GPTQ path (%s); expected method rtn", fmt,
                             QID_GPTQ_NO_PATH_WHY);
    }
    const size_t g = spec->block;
    rc = check_opts(&o, spec, what, err);
    if (rc) return rc;
    size_t numel = qid_mul_size(rows, cols);
    size_t bad = qid_quant_find_nonfinite(w, numel);
    if (bad < numel) {
        float v = w[bad];
        return qid_error_set(err, QID_E_NUMERIC,
                             "non-finite weight %s at element %zu (row %zu, column %zu) of '%s': gptq needs finite "
                             "weights",
                             isnan(v) ? "nan" : (v > 0 ? "+inf" : "-inf"), bad, bad / cols, bad % cols, name_or(what));
    }

    /* Micro-block and lazy block. */
    const size_t fixed = t->fixed_blocks ? g : 1; /* columns a micro-block must hold whole */
    size_t mb = o.micro_block ? o.micro_block : fixed;
    if (mb > n) mb = n;
    size_t unit = mb > 1 ? mb : fixed;
    size_t B = (o.block + unit - 1) / unit * unit;
    if (B > n) B = (n + unit - 1) / unit * unit;

    int reused;
    rc = gptq_factor(h, &o, what, &reused, err);
    if (rc) return rc;

    /* From here on w changes. */
    const int per_channel = g == 0;
    const int use_static = o.static_groups && !per_channel;
    qid_quant_params *chan = NULL, *stat = NULL;
    size_t ngroups = 0;
    const size_t param_work = rows * n * (spec->mse ? 80 : 1);
    if (per_channel) {
        chan = qid_malloc(qid_mul_size(rows, sizeof *chan), "gptq channel parameters");
#pragma omp parallel for schedule(static) if (param_work >= GPTQ_PAR_MIN)
        for (size_t r = 0; r < rows; r++)
            t->params(spec, w + r * n, n, chan + r);
    }
    if (h->dead)
        for (size_t c = 0; c < n; c++)
            if (h->diag[c] == 0.0)
                for (size_t r = 0; r < rows; r++)
                    w[r * n + c] = 0.0f;
    if (use_static) {
        ngroups = n / g;
        stat = qid_malloc(qid_mul_size(qid_mul_size(rows, ngroups), sizeof *stat), "gptq static groups");
#pragma omp parallel for schedule(static) if (param_work >= GPTQ_PAR_MIN)
        for (size_t r = 0; r < rows; r++)
            for (size_t k = 0; k < ngroups; k++)
                t->params(spec, w + r * n + k * g, g, stat + r * ngroups + k);
    }

    const int nthreads = omp_get_max_threads();
    const size_t per_thread = n + 2 * B;
    float *scratch =
        qid_malloc(qid_mul_size(qid_mul_size((size_t)nthreads, per_thread), sizeof *scratch), "gptq row scratch");
    double *E = qid_malloc(qid_mul_size(qid_mul_size(rows, B), sizeof *E), "gptq block errors");
    double *Ud = qid_malloc(qid_mul_size(qid_mul_size(B, n), sizeof *Ud), "gptq factor rows");
    const size_t tcols = n < GPTQ_TRAIL_COLS ? n : GPTQ_TRAIL_COLS;
    double *T = qid_malloc(qid_mul_size(qid_mul_size(rows ? rows : 1, tcols), sizeof *T), "gptq block update");
    qid_quant_params *cur = qid_calloc(rows, sizeof *cur, "gptq group parameters");
    double *row_loss = qid_calloc(rows ? rows : 1, sizeof *row_loss, "gptq row losses");
    double *inv_d2 = qid_malloc(qid_mul_size(n, sizeof *inv_d2), "gptq loss weights");
    for (size_t i = 0; i < n; i++) {
        double d = h->U[i * n + i];
        inv_d2[i] = 1.0 / (d * d);
    }

    if (o.act_order)
        for (size_t r = 0; r < rows; r++) {
            float *wr = w + r * n;
            for (size_t c = 0; c < n; c++)
                scratch[c] = wr[h->perm[c]];
            memcpy(wr, scratch, n * sizeof *wr);
        }

    const gptq_sweep s = {.spec = spec,
                          .params = t->params,
                          .value = t->quantize_value,
                          .g = g,
                          .n = n,
                          .mb = mb,
                          .U = h->U,
                          .perm = h->perm,
                          .act_order = o.act_order,
                          .static_groups = use_static,
                          .per_channel = per_channel,
                          .stale_groups = !t->fixed_blocks && !per_channel && !use_static,
                          .chan = chan,
                          .stat = stat,
                          .ngroups = ngroups,
                          .cur = cur,
                          .inv_d2 = inv_d2,
                          .axpy = pick_axpy()};
    for (size_t i1 = 0; i1 < n; i1 += B) {
        const size_t i2 = i1 + B < n ? i1 + B : n, b = i2 - i1;
        const size_t sweep_work = rows * (b * b / 2 + (spec->mse ? 80 * b : 0));
#pragma omp parallel if (sweep_work >= GPTQ_PAR_MIN)
        {
            float *mine = scratch + (size_t)omp_get_thread_num() * per_thread;
#pragma omp for schedule(static)
            for (size_t r = 0; r < rows; r++)
                row_loss[r] += sweep_row(&s, r, w + r * n, i1, i2, E + r * b, mine);
        }
        if (i2 < n && rows > 0) trailing_update(w, rows, n, i1, i2, E, h->U, Ud, T, tcols);
    }

    if (o.act_order)
        for (size_t r = 0; r < rows; r++) {
            float *wr = w + r * n;
            for (size_t c = 0; c < n; c++)
                scratch[h->perm[c]] = wr[c];
            memcpy(wr, scratch, n * sizeof *wr);
        }

    double loss = 0.0;
    for (size_t r = 0; r < rows; r++)
        loss += row_loss[r];
    free(chan);
    free(stat);
    free(scratch);
    free(E);
    free(Ud);
    free(T);
    free(cur);
    free(row_loss);
    free(inv_d2);

    bad = qid_quant_find_nonfinite(w, numel);
    if (bad < numel)
        return qid_error_set(err, QID_E_NUMERIC,
                             "gptq: non-finite result at row %zu, column %zu of '%s' (ill-conditioned Hessian at "
                             "damp %g?)",
                             bad / cols, bad % cols, name_or(what), h->used_percdamp);
    if (stats) {
        stats->loss = loss / 2.0;
        stats->percdamp = h->used_percdamp;
        stats->damp = h->used_damp;
        stats->retries = h->used_retries;
        stats->dead = h->dead;
        stats->micro_block = mb;
        stats->block = B;
        stats->reused = reused;
        stats->seconds = qid_now() - t0;
    }
    return QID_OK;
}
