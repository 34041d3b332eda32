# demo_summary.awk - the summary of `make demo` (tools/demo.sh): the headline
# law with its verdicts, the evaluation noise, the other methods, the 8-bit
# row and the schedule confound, from the headline fit's output (fit.txt)
# and the stored rows (CSV: model,params,step,tokens_seen,method,format,
# elem_bits,qid,qid_se). Variables (-v): size, main and conf (the law's and
# the confound's models, comma-separated), from (first step of the last
# third), nsave, rtn and mx (the other fits' outputs), plot.
# Every rule is stated where it is applied in tools/demo.sh's comment above
# its call; test/demo_summary.t feeds it constructed fits.
function verdict(name, v, lo, hi, what, disagree,    s) {
    if (lo > 0) s = "yes"; else if (hi < 0) s = "no, the opposite"; else s = "not resolved (interval includes 0)"
    if (disagree != "" && s !~ /^not/) s = "not resolved (" disagree ")"
    printf "demo:   %-5s = %9.4f  95%% [%9.4f, %9.4f]   QiD %s: %s\n", name, v, lo, hi, what, s
}
function coef(line,    f) {
    if (line !~ /\[/) { split(line, f, " "); return sprintf("%.3f (no interval)", f[2]) }
    gsub(/[\[\],]/, " ", line); split(line, f, " "); return sprintf("%.3f [%.3f, %.3f]", f[2], f[3], f[4])
}
function other(file, name,    line, a, b, g, r2, f, pts) {
    a = b = g = r2 = ""
    while ((getline line < file) > 0) {
        if (line ~ /^alpha /) a = coef(line)
        if (line ~ /^beta /) b = coef(line)
        if (line ~ /^gamma /) g = coef(line)
        if (line ~ /^warning: one bit width/) g = "not fitted (one bit width)"
        if (line ~ /^points /) { split(line, f, " "); pts = f[2] }
        if (line ~ /^R\^2/) { split(line, f, " "); r2 = f[3]; sub(/,$/, "", r2) }
    }
    close(file)
    if (a == "") { printf "demo:   %-6s no fit (%s)\n", name, file; return }
    printf "demo:   %-6s alpha %s  beta %s  gamma %s  R^2 (log) %s, %s points\n", name, a, b, g, r2, pts
}
function cmp(q1, s1, q2, s2,    l, e) {
    if (q1 <= 0 || q2 <= 0) return "?"
    l = log(q1 / q2); e = 1.96 * sqrt((s1 / q1) ^ 2 + (s2 / q2) ^ 2)
    return l - e > 0 ? "higher" : l + e < 0 ? "lower" : "not resolved"
}
function pct(x) { return x > 1e100 ? "inf (a QiD <= 0)" : sprintf("%.1f%%", 100 * x) }
function ratio(q1, s1, q2, s2,    l, e) {
    if (q1 <= 0 || q2 <= 0) return sprintf("%-20s", "- (QiD <= 0)")
    l = log(q1 / q2); e = 1.96 * sqrt((s1 / q1) ^ 2 + (s2 / q2) ^ 2)
    return sprintf("%5.2f [%4.2f, %4.2f]", q1 / q2, exp(l - e), exp(l + e))
}
BEGIN {
    nm = split(main, m, ","); for (i = 1; i <= nm; i++) ismain[m[i]] = 1
    nc = split(conf, c, ","); for (i = 1; i <= nc; i++) isconf[c[i]] = i
}
FNR == 1 { file++; if (file == 2) FS = "," }
# fit.txt: the headline law
file == 1 && /^points / { pts = $2 }
file == 1 && /^k / { gsub(/[\[\],]/, " "); k = sprintf("k = %.4g [%.4g, %.4g]", $2, $3, $4) }
file == 1 && /^alpha / { gsub(/[\[\],]/, " "); al = $2; al_lo = $3; al_hi = $4 }
file == 1 && /^beta / { gsub(/[\[\],]/, " "); be = $2; be_lo = $3; be_hi = $4 }
file == 1 && /^gamma / { gsub(/[\[\],]/, " "); ga = $2; ga_lo = $3; ga_hi = $4 }
file == 1 && /^R\^2/ { r2line = $0 }
file == 1 && /^leave-one-model-size-out:/ { lomo = $0; sub(/^leave-one-model-size-out: pooled /, "", lomo) }
file == 1 && /^warning:/ { warn[++nw] = $0 }
file == 1 && /^  QiD = / { sect = ($0 ~ /for each \(N, P\)/); if (sect) medline = $0 }
file == 1 && sect && /^    N / {
    for (i = 1; i <= NF; i++) { if ($i == "beta") b = $(i + 1); if ($i == "points") np = $(i - 1) }
    if ($0 ~ /no fit/) { groups_nofit++; next }
    if (np >= 6) { groups6++; if (b > 0) pos6++; if (b < 0) neg6++ }
    groups++
}
# the rows: model,params,step,tokens_seen,method,format,elem_bits,qid,qid_se
file == 2 && FNR > 1 && ($1 in ismain) && $5 == "gptq" && $7 <= 4 {
    if (nmin == "" || $2 + 0 < nmin) nmin = $2 + 0
    if ($2 + 0 > nmax) nmax = $2 + 0
    if (dmin == "" || $4 + 0 < dmin) dmin = $4 + 0
    if ($4 + 0 > dmax) dmax = $4 + 0
}
file == 2 && FNR > 1 && $5 == "gptq" {
    if (($1 in ismain) && $7 == 4 && $3 + 0 >= from + 0) {
        nr++; r[nr] = ($8 > 0) ? $9 / $8 : 1e300; if (r[nr] <= 0.1) ok10++
        if (nr == 1 || $8 < q4min) q4min = $8
    }
    # SE/QiD range of the last third at 2 and 3 bits
    if (($1 in ismain) && ($7 == 2 || $7 == 3) && $3 + 0 >= from + 0) {
        x = ($8 > 0) ? $9 / $8 : 1e300
        if (!(($7) in rlo) || x < rlo[$7]) rlo[$7] = x
        if (x > rhi[$7]) rhi[$7] = x
    }
    if (($1 in ismain) && $7 == 8) {
        n8++; a = $8 < 0 ? -$8 : $8; if (a > max8) max8 = a; if ($9 > 0 && a / $9 > z8) z8 = a / $9
    }
    if (($1 in isconf) && $7 <= 4) {
        s = isconf[$1]
        if ($3 + 0 > last[s, $7] + 0) { prevq[s, $7] = lq[s, $7]; prevse[s, $7] = lse[s, $7]; prevstep = last[s, $7]
                                        last[s, $7] = $3; lq[s, $7] = $8; lse[s, $7] = $9; lastd = $4 }
        bits[$7] = 1
        if (!((s, $7) in firstq)) { firstq[s, $7] = $8; firstd = $4 }
    }
}
END {
    printf "demo: summary (%s suite): %d model sizes trained alike, %d checkpoints each\n", size, nm, nsave
    if (nmin > 0 && dmin > 0)
        printf "demo:   N %.1f k to %.1f k (%.2fx), D %.1f k to %.2f M (%.0fx), %.1f tokens per parameter at the smallest size's last checkpoint\n",
            nmin / 1e3, nmax / 1e3, nmax / nmin, dmin / 1e3, dmax / 1e6, dmax / dmin, dmax / nmin
    printf "demo: headline law: GPTQ at 2, 3 and 4 bits, groups of 32, symmetric (Ouyang et al.'s setting), %s points\n", pts
    printf "demo:   QiD = k D^beta / (N^alpha P^gamma) with %s\n", k
    # A sign is claimed only when the interval and the per-(N, P) fits agree: the median beta over the groups
    # must have its sign and more than half of the groups with >= 6 checkpoints must too.
    nf = split(medline, f, " ")
    for (i = 1; i <= nf; i++) if (f[i] == "beta" && f[i - 1] == "median") mb = f[i + 1]
    bdis = ""
    if (be_lo > 0 && !(mb > 0 && 2 * pos6 > groups6))
        bdis = sprintf("the interval excludes 0 but the per-(N, P) fits disagree: median beta %s, beta > 0 in %d of %d", mb, pos6, groups6)
    if (be_hi < 0 && !(mb < 0 && 2 * neg6 > groups6))
        bdis = sprintf("the interval excludes 0 but the per-(N, P) fits disagree: median beta %s, beta < 0 in %d of %d", mb, neg6, groups6)
    verdict("alpha", al, al_lo, al_hi, "falls with model size N", "")
    verdict("beta", be, be_lo, be_hi, "rises with training tokens D", bdis)
    verdict("gamma", ga, ga_lo, ga_hi, "falls with bit width P", "")
    print "demo:   " r2line
    print "demo:   leave-one-model-size-out " lomo
    printf "demo:   per-(N, P) laws QiD = c D^beta: median beta %s (unified %s); beta > 0 in %d of %d groups with >= 6 checkpoints\n",
        mb, sprintf("%.4f", be), pos6, groups6
    for (i = 1; i <= nw; i++) print "demo:   " warn[i]
    # median and max of SE/QiD
    for (i = 2; i <= nr; i++) { v = r[i]; for (j = i - 1; j >= 1 && r[j] > v; j--) r[j + 1] = r[j]; r[j + 1] = v }
    if (nr) printf "demo: evaluation noise: SE/QiD of 4-bit GPTQ at the last third of the checkpoints (step >= %d): median %s, max %s, %d of %d points at most 10%%\n",
        from, pct(nr % 2 ? r[(nr + 1) / 2] : (r[nr / 2] + r[nr / 2 + 1]) / 2), pct(r[nr]), ok10, nr
    if (nr) printf "demo:   there: smallest 4-bit QiD %.2g nats; SE/QiD at 2 bits %s to %s, at 3 bits %s to %s\n",
        q4min, pct(rlo[2]), pct(rhi[2]), pct(rlo[3]), pct(rhi[3])
    print "demo: the other methods, fitted alike on the same sizes (/fits/rtn: RTN at 2, 3 and 4 bits; /fits/mxfp4: RTN to MXFP4):"
    other(rtn, "rtn"); other(mx, "mxfp4")
    if (n8) printf "demo: 8-bit sanity row (GPTQ int8-g32, in no law): max |QiD| %.2g nats over %d checkpoints, max |QiD|/SE %.1f\n", max8, n8, z8
    printf "demo: schedule confound: %s trained three times on the same tokens and checkpoints (cosine, wsd, constant);\n", c[1]
    printf "demo:   GPTQ QiD at the last checkpoint (D = %d) and its ratio to the constant rate's, 95%% intervals:\n", lastd
    printf "demo:   P  %-18s %-18s %-18s %-20s %s\n", "cosine", "wsd", "constant", "cosine/constant", "wsd/constant"
    for (p = 2; p <= 4; p++) {
        if (!(p in bits)) continue
        printf "demo:   %d  %.4f +- %.4f   %.4f +- %.4f   %.4f +- %.4f   %-20s %s\n", p, lq[1, p], lse[1, p], lq[2, p], lse[2, p], lq[3, p], lse[3, p],
            ratio(lq[1, p], lse[1, p], lq[3, p], lse[3, p]), ratio(lq[2, p], lse[2, p], lq[3, p], lse[3, p])
    }
    printf "demo:   at the same D, QiD of a decayed rate (cosine, wsd) against the constant one:"
    sep = ""
    for (p = 2; p <= 4; p++) if (p in bits) {
        printf "%s %d bits %s, %s", sep, p, cmp(lq[1, p], lse[1, p], lq[3, p], lse[3, p]), cmp(lq[2, p], lse[2, p], lq[3, p], lse[3, p]); sep = ";"
    }
    printf "\n"
    if (firstq[3, 2] > 0) printf "demo:   at the constant rate QiD still rises with D: x%.2f at 2 bits from D = %d to %d\n", lq[3, 2] / firstq[3, 2], firstd, lastd
    printf "demo:   QiD from step %d to %d (wsd decays its rate in between, constant does not), ratio and 95%% interval:\n", prevstep, last[1, 2]
    for (p = 2; p <= 4; p++) {
        if (!(p in bits)) continue
        printf "demo:   %d  cosine %-20s  wsd %-20s  constant %s\n", p, ratio(lq[1, p], lse[1, p], prevq[1, p], prevse[1, p]),
            ratio(lq[2, p], lse[2, p], prevq[2, p], prevse[2, p]), ratio(lq[3, p], lse[3, p], prevq[3, p], prevse[3, p])
    }
    if (prevq[3, 2] > 0)
        printf "demo:   at step %d, 2 bits: cosine/constant %s  wsd/constant %s\n", prevstep,
            ratio(prevq[1, 2], prevse[1, 2], prevq[3, 2], prevse[3, 2]), ratio(prevq[2, 2], prevse[2, 2], prevq[3, 2], prevse[3, 2])
    if (plot != "") printf "demo:   plot: %s\n", plot
}
