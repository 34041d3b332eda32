#!/bin/sh
# docs_demo.t - the demo's numbers in the prose are the demo's output. The
# sample in docs/demo.md (its lines that begin with "demo: ") is the summary
# of a full `make demo`, copied there by tools/demo_docs.sh (make demo says
# whether its own summary still equals it). Here every decimal number that
# README.md's "The embedded demo" and docs/demo.md's "What it shows" quote
# must be a number of that sample, rounded to the digits the prose gives
# (3.75x quotes x3.75, 0.0074 quotes 0.007448, 4.2 M quotes 4.19 M, 9e-4
# quotes 0.0009). Integers are not checked (bit widths, counts, steps).
# Not from the sample, so taken out before the check, each with its source:
#   - "arXiv NNNN.NNNNN" identifiers;
#   - Ouyang et al.'s published Pythia law (alpha 0.23, beta 0.53, gamma 5.50:
#     their paper, arXiv 2411.17691, the law for Pythia);
#   - the 1.96 of a 95% interval's rule (1.96 sqrt(...)).
. "$(dirname "$0")/taplib.sh"
plan 4
tap_tmpdir

grep '^demo: ' docs/demo.md >"$TAP_TMP/sample"
ok "$(grep -q '^demo: summary (full suite)' "$TAP_TMP/sample"; echo $?)" "docs/demo.md has the full suite's summary as its sample"

# section FILE HEADING: the lines of FILE's section HEADING, joined into one line
section() { awk -v h="$2" '/^## / { on = ($0 == h); next } on { printf "%s ", $0 }' "$1"; }

# check NAME: every decimal number of the prose on stdin is in the sample
check() {
    sed -e 's/arXiv[[:space:]]*[0-9][0-9]*\.[0-9][0-9]*//g' \
        -e "s/Pythia law has α 0\.23, β 0\.53, γ 5\.50//" -e 's/1\.96 sqrt//g' |
    awk -v sample="$TAP_TMP/sample" '
    # nums(S, OUT, ALL): the numbers of S; unless ALL, only decimal ones that
    # are not part of a longer token (v1.2.3, a path, a name)
    function nums(s, out, all,    n, t) {
        n = 0
        while (match(s, /[0-9]+(\.[0-9]+)?(e-?[0-9]+)?/)) {
            t = substr(s, RSTART, RLENGTH)
            if (all || t ~ /[.e]/ && (RSTART == 1 || substr(s, RSTART - 1, 1) !~ /[0-9A-Za-z._\/-]/)) out[++n] = t
            s = substr(s, RSTART + RLENGTH)
        }
        return n
    }
    function unit(t,    m, e, d) {
        m = t; e = 0
        if (t ~ /e/) { split(t, p, "e"); m = p[1]; e = p[2] + 0 }
        d = index(m, ".") ? length(m) - index(m, ".") : 0
        return 10 ^ (e - d)
    }
    BEGIN {
        while ((getline l < sample) > 0) {
            k = nums(l, got, 1)
            for (i = 1; i <= k; i++) v[++nv] = got[i] + 0
        }
    }
    {
        k = nums($0, q, 0)
        for (i = 1; i <= k; i++) {
            x = q[i] + 0; u = unit(q[i]); hit = 0
            for (j = 1; j <= nv && !hit; j++) if (v[j] - x <= u / 2 + 1e-12 && x - v[j] <= u / 2 + 1e-12) hit = 1
            if (!hit) { print "# not in the sample (rounded as quoted): " q[i]; bad = 1 }
            checked++
        }
    }
    END { print "# " checked " numbers checked"; exit bad || !checked }'
}
section README.md "## The embedded demo" | check >"$TAP_TMP/readme" 2>&1
ok $? "README.md's demo paragraph quotes the sample's numbers"
cat "$TAP_TMP/readme"
section docs/demo.md "## What it shows" | check >"$TAP_TMP/shows" 2>&1
ok $? "docs/demo.md's 'What it shows' quotes the sample's numbers"
cat "$TAP_TMP/shows"

# the check itself: a stale number is found
echo "the law has beta 0.311 and R² 0.93" | check >"$TAP_TMP/stale" 2>&1
like "$(cat "$TAP_TMP/stale")" "not in the sample (rounded as quoted): 0.311" "a number the sample does not have is reported"
