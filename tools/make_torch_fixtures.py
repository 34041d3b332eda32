#!/usr/bin/env python3
"""Generate the PyTorch .bin test fixtures of qid (test/fixtures/torch).

Usage:
    python3 tools/make_torch_fixtures.py [OUTDIR]     # default OUTDIR: test/fixtures/torch
    python3 tools/make_torch_fixtures.py --families [OUTDIR]
        # only gpt2-tiny-bin, opt-tiny-postln-proj-bin, bloom-tiny-bin: the
        # hf/ fixtures of those families with the hub's base-model names

Needs: pip install torch safetensors numpy (PyPI). The build and the tests do
not; the outputs are committed.

Why: `qid import --from torch` reads pytorch_model.bin (torch.save's zip
format) with its own restricted pickle interpreter. These fixtures are
written by torch.save itself from the safetensors fixtures of
tools/make_hf_fixtures.py (test/fixtures/hf), so the test can check that the
same weights from either file import to the same tensor hash, and they hold
what real checkpoints hold: an OrderedDict with _metadata, float32, float16
and bfloat16 storages, shards with pytorch_model.bin.index.json, a tied head
(one tensor under two names), a non-contiguous tensor, two tensors sharing one
storage at different offsets, and Pythia's bool and float buffers.

What it writes under OUTDIR (rewritten on each run):

  gpt-neox-tiny-bin/         config.json of hf/gpt-neox-tiny and
                             pytorch_model.bin: its float32 weights, with
                             layers.0.mlp.dense_h_to_4h.weight saved as the
                             transpose of a contiguous tensor (strides (1, 64)),
                             layers.0.input_layernorm.weight and .bias views
                             of one storage (offsets 0 and 32), and every
                             layer's attention.bias (bool [1, 1, 16, 16]) and
                             attention.masked_bias (float scalar) buffers
  gpt-neox-tiny-fp16-bin/    hf/gpt-neox-tiny-fp16 (float16)
  llama-tiny-bf16-sharded-bin/  hf/llama-tiny-bf16-sharded (bfloat16) as
                             pytorch_model-0000k-of-00003.bin shards with
                             pytorch_model.bin.index.json (same split)
  llama-tiny-tied-bin/       hf/llama-tiny-tied with lm_head.weight stored as
                             the same tensor as model.embed_tokens.weight
                             (torch.save writes one storage, two names)
  legacy.bin                 hf/gpt-neox-tiny's weights saved with
                             _use_new_zipfile_serialization=False (refused)
  hostile/*.bin              archives qid must refuse (see HOSTILE below),
                             built with zipfile around hand-written pickles,
                             or real archives cut or patched

Every archive keeps torch.save's own layout except hostile/*.bin.
"""

import collections
import json
import os
import shutil
import struct
import sys
import zipfile

import torch
from safetensors.torch import load_file

HF = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "test", "fixtures", "hf")


def state_dict(name):
    sd = collections.OrderedDict()
    d = os.path.join(HF, name)
    for f in sorted(os.listdir(d)):
        if f.endswith(".safetensors"):
            sd.update(load_file(os.path.join(d, f)))
    return collections.OrderedDict(sorted(sd.items()))


def with_metadata(sd):
    # model.state_dict() carries the module versions as _metadata (pickled by BUILD)
    sd._metadata = collections.OrderedDict({"": {"version": 1}})
    return sd


def copy_config(name, out):
    os.makedirs(out, exist_ok=True)
    shutil.copy(os.path.join(HF, name, "config.json"), out)


def neox(out):
    d = os.path.join(out, "gpt-neox-tiny-bin")
    copy_config("gpt-neox-tiny", d)
    sd = state_dict("gpt-neox-tiny")
    w = sd["gpt_neox.layers.0.mlp.dense_h_to_4h.weight"]
    sd["gpt_neox.layers.0.mlp.dense_h_to_4h.weight"] = w.t().contiguous().t()
    assert not sd["gpt_neox.layers.0.mlp.dense_h_to_4h.weight"].is_contiguous()
    lw = sd["gpt_neox.layers.0.input_layernorm.weight"]
    lb = sd["gpt_neox.layers.0.input_layernorm.bias"]
    flat = torch.cat([lw, lb])
    sd["gpt_neox.layers.0.input_layernorm.weight"] = flat[: lw.numel()]
    sd["gpt_neox.layers.0.input_layernorm.bias"] = flat[lw.numel():]
    for i in range(2):
        sd[f"gpt_neox.layers.{i}.attention.bias"] = torch.tril(torch.ones(16, 16, dtype=torch.bool)).view(1, 1, 16, 16)
        sd[f"gpt_neox.layers.{i}.attention.masked_bias"] = torch.tensor(-1e9)
    torch.save(with_metadata(sd), os.path.join(d, "pytorch_model.bin"))


def fp16(out):
    d = os.path.join(out, "gpt-neox-tiny-fp16-bin")
    copy_config("gpt-neox-tiny-fp16", d)
    torch.save(with_metadata(state_dict("gpt-neox-tiny-fp16")), os.path.join(d, "pytorch_model.bin"))


def sharded(out):
    src = os.path.join(HF, "llama-tiny-bf16-sharded")
    d = os.path.join(out, "llama-tiny-bf16-sharded-bin")
    copy_config("llama-tiny-bf16-sharded", d)
    with open(os.path.join(src, "model.safetensors.index.json")) as f:
        wmap = json.load(f)["weight_map"]
    new_map = {}
    for shard in sorted(set(wmap.values())):
        name = shard.replace("model-", "pytorch_model-").replace(".safetensors", ".bin")
        sd = collections.OrderedDict(sorted(load_file(os.path.join(src, shard)).items()))
        torch.save(sd, os.path.join(d, name))  # save_pretrained's shards are plain dicts without _metadata
        new_map.update({k: name for k in sd})
    with open(os.path.join(d, "pytorch_model.bin.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": 0}, "weight_map": dict(sorted(new_map.items()))}, f, indent=2)


def tied(out):
    d = os.path.join(out, "llama-tiny-tied-bin")
    copy_config("llama-tiny-tied", d)
    sd = state_dict("llama-tiny-tied")
    sd["lm_head.weight"] = sd["model.embed_tokens.weight"]
    torch.save(with_metadata(sd), os.path.join(d, "pytorch_model.bin"))


# ---- hostile archives -------------------------------------------------------


def b_str(s):
    b = s.encode()
    return b"X" + struct.pack("<I", len(b)) + b


def b_int(v):
    n = (v.bit_length() + 8) // 8
    return b"\x8a" + bytes([n]) + v.to_bytes(n, "little", signed=True)


def b_tuple(vals):
    return b"(" + b"".join(b_int(v) for v in vals) + b"t"


def sd_pickle(entries, rebuild=b"ctorch._utils\n_rebuild_tensor_v2\n"):
    """A state-dict pickle as torch.save writes it, by hand: entries are
    (name, storage class, key, numel, offset, size, stride)."""
    p = b"\x80\x02ccollections\nOrderedDict\n)R("
    for name, cls, key, numel, off, size, stride in entries:
        p += b_str(name) + rebuild
        p += b"((" + b_str("storage") + b"ctorch\n" + cls.encode() + b"\n" + b_str(key) + b_str("cpu")
        p += b_int(numel) + b"tQ" + b_int(off) + b_tuple(size) + b_tuple(stride)
        p += b"\x89ccollections\nOrderedDict\n)RtR"
    return p + b"u."


def archive(path, pkl, storages):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        z.writestr("archive/data.pkl", pkl)
        z.writestr("archive/byteorder", "little")
        for key, data in storages.items():
            z.writestr("archive/data/" + key, data)
        z.writestr("archive/version", "3\n")


HOSTILE = """\
  os-system.bin        a REDUCE of os.system('true') where _rebuild_tensor_v2 belongs
  reduce-storage.bin   REDUCE on torch.FloatStorage
  pid-outside.bin      a persistent id naming storage '9', which the archive lacks
  size-overflow.bin    size (2^40, 2^40): the element count overflows 64 bits
  stride-past.bin      a [3, 3] tensor with strides (3, 1) in a 4-element storage
  storage-size.bin     a storage declaring 8 floats whose entry holds 16 bytes
  expanded.bin         8 elements with stride 0 over a 4-element storage
  truncated.bin        gpt-neox-tiny-bin's archive cut to half its length
  zip-bomb.bin         a 64-byte storage entry whose local and central headers
                       both declare 2^31 - 16 bytes
  not-a-dict.bin       a pickle holding a list of one tensor
"""


def hostile(out):
    d = os.path.join(out, "hostile")
    os.makedirs(d, exist_ok=True)
    four = struct.pack("<4f", 1, 2, 3, 4)
    ok = ("w", "FloatStorage", "0", 4, 0, (2, 2), (2, 1))
    archive(os.path.join(d, "os-system.bin"), sd_pickle([ok], rebuild=b"cos\nsystem\n"), {"0": four})
    archive(os.path.join(d, "reduce-storage.bin"), b"\x80\x02ctorch\nFloatStorage\n)R.", {})
    archive(os.path.join(d, "pid-outside.bin"), sd_pickle([("w", "FloatStorage", "9", 4, 0, (2, 2), (2, 1))]),
            {"0": four})
    archive(os.path.join(d, "size-overflow.bin"),
            sd_pickle([("w", "FloatStorage", "0", 4, 0, (1 << 40, 1 << 40), (1 << 40, 1))]), {"0": four})
    archive(os.path.join(d, "stride-past.bin"), sd_pickle([("w", "FloatStorage", "0", 4, 0, (3, 3), (3, 1))]),
            {"0": four})
    archive(os.path.join(d, "storage-size.bin"), sd_pickle([("w", "FloatStorage", "0", 8, 0, (2, 2), (2, 1))]),
            {"0": four})
    archive(os.path.join(d, "expanded.bin"), sd_pickle([("w", "FloatStorage", "0", 4, 0, (8,), (0,))]),
            {"0": four})
    archive(os.path.join(d, "not-a-dict.bin"),
            b"\x80\x02](ctorch._utils\n_rebuild_tensor_v2\n((" + b_str("storage") + b"ctorch\nFloatStorage\n"
            + b_str("0") + b_str("cpu") + b_int(4) + b"tQ" + b_int(0) + b_tuple((4,)) + b_tuple((1,))
            + b"\x89ccollections\nOrderedDict\n)RtRe.", {"0": four})
    with open(os.path.join(out, "gpt-neox-tiny-bin", "pytorch_model.bin"), "rb") as f:
        whole = f.read()
    with open(os.path.join(d, "truncated.bin"), "wb") as f:
        f.write(whole[: len(whole) // 2])
    # zip bomb: declared sizes far beyond the file, consistent in both headers
    path = os.path.join(d, "zip-bomb.bin")
    archive(path, sd_pickle([("w", "FloatStorage", "0", 16, 0, (4, 4), (4, 1))]), {"0": bytes(64)})
    with open(path, "rb") as f:
        b = bytearray(f.read())
    with zipfile.ZipFile(path) as z:
        info = z.getinfo("archive/data/0")
    huge = struct.pack("<II", (1 << 31) - 16, (1 << 31) - 16)
    b[info.header_offset + 18: info.header_offset + 26] = huge  # local header: compressed, uncompressed
    name = b"archive/data/0"
    cd = next(i - 46 for i in range(len(b)) if b[i: i + len(name)] == name and b[i - 46: i - 42] == b"PK\x01\x02")
    b[cd + 20: cd + 28] = huge  # central directory: the same fields
    with open(path, "wb") as f:
        f.write(b)
    with open(os.path.join(d, "README.md"), "w") as f:
        f.write("# Hostile torch archives (tools/make_torch_fixtures.py)\n\n```\n" + HOSTILE + "```\n")


FAMILY_BIN = ["gpt2-tiny-bin", "opt-tiny-postln-proj-bin", "bloom-tiny-bin"]


def families(out):
    """The GPT-2, OPT and BLOOM fixtures as the hub's .bin files name their
    tensors: saved from the base model, without "transformer." / "model."
    (gpt2's "h.0.attn.c_attn.weight", opt-350m's "decoder.layers.0...",
    bloom-560m's "word_embeddings.weight"); gpt2 also with the attention's
    causal-mask buffers (h.i.attn.bias, h.i.attn.masked_bias), as old
    transformers saved them."""
    for name, prefix in (("gpt2-tiny", "transformer."), ("opt-tiny-postln-proj", "model."), ("bloom-tiny", "transformer.")):
        d = os.path.join(out, name + "-bin")
        shutil.rmtree(d, ignore_errors=True)
        copy_config(name, d)
        sd = collections.OrderedDict()
        for k, v in state_dict(name).items():
            sd[k[len(prefix):] if k.startswith(prefix) else k] = v
        if name == "gpt2-tiny":
            for i in range(2):
                sd[f"h.{i}.attn.bias"] = torch.tril(torch.ones(64, 64, dtype=torch.bool)).view(1, 1, 64, 64)
                sd[f"h.{i}.attn.masked_bias"] = torch.tensor(-1e4)
        torch.save(with_metadata(sd), os.path.join(d, "pytorch_model.bin"))


def main():
    if "--families" in sys.argv:
        args = [a for a in sys.argv[1:] if a != "--families"]
        families(args[0] if args else os.path.join(HF, "..", "torch"))
        return
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HF, "..", "torch")
    torch.manual_seed(0)
    for sub in ("gpt-neox-tiny-bin", "gpt-neox-tiny-fp16-bin", "llama-tiny-bf16-sharded-bin",
                "llama-tiny-tied-bin", "hostile"):
        shutil.rmtree(os.path.join(out, sub), ignore_errors=True)
    os.makedirs(out, exist_ok=True)
    neox(out)
    fp16(out)
    sharded(out)
    tied(out)
    torch.save(state_dict("gpt-neox-tiny"), os.path.join(out, "legacy.bin"), _use_new_zipfile_serialization=False)
    hostile(out)
    families(out)
    with open(os.path.join(out, "README.md"), "w") as f:
        f.write("# PyTorch .bin fixtures\n\nWritten by `tools/make_torch_fixtures.py` with torch "
                f"{torch.__version__} (torch.save); see its docstring for what each holds.\n")
    print("wrote", out)


if __name__ == "__main__":
    main()
