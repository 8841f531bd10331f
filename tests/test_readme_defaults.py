"""The defaults README.md states are the ones the code declares (TrainConfig, Mode,
run_teacher, Split, run_mlm): the README restates them, so it must not drift."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("torch")

from wwm_distill.cli import defaults_of  # noqa: E402
from wwm_distill.eval.runner import Split, run_mlm  # noqa: E402
from wwm_distill.teacher import Mode, run_teacher  # noqa: E402
from wwm_distill.trainer import TrainConfig  # noqa: E402

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")


def number(x) -> str:
    return f"{x:g}".replace("e-0", "e-")


def test_readme_states_the_declared_defaults():
    t = TrainConfig("examples", "out")
    run = defaults_of(run_teacher)
    stated = [
        f"[--topk {Mode.k} | --top-p 0.99 --topk {Mode.k} | --sample 64] "
        f"[--batch-size {run['batch_size']}]",
        f"quantised to {Mode.step} nats (error ≤ {Mode.step / 2:g})",
        f"[--batch-size {t.batch_size} --lr {number(t.lr)} --warmup-steps {t.warmup_steps} "
        f"--max-steps {t.max_steps}]",
        f"[--tail {t.tail}|renorm|bucket --temperature {number(t.temperature)} "
        f"--alpha-ce {number(t.alpha_ce)} --alpha-cos {number(t.alpha_cos)} --alpha-mlm 0]",
        f"clipping {t.clip}",
        f"last {t.keep_checkpoints}",
        f"`--test-fraction` (default {Split.test_fraction})",
        f"`--split-seed` (default {Split.seed})",
        f"examples per forward pass ({defaults_of(run_mlm)['batch_size']})",
    ]
    for text in stated:
        assert text in " ".join(README.split()), text
    # without a cache the MLM weight defaults to 1, with one to 0 (the README's --alpha-mlm 0)
    assert t.objective().alpha_mlm == 1.0
    assert TrainConfig("e", "o", cache="c").objective().alpha_mlm == 0.0
