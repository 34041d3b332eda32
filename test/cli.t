#!/usr/bin/env bash
# cli.t - the qid command line: help and version, `qid import` and
# `qid inspect` end to end on a transformers-written checkpoint, the golden
# h5dump listing of the checkpoint schema, one-line errors that leave no
# output behind, and the one command-line rule of every command (help,
# unknown options, options after the arguments, 3e11-style integers).
set -u
. "$(dirname "$0")/taplib.sh"
plan 83
tap_tmpdir
T=$TAP_TMP
FIX=test/fixtures/hf

out=$($QID --help); ok $? "qid --help exits 0"
like "$out" "import" "--help lists import"
like "$out" "inspect" "--help lists inspect"
out=$($QID --version); ok $? "qid --version exits 0"
like "$out" "libraries: HDF5 1." "--version names the libraries"

# the docs point only at files a clone has (no ../shared/, no absolute paths of a machine)
is "" "$( (grep -nE '\]\(\.\./' README.md; grep -nE '\.\./shared/|/work/' README.md docs/*.md jobs/*.job) 2>/dev/null | head -3)" \
    "README, docs and jobs point only inside the repository"
# the README's way to call it `qid`: make install into a prefix, then PATH
make --no-print-directory install PREFIX="$T/prefix" QID="$QID" >/dev/null 2>&1; ok $? "make install PREFIX=... exits 0"
like "$(PATH="$T/prefix/bin:$PATH" qid --version 2>&1)" "libraries: HDF5 1." "after make install, 'qid' on PATH runs"
$QID import --help >/dev/null; ok $? "qid import --help exits 0"
$QID frobnicate 2>"$T/err"; is 2 $? "unknown command exits 2"
like "$(cat "$T/err")" "unknown command 'frobnicate'" "unknown command: message"
$QID import --from safetensors "$FIX/gpt-neox-tiny" 2>"$T/err"; is 2 $? "import without -o exits 2"
like "$(head -1 "$T/err")" "qid import: error: no output given" "missing -o: message"

out=$($QID import --from safetensors "$FIX/gpt-neox-tiny" --step 1000 --tokens-per-step 2097152 -o "$T/ck.h5" 2>"$T/err")
ok $? "import of the GPT-NeoX fixture succeeds"
like "$out" "N = 17152, step 1000, D = 2097152000" "import reports N, step and D"
h5dump -H "$T/ck.h5" | sed '1s/.*/HDF5 "checkpoint.h5" {/' >"$T/listing"
diff -u hdf5-schema/checkpoint.h5dump "$T/listing" >"$T/diff"; ok $? "h5dump -H matches hdf5-schema/checkpoint.h5dump"
[ -s "$T/diff" ] && sed 's/^/# /' "$T/diff" | head -40

out=$($QID inspect "$T/ck.h5"); ok $? "inspect exits 0"
like "$out" "qid checkpoint, schema version 1" "inspect: kind and schema version"
like "$out" "params non-embed (N)   17152" "inspect: N"
like "$out" "tokens seen (D)        2097152000" "inspect: D"
like "$out" "learning rate          unknown (qid import --schedule)" "inspect: no schedule given, lr unknown"

# --schedule: the checkpoint's place in its learning-rate schedule (Pythia:
# warm-up over 1430 of 143000 steps, so step 1000 is at 1000/1430 of the peak)
out=$($QID import --from safetensors "$FIX/gpt-neox-tiny" --step 1000 --tokens-per-step 2097152 --schedule pythia \
      -o "$T/lr.h5" 2>&1)
like "$out" "lr 0.6993 of peak" "import --schedule pythia at step 1000: lr 1000/1430 of the peak"
is "0.699300699300699" "$(h5dump -m %.15g -a /lr_frac "$T/lr.h5" | sed -n 's/^ *(0): //p')" "lr_frac attribute stored to full precision"
like "$($QID inspect "$T/lr.h5")" "learning rate          0.6993 of peak (cosine,steps=143000,warmup=1430,min=0.1)" \
     "inspect shows lr_frac and the canonical schedule"
out=$($QID import --from safetensors "$FIX/gpt-neox-tiny" --step 143e3 --schedule cosine,steps=143e3,warmup=1%,min=0.1 \
      -o "$T/lr2.h5" 2>&1)
like "$out" "lr 0.1 of peak" "import --schedule spelled out: the last step is at min"
mkdir -p "$T/lrbad"
$QID import --from safetensors "$FIX/gpt-neox-tiny" --schedule pythia -o "$T/lrbad/x.h5" 2>"$T/err"; is 2 $? "--schedule without --step exits 2"
like "$(cat "$T/err")" "qid import: error: --schedule needs --step" "--schedule without --step: message"
$QID import --from safetensors "$FIX/gpt-neox-tiny" --step 5 --schedule cosine,steps=10,warmup=20 -o "$T/lrbad/x.h5" 2>"$T/err"
is 2 $? "a warm-up longer than the run exits 2"
like "$(cat "$T/err")" "schedule 'cosine,steps=10,warmup=20': warmup 20 is longer than steps 10" "bad schedule: message names it"
is 0 "$(ls -A "$T/lrbad" | wc -l)" "bad schedule: no output left"
out=$($QID inspect --tensors "$T/ck.h5")
like "$out" "/layers/1/mlp.down.weight" "inspect --tensors lists layer tensors"
like "$out" "[32, 64]         float32  linear" "inspect --tensors shows shape, dtype, kind"

# errors: one line on stderr, exit 1, nothing left behind
mkdir -p "$T/bad" "$T/out"
cp "$FIX/gpt-neox-tiny/config.json" "$T/bad/"
head -c 50000 "$FIX/gpt-neox-tiny/model.safetensors" >"$T/bad/model.safetensors"
$QID import --from safetensors "$T/bad" -o "$T/out/x.h5" 2>"$T/err"; is 1 $? "truncated safetensors exits 1"
like "$(cat "$T/err")" "qid import: error: invalid safetensors file '$T/bad/model.safetensors': tensor" "truncated: message names the file and tensor"
is 1 "$(grep -cv '^qid: warning' "$T/err")" "truncated: exactly one error line"
is 0 "$(ls -A "$T/out" | wc -l)" "truncated: no output or temporary file left"
$QID import --from safetensors "$FIX/gpt-neox-tiny" -o "$T/ck.h5" 2>"$T/err"; is 1 $? "existing output exits 1"
like "$(cat "$T/err")" "exists (use --force to replace it)" "existing output: message"
$QID inspect "$FIX/gpt-neox-tiny/config.json" 2>"$T/err"; is 1 $? "inspect of a non-HDF5 file exits 1"
like "$(cat "$T/err")" "is not an HDF5 file" "inspect non-HDF5: message"

# one command-line rule for every command (src/cli/cli.c, docs/commands.md)
for c in import tokens corpus inspect eval run results quantize fit predict predictor report train; do
    $QID $c --help >"$T/help" 2>&1; ok $? "qid $c --help exits 0"
    $QID $c --no-such-option 2>"$T/err" >/dev/null; is 2 $? "qid $c with an unknown option exits 2"
    is "qid $c: error: unknown option '--no-such-option' (see 'qid $c --help')" "$(cat "$T/err")" \
        "qid $c: the unknown option is one line naming it, with the hint"
done
# options after the positional arguments, and 3e11-style integers, everywhere alike
out=$($QID import "$FIX/gpt-neox-tiny" -o "$T/ck2.h5" --from safetensors --step 1e3 --tokens-per-step 2.097152e6 2>&1)
like "$out" "N = 17152, step 1000, D = 2097152000" "import: options after the directory, 1e3 and 2.097152e6 as integers"
out=$($QID inspect "$T/ck2.h5" --tensors)
like "$out" "/layers/1/mlp.down.weight" "inspect: --tensors after the file"
$QID eval "$T/ck2.h5" "$T/ck2.h5" --windows 0.5 2>"$T/err"; is 2 $? "eval: --windows 0.5 exits 2"
is "qid eval: error: --windows wants a positive integer, got '0.5'" "$(cat "$T/err")" "eval: a fraction where an integer is wanted: one line"
