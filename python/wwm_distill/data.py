"""Example shards: running ``distill-prep`` and reading its output.

The shard format (``docs/FORMATS.md``) is plain little-endian arrays, so reading is
``numpy.memmap`` and slicing: no copies until a batch is padded.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from wwm_distill import _core

MANIFEST_FORMAT = "wwm-distill/examples"
MANIFEST_VERSION = 1
IDX_MAGIC = b"WWMEXIDX"
IDX_HEADER_BYTES = 64


def prepare(
    inputs: Iterable[str | os.PathLike],
    out: str | os.PathLike,
    vocab: str | os.PathLike,
    *,
    progress: bool = True,
    **options,
) -> dict:
    """Run the prep pipeline (see ``distill-prep --help`` for the options, with ``_``
    for ``-``). Returns the manifest. Ctrl-C stops the Rust workers cleanly; a rerun
    with the same arguments resumes."""
    config = {"inputs": [str(p) for p in inputs], "out": str(out), "vocab": str(vocab)}
    config.update({k: (str(v) if isinstance(v, os.PathLike) else v) for k, v in options.items()})
    counters = _core.PrepProgress()
    return json.loads(
        _run_with_progress(lambda: _core.prep(json.dumps(config), counters), counters, progress)
    )


def merge(out: str | os.PathLike, dirs: Sequence[str | os.PathLike], overwrite=False) -> dict:
    """Combine the outputs of several ``--num-shards K --shard-index I`` runs."""
    return json.loads(_core.merge(str(out), [str(d) for d in dirs], overwrite))


def _run_with_progress(job, counters: _core.PrepProgress, show: bool) -> str:
    """Runs ``job`` (which releases the GIL) in a thread while a tqdm bar polls
    ``counters``."""
    from tqdm import tqdm

    result: dict = {}

    def work():
        try:
            result["value"] = job()
        except BaseException as e:  # handed to the calling thread
            result["error"] = e

    thread = threading.Thread(target=work, name="wwm-prep", daemon=True)
    thread.start()
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
    path = Path(path)
    file = path / "manifest.json" if path.is_dir() else path
    try:
        manifest = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise _core.WwmDistillError(f"{file}: no examples manifest (run distill-prep)") from None
    except json.JSONDecodeError as e:
        raise _core.WwmDistillError(f"{file}: not valid JSON ({e})") from None
    if manifest.get("format") != MANIFEST_FORMAT or manifest.get("version") != MANIFEST_VERSION:
        raise _core.WwmDistillError(
            f"{file}: not an examples manifest of version {MANIFEST_VERSION}"
        )
    return manifest


class Shard:
    """One ``examples-NNNNN.{bin,idx}`` pair, memory-mapped. Every array is a view."""

    def __init__(self, directory: Path, info: dict):
        self.name = info["name"]
        self.info = info
        idx_path = directory / f"{self.name}.idx"
        bin_path = directory / f"{self.name}.bin"
        header = np.fromfile(idx_path, dtype=np.uint8, count=IDX_HEADER_BYTES)
        if header.size < IDX_HEADER_BYTES or header[:8].tobytes() != IDX_MAGIC:
            raise _core.WwmDistillError(f"{idx_path}: not an examples index (bad magic)")
        version, token_bytes = header[8:16].view("<u4")
        n, n_tokens, n_masked, bin_bytes = (int(x) for x in header[16:48].view("<u8"))
        if version != 1 or token_bytes not in (2, 4):
            raise _core.WwmDistillError(f"{idx_path}: unsupported version or token width")
        if os.path.getsize(idx_path) != IDX_HEADER_BYTES + 16 + 40 * n:
            raise _core.WwmDistillError(f"{idx_path}: truncated or oversized index")
        if os.path.getsize(bin_path) != bin_bytes:
            raise _core.WwmDistillError(f"{bin_path}: size does not match its index (truncated?)")
        self.n = n
        dtype = np.dtype("<u2") if token_bytes == 2 else np.dtype("<u4")
        idx = np.memmap(idx_path, dtype=np.uint8, mode="r")
        binf = np.memmap(bin_path, dtype=np.uint8, mode="r") if bin_bytes else np.zeros(0, np.uint8)
        o = IDX_HEADER_BYTES

        def take(buf, offset, count, dt):
            dt = np.dtype(dt)
            return buf[offset : offset + count * dt.itemsize].view(dt), offset + count * dt.itemsize

        self.token_offsets, o = take(idx, o, n + 1, "<u8")
        self.mask_offsets, o = take(idx, o, n + 1, "<u8")
        self.line, o = take(idx, o, n, "<u8")
        self.file, o = take(idx, o, n, "<u4")
        self.piece, o = take(idx, o, n, "<u4")
        self.window, o = take(idx, o, n, "<u4")
        self.dupe, o = take(idx, o, n, "<u4")
        b = 0
        self.tokens, b = take(binf, b, n_tokens, dtype)
        self.labels, b = take(binf, b, n_masked, dtype)
        self.positions, b = take(binf, b, n_masked, "<u2")

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict:
        t0, t1 = self.token_offsets[i], self.token_offsets[i + 1]
        m0, m1 = self.mask_offsets[i], self.mask_offsets[i + 1]
        return {
            "input_ids": self.tokens[t0:t1],
            "masked_positions": self.positions[m0:m1],
            "masked_labels": self.labels[m0:m1],
            "file": int(self.file[i]),
            "line": int(self.line[i]),
            "piece": int(self.piece[i]),
            "window": int(self.window[i]),
            "dupe": int(self.dupe[i]),
        }


class Examples:
    """The examples written by ``distill-prep``: ``len()``, ``[i]`` → dict of numpy views,
    ``shards`` for raw zero-copy arrays, ``batch(indices)`` for padded arrays."""

    def __init__(self, path: str | os.PathLike, verify: bool = False):
        self.path = Path(path)
        self.manifest = read_manifest(self.path)
        self.shards = [Shard(self.path, s) for s in self.manifest["shards"]]
        self.starts = np.cumsum([0] + [len(s) for s in self.shards])
        self.pad_id = self.manifest["vocab"]["pad_id"]
        if verify:
            self.verify()

    def __len__(self) -> int:
        return int(self.starts[-1])

    def locate(self, i: int) -> tuple[int, int]:
        """Global example index → (shard, index in shard)."""
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(f"example {i} out of range ({len(self)} examples)")
        k = int(np.searchsorted(self.starts, i, side="right")) - 1
        return k, i - int(self.starts[k])

    def __getitem__(self, i: int) -> dict:
        k, j = self.locate(i)
        return self.shards[k][j]

    def batch(self, indices: Sequence[int], multiple_of: int = 8) -> dict:
        """Padded arrays for a batch: input_ids / attention_mask ``[B, L]`` (L the longest,
        rounded up to ``multiple_of``), flat masked positions with their batch row, labels."""
        rows = [self[i] for i in indices]
        longest = max(len(r["input_ids"]) for r in rows)
        width = -(-longest // multiple_of) * multiple_of
        ids = np.full((len(rows), width), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(rows), width), dtype=np.int64)
        for b, r in enumerate(rows):
            ids[b, : len(r["input_ids"])] = r["input_ids"]
            mask[b, : len(r["input_ids"])] = 1
        return {
            "input_ids": ids,
            "attention_mask": mask,
            "masked_rows": np.concatenate(
                [np.full(len(r["masked_positions"]), b, np.int64) for b, r in enumerate(rows)]
            ),
            "masked_positions": np.concatenate([r["masked_positions"] for r in rows]).astype(
                np.int64
            ),
            "masked_labels": np.concatenate([r["masked_labels"] for r in rows]).astype(np.int64),
        }

    def verify(self) -> None:
        """Checks every shard file against the sha256 in the manifest."""
        for s in self.manifest["shards"]:
            for ext in ("bin", "idx"):
                file = self.path / f"{s['name']}.{ext}"
                h = hashlib.sha256()
                with open(file, "rb") as f:
                    for block in iter(lambda: f.read(1 << 20), b""):
                        h.update(block)
                if h.hexdigest() != s[f"{ext}_sha256"]:
                    raise _core.WwmDistillError(f"{file}: checksum does not match the manifest")
