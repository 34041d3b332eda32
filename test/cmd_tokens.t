#!/usr/bin/env bash
# cmd_tokens.t - `qid tokens` end to end: help, the golden h5dump listing of the
# token-set schema (hdf5-schema/tokens.h5dump), raw/npy/text imports with
# their counts, `qid inspect` of a token set, usage errors (exit 2), and
# one-line errors (exit 1) that leave no output or temporary file behind.
set -u
. "$(dirname "$0")/taplib.sh"
plan 137
tap_tmpdir
T=$TAP_TMP
SEEDS=test/fuzz/seeds-npy

out=$($QID tokens --help); ok $? "qid tokens --help exits 0"
like "$out" "usage: qid tokens --from INPUT -o OUT.h5 [options]" "--help prints the usage"
like "$($QID --help)" "tokens" "qid --help lists tokens"

# golden listing: the fixed command documented in hdf5-schema/tokens.md
seq 1 200 >"$T/golden.txt"
out=$($QID tokens --from "$T/golden.txt" --text --seq-len 64 -o "$T/tokens.h5"); ok $? "text import of seq 1 200 succeeds"
is "wrote $T/tokens.h5: 10 windows x 64 tokens (uint16, vocab 256, tokenizer bytes); 52 of 692 source tokens dropped" \
    "$out" "text import reports windows, dtype and the dropped tail"
h5dump -H "$T/tokens.h5" | sed '1s/.*/HDF5 "tokens.h5" {/' >"$T/listing"
diff -u hdf5-schema/tokens.h5dump "$T/listing" >"$T/diff"; ok $? "h5dump -H matches hdf5-schema/tokens.h5dump"
[ -s "$T/diff" ] && sed 's/^/# /' "$T/diff" | head -40
is "$(sha256sum "$T/golden.txt" | cut -c1-64)" "$(h5dump -a /source_sha256 "$T/tokens.h5" | sed -n 's/.*(0): "\(.*\)".*/\1/p')" \
    "source_sha256 equals sha256sum of the source"
is "$(tail -c +577 "$T/golden.txt" | head -c 10 | od -An -tu1 | xargs)" \
    "$(h5dump -d /tokens -s 9,0 -c 1,10 -y -w 0 "$T/tokens.h5" | sed -n '/DATA {/{n;p}' | tr -d ',' | xargs)" \
    "window 9 holds source bytes 576..585"

# inspect
out=$($QID inspect "$T/tokens.h5"); ok $? "inspect of a token set exits 0"
like "$out" "qid token set, schema version 1" "inspect: kind and schema version"
like "$out" "windows                10 x 64 tokens (640 tokens)" "inspect: windows x seq_len"
like "$out" "dtype                  uint16" "inspect: dtype"
like "$out" "source                 golden.txt (692 tokens, 52 dropped)" "inspect: source"

# raw uint16 and uint32 (written with perl's pack, little-endian)
perl -e 'print pack("v*", map { ($_ * 7919) % 50304 } 0..4999)' >"$T/data.u16"
out=$($QID tokens --from "$T/data.u16" --dtype uint16 --vocab 50304 --tokenizer gpt-neox-20b --seq-len 2048 -o "$T/u16.h5")
ok $? "raw uint16 import succeeds"
like "$out" "2 windows x 2048 tokens (uint16, vocab 50304, tokenizer gpt-neox-20b); 904 of 5000" "raw uint16: counts"
perl -e 'print pack("V*", map { ($_ * 104729) % 151936 } 0..999)' >"$T/data.u32"
out=$($QID tokens --dtype uint32 --vocab 151936 --tokenizer qwen2 --seq-len 100 --max-windows 4 "$T/data.u32" -o "$T/u32.h5")
ok $? "raw uint32 import succeeds"
like "$out" "4 windows x 100 tokens (uint32, vocab 151936, tokenizer qwen2); 600 of 1000" "raw uint32 with --max-windows: counts"
is "H5T_STD_U32LE" "$(h5dump -H -d /tokens "$T/u32.h5" | awk '/DATATYPE/ {print $2}')" "vocab > 65536 is stored as uint32"
out=$($QID tokens "$T/data.u32" --dtype uint32 --vocab 1.51936e5 --tokenizer qwen2 --seq-len 1e2 --max-windows 4 -o "$T/u32e.h5")
like "$out" "4 windows x 100 tokens (uint32, vocab 151936, tokenizer qwen2); 600 of 1000" \
    "integers as 1e2 (parse.h's one rule), options after the input"

# .npy (recognised by its magic)
out=$($QID tokens --vocab 50304 --tokenizer t --seq-len 5 $SEEDS/i8-2d-v2.npy -o "$T/npy.h5"); ok $? "npy 2-D int64 v2.0 import"
like "$out" "4 windows x 5 tokens (uint16, vocab 50304, tokenizer t); 4 of 24" "npy: 24 ids flattened, 4 dropped"

# errors: one line on stderr (warnings aside), exit 1, nothing left behind
mkdir -p "$T/out"
perl -e 'print pack("V*", map { $_ == 12345 ? 70000 : $_ % 50304 } 0..19999)' >"$T/bad.u32"
$QID tokens --from "$T/bad.u32" --dtype uint32 --vocab 50304 --tokenizer t -o "$T/out/x.h5" 2>"$T/err"; is 1 $? "id 70000 >= vocab exits 1"
is "qid tokens: error: token id 70000 at position 12345 is outside the vocabulary (size 50304) in '$T/bad.u32'" \
    "$(cat "$T/err")" "out of range: the message names id, position, vocab and file"
is 0 "$(ls -A "$T/out" | wc -l)" "out of range: no output and no .tmp left"
$QID tokens --vocab 50304 --tokenizer t $SEEDS/u2-be-v1.npy -o "$T/out/x.h5" 2>"$T/err"; is 1 $? "big-endian npy exits 1"
like "$(cat "$T/err")" "big-endian dtype '>u2' is not supported" "big-endian npy: message"
$QID tokens --vocab 50304 --tokenizer t $SEEDS/u2-fortran-v1.npy -o "$T/out/x.h5" 2>"$T/err"; is 1 $? "fortran-order npy exits 1"
like "$(cat "$T/err")" "fortran_order is True" "fortran npy: message"
$QID tokens --vocab 50304 --tokenizer t --seq-len 2 $SEEDS/i4-neg-v1.npy -o "$T/out/x.h5" 2>"$T/err"; is 1 $? "negative id exits 1"
like "$(cat "$T/err")" "token id -1 at position 2 is negative" "negative id: message"
is 1 "$(wc -l <"$T/err")" "negative id: exactly one line"
$QID tokens --vocab 50304 --tokenizer t "$T/golden.txt" -o "$T/out/x.h5" 2>"$T/err"; is 1 $? "a text file without --text exits 1"
like "$(cat "$T/err")" "is not a .npy file (bad magic); give --dtype uint16|uint32" "no format: hint"
is 0 "$(ls -A "$T/out" | wc -l)" "errors: still nothing in the output directory"
$QID tokens --text "$T/golden.txt" -o "$T/tokens.h5" 2>"$T/err"; is 1 $? "existing output exits 1"
like "$(cat "$T/err")" "exists (use --force to replace it)" "existing output: message"
$QID tokens --text --force --seq-len 100 "$T/golden.txt" -o "$T/tokens.h5" >/dev/null; ok $? "--force replaces it"

# usage errors: exit 2
$QID tokens --dtype uint16 "$T/data.u16" -o "$T/out/x.h5" 2>"$T/err"; is 2 $? "raw without --vocab exits 2"
like "$(head -1 "$T/err")" "qid tokens: error: --vocab V is required" "missing --vocab: message"
$QID tokens --text --seq-len 0 "$T/golden.txt" -o "$T/out/x.h5" 2>"$T/err"; is 2 $? "--seq-len 0 exits 2"
$QID tokens --text --dtype uint16 "$T/golden.txt" -o "$T/out/x.h5" 2>"$T/err"; is 2 $? "--text with --dtype exits 2"
$QID tokens --dtype uint8 --vocab 10 "$T/golden.txt" -o "$T/out/x.h5" 2>"$T/err"; is 2 $? "--dtype uint8 exits 2"
$QID tokens --text --from "$T/golden.txt" "$T/golden.txt" -o "$T/out/x.h5" 2>"$T/err"; is 2 $? "--from and INPUT exits 2"
like "$(head -1 "$T/err")" "too many arguments (give one input: --from INPUT or INPUT)" "two inputs: message"
is 0 "$(ls -A "$T/out" | wc -l)" "usage errors: nothing in the output directory"

# ---- Megatron indexed datasets (test/fixtures/megatron, tools/make_megatron_fixture.py)
MG=test/fixtures/megatron
# ids_of H5: every stored id, space-separated, in window order
ids_of() { h5dump -d /tokens -y -w 0 "$1" | sed -n '/DATA {/,/}/p' | sed '1d;$d' | tr -d ',' | xargs; }
# expected NAME AWK-CONDITION N: the first N ids of the sequences whose "DOC SEQ" fields pass the condition
expected() { awk "$2"' { for (i = 3; i <= NF; i++) print $i }' "$MG/$1.expected" | head -n "$3" | xargs; }
out=$($QID tokens --from $MG/u16.idx --vocab 50304 --tokenizer gpt-neox-20b --seq-len 7 -o "$T/mg.h5"); ok $? "u16 .idx import succeeds"
like "$out" "44 windows x 7 tokens (uint16, vocab 50304, tokenizer gpt-neox-20b) from all (uint16, sequences 0:12); 3 of 311" \
    "u16 .idx: every sequence, counts"
is "$(expected u16 1 308)" "$(ids_of "$T/mg.h5")" "u16 .idx: all 308 stored ids equal the writer's"
is "$(sha256sum $MG/u16.bin | cut -c1-64)" "$(h5dump -a /source_sha256 "$T/mg.h5" | sed -n 's/.*(0): "\(.*\)".*/\1/p')" \
    "u16 .idx: source_sha256 is the .bin's when everything is read"
out=$($QID tokens $MG/i32.idx --documents 1:3 --vocab 151936 --tokenizer qwen2 --seq-len 5 -o "$T/mg32.h5"); ok $? "i32 .idx --documents 1:3"
like "$out" "14 windows x 5 tokens (uint32, vocab 151936, tokenizer qwen2) from documents 1:3 (int32, sequences 2:7); 3 of 73" \
    "i32 --documents: documents 1 and 2 are sequences 2..6 (a one-token sequence among them)"
is "$(expected i32 '$1 >= 1 && $1 < 3' 70)" "$(ids_of "$T/mg32.h5")" "i32 --documents: the stored ids equal the writer's"
like "$(h5dump -a /megatron_selection -a /megatron_dtype "$T/mg32.h5")" '"documents 1:3"' "megatron_selection recorded"
out=$($QID tokens --sequences 2:5 --from $MG/u16.idx --vocab 50304 --tokenizer t --seq-len 1 -o "$T/mgs.h5"); ok $? "--sequences 2:5"
n=$(awk '$2 >= 2 && $2 < 5 { n += NF - 2 } END { print n }' $MG/u16.expected)
is "$(expected u16 '$2 >= 2 && $2 < 5' "$n")" "$(ids_of "$T/mgs.h5")" "--sequences 2:5: sequences 2, 3 and 4 exactly ($n ids)"
out=$($QID tokens --sequences 10: --from $MG/u16.idx --vocab 50304 --tokenizer t --seq-len 1 -o "$T/mgt.h5"); ok $? "--sequences 10: (to the end)"
n=$(awk '$2 >= 10 { n += NF - 2 } END { print n }' $MG/u16.expected)
is "$(expected u16 '$2 >= 10' "$n")" "$(ids_of "$T/mgt.h5")" "--sequences 10: reads sequences 10 and 11"

# hostile .idx/.bin: one line, exit 1, nothing written
mkdir -p "$T/bad"
mg_fail() { # mg_fail NAME EXPECTED-SUBSTRING DESCRIPTION [options]
    local name=$1 want=$2 what=$3
    shift 3
    $QID tokens --from "$T/bad/$name.idx" --vocab 50304 --tokenizer t --seq-len 4 "$@" -o "$T/out/x.h5" 2>"$T/err"
    local rc=$?
    is "1 1 0" "$rc $(wc -l <"$T/err") $(ls -A "$T/out" | wc -l)" "$what: exit 1, one line, no output"
    like "$(cat "$T/err")" "$want" "$what: message"
}
mg_copy() { cp $MG/u16.idx "$T/bad/$1.idx"; cp $MG/u16.bin "$T/bad/$1.bin"; }
mg_copy trunc; head -c 600 $MG/u16.bin >"$T/bad/trunc.bin"
mg_fail trunc "invalid Megatron index '$T/bad/trunc.idx': sequence 11 (" "truncated .bin"
mg_copy big; printf '\377\377\377\177' | dd of="$T/bad/big.idx" bs=1 seek=38 conv=notrunc 2>/dev/null
mg_fail big "sequence 1 (2147483647 tokens at byte" "a size of 2^31-1 (pointer + size overflows the .bin)"
mg_copy neg; printf '\377\377\377\377' | dd of="$T/bad/neg.idx" bs=1 seek=34 conv=notrunc 2>/dev/null
mg_fail neg "sequence 0 has a negative size" "a negative size"
mg_copy count; printf '\377\377\377\377\377\377\377\037' | dd of="$T/bad/count.idx" bs=1 seek=18 conv=notrunc 2>/dev/null
mg_fail count "need more than the 226 bytes it has" "a sequence count that overflows"
mg_copy magic; printf 'MMIDIDY' | dd of="$T/bad/magic.idx" bs=1 conv=notrunc 2>/dev/null
mg_fail magic "bad magic (expected 'MMIDIDX" "wrong magic"
mg_copy version; printf '\002' | dd of="$T/bad/version.idx" bs=1 seek=9 conv=notrunc 2>/dev/null
mg_fail version "version 2 (qid reads version 1)" "wrong version"
mg_copy float; printf '\006' | dd of="$T/bad/float.idx" bs=1 seek=17 conv=notrunc 2>/dev/null
mg_fail float "dtype code 6 is a float type" "a float dtype"
cp $MG/u16.idx "$T/bad/nobin.idx"
mg_fail nobin "cannot open '$T/bad/nobin.bin'" "no .bin beside the .idx"
mg_copy sel
mg_fail sel "documents 3:9 are outside the 5 documents of" "a selection outside the file" --documents 3:9
$QID tokens --from $MG/u16.idx --documents 3:1 --vocab 50304 -o "$T/out/x.h5" 2>"$T/err"; is 2 $? "--documents 3:1 exits 2"
like "$(cat "$T/err")" "--documents wants A:B or A: (0-based, B > A), got '3:1'" "--documents 3:1: message"
$QID tokens --from "$T/golden.txt" --text --sequences 0:1 -o "$T/out/x.h5" 2>"$T/err"; is 2 $? "--sequences without a .idx exits 2"
like "$(cat "$T/err")" "select from a Megatron DATA.idx" "--sequences without a .idx: message"
is 0 "$(ls -A "$T/out" | wc -l)" "Megatron errors: nothing in the output directory"

# ---- text through a tokenizer.json (test/fixtures/tokenizers, tools/make_tokenizer_fixtures.py: trained by the
# tokenizers package, with the ids it gives for sample.txt)
TK=test/fixtures/tokenizers
for fam in gpt2 neox llama3 qwen2 llama2 metaspace prefix split-removed split-isolated split-merged_with_previous split-merged_with_next split-contiguous; do
    $QID tokens --tokenizer $TK/$fam.json --from $TK/sample.txt --seq-len 1 -o "$T/tk-$fam.h5" >/dev/null 2>"$T/err"
    is "$(xargs <$TK/$fam.ids)" "$(ids_of "$T/tk-$fam.h5")" "$fam: ids of sample.txt equal tokenizers' ($(wc -l <$TK/$fam.ids) ids)"
done
out=$($QID tokens --tokenizer $TK/neox.json --from $TK/sample.txt --seq-len 64 -o "$T/tk.h5"); ok $? "text import succeeds"
like "$out" "18 windows x 64 tokens (uint16, vocab 1281, tokenizer neox) from 1 document (1771 bytes, plain text; bos none, eos none)" \
    "text: windows, the tokenizer's vocabulary, one document, the policy"
attr() { h5dump -a "/$2" "$1" | sed -n 's/.*(0): "\{0,1\}\([^"]*\)"\{0,1\}$/\1/p'; }
is "$(sha256sum $TK/neox.json | cut -c1-64)" "$(attr "$T/tk.h5" tokenizer_sha256)" "tokenizer_sha256 is the file's SHA-256"
is "$(sha256sum $TK/sample.txt | cut -c1-64)" "$(attr "$T/tk.h5" source_sha256)" "source_sha256 is the text's"
# JSON lines (written with \u escapes, astral characters as surrogate pairs), EOS after each document
perl -MJSON::PP -MEncode -0777 -ne 'my $j = JSON::PP->new->ascii->canonical; my $t = decode_utf8($_);
    print $j->encode({id => 1, text => $t}), "\n\n", $j->encode({text => $t, meta => {x => 1}}), "\n"' $TK/sample.txt >"$T/two.jsonl"
out=$($QID tokens --tokenizer $TK/neox.json --from "$T/two.jsonl" --eos '<|endoftext|>' --seq-len 1 -o "$T/tk2.h5"); ok $? "JSON lines with --eos"
like "$out" "from 2 documents" "JSON lines detected: 2 documents (a blank line skipped)"
eos=$(grep -n . /dev/null; perl -MJSON::PP -0777 -ne 'print JSON::PP->new->decode($_)->{model}{vocab}{"<|endoftext|>"} // ""' $TK/neox.json)
[ -n "$eos" ] || eos=$(perl -MJSON::PP -0777 -ne 'for (@{JSON::PP->new->decode($_)->{added_tokens}}) { print $_->{id} if $_->{content} eq "<|endoftext|>" }' $TK/neox.json)
is "$(xargs <$TK/neox.ids) $eos $(xargs <$TK/neox.ids) $eos" "$(ids_of "$T/tk2.h5")" "JSON lines: each document's ids, then <|endoftext|> ($eos)"
is "2|jsonl|text|bos none, eos <|endoftext|>|-1|$eos" \
    "$(attr "$T/tk2.h5" documents)|$(attr "$T/tk2.h5" text_format)|$(attr "$T/tk2.h5" text_field)|$(attr "$T/tk2.h5" document_policy)|$(attr "$T/tk2.h5" bos_id)|$(attr "$T/tk2.h5" eos_id)" \
    "documents, format, field and the BOS/EOS policy recorded"
like "$($QID inspect "$T/tk2.h5")" "documents              2 (bos none, eos <|endoftext|>)" "inspect: documents and the policy"
like "$($QID inspect "$T/mg32.h5")" "megatron selection     documents 1:3 (int32)" "inspect: the Megatron selection"
$QID tokens --tokenizer $TK/neox.json --from "$T/two.jsonl" --eos '<|endoftext|>' --seq-len 1 --threads 2 -o "$T/tk2t.h5" >/dev/null
is "$(ids_of "$T/tk2.h5")" "$(ids_of "$T/tk2t.h5")" "--threads 2: the same ids"
perl -pe 's/"text"/"body"/' "$T/two.jsonl" >"$T/body.jsonl"
$QID tokens --tokenizer $TK/llama2.json --from "$T/body.jsonl" --text-field body --bos '<s>' --seq-len 1 -o "$T/tkb.h5" >/dev/null
is "1 $(xargs <$TK/llama2.ids) 1 $(xargs <$TK/llama2.ids)" "$(ids_of "$T/tkb.h5")" "--text-field body, --bos '<s>' (id 1) before each document"

# errors: one line, exit 1, nothing written
tk_fail() { # tk_fail EXPECTED-SUBSTRING DESCRIPTION ARGS...
    local want=$1 what=$2
    shift 2
    $QID tokens "$@" --seq-len 1 -o "$T/out/x.h5" 2>"$T/err"
    local rc=$?
    is "1 1 0" "$rc $(wc -l <"$T/err") $(ls -A "$T/out" | wc -l)" "$what: exit 1, one line, no output"
    like "$(cat "$T/err")" "$want" "$what: message"
}
printf 'valid text\nthen \xe9t\xe9 in latin-1\n' >"$T/latin1.txt"
tk_fail "invalid UTF-8 at byte 16 (line 2) of '$T/latin1.txt' (byte 0xe9" "invalid UTF-8 in plain text" --tokenizer $TK/gpt2.json --from "$T/latin1.txt"
printf '{"text": "ok"}\n{"text": "bad \xff byte"}\n' >"$T/bad.jsonl"
tk_fail "invalid UTF-8 at byte 4 of the 'text' field on line 2 of '$T/bad.jsonl'" "invalid UTF-8 in a JSON line" --tokenizer $TK/gpt2.json --from "$T/bad.jsonl"
printf '{"text": "ok"}\n[1, 2]\n' >"$T/arr.jsonl"
tk_fail "line 2 of '$T/arr.jsonl' is not a JSON object with a string field 'text'" "a JSON line that is not an object" --tokenizer $TK/gpt2.json --from "$T/arr.jsonl"
tk_fail "line 1 of '$T/two.jsonl' is not a JSON object with a string field 'content'" "a missing --text-field" --tokenizer $TK/gpt2.json --from "$T/two.jsonl" --text-field content
printf '{"text": "ok"}\n{"text": "a\\u0000b"}\n' >"$T/nul.jsonl"
tk_fail "line 2 of '$T/nul.jsonl' holds a \\u0000 character" "a JSON line with \\u0000 (not cut short)" --tokenizer $TK/gpt2.json --from "$T/nul.jsonl"
: >"$T/empty.txt"
tk_fail "holds no document (empty file)" "an empty text" --tokenizer $TK/gpt2.json --from "$T/empty.txt"
tk_fail "--bos '<nope>' is not a token of '$TK/gpt2.json'" "--bos of an unknown token" --tokenizer $TK/gpt2.json --from $TK/sample.txt --bos '<nope>'
head -c 5000 $TK/gpt2.json >"$T/cut.json"
tk_fail "invalid tokenizer '$T/cut.json': not a JSON object (malformed JSON)" "a truncated tokenizer.json" --tokenizer "$T/cut.json" --from $TK/sample.txt
perl -pe 's/"type":"BPE"/"type":"WordPiece"/' $TK/gpt2.json >"$T/wp.json"
tk_fail "model type 'WordPiece' is not supported (qid runs BPE models)" "a WordPiece model" --tokenizer "$T/wp.json" --from $TK/sample.txt
perl -pe 's/"merges":\[\["/"merges":[["zzq/' $TK/gpt2.json >"$T/merge.json"
tk_fail "merge 0 makes 'zzq" "a merge of a token outside the vocabulary" --tokenizer "$T/merge.json" --from $TK/sample.txt
perl -pe 's/"merges":\[\[/"merges":["a b c",[/' $TK/gpt2.json >"$T/merge3.json"
tk_fail "merge 0 'a b c' is not two tokens separated by a space" "a merge of three tokens" --tokenizer "$T/merge3.json" --from $TK/sample.txt
perl -pe 's/"type":"ByteLevel"/"type":"BertPreTokenizer"/' $TK/gpt2.json >"$T/bert.json"
tk_fail "pre-tokenizer 'BertPreTokenizer' is not supported" "an unsupported pre-tokenizer" --tokenizer "$T/bert.json" --from $TK/sample.txt
perl -pe 's/\{"type":"Split","pattern":\{"Regex":"/{"type":"Split","pattern":{"Regex":"(?<!/' $TK/llama3.json >"$T/re.json"
tk_fail "does not compile at offset" "a regex PCRE2 refuses" --tokenizer "$T/re.json" --from $TK/sample.txt
$QID tokens --tokenizer $TK/gpt2.json --from $TK/sample.txt --vocab 1000 --seq-len 1 -o "$T/out/x.h5" 2>"$T/err"; is 1 $? "--vocab below the tokenizer's ids exits 1"
like "$(cat "$T/err")" "is outside the vocabulary (size 1000)" "--vocab too small: the id and position"
$QID tokens --tokenizer $TK/gpt2.json --from $TK/sample.txt --format xml -o "$T/out/x.h5" 2>"$T/err"; is 2 $? "--format xml exits 2"
$QID tokens --from $TK/sample.txt --text --threads 2 -o "$T/out/x.h5" 2>"$T/err"; is 2 $? "--threads without a tokenizer.json exits 2"
like "$(cat "$T/err")" "go with --tokenizer FILE.json" "--threads without a tokenizer.json: message"
$QID tokens --tokenizer $TK/gpt2.json --from $TK/sample.txt --dtype uint16 -o "$T/out/x.h5" 2>"$T/err"; is 2 $? "--tokenizer FILE.json with --dtype exits 2"
is 0 "$(ls -A "$T/out" | wc -l)" "tokenizer errors: nothing in the output directory"
