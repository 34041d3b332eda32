# demo-plots.gp - the two plots of `make demo` (tools/demo.sh runs it in the
# report directory with the fitted law and the peak learning rate given by -e):
#
#   demo-qid-vs-d.png  the headline: QiD of GPTQ at 2, 3 and 4 bits vs
#                      training tokens D for each model size, with the law
#                      QiD = k D^beta / (N^alpha P^gamma) fitted to them;
#   demo-schedules.png the schedule confound: QiD vs D for one size trained
#                      under three learning-rate schedules on the same
#                      tokens, each run's learning rate on the second axis.
#
# Reads demo-main.dat (size N D P qid se), demo-schedules.dat (run D P qid
# se) and demo-lr.dat (run D lr), all written by tools/demo.sh; writes PNG
# and SVG of each.
#
#   cd build/demo/report && gnuplot -e 'k=0.31; alpha=0.28; beta=0.31; gamma=4.8; lrmax=0.003' \
#       ../../../tools/demo-plots.gp
if (!exists("k")) k = NaN
if (!exists("alpha")) alpha = NaN
if (!exists("beta")) beta = NaN
if (!exists("gamma")) gamma = NaN
if (!exists("lrmax")) lrmax = 0.003
if (!exists("sizes")) sizes = ""
if (!exists("runs")) runs = "cosine wsd constant"
array col[6] = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b"]
o(j) = word("3 1 2", j) + 0
law(d, n, p) = k * d**beta / (n**alpha * p**gamma)
cairo = strstrt(GPVAL_TERMINALS, "pngcairo") > 0

set logscale x
set logscale y
set format x "10^{%T}"
set format y "10^{%T}"
set xlabel "training tokens D"
set grid xtics ytics
set ytics nomirror
set samples 50

do for [what = 1:2] {
    do for [t = 1:2] {
        name = what == 1 ? "demo-qid-vs-d" : "demo-schedules"
        if (t == 1) {
            if (cairo) { set terminal pngcairo size 1050,360 enhanced font "Sans,9" } else { set terminal png size 1050,360 }
            set output name . ".png"
        } else {
            set terminal svg size 1050,360 dynamic enhanced font "Sans,10"
            set output name . ".svg"
        }
        if (what == 1) {
            set multiplot layout 1,3 title sprintf("GPTQ QiD vs training tokens D per model size N (points +- 1 SE); lines: the fitted law %.3g D^{%.3f} / (N^{%.3f} P^{%.2f})", k, beta, alpha, gamma)
            unset y2tics
            unset y2label
        } else {
            set multiplot layout 1,3 title "GPTQ QiD vs D of one model size trained on the same tokens under three learning-rate schedules (points +- 1 SE); dashed: the learning rate (right axis)"
            set y2tics
            set y2range [0:1.15 * lrmax]
            set format y2 "%.1t{/Symbol \264}10^{%T}"
        }
        if (what == 1) { set key bottom right } else { set key top left }
        do for [p = 2:4] {
            set title sprintf("%d bits", p)
            set ylabel (p == 2 ? "QiD (nats/token)" : "")
            if (what == 1) {
                plot for [i = 1:words(sizes)] "demo-main.dat" using ($1 == i && $4 == p ? $3 : NaN):($5 > 0 ? $5 : NaN):6 \
                         with yerrorbars lc rgb col[i] pt 7 ps 0.5 title "N = ".word(sizes, i), \
                     for [i = 1:words(sizes)] [1e4:5e6] law(x, word(sizes, i) + 0, p) with lines lc rgb col[i] notitle
            } else {
                set y2label (p == 4 ? "learning rate" : "")
                # constant first, so that wsd (equal to it until its decay) is drawn on top
                plot for [j = 1:3] sprintf("< awk '$1 == %d && $3 == %d' demo-schedules.dat", o(j), p) using 2:($4 > 0 ? $4 : NaN):5 \
                         with yerrorlines lc rgb col[o(j)] pt 7 ps 0.5 title word(runs, o(j)), \
                     for [i = 1:3] "demo-lr.dat" using ($1 == i ? $2 : NaN):3 axes x1y2 with lines lc rgb col[i] dt 2 notitle
            }
        }
        unset multiplot
        unset output
    }
}
