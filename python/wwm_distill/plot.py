"""Training curves of a ``distill-train`` run: PNG plots of its metrics.jsonl."""

from __future__ import annotations

import json
from pathlib import Path


def plot(run: Path) -> list[Path]:
    """loss.png (training loss and its terms) and eval.png (the eval metrics) in ``run``,
    from its metrics.jsonl; returns the files written."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ImportError("matplotlib is needed: pip install matplotlib") from None
    lines = (run / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
    records = [json.loads(x) for x in lines if x.strip()]
    train = [r for r in records if "loss" in r]
    evals = [r for r in records if "eval_loss" in r]
    written = []
    for name, rows, keys in [
        ("loss.png", train, ["loss", "ce", "cos", "mlm"]),
        ("eval.png", evals, ["eval_loss", "eval_mlm_accuracy", "eval_teacher_top1_agreement"]),
    ]:
        if not rows:
            continue
        keys = [k for k in keys if any(k in r for r in rows)]
        fig, axes = plt.subplots(1, len(keys), figsize=(5 * len(keys), 3.5), squeeze=False)
        axes = axes[0]
        for ax, key in zip(axes, keys):
            pts = [(r["step"], r[key]) for r in rows if key in r]
            ax.plot([p[0] for p in pts], [p[1] for p in pts])
            ax.set_title(key)
            ax.set_xlabel("step")
            ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(run / name, dpi=100)
        plt.close(fig)
        written.append(run / name)
    return written
