#!/usr/bin/env python3
"""Convert a Hugging Face checkpoint directory saved as pytorch_model.bin
(single file or shards with pytorch_model.bin.index.json) to safetensors, so
`qid import --from safetensors` can read it.

Many Pythia step branches on the hub (revision="step1000", ...) ship only
pytorch_model.bin. qid does not read pickles (an untrusted pickle can run
code); this script does it once, in your Python, with torch.load(weights_only=True).

    python3 tools/bin_to_safetensors.py SRC_DIR [DST_DIR]

DST_DIR defaults to SRC_DIR. Writes model.safetensors (or shards named like the
.bin shards plus model.safetensors.index.json) and copies config.json. Tensor
bytes and dtypes are unchanged; non-persistent buffers (attention.bias,
attention.masked_bias, rotary_emb.inv_freq) are dropped.
Needs: pip install torch safetensors
"""
import json
import os
import shutil
import sys

import torch
from safetensors.torch import save_file

SKIP = (".attention.bias", ".attention.masked_bias", ".rotary_emb.inv_freq")


def load(path):
    sd = torch.load(path, map_location="cpu", weights_only=True)
    return {k: v.contiguous() for k, v in sd.items() if not k.endswith(SKIP)}


def main():
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    src = sys.argv[1]
    dst = sys.argv[2] if len(sys.argv) == 3 else src
    os.makedirs(dst, exist_ok=True)
    if os.path.abspath(src) != os.path.abspath(dst):
        shutil.copy(os.path.join(src, "config.json"), dst)
    index = os.path.join(src, "pytorch_model.bin.index.json")
    if os.path.exists(index):
        with open(index) as f:
            wmap = json.load(f)["weight_map"]
        new_map = {}
        for shard in sorted(set(wmap.values())):
            out = shard.replace("pytorch_model", "model").replace(".bin", ".safetensors")
            sd = load(os.path.join(src, shard))
            save_file(sd, os.path.join(dst, out), metadata={"format": "pt"})
            new_map.update({k: out for k in sd})
        with open(os.path.join(dst, "model.safetensors.index.json"), "w") as f:
            json.dump({"metadata": {}, "weight_map": new_map}, f, indent=2)
    else:
        sd = load(os.path.join(src, "pytorch_model.bin"))
        save_file(sd, os.path.join(dst, "model.safetensors"), metadata={"format": "pt"})
    print(f"wrote safetensors to {dst}")


if __name__ == "__main__":
    main()
