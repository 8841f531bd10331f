"""The teacher cache's reader: ``TeacherCache`` over the shards ``distill-teacher`` writes
(``_core.CacheReader``), aligned with the examples it was made from."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

from wwm_distill import _core
from wwm_distill.data import Examples, read_manifest
from wwm_distill.errors import CacheError

CACHE_FORMAT = "wwm-distill/teacher"
CACHE_VERSION = 1


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class TeacherCache:
    """The cache written by ``distill-teacher``, aligned with its examples: ``gather``
    returns padded numpy arrays for any list of global example indices."""

    def __init__(self, path: str | os.PathLike, examples: Examples | None = None):
        self.path = Path(path)
        file = self.path / "manifest.json"
        try:
            self.manifest = json.loads(file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise CacheError(f"{file}: no teacher cache manifest") from None
        if (self.manifest.get("format"), self.manifest.get("version")) != (
            CACHE_FORMAT,
            CACHE_VERSION,
        ):
            raise CacheError(f"{file}: not a teacher cache of version {CACHE_VERSION}")
        self.readers = [
            _core.CacheReader(str(self.path / f"{s['name']}.tkc")) for s in self.manifest["shards"]
        ]
        self.starts = np.cumsum([0] + [r.n_examples for r in self.readers])
        if examples is not None:
            self.check_examples(examples)

    def check_examples(self, examples: Examples) -> None:
        want = file_sha256(examples.path / "manifest.json")
        if want != self.manifest["examples"]["manifest_sha256"]:
            raise CacheError(f"{self.path} was made from other examples than {examples.path}")
        read_manifest(examples.path)

    def __len__(self) -> int:
        return int(self.starts[-1])

    def gather(self, indices) -> dict[str, np.ndarray]:
        """Positions of the examples (in order): ids / logp ``[N, k]`` padded to the largest
        k of the request (logp −inf), tail ``[N]``, entry counts ``[N]``."""
        indices = np.asarray(indices, dtype=np.int64)
        shard = np.searchsorted(self.starts, indices, side="right") - 1
        parts = []
        # consecutive runs of the same shard keep the request's order
        cuts = np.flatnonzero(np.diff(shard)) + 1
        for run in np.split(np.arange(indices.size), cuts):
            if run.size == 0:
                continue
            k = int(shard[run[0]])
            local = (indices[run] - self.starts[k]).astype(np.uint64)
            parts.append(self.readers[k].gather(local))
        width = max(p[0].shape[1] for p in parts)

        def pad(a, value):
            return np.pad(a, ((0, 0), (0, width - a.shape[1])), constant_values=value)

        return {
            "ids": np.concatenate([pad(p[0], 0) for p in parts]),
            "logp": np.concatenate([pad(p[1], -np.inf) for p in parts]),
            "tail": np.concatenate([p[2] for p in parts]),
            "counts": np.concatenate([p[3] for p in parts]),
        }
