"""``distill-plot RUN_DIR``: PNG curves of the training loss and the eval metrics."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from wwm_distill.cli import fail

PROG = "distill-plot"


def plot(run: Path) -> list[Path]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        fail(PROG, "matplotlib is needed: pip install matplotlib")
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


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__)
    p.add_argument("run", help="distill-train run directory")
    a = p.parse_args(sys.argv[1:] if argv is None else argv)
    run = Path(a.run)
    if not (run / "metrics.jsonl").is_file():
        fail(PROG, f"{run}: no metrics.jsonl (not a distill-train run?)")
    for path in plot(run):
        print(path)


if __name__ == "__main__":
    main()
