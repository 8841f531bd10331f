"""Example shards: running ``distill-prep`` and reading its output.

Both are the Rust core's (``_core.prep``, ``_core.Examples``): the shard format
(``docs/FORMATS.md``) is read in one place, and every array handed out is a read-only
numpy view of the memory-mapped shard (no copies until a batch is padded).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterable, Sequence

from wwm_distill import _core

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    import numpy as np

# numpy and pathlib are imported where ``Examples`` uses them: a ``distill-prep`` process
# never loads numpy (OpenBLAS's idle worker threads cost 5-10 % of a one-worker run's
# CPU), and its start-up stays short (typing and pathlib: ~25 ms of imports).


def prepare(
    inputs: Iterable[str | os.PathLike],
    out: str | os.PathLike,
    vocab: str | os.PathLike,
    *,
    progress: bool = True,
    **options,
) -> dict:
    """Run the prep pipeline (the options are ``_core.PrepConfig``'s keyword arguments,
    ``distill-prep --help`` with ``_`` for ``-``). Returns the manifest. Ctrl-C stops the
    Rust workers cleanly; a rerun with the same arguments resumes."""
    try:
        config = _core.PrepConfig([os.fspath(p) for p in inputs], out, vocab, **options)
    except (TypeError, OverflowError) as e:
        raise _core.WwmDistillError(f"bad prep configuration: {e}") from None
    counters = _core.PrepProgress()
    return _run_with_progress(lambda: _core.prep(config, counters), counters, progress)


def merge(out: str | os.PathLike, dirs: Sequence[str | os.PathLike], overwrite=False) -> dict:
    """Combine the outputs of several ``--num-shards K --shard-index I`` runs."""
    return _core.merge(out, list(dirs), overwrite)


def _run_with_progress(job, counters: _core.PrepProgress, show: bool) -> dict:
    """Runs ``job`` (which releases the GIL) in a thread while a tqdm bar polls
    ``counters``. tqdm is imported after the job has started, and only to show a bar
    (its import takes ~60 ms, a quarter of a small run's start-up)."""
    result: dict = {}

    def work():
        try:
            result["value"] = job()
        except BaseException as e:  # handed to the calling thread
            result["error"] = e

    thread = threading.Thread(target=work, name="wwm-prep", daemon=True)
    thread.start()
    if show:
        from tqdm import tqdm
    bar = None  # created once the job has checked its arguments and sized its inputs
    start = time.monotonic()
    try:
        while thread.is_alive():
            thread.join(0.25)
            if bar is None:
                if not (show and counters.input_bytes_total):
                    continue
                bar = tqdm(
                    total=counters.input_bytes_total,
                    unit="B",
                    unit_scale=True,
                    unit_divisor=1024,
                    desc="prep",
                    dynamic_ncols=True,
                )
            bar.update(counters.input_bytes_read - bar.n)
            elapsed = max(time.monotonic() - start, 1e-9)
            bar.set_postfix(
                docs=counters.documents,
                docs_s=f"{counters.documents / elapsed:.0f}",
                examples=counters.examples,
                refresh=False,
            )
    except KeyboardInterrupt:
        counters.cancel()
        thread.join()
        raise
    finally:
        if bar is not None:
            bar.close()
    if "error" in result:
        raise result["error"]
    return result["value"]


def read_manifest(path: str | os.PathLike) -> dict:
    """The checked manifest of an examples directory (or of its ``manifest.json``)."""
    from pathlib import Path

    path = Path(path)
    named_file = path.name == "manifest.json" and not path.is_dir()
    return _core.read_examples_manifest(path.parent if named_file else path)


class Examples:
    """The examples written by ``distill-prep``: ``len()``, ``[i]`` → dict of numpy arrays,
    ``shards`` for raw zero-copy arrays (``_core.ExamplesShard``), ``verify()`` for the
    checksums. A thin layer over ``_core.Examples``."""

    def __init__(self, path: str | os.PathLike, verify: bool = False):
        from pathlib import Path

        self.path = Path(path)
        self._core = _core.Examples(self.path, verify)
        self.manifest = self._core.manifest
        self.shards = self._core.shards
        import numpy as np

        self.starts = np.asarray(self._core.starts, dtype=np.int64)
        self.pad_id = self._core.pad_id
        self._batches: _core.Batches | None = None

    def __len__(self) -> int:
        return len(self._core)

    def lengths(self) -> np.ndarray:
        """Tokens of every example (int64, global index order), with [CLS] and [SEP]."""
        import numpy as np

        return np.concatenate([s.lengths for s in self.shards]).astype(np.int64)

    def locate(self, i: int) -> tuple[int, int]:
        """Global example index → (shard, index in shard)."""
        return self._core.locate(i)

    def __getitem__(self, i: int) -> dict:
        return self._core[i]

    def batch(self, indices: Sequence[int], multiple_of: int = 8) -> dict:
        """Padded int64 arrays for a batch (``_core.Batches.assemble``): input_ids /
        attention_mask ``[B, L]`` (L the longest, rounded up to ``multiple_of``), flat
        masked positions with their batch row, labels."""
        if self._batches is None:
            self._batches = _core.Batches(self.path)
        import numpy as np

        idx = np.asarray(indices, dtype=np.int64)
        idx = np.where(idx < 0, idx + len(self), idx).astype(np.uint64)
        return self._batches.assemble(idx, multiple_of)

    def verify(self) -> None:
        """Checks every shard file against the sha256 in the manifest."""
        self._core.verify()
