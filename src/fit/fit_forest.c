/* fit_forest.c - the post-quantization loss predictor of Xu et al. (2024):
 * CART regression trees grown into a random forest (bootstrap rows, a random
 * subset of features tried at each split, a minimum leaf size), a linear
 * least-squares baseline through LAPACKE, and leave-one-group-out (one model
 * family held out) validation of both against the training-mean predictor.
 *
 * Trees split on squared error at midpoints between distinct feature values;
 * importances are the impurity (squared-error) decrease per feature,
 * normalised per tree and averaged. Tree t draws from stream t of the seed,
 * so a forest is the same whatever the number of OpenMP threads.
 *
 * Does not: encode features (the caller turns data type, method, block size
 * ... into numbers), handle missing values (NaN is rejected), or do
 * classification.
 */
#include "fit.h"

#include <lapacke.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fit_internal.h"

typedef struct tree_node {
    int feat;   /* -1: leaf */
    double thr; /* rows with x[feat] <= thr go left */
    size_t left, right;
    double value; /* mean target of the node's rows */
} tree_node;

typedef struct tree {
    tree_node *nodes;
    size_t n_nodes, cap;
} tree;

struct qid_fit_forest {
    size_t n_feat, n_trees, n_nodes;
    tree *trees;
    double *importance; /* n_feat */
};

void qid_fit_forest_opts_init(qid_fit_forest_opts *o)
{
    o->n_trees = 200;
    o->min_leaf = 2;
    o->max_depth = 32;
    o->mtry = 0;
    o->bootstrap = 1;
    o->seed = 1;
}

static int check_xy(const double *x, const double *y, size_t n_rows, size_t n_feat, const char *what, qid_error *err)
{
    if (n_rows < 2 || n_feat == 0)
        return qid_error_set(err, QID_E_INVALID, "%s: need at least 2 rows and 1 feature (got %zu x %zu)", what, n_rows,
                             n_feat);
    for (size_t i = 0; i < n_rows; i++) {
        if (!isfinite(y[i])) return qid_error_set(err, QID_E_INVALID, "%s: target of row %zu is not finite", what, i);
        for (size_t j = 0; j < n_feat; j++)
            if (!isfinite(x[i * n_feat + j]))
                return qid_error_set(err, QID_E_INVALID, "%s: feature %zu of row %zu is not finite", what, j, i);
    }
    return QID_OK;
}

/* ---- one tree ----------------------------------------------------------- */

typedef struct xy_pair {
    double x, y;
} xy_pair;

/* In-place heap sort by x (no allocation, deterministic). */
static void sift_down(xy_pair *a, size_t root, size_t n)
{
    for (;;) {
        size_t c = 2 * root + 1;
        if (c >= n) return;
        if (c + 1 < n && a[c + 1].x > a[c].x) c++;
        if (!(a[c].x > a[root].x)) return;
        xy_pair t = a[c];
        a[c] = a[root];
        a[root] = t;
        root = c;
    }
}

static void sort_pairs(xy_pair *a, size_t n)
{
    if (n < 2) return;
    for (size_t i = n / 2; i-- > 0;)
        sift_down(a, i, n);
    for (size_t end = n - 1; end > 0; end--) {
        xy_pair t = a[0];
        a[0] = a[end];
        a[end] = t;
        sift_down(a, 0, end);
    }
}

typedef struct build_task {
    size_t start, end, depth, node;
} build_task;

/* Scratch of one tree build, allocated once per tree. */
typedef struct tree_scratch {
    size_t *idx;       /* n rows of the sample */
    xy_pair *pairs;    /* n */
    size_t *perm;      /* n_feat */
    build_task *stack; /* n + 1 */
} tree_scratch;

static size_t add_node(tree *t)
{
    if (t->n_nodes == t->cap) {
        t->cap = t->cap ? 2 * t->cap : 64;
        t->nodes = qid_realloc(t->nodes, qid_mul_size(t->cap, sizeof *t->nodes), "fit: tree nodes");
    }
    t->nodes[t->n_nodes] = (tree_node){.feat = -1};
    return t->n_nodes++;
}

typedef struct split {
    int feat;
    double thr, gain;
} split;

/* Best split of the rows idx[0..nn) on feature j: the midpoint that
 * maximises sL^2/nL + sR^2/nR (equivalently minimises the children's squared
 * error). Returns 0 when the feature is constant on these rows. */
static int best_split_on(const double *restrict x, const double *restrict y, size_t n_feat, const size_t *idx,
                         size_t nn, size_t j, size_t min_leaf, double sum, xy_pair *restrict pairs, split *best)
{
    for (size_t k = 0; k < nn; k++)
        pairs[k] = (xy_pair){x[idx[k] * n_feat + j], y[idx[k]]};
    sort_pairs(pairs, nn);
    if (pairs[0].x == pairs[nn - 1].x) return 0;
    double sl = 0, base = sum * sum / (double)nn;
    for (size_t k = 1; k < nn; k++) {
        sl += pairs[k - 1].y;
        if (k < min_leaf || nn - k < min_leaf || pairs[k - 1].x == pairs[k].x) continue;
        double sr = sum - sl;
        double gain = sl * sl / (double)k + sr * sr / (double)(nn - k) - base;
        if (gain > best->gain) {
            double lo = pairs[k - 1].x, hi = pairs[k].x;
            double thr = lo + 0.5 * (hi - lo);
            if (!(thr < hi)) thr = lo;
            *best = (split){(int)j, thr, gain};
        }
    }
    return 1;
}

static void build_tree(const double *x, const double *y, size_t n_rows, size_t n_feat, const qid_fit_forest_opts *o,
                       size_t mtry, uint64_t stream, tree *t, double *imp, tree_scratch *s)
{
    qid_rng rng;
    qid_rng_seed(&rng, o->seed, stream);
    for (size_t i = 0; i < n_rows; i++)
        s->idx[i] = o->bootstrap ? (size_t)qid_rng_below(&rng, n_rows) : i;
    for (size_t j = 0; j < n_feat; j++)
        imp[j] = 0;
    memset(t, 0, sizeof *t);
    size_t sp = 0;
    s->stack[sp++] = (build_task){0, n_rows, 0, add_node(t)};
    while (sp) {
        build_task task = s->stack[--sp];
        size_t nn = task.end - task.start;
        const size_t *idx = s->idx + task.start;
        double sum = 0, sumsq = 0;
        for (size_t k = 0; k < nn; k++) {
            sum += y[idx[k]];
            sumsq += y[idx[k]] * y[idx[k]];
        }
        double mean = sum / (double)nn;
        t->nodes[task.node].value = mean;
        double sse = sumsq - sum * mean;
        if (nn < 2 * o->min_leaf || task.depth >= o->max_depth || !(sse > 1e-12 * fabs(sumsq))) continue;
        /* Features in a fresh random order; stop after mtry non-constant ones. */
        for (size_t j = 0; j < n_feat; j++)
            s->perm[j] = j;
        split best = {-1, 0, 0};
        size_t tried = 0;
        for (size_t k = 0; k < n_feat && tried < mtry; k++) {
            size_t r = k + (size_t)qid_rng_below(&rng, n_feat - k);
            size_t f = s->perm[r];
            s->perm[r] = s->perm[k];
            s->perm[k] = f;
            tried += (size_t)best_split_on(x, y, n_feat, idx, nn, f, o->min_leaf, sum, s->pairs, &best);
        }
        if (best.feat < 0 || !(best.gain > 1e-12 * fabs(sumsq))) continue;
        /* Partition the node's rows: x <= thr first. */
        size_t *a = s->idx + task.start, lo = 0, hi = nn;
        while (lo < hi) {
            if (x[a[lo] * n_feat + (size_t)best.feat] <= best.thr) {
                lo++;
            } else {
                size_t tmp = a[lo];
                a[lo] = a[--hi];
                a[hi] = tmp;
            }
        }
        imp[best.feat] += best.gain;
        size_t l = add_node(t), rr = add_node(t);
        t->nodes[task.node].feat = best.feat;
        t->nodes[task.node].thr = best.thr;
        t->nodes[task.node].left = l;
        t->nodes[task.node].right = rr;
        s->stack[sp++] = (build_task){task.start + lo, task.end, task.depth + 1, rr};
        s->stack[sp++] = (build_task){task.start, task.start + lo, task.depth + 1, l};
    }
}

static double tree_predict(const tree *t, const double *x)
{
    size_t k = 0;
    while (t->nodes[k].feat >= 0)
        k = x[t->nodes[k].feat] <= t->nodes[k].thr ? t->nodes[k].left : t->nodes[k].right;
    return t->nodes[k].value;
}

/* ---- the forest ------------------------------------------------------------ */

int qid_fit_forest_train(const double *x, const double *y, size_t n_rows, size_t n_feat,
                         const qid_fit_forest_opts *opts, qid_fit_forest **out, qid_error *err)
{
    *out = NULL;
    qid_fit_forest_opts o;
    if (opts)
        o = *opts;
    else
        qid_fit_forest_opts_init(&o);
    int rc = check_xy(x, y, n_rows, n_feat, "random forest", err);
    if (rc) return rc;
    if (o.min_leaf == 0 || o.n_trees == 0)
        return qid_error_set(err, QID_E_INVALID, "random forest: need min_leaf >= 1 and n_trees >= 1");
    size_t mtry = o.mtry ? o.mtry : (n_feat / 3 ? n_feat / 3 : 1);
    if (mtry > n_feat) mtry = n_feat;
    qid_fit_forest *fr = qid_calloc(1, sizeof *fr, "fit: forest");
    fr->n_feat = n_feat;
    fr->n_trees = o.n_trees;
    fr->trees = qid_calloc(o.n_trees, sizeof *fr->trees, "fit: trees");
    fr->importance = qid_calloc(n_feat, sizeof *fr->importance, "fit: importances");
    double *imp = qid_calloc(qid_mul_size(o.n_trees, n_feat), sizeof *imp, "fit: per-tree importances");
    long nt = (long)o.n_trees;
#pragma omp parallel
    {
        tree_scratch s;
        s.idx = qid_malloc(qid_mul_size(n_rows, sizeof *s.idx), "fit: tree rows");
        s.pairs = qid_malloc(qid_mul_size(n_rows, sizeof *s.pairs), "fit: tree split scan");
        s.perm = qid_malloc(qid_mul_size(n_feat, sizeof *s.perm), "fit: tree features");
        s.stack = qid_malloc(qid_mul_size(n_rows + 1, sizeof *s.stack), "fit: tree stack");
#pragma omp for schedule(dynamic, 1)
        for (long t = 0; t < nt; t++)
            build_tree(x, y, n_rows, n_feat, &o, mtry, (uint64_t)t, &fr->trees[t], imp + (size_t)t * n_feat, &s);
        free(s.idx);
        free(s.pairs);
        free(s.perm);
        free(s.stack);
    }
    /* Sums in tree order: the same numbers whatever the thread count. */
    for (size_t t = 0; t < o.n_trees; t++) {
        fr->n_nodes += fr->trees[t].n_nodes;
        double tot = 0;
        for (size_t j = 0; j < n_feat; j++)
            tot += imp[t * n_feat + j];
        if (tot > 0)
            for (size_t j = 0; j < n_feat; j++)
                fr->importance[j] += imp[t * n_feat + j] / tot;
    }
    double tot = 0;
    for (size_t j = 0; j < n_feat; j++)
        tot += fr->importance[j];
    for (size_t j = 0; j < n_feat; j++)
        fr->importance[j] = tot > 0 ? fr->importance[j] / tot : 0.0;
    free(imp);
    *out = fr;
    return QID_OK;
}

double qid_fit_forest_predict(const qid_fit_forest *forest, const double *x)
{
    double s = 0;
    for (size_t t = 0; t < forest->n_trees; t++)
        s += tree_predict(&forest->trees[t], x);
    return s / (double)forest->n_trees;
}

const double *qid_fit_forest_importance(const qid_fit_forest *forest) { return forest->importance; }

size_t qid_fit_forest_n_nodes(const qid_fit_forest *forest) { return forest->n_nodes; }

void qid_fit_forest_free(qid_fit_forest *forest)
{
    if (!forest) return;
    for (size_t t = 0; t < forest->n_trees; t++)
        free(forest->trees[t].nodes);
    free(forest->trees);
    free(forest->importance);
    free(forest);
}

/* ---- linear baseline ------------------------------------------------------- */

int qid_fit_linear_train(const double *x, const double *y, size_t n_rows, size_t n_feat, qid_fit_linear *out,
                         qid_error *err)
{
    memset(out, 0, sizeof *out);
    int rc = check_xy(x, y, n_rows, n_feat, "linear baseline", err);
    if (rc) return rc;
    size_t p = n_feat + 1, rows_b = n_rows > p ? n_rows : p;
    double *mean = qid_calloc(n_feat, sizeof *mean, "fit: linear means");
    double *sd = qid_calloc(n_feat, sizeof *sd, "fit: linear scales");
    double *a = qid_calloc(qid_mul_size(n_rows, p), sizeof *a, "fit: linear design");
    double *b = qid_calloc(rows_b, sizeof *b, "fit: linear targets");
    double *sv = qid_calloc(p, sizeof *sv, "fit: singular values");
    for (size_t j = 0; j < n_feat; j++) {
        for (size_t i = 0; i < n_rows; i++)
            mean[j] += x[i * n_feat + j];
        mean[j] /= (double)n_rows;
        for (size_t i = 0; i < n_rows; i++)
            sd[j] += (x[i * n_feat + j] - mean[j]) * (x[i * n_feat + j] - mean[j]);
        sd[j] = sqrt(sd[j] / (double)n_rows);
    }
    for (size_t i = 0; i < n_rows; i++) {
        a[i * p] = 1.0;
        for (size_t j = 0; j < n_feat; j++)
            a[i * p + 1 + j] = sd[j] > 0 ? (x[i * n_feat + j] - mean[j]) / sd[j] : 0.0;
        b[i] = y[i];
    }
    lapack_int info = 0, rank = 0;
    QID_LAPACKE_TRY(err, info,
                    LAPACKE_dgelsd(LAPACK_ROW_MAJOR, (lapack_int)n_rows, (lapack_int)p, 1, a, (lapack_int)p, b, 1, sv,
                                   1e-10, &rank),
                    "linear baseline on %zu rows x %zu features: the SVD did not converge", n_rows, n_feat);
    out->n_feat = n_feat;
    out->rank = (int)rank;
    out->coef = qid_malloc(qid_mul_size(p, sizeof *out->coef), "fit: linear coefficients");
    out->coef[0] = b[0];
    for (size_t j = 0; j < n_feat; j++) {
        double c = sd[j] > 0 ? b[1 + j] / sd[j] : 0.0;
        out->coef[1 + j] = c;
        out->coef[0] -= c * mean[j];
    }
    rc = QID_OK;
    goto out;
fail:
    rc = err ? err->code : QID_E_NUMERIC;
out:
    free(mean);
    free(sd);
    free(a);
    free(b);
    free(sv);
    return rc;
}

double qid_fit_linear_predict(const qid_fit_linear *model, const double *x)
{
    double s = model->coef[0];
    for (size_t j = 0; j < model->n_feat; j++)
        s += model->coef[1 + j] * x[j];
    return s;
}

void qid_fit_linear_free(qid_fit_linear *model)
{
    if (!model) return;
    free(model->coef);
    memset(model, 0, sizeof *model);
}

/* ---- leave one group out ---------------------------------------------------- */

static int cmp_int(const void *pa, const void *pb)
{
    int a = *(const int *)pa, b = *(const int *)pb;
    return (a > b) - (a < b);
}

void qid_fit_logo_free(qid_fit_logo *logo)
{
    if (!logo) return;
    free(logo->rows);
    free(logo->importance);
    free(logo->pred_forest);
    free(logo->pred_linear);
    free(logo->fit_forest);
    memset(logo, 0, sizeof *logo);
}

int qid_fit_predictor_logo(const double *x, const double *y, const int *group, size_t n_rows, size_t n_feat,
                           const qid_fit_forest_opts *opts, qid_fit_logo *out, qid_error *err)
{
    memset(out, 0, sizeof *out);
    int rc = check_xy(x, y, n_rows, n_feat, "leave-one-group-out", err);
    if (rc) return rc;
    int *ids = qid_malloc(qid_mul_size(n_rows, sizeof *ids), "fit: group ids");
    memcpy(ids, group, n_rows * sizeof *ids);
    qsort(ids, n_rows, sizeof *ids, cmp_int);
    size_t n_g = 0;
    for (size_t i = 0; i < n_rows; i++)
        if (i == 0 || ids[i] != ids[i - 1]) ids[n_g++] = ids[i];
    if (n_g < 2) {
        free(ids);
        return qid_error_set(err, QID_E_INVALID, "leave-one-group-out: need at least 2 groups (got %zu)", n_g);
    }
    double *xt = qid_malloc(qid_mul_size(qid_mul_size(n_rows, n_feat), sizeof *xt), "fit: training rows");
    double *yt = qid_malloc(qid_mul_size(n_rows, sizeof *yt), "fit: training targets");
    out->rows = qid_calloc(n_g, sizeof *out->rows, "fit: leave-one-group-out rows");
    out->n_groups = n_g;
    out->n_rows = n_rows;
    out->pred_forest = qid_malloc(qid_mul_size(n_rows, sizeof *out->pred_forest), "fit: held-out predictions");
    out->pred_linear = qid_malloc(qid_mul_size(n_rows, sizeof *out->pred_linear), "fit: held-out predictions");
    out->fit_forest = qid_malloc(qid_mul_size(n_rows, sizeof *out->fit_forest), "fit: in-sample predictions");
    double ssf = 0, ssl = 0, ssm = 0;
    size_t n_held = 0;
    for (size_t g = 0; g < n_g; g++) {
        qid_fit_logo_row *row = &out->rows[g];
        row->group = ids[g];
        size_t m = 0;
        for (size_t i = 0; i < n_rows; i++) {
            if (group[i] == ids[g]) continue;
            memcpy(xt + m * n_feat, x + i * n_feat, n_feat * sizeof *xt);
            yt[m++] = y[i];
        }
        qid_fit_forest *fr = NULL;
        qid_fit_linear lin;
        rc = qid_fit_forest_train(xt, yt, m, n_feat, opts, &fr, err);
        if (!rc) rc = qid_fit_linear_train(xt, yt, m, n_feat, &lin, err);
        if (rc) {
            qid_fit_forest_free(fr);
            qid_error_wrap(err, rc, "leave-one-group-out: training without group %d", ids[g]);
            goto fail;
        }
        double mean = 0;
        for (size_t i = 0; i < m; i++)
            mean += yt[i];
        mean /= (double)m;
        double sf = 0, sl = 0, sm = 0;
        for (size_t i = 0; i < n_rows; i++) {
            if (group[i] != ids[g]) continue;
            out->pred_forest[i] = qid_fit_forest_predict(fr, x + i * n_feat);
            out->pred_linear[i] = qid_fit_linear_predict(&lin, x + i * n_feat);
            double ef = out->pred_forest[i] - y[i];
            double el = out->pred_linear[i] - y[i];
            double em = mean - y[i];
            sf += ef * ef;
            sl += el * el;
            sm += em * em;
            row->n_points++;
        }
        qid_fit_forest_free(fr);
        qid_fit_linear_free(&lin);
        row->rmse_forest = sqrt(sf / (double)row->n_points);
        row->rmse_linear = sqrt(sl / (double)row->n_points);
        row->rmse_mean = sqrt(sm / (double)row->n_points);
        ssf += sf;
        ssl += sl;
        ssm += sm;
        n_held += row->n_points;
    }
    out->rmse_forest = sqrt(ssf / (double)n_held);
    out->rmse_linear = sqrt(ssl / (double)n_held);
    out->rmse_mean = sqrt(ssm / (double)n_held);
    {
        qid_fit_forest *fr = NULL;
        rc = qid_fit_forest_train(x, y, n_rows, n_feat, opts, &fr, err);
        if (rc) goto fail;
        out->n_feat = n_feat;
        out->importance = qid_malloc(qid_mul_size(n_feat, sizeof *out->importance), "fit: importances");
        memcpy(out->importance, qid_fit_forest_importance(fr), n_feat * sizeof *out->importance);
        for (size_t i = 0; i < n_rows; i++)
            out->fit_forest[i] = qid_fit_forest_predict(fr, x + i * n_feat);
        qid_fit_forest_free(fr);
    }
    free(ids);
    free(xt);
    free(yt);
    return QID_OK;
fail:
    free(ids);
    free(xt);
    free(yt);
    qid_fit_logo_free(out);
    return rc;
}
