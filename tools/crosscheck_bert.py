"""Independent numpy forward of a Hugging Face BERT checkpoint, compared with the hidden
states `ceiling hidden` wrote: a check of the checkpoint mapping that does not share any
code with ceiling's own CPU reference.

    ceiling hidden --model DIR --tokens tokens.json --out states.safetensors
    python3 tools/crosscheck_bert.py DIR tokens.json states.safetensors

Needs numpy and safetensors (pip install numpy safetensors).
"""
import json
import math
import sys

import numpy as np
from safetensors.numpy import load_file


def main(model_dir, tokens_path, states_path):
    cfg = json.load(open(f"{model_dir}/config.json"))
    w = {k.removeprefix("bert."): v.astype(np.float64) for k, v in load_file(f"{model_dir}/model.safetensors").items()}
    ids = np.array(json.load(open(tokens_path)))
    eps = cfg["layer_norm_eps"]
    heads = cfg["num_attention_heads"]

    def ln(x, p):
        mu = x.mean(-1, keepdims=True)
        var = ((x - mu) ** 2).mean(-1, keepdims=True)
        return (x - mu) / np.sqrt(var + eps) * w[p + ".weight"] + w[p + ".bias"]

    def lin(x, p):
        return x @ w[p + ".weight"].T + w[p + ".bias"]

    erf = np.vectorize(math.erf)
    n = len(ids)
    x = w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][:n]
    x = ln(x + w["embeddings.token_type_embeddings.weight"][0], "embeddings.LayerNorm")
    states = load_file(states_path)
    worst = 0.0
    for l in range(cfg["num_hidden_layers"]):
        p = f"encoder.layer.{l}."
        q, k, v = (lin(x, p + f"attention.self.{t}") for t in ("query", "key", "value"))
        hd = q.shape[-1] // heads
        split = lambda t: t.reshape(n, heads, hd).transpose(1, 0, 2)
        s = split(q) @ split(k).transpose(0, 2, 1) / math.sqrt(hd)
        a = np.exp(s - s.max(-1, keepdims=True))
        a /= a.sum(-1, keepdims=True)
        ctx = (a @ split(v)).transpose(1, 0, 2).reshape(n, -1)
        attn = lin(ctx, p + "attention.output.dense")
        x = ln(attn + x, p + "attention.output.LayerNorm")
        h = lin(x, p + "intermediate.dense")
        h = 0.5 * h * (1 + erf(h / math.sqrt(2)))
        x = ln(lin(h, p + "output.dense") + x, p + "output.LayerNorm")
        for name, want in ((f"attn_out.{l}", attn), (f"hidden.{l}", x)):
            got = states[name].reshape(-1, want.shape[-1]).astype(np.float64)
            rel = np.linalg.norm(got - want) / np.linalg.norm(want)
            worst = max(worst, rel)
            print(f"{name:<12} rel {rel:.3e}")
    print(f"worst relative error {worst:.3e}")
    sys.exit(0 if worst < 1e-4 else 1)


if __name__ == "__main__":
    main(*sys.argv[1:4])
