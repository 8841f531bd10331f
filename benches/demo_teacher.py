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
import time
from pathlib import Path

import numpy as np
import small_teacher  # benches/small_teacher.py
from wwm_distill import teacher
from wwm_distill.data import Examples


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
    config = dict(
        vocab_size=ex.manifest["vocab"]["size"],
        hidden_size=a.hidden,
        num_hidden_layers=a.layers,
        num_attention_heads=max(1, a.hidden // 32),
        intermediate_size=4 * a.hidden,
        max_position_embeddings=int(ex.manifest["params"]["max_seq_length"]),
        hidden_dropout_prob=0.0,  # minutes of training: no regularisation needed
        attention_probs_dropout_prob=0.0,
    )
    held_out = teacher.check_sample(ex, teacher.CHECK_EXAMPLES, seed=0)
    train = np.setdiff1d(np.arange(len(ex)), held_out)
    crop_steps = round(a.steps * a.crop_fraction)
    print(
        f"training the demo teacher ({a.layers} layers, hidden {a.hidden}): {a.steps} steps, "
        f"the first {crop_steps} on {a.crop_tokens}-token windows"
    )
    t = time.perf_counter()
    model, loss, chk = small_teacher.train(
        ex, train, config, steps=a.steps, crop_tokens=a.crop_tokens, crop_steps=crop_steps, lr=a.lr
    )
    summary = {
        "settings": settings,
        "train_s": round(time.perf_counter() - t, 1),
        "final_loss": loss,
        "check": chk.as_dict(),
    }
    small_teacher.save(
        model, Path(a.vocab), out, {"demo_teacher.json": json.dumps(summary, indent=2)}
    )
    print(
        f"teacher saved to {out} after {summary['train_s']:.0f} s: final MLM loss {loss:.3f}, "
        f"held-out top-1 accuracy {100 * chk.accuracy:.1f} % (most frequent token "
        f"{100 * chk.baseline:.1f} %)"
    )


if __name__ == "__main__":
    main()
