/* fit_store.c - /fits/<name> of a results store (fit_store.h): opening an
 * entry, float64 tables and scalar attributes, the suite of laws `qid fit`
 * writes, and the law, filters and statistics read back from it.
 *
 * Does not: fit, print, or take the store's lock itself (qid_results_write_fit
 * does for every write). */
#include "fit_store.h"

#include <errno.h>
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "h5io.h"
#include "parse.h"
#include "version.h"

#define TRY(x)                                                                                                         \
    do {                                                                                                               \
        if ((x) != QID_OK) goto fail;                                                                                  \
    } while (0)

/* ---- opening /fits/<name> ---------------------------------------------------------- */

/* "fits there: a, b" or "no fits": the entries of /fits (fits may be invalid). */
static void list_fits(hid_t fits, char *list, size_t len)
{
    H5G_info_t info = {0};
    char names[512] = "";
    if (fits >= 0 && H5Gget_info(fits, &info) >= 0)
        for (hsize_t i = 0; i < info.nlinks; i++) {
            char nm[128] = "";
            H5Lget_name_by_idx(fits, ".", H5_INDEX_NAME, H5_ITER_INC, i, nm, sizeof nm, H5P_DEFAULT);
            size_t used = strlen(names);
            snprintf(names + used, sizeof names - used, "%s%s", used ? ", " : "", nm);
        }
    snprintf(list, len, "%s%s", names[0] ? "fits there: " : "no fits", names);
}

/* 1 when obj has a link `name`; 0 when not or on an error (quietly). */
static int has_link(hid_t obj, const char *name)
{
    htri_t have = 0;
    H5E_BEGIN_TRY { have = H5Lexists(obj, name, H5P_DEFAULT); }
    H5E_END_TRY;
    return have > 0;
}

int qid_fit_store_open(const char *store, const char *name, const char *command, const char *default_name,
                       int64_t *fid_out, int64_t *group_out, qid_error *err)
{
    hid_t fid = H5I_INVALID_HID, fits = H5I_INVALID_HID, g = H5I_INVALID_HID;
    char fmt[64];
    *fid_out = *group_out = H5I_INVALID_HID;
    if (access(store, R_OK) != 0) return qid_error_set(err, QID_E_IO, "cannot open '%s': %s", store, strerror(errno));
    H5E_BEGIN_TRY
    {
        fid = H5Fopen(store, H5F_ACC_RDONLY | H5F_ACC_SWMR_READ, H5P_DEFAULT);
        if (fid < 0) fid = H5Fopen(store, H5F_ACC_RDONLY, H5P_DEFAULT);
    }
    H5E_END_TRY;
    if (fid < 0) return qid_error_set(err, QID_E_FORMAT, "cannot open '%s' as an HDF5 file", store);
    if (qid_h5_read_format(fid, fmt, sizeof fmt, err)) goto fail;
    if (strcmp(fmt, QID_RESULTS_FORMAT) != 0) {
        qid_error_set(err, QID_E_FORMAT, "'%s' is not a results store (format '%s')", store, fmt);
        goto fail;
    }
    int have = has_link(fid, "fits");
    if (have) QID_H5_TRY(err, fits = H5Gopen2(fid, "fits", H5P_DEFAULT), "cannot open '/fits' in '%s'", store);
    if (!have || !has_link(fits, name)) {
        char list[600];
        list_fits(fits, list, sizeof list);
        int other = strcmp(name, default_name) != 0;
        qid_error_set(err, QID_E_INVALID, "'%s' has no fit '/fits/%s' (%s; run '%s %s%s%s' first)", store, name, list,
                      command, store, other ? " --name " : "", other ? name : "");
        goto fail;
    }
    QID_H5_TRY(err, g = H5Gopen2(fits, name, H5P_DEFAULT), "cannot open '/fits/%s' in '%s'", name, store);
    H5Gclose(fits);
    *fid_out = fid;
    *group_out = g;
    return QID_OK;
fail:
    if (fits >= 0) H5Gclose(fits);
    H5Fclose(fid);
    return err && err->code ? err->code : QID_E_HDF5;
}

/* ---- tables and attributes ---------------------------------------------------------- */

int qid_fit_store_write_matrix(int64_t group, const char *name, const double *v, size_t rows, size_t cols,
                               const char *columns, qid_error *err)
{
    hid_t g = (hid_t)group, space = H5I_INVALID_HID, d = H5I_INVALID_HID;
    hsize_t dims[2] = {(hsize_t)rows, (hsize_t)cols};
    QID_H5_TRY(err, space = H5Screate_simple(2, dims, NULL), "cannot make the dataspace of '%s'", name);
    QID_H5_TRY(err, d = H5Dcreate2(g, name, H5T_IEEE_F64LE, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
               "cannot create '%s'", name);
    if (rows)
        QID_H5_TRY(err, H5Dwrite(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, v), "cannot write '%s'", name);
    if (qid_h5_attr_write_str(d, "columns", columns, err)) goto fail;
    H5Dclose(d);
    H5Sclose(space);
    return QID_OK;
fail:
    if (d >= 0) H5Dclose(d);
    if (space >= 0) H5Sclose(space);
    return err ? err->code : QID_E_HDF5;
}

int qid_fit_store_read_matrix(int64_t group, const char *where, const char *name, size_t cols, double **v, size_t *rows,
                              qid_error *err)
{
    hid_t g = (hid_t)group, d = H5I_INVALID_HID, space = H5I_INVALID_HID;
    hsize_t dims[2] = {0, 0};
    double *buf = NULL;
    *v = NULL;
    *rows = 0;
    QID_H5_TRY(err, d = H5Dopen2(g, name, H5P_DEFAULT), "cannot open '%s/%s'", where, name);
    QID_H5_TRY(err, space = H5Dget_space(d), "cannot read '%s/%s'", where, name);
    if (H5Sget_simple_extent_ndims(space) != 2 || (H5Sget_simple_extent_dims(space, dims, NULL), dims[1] != cols)) {
        qid_error_set(err, QID_E_FORMAT, "'%s/%s' is not an [n, %zu] dataset", where, name, cols);
        goto fail;
    }
    buf = qid_malloc(qid_mul_size((size_t)dims[0] + 1, cols * sizeof *buf), "fit: stored matrix");
    if (dims[0])
        QID_H5_TRY(err, H5Dread(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf), "cannot read '%s/%s'", where,
                   name);
    H5Sclose(space);
    H5Dclose(d);
    *v = buf;
    *rows = (size_t)dims[0];
    return QID_OK;
fail:
    free(buf);
    if (space >= 0) H5Sclose(space);
    if (d >= 0) H5Dclose(d);
    return err && err->code ? err->code : QID_E_HDF5;
}

int qid_fit_store_write_attrs(int64_t obj, const qid_fit_attr *a, size_t n, qid_error *err)
{
    for (size_t j = 0; j < n; j++) {
        int rc = a[j].type == 'f'   ? qid_h5_attr_write_f64((hid_t)obj, a[j].name, a[j].f, err)
                 : a[j].type == 'i' ? qid_h5_attr_write_i64((hid_t)obj, a[j].name, a[j].i, err)
                                    : qid_h5_attr_write_str((hid_t)obj, a[j].name, a[j].s ? a[j].s : "", err);
        if (rc) return rc;
    }
    return QID_OK;
}

int qid_fit_store_write_provenance(int64_t obj, qid_error *err)
{
    char now[32];
    qid_utc_now(now, sizeof now);
    const qid_fit_attr a[] = {QID_FIT_ATTR_STR("created_utc", now), QID_FIT_ATTR_STR("qid_version", qid_version())};
    return qid_fit_store_write_attrs(obj, a, sizeof a / sizeof a[0], err);
}

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

/* ---- the suite ---------------------------------------------------------------------- */

typedef struct write_ctx {
    const qid_fit_suite *s;
    const qid_fit_compare *cmp;
    const qid_fit_filter *filter;
    const qid_fit_opts *fo;
} write_ctx;

/* The coefficients (under their form's names) and quality of one law (the entry's and each bits/P's). */
static int write_law_attrs(hid_t g, const qid_fit_result *f, qid_error *err)
{
    const qid_fit_form *form = qid_fit_form_of(f->law.form);
    for (int j = 0; j < form->n_coef; j++)
        TRY(qid_h5_attr_write_f64(g, form->coef[j], qid_fit_law_coef(&f->law, j), err));
    if (form->n_coef == QID_FIT_MAX_COEF) TRY(qid_h5_attr_write_f64(g, "lr", f->law.lr, err));
    const qid_fit_attr a[] = {
        QID_FIT_ATTR_I64("n_points", f->n_points),
        QID_FIT_ATTR_I64("n_significant", f->n_significant),
        QID_FIT_ATTR_F64("r2_log", f->r2_log),
        QID_FIT_ATTR_F64("rmse", f->rmse),
        QID_FIT_ATTR_I64("converged", f->conv.converged),
        QID_FIT_ATTR_I64("iterations", f->conv.iterations),
    };
    return qid_fit_store_write_attrs(g, a, N_OF(a), err);
fail:
    return err ? err->code : QID_E_HDF5;
}

/* The scalar attributes of the entry: the unified law, its intervals, counts, settings, filters. */
static int write_unified(hid_t g, const write_ctx *ctx, qid_error *err)
{
    const qid_fit_suite *s = ctx->s;
    const qid_fit_filter *fl = ctx->filter;
    char name[32], bits[256];
    int ci = s->boot.n_draws > 0;
    const qid_fit_form *form = qid_fit_form_of(s->law.law.form);
    TRY(qid_h5_attr_write_str(g, "kind", "unified", err));
    TRY(qid_h5_attr_write_str(g, "law", form->text, err));
    TRY(qid_h5_attr_write_str(g, "form", form->name, err));
    TRY(write_law_attrs(g, &s->law, err));
    for (int j = 0; j < form->n_coef; j++) {
        snprintf(name, sizeof name, "start_%s", form->coef[j]);
        TRY(qid_h5_attr_write_f64(g, name, qid_fit_law_coef(&s->law.start, j), err));
        snprintf(name, sizeof name, "%s_lo", form->coef[j]);
        TRY(qid_h5_attr_write_f64(g, name, ci ? qid_fit_law_coef(&s->boot.lo, j) : NAN, err));
        snprintf(name, sizeof name, "%s_hi", form->coef[j]);
        TRY(qid_h5_attr_write_f64(g, name, ci ? qid_fit_law_coef(&s->boot.hi, j) : NAN, err));
    }
    qid_fit_bits_text(fl->bits_mask, bits, sizeof bits);
    const qid_fit_attr a[] = {
        QID_FIT_ATTR_F64("level", s->boot.n_draws ? s->boot.level : 0.95),
        QID_FIT_ATTR_I64("n_downweighted", s->law.n_downweighted),
        QID_FIT_ATTR_F64("scale", s->law.scale),
        QID_FIT_ATTR_I64("n_checkpoints", s->n_checkpoints),
        QID_FIT_ATTR_I64("n_models", s->n_models),
        QID_FIT_ATTR_I64("n_bits", s->n_bits_values),
        QID_FIT_ATTR_I64("n_tokens", s->n_tokens_values),
        QID_FIT_ATTR_F64("n_min", s->n_min),
        QID_FIT_ATTR_F64("n_max", s->n_max),
        QID_FIT_ATTR_F64("d_min", s->d_min),
        QID_FIT_ATTR_F64("d_max", s->d_max),
        QID_FIT_ATTR_F64("p_min", s->p_min),
        QID_FIT_ATTR_F64("p_max", s->p_max),
        QID_FIT_ATTR_I64("boot", ctx->fo->n_boot),
        QID_FIT_ATTR_I64("boot_draws", s->boot.n_draws),
        QID_FIT_ATTR_I64("boot_failed", s->boot.n_failed),
        QID_FIT_ATTR_I64("seed", ctx->fo->seed),
        QID_FIT_ATTR_F64("z", ctx->fo->z),
        QID_FIT_ATTR_F64("lomo_rmse", s->lomo_status == QID_OK ? s->lomo.rmse : NAN),
        QID_FIT_ATTR_STR("filter_method", fl->method),
        QID_FIT_ATTR_STR("filter_format", fl->format),
        QID_FIT_ATTR_STR("filter_bits", bits),
        QID_FIT_ATTR_STR("filter_models", fl->models),
        QID_FIT_ATTR_F64("min_tokens", fl->min_tokens),
        QID_FIT_ATTR_F64("max_tokens", fl->max_tokens),
        QID_FIT_ATTR_STR("warnings", s->warnings),
    };
    TRY(qid_fit_store_write_attrs(g, a, N_OF(a), err));
    return qid_fit_store_write_provenance(g, err);
fail:
    return err ? err->code : QID_E_HDF5;
}

/* The datasets `draws` [n_draws, n_coef] and `lomo` [n_groups, 4]. */
static int write_draws_lomo(hid_t g, const qid_fit_suite *s, qid_error *err)
{
    size_t nd = s->boot.n_draws, ng = s->lomo_status == QID_OK ? s->lomo.n_groups : 0;
    const qid_fit_form *form = qid_fit_form_of(s->law.law.form);
    const size_t nc = (size_t)form->n_coef;
    double *buf = qid_malloc(qid_mul_size((nd > ng ? nd : ng) + 1, nc * sizeof *buf), "bootstrap draws");
    for (size_t i = 0; i < nd; i++)
        for (size_t j = 0; j < nc; j++)
            buf[nc * i + j] = qid_fit_law_coef(&s->boot.draws[i], (int)j);
    int rc = qid_fit_store_write_matrix(g, "draws", buf, nd, nc, form->columns, err);
    for (size_t i = 0; i < ng; i++) {
        const qid_fit_lomo_row *r = &s->lomo.rows[i];
        buf[4 * i] = r->n, buf[4 * i + 1] = (double)r->n_points;
        buf[4 * i + 2] = r->status == QID_OK ? r->rmse : NAN;
        buf[4 * i + 3] = r->status == QID_OK ? r->mean_abs_log : NAN;
    }
    if (!rc) rc = qid_fit_store_write_matrix(g, "lomo", buf, ng, 4, "n,n_points,rmse,mean_abs_log", err);
    free(buf);
    return rc;
}

/* The group `bits`: one group per bit width. */
static int write_by_bits(hid_t g, const qid_fit_suite *s, qid_error *err)
{
    hid_t bits = H5I_INVALID_HID, sub = H5I_INVALID_HID;
    char text[32];
    QID_H5_TRY(err, bits = H5Gcreate2(g, "bits", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), "cannot create 'bits'");
    for (size_t i = 0; i < s->n_by_bits; i++) {
        const qid_fit_group *b = &s->by_bits[i];
        snprintf(text, sizeof text, "%g", b->p);
        QID_H5_TRY(err, sub = H5Gcreate2(bits, text, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), "cannot create 'bits/%s'",
                   text);
        const qid_fit_attr a[] = {QID_FIT_ATTR_F64("p", b->p), QID_FIT_ATTR_I64("status", b->status),
                                  QID_FIT_ATTR_STR("message", b->status == QID_OK ? "" : b->msg)};
        TRY(qid_fit_store_write_attrs(sub, a, N_OF(a), err));
        if (b->status == QID_OK)
            TRY(write_law_attrs(sub, &b->fit, err));
        else
            TRY(qid_h5_attr_write_i64(sub, "n_points", (int64_t)b->n_points, err));
        H5Gclose(sub);
        sub = H5I_INVALID_HID;
    }
    H5Gclose(bits);
    return QID_OK;
fail:
    if (sub >= 0) H5Gclose(sub);
    if (bits >= 0) H5Gclose(bits);
    return err && err->code ? err->code : QID_E_HDF5;
}

/* factors/<dir> of one per-factor law: its median and its table of groups. */
static int write_factor(hid_t factors, const qid_fit_suite *s, int f, qid_error *err)
{
    const qid_fit_factor_info *fi = &qid_fit_factors[f];
    /* Kumar's law has no power of P: its gamma_post is not the per-factor gamma. */
    const double unified[QID_FIT_N_FACTORS] = {s->law.law.beta, s->law.law.alpha,
                                               s->law.law.form == QID_FIT_FORM_OUYANG ? s->law.law.gamma : NAN};
    hid_t sub = H5I_INVALID_HID;
    double *buf = NULL;
    QID_H5_TRY(err, sub = H5Gcreate2(factors, fi->dir, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
               "cannot create 'factors/%s'", fi->dir);
    const qid_fit_attr a[] = {QID_FIT_ATTR_STR("law", fi->law),
                              QID_FIT_ATTR_STR("exponent", fi->exponent),
                              QID_FIT_ATTR_F64("median", s->factor_median[f]),
                              QID_FIT_ATTR_I64("n_used", s->factor_used[f]),
                              QID_FIT_ATTR_I64("n_groups", s->n_factor[f]),
                              QID_FIT_ATTR_F64("unified", unified[f])};
    TRY(qid_fit_store_write_attrs(sub, a, N_OF(a), err));
    size_t nfg = s->n_factor[f];
    buf = qid_malloc(qid_mul_size(nfg ? nfg : 1, 8 * sizeof *buf), "per-factor table");
    for (size_t i = 0; i < nfg; i++) {
        const qid_fit_group *gr = &s->factor[f][i];
        int okg = gr->status == QID_OK;
        double *b = buf + 8 * i;
        b[0] = gr->n, b[1] = gr->d, b[2] = gr->p, b[3] = (double)gr->n_points, b[4] = gr->status;
        b[5] = okg ? gr->fit.law.k : NAN;
        b[6] = okg ? qid_fit_group_exponent(gr, fi->by) : NAN;
        b[7] = okg ? gr->fit.r2_log : NAN;
    }
    TRY(qid_fit_store_write_matrix(sub, "groups", buf, nfg, 8, "n,d,p,n_points,status,c,exponent,r2_log", err));
    free(buf);
    H5Gclose(sub);
    return QID_OK;
fail:
    free(buf);
    if (sub >= 0) H5Gclose(sub);
    return err && err->code ? err->code : QID_E_HDF5;
}

/* The group `loss16`: the 16-bit loss law or why there is none. */
static int write_loss16(hid_t g, const qid_fit_suite *s, qid_error *err)
{
    hid_t sub = H5I_INVALID_HID;
    int okl = s->loss16_status == QID_OK;
    const qid_fit_loss16 *l = &s->loss16.law;
    QID_H5_TRY(err, sub = H5Gcreate2(g, "loss16", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), "cannot create 'loss16'");
    const qid_fit_attr a[] = {QID_FIT_ATTR_STR("law", "L = [(nc/N)^(an/ad) + dc/D]^ad"),
                              QID_FIT_ATTR_I64("status", s->loss16_status),
                              QID_FIT_ATTR_STR("message", okl ? "" : s->loss16_msg),
                              QID_FIT_ATTR_I64("n_points", s->n_loss16_points),
                              QID_FIT_ATTR_F64("nc", okl ? l->nc : NAN),
                              QID_FIT_ATTR_F64("dc", okl ? l->dc : NAN),
                              QID_FIT_ATTR_F64("an", okl ? l->an : NAN),
                              QID_FIT_ATTR_F64("ad", okl ? l->ad : NAN),
                              QID_FIT_ATTR_F64("rmse_log", okl ? s->loss16.rmse_log : NAN),
                              QID_FIT_ATTR_F64("r2_log", okl ? s->loss16.r2_log : NAN),
                              QID_FIT_ATTR_I64("converged", okl ? s->loss16.conv.converged : 0)};
    int rc = qid_fit_store_write_attrs(sub, a, N_OF(a), err);
    H5Gclose(sub);
    return rc;
fail:
    return err && err->code ? err->code : QID_E_HDF5;
}

/* The group `compare`: the law forms side by side (fit_compare.h). */
static int write_compare(hid_t g, const qid_fit_compare *c, const qid_fit_opts *fo, qid_error *err)
{
    hid_t sub = H5I_INVALID_HID;
    double *buf = NULL;
    char laws[128] = "";
    for (size_t f = 0; f < c->n_laws; f++)
        snprintf(laws + strlen(laws), sizeof laws - strlen(laws), "%s%s", f ? "," : "",
                 qid_fit_form_of(c->law[f].form)->name);
    QID_H5_TRY(err, sub = H5Gcreate2(g, "compare", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), "cannot create 'compare'");
    const qid_fit_attr a[] = {
        QID_FIT_ATTR_STR("laws", laws),
        QID_FIT_ATTR_STR("likelihood", "ln qid ~ Normal(ln law, sigma^2 (se/qid)^2) on the points with qid > z*se, "
                                       "sigma^2 at its maximum; k = coefficients + 1"),
        QID_FIT_ATTR_STR("lfo_rule", "each model size: points with ln D <= ln D_min + cut (ln D_max - ln D_min) "
                                     "fitted, the later ones predicted"),
        QID_FIT_ATTR_F64("cut", c->cut),
        QID_FIT_ATTR_STR("best_lfo", qid_fit_form_of(c->law[c->best_lfo].form)->name),
        QID_FIT_ATTR_I64("n_points", c->n_points),
        QID_FIT_ATTR_I64("n_significant", c->n_significant),
        QID_FIT_ATTR_I64("n_past", c->n_past),
        QID_FIT_ATTR_I64("n_future", c->n_future),
        QID_FIT_ATTR_I64("n_future_significant", c->n_future_significant),
        QID_FIT_ATTR_I64("n_future_checkpoints", c->n_future_checkpoints),
        QID_FIT_ATTR_I64("boot", c->n_boot),
        QID_FIT_ATTR_I64("seed", fo->seed),
        QID_FIT_ATTR_F64("level", c->level),
    };
    TRY(qid_fit_store_write_attrs(sub, a, N_OF(a), err));
    enum { LC = 10 + QID_FIT_MAX_COEF, PC = 5, RC = 7 };
    buf = qid_malloc(qid_mul_size(c->n_laws * QID_FIT_COMPARE_N_PRED + 1, LC * sizeof *buf), "law comparison table");
    for (size_t f = 0; f < c->n_laws; f++) {
        const qid_fit_compare_law *L = &c->law[f];
        double *b = buf + LC * f;
        b[0] = (double)L->n_coef, b[1] = L->wrmse_log, b[2] = L->loglik, b[3] = L->aic, b[4] = L->bic;
        b[5] = L->lomo_err, b[6] = (double)L->lomo_failed, b[7] = L->lfo_err, b[8] = L->fit.r2_log;
        b[9] = L->fit.rmse;
        for (int j = 0; j < QID_FIT_MAX_COEF; j++)
            b[10 + j] = j < qid_fit_form_of(L->fit.law.form)->n_coef ? qid_fit_law_coef(&L->fit.law, j) : NAN;
    }
    TRY(qid_fit_store_write_matrix(sub, "laws_table", buf, c->n_laws, LC,
                                   "n_coef,wrmse_log,loglik,aic,bic,lomo_err,lomo_failed,lfo_err,r2_log,rmse,c0,c1,c2,"
                                   "c3,c4",
                                   err));
    for (size_t p = 0; p < c->n_pairs; p++) {
        const qid_fit_compare_pair *P = &c->pair[p];
        double *b = buf + PC * p;
        b[0] = P->a, b[1] = P->b, b[2] = P->diff, b[3] = P->lo, b[4] = P->hi;
    }
    TRY(qid_fit_store_write_matrix(sub, "pairs", buf, c->n_pairs, PC, "law_a,law_b,lfo_diff,lo,hi", err));
    size_t r = 0;
    for (size_t f = 0; f < c->n_laws; f++)
        for (int j = 0; j < QID_FIT_COMPARE_N_PRED; j++, r++) {
            double *b = buf + RC * r;
            b[0] = (double)f, b[1] = qid_fit_compare_pred_n[j / 3], b[2] = qid_fit_compare_pred_d;
            b[3] = qid_fit_compare_pred_p[j % 3], b[4] = c->law[f].pred[j], b[5] = c->law[f].pred_lo[j];
            b[6] = c->law[f].pred_hi[j];
        }
    TRY(qid_fit_store_write_matrix(sub, "predictions", buf, r, RC, "law,n,d,p,qid,lo,hi", err));
    free(buf);
    H5Gclose(sub);
    return QID_OK;
fail:
    free(buf);
    if (sub >= 0) H5Gclose(sub);
    return err && err->code ? err->code : QID_E_HDF5;
}

static int write_suite(int64_t group, void *vctx, qid_error *err)
{
    const write_ctx *ctx = vctx;
    hid_t g = (hid_t)group, factors = H5I_INVALID_HID;
    TRY(write_unified(g, ctx, err));
    TRY(write_draws_lomo(g, ctx->s, err));
    TRY(write_by_bits(g, ctx->s, err));
    QID_H5_TRY(err, factors = H5Gcreate2(g, "factors", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
               "cannot create 'factors'");
    for (int f = 0; f < QID_FIT_N_FACTORS; f++)
        TRY(write_factor(factors, ctx->s, f, err));
    H5Gclose(factors);
    factors = H5I_INVALID_HID;
    TRY(write_loss16(g, ctx->s, err));
    return ctx->cmp ? write_compare(g, ctx->cmp, ctx->fo, err) : QID_OK;
fail:
    if (factors >= 0) H5Gclose(factors);
    return err && err->code ? err->code : QID_E_HDF5;
}

int qid_fit_store_write_suite(const char *store, const char *name, const qid_fit_suite *s, const qid_fit_compare *cmp,
                              const qid_fit_filter *filter, const qid_fit_opts *fo, qid_error *err)
{
    write_ctx ctx = {s, cmp, filter, fo};
    return qid_results_write_fit(store, name, write_suite, &ctx, err);
}

/* ---- reading a stored law ----------------------------------------------------------- */

/* Reads the string attribute `name` of g into buf when g has it (buf is left as it is otherwise). */
static int read_str_if(hid_t g, const char *where, const char *name, char *buf, size_t len, qid_error *err)
{
    return qid_h5_attr_exists(g, name) > 0 ? qid_h5_attr_read_str(g, where, name, buf, len, err) : QID_OK;
}

int qid_fit_store_read_law(const char *store, const char *name, qid_fit_law *law, qid_fit_law **draws, size_t *n_draws,
                           double *level, qid_error *err)
{
    int64_t fid, g;
    double v[QID_FIT_MAX_COEF] = {0}, lr = NAN;
    char where[300];
    if (draws) *draws = NULL;
    if (n_draws) *n_draws = 0;
    int rc = qid_fit_store_open(store, name, "qid fit", "default", &fid, &g, err);
    if (rc) return rc;
    snprintf(where, sizeof where, "/fits/%s", name);
    char kind[32] = "unified";
    if (qid_h5_attr_exists(g, "kind") > 0 && qid_h5_attr_read_str(g, where, "kind", kind, sizeof kind, err)) goto fail;
    if (strcmp(kind, "unified") != 0) {
        qid_error_set(err, QID_E_INVALID, "'%s' in '%s' is not a law of QiD (kind '%s'; 'qid fit' writes laws)", where,
                      store, kind);
        goto fail;
    }
    char fname[32] = "ouyang"; /* fits written before the forms have no `form` */
    if (read_str_if(g, where, "form", fname, sizeof fname, err)) goto fail;
    int form = qid_fit_form_find(fname);
    if (form < 0) {
        qid_error_set(err, QID_E_FORMAT, "'%s' in '%s' is a law of form '%s', which this qid does not know (forms: %s)",
                      where, store, fname, qid_fit_form_list());
        goto fail;
    }
    const size_t nc = (size_t)qid_fit_forms[form].n_coef;
    for (size_t j = 0; j < nc; j++)
        if (qid_h5_attr_read_f64(g, where, qid_fit_forms[form].coef[j], &v[j], err)) goto fail;
    if (nc == QID_FIT_MAX_COEF && qid_h5_attr_read_f64(g, where, "lr", &lr, err)) goto fail;
    *law = (qid_fit_law){.k = v[0], .alpha = v[1], .beta = v[2], .gamma = v[3], .delta = v[4], .lr = lr, .form = form};
    if (level && qid_h5_attr_read_f64(g, where, "level", level, err)) goto fail;
    if (draws && has_link(g, "draws")) {
        double *buf = NULL;
        size_t nd = 0;
        if (qid_fit_store_read_matrix(g, where, "draws", nc, &buf, &nd, err)) goto fail;
        qid_fit_law *dr = qid_malloc(qid_mul_size(nd + 1, sizeof *dr), "bootstrap draws");
        for (size_t i = 0; i < nd; i++) {
            dr[i] = (qid_fit_law){.lr = lr, .form = form};
            for (size_t j = 0; j < nc; j++)
                qid_fit_law_set_coef(&dr[i], (int)j, buf[nc * i + j]);
        }
        free(buf);
        *draws = dr;
        *n_draws = nd;
    }
    H5Gclose(g);
    H5Fclose(fid);
    return QID_OK;
fail:
    H5Gclose(g);
    H5Fclose(fid);
    return err && err->code ? err->code : QID_E_HDF5;
}

int qid_fit_store_read_filters(const char *store, const char *name, char *method, size_t method_len, char *format,
                               size_t format_len, uint64_t *bits_mask, qid_error *err)
{
    int64_t fid, g;
    char where[300], bits[256] = "";
    method[0] = format[0] = '\0';
    *bits_mask = 0;
    int rc = qid_fit_store_open(store, name, "qid fit", "default", &fid, &g, err);
    if (rc) return rc;
    snprintf(where, sizeof where, "/fits/%s", name);
    if (!(rc = read_str_if(g, where, "filter_method", method, method_len, err)) &&
        !(rc = read_str_if(g, where, "filter_format", format, format_len, err)) &&
        !(rc = read_str_if(g, where, "filter_bits", bits, sizeof bits, err))) {
        int64_t *p = NULL;
        size_t np = 0;
        if (bits[0] && qid_parse_int_list(bits, INT64_MIN, INT64_MAX, &p, &np) == 0)
            for (size_t i = 0; i < np; i++)
                if (p[i] > 0 && p[i] < 64) *bits_mask |= (uint64_t)1 << p[i];
        free(p);
    }
    H5Gclose((hid_t)g);
    H5Fclose((hid_t)fid);
    return rc;
}

int qid_fit_store_read_stats(const char *store, const char *name, qid_fit_stats *st, qid_error *err)
{
    static const char *const names[] = {"r2_log", "rmse",  "n_points", "converged", "iterations", "n_min",
                                        "n_max",  "d_min", "d_max",    "p_min",     "p_max"};
    double *dst[] = {&st->r2_log, &st->rmse,  &st->n_points, &st->converged, &st->iterations, &st->n_min,
                     &st->n_max,  &st->d_min, &st->d_max,    &st->p_min,     &st->p_max};
    int64_t fid, g;
    char where[300];
    for (size_t j = 0; j < N_OF(dst); j++)
        *dst[j] = NAN;
    int rc = qid_fit_store_open(store, name, "qid fit", "default", &fid, &g, err);
    if (rc) return rc;
    snprintf(where, sizeof where, "/fits/%s", name);
    for (size_t j = 0; j < N_OF(dst); j++) {
        qid_error e;
        qid_error_clear(&e);
        if (qid_h5_attr_exists(g, names[j]) > 0 && qid_h5_attr_read_f64(g, where, names[j], dst[j], &e)) *dst[j] = NAN;
    }
    H5Gclose((hid_t)g);
    H5Fclose((hid_t)fid);
    return QID_OK;
}

/* ---- the stored comparison ------------------------------------------------------- */

void qid_fit_compare_stored_free(qid_fit_compare_stored *c)
{
    free(c->pred);
    memset(c, 0, sizeof *c);
}

int qid_fit_store_read_compare(const char *store, const char *name, qid_fit_compare_stored *c, qid_error *err)
{
    int64_t fid, g;
    hid_t sub = H5I_INVALID_HID;
    double *table = NULL;
    char where[300], laws[128] = "";
    memset(c, 0, sizeof *c);
    int rc = qid_fit_store_open(store, name, "qid fit", "default", &fid, &g, err);
    if (rc) return rc;
    if (!has_link(g, "compare")) {
        H5Gclose(g);
        H5Fclose(fid);
        return 1;
    }
    snprintf(where, sizeof where, "/fits/%s/compare", name);
    QID_H5_TRY(err, sub = H5Gopen2(g, "compare", H5P_DEFAULT), "cannot open '%s' in '%s'", where, store);
    if (qid_h5_attr_read_str(sub, where, "laws", laws, sizeof laws, err)) goto fail;
    if (qid_h5_attr_read_str(sub, where, "best_lfo", c->best_lfo, sizeof c->best_lfo, err)) goto fail;
    for (char *save = NULL, *w = strtok_r(laws, ",", &save); w && c->n_laws < QID_FIT_N_FORMS;
         w = strtok_r(NULL, ",", &save))
        snprintf(c->name[c->n_laws++], sizeof c->name[0], "%s", w);
    /* laws_table: n_coef,wrmse_log,loglik,aic,bic,lomo_err,lomo_failed,lfo_err,... (14 columns before the
     * learning-rate form, 15 after) */
    size_t rows = 0, cols = 10 + QID_FIT_MAX_COEF;
    if (qid_fit_store_read_matrix(sub, where, "laws_table", cols, &table, &rows, NULL)) {
        cols = 14;
        if (qid_fit_store_read_matrix(sub, where, "laws_table", cols, &table, &rows, err)) goto fail;
    }
    if (rows != c->n_laws) {
        qid_error_set(err, QID_E_FORMAT, "'%s' in '%s': %zu rows in laws_table for %zu laws", where, store, rows,
                      c->n_laws);
        goto fail;
    }
    for (size_t f = 0; f < rows; f++)
        c->aic[f] = table[cols * f + 3], c->lomo_err[f] = table[cols * f + 5], c->lfo_err[f] = table[cols * f + 7];
    if (qid_fit_store_read_matrix(sub, where, "predictions", 7, &c->pred, &c->n_pred, err)) goto fail;
    free(table);
    H5Gclose(sub);
    H5Gclose(g);
    H5Fclose(fid);
    return QID_OK;
fail:
    free(table);
    if (sub >= 0) H5Gclose(sub);
    H5Gclose(g);
    H5Fclose(fid);
    qid_fit_compare_stored_free(c);
    return err && err->code ? err->code : QID_E_FORMAT;
}

/* ---- the entries ------------------------------------------------------------------- */

/* Attribute `name` of g as text: a string as it is, a number with %g ("" when absent). */
static void attr_text(hid_t g, const char *name, char *buf, size_t len)
{
    buf[0] = '\0';
    if (!qid_h5_attr_exists(g, name)) return;
    if (qid_h5_attr_read_str(g, ".", name, buf, len, NULL) == QID_OK) return;
    double v = NAN;
    if (qid_h5_attr_read_f64(g, ".", name, &v, NULL) == QID_OK) snprintf(buf, len, "%g", v);
}

int qid_fit_store_entries(const char *store, qid_fit_entry **out, size_t *n, qid_error *err)
{
    *out = NULL;
    *n = 0;
    hid_t fid = qid_h5_open_format(store, QID_RESULTS_FORMAT, QID_RESULTS_SCHEMA_VERSION, NULL, err);
    if (fid < 0) return err ? err->code : QID_E_FORMAT;
    if (!has_link(fid, "fits")) {
        H5Fclose(fid);
        return QID_OK;
    }
    hid_t fits = H5Gopen2(fid, "fits", H5P_DEFAULT);
    H5G_info_t info = {0};
    if (fits < 0 || H5Gget_info(fits, &info) < 0) {
        if (fits >= 0) H5Gclose(fits);
        H5Fclose(fid);
        return qid_error_set(err, QID_E_HDF5, "cannot read '/fits' in '%s'", store);
    }
    qid_fit_entry *e = qid_calloc(info.nlinks + 1, sizeof *e, "the fits of a store");
    for (hsize_t i = 0; i < info.nlinks; i++) {
        qid_fit_entry *x = &e[*n];
        H5Lget_name_by_idx(fits, ".", H5_INDEX_NAME, H5_ITER_INC, i, x->name, sizeof x->name, H5P_DEFAULT);
        hid_t g = H5Gopen2(fits, x->name, H5P_DEFAULT);
        if (g < 0) continue;
        char method[64], format[64], bits[128], models[160], lo[32], hi[32];
        attr_text(g, "kind", x->kind, sizeof x->kind);
        if (!x->kind[0]) snprintf(x->kind, sizeof x->kind, "unified");
        attr_text(g, "form", x->form, sizeof x->form);
        if (!x->form[0] && strcmp(x->kind, "unified") == 0) snprintf(x->form, sizeof x->form, "ouyang");
        attr_text(g, "created_utc", x->created, sizeof x->created);
        attr_text(g, "filter_method", method, sizeof method);
        attr_text(g, "filter_format", format, sizeof format);
        attr_text(g, "filter_bits", bits, sizeof bits);
        attr_text(g, "filter_models", models, sizeof models);
        attr_text(g, "min_tokens", lo, sizeof lo);
        attr_text(g, "max_tokens", hi, sizeof hi);
        if (strcmp(x->kind, "unified") == 0)
            snprintf(x->filters, sizeof x->filters, "method %s, format %s, bits %s, models %s, tokens [%s, %s]",
                     method[0] ? method : "any", format[0] ? format : "any", bits[0] ? bits : "any",
                     models[0] ? models : "all", lo[0] ? lo : "0", hi[0] ? hi : "inf");
        x->compare = has_link(g, "compare");
        H5Gclose(g);
        (*n)++;
    }
    H5Gclose(fits);
    H5Fclose(fid);
    *out = e;
    return QID_OK;
}
