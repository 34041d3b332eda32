#!/usr/bin/env python3
"""PyTorch side of `make bench` (test/bench_train.c): training steps of the
same small GPT-NeoX model as `qid train`, with the same thread count.

Usage:
    python3 tools/bench_torch_train.py --d-model D --layers L --heads H --vocab V \
        --seq-len T --batch B --steps S --threads N [--repeat R]

The model is transformers' GPTNeoXForCausalLM in float32 (rotary on 25% of
each head, parallel residual, untied head, GELU, d_ff = 4 D, default
attention implementation, i.e. scaled_dot_product_attention), train mode
with dropout 0, torch.optim.AdamW (lr 1e-3, betas 0.9/0.95, weight decay
0.01, foreach=False as on qid's side element by element) and
clip_grad_norm_(1.0). A step is forward with labels (mean next-token
cross-entropy), backward, clipping, the optimizer step and zero_grad, on
B random windows of T token ids (seeded).

Two untimed warm-up steps, then R timed runs of S steps; the best run is
reported, as the qid side does on a shared machine.

Prints one JSON object on stdout: seconds (of S steps), tokens_per_s, the
last loss, threads, torch and transformers versions. Exits 3 with a message
on stderr when torch or transformers are missing, so the caller can skip the
column.
"""

import argparse
import inspect
import json
import sys
import time

try:
    import torch
    import transformers
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM
except ImportError as e:  # the caller prints the note
    print(f"bench_torch_train: {e}", file=sys.stderr)
    sys.exit(3)


def config(a):
    kw = dict(
        vocab_size=a.vocab,
        hidden_size=a.d_model,
        num_hidden_layers=a.layers,
        num_attention_heads=a.heads,
        intermediate_size=4 * a.d_model,
        max_position_embeddings=a.seq_len,
        layer_norm_eps=1e-5,
        use_parallel_residual=True,
        tie_word_embeddings=False,
        hidden_act="gelu",
        attention_bias=True,
        hidden_dropout=0.0,
        attention_dropout=0.0,
    )
    if "rope_parameters" in inspect.signature(GPTNeoXConfig.__init__).parameters:  # transformers >= 5
        kw["rope_parameters"] = {"rope_type": "default", "rope_theta": 10000.0, "partial_rotary_factor": 0.25}
    else:
        kw.update(rotary_pct=0.25, rotary_emb_base=10000)
    return GPTNeoXConfig(**kw)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    for name in ("d-model", "layers", "heads", "vocab", "seq-len", "batch", "steps", "threads"):
        ap.add_argument("--" + name, type=int, required=True)
    ap.add_argument("--repeat", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(1)
    model = GPTNeoXForCausalLM(config(a)).float().train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.95), weight_decay=0.01, foreach=False)
    g = torch.Generator().manual_seed(2)
    ids = torch.randint(0, a.vocab, (a.batch, a.seq_len), generator=g)

    def step():
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return float(loss.detach())

    for _ in range(2):
        step()
    best, loss = float("inf"), float("nan")
    for _ in range(max(1, a.repeat)):
        t0 = time.perf_counter()
        for _ in range(a.steps):
            loss = step()
        best = min(best, time.perf_counter() - t0)
    print(
        json.dumps(
            {
                "seconds": best,
                "tokens_per_s": a.steps * a.batch * a.seq_len / best,
                "loss": loss,
                "threads": torch.get_num_threads(),
                "torch": torch.__version__,
                "transformers": transformers.__version__,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
