#!/bin/sh
# demo_docs.sh - copy the summary of the last full `make demo` (DEMO_DIR,
# default build/demo: summary.txt) into docs/demo.md's sample, the lines
# that begin with "demo: ". The prose of README.md and docs/demo.md quotes
# that sample; test/docs_demo.t fails make check until every number the
# prose quotes is found in it again (round it, do not retype it).
set -eu
cd "$(dirname "$0")/.."
sum=${DEMO_DIR:-build/demo}/summary.txt
[ -f "$sum" ] || { echo "demo_docs: error: $sum: no summary (run make demo first)" >&2; exit 1; }
grep -q '^demo: summary (full suite)' "$sum" ||
    { echo "demo_docs: error: $sum: not the full suite's summary (DEMO_SIZE=small?)" >&2; exit 1; }
tmp=docs/demo.md.tmp.$$
trap 'rm -f "$tmp"' EXIT
awk -v sum="$sum" '
/^demo: / { if (!done) { while ((getline l < sum) > 0) if (l ~ /^demo: /) print l; done = 1 } next }
{ print }
END { if (!done) { print "demo_docs: error: docs/demo.md: no sample block (lines that begin with \"demo: \")" > "/dev/stderr"; exit 1 } }' docs/demo.md >"$tmp"
mv "$tmp" docs/demo.md
trap - EXIT
echo "demo_docs: docs/demo.md's sample now is $sum; run make check (test/docs_demo.t checks the prose)"
