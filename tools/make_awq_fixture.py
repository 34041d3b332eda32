#!/usr/bin/env python3
"""make_awq_fixture.py - writes test/fixtures/awq/, the PyTorch side of the
AWQ parity test in test/test_awq.c.

The reference is the real one: AutoAWQ 0.2.9 from PyPI (package `autoawq`,
awq/quantize/quantizer.py AwqQuantizer._search_best_scale,
_compute_best_scale, _search_best_clip, _compute_best_clip,
pseudo_quantize_tensor; awq/quantize/scale.py apply_scale, apply_clip;
awq/models/gpt_neox.py get_layers_for_scaling), which carries llm-awq's
algorithm (mit-han-lab/llm-awq awq/quantize/auto_scale.py
_search_module_scale, auto_clip.py auto_clip_layer, quantizer.py
pseudo_quantize_tensor) with duo_scaling=False:
  - per group of linears sharing an input: x_mean = mean |x| per input
    channel over every calibration token; for ratio = i/20, i = 0..19,
    s = clamp(x_mean^ratio, 1e-4), s /= sqrt(max(s) min(s)); each linear's
    weight becomes Q(W s) / s and the loss is the MSE of the inspected
    module's output against the 16-bit output; the best ratio's s is kept.
    For GPT-NeoX the inspected module is the linear itself (qkv, mlp up,
    mlp down; the attention output is not scaled).
  - the scales are applied (folded into the norm / activation, W *= s, the
    recorded inputs /= s), then every linear whose name does not contain
    q_, k_, query, key or Wqkv gets the clipping search: per output row and
    group of G inputs, max_val = amax |w| (1 - i/20), i = 0..9, w clamped to
    +-max_val, quantized, error = mean over every step-th token
    (step = max(1, tokens // 512)) of (x_g . (q_g - w_g))^2; the first
    smallest error wins; then W = clamp(W, -max_val, max_val).
  - Q is pseudo_quantize_tensor: zero point (asym): scale = max(max - min,
    1e-5) / (2^b - 1), zero = clamp(-round(min / scale), 0, 2^b - 1),
    q = (clamp(round(w / scale) + zero, 0, 2^b - 1) - zero) scale;
    symmetric: scale = max(amax, 1e-5) / (2^(b-1) - 1),
    q = clamp(round(w / scale), -2^(b-1), 2^(b-1) - 1) scale.

The layer is a tiny GPT-NeoX-shaped one (d_model 64, d_ff 128, float32):
attention.query_key_value [192, 64], attention.dense [64, 64],
mlp.dense_h_to_4h [128, 64], mlp.dense_4h_to_h [64, 128]. Its inputs are
synthetic and stored as float16 values (exact in float32): the layer-norm
output (both norms, equal as at initialization; a few channels 10x larger,
as AWQ's salient channels), the attention output, and the GELU of
dense_h_to_4h. 1024 calibration tokens (the clipping search takes every
2nd: 512) and 256 held-out tokens.

Files (raw little-endian, row-major):
  x_<input>.f16      calibration inputs (1024 x width), input = ln, attn, act
  t_<input>.f16      held-out inputs (256 x width)
  w_<linear>.f32     original weights, linear = qkv, out, up, down
  <v>_s_<group>.f32  the chosen scales per group (qkv, up, down)
  <v>_clip_<linear>.f32  the clipping max_val [rows, cols / G] (out, up, down)
  <v>_q_<linear>.f32 the quantized weight in the scaled space, Q(clip(W s))
  fixture.json       shapes, variants (format, bits, group, zero point) and
                     per group the 20 losses of the scale search and the
                     best ratio

Usage: python3 tools/make_awq_fixture.py [OUTDIR]
Needs torch, transformers and `pip install --no-deps autoawq accelerate`
(AutoAWQ's `datasets` import is stubbed: no data set is loaded). Not run by
`make check`: the fixture is committed.
"""
import json
import os
import sys
import types

import numpy as np
import torch
import torch.nn as nn

sys.modules.setdefault("datasets", types.ModuleType("datasets"))
sys.modules["datasets"].load_dataset = None
import awq  # noqa: E402
from awq.models.gpt_neox import GPTNeoXAWQForCausalLM  # noqa: E402
from awq.quantize.quantizer import AwqQuantizer  # noqa: E402
from awq.quantize.scale import apply_clip, apply_scale  # noqa: E402
from awq.utils.module import get_named_linears  # noqa: E402

D, FF, G = 64, 128, 32
N_CAL, N_TEST = 1024, 256
SEED = 20250521
VARIANTS = [("int4-g32-asym", 4, 1), ("int3-g32-sym", 3, 0)]
LINEARS = {
    "qkv": "attention.query_key_value",
    "out": "attention.dense",
    "up": "mlp.dense_h_to_4h",
    "down": "mlp.dense_4h_to_h",
}


class Attn(nn.Module):
    def __init__(self):
        super().__init__()
        self.query_key_value = nn.Linear(D, 3 * D, bias=False)
        self.dense = nn.Linear(D, D, bias=False)


class Mlp(nn.Module):
    def __init__(self):
        super().__init__()
        self.dense_h_to_4h = nn.Linear(D, FF, bias=False)
        self.act = nn.GELU()
        self.dense_4h_to_h = nn.Linear(FF, D, bias=False)


class Layer(nn.Module):
    def __init__(self):
        super().__init__()
        self.input_layernorm = nn.LayerNorm(D)
        self.attention = Attn()
        self.post_attention_layernorm = nn.LayerNorm(D)
        self.mlp = Mlp()


def f16(t):
    """Rounds to float16 values (kept as float32)."""
    return t.to(torch.float16).to(torch.float32)


def make_inputs(g, n, layer):
    h = torch.randn(n, D, generator=g)
    ln = torch.nn.functional.layer_norm(h, (D,))
    gain = torch.ones(D)
    gain[[3, 17, 40, 41]] = 10.0
    ln = f16(ln * gain)
    attn = f16(torch.randn(n, D, generator=g) * 0.5)
    with torch.no_grad():
        act = f16(torch.nn.functional.gelu(ln @ layer.mlp.dense_h_to_4h.weight.T))
    return {"ln": ln, "attn": attn, "act": act}


def quantizer(bits, zero_point):
    q = object.__new__(AwqQuantizer)
    q.w_bit, q.group_size, q.zero_point = bits, G, bool(zero_point)
    q.duo_scaling = False
    q.n_parallel_calib_samples = None
    q.max_chunk_memory = 1024 * 1024 * 1024
    q.losses = []
    orig = AwqQuantizer._compute_loss

    def record(self, a, b, device):
        loss = orig(self, a, b, device)
        self.losses.append(loss)
        return loss

    q._compute_loss = types.MethodType(record, q)
    return q


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "test", "fixtures", "awq")
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(SEED)
    g = torch.Generator().manual_seed(SEED)
    base = Layer()
    with torch.no_grad():
        for name, key in LINEARS.items():
            lin = base.get_submodule(key)
            w = torch.randn(lin.weight.shape, generator=g) * 0.05
            w[:, 5] *= 4.0  # a heavy input column
            lin.weight.copy_(w)
    cal = make_inputs(g, N_CAL, base)
    test = make_inputs(g, N_TEST, base)
    for k in cal:
        cal[k].numpy().astype(np.float16).tofile(os.path.join(out, f"x_{k}.f16"))
        test[k].numpy().astype(np.float16).tofile(os.path.join(out, f"t_{k}.f16"))
    for name, key in LINEARS.items():
        base.get_submodule(key).weight.detach().numpy().astype("<f4").tofile(os.path.join(out, f"w_{name}.f32"))
    feat_of = {"qkv": "ln", "out": "attn", "up": "ln", "down": "act"}

    meta = {
        "reference": f"autoawq {awq.__version__} (PyPI), duo_scaling=False, GPT-NeoX scaling plan",
        "torch": torch.__version__,
        "d_model": D, "d_ff": FF, "group": G, "n_cal": N_CAL, "n_test": N_TEST,
        "linears": {n: list(base.get_submodule(k).weight.shape) for n, k in LINEARS.items()},
        "inputs": {n: feat_of[n] for n in LINEARS},
        "variants": [],
    }
    for fmt, bits, zp in VARIANTS:
        layer = Layer()
        layer.load_state_dict(base.state_dict())
        q = quantizer(bits, zp)
        input_feat = {LINEARS[n]: cal[feat_of[n]].clone().view(8, N_CAL // 8, -1) for n in LINEARS}
        plan = GPTNeoXAWQForCausalLM.get_layers_for_scaling(layer, input_feat, {})
        v = {"name": fmt.replace("-", "_"), "format": fmt, "bits": bits, "zero_point": zp, "groups": {}}
        scales_list = []
        for grp, cfg in zip(["qkv", "up", "down"], plan):
            q.losses = []
            scales_list.append(q._search_best_scale(layer, **cfg))
            losses = list(q.losses)
            best = min(range(len(losses)), key=lambda i: (losses[i], i))
            v["groups"][grp] = {"layers": list(scales_list[-1][1]), "losses": losses, "best": best}
            scales_list[-1][2].numpy().astype("<f4").tofile(os.path.join(out, f"{v['name']}_s_{grp}.f32"))
        apply_scale(layer, scales_list, input_feat_dict=input_feat)
        named = get_named_linears(layer)
        clip_list = q._search_best_clip(layer, named, input_feat)
        v["clipped"] = []
        for name, max_val in clip_list:
            short = [n for n, k in LINEARS.items() if k == name][0]
            v["clipped"].append(short)
            max_val.reshape(max_val.shape[0], -1).numpy().astype("<f4").tofile(
                os.path.join(out, f"{v['name']}_clip_{short}.f32"))
        apply_clip(layer, clip_list)
        for name, key in LINEARS.items():
            wq = q.pseudo_quantize_tensor(layer.get_submodule(key).weight.data)[0]
            wq.numpy().astype("<f4").tofile(os.path.join(out, f"{v['name']}_q_{name}.f32"))
        meta["variants"].append(v)
        print(fmt, {k: g_["best"] for k, g_ in v["groups"].items()}, "clipped", v["clipped"])
    with open(os.path.join(out, "fixture.json"), "w") as f:
        json.dump(meta, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
