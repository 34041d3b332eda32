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
tap_tmpdir() { TAP_TMP=$(mktemp -d "${TMPDIR:-/tmp}/qid-test-XXXXXX"); }
QID=${QID:-build/qid}
# mpirun as the tests run it: --oversubscribe (more ranks than this machine's
# cores), and --allow-run-as-root when root (Open MPI refuses root otherwise).
MPIRUN="mpirun --oversubscribe"
if [ "$(id -u)" -eq 0 ]; then MPIRUN="$MPIRUN --allow-run-as-root"; fi
