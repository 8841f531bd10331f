"""Independent Python references the tests compare the Rust core against: the example
shard layout of docs/FORMATS.md read with numpy alone, and batch assembly on top of it
(formerly ``wwm_distill.data.Shard`` and ``Examples.batch``)."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

IDX_MAGIC = b"WWMEXIDX"
IDX_HEADER_BYTES = 64


class ReferenceShard:
    """One ``examples-NNNNN.{bin,idx}`` pair (format version 1 or 2) read with
    ``numpy.memmap``, per FORMATS.md."""

    def __init__(self, directory: Path, info: dict):
        self.name = info["name"]
        self.info = info
        idx_path = directory / f"{self.name}.idx"
        bin_path = directory / f"{self.name}.bin"
        header = np.fromfile(idx_path, dtype=np.uint8, count=IDX_HEADER_BYTES)
        assert header.size == IDX_HEADER_BYTES and header[:8].tobytes() == IDX_MAGIC
        version, token_bytes = (int(x) for x in header[8:16].view("<u4"))
        n, n_tokens, n_masked, bin_bytes = (int(x) for x in header[16:48].view("<u8"))
        self.cls_id, self.sep_id = (int(x) for x in header[48:56].view("<u4"))
        assert version in (1, 2) and token_bytes in (2, 4)
        columns = ("file", "piece", "window", "dupe") + (("window_length",) if version == 2 else ())
        want_idx = IDX_HEADER_BYTES + 8 * (3 * n + 2 - (version == 2)) + 4 * len(columns) * n
        assert os.path.getsize(idx_path) == want_idx
        assert os.path.getsize(bin_path) == bin_bytes
        self.version, self.n = version, n
        dtype = np.dtype("<u2") if token_bytes == 2 else np.dtype("<u4")
        idx = np.memmap(idx_path, dtype=np.uint8, mode="r")
        binf = np.memmap(bin_path, dtype=np.uint8, mode="r") if bin_bytes else np.zeros(0, np.uint8)
        o = IDX_HEADER_BYTES

        def take(buf, offset, count, dt):
            dt = np.dtype(dt)
            return buf[offset : offset + count * dt.itemsize].view(dt), offset + count * dt.itemsize

        self.token_index, o = take(idx, o, n + (version == 1), "<u8")
        self.mask_offsets, o = take(idx, o, n + 1, "<u8")
        self.line, o = take(idx, o, n, "<u8")
        for name in columns:
            column, o = take(idx, o, n, "<u4")
            setattr(self, name, column)
        b = 0
        self.tokens, b = take(binf, b, n_tokens, dtype)
        self.masked_ids, b = take(binf, b, n_masked, dtype)
        self.positions, b = take(binf, b, n_masked, "<u2")
        if version == 2:
            self.lengths = (self.window_length + 2).astype(np.uint32)
        else:
            self.lengths = np.diff(self.token_index).astype(np.uint32)

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict:
        m0, m1 = self.mask_offsets[i], self.mask_offsets[i + 1]
        positions = self.positions[m0:m1]
        if self.version == 1:
            t0, t1 = self.token_index[i], self.token_index[i + 1]
            input_ids, labels = self.tokens[t0:t1].copy(), self.masked_ids[m0:m1].copy()
        else:
            t0 = int(self.token_index[i])
            window = self.tokens[t0 : t0 + int(self.window_length[i])]
            input_ids = np.concatenate(
                [
                    np.array([self.cls_id], window.dtype),
                    window,
                    np.array([self.sep_id], window.dtype),
                ]
            )
            labels = input_ids[positions.astype(np.int64)].copy()
            input_ids[positions.astype(np.int64)] = self.masked_ids[m0:m1]
        return {
            "input_ids": input_ids,
            "masked_positions": positions,
            "masked_labels": labels,
            "file": int(self.file[i]),
            "line": int(self.line[i]),
            "piece": int(self.piece[i]),
            "window": int(self.window[i]),
            "dupe": int(self.dupe[i]),
        }


def write_version_1(directory: Path) -> None:
    """Rewrites an examples directory's shards in format version 1 (every example's masked
    input_ids, then labels, then positions), per FORMATS.md, and updates the manifest's
    sizes and checksums: what distill-prep wrote before version 2."""
    path = directory / "manifest.json"
    manifest = json.loads(path.read_text(encoding="utf-8"))
    for info in manifest["shards"]:
        shard = ReferenceShard(directory, info)
        rows = [shard[i] for i in range(len(shard))]
        dtype = shard.tokens.dtype
        tokens = np.concatenate([r["input_ids"] for r in rows]).astype(dtype)
        labels = np.concatenate([r["masked_labels"] for r in rows]).astype(dtype)
        positions = np.concatenate([r["masked_positions"] for r in rows]).astype("<u2")
        offsets = np.cumsum([0] + [len(r["input_ids"]) for r in rows]).astype("<u8")
        mask_offsets = np.asarray(shard.mask_offsets, dtype="<u8")
        body = tokens.tobytes() + labels.tobytes() + positions.tobytes()
        header = bytearray(IDX_HEADER_BYTES)
        header[:8] = IDX_MAGIC
        header[8:16] = np.array([1, dtype.itemsize], "<u4").tobytes()
        counts = [len(rows), tokens.size, labels.size, len(body)]
        header[16:48] = np.array(counts, "<u8").tobytes()
        idx = bytes(header) + offsets.tobytes() + mask_offsets.tobytes()
        idx += np.asarray(shard.line, "<u8").tobytes()
        for name in ("file", "piece", "window", "dupe"):
            idx += np.asarray(getattr(shard, name), "<u4").tobytes()
        del rows, shard
        for suffix, data in ((".bin", body), (".idx", idx)):
            (directory / f"{info['name']}{suffix}").write_bytes(data)
            info[suffix[1:] + "_bytes"] = len(data)
            info[suffix[1:] + "_sha256"] = hashlib.sha256(data).hexdigest()
        info["tokens"] = int(tokens.size)
    path.write_text(json.dumps(manifest, ensure_ascii=False, indent=2), encoding="utf-8")


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
