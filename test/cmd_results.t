#!/usr/bin/env bash
# cmd_results.t - `qid results` on a real store: a small job (three tiny
# imported checkpoints x RTN int4/int3, groups of 16, plus a missing
# checkpoint whose three tasks fail) run with `qid run` on one rank. Checks
# the table (default columns, error column, sort order), filter counts,
# --columns, --latest after a resume, CSV (header = /tasks fields, parsed
# back with Python's csv module, or awk without Python, equal to the table
# values at the table's precision), the CSV's qid column against h5py /
# pandas reading the same store, reading while a run writes, and errors for
# bad stores and options.
set -u
. "$(dirname "$0")/taplib.sh"
plan 45
tap_tmpdir
T=$TAP_TMP
tap_abs_paths
if [ -z "${QID_TEST_NO_PYTHON:-}" ] && python3 -c 'import csv' 2>/dev/null; then HAVE_PY=1; else HAVE_PY=0; fi

tap_import_tiny "$T/ck" gpt-neox-tiny 1000 2000
tap_import_tiny "$T/ck" llama-tiny 1000
tap_tokens_fixture "$T/tok.h5"
cd "$T" || exit 1
cat >a.job <<EOF
# 3 checkpoints + 1 missing x (baseline + rtn int4/int3, groups of 16) = 12 tasks
[job]
results = a.h5
[checkpoints]
glob = ck/*.h5
file = missing.h5
[eval]
tokens = tok.h5
[quantize]
methods = rtn
formats = int4-g16-sym, int3-g16-sym
EOF
$QIDA run a.job >/dev/null 2>&1
is 1 $? "setup: the run exits 1 (the missing checkpoint's 3 tasks fail)"

# the table
$QIDA results a.h5 >table 2>err; ok $? "table: exits 0"
is "model step tokens_seen method format bits loss loss16 qid qid_se status error" "$(head -1 table | tr -s ' ')" \
    "table: default columns, error because some rows failed"
is 12 "$(($(wc -l <table) - 1))" "table: 12 rows"
is "$(tail -n +2 table | awk '{print $1, $3, $4, $5}')" \
    "$(tail -n +2 table | awk '{print $1, $3, $4, $5}' | sort -s -k1,1 -k2,2n -k3,3 -k4,4)" \
    "table: sorted by model, tokens_seen, method, format"
is 1 "$(awk 'NR > 1 { n[NF] = 1 } END { c = 0; for (k in n) c++; print c }' <($QIDA results --status ok a.h5))" \
    "table: every OK row has the same number of cells"
like "$(grep FAILED table | head -1)" "cannot open 'missing.h5'" "table: a failed row shows its error"
$QIDA results --status ok a.h5 >okt
is 0 "$(head -1 okt | grep -c error)" "table: no error column when no shown row failed"
echo "# $(sed -n 2p okt)"

# filters
count() { $QIDA results "$@" a.h5 2>/dev/null | tail -n +2 | wc -l; }
is 9 "$(count --status ok)" "--status ok: 9 rows"
is 3 "$(count --status FAILED)" "--status FAILED (any case): 3 rows"
is 4 "$(count --method baseline)" "--method baseline: 4 rows"
is 4 "$(count --format int4-g16-sym)" "--format int4-g16-sym: 4 rows"
is 4 "$(count --bits 4)" "--bits 4 (element bits): 4 rows"
is 3 "$(count --storage-bits 32 --method baseline)" "--storage-bits 32 AND baseline: the 3 fp32 baselines"
b=$($QIDA results a.h5 --format int4-g16 --status ok --csv --columns bits | sed -n 2p)
is 0 "$(count --storage-bits 4 --method rtn)" "--storage-bits is the bits column, not element bits (int4-g16 stores $b bits a weight)"
is "$(count --format int4-g16 --status ok)" "$(count --storage-bits "$b" --format int4-g16)" "--storage-bits $b: the OK int4-g16 rows"
is 6 "$(count --model gpt-neox-tiny)" "--model gpt-neox-tiny: 6 rows"
is 6 "$(count --models gpt-neox-tiny)" "--models (qid fit's spelling) is the same"
is 2 "$(count --model gpt-neox-tiny --method rtn --bits 3 --status ok)" "four filters combine with AND: 2 rows"
is 4 "$(count --format int4-g16)" "--format int4-g16: the canonical int4-g16-sym"
$QIDA results a.h5 --model no-such-model >out 2>err; is 1 $? "--model of a model the store lacks: exits 1"
like "$(cat err)" "qid results: error: no rows with model 'no-such-model' (the store has: " "... naming what the store has"
$QIDA results a.h5 --storage-bits 4 --method rtn >out 2>err; is "0 qid results: note: no row passes the filters together" "$? $(cat err)" "filters that match rows only apart: exit 0, the header and a note"
$QIDA results a.h5 --format int4 >out 2>err; is 2 $? "--format int4 (not a format): a usage error"
$QIDA results a.h5 --method GPTQ >out 2>err; is 2 $? "--method GPTQ (case): a usage error"
is "key,status" "$($QIDA results --csv --columns key,status a.h5 | head -1)" "--columns chooses CSV columns"

# CSV
out=$($QIDA inspect a.h5); ok $? "qid inspect of a results store exits 0"
like "$out" "qid results store, schema version 3" "qid inspect names a results store and counts its rows"
$QIDA results --csv a.h5 >a.csv; ok $? "--csv exits 0"
is "key,checkpoint,model,ckpt_sha256,params,tokens_seen,step,lr_frac,method,format,bits,elem_bits,block,options,calib,calib_chunk,eval_protocol,eval_sha256,loss,loss16,qid,qid_se,sqnr_db,kl,tokens,windows,seconds,rank,status,error,finished_utc,nll_offset,windows_used,stop_rule,kl_se,kl_median,kl_p99_9,kl_p99,kl_p95,kl_p90,kl_p10,kl_p5,kl_p1,kl_max,top1,top1_se,dp_mean,dp_se,dp_rms,dp_rms_se,dp_max,dp_p99_9,dp_p99,dp_p95,dp_p90,dp_p75,dp_median,dp_p25,dp_p10,dp_p5,dp_p1,dp_p0_1,dp_min,ln_ppl_ratio,ln_ppl_ratio_se" \
    "$(head -1 a.csv)" "CSV header: every /tasks field in schema order"
cols="model,step,tokens_seen,method,format,bits,loss,loss16,qid,qid_se,status"
$QIDA results --columns $cols a.h5 | tail -n +2 | tr -s ' ' >tab_vals
if [ $HAVE_PY = 1 ]; then
    python3 - a.csv "$cols" >csv_vals <<'EOF'
import csv, math, sys
want = sys.argv[2].split(",")
for r in csv.DictReader(open(sys.argv[1], newline="")):
    out = []
    for c in want:
        v = r[c]
        if c in ("bits", "loss", "loss16", "qid", "qid_se"):
            x = float(v)
            v = "-" if math.isnan(x) else "%.6g" % x
        out.append(v if v != "" else "-")
    print(" ".join(out))
EOF
    how="Python's csv module"
else
    # every field of these columns is one unquoted word
    $QIDA results --csv --columns $cols a.h5 | awk -F, 'NR > 1 {
        for (i = 1; i <= NF; i++) { v = $i; if (v == "" || v == "nan") v = "-"; else if (i >= 6 && i <= 10) v = sprintf("%.6g", v);
        printf "%s%s", v, (i < NF ? " " : "\n") } }' >csv_vals
    how="awk"
fi
cmp -s tab_vals csv_vals; ok $? "CSV parsed back ($how) equals the table values at table precision"
[ -s csv_vals ] || echo "# no CSV values parsed"

# an outside reader: Debian's python3-h5py (installed by make deps) or any
# python3 with h5py (and pandas when installed)
PYH5=python3
/usr/bin/python3 -c 'import h5py, numpy' 2>/dev/null && PYH5=/usr/bin/python3
if $PYH5 -c 'import h5py, numpy' 2>/dev/null; then
    $PYH5 - a.h5 a.csv >pycheck 2>&1 <<'EOF'
import csv, math, sys
import h5py, numpy as np
t = h5py.File(sys.argv[1], "r", swmr=True)["tasks"][...]
try:
    import pandas as pd
    df = pd.DataFrame(t)
    keys = [k.decode() for k in df["key"]]
    qids = list(df["qid"])
    via = "pandas"
except ImportError:
    keys = [k.decode() for k in t["key"]]
    qids = list(t["qid"])
    via = "h5py (pandas not installed)"
rows = list(csv.DictReader(open(sys.argv[2], newline="")))
assert list(t.dtype.names) == list(rows[0].keys()), "column names differ"
h5 = sorted(zip(keys, qids))
cs = sorted((r["key"], float(r["qid"])) for r in rows)
assert len(h5) == len(cs), "row counts differ"
for (ka, qa), (kb, qb) in zip(h5, cs):
    assert ka == kb, (ka, kb)
    assert (math.isnan(qa) and math.isnan(qb)) or qa == qb, (ka, qa, qb)  # %.17g: bit-exact
print(via)
EOF
    rc=$?
    ok $rc "CSV's columns and qid per key equal $(tail -1 pycheck) ($PYH5) reading the store"
    [ $rc -eq 0 ] || sed 's/^/# /' pycheck
else
    ok 0 "# SKIP h5py not importable: no outside reader to compare with"
fi

# --latest after a resume: the missing checkpoint appears, its tasks rerun
cp ck/neox-1000.h5 missing.h5
$QIDA run a.job >/dev/null 2>&1; ok $? "resume with the checkpoint present exits 0"
is 15 "$(count)" "all rows: 12 + 3 retried"
is 12 "$(count --latest)" "--latest: one row per key"
is 0 "$(count --latest --status failed)" "--latest --status failed: none left"

# reading while a run writes
perl -e 'srand(1); print pack("v*", map { int(rand(96)) } 1 .. 64000)' >big.u16
$QIDA tokens --from big.u16 --dtype uint16 --vocab 96 --seq-len 16 -o big.h5 >/dev/null 2>&1 || echo "# big tokens failed"
sed -e 's/results = a.h5/results = s.h5/' -e 's/tokens = tok.h5/tokens = big.h5/' -e '/^file = missing.h5/d' a.job >s.job
$QIDA run s.job >/dev/null 2>&1 &
pid=$!
seen=0
for _ in $(seq 1 400); do
    n=$($QIDA results --csv s.h5 2>/dev/null | tail -n +2 | wc -l)
    [ "$n" -ge 1 ] && seen=$n && break
    sleep 0.02
done
$QIDA results s.h5 >live 2>&1; rc=$?
kill -0 $pid 2>/dev/null && alive=1 || alive=0
wait $pid
echo "# read $seen rows while the run was writing (writer still running afterwards: $alive)"
ok $rc "table of a store while a run writes it: exits 0"
[ "$seen" -ge 1 ]; ok $? "rows visible while the run writes"

# errors
$QIDA results nope.h5 >/dev/null 2>err; is 1 $? "missing store: exits 1"
like "$(cat err)" "qid results: error: " "missing store: one error line"
echo "not hdf5" >junk.h5
$QIDA results junk.h5 >/dev/null 2>err; is 1 $? "not an HDF5 file: exits 1"
$QIDA results ck/neox-1000.h5 >/dev/null 2>err; is 1 $? "a checkpoint, not a results store: exits 1"
like "$(cat err)" "qid-checkpoint" "a checkpoint: the error names its format"
$QIDA results --columns key,nosuch a.h5 >/dev/null 2>err; is 2 $? "--columns with an unknown name: exits 2"
$QIDA results --status maybe a.h5 >/dev/null 2>&1; is 2 $? "--status maybe: exits 2"
