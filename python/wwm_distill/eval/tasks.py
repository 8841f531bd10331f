"""The tasks ``distill-eval`` knows: family, label set and the names of their split files
(``mlm`` scores the masked-LM head on ``distill-prep`` examples instead of fine-tuning)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

PAIR, SINGLE, SPAN, MLM = "pair", "single", "span", "mlm"
NLI_LABELS = ("contradiction", "entailment", "neutral")


@dataclass(frozen=True)
class Task:
    name: str
    family: str  # pair | single | span | mlm
    labels: tuple[str, ...] | None = None  # None: discovered from the train split
    aliases: dict[str, str] = field(default_factory=dict)  # label spellings -> label
    ignore: tuple[str, ...] = ()  # labels whose records are skipped (no gold label)

    @property
    def metric(self) -> str:
        """The metric the summary table leads with."""
        return {SPAN: "average", MLM: "top1"}.get(self.family, "accuracy")


TASKS = {
    t.name: t
    for t in (
        Task("lcqmc", PAIR, ("0", "1")),
        Task("afqmc", PAIR, ("0", "1")),
        Task("cmnli", PAIR, NLI_LABELS, ignore=("-",)),
        Task("xnli", PAIR, NLI_LABELS, {"contradictory": "contradiction"}, ignore=("-",)),
        Task("tnews", SINGLE),
        Task("chnsenticorp", SINGLE, ("0", "1")),
        Task("thucnews", SINGLE),
        Task("cmrc2018", SPAN),
        Task("drcd", SPAN),
        Task("mlm", MLM),  # masked-LM scores on distill-prep examples, no fine-tuning
    )
}

# A split file is any .json/.jsonl/.tsv/.csv/.txt whose name has one of these words, split
# on '.', '_' or '-': train.json, LCQMC_dev.csv, cmrc2018_dev.json, DRCD_training.json,
# cnews.val.txt.
SPLIT_WORDS = {"train": ("train", "training"), "dev": ("dev", "val", "validation")}
EXTENSIONS = (".json", ".jsonl", ".tsv", ".csv", ".txt")


def find_split(data_dir: str | Path, split: str) -> Path:
    """The one file of ``split`` ('train' or 'dev') in ``data_dir``; ValueError otherwise."""
    d = Path(data_dir)
    if not d.is_dir():
        raise ValueError(f"{d}: not a directory")
    words = SPLIT_WORDS[split]
    hits = [
        p
        for p in sorted(d.iterdir())
        if p.is_file()
        and p.suffix.lower() in EXTENSIONS
        and any(w in words for w in re.split(r"[._-]", p.stem.lower()))
    ]
    flag = "--train" if split == "train" else "--eval"
    if not hits:
        names = ", ".join(f"*{w}*" for w in words)
        raise ValueError(f"{d}: no {split} split (looked for {names}); name it with {flag} FILE")
    if len(hits) > 1:
        names = ", ".join(p.name for p in hits)
        raise ValueError(f"{d}: several {split} splits ({names}); name one with {flag} FILE")
    return hits[0]
