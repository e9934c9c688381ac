"""llama.cpp (through llama-cpp-python) on the same GGUF model and text as ceiling: its token
ids, and its mean next-token loss on windows of those ids. A check of ceiling's GGUF
tokenizer, dequantisation and Q/K row order that shares no code with ceiling.

    ceiling tokenize --model FILE.gguf --text doc.txt > doc.ids
    python3 tools/crosscheck_llamacpp.py FILE.gguf doc.txt doc.ids 256 0,10000,30000
    ceiling hidden --model FILE.gguf --tokens windows.json --out states.safetensors

The script says whether llama.cpp's ids equal ceiling's, writes the windows (n tokens from
each start) to windows.json, and prints llama.cpp's mean loss over them; `ceiling hidden`
prints its own for the same windows. Needs numpy and llama-cpp-python (pip install numpy
llama-cpp-python; it builds llama.cpp, a few minutes).
"""
import json
import sys

import numpy as np
from llama_cpp import Llama


def main(model, text_path, ids_path, n, starts):
    text = open(text_path, encoding="utf-8").read()
    ours = [int(x) for x in open(ids_path).read().split()]
    vocab = Llama(model_path=model, vocab_only=True, verbose=False)
    theirs = vocab.tokenize(text.encode("utf-8"), add_bos=False, special=True)
    same = theirs == ours
    print(f"token ids: {len(ours)} from ceiling, {len(theirs)} from llama.cpp, identical: {same}")
    llm = Llama(model_path=model, n_ctx=n, logits_all=True, verbose=False)
    windows = [ours[s : s + n] for s in starts]
    json.dump(windows, open("windows.json", "w"))
    nll = []
    for w in windows:
        llm.reset()
        llm.eval(w)
        logits = np.array(llm.scores[:n], dtype=np.float64)
        top = logits.max(axis=1, keepdims=True)
        lse = top[:, 0] + np.log(np.exp(logits - top).sum(axis=1))
        nll.append(lse[:-1] - logits[np.arange(n - 1), w[1:]])
    print(f"llama.cpp mean next-token loss over {sum(map(len, nll))} predictions: "
          f"{np.concatenate(nll).mean():.4f} nats")
    return 0 if same else 1


if __name__ == "__main__":
    model, text, ids, n, starts = sys.argv[1:6]
    sys.exit(main(model, text, ids, int(n), [int(s) for s in starts.split(",")]))
