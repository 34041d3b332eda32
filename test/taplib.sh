# taplib.sh - TAP helpers for the shell tests (sourced). Counts tests and
# checks the plan at exit, like test/tap.c.
TAP_N=0
TAP_FAILED=0
TAP_PLAN=0
plan() { TAP_PLAN=$1; echo "1..$1"; trap tap_end EXIT; }
tap_end() {
    [ "$TAP_N" -eq "$TAP_PLAN" ] || echo "# planned $TAP_PLAN tests but ran $TAP_N"
    [ -n "${TAP_TMP:-}" ] && rm -rf "$TAP_TMP"
}
ok() { # ok CONDITION-EXIT-STATUS DESCRIPTION
    TAP_N=$((TAP_N + 1))
    if [ "$1" -eq 0 ]; then echo "ok $TAP_N - $2"; else echo "not ok $TAP_N - $2"; TAP_FAILED=$((TAP_FAILED + 1)); fi
}
is() { # is WANTED SEEN DESCRIPTION
    TAP_N=$((TAP_N + 1))
    if [ "$1" = "$2" ]; then echo "ok $TAP_N - $3"; else
        echo "not ok $TAP_N - $3"; echo "#   wanted: $1"; echo "#     seen: $2"; TAP_FAILED=$((TAP_FAILED + 1)); fi
}
like() { # like SEEN SUBSTRING DESCRIPTION
    TAP_N=$((TAP_N + 1))
    case "$1" in *"$2"*) echo "ok $TAP_N - $3" ;;
    *) echo "not ok $TAP_N - $3"; echo "#   wanted substring: $2"; echo "#               seen: $1"; TAP_FAILED=$((TAP_FAILED + 1)) ;; esac
}
skip_all() { echo "1..0 # SKIP $*"; exit 0; }
# A prerequisite that make check provides (make deps installs it, make tests
# builds it): when it is missing the test fails, it never skips.
fail_all() { echo "1..1"; echo "not ok 1 - $*"; exit 1; }
require_cmd() { command -v "$1" >/dev/null 2>&1 || fail_all "$1 not found (${2:-make deps installs it})"; }
require_exe() { [ -x "$1" ] || fail_all "$1 is not built (make tests builds it)"; }
tap_tmpdir() { TAP_TMP=$(mktemp -d "${TMPDIR:-/tmp}/qid-test-XXXXXX"); }
QID=${QID:-build/qid}
# mpirun as the tests run it: --oversubscribe (more ranks than this machine's
# cores), and --allow-run-as-root when root (Open MPI refuses root otherwise).
MPIRUN="mpirun --oversubscribe"
if [ "$(id -u)" -eq 0 ]; then MPIRUN="$MPIRUN --allow-run-as-root"; fi

# ---- shared set-up of the tests that run jobs (cmd_run.t, sweep_kill.t, cmd_results.t)

# Absolute paths, for tests that cd into $TAP_TMP: ROOT (the repository),
# QIDA (qid) and, when HELPER is set, HELPERA.
tap_abs_paths() {
    ROOT=$(pwd)
    QIDA=$ROOT/$QID
    case "$QID" in /*) QIDA=$QID ;; esac
    if [ -n "${HELPER:-}" ]; then
        HELPERA=$ROOT/$HELPER
        case "$HELPER" in /*) HELPERA=$HELPER ;; esac
    fi
}

# tap_import_tiny DIR MODEL STEP...: imports test/fixtures/hf/MODEL at each
# step (2,097,152 tokens a step; from any directory after tap_abs_paths) as DIR/neox-STEP.h5 (gpt-neox-tiny) or
# DIR/llama-STEP.h5 (llama-tiny); a failure is a comment, and the test's
# own checks then fail.
tap_import_tiny() {
    local dir=$1 model=$2 short s
    shift 2
    case "$model" in gpt-neox-tiny) short=neox ;; *) short=${model%-tiny} ;; esac
    mkdir -p "$dir"
    for s in "$@"; do
        "${QIDA:-$QID}" import --from safetensors "${ROOT:-.}/test/fixtures/hf/$model" --step "$s" --tokens-per-step 2097152 \
            -o "$dir/$short-$s.h5" >/dev/null 2>&1 || echo "# import of $model step $s failed"
    done
}

# tap_tokens_fixture OUT: test/fixtures/hf/tokens.u16 as a token set
# (vocabulary 96, windows of 16).
tap_tokens_fixture() {
    "${QIDA:-$QID}" tokens --from "${ROOT:-.}/test/fixtures/hf/tokens.u16" --dtype uint16 --vocab 96 --seq-len 16 -o "$1" >/dev/null 2>&1 ||
        echo "# tokens import failed"
}

# ---- shared set-up of the fit tests (cmd_fit.t, cmd_report.t)

# GEN and GENP: the synthetic-store writers build/test/fit_cmd.t and
# build/test/fit_predictor.t (`--write-store PATH [KIND]`); both must be built.
tap_fit_generators() {
    GEN=${BUILD:-build}/test/fit_cmd.t
    GENP=${BUILD:-build}/test/fit_predictor.t
    require_exe "$GEN"
    require_exe "$GENP"
}

# tap_doc_sample DOC MARKER OUTFILE DESC: the sample block of DOC whose first
# line contains MARKER ("# sample: ..." after the command) matches the
# command's real output in OUTFILE: every line of the block after the first,
# but "..." lines (elided output), appears in OUTFILE, in order. A stale
# sample in the manual fails make check.
tap_doc_sample() {
    local doc=$1 marker=$2 out=$3 desc=$4
    awk -v m="$marker" -v outf="$out" '
        BEGIN { while ((getline l < outf) > 0) o[++no] = l; at = 1 }
        inblk && /^```/ { inblk = 0; done = 1 }
        inblk && $0 != "..." {
            while (at <= no && o[at] != $0) at++
            if (at > no) { print "# not in the output (or out of order): " $0; bad = 1; exit }
            at++
        }
        !done && index($0, m) && /^\$ / { inblk = 1 }
        END { exit bad || !done }' "$doc"
    ok $? "$desc"
}

