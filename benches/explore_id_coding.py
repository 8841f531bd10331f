"""How small could a top-k cache get? Alternative block codings measured on a real cache.

Ids were most of a format-1 ``.tkc`` file (bench_cache: 156.5 of 195.7 B/position at
k=128). This reads a cache shard (any format: the reader decodes both) and re-encodes its
blocks of ``--block-examples`` examples in Python, each alternative as whole block
payloads (k, tail, ids, values) compressed with zstd like the writer does, so the bytes
per position are comparable with the file's:

* format 1: ids as u16 byte planes in probability order, values as varint deltas;
* rank remap: ids replaced by their frequency rank (table from the first N examples, or
  from all of them, stored once per file and counted here), byte planes, order kept;
* rank remap with a byte code instead of planes: one byte per entry (ranks below 128 as
  themselves, else 128 + rank's high part) plus a stream of low bytes;
* ids sorted per position, gaps as byte planes, plus the permutation back to probability
  order (u8) so that the order is restored;
* the chosen layout at other zstd levels, and with ids and values in two zstd frames.

It also prints the order-0 entropy of the ids and of the ranks (the floor of any coder
without context). Exploration, not a format: nothing here is used by the package; the
decode speed of the chosen coding is measured by bench_cache.py.

    python benches/explore_id_coding.py CACHE_DIR_OR_TKC [--examples 1000]
"""

from __future__ import annotations

import argparse
import glob
import time
from pathlib import Path

import numpy as np
import zstandard
from wwm_distill import _core


def planes(a: np.ndarray, width: int = 2) -> bytes:
    a = np.asarray(a, np.uint32).ravel()
    return b"".join(((a >> (8 * i)) & 0xFF).astype(np.uint8).tobytes() for i in range(width))


def varints(v: np.ndarray) -> bytes:
    """LEB128 of non-negative ints, in order (vectorised)."""
    v = np.asarray(v, np.uint64).ravel()
    n_bytes = np.ones(v.size, np.int64)
    for b in range(1, 5):
        n_bytes += v >= (1 << (7 * b))
    out = np.zeros(int(n_bytes.sum()), np.uint8)
    start = np.concatenate([[0], np.cumsum(n_bytes)[:-1]])
    for b in range(5):
        has = n_bytes > b
        byte = (v[has] >> np.uint64(7 * b)) & np.uint64(0x7F)
        more = n_bytes[has] > b + 1
        out[start[has] + b] = byte.astype(np.uint8) | (more.astype(np.uint8) << 7)
    return out.tobytes()


def byte_code(r: np.ndarray, c: int = 128) -> bytes:
    """Ranks < c: one byte; else the byte c + (r - c) >> 8 and a low byte in a second
    stream (ranks < c + (256 - c) * 256)."""
    r = np.asarray(r, np.int64).ravel()
    if r.max(initial=0) >= c + (256 - c) * 256:
        raise ValueError("rank too large for the byte code")
    big = r >= c
    s = np.where(big, c + ((r - c) >> 8), r).astype(np.uint8)
    return s.tobytes() + ((r[big] - c) & 0xFF).astype(np.uint8).tobytes()


def rank_of(ids: np.ndarray, k: np.ndarray, min_count: int = 1) -> tuple[np.ndarray, int]:
    """id -> frequency rank over the valid entries of ``ids``: ids seen at least
    ``min_count`` times by decreasing count (ties by id), then all others by id; and the
    number of ids in the table."""
    valid = np.arange(ids.shape[1])[None, :] < k[:, None]
    freq = np.bincount(ids[valid].ravel(), minlength=65536).astype(np.int64)
    freq[freq < min_count] = 0
    order = np.lexsort((np.arange(freq.size), -freq))
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    return rank, int((freq > 0).sum())


def entropy_bytes(x: np.ndarray) -> float:
    _, c = np.unique(x, return_counts=True)
    p = c / c.sum()
    return float(-(p * np.log2(p)).sum() * x.size / 8)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("cache", help="a teacher cache directory or .tkc (top-k or top-p, 2-byte ids)")
    p.add_argument("--examples", type=int, default=1000)
    p.add_argument("--block-examples", type=int, default=256)
    p.add_argument("--table-examples", type=int, default=256, help="examples the table sees")
    a = p.parse_args()
    path = a.cache if a.cache.endswith(".tkc") else sorted(glob.glob(f"{a.cache}/teacher-*.tkc"))[0]
    reader = _core.CacheReader(path)
    n = min(reader.n_examples, a.examples)
    ex = np.arange(n, dtype=np.uint64)
    ppe = reader.positions_of(ex).astype(np.int64)
    ids, logp, tail, k = reader.gather(ex)
    step = reader.step
    n_pos, width = ids.shape
    valid = np.arange(width)[None, :] < k[:, None]
    q = np.where(valid, np.round(-logp / step), 0).astype(np.int64)
    dq = np.diff(np.concatenate([np.zeros((n_pos, 1), np.int64), q], 1), axis=1)
    dq[:, 0] = q[:, 0]
    pos_end = np.cumsum(ppe)
    blocks = []  # (position range) per block
    for e0 in range(0, n, a.block_examples):
        e1 = min(e0 + a.block_examples, n)
        p0 = int(pos_end[e0 - 1]) if e0 else 0
        blocks.append((p0, int(pos_end[e1 - 1]) if e1 else 0))
    pos_table = int(pos_end[min(a.table_examples, n) - 1])
    rank_first, n_first = rank_of(ids[:pos_table], k[:pos_table])
    rank_all, n_all = rank_of(ids, k)

    def table_bytes(rank: np.ndarray, n_ids: int, level: int) -> int:
        table = np.argsort(rank)[:n_ids]
        return len(zstandard.ZstdCompressor(level=level).compress(planes(table)))

    def total(ids_part, level=3, split=0, table=0) -> float:
        """split 0: one zstd frame per block; 1: ids and values in two; 2: one frame per
        part (k + tail, each id byte plane, values)."""
        z = zstandard.ZstdCompressor(level=level, write_checksum=True)
        size = table
        for p0, p1 in blocks:
            sel = valid[p0:p1]
            head = k[p0:p1].astype(np.uint16).tobytes() + tail[p0:p1].astype(np.float32).tobytes()
            vals = varints(dq[p0:p1][sel])
            idb = ids_part(p0, p1, sel)
            if split == 2:
                n_e = max(int(sel.sum()), 1)
                parts = [head, *(idb[i : i + n_e] for i in range(0, len(idb), n_e)), vals]
                size += sum(len(z.compress(x)) for x in parts)
            elif split:
                size += len(z.compress(head + idb)) + len(z.compress(vals))
            else:
                size += len(z.compress(head + idb + vals))
        return size / n_pos

    def sorted_gaps(p0, p1, sel):
        rows = ids[p0:p1].astype(np.int64)
        rows = np.where(sel, rows, np.iinfo(np.int64).max)
        by_id = np.argsort(rows, axis=1, kind="stable")
        srt = np.take_along_axis(rows, by_id, 1)
        gaps = np.diff(np.concatenate([np.zeros((len(rows), 1), np.int64), srt], 1), axis=1)
        perm = np.argsort(by_id, axis=1)
        return planes(gaps[sel]) + perm[sel].astype(np.uint8).tobytes()

    first = table_bytes(rank_first, n_first, 3)
    every = table_bytes(rank_all, n_all, 3)
    rows = [
        ("format 1: id byte planes, probability order",
         total(lambda p0, p1, s: planes(ids[p0:p1][s]))),
        (f"rank remap (table of the first {a.table_examples} examples), byte planes",
         total(lambda p0, p1, s: planes(rank_first[ids[p0:p1][s]]), table=first)),
        ("rank remap (table of all examples), byte planes",
         total(lambda p0, p1, s: planes(rank_all[ids[p0:p1][s]]), table=every)),
        (f"rank remap (first {a.table_examples}), byte code (c = 128) + low bytes",
         total(lambda p0, p1, s: byte_code(rank_first[ids[p0:p1][s]]), table=first)),
        (f"rank remap (first {a.table_examples}), byte code (c = 128), a frame per part",
         total(lambda p0, p1, s: byte_code(rank_first[ids[p0:p1][s]]), split=2, table=first)),
        (f"rank remap (first {a.table_examples}), byte code (c = 160) + low bytes",
         total(lambda p0, p1, s: byte_code(rank_first[ids[p0:p1][s]], 160), table=first)),
        (f"rank remap (first {a.table_examples}), byte code (c = 64) + low bytes",
         total(lambda p0, p1, s: byte_code(rank_first[ids[p0:p1][s]], 64), table=first)),
        ("ids sorted per position: gap planes + u8 permutation", total(sorted_gaps)),
        (f"rank remap (first {a.table_examples}), planes, ids and values in two frames",
         total(lambda p0, p1, s: planes(rank_first[ids[p0:p1][s]]), split=1, table=first)),
        (f"rank remap (first {a.table_examples}), planes, a frame per part",
         total(lambda p0, p1, s: planes(rank_first[ids[p0:p1][s]]), split=2, table=first)),
        ("format 1 with a frame per part",
         total(lambda p0, p1, s: planes(ids[p0:p1][s]), split=2)),
    ]  # fmt: skip
    for m in (2, 4, 16):
        rank_m, n_m = rank_of(ids[:pos_table], k[:pos_table], m)
        rows.append(
            (f"rank remap (first {a.table_examples}, ids seen >= {m}x: {n_m:,}), a frame per part",
             total(lambda p0, p1, s: planes(rank_m[ids[p0:p1][s]]),  # noqa: B023
                   split=2, table=table_bytes(rank_m, n_m, 3)))
        )  # fmt: skip
    for c in (64, 128):
        rows.append(
            (f"rank remap (first {a.table_examples}), byte code (c = {c}), a frame per part, "
             "zstd level 6",
             total(lambda p0, p1, s: byte_code(rank_first[ids[p0:p1][s]], c),  # noqa: B023
                   level=6, split=2, table=table_bytes(rank_first, n_first, 6)))
        )  # fmt: skip
    for level in (1, 6, 9):
        rows.append(
            (f"rank remap (first {a.table_examples}), planes, a frame per part, zstd level {level}",
             total(lambda p0, p1, s: planes(rank_first[ids[p0:p1][s]]), level=level, split=2,
                   table=table_bytes(rank_first, n_first, level)))
        )  # fmt: skip
    print(f"{path}: {n} examples, {n_pos:,} positions, {int(k.sum()):,} entries, width "
          f"{width}, blocks of {a.block_examples}, zstd level 3 unless said; the file: "
          f"{Path(path).stat().st_size / n_pos:.1f} B/position (all of it: "
          f"{reader.n_examples} examples)")  # fmt: skip
    print(f"rank table: {n_first:,} ids seen in the first {a.table_examples} examples "
          f"({first / n_pos:.2f} B/position here), {n_all:,} in all")  # fmt: skip
    print(f"order-0 entropy: ids {entropy_bytes(ids[valid]) / n_pos:.1f} B/position, "
          f"values (deltas) {entropy_bytes(dq[valid]) / n_pos:.1f}")  # fmt: skip
    print("| block coding | bytes/position (all of it) |\n| --- | ---: |")
    for name, b in rows:
        print(f"| {name} | {b:.1f} |")
    t, cpu = time.perf_counter(), time.thread_time()
    reader2 = _core.CacheReader(path)
    reader2.gather(ex)
    rate = k.sum() / (time.perf_counter() - t) / 1e6
    rate_cpu = k.sum() / (time.thread_time() - cpu) / 1e6
    print(f"(decode of the file as is: {rate:.0f} M entries/s, {rate_cpu:.0f} per CPU second)")


if __name__ == "__main__":
    main()
