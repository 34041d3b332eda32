/* fit.h - the in-memory regression core: scaling laws of quantization-induced
 * degradation, the 16-bit loss law, and the Xu et al. post-quantization loss
 * predictor (CART trees, a random forest, a linear baseline).
 *
 * Everything here works on arrays in memory. The results store, `qid fit`,
 * `qid predict` and `qid report` are thin wrappers: they read rows into
 * qid_fit_obs / feature matrices, call these functions and write or print the
 * structs they fill.
 *
 * The unified law of Ouyang et al. (2024),
 *     QiD(N, D, P) = k * D^beta / (N^alpha * P^gamma),
 * is fitted in two stages: weighted log-linear least squares on the points
 * whose QiD is significantly above zero (qid > z*se and qid > 0), then a
 * robust refinement in linear space on ALL points (Levenberg-Marquardt on the
 * Huber loss of the standardized residuals (qid - law)/se, with IRLS weights
 * and a MAD scale), so that near-zero and negative QiD still count and one
 * gross outlier does not drag the law. The same machinery fits per-bit-width
 * laws and per-factor laws (a subset of free parameters on a subset of rows).
 * Bootstrap intervals resample whole checkpoints.
 *
 * Every linear solve goes through LAPACKE (dgels for least squares and
 * Levenberg-Marquardt steps, dtrcon for rank checks, dgelsd for the linear
 * baseline). Randomness comes from qid_rng (xoshiro256**), seeded by the
 * caller; nothing here calls rand().
 *
 * Errors are tier 3 (error.h): a degenerate input (one model size, fewer
 * points than parameters, no significant QiD, a rank-deficient design, a
 * LAPACKE info > 0) returns a status and a one-line message in err; no
 * function prints. Memory exhaustion ends the job (qid_malloc).
 *
 * Not here: reading or writing HDF5, command-line parsing, plots, MPI. No
 * function is collective; all are reentrant (no global state).
 */
#ifndef QID_FIT_H
#define QID_FIT_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "rng.h"

/* ---- seeded generator ------------------------------------------------- */

/* ---- observations and laws -------------------------------------------- */

/* One measured QiD: one (checkpoint, quantizer) result. */
typedef struct qid_fit_obs {
    int ckpt;      /* checkpoint id: the bootstrap resamples whole checkpoints */
    int group;     /* model-size group id: leave-one-model-size-out holds one out */
    double n;      /* non-embedding parameters N, > 0 */
    double d;      /* training tokens D, > 0 */
    double p;      /* bits P, > 0 */
    double qid;    /* loss(quantized) - loss(16-bit), nats/token; any sign */
    double se;     /* standard error of qid, > 0 */
    double loss16; /* 16-bit loss (not used by the QiD laws; NaN if unknown) */
    double lr;     /* learning rate at the checkpoint over its peak, in [0, 1] (the results store's lr_frac);
                      NaN if unknown. Only the ouyang-lr form uses it */
    size_t row;    /* the results row it came from (qid_fit_obs_from_rows; 0 otherwise): its model, method, format */
} qid_fit_obs;

/* The functional forms of the law (`qid fit --law NAME`). Every form has
 * four coefficients in the slots k, alpha, beta, gamma of qid_fit_law, and
 * the learning-rate form a fifth, delta:
 *   QID_FIT_FORM_OUYANG  QiD = k * D^beta / (N^alpha * P^gamma)
 *                        (Ouyang et al. 2024; stored as k, alpha, beta, gamma)
 *   QID_FIT_FORM_KUMAR   QiD = C * D^gamma_D * N^-gamma_N * exp(-P/gamma_post)
 *                        (Kumar et al. 2025, post-train degradation; stored as
 *                        C, gamma_N, gamma_D, gamma_post in the slots k,
 *                        alpha, beta, gamma)
 *   QID_FIT_FORM_OUYANG_LR  QiD = k * D^beta / (N^alpha * P^gamma) * exp(delta * (1 - r))
 *                        Ouyang's law with a factor in the learning rate r
 *                        at the checkpoint relative to its peak (obs.lr), so
 *                        that the rise of QiD that Catalan-Tatjer et al.
 *                        (2025) attribute to learning-rate decay can be told
 *                        from the rise with D on data where the two are not
 *                        confounded (runs with different schedules). delta
 *                        > 0: QiD rises as the learning rate decays. The
 *                        factor is 1 at the peak (r = 1) and exp(delta) at
 *                        r = 0; it is bounded, so warm-up checkpoints (r near
 *                        0) do not dominate as a power of r would.
 * The default is QID_FIT_FORM_OUYANG (0), so a zero-initialised law or
 * options struct is Ouyang's. */
enum { QID_FIT_FORM_OUYANG = 0, QID_FIT_FORM_KUMAR = 1, QID_FIT_FORM_OUYANG_LR = 2, QID_FIT_N_FORMS = 3 };

/* Coefficient slots of the largest form (k, alpha, beta, gamma, delta). */
#define QID_FIT_MAX_COEF 5

/* One fitted law: the coefficients of its form. */
typedef struct qid_fit_law {
    double k, alpha, beta, gamma;
    double delta; /* the learning-rate form's exponent; 0 in the others */
    double lr;    /* the learning-rate form's r where a prediction gives none (qid_fit_law_eval): the
                     smallest r of the points it was fitted to, i.e. the end of their schedule; unused by the
                     other forms */
    int form;     /* QID_FIT_FORM_* (0: Ouyang's) */
} qid_fit_law;

/* What a form is. Each form is log-linear in an internal parametrisation:
 *     ln QiD = ln k - alpha ln N + beta ln D - g * x(P),
 * with x(P) = p_feature(P) (ln P for Ouyang, P for Kumar) and g = gamma, or
 * 1/gamma when p_reciprocal (Kumar's gamma_post), plus delta * (1 - r) for
 * the form with a learning-rate term (n_coef 5). So every form shares the
 * log-linear start (stage 1), the model and Jacobian of the robust
 * refinement (d law/d theta_j = law * x_j) and the bootstrap; what differs
 * is the design column of P and the map to the stored coefficients. The
 * inversions are NULL where a form has none (the command layer then says
 * so in one line). */
typedef struct qid_fit_form {
    const char *name;                   /* "ouyang", "kumar": `qid fit --law NAME`, the `form` attribute in /fits */
    const char *text;                   /* the law as text (the `law` attribute) */
    const char *source;                 /* where it is from */
    int n_coef;                         /* 4, or 5 with the learning-rate slot delta */
    const char *coef[QID_FIT_MAX_COEF]; /* the names of the slots k, alpha, beta, gamma[, delta] (attributes in
                                           /fits) */
    const char *columns;                /* the same, comma-separated (the `draws` dataset's columns) */
    double (*p_feature)(double p);
    int p_reciprocal;
    size_t min_bits; /* distinct bit widths a fit needs */
    double (*eval)(const qid_fit_law *law, double n, double d, double p, double lr);
    double (*tokens_for)(const qid_fit_law *law, double qid, double n, double p); /* NULL: not defined */
    double (*training_level)(const qid_fit_law *law, const double *qid, const double *se, double n, const double *p,
                             size_t m); /* NULL: not defined */
} qid_fit_form;

extern const qid_fit_form qid_fit_forms[QID_FIT_N_FORMS];

/* The form of a law (any out-of-range id gives Ouyang's: never NULL). */
const qid_fit_form *qid_fit_form_of(int form);

/* The form called name, or -1. */
int qid_fit_form_find(const char *name);

/* The forms' names, comma-separated ("ouyang, kumar, ouyang-lr"), for messages. */
const char *qid_fit_form_list(void);

/* Ouyang et al. (2024) unified law: k 0.017, alpha 0.2261, beta 0.5251,
 * gamma 5.4967. */
extern const qid_fit_law QID_FIT_LAW_OUYANG;

/* The coefficients by index j = 0..4: k, alpha, beta, gamma, delta (the
 * names under which /fits stores an Ouyang law; a form's own names are in
 * qid_fit_forms[].coef). */
extern const char *const qid_fit_law_names[QID_FIT_MAX_COEF];
double qid_fit_law_coef(const qid_fit_law *law, int j);
void qid_fit_law_set_coef(qid_fit_law *law, int j, double v);

/* Free-parameter mask bits (qid_fit_opts.free). */
enum {
    QID_FIT_FREE_K = 1u,
    QID_FIT_FREE_ALPHA = 2u,
    QID_FIT_FREE_BETA = 4u,
    QID_FIT_FREE_GAMMA = 8u,
    QID_FIT_FREE_DELTA = 16u, /* only the learning-rate form has it; the others ignore the bit */
    QID_FIT_FREE_ALL = 31u,
};

/* Fit options. Start from qid_fit_opts_init and change what you need. */
typedef struct qid_fit_opts {
    double z;          /* log-linear start uses points with qid > z*se and qid > 0 (default 2) */
    double huber_c;    /* Huber threshold in units of the residual scale (default 1.345);
                          INFINITY gives plain weighted least squares */
    int fixed_scale;   /* 1: residual scale 1 (trust the standard errors);
                          0: MAD estimate of the standardized residuals (default) */
    int max_iter;      /* Levenberg-Marquardt iterations (default 200) */
    double xtol;       /* converged when the relative parameter step < xtol (default 1e-9) */
    double gtol;       /* ... or the scaled gradient (cosine) < gtol (default 1e-9) */
    unsigned free;     /* QID_FIT_FREE_* mask (default QID_FIT_FREE_ALL); k must be free */
    qid_fit_law fixed; /* values of the parameters that are not free (default 0, 0, 0, 0) */
    size_t n_boot;     /* bootstrap draws (default 1000) */
    uint64_t seed;     /* bootstrap seed (default 1) */
    double level;      /* confidence level of intervals (default 0.95) */
    int form;          /* QID_FIT_FORM_* of the law fitted (default QID_FIT_FORM_OUYANG); opts->fixed.gamma is
                          the form's gamma slot (Kumar's gamma_post) */
} qid_fit_opts;

/* Fills o with the defaults above. */
void qid_fit_opts_init(qid_fit_opts *o);

/* Convergence report of an iterative fit. */
typedef struct qid_fit_conv {
    int iterations; /* Levenberg-Marquardt iterations taken */
    double step;    /* last relative parameter step |dtheta|/|theta| */
    double grad;    /* last scaled gradient: max_j |cos(residual, column j)| */
    double lambda;  /* last damping */
    int converged;  /* 1: step < xtol or grad < gtol; 0: stopped at max_iter or stalled */
} qid_fit_conv;

/* One fitted law. */
typedef struct qid_fit_result {
    qid_fit_law law;       /* the robust refinement: the answer */
    qid_fit_law start;     /* the log-linear fit on significant points */
    size_t n_points;       /* points given; all of them enter the refinement */
    size_t n_significant;  /* points with qid > z*se and qid > 0 (log-linear start) */
    size_t n_downweighted; /* points with Huber weight < 1 at the solution */
    double scale;          /* residual scale of (qid - law)/se at the solution */
    double r2_log;         /* R^2 of ln qid vs ln law on the significant points */
    double rmse;           /* sqrt(mean (qid - law)^2) over all points, nats */
    qid_fit_conv conv;
} qid_fit_result;

/* Fits the law (free parameters per opts->free, the others from opts->fixed)
 * to obs[0..n). Stage 1: weighted log-linear least squares (weights qid/se)
 * on the significant points; stage 2: robust Levenberg-Marquardt on all
 * points. opts may be NULL (defaults).
 * Errors (res untouched except on success): QID_E_INVALID for a non-finite
 * or non-positive n/d/p/se, a non-finite qid, no significant point, or fewer
 * significant points than free parameters + 1; QID_E_NUMERIC for a singular
 * or rank-deficient design (e.g. every point at one N while alpha is free;
 * the message names the variable that does not vary) or a failed step. A
 * refinement that stops without converging is not an error: see res->conv. */
int qid_fit_law_fit(const qid_fit_obs *obs, size_t n, const qid_fit_opts *opts, qid_fit_result *res, qid_error *err);

/* Stage 2 alone: the robust refinement of `start` on obs[0..n) (the free
 * parameters per opts). res->start is set to `start`, n_significant counted
 * as in qid_fit_law_fit. Errors as qid_fit_law_fit's numeric ones. */
int qid_fit_law_refine(const qid_fit_obs *obs, size_t n, const qid_fit_law *start, const qid_fit_opts *opts,
                       qid_fit_result *res, qid_error *err);

/* QiD the law predicts at (n, d, p), in the law's form (the learning-rate
 * form at r = law->lr). */
double qid_fit_law_eval(const qid_fit_law *law, double n, double d, double p);

/* QiD the law predicts at an observation's N, D, P and learning rate. */
double qid_fit_law_eval_obs(const qid_fit_law *law, const qid_fit_obs *o);

/* Tokens D at which the law reaches `qid` for (n, p):
 *     D = (qid * N^alpha * P^gamma / k)^(1/beta)           (Ouyang)
 *     D = (qid * N^gamma_N * e^(P/gamma_post) / C)^(1/gamma_D)  (Kumar).
 * This is also the training level a checkpoint's measured QiD implies.
 * NaN when qid <= 0, k <= 0 or beta == 0 (no such D), or when the law's
 * form has no such inversion (its tokens_for is NULL). */
double qid_fit_tokens_for(const qid_fit_law *law, double qid, double n, double p);

/* The training level D that one checkpoint's QiD at several bit widths
 * implies together: the D whose law values at (n, p[i]) best match qid[i],
 * i < m, in weighted least squares with weights 1/se[i]^2. With
 * c_i = the law at (n, D = 1, p_i) (k n^-alpha p_i^-gamma for Ouyang's) and
 * u = D^beta the law is c_i u, so
 *     u = sum(c_i qid_i / se_i^2) / sum(c_i^2 / se_i^2),  D = u^(1/beta).
 * se may be NULL (all 1). NaN when m == 0, u <= 0, k <= 0 or beta == 0, or
 * when the form has no training level. */
double qid_fit_training_level(const qid_fit_law *law, const double *qid, const double *se, double n, const double *p,
                              size_t m);

/* ---- bootstrap and validation ----------------------------------------- */

/* Bootstrap of a law fit: draws resample whole checkpoints (obs[].ckpt) with
 * replacement and refit both stages. Owns `draws`; free with
 * qid_fit_boot_free. */
typedef struct qid_fit_boot {
    size_t n_draws;     /* successful draws (stored) */
    size_t n_failed;    /* draws whose fit failed (e.g. one model size drawn) */
    qid_fit_law *draws; /* n_draws fitted laws, in draw order */
    qid_fit_law lo, hi; /* percentile interval of each coefficient at `level` */
    double level;
} qid_fit_boot;

/* Runs opts->n_boot draws with opts->seed (draw b uses stream b, so the
 * result does not depend on anything but obs, opts). Errors: as
 * qid_fit_law_fit on the full data (checked first); QID_E_INVALID when fewer
 * than 2 checkpoints or n_boot < 10; QID_E_NUMERIC when more than half of the
 * draws fail (the message carries the first failure). On error *boot is
 * zeroed and owns nothing. */
int qid_fit_law_bootstrap(const qid_fit_obs *obs, size_t n, const qid_fit_opts *opts, qid_fit_boot *boot,
                          qid_error *err);

/* Frees boot's draws and zeroes it; NULL or zeroed is fine. */
void qid_fit_boot_free(qid_fit_boot *boot);

/* Percentile interval (type 7, linear interpolation) of the law's QiD at the
 * points (n[i], d[i], p[i]), i < m, over the bootstrap draws: lo[i], hi[i].
 * mid[i] (may be NULL) is the median over draws. Needs boot->n_draws >= 2
 * (checked, tier 1). */
void qid_fit_predict_ci(const qid_fit_boot *boot, const double *n, const double *d, const double *p, size_t m,
                        double level, double *mid, double *lo, double *hi);

/* The same for the tokens needed to reach qid[i] at (n[i], p[i]). Draws that
 * give no finite D are ignored; NaN when fewer than 2 remain. */
void qid_fit_tokens_for_ci(const qid_fit_boot *boot, const double *qid, const double *n, const double *p, size_t m,
                           double level, double *mid, double *lo, double *hi);

/* Leave-one-model-size-out: one row per distinct obs[].group. */
typedef struct qid_fit_lomo_row {
    int group;           /* the held-out group id */
    double n;            /* geometric mean N of the group */
    size_t n_points;     /* held-out points */
    int status;          /* QID_OK, or the code of the fit without the group */
    double rmse;         /* sqrt(mean (qid - predicted)^2) on the held-out points */
    double mean_abs_log; /* mean |ln(predicted/qid)| on held-out significant points; NaN if none */
} qid_fit_lomo_row;

typedef struct qid_fit_lomo {
    size_t n_groups;
    qid_fit_lomo_row *rows; /* n_groups, by ascending group id */
    double rmse;            /* pooled over every held-out point of the groups with status QID_OK */
    size_t n_failed;        /* groups whose fit failed */
} qid_fit_lomo;

/* Refits without each group and predicts it. Errors: QID_E_INVALID when fewer
 * than 2 groups; the per-group fit failures are recorded in rows, not
 * returned. Free with qid_fit_lomo_free. */
int qid_fit_law_lomo(const qid_fit_obs *obs, size_t n, const qid_fit_opts *opts, qid_fit_lomo *out, qid_error *err);
void qid_fit_lomo_free(qid_fit_lomo *lomo);

/* ---- per-bit-width and per-factor laws -------------------------------- */

/* How qid_fit_groups partitions the points and what it fits in each part. */
enum qid_fit_by {
    QID_FIT_BY_BITS = 0,     /* each P: QiD = k_P D^beta / N^alpha (gamma fixed 0) */
    QID_FIT_BY_FACTOR_D = 1, /* each (N, P): QiD = c D^beta */
    QID_FIT_BY_FACTOR_N = 2, /* each (D, P): QiD = c / N^alpha */
    QID_FIT_BY_FACTOR_P = 3, /* each (N, D): QiD = c / P^gamma */
};

typedef struct qid_fit_group {
    double n, d, p; /* the group's constant values; NaN for the ones that vary */
    size_t n_points;
    int status;         /* QID_OK, or why this group has no fit */
    char msg[256];      /* the error message when status != QID_OK */
    qid_fit_result fit; /* valid when status == QID_OK; fit.law.k is k_P or c */
} qid_fit_group;

/* Partitions obs by `by` (values equal within a relative 1e-9) and fits each
 * part with the free parameters above (opts->free and opts->fixed are
 * ignored; the rest of opts applies). A part too small or degenerate to fit
 * gets a status, not a failure of the call. *out (free with free()) holds
 * *n_out groups sorted by their constant values. Errors: QID_E_INVALID for
 * invalid observations or n == 0. */
int qid_fit_groups(const qid_fit_obs *obs, size_t n, enum qid_fit_by by, const qid_fit_opts *opts, qid_fit_group **out,
                   size_t *n_out, qid_error *err);

/* The fitted exponent of a group (beta, alpha or gamma per `by`; for
 * QID_FIT_BY_BITS, beta). */
double qid_fit_group_exponent(const qid_fit_group *g, enum qid_fit_by by);

/* Median and count of the exponents of the groups with status QID_OK and at
 * least min_points points; NaN when none. */
double qid_fit_groups_median(const qid_fit_group *g, size_t n_groups, enum qid_fit_by by, size_t min_points,
                             size_t *n_used);

/* ---- the 16-bit loss law ---------------------------------------------- */

/* L(N, D) = [(nc/N)^(an/ad) + dc/D]^ad (Kaplan et al. form). */
typedef struct qid_fit_loss16 {
    double nc, dc, an, ad;
} qid_fit_loss16;

/* The law Ouyang et al. used: nc 4.74e19, dc 7.63e10, an 0.045, ad 0.399. */
extern const qid_fit_loss16 QID_FIT_LOSS16_OUYANG;

double qid_fit_loss16_eval(const qid_fit_loss16 *law, double n, double d);

typedef struct qid_fit_loss16_result {
    qid_fit_loss16 law;   /* the fit */
    qid_fit_loss16 start; /* the initialisation (grid over an/ad, linear solve for the rest) */
    size_t n_points;
    double rmse_log; /* sqrt(mean (ln L - ln law)^2) */
    double r2_log;
    qid_fit_conv conv;
} qid_fit_loss16_result;

/* Fits the law to loss[i] at (n[i], d[i]), i < m, by Levenberg-Marquardt on
 * ln L over the parameters (ln nc, ln dc, ln an, ln ad), Huber-robust per
 * opts (NULL: defaults). The start is the best point of a grid over (ad,
 * an/ad) where L^(1/ad) = A N^-(an/ad) + dc/D is solved for A, dc by linear
 * least squares. Errors: QID_E_INVALID for fewer than 5 points, a
 * non-positive or non-finite value, or fewer than 2 distinct N or D;
 * QID_E_NUMERIC when no grid point gives A, dc > 0 or a step fails. */
int qid_fit_loss16_fit(const double *n, const double *d, const double *loss, size_t m, const qid_fit_opts *opts,
                       qid_fit_loss16_result *res, qid_error *err);

/* ---- the Xu et al. predictor: regression trees, forest, linear -------- */

/* Feature matrices are row-major x[n_rows][n_feat]; targets y[n_rows]. */

typedef struct qid_fit_forest_opts {
    size_t n_trees;   /* default 200 */
    size_t min_leaf;  /* fewest rows in a leaf (default 2) */
    size_t max_depth; /* default 32 */
    size_t mtry;      /* features tried per split; 0 = max(1, n_feat / 3) (default 0) */
    int bootstrap;    /* 1: each tree on a bootstrap sample (default); 0: on all rows */
    uint64_t seed;    /* default 1; tree t uses stream t */
} qid_fit_forest_opts;

void qid_fit_forest_opts_init(qid_fit_forest_opts *o);

typedef struct qid_fit_forest qid_fit_forest; /* opaque */

/* Trains a random forest of CART regression trees (squared-error splits at
 * midpoints between distinct values). Deterministic for a seed, whatever the
 * number of OpenMP threads. Errors: QID_E_INVALID for n_rows < 2, n_feat == 0,
 * a non-finite value, or min_leaf == 0. */
int qid_fit_forest_train(const double *x, const double *y, size_t n_rows, size_t n_feat,
                         const qid_fit_forest_opts *opts, qid_fit_forest **out, qid_error *err);
/* Mean of the trees' predictions for one row x[n_feat]. */
double qid_fit_forest_predict(const qid_fit_forest *forest, const double *x);
/* Impurity-decrease importances, n_feat values summing to 1 (all 0 when no
 * tree split). Owned by the forest. */
const double *qid_fit_forest_importance(const qid_fit_forest *forest);
size_t qid_fit_forest_n_nodes(const qid_fit_forest *forest);
void qid_fit_forest_free(qid_fit_forest *forest);

/* Linear baseline y = c0 + sum_j c[j+1] x[j] by least squares (LAPACKE
 * dgelsd on standardized columns; a column that does not vary gets 0).
 * coef has n_feat + 1 entries, intercept first, in the original units. */
typedef struct qid_fit_linear {
    size_t n_feat;
    double *coef;
    int rank; /* numerical rank of the standardized design with intercept */
} qid_fit_linear;

int qid_fit_linear_train(const double *x, const double *y, size_t n_rows, size_t n_feat, qid_fit_linear *out,
                         qid_error *err);
double qid_fit_linear_predict(const qid_fit_linear *model, const double *x);
void qid_fit_linear_free(qid_fit_linear *model);

/* Leave-one-group-out (one model family held out at a time) validation of
 * the forest, the linear baseline and the training-mean predictor. */
typedef struct qid_fit_logo_row {
    int group;
    size_t n_points;
    double rmse_forest, rmse_linear, rmse_mean;
} qid_fit_logo_row;

typedef struct qid_fit_logo {
    size_t n_groups;
    qid_fit_logo_row *rows;                     /* by ascending group id */
    double rmse_forest, rmse_linear, rmse_mean; /* pooled over all held-out rows */
    double *importance;                         /* n_feat: forest importances on all rows */
    size_t n_feat;
    size_t n_rows;
    double *pred_forest; /* n_rows: each row predicted by the forest trained without its group */
    double *pred_linear; /* n_rows: ... by the linear baseline trained without its group */
    double *fit_forest;  /* n_rows: in-sample prediction of the forest trained on all rows */
} qid_fit_logo;

/* Trains the forest and the linear baseline once per group g on the rows of
 * the other groups and predicts the rows of g (pred_forest, pred_linear; the
 * mean predictor is the training rows' mean), then the forest on all rows
 * (importance, fit_forest). Errors: QID_E_INVALID when fewer than 2 groups,
 * or as the trainers. On error *out is zeroed and owns nothing. */
int qid_fit_predictor_logo(const double *x, const double *y, const int *group, size_t n_rows, size_t n_feat,
                           const qid_fit_forest_opts *opts, qid_fit_logo *out, qid_error *err);
void qid_fit_logo_free(qid_fit_logo *logo);

/* ---- Pareto frontier -------------------------------------------------- */

/* A deployable candidate: a model quantized to some bits per weight. */
typedef struct qid_fit_candidate {
    double params; /* parameters stored at `bits` */
    double bits;   /* storage bits per weight, scales included */
    double loss;   /* predicted (post-quantization) loss */
} qid_fit_candidate;

/* Memory of a candidate in bytes: params * bits / 8. */
double qid_fit_candidate_bytes(const qid_fit_candidate *c);

/* The non-dominated candidates within budget_bytes (<= 0 or INFINITY: no
 * budget): c[i] is kept when it fits the budget and no other fitting
 * candidate has memory <= and loss <= with one of them strictly less (exact
 * duplicates: the lowest index is kept). Writes their indices to idx (room
 * for n) by ascending memory (then loss), returns the count. The last one is
 * the lowest loss within the budget. Candidates with a non-finite field are
 * skipped. */
size_t qid_fit_pareto(const qid_fit_candidate *c, size_t n, double budget_bytes, size_t *idx);

/* ---- notes and warnings ------------------------------------------------ */

/* Appends a printf-formatted item to the "; "-separated list in buf[cap]
 * (cut short when full): how the fits collect warnings and notes for the
 * commands to print. */
void qid_fit_list_add(char *buf, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* The same, counting the item in *count: a warning of a report. */
void qid_fit_warn_add(char *buf, size_t cap, size_t *count, const char *fmt, ...) __attribute__((format(printf, 4, 5)));

#endif
