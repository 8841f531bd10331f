"""Make a small Chinese teacher for `make demo`: no weights can be downloaded here, so a
4-layer BERT is trained with plain masked-LM on the demo examples for a few minutes.

    python benches/demo_teacher.py --examples EX_DIR --vocab VOCAB --out DIR [--steps 400]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
import transformers
from wwm_distill import teacher
from wwm_distill.data import Examples


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--examples", required=True)
    p.add_argument("--vocab", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--steps", type=int, default=400)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--hidden", type=int, default=256)
    a = p.parse_args()
    out = Path(a.out)
    settings = {"steps": a.steps, "layers": a.layers, "hidden": a.hidden}
    record = out / "demo_teacher.json"
    if record.is_file() and json.loads(record.read_text()) == settings:
        print(f"{out}: already trained")
        return
    ex = Examples(a.examples)
    torch.manual_seed(0)
    cfg = transformers.BertConfig(
        vocab_size=ex.manifest["vocab"]["size"],
        hidden_size=a.hidden,
        num_hidden_layers=a.layers,
        num_attention_heads=max(1, a.hidden // 64),
        intermediate_size=4 * a.hidden,
        max_position_embeddings=512,
    )
    model = transformers.BertForMaskedLM(cfg)
    loss = teacher.train_mlm(model, ex, steps=a.steps, lr=1e-3, batch_size=32)
    chk = teacher.check_head(model, ex)
    model.save_pretrained(out)
    (out / "vocab.txt").write_bytes(Path(a.vocab).read_bytes())
    record.write_text(json.dumps(settings))
    print(
        f"teacher saved to {out}: final MLM loss {loss:.3f}, held-out top-1 accuracy "
        f"{100 * chk.accuracy:.1f} % (most frequent token {100 * chk.baseline:.1f} %)"
    )


if __name__ == "__main__":
    main()
