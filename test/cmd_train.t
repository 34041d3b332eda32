#!/usr/bin/env bash
# cmd_train.t - `qid train` end to end: a run on a learnable stream with an eval
# set and explicit save steps, what it writes (checkpoints, train.tsv,
# train.json), `qid eval` of a checkpoint printing the eval loss the trainer
# logged, the golden h5dump listing of the /train group, the cache of a
# rerun, replacing another training with --force, and one-line errors for
# bad usage and bad input that leave nothing behind.
set -u
. "$(dirname "$0")/taplib.sh"
plan 36
tap_tmpdir
T=$TAP_TMP

# A first-order Markov stream over 16 ids (perl is a dependency: prove).
perl -e 'srand(7); my @p = (5,11,2,14,9,0,7,12,3,15,1,8,13,6,10,4); my $c = 0;
  print pack("v*", map { $c = rand() < 0.875 ? $p[$c] : int(rand(16)) } 1..20480)' >"$T/stream.u16"
head -c 32768 "$T/stream.u16" >"$T/train.u16"
tail -c 8192 "$T/stream.u16" >"$T/eval.u16"
$QID tokens --from "$T/train.u16" --dtype uint16 --vocab 16 --seq-len 64 --tokenizer markov -o "$T/train.h5" >/dev/null 2>&1
$QID tokens --from "$T/eval.u16" --dtype uint16 --vocab 16 --seq-len 64 --tokenizer markov -o "$T/eval.h5" >/dev/null 2>&1
[ -f "$T/train.h5" ] && [ -f "$T/eval.h5" ] || { echo "Bail out! cannot write the token sets"; exit 255; }

out=$($QID train --help); ok $? "qid train --help exits 0"
like "$out" "usage: qid train --train TOKENS -o DIR" "--help shows the usage"
like "$($QID --help)" "train      train a small gpt-neox model" "qid --help lists train"

R=(--train "$T/train.h5" --eval "$T/eval.h5" --eval-windows 8 --d-model 32 --layers 2 --heads 4 --seq-len 32
   --batch 8 --steps 40 --lr 1e-2 --warmup 4 --schedule wsd --save 0,10,40 --threads 2)
out=$($QID train "${R[@]}" -o "$T/run" 2>"$T/err"); ok $? "a 40-step wsd run exits 0"
like "$out" "trained      40 steps, 10240 tokens" "summary: steps and tokens (40 x 8 x 32)"
like "$out" "checkpoints  3" "summary: 3 checkpoints"
like "$(cat "$T/err")" "train: step 40: train loss" "a log line at each saved checkpoint"
is "step0.h5 step10.h5 step40.h5 train.json train.tsv" "$(cd "$T/run" && echo *)" "DIR holds the checkpoints and the logs"
is 42 "$(wc -l <"$T/run/train.tsv")" "train.tsv: a header and rows for steps 0..40"
is "step	tokens	lr	train_loss	grad_norm	eval_loss	seconds" "$(head -1 "$T/run/train.tsv")" "train.tsv header"
like "$(tr -d ' \t\n' <"$T/run/train.json")" '"complete":true' "train.json says complete"
like "$(tr -d ' \t\n' <"$T/run/train.json")" '"schedule":"wsd"' "train.json records the schedule"

# qid eval of a checkpoint prints the eval loss the trainer logged for it
logged=$(awk -F'\t' '$1 == 40 { printf "%.6f", $6 }' "$T/run/train.tsv")
out=$($QID eval "$T/run/step40.h5" "$T/eval.h5" --windows 8 --seq-len 32); ok $? "qid eval of step40.h5 exits 0"
is "$(echo "$out" | awk '$1 == "loss" { printf "%.6f", $2 }')" "$logged" "qid eval's loss = the logged eval loss $logged (to 6 decimals)"
first=$(awk -F'\t' '$1 == 0 { print $6 }' "$T/run/train.tsv")
awk -v a="$first" -v b="$logged" 'BEGIN { exit !(b < 0.75 * a) }'; ok $? "eval loss falls from $first to $logged"
out=$($QID inspect "$T/run/step10.h5")
like "$out" "tokens seen (D)        2560" "step10.h5: D = 10 x 8 x 32"
like "$out" "learning rate          1 of peak (wsd,steps=40,warmup=4,min=0.1,decay=0.2)" "step10.h5: lr_frac 1 (wsd's stable phase) and its schedule"
like "$($QID inspect "$T/run/step40.h5")" "learning rate          0.1 of peak (" "step40.h5: lr_frac 0.1 (the end of wsd's decay)"

h5dump -H -g /train "$T/run/step40.h5" | sed '1s/.*/HDF5 "checkpoint.h5" {/' >"$T/listing"
diff -u hdf5-schema/checkpoint-train.h5dump "$T/listing" >"$T/diff"; ok $? "h5dump of /train matches hdf5-schema/checkpoint-train.h5dump"
[ -s "$T/diff" ] && sed 's/^/# /' "$T/diff" | head -40
like "$(h5dump -a /train/schedule "$T/run/step40.h5")" '"wsd"' "/train/schedule is wsd"

# the cache: a rerun does nothing, other settings are refused, --force replaces
before=$(stat -c %Y "$T/run/step40.h5")
out=$($QID train "${R[@]}" -o "$T/run" 2>&1); ok $? "rerun exits 0"
like "$out" "already holds this training (3 checkpoints" "rerun: says the directory already holds it"
is "$before" "$(stat -c %Y "$T/run/step40.h5")" "rerun: the checkpoint is untouched"
$QID train "${R[@]}" --seed 9 -o "$T/run" 2>"$T/err"; is 1 $? "other settings into the directory exit 1"
like "$(cat "$T/err")" "holds a training with other settings" "... with a message naming the reason"
$QID train "${R[@]}" --seed 9 --save 20,40 --force -o "$T/run" >/dev/null 2>&1; ok $? "--force replaces it"
is "step20.h5 step40.h5 train.json train.tsv" "$(cd "$T/run" && echo *)" "... and the old checkpoints are gone"

# bad usage and bad input: one line, nothing written
$QID train "${R[@]}" --schedule linear -o "$T/x" 2>"$T/err"; is 2 $? "unknown schedule exits 2"
like "$(head -1 "$T/err")" "qid train: error: --schedule wants cosine, constant or wsd, got 'linear'" "unknown schedule: message"
$QID train "${R[@]}" --tokens 5000 -o "$T/x" 2>"$T/err"; is 2 $? "--steps and --tokens together exit 2"
like "$(head -1 "$T/err")" "give either --steps or --tokens" "... message"
$QID train "${R[@]}" --vocab 8 -o "$T/x" 2>"$T/err"; is 1 $? "a vocabulary larger than the model's exits 1"
like "$(cat "$T/err")" "has a vocabulary of 16, larger than the model's 8" "... message"
$QID train "${R[@]}" --seq-len 4096 -o "$T/x" 2>"$T/err"; is 1 $? "windows longer than the train set exit 1"
like "$(cat "$T/err")" "fewer than one batch of 8 windows of 4096 tokens" "... message"
[ ! -e "$T/x" ]; ok $? "no output directory is left by the refused runs"
