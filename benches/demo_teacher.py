"""Make a small Chinese teacher for `make demo`: no weights can be downloaded here, so a
small BERT is trained with plain masked-LM on the demo examples for a few minutes (CPU),
the first steps on 32-token windows (``small_teacher.Curriculum``: without them it stays on
the unigram plateau for longer than a demo lasts). The examples of the teacher check
(``distill-teacher``'s held-out sample) are kept out of training.

    python benches/demo_teacher.py --examples EX_DIR --vocab VOCAB --out DIR [--steps 1000]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import torch
import transformers
from small_teacher import Curriculum  # benches/small_teacher.py
from wwm_distill import teacher
from wwm_distill.data import Examples

CHECK_EXAMPLES = 256  # distill-teacher's head check sample (seed 0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--examples", required=True)
    p.add_argument("--vocab", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--crop-tokens", type=int, default=32)
    p.add_argument("--crop-fraction", type=float, default=0.75)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--hidden", type=int, default=128)
    a = p.parse_args()
    out = Path(a.out)
    ex = Examples(a.examples)
    settings = {
        **{k: v for k, v in vars(a).items() if k not in ("out", "vocab", "examples")},
        "examples_manifest_sha256": teacher.file_sha256(ex.path / "manifest.json"),
    }
    record = out / "demo_teacher.json"
    if record.is_file() and json.loads(record.read_text())["settings"] == settings:
        print(f"{out}: already trained")
        return
    torch.manual_seed(0)
    cfg = transformers.BertConfig(
        vocab_size=ex.manifest["vocab"]["size"],
        hidden_size=a.hidden,
        num_hidden_layers=a.layers,
        num_attention_heads=max(1, a.hidden // 32),
        intermediate_size=4 * a.hidden,
        max_position_embeddings=int(ex.manifest["params"]["max_seq_length"]),
        hidden_dropout_prob=0.0,  # minutes of training: no regularisation needed
        attention_probs_dropout_prob=0.0,
    )
    model = transformers.BertForMaskedLM(cfg)
    train = np.setdiff1d(np.arange(len(ex)), teacher.check_sample(ex, CHECK_EXAMPLES, seed=0))
    crop_steps = round(a.steps * a.crop_fraction)
    print(
        f"training the demo teacher ({a.layers} layers, hidden {a.hidden}): {a.steps} steps, "
        f"the first {crop_steps} on {a.crop_tokens}-token windows"
    )
    t = time.perf_counter()
    loss = teacher.train_mlm(
        model, Curriculum(ex, train, a.crop_tokens, crop_steps), steps=a.steps, lr=a.lr
    )
    chk = teacher.check_head(model, ex, CHECK_EXAMPLES)
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, safe_serialization=True)
    shutil.copy(a.vocab, tmp / "vocab.txt")
    summary = {
        "settings": settings,
        "train_s": round(time.perf_counter() - t, 1),
        "final_loss": loss,
        "check": chk.as_dict(),
    }
    (tmp / "demo_teacher.json").write_text(json.dumps(summary, indent=2))
    shutil.rmtree(out, ignore_errors=True)
    os.replace(tmp, out)
    print(
        f"teacher saved to {out} after {summary['train_s']:.0f} s: final MLM loss {loss:.3f}, "
        f"held-out top-1 accuracy {100 * chk.accuracy:.1f} % (most frequent token "
        f"{100 * chk.baseline:.1f} %)"
    )


if __name__ == "__main__":
    main()
