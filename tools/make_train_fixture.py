#!/usr/bin/env python3
"""Generate the qid train fixture: a tiny GPT-NeoX model, its loss and every
parameter's gradient on one fixed batch, and the parameters after three
clipped AdamW steps, all computed by PyTorch / transformers.

Usage:
    python3 tools/make_train_fixture.py [OUTDIR]     # default OUTDIR: test/fixtures/train

Why: test/test_train.c checks qid's backward pass (src/train/train_grad.c) and
optimizer (src/train/train.c, src/train/train_optim.c) against PyTorch on the same weights and tokens.
The model is written with save_pretrained, so the test reads it with
`qid import --from safetensors` (qid_import_safetensors) like any Hugging
Face checkpoint.

What it writes under OUTDIR (rewritten on every run):

  model/         GPTNeoXForCausalLM, float32 (Pythia-like: parallel residual,
                 rotary on 25% of each head, exact GELU, LayerNorm with
                 bias, untied embed_out, biases everywhere): config.json,
                 model.safetensors. vocab 48, hidden 32, 2 layers, 2 heads
                 (head_dim 16, 4 rotary dims), intermediate 64, 32 positions.
  grads.f32      raw little-endian float32: the gradient of the loss with
                 respect to every parameter, concatenated in qid's storage
                 order (embed, layer 0, layer 1, final norm, head; within a
                 layer ln1.w, ln1.b, qkv.w, qkv.b, out.w, out.b, ln2.w,
                 ln2.b, up.w, up.b, down.w, down.b), each row-major as
                 PyTorch stores it.
  adamw.f32      the parameters, same order, after three steps of
                 torch.optim.AdamW from the initial weights, each step
                 with the gradients of grads.f32 clipped by
                 torch.nn.utils.clip_grad_norm_(max_norm=CLIP) and the
                 learning rates LRS; weight decay on the four linear
                 weights of each layer only (one param group each).
  fixture.json   tokens (3 windows x 16 ids), loss (transformers' own
                 loss: mean cross-entropy of the 45 predictions, float32),
                 loss_f64 (the same from the float32 logits in float64),
                 the tensor table (Hugging Face name, offset, count),
                 grad_norm (the global norm clip_grad_norm_ returned),
                 the AdamW settings and versions.

Weights are seeded random values of moderate size (matrices and
embeddings N(0, 0.15^2), norm weights 1 + 0.1 N(0,1), biases
N(0, 0.05^2)) so every gradient is far from zero; all computation is
float32, single-threaded, deterministic.
"""

import inspect
import json
import os
import shutil
import sys

import numpy as np
import torch
import transformers
from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

VOCAB, HIDDEN, LAYERS, HEADS, FF, POS = 48, 32, 2, 2, 64, 32
N_WINDOWS, WINDOW = 3, 16
SEED, TOKEN_SEED = 7, 4321
LRS = [3e-3, 1e-2, 5e-3]
BETAS, EPS, WEIGHT_DECAY = (0.9, 0.95), 1e-8, 0.1
CLIP_FRACTION = 0.5  # max_norm = this fraction of the gradient norm, so clipping acts

LAYER_ORDER = [
    "input_layernorm.weight",
    "input_layernorm.bias",
    "attention.query_key_value.weight",
    "attention.query_key_value.bias",
    "attention.dense.weight",
    "attention.dense.bias",
    "post_attention_layernorm.weight",
    "post_attention_layernorm.bias",
    "mlp.dense_h_to_4h.weight",
    "mlp.dense_h_to_4h.bias",
    "mlp.dense_4h_to_h.weight",
    "mlp.dense_4h_to_h.bias",
]
DECAYED = ("query_key_value.weight", "attention.dense.weight", "dense_h_to_4h.weight", "dense_4h_to_h.weight")


def qid_order():
    names = ["gpt_neox.embed_in.weight"]
    for i in range(LAYERS):
        names += [f"gpt_neox.layers.{i}.{n}" for n in LAYER_ORDER]
    names += ["gpt_neox.final_layer_norm.weight", "gpt_neox.final_layer_norm.bias", "embed_out.weight"]
    return names


def config():
    kw = dict(
        vocab_size=VOCAB,
        hidden_size=HIDDEN,
        num_hidden_layers=LAYERS,
        num_attention_heads=HEADS,
        intermediate_size=FF,
        max_position_embeddings=POS,
        use_parallel_residual=True,
        hidden_act="gelu",
        layer_norm_eps=1e-5,
        tie_word_embeddings=False,
        attention_bias=True,
        hidden_dropout=0.0,
        attention_dropout=0.0,
        bos_token_id=0,
        eos_token_id=0,
    )
    if "rope_parameters" in inspect.signature(GPTNeoXConfig.__init__).parameters:  # transformers >= 5
        kw["rope_parameters"] = {"rope_type": "default", "rope_theta": 10000.0, "partial_rotary_factor": 0.25}
    else:
        kw.update(rotary_pct=0.25, rotary_emb_base=10000)
    return GPTNeoXConfig(**kw)


def flat(tensors):
    return np.concatenate([t.detach().numpy().astype("<f4").ravel() for t in tensors])


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join("test", "fixtures", "train")
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    shutil.rmtree(os.path.join(out, "model"), ignore_errors=True)
    os.makedirs(out, exist_ok=True)

    cfg = config()
    cfg._attn_implementation = "eager"
    torch.manual_seed(SEED)
    model = GPTNeoXForCausalLM(cfg).float()
    g = torch.Generator().manual_seed(SEED)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=g, dtype=torch.float32)
            if name.endswith("bias"):
                p.copy_(0.05 * noise)
            elif p.dim() == 1:
                p.copy_(1.0 + 0.1 * noise)
            else:
                p.copy_(0.15 * noise)
    model.train()  # dropout is 0: train mode computes what eval mode does
    model.save_pretrained(os.path.join(out, "model"))

    # transformers 5 calls the head lm_head in memory and embed_out in the file
    named = dict(model.named_parameters())
    order = qid_order()
    params = {n: named[n if n in named else "lm_head.weight"] for n in order}
    assert len({id(p) for p in params.values()}) == len(named) == len(order), sorted(named)

    rng = np.random.default_rng(TOKEN_SEED)
    tokens = rng.integers(0, VOCAB, size=(N_WINDOWS, WINDOW))
    ids = torch.from_numpy(tokens.astype(np.int64))
    res = model(input_ids=ids, labels=ids)
    loss = res.loss
    logits = res.logits.detach().double()
    logp = torch.log_softmax(logits[:, :-1, :], dim=-1)
    loss64 = -logp.gather(-1, ids[:, 1:].unsqueeze(-1)).mean().item()
    model.zero_grad()
    loss.backward()
    grads = {n: params[n].grad.detach().clone() for n in order}
    flat(grads[n] for n in order).tofile(os.path.join(out, "grads.f32"))

    # Three AdamW steps on those gradients, clipped.
    total = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(grads[n]) for n in order])).item()
    clip = CLIP_FRACTION * total
    decay = [params[n] for n in order if n.endswith(DECAYED)]
    other = [params[n] for n in order if not n.endswith(DECAYED)]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": WEIGHT_DECAY}, {"params": other, "weight_decay": 0.0}],
        lr=LRS[0],
        betas=BETAS,
        eps=EPS,
        foreach=False,
    )
    norms = []
    for lr in LRS:
        for n in order:
            params[n].grad = grads[n].clone()
        norms.append(float(torch.nn.utils.clip_grad_norm_([params[n] for n in order], max_norm=clip)))
        for group in opt.param_groups:
            group["lr"] = lr
        opt.step()
    flat(params[n] for n in order).tofile(os.path.join(out, "adamw.f32"))

    table, off = [], 0
    for n in order:
        k = params[n].numel()
        table.append({"hf": n, "offset": off, "count": k})
        off += k
    fixture = {
        "tokens": tokens.tolist(),
        "loss": loss.item(),
        "loss_f64": loss64,
        "tensors": table,
        "n_params": off,
        "grad_norm": norms[0],
        "clip": clip,
        "lrs": LRS,
        "beta1": BETAS[0],
        "beta2": BETAS[1],
        "eps": EPS,
        "weight_decay": WEIGHT_DECAY,
        "decayed": [n for n in order if n.endswith(DECAYED)],
        "torch_version": torch.__version__,
        "transformers_version": transformers.__version__,
    }
    with open(os.path.join(out, "fixture.json"), "w") as f:
        json.dump(fixture, f, indent=1)
        f.write("\n")
    print(f"loss {loss.item():.9f} (f64 {loss64:.9f}), {off} parameters, grad norm {norms[0]:.6f}, clip {clip:.6f}")
    for n in order:
        print(f"  {n:50s} |g| {grads[n].norm().item():.6f}")


if __name__ == "__main__":
    main()
