"""Independent Python references the tests compare the Rust core against: the example
shard layout of docs/FORMATS.md read with numpy alone, and batch assembly on top of it
(formerly ``wwm_distill.data.Shard`` and ``Examples.batch``)."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

IDX_MAGIC = b"WWMEXIDX"
IDX_HEADER_BYTES = 64


class ReferenceShard:
    """One ``examples-NNNNN.{bin,idx}`` pair read with ``numpy.memmap``, per FORMATS.md."""

    def __init__(self, directory: Path, info: dict):
        self.name = info["name"]
        self.info = info
        idx_path = directory / f"{self.name}.idx"
        bin_path = directory / f"{self.name}.bin"
        header = np.fromfile(idx_path, dtype=np.uint8, count=IDX_HEADER_BYTES)
        assert header.size == IDX_HEADER_BYTES and header[:8].tobytes() == IDX_MAGIC
        version, token_bytes = header[8:16].view("<u4")
        n, n_tokens, n_masked, bin_bytes = (int(x) for x in header[16:48].view("<u8"))
        assert version == 1 and token_bytes in (2, 4)
        assert os.path.getsize(idx_path) == IDX_HEADER_BYTES + 16 + 40 * n
        assert os.path.getsize(bin_path) == bin_bytes
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


class ReferenceExamples:
    """An examples directory read by :class:`ReferenceShard`, with Python batch assembly."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.manifest = json.loads((self.path / "manifest.json").read_text(encoding="utf-8"))
        self.shards = [ReferenceShard(self.path, s) for s in self.manifest["shards"]]
        self.starts = np.cumsum([0] + [len(s) for s in self.shards])
        self.pad_id = self.manifest["vocab"]["pad_id"]

    def __len__(self) -> int:
        return int(self.starts[-1])

    def __getitem__(self, i: int) -> dict:
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(f"example {i} out of range ({len(self)} examples)")
        k = int(np.searchsorted(self.starts, i, side="right")) - 1
        return self.shards[k][i - int(self.starts[k])]

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


class ReferenceTeacherCache:
    """A teacher-cache directory read shard by shard with ``_core.CacheReader`` and
    gathered across shards in numpy (formerly ``wwm_distill.teacher.TeacherCache``)."""

    def __init__(self, path: str | os.PathLike):
        from wwm_distill import _core

        self.path = Path(path)
        self.manifest = json.loads((self.path / "manifest.json").read_text(encoding="utf-8"))
        self.readers = [
            _core.CacheReader(str(self.path / f"{s['name']}.tkc")) for s in self.manifest["shards"]
        ]
        self.starts = np.cumsum([0] + [r.n_examples for r in self.readers])

    def __len__(self) -> int:
        return int(self.starts[-1])

    def gather(self, indices) -> dict[str, np.ndarray]:
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
