"""Helpers shared by the bench scripts (they run as scripts, so benches/ is on sys.path).

Importing this module also puts the repository's ``scripts/`` on sys.path, for the data
they measure on: ``import corpus`` (``scripts/corpus.py``) after ``import common``."""

from __future__ import annotations

import platform
import shutil
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"
if str(SCRIPTS) not in sys.path:
    sys.path.insert(0, str(SCRIPTS))


def version(dist: str) -> str:
    """The installed version of a distribution, or "not installed"."""
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def bert(vocab: int, layers: int, hidden: int, heads: int, max_len: int):
    """A randomly initialised ``BertForMaskedLM`` (intermediate size 4 x hidden)."""
    import transformers

    cfg = transformers.BertConfig(
        vocab_size=vocab,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=4 * hidden,
        max_position_embeddings=max_len,
    )
    return transformers.BertForMaskedLM(cfg)


def find_distill_prep(explicit: str | None = None) -> str | None:
    """The ``distill-prep`` executable: `explicit`, else the one beside this Python, else
    PATH's (None if there is none)."""
    if explicit:
        return explicit
    beside = Path(sys.executable).parent / "distill-prep"
    return str(beside) if beside.is_file() else shutil.which("distill-prep")


@dataclass(frozen=True)
class BenchData:
    """What the prep and cache benches measure on: BERT-Chinese's vocabulary, the People's
    Daily corpus, and ``dir`` (``<cache>/bench``) for resized copies and scratch."""

    vocab: Path
    source: Path
    dir: Path

    def sized(self, mb: float) -> Path:
        """People's Daily resized to ``mb`` MB (made once, then reused)."""
        import corpus  # scripts/corpus.py

        return corpus.make_corpus_of_size(self.source, self.dir / f"peoples_daily_{mb:g}mb.txt", mb)


def bench_data(cache: Path | None) -> BenchData:
    """Fetches the vocabulary and corpus into ``cache`` (default: $WWM_CACHE or
    <repo>/.cache) and makes its ``bench/`` directory."""
    import corpus  # scripts/corpus.py

    cache = cache or corpus.default_cache()
    data = BenchData(
        vocab=corpus.fetch_vocab(cache),
        source=corpus.fetch_corpus(cache, "peoples_daily"),
        dir=cache / "bench",
    )
    data.dir.mkdir(parents=True, exist_ok=True)
    return data
