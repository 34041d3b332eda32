/* report_tables.c - the tables of `qid report` (report_internal.h): the CSV
 * files people read (points, predictions, pareto, predictor) and the .dat
 * files the gnuplot script draws.
 *
 * Does not: fit, write the summary or the script, or run gnuplot. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fsutil.h"
#include "report_internal.h"

const double report_pred_n[REPORT_N_PRED_N] = {7e9, 70e9, 405e9};
const char *const report_pred_n_label[REPORT_N_PRED_N] = {"7B", "70B", "405B"};
const double report_pred_p[REPORT_N_PRED_P] = {2, 3, 4};
const double report_pred_d = 1e14;

FILE *report_open(const char *dir, const char *name, qid_error *err)
{
    char *path = qid_path_join(dir, name);
    FILE *f = fopen(path, "w");
    if (!f) qid_error_set(err, QID_E_IO, "cannot write '%s': %s", path, strerror(errno));
    free(path);
    return f;
}

int report_close(FILE *f, const char *dir, const char *name, qid_error *err)
{
    if (ferror(f) | (fclose(f) != 0))
        return qid_error_set(err, QID_E_IO, "cannot write '%s/%s': %s", dir, name, strerror(errno));
    return QID_OK;
}

static int open_failed(qid_error *err) { return err->code ? err->code : QID_E_IO; }

static size_t index_of(const double *u, size_t m, double x)
{
    for (size_t i = 0; i < m; i++)
        if (fabs(x - u[i]) <= 1e-9 * fabs(u[i])) return i;
    return m;
}

/* pareto.csv and pareto.dat: every candidate, and the frontier. */
static int write_pareto(const char *dir, const report_pred *rp, qid_error *err)
{
    FILE *f = report_open(dir, "pareto.csv", err);
    if (!f) return open_failed(err);
    unsigned char *on = qid_calloc(rp->n_cand + 1, 1, "report: frontier flags");
    for (size_t a = 0; a < rp->n_front; a++)
        on[rp->front[a]] = 1;
    fprintf(f, "candidate,N,D,bits,bytes,loss,frontier\n");
    for (size_t j = 0; j < rp->n_cand; j++) {
        const qid_predictor_candidate *c = &rp->cand[j];
        fprintf(f, "\"%s\",%.6g,%.6g,%g,%.6g,%.8g,%d\n", c->label, c->c.params, c->d, c->c.bits,
                qid_fit_candidate_bytes(&c->c), c->c.loss, on[j]);
    }
    free(on);
    int st = report_close(f, dir, "pareto.csv", err);
    if (st) return st;
    if (!(f = report_open(dir, "pareto.dat", err))) return open_failed(err);
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
    return report_close(f, dir, "pareto.dat", err);
}

/* predictor.csv and predictor.dat: the predictor's points (when there is one). */
static int write_predictor(const char *dir, const report_pred *rp, qid_error *err)
{
    if (!rp->have) return QID_OK;
    FILE *f = report_open(dir, "predictor.csv", err);
    if (!f) return open_failed(err);
    fprintf(f, "%s\n", QID_PREDICTOR_POINT_COLUMNS);
    for (size_t i = 0; i < rp->st.n_points; i++) {
        const double *p = rp->st.points + i * QID_PREDICTOR_POINT_COLS;
        for (int c = 0; c < QID_PREDICTOR_POINT_COLS; c++)
            fprintf(f, "%s%.8g", c ? "," : "", p[c]);
        fprintf(f, "\n");
    }
    int st = report_close(f, dir, "predictor.csv", err);
    if (st) return st;
    if (!(f = report_open(dir, "predictor.dat", err))) return open_failed(err);
    fprintf(f, "# measured QiD, held-out forest QiD, held-out linear QiD, element bits (QiD = loss - loss16)\n");
    for (size_t i = 0; i < rp->st.n_points; i++) {
        const double *p = rp->st.points + i * QID_PREDICTOR_POINT_COLS;
        fprintf(f, "%.8g %.8g %.8g %g\n", p[6] - p[5], p[7] - p[5], p[8] - p[5], p[2]);
    }
    return report_close(f, dir, "predictor.dat", err);
}

/* points.csv: every observation with the law's value. */
static int write_points_csv(const report *r, qid_error *err)
{
    FILE *f = report_open(r->dir, "points.csv", err);
    if (!f) return open_failed(err);
    fprintf(f, "model,checkpoint,step,method,format,N,D,P,qid,qid_se,predicted\n");
    for (size_t i = 0; i < r->n_obs; i++) {
        const qid_fit_obs *ob = &r->obs[i];
        const qid_result *row = &r->rows[ob->row];
        qid_csv_field(f, row->model);
        fputc(',', f);
        qid_csv_field(f, row->checkpoint);
        fputc(',', f);
        fprintf(f, "%lld,", (long long)row->step);
        qid_csv_field(f, row->method);
        fputc(',', f);
        qid_csv_field(f, row->format);
        fputc(',', f);
        fprintf(f, "%.6g,%.6g,%g,%.8g,%.8g,%.8g\n", ob->n, ob->d, ob->p, ob->qid, ob->se, report_fitted(r, i));
    }
    return report_close(f, r->dir, "points.csv", err);
}

/* predictions.csv and predictions.dat (one block per P): the law on the grid, with bootstrap intervals. */
static int write_predictions(const report *r, qid_error *err)
{
    enum { K = REPORT_N_PRED_N * REPORT_N_PRED_P };
    double pn[K], pd[K], pp[K], q[K], mid[K], lo[K], hi[K];
    const report_fit *rf = &r->rf;
    for (size_t j = 0; j < REPORT_N_PRED_P; j++)
        for (size_t i = 0; i < REPORT_N_PRED_N; i++) {
            size_t k = j * REPORT_N_PRED_N + i;
            pn[k] = report_pred_n[i], pd[k] = report_pred_d, pp[k] = report_pred_p[j];
            mid[k] = lo[k] = hi[k] = NAN;
            q[k] = rf->have ? qid_fit_law_eval(&rf->law, pn[k], pd[k], pp[k]) : NAN;
        }
    if (rf->have && rf->boot.n_draws >= 2) qid_fit_predict_ci(&rf->boot, pn, pd, pp, K, r->level, mid, lo, hi);
    FILE *f = report_open(r->dir, "predictions.csv", err);
    if (!f) return open_failed(err);
    fprintf(f, "N,D,P,qid,qid_lo,qid_hi,level\n");
    for (size_t k = 0; k < K; k++)
        fprintf(f, "%.6g,%.6g,%g,%.6g,%.6g,%.6g,%g\n", pn[k], pd[k], pp[k], q[k], lo[k], hi[k], r->level);
    int st = report_close(f, r->dir, "predictions.csv", err);
    if (st) return st;
    if (!(f = report_open(r->dir, "predictions.dat", err))) return open_failed(err);
    fprintf(f, "# x(model index + offset per P)  qid  lo  hi  N  P\n");
    for (size_t j = 0; j < REPORT_N_PRED_P; j++) {
        for (size_t i = 0; i < REPORT_N_PRED_N; i++) {
            size_t k = j * REPORT_N_PRED_N + i;
            fprintf(f, "%g %.6g %.6g %.6g %.6g %g\n", (double)(i + 1) + 0.15 * ((double)j - 1), q[k],
                    isnan(lo[k]) ? q[k] : lo[k], isnan(hi[k]) ? q[k] : hi[k], pn[k], pp[k]);
        }
        fprintf(f, "\n\n");
    }
    return report_close(f, r->dir, "predictions.dat", err);
}

/* points.dat: block P index * nn + N index: D qid se predicted N P (qid > 0 only); counts them in r->cnt. */
static int write_points_dat(report *r, qid_error *err)
{
    FILE *f = report_open(r->dir, "points.dat", err);
    if (!f) return open_failed(err);
    fprintf(f, "# blocks: P index * %zu + N index; D qid se predicted N P pointtype (by method: %s)\n", r->nn,
            report_method_points);
    for (size_t jp = 0; jp < r->np; jp++)
        for (size_t jn = 0; jn < r->nn; jn++) {
            for (size_t i = 0; i < r->n_obs; i++) {
                const qid_fit_obs *ob = &r->obs[i];
                if (index_of(r->up, r->np, ob->p) != jp || index_of(r->un, r->nn, ob->n) != jn || !(ob->qid > 0))
                    continue;
                fprintf(f, "%.6g %.8g %.8g %.8g %.6g %g %d\n", ob->d, ob->qid, ob->se, report_fitted(r, i), ob->n,
                        ob->p, report_method_pt(r->rows[ob->row].method));
                r->cnt[jp * r->nn + jn]++;
            }
            fprintf(f, "\n\n");
        }
    return report_close(f, r->dir, "points.dat", err);
}

/* 41 points of the law from x0 to x1 (log-spaced) as "x qid" lines, x being argument `which` (0 N, 1 D, 2 P). */
static void law_line(FILE *f, const report *r, int which, double x0, double x1, double n, double d, double p)
{
    for (int t = 0; t <= 40 && r->rf.have; t++) {
        double x = x0 * pow(x1 / x0, t / 40.0);
        fprintf(f, "%.6g %.8g\n", x,
                qid_fit_law_eval(&r->rf.law, which == 0 ? x : n, which == 1 ? x : d, which == 2 ? x : p));
    }
    fprintf(f, "\n\n");
}

/* lines.dat: the law over D per (P, N), over N per P and over P per N. */
static int write_lines_dat(const report *r, qid_error *err)
{
    FILE *f = report_open(r->dir, "lines.dat", err);
    if (!f) return open_failed(err);
    size_t nn = r->nn, np = r->np, nd = r->nd;
    double d0 = nd ? r->ud[0] / 1.5 : 1e9, d1 = nd ? r->ud[nd - 1] * 1.5 : 1e12;
    fprintf(f, "# blocks 0..%zu: the law over D, block P index * %zu + N index: D qid\n", np * nn - 1, nn);
    for (size_t jp = 0; jp < np; jp++)
        for (size_t jn = 0; jn < nn; jn++)
            law_line(f, r, 1, d0, d1, r->un[jn], NAN, r->up[jp]);
    fprintf(f, "# blocks %zu..: the law over N at D = %.3g, one per P: N qid\n", np * nn, r->dmid);
    double n0 = nn ? r->un[0] / 1.5 : 1e7, n1 = nn ? r->un[nn - 1] * 1.5 : 1e10;
    for (size_t jp = 0; jp < np; jp++)
        law_line(f, r, 0, n0, n1, NAN, r->dmid, r->up[jp]);
    fprintf(f, "# blocks %zu..: the law over P at D = %.3g, one per N: P qid\n", np * nn + np, r->dmid);
    double p0 = np ? r->up[0] * 0.9 : 2, p1 = np ? r->up[np - 1] * 1.1 : 8;
    for (size_t jn = 0; jn < nn; jn++)
        law_line(f, r, 2, p0, p1, r->un[jn], r->dmid, NAN);
    return report_close(f, r->dir, "lines.dat", err);
}

/* law_compare.csv and law_compare.dat (one block per law): each compared form's QiD on the prediction grid,
 * from the stored comparison. */
static int write_compare(const report *r, qid_error *err)
{
    const qid_fit_compare_stored *c = &r->cmp;
    if (!c->n_laws) return QID_OK;
    FILE *f = report_open(r->dir, "law_compare.csv", err);
    if (!f) return open_failed(err);
    fprintf(f, "law,N,D,P,qid,qid_lo,qid_hi\n");
    for (size_t i = 0; i < c->n_pred; i++) {
        const double *p = c->pred + 7 * i;
        size_t law = (size_t)p[0];
        fprintf(f, "%s,%.6g,%.6g,%g,%.6g,%.6g,%.6g\n", law < c->n_laws ? c->name[law] : "?", p[1], p[2], p[3], p[4],
                p[5], p[6]);
    }
    int st = report_close(f, r->dir, "law_compare.csv", err);
    if (st) return st;
    if (!(f = report_open(r->dir, "law_compare.dat", err))) return open_failed(err);
    fprintf(f, "# x(grid position + offset per law)  qid  lo  hi  N  P\n");
    for (size_t law = 0; law < c->n_laws; law++) {
        size_t j = 0;
        for (size_t i = 0; i < c->n_pred; i++) {
            const double *p = c->pred + 7 * i;
            if ((size_t)p[0] != law) continue;
            double x = (double)(++j) + 0.2 * ((double)law - 0.5 * (double)(c->n_laws - 1));
            fprintf(f, "%g %.6g %.6g %.6g %.6g %g\n", x, p[4], isnan(p[5]) ? p[4] : p[5], isnan(p[6]) ? p[4] : p[6],
                    p[1], p[3]);
        }
        fprintf(f, "\n\n");
    }
    return report_close(f, r->dir, "law_compare.dat", err);
}

int report_write_tables(report *r, qid_error *err)
{
    int st;
    if ((st = write_pareto(r->dir, &r->rp, err)) || (st = write_predictor(r->dir, &r->rp, err)) ||
        (st = write_points_csv(r, err)) || (st = write_predictions(r, err)) || (st = write_points_dat(r, err)) ||
        (st = write_lines_dat(r, err)) || (st = write_compare(r, err)))
        return st;
    return QID_OK;
}
