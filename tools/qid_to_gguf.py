#!/usr/bin/env python3
"""qid_to_gguf.py - writes a qid gpt-neox checkpoint as a GGUF file that
llama.cpp's `llama-perplexity` runs, for `make bench` (test/bench_eval.c)
and tools/compare_llama_kl.sh. Not part of `make check`.

Usage:
    python3 tools/qid_to_gguf.py CKPT.h5 OUT.gguf [--type f32|q8_0|q4_0]

CKPT.h5 is a qid checkpoint (hdf5-schema/checkpoint.md) of arch gpt-neox,
read with h5py; OUT.gguf is written with the `gguf` package from PyPI
(gguf-py). Tensors as llama.cpp's convert_hf_to_gguf.py lays out GPT-NeoX
(`gptneox` architecture): the fused QKV rows regrouped from per-head
[q_h k_h v_h] to [q; k; v].

--type q8_0 / q4_0 stores every LINEAR weight (the four products of each
layer, the tensors `qid quantize` and `qid eval --quant` quantize) in
that block format through gguf.quants.quantize, the producer qid's own
q8_0 / q4_0 are bit-exact to (test/test_quant_gguf.c); the embedding, the
head, norms and biases stay float32. The quantization is of each row of
the weight as qid stores it (out, in), so the blocks equal qid's; the QKV
regrouping moves whole rows and so whole blocks.

The vocabulary: a byte-level BPE ("gpt2" tokenizer, "gpt-2" pre-tokenizer)
whose id b (0..255) is byte b in GPT-2's byte-to-unicode alphabet, one
merge between two bytes that do not occur in text (ids 0x01, 0x02), and
padding tokens up to the model's vocab_size (a model of vocab_size <= 256
gets bytes 0 .. vocab_size-1 only); no BOS is added. An ASCII text
file therefore tokenizes, in llama.cpp, to its bytes, which are the ids of
`qid tokens --from FILE --text` (vocabulary 256): both tools see the same
windows.
"""

import argparse
import sys

import h5py
import numpy as np

import gguf


def byte_alphabet():
    """GPT-2's bytes_to_unicode: byte b -> a printable character."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    table = dict(zip(bs, cs))
    return [chr(table[b]) for b in range(256)]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("ckpt")
    ap.add_argument("out")
    ap.add_argument("--type", choices=("f32", "q8_0", "q4_0"), default="f32")
    a = ap.parse_args()
    qtype = {"f32": None, "q8_0": gguf.GGMLQuantizationType.Q8_0, "q4_0": gguf.GGMLQuantizationType.Q4_0}[a.type]
    with h5py.File(a.ckpt, "r") as f:
        arch = f.attrs["arch"]
        arch = arch.decode() if isinstance(arch, bytes) else arch
        if arch != "gpt-neox":
            print(f"qid_to_gguf: '{a.ckpt}' is {arch}; only gpt-neox checkpoints", file=sys.stderr)
            return 2
        c = f["config"].attrs
        V, d, L, H = int(c["vocab_size"]), int(c["d_model"]), int(c["n_layers"]), int(c["n_heads"])
        hd = int(c["head_dim"])
        if bool(c["tie_embeddings"]):
            print("qid_to_gguf: tied embeddings are not written", file=sys.stderr)
            return 2
        w = gguf.GGUFWriter(a.out, "gptneox")
        w.add_name(str(f.attrs["model"]))
        w.add_context_length(int(c["max_seq_len"]))
        w.add_embedding_length(d)
        w.add_block_count(L)
        w.add_feed_forward_length(int(c["d_ff"]))
        w.add_rope_dimension_count(int(c["rotary_dim"]))
        w.add_rope_freq_base(float(c["rope_theta"]))
        w.add_head_count(H)
        w.add_parallel_residual(bool(c["parallel_residual"]))
        w.add_layer_norm_eps(float(c["norm_eps"]))
        w.add_file_type(
            {
                "f32": gguf.LlamaFileType.ALL_F32,
                "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0,
                "q4_0": gguf.LlamaFileType.MOSTLY_Q4_0,
            }[a.type]
        )
        alphabet = byte_alphabet()
        if V <= 256:  # ids 0..V-1 are bytes; the text must not hold larger ones
            toks = alphabet[:V]
        else:
            toks = alphabet + [alphabet[1] + alphabet[2]]
            toks += [f"<pad{i}>" for i in range(V - len(toks))]
        types = [gguf.TokenType.NORMAL] * min(V, 257) + [gguf.TokenType.UNUSED] * max(0, V - 257)
        w.add_tokenizer_model("gpt2")
        w.add_tokenizer_pre("gpt-2")
        w.add_token_list(toks)
        w.add_token_types(types)
        w.add_token_merges([alphabet[1] + " " + alphabet[2]])
        w.add_bos_token_id(0)
        w.add_eos_token_id(0)
        w.add_add_bos_token(False)
        w.add_add_eos_token(False)

        def t(path):
            return np.ascontiguousarray(np.asarray(f[path][...], dtype=np.float32))

        def put(name, x, linear=False):
            if linear and qtype is not None:
                q = gguf.quants.quantize(x, qtype)
                w.add_tensor(name, q, raw_dtype=qtype)
            else:
                w.add_tensor(name, x)

        put("token_embd.weight", t("embed.weight"))
        for i in range(L):
            p, b = f"layers/{i}/", f"blk.{i}."
            qkv = t(p + "attn.qkv.weight").reshape(H, 3, hd, d)
            qkv = np.ascontiguousarray(np.concatenate([qkv[:, j].reshape(H * hd, d) for j in range(3)]))
            qb = t(p + "attn.qkv.bias").reshape(H, 3, hd)
            qb = np.ascontiguousarray(np.concatenate([qb[:, j].reshape(H * hd) for j in range(3)]))
            put(b + "attn_norm.weight", t(p + "ln1.weight"))
            put(b + "attn_norm.bias", t(p + "ln1.bias"))
            put(b + "attn_qkv.weight", qkv, True)
            put(b + "attn_qkv.bias", qb)
            put(b + "attn_output.weight", t(p + "attn.out.weight"), True)
            put(b + "attn_output.bias", t(p + "attn.out.bias"))
            put(b + "ffn_norm.weight", t(p + "ln2.weight"))
            put(b + "ffn_norm.bias", t(p + "ln2.bias"))
            put(b + "ffn_up.weight", t(p + "mlp.up.weight"), True)
            put(b + "ffn_up.bias", t(p + "mlp.up.bias"))
            put(b + "ffn_down.weight", t(p + "mlp.down.weight"), True)
            put(b + "ffn_down.bias", t(p + "mlp.down.bias"))
        put("output_norm.weight", t("final_norm.weight"))
        put("output_norm.bias", t("final_norm.bias"))
        put("output.weight", t("lm_head.weight"))
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
