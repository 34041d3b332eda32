#!/usr/bin/env python3
"""PyTorch side of `make bench` (test/bench_eval.c): the same forward pass as
`qid eval`, on the same weights and tokens, with the same thread count.

Usage:
    python3 tools/bench_torch_eval.py CKPT.h5 TOKENS.u32 --windows B --seq-len T --threads N [--repeat R]

CKPT.h5 is a qid gpt-neox checkpoint (hdf5-schema/checkpoint.md), read with
h5py and loaded into transformers' GPTNeoXForCausalLM in float32 (default
attention implementation, i.e. scaled_dot_product_attention), eval mode,
no_grad.  TOKENS.u32 holds B*T raw little-endian uint32 ids, C order.

One untimed warm-up forward on a short prefix, then R timed forwards of the
whole batch (B windows of T tokens, no padding, no attention mask; the best
time is reported, as the qid side does on a shared machine) and the
mean cross-entropy of positions 0..T-2 predicting 1..T-1 (float32,
after the timed part).

Prints one JSON object on stdout: seconds, tokens_per_s, loss, peak_rss_mib
(maximum resident set of this process when the forward pass ends: model,
activations and the full logits), threads, torch and transformers
versions.  Exits 3 with a message on stderr when torch, transformers or h5py
are missing, so the caller can skip the column.
"""

import argparse
import json
import resource
import sys
import time

try:
    import h5py
    import numpy as np
    import torch
    import transformers
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM
except ImportError as e:  # the caller prints the note
    print(f"bench_torch_eval: {e}", file=sys.stderr)
    sys.exit(3)


def config_from(attrs):
    kw = dict(
        vocab_size=int(attrs["vocab_size"]),
        hidden_size=int(attrs["d_model"]),
        num_hidden_layers=int(attrs["n_layers"]),
        num_attention_heads=int(attrs["n_heads"]),
        intermediate_size=int(attrs["d_ff"]),
        max_position_embeddings=int(attrs["max_seq_len"]),
        layer_norm_eps=float(attrs["norm_eps"]),
        use_parallel_residual=bool(attrs["parallel_residual"]),
        tie_word_embeddings=bool(attrs["tie_embeddings"]),
        hidden_act="gelu",
    )
    pct, theta = float(attrs["rotary_pct"]), float(attrs["rope_theta"])
    import inspect

    params = inspect.signature(GPTNeoXConfig.__init__).parameters
    if "rope_parameters" in params:  # transformers >= 5
        kw["rope_parameters"] = {"rope_type": "default", "rope_theta": theta, "partial_rotary_factor": pct}
    else:
        kw.update(rotary_pct=pct, rotary_emb_base=theta)
    return GPTNeoXConfig(**kw)


def state_dict_from(f, n_layers, head_name):
    """qid names -> GPTNeoXForCausalLM names (the table in hdf5-schema/checkpoint.md)."""
    layer = {
        "ln1.weight": "input_layernorm.weight",
        "ln1.bias": "input_layernorm.bias",
        "attn.qkv.weight": "attention.query_key_value.weight",
        "attn.qkv.bias": "attention.query_key_value.bias",
        "attn.out.weight": "attention.dense.weight",
        "attn.out.bias": "attention.dense.bias",
        "ln2.weight": "post_attention_layernorm.weight",
        "ln2.bias": "post_attention_layernorm.bias",
        "mlp.up.weight": "mlp.dense_h_to_4h.weight",
        "mlp.up.bias": "mlp.dense_h_to_4h.bias",
        "mlp.down.weight": "mlp.dense_4h_to_h.weight",
        "mlp.down.bias": "mlp.dense_4h_to_h.bias",
    }
    t = lambda path: torch.from_numpy(np.asarray(f[path][...], dtype=np.float32))
    sd = {
        "gpt_neox.embed_in.weight": t("embed.weight"),
        "gpt_neox.final_layer_norm.weight": t("final_norm.weight"),
        "gpt_neox.final_layer_norm.bias": t("final_norm.bias"),
        head_name: t("lm_head.weight"),
    }
    for i in range(n_layers):
        for q, h in layer.items():
            sd[f"gpt_neox.layers.{i}.{h}"] = t(f"layers/{i}/{q}")
    return sd


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("ckpt")
    ap.add_argument("tokens")
    ap.add_argument("--windows", type=int, required=True)
    ap.add_argument("--seq-len", type=int, required=True)
    ap.add_argument("--threads", type=int, required=True)
    ap.add_argument("--repeat", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    with h5py.File(a.ckpt, "r") as f:
        if f.attrs["arch"] not in ("gpt-neox", b"gpt-neox"):
            print("bench_torch_eval: only gpt-neox checkpoints", file=sys.stderr)
            return 2
        cfg = config_from(f["config"].attrs)
        model = GPTNeoXForCausalLM(cfg)
        # the output head is `embed_out` in transformers 4, `lm_head` in later versions
        head_name = "embed_out.weight" if "embed_out.weight" in model.state_dict() else "lm_head.weight"
        sd = state_dict_from(f, cfg.num_hidden_layers, head_name)
        missing, unexpected = model.load_state_dict(sd, strict=False)
        missing = [m for m in missing if "rotary" not in m and "masked_bias" not in m and not m.endswith(".bias_")]
        if missing or unexpected:
            print(f"bench_torch_eval: state dict mismatch: missing {missing}, unexpected {unexpected}", file=sys.stderr)
            return 2
    model = model.float().eval()
    ids = np.fromfile(a.tokens, dtype="<u4").astype(np.int64).reshape(a.windows, a.seq_len)
    ids = torch.from_numpy(ids)
    with torch.no_grad():
        model(ids[:1, : min(128, a.seq_len)])  # warm-up: allocator, kernels, thread pool
        seconds = float("inf")
        for _ in range(max(1, a.repeat)):
            logits = None
            t0 = time.perf_counter()
            logits = model(ids).logits
            seconds = min(seconds, time.perf_counter() - t0)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
        V = logits.shape[-1]
        loss = float(torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, V), ids[:, 1:].reshape(-1)))
    print(
        json.dumps(
            {
                "seconds": seconds,
                "tokens_per_s": a.windows * a.seq_len / seconds,
                "loss": loss,
                "peak_rss_mib": peak,
                "threads": torch.get_num_threads(),
                "attn_implementation": getattr(model.config, "_attn_implementation", "?"),
                "torch": torch.__version__,
                "transformers": transformers.__version__,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
