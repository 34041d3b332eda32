/* report_plot.c - the plots of `qid report` (report_internal.h): the
 * gnuplot script report.gp that draws every plot as PNG and SVG from the
 * .dat files, and running gnuplot on it.
 *
 * Does not: compute anything the tables do not hold, or fail a report
 * because gnuplot is missing or fails (a warning says so). */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fsutil.h"
#include "report_internal.h"

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

/* "set yrange" to the positive QiD of the store, when there are any. */
static void yrange(FILE *f, const report *r)
{
    if (r->pos_hi > 0) fprintf(f, "set yrange [%.4g:%.4g]\n", r->pos_lo / 1.5, r->pos_hi * 1.5);
}

/* (1) QiD vs D, one panel per bit width, one colour per N. */
static void plot_qid_vs_d(FILE *f, int svg, const report *r)
{
    size_t nn = r->nn, np = r->np;
    char b[32];
    term(f, svg, np > 1 ? 520 * (int)np : 700, 560, "qid_vs_d");
    fprintf(f,
            "set multiplot layout 1,%zu title 'QiD vs training tokens D (points +- 1 s.e.: filled circles GPTQ, "
            "open squares RTN; lines: fitted law)'\n",
            np ? np : 1);
    fprintf(f, "set logscale xy\nset format x '10^{%%L}'\nset format y '%%g'\nset xlabel 'training tokens D'\n"
               "set ylabel 'QiD (nats/token)'\nset key outside bottom center horizontal box font ',9'\nset bmargin 7\n"
               "set autoscale\n");
    yrange(f, r);
    for (size_t jp = 0; jp < np; jp++) {
        fprintf(f, "set title '%g-bit'\nplot ", r->up[jp]);
        int first = 1;
        for (size_t jn = 0; jn < nn; jn++) {
            size_t blk = jp * nn + jn;
            if (!r->cnt[blk]) continue;
            fmt_g(b, sizeof b, r->un[jn]);
            fprintf(f,
                    "%s'points.dat' index %zu using 1:2:3 with yerrorbars pt 7 ps 0 lc %zu title 'N = %s', \\\n"
                    "     'points.dat' index %zu using 1:2:7 with points pt variable ps 0.8 lc %zu notitle",
                    first ? "" : ", \\\n     ", blk, jn + 1, b, blk, jn + 1);
            first = 0;
            if (r->rf.have)
                fprintf(f, ", \\\n     'lines.dat' index %zu using 1:2 with lines lw 2 lc %zu notitle", blk, jn + 1);
        }
        if (first) fprintf(f, "NaN notitle");
        fprintf(f, "\n");
    }
    fprintf(f, "unset multiplot\nunset title\nset bmargin\nset key outside right top box font ',10'\n");
}

/* (2) QiD vs N, one colour per P. */
static void plot_qid_vs_n(FILE *f, int svg, const report *r, const char *dmid)
{
    size_t nn = r->nn, np = r->np;
    term(f, svg, 800, 560, "qid_vs_n");
    fprintf(f, "set title 'QiD vs model size N (all D; lines: fitted law at D = %s)'\n", dmid);
    fprintf(f, "set logscale xy\nset format x '10^{%%L}'\nset xlabel 'non-embedding parameters N'\n"
               "set ylabel 'QiD (nats/token)'\nset autoscale\n");
    yrange(f, r);
    fprintf(f, "plot ");
    for (size_t jp = 0; jp < np; jp++) {
        fprintf(f, "%s'points.dat' using ($6 == %g ? $5 : NaN):2 with points pt 7 ps 0.8 lc %zu title '%g-bit'",
                jp ? ", \\\n     " : "", r->up[jp], jp + 1, r->up[jp]);
        if (r->rf.have)
            fprintf(f, ", \\\n     'lines.dat' index %zu using 1:2 with lines lw 2 lc %zu notitle", np * nn + jp,
                    jp + 1);
    }
    if (!np) fprintf(f, "NaN notitle");
    fprintf(f, "\n");
}

/* (3) QiD vs P, one colour per N. */
static void plot_qid_vs_p(FILE *f, int svg, const report *r, const char *dmid)
{
    size_t nn = r->nn, np = r->np;
    char b[32];
    term(f, svg, 800, 560, "qid_vs_p");
    fprintf(f, "set title 'QiD vs bits P (all D; lines: fitted law at D = %s)'\n", dmid);
    fprintf(f, "set logscale xy\nset format x '%%g'\nset xtics (");
    for (size_t jp = 0; jp < np; jp++)
        fprintf(f, "%s'%g' %g", jp ? ", " : "", r->up[jp], r->up[jp]);
    fprintf(f, ")\nset xlabel 'bits P (log scale)'\nset ylabel 'QiD (nats/token)'\nset autoscale\n");
    if (np) fprintf(f, "set xrange [%g:%g]\n", r->up[0] * 0.85, r->up[np - 1] * 1.15);
    yrange(f, r);
    fprintf(f, "plot ");
    for (size_t jn = 0; jn < nn; jn++) {
        fmt_g(b, sizeof b, r->un[jn]);
        fprintf(f, "%s'points.dat' using ($5 == %.9g ? $6 : NaN):2 with points pt 7 ps 0.8 lc %zu title 'N = %s'",
                jn ? ", \\\n     " : "", r->un[jn], jn + 1, b);
        if (r->rf.have)
            fprintf(f, ", \\\n     'lines.dat' index %zu using 1:2 with lines lw 2 lc %zu notitle", np * nn + np + jn,
                    jn + 1);
    }
    if (!nn) fprintf(f, "NaN notitle");
    fprintf(f, "\nset xtics autofreq\nunset xrange\n");
}

/* (4) predictions at 1e14 tokens. */
static void plot_predictions(FILE *f, int svg, const report *r)
{
    term(f, svg, 800, 560, "predictions");
    fprintf(f, "set title 'Predicted QiD at D = 1e14 tokens (bars: %.0f%% bootstrap interval)'\n", 100 * r->level);
    fprintf(f,
            "unset logscale x\nset logscale y\nset format x '%%g'\nset xrange [0.5:3.5]\n"
            "set xtics ('%s' 1, '%s' 2, '%s' 3)\nset xlabel 'model size'\nset ylabel 'predicted QiD (nats/token)'\n"
            "set autoscale y\nplot ",
            report_pred_n_label[0], report_pred_n_label[1], report_pred_n_label[2]);
    for (size_t j = 0; j < REPORT_N_PRED_P; j++)
        fprintf(f, "%s'predictions.dat' index %zu using 1:2:3:4 with yerrorbars pt 7 ps 1.2 lw 2 lc %zu title '%g-bit'",
                j ? ", \\\n     " : "", j, j + 1, report_pred_p[j]);
    fprintf(f, "\nset xtics autofreq\nset autoscale x\n");
}

/* (4b) every compared law form's predictions side by side (with a stored comparison). */
static void plot_compare(FILE *f, int svg, const report *r)
{
    const qid_fit_compare_stored *c = &r->cmp;
    if (!c->n_laws || !c->n_pred) return;
    size_t per = c->n_pred / c->n_laws;
    term(f, svg, 900, 560, "law_compare");
    fprintf(f,
            "set title 'QiD at D = 1e14 tokens by law form (bars: bootstrap interval; lowest leave-future-out error: "
            "%s)'\n",
            c->best_lfo);
    fprintf(f, "unset logscale x\nset logscale y\nset format x '%%g'\nset xrange [0.5:%zu.5]\nset xtics (", per);
    for (size_t j = 0; j < per; j++) {
        const double *p = c->pred + 7 * j;
        fprintf(f, "%s'%.3g, %g-bit' %zu", j ? ", " : "", p[1], p[3], j + 1);
    }
    fprintf(f, ") rotate by -30 font ',9'\nset xlabel 'N, bits'\nset ylabel 'predicted QiD (nats/token)'\n"
               "set autoscale y\nplot ");
    for (size_t k = 0; k < c->n_laws; k++)
        fprintf(f, "%s'law_compare.dat' index %zu using 1:2:3:4 with yerrorbars pt 7 ps 1.1 lw 2 lc %zu title '%s'",
                k ? ", \\\n     " : "", k, k + 1, c->name[k]);
    fprintf(f, "\nset xtics autofreq norotate font ''\nset autoscale x\n");
}

/* (5) measured vs fitted QiD. */
static void plot_actual(FILE *f, int svg, const report *r)
{
    term(f, svg, 700, 620, "actual_vs_predicted");
    fprintf(f, "set title 'Measured vs fitted QiD (QiD > 0 only)'\nset logscale xy\nset format x '%%g'\n"
               "set xlabel 'fitted QiD (nats/token)'\nset ylabel 'measured QiD (nats/token)'\n");
    if (r->pos_hi > 0)
        fprintf(f, "set xrange [%.4g:%.4g]\nset yrange [%.4g:%.4g]\n", r->pos_lo / 1.5, r->pos_hi * 1.5,
                r->pos_lo / 1.5, r->pos_hi * 1.5);
    fprintf(f, "plot x with lines ls 99 title 'y = x'");
    for (size_t jp = 0; jp < r->np && r->rf.have; jp++)
        fprintf(f,
                ", \\\n     'points.dat' using ($6 == %g ? $4 : NaN):2 with points pt 7 ps 0.8 lc %zu title '%g-bit'",
                r->up[jp], jp + 1, r->up[jp]);
    fprintf(f, "\nunset xrange\nunset yrange\n");
}

/* (6) the Pareto frontier, with the budget. */
static void plot_pareto(FILE *f, int svg, const report_pred *rp)
{
    /* The frontier's points are numbered on the plot and named in a list beside it, so that long names never
     * overlap each other or the data; the offsets keep points at the edges inside the frame. */
    enum { LISTED = 24 };
    term(f, svg, 1180, 600, "pareto");
    fprintf(f, "set title 'Pareto frontier of model size vs bits per weight (measured loss, latest checkpoints)'\n"
               "unset logscale\nset logscale x\nset format x '10^{%%L}'\nset format y '%%g'\nset autoscale\n"
               "set offsets graph 0.03, graph 0.03, graph 0.05, graph 0.05\nset rmargin at screen 0.66\n"
               "set xlabel 'memory of the non-embedding weights, N x bits / 8 (bytes)'\n"
               "set ylabel 'loss (nats/token)'\nset key inside right top box\n");
    if (!isnan(rp->budget))
        fprintf(f,
                "set arrow 1 from %.6g, graph 0 to %.6g, graph 1 nohead dt 2 lw 1.5 lc rgb 'black'\n"
                "set label 1 'budget' at %.6g, graph 0.97 right offset -0.5,0\n",
                rp->budget, rp->budget, rp->budget);
    size_t listed = rp->n_front < LISTED ? rp->n_front : LISTED;
    fprintf(f, "set label 2 'frontier, by memory:' at screen 0.68, screen 0.9 font ',9'\n");
    for (size_t k = 0; k < listed; k++) {
        char name[96];
        snprintf(name, sizeof name, "%s", rp->cand[rp->front[k]].label);
        for (char *c = name; *c; c++)
            if (*c == '\'') *c = ' ';
        fprintf(f, "set label %zu '%zu  %s' at screen 0.68, screen %.4f font ',8'\n", 10 + k, k + 1, name,
                0.86 - 0.032 * (double)k);
    }
    if (rp->n_front > listed)
        fprintf(f, "set label %zu '... and %zu more (pareto.csv)' at screen 0.68, screen %.4f font ',8'\n", 10 + listed,
                rp->n_front - listed, 0.86 - 0.032 * (double)listed);
    fprintf(f, "plot 'pareto.dat' index 0 using 1:2 with points pt 6 ps 1 lc rgb 'gray50' title 'candidates'");
    if (rp->n_front)
        fprintf(f, ", \\\n     'pareto.dat' index 1 using 1:2 with steps lw 2 lc rgb 'red' notitle, \\\n"
                   "     'pareto.dat' index 1 using 1:2 with points pt 7 ps 1.2 lc rgb 'red' title 'frontier', \\\n"
                   "     'pareto.dat' index 1 using 1:2:(sprintf('%%d', $0 + 1)) with labels left offset 0.6,0.6 "
                   "font ',9' notitle");
    fprintf(f, "\nunset arrow 1\nunset label\nset offsets 0, 0, 0, 0\nset rmargin\n"
               "set key outside right top box font ',10'\n");
}

/* (7) the predictor's measured vs held-out predicted QiD (when there is a predictor). */
static void plot_predictor(FILE *f, int svg, const report_pred *rp)
{
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

int report_write_script(const report *r, qid_error *err)
{
    FILE *f = report_open(r->dir, "report.gp", err);
    if (!f) return err->code ? err->code : QID_E_IO;
    char dmid[32];
    fprintf(f, "# report.gp - written by 'qid report %s'; run 'gnuplot report.gp' in this directory.\n", r->store);
    fprintf(f, "has_cairo = strstrt(GPVAL_TERMINALS, 'pngcairo') > 0\n");
    fprintf(f, "set datafile missing 'nan'\nset key outside right top box\nset grid\nset bars small\n"
               "set style line 99 lc rgb 'black' dt 2 lw 1.5\n");
    fmt_g(dmid, sizeof dmid, r->dmid);
    for (int svg = 0; svg <= 1; svg++) {
        plot_qid_vs_d(f, svg, r);
        plot_qid_vs_n(f, svg, r, dmid);
        plot_qid_vs_p(f, svg, r, dmid);
        plot_predictions(f, svg, r);
        plot_compare(f, svg, r);
        plot_actual(f, svg, r);
        plot_pareto(f, svg, &r->rp);
        plot_predictor(f, svg, &r->rp);
        fprintf(f, "unset output\n");
    }
    return report_close(f, r->dir, "report.gp", err);
}

int report_run_gnuplot(const char *dir, const char *gnuplot, FILE *log, qid_error *err)
{
    if (!gnuplot || !gnuplot[0]) {
        if (log) fprintf(log, "warning: plots skipped (no gnuplot program given); %s/report.gp draws them\n", dir);
        return QID_OK;
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) return qid_error_set(err, QID_E_IO, "cannot start gnuplot: %s", strerror(errno));
    if (pid == 0) {
        if (chdir(dir) != 0) _exit(126);
        int fd = open("gnuplot.log", O_WRONLY | O_CREAT | O_TRUNC, 0666);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        execlp(gnuplot, gnuplot, "report.gp", (char *)NULL);
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
            fprintf(log, "warning: plots skipped ('%s' not found); tables and %s/report.gp written\n", gnuplot, dir);
    } else if (rc != 0) {
        if (log) fprintf(log, "warning: gnuplot failed (exit %d); see %s/gnuplot.log\n", rc, dir);
    }
    return QID_OK;
}
