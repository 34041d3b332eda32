#!/usr/bin/env python3
"""Generate tiny Hugging Face checkpoints used as test fixtures by qid.

Usage:
    python3 tools/make_hf_fixtures.py [OUTDIR]      # default OUTDIR: test/fixtures/hf
    python3 tools/make_hf_fixtures.py --families [OUTDIR]
                                   # only the GPT-2, OPT and BLOOM fixtures
                                   # (README-families.md), and the
                                   # non-embedding counts of the published
                                   # gpt2, opt-125m and bloom-560m configs

Why: the qid importer reads Hugging Face checkpoints (config.json plus
model.safetensors, or shards plus model.safetensors.index.json) into HDF5,
and the evaluator runs a forward pass over them.  These fixtures are small
(a few tens of KB each) real checkpoints written by `transformers` itself,
so the importer can be tested against the exact tensor names, dtypes,
layouts, sharding and config keys that upstream produces, and the forward
pass can be compared with reference logits and losses computed by PyTorch.

What it writes under OUTDIR (everything is rewritten on each run; the six
model directories are deleted first so stale shards never linger):

  gpt-neox-tiny/             GPTNeoXForCausalLM, float32 (Pythia-like:
                             parallel residual, biases everywhere,
                             rotary on 25% of each head, untied embed_out)
  gpt-neox-tiny-fp16/        the same weights converted with .half()
  llama-tiny/                LlamaForCausalLM, float32, grouped-query
                             attention (4 query heads, 2 key/value heads)
  llama-tiny-bf16-sharded/   the llama-tiny weights in bfloat16, saved with
                             a small max_shard_size: >= 2 shards plus
                             model.safetensors.index.json
  qwen2-tiny/                Qwen2ForCausalLM, float32 (q/k/v biases, no
                             o_proj bias), same sizes as llama-tiny
  llama-tiny-tied/           like llama-tiny but tie_word_embeddings=True
                             (no lm_head tensor in the file)
  tokens.npy                 uint16 array of shape (3, 16), token ids in
                             [0, 96): 3 windows of 16 tokens
  tokens.u16                 the same ids as raw little-endian uint16, C order
  README.md                  description of the above

Every model directory is written with model.save_pretrained(dir,
safe_serialization=True) (in transformers >= 5 safetensors is the only
format and the flag is accepted and ignored).  Each float32 model directory
(gpt-neox-tiny, llama-tiny, qwen2-tiny, llama-tiny-tied) also gets:

  logits.f32       raw little-endian float32 logits, shape (3, 16, 96), C
                   order: the model in float32, eval mode, eager attention,
                   on the 3 windows as one batch, no attention mask/padding
  reference.json   params_nonembedding  all parameters except the input
                                        embedding and the output head (a
                                        tied embedding counts once, as
                                        embedding)
                   params_total         unique parameters
                   loss                 mean cross-entropy (nats) over all
                                        3*15 predictions (positions 0..14
                                        predict tokens 1..15 of each
                                        window), computed in float64 from
                                        the float32 logits
                   per_window_nll_sum   sum of the 15 NLLs of each window
                   logits_shape         [3, 16, 96]
                   torch_version, transformers_version

Parameters are initialised with larger-than-default random values so the
logits are far from uniform: matrices and embeddings ~ N(0, 0.2^2), norm
weights 1 + 0.1*N(0,1), biases ~ N(0, 0.05^2).  All randomness comes from
fixed seeds, and computation is single-threaded on the CPU, so a rerun with
the same library versions reproduces the files byte for byte.

Generated with torch 2.15.0+cu132, transformers 5.23.0, safetensors 0.8.0,
numpy 2.4.6 (the versions actually used are also recorded in each
reference.json and in README.md).

Note on config keys: transformers 5.x writes rotary settings as
"rope_parameters": {"rope_theta": ..., "partial_rotary_factor": ...,
"rope_type": "default"} rather than the top-level "rotary_pct" /
"rotary_emb_base" (GPT-NeoX) or "rope_theta" (Llama/Qwen2) found in older
checkpoints such as the published Pythia configs.
"""

import inspect
import json
import os
import shutil
import struct
import sys

import numpy as np
import safetensors
import torch
import transformers
from transformers import (
    BloomConfig,
    BloomForCausalLM,
    GPT2Config,
    GPT2LMHeadModel,
    GPTNeoXConfig,
    GPTNeoXForCausalLM,
    LlamaConfig,
    LlamaForCausalLM,
    Qwen2Config,
    OPTConfig,
    OPTForCausalLM,
    Qwen2ForCausalLM,
)

VOCAB = 96
N_WINDOWS = 3
WINDOW = 16
TOKEN_SEED = 1234

MODEL_DIRS = [
    "gpt-neox-tiny",
    "gpt-neox-tiny-fp16",
    "llama-tiny",
    "llama-tiny-bf16-sharded",
    "qwen2-tiny",
    "llama-tiny-tied",
]

# The families added later (issue 16); `--families` writes only these, so
# the older fixtures stay byte for byte as committed.
FAMILY_DIRS = [
    "gpt2-tiny",
    "gpt2-tiny-scaled",
    "gpt2-tiny-unscaled",
    "opt-tiny",
    "opt-tiny-postln-proj",
    "bloom-tiny",
]


def init_params(model, seed):
    """Overwrite every parameter with large, seeded random values."""
    g = torch.Generator().manual_seed(seed)
    seen = set()
    with torch.no_grad():
        for name, p in model.named_parameters():  # tied params appear once
            if id(p) in seen:
                continue
            seen.add(id(p))
            noise = torch.randn(p.shape, generator=g, dtype=torch.float32)
            if name.endswith("bias"):
                p.copy_(0.05 * noise)
            elif p.dim() == 1:  # LayerNorm / RMSNorm weight
                p.copy_(1.0 + 0.1 * noise)
            else:  # linear weights and embeddings
                p.copy_(0.2 * noise)


def save(model, path, **kw):
    # transformers >= 5 always writes safetensors and silently accepts the
    # (now undocumented) safe_serialization keyword; 4.x needs it.
    model.save_pretrained(path, safe_serialization=True, **kw)


def param_counts(model):
    params = {id(p): p for p in model.parameters()}
    total = sum(p.numel() for p in params.values())
    emb = {id(model.get_input_embeddings().weight): model.get_input_embeddings().weight}
    out = model.get_output_embeddings()
    if out is not None:
        emb[id(out.weight)] = out.weight
    # learned position tables (GPT-2's wpe, OPT's embed_positions) are
    # embeddings too, as num_parameters(exclude_embeddings=True) counts them
    for mod in model.modules():
        if isinstance(mod, torch.nn.Embedding):
            emb[id(mod.weight)] = mod.weight
    n_emb = sum(p.numel() for p in emb.values())
    return total - n_emb, total


def write_reference(model, path, tokens):
    model = model.float().eval()
    ids = torch.from_numpy(tokens.astype(np.int64))
    with torch.no_grad():
        logits = model(input_ids=ids).logits
    assert logits.dtype == torch.float32
    assert tuple(logits.shape) == (N_WINDOWS, WINDOW, VOCAB), logits.shape
    lg = logits.numpy()
    with open(os.path.join(path, "logits.f32"), "wb") as f:
        f.write(np.ascontiguousarray(lg, dtype="<f4").tobytes())

    # NLL in float64: positions 0..14 predict tokens 1..15.
    l64 = torch.from_numpy(lg.astype(np.float64))
    logp = torch.log_softmax(l64[:, :-1, :], dim=-1)
    tgt = ids[:, 1:]
    nll = -logp.gather(-1, tgt.unsqueeze(-1)).squeeze(-1)  # (3, 15)
    per_window = nll.sum(dim=1)
    loss = nll.mean().item()

    # Cross-check against transformers' own loss, window by window.
    with torch.no_grad():
        for w in range(N_WINDOWS):
            hf = model(input_ids=ids[w : w + 1], labels=ids[w : w + 1]).loss.item()
            mine = per_window[w].item() / (WINDOW - 1)
            assert abs(hf - mine) < 1e-4 * max(1.0, abs(mine)), (path, w, hf, mine)

    nonemb, total = param_counts(model)
    ref = {
        "params_nonembedding": nonemb,
        "params_total": total,
        "loss": loss,
        "per_window_nll_sum": [float(x) for x in per_window.tolist()],
        "logits_shape": [N_WINDOWS, WINDOW, VOCAB],
        "torch_version": torch.__version__,
        "transformers_version": transformers.__version__,
    }
    with open(os.path.join(path, "reference.json"), "w") as f:
        json.dump(ref, f, indent=2)
        f.write("\n")
    return ref


def safetensors_names(path):
    """(file, [(name, dtype, shape)]) for each safetensors file in path."""
    out = []
    for fn in sorted(os.listdir(path)):
        if not fn.endswith(".safetensors"):
            continue
        with open(os.path.join(path, fn), "rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
            hdr = json.loads(f.read(n))
        hdr.pop("__metadata__", None)
        out.append((fn, [(k, v["dtype"], v["shape"]) for k, v in sorted(hdr.items())]))
    return out


def gpt_neox_config():
    kw = dict(
        vocab_size=VOCAB,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=64,
        use_parallel_residual=True,
        hidden_act="gelu",
        layer_norm_eps=1e-5,
        tie_word_embeddings=False,
        attention_bias=True,
        bos_token_id=0,
        eos_token_id=0,
    )
    params = inspect.signature(GPTNeoXConfig.__init__).parameters
    if "rope_parameters" in params:  # transformers >= 5
        kw["rope_parameters"] = {
            "rope_type": "default",
            "rope_theta": 10000.0,
            "partial_rotary_factor": 0.25,
        }
    else:  # transformers 4.x
        kw.update(rotary_pct=0.25, rotary_emb_base=10000)
        if "partial_rotary_factor" in params:
            kw["partial_rotary_factor"] = 0.25
        if "rope_theta" in params:
            kw["rope_theta"] = 10000.0
    return GPTNeoXConfig(**kw)


def llama_like_kwargs(tied):
    kw = dict(
        vocab_size=VOCAB,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        intermediate_size=48,
        rms_norm_eps=1e-6,
        max_position_embeddings=64,
        tie_word_embeddings=tied,
        hidden_act="silu",
        bos_token_id=0,
        eos_token_id=0,
    )
    return kw


def with_rope(cls, kw):
    if "rope_parameters" in inspect.signature(cls.__init__).parameters:
        kw["rope_parameters"] = {"rope_type": "default", "rope_theta": 10000.0}
    else:
        kw["rope_theta"] = 10000.0
    return cls(**kw)


def build(model_cls, config, seed):
    config._attn_implementation = "eager"
    torch.manual_seed(seed)
    model = model_cls(config).float().eval()
    init_params(model, seed)
    return model


def check_config(path, want):
    with open(os.path.join(path, "config.json")) as f:
        cfg = json.load(f)
    flat = json.dumps(cfg)
    for k in want:
        assert k in flat, (path, k, cfg)
    return cfg


README = """\
# Tiny Hugging Face checkpoint fixtures

Generated by `tools/make_hf_fixtures.py` (do not edit by hand).  Regenerate
everything with

    python3 tools/make_hf_fixtures.py            # writes test/fixtures/hf
    python3 tools/make_hf_fixtures.py OUTDIR     # writes elsewhere

Generated with torch {torch}, transformers {tf}, safetensors {st},
numpy {np}.  All weights are random (fixed seeds), with larger-than-default
values (matrices/embeddings N(0, 0.2^2), norm weights 1 + 0.1*N(0,1),
biases N(0, 0.05^2)) so logits are far from uniform.  Every model has
vocab_size 96, hidden_size 32, 2 layers, 4 attention heads,
max_position_embeddings 64, rope theta 10000.

| directory | contents |
|---|---|
| `gpt-neox-tiny/` | GPTNeoXForCausalLM, float32; Pythia-like: parallel residual, biases everywhere, gelu, intermediate 64, partial rotary 0.25, layer_norm_eps 1e-5, untied `embed_out` |
| `gpt-neox-tiny-fp16/` | the `gpt-neox-tiny` weights converted with `.half()` |
| `llama-tiny/` | LlamaForCausalLM, float32; 2 key/value heads (GQA), intermediate 48, silu, rms_norm_eps 1e-6, untied `lm_head` |
| `llama-tiny-bf16-sharded/` | the `llama-tiny` weights in bfloat16, saved with max_shard_size {shard} so there are several shards plus `model.safetensors.index.json` |
| `qwen2-tiny/` | Qwen2ForCausalLM, float32; same sizes as `llama-tiny`; q/k/v biases, no o_proj bias |
| `llama-tiny-tied/` | like `llama-tiny` but `tie_word_embeddings=true` (no `lm_head` tensor in the file) |
| `tokens.npy`, `tokens.u16` | 3 windows x 16 token ids in [0, 96) (uint16; `.u16` is raw little-endian, C order) |

Each model directory holds `config.json` and `model.safetensors` (or the
shards and index) and `generation_config.json`, as written by
`save_pretrained`.  The float32 directories (`gpt-neox-tiny`,
`llama-tiny`, `qwen2-tiny`, `llama-tiny-tied`) also hold:

* `logits.f32`: raw little-endian float32 logits, shape (3, 16, 96), C
  order, from the float32 model (eval mode, eager attention) on the 3
  windows of `tokens.npy` as one batch, no attention mask or padding.
* `reference.json`: `params_nonembedding` (all parameters except the input
  embedding and the output head; a tied embedding counts once, as
  embedding), `params_total` (unique parameters), `loss` (mean
  cross-entropy in nats over all 3*15 predictions: positions 0..14 of each
  window predict tokens 1..15; computed in float64 from the float32
  logits), `per_window_nll_sum` (sum of the 15 NLLs of each window),
  `logits_shape`, `torch_version`, `transformers_version`.

Note: transformers 5.x writes rotary settings as
`"rope_parameters": {{"rope_theta": 10000.0, "partial_rotary_factor": 0.25,
"rope_type": "default"}}` instead of the top-level `rotary_pct` /
`rotary_emb_base` (GPT-NeoX) or `rope_theta` (Llama, Qwen2) keys used by
older published checkpoints (e.g. the Pythia configs).
"""


FAMILIES_README = """\
# Tiny GPT-2, OPT and BLOOM fixtures

Generated by `tools/make_hf_fixtures.py --families` (do not edit by hand)
with torch {torch}, transformers {tf}, safetensors {st}, numpy {np}; the
same random initialisation, tokens (`tokens.u16`), `logits.f32` and
`reference.json` as the other fixtures (see README.md), vocab_size 96.
`params_nonembedding` leaves out every nn.Embedding (token and learned
position tables) and the output head.

| directory | contents |
|---|---|
| `gpt2-tiny/` | GPT2LMHeadModel, float32; n_embd 32, 2 layers, 4 heads, n_inner 64, gelu_new, n_positions 64, tied head, Conv1D weights |
| `gpt2-tiny-scaled/` | as `gpt2-tiny` (other weights) with scale_attn_by_inverse_layer_idx and reorder_and_upcast_attn true |
| `gpt2-tiny-unscaled/` | as `gpt2-tiny` (other weights) with scale_attn_weights false (scores not divided by sqrt(head_dim)) |
| `opt-tiny/` | OPTForCausalLM, float32; hidden 32, 2 layers, 4 heads, ffn_dim 64, relu, max_position_embeddings 64 (table of 66 rows, offset 2), pre-LayerNorm, tied head |
| `opt-tiny-postln-proj/` | as `opt-tiny` with do_layer_norm_before false (post-LayerNorm, no final norm, as opt-350m) and word_embed_proj_dim 16 (project_in / project_out) |
| `bloom-tiny/` | BloomForCausalLM, float32; hidden 48, 2 layers, 6 heads (not a power of two: ALiBi slopes 4 + 2), embedding LayerNorm, tied head |
| `alibi_slopes.txt` | transformers' `_get_alibi_slopes(n)` for n = 1..48 heads: per line n, then the n float32 slopes as hex bit patterns |
"""


def gpt2_config(scaled, unscaled=False):
    return GPT2Config(
        scale_attn_weights=not unscaled,
        vocab_size=VOCAB,
        n_positions=64,
        n_embd=32,
        n_layer=2,
        n_head=4,
        n_inner=64,
        activation_function="gelu_new",
        layer_norm_epsilon=1e-5,
        scale_attn_by_inverse_layer_idx=scaled,
        reorder_and_upcast_attn=scaled,
        bos_token_id=0,
        eos_token_id=0,
    )


def opt_config(pre_ln, proj):
    return OPTConfig(
        vocab_size=VOCAB,
        hidden_size=32,
        num_hidden_layers=2,
        ffn_dim=64,
        num_attention_heads=4,
        max_position_embeddings=64,
        do_layer_norm_before=pre_ln,
        word_embed_proj_dim=proj,
        activation_function="relu",
        pad_token_id=1,
        bos_token_id=2,
        eos_token_id=2,
    )


def bloom_config():
    return BloomConfig(
        vocab_size=VOCAB,
        hidden_size=48,
        n_layer=2,
        n_head=6,
        layer_norm_epsilon=1e-5,
        bos_token_id=0,
        eos_token_id=0,
    )


def make_families(outdir, tokens):
    from transformers.models.bloom.modeling_bloom import _get_alibi_slopes

    for d in FAMILY_DIRS:
        shutil.rmtree(os.path.join(outdir, d), ignore_errors=True)
    refs = {}
    models = [
        ("gpt2-tiny", GPT2LMHeadModel, gpt2_config(False), 11),
        ("gpt2-tiny-scaled", GPT2LMHeadModel, gpt2_config(True), 12),
        ("gpt2-tiny-unscaled", GPT2LMHeadModel, gpt2_config(False, True), 16),
        ("opt-tiny", OPTForCausalLM, opt_config(True, 32), 13),
        ("opt-tiny-postln-proj", OPTForCausalLM, opt_config(False, 16), 14),
        ("bloom-tiny", BloomForCausalLM, bloom_config(), 15),
    ]
    for name, cls, config, seed in models:
        p = os.path.join(outdir, name)
        m = build(cls, config, seed)
        assert m.get_output_embeddings().weight is m.get_input_embeddings().weight, name
        save(m, p)
        refs[name] = write_reference(m, p, tokens)
    opt = OPTForCausalLM(opt_config(False, 16))
    assert opt.model.decoder.project_in is not None and opt.model.decoder.final_layer_norm is None
    with open(os.path.join(outdir, "alibi_slopes.txt"), "w") as f:
        f.write("# transformers %s _get_alibi_slopes: heads, then float32 slopes as hex bits\n" % transformers.__version__)
        for n in range(1, 49):
            s = _get_alibi_slopes(n, torch.device("cpu")).numpy().astype("<f4").view("<u4")
            f.write("%d %s\n" % (n, " ".join("%08x" % v for v in s)))
    with open(os.path.join(outdir, "README-families.md"), "w") as f:
        f.write(
            FAMILIES_README.format(
                torch=torch.__version__, tf=transformers.__version__, st=safetensors.__version__, np=np.__version__
            )
        )
    for name in FAMILY_DIRS:
        r = refs[name]
        print(
            f"== {name}: params_nonembedding={r['params_nonembedding']} "
            f"params_total={r['params_total']} loss={r['loss']:.6f}"
        )
    # non-embedding counts of the published configs (no weights needed)
    published = [
        ("gpt2", GPT2LMHeadModel, GPT2Config(vocab_size=50257, n_positions=1024, n_embd=768, n_layer=12, n_head=12)),
        (
            "opt-125m",
            OPTForCausalLM,
            OPTConfig(
                vocab_size=50272,
                hidden_size=768,
                num_hidden_layers=12,
                ffn_dim=3072,
                num_attention_heads=12,
                max_position_embeddings=2048,
                word_embed_proj_dim=768,
            ),
        ),
        ("bloom-560m", BloomForCausalLM, BloomConfig(vocab_size=250880, hidden_size=1024, n_layer=24, n_head=16)),
    ]
    for name, cls, config in published:
        with torch.device("meta"):
            m = cls(config)
        nonemb, total = param_counts(m)
        print(
            f"published {name}: total {total}, num_parameters(exclude_embeddings=True) "
            f"{m.num_parameters(exclude_embeddings=True)}, non-embedding (head excluded too) {nonemb}"
        )


def main():
    args = [a for a in sys.argv[1:] if a != "--families"]
    families_only = len(args) != len(sys.argv) - 1
    outdir = args[0] if args else os.path.join("test", "fixtures", "hf")
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    os.makedirs(outdir, exist_ok=True)
    if families_only:
        tokens = np.load(os.path.join(outdir, "tokens.npy"))
        make_families(outdir, tokens)
        return
    for d in MODEL_DIRS:
        shutil.rmtree(os.path.join(outdir, d), ignore_errors=True)

    # Tokens.
    rng = np.random.default_rng(TOKEN_SEED)
    tokens = rng.integers(0, VOCAB, size=(N_WINDOWS, WINDOW)).astype(np.uint16)
    np.save(os.path.join(outdir, "tokens.npy"), tokens)
    with open(os.path.join(outdir, "tokens.u16"), "wb") as f:
        f.write(np.ascontiguousarray(tokens, dtype="<u2").tobytes())

    refs = {}

    # 1, 2: GPT-NeoX.
    p = os.path.join(outdir, "gpt-neox-tiny")
    neox = build(GPTNeoXForCausalLM, gpt_neox_config(), seed=1)
    save(neox, p)
    cfg = check_config(p, ["0.25"])
    refs["gpt-neox-tiny"] = write_reference(neox, p, tokens)
    p = os.path.join(outdir, "gpt-neox-tiny-fp16")
    save(neox.half(), p)

    # 3, 4: Llama (and its bf16 sharded copy).
    p = os.path.join(outdir, "llama-tiny")
    llama = build(LlamaForCausalLM, with_rope(LlamaConfig, llama_like_kwargs(False)), seed=3)
    save(llama, p)
    refs["llama-tiny"] = write_reference(llama, p, tokens)
    shard = "16KB"
    p = os.path.join(outdir, "llama-tiny-bf16-sharded")
    save(llama.to(torch.bfloat16), p, max_shard_size=shard)
    n_shards = sum(fn.endswith(".safetensors") for fn in os.listdir(p))
    assert n_shards >= 2, n_shards
    assert os.path.exists(os.path.join(p, "model.safetensors.index.json"))

    # 5: Qwen2.
    p = os.path.join(outdir, "qwen2-tiny")
    qwen = build(Qwen2ForCausalLM, with_rope(Qwen2Config, llama_like_kwargs(False)), seed=5)
    save(qwen, p)
    refs["qwen2-tiny"] = write_reference(qwen, p, tokens)

    # 6: tied Llama.
    p = os.path.join(outdir, "llama-tiny-tied")
    tied = build(LlamaForCausalLM, with_rope(LlamaConfig, llama_like_kwargs(True)), seed=6)
    assert tied.get_output_embeddings().weight is tied.get_input_embeddings().weight
    save(tied, p)
    refs["llama-tiny-tied"] = write_reference(tied, p, tokens)
    names = [n for _, ts in safetensors_names(p) for n, _, _ in ts]
    assert not any("lm_head" in n for n in names), names

    with open(os.path.join(outdir, "README.md"), "w") as f:
        f.write(
            README.format(
                torch=torch.__version__,
                tf=transformers.__version__,
                st=safetensors.__version__,
                np=np.__version__,
                shard=shard,
            )
        )

    # Summary.
    for d in MODEL_DIRS:
        p = os.path.join(outdir, d)
        print(f"== {d}")
        for fn, ts in safetensors_names(p):
            print(f"  {fn}")
            for n, dt, sh in ts:
                print(f"    {n:50s} {dt:5s} {sh}")
        if d in refs:
            r = refs[d]
            print(
                f"  params_nonembedding={r['params_nonembedding']} "
                f"params_total={r['params_total']} loss={r['loss']:.6f} "
                f"per_window={r['per_window_nll_sum']}"
            )
    print("tokens:", tokens.tolist())
    make_families(outdir, tokens)


if __name__ == "__main__":
    main()
