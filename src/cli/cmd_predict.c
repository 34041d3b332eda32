/* cmd_predict.c - `qid predict`: its options, usage and printing (cli_fit.h):
 * QiD on a grid, the tokens to reach a QiD, and the training level a QiD
 * or a checkpoint of the store implies, from a stored fit (fit_store.h) or
 * coefficients given with --law; the training level of a checkpoint is
 * fit_level.h's.
 *
 * Does not: fit, or read rows itself. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cli_fit.h"
#include "fit_store.h"
#include "parse.h"

/* ---- the training level of a checkpoint ---------------------------------------------- */

static const char *nz(const char *s) { return s ? s : ""; }

/* An interval that spans more than this factor says the data do not constrain the value. */
#define WIDE_INTERVAL 1e4

/* "  (uninformative: the interval spans 117 orders of magnitude)" for an interval that wide or unbounded; ""
 * otherwise. */
static const char *interval_flag(double lo, double hi, char *buf, size_t len)
{
    buf[0] = '\0';
    if (isnan(lo) && isnan(hi)) return buf;
    if (!(lo > 0) || !isfinite(hi))
        snprintf(buf, len, "  (uninformative: an unbounded interval)");
    else if (hi / lo > WIDE_INTERVAL)
        snprintf(buf, len, "  (uninformative: the interval spans %.0f orders of magnitude)", log10(hi / lo));
    return buf;
}

static void print_level_ckpt(FILE *out, const qid_fit_level *lv, const qid_fit_level_ckpt *c)
{
    const qid_result *r0 = &lv->rows[c->row];
    fprintf(out, "checkpoint %s: model %s, N %.4g, step %lld, tokens seen %.4g\n", nz(r0->checkpoint), nz(r0->model),
            c->n, (long long)r0->step, c->seen);
    if (!c->n_rows) {
        fprintf(out, "  no quantizer row of this checkpoint passes the fit's filters\n");
        return;
    }
    fprintf(out, "  %-4s %-6s %-16s %10s %9s %12s %8s", "P", "method", "format", "QiD", "se", "D implied", "/ seen");
    if (lv->ci) fprintf(out, "  %.0f%% interval (bootstrap)", 100 * lv->level);
    fprintf(out, "\n");
    for (size_t a = 0; a < c->n_rows; a++) {
        const qid_fit_level_row *lr = &c->rows[a];
        const qid_result *r = &lv->rows[lr->row];
        fprintf(out, "  %-4g %-6s %-16s %10.5g %9.3g %12.4g %8.3g", lr->p, nz(r->method), nz(r->format), r->qid,
                r->qid_se, lr->t, lr->t / c->seen);
        char flag[96] = "";
        if (lv->ci) fprintf(out, "  [%.4g, %.4g]%s", lr->lo, lr->hi, interval_flag(lr->lo, lr->hi, flag, sizeof flag));
        fprintf(out, "%s\n", r->qid > 0 ? "" : "  (QiD <= 0: no D)");
    }
    fprintf(out, "  %-28s %21s %12.4g %8.3g", "all bit widths together", "(weights 1/se^2)", c->t, c->t / c->seen);
    char flag[96] = "";
    if (lv->ci) fprintf(out, "  [%.4g, %.4g]%s", c->lo, c->hi, interval_flag(c->lo, c->hi, flag, sizeof flag));
    fprintf(out, "\n");
}

int qid_fit_cmd_training_level(const char *store, const char *which, const qid_fit_law *law, const qid_fit_law *draws,
                               size_t n_draws, double level, const char *method, const char *format, uint64_t bits_mask,
                               FILE *out, qid_error *err)
{
    qid_fit_level lv;
    int rc = qid_fit_level_of_store(store, which, law, draws, n_draws, level, method, format, bits_mask, &lv, err);
    if (rc) return rc;
    for (size_t c = 0; c < lv.n_ckpts; c++)
        print_level_ckpt(out, &lv, &lv.ckpts[c]);
    qid_fit_level_free(&lv);
    return QID_OK;
}

/* ---- the command line ------------------------------------------------------------------ */

static void predict_usage(FILE *out)
{
    fprintf(out, "usage: qid predict STORE [--fit NAME] | --law k,alpha,beta,gamma [--form NAME]\n"
                 "                   --params N,... --bits P,... (--tokens D,... | --tokens-for QID,... |\n"
                 "                   --training-level QID,...)\n"
                 "       qid predict STORE [--fit NAME | --law k,alpha,beta,gamma] [--bits P,...]\n"
                 "                   --training-level CKPT\n"
                 "\n"
                 "Evaluates QiD = k D^beta / (N^alpha P^gamma), from /fits/NAME of a store (with\n"
                 "bootstrap intervals when the fit has draws) or from coefficients given with\n"
                 "--law (e.g. Ouyang et al.'s --law 0.017,0.2261,0.5251,5.4967), on the grid of\n"
                 "the lists given. A stored fit carries its law form (qid fit --law NAME); --form\n"
                 "kumar reads the --law coefficients as C,gamma_N,gamma_D,gamma_post of\n"
                 "QiD = C D^gamma_D N^-gamma_N exp(-P/gamma_post) (Kumar et al. 2025).\n"
                 "  --tokens D,...           the QiD predicted after D training tokens\n"
                 "  --tokens-for QID,...     the training tokens after which QiD reaches this value\n"
                 "                           (D = (QiD N^alpha P^gamma / k)^(1/beta))\n"
                 "  --training-level QID,... the training level D a measured QiD implies for N and P\n"
                 "  --training-level CKPT    the D that checkpoint CKPT's measured QiD at each bit width\n"
                 "                           of the store implies, next to its actual tokens seen, and all\n"
                 "                           bit widths together (weighted least squares); CKPT is the\n"
                 "                           checkpoint's path as the job names it, its file name, its\n"
                 "                           tensor hash, or a model name (every checkpoint of the model).\n"
                 "                           Uses the rows the fit was made from (its method, format and\n"
                 "                           bits filters; --bits narrows them)\n"
                 "  --fit NAME               the stored fit to use (default 'default')\n"
                 "  --form NAME              the form of the --law coefficients: ouyang (default), kumar,\n"
                 "                           or ouyang-lr (k,alpha,beta,gamma,delta of\n"
                 "                           QiD = k D^beta / (N^alpha P^gamma) exp(delta (1 - lr)))\n"
                 "  --lr R                   ouyang-lr: predict at learning rate R of the peak (default: the\n"
                 "                           fit's, the lowest of its points: the end of their schedule)\n"
                 "  --level L                interval level (default: the fit's, 0.95)\n");
}

/* A list of positive numbers (parse.h's list syntax). */
typedef struct num_list {
    double *v;
    size_t n;
} num_list;

static int take_positive_list(const char *value, void *dest)
{
    num_list *l = dest;
    double *v = NULL;
    size_t n = 0;
    if (qid_parse_real_list(value, &v, &n)) return -1;
    for (size_t i = 0; i < n; i++)
        if (!(v[i] > 0)) {
            free(v);
            return -1;
        }
    free(l->v);
    l->v = v, l->n = n;
    return 0;
}

/* --law k,alpha,beta,gamma[,delta]: four or five reals (the exponents of any sign), the slots of the law's
 * form; the count is checked against --form once both are known. */
typedef struct law_arg {
    qid_fit_law law;
    size_t n;
} law_arg;

static int take_law(const char *value, void *dest)
{
    double *v = NULL;
    size_t n = 0;
    if (qid_parse_real_list(value, &v, &n)) return -1;
    law_arg *a = dest;
    if (n == 4 || n == QID_FIT_MAX_COEF) {
        for (size_t j = 0; j < n; j++)
            qid_fit_law_set_coef(&a->law, (int)j, v[j]);
        a->n = n;
    }
    free(v);
    return n == 4 || n == QID_FIT_MAX_COEF ? 0 : -1;
}

/* "note: extrapolation: ..." when the grid leaves the range of N, D and P the fit saw (st: the stored fit's;
 * NaN ranges, as a --law or an older fit has, say nothing). */
static void print_extrapolation(const qid_fit_stats *st, const num_list *N, const num_list *P, const num_list *D)
{
    char msg[512] = "";
    size_t used = 0;
    const struct {
        const char *name;
        const num_list *l;
        double lo, hi;
    } v[3] = {{"N", N, st->n_min, st->n_max}, {"D", D, st->d_min, st->d_max}, {"P", P, st->p_min, st->p_max}};
    for (int k = 0; k < 3; k++) {
        if (!v[k].l || !(v[k].lo > 0) || !(v[k].hi > 0)) continue;
        double top = 0, bottom = INFINITY;
        for (size_t i = 0; i < v[k].l->n; i++)
            top = fmax(top, v[k].l->v[i]), bottom = fmin(bottom, v[k].l->v[i]);
        if (top > v[k].hi)
            used +=
                (size_t)snprintf(msg + used, sizeof msg - used, "%s%s up to %.3g is %.3gx the largest fitted (%.3g)",
                                 used ? "; " : "", v[k].name, top, top / v[k].hi, v[k].hi);
        if (bottom < v[k].lo && used < sizeof msg)
            used += (size_t)snprintf(msg + used, sizeof msg - used,
                                     "%s%s down to %.3g is %.3gx below the smallest fitted (%.3g)", used ? "; " : "",
                                     v[k].name, bottom, v[k].lo / bottom, v[k].lo);
        if (used >= sizeof msg) break;
    }
    if (msg[0]) printf("note: extrapolation beyond the points the law was fitted to: %s\n", msg);
}

/* The grid of --tokens (mode 'D') or --tokens-for / --training-level QID (mode 'T', 'R'). */
static void print_grid(int mode, const qid_fit_law *law, const qid_fit_boot *boot, const qid_fit_stats *st,
                       const num_list *N, const num_list *P, const num_list *X)
{
    int ci = boot->n_draws >= 2;
    double level = boot->level;
    if (mode == 'D')
        printf("%-10s %-10s %-4s %12s", "N", "D", "P", "QiD");
    else
        printf("%-10s %-4s %-8s %12s %12s", "N", "P", "QiD", mode == 'T' ? "D (tokens)" : "D implied", "D (T tokens)");
    if (ci) printf("  %.0f%% interval (bootstrap, %s)", 100 * level, mode == 'D' ? "QiD" : "tokens");
    printf("\n");
    for (size_t i = 0; i < N->n; i++)
        for (size_t k = 0; k < P->n; k++)
            for (size_t j = 0; j < X->n; j++) {
                double n = N->v[i], p = P->v[k], x = X->v[j], mid, lo = NAN, hi = NAN;
                char outside[80] = "";
                if (mode == 'D') {
                    if (ci) qid_fit_predict_ci(boot, &n, &x, &p, 1, level, &mid, &lo, &hi);
                    printf("%-10.4g %-10.4g %-4g %12.5g", n, x, p, qid_fit_law_eval(law, n, x, p));
                } else {
                    double t = qid_fit_tokens_for(law, x, n, p);
                    if (ci) qid_fit_tokens_for_ci(boot, &x, &n, &p, 1, level, &mid, &lo, &hi);
                    printf("%-10.4g %-4g %-8g %12.4g %12.4g", n, p, x, t, t / 1e12);
                    if (st->d_min > 0 && (t < st->d_min || t > st->d_max))
                        snprintf(outside, sizeof outside, "  (D outside the fitted %.3g..%.3g)", st->d_min, st->d_max);
                }
                char flag[96];
                if (ci) printf("  [%.4g, %.4g]%s", lo, hi, interval_flag(lo, hi, flag, sizeof flag));
                printf("%s\n", outside);
            }
}

/* --training-level CKPT: the rows of the stored fit's filters (narrowed by --bits). */
static int predict_level(const char *store, const char *fit_name, const char *which, int law_given,
                         const qid_fit_law *law, const qid_fit_boot *boot, const num_list *P)
{
    char fm[64] = "", ff[128] = "";
    uint64_t mask = 0;
    qid_error err;
    qid_error_clear(&err);
    if (!law_given && qid_fit_store_read_filters(store, fit_name, fm, sizeof fm, ff, sizeof ff, &mask, &err))
        return cli_fail("predict", "%s", err.msg);
    for (size_t k = 0; k < P->n; k++)
        if (P->v[k] == floor(P->v[k]) && P->v[k] < 64) mask |= (uint64_t)1 << (int)P->v[k];
    if (fm[0] || ff[0] || mask)
        printf("rows: method %s, format %s, bits %s (%s)\n", fm[0] ? fm : "any", ff[0] ? ff : "any",
               mask ? "as listed" : "any", P->n ? "--bits" : "the fit's filters");
    if (qid_fit_cmd_training_level(store, which, law, boot->draws, boot->n_draws, boot->level, fm, ff, mask, stdout,
                                   &err)) {
        fflush(stdout);
        return cli_fail("predict", "%s", err.msg);
    }
    return 0;
}

/* "law (ouyang): k 0.017, alpha 0.2261, beta 0.5251, gamma 5.4967" under the form's names. */
static void print_law(const qid_fit_law *law)
{
    const qid_fit_form *f = qid_fit_form_of(law->form);
    printf("law (%s): %s %.6g, %s %.6g, %s %.6g, %s %.6g", f->name, f->coef[0], law->k, f->coef[1], law->alpha,
           f->coef[2], law->beta, f->coef[3], law->gamma);
    if (f->n_coef == QID_FIT_MAX_COEF) printf(", %s %.6g at lr %.4g of the peak", f->coef[4], law->delta, law->lr);
}

/* The law to use: --law, or /fits/<fit_name> of the store with its draws;
 * law->lr, when given (--lr), replaces the fit's for the law and its draws. */
static int predict_law(const char *store, const char *fit_name, int law_given, qid_fit_law *law, qid_fit_boot *boot,
                       double level)
{
    const double want_lr = law->lr;
    boot->level = level;
    if (law_given) {
        print_law(law);
        printf(" (given with --law)\n");
    } else {
        qid_error err;
        qid_error_clear(&err);
        double stored_level = 0.95;
        if (qid_fit_store_read_law(store, fit_name, law, &boot->draws, &boot->n_draws, &stored_level, &err))
            return cli_fail("predict", "%s", err.msg);
        if (!(boot->level > 0)) boot->level = stored_level;
        if (!isnan(want_lr) && qid_fit_form_of(law->form)->n_coef == QID_FIT_MAX_COEF) {
            law->lr = want_lr;
            for (size_t b = 0; b < boot->n_draws; b++)
                boot->draws[b].lr = want_lr;
        }
        print_law(law);
        printf(" (/fits/%s of %s, %zu bootstrap draws)\n", fit_name, store, boot->n_draws);
    }
    if (!(boot->level > 0)) boot->level = 0.95;
    return 0;
}

int qid_predict_main(int argc, char **argv)
{
    const char *fit_name = "default", *training = NULL;
    num_list N = {0}, D = {0}, P = {0}, Q = {0};
    law_arg la = {.law = {.k = NAN, .alpha = NAN, .beta = NAN, .gamma = NAN, .lr = NAN, .form = QID_FIT_FORM_OUYANG}};
    qid_fit_law law;
    int form = -1; /* --form; -1: not given */
    double level = NAN, lr = NAN;
    const char *list_want = "positive numbers separated by commas, e.g. 7e9,70e9";
    const cli_opt opts[] = {
        CLI_OPT_STR("fit", &fit_name),
        CLI_OPT_FN("law", &la, take_law, "k,alpha,beta,gamma[,delta], e.g. 0.017,0.2261,0.5251,5.4967"),
        CLI_OPT_FN("form", &form, qid_fit_cmd_take_form, QID_FIT_CMD_FORM_WANT),
        CLI_OPT_REAL("lr", &lr, 0, 1, 0, "a learning-rate fraction in [0, 1]"),
        CLI_OPT_FN("params", &N, take_positive_list, list_want),
        CLI_OPT_FN("tokens", &D, take_positive_list, list_want),
        CLI_OPT_FN("bits", &P, take_positive_list, list_want),
        CLI_OPT_FN("tokens-for", &Q, take_positive_list, list_want),
        CLI_OPT_STR("training-level", &training),
        CLI_OPT_REAL("level", &level, 0, 1, CLI_LO_OPEN | CLI_HI_OPEN, "one number in (0, 1)"),
    };
    const cli_spec spec = {"predict", predict_usage, opts, sizeof opts / sizeof opts[0], 0, 1, NULL};
    int n_args = 0, rc = cli_parse(&spec, argc, argv, &n_args);
    char **args = argv + 1; /* the positional arguments */
    int mode = 0;           /* 'D' --tokens, 'T' --tokens-for, 'R' --training-level QID, 'C' --training-level CKPT */
    law = la.law;
    int law_given = !isnan(law.k);
    const char *store = n_args ? args[0] : NULL;
    qid_fit_boot boot = {0};
    if (rc != CLI_OK) goto out;
    rc = CLI_USAGE;
    if ((D.n > 0) + (Q.n > 0) + (training != NULL) > 1) {
        cli_usage_error("predict", "give one of --tokens, --tokens-for, --training-level");
        goto out;
    }
    mode = D.n ? 'D' : Q.n ? 'T' : training ? 'R' : 0;
    if (mode == 'R' && take_positive_list(training, &Q)) { /* not QiD values: a checkpoint or model of the store */
        double *v = NULL;
        size_t nv = 0;
        if (qid_parse_real_list(training, &v, &nv) == 0) {
            free(v);
            cli_usage_error("predict", "--training-level wants %s, got '%s'", list_want, training);
            goto out;
        }
        mode = 'C';
    }
    if (mode == 'C' && (N.n || n_args != 1)) {
        cli_usage_error("predict",
                        "--training-level %s needs the results store it is in, and no --params (the checkpoint's N "
                        "is used)",
                        training);
        goto out;
    }
    if (!mode || (mode != 'C' && (!N.n || !P.n))) {
        cli_usage_error("predict", "need --params, --bits and one of --tokens, --tokens-for, --training-level");
        goto out;
    }
    if (law_given && !(law.k > 0)) {
        cli_usage_error("predict", "--law needs k > 0");
        goto out;
    }
    if (law_given && store && mode != 'C') {
        cli_usage_error("predict", "give a store or --law, not both");
        goto out;
    }
    if (!law_given && !store) {
        cli_usage_error("predict", "give one results store (or --law k,alpha,beta,gamma)");
        goto out;
    }
    if (form >= 0 && !law_given) {
        cli_usage_error("predict", "--form names the form of the coefficients given with --law (a stored fit "
                                   "carries its own)");
        goto out;
    }
    law.form = form >= 0 ? form : QID_FIT_FORM_OUYANG;
    if (law_given && la.n != (size_t)qid_fit_form_of(law.form)->n_coef) {
        cli_usage_error("predict", "--law gives %zu coefficients; the %s law has %d (%s)", la.n,
                        qid_fit_form_of(law.form)->name, qid_fit_form_of(law.form)->n_coef,
                        qid_fit_form_of(law.form)->columns);
        goto out;
    }
    if (law_given && law.form == QID_FIT_FORM_OUYANG_LR && isnan(lr)) {
        cli_usage_error("predict", "--law with --form ouyang-lr needs --lr, the learning rate of the predictions "
                                   "relative to its peak");
        goto out;
    }
    law.lr = lr;
    if ((rc = predict_law(store, fit_name, law_given, &law, &boot, level))) goto out;
    const qid_fit_form *lf = qid_fit_form_of(law.form);
    if (!isnan(lr) && lf->n_coef != QID_FIT_MAX_COEF) {
        rc = cli_usage_error("predict", "--lr applies to a law with a learning-rate term (ouyang-lr), not to %s",
                             lf->name);
        goto out;
    }

    if ((mode == 'T' && !lf->tokens_for) || ((mode == 'R' || mode == 'C') && !lf->training_level)) {
        rc = cli_fail("predict", "the %s law (%s) cannot be inverted for D: %s is not defined for it", lf->name,
                      lf->text, mode == 'T' ? "--tokens-for" : "--training-level");
        goto out;
    }
    if (mode == 'C') {
        rc = predict_level(store, fit_name, training, law_given, &law, &boot, &P);
    } else {
        qid_fit_stats st;
        qid_error e;
        if (law_given || qid_fit_store_read_stats(store, fit_name, &st, &e)) st.n_min = st.d_min = st.p_min = NAN;
        print_extrapolation(&st, &N, &P, mode == 'D' ? &D : NULL);
        print_grid(mode, &law, &boot, &st, &N, &P, mode == 'D' ? &D : &Q);
    }
out:
    free(N.v), free(D.v), free(P.v), free(Q.v), free(boot.draws);
    return rc == CLI_HELP ? 0 : rc;
}
