"""How small could the ids of a top-k cache get? Alternative codings measured on a real cache.

Ids are most of a ``.tkc`` file's bytes (bench_cache: 156.5 of 195.7 B/position at k=128).
This reads the first examples of a top-k cache shard and sizes, with the same zstd level,
the ids as stored (u16 byte planes in probability order) against: a global frequency-rank
remap of the ids (order kept), and ids sorted per position with gaps (order lost, so the
values would have to be stored in id order, or the permutation kept). Exploration, not a
format: nothing here is used by the package.

    python benches/explore_id_coding.py CACHE_DIR [--examples 2000]
"""

from __future__ import annotations

import argparse
import glob

import numpy as np
import zstandard
from wwm_distill import _core

STEP = 0.019  # the cache's quantisation step (nats)


def planes(a: np.ndarray) -> bytes:
    a = a.astype(np.uint16).ravel()
    return (a & 0xFF).astype(np.uint8).tobytes() + (a >> 8).astype(np.uint8).tobytes()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("cache", help="a teacher cache directory (top-k mode, vocab < 65536)")
    p.add_argument("--examples", type=int, default=2000)
    a = p.parse_args()
    reader = _core.CacheReader(sorted(glob.glob(f"{a.cache}/teacher-*.tkc"))[0])
    n = min(reader.n_examples, a.examples)
    ids, logp, _, counts = reader.gather(np.arange(n, dtype=np.uint64))
    if (counts != ids.shape[1]).any():
        raise SystemExit("needs a top-k cache (every position with k entries)")
    z = zstandard.ZstdCompressor(level=3)
    n_pos, k = ids.shape

    def size(b: bytes) -> float:
        return len(z.compress(b)) / n_pos

    freq = np.bincount(ids.ravel()).astype(float)
    prob = freq[freq > 0] / freq.sum()
    order = np.argsort(-freq, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    by_id = np.argsort(ids, axis=1, kind="stable")
    sorted_ids = np.take_along_axis(ids, by_id, 1)
    gaps = np.diff(np.concatenate([np.zeros((n_pos, 1), ids.dtype), sorted_ids], 1), axis=1)
    q = np.minimum(np.round(-logp / STEP), 65535).astype(np.int64)
    rows = [
        ("order-0 entropy of the ids (the floor of a coder without context)",
         -(prob * np.log2(prob)).sum() * k / 8),
        ("ids as stored: u16 byte planes, probability order", size(planes(ids))),
        ("frequency-rank remap, byte planes, probability order (+ table)",
         size(planes(rank[ids])) + 2 * prob.size / n_pos),
        ("ids sorted per position, gaps as byte planes (order lost)", size(planes(gaps))),
        ("  + values in id order, u16 byte planes", size(planes(np.take_along_axis(q, by_id, 1)))),
        ("  or + the permutation back to probability order, u8",
         size(np.argsort(by_id, axis=1).astype(np.uint8).tobytes())),
    ]  # fmt: skip
    print(f"{a.cache}: {n} examples, {n_pos:,} "
          f"positions, k = {k}, zstd level 3")  # fmt: skip
    print("| ids coding | bytes/position |\n| --- | ---: |")
    for name, b in rows:
        print(f"| {name} | {b:.1f} |")


if __name__ == "__main__":
    main()
