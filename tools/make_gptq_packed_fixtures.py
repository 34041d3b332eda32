#!/usr/bin/env python3
"""Generate GPTQ-packed model fixtures for `qid import --from gptq`
(test/fixtures/gptq-packed), written by a real packer: AutoGPTQ 0.7.1.

Usage:
    BUILD_CUDA_EXT=0 pip install --no-deps --no-build-isolation auto-gptq==0.7.1
    pip install torch transformers safetensors numpy
    python3 tools/make_gptq_packed_fixtures.py [OUTDIR]   # default: test/fixtures/gptq-packed

The build and the tests do not need any of this; the outputs are committed.

How: each linear layer of a tiny fp16 model is quantized by AutoGPTQ's own
GPTQ (auto_gptq/quantization/gptq.py: GPTQ.add_batch on 256 seeded random
inputs, fasterquant with damp 0.1 and the variant's group size, act-order and
symmetry) and packed by AutoGPTQ's own QuantLinear.pack
(auto_gptq/nn_modules/qlinear/qlinear_cuda.py, the kernel module AutoGPTQ
uses for act-order models; its packing is the one every GPTQ checkpoint
uses), exactly as auto_gptq.modeling._utils.pack_model does. The layers are
quantized independently (no sequential forward pass through the model):
the fixtures test the storage format, not GPTQ's accuracy. The reference is
the producer's own dequantization: QuantLinear.forward (its torch path, the
one that reads g_idx) applied to the identity matrix in fp16, which returns
scales[g_idx] * (q - (z + 1)) for every weight, exactly.

What it writes, one directory per variant, each with config.json (the
model's, with quantization_config as AutoGPTQ/optimum write it) and
model.safetensors (qweight, qzeros, scales, g_idx, bias of every linear
layer, everything else in fp16), and beside it NAME.reference.safetensors
holding the dequantized fp16 weight of every linear layer under its Hugging
Face ".weight" name:

  neox-int4-g16-sym           4 bits, groups of 16, symmetric, no act-order
  neox-int3-g16-asym-descact  3 bits (codes cross 32-bit words), asymmetric,
                              desc_act with a permuted g_idx
  neox-int2-gall-sym          2 bits, group_size -1 (one group per column)
  llama-int8-g32-asym-v2      8 bits, groups of 32, asymmetric, written in
                              GPTQModel's v2 format (checkpoint_format
                              "gptq_v2": qzeros hold the zero points, not
                              zero - 1; GPTQModel's convert_gptq_v1_to_v2_format
                              adds one to each zero field, which is what
                              packing the zeros with AutoGPTQ's packer without
                              its "zeros -= 1" gives), with the output head
                              packed too (GPTQModel's "lm_head": true)

neox-int4-g16-sym-bin/ holds the first variant's tensors saved with
torch.save as pytorch_model.bin (int32 and fp16 storages), as older AutoGPTQ
releases ship them; its reference is the first variant's.

The gpt-neox model is test/fixtures/hf/gpt-neox-tiny in fp16; the llama
model a seeded LlamaForCausalLM with d 64, 4 heads, 2 key/value heads and
d_ff 96 (AutoGPTQ packs only layers whose sizes are multiples of 32).
"""

import importlib.util
import json
import os
import shutil
import sys

import torch
import transformers
from safetensors.torch import load_file, save_file

HERE = os.path.dirname(os.path.abspath(__file__))
HF = os.path.join(HERE, "..", "test", "fixtures", "hf")


def gptq_modules():
    spec = importlib.util.find_spec("auto_gptq")
    root = os.path.dirname(spec.origin)
    # quantization/gptq.py imports .quantizer relatively: load them as one package
    pkg_spec = importlib.util.spec_from_file_location(
        "agq_quantization", os.path.join(root, "quantization", "__init__.py"),
        submodule_search_locations=[os.path.join(root, "quantization")])
    pkg = importlib.util.module_from_spec(pkg_spec)
    sys.modules["agq_quantization"] = pkg
    for sub in ("quantizer", "gptq"):
        s = importlib.util.spec_from_file_location("agq_quantization." + sub,
                                                   os.path.join(root, "quantization", sub + ".py"))
        m = importlib.util.module_from_spec(s)
        sys.modules["agq_quantization." + sub] = m
        s.loader.exec_module(m)
    qlin_spec = importlib.util.spec_from_file_location(
        "agq_qlinear_cuda", os.path.join(root, "nn_modules", "qlinear", "qlinear_cuda.py"))
    qlin = importlib.util.module_from_spec(qlin_spec)
    qlin.__package__ = "agq_qlinear"
    sys.modules["agq_qlinear"] = importlib.util.module_from_spec(
        importlib.util.spec_from_file_location("agq_qlinear", os.path.join(root, "nn_modules", "qlinear",
                                                                          "__init__.py")))
    sys.modules["agq_qlinear"].__path__ = [os.path.join(root, "nn_modules", "qlinear")]
    qlin_spec.loader.exec_module(qlin)
    return sys.modules["agq_quantization.gptq"].GPTQ, qlin.QuantLinear


GPTQ, QuantLinear = gptq_modules()
# fasterquant calls torch.cuda.synchronize() for its timing log; on a CPU it
# is the only CUDA call in the path, and a no-op there is what it means
torch.cuda.synchronize = lambda *a, **k: None

VARIANTS = [
    # name, model, bits, group_size, sym, desc_act, checkpoint_format
    ("neox-int4-g16-sym", "neox", 4, 16, True, False, None),
    ("neox-int3-g16-asym-descact", "neox", 3, 16, False, True, None),
    ("neox-int2-gall-sym", "neox", 2, -1, True, False, None),
    ("llama-int8-g32-asym-v2", "llama", 8, 32, False, False, "gptq_v2"),
]


def neox_model():
    with open(os.path.join(HF, "gpt-neox-tiny", "config.json")) as f:
        cfg = transformers.GPTNeoXConfig(**{k: v for k, v in json.load(f).items() if k != "architectures"})
    m = transformers.GPTNeoXForCausalLM(cfg)
    sd = load_file(os.path.join(HF, "gpt-neox-tiny", "model.safetensors"))
    if "lm_head.weight" in m.state_dict():  # transformers >= 5.25 names embed_out lm_head in memory
        sd["lm_head.weight"] = sd.pop("embed_out.weight")
    missing, unexpected = m.load_state_dict(sd, strict=False)
    assert not unexpected and all(k.endswith(("attention.bias", "masked_bias", "inv_freq")) for k in missing), missing
    return m


def llama_model():
    torch.manual_seed(7)
    cfg = transformers.LlamaConfig(vocab_size=96, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                                   num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                                   tie_word_embeddings=False)
    m = transformers.LlamaForCausalLM(cfg)
    with torch.no_grad():
        for p in m.parameters():
            p.normal_(0, 0.2)
    return m


def linear_layers(model, lm_head):
    return [(n, mod) for n, mod in model.named_modules()
            if isinstance(mod, torch.nn.Linear) and (".layers." in n or (lm_head and n == "lm_head"))]


def make(out, name, kind, bits, group_size, sym, desc_act, fmt):
    model = neox_model() if kind == "neox" else llama_model()
    model = model.float().eval()
    d = os.path.join(out, name)
    os.makedirs(d, exist_ok=True)
    sd = {k: v.half().contiguous() for k, v in model.state_dict().items()}
    ref = {}
    g = torch.Generator().manual_seed(1234)
    lm_head = fmt == "gptq_v2"  # GPTQModel's lm_head = True: the head packed too
    for lname, layer in linear_layers(model, lm_head):
        layer = layer.half()  # AutoGPTQ quantizes the fp16 model
        gq = GPTQ(layer)
        gq.quantizer.configure(bits, perchannel=True, sym=sym, mse=False)
        x = torch.randn(256, layer.in_features, generator=g).half()
        gq.add_batch(x, None)  # GPTQ.add_batch reads only the inputs of a Linear
        scale, zero, g_idx = gq.fasterquant(blocksize=128, percdamp=0.1, group_size=group_size, actorder=desc_act,
                                            static_groups=False)
        gq.free()
        ql = QuantLinear(bits, group_size, layer.in_features, layer.out_features, layer.bias is not None,
                         weight_dtype=torch.float16)
        ql.pack(layer, scale, zero, g_idx)
        if fmt == "gptq_v2":
            # the same zero points stored as they are: pack zeros + 1 (pack subtracts 1)
            ql2 = QuantLinear(bits, group_size, layer.in_features, layer.out_features, layer.bias is not None,
                              weight_dtype=torch.float16)
            ql2.pack(layer, scale, zero + 1, g_idx)
            qzeros = ql2.qzeros
        else:
            qzeros = ql.qzeros
        for k, v in (("qweight", ql.qweight), ("qzeros", qzeros), ("scales", ql.scales), ("g_idx", ql.g_idx)):
            sd[f"{lname}.{k}"] = v.contiguous()
        del sd[f"{lname}.weight"]
        if layer.bias is not None:
            sd[f"{lname}.bias"] = ql.bias.half().contiguous()
        # the producer's dequantization: its forward pass on the identity
        probe = QuantLinear(bits, group_size, layer.in_features, layer.out_features, False,
                            weight_dtype=torch.float16)
        probe.qweight, probe.qzeros, probe.scales, probe.g_idx = ql.qweight, ql.qzeros, ql.scales, ql.g_idx
        with torch.no_grad():
            w = probe(torch.eye(layer.in_features, dtype=torch.float16))  # [in, out]
        ref[f"{lname}.weight"] = w.t().contiguous()
    for k in [k for k in sd if k.endswith((".attention.bias", ".attention.masked_bias", ".rotary_emb.inv_freq"))]:
        del sd[k]
    if kind == "neox" and "lm_head.weight" in sd:  # the checkpoint name, as save_pretrained writes it
        sd["embed_out.weight"] = sd.pop("lm_head.weight")
    save_file(sd, os.path.join(d, "model.safetensors"), metadata={"format": "pt"})
    save_file(ref, os.path.join(out, name + ".reference.safetensors"), metadata={"format": "pt"})
    cfg = model.config.to_dict()
    cfg["torch_dtype"] = "float16"
    cfg["_name_or_path"] = name
    q = {"bits": bits, "group_size": group_size, "damp_percent": 0.1, "desc_act": desc_act, "sym": sym,
         "true_sequential": True, "quant_method": "gptq"}
    if fmt:
        q["checkpoint_format"] = fmt
    if lm_head:
        q["lm_head"] = True
    cfg["quantization_config"] = q
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2, sort_keys=True)


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HF, "..", "gptq-packed")
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    torch.set_num_threads(1)
    for v in VARIANTS:
        make(out, *v)
    # the first variant as older AutoGPTQ saved it: pytorch_model.bin (torch.save)
    src, dst = os.path.join(out, VARIANTS[0][0]), os.path.join(out, VARIANTS[0][0] + "-bin")
    os.makedirs(dst)
    shutil.copy(os.path.join(src, "config.json"), dst)
    torch.save(dict(sorted(load_file(os.path.join(src, "model.safetensors")).items())),
               os.path.join(dst, "pytorch_model.bin"))
    with open(os.path.join(out, "README.md"), "w") as f:
        f.write("# GPTQ-packed fixtures\n\nWritten by `tools/make_gptq_packed_fixtures.py` with auto-gptq 0.7.1 "
                f"(GPTQ and QuantLinear.pack of qlinear_cuda.py), torch {torch.__version__}, transformers "
                f"{transformers.__version__}; see its docstring for the variants.\n")
    print("wrote", out)


if __name__ == "__main__":
    main()
