#!/usr/bin/env python3
"""make_tokenizer_fixtures.py - small tokenizer.json files of each family's
pipeline, trained by the `tokenizers` package itself, and the ids it gives
for a committed text sample: the fixtures of test/cmd_tokens.t.

    python3 -m venv /tmp/venv && /tmp/venv/bin/pip install tokenizers
    /tmp/venv/bin/python tools/make_tokenizer_fixtures.py test/fixtures/tokenizers

Families (the pipelines as the real files have them):
  gpt2     ByteLevel(add_prefix_space=False) pre-tokenizer, GPT-2's regex
  neox     NFC normalizer, ByteLevel; added tokens for runs of 2-24 spaces
           (normalized, as GPT-NeoX-20B / Pythia have them) and <|endoftext|>
  llama3   Split(Llama 3's regex, Isolated) + ByteLevel(use_regex=False),
           BPE with ignore_merges, <|begin_of_text|> and <|end_of_text|>
  qwen2    NFC, Split(Qwen2's regex, Isolated) + ByteLevel(use_regex=False)
  llama2   SentencePiece-style: Prepend("▁") + Replace(" ", "▁") normalizers,
           no pre-tokenizer, BPE with byte_fallback and fuse_unk, <unk> <s>
           </s> then <0x00>..<0xFF> in the vocabulary (as Llama 2 / Mistral
           v0.1 files)
  split-<behaviour> (removed, isolated, merged_with_previous, merged_with_next,
           contiguous; the last with invert=True): Split(regex) + Digits,
           Strip + NFKD + Replace(regex) normalizers, unk_token, no byte fallback
  prefix   ByteLevel(add_prefix_space=True) (RoBERTa-style), <s> and </s>
  metaspace Metaspace(prepend_scheme="first", split=False) pre-tokenizer with
           byte fallback (the form newer Llama/Mistral conversions write),
           plus a Lowercase + NFKC normalizer to cover those
The training text is the corpus of tools/compare_tokenizers.py (what a
Debian machine has: man pages in 14 languages, /usr/share/doc, C headers,
Python sources) plus the sample; see corpus() there.

Writes OUT/<family>.json, OUT/sample.txt and OUT/<family>.ids (the ids of
sample.txt encoded whole, one document, without special tokens added, as
Tokenizer.encode(text, add_special_tokens=False).ids; one id a line).
"""
import json
import sys
from pathlib import Path

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

LLAMA3_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
QWEN2_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
FAMILIES = ["gpt2", "neox", "llama3", "qwen2", "llama2", "metaspace", "prefix"]
# every Split behaviour (the families above use Isolated only), with Strip, NFKD, a Replace by regex,
# Digits and an unknown token: small (500 merges) and not byte-level
BEHAVIORS = ["removed", "isolated", "merged_with_previous", "merged_with_next", "contiguous"]

SAMPLE = (
    "The quick brown fox jumps over the lazy dog. It's 2024; we've had 3.14159 reasons, "
    "they'll say, and I'd agree — isn't it?\n"
    "Der Bär läuft über die Straße. Ça coûte 12,50 €. ¿Dónde está la señora Núñez?\n"
    "Съешь же ещё этих мягких французских булок, да выпей чаю.\n"
    "Ελληνικά: Ξεσκεπάζω την ψυχοφθόρα βδελυγμία. 日本語のテキスト、カタカナとひらがな。\n"
    "中文：我能吞下玻璃而不伤身体。한국어: 다람쥐 헌 쳇바퀴에 타고파. עברית ו-العربية: مرحبا بالعالم\n"
    "हिन्दी: नमस्ते दुनिया। ไทย: สวัสดีชาวโลก. Tiếng Việt: Xin chào thế giới.\n"
    "Emoji: 👋🏽 🧑‍💻 🇩🇪 ❤️ 😀😃😄 and astral 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝟙𝟚𝟛 𐍈 𝄞.\n"
    "int main(int argc, char **argv) {\n\tfor (int i = 0; i < argc; i++)\n\t\tprintf(\"%s\\n\", argv[i]);\n"
    "    return 0;\n}\n"
    "def f(x):\n    return {'a': [1, 2, 3], \"b\": x ** 2}  # comment\n\n\n"
    "spaces:  two   three    four         nine                        twenty-four                          end\n"
    "tabs:\t\tand\t \t mixed \t\n"
    "CRLF line\r\nanother\r\n\r\nblank lines above\n\n\n\n"
    "Numbers 1234567890 0x1F 1e-9 12,345.67 ½ ² Ⅻ ٣٤٥ १२३\n"
    "Combining: e\u0301 n\u0303 A\u030a (NFD) vs é ñ Å (NFC); ligatures ﬁ ﬂ; full-width ＡＢＣ１２３; İstanbul ΣΑΣ\n"
    "URLs https://example.com/a?b=c&d=e#f and e-mail someone@example.org, <tags> </s> <s> [INST]\n"
    "Special tokens in text: <|endoftext|> <|begin_of_text|> <|im_start|>user\n"
    "Zero width\u200bspace, no-break\u00a0space, ideographic\u3000space, NEL\u0085here, LS\u2028PS\u2029end.\n"
    "   leading spaces and trailing spaces   \n"
    "Don'T SHOUT 'S 'LL — apostrophes in CAPS. What's the deal with 'quotes'?"
)


def byte_level(add_prefix_space=False, use_regex=True):
    return pre_tokenizers.ByteLevel(add_prefix_space=add_prefix_space, use_regex=use_regex)


def build(family, texts, merges):
    """A tokenizer of family's pipeline trained on texts with about `merges` merges."""
    specials = []
    if family in ("gpt2", "neox", "llama3", "qwen2", "prefix"):
        tok = Tokenizer(models.BPE(ignore_merges=family == "llama3"))
        if family == "gpt2":
            tok.pre_tokenizer = byte_level()
        elif family == "prefix":  # RoBERTa/BART-style: a space before every piece
            tok.pre_tokenizer = byte_level(add_prefix_space=True)
        elif family == "neox":
            tok.normalizer = normalizers.NFC()
            tok.pre_tokenizer = byte_level()
        else:
            if family == "qwen2":
                tok.normalizer = normalizers.NFC()
            pattern = LLAMA3_PATTERN if family == "llama3" else QWEN2_PATTERN
            tok.pre_tokenizer = pre_tokenizers.Sequence(
                [pre_tokenizers.Split(Regex(pattern), behavior="isolated", invert=False), byte_level(use_regex=False)]
            )
        tok.decoder = decoders.ByteLevel()
        specials = {
            "gpt2": ["<|endoftext|>"],
            "prefix": ["<s>", "</s>"],
            "neox": ["<|endoftext|>", "<|padding|>"],
            "llama3": ["<|begin_of_text|>", "<|end_of_text|>"],
            "qwen2": ["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        }[family]
        trainer = trainers.BpeTrainer(
            vocab_size=256 + len(specials) + merges,
            special_tokens=specials,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        )
        tok.train_from_iterator(texts, trainer)
        if family == "neox":  # GPT-NeoX-20B's runs of spaces: added, normalized, not special
            tok.add_tokens([AddedToken(" " * n, normalized=True, special=False) for n in range(24, 1, -1)])
        return tok
    # SentencePiece-style: characters, byte fallback, <unk> <s> </s> then the 256 byte tokens
    # trained on Metaspace-split words, as sentencepiece trains on whitespace pieces (a whole document as
    # one word would make training quadratic), then given the family's pipeline
    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    specials = ["<unk>", "<s>", "</s>"]
    trainer = trainers.BpeTrainer(
        vocab_size=len(specials) + 300 + merges, special_tokens=specials, limit_alphabet=300, show_progress=False
    )
    tok.train_from_iterator(texts, trainer)
    # the byte tokens go into the model's vocabulary (ids 3..258), not among the added tokens
    spec = json.loads(tok.to_str())
    vocab = spec["model"]["vocab"]
    shifted = {k: (v if v < 3 else v + 256) for k, v in vocab.items()}
    for b in range(256):
        shifted[f"<0x{b:02X}>"] = 3 + b
    spec["model"]["vocab"] = dict(sorted(shifted.items(), key=lambda kv: kv[1]))
    if family == "llama2":
        spec["normalizer"] = json.loads(
            normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")]).__getstate__())
        spec["pre_tokenizer"] = None
    else:
        spec["normalizer"] = json.loads(normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()]).__getstate__())
        spec["pre_tokenizer"] = json.loads(
            pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first", split=False).__getstate__())
    for a in spec["added_tokens"]:
        a["id"] = a["id"] if a["id"] < 3 else a["id"] + 256
    return Tokenizer.from_str(json.dumps(spec, ensure_ascii=False))


def build_split(behavior, texts):
    tok = Tokenizer(models.BPE(unk_token="[UNK]"))
    tok.normalizer = normalizers.Sequence(
        [normalizers.Strip(), normalizers.NFKD(), normalizers.Replace(Regex(r"[aeiou]{2}"), "<>")])
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Split(Regex(r"\p{P}+|\s"), behavior=behavior, invert=behavior == "contiguous"),
         pre_tokenizers.Digits(individual_digits=False)])
    tok.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=600, special_tokens=["[UNK]"], limit_alphabet=100,
                                                       show_progress=False))
    return tok


def main():
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "test/fixtures/tokenizers")
    out.mkdir(parents=True, exist_ok=True)
    sys.path.insert(0, str(Path(__file__).parent))
    from compare_tokenizers import corpus

    texts = [d for d in corpus(3 << 20)] + [SAMPLE]
    (out / "sample.txt").write_bytes(SAMPLE.encode("utf-8"))
    for fam in FAMILIES + [f"split-{b}" for b in BEHAVIORS]:
        tok = build_split(fam[6:], texts) if fam.startswith("split-") else build(fam, texts, 1000)
        tok.save(str(out / f"{fam}.json"), pretty=False)
        again = Tokenizer.from_file(str(out / f"{fam}.json"))
        ids = again.encode(SAMPLE, add_special_tokens=False).ids
        (out / f"{fam}.ids").write_text("".join(f"{i}\n" for i in ids))
        print(f"{fam}: {again.get_vocab_size()} ids, sample -> {len(ids)} ids")


if __name__ == "__main__":
    main()
