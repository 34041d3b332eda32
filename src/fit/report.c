/* report.c - `qid report`: summary, tables, gnuplot script and plots of a
 * results store's unified law, its Xu et al. predictor and its Pareto
 * frontier (report.h). */
#include "report.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fit.h"
#include "fit_cmd.h"
#include "fit_predictor.h"
#include "fsutil.h"
#include "h5io.h"
#include "results.h"

/* The prediction grid of predictions.csv and plot 4. */
static const double pred_n[] = {7e9, 70e9, 405e9};
static const char *const pred_n_label[] = {"7B", "70B", "405B"};
static const double pred_p[] = {2, 3, 4};
static const double pred_d = 1e14;
#define N_PRED_N 3
#define N_PRED_P 3

/* The law a report shows, wherever it came from. */
typedef struct report_fit {
    int have;   /* 1: law (and the statistics below) are valid */
    int stored; /* 1: read from /fits/<name>; 0: fitted in memory */
    qid_fit_law law;
    qid_fit_boot boot; /* draws (owned); n_draws 0 when none */
    double level;
    double r2_log, rmse;
    double n_points;         /* points the fit used */
    double converged;        /* 1/0; NaN unknown */
    double iterations;       /* NaN unknown */
    char msg[QID_ERROR_MAX]; /* why there is no law (have == 0) */
} report_fit;

void qid_report_opts_init(qid_report_opts *o)
{
    *o = (qid_report_opts){.fit_name = "default", .predictor_name = "predictor", .n_boot = 200, .gnuplot = "gnuplot"};
}

/* Sorted distinct values of v[0..n) (equal within a relative 1e-9) into
 * out (capacity n); returns the count. */
static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static size_t distinct(const double *v, size_t n, double *out)
{
    memcpy(out, v, n * sizeof *v);
    qsort(out, n, sizeof *out, cmp_double);
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (m == 0 || fabs(out[i] - out[m - 1]) > 1e-9 * fabs(out[m - 1])) out[m++] = out[i];
    return m;
}

static size_t index_of(const double *u, size_t m, double x)
{
    for (size_t i = 0; i < m; i++)
        if (fabs(x - u[i]) <= 1e-9 * fabs(u[i])) return i;
    return m;
}

/* Percentile (type 7) of sorted v[0..n). */
static double quantile(const double *v, size_t n, double q)
{
    if (n == 0) return NAN;
    double h = (double)(n - 1) * q;
    size_t lo = (size_t)floor(h);
    size_t hi = lo + 1 < n ? lo + 1 : lo;
    return v[lo] + (h - (double)lo) * (v[hi] - v[lo]);
}

/* Reads the statistics of /fits/<name> (r2_log, rmse, n_points, converged,
 * iterations); a missing attribute leaves NaN. */
static void read_fit_stats(const char *store, const char *name, report_fit *rf)
{
    hid_t fid = H5I_INVALID_HID, g = H5I_INVALID_HID;
    char where[300];
    static const char *const names[] = {"r2_log", "rmse", "n_points", "converged", "iterations"};
    double *dst[] = {&rf->r2_log, &rf->rmse, &rf->n_points, &rf->converged, &rf->iterations};
    for (int j = 0; j < 5; j++)
        *dst[j] = NAN;
    snprintf(where, sizeof where, "/fits/%s", name);
    H5E_BEGIN_TRY
    {
        fid = H5Fopen(store, H5F_ACC_RDONLY | H5F_ACC_SWMR_READ, H5P_DEFAULT);
        if (fid < 0) fid = H5Fopen(store, H5F_ACC_RDONLY, H5P_DEFAULT);
        if (fid >= 0) g = H5Gopen2(fid, where, H5P_DEFAULT);
    }
    H5E_END_TRY;
    if (g >= 0)
        for (int j = 0; j < 5; j++) {
            qid_error e;
            qid_error_clear(&e);
            if (qid_h5_attr_exists(g, names[j]) > 0 && qid_h5_attr_read_f64(g, where, names[j], dst[j], &e))
                *dst[j] = NAN;
        }
    if (g >= 0) H5Gclose(g);
    if (fid >= 0) H5Fclose(fid);
}

/* The stored fit, or one made in memory when the store has none. */
static int get_fit(const char *store, const qid_fit_obs *obs, size_t n_obs, const qid_report_opts *o, FILE *log,
                   report_fit *rf, qid_error *err)
{
    memset(rf, 0, sizeof *rf);
    qid_fit_law *draws = NULL;
    size_t n_draws = 0;
    qid_error e;
    qid_error_clear(&e);
    int st = qid_fit_cmd_read(store, o->fit_name, &rf->law, &draws, &n_draws, &rf->level, &e);
    if (st == QID_OK) {
        rf->have = rf->stored = 1;
        rf->boot.draws = draws;
        rf->boot.n_draws = n_draws;
        rf->boot.level = rf->level;
        read_fit_stats(store, o->fit_name, rf);
        return QID_OK;
    }
    if (st != QID_E_INVALID || !strstr(e.msg, "has no fit")) {
        *err = e;
        return st;
    }
    if (log)
        fprintf(log, "note: '%s' has no /fits/%s; fitting the unified law in memory (%zu bootstrap draws)\n", store,
                o->fit_name, o->n_boot);
    qid_fit_cmd_opts fo;
    qid_fit_cmd_opts_init(&fo);
    fo.n_boot = o->n_boot;
    qid_fit_cmd_report rep;
    qid_error_clear(&e);
    if (qid_fit_cmd_fit(obs, n_obs, NULL, NULL, NULL, 0, &fo, &rep, &e) != QID_OK) {
        snprintf(rf->msg, sizeof rf->msg, "%s", e.msg);
        rf->n_points = (double)n_obs;
        qid_fit_cmd_report_free(&rep);
        return QID_OK;
    }
    rf->have = 1;
    rf->law = rep.law.law;
    rf->r2_log = rep.law.r2_log;
    rf->rmse = rep.law.rmse;
    rf->n_points = (double)rep.law.n_points;
    rf->converged = rep.law.conv.converged;
    rf->iterations = rep.law.conv.iterations;
    rf->boot = rep.boot; /* take the draws */
    rf->level = rep.boot.n_draws ? rep.boot.level : 0.95;
    memset(&rep.boot, 0, sizeof rep.boot);
    qid_fit_cmd_report_free(&rep);
    return QID_OK;
}

static FILE *open_out(const char *dir, const char *name, qid_error *err)
{
    char *path = qid_path_join(dir, name);
    FILE *f = fopen(path, "w");
    if (!f) qid_error_set(err, QID_E_IO, "cannot write '%s': %s", path, strerror(errno));
    free(path);
    return f;
}

static int close_out(FILE *f, const char *dir, const char *name, qid_error *err)
{
    if (ferror(f) | (fclose(f) != 0))
        return qid_error_set(err, QID_E_IO, "cannot write '%s/%s': %s", dir, name, strerror(errno));
    return QID_OK;
}

/* summary.txt */
static void write_summary(FILE *f, const char *store, const qid_report_opts *o, const report_fit *rf, size_t n_obs,
                          size_t n_n, size_t n_p, size_t n_d, size_t n_nonpos)
{
    fprintf(f, "qid report of %s\n\n", store);
    if (rf->stored)
        fprintf(f, "fit: /fits/%s (stored by 'qid fit')\n", o->fit_name);
    else
        fprintf(f, "fit: made in memory (the store has no /fits/%s; 'qid fit %s' stores one)\n", o->fit_name, store);
    fprintf(f, "law: QiD = k * D^beta / (N^alpha * P^gamma)\n\n");
    if (rf->have) {
        double lv = rf->level > 0 ? rf->level : 0.95;
        if (rf->boot.n_draws >= 2)
            fprintf(f, "%-10s %12s   %.0f%% interval (bootstrap by checkpoint, %zu draws)\n", "", "value", 100 * lv,
                    rf->boot.n_draws);
        else
            fprintf(f, "%-10s %12s   (no bootstrap draws: no intervals)\n", "", "value");
        static const char *const names[] = {"k", "alpha", "beta", "gamma"};
        double v[4] = {rf->law.k, rf->law.alpha, rf->law.beta, rf->law.gamma};
        double *col = qid_malloc((rf->boot.n_draws + 1) * sizeof *col, "report: bootstrap column");
        for (int j = 0; j < 4; j++) {
            fprintf(f, "%-10s %12.6g", names[j], v[j]);
            if (rf->boot.n_draws >= 2) {
                for (size_t b = 0; b < rf->boot.n_draws; b++) {
                    const qid_fit_law *d = &rf->boot.draws[b];
                    col[b] = j == 0 ? d->k : j == 1 ? d->alpha : j == 2 ? d->beta : d->gamma;
                }
                qsort(col, rf->boot.n_draws, sizeof *col, cmp_double);
                fprintf(f, "   [%.6g, %.6g]", quantile(col, rf->boot.n_draws, (1 - lv) / 2),
                        quantile(col, rf->boot.n_draws, (1 + lv) / 2));
            }
            fprintf(f, "\n");
        }
        free(col);
        fprintf(f, "\nR2 (log)   %.4f\n", rf->r2_log);
        fprintf(f, "RMSE       %.4g nats/token\n", rf->rmse);
        if (isnan(rf->converged))
            fprintf(f, "converged  unknown\n");
        else
            fprintf(f, "converged  %s after %.0f iterations\n", rf->converged != 0 ? "yes" : "NO", rf->iterations);
    } else {
        fprintf(f, "NO FIT: %s\n", rf->msg);
    }
    fprintf(f, "points     %.0f fitted; %zu usable in the store (%zu model sizes, %zu token counts, %zu bit widths)\n",
            rf->n_points, n_obs, n_n, n_d, n_p);
    if (n_nonpos) fprintf(f, "           %zu points with QiD <= 0 are not drawn on the log-scale plots\n", n_nonpos);
    fprintf(f, "\n");
    int bad = 0;
    if (!(rf->n_points >= QID_FIT_CMD_MIN_POINTS)) {
        fprintf(f, "TOO FEW POINTS: %.0f points (at least %d wanted); do not trust this law\n", rf->n_points,
                QID_FIT_CMD_MIN_POINTS);
        bad = 1;
    }
    if (rf->have && !(rf->r2_log >= QID_FIT_CMD_MIN_R2)) {
        fprintf(f, "POOR FIT: R2 (log) %.3f < %.1f\n", rf->r2_log, QID_FIT_CMD_MIN_R2);
        bad = 1;
    }
    if (rf->have && !isnan(rf->converged) && rf->converged == 0) {
        fprintf(f, "POOR FIT: the refinement did not converge\n");
        bad = 1;
    }
    if (!rf->have) bad = 1;
    if (!bad) fprintf(f, "fit OK: %.0f points, R2 (log) %.3f, converged\n", rf->n_points, rf->r2_log);
}

/* One PNG + SVG pair of a plot: the terminal lines of the script. */
static void term(FILE *g, int svg, int w, int h, const char *base)
{
    if (svg)
        fprintf(g, "set terminal svg size %d,%d dynamic enhanced font 'Sans,12'\nset output '%s.svg'\n", w, h, base);
    else
        fprintf(g,
                "if (has_cairo) { set terminal pngcairo size %d,%d enhanced font 'Sans,11' } "
                "else { set terminal png size %d,%d enhanced }\nset output '%s.png'\n",
                w, h, w, h, base);
}

static void fmt_g(char *buf, size_t len, double x) { snprintf(buf, len, "%.3g", x); }

/* The predictor and the frontier a report shows. */
typedef struct report_pred {
    qid_predictor_candidate *cand; /* the store's candidates (latest checkpoint per model and setting) */
    size_t n_cand;
    size_t *front; /* the frontier within the budget, indices into cand by memory */
    size_t n_front;
    double budget;           /* bytes; NaN none (the stored predictor's --budget) */
    int have;                /* st holds the predictor's points */
    int stored;              /* ... read from /fits/<predictor_name>; 0: trained in memory */
    qid_predictor_stored st; /* points as in /fits/<name>/points */
    int log_axes;            /* every measured and forest-predicted QiD > 0 */
    char msg[QID_ERROR_MAX]; /* why there is no predictor (have == 0) */
} report_pred;

static void report_pred_free(report_pred *rp)
{
    free(rp->cand);
    free(rp->front);
    qid_predictor_stored_free(&rp->st);
}

/* The frontier of the store's rows, and the stored predictor (or one trained
 * in memory, with a note, when the store has none). */
static int get_pred(const char *store, const qid_result *rows, size_t n_rows, const qid_report_opts *o, FILE *log,
                    report_pred *rp, qid_error *err)
{
    memset(rp, 0, sizeof *rp);
    rp->budget = NAN;
    qid_predictor_opts po;
    qid_predictor_opts_init(&po);
    qid_error e;
    qid_error_clear(&e);
    int st = qid_predictor_read(store, o->predictor_name, &rp->st, &e);
    if (st == QID_OK) {
        rp->have = rp->stored = 1;
        rp->budget = rp->st.budget;
    } else if (st == QID_E_INVALID && strstr(e.msg, "has no fit")) {
        qid_predictor_report rep;
        qid_error_clear(&e);
        if (qid_predictor_fit(rows, n_rows, &po, &rep, &e) == QID_OK) {
            if (log)
                fprintf(log,
                        "note: '%s' has no /fits/%s; the predictor was trained in memory ('qid predictor %s' "
                        "stores one)\n",
                        store, o->predictor_name, store);
            qid_predictor_to_stored(&rep, &po, &rp->st);
            rp->have = 1;
            qid_predictor_report_free(&rep);
        } else {
            snprintf(rp->msg, sizeof rp->msg, "%s", e.msg);
        }
    } else {
        *err = e;
        return st;
    }
    if (!isnan(rp->budget)) po.budget = rp->budget;
    qid_predictor_candidates(rows, n_rows, &po, &rp->cand, &rp->n_cand);
    qid_fit_candidate *cc = qid_malloc((rp->n_cand + 1) * sizeof *cc, "report: candidates");
    for (size_t j = 0; j < rp->n_cand; j++)
        cc[j] = rp->cand[j].c;
    rp->front = qid_malloc((rp->n_cand + 1) * sizeof *rp->front, "report: frontier");
    rp->n_front = qid_fit_pareto(cc, rp->n_cand, po.budget, rp->front);
    free(cc);
    rp->log_axes = rp->have && rp->st.n_points > 0;
    for (size_t i = 0; i < rp->st.n_points && rp->log_axes; i++) {
        const double *p = rp->st.points + i * QID_PREDICTOR_POINT_COLS;
        rp->log_axes = p[6] - p[5] > 0 && p[7] - p[5] > 0;
    }
    return QID_OK;
}

/* The predictor's and the frontier's lines of summary.txt. */
static void write_pred_summary(FILE *f, const qid_report_opts *o, const report_pred *rp)
{
    fprintf(f, "\npredictor of post-quantization loss (Xu et al.): ");
    if (!rp->have) {
        fprintf(f, "none: %s\n", rp->msg);
    } else {
        if (rp->stored)
            fprintf(f, "/fits/%s (stored by 'qid predictor')\n", o->predictor_name);
        else
            fprintf(f, "trained in memory (the store has no /fits/%s)\n", o->predictor_name);
        fprintf(f,
                "  leave-one-%s-out RMSE of the loss over %zu examples: forest %.4g, linear %.4g, training mean "
                "%.4g nats/token\n",
                rp->st.holdout, rp->st.n_points, rp->st.rmse_forest, rp->st.rmse_linear, rp->st.rmse_mean);
        if (!(rp->st.rmse_forest < rp->st.rmse_mean))
            fprintf(f, "POOR PREDICTOR: the forest does not beat the training mean on held-out %ss\n", rp->st.holdout);
    }
    fprintf(f,
            "Pareto frontier (memory = N x bits / 8, latest checkpoint per model and setting): %zu of %zu "
            "candidates",
            rp->n_front, rp->n_cand);
    if (!isnan(rp->budget)) fprintf(f, " within %.4g bytes", rp->budget);
    if (rp->n_front) {
        const qid_predictor_candidate *b = &rp->cand[rp->front[rp->n_front - 1]];
        fprintf(f, "; lowest loss: %s (%.4f, %.4g bytes)", b->label, b->c.loss, qid_fit_candidate_bytes(&b->c));
    }
    fprintf(f, "\n");
}

/* pareto.csv, pareto.dat, predictor.csv, predictor.dat. */
static int write_pred_files(const char *dir, const report_pred *rp, qid_error *err)
{
    FILE *f = open_out(dir, "pareto.csv", err);
    if (!f) return err->code ? err->code : QID_E_IO;
    unsigned char *on = qid_calloc(rp->n_cand + 1, 1, "report: frontier flags");
    for (size_t a = 0; a < rp->n_front; a++)
        on[rp->front[a]] = 1;
    fprintf(f, "candidate,N,D,bits,bytes,loss,frontier\n");
    for (size_t j = 0; j < rp->n_cand; j++) {
        const qid_predictor_candidate *c = &rp->cand[j];
        fprintf(f, "\"%s\",%.6g,%.6g,%g,%.6g,%.8g,%d\n", c->label, c->c.params, c->d, c->c.bits,
                qid_fit_candidate_bytes(&c->c), c->c.loss, on[j]);
    }
    int st = close_out(f, dir, "pareto.csv", err);
    if (!st && !(f = open_out(dir, "pareto.dat", err))) st = err->code ? err->code : QID_E_IO;
    if (!st) {
        fprintf(f, "# block 0: every candidate: bytes loss N bits; block 1: the frontier by memory: bytes loss "
                   "\"label\"\n");
        for (size_t j = 0; j < rp->n_cand; j++)
            fprintf(f, "%.6g %.8g %.6g %g\n", qid_fit_candidate_bytes(&rp->cand[j].c), rp->cand[j].c.loss,
                    rp->cand[j].c.params, rp->cand[j].c.bits);
        fprintf(f, "\n\n");
        for (size_t a = 0; a < rp->n_front; a++) {
            const qid_predictor_candidate *c = &rp->cand[rp->front[a]];
            fprintf(f, "%.6g %.8g \"%s\"\n", qid_fit_candidate_bytes(&c->c), c->c.loss, c->label);
        }
        st = close_out(f, dir, "pareto.dat", err);
    }
    free(on);
    if (st || !rp->have) return st;
    if (!(f = open_out(dir, "predictor.csv", err))) return err->code ? err->code : QID_E_IO;
    fprintf(f, "%s\n", QID_PREDICTOR_POINT_COLUMNS);
    for (size_t i = 0; i < rp->st.n_points; i++) {
        const double *p = rp->st.points + i * QID_PREDICTOR_POINT_COLS;
        for (int c = 0; c < QID_PREDICTOR_POINT_COLS; c++)
            fprintf(f, "%s%.8g", c ? "," : "", p[c]);
        fprintf(f, "\n");
    }
    if ((st = close_out(f, dir, "predictor.csv", err))) return st;
    if (!(f = open_out(dir, "predictor.dat", err))) return err->code ? err->code : QID_E_IO;
    fprintf(f, "# measured QiD, held-out forest QiD, held-out linear QiD, element bits (QiD = loss - loss16)\n");
    for (size_t i = 0; i < rp->st.n_points; i++) {
        const double *p = rp->st.points + i * QID_PREDICTOR_POINT_COLS;
        fprintf(f, "%.8g %.8g %.8g %g\n", p[6] - p[5], p[7] - p[5], p[8] - p[5], p[2]);
    }
    return close_out(f, dir, "predictor.dat", err);
}

/* The gnuplot lines of the frontier and the predictor's plots. */
static void write_pred_plots(FILE *f, int svg, const report_pred *rp)
{
    term(f, svg, 860, 600, "pareto");
    fprintf(f, "set title 'Pareto frontier of model size vs bits per weight (measured loss, latest checkpoints)'\n"
               "unset logscale\nset logscale x\nset format x '10^{%%L}'\nset format y '%%g'\nset autoscale\n"
               "set xlabel 'memory of the non-embedding weights, N x bits / 8 (bytes)'\n"
               "set ylabel 'loss (nats/token)'\nset key inside right top box\n");
    if (!isnan(rp->budget))
        fprintf(f,
                "set arrow 1 from %.6g, graph 0 to %.6g, graph 1 nohead dt 2 lw 1.5 lc rgb 'black'\n"
                "set label 1 'budget' at %.6g, graph 0.97 right offset -0.5,0\n",
                rp->budget, rp->budget, rp->budget);
    fprintf(f, "plot 'pareto.dat' index 0 using 1:2 with points pt 6 ps 1 lc rgb 'gray50' title 'candidates'");
    if (rp->n_front)
        fprintf(f, ", \\\n     'pareto.dat' index 1 using 1:2 with steps lw 2 lc rgb 'red' notitle, \\\n"
                   "     'pareto.dat' index 1 using 1:2 with points pt 7 ps 1.2 lc rgb 'red' title 'frontier', \\\n"
                   "     'pareto.dat' index 1 using 1:2:3 with labels left offset 0.8,0.6 font ',8' notitle");
    fprintf(f, "\nunset arrow 1\nunset label 1\nset key outside right top box font ',10'\n");
    if (!rp->have) return;
    term(f, svg, 720, 640, "predictor_actual_vs_predicted");
    fprintf(f, "set title 'Predictor (Xu et al.): measured vs held-out predicted QiD (one %s out)'\n", rp->st.holdout);
    fprintf(f, "unset logscale\n%sset format x '%%g'\nset format y '%%g'\nset autoscale\n",
            rp->log_axes ? "set logscale xy\n" : "");
    fprintf(f, "set xlabel 'predicted QiD = predicted loss - loss16 (nats/token)'\nset ylabel 'measured QiD "
               "(nats/token)'\nset key inside left top box\n");
    fprintf(f,
            "plot x with lines ls 99 title 'y = x', \\\n"
            "     'predictor.dat' using 2:1 with points pt 7 ps 0.8 lc 1 title 'forest (RMSE %.3g)', \\\n"
            "     'predictor.dat' using 3:1 with points pt 4 ps 0.8 lc 2 title 'linear (RMSE %.3g)'\n",
            rp->st.rmse_forest, rp->st.rmse_linear);
    fprintf(f, "set key outside right top box font ',10'\n");
}

int qid_report_write(const char *store, const char *dir, const qid_report_opts *o, FILE *log, qid_error *err)
{
    qid_report_opts def;
    if (!o) {
        qid_report_opts_init(&def);
        o = &def;
    }
    qid_result *rows = NULL;
    size_t n_rows = 0, n_obs = 0;
    qid_fit_obs *obs = NULL;
    report_fit rf;
    memset(&rf, 0, sizeof rf);
    report_pred rp;
    memset(&rp, 0, sizeof rp);
    double *un = NULL, *up = NULL, *ud = NULL, *tmp = NULL;
    FILE *f = NULL;
    int st = qid_results_read(store, &rows, &n_rows, err);
    if (st) return st;
    qid_fit_cmd_opts fo;
    qid_fit_cmd_opts_init(&fo);
    qid_fit_cmd_obs(rows, n_rows, &fo, &obs, &n_obs, NULL, NULL, NULL, NULL);
    st = get_pred(store, rows, n_rows, o, log, &rp, err);
    qid_results_rows_free(rows, n_rows);
    if (st) goto out;
    if ((st = get_fit(store, obs, n_obs, o, log, &rf, err))) goto out;
    if (mkdir(dir, 0777) != 0 && errno != EEXIST) {
        st = qid_error_set(err, QID_E_IO, "cannot create '%s': %s", dir, strerror(errno));
        goto out;
    }

    size_t cap = n_obs ? n_obs : 1;
    un = qid_malloc(cap * sizeof *un, "report: N values");
    up = qid_malloc(cap * sizeof *up, "report: P values");
    ud = qid_malloc(cap * sizeof *ud, "report: D values");
    tmp = qid_malloc(cap * sizeof *tmp, "report: values");
    for (size_t i = 0; i < n_obs; i++)
        tmp[i] = obs[i].n;
    size_t nn = distinct(tmp, n_obs, un);
    for (size_t i = 0; i < n_obs; i++)
        tmp[i] = obs[i].p;
    size_t np = distinct(tmp, n_obs, up);
    for (size_t i = 0; i < n_obs; i++)
        tmp[i] = obs[i].d;
    size_t nd = distinct(tmp, n_obs, ud);
    size_t n_nonpos = 0;
    double pos_lo = INFINITY, pos_hi = 0;
    for (size_t i = 0; i < n_obs; i++) {
        double pr = rf.have ? qid_fit_law_eval(&rf.law, obs[i].n, obs[i].d, obs[i].p) : NAN;
        if (obs[i].qid <= 0) n_nonpos++;
        double v[2] = {obs[i].qid, pr};
        for (int j = 0; j < 2; j++)
            if (v[j] > 0) {
                pos_lo = fmin(pos_lo, v[j]);
                pos_hi = fmax(pos_hi, v[j]);
            }
    }
    double dmid = nd ? ud[nd / 2] : 1e11; /* the median D of the store: the D of the lines vs N and vs P */

    /* summary.txt */
    if (!(f = open_out(dir, "summary.txt", err))) goto io_fail;
    write_summary(f, store, o, &rf, n_obs, nn, np, nd, n_nonpos);
    write_pred_summary(f, o, &rp);
    fprintf(f, "\nfiles: points.csv, predictions.csv, pareto.csv, predictor.csv; plots *.png, *.svg drawn by gnuplot "
               "from report.gp and *.dat\n");
    if ((st = close_out(f, dir, "summary.txt", err))) goto out;

    if ((st = write_pred_files(dir, &rp, err))) goto out;

    /* points.csv */
    if (!(f = open_out(dir, "points.csv", err))) goto io_fail;
    fprintf(f, "N,D,P,qid,qid_se,predicted\n");
    for (size_t i = 0; i < n_obs; i++)
        fprintf(f, "%.6g,%.6g,%g,%.8g,%.8g,%.8g\n", obs[i].n, obs[i].d, obs[i].p, obs[i].qid, obs[i].se,
                rf.have ? qid_fit_law_eval(&rf.law, obs[i].n, obs[i].d, obs[i].p) : NAN);
    if ((st = close_out(f, dir, "points.csv", err))) goto out;

    /* predictions.csv and predictions.dat (one block per P) */
    double pn[N_PRED_N * N_PRED_P], pd[N_PRED_N * N_PRED_P], pp[N_PRED_N * N_PRED_P];
    double mid[N_PRED_N * N_PRED_P], lo[N_PRED_N * N_PRED_P], hi[N_PRED_N * N_PRED_P];
    for (size_t j = 0; j < N_PRED_P; j++)
        for (size_t i = 0; i < N_PRED_N; i++) {
            size_t k = j * N_PRED_N + i;
            pn[k] = pred_n[i];
            pd[k] = pred_d;
            pp[k] = pred_p[j];
            mid[k] = lo[k] = hi[k] = NAN;
        }
    double lv = rf.level > 0 ? rf.level : 0.95;
    if (rf.have && rf.boot.n_draws >= 2) qid_fit_predict_ci(&rf.boot, pn, pd, pp, N_PRED_N * N_PRED_P, lv, mid, lo, hi);
    if (!(f = open_out(dir, "predictions.csv", err))) goto io_fail;
    fprintf(f, "N,D,P,qid,qid_lo,qid_hi,level\n");
    for (size_t k = 0; k < N_PRED_N * N_PRED_P; k++)
        fprintf(f, "%.6g,%.6g,%g,%.6g,%.6g,%.6g,%g\n", pn[k], pd[k], pp[k],
                rf.have ? qid_fit_law_eval(&rf.law, pn[k], pd[k], pp[k]) : NAN, lo[k], hi[k], lv);
    if ((st = close_out(f, dir, "predictions.csv", err))) goto out;
    if (!(f = open_out(dir, "predictions.dat", err))) goto io_fail;
    fprintf(f, "# x(model index + offset per P)  qid  lo  hi  N  P\n");
    for (size_t j = 0; j < N_PRED_P; j++) {
        for (size_t i = 0; i < N_PRED_N; i++) {
            size_t k = j * N_PRED_N + i;
            double q = rf.have ? qid_fit_law_eval(&rf.law, pn[k], pd[k], pp[k]) : NAN;
            fprintf(f, "%g %.6g %.6g %.6g %.6g %g\n", (double)(i + 1) + 0.15 * ((double)j - 1), q,
                    isnan(lo[k]) ? q : lo[k], isnan(hi[k]) ? q : hi[k], pn[k], pp[k]);
        }
        fprintf(f, "\n\n");
    }
    if ((st = close_out(f, dir, "predictions.dat", err))) goto out;

    /* points.dat: block P*nn + N: D qid se predicted N P (qid > 0 only);
     * lines_d.dat: block P*nn + N: the law over D */
    size_t *cnt = qid_calloc(np * nn + 1, sizeof *cnt, "report: block counts");
    if (!(f = open_out(dir, "points.dat", err))) {
        free(cnt);
        goto io_fail;
    }
    fprintf(f, "# blocks: P index * %zu + N index; D qid se predicted N P\n", nn);
    for (size_t jp = 0; jp < np; jp++)
        for (size_t jn = 0; jn < nn; jn++) {
            for (size_t i = 0; i < n_obs; i++)
                if (index_of(up, np, obs[i].p) == jp && index_of(un, nn, obs[i].n) == jn && obs[i].qid > 0) {
                    fprintf(f, "%.6g %.8g %.8g %.8g %.6g %g\n", obs[i].d, obs[i].qid, obs[i].se,
                            rf.have ? qid_fit_law_eval(&rf.law, obs[i].n, obs[i].d, obs[i].p) : NAN, obs[i].n,
                            obs[i].p);
                    cnt[jp * nn + jn]++;
                }
            fprintf(f, "\n\n");
        }
    if ((st = close_out(f, dir, "points.dat", err))) {
        free(cnt);
        goto out;
    }
    if (!(f = open_out(dir, "lines.dat", err))) {
        free(cnt);
        goto io_fail;
    }
    double d0 = nd ? ud[0] / 1.5 : 1e9, d1 = nd ? ud[nd - 1] * 1.5 : 1e12;
    fprintf(f, "# blocks 0..%zu: the law over D, block P index * %zu + N index: D qid\n", np * nn - 1, nn);
    for (size_t jp = 0; jp < np; jp++)
        for (size_t jn = 0; jn < nn; jn++) {
            for (int t = 0; t <= 40 && rf.have; t++) {
                double d = d0 * pow(d1 / d0, t / 40.0);
                fprintf(f, "%.6g %.8g\n", d, qid_fit_law_eval(&rf.law, un[jn], d, up[jp]));
            }
            fprintf(f, "\n\n");
        }
    fprintf(f, "# blocks %zu..: the law over N at D = %.3g, one per P: N qid\n", np * nn, dmid);
    double n0 = nn ? un[0] / 1.5 : 1e7, n1 = nn ? un[nn - 1] * 1.5 : 1e10;
    for (size_t jp = 0; jp < np; jp++) {
        for (int t = 0; t <= 40 && rf.have; t++) {
            double x = n0 * pow(n1 / n0, t / 40.0);
            fprintf(f, "%.6g %.8g\n", x, qid_fit_law_eval(&rf.law, x, dmid, up[jp]));
        }
        fprintf(f, "\n\n");
    }
    fprintf(f, "# blocks %zu..: the law over P at D = %.3g, one per N: P qid\n", np * nn + np, dmid);
    double p0 = np ? up[0] * 0.9 : 2, p1 = np ? up[np - 1] * 1.1 : 8;
    for (size_t jn = 0; jn < nn; jn++) {
        for (int t = 0; t <= 40 && rf.have; t++) {
            double x = p0 * pow(p1 / p0, t / 40.0);
            fprintf(f, "%.6g %.8g\n", x, qid_fit_law_eval(&rf.law, un[jn], dmid, x));
        }
        fprintf(f, "\n\n");
    }
    if ((st = close_out(f, dir, "lines.dat", err))) {
        free(cnt);
        goto out;
    }

    /* report.gp */
    if (!(f = open_out(dir, "report.gp", err))) {
        free(cnt);
        goto io_fail;
    }
    char a[32], b[32];
    fprintf(f, "# report.gp - written by 'qid report %s'; run 'gnuplot report.gp' in this directory.\n", store);
    fprintf(f, "has_cairo = strstrt(GPVAL_TERMINALS, 'pngcairo') > 0\n");
    fprintf(f, "set datafile missing 'nan'\nset key outside right top box\nset grid\nset bars small\n"
               "set style line 99 lc rgb 'black' dt 2 lw 1.5\n");
    fmt_g(a, sizeof a, dmid);
    for (int svg = 0; svg <= 1; svg++) {
        /* (1) QiD vs D, one panel per bit width, one colour per N */
        term(f, svg, np > 1 ? 520 * (int)np : 700, 480, "qid_vs_d");
        fprintf(f,
                "set multiplot layout 1,%zu title 'QiD vs training tokens D (points +- 1 s.e., lines: fitted law)'\n",
                np ? np : 1);
        fprintf(f, "set logscale xy\nset format x '10^{%%L}'\nset format y '%%g'\nset xlabel 'training tokens D'\n"
                   "set ylabel 'QiD (nats/token)'\nset key inside left top box font ',9'\nset autoscale\n");
        if (pos_hi > 0) fprintf(f, "set yrange [%.4g:%.4g]\n", pos_lo / 1.5, pos_hi * 1.5);
        for (size_t jp = 0; jp < np; jp++) {
            fprintf(f, "set title '%g-bit'\nplot ", up[jp]);
            int first = 1;
            for (size_t jn = 0; jn < nn; jn++) {
                size_t blk = jp * nn + jn;
                fmt_g(b, sizeof b, un[jn]);
                if (cnt[blk])
                    fprintf(f, "%s'points.dat' index %zu using 1:2:3 with yerrorbars pt 7 ps 0.8 lc %zu title 'N = %s'",
                            first ? "" : ", \\\n     ", blk, jn + 1, b);
                else
                    continue;
                first = 0;
                if (rf.have)
                    fprintf(f, ", \\\n     'lines.dat' index %zu using 1:2 with lines lw 2 lc %zu notitle", blk,
                            jn + 1);
            }
            if (first) fprintf(f, "NaN notitle");
            fprintf(f, "\n");
        }
        fprintf(f, "unset multiplot\nunset title\nset key outside right top box font ',10'\n");

        /* (2) QiD vs N, one colour per P */
        term(f, svg, 800, 560, "qid_vs_n");
        fprintf(f, "set title 'QiD vs model size N (all D; lines: fitted law at D = %s)'\n", a);
        fprintf(f, "set logscale xy\nset format x '10^{%%L}'\nset xlabel 'non-embedding parameters N'\n"
                   "set ylabel 'QiD (nats/token)'\nset autoscale\n");
        if (pos_hi > 0) fprintf(f, "set yrange [%.4g:%.4g]\n", pos_lo / 1.5, pos_hi * 1.5);
        fprintf(f, "plot ");
        for (size_t jp = 0; jp < np; jp++) {
            fprintf(f, "%s'points.dat' using ($6 == %g ? $5 : NaN):2 with points pt 7 ps 0.8 lc %zu title '%g-bit'",
                    jp ? ", \\\n     " : "", up[jp], jp + 1, up[jp]);
            if (rf.have)
                fprintf(f, ", \\\n     'lines.dat' index %zu using 1:2 with lines lw 2 lc %zu notitle", np * nn + jp,
                        jp + 1);
        }
        if (!np) fprintf(f, "NaN notitle");
        fprintf(f, "\n");

        /* (3) QiD vs P, one colour per N */
        term(f, svg, 800, 560, "qid_vs_p");
        fprintf(f, "set title 'QiD vs bits P (all D; lines: fitted law at D = %s)'\n", a);
        fprintf(f, "set logscale xy\nset format x '%%g'\nset xtics (");
        for (size_t jp = 0; jp < np; jp++)
            fprintf(f, "%s'%g' %g", jp ? ", " : "", up[jp], up[jp]);
        fprintf(f, ")\nset xlabel 'bits P (log scale)'\nset ylabel 'QiD (nats/token)'\nset autoscale\n");
        if (np) fprintf(f, "set xrange [%g:%g]\n", up[0] * 0.85, up[np - 1] * 1.15);
        if (pos_hi > 0) fprintf(f, "set yrange [%.4g:%.4g]\n", pos_lo / 1.5, pos_hi * 1.5);
        fprintf(f, "plot ");
        for (size_t jn = 0; jn < nn; jn++) {
            fmt_g(b, sizeof b, un[jn]);
            fprintf(f, "%s'points.dat' using ($5 == %.9g ? $6 : NaN):2 with points pt 7 ps 0.8 lc %zu title 'N = %s'",
                    jn ? ", \\\n     " : "", un[jn], jn + 1, b);
            if (rf.have)
                fprintf(f, ", \\\n     'lines.dat' index %zu using 1:2 with lines lw 2 lc %zu notitle",
                        np * nn + np + jn, jn + 1);
        }
        if (!nn) fprintf(f, "NaN notitle");
        fprintf(f, "\nset xtics autofreq\nunset xrange\n");

        /* (4) predictions at 1e14 tokens */
        term(f, svg, 800, 560, "predictions");
        fprintf(f, "set title 'Predicted QiD at D = 1e14 tokens (bars: %.0f%% bootstrap interval)'\n", 100 * lv);
        fprintf(f,
                "unset logscale x\nset logscale y\nset format x '%%g'\nset xrange [0.5:3.5]\n"
                "set xtics ('%s' 1, '%s' 2, '%s' 3)\nset xlabel 'model size'\nset ylabel 'predicted QiD (nats/token)'\n"
                "set autoscale y\nplot ",
                pred_n_label[0], pred_n_label[1], pred_n_label[2]);
        for (size_t j = 0; j < N_PRED_P; j++)
            fprintf(
                f, "%s'predictions.dat' index %zu using 1:2:3:4 with yerrorbars pt 7 ps 1.2 lw 2 lc %zu title '%g-bit'",
                j ? ", \\\n     " : "", j, j + 1, pred_p[j]);
        fprintf(f, "\nset xtics autofreq\nset autoscale x\n");

        /* (5) actual vs predicted */
        term(f, svg, 700, 620, "actual_vs_predicted");
        fprintf(f, "set title 'Measured vs fitted QiD (QiD > 0 only)'\nset logscale xy\nset format x '%%g'\n"
                   "set xlabel 'fitted QiD (nats/token)'\nset ylabel 'measured QiD (nats/token)'\n");
        if (pos_hi > 0)
            fprintf(f, "set xrange [%.4g:%.4g]\nset yrange [%.4g:%.4g]\n", pos_lo / 1.5, pos_hi * 1.5, pos_lo / 1.5,
                    pos_hi * 1.5);
        fprintf(f, "plot x with lines ls 99 title 'y = x'");
        for (size_t jp = 0; jp < np && rf.have; jp++)
            fprintf(
                f,
                ", \\\n     'points.dat' using ($6 == %g ? $4 : NaN):2 with points pt 7 ps 0.8 lc %zu title '%g-bit'",
                up[jp], jp + 1, up[jp]);
        fprintf(f, "\nunset xrange\nunset yrange\n");
        write_pred_plots(f, svg, &rp);
        fprintf(f, "unset output\n");
    }
    free(cnt);
    if ((st = close_out(f, dir, "report.gp", err))) goto out;
    f = NULL;

    /* gnuplot, in dir, its output in gnuplot.log */
    if (!o->gnuplot || !o->gnuplot[0]) {
        if (log) fprintf(log, "warning: plots skipped (no gnuplot program given); %s/report.gp draws them\n", dir);
        goto out;
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        st = qid_error_set(err, QID_E_IO, "cannot start gnuplot: %s", strerror(errno));
        goto out;
    }
    if (pid == 0) {
        if (chdir(dir) != 0) _exit(126);
        int fd = open("gnuplot.log", O_WRONLY | O_CREAT | O_TRUNC, 0666);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        execlp(o->gnuplot, o->gnuplot, "report.gp", (char *)NULL);
        _exit(127);
    }
    int ws = 0;
    while (waitpid(pid, &ws, 0) < 0 && errno == EINTR) {
    }
    int rc = WIFEXITED(ws) ? WEXITSTATUS(ws) : 128;
    if (rc == 127) {
        char *gl = qid_path_join(dir, "gnuplot.log");
        unlink(gl);
        free(gl);
        if (log)
            fprintf(log, "warning: plots skipped ('%s' not found); tables and %s/report.gp written\n", o->gnuplot, dir);
    } else if (rc != 0) {
        if (log) fprintf(log, "warning: gnuplot failed (exit %d); see %s/gnuplot.log\n", rc, dir);
    }
    goto out;
io_fail:
    st = err->code ? err->code : QID_E_IO;
out:
    qid_fit_boot_free(&rf.boot);
    report_pred_free(&rp);
    free(obs);
    free(un);
    free(up);
    free(ud);
    free(tmp);
    return st;
}

static void report_usage(FILE *out)
{
    fprintf(out, "usage: qid report STORE -o DIR [--fit NAME] [--predictor NAME] [--boot N] [--gnuplot PROG]\n"
                 "\n"
                 "Writes a report of a results store's unified law QiD = k D^beta / (N^alpha P^gamma)\n"
                 "into DIR: summary.txt (coefficients with intervals, R^2, RMSE, counts, and\n"
                 "'POOR FIT' / 'TOO FEW POINTS' lines; the predictor's errors and the Pareto\n"
                 "frontier), points.csv, predictions.csv (QiD at 1e14 tokens for 7B/70B/405B at\n"
                 "2/3/4 bits), pareto.csv, predictor.csv, the gnuplot script report.gp with its\n"
                 ".dat files, and PNG + SVG plots: qid_vs_d, qid_vs_n, qid_vs_p, predictions,\n"
                 "actual_vs_predicted, pareto (loss vs memory of every model and setting, the\n"
                 "frontier, the budget) and predictor_actual_vs_predicted (the Xu et al. predictor's\n"
                 "held-out predictions). Uses /fits/NAME and /fits/PREDICTOR of the store; without\n"
                 "them the law is fitted and the predictor trained in memory. Without gnuplot the\n"
                 "plots are skipped with a warning.\n"
                 "\n"
                 "options:\n"
                 "  -o, --output DIR  the report directory (created if absent)\n"
                 "  --fit NAME        the stored fit to show (default 'default')\n"
                 "  --predictor NAME  the stored predictor to show (default 'predictor')\n"
                 "  --boot N          bootstrap draws of an in-memory fit (default 200)\n"
                 "  --gnuplot PROG    the gnuplot program (default 'gnuplot')\n");
}

int qid_report_main(int argc, char **argv)
{
    static const struct option longopts[] = {{"output", required_argument, NULL, 'o'},
                                             {"fit", required_argument, NULL, 'f'},
                                             {"boot", required_argument, NULL, 'B'},
                                             {"gnuplot", required_argument, NULL, 'g'},
                                             {"predictor", required_argument, NULL, 'p'},
                                             {"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
    qid_report_opts o;
    qid_report_opts_init(&o);
    const char *dir = NULL;
    int c;
    char *end;
    qid_h5_silence();
    optind = 1;
    while ((c = getopt_long(argc, argv, "ho:", longopts, NULL)) != -1) {
        switch (c) {
        case 'o': dir = optarg; break;
        case 'f': o.fit_name = optarg; break;
        case 'B':
            errno = 0;
            o.n_boot = (size_t)strtoull(optarg, &end, 10);
            if (errno || end == optarg || *end || optarg[0] == '-') {
                fprintf(stderr, "qid report: error: --boot wants a count, not '%s'\n", optarg);
                return 2;
            }
            break;
        case 'g': o.gnuplot = optarg; break;
        case 'p': o.predictor_name = optarg; break;
        case 'h': report_usage(stdout); return 0;
        default: report_usage(stderr); return 2;
        }
    }
    if (optind + 1 != argc || !dir) {
        fprintf(stderr, "qid report: error: %s\n",
                optind >= argc       ? "no results store given"
                : optind + 1 != argc ? "one results store at a time"
                                     : "no output directory given (-o DIR)");
        report_usage(stderr);
        return 2;
    }
    qid_error err;
    qid_error_clear(&err);
    if (qid_report_write(argv[optind], dir, &o, stdout, &err)) {
        fflush(stdout);
        fprintf(stderr, "qid report: error: %s\n", err.msg);
        return 1;
    }
    printf("report written to %s (summary.txt)\n", dir);
    return 0;
}
