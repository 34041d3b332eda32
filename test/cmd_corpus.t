#!/usr/bin/env bash
# cmd_corpus.t - `qid corpus` end to end: help, --info with the default source's
# exact entropies, a synthetic corpus (window counts, the golden h5dump
# listing hdf5-schema/tokens-corpus.h5dump, attribute values, `qid inspect`,
# determinism across runs and seeds), a text file split into parts that
# concatenate back to it, usage errors (exit 2), and one-line errors (exit 1)
# that leave nothing behind.
set -u
. "$(dirname "$0")/taplib.sh"
plan 50
tap_tmpdir
T=$TAP_TMP
attr() { h5dump -a "/$1" "$2" | sed -n 's/.*(0): "*\([^"]*\)"*$/\1/p'; }

out=$($QID corpus --help); ok $? "qid corpus --help exits 0"
like "$out" "usage: qid corpus --synthetic [source options] [sizes] -o DIR" "--help prints the usage"
like "$($QID --help)" "corpus" "qid --help lists corpus"

# the default source: exact numbers (nats/token)
out=$($QID corpus --synthetic --info); ok $? "--info exits 0"
like "$out" "source markov-zipf --vocab 128 --order 2 --branching 8 --zipf 1 --mix 0.05,0.55,0.4 --seed 1" \
    "--info: the source as options"
like "$out" "entropy rate   2.527220 nats/token (3.646008 bits)" "--info: entropy rate of the default source"
like "$out" "bigram model   3.046779 nats/token" "--info: best bigram loss"
like "$out" "unigram model  3.904932 nats/token" "--info: best unigram loss"
like "$($QID corpus --synthetic --vocab 64 --order 1 --branching 16 --zipf 0 --mix 0,1 --seed 5 --info)" \
    "entropy rate   2.772589 nats/token (4.000000 bits)" "uniform branching 16: H = log 16 = 4 bits"

# a small synthetic corpus; the golden listing is made by this fixed command
out=$($QID corpus --synthetic --seq-len 64 --train-tokens 1000 --eval-tokens 640 --calib-tokens 64 -o "$T/c")
ok $? "synthetic corpus written"
like "$out" "wrote $T/c/train.h5: 16 windows x 64 tokens (stream 1)" "train: 1000 tokens rounded up to 16 windows"
like "$out" "wrote $T/c/eval.h5: 10 windows x 64 tokens (stream 2)" "eval: 10 windows"
like "$out" "wrote $T/c/calib.h5: 1 window x 64 tokens (stream 3)" "calib: 1 window"
like "$out" "loss floor on 64-token windows (every predicted token scored): 2.535467 nats/token" \
    "loss floor of 64-token windows"
is "calib.h5 eval.h5 train.h5" "$(ls -A "$T/c" | xargs)" "DIR holds the three files and nothing staged"
h5dump -H "$T/c/eval.h5" | sed '1s/.*/HDF5 "tokens-corpus.h5" {/' >"$T/listing"
diff -u hdf5-schema/tokens-corpus.h5dump "$T/listing" >"$T/diff"; ok $? "h5dump -H matches hdf5-schema/tokens-corpus.h5dump"
[ -s "$T/diff" ] && sed 's/^/# /' "$T/diff" | head -40
is "markov-zipf" "$(attr corpus_generator "$T/c/eval.h5")" "corpus_generator"
is "eval" "$(attr corpus_part "$T/c/eval.h5")" "corpus_part"
is "2" "$(attr corpus_stream "$T/c/eval.h5")" "corpus_stream"
is "2.52722" "$(attr entropy_rate "$T/c/eval.h5" | cut -c1-7)" "entropy_rate attribute"
is "synthetic" "$(attr tokenizer "$T/c/train.h5")" "tokenizer synthetic"
out=$($QID inspect "$T/c/train.h5"); ok $? "inspect of a corpus token set exits 0"
like "$out" "corpus                 markov-zipf v1, part train (stream 1)" "inspect: generator and part"
like "$out" "entropy rate           2.527220 nats/token (3.646008 bits)" "inspect: entropy rate"
like "$out" "loss floor             2.535467 nats/token on 64-token windows" "inspect: loss floor"
# determinism: the same command gives the same tokens; another seed others
$QID corpus --synthetic --seq-len 64 --train-tokens 1000 --eval-tokens 640 --calib-tokens 64 -o "$T/d" >/dev/null
is "$(attr source_sha256 "$T/c/train.h5")" "$(attr source_sha256 "$T/d/train.h5")" "same seed: identical train tokens"
$QID corpus --synthetic --seed 2 --seq-len 64 --train-tokens 1000 --eval-tokens 640 --calib-tokens 64 -o "$T/e" >/dev/null
[ "$(attr source_sha256 "$T/c/train.h5")" != "$(attr source_sha256 "$T/e/train.h5")" ]; ok $? "seed 2: other tokens"
[ "$(attr source_sha256 "$T/c/train.h5")" != "$(attr source_sha256 "$T/c/eval.h5")" ]; ok $? "train and eval streams differ"
$QID corpus -o "$T/f" --synthetic --seq-len 6.4e1 --train-tokens 1e3 --eval-tokens 640 --calib-tokens 64 >/dev/null
is "$(attr source_sha256 "$T/c/train.h5")" "$(attr source_sha256 "$T/f/train.h5")" "counts as 1e3 and 6.4e1 (parse.h's one rule)"

# text: parts on window boundaries that concatenate back to the file
seq 1 3000 >"$T/book.txt"
out=$($QID corpus --text "$T/book.txt" --seq-len 100 --eval-frac 0.2 --calib-frac 0.1 -o "$T/t"); ok $? "text corpus written"
like "$out" "wrote $T/t/train.h5: 96 windows x 100 bytes (bytes 0..9600 of $T/book.txt)" "text: train part"
like "$out" "wrote $T/t/calib.h5: 14 windows x 100 bytes (bytes 12400..13893 of $T/book.txt)" "text: calib part to the end"
head -c 12400 "$T/book.txt" | tail -c 2800 | sha256sum | cut -c1-64 >"$T/want"
is "$(cat "$T/want")" "$(attr source_sha256 "$T/t/eval.h5")" "eval.h5 holds bytes 9600..12400 of the file"
is "book.txt" "$(attr source_file "$T/t/eval.h5")" "source_file is the text file's name"

# errors: one line, exit 1, nothing left behind
$QID corpus --synthetic --seq-len 64 --train-tokens 1000 -o "$T/c" 2>"$T/err"; is 1 $? "existing outputs exit 1"
is "qid corpus: error: output '$T/c/train.h5' exists (use --force to replace it)" "$(cat "$T/err")" "existing: message"
$QID corpus --synthetic --force --seq-len 64 --train-tokens 1000 --eval-tokens 64 --calib-tokens 64 -o "$T/c" >/dev/null
ok $? "--force replaces them"
$QID corpus --synthetic --vocab 32 --order 2 --branching 8 --zipf 0 --mix 0,0,1 --seed 3 -o "$T/x" 2>"$T/err"
is 1 $? "a reducible chain exits 1"
like "$(cat "$T/err")" "is not irreducible: context 616 cannot be reached from context 0" "reducible chain: message"
head -c 150 "$T/book.txt" >"$T/tiny.txt"
$QID corpus --text "$T/tiny.txt" -o "$T/x" 2>"$T/err"; is 1 $? "a text too small for three parts exits 1"
like "$(cat "$T/err")" "cannot split '$T/tiny.txt': 150 bytes make 1 window of 128" "too small: message"
[ ! -e "$T/x" ]; ok $? "errors: no output directory left"

# usage errors: exit 2
$QID corpus -o "$T/x" 2>"$T/err"; is 2 $? "neither --synthetic nor --text exits 2"
like "$(head -1 "$T/err")" "qid corpus: error: give --synthetic or --text FILE" "no mode: message"
$QID corpus --synthetic --mix 0.1,0.9 -o "$T/x" 2>"$T/err"; is 2 $? "--mix with the wrong count exits 2"
$QID corpus --synthetic --zipf -1 -o "$T/x" 2>"$T/err"; is 2 $? "--zipf -1 exits 2"
$QID corpus --text "$T/book.txt" --vocab 64 -o "$T/x" 2>"$T/err"; is 2 $? "--vocab with --text exits 2"
$QID corpus --synthetic --vocab 64 --branching 65 -o "$T/x" 2>"$T/err"; is 2 $? "--branching above --vocab exits 2"
is "qid corpus: error: --branching 65 is outside 1..64 (the vocabulary)" "$(cat "$T/err")" "--branching: message"
[ ! -e "$T/x" ]; ok $? "usage errors: no output directory"
