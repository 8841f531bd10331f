"""The teacher cache's reader: ``TeacherCache`` over the shards ``distill-teacher`` writes,
aligned with the examples it was made from. The directory (manifest, shard names, the
gather across shards) is the Rust core's (``_core.TeacherCache``); this class only turns
its errors into ``CacheError``."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from wwm_distill import _core
from wwm_distill.data import Examples
from wwm_distill.errors import CacheError


class TeacherCache:
    """The cache written by ``distill-teacher``, aligned with its examples: ``gather``
    returns padded numpy arrays for any list of global example indices."""

    def __init__(self, path: str | os.PathLike, examples: Examples | None = None):
        self.path = Path(path)
        try:
            self._core = _core.TeacherCache(self.path, None if examples is None else examples.path)
        except _core.WwmDistillError as e:
            raise CacheError(str(e)) from None
        self.manifest = self._core.manifest

    @property
    def readers(self) -> list[_core.CacheReader]:
        """One reader per shard, in example order."""
        n = len(self.manifest["shards"])
        return [_core.CacheReader(_core.cache_shard_path(self.path, k)) for k in range(n)]

    def check_examples(self, examples: Examples) -> None:
        try:
            self._core.check_examples(examples.path)
        except _core.WwmDistillError as e:
            raise CacheError(str(e)) from None

    def __len__(self) -> int:
        return len(self._core)

    def gather(self, indices) -> dict[str, np.ndarray]:
        """Positions of the examples (in order): ids / logp ``[N, k]`` padded to the largest
        k of the request (logp −inf), tail ``[N]``, entry counts ``[N]``."""
        return self._core.gather(np.asarray(indices, dtype=np.uint64).tolist())
